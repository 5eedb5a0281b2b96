use rocket::http::{Cookie, CookieJar};
use rocket::response::{Flash, Redirect};
use rocket::{get, post, State};
use serde::Serialize;

use super::{safe_next, Reply};
use crate::config::Runtime;
use crate::crypto::{random_token, token_hash, PasswordHasherPool};
use crate::db::{Connection, Timestamp};
use crate::error::{Error, Result};
use crate::forms::{self, CsrfOnly, FieldErrors, LoginForm, RegisterForm};
use crate::guards::{
    app_cookie, ClientInfo, CsrfForm, CurrentUser, Layout, CSRF_COOKIE, SESSION_COOKIE,
};
use crate::models::{NewSession, NewUser, SessionRecord, User};

pub const MSG_INVALID_LOGIN: &str = "Invalid username or password.";

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
    layout: Layout,
    runtime: &State<Runtime>,
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

/// Checks the password off the database connection (hashing is slow and needs none), then
/// starts a brand-new session: the token a browser had before login never becomes a session.
#[allow(clippy::too_many_arguments)]
#[post("/login", data = "<form>")]
pub async fn login(
    layout: Layout,
    conn: Connection<'_>,
    hasher: &State<PasswordHasherPool>,
    runtime: &State<Runtime>,
    client: ClientInfo,
    cookies: &CookieJar<'_>,
    form: CsrfForm<LoginForm>,
) -> Result<Reply> {
    let form = form.0;
    let username = form.username.trim();
    let rejected = |layout: Layout, status_422: bool, message: &str| {
        let page = LoginPage {
            username,
            next: form.next.as_deref(),
            registration_open: runtime.settings.allow_registration,
        };
        let template = layout
            .with_flash("error", message)
            .render("login", "Log in", page);
        if status_422 {
            Reply::Invalid(template)
        } else {
            Reply::Unauthorized(template)
        }
    };
    if form.password.len() > forms::PASSWORD_MAX_BYTES {
        let message = format!(
            "Password must be at most {} bytes long.",
            forms::PASSWORD_MAX_BYTES
        );
        return Ok(rejected(layout, true, &message));
    }

    let credentials = {
        let mut db = conn.get().await?;
        User::credentials(&mut *db, username).await?
    };
    conn.release().await;
    let verification = hasher
        .verify(
            &form.password,
            credentials.as_ref().map(|c| c.password_hash.as_str()),
        )
        .await?;
    let user_id = match credentials {
        Some(c) if verification.valid && c.is_active => c.id,
        _ => return Ok(rejected(layout, false, MSG_INVALID_LOGIN)),
    };

    let mut db = conn.get().await?;
    User::record_login(&mut *db, user_id, verification.upgraded_hash).await?;
    start_session(&mut db, runtime, &client, cookies, user_id).await?;
    Ok(Reply::Redirect(Redirect::to(safe_next(
        form.next.as_deref(),
    ))))
}

/// Replaces whatever session this browser had with a fresh one for `user_id`.
async fn start_session(
    db: &mut crate::db::DbConn,
    runtime: &Runtime,
    client: &ClientInfo,
    cookies: &CookieJar<'_>,
    user_id: i64,
) -> Result<()> {
    if let Some(old) = cookies.get_private(SESSION_COOKIE) {
        SessionRecord::delete_by_token_hash(db, &token_hash(old.value())).await?;
    }
    SessionRecord::delete_stale(db, runtime.settings.idle_timeout()).await?;
    let token = random_token();
    let csrf_token = random_token();
    SessionRecord::create(
        db,
        NewSession {
            user_id,
            token_hash: &token_hash(&token),
            csrf_token: &csrf_token,
            expires_at: Timestamp::now().plus_seconds(runtime.settings.absolute_timeout()),
            user_agent: client.user_agent.as_deref(),
            ip: client.ip.as_deref(),
        },
    )
    .await?;
    cookies.remove_private(Cookie::from(CSRF_COOKIE));
    let mut cookie = app_cookie(SESSION_COOKIE, token, runtime.secure_cookies);
    cookie.set_max_age(rocket::time::Duration::seconds(
        runtime.settings.absolute_timeout(),
    ));
    cookies.add_private(cookie);
    Ok(())
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
    cookies.remove_private(Cookie::from(SESSION_COOKIE));
    Ok(Flash::success(
        Redirect::to("/login"),
        "You have been logged out.",
    ))
}

fn registration_open(runtime: &Runtime) -> Result<()> {
    if runtime.settings.allow_registration {
        Ok(())
    } else {
        Err(Error::NotFound("Page"))
    }
}

#[get("/register")]
pub fn register_page(
    user: Option<&CurrentUser>,
    layout: Layout,
    runtime: &State<Runtime>,
) -> Result<Reply> {
    registration_open(runtime)?;
    if user.is_some() {
        return Ok(Reply::Redirect(Redirect::to("/dashboard")));
    }
    Ok(Reply::Page(layout.render(
        "register",
        "Create an account",
        RegisterPage::default(),
    )))
}

/// Creates the account (the first account of an empty database is its admin) and signs it in.
#[allow(clippy::too_many_arguments)]
#[post("/register", data = "<form>")]
pub async fn register(
    layout: Layout,
    conn: Connection<'_>,
    hasher: &State<PasswordHasherPool>,
    runtime: &State<Runtime>,
    client: ClientInfo,
    cookies: &CookieJar<'_>,
    form: CsrfForm<RegisterForm>,
) -> Result<Reply> {
    registration_open(runtime)?;
    let form = form.0;
    let username = form.username.trim();
    let email = form.email.trim();
    let mut errors = form.validate();
    {
        let mut db = conn.get().await?;
        if !errors.contains_key("username") && User::username_taken(&mut *db, username).await? {
            errors.insert("username", "That username is taken.".into());
        }
        if !errors.contains_key("email") && User::email_taken(&mut *db, email, None).await? {
            errors.insert("email", "An account with this email already exists.".into());
        }
    }
    if !errors.is_empty() {
        let page = RegisterPage {
            username,
            email,
            errors,
        };
        let layout = layout.with_flash("error", "Please correct the highlighted fields.");
        return Ok(Reply::Invalid(layout.render(
            "register",
            "Create an account",
            page,
        )));
    }

    conn.release().await;
    let password_hash = hasher.hash(&form.password).await?;
    let mut db = conn.get().await?;
    let user = User::create(
        &mut *db,
        NewUser {
            username,
            email,
            password_hash: &password_hash,
            role: None,
        },
    )
    .await
    .map_err(|e| match e.as_database_error() {
        Some(d) if d.is_unique_violation() => Error::Unprocessable(
            "That username or email was just taken. Please choose another.".into(),
        ),
        _ => Error::Database(e),
    })?;
    rocket::info!("registered user {} ({})", user.username, user.role);
    start_session(&mut db, runtime, &client, cookies, user.id).await?;
    Ok(Reply::Flash(Flash::success(
        Redirect::to("/dashboard"),
        format!("Welcome, {}!", user.username),
    )))
}
