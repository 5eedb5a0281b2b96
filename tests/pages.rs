//! What every page shares: the layout, accessibility basics, security and cache headers, static
//! assets, and friendly error pages.

mod common;

use common::TestApp;
use rocket::http::{ContentType, Status};

async fn signed_in_pages(app: &TestApp) -> Vec<(String, common::Page)> {
    let alice = app.user_with_platform("alice").await;
    let id = alice.platform_id("alice main").await;
    let mut pages = Vec::new();
    for uri in [
        "/dashboard".to_string(),
        "/platforms".to_string(),
        "/platforms/new".to_string(),
        format!("/platforms/{id}/edit"),
        "/nope".to_string(),
    ] {
        let page = alice.get(&uri).await;
        pages.push((uri, page));
    }
    let visitor = app.browser();
    for uri in ["/", "/login", "/register"] {
        pages.push((uri.to_string(), visitor.get(uri).await));
    }
    pages
}

backend_test!(async fn every_page_shares_the_accessible_layout_without_inline_code(app) {
    for (uri, page) in signed_in_pages(&app).await {
        let body = &page.body;
        assert!(body.starts_with("<!doctype html>"), "{uri}");
        assert!(body.contains("<html lang=\"en\">"), "{uri}");
        assert!(body.contains("name=\"viewport\""), "{uri}");
        assert!(body.contains("<meta name=\"csrf-token\" content=\""), "{uri}");
        assert!(body.contains("href=\"/static/app.css?v="), "{uri}");
        assert!(body.contains("href=\"#main\""), "{uri}: skip link");
        assert!(!body.contains("style="), "{uri}: inline style");
        assert!(!body.contains("<style"), "{uri}: inline style");
        assert_eq!(body.matches("<script").count(), 1, "{uri}: one external script only");
        assert!(body.contains("<script src=\"/static/app.js?v="), "{uri}");
        assert!(!body.contains(" onclick="), "{uri}: inline handler");
        // Every input that is not hidden has a label.
        for id in body.split("<input id=\"").skip(1).map(|rest| rest.split('"').next().unwrap()) {
            assert!(body.contains(&format!("<label for=\"{id}\"")), "{uri}: no label for {id}");
        }
    }
});

backend_test!(async fn the_layout_shows_user_active_platform_and_switcher(app) {
    let alice = app.user_with_platform("alice").await;
    alice.add_platform("Second", "https://pixelfed.social", "alice").await;
    let page = alice.get("/platforms").await;
    assert!(page.body.contains("site-header__user\">alice<"));
    assert!(page.body.contains("data-active-name>alice main<"));
    assert_eq!(page.body.matches("data-switch-form").count(), 2);
    assert!(page.body.contains("aria-current=\"true\""));
});

backend_test!(async fn responses_carry_security_headers_and_pages_are_not_cached(app) {
    let alice = app.user_with_platform("alice").await;
    for uri in ["/", "/login", "/dashboard", "/api/platforms", "/nope"] {
        let page = alice.get(uri).await;
        let csp = page.header("Content-Security-Policy").unwrap_or_default();
        for directive in ["default-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"] {
            assert!(csp.contains(directive), "{uri}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(page.header("X-Content-Type-Options"), Some("nosniff"), "{uri}");
        assert_eq!(page.header("Referrer-Policy"), Some("same-origin"), "{uri}");
        assert_eq!(page.header("Cache-Control"), Some("no-store"), "{uri}");
    }
    // Debug profile, no TLS: no HSTS unless secure cookies are on.
    assert!(alice.get("/").await.header("Strict-Transport-Security").is_none());
});

backend_test!(async fn cookies_are_http_only_and_same_site_lax(app) {
    let visitor = app.browser();
    let page = visitor.register("alice").await;
    let session = page
        .set_cookies
        .iter()
        .find(|c| c.starts_with("tether_session="))
        .expect("session cookie");
    assert!(session.contains("HttpOnly"));
    assert!(session.contains("SameSite=Lax"));
    assert!(session.contains("Path=/"));
    assert!(!session.contains("Secure"));
});

backend_test!(async fn secure_cookies_setting_marks_cookies_secure_and_sends_hsts(app)
    config = |f: rocket::figment::Figment| f.merge(("secure_cookies", true)), {
    let visitor = app.browser();
    let page = visitor.register("alice").await;
    let session = page.set_cookies.iter().find(|c| c.starts_with("tether_session=")).unwrap();
    assert!(session.contains("Secure"));
    assert!(page.header("Strict-Transport-Security").is_some());
});

backend_test!(async fn static_assets_are_served_with_cache_headers(app) {
    let visitor = app.browser();
    let home = visitor.get("/").await;
    let start = home.body.find("/static/app.css?v=").unwrap();
    let versioned = home.body[start..].split('"').next().unwrap().to_string();
    let css = visitor.get(&versioned).await;
    assert_eq!(css.status, Status::Ok);
    assert_eq!(css.header("Content-Type"), Some("text/css; charset=utf-8"));
    assert_eq!(css.header("Cache-Control"), Some("public, max-age=31536000, immutable"));
    let js = visitor.get("/static/app.js").await;
    assert_eq!(js.status, Status::Ok);
    assert_eq!(js.header("Cache-Control"), Some("public, max-age=300"));
    assert_eq!(visitor.get("/static/../Cargo.toml").await.status, Status::NotFound);
    assert_eq!(visitor.get("/static/secret_key").await.status, Status::NotFound);
});

backend_test!(async fn unknown_pages_get_a_friendly_404(app) {
    let page = app.browser().get("/no/such/page").await;
    assert_eq!(page.status, Status::NotFound);
    assert_eq!(page.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert!(page.body.contains("Page not found."));
    assert!(page.body.contains("href=\"/dashboard\""));
});

backend_test!(async fn oversized_forms_get_413_pages_not_dropped_connections(app) {
    let visitor = app.browser();
    let token = visitor.csrf_from("/login").await;
    let body = format!("username=alice&csrf_token={token}&password={}", "x".repeat(70 * 1024));
    let page = visitor.post_raw("/login", ContentType::Form, &body).await;
    assert_eq!(page.status, Status::PayloadTooLarge);
    assert!(page.body.contains("too large"));
});

backend_test!(async fn garbage_form_bodies_are_4xx_not_500(app) {
    let alice = app.user_with_platform("alice").await;
    let token = alice.csrf_from("/dashboard").await;
    for body in ["%%%", "name=%ZZ", "&&&&=", "csrf_token=a&csrf_token=b", &format!("csrf_token={token}&is_active=maybe")] {
        let page = alice.post_raw("/platforms", ContentType::Form, body).await;
        assert!(page.status.code >= 400 && page.status.code < 500, "{body}: {}", page.status);
    }
    let wrong_type = alice.post_raw("/platforms", ContentType::JSON, "{}").await;
    assert!(wrong_type.status.code >= 400 && wrong_type.status.code < 500);
});

backend_test!(async fn error_pages_keep_the_signed_in_header_without_touching_the_database(app) {
    let alice = app.user_with_platform("alice").await;
    let page = alice.get("/platforms/424242/edit").await;
    assert_eq!(page.status, Status::NotFound);
    assert!(page.body.contains("site-header__user\">alice<"), "{}", page.body);
    // Its logout form works: the token is the session's.
    let token = page.csrf_token();
    alice.post_form("/logout", &[("csrf_token", &token)]).await.assert_redirect("/login");
    let anonymous = app.browser().get("/nope").await;
    assert!(anonymous.body.contains("href=\"/login\""));
});
