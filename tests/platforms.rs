//! Connecting, editing, switching and removing platforms, and who may touch which.

mod common;

use common::TestApp;
use rocket::http::Status;
use tether::crypto::TokenCipher;
use tether::db::Value;

async fn stored_token(app: &TestApp, id: i64) -> (Vec<u8>, String) {
    let mut db = app.db().await;
    let (user_id, blob): (i64, Vec<u8>) = tether::db::query(
        "SELECT user_id, access_token_encrypted FROM platform_connections WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut db)
    .await
    .expect("platform row");
    let cipher = app.client.rocket().state::<TokenCipher>().expect("cipher");
    let plain = cipher.decrypt(&blob, user_id).expect("decrypts");
    (blob, plain)
}

/// The token the stub most recently accepted (the one `add_platform` just used).
fn last_token(stub: &common::stub_instance::StubInstance) -> String {
    stub.accepted_tokens()
        .last()
        .expect("a token was accepted")
        .access_token
        .clone()
}

backend_test!(async fn first_platform_becomes_default_and_active(app) {
    let bob = app.browser();
    bob.register("bob").await;
    app.pixelfed.accept_token("abc123", "bob");
    let pixelfed = app.origin_of("https://pixelfed.social");
    // Typed the way people type: an upper-case scheme, a trailing slash, a full handle.
    let typed = format!("{}/", pixelfed.replacen("http", "HTTP", 1));
    let page = bob
        .submit("/platforms/new", "/platforms", &[
            ("name", "Main"),
            ("platform_type", "pixelfed"),
            ("instance_url", &typed),
            ("username", &format!("@bob@{}", app.pixelfed.host_port())),
            ("access_token", "abc123"),
        ])
        .await;
    page.assert_redirect("/dashboard");
    let dashboard = bob.follow(&page).await;
    assert_eq!(dashboard.status, Status::Ok);
    assert!(dashboard.body.contains("Connected Main."));
    assert!(dashboard.body.contains(&pixelfed), "{}", dashboard.body);
    assert!(dashboard.body.contains("Pixelfed"));
    let list = bob.get("/api/platforms").await.json();
    let platform = &list["platforms"][0];
    assert_eq!(platform["is_default"], true);
    assert_eq!(platform["is_active"], true);
    assert_eq!(platform["username"], "bob");
    assert_eq!(platform["instance_url"], pixelfed.as_str());
    assert_eq!(list["active_platform_id"], platform["id"]);
    let second = bob.add_platform("Second", "https://mastodon.social", "bob").await;
    let list = bob.get("/api/platforms").await.json();
    assert_eq!(list["platforms"][1]["is_default"], false);
    assert_ne!(list["active_platform_id"], second);
});

backend_test!(async fn access_tokens_are_encrypted_at_rest_and_never_shown(app) {
    let alice = app.user_with_platform("alice").await;
    let id = alice.platform_id("alice main").await;
    let token = last_token(&app.mastodon);
    let (blob, plain) = stored_token(&app, id).await;
    assert_eq!(plain, token);
    assert!(!String::from_utf8_lossy(&blob).contains(&token));
    assert!(!String::from_utf8_lossy(&blob).contains("tok-alice"));
    for uri in ["/dashboard", "/platforms", &format!("/platforms/{id}/edit"), "/api/platforms"] {
        let page = alice.get(uri).await;
        assert!(!page.body.contains(&token), "{uri} shows the token");
        assert!(!page.body.contains("access_token_encrypted"), "{uri}");
    }
});

backend_test!(async fn invalid_platform_form_is_422_with_errors_by_fields_and_values_kept(app) {
    let alice = app.browser();
    alice.register("alice").await;
    let page = alice
        .submit("/platforms/new", "/platforms", &[
            ("name", ""),
            ("platform_type", "friendica"),
            ("instance_url", "http://insecure.example"),
            ("username", "not valid!"),
            ("access_token", "secret token with spaces"),
        ])
        .await;
    assert_eq!(page.status, Status::UnprocessableEntity);
    for field in ["name", "platform_type", "instance_url", "username", "access_token"] {
        assert!(page.body.contains(&format!("id=\"{field}-error\"")), "no error for {field}: {}", page.body);
    }
    assert!(page.body.contains("Use an https:// address"));
    assert!(page.body.contains("value=\"http://insecure.example\""));
    assert!(page.body.contains("value=\"not valid!\""));
    assert!(!page.body.contains("secret token with spaces"), "token echoed back");
    assert_eq!(app.count("SELECT COUNT(*) FROM platform_connections", vec![]).await, 0);

    let long_name = "n".repeat(101);
    let too_long = alice
        .submit("/platforms/new", "/platforms", &[
            ("name", long_name.as_str()),
            ("platform_type", "mastodon"),
            ("instance_url", "https://mastodon.social"),
            ("username", "alice"),
            ("access_token", "t0k3n"),
        ])
        .await;
    assert_eq!(too_long.status, Status::UnprocessableEntity);
    assert!(too_long.body.contains("Name must be at most 100 characters."));

    let missing = alice.submit("/platforms/new", "/platforms", &[]).await;
    assert_eq!(missing.status, Status::UnprocessableEntity);
    assert!(missing.body.contains("Paste the access token for this account."));
});

backend_test!(async fn duplicate_name_or_account_is_refused_per_user(app) {
    let alice = app.user_with_platform("alice").await;
    // The same instance typed differently, the same account in other case, a valid token.
    let typed = format!("{}/", app.origin_of("https://mastodon.social").replacen("http", "HTTP", 1));
    let token = alice.token_for("https://mastodon.social", "alice");
    let page = alice
        .submit("/platforms/new", "/platforms", &[
            ("name", "alice main"),
            ("platform_type", "mastodon"),
            ("instance_url", &typed),
            ("username", "ALICE"),
            ("access_token", &token),
        ])
        .await;
    assert_eq!(page.status, Status::UnprocessableEntity);
    assert!(page.body.contains("You already have a platform with this name."));
    assert!(page.body.contains("This account on this instance is already connected."));
    // Another user may use the same name and account.
    app.user_with_platform("bob").await.add_platform("alice main", "https://mastodon.social", "alice").await;
});

backend_test!(async fn editing_with_a_blank_token_keeps_the_old_one(app) {
    let alice = app.user_with_platform("alice").await;
    let id = alice.platform_id("alice main").await;
    let old_token = last_token(&app.mastodon);
    let mastodon = app.origin_of("https://mastodon.social");
    app.mastodon.accept_token("brand-new-token", "alice");
    let edit = alice.get(&format!("/platforms/{id}/edit")).await;
    assert_eq!(edit.status, Status::Ok);
    assert!(edit.body.contains("value=\"alice main\""));
    let page = alice
        .submit(&format!("/platforms/{id}/edit"), &format!("/platforms/{id}"), &[
            ("name", "Renamed"),
            ("platform_type", "mastodon"),
            ("instance_url", &mastodon),
            ("username", "alice"),
            ("access_token", ""),
            ("is_active", "true"),
        ])
        .await;
    page.assert_redirect("/platforms");
    assert!(alice.follow(&page).await.body.contains("Saved Renamed."));
    assert_eq!(stored_token(&app, id).await.1, old_token);
    alice
        .submit(&format!("/platforms/{id}/edit"), &format!("/platforms/{id}"), &[
            ("name", "Renamed"),
            ("platform_type", "mastodon"),
            ("instance_url", &mastodon),
            ("username", "alice"),
            ("access_token", "brand-new-token"),
            ("is_active", "true"),
        ])
        .await
        .assert_redirect("/platforms");
    assert_eq!(stored_token(&app, id).await.1, "brand-new-token");
});

backend_test!(async fn deactivating_the_active_platform_makes_the_dashboard_fall_back(app) {
    let alice = app.user_with_platform("alice").await;
    let first = alice.platform_id("alice main").await;
    let second = alice.add_platform("Second", "https://pixelfed.social", "alice").await;
    let page = alice
        .submit(&format!("/platforms/{first}/edit"), &format!("/platforms/{first}"), &[
            ("name", "alice main"),
            ("platform_type", "mastodon"),
            ("instance_url", &app.origin_of("https://mastodon.social")),
            ("username", "alice"),
        ])
        .await;
    page.assert_redirect("/platforms");
    let platforms = alice.get("/platforms").await;
    assert!(platforms.body.contains("deactivated"));
    let dashboard = alice.get("/dashboard").await;
    assert_eq!(dashboard.status, Status::Ok);
    assert!(dashboard.body.contains("<span data-field=\"name\">Second</span>"));
    // The default moved to the remaining active platform.
    let list = alice.get("/api/platforms").await.json();
    let second_json = list["platforms"].as_array().unwrap().iter().find(|p| p["id"] == second).unwrap().clone();
    assert_eq!(second_json["is_default"], true);
    assert_eq!(list["active_platform_id"], second);
    // Switching to the deactivated one is refused with a message, not an error page.
    let token = alice.csrf_from("/platforms").await;
    let refused = alice.post_form(&format!("/platforms/{first}/switch"), &[("csrf_token", &token)]).await;
    refused.assert_redirect("/platforms");
    assert!(alice.follow(&refused).await.body.contains("is deactivated"));
});

backend_test!(async fn make_default_moves_the_single_default(app) {
    let alice = app.user_with_platform("alice").await;
    let second = alice.add_platform("Second", "https://pixelfed.social", "alice").await;
    let token = alice.csrf_from("/platforms").await;
    let page = alice.post_form(&format!("/platforms/{second}/default"), &[("csrf_token", &token)]).await;
    page.assert_redirect("/platforms");
    assert_eq!(app.count("SELECT COUNT(*) FROM platform_connections WHERE is_default", vec![]).await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM platform_connections WHERE is_default AND id = $1", vec![Value::Int(second)]).await,
        1
    );
});

backend_test!(async fn deleting_a_platform_removes_it_and_promotes_a_new_default(app) {
    let alice = app.user_with_platform("alice").await;
    let first = alice.platform_id("alice main").await;
    let second = alice.add_platform("Second", "https://pixelfed.social", "alice").await;
    let token = alice.csrf_from("/platforms").await;
    let page = alice.post_form(&format!("/platforms/{first}/delete"), &[("csrf_token", &token)]).await;
    page.assert_redirect("/platforms");
    assert!(alice.follow(&page).await.body.contains("Removed alice main."));
    let list = alice.get("/api/platforms").await.json();
    assert_eq!(list["platforms"].as_array().unwrap().len(), 1);
    assert_eq!(list["platforms"][0]["is_default"], true);
    assert_eq!(list["active_platform_id"], second);
    let page = alice.post_form(&format!("/platforms/{second}/delete"), &[("csrf_token", &token)]).await;
    page.assert_redirect("/platforms");
    assert!(alice.follow(&page).await.body.contains("No platforms yet"));
    alice.get("/dashboard").await.assert_redirect("/platforms/new");
});

backend_test!(async fn another_users_or_a_missing_platform_is_404_and_unchanged(app) {
    let alice = app.user_with_platform("alice").await;
    let alices = alice.platform_id("alice main").await;
    let mallory = app.user_with_platform("mallory").await;
    let token = mallory.csrf_from("/dashboard").await;
    let fields = [
        ("name", "pwned"),
        ("platform_type", "mastodon"),
        ("instance_url", "https://evil.example"),
        ("username", "mallory"),
        ("access_token", "x"),
        ("is_active", "true"),
        ("csrf_token", token.as_str()),
    ];
    for id in [alices.to_string(), "999999".to_string()] {
        assert_eq!(mallory.get(&format!("/platforms/{id}/edit")).await.status, Status::NotFound);
        for action in ["", "/default", "/delete", "/switch"] {
            let page = mallory.post_form(&format!("/platforms/{id}{action}"), &fields).await;
            assert_eq!(page.status, Status::NotFound, "/platforms/{id}{action}");
            assert!(page.body.contains("Platform not found."), "{}", page.body);
        }
        let api = mallory
            .post_json("/api/switch_platform", &serde_json::json!({ "platform_id": id.parse::<i64>().unwrap() }), Some(&token))
            .await;
        assert_eq!(api.status, Status::NotFound);
        assert_eq!(api.json()["error"], "Platform not found.");
    }
    for uri in ["/platforms/abc/edit", "/platforms/1.5/edit", "/platforms/-/delete"] {
        let page = if uri.ends_with("edit") { mallory.get(uri).await } else { mallory.post_form(uri, &fields).await };
        assert_eq!(page.status, Status::NotFound, "{uri}");
    }
    let list = alice.get("/api/platforms").await.json();
    assert_eq!(list["platforms"][0]["name"], "alice main");
    assert_eq!(list["platforms"][0]["is_default"], true);
    assert_eq!(app.count("SELECT COUNT(*) FROM platform_connections", vec![]).await, 2);
});

backend_test!(async fn no_js_switch_changes_the_dashboard(app) {
    let alice = app.user_with_platform("alice").await;
    let second = alice.add_platform("Second", "https://pixelfed.social", "alice").await;
    let token = alice.csrf_from("/dashboard").await;
    let page = alice.post_form(&format!("/platforms/{second}/switch"), &[("csrf_token", &token)]).await;
    page.assert_redirect("/dashboard");
    let dashboard = alice.follow(&page).await;
    assert!(dashboard.body.contains("Now working with Second."));
    assert!(dashboard.body.contains("<span data-field=\"name\">Second</span>"));
});

backend_test!(async fn user_typed_text_is_escaped_everywhere(app) {
    let alice = app.browser();
    alice.register("alice").await;
    let name = "<script>alert(1)</script>";
    let page = alice
        .submit("/platforms/new", "/platforms", &[
            ("name", name),
            ("platform_type", "mastodon"),
            ("instance_url", &app.origin_of("https://mastodon.social")),
            ("username", "alice"),
            ("access_token", &alice.token_for("https://mastodon.social", "alice")),
        ])
        .await;
    page.assert_redirect("/dashboard");
    let dashboard = alice.follow(&page).await;
    assert!(!dashboard.body.contains(name), "raw markup in page");
    assert!(dashboard.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(
        dashboard.body.contains("Connected &lt;script&gt;alert(1)&lt;/script&gt;."),
        "flash text escaped"
    );
    assert!(!alice.get("/platforms").await.body.contains(name));
});
