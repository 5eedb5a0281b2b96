//! How much database work a request does, as tether itself counts it (every statement goes
//! through `tether::db::query`, counted per pooled connection) and reports it with
//! `server_timing = true` in `Server-Timing: db;desc="N statements on M connections"`.
//!
//! A steady-state dashboard (a signed-in user with three platforms, an audit with images on the
//! active one) takes one connection and runs two statements: the session with its user, and
//! the platforms with the active one's audit and counts. It writes nothing.

mod common;

use common::{Page, TestApp};
use tether::db::{Timestamp, Value};

fn usage(page: &Page) -> (u32, u32) {
    let header = page
        .header("Server-Timing")
        .unwrap_or_else(|| panic!("no Server-Timing on {}", page.body))
        .to_string();
    let numbers: Vec<u32> = header
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 2, "{header}");
    (numbers[0], numbers[1])
}

/// Five images on `platform`: two described, one draft, one published.
async fn images(app: &TestApp, platform: i64) {
    let now = Timestamp::now();
    for (n, description, state) in [
        (1, None, "none"),
        (2, None, "none"),
        (3, Some("A described image"), "none"),
        (4, None, "draft"),
        (5, Some("Published by tether"), "published"),
    ] {
        app.exec(
            "INSERT INTO media_items (platform_id, status_id, posted_at, status_text, media_id,
                 position, media_type, description, state, seen_run, updated_at)
             VALUES ($1, $2, $3, 'A post', $4, 0, 'image', $5, $6, 1, $3)",
            vec![
                Value::Int(platform),
                Value::Text(format!("s{n}")),
                Value::Time(now),
                Value::Text(format!("m{n}")),
                Value::OptText(description.map(str::to_string)),
                Value::Text(state.to_string()),
            ],
        )
        .await;
    }
    app.exec(
        "INSERT INTO media_audits (platform_id, scan_state, scan_run, posts_scanned, max_posts,
             scan_requested_at, scan_finished_at)
         VALUES ($1, 'finished', 1, 5, 400, $2, $2)",
        vec![Value::Int(platform), Value::Time(now)],
    )
    .await;
}

async fn last_seen(app: &TestApp) -> i64 {
    app.count(
        "SELECT count(*) FROM user_sessions WHERE last_seen_at = (SELECT max(last_seen_at) FROM user_sessions)",
        vec![],
    )
    .await
}

backend_test!(async fn a_steady_state_dashboard_runs_two_statements_on_one_connection_and_writes_nothing(app) config = |f| f.merge(("server_timing", true)), {
    let alice = app.user_with_platform("alice").await;
    let second = alice.add_platform("Second", "https://mastodon.social", "alice2").await;
    alice.add_platform("Third", "https://mastodon.social", "alice3").await;
    images(&app, second).await;

    // A new session has not chosen: the default is the active platform, in two statements.
    let page = alice.get("/dashboard").await;
    assert_eq!(page.status, rocket::http::Status::Ok);
    assert_eq!(usage(&page), (2, 1), "a session that has not chosen yet");

    // Chosen: the second platform, with its audit and counts, still two statements.
    let token = alice.csrf_from("/platforms").await;
    alice
        .post_form(&format!("/platforms/{second}/switch"), &[("csrf_token", &token)])
        .await;
    let sessions_before = app
        .count("SELECT count(*) FROM user_sessions", vec![])
        .await;
    let seen_before = last_seen(&app).await;
    for _ in 0..3 {
        let page = alice.get("/dashboard").await;
        assert_eq!(usage(&page), (2, 1), "steady state");
        assert!(page.body.contains("Working with <span data-field=\"name\">Second</span>"));
        assert!(
            page.body.contains("<span data-count=\"missing\">3</span> of <span data-count=\"total\">5</span>"),
            "the counts of the active platform: {}",
            page.body
        );
        assert!(page.body.contains("<dd data-count=\"drafted\">1</dd>"));
        assert!(page.body.contains("<dd data-count=\"published\">1</dd>"));
        assert!(page.body.contains("Scanned 5 of at most 400 posts; finished"));
    }
    assert_eq!(app.count("SELECT count(*) FROM user_sessions", vec![]).await, sessions_before);
    assert_eq!(last_seen(&app).await, seen_before, "last_seen_at is not written on every request");

    // After a fallback (the chosen platform deactivated elsewhere) the page is still right; it
    // may load the summary itself.
    app.exec(
        "UPDATE platform_connections SET is_active = FALSE WHERE id = $1",
        vec![Value::Int(second)],
    )
    .await;
    let page = alice.get("/dashboard").await;
    assert!(page.body.contains("Working with <span data-field=\"name\">alice main</span>"), "{}", page.body);
    assert!(page.body.contains("<span data-count=\"total\">0</span>"));
    let (statements, connections) = usage(&page);
    assert_eq!(connections, 1);
    assert!(statements <= 5, "{statements} statements after a fallback");
});

backend_test!(async fn without_server_timing_no_header_is_sent(app) {
    let alice = app.user_with_platform("alice").await;
    assert!(alice.get("/dashboard").await.header("Server-Timing").is_none());
});
