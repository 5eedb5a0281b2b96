//! End to end in headless Chromium, driven through WebDriver (fantoccini): tether's own binary
//! on a free loopback port with a temp SQLite database, the stub instance allow-listed, and
//! axe-core (`tests/e2e/node_modules`, from `npm ci --prefix tests/e2e`) injected into every
//! page a new person passes through. Every page must have zero violations at
//! `wcag2a wcag2aa wcag21a wcag21aa`, no horizontal scrolling at 375 and 1280 px, and the
//! main pages are saved as screenshots: under `target/tmp/screenshots/`, or into
//! `docs/screenshots/` with `TETHER_UPDATE_SCREENSHOTS=1`.
//!
//! Without Chromium, chromedriver or axe-core the test prints what is missing and passes, unless
//! `TETHER_REQUIRE_BROWSER` is set (CI sets it).

#[path = "common/serve.rs"]
mod serve;
#[path = "common/stub_instance.rs"]
mod stub_instance;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use stub_instance::{Flavour, StubInstance};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PASSWORD: &str = "correct horse battery staple";
const WAIT: Duration = Duration::from_secs(15);
const TAGS: [&str; 4] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

fn axe_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/node_modules/axe-core/axe.min.js")
}

/// What is missing to run here, if anything.
fn missing() -> Vec<String> {
    let mut missing: Vec<String> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .map(str::to_string)
        .collect();
    if !axe_path().exists() {
        missing.push(format!(
            "{} (npm ci --prefix tests/e2e)",
            axe_path().display()
        ));
    }
    missing
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tether serve` with its own database and keys, answering /healthz.
fn start_tether(dir: &Path, allow_private: &str) -> (Process, String) {
    let port = free_port();
    let child = serve::tether_serve(dir, port, allow_private)
        .env("ROCKET_AUDIT_POLL_INTERVAL", "1")
        .env("ROCKET_LOG_LEVEL", "critical")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the tether binary starts");
    let process = Process(child);
    let origin = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tether did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    (process, origin)
}

fn start_chromedriver() -> (Process, u16) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    (Process(child), port)
}

/// A fresh headless Chromium: the flags keep it from stalling on a machine without internet.
async fn session(driver_port: u16, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--hide-scrollbars",
                format!("--user-data-dir={}", profile.display()),
                "--window-size=1280,900"
            ]
        }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a Chromium session")
}

/// chromedriver's console log (`POST /session/:id/se/log`), which W3C WebDriver lacks.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(r#"{"type":"browser"}"#.to_string()),
        )
    }
}

struct Run {
    client: Client,
    base: String,
    axe: String,
    /// Every violation on every page, as "page: rule: help @ targets".
    violations: Vec<String>,
    screenshots: PathBuf,
}

impl Run {
    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("navigation");
    }

    async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.path().to_string())
            .unwrap_or_default()
    }

    async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    async fn wait_for_text(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.text().await.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "\"{needle}\" did not appear on {}:\n{}",
                self.path().await,
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn fill(&self, css: &str, value: &str) {
        let field = self.client.find(Locator::Css(css)).await.expect(css);
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .expect(css)
            .click()
            .await
            .expect("click");
    }

    /// The console's errors since the last look: script errors, CSP refusals, failed loads.
    /// (Chromium's own request for `/favicon.ico`, which tether does not serve, is not the
    /// page's doing.)
    /// An error page's own status is logged as a failed load too; `error_page` expects it.
    async fn console_errors(&mut self, label: &str, error_page: bool) {
        let here = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("browser log");
        for entry in entries.as_array().into_iter().flatten() {
            let message = entry["message"].as_str().unwrap_or_default();
            let own_status = error_page && message.starts_with(&format!("{here} - "));
            if entry["level"] == "SEVERE" && !message.contains("favicon.ico") && !own_status {
                self.violations.push(format!("{label}: console: {message}"));
            }
        }
    }

    /// axe-core on the page as it is, no horizontal scrolling at 375 and 1280 px, and no
    /// console errors.
    async fn check(&mut self, label: &str) {
        self.check_page(label, false).await;
    }

    async fn check_page(&mut self, label: &str, error_page: bool) {
        self.console_errors(label, error_page).await;
        self.client
            .execute(&format!("{}\n;return true;", self.axe), vec![])
            .await
            .expect("axe-core loads");
        let script = format!(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {{ runOnly: {{ type: 'tag', values: {tags} }} }})
               .then(r => done(r.violations.map(v => v.id + ': ' + v.help + ' @ ' +
                   v.nodes.map(n => n.target.join(' ')).join(', '))))
               .catch(e => done(['axe failed: ' + e]));",
            tags = json!(TAGS)
        );
        let found = self
            .client
            .execute_async(&script, vec![])
            .await
            .expect("axe-core runs");
        for violation in found.as_array().into_iter().flatten() {
            self.violations.push(format!(
                "{label}: {}",
                violation.as_str().unwrap_or_default()
            ));
        }
        for width in [375u32, 1280] {
            self.client
                .set_window_size(width, 900)
                .await
                .expect("resize");
            let wide: Value = self
                .client
                .execute(
                    "return document.documentElement.scrollWidth > window.innerWidth;",
                    vec![],
                )
                .await
                .expect("measure");
            if wide == json!(true) {
                self.violations
                    .push(format!("{label}: scrolls horizontally at {width} px"));
            }
        }
    }

    /// The page at 375 and 1280 px as `docs/screenshots/<name>-<width>.png`.
    async fn screenshot(&self, name: &str) {
        for width in [375u32, 1280] {
            self.client
                .set_window_size(width, if width == 375 { 1400 } else { 1000 })
                .await
                .expect("resize");
            tokio::time::sleep(Duration::from_millis(150)).await;
            let png = self.client.screenshot().await.expect("screenshot");
            std::fs::write(self.screenshots.join(format!("{name}-{width}.png")), png)
                .expect("write screenshot");
        }
        self.client
            .set_window_size(1280, 900)
            .await
            .expect("resize");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_persons_journey_passes_axe_on_every_page() {
    let missing = missing();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("TETHER_REQUIRE_BROWSER").is_none(),
            "TETHER_REQUIRE_BROWSER is set but missing: {}",
            missing.join(", ")
        );
        println!("note: e2e skipped, missing: {}", missing.join(", "));
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let stub = StubInstance::builder(Flavour::Mastodon43)
        .with_account("wanda", "Wanda Stub")
        .start()
        .await;
    let (_tether, base) = start_tether(dir.path(), &stub.host_port());
    let (_driver, driver_port) = start_chromedriver();
    let profile = dir.path().join("profile");
    std::fs::create_dir(&profile).expect("profile dir");
    // Into the tree only when asked, so an ordinary test run leaves the checkout clean.
    let screenshots = if std::env::var_os("TETHER_UPDATE_SCREENSHOTS").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
    };
    std::fs::create_dir_all(&screenshots).expect("screenshots dir");
    let mut run = Run {
        client: session(driver_port, &profile).await,
        base,
        axe: std::fs::read_to_string(axe_path()).expect("axe-core"),
        violations: Vec::new(),
        screenshots,
    };

    run.goto("/").await;
    run.check("landing").await;
    run.screenshot("landing").await;
    run.goto("/login").await;
    run.check("login").await;
    run.goto("/register").await;
    run.check("register").await;

    run.fill("#username", "wanda").await;
    run.fill("#email", "wanda@example.com").await;
    run.fill("#password", PASSWORD).await;
    run.fill("#password_confirm", PASSWORD).await;
    run.click("form[action='/register'] button[type='submit']")
        .await;
    run.wait_for_text("Connect with your instance").await;
    assert_eq!(run.path().await, "/platforms/new");
    run.check("setup").await;
    run.screenshot("connect").await;

    run.fill("#instance", &stub.origin()).await;
    run.click("form[action='/platforms/connect'] button[type='submit']")
        .await;
    run.wait_for_text("Connected @wanda@").await;
    assert_eq!(run.path().await, "/dashboard");
    run.check("dashboard").await;

    stub.add_post(
        "wanda",
        stub_instance::NewPost::text("Morning at the lake, mist over the water.")
            .image(None)
            .image(Some("A heron standing in shallow water")),
    );
    stub.add_image_posts("wanda", 4);
    run.goto("/audit").await;
    run.click("form[action='/audit/scan'] button").await;
    run.wait_for_text("finished").await;
    run.wait_for_text("Photo 4").await;
    run.check("audit").await;
    run.screenshot("audit").await;
    run.goto("/dashboard").await;
    run.wait_for_text("recent images have no description").await;
    run.screenshot("dashboard").await;

    for (label, path) in [
        ("platforms", "/platforms"),
        ("account", "/account"),
        ("admin users", "/admin/users"),
        ("admin new user", "/admin/users/new"),
        ("audit trail", "/admin/audit"),
    ] {
        run.goto(path).await;
        run.check(label).await;
    }
    run.goto("/no-such-page").await;
    run.check_page("not found", true).await;
    run.goto("/platforms").await;
    let edit = run
        .client
        .find(Locator::Css("a[href$='/edit']"))
        .await
        .expect("an edit link")
        .attr("href")
        .await
        .expect("href")
        .unwrap_or_default();
    run.goto(&edit).await;
    run.check("edit platform").await;

    let violations = std::mem::take(&mut run.violations);
    let _ = run.client.close().await;
    assert!(
        violations.is_empty(),
        "accessibility and layout problems:\n{}",
        violations.join("\n")
    );
}
