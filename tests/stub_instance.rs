//! The stub fediverse instance (tests/common/stub_instance.rs) behaves as the Mastodon 4.3 and
//! Pixelfed servers it stands in for, and serves each fault on demand. Talked to with a tiny
//! HTTP/1.1 client over tokio's TcpStream, so nothing here depends on tether's own HTTP client.

#[path = "common/stub_instance.rs"]
mod stub_instance;

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use stub_instance::{Fault, Flavour, NewPost, Pkce, StubInstance};

const CALLBACK: &str = "http://127.0.0.1:8000/accounts/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const USER_AGENT: &str = "tether-test/0.1";

// ---------------------------------------------------------------------------------------------
// A tiny HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Clone)]
struct Req<'a> {
    method: &'a str,
    target: String,
    headers: Vec<(&'a str, String)>,
    body: Option<(&'a str, Vec<u8>)>,
}

impl<'a> Req<'a> {
    fn get(target: &str) -> Req<'a> {
        Req {
            method: "GET",
            target: target.to_owned(),
            headers: Vec::new(),
            body: None,
        }
    }

    fn post_form(target: &str, fields: &[(&str, &str)]) -> Req<'a> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        Req {
            method: "POST",
            target: target.to_owned(),
            headers: Vec::new(),
            body: Some(("application/x-www-form-urlencoded", body.into_bytes())),
        }
    }

    fn post_json(target: &str, value: &Value) -> Req<'a> {
        Req {
            method: "POST",
            target: target.to_owned(),
            headers: Vec::new(),
            body: Some(("application/json", value.to_string().into_bytes())),
        }
    }

    fn put_form(target: &str, fields: &[(&str, &str)]) -> Req<'a> {
        Req {
            method: "PUT",
            ..Req::post_form(target, fields)
        }
    }

    fn put_json(target: &str, value: &Value) -> Req<'a> {
        Req {
            method: "PUT",
            ..Req::post_json(target, value)
        }
    }

    fn header(mut self, name: &'a str, value: &str) -> Req<'a> {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn bearer(self, token: &str) -> Req<'a> {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    fn encode(&self, host: &str, close: bool) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n",
            self.method, self.target
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some((content_type, body)) = &self.body {
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        if close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if let Some((_, body)) = &self.body {
            bytes.extend_from_slice(body);
        }
        bytes
    }

    async fn send(self, stub: &StubInstance) -> Reply {
        let host = stub.host_port();
        tokio::time::timeout(Duration::from_secs(30), async {
            let mut stream = TcpStream::connect(&host)
                .await
                .expect("connect to the stub");
            stream
                .write_all(&self.encode(&host, true))
                .await
                .expect("send");
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await.expect("read");
            parse_reply(&raw).0
        })
        .await
        .expect("the stub answers within 30 s")
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses one response from the start of `raw`; returns it and how many bytes it took.
fn parse_reply(raw: &[u8]) -> (Reply, usize) {
    let head_end = find(raw, b"\r\n\r\n").expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut at = head_end + 4;
    let body = if header("transfer-encoding").is_some_and(|te| te.contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let line_end = at + find(&raw[at..], b"\r\n").expect("chunk size line");
            let size =
                usize::from_str_radix(std::str::from_utf8(&raw[at..line_end]).unwrap().trim(), 16)
                    .unwrap();
            at = line_end + 2;
            if size == 0 {
                at += 2;
                break body;
            }
            body.extend_from_slice(&raw[at..at + size]);
            at += size + 2;
        }
    } else {
        let length: usize = header("content-length")
            .map(|l| l.parse().unwrap())
            .unwrap_or(raw.len() - at);
        let body = raw[at..at + length].to_vec();
        at += length;
        body
    };
    (
        Reply {
            status,
            headers,
            body,
        },
        at,
    )
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn query_of(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .expect("a URL")
        .query_pairs()
        .into_owned()
        .collect()
}

fn query_value(url: &str, name: &str) -> Option<String> {
    query_of(url)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

// ---------------------------------------------------------------------------------------------
// Flow helpers
// ---------------------------------------------------------------------------------------------

struct App {
    client_id: String,
    client_secret: String,
}

async fn register_mastodon_app(stub: &StubInstance, scopes: &str) -> App {
    let reply = Req::post_form(
        "/api/v1/apps",
        &[
            ("client_name", "tether"),
            ("redirect_uris", CALLBACK),
            ("scopes", scopes),
            ("website", "https://tether.example"),
        ],
    )
    .send(stub)
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let app = reply.json();
    App {
        client_id: app["client_id"].as_str().unwrap().to_owned(),
        client_secret: app["client_secret"].as_str().unwrap().to_owned(),
    }
}

async fn register_pixelfed_app(stub: &StubInstance) -> App {
    let reply = Req::post_form(
        "/api/v1/apps",
        &[("client_name", "tether"), ("redirect_uris", CALLBACK)],
    )
    .send(stub)
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let app = reply.json();
    App {
        client_id: app["client_id"]
            .as_u64()
            .expect("a numeric client_id")
            .to_string(),
        client_secret: app["client_secret"].as_str().unwrap().to_owned(),
    }
}

fn authorize_url(stub: &StubInstance, app: &App, scope: &str, state: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("scope", scope)
        .append_pair("state", state)
        .append_pair("code_challenge", &challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .finish();
    stub.url(&format!("/oauth/authorize?{query}"))
}

/// Authorizes (as the browser would) and returns the code from the callback.
fn authorize_code(stub: &StubInstance, app: &App, scope: &str) -> String {
    let callback = stub.authorize_redirect(&authorize_url(stub, app, scope, "st4te"));
    assert!(callback.starts_with(CALLBACK), "{callback}");
    assert_eq!(query_value(&callback, "state").as_deref(), Some("st4te"));
    query_value(&callback, "code").expect("a code in the callback")
}

async fn exchange(stub: &StubInstance, app: &App, code: &str, verifier: Option<&str>) -> Reply {
    let mut fields = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.as_str()),
        ("redirect_uri", CALLBACK),
    ];
    if let Some(verifier) = verifier {
        fields.push(("code_verifier", verifier));
    }
    Req::post_form("/oauth/token", &fields).send(stub).await
}

async fn mastodon_token(stub: &StubInstance, app: &App) -> String {
    let code = authorize_code(stub, app, "read write");
    let reply = exchange(stub, app, &code, Some(VERIFIER)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["access_token"].as_str().unwrap().to_owned()
}

async fn verify(stub: &StubInstance, token: &str) -> Reply {
    Req::get("/api/v1/accounts/verify_credentials")
        .bearer(token)
        .send(stub)
        .await
}

// ---------------------------------------------------------------------------------------------
// Mastodon 4.3
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn mastodon_describes_itself_as_4_3_with_oauth_metadata() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    assert_eq!(stub.origin(), format!("http://{}", stub.host_port()));

    let v2 = Req::get("/api/v2/instance").send(&stub).await;
    assert_eq!(v2.status, 200);
    assert!(v2
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let v2 = v2.json();
    assert_eq!(v2["domain"], stub.host_port());
    assert_eq!(v2["version"], "4.3.0");
    assert_eq!(v2["title"], "Stub Mastodon");
    assert_eq!(
        v2["configuration"]["media_attachments"]["description_limit"],
        1500
    );

    let v1 = Req::get("/api/v1/instance").send(&stub).await.json();
    assert_eq!(v1["uri"], stub.host_port());
    assert_eq!(v1["version"], "4.3.0");

    let meta = Req::get("/.well-known/oauth-authorization-server")
        .send(&stub)
        .await
        .json();
    assert_eq!(meta["issuer"], format!("{}/", stub.origin()));
    assert_eq!(meta["authorization_endpoint"], stub.url("/oauth/authorize"));
    assert_eq!(meta["token_endpoint"], stub.url("/oauth/token"));
    assert_eq!(meta["revocation_endpoint"], stub.url("/oauth/revoke"));
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    let scopes = meta["scopes_supported"].as_array().unwrap();
    for scope in ["read", "write", "profile", "read:accounts"] {
        assert!(scopes.contains(&json!(scope)), "{scope}");
    }

    let unknown = Req::get("/api/v1/nope").send(&stub).await;
    assert_eq!(
        (unknown.status, unknown.json()),
        (404, json!({ "error": "Record not found" }))
    );
}

#[tokio::test]
async fn builder_sets_the_account_title_and_version() {
    let stub = StubInstance::builder(Flavour::Mastodon43)
        .with_account("bob", "Bob B.")
        .with_account_id("42")
        .with_counts(1, 2, 3)
        .with_avatar("https://cdn.example/bob.png")
        .with_title("Bob's place")
        .with_version("4.2.10")
        .start()
        .await;
    let v2 = Req::get("/api/v2/instance").send(&stub).await.json();
    assert_eq!(
        (v2["title"].as_str(), v2["version"].as_str()),
        (Some("Bob's place"), Some("4.2.10"))
    );
    let app = register_mastodon_app(&stub, "read").await;
    let code = authorize_code(&stub, &app, "read");
    let token = exchange(&stub, &app, &code, Some(VERIFIER)).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = verify(&stub, &token).await.json();
    assert_eq!(me["id"], "42");
    assert_eq!(me["username"], "bob");
    assert_eq!(me["acct"], "bob");
    assert_eq!(me["display_name"], "Bob B.");
    assert_eq!(me["avatar"], "https://cdn.example/bob.png");
    assert_eq!(me["url"], stub.url("/@bob"));
    assert_eq!(
        (
            me["followers_count"].as_u64(),
            me["following_count"].as_u64(),
            me["statuses_count"].as_u64()
        ),
        (Some(1), Some(2), Some(3))
    );
}

#[tokio::test]
async fn mastodon_code_flow_with_pkce_yields_a_token_that_verifies_credentials() {
    let stub = StubInstance::builder(Flavour::Mastodon43)
        .with_account("alice", "Alice A.")
        .start()
        .await;

    let reply = Req::post_form(
        "/api/v1/apps",
        &[
            ("client_name", "tether"),
            ("redirect_uris", CALLBACK),
            ("scopes", "read write"),
            ("website", "https://tether.example"),
        ],
    )
    .send(&stub)
    .await;
    assert_eq!(reply.status, 200);
    let registered = reply.json();
    assert!(registered["id"].is_string());
    assert_eq!(registered["name"], "tether");
    assert_eq!(registered["redirect_uri"], CALLBACK);
    assert_eq!(registered["scopes"], json!(["read", "write"]));
    let app = App {
        client_id: registered["client_id"].as_str().unwrap().to_owned(),
        client_secret: registered["client_secret"].as_str().unwrap().to_owned(),
    };
    assert_eq!(app.client_id.len(), 43);

    let callback = stub.authorize_redirect(&authorize_url(&stub, &app, "read write", "xyz 1/2"));
    assert!(callback.starts_with(&format!("{CALLBACK}?")), "{callback}");
    assert_eq!(query_value(&callback, "state").as_deref(), Some("xyz 1/2"));
    let code = query_value(&callback, "code").unwrap();

    let authorize = stub.last_request("/oauth/authorize").unwrap();
    assert_eq!(
        authorize.query_param("code_challenge"),
        Some(challenge(VERIFIER).as_str())
    );
    assert_eq!(authorize.query_param("code_challenge_method"), Some("S256"));

    let reply = exchange(&stub, &app, &code, Some(VERIFIER)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let token = reply.json();
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["scope"], "read write");
    assert!(token["created_at"].as_u64().unwrap() > 1_700_000_000);
    assert!(token.get("refresh_token").is_none() && token.get("expires_in").is_none());
    let access = token["access_token"].as_str().unwrap();

    let sent = stub.last_request("/oauth/token").unwrap();
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.form_field("code_verifier"), Some(VERIFIER));
    assert_eq!(sent.form_field("grant_type"), Some("authorization_code"));

    let me = verify(&stub, access).await;
    assert_eq!(me.status, 200);
    let me = me.json();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["display_name"], "Alice A.");
    assert_eq!(
        (
            me["followers_count"].as_u64(),
            me["following_count"].as_u64(),
            me["statuses_count"].as_u64()
        ),
        (Some(12), Some(34), Some(56))
    );
    for field in ["id", "acct", "avatar", "url"] {
        assert!(me[field].is_string(), "{field}");
    }
    let seen = stub
        .last_request("/api/v1/accounts/verify_credentials")
        .unwrap();
    assert_eq!(
        seen.header("Authorization"),
        Some(format!("Bearer {access}").as_str())
    );
    assert_eq!(seen.header("user-agent"), Some(USER_AGENT));

    let issued = stub.issued_tokens();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].access_token, access);
    assert_eq!(issued[0].client_id, app.client_id);
    assert_eq!(
        stub.apps()[0].website.as_deref(),
        Some("https://tether.example")
    );
}

#[tokio::test]
async fn mastodon_app_registration_accepts_json_and_validates() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let reply = Req::post_json(
        "/api/v1/apps",
        &json!({ "client_name": "tether", "redirect_uris": [CALLBACK, "http://127.0.0.1:9/other"], "scopes": "read" }),
    )
    .send(&stub)
    .await;
    assert_eq!(reply.status, 200);
    let app = reply.json();
    assert_eq!(
        app["redirect_uris"],
        json!([CALLBACK, "http://127.0.0.1:9/other"])
    );
    assert_eq!(
        app["redirect_uri"],
        format!("{CALLBACK}\nhttp://127.0.0.1:9/other")
    );

    let no_name = Req::post_form("/api/v1/apps", &[("redirect_uris", CALLBACK)])
        .send(&stub)
        .await;
    assert_eq!(no_name.status, 422);
    assert!(no_name.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("Validation failed"));
    let bad_scope = Req::post_form(
        "/api/v1/apps",
        &[
            ("client_name", "t"),
            ("redirect_uris", CALLBACK),
            ("scopes", "read everything"),
        ],
    )
    .send(&stub)
    .await;
    assert_eq!(bad_scope.status, 422);
    assert_eq!(stub.apps().len(), 1);
}

#[tokio::test]
async fn mastodon_refuses_a_wrong_or_missing_pkce_verifier() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let app = register_mastodon_app(&stub, "read").await;
    let code = authorize_code(&stub, &app, "read");

    let wrong = exchange(
        &stub,
        &app,
        &code,
        Some("not-the-verifier-not-the-verifier-not-the-ver"),
    )
    .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.json()["error"], "invalid_grant");
    assert!(wrong.json()["error_description"].is_string());

    let missing = exchange(&stub, &app, &code, None).await;
    assert_eq!(
        (missing.status, missing.json()["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // Failed attempts do not consume the code (Doorkeeper revokes it only on success).
    let right = exchange(&stub, &app, &code, Some(VERIFIER)).await;
    assert_eq!(right.status, 200, "{}", right.text());
    assert_eq!(stub.issued_tokens().len(), 1);
}

#[tokio::test]
async fn mastodon_codes_are_single_use() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let app = register_mastodon_app(&stub, "read").await;
    let code = authorize_code(&stub, &app, "read");
    assert_eq!(
        exchange(&stub, &app, &code, Some(VERIFIER)).await.status,
        200
    );
    let again = exchange(&stub, &app, &code, Some(VERIFIER)).await;
    assert_eq!(
        (again.status, again.json()["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let invented = exchange(&stub, &app, "no-such-code", Some(VERIFIER)).await;
    assert_eq!(invented.status, 400);
    assert_eq!(stub.issued_tokens().len(), 1);
    assert_eq!(stub.count("/oauth/token"), 3);
}

#[tokio::test]
async fn mastodon_token_endpoint_authenticates_the_client() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let app = register_mastodon_app(&stub, "read").await;
    let code = authorize_code(&stub, &app, "read");

    let unknown = App {
        client_id: "nobody".into(),
        client_secret: app.client_secret.clone(),
    };
    let reply = exchange(&stub, &unknown, &code, Some(VERIFIER)).await;
    assert_eq!(
        (reply.status, reply.json()["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let wrong_secret = App {
        client_id: app.client_id.clone(),
        client_secret: "wrong".into(),
    };
    assert_eq!(
        exchange(&stub, &wrong_secret, &code, Some(VERIFIER))
            .await
            .status,
        401
    );

    // A redirect_uri other than the authorized one is refused.
    let other_redirect = Req::post_form(
        "/oauth/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", &app.client_id),
            ("client_secret", &app.client_secret),
            ("redirect_uri", "http://127.0.0.1:1/x"),
            ("code_verifier", VERIFIER),
        ],
    )
    .send(&stub)
    .await;
    assert_eq!(
        (
            other_redirect.status,
            other_redirect.json()["error"].as_str()
        ),
        (400, Some("invalid_grant"))
    );

    // client_secret_basic works as well as client_secret_post.
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", app.client_id, app.client_secret));
    let reply = Req::post_form(
        "/oauth/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", VERIFIER),
        ],
    )
    .header("Authorization", &format!("Basic {basic}"))
    .send(&stub)
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[tokio::test]
async fn mastodon_issues_no_refresh_tokens() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let app = register_mastodon_app(&stub, "read").await;
    let reply = Req::post_form(
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", &app.client_id),
            ("client_secret", &app.client_secret),
        ],
    )
    .send(&stub)
    .await;
    assert_eq!(
        (reply.status, reply.json()["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
}

#[tokio::test]
async fn authorize_rejects_unknown_clients_and_unregistered_redirect_uris() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let app = register_mastodon_app(&stub, "read").await;
    let good = authorize_url(&stub, &app, "read", "s");

    let unknown_client = good.replace(&app.client_id, "nobody");
    let reply = Req::get(&unknown_client[stub.origin().len()..])
        .send(&stub)
        .await;
    assert_eq!(reply.status, 400);
    assert!(reply.header("location").is_none());

    let other_redirect = good.replace("accounts%2Fcallback", "evil");
    let reply = Req::get(&other_redirect[stub.origin().len()..])
        .send(&stub)
        .await;
    assert_eq!(reply.status, 400);
    assert!(reply.header("location").is_none());
    assert!(stub.issued_tokens().is_empty());
}

#[tokio::test]
async fn authorize_redirects_with_an_error_for_bad_scope_or_pkce_parameters() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let app = register_mastodon_app(&stub, "read").await;

    // `write` was not registered by the app; Doorkeeper compares scope strings exactly.
    let callback = stub.authorize_redirect(&authorize_url(&stub, &app, "read write", "s1"));
    assert_eq!(
        query_value(&callback, "error").as_deref(),
        Some("invalid_scope")
    );
    assert_eq!(query_value(&callback, "state").as_deref(), Some("s1"));
    assert!(query_value(&callback, "code").is_none());

    let no_pkce = authorize_url(&stub, &app, "read", "s2")
        .replace(&format!("&code_challenge={}", challenge(VERIFIER)), "");
    let callback = stub.authorize_redirect(&no_pkce);
    assert_eq!(
        query_value(&callback, "error").as_deref(),
        Some("invalid_request")
    );

    let plain = authorize_url(&stub, &app, "read", "s3")
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    assert_eq!(
        query_value(&stub.authorize_redirect(&plain), "error").as_deref(),
        Some("invalid_request")
    );

    let token_response = authorize_url(&stub, &app, "read", "s4")
        .replace("response_type=code", "response_type=token");
    assert_eq!(
        query_value(&stub.authorize_redirect(&token_response), "error").as_deref(),
        Some("unsupported_response_type")
    );
}

#[tokio::test]
async fn pkce_if_present_allows_a_flow_without_challenge() {
    let stub = StubInstance::builder(Flavour::Mastodon43)
        .with_pkce(Pkce::IfPresent)
        .start()
        .await;
    let app = register_mastodon_app(&stub, "read").await;
    let no_pkce = authorize_url(&stub, &app, "read", "s")
        .replace(&format!("&code_challenge={}", challenge(VERIFIER)), "");
    let code = query_value(&stub.authorize_redirect(&no_pkce), "code").expect("a code");
    assert_eq!(exchange(&stub, &app, &code, None).await.status, 200);
}

#[tokio::test]
async fn authorize_can_be_denied() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let app = register_mastodon_app(&stub, "read").await;
    stub.deny_authorization(true);
    let callback = stub.authorize_redirect(&authorize_url(&stub, &app, "read", "st"));
    assert!(callback.starts_with(CALLBACK));
    assert_eq!(
        query_value(&callback, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_value(&callback, "state").as_deref(), Some("st"));
    assert!(query_value(&callback, "code").is_none());
    stub.deny_authorization(false);
    assert!(query_value(
        &stub.authorize_redirect(&authorize_url(&stub, &app, "read", "st")),
        "code"
    )
    .is_some());
}

#[tokio::test]
async fn mastodon_revoked_token_is_rejected() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let app = register_mastodon_app(&stub, "read write").await;
    let token = mastodon_token(&stub, &app).await;
    assert_eq!(verify(&stub, &token).await.status, 200);

    let wrong_secret = Req::post_form(
        "/oauth/revoke",
        &[
            ("client_id", &app.client_id),
            ("client_secret", "nope"),
            ("token", &token),
        ],
    )
    .send(&stub)
    .await;
    assert_eq!(
        (wrong_secret.status, wrong_secret.json()["error"].as_str()),
        (403, Some("unauthorized_client"))
    );
    assert_eq!(verify(&stub, &token).await.status, 200);

    let reply = Req::post_form(
        "/oauth/revoke",
        &[
            ("client_id", &app.client_id),
            ("client_secret", &app.client_secret),
            ("token", &token),
        ],
    )
    .send(&stub)
    .await;
    assert_eq!((reply.status, reply.json()), (200, json!({})));
    assert_eq!(stub.revoked_tokens(), vec![token.clone()]);
    assert!(stub.issued_tokens()[0].revoked);

    let after = verify(&stub, &token).await;
    assert_eq!(
        (after.status, after.json()),
        (401, json!({ "error": "The access token is invalid" }))
    );
    // Revoking an unknown token is still 200 (RFC 7009).
    let unknown = Req::post_form(
        "/oauth/revoke",
        &[
            ("client_id", &app.client_id),
            ("client_secret", &app.client_secret),
            ("token", "whatever"),
        ],
    )
    .send(&stub)
    .await;
    assert_eq!(unknown.status, 200);
}

#[tokio::test]
async fn server_side_revocation_invalidates_a_token() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let app = register_mastodon_app(&stub, "read").await;
    let code = authorize_code(&stub, &app, "read");
    let token = exchange(&stub, &app, &code, Some(VERIFIER)).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    stub.revoke_token(&token);
    assert_eq!(verify(&stub, &token).await.status, 401);
    assert_eq!(stub.revoked_tokens(), vec![token]);
}

#[tokio::test]
async fn verify_credentials_rejects_missing_malformed_and_unknown_tokens() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let missing = Req::get("/api/v1/accounts/verify_credentials")
        .send(&stub)
        .await;
    assert_eq!(
        (missing.status, missing.json()),
        (401, json!({ "error": "The access token is invalid" }))
    );
    assert_eq!(verify(&stub, "made-up").await.status, 401);
    let basic = Req::get("/api/v1/accounts/verify_credentials")
        .header("Authorization", "Basic Zm9vOmJhcg==")
        .send(&stub)
        .await;
    assert_eq!(basic.status, 401);
}

#[tokio::test]
async fn verify_credentials_needs_a_read_or_profile_scope() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let app = register_mastodon_app(&stub, "write profile").await;
    let code = authorize_code(&stub, &app, "write");
    let write_only = exchange(&stub, &app, &code, Some(VERIFIER)).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(verify(&stub, &write_only).await.status, 403);
    let code = authorize_code(&stub, &app, "profile");
    let profile = exchange(&stub, &app, &code, Some(VERIFIER)).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(verify(&stub, &profile).await.status, 200);
}

// ---------------------------------------------------------------------------------------------
// Pre-issued tokens (created in the instance's settings)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_accepted_token_verifies_as_the_account_it_was_issued_for() {
    for flavour in [Flavour::Mastodon43, Flavour::Pixelfed] {
        let stub = StubInstance::start(flavour).await;
        assert_eq!(verify(&stub, "tok-carol").await.status, 401, "{flavour:?}");
        stub.accept_token("tok-carol", "carol");
        stub.accept_token("tok-dave", "dave");
        let carol = verify(&stub, "tok-carol").await;
        assert_eq!(carol.status, 200, "{flavour:?}: {}", carol.text());
        let carol = carol.json();
        assert_eq!(carol["username"], "carol");
        assert_eq!(carol["acct"], "carol");
        assert_eq!(carol["display_name"], "Carol");
        assert_eq!(
            carol["avatar"],
            "https://media.stub.example/avatars/carol.png"
        );
        assert_eq!(carol["avatar"], StubInstance::avatar_of("carol"));
        let expected = stub.account_for("carol");
        assert_eq!(carol["id"], expected.id);
        assert!(
            expected.id.len() == 18 && expected.id.chars().all(|c| c.is_ascii_digit()),
            "{}",
            expected.id
        );
        assert_eq!(carol["followers_count"], expected.followers_count);
        assert_eq!(carol["following_count"], expected.following_count);
        assert_eq!(carol["statuses_count"], expected.statuses_count);
        let dave = verify(&stub, "tok-dave").await.json();
        assert_eq!(dave["username"], "dave");
        assert_ne!(dave["id"], carol["id"], "one id per account");
        // Not something /oauth/token issued.
        assert!(stub.issued_tokens().is_empty());
        assert_eq!(stub.accepted_tokens().len(), 2);
    }
}

#[tokio::test]
async fn accounts_for_a_username_are_stable_and_the_builders_account_is_reused() {
    let one = StubInstance::builder(Flavour::Mastodon43)
        .with_account("bob", "Bob B.")
        .with_counts(1, 2, 3)
        .start()
        .await;
    let two = StubInstance::start(Flavour::Pixelfed).await;
    assert_eq!(one.account_for("erin").id, two.account_for("erin").id);
    assert_eq!(one.account_for("erin").id, one.account_for("erin").id);
    // The builder's account is the one both the OAuth flow and a token for "bob" get.
    one.accept_token("tok-bob", "bob");
    let bob = verify(&one, "tok-bob").await.json();
    assert_eq!(bob["id"], one.account().id);
    assert_eq!(bob["display_name"], "Bob B.");
    assert_eq!(
        (
            bob["followers_count"].clone(),
            bob["statuses_count"].clone()
        ),
        (json!(1), json!(3))
    );
}

#[tokio::test]
async fn new_token_makes_a_fresh_accepted_token_each_time() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let first = stub.new_token("alice");
    let second = stub.new_token("alice");
    assert_ne!(first, second);
    assert!(first.starts_with("tok-alice-"), "{first}");
    for token in [&first, &second] {
        assert_eq!(verify(&stub, token).await.json()["username"], "alice");
    }
}

#[tokio::test]
async fn an_accepted_token_can_be_revoked_replaced_or_lack_the_read_scope() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    stub.accept_token("tok-1", "carol");
    stub.revoke_token("tok-1");
    assert_eq!(verify(&stub, "tok-1").await.status, 401);
    assert_eq!(stub.revoked_tokens(), vec!["tok-1".to_owned()]);

    stub.accept_token("tok-2", "carol");
    stub.accept_token("tok-2", "dave");
    assert_eq!(verify(&stub, "tok-2").await.json()["username"], "dave");

    let mut account = stub.account_for("frank");
    account.display_name = "Frank the Tank".into();
    account.avatar = None;
    stub.accept_token_for("tok-3", account.clone(), &["read:accounts"]);
    let frank = verify(&stub, "tok-3").await.json();
    assert_eq!(frank["display_name"], "Frank the Tank");
    assert_eq!(frank["avatar"], stub.url("/avatars/original/missing.png"));
    stub.accept_token_for("tok-4", account, &["write"]);
    assert_eq!(verify(&stub, "tok-4").await.status, 403);

    // It belongs to the application created in the settings: another app cannot revoke it.
    let app = register_mastodon_app(&stub, "read").await;
    let reply = Req::post_form(
        "/oauth/revoke",
        &[
            ("client_id", &app.client_id),
            ("client_secret", &app.client_secret),
            ("token", "tok-2"),
        ],
    )
    .send(&stub)
    .await;
    assert_eq!(reply.status, 403);
    assert_eq!(verify(&stub, "tok-2").await.status, 200);
}

// ---------------------------------------------------------------------------------------------
// Pixelfed
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn pixelfed_reports_a_compatible_version_and_has_no_oauth_metadata() {
    let stub = StubInstance::start(Flavour::Pixelfed).await;
    let v1 = Req::get("/api/v1/instance").send(&stub).await;
    assert_eq!(v1.status, 200);
    let v1 = v1.json();
    assert_eq!(v1["version"], "3.5.3 (compatible; Pixelfed 0.12.4)");
    assert_eq!(v1["uri"], stub.host_port());
    assert_eq!(
        v1["configuration"]["media_attachments"]["description_limit"],
        1000
    );
    assert_eq!(
        Req::get("/.well-known/oauth-authorization-server")
            .send(&stub)
            .await
            .status,
        404
    );
    assert_eq!(Req::get("/api/v2/instance").send(&stub).await.status, 404);
}

#[tokio::test]
async fn pixelfed_app_registration_returns_a_numeric_client_id() {
    let stub = StubInstance::start(Flavour::Pixelfed).await;
    let reply = Req::post_form(
        "/api/v1/apps",
        &[
            ("client_name", "tether"),
            ("redirect_uris", CALLBACK),
            ("scopes", "read write"),
        ],
    )
    .send(&stub)
    .await;
    assert_eq!(reply.status, 200);
    let app = reply.json();
    assert_eq!(app["client_id"], json!(7));
    assert!(app["client_secret"].as_str().unwrap().len() >= 40);
    assert_eq!(app["redirect_uri"], CALLBACK);
    let second = Req::post_form(
        "/api/v1/apps",
        &[("client_name", "tether"), ("redirect_uris", CALLBACK)],
    )
    .send(&stub)
    .await;
    assert_eq!(second.json()["client_id"], json!(8));

    let array = Req::post_json(
        "/api/v1/apps",
        &json!({ "client_name": "t", "redirect_uris": [CALLBACK] }),
    )
    .send(&stub)
    .await;
    assert_eq!(array.status, 422);
    let no_name = Req::post_form("/api/v1/apps", &[("redirect_uris", CALLBACK)])
        .send(&stub)
        .await;
    assert_eq!(no_name.status, 422);
    assert!(no_name.json()["errors"]["client_name"].is_array());
}

#[tokio::test]
async fn pixelfed_code_flow_issues_an_expiring_token_with_a_refresh_token() {
    let stub = StubInstance::start(Flavour::Pixelfed).await;
    let app = register_pixelfed_app(&stub).await;
    let code = authorize_code(&stub, &app, "read write follow push");
    // PKCE is accepted but not checked: a wrong verifier still gets a token.
    let reply = exchange(&stub, &app, &code, Some("wrong-verifier")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let token = reply.json();
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 31_536_000);
    let access = token["access_token"].as_str().unwrap();
    assert!(
        access.len() > 900 && access.split('.').count() == 3,
        "a JWT-sized token"
    );
    assert!(token["refresh_token"].as_str().unwrap().len() > 500);

    let me = verify(&stub, access).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["url"], stub.url("/alice"));
    assert_eq!(
        exchange(&stub, &app, &code, Some(VERIFIER)).await.status,
        400,
        "codes are single-use"
    );
}

#[tokio::test]
async fn pixelfed_refresh_rotates_both_tokens() {
    let stub = StubInstance::builder(Flavour::Pixelfed)
        .with_token_lifetime(Duration::from_secs(60))
        .start()
        .await;
    let app = register_pixelfed_app(&stub).await;
    let code = authorize_code(&stub, &app, "read");
    let first = exchange(&stub, &app, &code, Some(VERIFIER)).await.json();
    assert_eq!(first["expires_in"], 60);
    let refresh = |token: String| {
        let fields = [
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", token),
            ("client_id", app.client_id.clone()),
            ("client_secret", app.client_secret.clone()),
            ("scope", "read".to_owned()),
        ];
        let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
        Req::post_form("/oauth/token", &fields).send(&stub)
    };

    let second = refresh(first["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(second.status, 200, "{}", second.text());
    let second = second.json();
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(second["expires_in"], 60);

    let reused = refresh(first["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(
        (reused.status, reused.json()["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let old = verify(&stub, first["access_token"].as_str().unwrap()).await;
    assert_eq!(
        (old.status, old.json()),
        (401, json!({ "message": "Unauthenticated." }))
    );
    assert_eq!(
        verify(&stub, second["access_token"].as_str().unwrap())
            .await
            .status,
        200
    );
    assert_eq!(
        stub.revoked_tokens(),
        vec![first["access_token"].as_str().unwrap().to_owned()]
    );
    assert_eq!(stub.issued_tokens().len(), 2);
}

#[tokio::test]
async fn pixelfed_tokens_expire_after_their_lifetime() {
    let stub = StubInstance::builder(Flavour::Pixelfed)
        .with_token_lifetime(Duration::from_secs(1))
        .start()
        .await;
    let app = register_pixelfed_app(&stub).await;
    let code = authorize_code(&stub, &app, "read");
    let token = exchange(&stub, &app, &code, None).await.json();
    assert_eq!(token["expires_in"], 1);
    let access = token["access_token"].as_str().unwrap();
    assert_eq!(verify(&stub, access).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(verify(&stub, access).await.status, 401);

    // expire_tokens() does the same without waiting; the refresh token still works.
    let fresh = Req::post_form(
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token["refresh_token"].as_str().unwrap()),
            ("client_id", &app.client_id),
            ("client_secret", &app.client_secret),
        ],
    )
    .send(&stub)
    .await
    .json();
    let fresh = fresh["access_token"].as_str().unwrap();
    assert_eq!(verify(&stub, fresh).await.status, 200);
    stub.expire_tokens();
    assert_eq!(verify(&stub, fresh).await.status, 401);
}

#[tokio::test]
async fn pixelfed_has_no_revocation_endpoint() {
    let stub = StubInstance::start(Flavour::Pixelfed).await;
    let app = register_pixelfed_app(&stub).await;
    let code = authorize_code(&stub, &app, "read");
    let access = exchange(&stub, &app, &code, None).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = Req::post_form(
        "/oauth/revoke",
        &[
            ("client_id", &app.client_id),
            ("client_secret", &app.client_secret),
            ("token", &access),
        ],
    )
    .send(&stub)
    .await;
    assert_eq!(reply.status, 404);
    assert_eq!(verify(&stub, &access).await.status, 200);
    assert!(stub.revoked_tokens().is_empty());
}

#[tokio::test]
async fn pixelfed_token_endpoint_rejects_an_unknown_client() {
    let stub = StubInstance::start(Flavour::Pixelfed).await;
    let app = register_pixelfed_app(&stub).await;
    let code = authorize_code(&stub, &app, "read");
    let wrong = App {
        client_id: "99".into(),
        client_secret: app.client_secret.clone(),
    };
    let reply = exchange(&stub, &wrong, &code, None).await;
    assert_eq!(
        (reply.status, reply.json()["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // A JSON body with the numeric client_id is understood.
    let reply = Req::post_json(
        "/oauth/token",
        &json!({ "grant_type": "authorization_code", "code": code, "client_id": 7, "client_secret": app.client_secret, "redirect_uri": CALLBACK }),
    )
    .send(&stub)
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn fail_next_serves_a_status_once_then_the_normal_answer() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    stub.fail_next("/api/v2/instance", Fault::Status(500));
    stub.fail_next("/api/v2/instance", Fault::Status(401));
    let first = Req::get("/api/v2/instance").send(&stub).await;
    assert_eq!(
        (first.status, first.json()),
        (500, json!({ "error": "Internal Server Error" }))
    );
    let second = Req::get("/api/v2/instance").send(&stub).await;
    assert_eq!(
        (second.status, second.json()),
        (401, json!({ "error": "The access token is invalid" }))
    );
    assert_eq!(Req::get("/api/v2/instance").send(&stub).await.status, 200);
    // Other paths are unaffected, and the log says which requests were faulted.
    let log = stub.requests_to("/api/v2/instance");
    assert_eq!(
        log.iter().map(|r| r.fault.clone()).collect::<Vec<_>>(),
        vec![Some(Fault::Status(500)), Some(Fault::Status(401)), None]
    );
}

#[tokio::test]
async fn set_fault_applies_to_a_prefix_until_cleared() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    stub.set_fault("/api/", Fault::Status(503));
    stub.set_fault("/api/v1/instance", Fault::Status(502));
    assert_eq!(Req::get("/api/v2/instance").send(&stub).await.status, 503);
    assert_eq!(
        Req::get("/api/v1/instance").send(&stub).await.status,
        502,
        "the longest prefix wins"
    );
    assert_eq!(
        Req::get("/.well-known/oauth-authorization-server")
            .send(&stub)
            .await
            .status,
        200
    );
    stub.fail_next("/api/v2/instance", Fault::Status(500));
    assert_eq!(
        Req::get("/api/v2/instance").send(&stub).await.status,
        500,
        "one-shot faults come first"
    );
    stub.clear_fault("/api/v1/instance");
    assert_eq!(Req::get("/api/v1/instance").send(&stub).await.status, 503);
    stub.clear_faults();
    assert_eq!(Req::get("/api/v1/instance").send(&stub).await.status, 200);
}

/// Parses `2024-05-01T12:34:56.123456Z` without the `time` crate's parser.
fn parse_iso8601(s: &str) -> time::OffsetDateTime {
    assert_eq!(s.len(), 27, "{s}");
    assert!(
        s.ends_with('Z') && &s[10..11] == "T" && &s[19..20] == ".",
        "{s}"
    );
    let n = |range: std::ops::Range<usize>| s[range].parse::<u32>().unwrap();
    let date = time::Date::from_calendar_date(
        n(0..4) as i32,
        time::Month::try_from(n(5..7) as u8).unwrap(),
        n(8..10) as u8,
    )
    .unwrap();
    let time =
        time::Time::from_hms_micro(n(11..13) as u8, n(14..16) as u8, n(17..19) as u8, n(20..26))
            .unwrap();
    time::PrimitiveDateTime::new(date, time).assume_utc()
}

#[tokio::test]
async fn rate_limited_sends_mastodons_headers_with_an_iso_8601_reset() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    stub.fail_next(
        "/api/v1/accounts/verify_credentials",
        Fault::RateLimited { reset_in_secs: 120 },
    );
    let reply = Req::get("/api/v1/accounts/verify_credentials")
        .send(&stub)
        .await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.json(), json!({ "error": "Too many requests" }));
    assert_eq!(reply.header("X-RateLimit-Limit"), Some("300"));
    assert_eq!(reply.header("X-RateLimit-Remaining"), Some("0"));
    let reset = parse_iso8601(reply.header("X-RateLimit-Reset").unwrap());
    let in_secs = (reset - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((115..=120).contains(&in_secs), "{in_secs}");
}

#[tokio::test]
async fn rate_limited_on_pixelfed_sends_laravels_headers() {
    let stub = StubInstance::start(Flavour::Pixelfed).await;
    stub.fail_next("/api/v1/instance", Fault::RateLimited { reset_in_secs: 30 });
    let reply = Req::get("/api/v1/instance").send(&stub).await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.header("Retry-After"), Some("30"));
    assert_eq!(reply.header("X-RateLimit-Remaining"), Some("0"));
    let reset: u64 = reply.header("X-RateLimit-Reset").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((now + 28..=now + 31).contains(&reset));
}

#[tokio::test]
async fn slow_answers_normally_after_the_delay() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    stub.fail_next("/api/v2/instance", Fault::Slow(Duration::from_millis(400)));
    let started = Instant::now();
    let reply = Req::get("/api/v2/instance").send(&stub).await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(
        (reply.status, reply.json()["version"].as_str()),
        (200, Some("4.3.0"))
    );
}

#[tokio::test]
async fn slow_does_not_hold_up_other_requests() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    stub.fail_next("/api/v2/instance", Fault::Slow(Duration::from_secs(2)));
    let slow = Req::get("/api/v2/instance").send(&stub);
    let fast = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let reply = Req::get("/api/v1/instance").send(&stub).await;
        (reply.status, started.elapsed())
    };
    let (slow, (fast_status, fast_elapsed)) = tokio::join!(slow, fast);
    assert_eq!((slow.status, fast_status), (200, 200));
    assert!(fast_elapsed < Duration::from_secs(1), "{fast_elapsed:?}");
}

#[tokio::test]
async fn huge_body_streams_that_many_bytes_of_non_json() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let size = 5 * 1024 * 1024;
    stub.fail_next("/api/v1/accounts/verify_credentials", Fault::HugeBody(size));
    let reply = Req::get("/api/v1/accounts/verify_credentials")
        .send(&stub)
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("Transfer-Encoding"), Some("chunked"));
    assert!(reply.header("Content-Length").is_none());
    assert!(reply
        .header("Content-Type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(reply.body.len(), size);
    assert!(reply.body.starts_with(b"[{\""));
    assert!(serde_json::from_slice::<Value>(&reply.body).is_err());
}

#[tokio::test]
async fn garbage_is_a_200_that_is_not_json() {
    let stub = StubInstance::start(Flavour::Pixelfed).await;
    stub.fail_next("/api/v1/instance", Fault::Garbage);
    let reply = Req::get("/api/v1/instance").send(&stub).await;
    assert_eq!(reply.status, 200);
    assert!(reply
        .header("Content-Type")
        .unwrap()
        .starts_with("application/json"));
    assert!(!reply.body.is_empty());
    assert!(serde_json::from_slice::<Value>(&reply.body).is_err());
}

#[tokio::test]
async fn redirect_to_points_somewhere_else() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    stub.fail_next(
        "/api/v2/instance",
        Fault::RedirectTo("http://169.254.169.254/latest/meta-data/".into()),
    );
    let reply = Req::get("/api/v2/instance").send(&stub).await;
    assert_eq!(reply.status, 302);
    assert_eq!(
        reply.header("Location"),
        Some("http://169.254.169.254/latest/meta-data/")
    );
}

#[tokio::test]
async fn not_mastodon_serves_an_html_page_for_every_path() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    stub.set_fault("/", Fault::NotMastodon);
    for path in [
        "/api/v2/instance",
        "/api/v1/instance",
        "/.well-known/oauth-authorization-server",
        "/api/v1/accounts/verify_credentials",
    ] {
        let reply = Req::get(path).send(&stub).await;
        assert_eq!(reply.status, 200, "{path}");
        assert!(
            reply
                .header("Content-Type")
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert!(reply.text().contains("<html>"), "{path}");
    }
    let apps = Req::post_form(
        "/api/v1/apps",
        &[("client_name", "t"), ("redirect_uris", CALLBACK)],
    )
    .send(&stub)
    .await;
    assert!(apps
        .header("Content-Type")
        .unwrap()
        .starts_with("text/html"));
    assert!(stub.apps().is_empty());
    stub.clear_faults();
    assert!(Req::get("/api/v2/instance")
        .send(&stub)
        .await
        .header("Content-Type")
        .unwrap()
        .starts_with("application/json"));
}

// ---------------------------------------------------------------------------------------------
// Posts, edits, media, rate limits
// ---------------------------------------------------------------------------------------------

/// The `rel` targets of a `Link` header: `[(rel, url)]`.
fn links(header: Option<&str>) -> Vec<(String, String)> {
    header
        .unwrap_or_default()
        .split(", ")
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (url, rel) = l.split_once(">; rel=\"").expect("<url>; rel=\"…\"");
            (
                rel.trim_end_matches('"').to_owned(),
                url.trim_start_matches('<').to_owned(),
            )
        })
        .collect()
}

fn link(reply: &Reply, rel: &str) -> Option<String> {
    links(reply.header("Link"))
        .into_iter()
        .find(|(r, _)| r == rel)
        .map(|(_, url)| url)
}

/// The path and query of one of the stub's URLs.
fn target_of(stub: &StubInstance, url: &str) -> String {
    url.strip_prefix(&stub.origin())
        .unwrap_or_else(|| panic!("{url} is not on {}", stub.origin()))
        .to_owned()
}

fn ids_of(page: &Value) -> Vec<String> {
    page.as_array()
        .expect("an array of statuses")
        .iter()
        .map(|s| s["id"].as_str().expect("string ids").to_owned())
        .collect()
}

fn statuses_path(stub: &StubInstance, username: &str) -> String {
    format!(
        "/api/v1/accounts/{}/statuses",
        stub.account_for(username).id
    )
}

#[tokio::test]
async fn mastodon_paging_follows_link_to_the_end_without_duplicates_with_only_media_and_no_boosts()
{
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let token = stub.new_token("alice");
    let mut media_ids = Vec::new();
    for i in 0..40 {
        let id = if i % 2 == 0 {
            stub.add_post("alice", NewPost::text(&format!("photo {i}")).image(None))
        } else {
            stub.add_post(
                "alice",
                NewPost::text(&format!("video {i}")).video(Some("a clip")),
            )
        };
        media_ids.push(id);
        if i % 10 == 0 {
            stub.add_post("alice", NewPost::text("just words"));
            stub.add_post("alice", NewPost::text("boosted").image(None).reblog());
        }
    }
    stub.add_image_posts("bob", 3);
    media_ids.reverse();

    let mut target = format!(
        "{}?limit=20&only_media=true&exclude_reblogs=true",
        statuses_path(&stub, "alice")
    );
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    loop {
        let reply = Req::get(&target).bearer(&token).send(&stub).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let ids = ids_of(&reply.json());
        pages.push(ids.len());
        for status in reply.json().as_array().unwrap() {
            assert!(!status["media_attachments"].as_array().unwrap().is_empty());
            assert!(status["reblog"].is_null());
            assert_eq!(status["account"]["username"], "alice");
        }
        seen.extend(ids.clone());
        if let Some(first) = ids.first() {
            let prev = link(&reply, "prev").expect("a prev link on a non-empty page");
            assert_eq!(
                query_value(&prev, "min_id").as_deref(),
                Some(first.as_str())
            );
        }
        match link(&reply, "next") {
            Some(next) => {
                assert_eq!(
                    query_value(&next, "max_id").as_ref(),
                    ids.last(),
                    "next pages from the last id"
                );
                for (name, value) in [
                    ("limit", "20"),
                    ("only_media", "true"),
                    ("exclude_reblogs", "true"),
                ] {
                    assert_eq!(query_value(&next, name).as_deref(), Some(value), "{next}");
                }
                assert!(next.starts_with(&stub.url(&statuses_path(&stub, "alice"))));
                target = target_of(&stub, &next);
            }
            None => break,
        }
    }
    assert_eq!(
        pages,
        vec![20, 20, 0],
        "a full last page still links to an empty one"
    );
    assert_eq!(
        seen, media_ids,
        "newest first, each once, only alice's media posts"
    );
    assert_eq!(stub.count(&statuses_path(&stub, "alice")), 3);

    // Without filters: everything, boosts included, the default limit 20, at most 40.
    let all = Req::get(&statuses_path(&stub, "alice"))
        .bearer(&token)
        .send(&stub)
        .await;
    assert_eq!(ids_of(&all.json()).len(), 20);
    let next = link(&all, "next").unwrap();
    assert_eq!(
        query_value(&next, "limit"),
        None,
        "only the request's own params"
    );
    let many = Req::get(&format!("{}?limit=100", statuses_path(&stub, "alice")))
        .bearer(&token)
        .send(&stub)
        .await
        .json();
    assert_eq!(ids_of(&many).len(), 40);
    let newest_first: Vec<String> = stub.posts_of("alice").into_iter().map(|p| p.id).collect();
    assert_eq!(ids_of(&many), newest_first[..40]);
}

#[tokio::test]
async fn mastodon_paging_by_min_and_since_id_and_unknown_accounts() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let token = stub.new_token("alice");
    let ids = stub.add_image_posts("alice", 10); // newest first
    let path = statuses_path(&stub, "alice");
    let after = |query: String| {
        let target = format!("{path}?{query}");
        let token = token.clone();
        let stub = &stub;
        async move { ids_of(&Req::get(&target).bearer(&token).send(stub).await.json()) }
    };
    assert_eq!(
        after(format!("limit=3&min_id={}", ids[9])).await,
        vec![ids[6].clone(), ids[7].clone(), ids[8].clone()],
        "min_id: the ones just after it"
    );
    assert_eq!(
        after(format!("limit=3&since_id={}", ids[9])).await,
        ids[..3].to_vec(),
        "since_id: the newest after it"
    );
    assert_eq!(
        after(format!("max_id={}&since_id={}", ids[2], ids[5])).await,
        ids[3..5].to_vec()
    );
    let empty = Req::get(&format!("{path}?max_id={}", ids[9]))
        .bearer(&token)
        .send(&stub)
        .await;
    assert_eq!(empty.json(), json!([]));
    assert_eq!(empty.header("Link"), None, "no links on an empty page");
    let unknown = Req::get("/api/v1/accounts/999/statuses")
        .bearer(&token)
        .send(&stub)
        .await;
    assert_eq!(
        (unknown.status, unknown.json()),
        (404, json!({ "error": "Record not found" }))
    );
    // The builder's account and accounts known only from a token are there too.
    stub.new_token("carol");
    let carol = Req::get(&statuses_path(&stub, "carol"))
        .bearer(&token)
        .send(&stub)
        .await;
    assert_eq!((carol.status, carol.json()), (200, json!([])));
}

#[tokio::test]
async fn pixelfed_has_no_link_header_and_repeats_the_max_id_post() {
    let stub = StubInstance::start(Flavour::Pixelfed).await;
    let token = stub.new_token("alice");
    let ids = stub.add_image_posts("alice", 5);
    let path = format!("{}?only_media=true&limit=2", statuses_path(&stub, "alice"));
    let first = Req::get(&path).bearer(&token).send(&stub).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("Link"), None);
    assert_eq!(ids_of(&first.json()), ids[..2].to_vec());

    // A client pages by max_id = the last id it saw and drops duplicates.
    let mut seen: Vec<String> = ids_of(&first.json());
    let mut pages = vec![ids_of(&first.json())];
    loop {
        let last = seen.last().unwrap().clone();
        let reply = Req::get(&format!("{path}&max_id={last}"))
            .bearer(&token)
            .send(&stub)
            .await;
        assert_eq!(reply.header("Link"), None);
        let page = ids_of(&reply.json());
        pages.push(page.clone());
        if page.is_empty() {
            break;
        }
        assert_eq!(page[0], last, "the max_id post again at the top");
        seen.extend(page.into_iter().filter(|id| *id != last));
        assert!(pages.len() < 10, "paging ends");
    }
    assert_eq!(seen, ids);
    assert_eq!(
        pages,
        vec![
            vec![ids[0].clone(), ids[1].clone()],
            vec![ids[1].clone(), ids[2].clone()],
            vec![ids[2].clone(), ids[3].clone()],
            vec![ids[3].clone(), ids[4].clone()],
            vec![],
        ],
        "empty once nothing is older than max_id"
    );
}

#[tokio::test]
async fn statuses_and_media_endpoints_require_a_valid_token() {
    for flavour in [Flavour::Mastodon43, Flavour::Pixelfed] {
        let stub = StubInstance::start(flavour).await;
        let id = stub.add_post("alice", NewPost::text("hi").image(None));
        let media_id = stub.post(&id).unwrap().media[0].id.clone();
        let revoked = stub.new_token("alice");
        stub.revoke_token(&revoked);
        let expected = match flavour {
            Flavour::Mastodon43 => json!({ "error": "The access token is invalid" }),
            Flavour::Pixelfed => json!({ "message": "Unauthenticated." }),
        };
        // Pixelfed has no source or status edits: 404 whatever the token.
        let missing_on_pixelfed = flavour == Flavour::Pixelfed;
        let targets = [
            (Req::get(&statuses_path(&stub, "alice")), false),
            (Req::get(&format!("/api/v1/statuses/{id}")), false),
            (
                Req::get(&format!("/api/v1/statuses/{id}/source")),
                missing_on_pixelfed,
            ),
            (
                Req::put_form(&format!("/api/v1/statuses/{id}"), &[("status", "x")]),
                missing_on_pixelfed,
            ),
            (
                Req::put_form(
                    &format!("/api/v1/media/{media_id}"),
                    &[("description", "x")],
                ),
                false,
            ),
        ];
        for (req, missing) in targets {
            let target = req.target.clone();
            for token in [revoked.as_str(), "made-up"] {
                let reply = req.clone().bearer(token).send(&stub).await;
                if missing {
                    assert_eq!(reply.status, 404, "{target}");
                } else {
                    assert_eq!(
                        (reply.status, reply.json()),
                        (401, expected.clone()),
                        "{flavour:?} {target}"
                    );
                }
            }
        }
        let anonymous = Req::get(&format!("/api/v1/statuses/{id}"))
            .send(&stub)
            .await;
        assert_eq!(
            anonymous.status, 401,
            "{flavour:?}: stricter than real instances"
        );
        assert_eq!(stub.post(&id).unwrap().media[0].description, None);
    }
    // Mastodon checks the scope too.
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let id = stub.add_post("alice", NewPost::text("hi"));
    let alice = stub.account_for("alice");
    stub.accept_token_for("tok-read", alice.clone(), &["read"]);
    stub.accept_token_for("tok-write", alice, &["write:statuses"]);
    let put = |token: &'static str| {
        Req::put_form(&format!("/api/v1/statuses/{id}"), &[("status", "edited")]).bearer(token)
    };
    assert_eq!(put("tok-read").send(&stub).await.status, 403);
    assert_eq!(
        Req::get(&format!("/api/v1/statuses/{id}"))
            .bearer("tok-write")
            .send(&stub)
            .await
            .status,
        403
    );
    assert_eq!(put("tok-write").send(&stub).await.status, 200);
}

#[tokio::test]
async fn statuses_have_the_mastodon_entity_shape_on_both_flavours() {
    for flavour in [Flavour::Mastodon43, Flavour::Pixelfed] {
        let stub = StubInstance::start(flavour).await;
        let token = stub.new_token("carol");
        let at = time::macros::datetime!(2026-11-30 10:00:00 UTC);
        let id = stub.add_post(
            "carol",
            NewPost::text("fish & <chips>\n\nsecond")
                .spoiler("food")
                .sensitive(true)
                .language("de")
                .created_at(at)
                .image(Some("a plate"))
                .gifv(None)
                .video(None)
                .audio(None),
        );
        let reply = Req::get(&format!("/api/v1/statuses/{id}"))
            .bearer(&token)
            .send(&stub)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let status = reply.json();
        assert_eq!(status["id"], id);
        assert!(id.chars().all(|c| c.is_ascii_digit()), "{id}");
        assert_eq!(status["created_at"], "2026-11-30T10:00:00.000Z");
        assert_eq!(status["edited_at"], Value::Null);
        assert_eq!(
            status["content"],
            "<p>fish &amp; &lt;chips&gt;</p><p>second</p>"
        );
        assert_eq!(status["spoiler_text"], "food");
        assert_eq!(status["sensitive"], true);
        assert_eq!(status["language"], "de");
        assert_eq!(status["visibility"], "public");
        assert_eq!(status["reblog"], Value::Null);
        assert_eq!(status["account"]["username"], "carol");
        assert_eq!(status["account"]["id"], stub.account_for("carol").id);
        let url = match flavour {
            Flavour::Mastodon43 => stub.url(&format!("/@carol/{id}")),
            Flavour::Pixelfed => stub.url(&format!("/p/carol/{id}")),
        };
        assert_eq!(status["url"], url);
        assert!(status["uri"].as_str().unwrap().starts_with(&stub.origin()));
        let media = status["media_attachments"].as_array().unwrap();
        let kinds: Vec<&str> = media.iter().map(|m| m["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["image", "gifv", "video", "audio"]);
        let first = &media[0];
        let media_id = first["id"].as_str().expect("a string id on both flavours");
        assert_eq!(media_id, stub.post(&id).unwrap().media[0].id);
        assert_eq!(first["url"], stub.url(&format!("/media/{media_id}.png")));
        assert_eq!(
            first["preview_url"],
            stub.url(&format!("/media/{media_id}_small.png"))
        );
        assert_eq!(first["remote_url"], Value::Null);
        assert_eq!(first["description"], "a plate");
        assert!(first["blurhash"].is_string());
        assert_eq!(first["meta"], json!({}));
        assert_eq!(media[1]["description"], Value::Null);
        let mut unique: Vec<&str> = media.iter().map(|m| m["id"].as_str().unwrap()).collect();
        unique.dedup();
        assert_eq!(unique.len(), 4, "media ids are unique");

        let raw = stub.add_post(
            "carol",
            NewPost::text("a alert(1)").html("<p>a <script>alert(1)</script></p>"),
        );
        let raw = Req::get(&format!("/api/v1/statuses/{raw}"))
            .bearer(&token)
            .send(&stub)
            .await
            .json();
        assert_eq!(raw["content"], "<p>a <script>alert(1)</script></p>");
        let boost = stub.add_post("carol", NewPost::text("boosted").image(None).reblog());
        let boost = Req::get(&format!("/api/v1/statuses/{boost}"))
            .bearer(&token)
            .send(&stub)
            .await
            .json();
        assert_eq!(boost["reblog"]["content"], "<p>boosted</p>");

        stub.delete_post(&id);
        assert_eq!(
            Req::get(&format!("/api/v1/statuses/{id}"))
                .bearer(&token)
                .send(&stub)
                .await
                .status,
            404
        );
        assert!(stub.post(&id).is_none());
    }
}

#[tokio::test]
async fn posts_added_later_are_newer_and_media_descriptions_can_change_behind_the_api() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let first = stub.add_post("alice", NewPost::text("one").image(None));
    let second = stub.add_post("alice", NewPost::text("two").image(Some("x")));
    let images = stub.add_image_posts("alice", 3);
    let (a, b) = (stub.post(&first).unwrap(), stub.post(&second).unwrap());
    assert!(second.parse::<u128>().unwrap() > first.parse::<u128>().unwrap());
    assert!(b.created_at > a.created_at);
    assert!(b.created_at <= time::OffsetDateTime::now_utc());
    assert_eq!(a.account_id, stub.account().id);
    let posts: Vec<String> = stub.posts_of("alice").into_iter().map(|p| p.id).collect();
    assert_eq!(posts[..3], images[..]);
    assert_eq!(posts[3..], [second.clone(), first.clone()]);
    assert!(stub.posts_of("bob").is_empty());
    for post in stub.posts_of("alice").iter().take(3) {
        assert_eq!(post.media.len(), 1);
        assert_eq!(
            (post.media[0].kind.as_str(), &post.media[0].description),
            ("image", &None)
        );
    }

    let media_id = a.media[0].id.clone();
    stub.set_media_description(&media_id, Some("set in the web UI"));
    let token = stub.new_token("alice");
    let status = Req::get(&format!("/api/v1/statuses/{first}"))
        .bearer(&token)
        .send(&stub)
        .await
        .json();
    assert_eq!(
        status["media_attachments"][0]["description"],
        "set in the web UI"
    );
    assert_eq!(
        (stub.post(&first).unwrap().edits, stub.edit_count()),
        (0, 0)
    );
}

#[tokio::test]
async fn mastodon_put_without_media_ids_detaches_media_and_without_status_blanks_the_text() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let token = stub.new_token("alice");
    let id = stub.add_post(
        "alice",
        NewPost::text("my photos")
            .spoiler("cw")
            .image(None)
            .image(None),
    );
    let reply = Req::put_form(
        &format!("/api/v1/statuses/{id}"),
        &[("status", "my photos")],
    )
    .bearer(&token)
    .send(&stub)
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let status = reply.json();
    assert_eq!(status["media_attachments"], json!([]));
    assert_eq!(
        status["spoiler_text"], "",
        "a missing spoiler_text blanks it"
    );
    assert_eq!(status["content"], "<p>my photos</p>");
    assert!(status["edited_at"].is_string());
    let post = stub.post(&id).unwrap();
    assert!(post.media.is_empty());
    assert_eq!((post.edits, stub.edit_count()), (1, 1));

    // Only media_ids: the text goes.
    let id = stub.add_post("alice", NewPost::text("caption").language("fr").image(None));
    let media_id = stub.post(&id).unwrap().media[0].id.clone();
    let reply = Req::put_form(
        &format!("/api/v1/statuses/{id}"),
        &[("media_ids[]", &media_id)],
    )
    .bearer(&token)
    .send(&stub)
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let post = stub.post(&id).unwrap();
    assert_eq!((post.text.as_str(), post.content.as_str()), ("", ""));
    assert_eq!(post.media.len(), 1);
    assert_eq!(
        post.language.as_deref(),
        Some("fr"),
        "a missing language keeps it"
    );
    let source = Req::get(&format!("/api/v1/statuses/{id}/source"))
        .bearer(&token)
        .send(&stub)
        .await
        .json();
    assert_eq!(source, json!({ "id": id, "text": "", "spoiler_text": "" }));

    // Nothing at all on a post without media: text can't be blank, and nothing changes.
    let id = stub.add_post("alice", NewPost::text("words only"));
    let reply = Req::put_form(&format!("/api/v1/statuses/{id}"), &[])
        .bearer(&token)
        .send(&stub)
        .await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            422,
            json!({ "error": "Validation failed: Text can't be blank" })
        )
    );
    assert_eq!(stub.post(&id).unwrap().text, "words only");
    assert_eq!(stub.edit_count(), 2);

    // Media ids not on this post are refused.
    let reply = Req::put_form(
        &format!("/api/v1/statuses/{id}"),
        &[("status", "x"), ("media_ids[]", &media_id)],
    )
    .bearer(&token)
    .send(&stub)
    .await;
    assert_eq!(reply.status, 422, "{}", reply.text());
}

#[tokio::test]
async fn mastodon_full_put_with_media_attributes_keeps_the_text_and_sets_descriptions() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let token = stub.new_token("alice");
    let id = stub.add_post(
        "alice",
        NewPost::text("a walk, see https://example.com/a/very/long/path")
            .html("<p>a walk, see <a href=\"https://example.com\">example.com</a></p>")
            .spoiler("nature")
            .sensitive(true)
            .language("en")
            .image(None)
            .image(Some("old")),
    );
    let post = stub.post(&id).unwrap();
    let (m1, m2) = (post.media[0].id.clone(), post.media[1].id.clone());
    let source = Req::get(&format!("/api/v1/statuses/{id}/source"))
        .bearer(&token)
        .send(&stub)
        .await
        .json();
    let text = source["text"].as_str().unwrap();
    let reply = Req::put_form(
        &format!("/api/v1/statuses/{id}"),
        &[
            ("status", text),
            ("spoiler_text", source["spoiler_text"].as_str().unwrap()),
            ("sensitive", "true"),
            ("language", "en"),
            ("media_ids[]", &m1),
            ("media_ids[]", &m2),
            ("media_attributes[][id]", &m1),
            ("media_attributes[][description]", "a forest path"),
            ("media_attributes[][id]", &m2),
            ("media_attributes[][description]", "a lake"),
        ],
    )
    .bearer(&token)
    .send(&stub)
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let status = reply.json();
    assert_eq!(
        status["media_attachments"][0]["description"],
        "a forest path"
    );
    assert_eq!(status["media_attachments"][1]["description"], "a lake");
    let after = stub.post(&id).unwrap();
    assert_eq!(after.text, post.text);
    assert_eq!(
        after.content, post.content,
        "the HTML is kept when the text is"
    );
    assert_eq!(
        (
            after.spoiler_text.as_str(),
            after.sensitive,
            after.language.as_deref()
        ),
        ("nature", true, Some("en"))
    );
    assert_eq!((after.edits, stub.edit_count()), (1, 1));
    assert!(after.edited_at.is_some());

    // The same again changes nothing: no edit.
    let same = json!({
        "status": text, "spoiler_text": "nature", "sensitive": true,
        "media_ids": [m1, m2],
        "media_attributes": [{ "id": m1, "description": "a forest path" }]
    });
    let reply = Req::put_json(&format!("/api/v1/statuses/{id}"), &same)
        .bearer(&token)
        .send(&stub)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(stub.edit_count(), 1);

    // JSON: the order of media_ids is the new order; ids of media not kept are ignored in
    // media_attributes; numbers work as ids too.
    let body = json!({
        "status": text, "spoiler_text": "nature", "sensitive": true,
        "media_ids": [m2, m1.parse::<u64>().unwrap()],
        "media_attributes": [{ "id": m2, "description": "the lake at dawn" }, { "id": "1", "description": "ignored" }]
    });
    let reply = Req::put_json(&format!("/api/v1/statuses/{id}"), &body)
        .bearer(&token)
        .send(&stub)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let after = stub.post(&id).unwrap();
    let order: Vec<(&str, Option<&str>)> = after
        .media
        .iter()
        .map(|m| (m.id.as_str(), m.description.as_deref()))
        .collect();
    assert_eq!(
        order,
        [
            (m2.as_str(), Some("the lake at dawn")),
            (m1.as_str(), Some("a forest path"))
        ]
    );
    assert_eq!((after.edits, stub.edit_count()), (2, 2));
}

#[tokio::test]
async fn mastodon_4_0_ignores_media_attributes() {
    let stub = StubInstance::builder(Flavour::Mastodon43)
        .with_version("4.0.2")
        .start()
        .await;
    let token = stub.new_token("alice");
    let id = stub.add_post("alice", NewPost::text("old server").image(None));
    let media_id = stub.post(&id).unwrap().media[0].id.clone();
    let source = Req::get(&format!("/api/v1/statuses/{id}/source"))
        .bearer(&token)
        .send(&stub)
        .await;
    assert_eq!(source.status, 200, "the source exists from 3.5 on");
    let reply = Req::put_form(
        &format!("/api/v1/statuses/{id}"),
        &[
            ("status", "old server"),
            ("media_ids[]", &media_id),
            ("media_attributes[][id]", &media_id),
            ("media_attributes[][description]", "never saved"),
        ],
    )
    .bearer(&token)
    .send(&stub)
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json()["media_attachments"][0]["description"],
        Value::Null
    );
    assert_eq!(stub.post(&id).unwrap().media[0].description, None);
    assert_eq!(stub.edit_count(), 0, "nothing changed");

    let ancient = StubInstance::builder(Flavour::Mastodon43)
        .with_version("3.4.1")
        .start()
        .await;
    let token = ancient.new_token("alice");
    let id = ancient.add_post("alice", NewPost::text("x"));
    for req in [
        Req::get(&format!("/api/v1/statuses/{id}/source")),
        Req::put_form(&format!("/api/v1/statuses/{id}"), &[("status", "y")]),
    ] {
        assert_eq!(req.bearer(&token).send(&ancient).await.status, 404);
    }
}

#[tokio::test]
async fn mastodon_put_media_on_an_attached_image_is_404() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let token = stub.new_token("alice");
    let id = stub.add_post("alice", NewPost::text("x").image(None));
    let media_id = stub.post(&id).unwrap().media[0].id.clone();
    let reply = Req::put_form(
        &format!("/api/v1/media/{media_id}"),
        &[("description", "too late")],
    )
    .bearer(&token)
    .send(&stub)
    .await;
    assert_eq!(
        (reply.status, reply.json()),
        (404, json!({ "error": "Record not found" }))
    );
    assert_eq!(stub.post(&id).unwrap().media[0].description, None);
}

#[tokio::test]
async fn pixelfed_put_media_updates_and_the_11th_within_a_minute_is_429_with_retry_after() {
    let stub = StubInstance::builder(Flavour::Pixelfed)
        .with_rate_limit("/api/v1/media/", 10, Duration::from_secs(60))
        .start()
        .await;
    let token = stub.new_token("alice");
    let ids = stub.add_image_posts("alice", 11);
    for (i, id) in ids.iter().enumerate().take(10) {
        let media_id = stub.post(id).unwrap().media[0].id.clone();
        let reply = Req::put_form(
            &format!("/api/v1/media/{media_id}"),
            &[("description", &format!("photo {i}"))],
        )
        .bearer(&token)
        .send(&stub)
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["id"], media_id);
        assert_eq!(reply.json()["description"], format!("photo {i}"));
        assert_eq!(reply.header("X-RateLimit-Limit"), Some("10"));
        assert_eq!(
            reply.header("X-RateLimit-Remaining"),
            Some((9 - i).to_string().as_str())
        );
        assert_eq!(reply.header("Retry-After"), None);
        assert_eq!(
            stub.post(id).unwrap().media[0].description.as_deref(),
            Some(format!("photo {i}").as_str())
        );
    }
    let last = stub.post(&ids[10]).unwrap().media[0].id.clone();
    let reply = Req::put_json(
        &format!("/api/v1/media/{last}"),
        &json!({ "description": "eleven" }),
    )
    .bearer(&token)
    .send(&stub)
    .await;
    assert_eq!(
        (reply.status, reply.json()),
        (429, json!({ "message": "Too Many Attempts." }))
    );
    let retry: u64 = reply.header("Retry-After").unwrap().parse().unwrap();
    assert!((58..=60).contains(&retry), "{retry}");
    let reset: u64 = reply.header("X-RateLimit-Reset").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((now + 57..=now + 61).contains(&reset), "{reset} vs {now}");
    assert_eq!(reply.header("X-RateLimit-Remaining"), Some("0"));
    assert_eq!(stub.post(&ids[10]).unwrap().media[0].description, None);
    // Per token: another user still has their ten. Other paths are not limited.
    let bob = stub.new_token("bob");
    let bobs = stub.add_post("bob", NewPost::text("b").image(None));
    let bobs_media = stub.post(&bobs).unwrap().media[0].id.clone();
    let reply = Req::put_form(
        &format!("/api/v1/media/{bobs_media}"),
        &[("description", "b")],
    )
    .bearer(&bob)
    .send(&stub)
    .await;
    assert_eq!(
        (reply.status, reply.header("X-RateLimit-Remaining")),
        (200, Some("9"))
    );
    let other = Req::get(&format!("/api/v1/statuses/{}", ids[0]))
        .bearer(&token)
        .send(&stub)
        .await;
    assert_eq!(
        (other.status, other.header("X-RateLimit-Limit")),
        (200, None)
    );
    // Cleared at runtime: no limit, no headers.
    stub.clear_rate_limit("/api/v1/media/");
    let reply = Req::put_form(
        &format!("/api/v1/media/{last}"),
        &[("description", "eleven")],
    )
    .bearer(&token)
    .send(&stub)
    .await;
    assert_eq!(
        (reply.status, reply.header("X-RateLimit-Limit")),
        (200, None)
    );
    // Pixelfed has no status edits or sources.
    for req in [
        Req::get(&format!("/api/v1/statuses/{}/source", ids[0])),
        Req::put_form(&format!("/api/v1/statuses/{}", ids[0]), &[("status", "x")]),
    ] {
        let reply = req.bearer(&token).send(&stub).await;
        assert_eq!(
            (reply.status, reply.json()),
            (404, json!({ "message": "Not Found" }))
        );
    }
}

#[tokio::test]
async fn mastodon_rate_limits_send_an_iso_8601_reset_on_every_answer_and_reset_with_the_window() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    stub.set_rate_limit("/api/v1/statuses/", 2, Duration::from_millis(1500));
    let token = stub.new_token("alice");
    let id = stub.add_post("alice", NewPost::text("x"));
    let get = || Req::get(&format!("/api/v1/statuses/{id}")).bearer(&token);
    for remaining in ["1", "0"] {
        let reply = get().send(&stub).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("X-RateLimit-Limit"), Some("2"));
        assert_eq!(reply.header("X-RateLimit-Remaining"), Some(remaining));
        let reset = parse_iso8601(reply.header("X-RateLimit-Reset").unwrap());
        let in_ms = (reset - time::OffsetDateTime::now_utc()).whole_milliseconds();
        assert!((0..=1500).contains(&in_ms), "{in_ms}");
    }
    let limited = get().send(&stub).await;
    assert_eq!(
        (limited.status, limited.json()),
        (429, json!({ "error": "Too many requests" }))
    );
    assert!(limited.header("X-RateLimit-Reset").is_some());
    assert_eq!(limited.header("Retry-After"), None);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let again = get().send(&stub).await;
    assert_eq!(
        (again.status, again.header("X-RateLimit-Remaining")),
        (200, Some("1"))
    );
}

#[tokio::test]
async fn another_users_post_is_not_found_for_edits_and_sources() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let bob = stub.new_token("bob");
    let id = stub.add_post("alice", NewPost::text("mine").image(None));
    let media_id = stub.post(&id).unwrap().media[0].id.clone();
    for req in [
        Req::get(&format!("/api/v1/statuses/{id}/source")),
        Req::put_form(
            &format!("/api/v1/statuses/{id}"),
            &[("status", "not yours"), ("media_ids[]", &media_id)],
        ),
    ] {
        let reply = req.bearer(&bob).send(&stub).await;
        assert_eq!(
            (reply.status, reply.json()),
            (404, json!({ "error": "Record not found" }))
        );
    }
    assert_eq!(stub.post(&id).unwrap().text, "mine");
    assert_eq!(stub.edit_count(), 0);
    let public = Req::get(&format!("/api/v1/statuses/{id}"))
        .bearer(&bob)
        .send(&stub)
        .await;
    assert_eq!(public.status, 200, "reading is fine");

    let stub = StubInstance::start(Flavour::Pixelfed).await;
    let bob = stub.new_token("bob");
    let id = stub.add_post("alice", NewPost::text("mine").image(None));
    let media_id = stub.post(&id).unwrap().media[0].id.clone();
    let reply = Req::put_form(
        &format!("/api/v1/media/{media_id}"),
        &[("description", "no")],
    )
    .bearer(&bob)
    .send(&stub)
    .await;
    assert_eq!(reply.status, 404);
    assert_eq!(stub.post(&id).unwrap().media[0].description, None);
}

#[tokio::test]
async fn a_description_over_the_limit_is_422() {
    let stub = StubInstance::builder(Flavour::Mastodon43)
        .with_description_limit(10)
        .start()
        .await;
    let token = stub.new_token("alice");
    let id = stub.add_post("alice", NewPost::text("x").image(None).image(None));
    let post = stub.post(&id).unwrap();
    let (m1, m2) = (post.media[0].id.clone(), post.media[1].id.clone());
    let body = json!({
        "status": "changed", "media_ids": [m1, m2],
        "media_attributes": [{ "id": m1, "description": "fits" }, { "id": m2, "description": "ünïcödé ok" }]
    });
    let reply = Req::put_json(&format!("/api/v1/statuses/{id}"), &body)
        .bearer(&token)
        .send(&stub)
        .await;
    assert_eq!(reply.status, 200, "ten characters fit: {}", reply.text());
    let body = json!({
        "status": "changed again", "media_ids": [m1, m2],
        "media_attributes": [{ "id": m1, "description": "new" }, { "id": m2, "description": "eleven char" }]
    });
    let reply = Req::put_json(&format!("/api/v1/statuses/{id}"), &body)
        .bearer(&token)
        .send(&stub)
        .await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            422,
            json!({ "error": "Validation failed: Description is too long (maximum is 10 characters)" })
        )
    );
    let after = stub.post(&id).unwrap();
    assert_eq!(
        (after.text.as_str(), after.media[0].description.as_deref()),
        ("changed", Some("fits")),
        "one transaction: nothing of the failed edit stays"
    );

    let stub = StubInstance::builder(Flavour::Pixelfed)
        .with_description_limit(5)
        .start()
        .await;
    let token = stub.new_token("alice");
    let id = stub.add_post("alice", NewPost::text("x").image(None));
    let media_id = stub.post(&id).unwrap().media[0].id.clone();
    let reply = Req::put_form(
        &format!("/api/v1/media/{media_id}"),
        &[("description", "sixsix")],
    )
    .bearer(&token)
    .send(&stub)
    .await;
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.json(),
        json!({
            "message": "The description field must not be greater than 5 characters.",
            "errors": { "description": ["The description field must not be greater than 5 characters."] }
        })
    );
    assert_eq!(stub.post(&id).unwrap().media[0].description, None);
}

#[tokio::test]
async fn description_limits_are_advertised_in_the_instance_endpoints() {
    let mastodon = StubInstance::start(Flavour::Mastodon43).await;
    let pixelfed = StubInstance::start(Flavour::Pixelfed).await;
    let limit = |v: &Value| v["configuration"]["media_attachments"]["description_limit"].clone();
    for path in ["/api/v2/instance", "/api/v1/instance"] {
        assert_eq!(
            limit(&Req::get(path).send(&mastodon).await.json()),
            1500,
            "{path}"
        );
    }
    assert_eq!(
        limit(&Req::get("/api/v1/instance").send(&pixelfed).await.json()),
        1000
    );
    assert_eq!(
        (mastodon.description_limit(), pixelfed.description_limit()),
        (1500, 1000)
    );
    for flavour in [Flavour::Mastodon43, Flavour::Pixelfed] {
        let stub = StubInstance::builder(flavour)
            .with_description_limit(420)
            .start()
            .await;
        assert_eq!(
            limit(&Req::get("/api/v1/instance").send(&stub).await.json()),
            420
        );
        if flavour == Flavour::Mastodon43 {
            assert_eq!(
                limit(&Req::get("/api/v2/instance").send(&stub).await.json()),
                420
            );
        }
    }
}

#[tokio::test]
async fn faults_apply_to_paths_with_ids() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let token = stub.new_token("alice");
    let id = stub.add_post("alice", NewPost::text("x").image(None));
    let path = format!("/api/v1/statuses/{id}");
    stub.set_fault("/api/v1/statuses/", Fault::Status(500));
    for req in [
        Req::get(&path),
        Req::get(&format!("{path}/source")),
        Req::put_form(&path, &[("status", "y")]),
    ] {
        assert_eq!(req.bearer(&token).send(&stub).await.status, 500);
    }
    assert_eq!(
        stub.post(&id).unwrap().text,
        "x",
        "a faulted PUT changes nothing"
    );
    stub.clear_fault("/api/v1/statuses/");
    stub.fail_next(&path, Fault::RateLimited { reset_in_secs: 5 });
    assert_eq!(Req::get(&path).bearer(&token).send(&stub).await.status, 429);
    assert_eq!(Req::get(&path).bearer(&token).send(&stub).await.status, 200);
    stub.fail_next(&statuses_path(&stub, "alice"), Fault::Garbage);
    let garbage = Req::get(&format!(
        "{}?only_media=true",
        statuses_path(&stub, "alice")
    ))
    .bearer(&token)
    .send(&stub)
    .await;
    assert!(serde_json::from_slice::<Value>(&garbage.body).is_err());
    // Bad input is a 4xx, never a panic.
    for target in [
        "/api/v1/statuses/".to_owned(),
        "/api/v1/statuses/%ZZ".to_owned(),
        format!(
            "{}?limit=abc&max_id=%00&min_id=-1&since_id=99999999999999999999999999999999999999999",
            statuses_path(&stub, "alice")
        ),
    ] {
        let reply = Req::get(&target).bearer(&token).send(&stub).await;
        assert!(
            reply.status == 200 || reply.status == 404,
            "{target}: {}",
            reply.status
        );
    }
    let reply = Req::put_json(
        &path,
        &json!({ "media_ids": "nope", "media_attributes": [1, null, {"id": []}] }),
    )
    .bearer(&token)
    .send(&stub)
    .await;
    assert_eq!(reply.status, 422, "no text and no media: {}", reply.text());
    let reply = Req {
        body: Some(("application/json", b"{not json".to_vec())),
        ..Req::put_json(&path, &json!({}))
    }
    .bearer(&token)
    .send(&stub)
    .await;
    assert_eq!(reply.status, 422);
    assert_eq!(
        Req::get(&path).bearer(&token).send(&stub).await.status,
        200,
        "still serving"
    );
}

// ---------------------------------------------------------------------------------------------
// The server itself
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn request_log_records_method_path_query_form_json_and_headers() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    Req::get("/api/v1/instance?x=1&y=a%20b")
        .header("Accept", "application/json")
        .send(&stub)
        .await;
    Req::post_form(
        "/api/v1/apps",
        &[("client_name", "tëther"), ("redirect_uris", CALLBACK)],
    )
    .send(&stub)
    .await;
    Req::post_json(
        "/api/v1/apps",
        &json!({ "client_name": "j", "redirect_uris": CALLBACK }),
    )
    .send(&stub)
    .await;

    let log = stub.requests();
    assert_eq!(log.len(), 3);
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str()),
        ("GET", "/api/v1/instance")
    );
    assert_eq!(log[0].raw_query.as_deref(), Some("x=1&y=a%20b"));
    assert_eq!(log[0].query_param("y"), Some("a b"));
    assert_eq!(log[0].header("ACCEPT"), Some("application/json"));
    assert_eq!(log[0].header("host"), Some(stub.host_port().as_str()));
    assert_eq!(log[1].form_field("client_name"), Some("tëther"));
    assert_eq!(
        log[1].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(log[2].json.as_ref().unwrap()["client_name"], "j");
    assert_eq!(log[2].param("client_name").as_deref(), Some("j"));
    assert_eq!(stub.count("/api/v1/apps"), 2);
    assert_eq!(stub.count("/api/v1/instance"), 1);
    assert_eq!(stub.count("/oauth/token"), 0);
}

#[tokio::test]
async fn concurrent_requests_are_all_answered_and_logged() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let app = register_mastodon_app(&stub, "read write").await;
    let token = mastodon_token(&stub, &app).await;
    let statuses = std::sync::Mutex::new(Vec::new());
    let requests = (0..24).map(|_| async {
        let status = verify(&stub, &token).await.status;
        statuses.lock().unwrap().push(status);
    });
    join_all(requests.collect()).await;
    assert_eq!(statuses.into_inner().unwrap(), vec![200; 24]);
    assert_eq!(stub.count("/api/v1/accounts/verify_credentials"), 24);
}

/// Polls all the futures together on this task (no extra crate for `join_all`).
async fn join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for slot in &mut futures {
            if let Some(future) = slot {
                if future.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await
}

#[tokio::test]
async fn one_keep_alive_connection_serves_several_requests() {
    let stub = StubInstance::start(Flavour::Mastodon43).await;
    let host = stub.host_port();
    let mut stream = TcpStream::connect(&host).await.unwrap();
    let mut pipelined = Req::get("/api/v2/instance").encode(&host, false);
    pipelined.extend(
        Req::post_form(
            "/api/v1/apps",
            &[("client_name", "t"), ("redirect_uris", CALLBACK)],
        )
        .encode(&host, false),
    );
    pipelined.extend(Req::get("/api/v1/instance").encode(&host, true));
    stream.write_all(&pipelined).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let (first, used) = parse_reply(&raw);
    let (second, used2) = parse_reply(&raw[used..]);
    let (third, _) = parse_reply(&raw[used + used2..]);
    assert_eq!(first.header("Connection"), Some("keep-alive"));
    assert_eq!(
        (
            first.json()["version"].as_str(),
            second.status,
            third.json()["uri"].as_str()
        ),
        (Some("4.3.0"), 200, Some(host.as_str()))
    );
    assert_eq!(third.header("Connection"), Some("close"));
}

#[test]
fn starts_without_an_async_runtime_and_stops_on_drop() {
    let stub = StubInstance::builder(Flavour::Mastodon43).start_blocking();
    let addr = stub.host_port();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    use std::io::{Read, Write};
    stream
        .write_all(Req::get("/api/v1/instance").encode(&addr, true).as_slice())
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    assert_eq!(parse_reply(&raw).0.status, 200);
    drop(stub);
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "nothing listens after drop"
    );
}
