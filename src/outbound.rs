//! The one outbound HTTP client: every call tether makes to a fediverse instance goes through
//! [`Outbound::send`].
//!
//! Instance URLs come from users, so a careless client would let anyone make tether call its own
//! network (the cloud metadata address, a database admin page on 10.x, a service on loopback).
//! The rules here close that: https only; a DNS resolver that drops every non-public address, so
//! the address checked is the address connected to (no rebinding window); the same check for IP
//! literals, which never reach a resolver; redirects never followed, because a redirect to a
//! literal would skip both checks; no proxies, because a proxy resolves names itself. Operators
//! running a home instance (and the tests) name exact `host:port` pairs that may be local and may
//! use plain http, and only those.
//!
//! Tokens travel in URLs (OAuth codes), headers and bodies, so nothing here ever formats a full
//! URL, a header or a body into an error: see [`redact`].

use std::collections::HashSet;
use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde::de::DeserializeOwned;
use url::{Host, Url};

use crate::error::{UpstreamError, UpstreamKind};

pub use reqwest::header::HeaderMap;
pub use reqwest::Method;

/// What the client is built from. [`OutboundConfig::new`] gives the spec values; tests shorten
/// the timeouts and add their loopback servers to `allow_private`.
#[derive(Clone, Debug)]
pub struct OutboundConfig {
    pub user_agent: String,
    /// `host:port` pairs that may resolve to (or be) private addresses and may use plain http.
    pub allow_private: Vec<String>,
    pub connect_timeout: Duration,
    /// From the start of the request to the last byte of the body.
    pub total_timeout: Duration,
    /// Largest response body read, in bytes.
    pub body_limit: usize,
}

impl OutboundConfig {
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(15);
    pub const BODY_LIMIT: usize = 1024 * 1024;

    /// The spec values, with a User-Agent naming this deployment (`public_url`), so an instance
    /// admin who sees tether in their logs knows whom to ask.
    pub fn new(public_url: &str) -> OutboundConfig {
        OutboundConfig {
            user_agent: user_agent(public_url),
            allow_private: Vec::new(),
            connect_timeout: Self::CONNECT_TIMEOUT,
            total_timeout: Self::TOTAL_TIMEOUT,
            body_limit: Self::BODY_LIMIT,
        }
    }
}

/// `tether/<version> (+<public_url>)`.
pub fn user_agent(public_url: &str) -> String {
    format!("tether/{} (+{public_url})", env!("CARGO_PKG_VERSION"))
}

/// The client. Cheap to clone (the connection pools are shared); build it once and keep it in
/// Rocket's managed state.
#[derive(Clone)]
pub struct Outbound {
    /// Public https targets; resolves through [`PublicOnly`].
    public: reqwest::Client,
    /// Allow-listed targets only; `None` when the allow list is empty.
    listed: Option<reqwest::Client>,
    policy: Arc<Policy>,
}

struct Policy {
    allowed: HashSet<(Host<String>, u16)>,
    body_limit: usize,
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbound")
            .field("allowed", &self.policy.allowed)
            .field("body_limit", &self.policy.body_limit)
            .finish_non_exhaustive()
    }
}

/// Which client a URL may use, decided before anything is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Public,
    Listed,
}

impl Outbound {
    pub fn new(config: OutboundConfig) -> Result<Outbound, String> {
        if config.body_limit == 0 {
            return Err("outbound body limit must be more than 0 bytes".into());
        }
        if config.connect_timeout.is_zero() || config.total_timeout.is_zero() {
            return Err("outbound timeouts must be more than 0".into());
        }
        let user_agent = HeaderValue::from_str(&config.user_agent)
            .map_err(|_| format!("invalid outbound User-Agent {:?}", config.user_agent))?;

        let mut allowed = HashSet::new();
        for entry in &config.allow_private {
            allowed.insert(parse_host_port(entry)?);
        }
        let listed_names: HashSet<String> = allowed
            .iter()
            .filter_map(|(host, _)| match host {
                Host::Domain(d) => Some(d.clone()),
                _ => None,
            })
            .collect();

        let builder = |https_only: bool| {
            reqwest::Client::builder()
                .use_rustls_tls()
                .user_agent(user_agent.clone())
                .redirect(reqwest::redirect::Policy::none())
                .referer(false)
                .no_proxy()
                .https_only(https_only)
                .connect_timeout(config.connect_timeout)
                .timeout(config.total_timeout)
        };
        let public = builder(true)
            .dns_resolver(Arc::new(PublicOnly))
            .build()
            .map_err(|e| format!("outbound client: {}", causes(&e)))?;
        let listed = if allowed.is_empty() {
            None
        } else {
            let resolver = ListedOnly {
                names: Arc::new(listed_names),
            };
            Some(
                builder(false)
                    .dns_resolver(Arc::new(resolver))
                    .build()
                    .map_err(|e| format!("outbound client: {}", causes(&e)))?,
            )
        };
        Ok(Outbound {
            public,
            listed,
            policy: Arc::new(Policy {
                allowed,
                body_limit: config.body_limit,
            }),
        })
    }

    /// `GET url`.
    pub async fn get(&self, url: Url) -> Result<OutboundResponse, OutboundError> {
        self.send(OutboundRequest::get(url)).await
    }

    /// Sends `req` and reads the whole (capped) body. Any status that is not a redirect comes back
    /// as a response, 4xx and 5xx included, so callers can read an instance's error JSON and its
    /// rate-limit headers.
    pub async fn send(&self, req: OutboundRequest) -> Result<OutboundResponse, OutboundError> {
        let route = self.route(&req.url)?;
        let client = match (route, &self.listed) {
            (Route::Listed, Some(listed)) => listed,
            _ => &self.public,
        };
        let shown = redact(&req.url);

        let mut builder = client.request(req.method, req.url).headers(req.headers);
        if let Some(token) = req.bearer {
            let mut value = HeaderValue::try_from(format!("Bearer {token}"))
                .map_err(|_| OutboundError::NotAllowed("invalid bearer token".into()))?;
            // Keeps the value out of hyper's and reqwest's Debug output.
            value.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, value);
        }
        builder = match req.body {
            Some(RequestBody::Form(pairs)) => builder.form(&pairs),
            Some(RequestBody::Json(bytes)) => builder
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(bytes),
            None => builder,
        };

        let mut resp = builder.send().await.map_err(|e| classify(&e, &shown))?;

        let status = resp.status().as_u16();
        if (300..400).contains(&status) {
            return Err(OutboundError::Redirect { status });
        }
        let limit = self.policy.body_limit;
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(OutboundError::TooLarge);
        }
        let headers = std::mem::take(resp.headers_mut());
        let hint = resp.content_length().unwrap_or(0).min(limit as u64) as usize;
        let mut body = BytesMut::with_capacity(hint);
        // Dropping `resp` on any early return closes the connection, so the rest of an
        // oversized body is never read.
        while let Some(chunk) = resp.chunk().await.map_err(|e| classify(&e, &shown))? {
            append_capped(&mut body, &chunk, limit)?;
        }
        Ok(OutboundResponse {
            status,
            headers,
            body: body.freeze(),
        })
    }

    /// Whether `url` may be called at all, and through which client. IP literals are checked
    /// here because they never reach a resolver; names are checked by the resolver.
    fn route(&self, url: &Url) -> Result<Route, OutboundError> {
        let refuse = |why: &str| {
            Err(OutboundError::NotAllowed(format!(
                "refused: {why} ({})",
                redact(url)
            )))
        };
        if !matches!(url.scheme(), "https" | "http") {
            return refuse("not an http(s) URL");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return refuse("credentials in the URL");
        }
        let (Some(host), Some(port)) = (url.host(), url.port_or_known_default()) else {
            return refuse("no host");
        };
        let host = host.to_owned();
        if self.policy.allowed.contains(&(host.clone(), port)) {
            return Ok(Route::Listed);
        }
        if url.scheme() != "https" {
            return refuse("plain http");
        }
        let literal = match host {
            Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            Host::Domain(_) => None,
        };
        match literal {
            Some(ip) if !is_public_address(ip) => refuse("private address"),
            _ => Ok(Route::Public),
        }
    }
}

/// One request: method, URL, and optionally a bearer token, a body and extra headers.
pub struct OutboundRequest {
    method: Method,
    url: Url,
    bearer: Option<String>,
    body: Option<RequestBody>,
    headers: HeaderMap,
}

enum RequestBody {
    Form(Vec<(String, String)>),
    Json(Vec<u8>),
}

impl OutboundRequest {
    pub fn new(method: Method, url: Url) -> OutboundRequest {
        OutboundRequest {
            method,
            url,
            bearer: None,
            body: None,
            headers: HeaderMap::new(),
        }
    }

    pub fn get(url: Url) -> OutboundRequest {
        Self::new(Method::GET, url)
    }

    pub fn post(url: Url) -> OutboundRequest {
        Self::new(Method::POST, url)
    }

    pub fn put(url: Url) -> OutboundRequest {
        Self::new(Method::PUT, url)
    }

    /// `Authorization: Bearer <token>`, marked sensitive.
    pub fn bearer(mut self, token: &str) -> OutboundRequest {
        self.bearer = Some(token.to_owned());
        self
    }

    /// An `application/x-www-form-urlencoded` body (the OAuth token exchange).
    pub fn form(mut self, pairs: &[(&str, &str)]) -> OutboundRequest {
        let pairs = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.body = Some(RequestBody::Form(pairs));
        self
    }

    /// An `application/json` body.
    pub fn json(mut self, value: &serde_json::Value) -> OutboundRequest {
        self.body = Some(RequestBody::Json(value.to_string().into_bytes()));
        self
    }

    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> OutboundRequest {
        self.headers.append(name, value);
        self
    }

    pub fn url(&self) -> &Url {
        &self.url
    }
}

/// Shows where a request goes, never what it carries.
impl fmt::Debug for OutboundRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundRequest")
            .field("method", &self.method)
            .field("url", &redact(&self.url))
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .field("body", &self.body.as_ref().map(|_| "<redacted>"))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A complete answer with any non-redirect status.
#[derive(Clone, Debug)]
pub struct OutboundResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl OutboundResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A header as text, if present and printable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json<T: DeserializeOwned>(&self) -> Result<T, OutboundError> {
        serde_json::from_slice(&self.body).map_err(|e| OutboundError::Malformed(json_problem(&e)))
    }
}

/// Why a call produced no usable response. Display never includes a query string, a header or a
/// body: at most `scheme://host:port/path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutboundError {
    /// Refused before or instead of connecting: scheme, credentials, a private address.
    NotAllowed(String),
    /// No connection, or the connection failed before an answer.
    Unreachable(String),
    Timeout,
    /// The body passed the limit; it was not read further.
    TooLarge,
    /// A 3xx; never followed.
    Redirect {
        status: u16,
    },
    Malformed(String),
}

impl fmt::Display for OutboundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutboundError::NotAllowed(why) => f.write_str(why),
            OutboundError::Unreachable(why) => write!(f, "unreachable: {why}"),
            OutboundError::Timeout => f.write_str("timed out"),
            OutboundError::TooLarge => f.write_str("response too large"),
            OutboundError::Redirect { status } => write!(f, "redirect ({status}) not followed"),
            OutboundError::Malformed(why) => write!(f, "malformed response: {why}"),
        }
    }
}

impl StdError for OutboundError {}

impl OutboundError {
    /// The user-facing form; `service` is the instance as the user knows it (its host name).
    pub fn into_upstream(self, service: &str) -> UpstreamError {
        let kind = match self {
            OutboundError::Timeout => UpstreamKind::Timeout,
            OutboundError::NotAllowed(_) => UpstreamKind::NotPublic,
            OutboundError::Unreachable(_) => UpstreamKind::Unreachable,
            OutboundError::TooLarge => UpstreamKind::BadResponse("the answer was too large".into()),
            OutboundError::Redirect { .. } => {
                UpstreamKind::BadResponse("it redirected to another address".into())
            }
            OutboundError::Malformed(_) => {
                UpstreamKind::BadResponse("the answer was not in the expected format".into())
            }
        };
        UpstreamError {
            service: service.to_owned(),
            kind,
        }
    }
}

/// `scheme://host:port/path`: no userinfo, query or fragment, which is where tokens and codes
/// travel.
pub fn redact(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}{}", url.scheme(), url.path()),
        None => format!("{}://{host}{}", url.scheme(), url.path()),
    }
}

/// Whether tether may connect to `ip` without an allow-list entry: only globally routable
/// unicast. IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64, 6to4) are judged
/// by that address.
pub fn is_public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// IPv4 ranges that are not the public internet (RFC 6890 and friends).
const REFUSED_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network", unspecified
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // CGNAT
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local, cloud metadata
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // 6to4 relay anycast (deprecated)
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, broadcast
];

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let addr = u32::from(ip);
    !REFUSED_V4.iter().any(|&(net, len)| {
        let mask = u32::MAX << (32 - u32::from(len));
        addr & mask == u32::from(net) & mask
    })
}

/// Ranges inside global unicast (2000::/3) that are still not the public internet.
const REFUSED_V6: &[(Ipv6Addr, u8)] = &[
    // IETF protocol assignments: Teredo (its embedded address is obfuscated), benchmarking,
    // ORCHID; nothing a fediverse instance lives on.
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),     // documentation (RFC 9637)
];

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let addr = u128::from(ip);
    let seg = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    // IPv4-compatible ::a.b.c.d (deprecated, but a kernel may still route it); :: and ::1 are
    // in this range too and are refused by the v4 check (0.0.0.0/8).
    if addr >> 32 == 0 {
        return is_public_v4(Ipv4Addr::from(addr as u32));
    }
    // NAT64 well-known prefix 64:ff9b::/96: DNS64 answers with these on IPv6-only networks.
    if addr >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return is_public_v4(Ipv4Addr::from(addr as u32));
    }
    // 6to4 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
    if seg[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::from((addr >> 80) as u32));
    }
    // Everything outside global unicast: unique-local fc00::/7, link-local fe80::/10,
    // multicast ff00::/8, discard 100::/64, local-use NAT64 64:ff9b:1::/48, ...
    if seg[0] & 0xe000 != 0x2000 {
        return false;
    }
    !REFUSED_V6.iter().any(|&(net, len)| {
        let mask = u128::MAX << (128 - u32::from(len));
        addr & mask == u128::from(net) & mask
    })
}

/// `host:port` with an explicit port; the host normalised as a URL host would be.
fn parse_host_port(entry: &str) -> Result<(Host<String>, u16), String> {
    let bad = || format!("outbound_allow_private: {entry:?} is not host:port");
    let (host, port) = entry.trim().rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    let host = Host::parse(host).map_err(|_| bad())?;
    Ok((host, port))
}

/// Refused by the resolver: the only marker [`classify`] looks for in a reqwest error.
#[derive(Debug)]
struct RefusedPrivate;

impl fmt::Display for RefusedPrivate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refused: private address")
    }
}

impl StdError for RefusedPrivate {}

/// The resolver for public targets: the system resolver, minus every address that is not
/// public. If nothing is left the name is refused.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let public: Vec<SocketAddr> = lookup(host)
                .await?
                .into_iter()
                .filter(|a| is_public_address(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(Box::new(RefusedPrivate) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// The resolver for allow-listed targets: any address, but only for the names on the list (the
/// client using it is only handed URLs whose host and port are on it).
struct ListedOnly {
    names: Arc<HashSet<String>>,
}

impl Resolve for ListedOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let listed = self.names.contains(&host);
        Box::pin(async move {
            if !listed {
                return Err(Box::new(RefusedPrivate) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(lookup(host).await?.into_iter()) as Addrs)
        })
    }
}

/// getaddrinfo on the blocking pool, as reqwest's own resolver does.
async fn lookup(host: String) -> Result<Vec<SocketAddr>, Box<dyn StdError + Send + Sync>> {
    let found = tokio::task::spawn_blocking(move || {
        (host.as_str(), 0).to_socket_addrs().map(Iterator::collect)
    })
    .await;
    match found {
        Ok(result) => Ok(result?),
        Err(_) => Err("the DNS lookup task failed".into()),
    }
}

fn append_capped(body: &mut BytesMut, chunk: &[u8], limit: usize) -> Result<(), OutboundError> {
    if chunk.len() > limit.saturating_sub(body.len()) {
        return Err(OutboundError::TooLarge);
    }
    body.extend_from_slice(chunk);
    Ok(())
}

/// Turns a reqwest error into ours. reqwest's own Display names the full URL, so only the
/// causes below it (which do not) are used.
fn classify(e: &reqwest::Error, shown: &str) -> OutboundError {
    let mut source = e.source();
    while let Some(cause) = source {
        if cause.is::<RefusedPrivate>() {
            return OutboundError::NotAllowed(format!("refused: private address ({shown})"));
        }
        source = cause.source();
    }
    if e.is_timeout() {
        OutboundError::Timeout
    } else if e.is_body() || e.is_decode() {
        OutboundError::Malformed(format!(
            "{shown}: the body could not be read: {}",
            causes(e)
        ))
    } else {
        OutboundError::Unreachable(format!("{shown}: {}", causes(e)))
    }
}

/// The messages of `e`'s causes, outermost first, without repeats.
fn causes(e: &dyn StdError) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.is_empty() {
        "connection failed".into()
    } else {
        parts.join(": ")
    }
}

/// What is wrong with a JSON body, without quoting it: serde_json's messages quote the
/// offending value, and a token response carries secrets.
fn json_problem(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "could not be read",
        serde_json::error::Category::Syntax => "is not valid JSON",
        serde_json::error::Category::Data => "does not have the expected shape",
        serde_json::error::Category::Eof => "is truncated JSON",
    };
    format!("the body {what} (line {}, column {})", e.line(), e.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(allow: &[&str]) -> Outbound {
        let mut config = OutboundConfig::new("https://tether.example");
        config.allow_private = allow.iter().map(|s| (*s).to_owned()).collect();
        Outbound::new(config).expect("client builds")
    }

    fn route(c: &Outbound, url: &str) -> Result<Route, OutboundError> {
        c.route(&Url::parse(url).expect("test URL parses"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address parses")
    }

    #[test]
    fn refuses_every_non_public_range() {
        let refused = [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.0.9",
            "169.254.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.0.1",
            "192.168.255.255",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "ff05::2",
            "2001:db8::1",
            "2001:db8:ffff::1",
            "2001::1",      // Teredo
            "2001:2::1",    // benchmarking
            "3fff::1",      // documentation
            "100::1",       // discard-only
            "64:ff9b:1::1", // local-use NAT64
            "fec0::1",      // site-local (deprecated)
            // IPv4-mapped and -compatible forms
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::ffff:192.168.1.1",
            "::ffff:100.64.0.1",
            "::ffff:0.0.0.0",
            "::127.0.0.1",
            "::10.0.0.1",
            "::169.254.169.254",
            // NAT64 and 6to4 of private ranges
            "64:ff9b::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            "2002:a9fe:a9fe::1",
        ];
        for s in refused {
            assert!(!is_public_address(ip(s)), "{s} must be refused");
        }
    }

    #[test]
    fn allows_public_addresses() {
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.3.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2a01:4f8::1",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ];
        for s in public {
            assert!(is_public_address(ip(s)), "{s} must be allowed");
        }
    }

    #[test]
    fn ip_literal_hosts_are_checked_after_normalisation() {
        let c = client(&[]);
        let spellings = [
            "127.0.0.1",
            "2130706433",
            "0x7f000001",
            "017700000001",
            "127.1",
            "127.0.1",
            "0177.0.0.1",
            "0x7f.0.0.1",
            "127.0.0.1.",
            "0",
            "0x0",
            "10.1",
            "3232235777", // 192.168.1.1
            "0xa9fea9fe", // 169.254.169.254
            "[::1]",
            "[0:0:0:0:0:0:0:1]",
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
            "[0:0:0:0:0:ffff:127.0.0.1]",
            "[::ffff:169.254.169.254]",
            "[::127.0.0.1]",
            "[64:ff9b::10.0.0.1]",
            "[fe80::1]",
            "[fd00::1]",
        ];
        for host in spellings {
            let url = format!("https://{host}/api/v1/accounts?access_token=SECRET");
            match route(&c, &url) {
                Err(OutboundError::NotAllowed(why)) => {
                    assert!(why.contains("private address"), "{host}: {why}");
                    assert!(!why.contains("SECRET"), "{host}: {why}");
                }
                other => panic!("{host} must be refused, got {other:?}"),
            }
        }
        assert_eq!(route(&c, "https://93.184.216.34/"), Ok(Route::Public));
        assert_eq!(route(&c, "https://[2606:4700::1111]/"), Ok(Route::Public));
        assert_eq!(route(&c, "https://mastodon.social/"), Ok(Route::Public));
    }

    #[test]
    fn only_https_and_no_credentials() {
        let c = client(&[]);
        for url in [
            "http://mastodon.social/",
            "ftp://mastodon.social/",
            "file:///etc/passwd",
            "https://user:SECRET@mastodon.social/",
            "https://:SECRET@mastodon.social/",
        ] {
            match route(&c, url) {
                Err(OutboundError::NotAllowed(why)) => assert!(!why.contains("SECRET"), "{why}"),
                other => panic!("{url} must be refused, got {other:?}"),
            }
        }
    }

    #[test]
    fn allow_list_is_exact_host_and_port() {
        let c = client(&[
            "127.0.0.1:8080",
            "localhost:3000",
            "[::1]:9000",
            "home.lan:443",
        ]);
        assert_eq!(route(&c, "http://127.0.0.1:8080/x"), Ok(Route::Listed));
        assert_eq!(route(&c, "http://2130706433:8080/x"), Ok(Route::Listed));
        assert_eq!(route(&c, "https://127.0.0.1:8080/x"), Ok(Route::Listed));
        assert_eq!(route(&c, "http://localhost:3000/"), Ok(Route::Listed));
        assert_eq!(route(&c, "http://LOCALHOST:3000/"), Ok(Route::Listed));
        assert_eq!(route(&c, "http://[::1]:9000/"), Ok(Route::Listed));
        assert_eq!(route(&c, "https://home.lan/"), Ok(Route::Listed));
        for url in [
            "http://127.0.0.1:8081/",
            "https://127.0.0.1:8081/",
            "http://127.0.0.1/",
            "http://127.0.0.2:8080/",
            "http://localhost:3001/",
            "http://[::1]:9001/",
            "http://home.lan/",
            "http://mastodon.social/",
        ] {
            assert!(
                matches!(route(&c, url), Err(OutboundError::NotAllowed(_))),
                "{url} must be refused"
            );
        }
        // A name not on the list goes to the public client, whose resolver judges it.
        assert_eq!(route(&c, "https://localhost:3001/"), Ok(Route::Public));
    }

    #[test]
    fn bad_allow_list_entries_are_rejected() {
        for entry in [
            "127.0.0.1",
            "localhost",
            ":80",
            "[::1]",
            "host:port",
            "a b:80",
            "h:70000",
        ] {
            let mut config = OutboundConfig::new("https://tether.example");
            config.allow_private = vec![entry.to_owned()];
            assert!(Outbound::new(config).is_err(), "{entry:?} must be rejected");
        }
    }

    #[test]
    fn user_agent_names_tether_its_version_and_url() {
        assert_eq!(
            user_agent("https://tether.example"),
            format!(
                "tether/{} (+https://tether.example)",
                env!("CARGO_PKG_VERSION")
            )
        );
        let mut config = OutboundConfig::new("https://tether.example");
        config.user_agent = "bad\nagent".into();
        assert!(Outbound::new(config).is_err());
    }

    #[test]
    fn redact_keeps_only_scheme_host_port_path() {
        let url = Url::parse("https://u:SECRET@Example.COM/oauth/token?code=SECRET#SECRET")
            .expect("parses");
        assert_eq!(redact(&url), "https://example.com:443/oauth/token");
    }

    #[test]
    fn body_cap_never_buffers_past_the_limit() {
        let mut body = BytesMut::new();
        assert_eq!(append_capped(&mut body, &[0; 600], 1000), Ok(()));
        assert_eq!(append_capped(&mut body, &[0; 400], 1000), Ok(()));
        assert_eq!(
            append_capped(&mut body, &[0; 1], 1000),
            Err(OutboundError::TooLarge)
        );
        assert_eq!(body.len(), 1000);
    }

    #[test]
    fn json_errors_do_not_quote_the_body() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Token {
            access_token: u64,
        }
        let resp = OutboundResponse {
            status: 200,
            headers: HeaderMap::new(),
            body: Bytes::from_static(br#"{"access_token": "SECRET"}"#),
        };
        let e = resp.json::<Token>().expect_err("wrong shape");
        assert!(matches!(e, OutboundError::Malformed(_)));
        assert!(!e.to_string().contains("SECRET"), "{e}");
        assert!(!format!("{e:?}").contains("SECRET"), "{e:?}");
    }

    #[test]
    fn upstream_kinds() {
        let kind = |e: OutboundError| e.into_upstream("mastodon.social").kind;
        assert_eq!(kind(OutboundError::Timeout), UpstreamKind::Timeout);
        assert_eq!(
            kind(OutboundError::NotAllowed("x".into())),
            UpstreamKind::NotPublic
        );
        assert_eq!(
            kind(OutboundError::Unreachable("x".into())),
            UpstreamKind::Unreachable
        );
        for e in [
            OutboundError::TooLarge,
            OutboundError::Redirect { status: 302 },
            OutboundError::Malformed("x".into()),
        ] {
            assert!(matches!(kind(e), UpstreamKind::BadResponse(_)));
        }
    }

    #[test]
    fn request_debug_hides_secrets() {
        let url = Url::parse("https://mastodon.social/api?access_token=SECRET").expect("parses");
        let req = OutboundRequest::post(url)
            .bearer("SECRET")
            .form(&[("client_secret", "SECRET")]);
        let shown = format!("{req:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn fits_rocket_managed_state() {
        fn managed<T: Clone + Send + Sync + 'static>() {}
        managed::<Outbound>();
    }

    #[tokio::test]
    async fn resolver_refuses_localhost() {
        let name: Name = "localhost".parse().expect("valid name");
        let err = match PublicOnly.resolve(name).await {
            Ok(addrs) => panic!("localhost resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        assert!(err.is::<RefusedPrivate>(), "{err}");
    }
}
