//! The test harness: a tether instance on a fresh database (a temp SQLite file, or a fresh
//! PostgreSQL schema when `TETHER_TEST_POSTGRES_URL` is set), and `Browser`s that keep their own
//! cookies, so one test can play several people or several devices against the same server.
//!
//! Each `TestApp` also starts two stub instances on loopback ports (`app.mastodon`, a Mastodon
//! 4.3, and `app.pixelfed`), allow-listed in `outbound_allow_private`, because tether verifies
//! every access token with its instance before storing a platform. `Browser::add_platform`
//! connects `https://mastodon.social` / `https://pixelfed.social` to those stubs
//! ([`TestApp::origin_of`]) with a token the stub accepts for the account.
#![allow(dead_code)]

pub mod stub_instance;

use std::collections::HashMap;
use std::sync::Mutex;

use rocket::figment::Figment;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::{Client, LocalRequest, LocalResponse};
use serde_json::Value;
use tempfile::TempDir;

use rocket_db_pools::Database;
use tether::db::{Db, DbConn};

use stub_instance::{Flavour, StubInstance};

pub const PASSWORD: &str = "correct horse battery staple";

/// Declares a test that runs once on SQLite and once on PostgreSQL:
/// `backend_test!(async fn name(app) { … })` makes `name::sqlite` and `name::postgres`.
/// An optional `config = |figment| …` adjusts the configuration for both.
#[macro_export]
macro_rules! backend_test {
    (async fn $name:ident($app:ident) $body:block) => {
        $crate::backend_test!(async fn $name($app) config = |f| f, $body);
    };
    (async fn $name:ident($app:ident) config = $config:expr, $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($app: $crate::common::TestApp) $body

            #[rocket::async_test]
            async fn sqlite() {
                run($crate::common::TestApp::sqlite($config).await).await
            }

            #[rocket::async_test]
            async fn postgres() {
                if let Some(app) = $crate::common::TestApp::postgres($config).await {
                    run(app).await
                }
            }
        }
    };
}

/// The public instances the tests name, and which stub stands in for each.
pub const MASTODON_SOCIAL: &str = "https://mastodon.social";
pub const PIXELFED_SOCIAL: &str = "https://pixelfed.social";

pub struct TestApp {
    pub client: Client,
    /// Stands in for `https://mastodon.social` (a Mastodon 4.3).
    pub mastodon: StubInstance,
    /// Stands in for `https://pixelfed.social`.
    pub pixelfed: StubInstance,
    _dir: TempDir,
    pg_schema: Option<(String, String)>,
}

/// The two stubs a `TestApp` talks to, started before Rocket so their ports can be allow-listed.
fn start_stubs() -> (StubInstance, StubInstance) {
    (
        StubInstance::builder(Flavour::Mastodon43).start_blocking(),
        StubInstance::builder(Flavour::Pixelfed).start_blocking(),
    )
}

/// The base configuration; `outbound_allow_private` names the stubs, so a `config = |f| …`
/// that wants more entries can extend what it finds there.
fn base_figment(
    dir: &TempDir,
    url: &str,
    mastodon: &StubInstance,
    pixelfed: &StubInstance,
) -> Figment {
    tether::config::figment()
        .merge(("databases.tether.url", url))
        .merge(("databases.tether.max_connections", 4))
        .merge(("databases.tether.connect_timeout", 5))
        .merge(("data_dir", dir.path().display().to_string()))
        .merge(("secret_key", "hPRYyVRiMyxpw5sBB1XeCMN1kFsDCqKvBi2QJxBVHQk="))
        .merge(("token_key", "q6kJ0fQ4yZ0m3m6mYQ0x9w3m0o8mD9b1S4C6vS0q2mE="))
        .merge(("log_level", "off"))
        .merge(("cli_colors", false))
        .merge((
            "outbound_allow_private",
            vec![mastodon.host_port(), pixelfed.host_port()],
        ))
}

impl TestApp {
    pub async fn sqlite(configure: impl FnOnce(Figment) -> Figment) -> TestApp {
        Self::sqlite_with_routes(configure, Vec::new()).await
    }

    /// `None` (the test is skipped) when PostgreSQL is not configured, unless
    /// `TETHER_REQUIRE_POSTGRES` is set: CI sets it so that skipping is a failure.
    pub async fn postgres(configure: impl FnOnce(Figment) -> Figment) -> Option<TestApp> {
        Self::postgres_with_routes(configure, Vec::new()).await
    }

    /// With extra routes mounted (probes that exercise the guards directly).
    pub async fn sqlite_with_routes(
        configure: impl FnOnce(Figment) -> Figment,
        routes: Vec<rocket::Route>,
    ) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        let (mastodon, pixelfed) = start_stubs();
        let figment = configure(base_figment(&dir, &url, &mastodon, &pixelfed));
        let client = Client::untracked(tether::rocket_from(figment).mount("/", routes))
            .await
            .expect("tether ignites on SQLite");
        TestApp {
            client,
            mastodon,
            pixelfed,
            _dir: dir,
            pg_schema: None,
        }
    }

    /// `None` (the test is skipped) when PostgreSQL is not configured, unless
    /// `TETHER_REQUIRE_POSTGRES` is set: CI sets it so that skipping is a failure.
    pub async fn postgres_with_routes(
        configure: impl FnOnce(Figment) -> Figment,
        routes: Vec<rocket::Route>,
    ) -> Option<TestApp> {
        let Ok(base) = std::env::var("TETHER_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var_os("TETHER_REQUIRE_POSTGRES").is_none(),
                "TETHER_REQUIRE_POSTGRES is set but TETHER_TEST_POSTGRES_URL is not"
            );
            return None;
        };
        let schema = format!("tether_test_{}", hex_suffix());
        let admin = sqlx::PgPool::connect(&base)
            .await
            .expect("PostgreSQL at TETHER_TEST_POSTGRES_URL answers");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .expect("create test schema");
        admin.close().await;
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
        let dir = tempfile::tempdir().expect("temp dir");
        let (mastodon, pixelfed) = start_stubs();
        let figment = configure(base_figment(&dir, &url, &mastodon, &pixelfed));
        let client = Client::untracked(tether::rocket_from(figment).mount("/", routes))
            .await
            .expect("tether ignites on PostgreSQL");
        Some(TestApp {
            client,
            mastodon,
            pixelfed,
            _dir: dir,
            pg_schema: Some((base, schema)),
        })
    }

    /// Where tether reaches an instance the tests name: `https://mastodon.social` → the
    /// Mastodon stub's origin (`http://127.0.0.1:PORT`), `https://pixelfed.social` → the Pixelfed
    /// stub's; any other value unchanged. What tether stores as the platform's instance URL.
    pub fn origin_of(&self, instance: &str) -> String {
        match self.stub_for(instance) {
            Some(stub) => stub.origin(),
            None => instance.to_string(),
        }
    }

    /// The host tether names an instance by in its messages (`127.0.0.1` for a stub).
    pub fn host_of(&self, instance: &str) -> String {
        let origin = self.origin_of(instance);
        url::Url::parse(&origin)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or(origin)
    }

    /// The stub behind `instance`: a public name it stands in for, or its own origin.
    pub fn stub_for(&self, instance: &str) -> Option<&StubInstance> {
        let instance = instance.trim_end_matches('/');
        [&self.mastodon, &self.pixelfed].into_iter().find(|stub| {
            let public = match stub.flavour() {
                Flavour::Mastodon43 => MASTODON_SOCIAL,
                Flavour::Pixelfed => PIXELFED_SOCIAL,
            };
            instance == public || instance == stub.origin()
        })
    }

    pub fn browser(&self) -> Browser<'_> {
        Browser {
            client: &self.client,
            app: self,
            jar: Mutex::new(HashMap::new()),
            headers: Mutex::new(Vec::new()),
        }
    }

    /// A connection straight from the pool, for arranging state another device would cause.
    pub async fn db(&self) -> DbConn {
        let db = Db::fetch(self.client.rocket()).expect("database attached");
        db.acquire().await.expect("pool connection")
    }

    pub fn pool(&self) -> &tether::db::DbPool {
        Db::fetch(self.client.rocket()).expect("database attached")
    }

    pub async fn exec(&self, sql: &str, args: Vec<tether::db::Value>) -> u64 {
        let mut db = self.db().await;
        let mut q = tether::db::query(sql);
        for arg in args {
            q = q.bind(arg);
        }
        q.execute(&mut db).await.expect("test SQL runs")
    }

    pub async fn count(&self, sql: &str, args: Vec<tether::db::Value>) -> i64 {
        let mut db = self.db().await;
        let mut q = tether::db::query(sql);
        for arg in args {
            q = q.bind(arg);
        }
        let (n,): (i64,) = q.fetch_one(&mut db).await.expect("test SQL runs");
        n
    }

    /// Makes an existing user an administrator, as `tether user add --admin` would.
    pub async fn make_admin(&self, username: &str) {
        self.exec(
            "UPDATE users SET role = 'admin' WHERE username = $1",
            vec![tether::db::Value::from(username)],
        )
        .await;
    }

    /// The audit actions recorded so far, oldest first.
    pub async fn audit_actions(&self) -> Vec<String> {
        let mut db = self.db().await;
        let rows: Vec<(String,)> = tether::db::query("SELECT action FROM audit_events ORDER BY id")
            .fetch_all(&mut db)
            .await
            .expect("audit rows");
        rows.into_iter().map(|(a,)| a).collect()
    }

    /// A signed-in browser for a new user with one connected Mastodon platform.
    pub async fn user_with_platform(&self, username: &str) -> Browser<'_> {
        let browser = self.browser();
        browser.register(username).await;
        browser
            .add_platform(
                &format!("{username} main"),
                "https://mastodon.social",
                username,
            )
            .await;
        browser
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some((base, schema)) = self.pg_schema.take() {
            // Drop runs inside the test's runtime; clean up on a thread with its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    if let Ok(pool) = sqlx::PgPool::connect(&base).await {
                        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                            .execute(&pool)
                            .await;
                        pool.close().await;
                    }
                });
            })
            .join();
        }
    }
}

fn hex_suffix() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A response read to the end (so the request, and its connection, are gone).
#[derive(Debug)]
pub struct Page {
    pub status: Status,
    pub location: Option<String>,
    pub headers: Vec<(String, String)>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn csrf_token(&self) -> String {
        meta_csrf(&self.body).unwrap_or_else(|| panic!("no csrf meta in: {}", self.body))
    }

    pub fn assert_redirect(&self, to: &str) {
        assert_eq!(self.status, Status::SeeOther, "body: {}", self.body);
        assert_eq!(self.location.as_deref(), Some(to));
    }
}

pub fn meta_csrf(body: &str) -> Option<String> {
    let marker = "<meta name=\"csrf-token\" content=\"";
    let start = body.find(marker)? + marker.len();
    let end = body[start..].find('"')? + start;
    Some(body[start..end].to_string())
}

/// One browser: its own cookie jar, sent with every request and updated from every response.
pub struct Browser<'a> {
    pub client: &'a Client,
    /// The app this browser talks to, and its stub instances.
    pub app: &'a TestApp,
    jar: Mutex<HashMap<String, String>>,
    headers: Mutex<Vec<(String, String)>>,
}

impl<'a> Browser<'a> {
    /// Sends `name: value` with every later request (a user agent, a forwarded address).
    pub fn always_send(&self, name: &str, value: &str) {
        let mut headers = self.headers.lock().unwrap();
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        headers.push((name.to_string(), value.to_string()));
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().unwrap().get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar
            .lock()
            .unwrap()
            .insert(name.to_string(), value.to_string());
    }

    pub fn forget_cookie(&self, name: &str) {
        self.jar.lock().unwrap().remove(name);
    }

    /// A second device for nobody: same server, empty jar.
    pub fn jar_snapshot(&self) -> HashMap<String, String> {
        self.jar.lock().unwrap().clone()
    }

    pub fn restore_jar(&self, jar: HashMap<String, String>) {
        *self.jar.lock().unwrap() = jar;
    }

    fn prepare(&self, mut req: LocalRequest<'a>) -> LocalRequest<'a> {
        for (name, value) in self.jar.lock().unwrap().iter() {
            req = req.cookie(rocket::http::Cookie::new(name.clone(), value.clone()));
        }
        for (name, value) in self.headers.lock().unwrap().iter() {
            // Rocket takes a request's host from hyper; a local request has to be told.
            if name.eq_ignore_ascii_case("Host") {
                if let Ok(host) = rocket::http::uri::Host::parse_owned(value.clone()) {
                    req.inner_mut().set_host(host);
                }
            }
            req = req.header(Header::new(name.clone(), value.clone()));
        }
        req
    }

    async fn finish(&self, res: LocalResponse<'_>) -> Page {
        let status = res.status();
        let headers: Vec<(String, String)> = res
            .headers()
            .iter()
            .map(|h| (h.name().to_string(), h.value().to_string()))
            .collect();
        let set_cookies: Vec<String> = res
            .headers()
            .get("Set-Cookie")
            .map(str::to_string)
            .collect();
        {
            // Parse Set-Cookie as a browser would: values arrive percent-encoded (`/` as `%2F`).
            let mut jar = self.jar.lock().unwrap();
            for header in &set_cookies {
                let cookie = rocket::http::Cookie::parse_encoded(header.clone())
                    .unwrap_or_else(|e| panic!("bad Set-Cookie {header}: {e}"));
                let removed =
                    cookie.value().is_empty() || cookie.max_age().is_some_and(|age| age.is_zero());
                if removed {
                    jar.remove(cookie.name());
                } else {
                    jar.insert(cookie.name().to_string(), cookie.value().to_string());
                }
            }
        }
        let location = res.headers().get_one("Location").map(str::to_string);
        let body = res.into_string().await.unwrap_or_default();
        Page {
            status,
            location,
            headers,
            set_cookies,
            body,
        }
    }

    pub async fn get(&self, uri: &str) -> Page {
        let req = self.prepare(self.client.get(uri.to_string()));
        self.finish(req.dispatch().await).await
    }

    pub async fn post_form(&self, uri: &str, fields: &[(&str, &str)]) -> Page {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let req = self
            .prepare(self.client.post(uri.to_string()))
            .header(ContentType::Form)
            .body(body);
        self.finish(req.dispatch().await).await
    }

    pub async fn post_raw(&self, uri: &str, content_type: ContentType, body: &str) -> Page {
        let req = self
            .prepare(self.client.post(uri.to_string()))
            .header(content_type)
            .body(body);
        self.finish(req.dispatch().await).await
    }

    pub async fn post_raw_with_csrf(
        &self,
        uri: &str,
        content_type: ContentType,
        body: &str,
        csrf: &str,
    ) -> Page {
        let req = self
            .prepare(self.client.post(uri.to_string()))
            .header(content_type)
            .header(Header::new("X-CSRF-Token", csrf.to_string()))
            .body(body);
        self.finish(req.dispatch().await).await
    }

    pub async fn post_json(&self, uri: &str, body: &Value, csrf: Option<&str>) -> Page {
        let mut req = self
            .prepare(self.client.post(uri.to_string()))
            .header(ContentType::JSON)
            .body(body.to_string());
        if let Some(token) = csrf {
            req = req.header(Header::new("X-CSRF-Token", token.to_string()));
        }
        self.finish(req.dispatch().await).await
    }

    /// Follows a redirect the way a browser does (GET the Location).
    pub async fn follow(&self, page: &Page) -> Page {
        let to = page
            .location
            .as_deref()
            .unwrap_or_else(|| panic!("not a redirect: {} {}", page.status, page.body));
        // Browsers keep a fragment (`#item-3`) to themselves.
        let to = to.split('#').next().unwrap_or(to);
        self.get(to).await
    }

    /// The CSRF token the page at `uri` embeds for this browser.
    pub async fn csrf_from(&self, uri: &str) -> String {
        self.get(uri).await.csrf_token()
    }

    /// Submits a form the way its page would: fetches `page` for the token, then posts.
    pub async fn submit(&self, page: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.csrf_from(page).await;
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.push(("csrf_token", &token));
        self.post_form(action, &all).await
    }

    pub async fn register(&self, username: &str) -> Page {
        let email = format!("{username}@example.com");
        let page = self
            .submit(
                "/register",
                "/register",
                &[
                    ("username", username),
                    ("email", &email),
                    ("password", PASSWORD),
                    ("password_confirm", PASSWORD),
                ],
            )
            .await;
        assert_eq!(
            page.status,
            Status::SeeOther,
            "register failed: {}",
            page.body
        );
        page
    }

    pub async fn login(&self, username: &str, password: &str) -> Page {
        self.submit(
            "/login",
            "/login",
            &[("username", username), ("password", password)],
        )
        .await
    }

    pub async fn logout(&self) -> Page {
        self.submit("/dashboard", "/logout", &[]).await
    }

    /// Connects a Mastodon account with the token form; returns its id. `instance` goes through
    /// [`TestApp::origin_of`] (so `https://mastodon.social` is the Mastodon stub), and the stub
    /// behind it is given a fresh token for `account` first, as if the user had created it in the
    /// instance's settings.
    pub async fn add_platform(&self, name: &str, instance: &str, account: &str) -> i64 {
        let origin = self.app.origin_of(instance);
        let token = self.token_for(instance, account);
        let page = self
            .submit(
                "/platforms/new",
                "/platforms",
                &[
                    ("name", name),
                    ("platform_type", "mastodon"),
                    ("instance_url", &origin),
                    ("username", account),
                    ("access_token", &token),
                ],
            )
            .await;
        assert_eq!(
            page.status,
            Status::SeeOther,
            "add platform failed: {}",
            page.body
        );
        self.platform_id(name).await
    }

    /// A fresh token the stub behind `instance` accepts for `account` (`@alice`,
    /// `alice@host` and `alice` all mean the account `alice`); a made-up one when no stub is
    /// behind it.
    pub fn token_for(&self, instance: &str, account: &str) -> String {
        let username = account
            .trim()
            .trim_start_matches('@')
            .split('@')
            .next()
            .unwrap_or_default();
        match self.app.stub_for(instance) {
            Some(stub) => stub.new_token(username),
            None => "token-for-tests-0123456789".to_string(),
        }
    }

    /// The id of this user's platform called `name`, via the JSON API.
    pub async fn platform_id(&self, name: &str) -> i64 {
        let list = self.get("/api/platforms").await.json();
        list["platforms"]
            .as_array()
            .expect("platforms array")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no platform {name} in {list}"))["id"]
            .as_i64()
            .expect("id")
    }
}

pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
