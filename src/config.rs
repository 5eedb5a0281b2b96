//! Application settings (Rocket config keys, so Rocket.toml and `ROCKET_*` env both work) and the
//! first-run key files that let `cargo run` work with no set-up.

use std::io::Write;
use std::path::{Path, PathBuf};

use rocket::fairing::AdHoc;
use rocket::figment::providers::{Env, Format, Serialized, Toml};
use rocket::figment::{Figment, Profile};
use serde::{Deserialize, Serialize};

use crate::crypto::{PasswordHasherPool, TokenCipher};
use crate::outbound::{Outbound, OutboundConfig};

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/tether.db?mode=rwc";

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Settings {
    /// Where the SQLite database and generated development keys live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Base64 of 32 bytes: the key that encrypts platform access tokens at rest.
    #[serde(default)]
    pub token_key: Option<String>,
    #[serde(default = "default_true")]
    pub allow_registration: bool,
    /// Adds `Server-Timing: db;desc="N statements on M connections"` to every response, for
    /// looking at a request's database work in a browser's developer tools. Off by default.
    #[serde(default)]
    pub server_timing: bool,
    /// Seconds of inactivity after which a session ends.
    #[serde(default = "default_idle_timeout")]
    pub session_idle_timeout: u64,
    /// Seconds after sign-in after which a session ends, active or not.
    #[serde(default = "default_absolute_timeout")]
    pub session_absolute_timeout: u64,
    /// Mark cookies `Secure` and send HSTS. Unset: on in the release profile, off in debug.
    #[serde(default)]
    pub secure_cookies: Option<bool>,
    /// Apply pending migrations at start. Turn off when several instances share one database
    /// and `tether migrate` runs once before they start.
    #[serde(default = "default_true")]
    pub run_migrations: bool,
    /// Seconds to keep retrying at start while the database is unreachable.
    #[serde(default = "default_database_wait")]
    pub database_wait: u64,
    /// The address people use to reach tether (`https://tether.example`): OAuth redirect URIs
    /// and the outbound User-Agent are built from it. Debug runs default to Rocket's own address.
    #[serde(default)]
    pub public_url: Option<String>,
    /// `host:port` pairs of instances on private addresses that tether may call, over plain http
    /// too (a home instance, the tests' stub instance). Everything else: public https only.
    #[serde(default)]
    pub outbound_allow_private: Vec<String>,
    /// Seconds after which the background task refreshes a stored account copy.
    #[serde(default = "default_refresh_interval")]
    pub account_refresh_interval: u64,
    /// The most recent posts an alt-text scan reads.
    #[serde(default = "default_audit_max_posts")]
    pub audit_max_posts: u64,
    /// Seconds between the background worker's looks for scans and descriptions to publish.
    #[serde(default = "default_audit_poll_interval")]
    pub audit_poll_interval: u64,
}

fn default_audit_max_posts() -> u64 {
    400
}

fn default_audit_poll_interval() -> u64 {
    2
}

fn default_refresh_interval() -> u64 {
    21600
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_true() -> bool {
    true
}
fn default_database_wait() -> u64 {
    10
}
fn default_idle_timeout() -> u64 {
    1800
}
fn default_absolute_timeout() -> u64 {
    43200
}

impl Settings {
    pub fn idle_timeout(&self) -> i64 {
        i64::try_from(self.session_idle_timeout).unwrap_or(i64::MAX)
    }

    pub fn absolute_timeout(&self) -> i64 {
        i64::try_from(self.session_absolute_timeout).unwrap_or(i64::MAX)
    }
}

/// What `Settings` resolved to for this run, with `secure_cookies` decided.
#[derive(Clone, Debug)]
pub struct Runtime {
    pub settings: Settings,
    pub secure_cookies: bool,
    /// `public_url` without a trailing slash; `None` in release when it is not configured (the
    /// connect flow then says so, and the token form still works).
    pub public_url: Option<String>,
}

impl Runtime {
    /// Where instances send the browser back after the user approves tether.
    pub fn redirect_uri(&self) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|base| format!("{base}{}", crate::guards::CALLBACK_PATH))
    }
}

/// Rocket's own configuration sources (Rocket.toml, `ROCKET_*`), over tether's defaults.
pub fn figment() -> Figment {
    Figment::from(rocket::Config::default())
        .merge(Serialized::defaults(AppDefaults::default()))
        .merge(Toml::file(Env::var_or("ROCKET_CONFIG", "Rocket.toml")).nested())
        .merge(Env::prefixed("ROCKET_").ignore(&["PROFILE"]).global())
        .select(Profile::from_env_or(
            "ROCKET_PROFILE",
            rocket::Config::DEFAULT_PROFILE,
        ))
}

#[derive(Serialize)]
struct AppDefaults {
    databases: Databases,
    limits: Limits,
}

#[derive(Serialize)]
struct Databases {
    tether: DatabaseDefaults,
}

#[derive(Serialize)]
struct DatabaseDefaults {
    url: &'static str,
}

#[derive(Serialize)]
struct Limits {
    form: &'static str,
    json: &'static str,
}

impl Default for AppDefaults {
    fn default() -> Self {
        AppDefaults {
            databases: Databases {
                tether: DatabaseDefaults {
                    url: DEFAULT_DATABASE_URL,
                },
            },
            limits: Limits {
                form: "64 KiB",
                json: "16 KiB",
            },
        }
    }
}

fn is_debug(figment: &Figment) -> bool {
    figment.profile() == rocket::Config::DEBUG_PROFILE
}

/// Fills in the keys a run needs. In the debug profile a missing `secret_key` or `token_key` is
/// generated once into the data directory (mode 0600) and reused, so restarts keep sessions and
/// stored tokens readable; in any other profile a missing key is an error naming the setting.
pub fn prepare(figment: Figment) -> Result<(Figment, Runtime), String> {
    let settings: Settings = figment
        .extract()
        .map_err(|e| format!("invalid configuration: {e}"))?;
    let debug = is_debug(&figment);
    const TEN_YEARS: u64 = 10 * 365 * 24 * 3600;
    for (name, value) in [
        ("session_idle_timeout", settings.session_idle_timeout),
        (
            "session_absolute_timeout",
            settings.session_absolute_timeout,
        ),
    ] {
        if !(60..=TEN_YEARS).contains(&value) {
            return Err(format!(
                "{name} is {value}: use a number of seconds from 60 to {TEN_YEARS}"
            ));
        }
    }
    let mut figment = figment;
    let mut settings = settings;

    let secret_key_set = figment
        .extract_inner::<rocket::config::SecretKey>("secret_key")
        .is_ok_and(|k| !k.is_zero());
    if debug {
        std::fs::create_dir_all(&settings.data_dir).map_err(|e| {
            format!(
                "cannot create data_dir `{}`: {e}",
                settings.data_dir.display()
            )
        })?;
        if !secret_key_set {
            let key = load_or_create_key(&settings.data_dir.join("secret_key"), || {
                TokenCipher::generate_key()
            })?;
            figment = figment.merge(("secret_key", key));
        }
        if settings.token_key.is_none() {
            let key = load_or_create_key(
                &settings.data_dir.join("token_key"),
                TokenCipher::generate_key,
            )?;
            figment = figment.merge(("token_key", key.clone()));
            settings.token_key = Some(key);
        }
    } else if !secret_key_set {
        return Err(
            "secret_key is not set: set it in Rocket.toml or ROCKET_SECRET_KEY to base64 \
             of 32 random bytes (for example `openssl rand -base64 32`); it signs session cookies"
                .into(),
        );
    } else if settings.token_key.is_none() {
        return Err(
            "token_key is not set: set it in Rocket.toml or ROCKET_TOKEN_KEY to base64 of \
             32 random bytes (for example `openssl rand -base64 32`)"
                .into(),
        );
    }

    let secure_cookies = settings.secure_cookies.unwrap_or(!debug);
    let public_url = match settings.public_url.as_deref().map(str::trim) {
        Some(url) if !url.is_empty() => Some(check_public_url(url)?),
        _ if debug => {
            let config = rocket::Config::from(&figment);
            let address = match config.address {
                std::net::IpAddr::V4(a) if a.is_unspecified() => "127.0.0.1".to_string(),
                std::net::IpAddr::V6(a) if a.is_unspecified() => "[::1]".to_string(),
                std::net::IpAddr::V6(a) => format!("[{a}]"),
                a => a.to_string(),
            };
            Some(format!("http://{address}:{}", config.port))
        }
        _ => None,
    };
    Ok((
        figment,
        Runtime {
            settings,
            secure_cookies,
            public_url,
        },
    ))
}

/// An absolute http(s) URL with no query or fragment; returned without a trailing slash.
fn check_public_url(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url)
        .map_err(|e| format!("public_url `{url}` is not a URL ({e}): use https://your.host"))?;
    if !matches!(parsed.scheme(), "http" | "https")
        || parsed.host_str().is_none()
        || parsed.query().is_some()
        || parsed.fragment().is_some()
    {
        return Err(format!(
            "public_url `{url}` must be an http(s) address without query, like https://tether.example"
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

fn load_or_create_key(path: &Path, generate: impl Fn() -> String) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(key) if !key.trim().is_empty() => return Ok(key.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read key file `{}`: {e}", path.display())),
    }
    let key = generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot write key file `{}`: {e}", path.display()))?;
    file.write_all(key.as_bytes())
        .map_err(|e| format!("cannot write key file `{}`: {e}", path.display()))?;
    rocket::info!("generated a development key at {}", path.display());
    Ok(key)
}

/// Resolves settings and keys before anything else reads the configuration, and puts the
/// settings, the token cipher and the password hasher in managed state.
pub fn stage() -> AdHoc {
    AdHoc::try_on_ignite("Configuration", |rocket| async move {
        let (figment, runtime) = match prepare(rocket.figment().clone()) {
            Ok(prepared) => prepared,
            Err(message) => {
                rocket::error!("{message}");
                return Err(rocket);
            }
        };
        let key = runtime.settings.token_key.clone().unwrap_or_default();
        let cipher = match TokenCipher::from_base64(&key) {
            Ok(cipher) => cipher,
            Err(message) => {
                rocket::error!("{message}");
                return Err(rocket);
            }
        };
        let mut outbound = OutboundConfig::new(
            runtime
                .public_url
                .as_deref()
                .unwrap_or("public_url not configured"),
        );
        outbound.allow_private = runtime.settings.outbound_allow_private.clone();
        let outbound = match Outbound::new(outbound) {
            Ok(client) => client,
            Err(message) => {
                rocket::error!("outbound_allow_private: {message}");
                return Err(rocket);
            }
        };
        Ok(rocket
            .configure(figment)
            .manage(runtime)
            .manage(cipher)
            .manage(outbound)
            .manage(PasswordHasherPool::for_this_machine()))
    })
}
