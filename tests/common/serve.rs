//! `tether serve` as a process for the browser suites (`tests/browser.rs`, `tests/e2e.rs`): the
//! built binary on `127.0.0.1:port`, a fresh SQLite file, data directory and keys in `dir`, the
//! project's templates, and one instance on a private address allowed.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// 32 random bytes, base64: a `secret_key` or `token_key`.
pub fn random_key() -> String {
    use base64::Engine as _;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The command, ready to spawn; callers set stdio and any further settings. The binary is the
/// one `cargo test` built for this run: the suites need no build of their own.
pub fn tether_serve(dir: &Path, port: u16, allow_private: &str) -> Command {
    let database = format!(
        "{{tether={{url=\"sqlite://{}?mode=rwc\"}}}}",
        dir.join("tether.db").display()
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_tether"));
    command
        .arg("serve")
        .current_dir(dir)
        .env_remove("ROCKET_PROFILE")
        .env_remove("ROCKET_CONFIG")
        .env("ROCKET_PORT", port.to_string())
        .env("ROCKET_ADDRESS", "127.0.0.1")
        .env("ROCKET_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("ROCKET_DATA_DIR", dir.join("data"))
        .env(
            "ROCKET_TEMPLATE_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("templates"),
        )
        .env("ROCKET_DATABASES", database)
        .env("ROCKET_SECRET_KEY", random_key())
        .env("ROCKET_TOKEN_KEY", random_key())
        .env(
            "ROCKET_OUTBOUND_ALLOW_PRIVATE",
            format!("[\"{allow_private}\"]"),
        )
        .env("ROCKET_CLI_COLORS", "false");
    command
}
