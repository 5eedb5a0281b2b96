//! The foundation the next features stand on: per-response security policies, the upstream
//! error, enums that refuse unknown values, flash messages scripts cannot read, SQLite writers
//! that wait instead of failing, and check-then-write races that end in a 404, never a 500.

mod common;

use common::TestApp;
use rocket::http::Status;
use rocket::{get, routes};
use tether::db::{query, DbPool, Value};
use tether::error::{Error, UpstreamError, UpstreamKind};
use tether::headers::{Csp, WithCsp};
use tether::models::{PlatformType, Role};

#[get("/probe/own-policy")]
fn own_policy() -> WithCsp<&'static str> {
    WithCsp(
        "connect",
        Csp::default().allow_form_action("https://mastodon.example"),
    )
}

#[get("/probe/upstream/<kind>")]
fn upstream_failure(kind: &str) -> Result<&'static str, Error> {
    let kind = match kind {
        "timeout" => UpstreamKind::Timeout,
        "down" => UpstreamKind::Unreachable,
        _ => UpstreamKind::BadResponse("HTTP 500".into()),
    };
    Err(Error::Upstream(UpstreamError {
        service: "mastodon.example".into(),
        kind,
    }))
}

#[get("/api/probe/upstream")]
fn api_upstream_failure() -> Result<&'static str, Error> {
    Err(Error::Upstream(UpstreamError {
        service: "mastodon.example".into(),
        kind: UpstreamKind::Timeout,
    }))
}

async fn app_with_probes(sqlite: bool) -> Option<TestApp> {
    let probes = routes![own_policy, upstream_failure, api_upstream_failure];
    if sqlite {
        Some(TestApp::sqlite_with_routes(|f| f, probes).await)
    } else {
        TestApp::postgres_with_routes(|f| f, probes).await
    }
}

async fn a_response_keeps_its_own_policy_and_others_get_the_default(sqlite: bool) {
    let Some(app) = app_with_probes(sqlite).await else {
        return;
    };
    let browser = app.browser();
    let own = browser.get("/probe/own-policy").await;
    let csp = own.header("Content-Security-Policy").unwrap_or_default();
    assert!(
        csp.contains("form-action 'self' https://mastodon.example"),
        "{csp}"
    );
    assert_eq!(
        csp.matches("form-action").count(),
        1,
        "one policy, not two: {csp}"
    );
    assert_eq!(own.header("X-Content-Type-Options"), Some("nosniff"));
    let login = browser.get("/login").await;
    let default = login.header("Content-Security-Policy").unwrap_or_default();
    assert!(default.contains("form-action 'self';") || default.ends_with("form-action 'self'"));
    assert!(!default.contains("mastodon.example"));
}

#[rocket::async_test]
async fn a_response_keeps_its_own_policy_sqlite() {
    a_response_keeps_its_own_policy_and_others_get_the_default(true).await;
}

#[rocket::async_test]
async fn a_response_keeps_its_own_policy_postgres() {
    a_response_keeps_its_own_policy_and_others_get_the_default(false).await;
}

#[rocket::async_test]
async fn a_remote_instance_failing_is_a_502_or_504_with_a_message_not_a_500() {
    let Some(app) = app_with_probes(true).await else {
        return;
    };
    let browser = app.browser();
    let timeout = browser.get("/probe/upstream/timeout").await;
    assert_eq!(timeout.status, Status::GatewayTimeout);
    assert!(timeout
        .body
        .contains("mastodon.example did not answer in time"));
    let down = browser.get("/probe/upstream/down").await;
    assert_eq!(down.status, Status::BadGateway);
    assert!(down.body.contains("mastodon.example could not be reached"));
    let bad = browser.get("/probe/upstream/bad").await;
    assert_eq!(bad.status, Status::BadGateway);
    assert!(bad.body.contains("(HTTP 500)"), "{}", bad.body);
    let api = browser.get("/api/probe/upstream").await;
    assert_eq!(api.status, Status::GatewayTimeout);
    assert_eq!(api.json()["success"], false);
    assert!(api.json()["error"]
        .as_str()
        .unwrap_or_default()
        .contains("did not answer in time"));
}

backend_test!(async fn stored_kinds_decode_as_enums_and_unknown_values_are_refused(app) {
    let mut db = app.db().await;
    let (role,): (Role,) = query("SELECT 'admin' AS role").fetch_one(&mut db).await.expect("admin");
    assert_eq!(role, Role::Admin);
    let (kind,): (PlatformType,) =
        query("SELECT 'pixelfed' AS kind").fetch_one(&mut db).await.expect("pixelfed");
    assert_eq!(kind, PlatformType::Pixelfed);
    let unknown = query("SELECT 'superuser' AS role").fetch_one::<(Role,)>(&mut db).await;
    assert!(unknown.is_err(), "an unknown role must not read as a user");
    let unknown = query("SELECT 'friendica' AS kind").fetch_one::<(PlatformType,)>(&mut db).await;
    assert!(unknown.is_err());
});

backend_test!(async fn flash_messages_travel_in_an_httponly_lax_cookie(app) {
    let alice = app.browser();
    alice.register("alice").await;
    app.mastodon.accept_token("abc123", "alice");
    let page = alice
        .submit("/platforms/new", "/platforms", &[
            ("name", "Main"),
            ("platform_type", "mastodon"),
            ("instance_url", &app.origin_of("https://mastodon.social")),
            ("username", "alice"),
            ("access_token", "abc123"),
        ])
        .await;
    assert_eq!(page.status, Status::SeeOther, "{}", page.body);
    assert!(page.set_cookies.iter().all(|c| !c.starts_with("_flash=")), "{:?}", page.set_cookies);
    let flash = page
        .set_cookies
        .iter()
        .find(|c| c.starts_with("tether_flash="))
        .unwrap_or_else(|| panic!("no flash cookie in {:?}", page.set_cookies));
    assert!(flash.contains("HttpOnly"), "{flash}");
    assert!(flash.contains("SameSite=Lax"), "{flash}");
    assert!(!flash.contains("Connected"), "the message is encrypted: {flash}");
    let shown = alice.follow(&page).await;
    assert!(shown.body.contains("Connected Main."));
    // Shown once.
    assert!(!alice.get("/dashboard").await.body.contains("Connected Main."));
});

/// A transaction that reads before it writes: with a deferred BEGIN, SQLite refuses the lock
/// upgrade at once ("database is locked") when another writer got in between.
async fn read_then_write(
    pool: &DbPool,
    start: &tokio::sync::Barrier,
    n: i64,
) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    start.wait().await;
    let mut tx = conn.begin().await?;
    let (count,): (i64,) = query("SELECT COUNT(*) FROM audit_events")
        .fetch_one(&mut tx)
        .await?;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    query(
        "INSERT INTO audit_events (created_at, action, actor_name, detail)
         VALUES ($1, 'test.write', $2, $3)",
    )
    .bind(tether::db::Timestamp::now())
    .bind(format!("writer {n}"))
    .bind(format!("saw {count}"))
    .execute(&mut tx)
    .await?;
    tx.commit().await
}

backend_test!(async fn fifty_concurrent_writers_all_commit_without_lock_errors(app) config = |f| {
    f.merge(("databases.tether.max_connections", 50))
}, {
    let pool = app.pool().clone();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(50));
    let writers: Vec<_> = (0..50)
        .map(|n| {
            let (pool, start) = (pool.clone(), start.clone());
            tokio::spawn(async move { read_then_write(&pool, &start, n).await })
        })
        .collect();
    let mut failures = Vec::new();
    for writer in writers {
        match writer.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e.to_string()),
            Err(e) => failures.push(format!("task: {e}")),
        }
    }
    assert!(failures.is_empty(), "{} writers failed: {failures:?}", failures.len());
    let written = app
        .count("SELECT COUNT(*) FROM audit_events WHERE action = 'test.write'", vec![])
        .await;
    assert_eq!(written, 50, "no write lost");
});

// Two devices of one user: one deletes a platform while the other switches to it. Either the
// switch wins (then the delete clears the session's choice) or it finds the platform gone: a
// 404, never a 500, and the session never points at a missing platform.
backend_test!(async fn a_switch_racing_the_deletion_of_its_platform_is_a_404_never_a_500(app) {
    let laptop = app.user_with_platform("alice").await;
    let phone = app.browser();
    assert_eq!(phone.login("alice", common::PASSWORD).await.status, Status::SeeOther);
    let phone_csrf = phone.csrf_from("/dashboard").await;
    for round in 0..12 {
        let name = format!("spare {round}");
        let id = laptop.add_platform(&name, "https://pixelfed.social", &format!("a{round}")).await;
        let laptop_csrf = laptop.csrf_from("/platforms").await;
        let delete_uri = format!("/platforms/{id}/delete");
        let switch_uri = format!("/platforms/{id}/switch");
        let body = serde_json::json!({ "platform_id": id });
        let delete_form = [("csrf_token", laptop_csrf.as_str())];
        let switch_form = [("csrf_token", phone_csrf.as_str())];
        let (deleted, switched, api) = tokio::join!(
            laptop.post_form(&delete_uri, &delete_form),
            phone.post_form(&switch_uri, &switch_form),
            phone.post_json("/api/switch_platform", &body, Some(&phone_csrf)),
        );
        assert_eq!(deleted.status, Status::SeeOther, "round {round}: {}", deleted.body);
        assert!(
            matches!(switched.status.code, 303 | 404),
            "round {round}: switch answered {}",
            switched.status
        );
        assert!(
            matches!(api.status.code, 200 | 404),
            "round {round}: API switch answered {}: {}",
            api.status,
            api.body
        );
        let dangling = app
            .count(
                "SELECT COUNT(*) FROM user_sessions s
                 WHERE s.active_platform_id IS NOT NULL AND NOT EXISTS (
                     SELECT 1 FROM platform_connections p
                     WHERE p.id = s.active_platform_id AND p.user_id = s.user_id AND p.is_active)",
                vec![],
            )
            .await;
        assert_eq!(dangling, 0, "round {round}: a session points at a missing platform");
        assert_eq!(phone.get("/dashboard").await.status, Status::Ok);
    }
});

// Deactivating the platform a session is using takes it away from that session at once.
backend_test!(async fn deactivating_a_platform_clears_it_from_every_session(app) {
    let laptop = app.user_with_platform("alice").await;
    let second = laptop.add_platform("Second", "https://pixelfed.social", "alice").await;
    let phone = app.browser();
    assert_eq!(phone.login("alice", common::PASSWORD).await.status, Status::SeeOther);
    let csrf = phone.csrf_from("/dashboard").await;
    let body = serde_json::json!({ "platform_id": second });
    assert_eq!(phone.post_json("/api/switch_platform", &body, Some(&csrf)).await.status, Status::Ok);
    let page = laptop
        .submit(&format!("/platforms/{second}/edit"), &format!("/platforms/{second}"), &[
            ("name", "Second"),
            ("platform_type", "pixelfed"),
            ("instance_url", &app.origin_of("https://pixelfed.social")),
            ("username", "alice"),
            ("access_token", ""),
        ])
        .await;
    assert_eq!(page.status, Status::SeeOther, "{}", page.body);
    let pointing = app
        .count("SELECT COUNT(*) FROM user_sessions WHERE active_platform_id = $1", vec![Value::from(second)])
        .await;
    assert_eq!(pointing, 0);
    let list = phone.get("/api/platforms").await.json();
    assert_ne!(list["active_platform_id"], second);
});
