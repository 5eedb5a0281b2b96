//! A stub fediverse instance for tests: a Mastodon 4.3 or a Pixelfed server on a loopback port,
//! plain HTTP, so that tether's outbound calls (app registration, OAuth 2 + PKCE, API calls) can
//! be exercised without the internet and without mocking tether's own code.
//!
//! ```ignore
//! let stub = StubInstance::builder(Flavour::Mastodon43)
//!     .with_account("alice", "Alice")
//!     .start()
//!     .await;
//! // … point tether at stub.origin() …
//! let callback = stub.authorize_redirect(&authorize_url_tether_redirected_to);
//! assert_eq!(stub.count("/oauth/token"), 1);
//! ```
//!
//! The server runs on its own thread with its own single-threaded tokio runtime, so it keeps
//! answering whatever the test's runtime is doing (blocked in a sync test, busy in Rocket's local
//! client…). It stops when the `StubInstance` is dropped.
//!
//! What it models (and where it is stricter than the real thing):
//! - Mastodon 4.3: `/api/v2/instance`, `/api/v1/instance`, `/.well-known/oauth-authorization-server`,
//!   `/api/v1/apps`, `/oauth/authorize` (approves at once, no human), `/oauth/token`
//!   (`authorization_code` only; no refresh tokens, as Mastodon 4.3), `/oauth/revoke`,
//!   `/api/v1/accounts/verify_credentials`. Scopes must be a subset of the app's (exact strings, as
//!   Doorkeeper). PKCE is *required* by default (real Mastodon only verifies it when a challenge was
//!   sent; `Pkce::IfPresent` gives that), and only `S256` is accepted. Clients may authenticate in the
//!   body or with HTTP Basic. Bearer tokens are only read from the `Authorization` header.
//! - Pixelfed (Laravel Passport): `/api/v1/instance` only (no v2, no `.well-known`, `/oauth/revoke`
//!   is 404), numeric `client_id`, JWT-sized access tokens (~1 kB) and long refresh tokens,
//!   `expires_in`, `refresh_token` grant that rotates both tokens (the old access token is revoked
//!   too, as league/oauth2-server does). PKCE is accepted but not checked by default.
//!   Errors use Laravel's shapes (`{"message": …}`), rate limits Laravel's headers.
//! - Both: pre-issued access tokens ([`StubInstance::accept_token`]), as if the user had created
//!   an application in the instance's settings and copied its token; `verify_credentials`
//!   answers them with the account they were issued for. They belong to no app registered over
//!   the API (so `/oauth/revoke` by tether's app answers 403 for them), never expire, and are not
//!   in [`StubInstance::issued_tokens`] (which lists what `/oauth/token` issued).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::distributions::Alphanumeric;
use rand::{Rng, RngCore};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Every scope Mastodon 4.3 knows (`scopes_supported` in its OAuth metadata).
pub const MASTODON_SCOPES: &[&str] = &[
    "read",
    "write",
    "write:accounts",
    "write:blocks",
    "write:bookmarks",
    "write:conversations",
    "write:favourites",
    "write:filters",
    "write:follows",
    "write:lists",
    "write:media",
    "write:mutes",
    "write:notifications",
    "write:reports",
    "write:statuses",
    "read:accounts",
    "read:blocks",
    "read:bookmarks",
    "read:favourites",
    "read:filters",
    "read:follows",
    "read:lists",
    "read:mutes",
    "read:notifications",
    "read:search",
    "read:statuses",
    "follow",
    "push",
    "admin:read",
    "admin:read:accounts",
    "admin:read:reports",
    "admin:read:domain_allows",
    "admin:read:domain_blocks",
    "admin:read:ip_blocks",
    "admin:read:email_domain_blocks",
    "admin:read:canonical_email_blocks",
    "admin:write",
    "admin:write:accounts",
    "admin:write:reports",
    "admin:write:domain_allows",
    "admin:write:domain_blocks",
    "admin:write:ip_blocks",
    "admin:write:email_domain_blocks",
    "admin:write:canonical_email_blocks",
    "profile",
];

/// The scopes Pixelfed's Passport knows.
pub const PIXELFED_SCOPES: &[&str] = &[
    "read",
    "write",
    "follow",
    "push",
    "admin:read",
    "admin:write",
];

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    Mastodon43,
    Pixelfed,
}

/// How `/oauth/authorize` and `/oauth/token` treat PKCE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pkce {
    /// A `code_challenge` with method `S256` is required, and the verifier is checked.
    Required,
    /// Checked only when a challenge was sent (what Mastodon 4.3 does).
    IfPresent,
    /// Accepted, stored, never checked (the Pixelfed default here).
    Ignored,
}

/// A misbehaviour to serve instead of (or, for `Slow`, before) the normal answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// That status with a JSON error body.
    Status(u16),
    /// 429 with the flavour's rate-limit headers (Mastodon: `X-RateLimit-Reset` as ISO 8601;
    /// Pixelfed/Laravel: `Retry-After` seconds and `X-RateLimit-Reset` as a Unix timestamp).
    RateLimited { reset_in_secs: u64 },
    /// The normal answer, after this delay.
    Slow(Duration),
    /// 200 `application/json`, chunked, this many bytes of never-closed JSON-ish garbage.
    HugeBody(usize),
    /// 200 `application/json` whose body is not JSON.
    Garbage,
    /// 302 to this URL.
    RedirectTo(String),
    /// 200 `text/html`: some web server's welcome page.
    NotMastodon,
}

/// The account `verify_credentials` answers with.
#[derive(Clone, Debug)]
pub struct StubAccount {
    pub id: String,
    pub username: String,
    pub display_name: String,
    /// `None`: the instance's default avatar URL.
    pub avatar: Option<String>,
    pub followers_count: u64,
    pub following_count: u64,
    pub statuses_count: u64,
}

#[derive(Clone, Debug)]
pub struct RegisteredApp {
    pub id: u64,
    pub name: String,
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub website: Option<String>,
}

#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub revoked: bool,
    pub expires_at: Option<Instant>,
}

impl IssuedToken {
    fn usable(&self) -> bool {
        !self.revoked && self.expires_at.is_none_or(|at| Instant::now() < at)
    }
}

/// An access token created in the instance's settings (see [`StubInstance::accept_token`]).
#[derive(Clone, Debug)]
pub struct AcceptedToken {
    pub access_token: String,
    pub account: StubAccount,
    pub scopes: Vec<String>,
    pub revoked: bool,
}

/// The scopes a pre-issued token has unless told otherwise (Mastodon's "New application"
/// defaults, which include `read`).
pub const PRE_ISSUED_SCOPES: &[&str] = &["read", "write", "follow"];

/// One request as the stub received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string (without `?`), if any.
    pub raw_query: Option<String>,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// Decoded `application/x-www-form-urlencoded` body pairs, in order.
    pub form: Vec<(String, String)>,
    /// The body, when it was `application/json`.
    pub json: Option<Value>,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The fault served for it, if any.
    pub fault: Option<Fault>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn form_field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A parameter wherever it came from: form body, then JSON body (strings, numbers, booleans),
    /// then the query string (Rails and Laravel merge them the same way).
    pub fn param(&self, name: &str) -> Option<String> {
        if let Some(v) = self.form_field(name) {
            return Some(v.to_owned());
        }
        if let Some(v) = self.json.as_ref().and_then(|j| j.get(name)) {
            match v {
                Value::String(s) => return Some(s.clone()),
                Value::Number(n) => return Some(n.to_string()),
                Value::Bool(b) => return Some(b.to_string()),
                _ => {}
            }
        }
        self.query_param(name).map(str::to_owned)
    }

    /// Whether a parameter was sent as a list (`name[]=…` in a form, an array in JSON).
    fn param_is_list(&self, name: &str) -> bool {
        let bracketed = format!("{name}[]");
        self.form.iter().any(|(n, _)| *n == bracketed)
            || matches!(
                self.json.as_ref().and_then(|j| j.get(name)),
                Some(Value::Array(_))
            )
    }

    /// A list parameter: `name[]` form fields, a JSON array, or one whitespace-separated string.
    fn param_list(&self, name: &str) -> Vec<String> {
        let bracketed = format!("{name}[]");
        let from_form: Vec<String> = self
            .form
            .iter()
            .filter(|(n, _)| *n == bracketed)
            .map(|(_, v)| v.clone())
            .collect();
        if !from_form.is_empty() {
            return from_form;
        }
        if let Some(Value::Array(items)) = self.json.as_ref().and_then(|j| j.get(name)) {
            return items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
        }
        self.param(name)
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// Builder and handle
// ---------------------------------------------------------------------------------------------

pub struct StubBuilder {
    flavour: Flavour,
    account: StubAccount,
    title: String,
    version: String,
    pkce: Pkce,
    token_lifetime: Duration,
}

impl StubBuilder {
    fn new(flavour: Flavour) -> StubBuilder {
        let (title, version, pkce, id) = match flavour {
            Flavour::Mastodon43 => (
                "Stub Mastodon",
                "4.3.0",
                Pkce::Required,
                "109302436954721982",
            ),
            Flavour::Pixelfed => (
                "Stub Pixelfed",
                "3.5.3 (compatible; Pixelfed 0.12.4)",
                Pkce::Ignored,
                "704593860113567745",
            ),
        };
        StubBuilder {
            flavour,
            account: StubAccount {
                id: id.to_owned(),
                username: "alice".to_owned(),
                display_name: "Alice".to_owned(),
                avatar: None,
                followers_count: 12,
                following_count: 34,
                statuses_count: 56,
            },
            title: title.to_owned(),
            version: version.to_owned(),
            pkce,
            token_lifetime: Duration::from_secs(31_536_000),
        }
    }

    pub fn with_account(mut self, username: &str, display_name: &str) -> Self {
        self.account.username = username.to_owned();
        self.account.display_name = display_name.to_owned();
        self
    }

    pub fn with_account_id(mut self, id: &str) -> Self {
        self.account.id = id.to_owned();
        self
    }

    pub fn with_counts(mut self, followers: u64, following: u64, statuses: u64) -> Self {
        self.account.followers_count = followers;
        self.account.following_count = following;
        self.account.statuses_count = statuses;
        self
    }

    pub fn with_avatar(mut self, url: &str) -> Self {
        self.account.avatar = Some(url.to_owned());
        self
    }

    pub fn with_title(mut self, title: &str) -> Self {
        self.title = title.to_owned();
        self
    }

    /// The `version` the instance endpoints report.
    pub fn with_version(mut self, version: &str) -> Self {
        self.version = version.to_owned();
        self
    }

    pub fn with_pkce(mut self, pkce: Pkce) -> Self {
        self.pkce = pkce;
        self
    }

    /// Pixelfed only: access-token lifetime (`expires_in`, default 31536000 s).
    pub fn with_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    pub async fn start(self) -> StubInstance {
        self.start_blocking()
    }

    /// Starts the stub without an async context (binding and spawning never block for long).
    pub fn start_blocking(self) -> StubInstance {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let host_port = format!("127.0.0.1:{}", addr.port());
        let shared = Arc::new(Shared {
            flavour: self.flavour,
            origin: format!("http://{host_port}"),
            host_port,
            account: self.account,
            title: self.title,
            version: self.version,
            pkce: self.pkce,
            token_lifetime: self.token_lifetime,
            state: Mutex::new(State {
                next_app_id: match self.flavour {
                    Flavour::Mastodon43 => 1,
                    Flavour::Pixelfed => 7,
                },
                ..State::default()
            }),
        });
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let server_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("stub-instance-{}", addr.port()))
            .spawn(move || serve(server_shared, listener, shutdown_rx))
            .expect("spawn the stub's thread");
        StubInstance {
            shared,
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }
}

/// A running stub instance; dropping it stops the server.
pub struct StubInstance {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for StubInstance {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl StubInstance {
    pub fn builder(flavour: Flavour) -> StubBuilder {
        StubBuilder::new(flavour)
    }

    /// A stub with the default account (`alice`, "Alice").
    pub async fn start(flavour: Flavour) -> StubInstance {
        StubBuilder::new(flavour).start().await
    }

    /// `http://127.0.0.1:PORT`
    pub fn origin(&self) -> String {
        self.shared.origin.clone()
    }

    /// `127.0.0.1:PORT`: what tether's `outbound_allow_private` needs, and the instance's domain.
    pub fn host_port(&self) -> String {
        self.shared.host_port.clone()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn flavour(&self) -> Flavour {
        self.shared.flavour
    }

    pub fn account(&self) -> &StubAccount {
        &self.shared.account
    }

    /// `origin() + path`
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.shared.origin, path)
    }

    /// Serve `fault` for the next request to exactly `path` (no query), once. Several queue up.
    pub fn fail_next(&self, path: &str, fault: Fault) {
        self.shared.lock().one_shot.push((path.to_owned(), fault));
    }

    /// Serve `fault` for every request whose path starts with `path_prefix` until cleared
    /// (`"/"` for everything). The longest matching prefix wins; one-shot faults come first.
    pub fn set_fault(&self, path_prefix: &str, fault: Fault) {
        let mut state = self.shared.lock();
        state.persistent.retain(|(p, _)| p != path_prefix);
        state.persistent.push((path_prefix.to_owned(), fault));
    }

    pub fn clear_fault(&self, path_prefix: &str) {
        self.shared
            .lock()
            .persistent
            .retain(|(p, _)| p != path_prefix);
    }

    /// Drops every one-shot and persistent fault.
    pub fn clear_faults(&self) {
        let mut state = self.shared.lock();
        state.one_shot.clear();
        state.persistent.clear();
    }

    /// When on, `/oauth/authorize` redirects with `error=access_denied` (the user clicked "Deny").
    pub fn deny_authorization(&self, deny: bool) {
        self.shared.lock().deny_authorization = deny;
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub fn last_request(&self, path: &str) -> Option<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .rev()
            .find(|r| r.path == path)
            .cloned()
    }

    /// How many requests (any method, faulted or not) reached exactly `path`.
    pub fn count(&self, path: &str) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    pub fn apps(&self) -> Vec<RegisteredApp> {
        self.shared.lock().apps.clone()
    }

    /// Every access token issued, in order, revoked ones included (see `IssuedToken::revoked`).
    pub fn issued_tokens(&self) -> Vec<IssuedToken> {
        self.shared.lock().tokens.clone()
    }

    /// Access tokens revoked (by `/oauth/revoke`, a Pixelfed refresh, or `revoke_token`), in order.
    pub fn revoked_tokens(&self) -> Vec<String> {
        self.shared.lock().revoked.clone()
    }

    /// Revokes an access token from the instance's side (the user removed the app in settings);
    /// pre-issued tokens too.
    pub fn revoke_token(&self, access_token: &str) {
        let mut state = self.shared.lock();
        state.revoke(access_token);
    }

    /// Makes every issued access token expired now (Pixelfed expiry without waiting).
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for token in &mut self.shared.lock().tokens {
            token.expires_at = Some(now);
        }
    }

    /// The account this instance has for `username`: the builder's account when the name is
    /// its username (so a token and the OAuth flow agree on who that is), otherwise one made up
    /// from the name, the same every time: a stable numeric id, display name = the name with a
    /// capital first letter, `acct` = the name, counts derived from it, and the avatar
    /// [`StubInstance::avatar_of`].
    pub fn account_for(&self, username: &str) -> StubAccount {
        if username == self.shared.account.username {
            return self.shared.account.clone();
        }
        derived_account(username)
    }

    /// The https avatar URL of a made-up account (`https://media.stub.example/avatars/<username>.png`).
    pub fn avatar_of(username: &str) -> String {
        format!("https://media.stub.example/avatars/{username}.png")
    }

    /// Accepts `token` from now on as an access token for `username`'s account
    /// ([`StubInstance::account_for`]), with [`PRE_ISSUED_SCOPES`]: what the user gets by creating
    /// an application in the instance's settings. Accepting a token again replaces its account.
    pub fn accept_token(&self, token: &str, username: &str) {
        self.accept_token_for(token, self.account_for(username), PRE_ISSUED_SCOPES);
    }

    /// [`StubInstance::accept_token`] with an account and scopes of the test's choosing.
    pub fn accept_token_for(&self, token: &str, account: StubAccount, scopes: &[&str]) {
        let mut state = self.shared.lock();
        state.accepted.retain(|t| t.access_token != token);
        state.accepted.push(AcceptedToken {
            access_token: token.to_owned(),
            account,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            revoked: false,
        });
    }

    /// A fresh random token (`tok-<username>-<hex>`), accepted for `username`.
    pub fn new_token(&self, username: &str) -> String {
        let token = format!("tok-{username}-{}", random_hex(16));
        self.accept_token(&token, username);
        token
    }

    /// Every pre-issued token, in the order accepted, revoked ones included.
    pub fn accepted_tokens(&self) -> Vec<AcceptedToken> {
        self.shared.lock().accepted.clone()
    }

    /// Plays the browser: GETs `authorize_url` (which must point at this stub) and returns the
    /// `Location` it redirects to: tether's callback URL with `code` and `state` (or `error`).
    /// Blocking std I/O; fine inside async tests too, as the stub runs on its own thread.
    /// Panics when the answer is not a redirect.
    pub fn authorize_redirect(&self, authorize_url: &str) -> String {
        let url = url::Url::parse(authorize_url).expect("authorize URL parses");
        assert_eq!(
            (url.host_str(), url.port()),
            (Some("127.0.0.1"), Some(self.addr.port())),
            "authorize URL {authorize_url} does not point at this stub ({})",
            self.shared.origin
        );
        let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
        let mut stream = std::net::TcpStream::connect(self.addr).expect("connect to the stub");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        write!(
            stream,
            "GET {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: stub-browser\r\nAccept: text/html\r\nConnection: close\r\n\r\n",
            self.shared.host_port
        )
        .expect("send the authorize request");
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .expect("read the authorize answer");
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let location = head.split("\r\n").skip(1).find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("location")
                .then(|| value.trim().to_owned())
        });
        match (status, location) {
            (301..=303 | 307 | 308, Some(location)) => location,
            _ => panic!("authorize answered {status} without a redirect: {body}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

struct Shared {
    flavour: Flavour,
    origin: String,
    host_port: String,
    account: StubAccount,
    title: String,
    version: String,
    pkce: Pkce,
    token_lifetime: Duration,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Default)]
struct State {
    next_app_id: u64,
    apps: Vec<RegisteredApp>,
    codes: HashMap<String, IssuedCode>,
    tokens: Vec<IssuedToken>,
    accepted: Vec<AcceptedToken>,
    revoked: Vec<String>,
    requests: Vec<RecordedRequest>,
    one_shot: Vec<(String, Fault)>,
    persistent: Vec<(String, Fault)>,
    deny_authorization: bool,
}

impl State {
    fn take_fault(&mut self, path: &str) -> Option<Fault> {
        if let Some(i) = self.one_shot.iter().position(|(p, _)| p == path) {
            return Some(self.one_shot.remove(i).1);
        }
        self.persistent
            .iter()
            .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, fault)| fault.clone())
    }

    fn revoke(&mut self, access_token: &str) {
        if let Some(token) = self
            .tokens
            .iter_mut()
            .find(|t| t.access_token == access_token)
        {
            if !token.revoked {
                token.revoked = true;
                self.revoked.push(access_token.to_owned());
            }
        }
        if let Some(token) = self
            .accepted
            .iter_mut()
            .find(|t| t.access_token == access_token)
        {
            if !token.revoked {
                token.revoked = true;
                self.revoked.push(access_token.to_owned());
            }
        }
    }

    fn app(&self, client_id: Option<&str>) -> Option<&RegisteredApp> {
        let client_id = client_id?;
        self.apps.iter().find(|a| a.client_id == client_id)
    }
}

struct IssuedCode {
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    challenge: Option<String>,
    used: bool,
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 server
// ---------------------------------------------------------------------------------------------

fn serve(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    mut shutdown: oneshot::Receiver<()>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the stub's runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => {
                    if let Ok((stream, _)) = accepted {
                        tokio::spawn(serve_connection(Arc::clone(&shared), stream));
                    }
                }
            }
        }
    });
    // Dropping the runtime cancels the connection tasks still running and closes their sockets.
    drop(runtime);
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
}

enum Body {
    Bytes(Vec<u8>),
    /// Chunked garbage of this many bytes.
    Huge(usize),
}

struct Incoming {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    keep_alive: bool,
}

enum ReadError {
    Closed,
    Bad(u16),
}

impl From<std::io::Error> for ReadError {
    fn from(_: std::io::Error) -> ReadError {
        ReadError::Closed
    }
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Reads more bytes into the buffer; false at end of stream.
    async fn fill(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    async fn read_line(&mut self) -> Result<Vec<u8>, ReadError> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = self.buf.drain(..i + 2).take(i).collect();
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(ReadError::Bad(400));
            }
            if !self.fill().await? {
                return Err(ReadError::Closed);
            }
        }
    }

    async fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, ReadError> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Err(ReadError::Closed);
            }
        }
        Ok(self.buf.drain(..n).collect())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn read_request(conn: &mut Conn) -> Result<Option<Incoming>, ReadError> {
    let head_end = loop {
        if let Some(i) = find(&conn.buf, b"\r\n\r\n") {
            break i;
        }
        if conn.buf.len() > MAX_HEAD {
            return Err(ReadError::Bad(431));
        }
        if !conn.fill().await? {
            return if conn.buf.iter().all(|b| b.is_ascii_whitespace()) {
                Ok(None)
            } else {
                Err(ReadError::Closed)
            };
        }
    };
    let head: Vec<u8> = conn.buf.drain(..head_end + 4).collect();
    let head = String::from_utf8_lossy(&head[..head_end]).into_owned();
    let mut lines = head.trim_start_matches("\r\n").split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version)) = (
        request_line.next(),
        request_line.next(),
        request_line.next(),
    ) else {
        return Err(ReadError::Bad(400));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(ReadError::Bad(505));
    }
    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(ReadError::Bad(400));
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let connection = header("connection")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let keep_alive = if version == "HTTP/1.0" {
        connection.contains("keep-alive")
    } else {
        !connection.contains("close")
    };
    if header("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")) {
        conn.stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await?;
    }
    let chunked =
        header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let content_length = header("content-length").map(|v| v.parse::<usize>());
    let body = if chunked {
        let mut body = Vec::new();
        loop {
            let line = conn.read_line().await?;
            let line = String::from_utf8_lossy(&line);
            let size = usize::from_str_radix(line.split(';').next().unwrap_or_default().trim(), 16)
                .map_err(|_| ReadError::Bad(400))?;
            if size == 0 {
                while !conn.read_line().await?.is_empty() {}
                break body;
            }
            if body.len() + size > MAX_BODY {
                return Err(ReadError::Bad(413));
            }
            body.extend(conn.read_exact(size).await?);
            if !conn.read_line().await?.is_empty() {
                return Err(ReadError::Bad(400));
            }
        }
    } else {
        match content_length {
            None => Vec::new(),
            Some(Err(_)) => return Err(ReadError::Bad(400)),
            Some(Ok(n)) if n > MAX_BODY => return Err(ReadError::Bad(413)),
            Some(Ok(n)) => conn.read_exact(n).await?,
        }
    };
    Ok(Some(Incoming {
        method: method.to_owned(),
        target: target.to_owned(),
        headers,
        body,
        keep_alive,
    }))
}

impl Incoming {
    fn into_recorded(self) -> RecordedRequest {
        let (path, raw_query) = match self.target.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (self.target.clone(), None),
        };
        let query = raw_query.as_deref().map(decode_pairs).unwrap_or_default();
        let content_type = self
            .headers
            .iter()
            .find(|(n, _)| n == "content-type")
            .map(|(_, v)| v.to_ascii_lowercase())
            .unwrap_or_default();
        let form = if content_type.starts_with("application/x-www-form-urlencoded") {
            decode_pairs(&String::from_utf8_lossy(&self.body))
        } else {
            Vec::new()
        };
        let json = if content_type.starts_with("application/json") {
            serde_json::from_slice(&self.body).ok()
        } else {
            None
        };
        RecordedRequest {
            method: self.method,
            path,
            raw_query,
            query,
            form,
            json,
            headers: self.headers,
            body: self.body,
            fault: None,
        }
    }
}

fn decode_pairs(s: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(s.as_bytes())
        .into_owned()
        .collect()
}

async fn serve_connection(shared: Arc<Shared>, stream: TcpStream) {
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
    };
    loop {
        let incoming = match read_request(&mut conn).await {
            Ok(Some(incoming)) => incoming,
            Ok(None) | Err(ReadError::Closed) => return,
            Err(ReadError::Bad(status)) => {
                let response = text_response(status, "text/plain", reason(status));
                let _ = write_response(&mut conn.stream, response, false).await;
                return;
            }
        };
        let keep_alive = incoming.keep_alive;
        let response = respond(&shared, incoming.into_recorded()).await;
        if write_response(&mut conn.stream, response, keep_alive)
            .await
            .is_err()
            || !keep_alive
        {
            let _ = conn.stream.shutdown().await;
            return;
        }
    }
}

async fn write_response(
    stream: &mut TcpStream,
    response: Response,
    keep_alive: bool,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match &response.body {
        Body::Bytes(bytes) => head.push_str(&format!("Content-Length: {}\r\n", bytes.len())),
        Body::Huge(_) => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    head.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    stream.write_all(head.as_bytes()).await?;
    match response.body {
        Body::Bytes(bytes) => stream.write_all(&bytes).await?,
        Body::Huge(total) => {
            let opening = b"[{\"id\":\"1\",\"note\":\"";
            let filler: Vec<u8> = b"garbage,{\"x\":[\""
                .iter()
                .copied()
                .cycle()
                .take(64 * 1024)
                .collect();
            let mut sent = 0;
            while sent < total {
                let chunk: &[u8] = if sent == 0 { opening } else { &filler };
                let chunk = &chunk[..chunk.len().min(total - sent)];
                stream
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                stream.write_all(chunk).await?;
                stream.write_all(b"\r\n").await?;
                sent += chunk.len();
            }
            stream.write_all(b"0\r\n\r\n").await?;
        }
    }
    stream.flush().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

fn json_response(status: u16, value: Value) -> Response {
    Response {
        status,
        headers: vec![(
            "Content-Type".to_owned(),
            "application/json; charset=utf-8".to_owned(),
        )],
        body: Body::Bytes(value.to_string().into_bytes()),
    }
}

fn text_response(status: u16, content_type: &str, text: &str) -> Response {
    Response {
        status,
        headers: vec![("Content-Type".to_owned(), content_type.to_owned())],
        body: Body::Bytes(text.as_bytes().to_vec()),
    }
}

fn redirect_response(location: &str) -> Response {
    Response {
        status: 302,
        headers: vec![
            ("Location".to_owned(), location.to_owned()),
            (
                "Content-Type".to_owned(),
                "text/html; charset=utf-8".to_owned(),
            ),
        ],
        body: Body::Bytes(Vec::new()),
    }
}

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

async fn respond(shared: &Shared, mut request: RecordedRequest) -> Response {
    let fault = {
        let mut state = shared.lock();
        let fault = state.take_fault(&request.path);
        request.fault = fault.clone();
        state.requests.push(request.clone());
        fault
    };
    match fault {
        None => route(shared, &request),
        Some(Fault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            route(shared, &request)
        }
        Some(fault) => fault_response(shared, fault),
    }
}

fn fault_response(shared: &Shared, fault: Fault) -> Response {
    match fault {
        Fault::Status(status) => {
            let message = match (shared.flavour, status) {
                (Flavour::Mastodon43, 401) => "The access token is invalid",
                (Flavour::Mastodon43, 404) => "Record not found",
                (Flavour::Pixelfed, 401) => "Unauthenticated.",
                _ => reason(status),
            };
            match shared.flavour {
                Flavour::Mastodon43 => json_response(status, json!({ "error": message })),
                Flavour::Pixelfed => json_response(status, json!({ "message": message })),
            }
        }
        Fault::RateLimited { reset_in_secs } => {
            let limit = 300;
            let mut response;
            match shared.flavour {
                Flavour::Mastodon43 => {
                    response = json_response(429, json!({ "error": "Too many requests" }));
                    let reset = time::OffsetDateTime::now_utc() + time::Duration::seconds(reset_in_secs as i64);
                    let format = time::macros::format_description!(
                        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
                    );
                    response.headers.push(("X-RateLimit-Reset".to_owned(), reset.format(&format).expect("format")));
                }
                Flavour::Pixelfed => {
                    response = json_response(429, json!({ "message": "Too Many Attempts." }));
                    let reset = unix_now() + reset_in_secs;
                    response.headers.push(("Retry-After".to_owned(), reset_in_secs.to_string()));
                    response.headers.push(("X-RateLimit-Reset".to_owned(), reset.to_string()));
                }
            }
            response.headers.push(("X-RateLimit-Limit".to_owned(), limit.to_string()));
            response.headers.push(("X-RateLimit-Remaining".to_owned(), "0".to_owned()));
            response
        }
        Fault::HugeBody(bytes) => Response {
            status: 200,
            headers: vec![("Content-Type".to_owned(), "application/json; charset=utf-8".to_owned())],
            body: Body::Huge(bytes),
        },
        Fault::Garbage => text_response(
            200,
            "application/json; charset=utf-8",
            "\u{feff}<!-- upstream hiccup --> {\"id\": 1, \"username\": undefined ]] not json at all",
        ),
        Fault::RedirectTo(url) => redirect_response(&url),
        Fault::NotMastodon => text_response(
            200,
            "text/html; charset=utf-8",
            "<!DOCTYPE html>\n<html>\n<head><title>Welcome to nginx!</title></head>\n<body>\n\
             <h1>Welcome to nginx!</h1>\n<p>If you see this page, the nginx web server is \
             successfully installed and working.</p>\n</body>\n</html>\n",
        ),
        Fault::Slow(_) => unreachable!("handled by respond"),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------------

fn route(shared: &Shared, request: &RecordedRequest) -> Response {
    use Flavour::*;
    match (
        shared.flavour,
        request.method.as_str(),
        request.path.as_str(),
    ) {
        (_, "GET", "/api/v1/instance") => instance_v1(shared),
        (Mastodon43, "GET", "/api/v2/instance") => instance_v2(shared),
        (Mastodon43, "GET", "/.well-known/oauth-authorization-server") => oauth_metadata(shared),
        (_, "POST", "/api/v1/apps") => register_app(shared, request),
        (_, "GET", "/oauth/authorize") => authorize(shared, request),
        (_, "POST", "/oauth/token") => token(shared, request),
        (Mastodon43, "POST", "/oauth/revoke") => revoke(shared, request),
        (_, "GET", "/api/v1/accounts/verify_credentials") => verify_credentials(shared, request),
        (Mastodon43, _, _) => json_response(404, json!({ "error": "Record not found" })),
        (Pixelfed, _, _) => json_response(404, json!({ "message": "Not Found" })),
    }
}

fn mastodon_media_configuration() -> Value {
    json!({
        "supported_mime_types": [
            "image/jpeg", "image/png", "image/gif", "image/heic", "image/heif", "image/webp",
            "image/avif", "video/webm", "video/mp4", "video/quicktime", "video/ogg",
            "audio/wave", "audio/wav", "audio/x-wav", "audio/x-pn-wave", "audio/vnd.wave",
            "audio/ogg", "audio/vorbis", "audio/mpeg", "audio/mp3", "audio/webm", "audio/flac",
            "audio/aac", "audio/m4a", "audio/x-m4a", "audio/mp4", "audio/3gpp", "video/x-ms-asf"
        ],
        "description_limit": 1500,
        "image_size_limit": 16_777_216,
        "image_matrix_limit": 33_177_600,
        "video_size_limit": 103_809_024,
        "video_frame_rate_limit": 120,
        "video_matrix_limit": 8_294_400
    })
}

fn instance_v2(shared: &Shared) -> Response {
    let origin = &shared.origin;
    json_response(
        200,
        json!({
            "domain": shared.host_port,
            "title": shared.title,
            "version": shared.version,
            "source_url": "https://github.com/mastodon/mastodon",
            "description": "A stub Mastodon instance for tether's tests.",
            "usage": { "users": { "active_month": 3 } },
            "thumbnail": { "url": format!("{origin}/packs/media/images/preview.png") },
            "icon": [],
            "languages": ["en"],
            "configuration": {
                "urls": {
                    "streaming": format!("ws://{}", shared.host_port),
                    "status": null,
                    "about": format!("{origin}/about"),
                    "privacy_policy": format!("{origin}/privacy-policy"),
                    "terms_of_service": null
                },
                "vapid": { "public_key": "BCk-QqERU0q-CfYZjcuB6lnyyOYfJ2AifKqfeGIm7Z-HiTU5T9eTG5GxVA0_OH5mMlI4UkkDTpaZwozy0TzdZ2M=" },
                "accounts": { "max_featured_tags": 10, "max_pinned_statuses": 5 },
                "statuses": { "max_characters": 500, "max_media_attachments": 4, "characters_reserved_per_url": 23 },
                "media_attachments": mastodon_media_configuration(),
                "polls": { "max_options": 4, "max_characters_per_option": 50, "min_expiration": 300, "max_expiration": 2_629_746 },
                "translation": { "enabled": false }
            },
            "registrations": { "enabled": false, "approval_required": false, "message": null, "url": null },
            "api_versions": { "mastodon": 2 },
            "contact": { "email": "admin@example.invalid", "account": null },
            "rules": []
        }),
    )
}

fn instance_v1(shared: &Shared) -> Response {
    let origin = &shared.origin;
    let body = match shared.flavour {
        Flavour::Mastodon43 => json!({
            "uri": shared.host_port,
            "title": shared.title,
            "short_description": "A stub Mastodon instance for tether's tests.",
            "description": "",
            "email": "admin@example.invalid",
            "version": shared.version,
            "urls": { "streaming_api": format!("ws://{}", shared.host_port) },
            "stats": { "user_count": 3, "status_count": 56, "domain_count": 1 },
            "thumbnail": format!("{origin}/packs/media/images/preview.png"),
            "languages": ["en"],
            "registrations": false,
            "approval_required": false,
            "invites_enabled": false,
            "configuration": {
                "accounts": { "max_featured_tags": 10 },
                "statuses": { "max_characters": 500, "max_media_attachments": 4, "characters_reserved_per_url": 23 },
                "media_attachments": mastodon_media_configuration(),
                "polls": { "max_options": 4, "max_characters_per_option": 50, "min_expiration": 300, "max_expiration": 2_629_746 }
            },
            "contact_account": null,
            "rules": []
        }),
        Flavour::Pixelfed => json!({
            "uri": shared.host_port,
            "title": shared.title,
            "short_description": "A stub Pixelfed instance for tether's tests.",
            "description": "A stub Pixelfed instance for tether's tests.",
            "email": "admin@example.invalid",
            "version": shared.version,
            "urls": {},
            "stats": { "user_count": 3, "status_count": 56, "domain_count": 1 },
            "thumbnail": format!("{origin}/img/pixelfed-icon-color.png"),
            "languages": ["en"],
            "registrations": false,
            "approval_required": false,
            "contact_account": null,
            "rules": [],
            "configuration": {
                "media_attachments": {
                    "image_matrix_limit": 16_777_216,
                    "image_size_limit": 15_728_640,
                    "supported_mime_types": ["image/jpeg", "image/png", "image/gif", "image/webp", "video/mp4"],
                    "video_frame_rate_limit": 120,
                    "video_matrix_limit": 2_304_000,
                    "video_size_limit": 15_728_640,
                    "description_limit": 1000
                },
                "polls": { "max_options": 4, "max_characters_per_option": 50, "min_expiration": 300, "max_expiration": 2_629_746 },
                "statuses": { "characters_reserved_per_url": 23, "max_characters": 500, "max_media_attachments": 4 }
            }
        }),
    };
    json_response(200, body)
}

fn oauth_metadata(shared: &Shared) -> Response {
    let origin = &shared.origin;
    json_response(
        200,
        json!({
            "issuer": format!("{origin}/"),
            "service_documentation": "https://docs.joinmastodon.org/",
            "authorization_endpoint": format!("{origin}/oauth/authorize"),
            "token_endpoint": format!("{origin}/oauth/token"),
            "app_registration_endpoint": format!("{origin}/api/v1/apps"),
            "revocation_endpoint": format!("{origin}/oauth/revoke"),
            "scopes_supported": MASTODON_SCOPES,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code", "client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"]
        }),
    )
}

/// A made-up account for `username`, the same every time (see [`StubInstance::account_for`]).
fn derived_account(username: &str) -> StubAccount {
    let digest = Sha256::digest(username.as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    let mut display_name = String::new();
    let mut chars = username.chars();
    if let Some(first) = chars.next() {
        display_name.extend(first.to_uppercase());
        display_name.push_str(chars.as_str());
    }
    StubAccount {
        // Snowflake-like, 18 digits, like Mastodon's ids.
        id: format!("1{:017}", n % 100_000_000_000_000_000),
        username: username.to_owned(),
        display_name,
        avatar: Some(StubInstance::avatar_of(username)),
        followers_count: n % 1000,
        following_count: (n / 1000) % 1000,
        statuses_count: (n / 1_000_000) % 10_000,
    }
}

fn random_urlsafe(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_alphanumeric(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn laravel_validation(field: &str, message: &str) -> Response {
    json_response(
        422,
        json!({ "message": message, "errors": { field: [message] } }),
    )
}

fn register_app(shared: &Shared, request: &RecordedRequest) -> Response {
    let name = request
        .param("client_name")
        .filter(|n| !n.trim().is_empty());
    match shared.flavour {
        Flavour::Mastodon43 => {
            let Some(name) = name else {
                return json_response(
                    422,
                    json!({ "error": "Validation failed: Application name can't be blank" }),
                );
            };
            let redirect_uris = request.param_list("redirect_uris");
            if redirect_uris.is_empty() {
                return json_response(
                    422,
                    json!({ "error": "Validation failed: Redirect URI can't be blank" }),
                );
            }
            if redirect_uris.iter().any(|u| url::Url::parse(u).is_err()) {
                return json_response(
                    422,
                    json!({ "error": "Validation failed: Redirect URI must be an absolute URI." }),
                );
            }
            let scopes = request.param_list("scopes");
            let scopes = if scopes.is_empty() {
                vec!["read".to_owned()]
            } else {
                scopes
            };
            if scopes
                .iter()
                .any(|s| !MASTODON_SCOPES.contains(&s.as_str()))
            {
                return json_response(
                    422,
                    json!({ "error": "Validation failed: Scopes doesn't match configured on the server." }),
                );
            }
            let website = request.param("website").filter(|w| !w.is_empty());
            let mut state = shared.lock();
            let id = state.next_app_id;
            state.next_app_id += 1;
            let app = RegisteredApp {
                id,
                name,
                client_id: random_urlsafe(32),
                client_secret: random_urlsafe(32),
                redirect_uris,
                scopes,
                website,
            };
            state.apps.push(app.clone());
            json_response(
                200,
                json!({
                    "id": app.id.to_string(),
                    "name": app.name,
                    "website": app.website,
                    "scopes": app.scopes,
                    "redirect_uri": app.redirect_uris.join("\n"),
                    "redirect_uris": app.redirect_uris,
                    "vapid_key": "BCk-QqERU0q-CfYZjcuB6lnyyOYfJ2AifKqfeGIm7Z-HiTU5T9eTG5GxVA0_OH5mMlI4UkkDTpaZwozy0TzdZ2M=",
                    "client_id": app.client_id,
                    "client_secret": app.client_secret,
                    "client_secret_expires_at": 0
                }),
            )
        }
        Flavour::Pixelfed => {
            let Some(name) = name else {
                return laravel_validation("client_name", "The client name field is required.");
            };
            if request.param_is_list("redirect_uris") {
                return laravel_validation("redirect_uris", "The redirect uris must be a string.");
            }
            let Some(redirect_uri) = request
                .param("redirect_uris")
                .filter(|u| !u.trim().is_empty())
            else {
                return laravel_validation("redirect_uris", "The redirect uris field is required.");
            };
            let mut state = shared.lock();
            let id = state.next_app_id;
            state.next_app_id += 1;
            let app = RegisteredApp {
                id,
                name,
                client_id: id.to_string(),
                client_secret: random_alphanumeric(40),
                redirect_uris: vec![redirect_uri.trim().to_owned()],
                scopes: PIXELFED_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
                website: None,
            };
            state.apps.push(app.clone());
            json_response(
                200,
                json!({
                    "id": app.id,
                    "name": app.name,
                    "website": null,
                    "redirect_uri": app.redirect_uris[0],
                    "client_id": app.id,
                    "client_secret": app.client_secret,
                    "vapid_key": null
                }),
            )
        }
    }
}

fn html_error(status: u16, error: &str, description: &str) -> Response {
    text_response(
        status,
        "text/html; charset=utf-8",
        &format!("<!DOCTYPE html><html><body><h1>An error has occurred</h1><p>{error}: {description}</p></body></html>"),
    )
}

fn with_query(base: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let mut url = url::Url::parse(base).expect("registered redirect URIs are absolute");
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
    }
    url.to_string()
}

fn authorize(shared: &Shared, request: &RecordedRequest) -> Response {
    let q = |name: &str| request.query_param(name);
    let mut state = shared.lock();
    let Some(app) = state.app(q("client_id")).cloned() else {
        return html_error(
            400,
            "invalid_client",
            "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
        );
    };
    let Some(redirect_uri) = q("redirect_uri").filter(|u| app.redirect_uris.iter().any(|r| r == u))
    else {
        return html_error(
            400,
            "invalid_redirect_uri",
            "The requested redirect uri is malformed or doesn't match client redirect URI.",
        );
    };
    let state_param = q("state");
    let deny = |error: &str, description: &str| {
        redirect_response(&with_query(
            redirect_uri,
            &[
                ("error", Some(error)),
                ("error_description", Some(description)),
                ("state", state_param),
            ],
        ))
    };
    if q("response_type") != Some("code") {
        return deny(
            "unsupported_response_type",
            "The authorization server does not support this response type.",
        );
    }
    let scopes: Vec<String> = q("scope")
        .unwrap_or("read")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    // Mastodon: a subset of the app's scopes; Pixelfed: any scope Passport knows.
    let scope_ok = |s: &String| match shared.flavour {
        Flavour::Mastodon43 => app.scopes.contains(s),
        Flavour::Pixelfed => PIXELFED_SCOPES.contains(&s.as_str()),
    };
    if scopes.is_empty() || !scopes.iter().all(scope_ok) {
        return deny(
            "invalid_scope",
            "The requested scope is invalid, unknown, or malformed.",
        );
    }
    let challenge = q("code_challenge").map(str::to_owned);
    if shared.pkce != Pkce::Ignored {
        if challenge.is_none() && shared.pkce == Pkce::Required {
            return deny(
                "invalid_request",
                "The request is missing a required parameter: code_challenge.",
            );
        }
        // Without a method, Doorkeeper assumes "plain", which the server does not allow.
        if challenge.is_some() && q("code_challenge_method") != Some("S256") {
            return deny("invalid_request", "Code challenge method must be S256.");
        }
    }
    if state.deny_authorization {
        return deny(
            "access_denied",
            "The resource owner or authorization server denied the request.",
        );
    }
    let code = match shared.flavour {
        Flavour::Mastodon43 => random_urlsafe(32),
        Flavour::Pixelfed => format!("def50200{}", random_hex(300)),
    };
    state.codes.insert(
        code.clone(),
        IssuedCode {
            client_id: app.client_id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            scopes,
            challenge,
            used: false,
        },
    );
    if redirect_uri == "urn:ietf:wg:oauth:2.0:oob" {
        return text_response(
            200,
            "text/html; charset=utf-8",
            &format!("<!DOCTYPE html><html><body><input class=\"oauth-code\" readonly value=\"{code}\"></body></html>"),
        );
    }
    redirect_response(&with_query(
        redirect_uri,
        &[("code", Some(&code)), ("state", state_param)],
    ))
}

/// `(client_id, client_secret)` from the body or from HTTP Basic.
fn client_credentials(request: &RecordedRequest) -> (Option<String>, Option<String>) {
    let basic = request
        .header("authorization")
        .and_then(|h| {
            h.strip_prefix("Basic ")
                .or_else(|| h.strip_prefix("basic "))
        })
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(id, secret)| (id.to_owned(), secret.to_owned()))
        });
    match basic {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (request.param("client_id"), request.param("client_secret")),
    }
}

fn oauth_error(shared: &Shared, status: u16, error: &str, description: &str) -> Response {
    match shared.flavour {
        Flavour::Mastodon43 => json_response(
            status,
            json!({ "error": error, "error_description": description }),
        ),
        Flavour::Pixelfed => json_response(
            status,
            json!({ "error": error, "error_description": description, "message": description }),
        ),
    }
}

fn invalid_client(shared: &Shared) -> Response {
    let description = match shared.flavour {
        Flavour::Mastodon43 => "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
        Flavour::Pixelfed => "Client authentication failed",
    };
    oauth_error(shared, 401, "invalid_client", description)
}

fn invalid_grant(shared: &Shared, description: &str) -> Response {
    oauth_error(shared, 400, "invalid_grant", description)
}

const INVALID_GRANT: &str = "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.";

fn pkce_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn token(shared: &Shared, request: &RecordedRequest) -> Response {
    let grant_type = request.param("grant_type");
    match (shared.flavour, grant_type.as_deref()) {
        (_, None) => {
            return oauth_error(
                shared,
                400,
                "invalid_request",
                "The request is missing a required parameter: grant_type.",
            )
        }
        (_, Some("authorization_code")) | (Flavour::Pixelfed, Some("refresh_token")) => {}
        (_, Some(_)) => {
            return oauth_error(
                shared,
                400,
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server.",
            )
        }
    }
    let (client_id, client_secret) = client_credentials(request);
    let mut state = shared.lock();
    let Some(app) = state.app(client_id.as_deref()).cloned() else {
        return invalid_client(shared);
    };
    if client_secret.as_deref() != Some(app.client_secret.as_str()) {
        return invalid_client(shared);
    }
    let scopes = if grant_type.as_deref() == Some("refresh_token") {
        let refresh = request.param("refresh_token");
        let Some(old) = state
            .tokens
            .iter()
            .find(|t| {
                !t.revoked
                    && t.client_id == app.client_id
                    && t.refresh_token.is_some()
                    && t.refresh_token == refresh
            })
            .cloned()
        else {
            return invalid_grant(shared, "The refresh token is invalid.");
        };
        state.revoke(&old.access_token);
        old.scopes
    } else {
        let Some(code_value) = request.param("code") else {
            return oauth_error(
                shared,
                400,
                "invalid_request",
                "The request is missing a required parameter: code.",
            );
        };
        let redirect_uri = request.param("redirect_uri");
        let Some(code) = state.codes.get(&code_value) else {
            return invalid_grant(shared, INVALID_GRANT);
        };
        if code.used
            || code.client_id != app.client_id
            || redirect_uri.as_deref() != Some(code.redirect_uri.as_str())
        {
            return invalid_grant(shared, INVALID_GRANT);
        }
        if shared.pkce != Pkce::Ignored {
            if let Some(challenge) = &code.challenge {
                let Some(verifier) = request.param("code_verifier") else {
                    return oauth_error(
                        shared,
                        400,
                        "invalid_request",
                        "The request is missing a required parameter: code_verifier.",
                    );
                };
                if pkce_s256(&verifier) != *challenge {
                    return invalid_grant(shared, INVALID_GRANT);
                }
            }
        }
        let code = state.codes.get_mut(&code_value).expect("code just found");
        code.used = true;
        code.scopes.clone()
    };
    let created_at = unix_now();
    let token = match shared.flavour {
        Flavour::Mastodon43 => IssuedToken {
            access_token: random_urlsafe(32),
            refresh_token: None,
            client_id: app.client_id.clone(),
            scopes,
            revoked: false,
            expires_at: None,
        },
        Flavour::Pixelfed => {
            let lifetime = shared.token_lifetime.as_secs();
            let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"RS256"}"#);
            let claims = json!({
                "aud": app.client_id,
                "jti": random_hex(40),
                "iat": created_at,
                "nbf": created_at,
                "exp": created_at + lifetime,
                "sub": shared.account.id,
                "scopes": scopes,
            });
            let mut signature = vec![0u8; 512];
            rand::thread_rng().fill_bytes(&mut signature);
            IssuedToken {
                access_token: format!(
                    "{header}.{}.{}",
                    URL_SAFE_NO_PAD.encode(claims.to_string()),
                    URL_SAFE_NO_PAD.encode(signature)
                ),
                refresh_token: Some(format!("def50200{}", random_hex(350))),
                client_id: app.client_id.clone(),
                scopes,
                revoked: false,
                expires_at: Some(Instant::now() + shared.token_lifetime),
            }
        }
    };
    state.tokens.push(token.clone());
    match shared.flavour {
        Flavour::Mastodon43 => json_response(
            200,
            json!({
                "access_token": token.access_token,
                "token_type": "Bearer",
                "scope": token.scopes.join(" "),
                "created_at": created_at
            }),
        ),
        Flavour::Pixelfed => json_response(
            200,
            json!({
                "token_type": "Bearer",
                "expires_in": shared.token_lifetime.as_secs(),
                "access_token": token.access_token,
                "refresh_token": token.refresh_token
            }),
        ),
    }
}

fn revoke(shared: &Shared, request: &RecordedRequest) -> Response {
    let unauthorized = || {
        json_response(
            403,
            json!({ "error": "unauthorized_client", "error_description": "You are not authorized to revoke this token" }),
        )
    };
    let (client_id, client_secret) = client_credentials(request);
    let mut state = shared.lock();
    let Some(app) = state.app(client_id.as_deref()).cloned() else {
        return unauthorized();
    };
    if client_secret.as_deref() != Some(app.client_secret.as_str()) {
        return unauthorized();
    }
    if let Some(token) = request.param("token") {
        if state.accepted.iter().any(|t| t.access_token == token) {
            // Created in the settings: it belongs to that application, not to the caller's.
            return unauthorized();
        }
        if let Some(found) = state.tokens.iter().find(|t| t.access_token == token) {
            if found.client_id != app.client_id {
                return unauthorized();
            }
            state.revoke(&token);
        }
    }
    json_response(200, json!({}))
}

fn verify_credentials(shared: &Shared, request: &RecordedRequest) -> Response {
    let unauthenticated = || match shared.flavour {
        Flavour::Mastodon43 => {
            json_response(401, json!({ "error": "The access token is invalid" }))
        }
        Flavour::Pixelfed => json_response(401, json!({ "message": "Unauthenticated." })),
    };
    let bearer = request.header("authorization").and_then(|h| {
        let (scheme, token) = h.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
    });
    let Some(bearer) = bearer else {
        return unauthenticated();
    };
    let found = {
        let state = shared.lock();
        let issued = state
            .tokens
            .iter()
            .find(|t| t.access_token == bearer && t.usable())
            .map(|t| (t.scopes.clone(), shared.account.clone()));
        issued.or_else(|| {
            state
                .accepted
                .iter()
                .find(|t| t.access_token == bearer && !t.revoked)
                .map(|t| (t.scopes.clone(), t.account.clone()))
        })
    };
    let Some((scopes, account)) = found else {
        return unauthenticated();
    };
    if shared.flavour == Flavour::Mastodon43
        && !scopes
            .iter()
            .any(|s| s == "read" || s == "read:accounts" || s == "profile")
    {
        return json_response(
            403,
            json!({ "error": "This action is outside the authorized scopes" }),
        );
    }
    let account = &account;
    let origin = &shared.origin;
    let (url, uri, default_avatar) = match shared.flavour {
        Flavour::Mastodon43 => (
            format!("{origin}/@{}", account.username),
            format!("{origin}/users/{}", account.username),
            format!("{origin}/avatars/original/missing.png"),
        ),
        Flavour::Pixelfed => (
            format!("{origin}/{}", account.username),
            format!("{origin}/users/{}", account.username),
            format!("{origin}/storage/avatars/default.jpg"),
        ),
    };
    let avatar = account.avatar.clone().unwrap_or(default_avatar);
    json_response(
        200,
        json!({
            "id": account.id,
            "username": account.username,
            "acct": account.username,
            "display_name": account.display_name,
            "locked": false,
            "bot": false,
            "discoverable": true,
            "group": false,
            "created_at": "2022-11-07T00:00:00.000Z",
            "note": "<p>A stub account.</p>",
            "url": url,
            "uri": uri,
            "avatar": avatar,
            "avatar_static": avatar,
            "header": format!("{origin}/headers/original/missing.png"),
            "header_static": format!("{origin}/headers/original/missing.png"),
            "followers_count": account.followers_count,
            "following_count": account.following_count,
            "statuses_count": account.statuses_count,
            "last_status_at": null,
            "emojis": [],
            "fields": [],
            "source": { "privacy": "public", "sensitive": false, "language": null, "note": "A stub account.", "fields": [] }
        }),
    )
}
