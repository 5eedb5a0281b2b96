//! First-run keys: generated once into the data directory, private, and reused.

use std::os::unix::fs::PermissionsExt;

use rocket::figment::Figment;

fn debug_figment(dir: &std::path::Path) -> Figment {
    tether::config::figment()
        .merge(("data_dir", dir.display().to_string()))
        .select("debug")
}

#[test]
fn debug_run_generates_private_keys_once_and_reuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh");
    let (figment, runtime) = tether::config::prepare(debug_figment(&data)).expect("prepared");
    for name in ["secret_key", "token_key"] {
        let meta = std::fs::metadata(data.join(name)).expect("key file written");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
    }
    let token_key = runtime.settings.token_key.clone().unwrap();
    assert!(tether::crypto::TokenCipher::from_base64(&token_key).is_ok());
    let secret: String = figment.extract_inner("secret_key").unwrap();

    let (again, runtime_again) = tether::config::prepare(debug_figment(&data)).expect("prepared");
    assert_eq!(runtime_again.settings.token_key.unwrap(), token_key);
    assert_eq!(again.extract_inner::<String>("secret_key").unwrap(), secret);
    assert!(
        !runtime_again.secure_cookies,
        "debug defaults to plain-HTTP cookies"
    );
}

#[test]
fn configured_keys_are_used_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let key = tether::crypto::TokenCipher::generate_key();
    let figment = debug_figment(dir.path())
        .merge(("token_key", key.clone()))
        .merge(("secret_key", "hPRYyVRiMyxpw5sBB1XeCMN1kFsDCqKvBi2QJxBVHQk="));
    let (_, runtime) = tether::config::prepare(figment).unwrap();
    assert_eq!(runtime.settings.token_key.unwrap(), key);
    assert!(!dir.path().join("token_key").exists());
    assert!(!dir.path().join("secret_key").exists());
}

#[test]
fn release_profile_requires_token_key_and_defaults_to_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let release = tether::config::figment()
        .merge(("data_dir", dir.path().display().to_string()))
        .merge(("secret_key", "hPRYyVRiMyxpw5sBB1XeCMN1kFsDCqKvBi2QJxBVHQk="))
        .select("release");
    let error = tether::config::prepare(release.clone()).unwrap_err();
    assert!(error.contains("token_key"), "{error}");
    let (_, runtime) = tether::config::prepare(
        release.merge(("token_key", tether::crypto::TokenCipher::generate_key())),
    )
    .unwrap();
    assert!(runtime.secure_cookies);
}

#[test]
fn documented_defaults_hold() {
    let dir = tempfile::tempdir().unwrap();
    let (figment, runtime) = tether::config::prepare(debug_figment(dir.path())).unwrap();
    let settings = runtime.settings;
    assert!(settings.allow_registration);
    assert_eq!(settings.session_idle_timeout, 1800);
    assert_eq!(settings.session_absolute_timeout, 43200);
    let url: String = figment.extract_inner("databases.tether.url").unwrap();
    assert_eq!(url, "sqlite://data/tether.db?mode=rwc");
    let limits: rocket::data::Limits = figment.extract_inner("limits").unwrap();
    assert_eq!(limits.get("form").unwrap().as_u64(), 64 * 1024);
    assert_eq!(limits.get("json").unwrap().as_u64(), 16 * 1024);
}

#[test]
fn absurd_session_timeouts_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value) in [
        ("session_idle_timeout", 5u64),
        ("session_absolute_timeout", u64::MAX / 2),
    ] {
        let error =
            tether::config::prepare(debug_figment(dir.path()).merge((key, value))).unwrap_err();
        assert!(error.contains(key), "{error}");
    }
}
