//! "Connect with your instance" in a real browser: Debian's headless Chromium, driven through
//! chromedriver with the shared fantoccini harness (`tests/common/webdriver.rs`).
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
//! tether is the debug binary (`tests/common/serve.rs`), its output kept for failure messages.
//! Everything listens on loopback ports only. Without `/usr/bin/chromium` and
//! `/usr/bin/chromedriver` (Debian: `apt-get install chromium chromium-driver`) the tests print a
//! note and pass, unless `TETHER_REQUIRE_BROWSER` is set. chromedriver, Chromium and tether are
//! killed when their guards drop, and every wait is bounded.

#[path = "common/serve.rs"]
mod serve;
#[path = "common/stub_instance.rs"]
mod stub_instance;
#[path = "common/webdriver.rs"]
mod webdriver;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use fantoccini::elements::Element;
use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, Locator};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use stub_instance::{Flavour, StubInstance};
use webdriver::{Process, Script};

const PASSWORD: &str = "correct horse battery staple";
/// How long tether may take to start answering.
const STARTUP_LIMIT: Duration = Duration::from_secs(20);
/// A navigation waits for the page load, at most this long.
const PAGE_LOAD_LIMIT: Duration = Duration::from_secs(20);
/// From "Connect with your instance" to tether's dashboard.
const CONNECT_LIMIT: Duration = Duration::from_secs(15);
/// Any other wait for the browser (a page to appear, a log line, a request to arrive).
const WAIT_LIMIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------------------------
// tether
// ---------------------------------------------------------------------------------------------

/// A `tether serve` process on a fresh SQLite file and a free loopback port, allowed to call the
/// instance at `allow_private` (`127.0.0.1:PORT`); killed on drop.
struct Tether {
    process: Process,
    port: u16,
    output: Arc<Mutex<String>>,
    _dir: TempDir,
}

fn capture(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut out = into.lock().expect("tether output lock");
            out.push_str(&line);
            out.push('\n');
        }
    });
}

impl Tether {
    /// Starts tether and waits until it accepts connections (Rocket listens once it serves).
    fn start(allow_private: &str) -> Tether {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = webdriver::free_port();
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
            process: Process(child),
            port,
            output,
            _dir: dir,
        };
        let deadline = Instant::now() + STARTUP_LIMIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = tether.process.0.try_wait().expect("try_wait") {
                panic!(
                    "tether exited ({status}) instead of serving; its output:\n{}",
                    tether.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tether did not listen on {port} within {STARTUP_LIMIT:?}; its output:\n{}",
                tether.output()
            );
            std::thread::sleep(POLL);
        }
        tether
    }

    fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn output(&self) -> String {
        self.output.lock().expect("tether output lock").clone()
    }
}

// ---------------------------------------------------------------------------------------------
// The browser: one headless Chromium session through the shared harness
// ---------------------------------------------------------------------------------------------

/// A Chromium profile directory. On drop, after the session and chromedriver are gone, kills
/// (by pid) any process still using it: only this session's Chromium has it on its command line,
/// and it would outlive chromedriver if a failing test never closed the session.
struct Profile {
    path: PathBuf,
    _dir: TempDir,
}

impl Profile {
    fn new() -> Profile {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("profile");
        std::fs::create_dir(&path).expect("profile dir");
        Profile { path, _dir: dir }
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        kill_processes_using(&format!("--user-data-dir={}", self.path.display()));
    }
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

/// A fantoccini session with the page helpers these tests need, and every browser log line read
/// so far (reading empties chromedriver's buffer).
struct Browser {
    client: Client,
    log: Vec<String>,
}

impl Browser {
    async fn start(driver: &webdriver::Driver, profile: &Profile) -> Browser {
        let client = webdriver::session(driver, &profile.path, Script::Enabled).await;
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(WAIT_LIMIT),
                Some(PAGE_LOAD_LIMIT),
                Some(Duration::ZERO),
            ))
            .await
            .expect("set the session's timeouts");
        Browser {
            client,
            log: Vec::new(),
        }
    }

    /// Navigates and waits for the page to load.
    async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("navigation to {url}: {e}"));
    }

    async fn current_url(&self) -> String {
        match self.client.current_url().await {
            Ok(url) => url.to_string(),
            Err(e) => format!("(unknown: {e})"),
        }
    }

    /// The element `locator` finds, waiting for it.
    async fn find(&self, locator: Locator<'_>) -> Element {
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            match self.client.find(locator).await {
                Ok(element) => return element,
                Err(e) if Instant::now() >= deadline => panic!(
                    "no element {locator:?} on {} within {WAIT_LIMIT:?} ({e})",
                    self.current_url().await
                ),
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        self.find(Locator::Css(css))
            .await
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    async fn click(&self, locator: Locator<'_>) {
        self.find(locator)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {locator:?}: {e}"));
    }

    /// What the page shows (`innerText` of `<body>`).
    async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body
                .text()
                .await
                .unwrap_or_else(|e| format!("(no text: {e})")),
            Err(e) => format!("(no body: {e})"),
        }
    }

    /// Reads the browser log lines that arrived since the last read, keeps them, returns them.
    async fn read_log(&mut self) -> Vec<String> {
        let lines: Vec<String> = webdriver::browser_log(&self.client)
            .await
            .into_iter()
            .map(|(level, message)| format!("{level} {message}"))
            .collect();
        self.log.extend(lines.iter().cloned());
        lines
    }

    /// The page, the address and the log, for a failure message.
    async fn describe(&mut self) -> String {
        self.read_log().await;
        let text: String = self.text().await.chars().take(2000).collect();
        format!(
            "browser at {}\n--- page text ---\n{text}\n--- browser log ---\n{}",
            self.current_url().await,
            self.log.join("\n")
        )
    }

    /// Ends the session (Chromium quits).
    async fn close(self) {
        self.client
            .close()
            .await
            .expect("close the browser session");
    }
}

fn is_csp_violation(line: &str) -> bool {
    line.contains("Content Security Policy") || line.contains("form-action")
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
            .expect("policy page log lock")
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
    seen.lock()
        .expect("policy page log lock")
        .push(format!("{method} {path}"));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_with_instance_completes_in_a_real_browser() {
    if !webdriver::can_run("browser", false) {
        return;
    }
    let started = Instant::now();
    let stub = StubInstance::builder(Flavour::Mastodon43)
        .with_account("wanda", "Wanda Stub")
        .start()
        .await;
    let host = stub.host_port();
    let tether = tokio::task::spawn_blocking(move || Tether::start(&host))
        .await
        .expect("tether starts");
    // Dropped in reverse: the session, chromedriver, then anything left using the profile.
    let profile = Profile::new();
    let driver = webdriver::start_chromedriver();
    let mut browser = Browser::start(&driver, &profile).await;
    let base = tether.origin();
    let dashboard = format!("{base}/dashboard");
    let requests = |stub: &StubInstance| {
        stub.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>()
            .join("\n")
    };

    browser.goto(&format!("{base}/register")).await;
    browser.type_into("#username", "browser_user").await;
    browser
        .type_into("#email", "browser_user@example.com")
        .await;
    browser.type_into("#password", PASSWORD).await;
    browser.type_into("#password_confirm", PASSWORD).await;
    browser
        .click(Locator::Css(
            "form[action=\"/register\"] button[type=\"submit\"]",
        ))
        .await;
    // A new account has no platform yet: the dashboard sends it on to the connect page.
    let setup = format!("{base}/platforms/new");
    let deadline = Instant::now() + WAIT_LIMIT;
    while browser.current_url().await != setup {
        if Instant::now() >= deadline {
            panic!(
                "registering did not land on {setup}\n{}\n--- tether ---\n{}",
                browser.describe().await,
                tether.output()
            );
        }
        tokio::time::sleep(POLL).await;
    }

    browser.goto(&format!("{base}/platforms/new")).await;
    browser.type_into("#instance", &stub.origin()).await;
    browser
        .click(Locator::XPath(
            "//button[normalize-space()='Connect with your instance']",
        ))
        .await;
    // Back on the dashboard, or (at once) a form-action refusal in the log.
    let deadline = Instant::now() + CONNECT_LIMIT;
    let failure = loop {
        if browser.current_url().await == dashboard {
            break None;
        }
        let log = browser.read_log().await;
        if let Some(refusal) = log.into_iter().find(|l| l.contains("form-action")) {
            break Some(format!("the browser refused: {refusal}"));
        }
        if Instant::now() >= deadline {
            break Some(format!("not back on {dashboard} within {CONNECT_LIMIT:?}"));
        }
        tokio::time::sleep(POLL).await;
    };
    if let Some(why) = failure {
        panic!(
            "connecting failed, {why}\n{}\n\
             --- stub requests ---\n{}\n--- tether ---\n{}",
            browser.describe().await,
            requests(&stub),
            tether.output()
        );
    }

    let text = browser.text().await;
    assert!(
        text.contains("Connected @wanda@127.0.0.1."),
        "no \"Connected @wanda@…\" on the dashboard:\n{}",
        browser.describe().await
    );
    assert!(text.contains("wanda"), "{}", browser.describe().await);

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
    browser.read_log().await;
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
    browser.goto(&format!("{base}/audit")).await;
    browser
        .click(Locator::XPath(
            "//button[normalize-space()='Scan recent posts']",
        ))
        .await;
    let deadline = Instant::now() + WAIT_LIMIT * 2;
    loop {
        let text = browser.text().await;
        if text.contains("Scanned 3 of at most 400 posts; finished") && text.contains("Photo 3") {
            break;
        }
        if Instant::now() >= deadline {
            panic!(
                "the scan did not finish on the page:\n{}",
                browser.describe().await
            );
        }
        tokio::time::sleep(POLL).await;
    }
    let area = "textarea[name='description']";
    browser.type_into(area, "A red door").await;
    assert!(
        browser.text().await.contains("10 of 1500 characters."),
        "no live count:\n{}",
        browser.describe().await
    );
    browser
        .click(Locator::XPath(
            "(//button[@name='action' and @value='publish'])[1]",
        ))
        .await;
    let deadline = Instant::now() + WAIT_LIMIT * 2;
    while !browser.text().await.contains("Published 20") {
        if Instant::now() >= deadline {
            panic!(
                "the publish was not confirmed on the page:\n{}\n--- tether ---\n{}",
                browser.describe().await,
                tether.output()
            );
        }
        tokio::time::sleep(POLL).await;
    }
    let described = stub
        .posts_of("wanda")
        .iter()
        .filter(|p| p.media[0].description.as_deref() == Some("A red door"))
        .count();
    assert_eq!(described, 1, "{}", requests(&stub));
    browser.read_log().await;
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
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_action_policy_without_the_instance_blocks_the_redirect() {
    if !webdriver::can_run("browser", false) {
        return;
    }
    let started = Instant::now();
    let stub = StubInstance::builder(Flavour::Mastodon43).start().await;
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
    // Dropped in reverse: the session, chromedriver, then anything left using the profile.
    let profile = Profile::new();
    let driver = webdriver::start_chromedriver();
    let mut browser = Browser::start(&driver, &profile).await;

    for variant in ["self", "https"] {
        browser.goto(&page.url(&format!("/form/{variant}"))).await;
        browser.read_log().await;
        let posted = page.count("POST /go");
        browser.click(Locator::Css("#go")).await;
        // The post itself is allowed ('self') and reaches our server, which answers 303...
        let deadline = Instant::now() + WAIT_LIMIT;
        while page.count("POST /go") <= posted {
            if Instant::now() >= deadline {
                panic!(
                    "{variant}: the form was not posted\n{}",
                    browser.describe().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
        // ...and the browser refuses to follow it, saying why.
        let deadline = Instant::now() + WAIT_LIMIT;
        let violation = loop {
            let log = browser.read_log().await;
            if let Some(line) = log
                .into_iter()
                .find(|l| l.contains("Content Security Policy") && l.contains("form-action"))
            {
                break line;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{variant}: no CSP violation logged within {WAIT_LIMIT:?}\n{}",
                    browser.describe().await
                );
            }
            tokio::time::sleep(POLL).await;
        };
        println!("{variant}: {violation}");
        assert_eq!(
            stub.requests().len(),
            0,
            "{variant}: the browser reached the instance despite form-action\n{}",
            browser.describe().await
        );
    }

    // The same page and server with the instance in form-action: the browser gets there. So the
    // blocking above is the policy's doing, not this harness's.
    browser.goto(&page.url("/form/allowed")).await;
    browser.read_log().await;
    browser.click(Locator::Css("#go")).await;
    let deadline = Instant::now() + WAIT_LIMIT;
    while stub.count("/oauth/authorize") != 1 {
        if Instant::now() >= deadline {
            panic!(
                "allowed: the browser did not reach the instance\n{}",
                browser.describe().await
            );
        }
        tokio::time::sleep(POLL).await;
    }
    let violations: Vec<String> = browser
        .read_log()
        .await
        .into_iter()
        .filter(|l| is_csp_violation(l))
        .collect();
    assert!(violations.is_empty(), "allowed: {violations:#?}");
    println!("negative control done in {:?}", started.elapsed());
    browser.close().await;
}
