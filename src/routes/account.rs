//! Self-service: change password, change email, see and end your sessions.

use rocket::http::CookieJar;
use rocket::response::{Flash, Redirect};
use rocket::{get, post, State};
use serde::Serialize;

use super::auth::{signed_out, MSG_THROTTLED};
use super::Reply;
use crate::config::Runtime;
use crate::crypto::PasswordHasherPool;
use crate::db::{Connection, DbConn};
use crate::error::{Error, Result};
use crate::forms::{check_email, CsrfOnly, EmailChangeForm, FieldErrors, PasswordChangeForm};
use crate::guards::{ClientInfo, CsrfForm, CurrentUser, Layout};
use crate::models::throttle::{self, Scope};
use crate::models::{AuditEvent, LoginThrottle, NewAuditEvent, Party, SessionSummary, User};

#[derive(Serialize)]
struct SessionRow {
    #[serde(flatten)]
    session: SessionSummary,
    current: bool,
}

#[derive(Serialize, Default)]
struct AccountPage {
    username: String,
    email: String,
    email_value: String,
    sessions: Vec<SessionRow>,
    other_sessions: usize,
    password_errors: FieldErrors,
    email_errors: FieldErrors,
}

async fn page(
    db: &mut DbConn,
    user: &CurrentUser,
    runtime: &Runtime,
    email_value: Option<&str>,
) -> Result<AccountPage> {
    let mut sessions: Vec<SessionRow> =
        SessionSummary::list_for_user(db, user.id, runtime.settings.idle_timeout())
            .await?
            .into_iter()
            .map(|session| SessionRow {
                current: session.id == user.session_id,
                session,
            })
            .collect();
    // This device first, then the others by most recent use (the sort is stable).
    sessions.sort_by_key(|s| !s.current);
    Ok(AccountPage {
        username: user.username.clone(),
        email: user.email.clone(),
        email_value: email_value.unwrap_or(&user.email).to_string(),
        other_sessions: sessions.iter().filter(|s| !s.current).count(),
        sessions,
        ..AccountPage::default()
    })
}

async fn audit(
    db: &mut DbConn,
    user: &CurrentUser,
    action: &str,
    client: &ClientInfo,
    detail: &str,
) -> Result<()> {
    let me = Party {
        id: Some(user.id),
        name: &user.username,
    };
    AuditEvent::record(
        db,
        NewAuditEvent {
            action,
            actor: Some(me),
            target: Some(me),
            ip: client.ip.as_deref(),
            detail,
        },
    )
    .await?;
    Ok(())
}

/// Re-authentication for sensitive changes. Attempts count against the same per-username limit
/// as logins, so a stolen session cannot be used to guess the password either.
async fn current_password_ok(
    conn: &Connection<'_>,
    hasher: &PasswordHasherPool,
    user: &CurrentUser,
    password: &str,
) -> Result<bool> {
    let key = throttle::username_key(&user.username);
    let stored = {
        let mut db = conn.get().await?;
        if !LoginThrottle::attempt(&mut *db, Scope::Username, &key).await? {
            return Err(Error::TooManyRequests(MSG_THROTTLED.into()));
        }
        User::password_hash(&mut *db, user.id).await?
    };
    conn.release().await;
    let valid = hasher.verify(password, stored.as_deref()).await?.valid;
    if valid {
        let mut db = conn.get().await?;
        LoginThrottle::succeeded(&mut *db, &key, None).await?;
    }
    Ok(valid)
}

#[get("/account")]
pub async fn show(
    user: &CurrentUser,
    layout: Layout,
    conn: Connection<'_>,
    runtime: &State<Runtime>,
) -> Result<Reply> {
    let mut db = conn.get().await?;
    let page = page(&mut db, user, runtime, None).await?;
    Ok(Reply::Page(layout.render("account", "Your account", page)))
}

/// Needs the current password; ends every other session of the user.
#[allow(clippy::too_many_arguments)]
#[post("/account/password", data = "<form>")]
pub async fn change_password(
    user: &CurrentUser,
    layout: Layout,
    conn: Connection<'_>,
    hasher: &State<PasswordHasherPool>,
    runtime: &State<Runtime>,
    client: ClientInfo,
    form: CsrfForm<PasswordChangeForm>,
) -> Result<Reply> {
    let form = form.0;
    let mut errors = form.validate(&user.username);
    if !errors.contains_key("current_password")
        && !current_password_ok(&conn, hasher, user, &form.current_password).await?
    {
        errors.insert(
            "current_password",
            "Your current password is not correct.".into(),
        );
    }
    if !errors.is_empty() {
        let mut db = conn.get().await?;
        let mut page = page(&mut db, user, runtime, None).await?;
        page.password_errors = errors;
        let layout = layout.with_flash("error", "Your password was not changed.");
        return Ok(Reply::Invalid(layout.render(
            "account",
            "Your account",
            page,
        )));
    }

    conn.release().await;
    let hash = hasher.hash(&form.new_password).await?;
    let mut db = conn.get().await?;
    let ended = {
        let mut tx = db.begin().await?;
        User::set_password(&mut tx, user.id, &hash).await?;
        let ended = SessionSummary::revoke_all(&mut tx, user.id, Some(user.session_id)).await?;
        tx.commit().await?;
        ended
    };
    audit(
        &mut db,
        user,
        "account.password_change",
        &client,
        &format!("ended {ended} other sessions"),
    )
    .await?;
    Ok(Reply::Flash(Flash::success(
        Redirect::to("/account"),
        "Your password has been changed, and every other session has been signed out.",
    )))
}

#[allow(clippy::too_many_arguments)]
#[post("/account/email", data = "<form>")]
pub async fn change_email(
    user: &CurrentUser,
    layout: Layout,
    conn: Connection<'_>,
    hasher: &State<PasswordHasherPool>,
    runtime: &State<Runtime>,
    client: ClientInfo,
    form: CsrfForm<EmailChangeForm>,
) -> Result<Reply> {
    let form = form.0;
    let email = form.email.trim();
    let mut errors = FieldErrors::new();
    if let Err(e) = check_email(email) {
        errors.insert("email", e);
    } else {
        let mut db = conn.get().await?;
        if User::email_taken(&mut *db, email, Some(user.id)).await? {
            errors.insert("email", "An account with this email already exists.".into());
        }
    }
    if !current_password_ok(&conn, hasher, user, &form.current_password).await? {
        errors.insert(
            "email_current_password",
            "Your current password is not correct.".into(),
        );
    }
    let mut db = conn.get().await?;
    if !errors.is_empty() {
        let mut page = page(&mut db, user, runtime, Some(email)).await?;
        page.email_errors = errors;
        let layout = layout.with_flash("error", "Your email was not changed.");
        return Ok(Reply::Invalid(layout.render(
            "account",
            "Your account",
            page,
        )));
    }
    User::set_email(&mut *db, user.id, email)
        .await
        .map_err(|e| match e.as_database_error() {
            Some(d) if d.is_unique_violation() => {
                Error::Unprocessable("An account with this email already exists.".into())
            }
            _ => Error::Database(e),
        })?;
    audit(&mut db, user, "account.email_change", &client, "").await?;
    Ok(Reply::Flash(Flash::success(
        Redirect::to("/account"),
        "Your email address has been changed.",
    )))
}

/// Ends one of your sessions. Ending the current one signs you out here too.
#[post("/account/sessions/<id>/revoke", data = "<_form>")]
pub async fn revoke_session(
    id: i64,
    user: &CurrentUser,
    conn: Connection<'_>,
    cookies: &CookieJar<'_>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<Flash<Redirect>> {
    let mut db = conn.get().await?;
    if !SessionSummary::revoke(&mut *db, user.id, id).await? {
        return Err(Error::NotFound("Session"));
    }
    if id == user.session_id {
        return Ok(signed_out(cookies));
    }
    Ok(Flash::success(
        Redirect::to("/account"),
        "That session has been signed out.",
    ))
}

#[post("/account/sessions/revoke-others", data = "<_form>")]
pub async fn revoke_other_sessions(
    user: &CurrentUser,
    conn: Connection<'_>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<Flash<Redirect>> {
    let mut db = conn.get().await?;
    let ended = SessionSummary::revoke_all(&mut *db, user.id, Some(user.session_id)).await?;
    let message = match ended {
        0 => "There were no other sessions.".to_string(),
        1 => "Signed out 1 other session.".to_string(),
        n => format!("Signed out {n} other sessions."),
    };
    Ok(Flash::success(Redirect::to("/account"), message))
}
