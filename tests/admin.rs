//! /admin: who may enter, what admins can do to users, and the audit trail.

mod common;

use common::{Browser, TestApp, PASSWORD};
use rocket::http::{Method, Status};

async fn admin_and_user(app: &TestApp) -> (Browser<'_>, Browser<'_>) {
    let admin = app.browser();
    admin.register("root").await; // the first user of an empty database
    let user = app.user_with_platform("alice").await;
    (admin, user)
}

async fn user_id(app: &TestApp, username: &str) -> i64 {
    let mut db = app.db().await;
    let (id,): (i64,) = tether::db::query("SELECT id FROM users WHERE username = $1")
        .bind(username)
        .fetch_one(&mut db)
        .await
        .unwrap();
    id
}

async fn act(admin: &Browser<'_>, id: i64, action: &str) -> common::Page {
    let token = admin.csrf_from("/admin/users").await;
    admin
        .post_form(
            &format!("/admin/users/{id}/{action}"),
            &[("csrf_token", &token)],
        )
        .await
}

backend_test!(async fn normal_users_get_403_on_every_admin_route_and_method(app) {
    let (_admin, alice) = admin_and_user(&app).await;
    let token = alice.csrf_from("/dashboard").await;
    for uri in ["/admin", "/admin/users", "/admin/users?q=a&page=2", "/admin/users/new", "/admin/audit", "/admin/nothing/here"] {
        let page = alice.get(uri).await;
        assert_eq!(page.status, Status::Forbidden, "GET {uri}");
        assert!(page.body.contains("Only administrators"), "{uri}");
    }
    for uri in ["/admin/users", "/admin/users/1/promote", "/admin/users/1/deactivate", "/admin/users/1/end-sessions", "/admin/whatever"] {
        let page = alice.post_form(uri, &[("csrf_token", &token), ("username", "x")]).await;
        assert_eq!(page.status, Status::Forbidden, "POST {uri}");
    }
    for method in [Method::Put, Method::Patch, Method::Delete] {
        let cookie = rocket::http::Cookie::new("tether_session", alice.cookie("tether_session").unwrap());
        let response = alice.client.req(method, "/admin/users").cookie(cookie).dispatch().await;
        assert_eq!(response.status(), Status::Forbidden, "{method}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE role = 'admin'", vec![]).await, 1);
});

backend_test!(async fn visitors_are_sent_to_login_from_admin_pages(app) {
    let visitor = app.browser();
    for uri in ["/admin", "/admin/users", "/admin/audit"] {
        let page = visitor.get(uri).await;
        assert!(page.location.unwrap().starts_with("/login?next="), "{uri}");
    }
    let api_like = visitor.post_form("/admin/users/1/promote", &[]).await;
    assert!(api_like.location.unwrap().starts_with("/login"));
});

backend_test!(async fn admins_list_search_and_page_through_users(app) {
    let (admin, _alice) = admin_and_user(&app).await;
    for i in 0..23 {
        app.exec(
            "INSERT INTO users (username, email, password_hash, role, is_active, created_at)
             VALUES ($1, $2, 'x', 'user', TRUE, $3)",
            vec![
                tether::db::Value::from(format!("member{i:02}")),
                tether::db::Value::from(format!("m{i:02}@club.example")),
                tether::db::Value::Time(tether::db::Timestamp::now()),
            ],
        )
        .await;
    }
    let first = admin.get("/admin/users").await;
    assert_eq!(first.status, Status::Ok);
    assert!(first.body.contains("25 user(s)"));
    assert!(first.body.contains("Page 1 of 2"));
    assert_eq!(first.body.matches("class=\"platform-list__item").count(), 20);
    let second = admin.get("/admin/users?page=2").await;
    assert_eq!(second.body.matches("class=\"platform-list__item").count(), 5);
    let search = admin.get("/admin/users?q=M07%40CLUB").await;
    assert!(search.body.contains("1 user(s)"), "{}", search.body);
    assert!(search.body.contains("member07"));
    let literal = admin.get("/admin/users?q=%25").await;
    assert!(literal.body.contains("0 user(s)"), "% is not a wildcard");
    let beyond = admin.get("/admin/users?page=99").await;
    assert!(beyond.body.contains("Page 2 of 2"));
});

backend_test!(async fn admins_create_users_who_can_then_log_in(app) {
    let (admin, _alice) = admin_and_user(&app).await;
    let bad = admin
        .submit("/admin/users/new", "/admin/users", &[("username", "x"), ("email", "nope"), ("password", "short")])
        .await;
    assert_eq!(bad.status, Status::UnprocessableEntity);
    for field in ["username", "email", "password"] {
        assert!(bad.body.contains(&format!("id=\"{field}-error\"")), "{field}");
    }
    let page = admin
        .submit("/admin/users/new", "/admin/users", &[
            ("username", "carol"),
            ("email", "carol@example.com"),
            ("password", PASSWORD),
            ("admin", "true"),
        ])
        .await;
    page.assert_redirect("/admin/users");
    assert!(admin.follow(&page).await.body.contains("Created carol (admin)."));
    let carol = app.browser();
    carol.login("carol", PASSWORD).await.assert_redirect("/dashboard");
    assert_eq!(carol.get("/admin/users").await.status, Status::Ok);
});

backend_test!(async fn a_deactivated_user_is_signed_out_on_every_device(app) {
    let (admin, alice_laptop) = admin_and_user(&app).await;
    let alice_phone = app.browser();
    alice_phone.login("alice", PASSWORD).await.assert_redirect("/dashboard");
    let alice = user_id(&app, "alice").await;
    act(&admin, alice, "deactivate").await.assert_redirect("/admin/users");
    for device in [&alice_laptop, &alice_phone] {
        let page = device.get("/dashboard").await;
        assert!(page.location.as_deref().unwrap().starts_with("/login?next="));
        assert!(device.follow(&page).await.body.contains("Session expired. Please log in again."));
    }
    assert_eq!(app.browser().login("alice", PASSWORD).await.status, Status::Unauthorized);
    act(&admin, alice, "activate").await.assert_redirect("/admin/users");
    app.browser().login("alice", PASSWORD).await.assert_redirect("/dashboard");
});

backend_test!(async fn a_demoted_admin_loses_admin_on_the_next_request(app) {
    let (root, alice) = admin_and_user(&app).await;
    let alice_id = user_id(&app, "alice").await;
    act(&root, alice_id, "promote").await.assert_redirect("/admin/users");
    assert_eq!(alice.get("/admin/users").await.status, Status::Ok);
    act(&root, alice_id, "demote").await.assert_redirect("/admin/users");
    assert_eq!(alice.get("/admin/users").await.status, Status::Forbidden);
});

backend_test!(async fn the_last_active_admin_can_be_neither_deactivated_nor_demoted(app) {
    let (root, _alice) = admin_and_user(&app).await;
    let root_id = user_id(&app, "root").await;
    for action in ["deactivate", "demote"] {
        let page = act(&root, root_id, action).await;
        page.assert_redirect("/admin/users");
        let list = root.follow(&page).await;
        assert!(list.body.contains("root is the last active administrator"), "{action}");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE role = 'admin' AND is_active", vec![]).await, 1);
    // With a second admin, it works.
    let alice_id = user_id(&app, "alice").await;
    act(&root, alice_id, "promote").await;
    act(&root, root_id, "demote").await.assert_redirect("/admin/users");
    assert_eq!(root.get("/admin/users").await.status, Status::Forbidden);
});

backend_test!(async fn ending_a_users_sessions_signs_them_out(app) {
    let (root, alice) = admin_and_user(&app).await;
    let alice_id = user_id(&app, "alice").await;
    let page = act(&root, alice_id, "end-sessions").await;
    page.assert_redirect("/admin/users");
    assert!(root.follow(&page).await.body.contains("Ended 1 session(s) of alice."));
    assert!(alice.get("/dashboard").await.location.unwrap().starts_with("/login"));
    assert_eq!(root.get("/admin/users").await.status, Status::Ok);
    assert_eq!(act(&root, 424242, "promote").await.status, Status::NotFound);
    assert_eq!(act(&root, alice_id, "explode").await.status, Status::NotFound);
});

backend_test!(async fn logins_and_admin_actions_are_audited_without_secrets(app) {
    let (root, _alice) = admin_and_user(&app).await;
    app.browser().login("alice", "a wrong password!").await;
    app.browser().login("nobody", "another wrong one").await;
    app.browser().login("alice", PASSWORD).await;
    let alice_id = user_id(&app, "alice").await;
    act(&root, alice_id, "promote").await;
    act(&root, alice_id, "demote").await;
    let actions = app.audit_actions().await;
    for expected in ["login.failure", "login.success", "admin.promote", "admin.demote"] {
        assert!(actions.iter().any(|a| a == expected), "{expected} missing from {actions:?}");
    }
    assert_eq!(actions.iter().filter(|a| *a == "login.failure").count(), 2);
    let page = root.get("/admin/audit").await;
    assert_eq!(page.status, Status::Ok);
    assert!(page.body.contains("admin.promote"));
    assert!(page.body.contains("nobody"));
    assert!(page.body.contains("unknown username"));
    for secret in [PASSWORD, "a wrong password!", "another wrong one", "token-for-tests"] {
        assert!(!page.body.contains(secret), "audit page shows {secret}");
        let leaks = app
            .count(
                "SELECT COUNT(*) FROM audit_events WHERE detail LIKE $1 OR target_name LIKE $1",
                vec![tether::db::Value::from(format!("%{secret}%"))],
            )
            .await;
        assert_eq!(leaks, 0, "{secret} stored in the audit table");
    }
});

backend_test!(async fn an_action_returns_the_admin_to_the_same_search_and_page(app) {
    let (admin, _alice) = admin_and_user(&app).await;
    let alice = user_id(&app, "alice").await;
    let list = admin.get("/admin/users?q=ali").await;
    assert!(list.body.contains("<input type=\"hidden\" name=\"q\" value=\"ali\">"), "{}", list.body);
    let token = list.csrf_token();
    let back = admin
        .post_form(
            &format!("/admin/users/{alice}/promote"),
            &[("csrf_token", &token), ("q", " ali "), ("page", "2")],
        )
        .await;
    back.assert_redirect("/admin/users?q=ali&page=2");
    // Nothing, blank or nonsense: the plain list.
    for fields in [vec![], vec![("q", "  "), ("page", "1")], vec![("page", "-4")]] {
        let mut fields = fields;
        fields.push(("csrf_token", &token));
        admin
            .post_form(&format!("/admin/users/{alice}/demote"), &fields)
            .await
            .assert_redirect("/admin/users");
        admin
            .post_form(&format!("/admin/users/{alice}/promote"), &fields)
            .await
            .assert_redirect("/admin/users");
    }
});
