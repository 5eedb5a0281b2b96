//! Nothing a user can send produces a 500: every form and JSON route, fed hostile values.

mod common;

use rocket::http::{ContentType, Status};

const NASTY: &[&str] = &[
    "",
    " ",
    "\0",
    "a\0b",
    "\u{202e}evil",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "%",
    "_",
    "\\",
    "ﬀ İ ß 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🦀",
    "\r\nSet-Cookie: x=y",
    "9223372036854775808",
    "-1",
];

fn assert_no_5xx(what: &str, page: &common::Page) {
    assert!(
        page.status.code < 500,
        "{what} → {}: {}",
        page.status,
        page.body
    );
}

backend_test!(async fn hostile_values_in_every_form_never_cause_a_5xx(app) {
    // The first user of an empty database is its admin, so every admin form is reachable too.
    let admin = app.user_with_platform("root").await;
    let id = admin.platform_id("root main").await.to_string();
    let long = "x".repeat(5000);
    let mut values: Vec<&str> = NASTY.to_vec();
    values.push(&long);
    let forms: Vec<(&str, String, Vec<&str>)> = vec![
        ("/platforms/new", "/platforms".into(), vec!["name", "platform_type", "instance_url", "username", "access_token"]),
        ("/platforms", format!("/platforms/{id}"), vec!["name", "platform_type", "instance_url", "username", "access_token", "is_active"]),
        ("/account", "/account/email".into(), vec!["email", "current_password"]),
        ("/admin/users/new", "/admin/users".into(), vec!["username", "email", "password", "admin"]),
    ];
    for value in &values {
        for (page, action, fields) in &forms {
            let filled: Vec<(&str, &str)> = fields.iter().map(|f| (*f, *value)).collect();
            let result = admin.submit(page, action, &filled).await;
            assert_no_5xx(&format!("POST {action} with {value:?}"), &result);
        }
        let search = admin.get(&format!("/admin/users?q={}", common::encode(value))).await;
        assert_no_5xx(&format!("search {value:?}"), &search);
        let token = admin.csrf_from("/dashboard").await;
        let json = serde_json::json!({ "platform_id": value });
        let api = admin.post_json("/api/switch_platform", &json, Some(&token)).await;
        assert_no_5xx(&format!("switch {value:?}"), &api);
        assert_eq!(api.header("Content-Type"), Some("application/json"));

        let visitor = app.browser();
        for (page, action, fields) in [
            ("/login", "/login", vec!["username", "password", "next"]),
            ("/register", "/register", vec!["username", "email", "password", "password_confirm"]),
        ] {
            let filled: Vec<(&str, &str)> = fields.iter().map(|f| (*f, *value)).collect();
            let result = visitor.submit(page, action, &filled).await;
            assert_no_5xx(&format!("POST {action} with {value:?}"), &result);
        }
        let next = visitor.get(&format!("/login?next={}", common::encode(value))).await;
        assert_no_5xx(&format!("login next {value:?}"), &next);
    }
    // Raw bodies that are not what the route expects.
    for (content_type, body) in [
        (ContentType::JSON, "{\"platform_id\": 1e400}"),
        (ContentType::JSON, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"),
        (ContentType::JSON, "\u{0}"),
        (ContentType::Form, "platform_id=1"),
        (ContentType::Binary, "\u{0}\u{1}"),
    ] {
        let token = admin.csrf_from("/dashboard").await;
        let page = admin.post_raw_with_csrf("/api/switch_platform", content_type.clone(), body, &token).await;
        assert_no_5xx(&format!("raw {content_type} {body:?}"), &page);
        assert!(page.status.code >= 400);
    }
    assert_eq!(admin.get("/dashboard").await.status, Status::Ok);
});
