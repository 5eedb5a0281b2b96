//! The command line: `tether migrate`, `tether user add`, and refusing to serve without keys.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use rocket::http::Status;

fn tether(dir: &std::path::Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let url = format!("sqlite://{}?mode=rwc", dir.join("cli.db").display());
    let mut command = Command::new(env!("CARGO_BIN_EXE_tether"));
    command
        .args(args)
        .env("ROCKET_DATABASES", format!("{{tether={{url=\"{url}\"}}}}"))
        .env("ROCKET_DATA_DIR", dir.join("data"))
        .env("ROCKET_LOG_LEVEL", "critical")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("tether binary runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("tether exits")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn migrate_creates_the_database_and_is_repeatable() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = tether(dir.path(), &["migrate"], "", &[]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("migrations applied"));
    }
    assert!(dir.path().join("cli.db").exists());
}

#[test]
fn user_add_reads_the_password_from_stdin_and_refuses_weak_ones() {
    let dir = tempfile::tempdir().unwrap();
    let weak = tether(
        dir.path(),
        &["user", "add", "root", "root@example.com", "--admin"],
        "password\n",
        &[],
    );
    assert!(!weak.status.success());
    assert!(text(&weak).contains("too common"), "{}", text(&weak));

    let out = tether(
        dir.path(),
        &["user", "add", "root", "root@example.com", "--admin"],
        "a long admin passphrase\nignored second line\n",
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("created admin `root`"));

    let again = tether(
        dir.path(),
        &["user", "add", "ROOT", "other@example.com"],
        "another long passphrase\n",
        &[],
    );
    assert!(!again.status.success());
    assert!(text(&again).contains("taken"));
}

#[rocket::async_test]
async fn a_cli_created_admin_can_log_in_to_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let out = tether(
        dir.path(),
        &["user", "add", "root", "root@example.com", "--admin"],
        "a long admin passphrase\n",
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());
    let app = common::TestApp::sqlite(move |f| f.merge(("databases.tether.url", url))).await;
    let browser = app.browser();
    let page = browser.login("root", "a long admin passphrase").await;
    page.assert_redirect("/dashboard");
    assert_eq!(browser.get("/platforms").await.status, Status::Ok);
}

#[test]
fn release_run_without_a_key_refuses_to_start_and_names_the_setting() {
    let secret = (
        "ROCKET_SECRET_KEY",
        "hPRYyVRiMyxpw5sBB1XeCMN1kFsDCqKvBi2QJxBVHQk=",
    );
    let token = (
        "ROCKET_TOKEN_KEY",
        "q6kJ0fQ4yZ0m3m6mYQ0x9w3m0o8mD9b1S4C6vS0q2mE=",
    );
    for (missing, present) in [("token_key", secret), ("secret_key", token)] {
        let dir = tempfile::tempdir().unwrap();
        let env = [
            ("ROCKET_PROFILE", "release"),
            ("ROCKET_LOG_LEVEL", "normal"),
            ("ROCKET_PORT", "0"),
            present,
        ];
        let out = tether(dir.path(), &["serve"], "", &env);
        assert!(!out.status.success(), "started without {missing}");
        assert!(text(&out).contains(missing), "{}", text(&out));
    }
}
