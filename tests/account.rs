//! /account: password, email and sessions, each for the signed-in user only.

mod common;

use common::{TestApp, PASSWORD};
use rocket::http::Status;

const NEW_PASSWORD: &str = "an entirely new passphrase";

async fn session_ids(app: &TestApp) -> Vec<i64> {
    let mut db = app.db().await;
    let rows: Vec<(i64,)> = tether::db::query("SELECT id FROM user_sessions ORDER BY id")
        .fetch_all(&mut db)
        .await
        .unwrap();
    rows.into_iter().map(|(id,)| id).collect()
}

backend_test!(async fn account_lists_sessions_with_the_current_one_marked(app) {
    let laptop = app.browser();
    laptop.always_send("User-Agent", "Laptop Browser");
    laptop.register("alice").await;
    let phone = app.browser();
    phone.always_send("User-Agent", "Phone Browser");
    phone.login("alice", PASSWORD).await;
    let page = laptop.get("/account").await;
    assert_eq!(page.status, Status::Ok);
    assert!(page.body.contains("Laptop Browser <span class=\"badge\">this session</span>"), "{}", page.body);
    assert!(page.body.contains("Phone Browser"));
    assert!(page.body.contains("Sign out everywhere else"));
    assert!(page.body.contains("alice@example.com"));
});

backend_test!(async fn changing_the_password_needs_the_current_one_and_ends_other_sessions(app) {
    let laptop = app.browser();
    laptop.register("alice").await;
    let phone = app.browser();
    phone.login("alice", PASSWORD).await.assert_redirect("/dashboard");

    let wrong = laptop
        .submit("/account", "/account/password", &[
            ("current_password", "not my password"),
            ("new_password", NEW_PASSWORD),
            ("new_password_confirm", NEW_PASSWORD),
        ])
        .await;
    assert_eq!(wrong.status, Status::UnprocessableEntity);
    assert!(wrong.body.contains("Your current password is not correct."));
    assert!(wrong.body.contains("id=\"current_password-error\""));

    let weak = laptop
        .submit("/account", "/account/password", &[
            ("current_password", PASSWORD),
            ("new_password", "alice"),
            ("new_password_confirm", "alice"),
        ])
        .await;
    assert_eq!(weak.status, Status::UnprocessableEntity);
    assert!(weak.body.contains("id=\"new_password-error\""));

    let done = laptop
        .submit("/account", "/account/password", &[
            ("current_password", PASSWORD),
            ("new_password", NEW_PASSWORD),
            ("new_password_confirm", NEW_PASSWORD),
        ])
        .await;
    done.assert_redirect("/account");
    assert!(laptop.follow(&done).await.body.contains("Your password has been changed"));
    assert_eq!(laptop.get("/dashboard").await.status, Status::SeeOther, "no platform yet: setup redirect");
    assert_eq!(laptop.get("/account").await.status, Status::Ok, "this session stays signed in");
    let phone_page = phone.get("/account").await;
    assert!(phone_page.location.unwrap().starts_with("/login"), "other session ended");
    assert_eq!(session_ids(&app).await.len(), 1);

    assert_eq!(app.browser().login("alice", PASSWORD).await.status, Status::Unauthorized);
    app.browser().login("alice", NEW_PASSWORD).await.assert_redirect("/dashboard");
});

backend_test!(async fn revoking_a_session_signs_that_device_out(app) {
    let laptop = app.browser();
    laptop.register("alice").await;
    let phone = app.browser();
    phone.login("alice", PASSWORD).await;
    let ids = session_ids(&app).await;
    let phone_session = ids[1];
    let token = laptop.csrf_from("/account").await;
    let page = laptop
        .post_form(&format!("/account/sessions/{phone_session}/revoke"), &[("csrf_token", &token)])
        .await;
    page.assert_redirect("/account");
    assert!(phone.get("/account").await.location.unwrap().starts_with("/login"));
    assert_eq!(laptop.get("/account").await.status, Status::Ok);

    // Ending the current session is a sign-out.
    let own = session_ids(&app).await[0];
    let page = laptop.post_form(&format!("/account/sessions/{own}/revoke"), &[("csrf_token", &token)]).await;
    page.assert_redirect("/login");
    assert!(laptop.cookie("tether_session").is_none());
});

backend_test!(async fn sign_out_everywhere_else_keeps_only_this_session(app) {
    let laptop = app.browser();
    laptop.register("alice").await;
    for _ in 0..3 {
        app.browser().login("alice", PASSWORD).await;
    }
    assert_eq!(session_ids(&app).await.len(), 4);
    let page = laptop.submit("/account", "/account/sessions/revoke-others", &[]).await;
    page.assert_redirect("/account");
    assert!(laptop.follow(&page).await.body.contains("Signed out 3 other sessions."));
    assert_eq!(session_ids(&app).await.len(), 1);
    assert_eq!(laptop.get("/account").await.status, Status::Ok);
});

backend_test!(async fn another_users_session_cannot_be_revoked(app) {
    let alice = app.browser();
    alice.register("alice").await;
    let mallory = app.browser();
    mallory.register("mallory").await;
    let alices_session = session_ids(&app).await[0];
    let token = mallory.csrf_from("/account").await;
    let page = mallory
        .post_form(&format!("/account/sessions/{alices_session}/revoke"), &[("csrf_token", &token)])
        .await;
    assert_eq!(page.status, Status::NotFound);
    assert_eq!(alice.get("/account").await.status, Status::Ok);
    let missing = mallory.post_form("/account/sessions/abc/revoke", &[("csrf_token", &token)]).await;
    assert_eq!(missing.status, Status::NotFound);
});

backend_test!(async fn changing_email_is_validated_unique_and_needs_the_password(app) {
    app.browser().register("bob").await;
    let alice = app.browser();
    alice.register("alice").await;
    for (email, password, message) in [
        ("not an email", PASSWORD, "Enter a valid email address"),
        ("BOB@example.com", PASSWORD, "An account with this email already exists."),
        ("alice@new.example", "wrong password", "Your current password is not correct."),
    ] {
        let page = alice
            .submit("/account", "/account/email", &[("email", email), ("current_password", password)])
            .await;
        assert_eq!(page.status, Status::UnprocessableEntity, "{email}");
        assert!(page.body.contains(message), "{email}: {}", page.body);
        assert!(page.body.contains(&format!("value=\"{email}\"")), "typed value kept");
    }
    let page = alice
        .submit("/account", "/account/email", &[("email", "alice@new.example"), ("current_password", PASSWORD)])
        .await;
    page.assert_redirect("/account");
    assert!(alice.follow(&page).await.body.contains("alice@new.example"));
});

backend_test!(async fn account_pages_need_a_signed_in_user(app) {
    let visitor = app.browser();
    let page = visitor.get("/account").await;
    assert!(page.location.unwrap().starts_with("/login?next=%2Faccount"));
});

backend_test!(async fn guessing_the_current_password_is_throttled_like_logins(app) {
    let alice = app.browser();
    alice.register("alice").await;
    for _ in 0..5 {
        let page = alice
            .submit("/account", "/account/email", &[("email", "a@b.example"), ("current_password", "guess guess")])
            .await;
        assert_eq!(page.status, Status::UnprocessableEntity);
    }
    let page = alice
        .submit("/account", "/account/password", &[
            ("current_password", PASSWORD),
            ("new_password", NEW_PASSWORD),
            ("new_password_confirm", NEW_PASSWORD),
        ])
        .await;
    assert_eq!(page.status, Status::TooManyRequests);
    assert!(page.body.contains("Too many failed login attempts"));
    assert_eq!(app.browser().login("alice", PASSWORD).await.status, Status::TooManyRequests);
});
