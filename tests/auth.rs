//! Registration, login, logout and CSRF on the anonymous and signed-in forms.

mod common;

use common::{TestApp, PASSWORD};
use rocket::http::Status;
use tether::db::Value;

async fn role_of(app: &TestApp, username: &str) -> String {
    let mut db = app.db().await;
    let (role,): (String,) = tether::db::query("SELECT role FROM users WHERE username = $1")
        .bind(username)
        .fetch_one(&mut db)
        .await
        .expect("user row");
    role
}

backend_test!(async fn landing_page_for_visitors_and_dashboard_redirect_for_users(app) {
    let visitor = app.browser();
    let page = visitor.get("/").await;
    assert_eq!(page.status, Status::Ok);
    assert!(page.body.contains("href=\"/login\""));
    assert!(page.body.contains("href=\"/register\""));
    let alice = app.user_with_platform("alice").await;
    alice.get("/").await.assert_redirect("/dashboard");
    alice.get("/login").await.assert_redirect("/dashboard");
});

backend_test!(async fn registration_signs_in_and_the_first_user_becomes_admin(app) {
    let alice = app.browser();
    alice.register("alice").await.assert_redirect("/platforms/new");
    assert!(alice.cookie("tether_session").is_some());
    assert_eq!(role_of(&app, "alice").await, "admin");
    let bob = app.browser();
    bob.register("bob").await;
    assert_eq!(role_of(&app, "bob").await, "user");
});

backend_test!(async fn registration_with_bad_input_is_422_with_errors_by_each_field(app) {
    let visitor = app.browser();
    let page = visitor
        .submit("/register", "/register", &[
            ("username", "a!"),
            ("email", "not-an-email"),
            ("password", "short"),
            ("password_confirm", "short"),
        ])
        .await;
    assert_eq!(page.status, Status::UnprocessableEntity);
    for (field, message) in [
        ("username", "Username must be 3 to 32 characters long."),
        ("email", "Enter a valid email address"),
        ("password", "Password must be at least 8 characters long."),
    ] {
        assert!(page.body.contains(message), "{field}: {}", page.body);
        assert!(page.body.contains(&format!("id=\"{field}-error\"")), "{field}");
        assert!(page.body.contains(&format!("{field}-error\" aria-invalid=\"true\"")), "{field}");
    }
    // What was typed is kept, except passwords.
    assert!(page.body.contains("value=\"a!\""));
    assert!(page.body.contains("value=\"not-an-email\""));
    assert!(!page.body.contains("value=\"short\""));
    assert_eq!(app.count("SELECT COUNT(*) FROM users", vec![]).await, 0);

    let mismatch = visitor
        .submit("/register", "/register", &[
            ("username", "alice"),
            ("email", "alice@example.com"),
            ("password", PASSWORD),
            ("password_confirm", "something else entirely"),
        ])
        .await;
    assert_eq!(mismatch.status, Status::UnprocessableEntity);
    assert!(mismatch.body.contains("The passwords do not match."));

    let missing_fields = visitor.submit("/register", "/register", &[]).await;
    assert_eq!(missing_fields.status, Status::UnprocessableEntity);
});

backend_test!(async fn registration_refuses_taken_usernames_and_emails_whatever_the_case(app) {
    app.browser().register("alice").await;
    let page = app
        .browser()
        .submit("/register", "/register", &[
            ("username", "ALICE"),
            ("email", "Alice@Example.com"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ])
        .await;
    assert_eq!(page.status, Status::UnprocessableEntity);
    assert!(page.body.contains("That username is taken."));
    assert!(page.body.contains("An account with this email already exists."));
    assert_eq!(app.count("SELECT COUNT(*) FROM users", vec![]).await, 1);
});

backend_test!(async fn registration_closed_answers_404(app)
    config = |f: rocket::figment::Figment| f.merge(("allow_registration", false)), {
    let visitor = app.browser();
    assert_eq!(visitor.get("/register").await.status, Status::NotFound);
    let without_token = visitor.post_form("/register", &[("username", "alice")]).await;
    assert_eq!(without_token.status, Status::NotFound);
    let token = visitor.csrf_from("/login").await;
    let page = visitor
        .post_form("/register", &[
            ("username", "alice"),
            ("email", "alice@example.com"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
            ("csrf_token", &token),
        ])
        .await;
    assert_eq!(page.status, Status::NotFound);
    assert_eq!(app.count("SELECT COUNT(*) FROM users", vec![]).await, 0);
    assert!(!visitor.get("/login").await.body.contains("Create an account</a>."));
});

backend_test!(async fn failed_logins_look_the_same_for_unknown_wrong_and_deactivated(app) {
    let alice = app.user_with_platform("alice").await;
    alice.logout().await;
    app.browser().register("carol").await;
    app.exec("UPDATE users SET is_active = FALSE WHERE username = 'carol'", vec![]).await;

    let visitor = app.browser();
    let token = visitor.csrf_from("/login").await;
    // A reference failure; every other one must match it byte for byte (bar the echoed name).
    let reference = visitor
        .post_form("/login", &[("username", "someone"), ("password", PASSWORD), ("csrf_token", &token)])
        .await;
    for (username, password) in [("nobody", PASSWORD), ("alice", "wrong password here"), ("carol", PASSWORD)] {
        let page = visitor
            .post_form("/login", &[("username", username), ("password", password), ("csrf_token", &token)])
            .await;
        assert_eq!(page.status, Status::Unauthorized, "{username}");
        assert!(page.location.is_none());
        assert!(page.body.contains("Invalid username or password."), "{username}");
        assert!(visitor.cookie("tether_session").is_none());
        let normalized = page.body.replace(&format!("value=\"{username}\""), "value=\"someone\"");
        assert_eq!(normalized, reference.body, "{username} answers differently");
    }
});

backend_test!(async fn login_starts_a_fresh_session_and_retires_the_anonymous_csrf_token(app) {
    let alice = app.user_with_platform("alice").await;
    let before = alice.cookie("tether_session").unwrap();
    alice.logout().await;
    let anonymous_token = alice.csrf_from("/login").await;
    let page = alice
        .post_form("/login", &[("username", "alice"), ("password", PASSWORD), ("csrf_token", &anonymous_token)])
        .await;
    page.assert_redirect("/dashboard");
    let after = alice.cookie("tether_session").unwrap();
    assert_ne!(before, after);
    assert!(alice.cookie("tether_csrf").is_none(), "anonymous CSRF cookie kept");
    let session_token = alice.csrf_from("/dashboard").await;
    assert_ne!(session_token, anonymous_token);
    // The pre-login token no longer authorises anything.
    let refused = alice.post_form("/logout", &[("csrf_token", &anonymous_token)]).await;
    assert_eq!(refused.status, Status::Forbidden);
    assert_eq!(alice.get("/dashboard").await.status, Status::Ok);
});

backend_test!(async fn login_follows_only_local_next_paths(app) {
    app.browser().register("alice").await;
    for (next, expected) in [
        ("/platforms", "/platforms"),
        ("//evil.example/x", "/dashboard"),
        ("https://evil.example/", "/dashboard"),
        ("/\\evil.example", "/dashboard"),
        ("javascript:alert(1)", "/dashboard"),
    ] {
        let visitor = app.browser();
        let token = visitor.csrf_from("/login").await;
        let page = visitor
            .post_form("/login", &[("username", "alice"), ("password", PASSWORD), ("csrf_token", &token), ("next", next)])
            .await;
        page.assert_redirect(expected);
    }
});

backend_test!(async fn logout_deletes_the_session_so_the_old_cookie_is_dead(app) {
    let alice = app.user_with_platform("alice").await;
    let old_cookie = alice.cookie("tether_session").unwrap();
    let page = alice.logout().await;
    page.assert_redirect("/login");
    assert!(alice.cookie("tether_session").is_none());
    assert!(alice.follow(&page).await.body.contains("You have been logged out."));
    assert_eq!(app.count("SELECT COUNT(*) FROM user_sessions", vec![]).await, 0);

    // Replaying the old cookie: the login page (HTML), 401 (API).
    alice.set_cookie("tether_session", &old_cookie);
    let replay = alice.get("/dashboard").await;
    assert_eq!(replay.status, Status::SeeOther);
    assert!(replay.location.unwrap().starts_with("/login"));
    alice.set_cookie("tether_session", &old_cookie);
    let api = alice.get("/api/platforms").await;
    assert_eq!(api.status, Status::Unauthorized);
    assert_eq!(api.json()["success"], false);
});

backend_test!(async fn forms_without_the_right_csrf_token_are_refused_and_change_nothing(app) {
    let visitor = app.browser();
    visitor.get("/login").await;
    let no_token = visitor
        .post_form("/register", &[
            ("username", "alice"),
            ("email", "alice@example.com"),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
        ])
        .await;
    assert_eq!(no_token.status, Status::Forbidden);
    assert!(no_token.body.contains("Reload the page and try again."));
    assert_eq!(app.count("SELECT COUNT(*) FROM users", vec![]).await, 0);

    let alice = app.user_with_platform("alice").await;
    for (uri, fields) in [
        ("/platforms", vec![("name", "X"), ("platform_type", "mastodon"), ("instance_url", "https://x.example"), ("username", "x"), ("access_token", "t")]),
        ("/logout", vec![]),
    ] {
        let mut with_bad_token = fields.clone();
        with_bad_token.push(("csrf_token", "forged"));
        for fields in [fields, with_bad_token] {
            let page = alice.post_form(uri, &fields).await;
            assert_eq!(page.status, Status::Forbidden, "{uri}");
        }
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM platform_connections", vec![]).await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM user_sessions", vec![]).await, 1);
    // A third party's valid token is no good either.
    let mallory = app.user_with_platform("mallory").await;
    let mallory_token = mallory.csrf_from("/dashboard").await;
    let page = alice.post_form("/logout", &[("csrf_token", &mallory_token)]).await;
    assert_eq!(page.status, Status::Forbidden);
});

backend_test!(async fn overlong_password_is_a_clear_422_before_hashing(app) {
    let visitor = app.browser();
    let long = "p".repeat(257);
    let login = visitor.submit("/login", "/login", &[("username", "alice"), ("password", &long)]).await;
    assert_eq!(login.status, Status::UnprocessableEntity);
    assert!(login.body.contains("at most 256 bytes"));
    let register = visitor
        .submit("/register", "/register", &[
            ("username", "alice"),
            ("email", "alice@example.com"),
            ("password", &long),
            ("password_confirm", &long),
        ])
        .await;
    assert_eq!(register.status, Status::UnprocessableEntity);
    assert!(register.body.contains("at most 256 bytes"));
});

backend_test!(async fn sessions_record_their_device(app) {
    let alice = app.browser();
    alice.always_send("User-Agent", "TestBrowser/1.0");
    alice.register("alice").await;
    let rows = app
        .count("SELECT COUNT(*) FROM user_sessions WHERE user_agent = $1", vec![Value::from("TestBrowser/1.0")])
        .await;
    assert_eq!(rows, 1);
});
