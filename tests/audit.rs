//! The alt-text audit end to end through the local client and the stub instances: a scan queued
//! by the page and run by the worker (never by the request), paging for both flavours, re-scans,
//! rate limits, a refused token, drafts that survive the instance failing, publishing that keeps
//! the post whole and is confirmed by a read-back, old Mastodon refused, one worker per account
//! across two apps, and a post's HTML shown as text.

mod common;

use std::time::Duration;

use common::stub_instance::{Fault, NewPost, StubInstance};
use common::{Browser, Page, TestApp, PIXELFED_SOCIAL};
use rocket::http::Status;
use serde_json::Value as Json;
use tether::db::{Timestamp, Value};
use tether::jobs::media_audit::{run_once, Pass};
use tether::jobs::Deps;

/// The background loop stays out of the way: every pass in these tests is run by the test.
fn quiet(f: rocket::figment::Figment) -> rocket::figment::Figment {
    f.merge(("audit_poll_interval", 3600))
}

fn statuses_path(stub: &StubInstance, username: &str) -> String {
    format!(
        "/api/v1/accounts/{}/statuses",
        stub.account_for(username).id
    )
}

async fn pass(app: &TestApp) -> Pass {
    let deps = Deps::of(app.client.rocket()).expect("app state");
    run_once(&deps).await.expect("worker pass")
}

async fn request_scan(browser: &Browser<'_>) -> Page {
    let page = browser.submit("/audit", "/audit/scan", &[]).await;
    assert_eq!(page.status, Status::SeeOther, "{}", page.body);
    page
}

/// A scan requested from the page and run by one worker pass.
async fn scan_now(app: &TestApp, browser: &Browser<'_>) {
    request_scan(browser).await;
    pass(app).await;
}

/// Signed in as `username` with one Pixelfed account of the same name.
async fn pixelfed_user<'a>(app: &'a TestApp, username: &str) -> Browser<'a> {
    let browser = app.browser();
    browser.register(username).await;
    let token = browser.token_for(PIXELFED_SOCIAL, username);
    let origin = app.origin_of(PIXELFED_SOCIAL);
    let page = browser
        .submit(
            "/platforms/new",
            "/platforms",
            &[
                ("name", "pics"),
                ("platform_type", "pixelfed"),
                ("instance_url", &origin),
                ("username", username),
                ("access_token", &token),
            ],
        )
        .await;
    assert_eq!(page.status, Status::SeeOther, "{}", page.body);
    browser
}

async fn items(app: &TestApp) -> Vec<(String, Option<String>, String, Option<String>)> {
    let mut db = app.db().await;
    tether::db::query(
        "SELECT media_id, description, state, draft FROM media_items ORDER BY posted_at DESC, position",
    )
    .fetch_all(&mut db)
    .await
    .expect("media items")
}

async fn item_id(app: &TestApp, media_id: &str) -> i64 {
    let mut db = app.db().await;
    let (id,): (i64,) = tether::db::query("SELECT id FROM media_items WHERE media_id = $1")
        .bind(media_id)
        .fetch_one(&mut db)
        .await
        .expect("item");
    id
}

async fn describe(browser: &Browser<'_>, id: i64, text: &str, action: &str) -> Page {
    browser
        .submit(
            "/audit",
            &format!("/audit/items/{id}"),
            &[("description", text), ("action", action)],
        )
        .await
}

backend_test!(async fn a_scan_is_queued_by_the_page_and_run_by_the_worker_following_link_pages(app) config = quiet, {
    let alice = app.user_with_platform("alice").await;
    app.mastodon.add_image_posts("alice", 44);
    app.mastodon.add_post(
        "alice",
        NewPost::text("mixed").gifv(Some("a cat")).video(None).audio(None),
    );
    app.mastodon.add_post("alice", NewPost::text("a boost").image(None).reblog());
    app.mastodon.add_post("alice", NewPost::text("no media"));
    let path = statuses_path(&app.mastodon, "alice");

    request_scan(&alice).await;
    assert_eq!(app.mastodon.count(&path), 0, "the request itself calls no instance");
    let queued = alice.get("/audit").await;
    assert!(queued.body.contains("Scan queued"), "{}", queued.body);

    let done = pass(&app).await;
    assert_eq!(done.accounts, 1);
    let requests = app.mastodon.requests_to(&path);
    assert_eq!(requests.len(), 2, "40, then the rest via Link");
    assert_eq!(requests[0].query_param("only_media"), Some("true"));
    assert_eq!(requests[0].query_param("exclude_reblogs"), Some("true"));
    assert_eq!(requests[0].query_param("limit"), Some("40"));
    assert!(requests[1].query_param("max_id").is_some(), "followed the Link header");

    let stored = items(&app).await;
    assert_eq!(stored.len(), 44 + 2, "images, the gifv and the video; no audio, no boost");
    assert!(stored.iter().any(|(_, d, _, _)| d.as_deref() == Some("a cat")));
    let page = alice.get("/audit").await;
    assert!(page.body.contains("Scanned 45 of at most 400 posts"), "{}", page.body);
    assert!(page.body.contains("finished"), "a finished scan says when");
    assert!(page.body.contains("<progress"), "the progress bar is there");
    let dashboard = alice.get("/dashboard").await;
    assert!(
        dashboard.body.contains(r#"data-count="missing">45</span> of <span data-count="total">46</span>"#),
        "{}",
        dashboard.body
    );
});

backend_test!(async fn pixelfed_scans_page_by_max_id_and_drop_the_repeated_post(app) config = quiet, {
    let bob = pixelfed_user(&app, "bob").await;
    let ids = app.pixelfed.add_image_posts("bob", 45);
    let path = statuses_path(&app.pixelfed, "bob");

    scan_now(&app, &bob).await;

    let requests = app.pixelfed.requests_to(&path);
    assert!(requests.len() >= 2, "paged: {}", requests.len());
    assert_eq!(requests[1].query_param("max_id"), Some(ids[39].as_str()));
    let stored = items(&app).await;
    assert_eq!(stored.len(), 45, "each post once, although Pixelfed repeats the max_id post");
    let page = bob.get("/audit").await;
    assert!(page.body.contains("Scanned 45 of at most 400 posts"), "{}", page.body);
});

backend_test!(async fn a_rescan_takes_in_descriptions_added_elsewhere_and_drops_deleted_posts(app) config = quiet, {
    let alice = app.user_with_platform("alice").await;
    let ids = app.mastodon.add_image_posts("alice", 3);
    scan_now(&app, &alice).await;
    assert_eq!(items(&app).await.len(), 3);

    let kept = app.mastodon.post(&ids[0]).expect("post");
    app.mastodon
        .set_media_description(&kept.media[0].id, Some("described on the instance"));
    app.mastodon.delete_post(&ids[1]);
    scan_now(&app, &alice).await;

    let stored = items(&app).await;
    assert_eq!(stored.len(), 2, "the deleted post's image is gone: {stored:?}");
    let described = stored
        .iter()
        .find(|(m, _, _, _)| *m == kept.media[0].id)
        .expect("kept");
    assert_eq!(described.1.as_deref(), Some("described on the instance"));
});

backend_test!(async fn a_scan_reads_at_most_audit_max_posts(app) config = |f| quiet(f).merge(("audit_max_posts", 10)), {
    let alice = app.user_with_platform("alice").await;
    app.mastodon.add_image_posts("alice", 30);
    scan_now(&app, &alice).await;
    assert_eq!(items(&app).await.len(), 10);
    let page = alice.get("/audit").await;
    assert!(page.body.contains("Scanned 10 of at most 10 posts"), "{}", page.body);
});

backend_test!(async fn a_rate_limited_scan_waits_until_the_reset_then_carries_on(app) config = quiet, {
    let alice = app.user_with_platform("alice").await;
    app.mastodon.add_image_posts("alice", 5);
    let path = statuses_path(&app.mastodon, "alice");
    app.mastodon
        .fail_next(&path, Fault::RateLimited { reset_in_secs: 2 });

    scan_now(&app, &alice).await;
    let waiting = alice.get("/audit").await;
    assert!(waiting.body.contains("rate limit until"), "{}", waiting.body);
    let progress = alice.get("/api/audit").await.json();
    assert_eq!(progress["scan"]["state"], "waiting", "{progress}");
    assert_eq!(items(&app).await.len(), 0);

    let early = pass(&app).await;
    assert_eq!(early.accounts, 0, "not due before the reset");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    pass(&app).await;
    assert_eq!(items(&app).await.len(), 5);
    let progress = alice.get("/api/audit").await.json();
    assert_eq!(progress["scan"]["state"], "finished", "{progress}");
});

backend_test!(async fn a_refused_token_stops_the_scan_and_marks_the_platform(app) config = quiet, {
    let alice = app.user_with_platform("alice").await;
    app.mastodon.add_image_posts("alice", 5);
    let path = statuses_path(&app.mastodon, "alice");
    app.mastodon.set_fault(&path, Fault::Status(401));

    scan_now(&app, &alice).await;

    let page = alice.get("/audit").await;
    assert!(page.body.contains("no longer accepts tether"), "{}", page.body);
    let list = alice.get("/api/platforms").await.json();
    assert_eq!(list["platforms"][0]["needs_reconnect"], true, "{list}");
    app.mastodon.clear_faults();
    let again = pass(&app).await;
    assert_eq!(again.accounts, 0, "nothing runs for an account that needs reconnecting");
});

backend_test!(async fn a_posts_html_is_shown_as_text(app) config = quiet, {
    let alice = app.user_with_platform("alice").await;
    app.mastodon.add_post(
        "alice",
        NewPost::text("x")
            .html("<p>look <script>alert('owned')</script>&lt;b&gt;bold&lt;/b&gt; <img src=x onerror=alert(2)></p>")
            .image(None),
    );
    scan_now(&app, &alice).await;
    let page = alice.get("/audit").await;
    assert!(page.body.contains("look &lt;b&gt;bold&lt;/b&gt;"), "{}", page.body);
    assert!(!page.body.contains("alert('owned')"), "script content dropped");
    assert!(!page.body.contains("<script>alert"));
    assert!(!page.body.contains("onerror"));
    assert!(!page.body.contains("<b>bold"));
});

backend_test!(async fn a_draft_survives_the_instance_failing_and_publishes_on_retry(app) config = quiet, {
    let alice = app.user_with_platform("alice").await;
    let ids = app.mastodon.add_image_posts("alice", 1);
    scan_now(&app, &alice).await;
    let media = app.mastodon.post(&ids[0]).expect("post").media[0].id.clone();
    let id = item_id(&app, &media).await;

    let saved = describe(&alice, id, "A red bicycle against a wall", "save").await;
    assert_eq!(saved.status, Status::SeeOther, "{}", saved.body);
    assert_eq!(items(&app).await[0].2, "draft");
    assert_eq!(app.mastodon.edit_count(), 0, "saving sends nothing");

    app.mastodon.set_fault("/api/v1/statuses/", Fault::Status(503));
    let queued = describe(&alice, id, "A red bicycle against a wall", "publish").await;
    assert_eq!(queued.status, Status::SeeOther);
    pass(&app).await;
    let failed = alice.get("/audit?filter=drafted").await;
    assert!(failed.body.contains("Publishing failed"), "{}", failed.body);
    assert!(failed.body.contains("A red bicycle against a wall</textarea>"), "the draft is kept");
    assert!(failed.body.contains("Retry"));

    app.mastodon.clear_faults();
    let retried = alice
        .submit("/audit", &format!("/audit/items/{id}/retry"), &[])
        .await;
    assert_eq!(retried.status, Status::SeeOther);
    let done = pass(&app).await;
    assert_eq!(done.published, 1, "{done:?}");
    let post = app.mastodon.post(&ids[0]).expect("post");
    assert_eq!(post.media[0].description.as_deref(), Some("A red bicycle against a wall"));
    assert_eq!(items(&app).await[0].2, "published");
});

backend_test!(async fn publishing_on_mastodon_keeps_the_whole_post_and_confirms(app) config = quiet, {
    let alice = app.user_with_platform("alice").await;
    let id = app.mastodon.add_post(
        "alice",
        NewPost::text("Our trip\n\nday one")
            .spoiler("holiday")
            .sensitive(true)
            .language("de")
            .image(Some("kept as it was"))
            .image(None)
            .image(None),
    );
    scan_now(&app, &alice).await;
    let before = app.mastodon.post(&id).expect("post");
    let second = item_id(&app, &before.media[1].id).await;
    let third = item_id(&app, &before.media[2].id).await;

    describe(&alice, second, "A beach at dawn", "publish").await;
    describe(&alice, third, "Two people waving", "publish").await;
    let done = pass(&app).await;
    assert_eq!(done.published, 2, "{done:?}");

    let after = app.mastodon.post(&id).expect("the post is still there");
    assert_eq!(after.text, before.text, "text kept");
    assert_eq!(after.spoiler_text, "holiday");
    assert!(after.sensitive);
    assert_eq!(after.language.as_deref(), Some("de"));
    let ids: Vec<_> = after.media.iter().map(|m| m.id.clone()).collect();
    let before_ids: Vec<_> = before.media.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids, before_ids, "every attachment, in order");
    let descriptions: Vec<_> = after.media.iter().map(|m| m.description.clone()).collect();
    assert_eq!(
        descriptions,
        vec![
            Some("kept as it was".to_string()),
            Some("A beach at dawn".to_string()),
            Some("Two people waving".to_string())
        ]
    );
    assert_eq!(app.mastodon.edit_count(), 1, "one edit for both descriptions of the post");
    assert_eq!(app.mastodon.count(&format!("/api/v1/statuses/{id}/source")), 1);
    let page = alice.get("/audit?filter=published").await;
    assert!(page.body.contains("Published"), "{}", page.body);
    assert!(page.body.contains("people who boosted"), "the page warns about notifications");
});

backend_test!(async fn publishing_on_pixelfed_updates_the_media_and_keeps_to_ten_a_minute(app) config = quiet, {
    let bob = pixelfed_user(&app, "bob").await;
    let ids = app.pixelfed.add_image_posts("bob", 12);
    scan_now(&app, &bob).await;
    for (n, post) in ids.iter().enumerate() {
        let media = app.pixelfed.post(post).expect("post").media[0].id.clone();
        let id = item_id(&app, &media).await;
        let saved = describe(&bob, id, &format!("Photo number {n}"), "save").await;
        assert_eq!(saved.status, Status::SeeOther);
    }
    let all = bob.submit("/audit", "/audit/publish-all", &[]).await;
    assert_eq!(all.status, Status::SeeOther);

    let done = pass(&app).await;
    assert_eq!(done.published, 10, "{done:?}");
    let edits = app
        .pixelfed
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.starts_with("/api/v1/statuses/"))
        .count();
    assert_eq!(edits, 0, "no status edit on Pixelfed");
    let updates = app
        .pixelfed
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path.starts_with("/api/v1/media/"))
        .count();
    assert_eq!(updates, 10, "Pixelfed's ten a minute, kept by tether");
    let page = bob.get("/audit?filter=drafted").await;
    assert!(page.body.contains("rate limit until"), "{}", page.body);
    let described = app
        .pixelfed
        .posts_of("bob")
        .iter()
        .filter(|p| p.media[0].description.is_some())
        .count();
    assert_eq!(described, 10);
});

backend_test!(async fn an_old_mastodon_is_told_it_cannot_and_nothing_is_sent(app) config = quiet, {
    let alice = app.user_with_platform("alice").await;
    let ids = app.mastodon.add_image_posts("alice", 2);
    scan_now(&app, &alice).await;
    app.exec("UPDATE media_audits SET instance_version = '4.0.2'", vec![]).await;
    let first = item_id(&app, &app.mastodon.post(&ids[0]).expect("post").media[0].id).await;

    let refused = describe(&alice, first, "A lighthouse", "publish").await;
    assert_eq!(refused.status, Status::SeeOther);
    let page = alice.follow(&refused).await;
    assert!(page.body.contains("cannot edit the descriptions"), "{}", page.body);
    assert_eq!(items(&app).await.iter().filter(|i| i.2 == "draft").count(), 1, "kept as a draft");

    // Queued before the version was known: the worker refuses too, without a call.
    let second = item_id(&app, &app.mastodon.post(&ids[1]).expect("post").media[0].id).await;
    app.exec(
        "UPDATE media_items SET draft = 'x', state = 'queued', queued_at = $1 WHERE id = $2",
        vec![Value::from(Timestamp::now()), Value::from(second)],
    )
    .await;
    app.exec("UPDATE media_audits SET due_at = scan_finished_at", vec![]).await;
    pass(&app).await;
    assert_eq!(app.mastodon.edit_count(), 0);
    assert_eq!(
        app.mastodon
            .requests()
            .iter()
            .filter(|r| r.method == "PUT")
            .count(),
        0
    );
});

backend_test!(async fn two_apps_on_one_database_scan_an_account_once(app) config = quiet, {
    let alice = app.user_with_platform("alice").await;
    app.mastodon.add_image_posts("alice", 50);
    let path = statuses_path(&app.mastodon, "alice");
    app.mastodon
        .set_fault(&path, Fault::Slow(Duration::from_millis(300)));
    request_scan(&alice).await;

    let figment = app.client.rocket().figment().clone();
    let other = rocket::local::asynchronous::Client::untracked(tether::rocket_from(figment))
        .await
        .expect("second app");
    let first = Deps::of(app.client.rocket()).expect("state");
    let second = Deps::of(other.rocket()).expect("state");
    let (a, b) = tokio::join!(run_once(&first), run_once(&second));
    let (a, b) = (a.expect("pass"), b.expect("pass"));
    assert_eq!(a.accounts + b.accounts, 1, "{a:?} {b:?}");
    assert_eq!(app.mastodon.count(&path), 2, "each page fetched once");
    assert_eq!(items(&app).await.len(), 50);
});

backend_test!(async fn a_description_over_the_limit_comes_back_with_what_was_typed(app) config = quiet, {
    let alice = app.user_with_platform("alice").await;
    app.mastodon.add_image_posts("alice", 1);
    scan_now(&app, &alice).await;
    let id = items(&app).await[0].0.clone();
    let id = item_id(&app, &id).await;
    let long = "é".repeat(1501);
    let page = describe(&alice, id, &long, "save").await;
    assert_eq!(page.status, Status::UnprocessableEntity);
    assert!(page.body.contains(&format!("{long}</textarea>")), "typed text kept");
    assert!(page.body.contains("at most 1500"), "{}", page.body);
    assert!(page.body.contains("aria-invalid=\"true\""));
    assert_eq!(items(&app).await[0].2, "none", "nothing stored");
});

backend_test!(async fn another_users_image_is_not_found(app) config = quiet, {
    let alice = app.user_with_platform("alice").await;
    app.mastodon.add_image_posts("alice", 1);
    scan_now(&app, &alice).await;
    let id = item_id(&app, &items(&app).await[0].0).await;

    let mallory = app.user_with_platform("mallory").await;
    let page = describe(&mallory, id, "mine now", "publish").await;
    assert_eq!(page.status, Status::NotFound, "{}", page.body);
    let retry = mallory
        .submit("/audit", &format!("/audit/items/{id}/retry"), &[])
        .await;
    assert_eq!(retry.status, Status::NotFound);
    assert_eq!(items(&app).await[0].3, None, "alice's item untouched");
});

backend_test!(async fn the_progress_endpoint_needs_a_session_and_reports_the_scan(app) config = quiet, {
    let anonymous = app.browser();
    let page = anonymous.get("/api/audit").await;
    assert_eq!(page.status, Status::Unauthorized);
    let body: Json = page.json();
    assert_eq!(body["success"], false);

    let alice = app.user_with_platform("alice").await;
    let idle = alice.get("/api/audit").await.json();
    assert_eq!(idle["scan"]["state"], "idle");
    request_scan(&alice).await;
    let queued = alice.get("/api/audit").await.json();
    assert_eq!(queued["scan"]["state"], "queued");
    assert_eq!(queued["scan"]["in_progress"], true);
    let again = request_scan(&alice).await;
    let page = alice.follow(&again).await;
    assert!(page.body.contains("already under way"), "{}", page.body);
});

backend_test!(async fn a_rate_limited_publish_waits_and_then_publishes(app) config = quiet, {
    let alice = app.user_with_platform("alice").await;
    let ids = app.mastodon.add_image_posts("alice", 1);
    scan_now(&app, &alice).await;
    let media = app.mastodon.post(&ids[0]).expect("post").media[0].id.clone();
    let id = item_id(&app, &media).await;
    app.mastodon.fail_next(
        &format!("/api/v1/statuses/{}", ids[0]),
        Fault::RateLimited { reset_in_secs: 1 },
    );
    describe(&alice, id, "A harbour at night", "publish").await;

    pass(&app).await;
    let progress = alice.get("/api/audit").await.json();
    assert_eq!(progress["items"][0]["state"], "waiting", "{progress}");
    let page = alice.get("/audit?filter=drafted").await;
    assert!(page.body.contains("Waiting for the instance&#x27;s rate limit until")
        || page.body.contains("Waiting for the instance's rate limit until"), "{}", page.body);
    assert_eq!(app.mastodon.edit_count(), 0);

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let done = pass(&app).await;
    assert_eq!(done.published, 1, "{done:?}");
    assert_eq!(
        app.mastodon.post(&ids[0]).expect("post").media[0].description.as_deref(),
        Some("A harbour at night")
    );
});

backend_test!(async fn a_live_claim_keeps_other_workers_off_and_a_stale_one_runs_out(app) config = quiet, {
    let alice = app.user_with_platform("alice").await;
    app.mastodon.add_image_posts("alice", 2);
    request_scan(&alice).await;
    let later = Timestamp::now().plus_seconds(60);
    app.exec(
        "UPDATE media_audits SET claim_token = 'another-process', claimed_until = $1",
        vec![Value::from(later)],
    )
    .await;
    assert_eq!(pass(&app).await.accounts, 0, "claimed elsewhere");
    assert_eq!(items(&app).await.len(), 0);

    let past = Timestamp::now().minus_seconds(1);
    app.exec(
        "UPDATE media_audits SET claimed_until = $1",
        vec![Value::from(past)],
    )
    .await;
    assert_eq!(pass(&app).await.accounts, 1, "the crashed process's claim ran out");
    assert_eq!(items(&app).await.len(), 2);
    let left = app
        .count("SELECT COUNT(*) FROM media_audits WHERE claim_token IS NOT NULL", vec![])
        .await;
    assert_eq!(left, 0, "released after the work");
});

backend_test!(async fn a_source_answer_without_text_never_becomes_an_edit(app) config = quiet, {
    let alice = app.user_with_platform("alice").await;
    let ids = app.mastodon.add_image_posts("alice", 1);
    scan_now(&app, &alice).await;
    let id = item_id(&app, &app.mastodon.post(&ids[0]).expect("post").media[0].id).await;
    // 200 with `{"error": …}`: an answer that is not the post's source.
    app.mastodon
        .fail_next(&format!("/api/v1/statuses/{}/source", ids[0]), Fault::Status(200));
    describe(&alice, id, "A quiet street", "publish").await;
    pass(&app).await;
    assert_eq!(app.mastodon.edit_count(), 0, "nothing was sent");
    assert_eq!(app.mastodon.post(&ids[0]).expect("post").text, "Photo 1");
    assert_eq!(items(&app).await[0].2, "failed");
});

backend_test!(async fn a_published_description_removed_elsewhere_is_missing_again_after_a_rescan(app) config = quiet, {
    let alice = app.user_with_platform("alice").await;
    let ids = app.mastodon.add_image_posts("alice", 1);
    scan_now(&app, &alice).await;
    let media = app.mastodon.post(&ids[0]).expect("post").media[0].id.clone();
    let id = item_id(&app, &media).await;
    describe(&alice, id, "A kite over a field", "publish").await;
    pass(&app).await;
    assert_eq!(items(&app).await[0].2, "published");

    app.mastodon.set_media_description(&media, None);
    scan_now(&app, &alice).await;
    assert_eq!(items(&app).await[0].2, "none");
    let progress = alice.get("/api/audit").await.json();
    assert_eq!(progress["summary"]["missing"], 1, "{progress}");
});

backend_test!(async fn an_instance_that_answers_too_much_or_redirects_fails_the_scan_in_words(app) config = quiet, {
    let alice = app.user_with_platform("alice").await;
    app.mastodon.add_image_posts("alice", 2);
    let path = statuses_path(&app.mastodon, "alice");

    app.mastodon.fail_next(&path, Fault::HugeBody(3 * 1024 * 1024));
    scan_now(&app, &alice).await;
    let page = alice.get("/audit").await;
    assert_eq!(page.status, Status::Ok);
    assert!(page.body.contains("The scan stopped"), "{}", page.body);
    assert!(page.body.contains("too large"), "{}", page.body);

    app.mastodon
        .fail_next(&path, Fault::RedirectTo("http://169.254.169.254/latest/meta-data".into()));
    scan_now(&app, &alice).await;
    let page = alice.get("/audit").await;
    assert!(page.body.contains("redirected"), "{}", page.body);
    assert!(
        !app.mastodon.requests().iter().any(|r| r.path.contains("meta-data")),
        "the redirect was not followed"
    );

    app.mastodon.clear_faults();
    scan_now(&app, &alice).await;
    assert_eq!(items(&app).await.len(), 2, "a later scan works again");
});

backend_test!(async fn nonsense_in_the_audit_address_is_a_page_or_a_404_never_a_500(app) config = quiet, {
    let alice = app.user_with_platform("alice").await;
    for uri in [
        "/audit?filter=bogus",
        "/audit?page=abc",
        "/audit?page=-5",
        "/audit?page=9223372036854775807",
        "/audit?filter=missing&page=0",
    ] {
        let page = alice.get(uri).await;
        assert_eq!(page.status, Status::Ok, "{uri}");
    }
    for uri in ["/audit/items/abc", "/audit/items/99999999999999999999", "/audit/items/-1"] {
        let page = alice
            .submit("/audit", uri, &[("description", "kept?"), ("action", "save")])
            .await;
        assert_eq!(page.status, Status::NotFound, "{uri}: {}", page.body);
    }
    let odd = alice
        .submit("/audit", "/audit/items/1", &[("description", "x"), ("action", "explode")])
        .await;
    assert!(odd.status.code >= 400 && odd.status.code < 500, "{}", odd.status);
});

backend_test!(async fn the_counts_follow_each_images_state_on_the_dashboard_and_in_the_api(app) config = quiet, {
    let alice = app.user_with_platform("alice").await;
    let ids = app.mastodon.add_image_posts("alice", 5);
    scan_now(&app, &alice).await;
    let mut items_by_post = Vec::new();
    for post in &ids {
        let media = app.mastodon.post(post).expect("post").media[0].id.clone();
        items_by_post.push(item_id(&app, &media).await);
    }
    // One published, one queued (described only once it is published), one draft, two untouched.
    describe(&alice, items_by_post[0], "A lighthouse at dusk", "publish").await;
    pass(&app).await;
    describe(&alice, items_by_post[1], "Two gulls on a rail", "publish").await;
    describe(&alice, items_by_post[2], "Boats in a harbour", "save").await;

    let summary = alice.get("/api/audit").await.json()["summary"].clone();
    assert_eq!(
        (&summary["total"], &summary["missing"], &summary["drafted"], &summary["queued"], &summary["published"]),
        (&5.into(), &4.into(), &1.into(), &1.into(), &1.into()),
        "{summary}"
    );
    let dashboard = alice.get("/dashboard").await;
    for (count, n) in [("missing", 4), ("total", 5), ("drafted", 1), ("queued", 1), ("published", 1)] {
        let span = format!(r#"data-count="{count}">{n}<"#);
        assert!(dashboard.body.contains(&span), "{span} in {}", dashboard.body);
    }
});
