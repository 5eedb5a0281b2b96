//! Login throttling, constant responses, hash upgrades, session timing and cross-site refusal.

mod common;

use argon2::password_hash::{PasswordHasher, SaltString};
use common::{TestApp, PASSWORD};
use rocket::http::Status;
use serde_json::json;
use tether::db::{Timestamp, Value};

const THROTTLED: &str = "Too many failed login attempts. Please wait 15 minutes and try again.";

async fn attempt(app: &TestApp, ip: &str, username: &str, password: &str) -> common::Page {
    let browser = app.browser();
    browser.always_send("X-Real-IP", ip);
    browser.login(username, password).await
}

backend_test!(async fn five_failures_lock_a_username_for_everyone_even_with_the_right_password(app) {
    app.browser().register("alice").await;
    for i in 0..5 {
        let page = attempt(&app, &format!("198.51.100.{i}"), "alice", "wrong password!").await;
        assert_eq!(page.status, Status::Unauthorized, "attempt {i}");
    }
    // Right password, new address, different case: still refused.
    let page = attempt(&app, "203.0.113.9", "ALICE", PASSWORD).await;
    assert_eq!(page.status, Status::TooManyRequests);
    assert!(page.body.contains(THROTTLED));
    assert!(page.location.is_none());

    // Fifteen minutes later the lock is over.
    let past = Timestamp::now().minus_seconds(15 * 60 + 1);
    app.exec("UPDATE login_throttle SET locked_until = $1, window_start = $1", vec![Value::Time(past)]).await;
    attempt(&app, "203.0.113.9", "alice", PASSWORD).await.assert_redirect("/dashboard");
});

backend_test!(async fn unknown_usernames_are_throttled_exactly_like_real_ones(app) {
    app.browser().register("alice").await;
    let mut statuses = Vec::new();
    for username in ["alice", "ghost"] {
        for _ in 0..6 {
            statuses.push((username, attempt(&app, "192.0.2.1", username, "wrong password!").await.status));
        }
    }
    let alice: Vec<_> = statuses.iter().filter(|(u, _)| *u == "alice").map(|(_, s)| *s).collect();
    let ghost: Vec<_> = statuses.iter().filter(|(u, _)| *u == "ghost").map(|(_, s)| *s).collect();
    assert_eq!(alice, ghost);
    assert_eq!(alice[4], Status::Unauthorized);
    assert_eq!(alice[5], Status::TooManyRequests);
});

backend_test!(async fn a_successful_login_resets_the_username_count(app) {
    app.browser().register("alice").await;
    for _ in 0..4 {
        attempt(&app, "192.0.2.1", "alice", "wrong password!").await;
    }
    attempt(&app, "192.0.2.1", "alice", PASSWORD).await.assert_redirect("/dashboard");
    for _ in 0..4 {
        assert_eq!(attempt(&app, "192.0.2.1", "alice", "wrong password!").await.status, Status::Unauthorized);
    }
    attempt(&app, "192.0.2.1", "alice", PASSWORD).await.assert_redirect("/dashboard");
});

backend_test!(async fn one_address_guessing_many_usernames_is_throttled(app) {
    app.browser().register("alice").await;
    for i in 0..20 {
        let page = attempt(&app, "192.0.2.77", &format!("user{i}"), "wrong password!").await;
        assert_eq!(page.status, Status::Unauthorized, "attempt {i}");
    }
    assert_eq!(attempt(&app, "192.0.2.77", "alice", PASSWORD).await.status, Status::TooManyRequests);
    // Alice herself, from elsewhere, is unaffected.
    attempt(&app, "192.0.2.78", "alice", PASSWORD).await.assert_redirect("/dashboard");
});

backend_test!(async fn weaker_password_hashes_are_upgraded_at_login(app) {
    let alice = app.browser();
    alice.register("alice").await;
    let weak = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(4096, 1, 1, None).unwrap(),
    )
    .hash_password(PASSWORD.as_bytes(), &SaltString::generate(&mut rand::rngs::OsRng))
    .unwrap()
    .to_string();
    app.exec("UPDATE users SET password_hash = $1", vec![Value::from(weak.as_str())]).await;
    app.browser().login("alice", PASSWORD).await.assert_redirect("/dashboard");
    let mut db = app.db().await;
    let (stored,): (String,) = tether::db::query("SELECT password_hash FROM users").fetch_one(&mut db).await.unwrap();
    assert_ne!(stored, weak);
    assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
    app.browser().login("alice", PASSWORD).await.assert_redirect("/dashboard");
});

async fn session_times(app: &TestApp) -> (i64, i64) {
    let mut db = app.db().await;
    let (seen, expires): (Timestamp, Timestamp) =
        tether::db::query("SELECT last_seen_at, expires_at FROM user_sessions")
            .fetch_one(&mut db)
            .await
            .unwrap();
    (seen.unix(), expires.unix())
}

backend_test!(async fn activity_extends_only_the_idle_timeout_and_is_written_once_a_minute(app) {
    let alice = app.user_with_platform("alice").await;
    let (seen_before, expires_before) = session_times(&app).await;
    let thirty_seconds_ago = Timestamp::from_unix(seen_before - 30);
    app.exec("UPDATE user_sessions SET last_seen_at = $1", vec![Value::Time(thirty_seconds_ago)]).await;
    for _ in 0..3 {
        assert_eq!(alice.get("/dashboard").await.status, Status::Ok);
    }
    assert_eq!(session_times(&app).await.0, seen_before - 30, "written within the minute");

    let two_minutes_ago = Timestamp::now().minus_seconds(120);
    app.exec("UPDATE user_sessions SET last_seen_at = $1", vec![Value::Time(two_minutes_ago)]).await;
    assert_eq!(alice.get("/dashboard").await.status, Status::Ok);
    let (seen_after, expires_after) = session_times(&app).await;
    assert!(seen_after >= Timestamp::now().unix() - 5, "last_seen_at not refreshed");
    assert_eq!(expires_after, expires_before, "activity must not extend the absolute timeout");
});

backend_test!(async fn cross_site_state_changes_are_refused(app) {
    let alice = app.user_with_platform("alice").await;
    let id = alice.platform_id("alice main").await;
    let token = alice.csrf_from("/dashboard").await;
    let body = json!({ "platform_id": id });

    alice.always_send("Host", "tether.example");
    alice.always_send("Origin", "https://evil.example");
    assert_eq!(alice.post_json("/api/switch_platform", &body, Some(&token)).await.status, Status::Forbidden);
    let form = alice.post_form(&format!("/platforms/{id}/switch"), &[("csrf_token", &token)]).await;
    assert_eq!(form.status, Status::Forbidden);

    alice.always_send("Origin", "null");
    assert_eq!(alice.post_json("/api/switch_platform", &body, Some(&token)).await.status, Status::Forbidden);

    alice.always_send("Origin", "https://tether.example");
    alice.always_send("Sec-Fetch-Site", "cross-site");
    assert_eq!(alice.post_json("/api/switch_platform", &body, Some(&token)).await.status, Status::Forbidden);

    alice.always_send("Sec-Fetch-Site", "same-origin");
    assert_eq!(alice.post_json("/api/switch_platform", &body, Some(&token)).await.status, Status::Ok);
});

backend_test!(async fn no_account_exists_until_someone_creates_one(app) {
    assert_eq!(app.count("SELECT COUNT(*) FROM users", vec![]).await, 0);
    for (username, password) in [("admin", "admin"), ("admin", "password"), ("root", "root")] {
        assert_eq!(app.browser().login(username, password).await.status, Status::Unauthorized);
    }
});

backend_test!(async fn parallel_guesses_cannot_outrun_the_throttle(app) {
    app.browser().register("alice").await;
    let browsers: Vec<_> = (0..16).map(|i| {
        let b = app.browser();
        b.always_send("X-Real-IP", &format!("198.18.0.{i}"));
        b
    }).collect();
    let mut tokens = Vec::new();
    for b in &browsers {
        tokens.push(b.csrf_from("/login").await);
    }
    let guesses = browsers.iter().zip(&tokens).map(|(b, token)| async move {
        b.post_form("/login", &[("username", "alice"), ("password", "guess number x"), ("csrf_token", token)])
            .await
            .status
    });
    let statuses = rocket::futures::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == Status::Unauthorized).count();
    let refused = statuses.iter().filter(|s| **s == Status::TooManyRequests).count();
    assert_eq!(checked, 5, "{statuses:?}");
    assert_eq!(refused, 11, "{statuses:?}");
    assert_eq!(attempt(&app, "198.18.1.1", "alice", PASSWORD).await.status, Status::TooManyRequests);
});

backend_test!(async fn control_characters_in_typed_names_are_4xx_and_never_logged_raw(app) {
    let root = app.browser();
    root.register("root").await;
    for username in ["\0", "al\0ice", "alice\nINFO audit: admin.promote actor=root", "alİce"] {
        let page = attempt(&app, "198.18.2.1", username, PASSWORD).await;
        assert_eq!(page.status, Status::Unauthorized, "{username:?}: {}", page.body);
    }
    let mut db = app.db().await;
    let names: Vec<(Option<String>,)> =
        tether::db::query("SELECT target_name FROM audit_events WHERE action = 'login.failure'")
            .fetch_all(&mut db)
            .await
            .unwrap();
    assert_eq!(names.len(), 4);
    for (name,) in names {
        let name = name.unwrap_or_default();
        assert!(!name.chars().any(char::is_control), "{name:?}");
    }
    assert_eq!(root.get("/admin/users?q=%00").await.status, Status::Ok);
});

backend_test!(async fn unusable_next_values_fall_back_to_the_dashboard(app) {
    app.browser().register("alice").await;
    for next in ["/a b", "/\"quoted\"", "/%ZZ"] {
        let visitor = app.browser();
        let token = visitor.csrf_from("/login").await;
        let page = visitor
            .post_form("/login", &[("username", "alice"), ("password", PASSWORD), ("csrf_token", &token), ("next", next)])
            .await;
        assert_eq!(page.status, Status::SeeOther, "{next}: {}", page.body);
        let location = page.location.unwrap();
        assert!(location == "/dashboard" || location == next, "{next} → {location}");
        assert_eq!(visitor.get("/login?next=/%20").await.location.as_deref(), Some("/dashboard"));
    }
});

backend_test!(async fn an_expired_session_on_a_form_post_returns_to_login_without_a_dead_next(app) {
    let alice = app.user_with_platform("alice").await;
    let token = alice.csrf_from("/platforms").await;
    app.exec("DELETE FROM user_sessions", vec![]).await;
    let page = alice.post_form("/logout", &[("csrf_token", &token)]).await;
    page.assert_redirect("/login");
    assert!(alice.follow(&page).await.body.contains("Session expired. Please log in again."));
});

backend_test!(async fn simultaneous_first_registrations_make_exactly_one_admin(app) {
    let browsers: Vec<_> = (0..4).map(|_| app.browser()).collect();
    let mut tokens = Vec::new();
    for b in &browsers {
        tokens.push(b.csrf_from("/register").await);
    }
    let registrations = browsers.iter().zip(&tokens).enumerate().map(|(i, (b, token))| async move {
        let name = format!("first{i}");
        let email = format!("first{i}@example.com");
        b.post_form("/register", &[
            ("username", name.as_str()),
            ("email", email.as_str()),
            ("password", PASSWORD),
            ("password_confirm", PASSWORD),
            ("csrf_token", token.as_str()),
        ])
        .await
        .status
    });
    let statuses = rocket::futures::future::join_all(registrations).await;
    assert!(statuses.iter().all(|s| *s == Status::SeeOther), "{statuses:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM users WHERE role = 'admin'", vec![]).await, 1);
});

backend_test!(async fn simultaneous_default_changes_leave_exactly_one_default(app) {
    let alice = app.user_with_platform("alice").await;
    let mut ids = vec![alice.platform_id("alice main").await];
    for name in ["B", "C", "D"] {
        ids.push(alice.add_platform(name, "https://mastodon.social", &format!("alice_{name}")).await);
    }
    let token = alice.csrf_from("/platforms").await;
    let changes = ids.iter().rev().map(|id| {
        let token = token.clone();
        let alice = &alice;
        async move {
            alice.post_form(&format!("/platforms/{id}/default"), &[("csrf_token", &token)]).await.status
        }
    });
    let statuses = rocket::futures::future::join_all(changes).await;
    assert!(statuses.iter().all(|s| *s == Status::SeeOther), "{statuses:?}");
    assert_eq!(app.count("SELECT COUNT(*) FROM platform_connections WHERE is_default", vec![]).await, 1);
});

backend_test!(async fn a_flood_of_logins_never_runs_more_hashes_than_permits(app) {
    app.browser().register("alice").await;
    let browsers: Vec<_> = (0..12).map(|i| {
        let b = app.browser();
        b.always_send("X-Real-IP", &format!("198.18.3.{i}"));
        b
    }).collect();
    let mut tokens = Vec::new();
    for b in &browsers {
        tokens.push(b.csrf_from("/login").await);
    }
    let logins = browsers.iter().zip(&tokens).enumerate().map(|(i, (b, token))| async move {
        let name = format!("flood{i}");
        b.post_form("/login", &[("username", name.as_str()), ("password", "wrong password!"), ("csrf_token", token)])
            .await
            .status
    });
    let statuses = rocket::futures::future::join_all(logins).await;
    assert!(statuses.iter().all(|s| *s == Status::Unauthorized), "{statuses:?}");
    let hasher = app
        .client
        .rocket()
        .state::<tether::crypto::PasswordHasherPool>()
        .expect("hasher managed");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(hasher.limit(), cores);
    assert!(hasher.peak_concurrency() >= 1);
    assert!(hasher.peak_concurrency() <= hasher.limit(), "peak {}", hasher.peak_concurrency());
});
