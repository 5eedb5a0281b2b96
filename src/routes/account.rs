//! Self-service: change password, change email, see and end your sessions.

use rocket::http::CookieJar;
use rocket::response::Redirect;
use rocket::{get, post, uri};
use serde::Serialize;

use super::auth::signed_out;
use super::Reply;
use crate::db::{Connection, DbConn};
use crate::error::{Error, Result};
use crate::flash::Flash;
use crate::forms::{check_email, CsrfOnly, EmailChangeForm, FieldErrors, PasswordChangeForm};
use crate::guards::{App, CsrfForm, CurrentUser, Layout};
use crate::models::{SessionSummary, User};
use crate::services::accounts::{self, MSG_EMAIL_TAKEN};

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

const TITLE: &str = "Your account";

async fn page(
    db: &mut DbConn,
    user: &CurrentUser,
    app: &App<'_>,
    email_value: Option<&str>,
) -> Result<AccountPage> {
    let idle_timeout = app.runtime.settings.idle_timeout();
    let mut sessions: Vec<SessionRow> = SessionSummary::list_for_user(db, user.id, idle_timeout)
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

fn back(message: impl Into<String>) -> Flash<Redirect> {
    Flash::success(Redirect::to(uri!(show)), message)
}

#[get("/account")]
pub async fn show(
    user: &CurrentUser,
    layout: Layout<'_>,
    conn: Connection<'_>,
    app: App<'_>,
) -> Result<Reply> {
    let mut db = conn.get().await?;
    let page = page(&mut db, user, &app, None).await?;
    Ok(Reply::Page(layout.render("account", TITLE, page)))
}

/// Needs the current password; ends every other session of the user.
#[post("/account/password", data = "<form>")]
pub async fn change_password(
    user: &CurrentUser,
    layout: Layout<'_>,
    conn: Connection<'_>,
    app: App<'_>,
    form: CsrfForm<PasswordChangeForm>,
) -> Result<Reply> {
    let form = form.0;
    let mut errors = form.validate(&user.username);
    if !errors.contains_key("current_password")
        && !accounts::current_password_ok(&conn, &app, user, &form.current_password).await?
    {
        errors.insert(
            "current_password",
            "Your current password is not correct.".into(),
        );
    }
    if !errors.is_empty() {
        let mut db = conn.get().await?;
        let mut page = page(&mut db, user, &app, None).await?;
        page.password_errors = errors;
        let message = "Your password was not changed.";
        return Ok(Reply::invalid_with(layout, message, "account", TITLE, page));
    }
    accounts::change_password(&conn, &app, user, &form.new_password).await?;
    Ok(Reply::Flash(back(
        "Your password has been changed, and every other session has been signed out.",
    )))
}

#[post("/account/email", data = "<form>")]
pub async fn change_email(
    user: &CurrentUser,
    layout: Layout<'_>,
    conn: Connection<'_>,
    app: App<'_>,
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
            errors.insert("email", MSG_EMAIL_TAKEN.into());
        }
    }
    if !accounts::current_password_ok(&conn, &app, user, &form.current_password).await? {
        errors.insert(
            "email_current_password",
            "Your current password is not correct.".into(),
        );
    }
    if errors.is_empty() {
        match accounts::change_email(&conn, &app, user, email).await {
            Ok(()) => return Ok(Reply::Flash(back("Your email address has been changed."))),
            // Taken by another account between the check and the write.
            Err(Error::Unprocessable(message)) => {
                errors.insert("email", message);
            }
            Err(e) => return Err(e),
        }
    }
    let mut db = conn.get().await?;
    let mut page = page(&mut db, user, &app, Some(email)).await?;
    page.email_errors = errors;
    let message = "Your email was not changed.";
    Ok(Reply::invalid_with(layout, message, "account", TITLE, page))
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
    Ok(back("That session has been signed out."))
}

#[post("/account/sessions/revoke-others", data = "<_form>")]
pub async fn revoke_other_sessions(
    user: &CurrentUser,
    conn: Connection<'_>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<Flash<Redirect>> {
    let mut db = conn.get().await?;
    let ended = SessionSummary::revoke_all(&mut *db, user.id, Some(user.session_id)).await?;
    Ok(back(match ended {
        0 => "There were no other sessions.".to_string(),
        1 => "Signed out 1 other session.".to_string(),
        n => format!("Signed out {n} other sessions."),
    }))
}
