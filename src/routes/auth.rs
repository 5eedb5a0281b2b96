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
use crate::models::throttle::{self, Scope};
use crate::models::{
    AuditEvent, LoginThrottle, NewAuditEvent, NewSession, NewUser, Party, Role, SessionRecord, User,
};

pub const MSG_INVALID_LOGIN: &str = "Invalid username or password.";
pub const MSG_THROTTLED: &str =
    "Too many failed login attempts. Please wait 15 minutes and try again.";

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
    let again = |layout: Layout, message: &str| {
        let page = LoginPage {
            username,
            next: form.next.as_deref(),
            registration_open: runtime.settings.allow_registration,
        };
        layout
            .with_flash("error", message)
            .render("login", "Log in", page)
    };
    if form.password.len() > forms::PASSWORD_MAX_BYTES {
        let message = format!(
            "Password must be at most {} bytes long.",
            forms::PASSWORD_MAX_BYTES
        );
        return Ok(Reply::Invalid(again(layout, &message)));
    }

    let key = throttle::username_key(username);
    let ip = client.ip.as_deref();
    let attempted = Party {
        id: None,
        name: username,
    };
    let credentials = {
        let mut db = conn.get().await?;
        // Counted before the password is checked, whether or not the account exists, so a 429
        // reveals nothing and parallel guesses cannot outrun the count.
        let mut allowed = LoginThrottle::attempt(&mut *db, Scope::Username, &key).await?;
        if let Some(ip) = ip {
            allowed &= LoginThrottle::attempt(&mut *db, Scope::Address, ip).await?;
        }
        if !allowed {
            audit(&mut db, "login.throttled", attempted, ip, "").await?;
            return Ok(Reply::TooManyRequests(again(layout, MSG_THROTTLED)));
        }
        // Every stored username passes these rules; anything else (control characters, say)
        // cannot match, and is not worth a round trip the database might reject.
        if forms::check_username(username).is_ok() {
            User::credentials(&mut *db, username).await?
        } else {
            None
        }
    };
    conn.release().await;
    let verification = hasher
        .verify(
            &form.password,
            credentials.as_ref().map(|c| c.password_hash.as_str()),
        )
        .await?;

    let mut db = conn.get().await?;
    let user_id = match credentials {
        Some(c) if verification.valid && c.is_active => c.id,
        other => {
            let reason = match &other {
                None => "unknown username",
                Some(_) if !verification.valid => "wrong password",
                Some(_) => "account deactivated",
            };
            let target = Party {
                id: other.as_ref().map(|c| c.id),
                name: username,
            };
            audit(&mut db, "login.failure", target, ip, reason).await?;
            return Ok(Reply::Unauthorized(again(layout, MSG_INVALID_LOGIN)));
        }
    };

    LoginThrottle::succeeded(&mut *db, &key, ip).await?;
    User::record_login(&mut *db, user_id, verification.upgraded_hash).await?;
    let target = Party {
        id: Some(user_id),
        name: username,
    };
    audit(&mut db, "login.success", target, ip, "").await?;
    start_session(&mut db, runtime, &client, cookies, user_id).await?;
    Ok(Reply::Redirect(Redirect::to(safe_next(
        form.next.as_deref(),
    ))))
}

async fn audit(
    db: &mut crate::db::DbConn,
    action: &str,
    target: Party<'_>,
    ip: Option<&str>,
    detail: &str,
) -> Result<()> {
    AuditEvent::record(
        db,
        NewAuditEvent {
            action,
            actor: None,
            target: Some(target),
            ip,
            detail,
        },
    )
    .await?;
    Ok(())
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
    Ok(signed_out(cookies))
}

/// After this browser's session row is gone: drop its cookie and say so on the login page.
pub fn signed_out(cookies: &CookieJar<'_>) -> Flash<Redirect> {
    cookies.remove_private(Cookie::from(SESSION_COOKIE));
    Flash::success(Redirect::to("/login"), "You have been logged out.")
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
    layout: Layout,
) -> Result<Reply> {
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
    _open: RegistrationOpen,
    layout: Layout,
    conn: Connection<'_>,
    hasher: &State<PasswordHasherPool>,
    runtime: &State<Runtime>,
    client: ClientInfo,
    cookies: &CookieJar<'_>,
    form: CsrfForm<RegisterForm>,
) -> Result<Reply> {
    let form = form.0;
    let username = form.username.trim();
    let email = form.email.trim();
    let errors = taken_errors(&conn, form.validate(), username, email).await?;
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

    let user = create_account(&conn, hasher, username, email, &form.password, None).await?;
    let mut db = conn.get().await?;
    rocket::info!("registered user {} ({})", user.username, user.role);
    start_session(&mut db, runtime, &client, cookies, user.id).await?;
    Ok(Reply::Flash(Flash::success(
        Redirect::to("/dashboard"),
        format!("Welcome, {}!", user.username),
    )))
}

/// Adds "already taken" to a new account's field errors (registration and admin-created users).
pub async fn taken_errors(
    conn: &Connection<'_>,
    mut errors: FieldErrors,
    username: &str,
    email: &str,
) -> Result<FieldErrors> {
    let mut db = conn.get().await?;
    if !errors.contains_key("username") && User::username_taken(&mut *db, username).await? {
        errors.insert("username", "That username is taken.".into());
    }
    if !errors.contains_key("email") && User::email_taken(&mut *db, email, None).await? {
        errors.insert("email", "An account with this email already exists.".into());
    }
    Ok(errors)
}

/// Hashes the password with the connection back in the pool, then inserts the user. `role:
/// None` makes the first user of an empty database its admin.
pub async fn create_account(
    conn: &Connection<'_>,
    hasher: &PasswordHasherPool,
    username: &str,
    email: &str,
    password: &str,
    role: Option<Role>,
) -> Result<User> {
    conn.release().await;
    let password_hash = hasher.hash(password).await?;
    let mut db = conn.get().await?;
    let new = NewUser {
        username,
        email,
        password_hash: &password_hash,
        role,
    };
    User::create(&mut db, new)
        .await
        .map_err(|e| match e.as_database_error() {
            // Another request took the name between our check and the insert.
            Some(d) if d.is_unique_violation() => Error::Unprocessable(
                "That username or email was just taken. Please choose another.".into(),
            ),
            _ => Error::Database(e),
        })
}
