//! The JSON API: its contract, and that every failure answers JSON with the real status.

mod common;

use rocket::http::{ContentType, Status};
use serde_json::json;

fn assert_json_error(page: &common::Page, status: Status, message: &str) {
    assert_eq!(page.status, status, "{}", page.body);
    assert!(page.location.is_none(), "API redirected");
    assert_eq!(page.header("Content-Type"), Some("application/json"));
    let body = page.json();
    assert_eq!(body["success"], false);
    assert!(
        body["error"].as_str().unwrap_or_default().contains(message),
        "{status}: {body}"
    );
}

backend_test!(async fn platforms_endpoint_lists_the_contract_fields(app) {
    let alice = app.user_with_platform("alice").await;
    let body = alice.get("/api/platforms").await.json();
    let platform = body["platforms"][0].as_object().unwrap();
    let mut keys: Vec<&str> = platform.keys().map(String::as_str).collect();
    keys.sort_unstable();
    // The platform's own fields, then the copy of the account the instance reported.
    assert_eq!(
        keys,
        [
            "account_id", "acct", "avatar_url", "display_name", "followers_count", "following_count",
            "id", "instance_url", "is_active", "is_default", "name", "needs_reconnect",
            "platform_type", "statuses_count", "username", "verified_at",
        ]
    );
    assert!(keys.iter().all(|k| !k.contains("token") && !k.contains("secret")), "{keys:?}");
    assert_eq!(platform["platform_type"], "mastodon");
    let account = app.mastodon.account_for("alice");
    assert_eq!(platform["instance_url"], app.origin_of("https://mastodon.social"));
    assert_eq!(platform["username"], "alice");
    assert_eq!(platform["account_id"], account.id);
    assert_eq!(platform["acct"], "alice");
    assert_eq!(platform["display_name"], account.display_name);
    assert_eq!(platform["followers_count"], account.followers_count);
    assert_eq!(platform["needs_reconnect"], false);
    assert!(platform["verified_at"].is_string(), "{platform:?}");
    assert_eq!(body["active_platform_id"], platform["id"]);
});

backend_test!(async fn switching_changes_only_this_sessions_active_platform(app) {
    let laptop = app.user_with_platform("alice").await;
    let second = laptop.add_platform("Second", "https://pixelfed.social", "alice").await;
    let phone = app.browser();
    phone.login("alice", common::PASSWORD).await.assert_redirect("/dashboard");

    let token = laptop.csrf_from("/dashboard").await;
    let page = laptop
        .post_json("/api/switch_platform", &json!({ "platform_id": second }), Some(&token))
        .await;
    assert_eq!(page.status, Status::Ok);
    let body = page.json();
    assert_eq!(body["success"], true);
    assert_eq!(body["platform"]["id"], second);
    assert_eq!(body["platform"]["name"], "Second");
    assert_eq!(body["platform"]["is_default"], false);

    assert_eq!(laptop.get("/api/platforms").await.json()["active_platform_id"], second);
    // The phone's session and the default are untouched.
    let phone_view = phone.get("/api/platforms").await.json();
    assert_ne!(phone_view["active_platform_id"], second);
    assert!(phone.get("/dashboard").await.body.contains("<span data-field=\"name\">alice main</span>"));
});

backend_test!(async fn switch_refuses_bad_requests_with_json_errors(app) {
    let alice = app.user_with_platform("alice").await;
    let id = alice.platform_id("alice main").await;
    let token = alice.csrf_from("/dashboard").await;
    let body = json!({ "platform_id": id });

    assert_json_error(&alice.post_json("/api/switch_platform", &body, None).await, Status::Forbidden, "");
    assert_json_error(&alice.post_json("/api/switch_platform", &body, Some("forged")).await, Status::Forbidden, "");

    let form_encoded = format!("platform_id={id}");
    let wrong_type = alice
        .post_raw_with_csrf("/api/switch_platform", ContentType::Form, &form_encoded, &token)
        .await;
    assert_json_error(&wrong_type, Status::UnsupportedMediaType, "application/json");
    let no_type = alice
        .post_raw_with_csrf("/api/switch_platform", ContentType::Plain, &body.to_string(), &token)
        .await;
    assert_json_error(&no_type, Status::UnsupportedMediaType, "application/json");

    let malformed = alice
        .post_raw_with_csrf("/api/switch_platform", ContentType::JSON, "{not json", &token)
        .await;
    assert_json_error(&malformed, Status::BadRequest, "not valid JSON");
    let wrong_field_type = alice
        .post_json("/api/switch_platform", &json!({ "platform_id": "one" }), Some(&token))
        .await;
    assert_json_error(&wrong_field_type, Status::UnprocessableEntity, "Invalid request");
    let extra_fields = alice
        .post_json("/api/switch_platform", &json!({ "platform_id": id, "user_id": 1, "role": "admin" }), Some(&token))
        .await;
    assert_json_error(&extra_fields, Status::UnprocessableEntity, "unknown field");
    let missing = alice
        .post_json("/api/switch_platform", &json!({ "platform_id": 424242 }), Some(&token))
        .await;
    assert_json_error(&missing, Status::NotFound, "Platform not found.");
    let huge = format!("{{\"platform_id\": {id}, \"pad\": \"{}\"}}", "x".repeat(20 * 1024));
    let too_large = alice
        .post_raw_with_csrf("/api/switch_platform", ContentType::JSON, &huge, &token)
        .await;
    assert_json_error(&too_large, Status::PayloadTooLarge, "too large");
});

backend_test!(async fn switching_to_a_deactivated_platform_is_422(app) {
    let alice = app.user_with_platform("alice").await;
    let second = alice.add_platform("Second", "https://pixelfed.social", "alice").await;
    app.exec("UPDATE platform_connections SET is_active = FALSE WHERE id = $1", vec![tether::db::Value::Int(second)]).await;
    let token = alice.csrf_from("/dashboard").await;
    let page = alice
        .post_json("/api/switch_platform", &json!({ "platform_id": second }), Some(&token))
        .await;
    assert_json_error(&page, Status::UnprocessableEntity, "deactivated");
});

backend_test!(async fn anonymous_and_expired_api_calls_answer_401_json(app) {
    let visitor = app.browser();
    assert_json_error(&visitor.get("/api/platforms").await, Status::Unauthorized, "log in");
    assert_json_error(
        &visitor.post_json("/api/switch_platform", &json!({ "platform_id": 1 }), Some("x")).await,
        Status::Unauthorized,
        "log in",
    );
    let alice = app.user_with_platform("alice").await;
    app.exec("DELETE FROM user_sessions", vec![]).await;
    let expired = alice.get("/api/platforms").await;
    assert_json_error(&expired, Status::Unauthorized, "Session expired");
    assert!(expired.set_cookies.iter().any(|c| c.starts_with("tether_session=;")));
});

backend_test!(async fn unknown_api_paths_answer_404_json(app) {
    let visitor = app.browser();
    assert_json_error(&visitor.get("/api/nope").await, Status::NotFound, "Not found");
});

backend_test!(async fn healthz_reports_a_database_round_trip(app) {
    let page = app.browser().get("/healthz").await;
    assert_eq!(page.status, Status::Ok);
    assert_eq!(page.json(), json!({ "status": "ok" }));
});
