//! Headless Chromium through WebDriver (fantoccini over plain http to chromedriver) for the
//! browser suites: tether in its release profile on a free loopback port, chromedriver, a fresh
//! Chromium profile per session, and a page handle ([`Tab`]) that checks what a person would
//! notice: axe-core violations, console errors, horizontal scrolling, overlapping or cut text.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use super::serve;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const WAIT: Duration = Duration::from_secs(20);
const AXE_TAGS: [&str; 4] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];
/// The widths a page must work at without scrolling sideways: a small phone to a wide desktop.
pub const WIDTHS: [u32; 5] = [375, 768, 1024, 1280, 1920];

pub fn axe_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/node_modules/axe-core/axe.min.js")
}

/// What is missing to run a browser here, if anything. Empty means go; otherwise the test
/// prints the list and passes, unless `TETHER_REQUIRE_BROWSER` is set (CI sets it).
pub fn missing(need_axe: bool) -> Vec<String> {
    let mut missing: Vec<String> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .map(str::to_string)
        .collect();
    if need_axe && !axe_path().exists() {
        missing.push(format!(
            "{} (npm ci --prefix tests/e2e)",
            axe_path().display()
        ));
    }
    missing
}

/// True when the test should go on; false (after saying why) when it should pass as skipped.
pub fn can_run(suite: &str, need_axe: bool) -> bool {
    let missing = missing(need_axe);
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("TETHER_REQUIRE_BROWSER").is_none(),
        "TETHER_REQUIRE_BROWSER is set but {suite} cannot run, missing: {}",
        missing.join(", ")
    );
    println!("note: {suite} skipped, missing: {}", missing.join(", "));
    false
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process, killed on drop.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `tether serve` in Rocket's release profile (the configuration a deployment runs: keys
/// required, secure cookies) with its own database and keys in `dir`, answering on a free port;
/// the stub instance at `allow_private` is let through the private-address guard. It is the
/// debug build `cargo test` already made: a release build of its own cost CI six minutes.
pub fn start_tether(dir: &Path, allow_private: &str) -> (Process, String) {
    let port = free_port();
    let child = serve::tether_serve(dir, port, allow_private)
        .env("ROCKET_PROFILE", "release")
        .env("ROCKET_AUDIT_POLL_INTERVAL", "1")
        .env("ROCKET_LOG_LEVEL", "critical")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the tether binary starts");
    let process = Process(child);
    wait_for_port(port, "tether");
    (process, format!("http://127.0.0.1:{port}"))
}

pub struct Driver {
    _process: Process,
    pub port: u16,
}

pub fn start_chromedriver() -> Driver {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let process = Process(child);
    wait_for_port(port, "chromedriver");
    Driver {
        _process: process,
        port,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Script {
    Enabled,
    /// Chromium's own "Don't allow sites to use JavaScript": the page runs none of its script.
    Disabled,
}

/// A fresh headless Chromium: the flags keep it from stalling on a machine without internet.
pub async fn session(driver: &Driver, profile: &Path, script: Script) -> Client {
    let mut options = json!({
        "binary": CHROMIUM,
        "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--hide-scrollbars",
            "--disable-features=Translate,MediaRouter,OptimizationHints",
            format!("--user-data-dir={}", profile.display()),
            "--window-size=1280,900"
        ]
    });
    if script == Script::Disabled {
        options["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
    }
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert("goog:chromeOptions".into(), options);
    caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
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

/// The browser console since the last look, as (level, message): "SEVERE" for script errors,
/// CSP refusals and failed loads.
pub async fn browser_log(client: &Client) -> Vec<(String, String)> {
    let entries = client.issue_cmd(BrowserLog).await.expect("browser log");
    entries
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["level"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Finds text that is cut off by a clipping ancestor, runs off the viewport, or overlaps other
/// text; hidden and visually-hidden text is left out. Returns one line per problem.
const LAYOUT_SCRIPT: &str = r#"
const problems = [];
const boxes = [];
const skip = '.skip-link, [hidden], script, style, noscript, select, option, textarea';
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const node = walker.currentNode;
  const text = node.textContent.trim();
  const el = node.parentElement;
  if (!text || !el || el.closest(skip)) continue;
  const style = getComputedStyle(el);
  if (style.visibility !== 'visible' || el.closest('details:not([open]) > :not(summary)')) continue;
  const range = document.createRange();
  range.selectNodeContents(node);
  // The nearest ancestor that clips; one of a pixel or less is the visually-hidden pattern.
  let clip = null;
  for (let a = el; a && a !== document.body; a = a.parentElement) {
    const s = getComputedStyle(a);
    if (s.overflowX !== 'visible' || s.overflowY !== 'visible' || s.clipPath !== 'none') {
      clip = a;
      break;
    }
  }
  const c = clip && clip.getBoundingClientRect();
  if (c && (c.width <= 1 || c.height <= 1)) continue;
  for (const r of range.getClientRects()) {
    if (r.width < 1 || r.height < 1) continue;
    boxes.push({ node, r, text: text.slice(0, 40) });
    if (r.left < -1 || r.right > document.documentElement.clientWidth + 1) {
      problems.push('runs off the page: "' + text.slice(0, 40) + '"');
    }
    if (c && (r.left < c.left - 1 || r.right > c.right + 1 || r.top < c.top - 1 || r.bottom > c.bottom + 1)) {
      problems.push('cut off: "' + text.slice(0, 40) + '" (in ' + clip.tagName.toLowerCase() +
        (clip.className ? '.' + String(clip.className).split(' ').join('.') : '') + ')');
    }
  }
}
for (let i = 0; i < boxes.length; i++) {
  for (let j = i + 1; j < boxes.length; j++) {
    const a = boxes[i], b = boxes[j];
    if (a.node === b.node) continue;
    const w = Math.min(a.r.right, b.r.right) - Math.max(a.r.left, b.r.left);
    const h = Math.min(a.r.bottom, b.r.bottom) - Math.max(a.r.top, b.r.top);
    if (w > 2 && h > 2) problems.push('"' + a.text + '" overlaps "' + b.text + '"');
  }
}
if (document.documentElement.scrollWidth > document.documentElement.clientWidth) {
  problems.push('scrolls sideways (' + document.documentElement.scrollWidth + ' px of content)');
}
return [...new Set(problems)];
"#;

/// One browser session on tether: navigation, forms, and the checks every page must pass.
/// Problems are collected, not asserted one by one, so a run reports all of them at once.
pub struct Tab {
    pub client: Client,
    pub base: String,
    pub script: Script,
    axe: Option<String>,
    pub problems: Vec<String>,
    screenshots: PathBuf,
}

impl Tab {
    pub fn new(client: Client, base: &str, script: Script) -> Tab {
        // Into the tree only when asked, so an ordinary test run leaves the checkout clean.
        let screenshots = if std::env::var_os("TETHER_UPDATE_SCREENSHOTS").is_some() {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots")
        } else {
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
        };
        std::fs::create_dir_all(&screenshots).expect("screenshots dir");
        Tab {
            client,
            base: base.to_string(),
            script,
            axe: std::fs::read_to_string(axe_path()).ok(),
            problems: Vec::new(),
            screenshots,
        }
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("navigation to {path}: {e}"));
    }

    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.path().to_string())
            .unwrap_or_default()
    }

    /// The path with its query, as `uri!` would write it.
    pub async fn path_and_query(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_string(),
            })
            .unwrap_or_default()
    }

    /// The visible text of the page.
    pub async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(found) => found,
            Err(e) => panic!(
                "{css} on {}: {e}\n{}",
                self.path_and_query().await,
                self.text().await
            ),
        }
    }

    pub async fn exists(&self, css: &str) -> bool {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map(|all| !all.is_empty())
            .unwrap_or(false)
    }

    /// The element's visible text, or "" while there is no such element (say, mid-navigation),
    /// so it can be polled.
    pub async fn text_of(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(found) => found.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub async fn value_of(&self, css: &str) -> String {
        self.find(css)
            .await
            .prop("value")
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.find(css).await.attr(name).await.ok().flatten()
    }

    /// Waits until `check` holds, reloading the page between looks when `reload` is set (what
    /// a person without JavaScript does while the server works).
    pub async fn wait_until<F, Fut>(&self, what: &str, reload: bool, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            if check().await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: still not so on {}:\n{}",
                self.path_and_query().await,
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(if reload { 500 } else { 150 })).await;
            if reload {
                let _ = self.client.refresh().await;
            }
        }
    }

    pub async fn wait_for_text(&self, needle: &str) {
        self.wait_until(&format!("\"{needle}\" on the page"), false, || async {
            self.text().await.contains(needle)
        })
        .await;
    }

    pub async fn wait_for_path(&self, path: &str) {
        self.wait_until(&format!("at {path}"), false, || async {
            self.path().await == path
        })
        .await;
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Clicks a button whose form asks `window.confirm` first (only with JavaScript) and says yes.
    pub async fn click_and_confirm(&self, css: &str) {
        self.click(css).await;
        if self.script == Script::Enabled {
            let deadline = Instant::now() + WAIT;
            while self.client.accept_alert().await.is_err() {
                assert!(Instant::now() < deadline, "no confirmation asked for {css}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    pub async fn execute(&self, script: &str) -> Value {
        match self.client.execute(script, vec![]).await {
            Ok(value) => value,
            Err(e) => panic!("script on {}: {e}", self.path_and_query().await),
        }
    }

    /// The console's errors since the last look: script errors, CSP refusals, failed loads.
    /// A page that answers 4xx (a form sent back with its errors, a 404) is logged as a failed
    /// load of itself; `answered_4xx` expects that line, and only that one.
    pub async fn console_errors(&mut self, label: &str, answered_4xx: bool) {
        let here = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        for (level, message) in browser_log(&self.client).await {
            let own_status = answered_4xx
                && message.starts_with(&format!("{here} - "))
                && message.contains("status of 4");
            if level == "SEVERE" && !own_status {
                self.problems.push(format!("{label}: console: {message}"));
            }
        }
    }

    /// Every check a page must pass: no console errors, zero axe-core violations (with
    /// JavaScript; without it the page cannot be inspected from inside, and its markup is the
    /// same), and a layout that holds at every width in [`WIDTHS`].
    pub async fn check(&mut self, label: &str) {
        self.check_page(label, false).await;
    }

    pub async fn check_page(&mut self, label: &str, answered_4xx: bool) {
        self.console_errors(label, answered_4xx).await;
        if self.script == Script::Disabled {
            return;
        }
        self.axe(label).await;
        self.layout(label).await;
    }

    async fn axe(&mut self, label: &str) {
        let Some(axe) = self.axe.clone() else {
            self.problems.push(format!("{label}: axe-core is missing"));
            return;
        };
        self.execute(&format!("{axe}\n;return true;")).await;
        let script = format!(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {{ runOnly: {{ type: 'tag', values: {tags} }} }})
               .then(r => done(r.violations.map(v => v.id + ': ' + v.help + ' @ ' +
                   v.nodes.map(n => n.target.join(' ')).join(', '))))
               .catch(e => done(['axe failed: ' + e]));",
            tags = json!(AXE_TAGS)
        );
        let found = self
            .client
            .execute_async(&script, vec![])
            .await
            .expect("axe-core runs");
        for violation in found.as_array().into_iter().flatten() {
            self.problems.push(format!(
                "{label}: {}",
                violation.as_str().unwrap_or_default()
            ));
        }
    }

    /// No sideways scrolling, cut or overlapping text from 375 to 1920 px, and the signed-in
    /// header on one line from 1280 px up.
    pub async fn layout(&mut self, label: &str) {
        for width in WIDTHS {
            self.resize(width, 900).await;
            let found = self.execute(LAYOUT_SCRIPT).await;
            for problem in found.as_array().into_iter().flatten() {
                self.problems.push(format!(
                    "{label} at {width} px: {}",
                    problem.as_str().unwrap_or_default()
                ));
            }
            if width >= 1280 {
                let lines = self.header_lines().await;
                if lines != 1 {
                    self.problems.push(format!(
                        "{label} at {width} px: the header takes {lines} lines"
                    ));
                }
            }
        }
        self.resize(1280, 900).await;
    }

    /// How many rows the header's items sit on (brand, each nav link, switcher, user, log out).
    pub async fn header_lines(&self) -> u64 {
        self.execute(
            "const items = document.querySelectorAll(
               '.site-header .brand, .site-nav a, .switcher > summary, .site-header__user, .site-header__end > form button');
             const rows = [];
             for (const el of items) {
               const r = el.getBoundingClientRect();
               if (r.height === 0) continue;
               const mid = r.top + r.height / 2;
               if (!rows.some(m => Math.abs(m - mid) < r.height / 2)) rows.push(mid);
             }
             return rows.length;",
        )
        .await
        .as_u64()
        .unwrap_or(0)
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize");
        // Chromium lays out again on its next frame.
        tokio::time::sleep(Duration::from_millis(60)).await;
    }

    /// The page at 375 and 1280 px as `<name>-<width>.png`.
    pub async fn screenshot(&self, name: &str) {
        for width in [375u32, 1280] {
            self.resize(width, if width == 375 { 1400 } else { 1000 })
                .await;
            tokio::time::sleep(Duration::from_millis(150)).await;
            let png = self.client.screenshot().await.expect("screenshot");
            std::fs::write(self.screenshots.join(format!("{name}-{width}.png")), png)
                .expect("write screenshot");
        }
        self.resize(1280, 900).await;
    }

    /// Fails with every problem collected so far, and closes the browser.
    pub async fn finish(mut self) {
        let problems = std::mem::take(&mut self.problems);
        let _ = self.client.close().await;
        assert!(
            problems.is_empty(),
            "problems a person would meet:\n{}",
            problems.join("\n")
        );
    }
}
