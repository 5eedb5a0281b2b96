//! The token form (`POST /platforms`) and the edit form (`POST /platforms/<id>`) check every
//! access token with its instance (`GET /api/v1/accounts/verify_credentials`) before storing it,
//! here against the harness's stub instances.
//!
//! This file proves that:
//! - a token the instance refuses is a 422 with the reason next to the token field, and nothing
//!   is stored;
//! - an instance that cannot be used (nothing listening, an error status, not a Mastodon-like
//!   server) is a 422 next to the instance address, and nothing is stored;
//! - a typed username that is not the token's account is a 422 next to the username;
//! - a verified token stores the account as the instance reports it (its username, id, display
//!   name, counts and avatar), and the dashboard shows that copy;
//! - an edit that changes the token (or moves the platform to another instance) verifies again,
//!   and keeps the old token when the new one is refused; an edit that changes neither does not
//!   call the instance;
//! - a private address that is not allow-listed is refused without being called, and nothing is
//!   stored.

mod common;

use std::sync::OnceLock;

use common::stub_instance::{Fault, StubAccount, StubInstance};
use common::{Browser, Page, TestApp};
use rocket::figment::Figment;
use rocket::http::Status;
use tether::crypto::TokenCipher;

const VERIFY: &str = "/api/v1/accounts/verify_credentials";
const ERROR_FIELDS: [&str; 5] = [
    "name",
    "platform_type",
    "instance_url",
    "username",
    "access_token",
];

/// A loopback port nothing listens on (bound once, then released).
fn closed_port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.local_addr().expect("local addr").port()
    })
}

/// The closed port allow-listed next to the stubs.
fn with_closed_port(f: Figment) -> Figment {
    let mut allowed: Vec<String> = f
        .extract_inner("outbound_allow_private")
        .unwrap_or_default();
    allowed.push(format!("127.0.0.1:{}", closed_port()));
    f.merge(("outbound_allow_private", allowed))
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

/// The error the form shows next to `field`, as it appears in the page.
fn field_error(page: &Page, field: &str) -> Option<String> {
    let marker = format!("id=\"{field}-error\">");
    let start = page.body.find(&marker)? + marker.len();
    let end = page.body[start..].find("</p>")? + start;
    Some(page.body[start..end].to_string())
}

/// A 422 whose only field error is `message` next to `field`.
fn assert_refused_at(page: &Page, field: &str, message: &str) {
    assert_eq!(page.status, Status::UnprocessableEntity, "{}", page.body);
    assert_eq!(
        field_error(page, field).as_deref(),
        Some(html(message).as_str()),
        "{}",
        page.body
    );
    for other in ERROR_FIELDS.iter().filter(|f| **f != field) {
        assert_eq!(
            field_error(page, other),
            None,
            "no error expected at {other}"
        );
    }
}

async fn platform_rows(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) FROM platform_connections", vec![])
        .await
}

async fn signed_in<'a>(app: &'a TestApp, username: &str) -> Browser<'a> {
    let browser = app.browser();
    browser.register(username).await;
    browser
}

/// Submits the token form.
async fn connect_with_token(
    browser: &Browser<'_>,
    instance: &str,
    username: &str,
    token: &str,
) -> Page {
    browser
        .submit(
            "/platforms/new",
            "/platforms",
            &[
                ("name", "Main"),
                ("platform_type", "mastodon"),
                ("instance_url", instance),
                ("username", username),
                ("access_token", token),
            ],
        )
        .await
}

/// Submits the edit form of platform `id`, named "Main", active.
async fn edit(browser: &Browser<'_>, id: i64, instance: &str, username: &str, token: &str) -> Page {
    browser
        .submit(
            &format!("/platforms/{id}/edit"),
            &format!("/platforms/{id}"),
            &[
                ("name", "Main"),
                ("platform_type", "mastodon"),
                ("instance_url", instance),
                ("username", username),
                ("access_token", token),
                ("is_active", "true"),
            ],
        )
        .await
}

async fn stored_token(app: &TestApp, id: i64) -> String {
    let mut db = app.db().await;
    let (user_id, blob): (i64, Vec<u8>) = tether::db::query(
        "SELECT user_id, access_token_encrypted FROM platform_connections WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut db)
    .await
    .expect("platform row");
    let cipher = app.client.rocket().state::<TokenCipher>().expect("cipher");
    cipher.decrypt(&blob, user_id).expect("decrypts")
}

fn bearer_of_last_verify(stub: &StubInstance) -> Option<String> {
    stub.last_request(VERIFY)
        .and_then(|r| r.header("authorization").map(str::to_string))
}

// ---------------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------------

backend_test!(async fn a_token_the_instance_refuses_is_422_next_to_the_token_and_stores_nothing(app) {
    let alice = signed_in(&app, "alice").await;
    for stub in [&app.mastodon, &app.pixelfed] {
        let before = stub.count(VERIFY);
        // Never issued.
        let page = connect_with_token(&alice, &stub.origin(), "alice", "tok-never-issued").await;
        assert_refused_at(&page, "access_token", "127.0.0.1 did not accept the access token. Check it, or connect again.");
        assert!(!page.body.contains("tok-never-issued"), "the token is echoed back");
        assert!(page.body.contains(&format!("value=\"{}\"", html(&stub.origin()))), "the address is kept");
        assert_eq!(stub.count(VERIFY), before + 1, "the instance was asked");
        assert_eq!(
            bearer_of_last_verify(stub).as_deref(),
            Some("Bearer tok-never-issued"),
            "the token travels as a bearer token"
        );
        // Revoked in the instance's settings.
        stub.accept_token("tok-revoked", "alice");
        stub.revoke_token("tok-revoked");
        let page = connect_with_token(&alice, &stub.origin(), "alice", "tok-revoked").await;
        assert_refused_at(&page, "access_token", "127.0.0.1 did not accept the access token. Check it, or connect again.");
        // The instance answers 401 to a token it knows.
        let token = stub.new_token("alice");
        stub.fail_next(VERIFY, Fault::Status(401));
        let page = connect_with_token(&alice, &stub.origin(), "alice", &token).await;
        assert_refused_at(&page, "access_token", "127.0.0.1 did not accept the access token. Check it, or connect again.");
    }
    // A Mastodon token without a read scope: 403, refused the same way.
    let write_only = app.mastodon.account_for("alice");
    app.mastodon.accept_token_for("tok-write-only", write_only, &["write"]);
    let page = connect_with_token(&alice, &app.mastodon.origin(), "alice", "tok-write-only").await;
    assert_refused_at(&page, "access_token", "127.0.0.1 did not accept the access token. Check it, or connect again.");
    assert_eq!(platform_rows(&app).await, 0);
});

backend_test!(async fn an_instance_that_cannot_be_used_is_422_next_to_the_instance_and_stores_nothing(app) config = with_closed_port, {
    let alice = signed_in(&app, "alice").await;
    let stub = &app.mastodon;
    let token = stub.new_token("alice");

    let closed = format!("http://127.0.0.1:{}", closed_port());
    let page = connect_with_token(&alice, &closed, "alice", &token).await;
    assert_refused_at(&page, "instance_url", "127.0.0.1 could not be reached. Check the address, or try again later.");

    let faults = [
        (Fault::Status(500), "127.0.0.1 answered with an error (HTTP 500). Please try again later."),
        (Fault::Status(503), "127.0.0.1 answered with an error (HTTP 503). Please try again later."),
        (Fault::NotMastodon, "127.0.0.1 does not look like a Mastodon or Pixelfed server."),
        (Fault::Status(404), "127.0.0.1 does not look like a Mastodon or Pixelfed server."),
        (Fault::Garbage, "127.0.0.1 does not look like a Mastodon or Pixelfed server."),
    ];
    for (fault, message) in faults {
        stub.set_fault(VERIFY, fault.clone());
        let before = stub.count(VERIFY);
        let page = connect_with_token(&alice, &stub.origin(), "alice", &token).await;
        assert_refused_at(&page, "instance_url", message);
        assert_eq!(stub.count(VERIFY), before + 1, "{fault:?}: asked once");
        stub.clear_faults();
    }
    assert_eq!(platform_rows(&app).await, 0);

    // The same token on the same instance, once it answers: connected.
    connect_with_token(&alice, &stub.origin(), "alice", &token)
        .await
        .assert_redirect("/dashboard");
    assert_eq!(platform_rows(&app).await, 1);
});

backend_test!(async fn a_typed_username_that_is_not_the_tokens_account_is_422_next_to_the_username(app) {
    let alice = signed_in(&app, "alice").await;
    let token = app.mastodon.new_token("carol");
    let page = connect_with_token(&alice, &app.mastodon.origin(), "alice", &token).await;
    assert_refused_at(&page, "username", "This token belongs to @carol@127.0.0.1, not @alice.");
    let page = connect_with_token(&alice, &app.mastodon.origin(), "@dave@127.0.0.1", &token).await;
    assert_refused_at(&page, "username", "This token belongs to @carol@127.0.0.1, not @dave.");
    assert_eq!(platform_rows(&app).await, 0);
    // The right name, in any case, is the token's account.
    connect_with_token(&alice, &app.mastodon.origin(), "@Carol", &token)
        .await
        .assert_redirect("/dashboard");
    assert_eq!(platform_rows(&app).await, 1);
});

backend_test!(async fn a_private_address_that_is_not_allow_listed_is_refused_and_never_called(app) {
    let alice = signed_in(&app, "alice").await;
    // A live loopback server tether is not allowed to call.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.set_nonblocking(true).expect("non-blocking");
    let port = listener.local_addr().unwrap().port();
    let token = app.mastodon.new_token("alice");
    for (typed, host) in [
        (format!("http://127.0.0.1:{port}"), "127.0.0.1"),
        (format!("https://127.0.0.1:{port}"), "127.0.0.1"),
        (format!("https://localhost:{port}"), "localhost"),
        ("http://127.0.0.1:1".to_string(), "127.0.0.1"),
    ] {
        let page = connect_with_token(&alice, &typed, "alice", &token).await;
        assert_refused_at(
            &page,
            "instance_url",
            &format!("tether does not call {host}: it is not a public https address. An administrator can allow a local instance with `outbound_allow_private`."),
        );
    }
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "tether connected to a private address that is not allow-listed"
    );
    let started = std::time::Instant::now();
    let page = connect_with_token(&alice, "https://10.0.0.1", "alice", &token).await;
    assert_refused_at(&page, "instance_url", "tether does not call 10.0.0.1: it is not a public https address. An administrator can allow a local instance with `outbound_allow_private`.");
    assert!(started.elapsed() < std::time::Duration::from_secs(4), "refused before connecting");
    let page = connect_with_token(&alice, "http://10.0.0.1", "alice", &token).await;
    assert_refused_at(&page, "instance_url", "Use an https:// address: tokens must not travel unencrypted.");
    assert_eq!(platform_rows(&app).await, 0);
    assert_eq!(app.mastodon.count(VERIFY), 0, "the token went to no instance");
});

// ---------------------------------------------------------------------------------------------
// Success
// ---------------------------------------------------------------------------------------------

backend_test!(async fn a_verified_token_stores_the_instances_account_and_the_dashboard_shows_it(app) {
    let alice = signed_in(&app, "alice").await;
    let stub = &app.mastodon;
    let account = StubAccount {
        display_name: "Carol Q. Stub".into(),
        followers_count: 321,
        following_count: 45,
        statuses_count: 6789,
        ..stub.account_for("carol")
    };
    stub.accept_token_for("tok-carol", account.clone(), &["read", "write"]);
    // Typed in another case: the instance's spelling is what is stored.
    let page = connect_with_token(&alice, &stub.origin(), "@CAROL", "tok-carol").await;
    page.assert_redirect("/dashboard");
    assert_eq!(bearer_of_last_verify(stub).as_deref(), Some("Bearer tok-carol"));

    let dashboard = alice.follow(&page).await;
    assert_eq!(dashboard.status, Status::Ok);
    assert!(dashboard.body.contains("Connected Main."), "{}", dashboard.body);
    assert!(dashboard.body.contains("Carol Q. Stub"), "display name: {}", dashboard.body);
    assert!(dashboard.body.contains("@<span data-field=\"username\">carol</span>@127.0.0.1"), "{}", dashboard.body);
    assert!(dashboard.body.contains("<dd data-field=\"followers_count\">321</dd>"), "{}", dashboard.body);
    assert!(dashboard.body.contains("<dd data-field=\"following_count\">45</dd>"));
    assert!(dashboard.body.contains("<dd data-field=\"statuses_count\">6789</dd>"));
    let avatar = StubInstance::avatar_of("carol");
    assert!(dashboard.body.contains(&format!("src=\"{}\"", html(&avatar))), "avatar: {}", dashboard.body);
    assert!(!dashboard.body.contains("not yet"), "checked just now");

    let list = alice.get("/api/platforms").await.json();
    let platform = &list["platforms"][0];
    assert_eq!(platform["username"], "carol");
    assert_eq!(platform["instance_url"], stub.origin());
    assert_eq!(platform["account_id"], account.id);
    assert_eq!(platform["acct"], "carol");
    assert_eq!(platform["display_name"], "Carol Q. Stub");
    assert_eq!(platform["avatar_url"], avatar);
    assert_eq!(platform["followers_count"], 321);
    assert_eq!(platform["statuses_count"], 6789);
    assert_eq!(platform["needs_reconnect"], false);
    let id = platform["id"].as_i64().unwrap();
    assert_eq!(stored_token(&app, id).await, "tok-carol");
    assert_eq!(stub.count(VERIFY), 1);
});

backend_test!(async fn a_pixelfed_token_is_verified_with_the_pixelfed_instance(app) {
    let alice = signed_in(&app, "alice").await;
    let token = app.pixelfed.new_token("alice");
    let page = alice
        .submit("/platforms/new", "/platforms", &[
            ("name", "Pics"),
            ("platform_type", "pixelfed"),
            ("instance_url", &app.origin_of("https://pixelfed.social")),
            ("username", "alice"),
            ("access_token", &token),
        ])
        .await;
    page.assert_redirect("/dashboard");
    assert_eq!(app.pixelfed.count(VERIFY), 1);
    assert_eq!(app.mastodon.count(VERIFY), 0);
    let list = alice.get("/api/platforms").await.json();
    assert_eq!(list["platforms"][0]["platform_type"], "pixelfed");
    assert_eq!(list["platforms"][0]["account_id"], app.pixelfed.account_for("alice").id);
});

// ---------------------------------------------------------------------------------------------
// Edits
// ---------------------------------------------------------------------------------------------

backend_test!(async fn an_edit_that_changes_the_token_verifies_it_again(app) {
    let alice = app.user_with_platform("alice").await;
    let id = alice.platform_id("alice main").await;
    let stub = &app.mastodon;
    let origin = stub.origin();
    let old = stored_token(&app, id).await;
    assert_eq!(stub.count(VERIFY), 1);

    // A rename with a blank token: nothing to verify, the instance is not asked.
    edit(&alice, id, &origin, "alice", "").await.assert_redirect("/platforms");
    assert_eq!(stub.count(VERIFY), 1, "nothing changed that needs the instance");

    // A new token the instance refuses: 422 at the token, the old one kept.
    let page = edit(&alice, id, &origin, "alice", "tok-unknown").await;
    assert_refused_at(&page, "access_token", "127.0.0.1 did not accept the access token. Check it, or connect again.");
    assert_eq!(stub.count(VERIFY), 2);
    assert_eq!(stored_token(&app, id).await, old);

    // A new token for another account: 422 at the username, the old one kept.
    let bobs = stub.new_token("bob");
    let page = edit(&alice, id, &origin, "alice", &bobs).await;
    assert_refused_at(&page, "username", "This token belongs to @bob@127.0.0.1, not @alice.");
    assert_eq!(stored_token(&app, id).await, old);

    // The instance is down: 422 at the instance, the old one kept.
    let fresh = stub.new_token("alice");
    stub.fail_next(VERIFY, Fault::Status(502));
    let page = edit(&alice, id, &origin, "alice", &fresh).await;
    assert_refused_at(&page, "instance_url", "127.0.0.1 answered with an error (HTTP 502). Please try again later.");
    assert_eq!(stored_token(&app, id).await, old);

    // A good new token: stored, and the account copy refreshed from the answer.
    let renamed = StubAccount {
        display_name: "Alice, renamed".into(),
        followers_count: 999,
        ..stub.account_for("alice")
    };
    stub.accept_token_for(&fresh, renamed, &["read"]);
    let before = stub.count(VERIFY);
    edit(&alice, id, &origin, "alice", &fresh).await.assert_redirect("/platforms");
    assert_eq!(stub.count(VERIFY), before + 1);
    assert_eq!(bearer_of_last_verify(stub), Some(format!("Bearer {fresh}")));
    assert_eq!(stored_token(&app, id).await, fresh);
    let dashboard = alice.get("/dashboard").await;
    assert!(dashboard.body.contains("Alice, renamed"), "{}", dashboard.body);
    assert!(dashboard.body.contains("<dd data-field=\"followers_count\">999</dd>"), "{}", dashboard.body);
});

backend_test!(async fn an_edit_that_moves_the_platform_verifies_the_stored_token_there(app) {
    let alice = app.user_with_platform("alice").await;
    let id = alice.platform_id("alice main").await;
    let token = stored_token(&app, id).await;
    let mastodon = app.mastodon.origin();
    let pixelfed = app.pixelfed.origin();

    // The Pixelfed instance does not know the Mastodon token: refused, nothing moved.
    let page = edit(&alice, id, &pixelfed, "alice", "").await;
    assert_refused_at(&page, "access_token", "127.0.0.1 did not accept the access token. Check it, or connect again.");
    assert_eq!(app.pixelfed.count(VERIFY), 1, "the stored token was tried there");
    assert_eq!(
        bearer_of_last_verify(&app.pixelfed),
        Some(format!("Bearer {token}")),
        "with the stored token"
    );
    let list = alice.get("/api/platforms").await.json();
    assert_eq!(list["platforms"][0]["instance_url"], mastodon.as_str());

    // Another account name on the same instance: the stored token is not that account's.
    let page = edit(&alice, id, &mastodon, "alice2", "").await;
    assert_refused_at(&page, "username", "This token belongs to @alice@127.0.0.1, not @alice2.");

    // Once the Pixelfed instance knows the token (the same account there), the move is saved.
    app.pixelfed.accept_token(&token, "alice");
    edit(&alice, id, &pixelfed, "alice", "").await.assert_redirect("/platforms");
    let list = alice.get("/api/platforms").await.json();
    assert_eq!(list["platforms"][0]["instance_url"], pixelfed.as_str());
    assert_eq!(list["platforms"][0]["account_id"], app.pixelfed.account_for("alice").id);
    assert_eq!(stored_token(&app, id).await, token);
});
