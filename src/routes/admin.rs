//! Administration: users (search, create, activate, promote, end sessions) and the audit trail.
//! Every route takes `AdminUser`, so a normal user gets 403 and a visitor the login redirect.

use rocket::http::Method;
use rocket::request::FromParam;
use rocket::response::Redirect;
use rocket::{get, post, uri, Route};
use serde::Serialize;

use super::{Pager, Reply};
use crate::db::Connection;
use crate::error::{Error, Result};
use crate::flash::Flash;
use crate::forms::{AdminActionForm, FieldErrors, NewUserForm};
use crate::guards::{AdminUser, App, CsrfForm, Layout};
use crate::models::{AuditAction, AuditEvent, NewAuditEvent, Party, Role, User};
use crate::services::accounts::{self, NewAccount};
use crate::services::admin::{self as service, AdminAction, AdminOutcome};

const PAGE_SIZE: i64 = 20;

#[derive(Serialize)]
struct UserRow {
    #[serde(flatten)]
    user: User,
    is_admin: bool,
    is_self: bool,
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
    let pager = Pager::new(page.unwrap_or(1), total, PAGE_SIZE, link);
    let offset = (pager.page - 1) * PAGE_SIZE;
    (pager, offset)
}

/// `/admin/users/<id>/<action>`: anything else is not a route (the fallback answers 404).
impl<'a> FromParam<'a> for AdminAction {
    type Error = &'a str;

    fn from_param(param: &'a str) -> std::result::Result<Self, Self::Error> {
        AdminAction::parse(param).ok_or(param)
    }
}

#[get("/admin")]
pub fn home(_admin: AdminUser<'_>) -> Redirect {
    Redirect::to(uri!(users(q = _, page = _)))
}

#[get("/admin/users?<q>&<page>")]
pub async fn users(
    admin: AdminUser<'_>,
    layout: Layout<'_>,
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
            is_admin: user.role == Role::Admin,
            is_self: user.id == admin.id,
            user,
        })
        .collect();
    let page = UsersPage { users, q, pager };
    Ok(Reply::Page(layout.render("admin_users", "Users", page)))
}

#[get("/admin/users/new")]
pub fn new_user(_admin: AdminUser<'_>, layout: Layout<'_>) -> Reply {
    Reply::Page(layout.render("admin_user_new", "Create a user", NewUserPage::default()))
}

#[post("/admin/users", data = "<form>")]
pub async fn create_user(
    admin: AdminUser<'_>,
    layout: Layout<'_>,
    conn: Connection<'_>,
    app: App<'_>,
    form: CsrfForm<NewUserForm>,
) -> Result<Reply> {
    let form = form.0;
    let username = form.username.trim();
    let email = form.email.trim();
    let role = if form.admin { Role::Admin } else { Role::User };
    let account = NewAccount {
        username,
        email,
        password: &form.password,
        role: Some(role),
    };
    let user = match accounts::create(&conn, app.hasher, account, form.validate()).await? {
        Ok(user) => user,
        Err(errors) => {
            let page = NewUserPage {
                username,
                email,
                admin: form.admin,
                errors,
            };
            return Ok(Reply::invalid(
                layout,
                "admin_user_new",
                "Create a user",
                page,
            ));
        }
    };
    let mut db = conn.get().await?;
    NewAuditEvent::new(AuditAction::AdminCreateUser)
        .by(admin.party())
        .on(Party {
            id: Some(user.id),
            name: &user.username,
        })
        .from(app.client.ip())
        .record(&mut *db)
        .await?;
    Ok(Reply::Flash(Flash::success(
        Redirect::to(uri!(users(q = _, page = _))),
        format!("Created {} ({}).", user.username, role.as_str()),
    )))
}

/// Activate, deactivate, promote, demote, or end all of a user's sessions. The last active admin
/// can be neither deactivated nor demoted.
#[post("/admin/users/<id>/<action>", data = "<form>")]
pub async fn user_action(
    id: i64,
    action: AdminAction,
    admin: AdminUser<'_>,
    conn: Connection<'_>,
    app: App<'_>,
    form: CsrfForm<AdminActionForm>,
) -> Result<Flash<Redirect>> {
    let mut db = conn.get().await?;
    let q = form.0.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let page = form.0.page.filter(|p| *p > 1);
    let back = Redirect::to(uri!(users(q = q, page = page)));
    Ok(
        match service::apply(&mut db, &admin, app.client.ip(), id, action).await? {
            AdminOutcome::Done(message) => Flash::success(back, message),
            AdminOutcome::LastAdmin(message) => Flash::error(back, message),
        },
    )
}

#[get("/admin/audit?<page>")]
pub async fn audit_log(
    _admin: AdminUser<'_>,
    layout: Layout<'_>,
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
