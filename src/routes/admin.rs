//! Administration: users (search, create, activate, promote, end sessions) and the audit trail.
//! Every route takes `AdminUser`, so a normal user gets 403 and a visitor the login redirect.

use rocket::http::Method;
use rocket::response::{Flash, Redirect};
use rocket::{get, post, uri, Route, State};
use serde::Serialize;

use super::auth::{create_account, taken_errors};
use super::Reply;
use crate::crypto::PasswordHasherPool;
use crate::db::{Connection, DbConn};
use crate::error::{Error, Result};
use crate::forms::{CsrfOnly, FieldErrors, NewUserForm};
use crate::guards::{AdminUser, ClientInfo, CsrfForm, Layout};
use crate::models::{AdminChange, AuditEvent, NewAuditEvent, Party, Role, SessionSummary, User};

const PAGE_SIZE: i64 = 20;

#[derive(Serialize)]
struct UserRow {
    #[serde(flatten)]
    user: User,
    is_admin: bool,
    is_self: bool,
}

#[derive(Serialize)]
struct Pager {
    page: i64,
    pages: i64,
    total: i64,
    prev: Option<String>,
    next: Option<String>,
}

#[derive(Serialize)]
struct UsersPage {
    users: Vec<UserRow>,
    q: String,
    pager: Pager,
}

#[derive(Serialize, Default)]
struct NewUserPage<'a> {
    username: &'a str,
    email: &'a str,
    admin: bool,
    errors: FieldErrors,
}

#[derive(Serialize)]
struct AuditPage {
    events: Vec<AuditEvent>,
    pager: Pager,
}

fn pager(page: Option<i64>, total: i64, link: impl Fn(i64) -> String) -> (Pager, i64) {
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let page = page.unwrap_or(1).clamp(1, pages);
    let pager = Pager {
        page,
        pages,
        total,
        prev: (page > 1).then(|| link(page - 1)),
        next: (page < pages).then(|| link(page + 1)),
    };
    (pager, (page - 1) * PAGE_SIZE)
}

async fn audit(
    db: &mut DbConn,
    admin: &AdminUser<'_>,
    action: &str,
    target: Party<'_>,
    client: &ClientInfo,
) -> Result<()> {
    AuditEvent::record(
        db,
        NewAuditEvent {
            action,
            actor: Some(Party {
                id: Some(admin.id),
                name: &admin.username,
            }),
            target: Some(target),
            ip: client.ip.as_deref(),
            detail: "",
        },
    )
    .await?;
    Ok(())
}

#[get("/admin")]
pub fn home(_admin: AdminUser<'_>) -> Redirect {
    Redirect::to("/admin/users")
}

#[get("/admin/users?<q>&<page>")]
pub async fn users(
    admin: AdminUser<'_>,
    layout: Layout,
    conn: Connection<'_>,
    q: Option<&str>,
    page: Option<i64>,
) -> Result<Reply> {
    let q: String = q
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    let mut db = conn.get().await?;
    let total = User::search_count(&mut *db, &q).await?;
    let (pager, offset) = pager(page, total, |n| {
        uri!(users(q = Some(q.as_str()), page = Some(n))).to_string()
    });
    let users = User::search(&mut *db, &q, PAGE_SIZE, offset)
        .await?
        .into_iter()
        .map(|user| UserRow {
            is_admin: user.role() == Role::Admin,
            is_self: user.id == admin.id,
            user,
        })
        .collect();
    let page = UsersPage { users, q, pager };
    Ok(Reply::Page(layout.render("admin_users", "Users", page)))
}

#[get("/admin/users/new")]
pub fn new_user(_admin: AdminUser<'_>, layout: Layout) -> Reply {
    Reply::Page(layout.render("admin_user_new", "Create a user", NewUserPage::default()))
}

#[allow(clippy::too_many_arguments)]
#[post("/admin/users", data = "<form>")]
pub async fn create_user(
    admin: AdminUser<'_>,
    layout: Layout,
    conn: Connection<'_>,
    hasher: &State<PasswordHasherPool>,
    client: ClientInfo,
    form: CsrfForm<NewUserForm>,
) -> Result<Reply> {
    let form = form.0;
    let username = form.username.trim();
    let email = form.email.trim();
    let errors = taken_errors(&conn, form.validate(), username, email).await?;
    if !errors.is_empty() {
        let page = NewUserPage {
            username,
            email,
            admin: form.admin,
            errors,
        };
        let layout = layout.with_flash("error", "Please correct the highlighted fields.");
        return Ok(Reply::Invalid(layout.render(
            "admin_user_new",
            "Create a user",
            page,
        )));
    }
    let role = if form.admin { Role::Admin } else { Role::User };
    let user = create_account(&conn, hasher, username, email, &form.password, Some(role)).await?;
    let mut db = conn.get().await?;
    let target = Party {
        id: Some(user.id),
        name: &user.username,
    };
    audit(&mut db, &admin, "admin.create_user", target, &client).await?;
    Ok(Reply::Flash(Flash::success(
        Redirect::to("/admin/users"),
        format!("Created {} ({}).", user.username, role.as_str()),
    )))
}

/// Activate, deactivate, promote, demote, or end all of a user's sessions. The last active admin
/// can be neither deactivated nor demoted.
#[post("/admin/users/<id>/<action>", data = "<_form>")]
pub async fn user_action(
    id: i64,
    action: &str,
    admin: AdminUser<'_>,
    conn: Connection<'_>,
    client: ClientInfo,
    _form: CsrfForm<CsrfOnly>,
) -> Result<Flash<Redirect>> {
    let mut db = conn.get().await?;
    let target = User::find(&mut *db, id)
        .await?
        .ok_or(Error::NotFound("User"))?;
    let name = target.username.as_str();
    let (outcome, done, audit_action) = match action {
        "activate" => (
            User::set_active(&mut db, id, true).await?,
            format!("{name} can sign in again."),
            "admin.activate",
        ),
        "deactivate" => {
            let outcome = User::set_active(&mut db, id, false).await?;
            if outcome == AdminChange::Done {
                SessionSummary::revoke_all(&mut *db, id, None).await?;
            }
            (
                outcome,
                format!("{name} is deactivated and signed out everywhere."),
                "admin.deactivate",
            )
        }
        "promote" => (
            User::set_role(&mut db, id, Role::Admin).await?,
            format!("{name} is now an administrator."),
            "admin.promote",
        ),
        "demote" => (
            User::set_role(&mut db, id, Role::User).await?,
            format!("{name} is no longer an administrator."),
            "admin.demote",
        ),
        "end-sessions" => {
            let ended = SessionSummary::revoke_all(&mut *db, id, None).await?;
            (
                AdminChange::Done,
                format!("Ended {ended} session(s) of {name}."),
                "admin.end_sessions",
            )
        }
        _ => return Err(Error::NotFound("Page")),
    };
    let back = Redirect::to("/admin/users");
    match outcome {
        AdminChange::Done => {
            let party = Party { id: Some(id), name };
            audit(&mut db, &admin, audit_action, party, &client).await?;
            Ok(Flash::success(back, done))
        }
        AdminChange::LastAdmin => Ok(Flash::error(
            back,
            format!("{name} is the last active administrator: promote someone else first."),
        )),
        AdminChange::NotFound => Err(Error::NotFound("User")),
    }
}

#[get("/admin/audit?<page>")]
pub async fn audit_log(
    _admin: AdminUser<'_>,
    layout: Layout,
    conn: Connection<'_>,
    page: Option<i64>,
) -> Result<Reply> {
    let mut db = conn.get().await?;
    let total = AuditEvent::count(&mut *db).await?;
    let (pager, offset) = pager(page, total, |n| uri!(audit_log(page = Some(n))).to_string());
    let events = AuditEvent::page(&mut *db, PAGE_SIZE, offset).await?;
    Ok(Reply::Page(layout.render(
        "admin_audit",
        "Audit log",
        AuditPage { events, pager },
    )))
}

/// Any other path under /admin, with any method: 403 for non-admins (like every admin route),
/// then 404. So a normal user learns nothing about which admin paths exist.
fn fallback<'r>(req: &'r rocket::Request<'_>, _: rocket::Data<'r>) -> rocket::route::BoxFuture<'r> {
    Box::pin(async move {
        match req.guard::<AdminUser<'_>>().await {
            rocket::outcome::Outcome::Error((status, _)) => rocket::route::Outcome::Error(status),
            _ => {
                crate::error::Failure::record(req, &Error::NotFound("Page"));
                rocket::route::Outcome::Error(rocket::http::Status::NotFound)
            }
        }
    })
}

pub fn fallbacks() -> Vec<Route> {
    [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
    ]
    .into_iter()
    .map(|method| Route::ranked(100, method, "/admin/<_..>", fallback))
    .collect()
}
