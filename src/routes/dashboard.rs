use rocket::get;
use rocket_dyn_templates::Template;
use serde::Serialize;

use crate::db::Connection;
use crate::error::Result;
use crate::guards::{CurrentUser, Layout, PlatformContext};
use crate::services::media_audit::{self, Summary};

/// The layout already carries the active platform and the list (`active_platform`,
/// `user_platforms`); the page adds only what is the dashboard's own.
#[derive(Serialize)]
struct DashboardPage<'r> {
    active_label: &'static str,
    active_host: &'r str,
    audit: Summary,
}

/// Both guards run before this does: a request without a user or an active platform never
/// reaches it, it ends in the catchers' recovery redirects.
#[get("/dashboard")]
pub async fn show(
    _user: &CurrentUser,
    ctx: &PlatformContext,
    layout: Layout<'_>,
    conn: Connection<'_>,
) -> Result<Template> {
    let audit = media_audit::summary(&conn, ctx).await?;
    let page = DashboardPage {
        active_label: ctx.active.platform_type.label(),
        active_host: ctx.active.host(),
        audit,
    };
    Ok(layout.render("dashboard", "Dashboard", page))
}
