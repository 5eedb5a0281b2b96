//! Logging in and out, and registration.

use rocket::http::{Cookie, CookieJar};
use rocket::response::Redirect;
use rocket::{get, post, uri};
use serde::Serialize;

use super::{dashboard, platforms, safe_next, Reply};
use crate::config::Runtime;
use crate::db::Connection;
use crate::error::{Error, Result};
use crate::flash::{Flash, FlashKind};
use crate::forms::{self, CsrfOnly, FieldErrors, LoginForm, RegisterForm};
use crate::guards::{app_cookie, App, CsrfForm, CurrentUser, Layout, CSRF_COOKIE, SESSION_COOKIE};
use crate::models::SessionRecord;
use crate::services::accounts::{self, LoginOutcome, NewAccount, MSG_INVALID_LOGIN, MSG_THROTTLED};
use crate::services::sessions::SessionToken;

#[derive(Serialize)]
struct LoginPage<'a> {
    username: &'a str,
    next: Option<&'a str>,
    registration_open: bool,
}

#[derive(Serialize, Default)]
struct RegisterPage<'a> {
    username: &'a str,
    email: &'a str,
    errors: FieldErrors,
}

#[get("/login?<next>")]
pub fn login_page(
    user: Option<&CurrentUser>,
    layout: Layout<'_>,
    runtime: &rocket::State<Runtime>,
    next: Option<&str>,
) -> Reply {
    if user.is_some() {
        return Reply::Redirect(Redirect::to(safe_next(next)));
    }
    let page = LoginPage {
        username: "",
        next,
        registration_open: runtime.settings.allow_registration,
    };
    Reply::Page(layout.render("login", "Log in", page))
}

#[post("/login", data = "<form>")]
pub async fn login(
    layout: Layout<'_>,
    conn: Connection<'_>,
    app: App<'_>,
    cookies: &CookieJar<'_>,
    form: CsrfForm<LoginForm>,
) -> Result<Reply> {
    let form = form.0;
    let username = form.username.trim();
    let again = |layout: Layout<'_>, message: &str| {
        let page = LoginPage {
            username,
            next: form.next.as_deref(),
            registration_open: app.runtime.settings.allow_registration,
        };
        layout
            .with_flash(FlashKind::Error, message)
            .render("login", "Log in", page)
    };
    if form.password.len() > forms::PASSWORD_MAX_BYTES {
        let message = format!(
            "Password must be at most {} bytes long.",
            forms::PASSWORD_MAX_BYTES
        );
        return Ok(Reply::Invalid(again(layout, &message)));
    }
    let previous = cookies
        .get_private(SESSION_COOKIE)
        .map(|c| c.value().to_string());
    match accounts::login(&conn, &app, username, &form.password, previous.as_deref()).await? {
        LoginOutcome::SignedIn(token) => {
            set_session_cookie(cookies, app.runtime, token);
            Ok(Reply::Redirect(Redirect::to(safe_next(
                form.next.as_deref(),
            ))))
        }
        LoginOutcome::Invalid => Ok(Reply::Unauthorized(again(layout, MSG_INVALID_LOGIN))),
        LoginOutcome::Throttled => Ok(Reply::TooManyRequests(again(layout, MSG_THROTTLED))),
    }
}

/// The browser's new session cookie; the anonymous CSRF cookie is no longer needed (the session
/// row carries the token from now on).
fn set_session_cookie(cookies: &CookieJar<'_>, runtime: &Runtime, token: SessionToken) {
    cookies.remove_private(Cookie::from(CSRF_COOKIE));
    let mut cookie = app_cookie(SESSION_COOKIE, token.0, runtime.secure_cookies);
    cookie.set_max_age(rocket::time::Duration::seconds(
        runtime.settings.absolute_timeout(),
    ));
    cookies.add_private(cookie);
}

#[post("/logout", data = "<_form>")]
pub async fn logout(
    user: &CurrentUser,
    conn: Connection<'_>,
    cookies: &CookieJar<'_>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<Flash<Redirect>> {
    let mut db = conn.get().await?;
    SessionRecord::delete(&mut *db, user.session_id).await?;
    Ok(signed_out(cookies))
}

/// After this browser's session row is gone: drop its cookie and say so on the login page.
pub fn signed_out(cookies: &CookieJar<'_>) -> Flash<Redirect> {
    cookies.remove_private(Cookie::from(SESSION_COOKIE));
    Flash::success(
        Redirect::to(uri!(login_page(next = _))),
        "You have been logged out.",
    )
}

/// Request guard: registration is switched on. When it is off the register routes do not exist
/// (404), and this runs before the form is read, so nothing else answers first.
pub struct RegistrationOpen;

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for RegistrationOpen {
    type Error = crate::error::Failure;

    async fn from_request(
        req: &'r rocket::Request<'_>,
    ) -> rocket::request::Outcome<Self, Self::Error> {
        let open = req
            .rocket()
            .state::<Runtime>()
            .is_some_and(|r| r.settings.allow_registration);
        if open {
            rocket::request::Outcome::Success(RegistrationOpen)
        } else {
            let failure = crate::error::Failure::record(req, &Error::NotFound("Page"));
            rocket::request::Outcome::Error((failure.status, failure))
        }
    }
}

#[get("/register")]
pub fn register_page(
    _open: RegistrationOpen,
    user: Option<&CurrentUser>,
    layout: Layout<'_>,
) -> Result<Reply> {
    if user.is_some() {
        return Ok(Reply::Redirect(Redirect::to(uri!(dashboard::show))));
    }
    Ok(Reply::Page(layout.render(
        "register",
        "Create an account",
        RegisterPage::default(),
    )))
}

/// Creates the account (the first account of an empty database is its admin) and signs it in.
#[post("/register", data = "<form>")]
pub async fn register(
    _open: RegistrationOpen,
    layout: Layout<'_>,
    conn: Connection<'_>,
    app: App<'_>,
    cookies: &CookieJar<'_>,
    form: CsrfForm<RegisterForm>,
) -> Result<Reply> {
    let form = form.0;
    let username = form.username.trim();
    let email = form.email.trim();
    let account = NewAccount {
        username,
        email,
        password: &form.password,
        role: None,
    };
    let user = match accounts::create(&conn, app.hasher, account, form.validate()).await? {
        Ok(user) => user,
        Err(errors) => {
            let page = RegisterPage {
                username,
                email,
                errors,
            };
            return Ok(Reply::invalid(
                layout,
                "register",
                "Create an account",
                page,
            ));
        }
    };
    rocket::info!("registered user {} ({})", user.username, user.role);
    let previous = cookies
        .get_private(SESSION_COOKIE)
        .map(|c| c.value().to_string());
    let mut db = conn.get().await?;
    let token = crate::services::sessions::start(
        &mut db,
        &app.runtime.settings,
        &app.client,
        user.id,
        previous.as_deref(),
    )
    .await?;
    set_session_cookie(cookies, app.runtime, token);
    // A new account has nothing to show yet: straight to connecting one, not through the
    // dashboard's "no active platform" recovery.
    Ok(Reply::Flash(Flash::success(
        Redirect::to(uri!(platforms::new(None::<&str>))),
        format!(
            "Welcome, {}! Connect your first account to start.",
            user.username
        ),
    )))
}
