//! The request lifecycle: one connection per request, guards resolving the user and platform
//! afresh, and every stale state ending in a recovery instead of an error.

mod common;

use common::{Browser, TestApp};
use rocket::http::Status;
use rocket::{get, routes};
use tether::db::{Connection, Value};
use tether::guards::{CurrentUser, PlatformContext};

#[get("/probe/user-platform-conn")]
async fn user_platform_conn(u: &CurrentUser, p: &PlatformContext, c: Connection<'_>) -> String {
    probe(u, p, c).await
}

#[get("/probe/conn-platform-user")]
async fn conn_platform_user(c: Connection<'_>, p: &PlatformContext, u: &CurrentUser) -> String {
    probe(u, p, c).await
}

#[get("/probe/platform-conn-user")]
async fn platform_conn_user(p: &PlatformContext, c: Connection<'_>, u: &CurrentUser) -> String {
    probe(u, p, c).await
}

/// Uses the connection after both guards have used it.
async fn probe(u: &CurrentUser, p: &PlatformContext, c: Connection<'_>) -> String {
    let mut db = c.get().await.expect("connection");
    let (n,): (i64,) =
        tether::db::query("SELECT COUNT(*) FROM platform_connections WHERE user_id = $1")
            .bind(u.id)
            .fetch_one(&mut *db)
            .await
            .expect("query");
    format!("{} {} {}", u.username, p.active.name, n)
}

/// The three guards share one connection in any parameter order, so a pool of one suffices.
async fn guards_share_one_connection(sqlite: bool) {
    let configure = |f: rocket::figment::Figment| {
        f.merge(("databases.tether.max_connections", 1))
            .merge(("databases.tether.connect_timeout", 3))
    };
    let probes = routes![user_platform_conn, conn_platform_user, platform_conn_user];
    let app = if sqlite {
        TestApp::sqlite_with_routes(configure, probes).await
    } else {
        match TestApp::postgres_with_routes(configure, probes).await {
            Some(app) => app,
            None => return,
        }
    };
    let alice = app.user_with_platform("alice").await;
    for uri in [
        "/probe/user-platform-conn",
        "/probe/conn-platform-user",
        "/probe/platform-conn-user",
        "/dashboard",
    ] {
        let page = alice.get(uri).await;
        assert_eq!(page.status, Status::Ok, "{uri}: {}", page.body);
        if uri.starts_with("/probe") {
            assert_eq!(page.body, "alice alice main 1");
        }
    }
}

#[rocket::async_test]
async fn guards_and_handler_share_one_connection_with_a_pool_of_one_sqlite() {
    guards_share_one_connection(true).await;
}

#[rocket::async_test]
async fn guards_and_handler_share_one_connection_with_a_pool_of_one_postgres() {
    guards_share_one_connection(false).await;
}

backend_test!(async fn fifty_concurrent_dashboards_on_two_connections_all_answer_200(app)
    config = |f: rocket::figment::Figment| f.merge(("databases.tether.max_connections", 2)), {
    let alice = app.user_with_platform("alice").await;
    let requests = (0..50).map(|_| async {
        let page = alice.get("/dashboard").await;
        page.status
    });
    let statuses = rocket::futures::future::join_all(requests).await;
    assert_eq!(statuses.len(), 50);
    assert!(statuses.iter().all(|s| *s == Status::Ok), "{statuses:?}");
});

backend_test!(async fn connection_returns_to_the_pool_when_the_request_ends(app)
    config = |f: rocket::figment::Figment| f
        .merge(("databases.tether.max_connections", 1))
        .merge(("databases.tether.connect_timeout", 2)), {
    let alice = app.user_with_platform("alice").await;
    for _ in 0..5 {
        assert_eq!(alice.get("/dashboard").await.status, Status::Ok);
        // The only connection is free again: acquiring it directly does not time out.
        let conn = app.pool().acquire().await;
        assert!(conn.is_ok(), "connection still held after the response");
    }
});

backend_test!(async fn dashboard_answers_200_after_login_with_no_error_text(app) {
    let alice = app.user_with_platform("alice").await;
    alice.logout().await;
    let login = alice.login("alice", common::PASSWORD).await;
    login.assert_redirect("/dashboard");
    let page = alice.get("/dashboard").await;
    assert_eq!(page.status, Status::Ok);
    assert!(page.body.contains("alice main"));
    assert!(page.body.contains(&app.origin_of("https://mastodon.social")), "{}", page.body);
    for bad in ["error", "Error", "DetachedInstance", "Traceback"] {
        assert!(!page.body.contains(bad), "dashboard mentions {bad}: {}", page.body);
    }
});

backend_test!(async fn dashboard_shows_the_new_platform_after_switching(app) {
    let alice = app.user_with_platform("alice").await;
    let second = alice.add_platform("Pixels", "https://pixelfed.social", "alice").await;
    let token = alice.csrf_from("/dashboard").await;
    let switched = alice
        .post_json("/api/switch_platform", &serde_json::json!({ "platform_id": second }), Some(&token))
        .await;
    assert_eq!(switched.status, Status::Ok, "{}", switched.body);
    let page = alice.get("/dashboard").await;
    assert_eq!(page.status, Status::Ok);
    assert!(page.body.contains("Working with <span data-field=\"name\">Pixels</span>"), "{}", page.body);
    assert!(page.body.contains(&app.origin_of("https://pixelfed.social")), "{}", page.body);
});

backend_test!(async fn anonymous_dashboard_redirects_to_login_with_next_and_flash(app) {
    let visitor = app.browser();
    let page = visitor.get("/platforms/new?from=menu&x=a%20b").await;
    assert_eq!(page.status, Status::SeeOther);
    let location = page.location.clone().unwrap();
    assert!(location.starts_with("/login?next="), "{location}");
    assert!(location.contains("%2Fplatforms%2Fnew%3Ffrom%3Dmenu%26x%3Da%2520b"), "{location}");
    let login = visitor.follow(&page).await;
    assert_eq!(login.status, Status::Ok);
    assert!(login.body.contains("Please log in to access this page."));
    assert!(login.body.contains("role=\"alert\""));
});

backend_test!(async fn login_returns_to_the_page_that_asked_for_it(app) {
    let alice = app.user_with_platform("alice").await;
    alice.logout().await;
    let asked = alice.get("/platforms?tab=all").await;
    let login_uri = asked.location.clone().unwrap();
    let token = alice.csrf_from(&login_uri).await;
    let page = alice
        .post_form("/login", &[
            ("username", "alice"),
            ("password", common::PASSWORD),
            ("csrf_token", &token),
            ("next", "/platforms?tab=all"),
        ])
        .await;
    page.assert_redirect("/platforms?tab=all");
});

async fn assert_session_expired(browser: &Browser<'_>, uri: &str) {
    let page = browser.get(uri).await;
    assert_eq!(page.status, Status::SeeOther, "{}", page.body);
    assert!(page
        .location
        .as_deref()
        .unwrap()
        .starts_with("/login?next="));
    assert!(
        page.set_cookies
            .iter()
            .any(|c| c.starts_with("tether_session=;")),
        "session cookie not removed: {:?}",
        page.set_cookies
    );
    let login = browser.follow(&page).await;
    assert!(
        login.body.contains("Session expired. Please log in again."),
        "{}",
        login.body
    );
    // The cookie is gone: the next visit is simply anonymous.
    let again = browser.follow(&browser.get(uri).await).await;
    assert!(again.body.contains("Please log in to access this page."));
}

backend_test!(async fn deleted_session_row_ends_in_session_expired_redirect(app) {
    let alice = app.user_with_platform("alice").await;
    app.exec("DELETE FROM user_sessions", vec![]).await;
    assert_session_expired(&alice, "/dashboard").await;
});

backend_test!(async fn expired_session_ends_in_session_expired_redirect(app) {
    let alice = app.user_with_platform("alice").await;
    let past = tether::db::Timestamp::now().minus_seconds(1);
    app.exec("UPDATE user_sessions SET expires_at = $1", vec![Value::Time(past)]).await;
    assert_session_expired(&alice, "/dashboard").await;
    assert_eq!(app.count("SELECT COUNT(*) FROM user_sessions", vec![]).await, 0);
});

backend_test!(async fn idle_session_ends_in_session_expired_redirect(app) {
    let alice = app.user_with_platform("alice").await;
    let long_ago = tether::db::Timestamp::now().minus_seconds(1801);
    app.exec("UPDATE user_sessions SET last_seen_at = $1", vec![Value::Time(long_ago)]).await;
    assert_session_expired(&alice, "/platforms").await;
});

backend_test!(async fn user_deactivated_mid_session_is_sent_to_login(app) {
    let alice = app.user_with_platform("alice").await;
    assert_eq!(alice.get("/dashboard").await.status, Status::Ok);
    app.exec("UPDATE users SET is_active = FALSE WHERE username = 'alice'", vec![]).await;
    assert_session_expired(&alice, "/dashboard").await;
});

backend_test!(async fn tampered_session_cookie_is_treated_as_anonymous(app) {
    let alice = app.user_with_platform("alice").await;
    let real = alice.cookie("tether_session").unwrap();
    let mut tampered = real.clone();
    tampered.replace_range(10..14, "AAAA");
    for value in [tampered.as_str(), "garbage", "", "%%%", "a=b;c"] {
        alice.set_cookie("tether_session", value);
        let page = alice.get("/dashboard").await;
        assert_eq!(page.status, Status::SeeOther, "cookie {value:?}: {}", page.body);
        let login = alice.follow(&page).await;
        assert_eq!(login.status, Status::Ok);
        assert!(login.body.contains("Please log in to access this page."));
        let api = alice.get("/api/platforms").await;
        assert_eq!(api.status, Status::Unauthorized);
    }
});

backend_test!(async fn active_platform_deleted_elsewhere_falls_back_to_another(app) {
    let alice = app.user_with_platform("alice").await;
    let second = alice.add_platform("Second", "https://pixelfed.social", "alice").await;
    alice.post_form(&format!("/platforms/{second}/switch"), &[("csrf_token", &alice.csrf_from("/dashboard").await)]).await;
    assert!(alice.get("/dashboard").await.body.contains("<span data-field=\"name\">Second</span>"));

    // Another device deletes it.
    app.exec("DELETE FROM platform_connections WHERE id = $1", vec![Value::Int(second)]).await;
    let page = alice.get("/dashboard").await;
    assert_eq!(page.status, Status::Ok);
    assert!(page.body.contains("<span data-field=\"name\">alice main</span>"), "{}", page.body);
});

backend_test!(async fn active_platform_deactivated_elsewhere_falls_back_and_repairs_the_session(app) {
    let alice = app.user_with_platform("alice").await;
    let first = alice.platform_id("alice main").await;
    let second = alice.add_platform("Second", "https://pixelfed.social", "alice").await;
    let third = alice.add_platform("Third", "https://mastodon.social", "alice.alt").await;
    let token = alice.csrf_from("/dashboard").await;
    alice.post_form(&format!("/platforms/{second}/default"), &[("csrf_token", &token)]).await;
    alice.post_form(&format!("/platforms/{third}/switch"), &[("csrf_token", &token)]).await;

    app.exec("UPDATE platform_connections SET is_active = FALSE WHERE id = $1", vec![Value::Int(third)]).await;
    let page = alice.get("/dashboard").await;
    assert_eq!(page.status, Status::Ok);
    // The default wins over the oldest.
    assert!(page.body.contains("<span data-field=\"name\">Second</span>"), "{}", page.body);
    let repaired = app
        .count("SELECT COUNT(*) FROM user_sessions WHERE active_platform_id = $1", vec![Value::Int(second)])
        .await;
    assert_eq!(repaired, 1);

    // Without a default, the oldest active one.
    app.exec("UPDATE platform_connections SET is_default = FALSE", vec![]).await;
    app.exec("UPDATE platform_connections SET is_active = FALSE WHERE id = $1", vec![Value::Int(second)]).await;
    let page = alice.get("/dashboard").await;
    assert!(page.body.contains("<span data-field=\"name\">alice main</span>"), "{}", page.body);
    let _ = first;
});

backend_test!(async fn no_platform_redirects_to_setup_with_flash(app) {
    let bob = app.browser();
    bob.register("bob").await;
    let page = bob.get("/dashboard").await;
    page.assert_redirect("/platforms/new");
    let setup = bob.follow(&page).await;
    assert_eq!(setup.status, Status::Ok);
    assert!(setup.body.contains("No active platform found. Please configure a platform."));
    assert!(setup.body.contains("name=\"access_token\""));
});

backend_test!(async fn last_platform_deleted_elsewhere_redirects_to_setup(app) {
    let alice = app.user_with_platform("alice").await;
    app.exec("DELETE FROM platform_connections", vec![]).await;
    let page = alice.get("/dashboard").await;
    page.assert_redirect("/platforms/new");
    let api = alice.get("/api/platforms").await;
    assert_eq!(api.status, Status::Ok);
    assert_eq!(api.json()["active_platform_id"], serde_json::Value::Null);
});

backend_test!(async fn exhausted_pool_answers_503_without_redirect(app)
    config = |f: rocket::figment::Figment| f
        .merge(("databases.tether.max_connections", 1))
        .merge(("databases.tether.connect_timeout", 1)), {
    let alice = app.user_with_platform("alice").await;
    let held = app.db().await;
    let page = alice.get("/dashboard").await;
    assert_eq!(page.status, Status::ServiceUnavailable);
    assert!(page.location.is_none());
    assert!(page.body.contains("A database error occurred. Please try again."));
    let api = alice.get("/api/platforms").await;
    assert_eq!(api.status, Status::ServiceUnavailable);
    assert_eq!(api.json()["success"], false);
    assert_eq!(api.json()["error"], "A database error occurred. Please try again.");
    let health = alice.get("/healthz").await;
    assert_eq!(health.status, Status::ServiceUnavailable);
    drop(held);
    assert_eq!(alice.get("/dashboard").await.status, Status::Ok);
    assert_eq!(alice.get("/healthz").await.status, Status::Ok);
});

backend_test!(async fn closed_database_answers_503_page(app) {
    let alice = app.user_with_platform("alice").await;
    app.pool().close().await;
    let page = alice.get("/dashboard").await;
    assert_eq!(page.status, Status::ServiceUnavailable);
    assert!(page.body.contains("A database error occurred. Please try again."));
    let login = alice.get("/login").await;
    assert!(login.status.code < 500 || login.status == Status::ServiceUnavailable);
});
