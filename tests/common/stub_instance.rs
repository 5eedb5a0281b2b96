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
//! - Both: posts with media ([`StubInstance::add_post`], [`NewPost`]) and the endpoints to read and
//!   fix them: `GET /api/v1/accounts/:id/statuses`, `GET /api/v1/statuses/:id`, and on Mastodon
//!   `GET /api/v1/statuses/:id/source` and `PUT /api/v1/statuses/:id` (UpdateStatusService's
//!   destructive semantics: what is not sent is blanked); `PUT /api/v1/media/:id` (Mastodon: 404
//!   for media already attached to a post, as the real thing; Pixelfed: updates the description).
//!   Every one of them needs a bearer token, looked up as `verify_credentials` does (on Mastodon
//!   also the scope: `read`/`read:statuses` to read, `write`/`write:statuses`/`write:media` to
//!   write), even where real instances serve public posts without one.
//! - Both: rate limits per bearer token on a path prefix ([`StubBuilder::with_rate_limit`],
//!   [`StubInstance::set_rate_limit`]), with each flavour's `X-RateLimit-*` headers.
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
// Posts and media
// ---------------------------------------------------------------------------------------------

/// A media attachment of a [`StubPost`].
#[derive(Clone, Debug)]
pub struct StubMedia {
    /// A numeric string, unique across the stub (Mastodon and Pixelfed both send ids as strings).
    pub id: String,
    /// `"image"`, `"gifv"`, `"video"` or `"audio"`.
    pub kind: String,
    /// The alt text; `None` is sent as `null`.
    pub description: Option<String>,
}

/// A post of one of the stub's accounts.
#[derive(Clone, Debug)]
pub struct StubPost {
    /// A numeric string, like Mastodon's snowflakes and Pixelfed's ids; newer posts have larger ids.
    pub id: String,
    /// The [`StubAccount::id`] that owns it.
    pub account_id: String,
    /// HTML, as the API sends it.
    pub content: String,
    /// The source text (what `/api/v1/statuses/:id/source` returns).
    pub text: String,
    pub spoiler_text: String,
    pub sensitive: bool,
    pub language: Option<String>,
    pub created_at: time::OffsetDateTime,
    /// When `PUT /api/v1/statuses/:id` last changed it.
    pub edited_at: Option<time::OffsetDateTime>,
    /// In attachment order.
    pub media: Vec<StubMedia>,
    /// A boost: left out by `exclude_reblogs=true`.
    pub reblog: bool,
    /// How many times `PUT /api/v1/statuses/:id` changed it.
    pub edits: u32,
}

/// What [`StubInstance::add_post`] adds: `NewPost::text("hello").image(None).language("de")`.
/// Defaults: content `<p>text</p>` (HTML-escaped, a blank line starts a paragraph, a newline is
/// `<br />`, as Mastodon formats plain text), no content warning, not sensitive, language `en`,
/// created "now minus N minutes" (see [`StubInstance::add_post`]), no media, not a boost.
#[derive(Clone, Debug)]
pub struct NewPost {
    text: String,
    html: Option<String>,
    spoiler_text: String,
    sensitive: bool,
    language: Option<String>,
    created_at: Option<time::OffsetDateTime>,
    media: Vec<(&'static str, Option<String>)>,
    reblog: bool,
}

impl NewPost {
    pub fn text(text: &str) -> NewPost {
        NewPost {
            text: text.to_owned(),
            html: None,
            spoiler_text: String::new(),
            sensitive: false,
            language: Some("en".to_owned()),
            created_at: None,
            media: Vec::new(),
            reblog: false,
        }
    }

    /// The content HTML exactly as given (the source text stays what `text` said), e.g. to send
    /// `<p>a <script>alert(1)</script></p>` to a client.
    pub fn html(mut self, html: &str) -> Self {
        self.html = Some(html.to_owned());
        self
    }

    pub fn spoiler(mut self, spoiler_text: &str) -> Self {
        self.spoiler_text = spoiler_text.to_owned();
        self
    }

    pub fn sensitive(mut self, sensitive: bool) -> Self {
        self.sensitive = sensitive;
        self
    }

    pub fn language(mut self, language: &str) -> Self {
        self.language = Some(language.to_owned());
        self
    }

    /// No language (`null`), as posts from some clients have.
    pub fn no_language(mut self) -> Self {
        self.language = None;
        self
    }

    pub fn created_at(mut self, at: time::OffsetDateTime) -> Self {
        self.created_at = Some(at);
        self
    }

    /// Attaches an image (after the attachments already added) with this alt text.
    pub fn image(self, description: Option<&str>) -> Self {
        self.attach("image", description)
    }

    pub fn gifv(self, description: Option<&str>) -> Self {
        self.attach("gifv", description)
    }

    pub fn video(self, description: Option<&str>) -> Self {
        self.attach("video", description)
    }

    pub fn audio(self, description: Option<&str>) -> Self {
        self.attach("audio", description)
    }

    /// Makes it a boost (its JSON has a copy of itself in `reblog`).
    pub fn reblog(mut self) -> Self {
        self.reblog = true;
        self
    }

    fn attach(mut self, kind: &'static str, description: Option<&str>) -> Self {
        self.media.push((kind, description.map(str::to_owned)));
        self
    }
}

/// Plain text as Mastodon's formatter renders it: escaped, paragraphs on blank lines, `<br />`
/// for single newlines. Empty text is empty content.
fn text_to_html(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
        .replace("\r\n", "\n");
    escaped
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| format!("<p>{}</p>", p.trim_matches('\n').replace('\n', "<br />")))
        .collect()
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
    description_limit: Option<u32>,
    rate_limits: Vec<RateLimitRule>,
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
            description_limit: None,
            rate_limits: Vec::new(),
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

    /// The longest alt text accepted, advertised as `configuration.media_attachments.description_limit`
    /// by the instance endpoints (default: Mastodon 1500, Pixelfed 1000). Real Mastodon advertises
    /// it from 4.4 on (before, the limit is the same 1500 but not in the API); the stub always does,
    /// whatever [`StubBuilder::with_version`] says.
    pub fn with_description_limit(mut self, limit: u32) -> Self {
        self.description_limit = Some(limit);
        self
    }

    /// At most `limit` requests per bearer token (requests without one share a count) to paths
    /// starting with `path_prefix` in each fixed `window`, which starts with the token's first
    /// request. See [`StubInstance::set_rate_limit`].
    pub fn with_rate_limit(mut self, path_prefix: &str, limit: u32, window: Duration) -> Self {
        self.rate_limits.retain(|r| r.prefix != path_prefix);
        self.rate_limits
            .push(RateLimitRule::new(path_prefix, limit, window));
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
            description_limit: self.description_limit.unwrap_or(match self.flavour {
                Flavour::Mastodon43 => 1500,
                Flavour::Pixelfed => 1000,
            }),
            started_at: time::OffsetDateTime::now_utc()
                .replace_nanosecond(0)
                .expect("0 ns is valid"),
            state: Mutex::new(State {
                next_app_id: match self.flavour {
                    Flavour::Mastodon43 => 1,
                    Flavour::Pixelfed => 7,
                },
                rate_limits: self.rate_limits,
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
        state.remember_account(&self.shared, &account);
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

    /// Adds a post for `username`'s account (the one [`StubInstance::account_for`] and
    /// [`StubInstance::new_token`] give) and returns its id. Ids increase with each call, so later
    /// posts are newer; unless [`NewPost::created_at`] says otherwise, the N-th post is created
    /// 10 080 − N minutes before the stub started (about a week ago, a minute apart, never in the
    /// future), so that later-added posts are newer too.
    pub fn add_post(&self, username: &str, post: NewPost) -> String {
        let account = self.account_for(username);
        let mut state = self.shared.lock();
        if state.account_by_id(&self.shared, &account.id).is_none() {
            state.remember_account(&self.shared, &account);
        }
        state.next_post += 1;
        let n = state.next_post;
        // Snowflake-like: 18 digits, increasing.
        let id = (113_000_000_000_000_000u64 + n * 65_536).to_string();
        let created_at = post.created_at.unwrap_or_else(|| {
            let at = self.shared.started_at - time::Duration::minutes(10_080)
                + time::Duration::minutes(n as i64);
            at.min(time::OffsetDateTime::now_utc())
        });
        let media = post
            .media
            .into_iter()
            .map(|(kind, description)| {
                state.next_media += 1;
                StubMedia {
                    id: (112_000_000_000_000_000u64 + state.next_media).to_string(),
                    kind: kind.to_owned(),
                    description,
                }
            })
            .collect();
        let content = post.html.unwrap_or_else(|| text_to_html(&post.text));
        state.posts.push(StubPost {
            id: id.clone(),
            account_id: account.id,
            content,
            text: post.text,
            spoiler_text: post.spoiler_text,
            sensitive: post.sensitive,
            language: post.language,
            created_at,
            edited_at: None,
            media,
            reblog: post.reblog,
            edits: 0,
        });
        id
    }

    /// `count` posts for `username`, each with one image without description; their ids, newest
    /// first.
    pub fn add_image_posts(&self, username: &str, count: usize) -> Vec<String> {
        let mut ids: Vec<String> = (1..=count)
            .map(|i| self.add_post(username, NewPost::text(&format!("Photo {i}")).image(None)))
            .collect();
        ids.reverse();
        ids
    }

    /// The post with this id, unless deleted.
    pub fn post(&self, id: &str) -> Option<StubPost> {
        self.shared
            .lock()
            .posts
            .iter()
            .find(|p| p.id == id)
            .cloned()
    }

    /// `username`'s posts, newest first.
    pub fn posts_of(&self, username: &str) -> Vec<StubPost> {
        let account_id = self.account_for(username).id;
        let mut posts: Vec<StubPost> = self
            .shared
            .lock()
            .posts
            .iter()
            .filter(|p| p.account_id == account_id)
            .cloned()
            .collect();
        posts.sort_by_key(|p| std::cmp::Reverse(numeric_id(&p.id)));
        posts
    }

    /// Deletes a post (the API answers 404 for it from now on).
    pub fn delete_post(&self, id: &str) {
        self.shared.lock().posts.retain(|p| p.id != id);
    }

    /// Sets an attachment's alt text, as if the user had edited it in the instance's own UI (not
    /// an edit: `edits` and `edited_at` stay).
    pub fn set_media_description(&self, media_id: &str, description: Option<&str>) {
        let mut state = self.shared.lock();
        for media in state.posts.iter_mut().flat_map(|p| p.media.iter_mut()) {
            if media.id == media_id {
                media.description = description.map(str::to_owned);
            }
        }
    }

    /// How many `PUT /api/v1/statuses/:id` changed something, over all posts (deleted ones too).
    pub fn edit_count(&self) -> usize {
        self.shared.lock().edit_count
    }

    /// The alt-text limit the instance advertises and enforces.
    pub fn description_limit(&self) -> u32 {
        self.shared.description_limit
    }

    /// From now on, at most `limit` requests per bearer token (requests without one share a
    /// count) to paths starting with `path_prefix` in each fixed `window`, which starts with the
    /// token's first request under this limit. The longest matching prefix counts; setting a
    /// prefix again starts its counts afresh. Faulted requests are not counted.
    ///
    /// Every answer under a limited prefix has `X-RateLimit-Limit` and `X-RateLimit-Remaining`.
    /// Mastodon (rack-attack) also sends `X-RateLimit-Reset` on every answer, as ISO 8601 with
    /// microseconds (`2026-11-30T10:00:00.000000Z`), and a used-up limit is 429
    /// `{"error": "Too many requests"}`. Pixelfed (Laravel's throttle) sends `Retry-After`
    /// (seconds) and `X-RateLimit-Reset` (Unix seconds) only on the 429, whose body is
    /// `{"message": "Too Many Attempts."}`. Pixelfed's real limit on `PUT /api/v1/media/:id` is
    /// 10 a minute per user.
    pub fn set_rate_limit(&self, path_prefix: &str, limit: u32, window: Duration) {
        let mut state = self.shared.lock();
        state.rate_limits.retain(|r| r.prefix != path_prefix);
        state
            .rate_limits
            .push(RateLimitRule::new(path_prefix, limit, window));
    }

    pub fn clear_rate_limit(&self, path_prefix: &str) {
        self.shared
            .lock()
            .rate_limits
            .retain(|r| r.prefix != path_prefix);
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
    description_limit: u32,
    /// Default post times count back from here.
    started_at: time::OffsetDateTime,
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
    /// Every post, in the order added.
    posts: Vec<StubPost>,
    /// Accounts other than the builder's that posts or accepted tokens belong to.
    accounts: Vec<StubAccount>,
    next_post: u64,
    next_media: u64,
    edit_count: usize,
    rate_limits: Vec<RateLimitRule>,
}

/// A rate limit on a path prefix; counts per bearer token in fixed windows.
struct RateLimitRule {
    prefix: String,
    limit: u32,
    window: Duration,
    /// Bearer token (`""` for none) → (window start, requests in it).
    windows: HashMap<String, (Instant, u32)>,
}

impl RateLimitRule {
    fn new(prefix: &str, limit: u32, window: Duration) -> RateLimitRule {
        RateLimitRule {
            prefix: prefix.to_owned(),
            limit,
            window,
            windows: HashMap::new(),
        }
    }
}

/// Where a request stands against the rate limit of its path.
struct RateVerdict {
    limit: u32,
    remaining: u32,
    reset_in: Duration,
    exceeded: bool,
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

    /// Counts a request against the longest rate-limit prefix matching `path`, if any.
    fn count_request(&mut self, path: &str, bearer: Option<&str>) -> Option<RateVerdict> {
        let rule = self
            .rate_limits
            .iter_mut()
            .filter(|r| path.starts_with(r.prefix.as_str()))
            .max_by_key(|r| r.prefix.len())?;
        let now = Instant::now();
        let window = rule.window;
        let entry = rule
            .windows
            .entry(bearer.unwrap_or_default().to_owned())
            .or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        let exceeded = entry.1 >= rule.limit;
        if !exceeded {
            entry.1 += 1;
        }
        Some(RateVerdict {
            limit: rule.limit,
            remaining: rule.limit.saturating_sub(entry.1),
            reset_in: (entry.0 + window).saturating_duration_since(now),
            exceeded,
        })
    }

    /// The account with this id: the builder's, or one that posts or tokens were made for.
    fn account_by_id(&self, shared: &Shared, id: &str) -> Option<StubAccount> {
        if shared.account.id == id {
            return Some(shared.account.clone());
        }
        self.accounts.iter().find(|a| a.id == id).cloned()
    }

    fn remember_account(&mut self, shared: &Shared, account: &StubAccount) {
        if account.id == shared.account.id {
            return;
        }
        self.accounts.retain(|a| a.id != account.id);
        self.accounts.push(account.clone());
    }

    fn post_mut(&mut self, id: &str) -> Option<&mut StubPost> {
        self.posts.iter_mut().find(|p| p.id == id)
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

/// A calm placeholder picture whose colour follows the path.
fn picture(path: &str) -> Response {
    let hue = path
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 360;
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"320\" height=\"320\" viewBox=\"0 0 320 320\">\
         <defs><linearGradient id=\"g\" x1=\"0\" y1=\"0\" x2=\"1\" y2=\"1\">\
         <stop offset=\"0\" stop-color=\"hsl({hue},55%,72%)\"/>\
         <stop offset=\"1\" stop-color=\"hsl({},50%,42%)\"/></linearGradient></defs>\
         <rect width=\"320\" height=\"320\" fill=\"url(#g)\"/>\
         <circle cx=\"235\" cy=\"90\" r=\"34\" fill=\"hsl(45,90%,85%)\"/>\
         <path d=\"M0 250 L90 160 L160 225 L220 170 L320 260 L320 320 L0 320 Z\" fill=\"hsl({hue},35%,28%)\"/></svg>",
        (hue + 40) % 360
    );
    text_response(200, "image/svg+xml", &svg)
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
        None => rate_limited_route(shared, &request),
        Some(Fault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            rate_limited_route(shared, &request)
        }
        Some(fault) => fault_response(shared, fault),
    }
}

/// [`route`] behind the rate limit of the request's path, if any.
fn rate_limited_route(shared: &Shared, request: &RecordedRequest) -> Response {
    let bearer = bearer_token(request);
    let verdict = shared
        .lock()
        .count_request(&request.path, bearer.as_deref());
    let Some(verdict) = verdict else {
        return route(shared, request);
    };
    if verdict.exceeded {
        return too_many_requests(shared, verdict.limit, verdict.reset_in);
    }
    let mut response = route(shared, request);
    response
        .headers
        .push(("X-RateLimit-Limit".to_owned(), verdict.limit.to_string()));
    response.headers.push((
        "X-RateLimit-Remaining".to_owned(),
        verdict.remaining.to_string(),
    ));
    if shared.flavour == Flavour::Mastodon43 {
        response.headers.push((
            "X-RateLimit-Reset".to_owned(),
            iso8601_micros(time::OffsetDateTime::now_utc() + verdict.reset_in),
        ));
    }
    response
}

/// 429 in the flavour's shape, with its rate-limit headers.
fn too_many_requests(shared: &Shared, limit: u32, reset_in: Duration) -> Response {
    let mut response;
    match shared.flavour {
        Flavour::Mastodon43 => {
            response = json_response(429, json!({ "error": "Too many requests" }));
            response.headers.push((
                "X-RateLimit-Reset".to_owned(),
                iso8601_micros(time::OffsetDateTime::now_utc() + reset_in),
            ));
        }
        Flavour::Pixelfed => {
            response = json_response(429, json!({ "message": "Too Many Attempts." }));
            // Laravel rounds up: a client waiting Retry-After seconds finds the window reset.
            let secs = reset_in.as_secs() + u64::from(reset_in.subsec_nanos() > 0);
            response
                .headers
                .push(("Retry-After".to_owned(), secs.to_string()));
            response.headers.push((
                "X-RateLimit-Reset".to_owned(),
                (unix_now() + secs).to_string(),
            ));
        }
    }
    response
        .headers
        .push(("X-RateLimit-Limit".to_owned(), limit.to_string()));
    response
        .headers
        .push(("X-RateLimit-Remaining".to_owned(), "0".to_owned()));
    response
}

/// `2026-11-30T10:00:00.123456Z`, as rack-attack's `X-RateLimit-Reset`.
fn iso8601_micros(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .expect("a UTC time formats")
}

/// `2026-11-30T10:00:00.000Z`, as Mastodon's `created_at`.
fn iso8601_millis(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .expect("a UTC time formats")
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
            too_many_requests(shared, 300, Duration::from_secs(reset_in_secs))
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
    let segments: Vec<&str> = request.path.split('/').collect();
    match (shared.flavour, request.method.as_str(), segments.as_slice()) {
        // Media files and avatars: a small picture (an SVG whatever the extension, which a
        // browser's <img> shows), so pages and screenshots look as they would with real media.
        (_, "GET", ["", "media" | "avatars" | "storage", ..]) => return picture(&request.path),
        (_, "GET", ["", "api", "v1", "accounts", id, "statuses"])
            if *id != "verify_credentials" =>
        {
            return account_statuses(shared, request, id)
        }
        (_, "GET", ["", "api", "v1", "statuses", id]) => return get_status(shared, request, id),
        (Mastodon43, "GET", ["", "api", "v1", "statuses", id, "source"]) => {
            return status_source(shared, request, id)
        }
        (Mastodon43, "PUT", ["", "api", "v1", "statuses", id]) => {
            return update_status(shared, request, id)
        }
        (_, "PUT", ["", "api", "v1", "media", id]) => return update_media(shared, request, id),
        _ => {}
    }
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
        _ => not_found(shared),
    }
}

/// The flavour's 404: Mastodon's `Record not found`, Laravel's `Not Found`.
fn not_found(shared: &Shared) -> Response {
    match shared.flavour {
        Flavour::Mastodon43 => json_response(404, json!({ "error": "Record not found" })),
        Flavour::Pixelfed => json_response(404, json!({ "message": "Not Found" })),
    }
}

fn mastodon_media_configuration(shared: &Shared) -> Value {
    json!({
        "supported_mime_types": [
            "image/jpeg", "image/png", "image/gif", "image/heic", "image/heif", "image/webp",
            "image/avif", "video/webm", "video/mp4", "video/quicktime", "video/ogg",
            "audio/wave", "audio/wav", "audio/x-wav", "audio/x-pn-wave", "audio/vnd.wave",
            "audio/ogg", "audio/vorbis", "audio/mpeg", "audio/mp3", "audio/webm", "audio/flac",
            "audio/aac", "audio/m4a", "audio/x-m4a", "audio/mp4", "audio/3gpp", "video/x-ms-asf"
        ],
        "description_limit": shared.description_limit,
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
                "media_attachments": mastodon_media_configuration(shared),
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
                "media_attachments": mastodon_media_configuration(shared),
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
                    "description_limit": shared.description_limit
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

/// The bearer token of the `Authorization` header (the only place the stub reads one from).
fn bearer_token(request: &RecordedRequest) -> Option<String> {
    request.header("authorization").and_then(|h| {
        let (scheme, token) = h.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
    })
}

fn unauthenticated(shared: &Shared) -> Response {
    match shared.flavour {
        Flavour::Mastodon43 => {
            json_response(401, json!({ "error": "The access token is invalid" }))
        }
        Flavour::Pixelfed => json_response(401, json!({ "message": "Unauthenticated." })),
    }
}

/// Who a request's bearer token is: a usable token `/oauth/token` issued (the builder's account)
/// or a non-revoked accepted one (its account), with its scopes; otherwise the flavour's 401.
fn authenticate(
    shared: &Shared,
    request: &RecordedRequest,
) -> Result<(Vec<String>, StubAccount), Response> {
    let Some(bearer) = bearer_token(request) else {
        return Err(unauthenticated(shared));
    };
    let state = shared.lock();
    let issued = state
        .tokens
        .iter()
        .find(|t| t.access_token == bearer && t.usable())
        .map(|t| (t.scopes.clone(), shared.account.clone()));
    issued
        .or_else(|| {
            state
                .accepted
                .iter()
                .find(|t| t.access_token == bearer && !t.revoked)
                .map(|t| (t.scopes.clone(), t.account.clone()))
        })
        .ok_or_else(|| unauthenticated(shared))
}

/// Mastodon (Doorkeeper) answers 403 when the token has none of `accepted`; Pixelfed checks no
/// scopes on these endpoints.
fn require_scope(shared: &Shared, scopes: &[String], accepted: &[&str]) -> Result<(), Response> {
    if shared.flavour == Flavour::Mastodon43
        && !scopes.iter().any(|s| accepted.contains(&s.as_str()))
    {
        return Err(json_response(
            403,
            json!({ "error": "This action is outside the authorized scopes" }),
        ));
    }
    Ok(())
}

/// [`authenticate`] then [`require_scope`]: the token's account.
fn authorized(
    shared: &Shared,
    request: &RecordedRequest,
    accepted: &[&str],
) -> Result<StubAccount, Response> {
    let (scopes, account) = authenticate(shared, request)?;
    require_scope(shared, &scopes, accepted)?;
    Ok(account)
}

const READ_STATUSES: &[&str] = &["read", "read:statuses"];
const WRITE_STATUSES: &[&str] = &["write", "write:statuses"];
const WRITE_MEDIA: &[&str] = &["write", "write:media"];

fn verify_credentials(shared: &Shared, request: &RecordedRequest) -> Response {
    match authorized(shared, request, &["read", "read:accounts", "profile"]) {
        Ok(account) => json_response(200, account_json(shared, &account)),
        Err(response) => response,
    }
}

/// The Account entity, as `verify_credentials` and statuses' `account` send it.
fn account_json(shared: &Shared, account: &StubAccount) -> Value {
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
    })
}

// ---------------------------------------------------------------------------------------------
// Statuses and media
// ---------------------------------------------------------------------------------------------

/// An id as a number for ordering, the way Ruby's `to_i` reads it: the leading digits, 0 if
/// none (so `max_id=abc` pages past everything, as on Mastodon), saturating when too long.
fn numeric_id(id: &str) -> u128 {
    let digits: String = id.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return 0;
    }
    digits.parse().unwrap_or(u128::MAX)
}

/// Rails' boolean cast (ActiveModel::Type::Boolean): empty is "not given", a few spellings of
/// false are false, anything else is true. Laravel's `boolean()` is close enough.
fn truthy(value: &str) -> Option<bool> {
    match value.trim() {
        "" => None,
        "0" | "f" | "F" | "false" | "FALSE" | "False" | "off" | "OFF" | "Off" => Some(false),
        _ => Some(true),
    }
}

/// The file extension of a kind's URL (Mastodon serves gifv and video as mp4).
fn media_extension(kind: &str) -> &'static str {
    match kind {
        "gifv" | "video" => "mp4",
        "audio" => "mp3",
        _ => "png",
    }
}

/// The MediaAttachment entity.
fn media_json(shared: &Shared, media: &StubMedia) -> Value {
    let origin = &shared.origin;
    let blurhash = (media.kind != "audio").then_some("UeKUpFxuo~R%0nW;WCnhF6RjaJt757oJodS$");
    json!({
        "id": media.id,
        "type": media.kind,
        "url": format!("{origin}/media/{}.{}", media.id, media_extension(&media.kind)),
        "preview_url": format!("{origin}/media/{}_small.png", media.id),
        "remote_url": null,
        "preview_remote_url": null,
        "text_url": null,
        "description": media.description,
        "blurhash": blurhash,
        "meta": {}
    })
}

/// The Status entity (Pixelfed mimics Mastodon's). A boost carries a copy of itself in `reblog`.
fn status_json(shared: &Shared, post: &StubPost, account: &StubAccount) -> Value {
    let origin = &shared.origin;
    let user = &account.username;
    let id = &post.id;
    let (url, uri) = match shared.flavour {
        Flavour::Mastodon43 => (
            format!("{origin}/@{user}/{id}"),
            format!("{origin}/users/{user}/statuses/{id}"),
        ),
        Flavour::Pixelfed => (
            format!("{origin}/p/{user}/{id}"),
            format!("{origin}/p/{user}/{id}"),
        ),
    };
    let mut status = json!({
        "id": id,
        "created_at": iso8601_millis(post.created_at),
        "edited_at": post.edited_at.map(iso8601_millis),
        "in_reply_to_id": null,
        "in_reply_to_account_id": null,
        "sensitive": post.sensitive,
        "spoiler_text": post.spoiler_text,
        "visibility": "public",
        "language": post.language,
        "uri": uri,
        "url": url,
        "replies_count": 0,
        "reblogs_count": 0,
        "favourites_count": 0,
        "content": post.content,
        "reblog": null,
        "account": account_json(shared, account),
        "media_attachments": post.media.iter().map(|m| media_json(shared, m)).collect::<Vec<_>>(),
        "mentions": [],
        "tags": [],
        "emojis": [],
        "card": null,
        "poll": null
    });
    if post.reblog {
        status["reblog"] = status.clone();
    }
    status
}

/// A post and its owner's account, for [`status_json`].
fn post_with_account(shared: &Shared, id: &str) -> Option<(StubPost, StubAccount)> {
    let state = shared.lock();
    let post = state.posts.iter().find(|p| p.id == id)?.clone();
    let account = state
        .account_by_id(shared, &post.account_id)
        .expect("every post's account is known");
    Some((post, account))
}

/// `GET /api/v1/accounts/:id/statuses`: newest first, `only_media`, `exclude_reblogs`, `limit`
/// (default 20, at most 40; not a number or under 1: 20).
///
/// Mastodon: `max_id` (strictly older), `since_id` (strictly newer: the newest `limit` of them),
/// `min_id` (strictly newer: the `limit` just after it); always sent newest first. A `Link` header with
/// `rel="next"` (`max_id` = the page's last id) whenever the page is full, so a client sees a
/// final empty page, and `rel="prev"` (`min_id` = the first id) whenever it is not empty; both keep
/// the request's `limit`, `only_media`, `exclude_replies`, `exclude_reblogs`, `pinned` and
/// `tagged`, in alphabetical order, as Rails' `to_query` writes them.
///
/// Pixelfed: no `Link` header ever, paging by `max_id` only (`since_id`/`min_id` are ignored
/// here), and loose `max_id` handling as in the real thing: the post *equal to* `max_id` comes
/// again at the top of the next page (a client must drop duplicates), and when nothing is older
/// than `max_id` the answer is `[]`.
fn account_statuses(shared: &Shared, request: &RecordedRequest, account_id: &str) -> Response {
    if let Err(response) = authorized(shared, request, READ_STATUSES) {
        return response;
    }
    let state = shared.lock();
    let Some(owner) = state.account_by_id(shared, account_id) else {
        return not_found(shared);
    };
    let flag = |name: &str| request.query_param(name).and_then(truthy).unwrap_or(false);
    let (only_media, exclude_reblogs) = (flag("only_media"), flag("exclude_reblogs"));
    let limit = request
        .query_param("limit")
        .and_then(|l| l.trim().parse::<i64>().ok())
        .filter(|l| *l > 0)
        .map_or(20, |l| l.min(40) as usize);
    let id_param = |name: &str| {
        request
            .query_param(name)
            .filter(|v| !v.is_empty())
            .map(numeric_id)
    };
    let mut posts: Vec<&StubPost> = state
        .posts
        .iter()
        .filter(|p| p.account_id == owner.id)
        .filter(|p| !only_media || !p.media.is_empty())
        .filter(|p| !exclude_reblogs || !p.reblog)
        .collect();
    posts.sort_by_key(|p| std::cmp::Reverse(numeric_id(&p.id)));
    let max_id = id_param("max_id");
    let page: Vec<&StubPost> = match shared.flavour {
        Flavour::Mastodon43 => {
            let since_id = id_param("since_id");
            let min_id = id_param("min_id");
            let in_range = |p: &&StubPost| {
                let n = numeric_id(&p.id);
                max_id.is_none_or(|max| n < max)
                    && since_id.is_none_or(|since| n > since)
                    && min_id.is_none_or(|min| n > min)
            };
            match min_id {
                Some(_) => {
                    let mut page: Vec<&StubPost> = posts
                        .into_iter()
                        .rev()
                        .filter(in_range)
                        .take(limit)
                        .collect();
                    page.reverse();
                    page
                }
                None => posts.into_iter().filter(in_range).take(limit).collect(),
            }
        }
        Flavour::Pixelfed => match max_id {
            Some(max) if !posts.iter().any(|p| numeric_id(&p.id) < max) => Vec::new(),
            Some(max) => posts
                .into_iter()
                .filter(|p| numeric_id(&p.id) <= max)
                .take(limit)
                .collect(),
            None => posts.into_iter().take(limit).collect(),
        },
    };
    let body: Vec<Value> = page
        .iter()
        .map(|p| status_json(shared, p, &owner))
        .collect();
    let mut response = json_response(200, Value::Array(body));
    if shared.flavour == Flavour::Mastodon43 {
        let kept: Vec<(&str, &str)> = {
            let mut kept: Vec<(&str, &str)> = [
                "exclude_reblogs",
                "exclude_replies",
                "limit",
                "only_media",
                "pinned",
                "tagged",
            ]
            .iter()
            .filter_map(|name| request.query_param(name).map(|v| (*name, v)))
            .collect();
            kept.sort();
            kept
        };
        let link = |key: &str, id: &str| {
            let mut pairs = kept.clone();
            pairs.push((key, id));
            pairs.sort();
            let query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            format!(
                "{}/api/v1/accounts/{}/statuses?{query}",
                shared.origin, owner.id
            )
        };
        let mut links = Vec::new();
        if let (Some(last), true) = (page.last(), page.len() == limit) {
            links.push(format!("<{}>; rel=\"next\"", link("max_id", &last.id)));
        }
        if let Some(first) = page.first() {
            links.push(format!("<{}>; rel=\"prev\"", link("min_id", &first.id)));
        }
        if !links.is_empty() {
            response.headers.push(("Link".to_owned(), links.join(", ")));
        }
    }
    response
}

/// `GET /api/v1/statuses/:id`: any post to any valid token (they are all public); 404 when
/// missing or deleted.
fn get_status(shared: &Shared, request: &RecordedRequest, id: &str) -> Response {
    if let Err(response) = authorized(shared, request, READ_STATUSES) {
        return response;
    }
    match post_with_account(shared, id) {
        Some((post, account)) => json_response(200, status_json(shared, &post, &account)),
        None => not_found(shared),
    }
}

/// Whether the Mastodon version is at least `major.minor` (unparsable: yes, as the newest).
fn version_at_least(version: &str, major: u32, minor: u32) -> bool {
    let mut parts = version
        .trim_start_matches(['v', 'V'])
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(have_major), Some(have_minor)) => (have_major, have_minor) >= (major, minor),
        (Some(have_major), None) => have_major >= major,
        _ => true,
    }
}

/// `GET /api/v1/statuses/:id/source` (Mastodon 3.5+): `{id, text, spoiler_text}`, only to the
/// owner (others 404, as `Status.where(account: current_account).find`).
fn status_source(shared: &Shared, request: &RecordedRequest, id: &str) -> Response {
    if !version_at_least(&shared.version, 3, 5) {
        return not_found(shared);
    }
    let account = match authorized(shared, request, READ_STATUSES) {
        Ok(account) => account,
        Err(response) => return response,
    };
    match post_with_account(shared, id) {
        Some((post, _)) if post.account_id == account.id => json_response(
            200,
            json!({ "id": post.id, "text": post.text, "spoiler_text": post.spoiler_text }),
        ),
        _ => not_found(shared),
    }
}

/// An id in a JSON body: a string or a number.
fn json_id(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One `media_attributes` entry: its id, and its description if the key was sent (a sent
/// `null` is `Some(None)`, an absent key `None`: the description is then left alone).
type MediaAttribute = (Option<String>, Option<Option<String>>);

/// `media_attributes` as Rails parses them: `media_attributes[][id]=1&media_attributes[][description]=a`
/// pairs (a key already in the last hash starts a new one), `media_attributes[0][id]=…` indexed
/// hashes, or a JSON array of objects (or an object of objects keyed by index).
fn media_attributes(request: &RecordedRequest) -> Vec<MediaAttribute> {
    // (index if any, the hash's fields in order)
    type Entry = (Option<String>, Vec<(String, String)>);
    let mut entries: Vec<Entry> = Vec::new();
    for (name, value) in &request.form {
        let Some(rest) = name.strip_prefix("media_attributes[") else {
            continue;
        };
        let Some((index, key)) = rest.split_once("][") else {
            continue;
        };
        let Some(key) = key.strip_suffix(']') else {
            continue;
        };
        let index = (!index.is_empty()).then(|| index.to_owned());
        let position = match &index {
            Some(_) => entries.iter().position(|(i, _)| *i == index),
            None => entries
                .last()
                .filter(|(i, fields)| i.is_none() && !fields.iter().any(|(k, _)| k == key))
                .map(|_| entries.len() - 1),
        };
        let position = position.unwrap_or_else(|| {
            entries.push((index, Vec::new()));
            entries.len() - 1
        });
        entries[position].1.push((key.to_owned(), value.clone()));
    }
    let from_form = entries.into_iter().map(|(_, fields)| {
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        (get("id"), get("description").map(Some))
    });
    let objects: Vec<&Value> = match request
        .json
        .as_ref()
        .and_then(|j| j.get("media_attributes"))
    {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(Value::Object(items)) => items.values().collect(),
        _ => Vec::new(),
    };
    let from_json = objects.into_iter().filter_map(|o| {
        let o = o.as_object()?;
        let description = o.get("description").map(|d| d.as_str().map(str::to_owned));
        Some((o.get("id").and_then(json_id), description))
    });
    from_form.chain(from_json).collect()
}

/// `media_ids`: `media_ids[]` form fields or a JSON array (strings or numbers); `None` when not
/// sent at all.
fn media_ids(request: &RecordedRequest) -> Option<Vec<String>> {
    if request.form.iter().any(|(n, _)| n == "media_ids[]") {
        return Some(request.param_list("media_ids"));
    }
    match request.json.as_ref().and_then(|j| j.get("media_ids")) {
        Some(Value::Array(items)) => Some(items.iter().filter_map(json_id).collect()),
        _ => None,
    }
}

/// Mastodon's StatusLengthValidator, roughly: characters of text and content warning, a URL
/// counting 23.
fn status_length(text: &str, spoiler_text: &str) -> usize {
    let text_length: usize = text
        .split_inclusive(char::is_whitespace)
        .map(|word| {
            let bare = word.trim_end();
            if bare.starts_with("http://") || bare.starts_with("https://") {
                23 + (word.chars().count() - bare.chars().count())
            } else {
                word.chars().count()
            }
        })
        .sum();
    text_length + spoiler_text.chars().count()
}

fn mastodon_validation(message: &str) -> Response {
    json_response(422, json!({ "error": message }))
}

/// `PUT /api/v1/statuses/:id` (Mastodon 3.5+), as the controller and UpdateStatusService do it:
/// every parameter is passed on whether sent or not, so what is not sent is blanked:
/// - text = `status` if not blank, else the `spoiler_text` param (which then leaves the content
///   warning as it was: Mastodon's fallback for posts that are all content warning), else "";
/// - `spoiler_text` missing → "" (except as above); `sensitive` missing → whether the content
///   warning param is non-blank; `language` missing or empty → unchanged;
/// - `media_ids` missing → every attachment detached. The ids given, in order (duplicates
///   dropped, at most 4, else 422), become the attachments. Real Mastodon silently drops ids it
///   cannot find among the account's media; the stub is stricter: an id that is not one of this
///   post's attachments is 422 (the stub has no unattached uploads).
/// - `media_attributes` (Mastodon 4.1+; older versions ignore them): for an entry whose id is one
///   of the new attachments, set its description; longer than the description limit → 422,
///   nothing changed (the edit is one transaction).
/// - No media and blank text → 422 `Validation failed: Text can't be blank`; over 500 characters
///   → 422.
///
/// When something changed: `edits` + 1, `edited_at` = now, [`StubInstance::edit_count`] + 1 (no
/// change: the status as it was, no edit). The content is re-rendered from the text only when
/// the text changed. Answers the (updated) status. Someone else's post is 404.
fn update_status(shared: &Shared, request: &RecordedRequest, id: &str) -> Response {
    if !version_at_least(&shared.version, 3, 5) {
        return not_found(shared);
    }
    let account = match authorized(shared, request, WRITE_STATUSES) {
        Ok(account) => account,
        Err(response) => return response,
    };
    let Some((old, owner)) =
        post_with_account(shared, id).filter(|(p, _)| p.account_id == account.id)
    else {
        return not_found(shared);
    };
    let mut post = old.clone();

    // update_media_attachments! (the controller always passes media_ids).
    let ids = media_ids(request).unwrap_or_default();
    if ids.len() > 4 {
        return mastodon_validation("Cannot attach more than 4 files");
    }
    let mut next: Vec<StubMedia> = Vec::new();
    for media_id in &ids {
        if next
            .iter()
            .any(|m| numeric_id(&m.id) == numeric_id(media_id))
        {
            continue;
        }
        let Some(media) = old
            .media
            .iter()
            .find(|m| numeric_id(&m.id) == numeric_id(media_id))
        else {
            return mastodon_validation(&format!(
                "Media attachment {media_id} is not one of this post's attachments"
            ));
        };
        next.push(media.clone());
    }
    if next.len() > 1 && next.iter().any(|m| m.kind == "video" || m.kind == "audio") {
        return mastodon_validation("Cannot attach a video to a post that already contains images");
    }
    if version_at_least(&shared.version, 4, 1) {
        for (attribute_id, description) in media_attributes(request) {
            let Some(description) = description else {
                continue;
            };
            let Some(media) = next.iter_mut().find(|m| {
                attribute_id
                    .as_deref()
                    .is_some_and(|a| numeric_id(a) == numeric_id(&m.id))
            }) else {
                continue;
            };
            let limit = shared.description_limit;
            if description
                .as_deref()
                .is_some_and(|d| d.chars().count() > limit as usize)
            {
                return mastodon_validation(&format!(
                    "Validation failed: Description is too long (maximum is {limit} characters)"
                ));
            }
            media.description = description;
        }
    }
    post.media = next;

    // update_immediate_attributes!
    let status = request.param("status").filter(|s| !s.trim().is_empty());
    let spoiler = request.param("spoiler_text");
    let spoiler_kept = status.is_none();
    post.text = match status {
        Some(text) => text,
        None => spoiler.clone().unwrap_or_default(),
    };
    if !spoiler_kept {
        post.spoiler_text = spoiler.clone().unwrap_or_default();
    }
    let spoiler_present = !spoiler_kept && spoiler.as_deref().is_some_and(|s| !s.trim().is_empty());
    post.sensitive = request
        .param("sensitive")
        .as_deref()
        .and_then(truthy)
        .unwrap_or(spoiler_present);
    if let Some(language) = request.param("language").filter(|l| {
        !l.is_empty() && l.len() <= 10 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    }) {
        post.language = Some(language);
    }
    if post.text.trim().is_empty() && post.media.is_empty() && !post.reblog {
        return mastodon_validation("Validation failed: Text can't be blank");
    }
    if status_length(&post.text, &post.spoiler_text) > 500 {
        return mastodon_validation("Validation failed: Text character limit of 500 exceeded");
    }
    if post.text != old.text {
        post.content = text_to_html(&post.text);
    }
    let media_changed = post.media.len() != old.media.len()
        || post
            .media
            .iter()
            .zip(&old.media)
            .any(|(a, b)| a.id != b.id || a.description != b.description);
    let changed = media_changed
        || post.text != old.text
        || post.spoiler_text != old.spoiler_text
        || post.sensitive != old.sensitive
        || post.language != old.language;
    let mut state = shared.lock();
    let Some(stored) = state.post_mut(id) else {
        // Deleted meanwhile.
        return not_found(shared);
    };
    if changed {
        post.edits += 1;
        post.edited_at = Some(time::OffsetDateTime::now_utc());
        *stored = post.clone();
        state.edit_count += 1;
    } else {
        post = stored.clone();
    }
    drop(state);
    json_response(200, status_json(shared, &post, &owner))
}

/// `PUT /api/v1/media/:id` with `description`.
///
/// Mastodon: only unattached uploads can be updated (`media_attachments.where(status_id: nil)`),
/// so media already on a post is 404 `Record not found`; every medium in the stub is on a post,
/// so after authentication this is always 404.
///
/// Pixelfed: the user's own media (others' and unknown ids 404, `findOrFail`); a description
/// over the limit is 422 in Laravel's validation shape, a missing one sets it to `null`; answers
/// the attachment. Not an edit of the post.
fn update_media(shared: &Shared, request: &RecordedRequest, media_id: &str) -> Response {
    let account = match authorized(shared, request, WRITE_MEDIA) {
        Ok(account) => account,
        Err(response) => return response,
    };
    if shared.flavour == Flavour::Mastodon43 {
        return not_found(shared);
    }
    let description = request.param("description");
    let limit = shared.description_limit;
    if description
        .as_deref()
        .is_some_and(|d| d.chars().count() > limit as usize)
    {
        return laravel_validation(
            "description",
            &format!("The description field must not be greater than {limit} characters."),
        );
    }
    let mut state = shared.lock();
    let Some(media) = state
        .posts
        .iter_mut()
        .filter(|p| p.account_id == account.id)
        .flat_map(|p| p.media.iter_mut())
        .find(|m| m.id == media_id)
    else {
        return not_found(shared);
    };
    media.description = description.filter(|d| !d.is_empty());
    let media = media.clone();
    drop(state);
    json_response(200, media_json(shared, &media))
}
