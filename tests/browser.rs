//! "Connect with your instance" in a real browser: Debian's headless Chromium, driven through
//! chromedriver (WebDriver: JSON over HTTP, spoken here with a tiny client over `TcpStream`).
//!
//! A browser checks a form's submission *and every redirect after it* against the page's CSP
//! `form-action`. The connect form posts to tether, which answers 303 to the instance's
//! `/oauth/authorize`, which sends the browser back to tether's callback. Nothing but a browser
//! enforces that, so only a browser can show the flow is not blocked.
//!
//! This file proves that:
//! - a person can register, type a (stub, plain-http, allow-listed) instance into the connect
//!   form, press "Connect with your instance" and end up on tether's dashboard with the account
//!   connected: the browser itself followed tether's 303 to the instance and the instance's 302
//!   back, the instance received a PKCE token exchange whose verifier matches the challenge the
//!   browser carried, and the browser logged no CSP violation on the way; then, in the same
//!   browser, the alt-text audit: a scan started from the page finishes on it (the script polls
//!   `/api/audit`, tether's background worker does the work), the character count follows
//!   typing, and a published description shows as published without the person reloading;
//! - the same browser really enforces `form-action` on that redirect (the negative control): a
//!   page of the test's own whose form posts to its own server, which 303s to the instance, does
//!   not get the browser to the instance under `form-action 'self'` nor under tether's policy
//!   without the allow-listed entry (`'self' https:`), and the browser logs the violation; with
//!   the entry added, the same page and server do reach the instance. So the first test would
//!   fail if tether's connect page did not send `http://<allow-listed host:port>`.
//!
//! Everything listens on loopback ports only. Without `/usr/bin/chromium` and
//! `/usr/bin/chromedriver` (Debian: `apt-get install chromium chromium-driver`) the tests print a
//! note and pass, unless `TETHER_REQUIRE_BROWSER` is set. chromedriver, Chromium and tether are
//! killed when their guards drop, and every wait is bounded.

#[path = "common/serve.rs"]
mod serve;
#[path = "common/stub_instance.rs"]
mod stub_instance;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use stub_instance::{Flavour, StubInstance};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PASSWORD: &str = "correct horse battery staple";
/// How long tether and chromedriver may take to start answering.
const STARTUP_LIMIT: Duration = Duration::from_secs(20);
/// One WebDriver command (a navigation waits for the page load, itself limited to 20 s).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(45);
/// From "Connect with your instance" to tether's dashboard.
const CONNECT_LIMIT: Duration = Duration::from_secs(15);
/// Any other wait for the browser (a page to appear, a log line, a request to arrive).
const WAIT_LIMIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

/// Whether the browser tests can run here. Without Chromium or chromedriver: a note and `false`,
/// or a failure when `TETHER_REQUIRE_BROWSER` is set (as in CI).
fn browser_available() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("TETHER_REQUIRE_BROWSER").is_none(),
        "TETHER_REQUIRE_BROWSER is set but {} missing (apt-get install chromium chromium-driver)",
        missing.join(" and ")
    );
    println!(
        "note: {} missing (apt-get install chromium chromium-driver); browser test skipped",
        missing.join(" and ")
    );
    false
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

fn wait_until<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------------------------
// A tiny HTTP/1.1 client (for chromedriver and tether's /healthz)
// ---------------------------------------------------------------------------------------------

struct Reply {
    status: u16,
    body: String,
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// One request on a fresh connection (`Connection: close`); a POST without a body sends `{}`, as
/// WebDriver wants.
fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> std::io::Result<Reply> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(5),
    )?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let body = match (method, body) {
        (_, Some(body)) => body.to_string(),
        ("POST", None) => "{}".to_string(),
        _ => String::new(),
    };
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Accept: application/json\r\n"
    );
    if !body.is_empty() {
        request.push_str(&format!(
            "Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes())?;
    stream.flush()?;
    read_reply(&mut stream, deadline)
}

/// Reads one response: to its `Content-Length`, to the end of its chunks, or to EOF.
fn read_reply(stream: &mut TcpStream, deadline: Instant) -> std::io::Result<Reply> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(reply) = complete_reply(&raw, false)? {
            return Ok(reply);
        }
        if Instant::now() >= deadline {
            return Err(invalid("response not complete in time".into()));
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return complete_reply(&raw, true)?.ok_or_else(|| {
                invalid(format!(
                    "connection closed before a complete response: {:?}",
                    String::from_utf8_lossy(&raw)
                ))
            });
        }
        raw.extend_from_slice(&buf[..n]);
    }
}

/// The response in `raw` if it is all there (`eof`: nothing more will come).
fn complete_reply(raw: &[u8], eof: bool) -> std::io::Result<Option<Reply>> {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
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
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let rest = &raw[split + 4..];
    let body = if let Some(length) = header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| invalid(format!("bad Content-Length {length:?}")))?;
        (rest.len() >= length).then(|| rest[..length].to_vec())
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(rest)
    } else {
        eof.then(|| rest.to_vec())
    };
    Ok(body.map(|body| Reply {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    }))
}

/// The body of a chunked message, or `None` while it is incomplete.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

// ---------------------------------------------------------------------------------------------
// tether
// ---------------------------------------------------------------------------------------------

/// A `tether serve` process on a fresh SQLite file and a free loopback port, allowed to call the
/// instance at `allow_private` (`127.0.0.1:PORT`); killed on drop.
struct Tether {
    child: Child,
    port: u16,
    output: Arc<Mutex<String>>,
    _dir: TempDir,
}

fn capture(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut out = into.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
        }
    });
}

impl Tether {
    fn start(allow_private: &str) -> Tether {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut child = serve::tether_serve(dir.path(), port, allow_private)
            .env("ROCKET_LOG_LEVEL", "normal")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the tether binary starts");
        let output = Arc::new(Mutex::new(String::new()));
        capture(child.stdout.take().expect("stdout"), output.clone());
        capture(child.stderr.take().expect("stderr"), output.clone());
        let mut tether = Tether {
            child,
            port,
            output,
            _dir: dir,
        };
        tether.wait_healthy();
        tether
    }

    fn wait_healthy(&mut self) {
        let mut last = String::from("no answer yet");
        let healthy = wait_until(STARTUP_LIMIT, || {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "tether exited ({status}) instead of serving; its output:\n{}",
                    self.output()
                );
            }
            match http(self.port, "GET", "/healthz", None, Duration::from_secs(5)) {
                Ok(reply) if reply.status == 200 => Some(()),
                Ok(reply) => {
                    last = format!("{} {}", reply.status, reply.body);
                    None
                }
                Err(e) => {
                    last = e.to_string();
                    None
                }
            }
        });
        assert!(
            healthy.is_some(),
            "tether did not answer GET /healthz within {STARTUP_LIMIT:?} (last: {last}); its \
             output:\n{}",
            self.output()
        );
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for Tether {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The browser: chromedriver and one headless Chromium session
// ---------------------------------------------------------------------------------------------

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver on a free loopback port with one Chromium session. On drop: `DELETE` the session
/// (Chromium quits), kill chromedriver, then kill any process still using this session's profile
/// directory (by pid; only this session's Chromium has that directory on its command line).
struct Browser {
    driver: Child,
    port: u16,
    session: Option<String>,
    /// Every browser log line read so far (reading empties chromedriver's buffer).
    log: Vec<String>,
    profile: PathBuf,
    /// Holds the profile and chromedriver's log; removed after everything above is gone.
    dir: TempDir,
}

impl Browser {
    fn start() -> Browser {
        let dir = tempfile::tempdir().expect("temp dir");
        let profile = dir.path().join("profile");
        std::fs::create_dir(&profile).expect("profile dir");
        let port = free_port();
        let driver_log = std::fs::File::create(dir.path().join("chromedriver.log"))
            .expect("chromedriver log file");
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(driver_log.try_clone().expect("log file handle"))
            .stderr(driver_log)
            .spawn()
            .expect("chromedriver starts");
        let mut browser = Browser {
            driver,
            port,
            session: None,
            log: Vec::new(),
            profile,
            dir,
        };
        browser.wait_ready();
        browser.create_session();
        browser
    }

    fn driver_output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let ready = wait_until(STARTUP_LIMIT, || {
            if let Some(status) = self.driver.try_wait().expect("try_wait") {
                panic!(
                    "chromedriver exited ({status}); its output:\n{}",
                    self.driver_output()
                );
            }
            let reply = http(self.port, "GET", "/status", None, Duration::from_secs(5)).ok()?;
            let status: Value = serde_json::from_str(&reply.body).ok()?;
            (status["value"]["ready"] == true).then_some(())
        });
        assert!(
            ready.is_some(),
            "chromedriver not ready within {STARTUP_LIMIT:?}; its output:\n{}",
            self.driver_output()
        );
    }

    fn create_session(&mut self) {
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": { "implicit": 0, "pageLoad": 20_000, "script": 10_000 },
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--disable-quic",
                            "--no-first-run",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--disable-sync",
                            format!("--user-data-dir={}", self.profile.display()),
                        ],
                    },
                    "goog:loggingPrefs": { "browser": "ALL" },
                }
            }
        });
        let reply = http(
            self.port,
            "POST",
            "/session",
            Some(&capabilities),
            COMMAND_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("POST /session: {e}"));
        let answer: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
        let Some(id) = answer["value"]["sessionId"].as_str() else {
            panic!(
                "chromedriver did not start a session: {} {}; its output:\n{}",
                reply.status,
                reply.body,
                self.driver_output()
            );
        };
        self.session = Some(id.to_string());
    }

    /// One command in the session; its `value`, or the WebDriver error.
    fn call(&self, method: &str, command: &str, body: Option<Value>) -> Result<Value, String> {
        let session = self.session.as_deref().expect("a session");
        let path = format!("/session/{session}{command}");
        let reply = http(self.port, method, &path, body.as_ref(), COMMAND_TIMEOUT)
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let answer: Value = serde_json::from_str(&reply.body)
            .map_err(|e| format!("{method} {path}: not JSON ({e}): {}", reply.body))?;
        if reply.status == 200 {
            Ok(answer["value"].clone())
        } else {
            Err(format!(
                "{method} {path}: {} {}: {}",
                reply.status, answer["value"]["error"], answer["value"]["message"]
            ))
        }
    }

    fn command(&self, method: &str, command: &str, body: Option<Value>) -> Value {
        self.call(method, command, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Navigates and waits for the page to load.
    fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    fn current_url(&self) -> String {
        match self.call("GET", "/url", None) {
            Ok(Value::String(url)) => url,
            Ok(other) => format!("(not a string: {other})"),
            Err(e) => format!("(unknown: {e})"),
        }
    }

    /// The element `selector` (`using`: "css selector" or "xpath") finds, waiting for it.
    fn find(&self, using: &str, selector: &str) -> String {
        let mut last = String::new();
        let found = wait_until(WAIT_LIMIT, || {
            let body = json!({ "using": using, "value": selector });
            match self.call("POST", "/element", Some(body)) {
                Ok(element) => element[ELEMENT].as_str().map(str::to_string),
                Err(e) => {
                    last = e;
                    None
                }
            }
        });
        found.unwrap_or_else(|| {
            panic!(
                "no element {selector:?} on {} within {WAIT_LIMIT:?} ({last})",
                self.current_url()
            )
        })
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.find("css selector", css);
        self.command(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn click(&self, using: &str, selector: &str) {
        let element = self.find(using, selector);
        self.command("POST", &format!("/element/{element}/click"), None);
    }

    /// What the page shows (`innerText` of `<body>`).
    fn text(&self) -> String {
        let body = self.find("css selector", "body");
        match self.call("GET", &format!("/element/{body}/text"), None) {
            Ok(Value::String(text)) => text,
            Ok(other) => other.to_string(),
            Err(e) => format!("(no text: {e})"),
        }
    }

    /// Reads the browser log lines that arrived since the last read, keeps them, returns them.
    fn read_log(&mut self) -> Vec<String> {
        let entries = self
            .call("POST", "/se/log", Some(json!({ "type": "browser" })))
            .unwrap_or_else(|e| panic!("reading the browser log: {e}"));
        let lines: Vec<String> = entries
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                format!(
                    "{} [{}] {}",
                    e["level"].as_str().unwrap_or("?"),
                    e["source"].as_str().unwrap_or("?"),
                    e["message"].as_str().unwrap_or_default()
                )
            })
            .collect();
        self.log.extend(lines.iter().cloned());
        lines
    }

    /// The page, the address and the log, for a failure message.
    fn describe(&mut self) -> String {
        self.read_log();
        let text: String = self.text().chars().take(2000).collect();
        format!(
            "browser at {}\n--- page text ---\n{text}\n--- browser log ---\n{}",
            self.current_url(),
            self.log.join("\n")
        )
    }
}

fn is_csp_violation(line: &str) -> bool {
    line.contains("Content Security Policy") || line.contains("form-action")
}

/// Kills (by pid) every process whose command line contains `marker`.
fn kill_processes_using(marker: &str) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let path = format!("/session/{session}");
            let _ = http(self.port, "DELETE", &path, None, Duration::from_secs(15));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // Normally nothing is left; if the DELETE failed, Chromium would outlive its driver.
        kill_processes_using(&format!("--user-data-dir={}", self.profile.display()));
    }
}

// ---------------------------------------------------------------------------------------------
// The negative control's own little web server
// ---------------------------------------------------------------------------------------------

/// A page at `/form/<variant>` with a form posting to `/go` and its own `form-action` policy,
/// and `/go` answering 303 to the stub instance's `/oauth/authorize`, as tether's connect does.
/// Records each request as `METHOD /path`. Stops on drop.
struct PolicyPage {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PolicyPage {
    /// `variants`: (name, `form-action` sources) pairs; `authorize`: where `/go` redirects.
    fn start(variants: Vec<(&'static str, String)>, authorize: String) -> PolicyPage {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_seen, thread_stop) = (seen.clone(), stop.clone());
        let variants = Arc::new(variants);
        let thread = std::thread::spawn(move || {
            while !thread_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (seen, variants) = (thread_seen.clone(), variants.clone());
                        let authorize = authorize.clone();
                        // A thread each: a browser's idle preconnection must not hold up others.
                        std::thread::spawn(move || {
                            let _ = serve_policy_page(stream, &variants, &authorize, &seen);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        PolicyPage {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn count(&self, request: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| *r == request)
            .count()
    }
}

impl Drop for PolicyPage {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve_policy_page(
    mut stream: TcpStream,
    variants: &[(&'static str, String)],
    authorize: &str,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 || raw.len() > 64 * 1024 {
            return Ok(());
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut words = head.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while raw.len() < head_end + 4 + length {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let path = target.split('?').next().unwrap_or("");
    seen.lock().unwrap().push(format!("{method} {path}"));
    let variant = path
        .strip_prefix("/form/")
        .and_then(|name| variants.iter().find(|(n, _)| *n == name));
    let response = match (method, path, variant) {
        ("GET", _, Some((name, sources))) => {
            let page = format!(
                "<!doctype html><html><head><title>{name}</title></head><body>\
                 <form method=\"post\" action=\"/go\"><input type=\"hidden\" name=\"x\" \
                 value=\"1\"><button type=\"submit\" id=\"go\">Go</button></form></body></html>"
            );
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Security-Policy: default-src 'self'; form-action {sources}\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            )
        }
        ("POST", "/go", _) => format!(
            "HTTP/1.1 303 See Other\r\nLocation: {authorize}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        ),
        _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
    };
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[test]
fn connect_with_instance_completes_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let started = Instant::now();
    let stub = StubInstance::builder(Flavour::Mastodon43)
        .with_account("wanda", "Wanda Stub")
        .start_blocking();
    let tether = Tether::start(&stub.host_port());
    let mut browser = Browser::start();
    let base = tether.origin();
    let dashboard = format!("{base}/dashboard");
    let requests = |stub: &StubInstance| {
        stub.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>()
            .join("\n")
    };

    browser.goto(&format!("{base}/register"));
    browser.type_into("#username", "browser_user");
    browser.type_into("#email", "browser_user@example.com");
    browser.type_into("#password", PASSWORD);
    browser.type_into("#password_confirm", PASSWORD);
    browser.click(
        "css selector",
        "form[action=\"/register\"] button[type=\"submit\"]",
    );
    // A new account has no platform yet: the dashboard sends it on to the connect page.
    let setup = format!("{base}/platforms/new");
    if wait_until(WAIT_LIMIT, || {
        (browser.current_url() == setup).then_some(())
    })
    .is_none()
    {
        panic!(
            "registering did not land on {setup}\n{}\n--- tether ---\n{}",
            browser.describe(),
            tether.output()
        );
    }

    browser.goto(&format!("{base}/platforms/new"));
    browser.type_into("#instance", &stub.origin());
    browser.click(
        "xpath",
        "//button[normalize-space()='Connect with your instance']",
    );
    // Back on the dashboard, or (at once) a form-action refusal in the log.
    let outcome = wait_until(CONNECT_LIMIT, || {
        if browser.current_url() == dashboard {
            return Some(Ok(()));
        }
        let refused = browser
            .read_log()
            .into_iter()
            .find(|l| l.contains("form-action"));
        refused.map(Err)
    });
    if outcome != Some(Ok(())) {
        let why = match outcome {
            Some(Err(refusal)) => format!("the browser refused: {refusal}"),
            _ => format!("not back on {dashboard} within {CONNECT_LIMIT:?}"),
        };
        panic!(
            "connecting failed, {why}\n{}\n\
             --- stub requests ---\n{}\n--- tether ---\n{}",
            browser.describe(),
            requests(&stub),
            tether.output()
        );
    }

    let text = browser.text();
    assert!(
        text.contains("Connected @wanda@127.0.0.1."),
        "no \"Connected @wanda@…\" on the dashboard:\n{}",
        browser.describe()
    );
    assert!(text.contains("wanda"), "{}", browser.describe());

    // The browser, not tether, went to the instance and carried tether's S256 challenge...
    assert_eq!(stub.count("/oauth/authorize"), 1, "{}", requests(&stub));
    let authorize = stub.last_request("/oauth/authorize").expect("authorize");
    let user_agent = authorize.header("user-agent").unwrap_or_default();
    assert!(
        user_agent.contains("Chrome"),
        "authorize was requested by {user_agent:?}, not the browser"
    );
    assert_eq!(
        authorize.query_param("redirect_uri"),
        Some(format!("{base}/platforms/connect/callback").as_str())
    );
    assert_eq!(authorize.query_param("code_challenge_method"), Some("S256"));
    // ...and tether exchanged the code with the matching verifier.
    assert_eq!(stub.count("/oauth/token"), 1, "{}", requests(&stub));
    let exchange = stub.last_request("/oauth/token").expect("token exchange");
    assert_eq!(
        exchange.param("grant_type").as_deref(),
        Some("authorization_code")
    );
    let verifier = exchange
        .param("code_verifier")
        .filter(|v| !v.is_empty())
        .expect("the token exchange carries a code_verifier");
    assert_eq!(
        authorize.query_param("code_challenge"),
        Some(
            URL_SAFE_NO_PAD
                .encode(Sha256::digest(verifier.as_bytes()))
                .as_str()
        )
    );

    // Nothing on the way was refused: not the post, not either redirect (form-action)...
    browser.read_log();
    let refused: Vec<&String> = browser
        .log
        .iter()
        .filter(|l| l.contains("form-action"))
        .collect();
    assert!(
        refused.is_empty(),
        "the browser refused part of the connect flow: {refused:#?}"
    );
    // ...and nothing else on tether's pages either (the account's avatar, say).
    let violations: Vec<&String> = browser.log.iter().filter(|l| is_csp_violation(l)).collect();
    assert!(
        violations.is_empty(),
        "the connect flow completed, but the browser reported CSP violations: {violations:#?}"
    );

    // The alt-text audit in the same browser, with its script: the scan's progress updates in
    // place (the worker runs in tether's background loop), the count follows typing, and a
    // published description is confirmed on the page without a reload by the person.
    stub.add_image_posts("wanda", 3);
    browser.goto(&format!("{base}/audit"));
    browser.click("xpath", "//button[normalize-space()='Scan recent posts']");
    let scanned = wait_until(WAIT_LIMIT * 2, || {
        let text = browser.text();
        (text.contains("Scanned 3 of at most 400 posts; finished") && text.contains("Photo 3"))
            .then_some(())
    });
    assert!(
        scanned.is_some(),
        "the scan did not finish on the page:\n{}",
        browser.describe()
    );
    let area = "textarea[name='description']";
    browser.type_into(area, "A red door");
    assert!(
        browser.text().contains("10 of 1500 characters."),
        "no live count:\n{}",
        browser.describe()
    );
    browser.click(
        "xpath",
        "(//button[@name='action' and @value='publish'])[1]",
    );
    let published = wait_until(WAIT_LIMIT * 2, || {
        browser.text().contains("Published 20").then_some(())
    });
    assert!(
        published.is_some(),
        "the publish was not confirmed on the page:\n{}\n--- tether ---\n{}",
        browser.describe(),
        tether.output()
    );
    let described = stub
        .posts_of("wanda")
        .iter()
        .filter(|p| p.media[0].description.as_deref() == Some("A red door"))
        .count();
    assert_eq!(described, 1, "{}", requests(&stub));
    browser.read_log();
    // (The stub serves no image files, so missing previews are expected; script errors and
    // CSP refusals are not.)
    let errors: Vec<&String> = browser
        .log
        .iter()
        .filter(|l| is_csp_violation(l) || l.contains("Uncaught"))
        .collect();
    assert!(
        errors.is_empty(),
        "browser errors on the audit page: {errors:#?}"
    );

    println!(
        "connected and audited in a real browser in {:?}; browser log: {:#?}",
        started.elapsed(),
        browser.log
    );
}

#[test]
fn a_form_action_policy_without_the_instance_blocks_the_redirect() {
    if !browser_available() {
        return;
    }
    let started = Instant::now();
    let stub = StubInstance::builder(Flavour::Mastodon43).start_blocking();
    let authorize = stub.url("/oauth/authorize?response_type=code&client_id=control");
    let allowed = format!("'self' https: http://{}", stub.host_port());
    let page = PolicyPage::start(
        vec![
            ("self", "'self'".to_string()),
            // tether's connect policy without the allow-listed instance.
            ("https", "'self' https:".to_string()),
            ("allowed", allowed),
        ],
        authorize,
    );
    let mut browser = Browser::start();

    for variant in ["self", "https"] {
        browser.goto(&page.url(&format!("/form/{variant}")));
        browser.read_log();
        let posted = page.count("POST /go");
        browser.click("css selector", "#go");
        // The post itself is allowed ('self') and reaches our server, which answers 303...
        if wait_until(WAIT_LIMIT, || {
            (page.count("POST /go") > posted).then_some(())
        })
        .is_none()
        {
            panic!("{variant}: the form was not posted\n{}", browser.describe());
        }
        // ...and the browser refuses to follow it, saying why.
        let Some(violation) = wait_until(WAIT_LIMIT, || {
            browser
                .read_log()
                .into_iter()
                .find(|l| l.contains("Content Security Policy") && l.contains("form-action"))
        }) else {
            panic!(
                "{variant}: no CSP violation logged within {WAIT_LIMIT:?}\n{}",
                browser.describe()
            );
        };
        println!("{variant}: {violation}");
        assert_eq!(
            stub.requests().len(),
            0,
            "{variant}: the browser reached the instance despite form-action\n{}",
            browser.describe()
        );
    }

    // The same page and server with the instance in form-action: the browser gets there. So the
    // blocking above is the policy's doing, not this harness's.
    browser.goto(&page.url("/form/allowed"));
    browser.read_log();
    browser.click("css selector", "#go");
    if wait_until(WAIT_LIMIT, || {
        (stub.count("/oauth/authorize") == 1).then_some(())
    })
    .is_none()
    {
        panic!(
            "allowed: the browser did not reach the instance\n{}",
            browser.describe()
        );
    }
    let violations: Vec<String> = browser
        .read_log()
        .into_iter()
        .filter(|l| is_csp_violation(l))
        .collect();
    assert!(violations.is_empty(), "allowed: {violations:#?}");
    println!("negative control done in {:?}", started.elapsed());
}
