//! "Connect with your instance": OAuth 2 with PKCE against the stub instances the harness starts
//! (`app.mastodon`, `app.pixelfed`). Where the connect form sends the browser, what the callback
//! stores, how every failure ends (back on the form with the reason, nothing stored), "Check
//! connection", and removal revoking the token first.

mod common;

use std::sync::OnceLock;

use common::stub_instance::{Fault, StubInstance};
use common::{Browser, Page, TestApp};
use rocket::figment::Figment;
use rocket::http::Status;
use tether::crypto::TokenCipher;
use tether::db::{Timestamp, Value};
use url::Url;

const PUBLIC_URL: &str = "http://tether.test";
const CALLBACK: &str = "http://tether.test/platforms/connect/callback";
const VERIFY: &str = "/api/v1/accounts/verify_credentials";
const BAD_STATE: &str = "That sign-in could not be matched to a connect you started here, or it expired. Please connect again.";

fn public_url(f: Figment) -> Figment {
    f.merge(("public_url", PUBLIC_URL))
}

/// A loopback port nothing listens on (bound once, then released).
fn closed_port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.local_addr().expect("local addr").port()
    })
}

/// `public_url`, and the closed port allow-listed next to the stubs.
fn with_closed_port(f: Figment) -> Figment {
    let mut allowed: Vec<String> = f
        .extract_inner("outbound_allow_private")
        .unwrap_or_default();
    allowed.push(format!("127.0.0.1:{}", closed_port()));
    public_url(f).merge(("outbound_allow_private", allowed))
}

/// What handlebars makes of `s` in a page.
fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('`', "&#x60;")
        .replace('=', "&#x3D;")
}

fn param(url: &str, name: &str) -> Option<String> {
    let parsed = Url::parse(url).unwrap_or_else(|e| panic!("{url} does not parse: {e}"));
    parsed
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `http://tether.test/platforms/connect/callback?…` as the local client requests it.
fn local(url: &str) -> String {
    let parsed = Url::parse(url).unwrap_or_else(|e| panic!("{url} does not parse: {e}"));
    assert_eq!(
        parsed.origin().ascii_serialization(),
        PUBLIC_URL,
        "the instance sent the browser elsewhere: {url}"
    );
    parsed[url::Position::BeforePath..url::Position::AfterQuery].to_string()
}

/// The callback with its `code` replaced.
fn with_code(callback: &str, code: &str) -> String {
    let mut url = Url::parse(&format!("{PUBLIC_URL}{callback}")).expect("callback parses");
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "code" {
                code.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    local(url.as_str())
}

async fn signed_in<'a>(app: &'a TestApp, username: &str) -> Browser<'a> {
    let browser = app.browser();
    browser.register(username).await;
    browser
}

/// Submits "Connect with your instance".
async fn start(browser: &Browser<'_>, instance: &str) -> Page {
    browser
        .submit(
            "/platforms/new",
            "/platforms/connect",
            &[("instance", instance)],
        )
        .await
}

/// Starts a connect to `stub` and plays the browser at the instance, which approves at once:
/// the callback tether gets back, as path and query.
async fn approved(browser: &Browser<'_>, stub: &StubInstance) -> String {
    let page = start(browser, &stub.origin()).await;
    assert_eq!(page.status, Status::SeeOther, "connect: {}", page.body);
    let authorize = page.location.expect("a Location");
    local(&stub.authorize_redirect(&authorize))
}

/// The whole flow: start, approve, come back.
async fn connect(browser: &Browser<'_>, stub: &StubInstance) -> Page {
    let callback = approved(browser, stub).await;
    browser.get(&callback).await
}

/// `@alice@127.0.0.1`: the account at the stub's host.
fn handle(stub: &StubInstance) -> String {
    format!("@{}@127.0.0.1", stub.account().username)
}

async fn platform_rows(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) FROM platform_connections", vec![])
        .await
}

/// A callback that failed: back to the connect form, where the reason is shown.
async fn assert_back_on_form_with(browser: &Browser<'_>, page: &Page, message: &str) {
    page.assert_redirect("/platforms/new");
    let form = browser.follow(page).await;
    assert_eq!(form.status, Status::Ok);
    assert!(
        form.body.contains(&html(message)),
        "{message:?} is not shown: {}",
        form.body
    );
}

/// A connect that could not start: the form again (422), the reason next to the instance field
/// and what was typed kept.
fn assert_refused_start(page: &Page, typed: &str, message: &str) {
    assert_eq!(page.status, Status::UnprocessableEntity, "{}", page.body);
    let error = format!(
        "<p class=\"field__error\" id=\"instance-error\">{}</p>",
        html(message)
    );
    assert!(page.body.contains(&error), "no {error:?} in: {}", page.body);
    let kept = format!(
        "id=\"instance\" name=\"instance\" type=\"text\" value=\"{}\"",
        html(typed)
    );
    assert!(page.body.contains(&kept), "no {kept:?} in: {}", page.body);
    assert!(page.location.is_none());
}

/// The `form-action` sources of a page's CSP.
fn form_action(page: &Page) -> Vec<String> {
    let csp = page
        .header("Content-Security-Policy")
        .unwrap_or_else(|| panic!("no CSP on {}", page.body));
    csp.split(';')
        .map(str::trim)
        .find_map(|d| d.strip_prefix("form-action "))
        .unwrap_or_else(|| panic!("no form-action in {csp}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

async fn stored_token(app: &TestApp, id: i64) -> (Vec<u8>, String) {
    let mut db = app.db().await;
    let (user_id, blob): (i64, Vec<u8>) = tether::db::query(
        "SELECT user_id, access_token_encrypted FROM platform_connections WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut db)
    .await
    .expect("platform row");
    let cipher = app.client.rocket().state::<TokenCipher>().expect("cipher");
    let plain = cipher.decrypt(&blob, user_id).expect("decrypts");
    (blob, plain)
}

fn last_token(stub: &StubInstance) -> String {
    stub.issued_tokens()
        .last()
        .expect("the stub issued a token")
        .access_token
        .clone()
}

// ---------------------------------------------------------------------------------------------
// Starting a connect
// ---------------------------------------------------------------------------------------------

backend_test!(async fn connect_sends_the_browser_to_the_instance_authorize_page_with_pkce(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let stub = &app.mastodon;
    let page = start(&alice, &stub.origin()).await;
    assert_eq!(page.status, Status::SeeOther, "{}", page.body);
    let location = page.location.clone().expect("a Location");
    let url = Url::parse(&location).expect("authorize URL parses");
    assert_eq!(url.origin().ascii_serialization(), stub.origin());
    assert_eq!(url.path(), "/oauth/authorize");
    let apps = stub.apps();
    assert_eq!(apps.len(), 1, "tether registered itself");
    assert_eq!(apps[0].redirect_uris, vec![CALLBACK.to_owned()]);
    let get = |name: &str| param(&location, name).unwrap_or_else(|| panic!("no {name} in {location}"));
    assert_eq!(get("response_type"), "code");
    assert_eq!(get("client_id"), apps[0].client_id);
    assert_eq!(get("redirect_uri"), CALLBACK);
    let scopes: Vec<String> = get("scope").split_whitespace().map(str::to_owned).collect();
    assert!(!scopes.is_empty());
    assert!(scopes.iter().all(|s| apps[0].scopes.contains(s)), "{scopes:?} ⊄ {:?}", apps[0].scopes);
    assert!(get("state").len() >= 32, "an unguessable state");
    assert_eq!(get("code_challenge").len(), 43, "base64url of a SHA-256");
    assert_eq!(get("code_challenge_method"), "S256");
    // The state is kept hashed, bound to this session.
    let raw = app
        .count("SELECT COUNT(*) FROM oauth_states WHERE state_hash = $1", vec![Value::from(get("state"))])
        .await;
    assert_eq!(raw, 0, "the state is not stored as sent");
    assert_eq!(app.count("SELECT COUNT(*) FROM oauth_states", vec![]).await, 1);
    assert_eq!(platform_rows(&app).await, 0, "nothing is connected before the callback");
});

backend_test!(async fn the_app_is_registered_once_per_instance_and_reused(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let bob = signed_in(&app, "bob").await;
    let stub = &app.mastodon;
    let first = start(&alice, &stub.origin()).await;
    let second = start(&alice, &stub.origin()).await;
    let third = start(&bob, &format!("{}/", stub.origin())).await;
    for page in [&first, &second, &third] {
        assert_eq!(page.status, Status::SeeOther, "{}", page.body);
    }
    assert_eq!(stub.apps().len(), 1, "registered once");
    assert_eq!(stub.count("/api/v1/apps"), 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM oauth_apps", vec![]).await, 1);
    let client_id = |p: &Page| param(p.location.as_deref().unwrap(), "client_id");
    assert_eq!(client_id(&first), client_id(&second));
    assert_eq!(client_id(&first), client_id(&third));
    assert_ne!(
        param(first.location.as_deref().unwrap(), "state"),
        param(second.location.as_deref().unwrap(), "state"),
        "a fresh state per connect"
    );
    assert_ne!(
        param(first.location.as_deref().unwrap(), "code_challenge"),
        param(second.location.as_deref().unwrap(), "code_challenge"),
        "a fresh verifier per connect"
    );
});

backend_test!(async fn the_default_public_url_in_debug_is_rockets_own_address(app) {
    let alice = signed_in(&app, "alice").await;
    let page = start(&alice, &app.mastodon.origin()).await;
    assert_eq!(page.status, Status::SeeOther, "{}", page.body);
    let config = app.client.rocket().config();
    let address = if config.address.is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        config.address.to_string()
    };
    let expected = format!("http://{address}:{}/platforms/connect/callback", config.port);
    assert_eq!(param(page.location.as_deref().unwrap(), "redirect_uri"), Some(expected));
});

backend_test!(async fn the_connect_page_allows_https_form_actions(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let page = alice.get("/platforms/new").await;
    assert_eq!(page.status, Status::Ok);
    let sources = form_action(&page);
    assert!(sources.iter().any(|s| s == "https:"), "{sources:?}");
    assert!(sources.iter().any(|s| s == "'self'"), "{sources:?}");
    // The allow-listed local instance is http: its origin is allowed too.
    assert!(sources.contains(&app.mastodon.origin()), "{sources:?}");
    // So is the re-rendered form after a refused start.
    let refused = start(&alice, "https://10.0.0.1").await;
    assert_eq!(refused.status, Status::UnprocessableEntity);
    assert!(form_action(&refused).iter().any(|s| s == "https:"));
});

// ---------------------------------------------------------------------------------------------
// Coming back
// ---------------------------------------------------------------------------------------------

backend_test!(async fn approving_connects_the_account_with_the_instances_copy(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let stub = &app.mastodon;
    let page = connect(&alice, stub).await;
    page.assert_redirect("/dashboard");
    assert_eq!(stub.count("/oauth/token"), 1);
    assert_eq!(stub.count(VERIFY), 1);
    let dashboard = alice.follow(&page).await;
    assert_eq!(dashboard.status, Status::Ok);
    let flash = format!("Connected {}.", handle(stub));
    assert!(dashboard.body.contains(&flash), "no {flash:?} in {}", dashboard.body);
    let account = stub.account();
    for shown in [
        format!("<p class=\"account-card__name\">{}</p>", account.display_name),
        format!("<dd data-field=\"followers_count\">{}</dd>", account.followers_count),
        format!("<dd data-field=\"following_count\">{}</dd>", account.following_count),
        format!("<dd data-field=\"statuses_count\">{}</dd>", account.statuses_count),
        format!("src=\"{}/avatars/original/missing.png\"", stub.origin()),
        format!(
            "<dd data-field=\"instance_url\"><a href=\"{}\" rel=\"noopener noreferrer\">{}</a></dd>",
            stub.origin(),
            "127.0.0.1"
        ),
    ] {
        assert!(dashboard.body.contains(&shown), "no {shown:?} on the dashboard: {}", dashboard.body);
    }
    assert_eq!(platform_rows(&app).await, 1);
    let list = alice.get("/api/platforms").await.json();
    let platform = &list["platforms"][0];
    assert_eq!(platform["name"], handle(stub));
    assert_eq!(platform["username"], account.username);
    assert_eq!(platform["instance_url"], stub.origin());
    assert_eq!(platform["platform_type"], "mastodon");
    assert_eq!(platform["account_id"], account.id);
    assert_eq!(platform["display_name"], account.display_name);
    assert_eq!(platform["followers_count"], account.followers_count);
    assert_eq!(platform["needs_reconnect"], false);
    assert_eq!(platform["is_default"], true, "the first platform is the default");
    assert_eq!(list["active_platform_id"], platform["id"], "and this session's active one");
    assert_eq!(app.count("SELECT COUNT(*) FROM oauth_states", vec![]).await, 0, "the state is used up");
});

backend_test!(async fn a_second_account_becomes_active_but_not_the_default(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    connect(&alice, &app.mastodon).await.assert_redirect("/dashboard");
    connect(&alice, &app.pixelfed).await.assert_redirect("/dashboard");
    let list = alice.get("/api/platforms").await.json();
    // Both stubs' default account is alice on 127.0.0.1, so the handles (and names) only differ
    // by the suffix tether adds; the instance origin tells them apart.
    let by_instance = |origin: String| {
        list["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["instance_url"] == origin)
            .unwrap_or_else(|| panic!("no platform on {origin} in {list}"))
            .clone()
    };
    let first = by_instance(app.mastodon.origin());
    let second = by_instance(app.pixelfed.origin());
    assert_eq!(first["is_default"], true);
    assert_eq!(second["is_default"], false);
    assert_eq!(list["active_platform_id"], second["id"]);
});

backend_test!(async fn the_access_token_is_stored_encrypted_and_never_shown(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let stub = &app.mastodon;
    connect(&alice, stub).await.assert_redirect("/dashboard");
    let token = last_token(stub);
    let id = alice.platform_id(&handle(stub)).await;
    let (blob, plain) = stored_token(&app, id).await;
    assert_eq!(plain, token);
    assert!(!String::from_utf8_lossy(&blob).contains(&token));
    for uri in ["/dashboard", "/platforms", &format!("/platforms/{id}/edit"), "/api/platforms"] {
        let page = alice.get(uri).await;
        assert_eq!(page.status, Status::Ok, "{uri}");
        assert!(!page.body.contains(&token), "{uri} shows the token");
    }
});

backend_test!(async fn connecting_the_same_account_again_reconnects_it(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let stub = &app.mastodon;
    connect(&alice, stub).await.assert_redirect("/dashboard");
    let id = alice.platform_id(&handle(stub)).await;
    let page = connect(&alice, stub).await;
    page.assert_redirect("/dashboard");
    let dashboard = alice.follow(&page).await;
    let flash = format!("Reconnected {}.", handle(stub));
    assert!(dashboard.body.contains(&flash), "no {flash:?} in {}", dashboard.body);
    assert_eq!(platform_rows(&app).await, 1, "still one platform");
    assert_eq!(alice.platform_id(&handle(stub)).await, id);
    assert_eq!(stub.apps().len(), 1);
    // The new token replaced the old one.
    assert_eq!(stored_token(&app, id).await.1, last_token(stub));
});

backend_test!(async fn the_session_cookie_is_lax_and_survives_the_cross_site_redirect_back(app) config = public_url, {
    let alice = app.browser();
    let registered = alice.register("alice").await;
    let session = registered
        .set_cookies
        .iter()
        .find(|c| c.starts_with("tether_session="))
        .unwrap_or_else(|| panic!("no session cookie in {:?}", registered.set_cookies));
    assert!(session.contains("SameSite=Lax"), "{session}");
    assert!(!session.contains("SameSite=Strict"), "{session}");
    let callback = approved(&alice, &app.mastodon).await;
    // A top-level navigation from the instance's site: the browser sends its Lax cookies, which
    // are all of tether's.
    alice.always_send("Sec-Fetch-Site", "cross-site");
    alice.always_send("Sec-Fetch-Mode", "navigate");
    alice.always_send("Sec-Fetch-Dest", "document");
    let page = alice.get(&callback).await;
    page.assert_redirect("/dashboard");
    alice.always_send("Sec-Fetch-Site", "same-origin");
    assert_eq!(platform_rows(&app).await, 1);
    let dashboard = alice.follow(&page).await;
    assert!(dashboard.body.contains(&format!("Connected {}.", handle(&app.mastodon))));
});

// ---------------------------------------------------------------------------------------------
// Callbacks that connect nothing
// ---------------------------------------------------------------------------------------------

backend_test!(async fn an_unknown_state_connects_nothing(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let _pending = approved(&alice, &app.mastodon).await;
    let page = alice
        .get("/platforms/connect/callback?code=abc&state=not-a-state-tether-made")
        .await;
    assert_back_on_form_with(&alice, &page, BAD_STATE).await;
    let page = alice.get("/platforms/connect/callback?code=abc").await;
    assert_back_on_form_with(&alice, &page, BAD_STATE).await;
    assert_eq!(platform_rows(&app).await, 0);
    assert_eq!(app.mastodon.count("/oauth/token"), 0, "no code was exchanged");
});

backend_test!(async fn a_replayed_callback_connects_nothing_more(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let callback = approved(&alice, &app.mastodon).await;
    alice.get(&callback).await.assert_redirect("/dashboard");
    let replay = alice.get(&callback).await;
    assert_back_on_form_with(&alice, &replay, BAD_STATE).await;
    assert_eq!(platform_rows(&app).await, 1);
    assert_eq!(app.mastodon.count("/oauth/token"), 1, "the replay was not exchanged");
});

backend_test!(async fn an_expired_state_connects_nothing(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let callback = approved(&alice, &app.mastodon).await;
    let past = Timestamp::now().minus_seconds(1);
    app.exec("UPDATE oauth_states SET expires_at = $1", vec![Value::from(past)]).await;
    let page = alice.get(&callback).await;
    assert_back_on_form_with(&alice, &page, BAD_STATE).await;
    assert_eq!(platform_rows(&app).await, 0);
    assert_eq!(app.mastodon.count("/oauth/token"), 0);
});

backend_test!(async fn a_state_from_another_session_connects_nothing(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let bob = signed_in(&app, "bob").await;
    let callback = approved(&alice, &app.mastodon).await;
    let page = bob.get(&callback).await;
    assert_back_on_form_with(&bob, &page, BAD_STATE).await;
    // Nor alice on another device: the state belongs to the session that started the connect.
    let laptop = app.browser();
    laptop.login("alice", common::PASSWORD).await.assert_redirect("/dashboard");
    let callback = approved(&alice, &app.mastodon).await;
    let page = laptop.get(&callback).await;
    assert_back_on_form_with(&laptop, &page, BAD_STATE).await;
    assert_eq!(platform_rows(&app).await, 0);
    assert_eq!(app.mastodon.count("/oauth/token"), 0);
});

backend_test!(async fn denying_at_the_instance_connects_nothing(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    app.mastodon.deny_authorization(true);
    let callback = approved(&alice, &app.mastodon).await;
    assert_eq!(param(&format!("{PUBLIC_URL}{callback}"), "error").as_deref(), Some("access_denied"));
    let page = alice.get(&callback).await;
    assert_back_on_form_with(
        &alice,
        &page,
        "You did not allow tether to use your account on 127.0.0.1. Nothing was connected.",
    )
    .await;
    assert_eq!(platform_rows(&app).await, 0);
    assert_eq!(app.mastodon.count("/oauth/token"), 0);
});

backend_test!(async fn a_code_the_instance_rejects_connects_nothing(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let callback = approved(&alice, &app.mastodon).await;
    let page = alice.get(&with_code(&callback, "a-code-the-instance-never-issued")).await;
    assert_back_on_form_with(
        &alice,
        &page,
        "127.0.0.1 did not accept the sign-in (it may have expired). Please connect again.",
    )
    .await;
    assert_eq!(platform_rows(&app).await, 0);
    assert_eq!(app.mastodon.count("/oauth/token"), 1, "the instance was asked");
    assert!(app.mastodon.issued_tokens().is_empty());
});

backend_test!(async fn a_token_verify_credentials_refuses_connects_nothing(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    app.mastodon.set_fault(VERIFY, Fault::Status(401));
    let page = connect(&alice, &app.mastodon).await;
    assert_back_on_form_with(
        &alice,
        &page,
        "127.0.0.1 did not accept the sign-in (it may have expired). Please connect again.",
    )
    .await;
    assert_eq!(platform_rows(&app).await, 0);
    assert_eq!(app.mastodon.count(VERIFY), 1);
});

backend_test!(async fn invalid_client_makes_tether_forget_the_app_and_register_again(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let stub = &app.mastodon;
    let callback = approved(&alice, stub).await;
    // The instance lost tether's app (reset, or an admin removed it): the exchange is refused.
    app.exec("UPDATE oauth_apps SET client_id = 'unknown-to-the-instance'", vec![]).await;
    let page = alice.get(&callback).await;
    assert_back_on_form_with(
        &alice,
        &page,
        "127.0.0.1 no longer knows tether's app registration. Please try again.",
    )
    .await;
    assert_eq!(platform_rows(&app).await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM oauth_apps", vec![]).await, 0, "the app is forgotten");
    // The next connect registers again, and works.
    let page = connect(&alice, stub).await;
    page.assert_redirect("/dashboard");
    assert_eq!(stub.apps().len(), 2, "registered anew");
    assert_eq!(platform_rows(&app).await, 1);
});

// ---------------------------------------------------------------------------------------------
// Instances that cannot be used: the connect does not start
// ---------------------------------------------------------------------------------------------

backend_test!(async fn an_instance_that_is_down_is_reported_next_to_the_field(app) config = with_closed_port, {
    let alice = signed_in(&app, "alice").await;
    let typed = format!("http://127.0.0.1:{}", closed_port());
    let page = start(&alice, &typed).await;
    assert_refused_start(&page, &typed, "127.0.0.1 could not be reached. Check the address, or try again later.");
    assert_eq!(app.count("SELECT COUNT(*) FROM oauth_apps", vec![]).await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM oauth_states", vec![]).await, 0);
});

backend_test!(async fn an_instance_answering_garbage_is_reported_next_to_the_field(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let stub = &app.mastodon;
    stub.set_fault("/", Fault::Garbage);
    let page = start(&alice, &stub.origin()).await;
    assert_refused_start(&page, &stub.origin(), "127.0.0.1 does not look like a Mastodon or Pixelfed server.");
    assert!(stub.apps().is_empty());
    assert_eq!(app.count("SELECT COUNT(*) FROM oauth_apps", vec![]).await, 0);
});

backend_test!(async fn an_instance_answering_a_huge_body_is_reported_next_to_the_field(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let stub = &app.mastodon;
    stub.set_fault("/", Fault::HugeBody(8 * 1024 * 1024));
    let page = start(&alice, &stub.origin()).await;
    assert_refused_start(
        &page,
        &stub.origin(),
        "127.0.0.1 sent an answer tether could not use (the answer was too large). Please try again later.",
    );
    assert!(stub.apps().is_empty());
});

backend_test!(async fn a_server_that_is_not_mastodon_like_is_reported_next_to_the_field(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let stub = &app.mastodon;
    stub.set_fault("/", Fault::NotMastodon);
    let page = start(&alice, &stub.origin()).await;
    assert_refused_start(&page, &stub.origin(), "127.0.0.1 does not look like a Mastodon or Pixelfed server.");
    assert!(stub.apps().is_empty());
    assert_eq!(stub.count("/api/v1/apps"), 0);
});

backend_test!(async fn a_redirect_to_the_metadata_address_is_not_followed(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let stub = &app.mastodon;
    stub.set_fault("/", Fault::RedirectTo("http://169.254.169.254/latest/meta-data/".into()));
    let page = start(&alice, &stub.origin()).await;
    assert_refused_start(
        &page,
        &stub.origin(),
        "127.0.0.1 sent an answer tether could not use (it redirected to another address). Please try again later.",
    );
    assert!(stub.apps().is_empty());
});

backend_test!(async fn private_addresses_that_are_not_allow_listed_are_never_called(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    // A live loopback server tether is not allowed to call.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.set_nonblocking(true).expect("non-blocking");
    let typed = format!("https://localhost:{}", listener.local_addr().unwrap().port());
    let page = start(&alice, &typed).await;
    assert_refused_start(&page, &typed, "tether does not call localhost: it is not a public https address. An administrator can allow a local instance with `outbound_allow_private`.");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "tether connected to a private address that is not allow-listed"
    );
    let started = std::time::Instant::now();
    let page = start(&alice, "https://10.0.0.1").await;
    assert_refused_start(&page, "https://10.0.0.1", "tether does not call 10.0.0.1: it is not a public https address. An administrator can allow a local instance with `outbound_allow_private`.");
    assert!(started.elapsed() < std::time::Duration::from_secs(4), "refused before connecting");
    let page = start(&alice, "http://10.0.0.1").await;
    assert_refused_start(&page, "http://10.0.0.1", "Use an https:// address: tokens must not travel unencrypted.");
    assert_eq!(app.count("SELECT COUNT(*) FROM oauth_apps", vec![]).await, 0);
});

// ---------------------------------------------------------------------------------------------
// Pixelfed
// ---------------------------------------------------------------------------------------------

backend_test!(async fn pixelfed_connects_with_a_numeric_client_id_and_keeps_its_refresh_token(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let stub = &app.pixelfed;
    let page = start(&alice, &stub.origin()).await;
    assert_eq!(page.status, Status::SeeOther, "{}", page.body);
    let location = page.location.clone().unwrap();
    let client_id = param(&location, "client_id").expect("client_id");
    assert!(client_id.chars().all(|c| c.is_ascii_digit()), "Pixelfed's ids are numbers: {client_id}");
    assert_eq!(stub.apps()[0].client_id, client_id);
    let callback = local(&stub.authorize_redirect(&location));
    let page = alice.get(&callback).await;
    page.assert_redirect("/dashboard");
    let dashboard = alice.follow(&page).await;
    assert!(dashboard.body.contains(&format!("Connected {}.", handle(stub))), "{}", dashboard.body);
    let list = alice.get("/api/platforms").await.json();
    assert_eq!(list["platforms"][0]["platform_type"], "pixelfed");
    let issued = stub.issued_tokens();
    assert!(issued[0].refresh_token.is_some());
    let id = alice.platform_id(&handle(stub)).await;
    assert_eq!(stored_token(&app, id).await.1, issued[0].access_token);
    let soon = Timestamp::now().plus_seconds(300 * 24 * 3600);
    let stored = app
        .count(
            "SELECT COUNT(*) FROM platform_connections
             WHERE refresh_token_encrypted IS NOT NULL AND token_expires_at > $1 AND oauth_app_id IS NOT NULL",
            vec![Value::from(soon)],
        )
        .await;
    assert_eq!(stored, 1, "refresh token and a year's expiry stored");
    let mut db = app.db().await;
    let (blob,): (Vec<u8>,) = tether::db::query("SELECT refresh_token_encrypted FROM platform_connections")
        .fetch_one(&mut db)
        .await
        .expect("row");
    let refresh = issued[0].refresh_token.clone().unwrap();
    assert!(!String::from_utf8_lossy(&blob).contains(&refresh), "encrypted");
});

// ---------------------------------------------------------------------------------------------
// Check connection
// ---------------------------------------------------------------------------------------------

backend_test!(async fn check_connection_refreshes_the_account_copy(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let stub = &app.mastodon;
    connect(&alice, stub).await.assert_redirect("/dashboard");
    let id = alice.platform_id(&handle(stub)).await;
    let old = Timestamp::now().minus_seconds(3600);
    app.exec(
        "UPDATE platform_connections SET followers_count = 0, display_name = 'Stale', verified_at = $1",
        vec![Value::from(old)],
    )
    .await;
    let before = stub.count(VERIFY);
    let page = alice.submit("/platforms", &format!("/platforms/{id}/verify"), &[]).await;
    page.assert_redirect("/platforms");
    let list = alice.follow(&page).await;
    let flash = format!("{} is connected and working.", handle(stub));
    assert!(list.body.contains(&html(&flash)), "no {flash:?} in {}", list.body);
    assert_eq!(stub.count(VERIFY), before + 1, "the instance was asked");
    let fresh = app
        .count(
            "SELECT COUNT(*) FROM platform_connections WHERE verified_at > $1",
            vec![Value::from(old.plus_seconds(60))],
        )
        .await;
    assert_eq!(fresh, 1, "verified_at moved");
    let json = alice.get("/api/platforms").await.json();
    assert_eq!(json["platforms"][0]["followers_count"], stub.account().followers_count);
    assert_eq!(json["platforms"][0]["display_name"], stub.account().display_name);
});

backend_test!(async fn a_revoked_token_marks_the_platform_needs_reconnecting_and_it_stays_selectable(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let stub = &app.mastodon;
    connect(&alice, stub).await.assert_redirect("/dashboard");
    let id = alice.platform_id(&handle(stub)).await;
    stub.revoke_token(&last_token(stub));
    let page = alice.submit("/platforms", &format!("/platforms/{id}/verify"), &[]).await;
    page.assert_redirect("/platforms");
    let list = alice.follow(&page).await;
    let warning = format!(
        "{} no longer accepts tether's access. Reconnect it to keep using it.",
        handle(stub)
    );
    assert!(list.body.contains(&html(&warning)), "no {warning:?} in {}", list.body);
    let reconnect = format!("href=\"/platforms/new?instance={}\"", stub.origin());
    for page in [list, alice.get("/dashboard").await] {
        assert!(page.body.contains("needs reconnecting"), "{}", page.body);
        assert!(page.body.contains(&reconnect), "no {reconnect:?} in {}", page.body);
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM platform_connections WHERE needs_reconnect", vec![]).await,
        1
    );
    // It stays: listed in the switcher, and switching to it works.
    let dashboard = alice.get("/dashboard").await;
    assert!(dashboard.body.contains(&format!("action=\"/platforms/{id}/switch\"")));
    alice
        .submit("/platforms", &format!("/platforms/{id}/switch"), &[])
        .await
        .assert_redirect("/dashboard");
    // The Reconnect link fills in the form, and reconnecting clears the mark.
    let form = alice.get(&format!("/platforms/new?instance={}", stub.origin())).await;
    assert!(form.body.contains(&format!("name=\"instance\" type=\"text\" value=\"{}\"", stub.origin())));
    let page = connect(&alice, stub).await;
    page.assert_redirect("/dashboard");
    assert!(alice.follow(&page).await.body.contains(&format!("Reconnected {}.", handle(stub))));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM platform_connections WHERE needs_reconnect", vec![]).await,
        0
    );
    assert_eq!(platform_rows(&app).await, 1);
});

backend_test!(async fn checking_another_users_platform_is_404(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    connect(&alice, &app.mastodon).await.assert_redirect("/dashboard");
    let id = alice.platform_id(&handle(&app.mastodon)).await;
    let mallory = signed_in(&app, "mallory").await;
    let before = app.mastodon.count(VERIFY);
    let page = mallory.submit("/platforms", &format!("/platforms/{id}/verify"), &[]).await;
    assert_eq!(page.status, Status::NotFound, "{}", page.body);
    assert_eq!(app.mastodon.count(VERIFY), before, "the instance was not asked");
});

// ---------------------------------------------------------------------------------------------
// Removing
// ---------------------------------------------------------------------------------------------

backend_test!(async fn removing_a_platform_revokes_its_token_at_the_instance_first(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let stub = &app.mastodon;
    connect(&alice, stub).await.assert_redirect("/dashboard");
    let id = alice.platform_id(&handle(stub)).await;
    let token = last_token(stub);
    let page = alice.submit("/platforms", &format!("/platforms/{id}/delete"), &[]).await;
    page.assert_redirect("/platforms");
    assert_eq!(stub.revoked_tokens(), vec![token]);
    let revoke = stub.last_request("/oauth/revoke").expect("a revoke request");
    assert_eq!(revoke.param("client_id"), Some(stub.apps()[0].client_id.clone()));
    assert_eq!(platform_rows(&app).await, 0);
    let list = alice.follow(&page).await;
    assert!(list.body.contains(&format!("Removed {}.", handle(stub))), "{}", list.body);
});

backend_test!(async fn removing_a_platform_whose_revoke_fails_removes_it_anyway(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let stub = &app.mastodon;
    connect(&alice, stub).await.assert_redirect("/dashboard");
    let id = alice.platform_id(&handle(stub)).await;
    stub.set_fault("/oauth/revoke", Fault::Status(500));
    let page = alice.submit("/platforms", &format!("/platforms/{id}/delete"), &[]).await;
    page.assert_redirect("/platforms");
    assert_eq!(stub.count("/oauth/revoke"), 1, "revoke was tried");
    assert!(stub.revoked_tokens().is_empty());
    assert_eq!(platform_rows(&app).await, 0);
    let list = alice.follow(&page).await;
    assert!(list.body.contains(&format!("Removed {}.", handle(stub))), "{}", list.body);
});

// ---------------------------------------------------------------------------------------------
// Who may connect
// ---------------------------------------------------------------------------------------------

backend_test!(async fn connecting_while_signed_out_goes_to_the_login_page(app) config = public_url, {
    let visitor = app.browser();
    let token = visitor.csrf_from("/login").await;
    let page = visitor
        .post_form("/platforms/connect", &[("instance", &app.mastodon.origin()), ("csrf_token", &token)])
        .await;
    assert_eq!(page.status, Status::SeeOther, "{}", page.body);
    let location = page.location.unwrap_or_default();
    assert!(location.starts_with("/login"), "{location}");
    assert!(app.mastodon.requests().is_empty(), "the instance was not called");
    let callback = visitor.get("/platforms/connect/callback?code=abc&state=def").await;
    assert_eq!(callback.status, Status::SeeOther);
    assert!(callback.location.unwrap_or_default().starts_with("/login"));
});

backend_test!(async fn connecting_without_the_csrf_token_is_403(app) config = public_url, {
    let alice = signed_in(&app, "alice").await;
    let page = alice
        .post_form("/platforms/connect", &[("instance", &app.mastodon.origin())])
        .await;
    assert_eq!(page.status, Status::Forbidden, "{}", page.body);
    let page = alice
        .post_form("/platforms/connect", &[("instance", &app.mastodon.origin()), ("csrf_token", "forged")])
        .await;
    assert_eq!(page.status, Status::Forbidden, "{}", page.body);
    assert!(app.mastodon.requests().is_empty(), "the instance was not called");
    assert_eq!(app.count("SELECT COUNT(*) FROM oauth_states", vec![]).await, 0);
});
