//! End to end in headless Chromium (WebDriver through fantoccini, `tests/common/webdriver.rs`):
//! tether in its release profile on a free loopback port with a temp SQLite database, the stub
//! instance allow-listed, and axe-core (`tests/e2e/node_modules`, from
//! `npm ci --prefix tests/e2e`) injected into every page a person passes through.
//!
//! - A new person's whole journey with JavaScript: register, connect through the instance's
//!   sign-in, add a second account with the token form (a mistake first), switch in place and in a
//!   second window, audit and publish a description, remove both accounts, change the password,
//!   sign out and press Back. Every page: zero axe-core violations at
//!   `wcag2a wcag2aa wcag21a wcag21aa`, no console errors, and from 375 to 1920 px no sideways
//!   scrolling, no cut or overlapping text, the signed-in header on one line at 1280 px.
//! - The same journey with JavaScript turned off in Chromium, through the form fallbacks.
//! - An administrator's journey through the admin pages and the audit trail.
//! - The switcher and the audit's text areas from the keyboard alone.
//!
//! The main pages are saved as screenshots: under `target/tmp/screenshots/`, or into
//! `docs/screenshots/` with `TETHER_UPDATE_SCREENSHOTS=1`. Without Chromium, chromedriver or
//! axe-core each test prints what is missing and passes, unless `TETHER_REQUIRE_BROWSER` is set.

#[path = "common/serve.rs"]
mod serve;
#[path = "common/stub_instance.rs"]
mod stub_instance;
#[path = "common/webdriver.rs"]
mod webdriver;

use stub_instance::{Flavour, NewPost, StubInstance};
use webdriver::{Process, Script, Tab};

const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a longer passphrase, freshly changed";
const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";
const SPACE: &str = "\u{E00D}";

/// tether, chromedriver and the stub, alive as long as this is.
struct World {
    _tether: Process,
    driver: webdriver::Driver,
    stub: StubInstance,
    dir: tempfile::TempDir,
    base: String,
}

impl World {
    async fn start() -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let stub = StubInstance::builder(Flavour::Mastodon43)
            .with_account("wanda", "Wanda Stub")
            .start()
            .await;
        let host = stub.host_port();
        let path = dir.path().to_path_buf();
        let (tether, base) =
            tokio::task::spawn_blocking(move || webdriver::start_tether(&path, &host))
                .await
                .expect("tether starts");
        let driver = webdriver::start_chromedriver();
        World {
            _tether: tether,
            driver,
            stub,
            dir,
            base,
        }
    }

    /// A new browser with its own profile (so its own cookies).
    async fn browser(&self, name: &str, script: Script) -> Tab {
        let profile = self.dir.path().join(format!("profile-{name}"));
        std::fs::create_dir_all(&profile).expect("profile dir");
        Tab::new(
            webdriver::session(&self.driver, &profile, script).await,
            &self.base,
            script,
        )
    }
}

/// The world for one test, or `None` (after saying what is missing) without a browser here.
async fn world() -> Option<World> {
    if !webdriver::can_run("e2e", true) {
        return None;
    }
    Some(World::start().await)
}

/// A token the stub accepts for otto, whose avatar the stub serves itself (a made-up account's
/// avatar is on a host that does not resolve here).
fn otto_token(stub: &StubInstance) -> String {
    let token = format!(
        "tok-otto-{}",
        serve::random_key().replace(['/', '+', '='], "")
    );
    let otto = stub_instance::StubAccount {
        avatar: None,
        ..stub.account_for("otto")
    };
    stub.accept_token_for(&token, otto, stub_instance::PRE_ISSUED_SCOPES);
    token
}

/// The accounts in the layout's switcher, as (platform id, name), and the active one's name.
async fn switcher(tab: &Tab) -> (Vec<(String, String)>, String) {
    let mut options = Vec::new();
    for form in tab
        .client
        .find_all(fantoccini::Locator::Css(".switcher form[data-switch-form]"))
        .await
        .expect("switcher forms")
    {
        let id = form
            .attr("data-platform-id")
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let name = form
            .find(fantoccini::Locator::Css(".switcher__name"))
            .await
            .expect("option name")
            .prop("textContent")
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        options.push((id, name.trim().to_string()));
    }
    let active = tab.text_of("[data-active-name]").await;
    (options, active)
}

async fn register(tab: &mut Tab, username: &str) {
    tab.goto("/").await;
    tab.check("landing").await;
    tab.screenshot("landing").await;
    tab.goto("/login").await;
    tab.check("login").await;
    tab.goto("/").await;
    tab.click("main a[href='/register']").await;
    tab.wait_for_path("/register").await;
    tab.check("register").await;
    tab.fill("#username", username).await;
    tab.fill("#email", &format!("{username}@example.com")).await;
    tab.fill("#password", PASSWORD).await;
    tab.fill("#password_confirm", PASSWORD).await;
    tab.click("form[action='/register'] button[type='submit']")
        .await;
    tab.wait_for_path("/platforms/new").await;
    let notice = tab.text_of("main .flash").await;
    assert!(
        notice.contains(&format!("Welcome, {username}!")),
        "{notice}"
    );
    assert_eq!(
        tab.attr("main .flash", "role").await.as_deref(),
        Some("status")
    );
    tab.wait_for_text("Connect with your instance").await;
    // The suite exists to run tether as a deployment does: in Rocket's release profile, where
    // the session cookie is Secure (the debug profile leaves it plain for http://localhost).
    let session = tab
        .client
        .get_named_cookie("tether_session")
        .await
        .expect("a session cookie after registering");
    assert_eq!(
        session.secure(),
        Some(true),
        "tether runs in its release profile"
    );
}

/// Types a token form for otto with `token` and sends it.
async fn token_form(tab: &Tab, instance: &str, token: &str) {
    if tab.attr("details.token-form", "open").await.is_none() {
        tab.click("details.token-form summary").await;
    }
    tab.fill("#name", "Otto at the lake").await;
    tab.fill("#instance_url", instance).await;
    tab.fill("#username", "otto").await;
    tab.fill("#access_token", token).await;
    tab.click("form[action='/platforms'] button[type='submit']")
        .await;
}

/// The audit scan from its button until the bar is full and the list shows what it found.
async fn scan(tab: &mut Tab) {
    tab.goto("/audit").await;
    tab.click("form[action='/audit/scan'] button").await;
    let reload = tab.script == Script::Disabled;
    tab.wait_until("the scan finishes", reload, || async {
        tab.text_of("[data-scan-message]")
            .await
            .contains("finished")
            && tab.exists(".media-item").await
    })
    .await;
    let value = tab.attr("[data-scan-bar]", "value").await;
    let max = tab.attr("[data-scan-bar]", "max").await;
    assert!(
        value.is_some() && value == max,
        "the bar is full: {value:?} of {max:?}"
    );
    assert!(tab.attr("[data-scan-bar]", "hidden").await.is_none());
}

/// Writes a description for the first image without one, saves it, publishes it, and waits for
/// the page to confirm it (by itself with JavaScript, on reload without).
async fn describe_and_publish(tab: &mut Tab, world: &World, text: &str) {
    tab.goto("/audit?filter=missing").await;
    let item = tab
        .attr(".media-item", "data-media-item")
        .await
        .expect("an image without a description");
    let area = format!("#description-{item}");
    tab.fill(&area, text).await;
    // The live count is the script's: proof that this browser runs it, or does not.
    let count = tab.text_of(&format!("#count-{item}")).await;
    match tab.script {
        Script::Enabled => assert!(
            count.starts_with(&format!("{} of ", text.chars().count())),
            "{count}"
        ),
        Script::Disabled => assert!(count.starts_with("Up to "), "{count}"),
    }
    tab.click(&format!("#item-{item} button[name='action'][value='save']"))
        .await;
    tab.wait_for_text("Draft saved").await;
    tab.check("audit with a draft").await;
    // The draft is still there on the "drafts" view, as typed.
    tab.goto("/audit?filter=drafted").await;
    assert_eq!(tab.value_of(&area).await, text);
    tab.click(&format!(
        "#item-{item} button[name='action'][value='publish']"
    ))
    .await;
    let reload = tab.script == Script::Disabled;
    if reload {
        // Without JavaScript the page does not follow the item out of "drafts"; the person
        // looks at what has been published.
        tab.goto("/audit?filter=published").await;
    }
    tab.wait_until("the description is published", reload, || async {
        tab.exists(&format!("#item-{item}.media-item--published"))
            .await
    })
    .await;
    let line = tab
        .text_of(&format!("#item-{item} [data-status-line]"))
        .await;
    assert!(line.contains("Published"), "{line}");
    let on_instance = world
        .stub
        .posts_of("wanda")
        .iter()
        .flat_map(|p| p.media.clone())
        .any(|m| m.description.as_deref() == Some(text));
    assert!(on_instance, "the instance has the description");
}

/// The person's whole way through tether, with or without JavaScript.
async fn journey(world: &World, script: Script) {
    let js = script == Script::Enabled;
    let name = if js { "wanda" } else { "nojs" };
    let mut tab = world.browser(name, script).await;
    register(&mut tab, name).await;
    tab.check("setup").await;
    if js {
        tab.screenshot("connect").await;
    }

    // Connect through the instance's own sign-in: out to the stub and back.
    tab.fill("#instance", &world.stub.origin()).await;
    tab.click("form[action='/platforms/connect'] button[type='submit']")
        .await;
    tab.wait_for_path("/dashboard").await;
    tab.wait_for_text("Connected @wanda@").await;
    assert!(world.stub.count("/oauth/authorize") >= 1);
    assert_eq!(tab.text_of(".account-card__name").await, "Wanda Stub");
    tab.check("dashboard").await;

    // A second account with the token form: wrong first.
    tab.goto("/platforms/new").await;
    token_form(&tab, &world.stub.origin(), "tok-never-issued").await;
    tab.wait_for_text("did not accept the access token").await;
    // Announced as it appears, and tied to its field.
    assert_eq!(
        tab.attr("main .flash", "role").await.as_deref(),
        Some("alert")
    );
    assert_eq!(
        tab.attr("#access_token", "aria-invalid").await.as_deref(),
        Some("true")
    );
    let described = tab
        .attr("#access_token", "aria-describedby")
        .await
        .unwrap_or_default();
    assert!(described.contains("access_token-error"), "{described}");
    assert!(tab
        .text_of("#access_token-error")
        .await
        .contains("did not accept"));
    assert_eq!(tab.value_of("#name").await, "Otto at the lake");
    assert_eq!(tab.value_of("#instance_url").await, world.stub.origin());
    assert_eq!(tab.value_of("#username").await, "otto");
    assert_eq!(tab.value_of("#access_token").await, "", "the token is kept");
    tab.check_page("token form with a mistake", true).await;
    token_form(&tab, &world.stub.origin(), &otto_token(&world.stub)).await;
    tab.wait_for_text("Otto at the lake").await;
    assert!(!tab.text().await.contains("did not accept"));
    tab.goto("/dashboard").await;
    let (options, active) = switcher(&tab).await;
    assert_eq!(options.len(), 2, "{options:?}");
    let other = options
        .iter()
        .find(|(_, n)| *n != active)
        .cloned()
        .expect("another account");

    // Switch with the layout's switcher.
    if js {
        tab.execute("window.tetherStayed = true; return true;")
            .await;
    }
    tab.click(".switcher summary").await;
    tab.click(&format!(
        ".switcher form[data-platform-id='{}'] button",
        other.0
    ))
    .await;
    tab.wait_until("the header names the new account", false, || async {
        tab.text_of("[data-active-name]").await == other.1
    })
    .await;
    tab.wait_until("the card names the new account", false, || async {
        tab.text_of("#active-heading").await.contains(&other.1)
    })
    .await;
    if js {
        assert_eq!(
            tab.execute("return window.tetherStayed === true;").await,
            serde_json::json!(true),
            "the page updated in place"
        );
        tab.wait_for_text(&format!("Now working with {}.", other.1))
            .await;
    }
    assert_eq!(tab.text_of(".account-card__name").await, "Otto");
    tab.client.refresh().await.expect("reload");
    assert_eq!(tab.text_of("[data-active-name]").await, other.1);
    assert_eq!(tab.text_of(".account-card__name").await, "Otto");

    // Switch back in a second window; the first sees it on its next navigation.
    let first = tab.client.window().await.expect("this window");
    let second = tab.client.new_window(false).await.expect("a window");
    tab.client
        .switch_to_window(second.handle)
        .await
        .expect("to the second");
    tab.goto("/dashboard").await;
    tab.click(".switcher summary").await;
    tab.click(&format!(
        ".switcher form[data-platform-id='{}'] button",
        options
            .iter()
            .find(|(id, _)| *id != other.0)
            .expect("first")
            .0
    ))
    .await;
    tab.wait_until("the second window switched", false, || async {
        tab.text_of("[data-active-name]").await == active
    })
    .await;
    tab.client.close_window().await.expect("close the second");
    tab.client
        .switch_to_window(first)
        .await
        .expect("to the first");
    assert_eq!(tab.text_of("[data-active-name]").await, other.1);
    tab.click(".site-nav a[href='/dashboard']").await;
    tab.wait_until("the first window follows", false, || async {
        tab.text_of("[data-active-name]").await == active
    })
    .await;

    // The audit: scan, describe, save, publish.
    world.stub.add_post(
        "wanda",
        NewPost::text("Morning at the lake, mist over the water.")
            .image(None)
            .image(Some("A heron standing in shallow water")),
    );
    world.stub.add_image_posts("wanda", 4);
    scan(&mut tab).await;
    tab.check("audit").await;
    if js {
        tab.screenshot("audit").await;
    }
    let text = format!("Mist over a still lake at dawn ({name}).");
    describe_and_publish(&mut tab, world, &text).await;
    tab.goto("/dashboard").await;
    tab.wait_for_text("recent images have no description").await;
    if js {
        tab.screenshot("dashboard").await;
    }

    tab.goto("/platforms").await;
    tab.check("platforms").await;
    let edit = tab
        .attr(&format!("a[href='/platforms/{}/edit']", other.0), "href")
        .await
        .expect("the edit link");
    tab.goto(&edit).await;
    tab.check("edit platform").await;

    // Remove the active account: the other takes over. Then the other: back to setup.
    tab.goto("/platforms").await;
    tab.click_and_confirm(&format!(
        "button[aria-label='Remove {}']",
        tab.text_of("[data-active-name]").await
    ))
    .await;
    tab.wait_for_text("Removed").await;
    tab.goto("/dashboard").await;
    assert_eq!(tab.text_of("[data-active-name]").await, other.1);
    assert_eq!(tab.text_of(".account-card__name").await, "Otto");
    tab.goto("/platforms").await;
    tab.click_and_confirm(&format!("button[aria-label='Remove {}']", other.1))
        .await;
    tab.wait_for_text("Removed").await;
    tab.goto("/dashboard").await;
    tab.wait_for_path("/platforms/new").await;
    assert!(!tab.exists("[data-active-name]").await);
    tab.check("setup again").await;

    // The account page: the sessions, then a new password.
    tab.click(".site-nav a[href='/account']").await;
    tab.wait_for_path("/account").await;
    tab.wait_for_text("this session").await;
    tab.check("account").await;
    tab.fill("#current_password", PASSWORD).await;
    tab.fill("#new_password", NEW_PASSWORD).await;
    tab.fill("#new_password_confirm", NEW_PASSWORD).await;
    tab.click("form[action='/account/password'] button[type='submit']")
        .await;
    tab.wait_for_text("Your password has been changed").await;
    assert!(tab.text().await.contains("this session"));
    tab.check("account after the change").await;

    // Sign out; Back must not show anything of the signed-in pages.
    tab.click(".site-header form[action='/logout'] button")
        .await;
    tab.wait_until("signed out", false, || async {
        !tab.exists(".site-header form[action='/logout']").await
    })
    .await;
    tab.client.back().await.expect("back");
    tab.wait_until("Back shows the sign-in page", false, || async {
        tab.path().await == "/login"
    })
    .await;
    let text = tab.text().await;
    for signed_in in [
        "Log out",
        "Where you are signed in",
        "Change password",
        name,
    ] {
        assert!(
            !text.contains(signed_in),
            "after Back: \"{signed_in}\" in\n{text}"
        );
    }
    // The new password is the one that works.
    tab.fill("#username", name).await;
    tab.fill("#password", NEW_PASSWORD).await;
    tab.click("form[action^='/login'] button[type='submit']")
        .await;
    tab.wait_until("signed in again", false, || async {
        tab.exists(".site-header form[action='/logout']").await
    })
    .await;
    tab.goto("/no-such-page").await;
    tab.check_page("not found", true).await;
    tab.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_person_goes_from_register_to_sign_out_with_javascript() {
    let Some(world) = world().await else {
        return;
    };
    journey(&world, Script::Enabled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_journey_works_with_javascript_turned_off() {
    let Some(world) = world().await else {
        return;
    };
    journey(&world, Script::Disabled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_walks_the_admin_pages_and_the_audit_trail() {
    let Some(world) = world().await else {
        return;
    };
    let mut tab = world.browser("admin", Script::Enabled).await;
    // The first account on a new tether is its administrator.
    register(&mut tab, "ada").await;
    tab.click(".site-nav a[href='/admin/users']").await;
    tab.wait_for_path("/admin/users").await;
    tab.check("admin users").await;
    tab.screenshot("admin-users").await;

    tab.click("main a[href='/admin/users/new']").await;
    tab.wait_for_path("/admin/users/new").await;
    tab.check("admin new user").await;
    tab.fill("#username", "bea").await;
    tab.fill("#email", "bea@example.com").await;
    tab.fill("#password", "short").await;
    tab.click("form[action='/admin/users'] button[type='submit']")
        .await;
    tab.wait_until("the short password is refused", false, || async {
        tab.exists("#password-error").await
    })
    .await;
    assert_eq!(tab.value_of("#username").await, "bea");
    assert_eq!(tab.value_of("#email").await, "bea@example.com");
    assert_eq!(tab.value_of("#password").await, "");
    tab.check_page("admin new user with a mistake", true).await;
    tab.fill("#password", PASSWORD).await;
    tab.click("form[action='/admin/users'] button[type='submit']")
        .await;
    tab.wait_for_path("/admin/users").await;
    tab.wait_for_text("bea@example.com").await;

    tab.fill("#q", "bea").await;
    tab.click("form[role='search'] button").await;
    tab.wait_until("the search finds bea alone", false, || async {
        tab.text().await.contains("1 user(s) matching")
    })
    .await;
    tab.check("admin search").await;
    // Each action's button gives way to its opposite.
    for (action, opposite) in [
        ("promote", "demote"),
        ("demote", "promote"),
        ("deactivate", "activate"),
        ("activate", "deactivate"),
    ] {
        tab.click(&format!("form[action$='/{action}'] button"))
            .await;
        tab.wait_until(&format!("after {action}"), false, || async {
            tab.exists(&format!("form[action$='/{opposite}'] button"))
                .await
        })
        .await;
        // Still the same search: bea's row alone.
        assert_eq!(tab.path_and_query().await, "/admin/users?q=bea");
    }
    tab.click("form[action$='/end-sessions'] button").await;
    tab.wait_for_text("Ended").await;
    tab.check("admin users after actions").await;

    tab.click("main a[href='/admin/audit']").await;
    tab.wait_for_path("/admin/audit").await;
    let trail = tab.text().await;
    for action in ["promote", "demote", "deactivate", "activate", "create"] {
        assert!(
            trail.to_lowercase().contains(action),
            "{action} in the trail:\n{trail}"
        );
    }
    tab.check("audit trail").await;
    tab.screenshot("admin-audit").await;
    tab.finish().await;

    // Someone who is not an administrator gets the 403 page, which passes too.
    let mut bea = world.browser("bea", Script::Enabled).await;
    bea.goto("/login").await;
    bea.fill("#username", "bea").await;
    bea.fill("#password", PASSWORD).await;
    bea.click("form[action^='/login'] button[type='submit']")
        .await;
    bea.wait_for_path("/platforms/new").await;
    bea.goto("/admin/users").await;
    bea.wait_for_text("Only administrators can open this page.")
        .await;
    assert!(!bea.text().await.contains("bea@example.com"));
    bea.check_page("forbidden", true).await;
    bea.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switcher_and_the_audit_text_areas_work_from_the_keyboard_alone() {
    let Some(world) = world().await else {
        return;
    };
    let mut tab = world.browser("keys", Script::Enabled).await;
    register(&mut tab, "kim").await;
    tab.fill("#instance", &world.stub.origin()).await;
    tab.click("form[action='/platforms/connect'] button[type='submit']")
        .await;
    tab.wait_for_path("/dashboard").await;
    tab.goto("/platforms/new").await;
    token_form(&tab, &world.stub.origin(), &otto_token(&world.stub)).await;
    tab.goto("/dashboard").await;
    let (options, active) = switcher(&tab).await;
    let other = options
        .iter()
        .find(|(_, n)| *n != active)
        .cloned()
        .expect("two accounts");

    // From the top of the page, Tab until the switcher has focus, with a visible ring.
    tab_to(&tab, ".switcher summary", 20).await;
    assert_focus_visible(&tab).await;
    press(&tab, ENTER).await;
    assert!(
        tab.attr(".switcher", "open").await.is_some(),
        "Enter opens it"
    );
    tab_to(
        &tab,
        &format!(".switcher form[data-platform-id='{}'] button", other.0),
        5,
    )
    .await;
    assert_focus_visible(&tab).await;
    press(&tab, ENTER).await;
    tab.wait_until("the keyboard switched", false, || async {
        tab.text_of("[data-active-name]").await == other.1
    })
    .await;
    let focused = tab
        .execute("return document.activeElement.matches('.switcher summary');")
        .await;
    assert_eq!(
        focused,
        serde_json::json!(true),
        "focus back on the switcher"
    );

    // Back to the account with posts, by keyboard too: Space on the summary, then Tab.
    press(&tab, SPACE).await;
    tab_to(
        &tab,
        &format!(
            ".switcher form[data-platform-id='{}'] button",
            options
                .iter()
                .find(|(id, _)| *id != other.0)
                .expect("first")
                .0
        ),
        5,
    )
    .await;
    press(&tab, ENTER).await;
    tab.wait_until("switched back", false, || async {
        tab.text_of("[data-active-name]").await == active
    })
    .await;

    world.stub.add_image_posts("wanda", 2);
    scan(&mut tab).await;
    let item = tab
        .attr(".media-item", "data-media-item")
        .await
        .expect("an image");
    let area = format!("#description-{item}");
    tab_to(&tab, &area, 40).await;
    assert_focus_visible(&tab).await;
    press(&tab, "A gull on a post, typed").await;
    let count = tab.text_of(&format!("#count-{item}")).await;
    assert!(count.starts_with("23 of "), "the count follows: {count}");
    tab_to(
        &tab,
        &format!("#item-{item} button[name='action'][value='save']"),
        3,
    )
    .await;
    assert_focus_visible(&tab).await;
    press(&tab, ENTER).await;
    tab.wait_for_text("Draft saved").await;
    assert_eq!(tab.value_of(&area).await, "A gull on a post, typed");
    tab.finish().await;
}

/// Sends keys to whatever has focus, as a keyboard does.
async fn press(tab: &Tab, keys: &str) {
    tab.client
        .active_element()
        .await
        .expect("something has focus")
        .send_keys(keys)
        .await
        .expect("keys");
}

/// Presses Tab until `css` has focus, at most `limit` times.
async fn tab_to(tab: &Tab, css: &str, limit: usize) {
    let test = format!(
        "return document.activeElement && document.activeElement.matches({});",
        serde_json::json!(css)
    );
    for _ in 0..limit {
        press(tab, TAB).await;
        if tab.execute(&test).await == serde_json::json!(true) {
            return;
        }
    }
    let at = tab
        .execute(
            "return document.activeElement ? document.activeElement.outerHTML.slice(0, 200) : '';",
        )
        .await;
    panic!("{limit} presses of Tab did not reach {css}; focus is on {at}");
}

async fn assert_focus_visible(tab: &Tab) {
    let ring = tab
        .execute(
            "const el = document.activeElement;
             const s = getComputedStyle(el);
             return el.matches(':focus-visible') && s.outlineStyle !== 'none' &&
               parseFloat(s.outlineWidth) >= 2;",
        )
        .await;
    assert_eq!(ring, serde_json::json!(true), "a visible focus ring");
}
