//! A database outage under a running tether, on a private PostgreSQL cluster.
//!
//! This file proves that when PostgreSQL goes away under a signed-in user, tether answers quickly
//! (within `connect_timeout` plus a margin) with its 503 page, 503 JSON under `/api/` and a 503
//! `/healthz` — never a 500 and never a redirect to the login page, because the session is not
//! the problem — and that once PostgreSQL is back the same browser's session works again
//! without restarting tether.
//!
//! The cluster is made with `initdb` in a temp dir and served by `pg_ctl` on a free loopback
//! port; it is stopped and removed when the test ends, however it ends. Without the PostgreSQL
//! binaries the test is skipped with a note, unless `TETHER_REQUIRE_POSTGRES` is set. The
//! platform is connected on a stub Mastodon instance (tether verifies tokens with the instance).

#[path = "common/stub_instance.rs"]
mod stub_instance;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rocket::figment::Figment;
use rocket::http::{ContentType, Status};
use rocket::local::asynchronous::Client;
use serde_json::Value;
use tempfile::TempDir;

use stub_instance::{Flavour, StubInstance};

const PASSWORD: &str = "correct horse battery staple";
/// `databases.tether.connect_timeout` for this test, in seconds.
const CONNECT_TIMEOUT: u64 = 2;
/// How much longer than `connect_timeout` an answer may take while the database is down.
const MARGIN: Duration = Duration::from_secs(3);
/// How long after PostgreSQL is back the session must work again.
const RECOVERY_LIMIT: Duration = Duration::from_secs(15);
/// Any one command (initdb, pg_ctl) is killed after this long.
const COMMAND_LIMIT: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------------------------
// A private PostgreSQL cluster
// ---------------------------------------------------------------------------------------------

/// The directory holding `initdb` and `pg_ctl`: `TETHER_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`, else wherever `PATH` has them.
fn postgres_bin() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("TETHER_PG_BIN").map(PathBuf::from) {
        return has_tools(&dir).then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_tools(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).find(|dir| has_tools(dir))
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Runs `command`, killing it after `COMMAND_LIMIT`; its output either way.
fn run_bounded(mut command: Command) -> Output {
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let deadline = Instant::now() + COMMAND_LIMIT;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("collect output");
            panic!(
                "{shown} did not finish within {COMMAND_LIMIT:?}; output: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("collect output")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A PostgreSQL cluster in a temp dir, serving 127.0.0.1 on a port of its own. Dropping it stops
/// the server (killing it if need be) and removes the directory.
struct Cluster {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    /// `None` (skip, with a note) when the PostgreSQL binaries are missing, unless
    /// `TETHER_REQUIRE_POSTGRES` is set.
    fn create() -> Option<Cluster> {
        let Some(bin) = postgres_bin() else {
            assert!(
                std::env::var_os("TETHER_REQUIRE_POSTGRES").is_none(),
                "TETHER_REQUIRE_POSTGRES is set but initdb and pg_ctl were not found \
                 (set TETHER_PG_BIN to their directory)"
            );
            println!("note: initdb/pg_ctl not found; the PostgreSQL outage test is skipped");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        // initdb refuses to run as root: as root, the cluster belongs to `postgres`.
        let as_postgres = running_as_root();
        if as_postgres {
            let chown = run_bounded({
                let mut c = Command::new("chown");
                c.arg("postgres:").arg(dir.path());
                c
            });
            assert!(
                chown.status.success(),
                "chown postgres {}: {}",
                dir.path().display(),
                text(&chown)
            );
        }
        let cluster = Cluster {
            bin,
            dir,
            port: free_port(),
            as_postgres,
        };
        let data = cluster.data();
        let init = cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            ],
        );
        assert!(init.status.success(), "initdb failed: {}", text(&init));
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        // Somewhere the postgres user may be, whatever the test's working directory is.
        command.args(args).current_dir(self.dir.path());
        run_bounded(command)
    }

    fn start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        let data = self.data();
        let out = self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", "30", "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\nserver log:\n{}",
            text(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn stop(&self, mode: &str) -> Output {
        let data = self.data();
        self.run(
            "pg_ctl",
            &["-D", &data, "-m", mode, "-w", "-t", "30", "stop"],
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let pid_file = self.dir.path().join("data").join("postmaster.pid");
        if !pid_file.exists() {
            return;
        }
        let _ = self.stop("immediate");
        // Still there? Kill the postmaster, so no server outlives the test.
        if let Ok(pids) = std::fs::read_to_string(&pid_file) {
            if let Some(pid) = pids.lines().next().filter(|p| p.parse::<u32>().is_ok()) {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// Blocking work (a command) off the async test's thread.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work)
        .await
        .expect("blocking task")
}

// ---------------------------------------------------------------------------------------------
// tether, in process
// ---------------------------------------------------------------------------------------------

/// tether on `url`, allowed to call the stub instance at `instance` (`127.0.0.1:PORT`).
fn figment(dir: &TempDir, url: &str, instance: &str) -> Figment {
    use base64::Engine as _;
    use rand::RngCore;
    let key = || {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    tether::config::figment()
        .merge(("databases.tether.url", url))
        .merge(("databases.tether.max_connections", 4))
        .merge(("databases.tether.connect_timeout", CONNECT_TIMEOUT))
        .merge(("data_dir", dir.path().display().to_string()))
        .merge(("secret_key", key()))
        .merge(("token_key", key()))
        .merge(("log_level", "off"))
        .merge(("cli_colors", false))
        .merge(("outbound_allow_private", vec![instance.to_string()]))
}

/// A response read to the end, and how long it took.
struct Page {
    status: Status,
    content_type: Option<String>,
    location: Option<String>,
    body: String,
    took: Duration,
}

impl Page {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    fn csrf_token(&self) -> String {
        let marker = "<meta name=\"csrf-token\" content=\"";
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no csrf meta in: {} {}", self.status, self.body))
            + marker.len();
        let end = self.body[start..].find('"').expect("closing quote") + start;
        self.body[start..end].to_string()
    }

    fn summary(&self) -> String {
        let body: String = self.body.chars().take(300).collect();
        format!(
            "{} {} after {:?}: {body}",
            self.status,
            self.location.as_deref().unwrap_or(""),
            self.took
        )
    }
}

/// The one browser of this test: a tracked client keeps its cookies.
struct Browser {
    client: Client,
}

impl Browser {
    async fn finish(res: rocket::local::asynchronous::LocalResponse<'_>, started: Instant) -> Page {
        let status = res.status();
        let content_type = res.content_type().map(|c| c.to_string());
        let location = res.headers().get_one("Location").map(str::to_string);
        let body = res.into_string().await.unwrap_or_default();
        Page {
            status,
            content_type,
            location,
            body,
            took: started.elapsed(),
        }
    }

    async fn get(&self, uri: &str) -> Page {
        let started = Instant::now();
        let res = self.client.get(uri.to_string()).dispatch().await;
        Self::finish(res, started).await
    }

    async fn post_form(&self, uri: &str, fields: &[(&str, &str)]) -> Page {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let started = Instant::now();
        let res = self
            .client
            .post(uri.to_string())
            .header(ContentType::Form)
            .body(body)
            .dispatch()
            .await;
        Self::finish(res, started).await
    }

    async fn submit(&self, page: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.get(page).await.csrf_token();
        let mut all = fields.to_vec();
        all.push(("csrf_token", &token));
        self.post_form(action, &all).await
    }
}

fn encode(s: &str) -> String {
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

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

#[rocket::async_test]
async fn database_outage_answers_503_quickly_and_the_session_survives_recovery() {
    let Some(cluster) = blocking(Cluster::create).await else {
        return;
    };
    let cluster = std::sync::Arc::new(cluster);
    {
        let cluster = cluster.clone();
        blocking(move || cluster.start()).await;
    }

    let mastodon = StubInstance::builder(Flavour::Mastodon43).start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let figment = figment(&dir, &cluster.url(), &mastodon.host_port());
    let client = Client::tracked(tether::rocket_from(figment))
        .await
        .expect("tether ignites on the private cluster");
    let browser = Browser { client };

    let registered = browser
        .submit(
            "/register",
            "/register",
            &[
                ("username", "olive"),
                ("email", "olive@example.com"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        registered.status,
        Status::SeeOther,
        "register: {}",
        registered.summary()
    );
    let added = browser
        .submit(
            "/platforms/new",
            "/platforms",
            &[
                ("name", "Olive main"),
                ("platform_type", "mastodon"),
                ("instance_url", &mastodon.origin()),
                ("username", "olive"),
                ("access_token", &mastodon.new_token("olive")),
            ],
        )
        .await;
    assert_eq!(
        added.status,
        Status::SeeOther,
        "add platform: {}",
        added.summary()
    );
    let up = browser.get("/dashboard").await;
    assert_eq!(
        up.status,
        Status::Ok,
        "dashboard before the outage: {}",
        up.summary()
    );

    // The outage.
    {
        let cluster = cluster.clone();
        let stopped = blocking(move || cluster.stop("fast")).await;
        assert!(stopped.status.success(), "pg_ctl stop: {}", text(&stopped));
    }
    let limit = Duration::from_secs(CONNECT_TIMEOUT) + MARGIN;

    let dashboard = browser.get("/dashboard").await;
    assert_ne!(
        dashboard.status,
        Status::InternalServerError,
        "a database outage is not a 500: {}",
        dashboard.summary()
    );
    assert!(
        dashboard.location.is_none(),
        "a database outage must not redirect (least of all to /login: the session is fine): {}",
        dashboard.summary()
    );
    assert_eq!(
        dashboard.status,
        Status::ServiceUnavailable,
        "GET /dashboard while the database is down: {}",
        dashboard.summary()
    );
    assert!(
        dashboard
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("text/html")),
        "the 503 for a page is HTML, got {:?}: {}",
        dashboard.content_type,
        dashboard.summary()
    );
    assert!(
        dashboard
            .body
            .contains("A database error occurred. Please try again."),
        "the 503 page is tether's, saying what happened: {}",
        dashboard.summary()
    );
    assert!(
        dashboard.took < limit,
        "GET /dashboard took {:?} to answer 503, more than connect_timeout ({CONNECT_TIMEOUT} s) \
         + {MARGIN:?}",
        dashboard.took
    );

    let api = browser.get("/api/platforms").await;
    assert_eq!(
        api.status,
        Status::ServiceUnavailable,
        "GET /api/platforms while the database is down: {}",
        api.summary()
    );
    let json = api.json();
    assert_eq!(
        json["success"],
        Value::Bool(false),
        "API errors are {{\"success\": false, ...}}: {json}"
    );
    assert!(
        json["error"].is_string(),
        "API errors carry a message: {json}"
    );
    assert!(
        api.took < limit,
        "GET /api/platforms took {:?} to answer 503, more than connect_timeout \
         ({CONNECT_TIMEOUT} s) + {MARGIN:?}",
        api.took
    );

    let health = browser.get("/healthz").await;
    assert_eq!(
        health.status,
        Status::ServiceUnavailable,
        "GET /healthz while the database is down: {}",
        health.summary()
    );
    assert!(
        health.took < limit,
        "GET /healthz took {:?} to answer 503, more than connect_timeout ({CONNECT_TIMEOUT} s) \
         + {MARGIN:?}",
        health.took
    );

    println!(
        "while down: /dashboard {:?}, /api/platforms {:?}, /healthz {:?}",
        dashboard.took, api.took, health.took
    );

    // The recovery: same tether, same browser, same session.
    {
        let cluster = cluster.clone();
        blocking(move || cluster.start()).await;
    }
    let back = Instant::now();
    let mut seen = Vec::new();
    loop {
        let page = browser.get("/dashboard").await;
        if page.status == Status::Ok {
            assert!(
                page.body
                    .contains("<span class=\"site-header__user\">olive</span>"),
                "after recovery the dashboard shows the same user: {}",
                page.summary()
            );
            break;
        }
        assert!(
            page.location.is_none(),
            "after PostgreSQL is back the session must still be valid, but GET /dashboard \
             redirected: {}",
            page.summary()
        );
        seen.push(page.summary());
        assert!(
            back.elapsed() < RECOVERY_LIMIT,
            "GET /dashboard did not answer 200 within {RECOVERY_LIMIT:?} of PostgreSQL coming \
             back; answers: {seen:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "back up: /dashboard 200 {:?} after pg_ctl start returned, {} earlier answers",
        back.elapsed(),
        seen.len()
    );
    let health = browser.get("/healthz").await;
    assert_eq!(
        health.status,
        Status::Ok,
        "GET /healthz after recovery: {}",
        health.summary()
    );
}
