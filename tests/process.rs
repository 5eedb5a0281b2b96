//! Real `tether` processes, talked to over loopback HTTP, as an operator runs them.
//!
//! This file proves that:
//! - SIGTERM lets requests already in flight finish with their normal answers (a login that is
//!   hashing when the signal arrives still gets its 303 or 401, not a 503 or a dropped
//!   connection), and the process then exits with status 0 within Rocket's grace period;
//! - a database that cannot be reached at start-up is reported in one clear line that names the
//!   database and the setting to check, without Rocket-internal noise, and the exit is non-zero;
//! - two instances on one PostgreSQL database are interchangeable: a session, its platform
//!   switch, its logout and the failed-login count made on one are honoured by the other.
//!
//! Each process gets its own free loopback port, a temp working directory and data directory,
//! and is killed when its guard drops. Every wait is bounded. Platforms are connected on a stub
//! Mastodon instance the test starts, allow-listed with `ROCKET_OUTBOUND_ALLOW_PRIVATE`, because
//! tether verifies every token with its instance.

#[path = "common/stub_instance.rs"]
mod stub_instance;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use stub_instance::{Flavour, StubInstance};

const PASSWORD: &str = "correct horse battery staple";
const WRONG_PASSWORD: &str = "not the right password at all";
/// Rocket's defaults: `shutdown.grace` and `shutdown.mercy`, in seconds.
const SHUTDOWN_GRACE: u64 = 2;
const SHUTDOWN_MERCY: u64 = 3;
const STARTUP_LIMIT: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Databases
// ---------------------------------------------------------------------------------------------

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}

fn hex_suffix() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `secret_key` and `token_key` for one test's processes: fresh random ones, shared by every
/// instance of the test (as a deployment shares them).
#[derive(Clone)]
struct Keys {
    secret_key: String,
    token_key: String,
}

impl Keys {
    fn random() -> Keys {
        use base64::Engine as _;
        use rand::RngCore;
        let key = || {
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            base64::engine::general_purpose::STANDARD.encode(bytes)
        };
        Keys {
            secret_key: key(),
            token_key: key(),
        }
    }
}

/// The database one test's processes share: a temp SQLite file, or a fresh schema on the
/// PostgreSQL at `TETHER_TEST_POSTGRES_URL` (dropped again when this drops).
enum TestDb {
    Sqlite {
        url: String,
        _dir: TempDir,
    },
    Postgres {
        url: String,
        base: String,
        schema: String,
    },
}

impl TestDb {
    fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("tether.db").display()
        );
        TestDb::Sqlite { url, _dir: dir }
    }

    /// `None` (skip) when PostgreSQL is not configured, unless `TETHER_REQUIRE_POSTGRES` is set.
    fn postgres() -> Option<TestDb> {
        let Ok(base) = std::env::var("TETHER_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var_os("TETHER_REQUIRE_POSTGRES").is_none(),
                "TETHER_REQUIRE_POSTGRES is set but TETHER_TEST_POSTGRES_URL is not"
            );
            println!("note: TETHER_TEST_POSTGRES_URL is not set; PostgreSQL test skipped");
            return None;
        };
        let schema = format!("tether_test_{}", hex_suffix());
        block_on(async {
            let admin = sqlx::PgPool::connect(&base)
                .await
                .expect("PostgreSQL at TETHER_TEST_POSTGRES_URL answers");
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&admin)
                .await
                .expect("create test schema");
            admin.close().await;
        });
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
        Some(TestDb::Postgres { url, base, schema })
    }

    fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } => url,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { base, schema, .. } = self {
            let (base, schema) = (base.clone(), schema.clone());
            // A thread of its own, in case this drop runs while a panic unwinds in a runtime.
            let _ = std::thread::spawn(move || {
                block_on(async move {
                    if let Ok(pool) = sqlx::PgPool::connect(&base).await {
                        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                            .execute(&pool)
                            .await;
                        pool.close().await;
                    }
                })
            })
            .join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// One `tether` process; killed (and reaped) on drop.
struct Tether {
    child: Child,
    port: u16,
    output: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    exit: Option<ExitStatus>,
    _dir: TempDir,
}

fn capture(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut out = into.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
        }
    })
}

impl Tether {
    /// Starts `tether serve` with `ROCKET_DATABASES=database` on a free port; does not wait.
    fn spawn(database: &str, keys: &Keys, log_level: &str) -> Tether {
        Tether::spawn_with(database, keys, log_level, &[])
    }

    /// `spawn`, with more `ROCKET_*` variables.
    fn spawn_with(database: &str, keys: &Keys, log_level: &str, env: &[(&str, String)]) -> Tether {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
            .arg("serve")
            // A directory of its own: no Rocket.toml, nothing written into the checkout.
            .current_dir(dir.path())
            .env_remove("ROCKET_PROFILE")
            .env_remove("ROCKET_CONFIG")
            .env("ROCKET_PORT", port.to_string())
            .env("ROCKET_ADDRESS", "127.0.0.1")
            .env("ROCKET_DATA_DIR", dir.path().join("data"))
            .env("ROCKET_TEMPLATE_DIR", &templates)
            .env("ROCKET_DATABASES", database)
            .env("ROCKET_SECRET_KEY", &keys.secret_key)
            .env("ROCKET_TOKEN_KEY", &keys.token_key)
            .env("ROCKET_LOG_LEVEL", log_level)
            .env("ROCKET_CLI_COLORS", "false")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the tether binary starts");
        let output = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            capture(child.stdout.take().expect("stdout"), output.clone()),
            capture(child.stderr.take().expect("stderr"), output.clone()),
        ];
        Tether {
            child,
            port,
            output,
            readers,
            exit: None,
            _dir: dir,
        }
    }

    /// Starts `tether serve` on `url` and waits (bounded) until `/healthz` answers 200.
    fn start(url: &str, keys: &Keys) -> Tether {
        let mut tether = Tether::spawn(&databases(url, None), keys, "normal");
        tether.wait_healthy();
        tether
    }

    /// `start`, allowed to call the stub `instance` (`outbound_allow_private`).
    fn start_calling(url: &str, keys: &Keys, instance: &StubInstance) -> Tether {
        let allow = format!("[\"{}\"]", instance.host_port());
        let env = [("ROCKET_OUTBOUND_ALLOW_PRIVATE", allow)];
        let mut tether = Tether::spawn_with(&databases(url, None), keys, "normal", &env);
        tether.wait_healthy();
        tether
    }

    /// Polls `GET /healthz` until it answers 200; fails at once if the process exits instead.
    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + STARTUP_LIMIT;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            if let Some(status) = self.wait_exit(Duration::ZERO) {
                panic!(
                    "tether on port {} exited ({status}) instead of serving; its output:\n{}",
                    self.port,
                    self.output()
                );
            }
            match http(
                self.port,
                b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
            ) {
                Ok(res) if res.status == 200 => return,
                Ok(res) => last = format!("{} {}", res.status, res.body),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "tether on port {} did not answer GET /healthz with 200 within {STARTUP_LIMIT:?} \
             (last: {last}); its output:\n{}",
            self.port,
            self.output()
        );
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stdout and stderr so far, interleaved by line.
    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Waits up to `limit` for the process to exit; its status, or `None` if it is still running.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.exit = Some(status);
                // The pipes close with the process: collect the rest of its output (bounded,
                // in case something else still holds them).
                let until = Instant::now() + Duration::from_secs(5);
                while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tether {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `ROCKET_DATABASES` value for `url`.
fn databases(url: &str, connect_timeout: Option<u64>) -> String {
    match connect_timeout {
        Some(t) => format!("{{tether={{url=\"{url}\", connect_timeout={t}}}}}"),
        None => format!("{{tether={{url=\"{url}\"}}}}"),
    }
}

// ---------------------------------------------------------------------------------------------
// A tiny HTTP/1.1 client and a cookie-keeping browser
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn location(&self) -> Option<&str> {
        self.header("Location")
    }

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
        let location = self.location().unwrap_or("");
        let body: String = self.body.chars().take(300).collect();
        format!("{} {location} {body}", self.status)
    }
}

/// Sends `request` (a complete HTTP/1.1 request with `Connection: close`) and reads the answer.
fn http(port: u16, request: &[u8]) -> std::io::Result<Response> {
    let stream = send(port, request)?;
    receive(stream)
}

fn send(port: u16, request: &[u8]) -> std::io::Result<TcpStream> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(5))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(request)?;
    stream.flush()?;
    Ok(stream)
}

fn receive(mut stream: TcpStream) -> std::io::Result<Response> {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            invalid(format!(
                "connection closed before a complete response ({} bytes: {:?})",
                raw.len(),
                String::from_utf8_lossy(raw)
            ))
        })?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("Transfer-Encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| invalid("truncated chunk size".into()))?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| invalid(format!("bad chunk size {size_text:?}")))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            return Err(invalid("truncated chunk".into()));
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

fn form_encode(fields: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
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
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A cookie jar. Any browser can talk to any instance: pass the instance with each request.
#[derive(Clone, Default)]
struct Browser {
    jar: HashMap<String, String>,
}

impl Browser {
    fn build(
        &self,
        port: u16,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Vec<u8> {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
             User-Agent: tether-process-test\r\nContent-Length: {}\r\n",
            body.len()
        );
        if !self.jar.is_empty() {
            let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            request.push_str(&format!("Cookie: {}\r\n", cookies.join("; ")));
        }
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        request.into_bytes()
    }

    /// Keeps what `Set-Cookie` says, as a browser would (an empty value or `Max-Age=0` removes).
    fn absorb(&mut self, res: &Response) {
        for (name, value) in &res.headers {
            if !name.eq_ignore_ascii_case("Set-Cookie") {
                continue;
            }
            let mut parts = value.split(';');
            let Some((cookie, content)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let expired = parts.any(|a| a.trim().eq_ignore_ascii_case("Max-Age=0"));
            if content.is_empty() || expired {
                self.jar.remove(cookie.trim());
            } else {
                self.jar
                    .insert(cookie.trim().to_string(), content.trim().to_string());
            }
        }
    }

    fn request(
        &mut self,
        to: &Tether,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        let request = self.build(to.port, method, path, headers, body);
        let res = http(to.port, &request).unwrap_or_else(|e| {
            panic!(
                "{method} {path} on port {}: {e}; tether's output:\n{}",
                to.port,
                to.output()
            )
        });
        self.absorb(&res);
        res
    }

    fn get(&mut self, to: &Tether, path: &str) -> Response {
        self.request(to, "GET", path, &[], "")
    }

    fn post_form(&mut self, to: &Tether, path: &str, fields: &[(&str, &str)]) -> Response {
        let content_type = [("Content-Type", "application/x-www-form-urlencoded")];
        self.request(to, "POST", path, &content_type, &form_encode(fields))
    }

    fn post_json(&mut self, to: &Tether, path: &str, body: &Value, csrf: &str) -> Response {
        let headers = [("Content-Type", "application/json"), ("X-CSRF-Token", csrf)];
        self.request(to, "POST", path, &headers, &body.to_string())
    }

    /// Submits a form the way its page would: fetches `page` for the CSRF token, then posts.
    fn submit(
        &mut self,
        to: &Tether,
        page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> Response {
        let token = self.get(to, page).csrf_token();
        let mut all = fields.to_vec();
        all.push(("csrf_token", &token));
        self.post_form(to, action, &all)
    }

    fn register(&mut self, to: &Tether, username: &str) {
        let email = format!("{username}@example.com");
        let res = self.submit(
            to,
            "/register",
            "/register",
            &[
                ("username", username),
                ("email", &email),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        );
        assert_eq!(res.status, 303, "register {username}: {}", res.summary());
    }

    fn login(&mut self, to: &Tether, username: &str, password: &str) -> Response {
        self.submit(
            to,
            "/login",
            "/login",
            &[("username", username), ("password", password)],
        )
    }

    /// Connects a Mastodon account on `instance` with a token it accepts; returns its id.
    fn add_platform(&mut self, to: &Tether, instance: &StubInstance, name: &str) -> i64 {
        let username = name.to_lowercase().replace(' ', "_");
        let token = instance.new_token(&username);
        let res = self.submit(
            to,
            "/platforms/new",
            "/platforms",
            &[
                ("name", name),
                ("platform_type", "mastodon"),
                ("instance_url", &instance.origin()),
                ("username", &username),
                ("access_token", &token),
            ],
        );
        assert_eq!(res.status, 303, "add platform {name}: {}", res.summary());
        let list = self.get(to, "/api/platforms").json();
        list["platforms"]
            .as_array()
            .expect("platforms array")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no platform {name} in {list}"))["id"]
            .as_i64()
            .expect("platform id")
    }
}

// ---------------------------------------------------------------------------------------------
// SIGTERM during logins
// ---------------------------------------------------------------------------------------------

/// What one login of the burst got, and when.
struct Answer {
    label: String,
    expected: u16,
    result: std::io::Result<Response>,
    at: Instant,
}

fn sigterm_during_logins(db: &TestDb) {
    let mut tether = Tether::start(db.url(), &Keys::random());
    let mut setup = Browser::default();
    setup.register(&tether, "alice");
    let mut setup = Browser::default();
    setup.register(&tether, "bob");

    // Eight visitors with their login forms open: four right passwords for alice, four wrong
    // ones for bob (fewer than the throttle's five, so none of them is refused for that).
    let mut prepared = Vec::new();
    for i in 0..8 {
        let mut visitor = Browser::default();
        let token = visitor.get(&tether, "/login").csrf_token();
        let (user, password, expected) = if i % 2 == 0 {
            ("alice", PASSWORD, 303)
        } else {
            ("bob", WRONG_PASSWORD, 401)
        };
        let body = form_encode(&[
            ("username", user),
            ("password", password),
            ("csrf_token", &token),
        ]);
        let content_type = [("Content-Type", "application/x-www-form-urlencoded")];
        let request = visitor.build(tether.port, "POST", "/login", &content_type, &body);
        prepared.push((format!("login #{i} as {user}"), expected, request));
    }

    let (sent_tx, sent_rx) = mpsc::channel::<()>();
    let port = tether.port;
    let workers: Vec<JoinHandle<Answer>> = prepared
        .into_iter()
        .map(|(label, expected, request)| {
            let sent_tx = sent_tx.clone();
            std::thread::spawn(move || {
                let result = send(port, &request).and_then(|stream| {
                    let _ = sent_tx.send(());
                    receive(stream)
                });
                Answer {
                    label,
                    expected,
                    result,
                    at: Instant::now(),
                }
            })
        })
        .collect();
    drop(sent_tx);
    let mut sent = 0;
    while sent < workers.len() && sent_rx.recv_timeout(IO_TIMEOUT).is_ok() {
        sent += 1;
    }
    // Every request has been written; give tether a moment to read them and start hashing.
    std::thread::sleep(Duration::from_millis(20));
    let signalled = Instant::now();
    tether.signal("TERM");

    let answers: Vec<Answer> = workers
        .into_iter()
        .map(|w| w.join().expect("login thread"))
        .collect();
    let limit = Duration::from_secs(SHUTDOWN_GRACE + SHUTDOWN_MERCY + 3);
    let exit = tether.wait_exit(limit);
    let exited_after = signalled.elapsed();

    let report: Vec<String> = answers
        .iter()
        .map(|a| {
            let when = if a.at > signalled {
                format!("{:?} after SIGTERM", a.at - signalled)
            } else {
                "before SIGTERM".to_string()
            };
            match &a.result {
                Ok(res) => format!(
                    "{} (want {}): {} {} [{when}]",
                    a.label,
                    a.expected,
                    res.status,
                    res.location().unwrap_or("")
                ),
                Err(e) => format!("{} (want {}): no answer: {e} [{when}]", a.label, a.expected),
            }
        })
        .collect();
    let context = format!(
        "{sent} of {} logins were sent before SIGTERM; answers:\n  {}\nexit: {exit:?} after \
         {exited_after:?}\ntether's output:\n{}",
        answers.len(),
        report.join("\n  "),
        tether.output()
    );

    assert_eq!(sent, answers.len(), "not every login was sent: {context}");
    assert!(
        answers.iter().any(|a| a.at > signalled),
        "every login was answered before SIGTERM was sent, so none was in flight; this run \
         proves nothing: {context}"
    );
    let wrong: Vec<&String> = answers
        .iter()
        .zip(&report)
        .filter(|(a, _)| !matches!(&a.result, Ok(res) if res.status == a.expected))
        .map(|(_, line)| line)
        .collect();
    assert!(
        wrong.is_empty(),
        "requests in flight at SIGTERM must finish with their normal answer (303 for the right \
         password, 401 for a wrong one), but {} did not: {wrong:?}\n{context}",
        wrong.len()
    );
    let status = exit.unwrap_or_else(|| {
        panic!("tether was still running {limit:?} after SIGTERM (grace + mercy + 3 s): {context}")
    });
    assert!(
        status.success(),
        "tether must exit with status 0 after a graceful SIGTERM, got {status}: {context}"
    );
}

mod sigterm_lets_in_flight_requests_finish_and_exits_zero {
    use super::*;

    #[test]
    fn sqlite() {
        sigterm_during_logins(&TestDb::sqlite());
    }

    #[test]
    fn postgres() {
        if let Some(db) = TestDb::postgres() {
            sigterm_during_logins(&db);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// An unreachable database at start-up
// ---------------------------------------------------------------------------------------------

#[test]
fn unreachable_database_at_start_prints_one_clear_line_and_exits_nonzero() {
    let closed = free_port();
    // A password in the URL too: whatever the message says, it must not print that.
    let url = format!("postgres://postgres:pw-must-not-leak@127.0.0.1:{closed}/x");
    let started = Instant::now();
    let mut tether = Tether::spawn(&databases(&url, Some(1)), &Keys::random(), "normal");
    let limit = Duration::from_secs(60);
    let exit = tether.wait_exit(limit);
    let elapsed = started.elapsed();
    let output = tether.output();
    let shown = format!("exit {exit:?} after {elapsed:?}; output:\n{output}");

    let status = exit.unwrap_or_else(|| {
        panic!("tether was still running {limit:?} after start with no database: {shown}")
    });
    assert!(
        !status.success(),
        "tether must exit non-zero when its database is unreachable: {shown}"
    );
    assert!(
        !output.contains("pw-must-not-leak"),
        "the database password appears in the output: {shown}"
    );
    for internal in [
        "Attempted to fetch unattached database",
        "fairing must be attached",
    ] {
        assert!(
            !output.contains(internal),
            "the output contains Rocket's internal text {internal:?}, which tells an operator \
             nothing about the real problem: {shown}"
        );
    }
    let about_database: Vec<&str> = output
        .lines()
        .filter(|line| {
            let line = line.to_lowercase();
            ["database", "pool", "connect", "refused"]
                .iter()
                .any(|word| line.contains(word))
        })
        .collect();
    assert_eq!(
        about_database.len(),
        1,
        "exactly one line should report the database error, found {}: {about_database:#?}\n\
         {shown}",
        about_database.len()
    );
    let line = about_database[0];
    assert!(
        line.contains("databases.tether.url"),
        "the database error should name the setting to check, `databases.tether.url`: {line:?}\n\
         {shown}"
    );
    assert!(
        line.replace("databases.tether.url", "").contains("tether"),
        "the database error should name the database, `tether`: {line:?}\n{shown}"
    );
}

// ---------------------------------------------------------------------------------------------
// Two instances, one PostgreSQL
// ---------------------------------------------------------------------------------------------

#[test]
fn two_instances_share_sessions_switches_logouts_and_throttling() {
    let Some(db) = TestDb::postgres() else { return };
    // One after the other, so the second finds the migrations applied.
    let keys = Keys::random();
    let mastodon = StubInstance::builder(Flavour::Mastodon43).start_blocking();
    let a = Tether::start_calling(db.url(), &keys, &mastodon);
    let b = Tether::start_calling(db.url(), &keys, &mastodon);

    let mut browser = Browser::default();
    browser.register(&a, "carol");
    let first = browser.add_platform(&a, &mastodon, "Carol main");
    let second = browser.add_platform(&a, &mastodon, "Carol art");
    let before = browser.get(&a, "/api/platforms").json();
    assert_eq!(
        before["active_platform_id"],
        json!(first),
        "the first platform is active at first: {before}"
    );

    // The same cookie on B.
    let dashboard = browser.get(&b, "/dashboard");
    assert_eq!(
        dashboard.status,
        200,
        "a session made on A is valid on B: {}",
        dashboard.summary()
    );
    assert!(
        dashboard
            .body
            .contains("<span class=\"site-header__user\">carol</span>"),
        "B's dashboard shows the user signed in on A: {}",
        dashboard.body
    );

    let csrf = dashboard.csrf_token();
    let switched = browser.post_json(
        &b,
        "/api/switch_platform",
        &json!({ "platform_id": second }),
        &csrf,
    );
    assert_eq!(
        switched.status,
        200,
        "switch platform on B: {}",
        switched.summary()
    );
    let after = browser.get(&a, "/api/platforms").json();
    assert_eq!(
        after["active_platform_id"],
        json!(second),
        "a switch made on B is what A shows: {after}"
    );

    // Logout on B ends the session A sees: A gets the cookie as it was before the logout.
    let on_a = browser.get(&a, "/dashboard");
    assert_eq!(
        on_a.status,
        200,
        "before the logout the cookie works on A: {}",
        on_a.summary()
    );
    let signed_in = browser.clone();
    let logout = browser.submit(&b, "/dashboard", "/logout", &[]);
    assert_eq!(logout.status, 303, "logout on B: {}", logout.summary());
    assert_eq!(logout.location(), Some("/login"), "{}", logout.summary());
    let mut old_cookie = signed_in;
    let on_a = old_cookie.get(&a, "/dashboard");
    assert_eq!(
        on_a.status,
        303,
        "after logout on B, the old cookie on A must be sent to log in: {}",
        on_a.summary()
    );
    assert!(
        on_a.location().is_some_and(|l| l.starts_with("/login")),
        "after logout on B, A redirects the old cookie to /login: {}",
        on_a.summary()
    );

    // Failed logins count across instances: five failures (three on A, two on B) lock the
    // username, so a sixth guess on B is refused, and so is the right password on either.
    let mut guesser = Browser::default();
    for (n, instance) in [(1, &a), (2, &a), (3, &a), (4, &b), (5, &b)] {
        let res = guesser.login(instance, "carol", WRONG_PASSWORD);
        assert_eq!(
            res.status,
            401,
            "failed login {n} of 5 (limit 5) is refused as a wrong password: {}",
            res.summary()
        );
    }
    let sixth = guesser.login(&b, "carol", WRONG_PASSWORD);
    assert_eq!(
        sixth.status,
        429,
        "the sixth failed login (3 on A, 3rd on B) is throttled: {}",
        sixth.summary()
    );
    for (name, instance) in [("A", &a), ("B", &b)] {
        let res = Browser::default().login(instance, "carol", PASSWORD);
        assert_eq!(
            res.status,
            429,
            "after 6 failed logins across both instances, the right password on {name} is \
             still throttled: {}",
            res.summary()
        );
    }
}
