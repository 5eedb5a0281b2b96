//! The background refresher: due account copies are checked with their instance exactly once
//! even when two tether processes run passes at the same time, claims keep other processes off
//! and run out, and a token the instance refuses marks the platform "needs reconnecting".

mod common;

use common::stub_instance::Fault;
use common::TestApp;
use tether::db::{Timestamp, Value};
use tether::jobs::refresh::run_once;
use tether::jobs::Deps;

const VERIFY: &str = "/api/v1/accounts/verify_credentials";

/// A second tether app on the same database (what a second process is): its own Rocket, pool,
/// outbound client and state, built from the same configuration.
async fn second_app(app: &TestApp) -> rocket::local::asynchronous::Client {
    let figment = app.client.rocket().figment().clone();
    rocket::local::asynchronous::Client::untracked(tether::rocket_from(figment))
        .await
        .expect("a second app ignites on the same database")
}

async fn make_all_due(app: &TestApp) {
    let old = Timestamp::now().minus_seconds(7 * 24 * 3600);
    app.exec(
        "UPDATE platform_connections SET verified_at = $1",
        vec![Value::from(old)],
    )
    .await;
}

backend_test!(async fn two_processes_refresh_each_due_platform_exactly_once(app) {
    let alice = app.user_with_platform("alice").await;
    alice.add_platform("Second", "https://mastodon.social", "alice2").await;
    alice.add_platform("Third", "https://pixelfed.social", "alice3").await;
    let bob = app.user_with_platform("bob").await;
    drop(bob);
    make_all_due(&app).await;
    let before = app.mastodon.count(VERIFY) + app.pixelfed.count(VERIFY);

    let first = Deps::of(app.client.rocket()).expect("app state");
    let other = second_app(&app).await;
    let second = Deps::of(other.rocket()).expect("second app state");
    let (a, b) = tokio::join!(run_once(&first), run_once(&second));
    let (a, b) = (a.expect("first pass"), b.expect("second pass"));

    assert_eq!(a.verified + b.verified, 4, "each platform once: {a:?} {b:?}");
    let after = app.mastodon.count(VERIFY) + app.pixelfed.count(VERIFY);
    assert_eq!(after - before, 4, "one instance call per platform");
    let fresh = Timestamp::now().minus_seconds(60);
    let stale = app
        .count(
            "SELECT COUNT(*) FROM platform_connections WHERE verified_at < $1",
            vec![Value::from(fresh)],
        )
        .await;
    assert_eq!(stale, 0, "every copy was refreshed");
    let claimed = app
        .count(
            "SELECT COUNT(*) FROM platform_connections WHERE refresh_claimed_until IS NOT NULL",
            vec![],
        )
        .await;
    assert_eq!(claimed, 0, "claims are released after the pass");

    // Nothing is due any more: a second round does no work.
    let again = run_once(&first).await.expect("pass");
    assert_eq!(again.verified, 0);
});

backend_test!(async fn a_live_claim_keeps_other_processes_off_and_an_expired_one_does_not(app) {
    let _alice = app.user_with_platform("alice").await;
    make_all_due(&app).await;
    let deps = Deps::of(app.client.rocket()).expect("app state");
    let future = Timestamp::now().plus_seconds(600);
    app.exec(
        "UPDATE platform_connections SET refresh_claimed_until = $1",
        vec![Value::from(future)],
    )
    .await;
    assert_eq!(run_once(&deps).await.expect("pass").verified, 0, "claimed elsewhere");
    // The process holding the claim crashed: its claim runs out.
    let past = Timestamp::now().minus_seconds(1);
    app.exec(
        "UPDATE platform_connections SET refresh_claimed_until = $1",
        vec![Value::from(past)],
    )
    .await;
    assert_eq!(run_once(&deps).await.expect("pass").verified, 1);
});

backend_test!(async fn a_token_the_instance_refuses_marks_the_platform_needs_reconnecting(app) {
    let alice = app.user_with_platform("alice").await;
    make_all_due(&app).await;
    app.mastodon.set_fault(VERIFY, Fault::Status(401));
    let deps = Deps::of(app.client.rocket()).expect("app state");
    let pass = run_once(&deps).await.expect("pass");
    assert_eq!(pass.needs_reconnect, 1);
    let marked = app
        .count("SELECT COUNT(*) FROM platform_connections WHERE needs_reconnect", vec![])
        .await;
    assert_eq!(marked, 1);
    let dashboard = alice.get("/dashboard").await;
    assert!(dashboard.body.contains("needs reconnecting") || dashboard.body.contains("Reconnect"));
    // A platform that needs reconnecting is not retried in the background.
    app.mastodon.clear_faults();
    make_all_due(&app).await;
    assert_eq!(run_once(&deps).await.expect("pass").verified, 0);
});

backend_test!(async fn an_instance_that_is_down_postpones_the_refresh_and_changes_nothing(app) {
    let _alice = app.user_with_platform("alice").await;
    make_all_due(&app).await;
    app.mastodon.set_fault(VERIFY, Fault::Status(500));
    let deps = Deps::of(app.client.rocket()).expect("app state");
    let pass = run_once(&deps).await.expect("pass");
    assert_eq!(pass.unavailable, 1);
    let marked = app
        .count("SELECT COUNT(*) FROM platform_connections WHERE needs_reconnect", vec![])
        .await;
    assert_eq!(marked, 0, "an outage is not the token's fault");
});
