use rocket::get;
use rocket_dyn_templates::Template;
use serde::Serialize;

use crate::guards::{CurrentUser, Layout, PlatformContext};
use crate::models::Platform;

#[derive(Serialize)]
struct DashboardPage<'a> {
    active: &'a Platform,
    active_label: &'static str,
    platforms: &'a [Platform],
}

/// Both guards run before this does: a request without a user or an active platform never
/// reaches it, it ends in the catchers' recovery redirects.
#[get("/dashboard")]
pub fn show(_user: &CurrentUser, ctx: &PlatformContext, layout: Layout) -> Template {
    let page = DashboardPage {
        active: &ctx.active,
        active_label: ctx.active.platform_type.label(),
        platforms: &ctx.platforms,
    };
    layout.render("dashboard", "Dashboard", page)
}
