//! Every route, one file per area. Handlers stay thin: guards resolve who and what, models hold
//! the SQL, `forms` holds the field rules.

pub mod account;
pub mod admin;
pub mod api;
pub mod assets;
pub mod auth;
pub mod dashboard;
pub mod health;
pub mod home;
pub mod media_audit;
pub mod platforms;

use rocket::response::Redirect;
use rocket::Route;
use rocket_dyn_templates::Template;
use serde::Serialize;

use crate::flash::{Flash, FlashKind};
use crate::guards::Layout;

/// What an HTML handler answers: a page, a form re-rendered with its problems, or a redirect.
#[derive(rocket::Responder)]
pub enum Reply {
    Page(Template),
    #[response(status = 401)]
    Unauthorized(Template),
    #[response(status = 422)]
    Invalid(Template),
    #[response(status = 429)]
    TooManyRequests(Template),
    Redirect(Redirect),
    Flash(Flash<Redirect>),
    /// A page with the connect form, under its own policy (see `platforms::connect_policy`).
    Connect(crate::headers::WithCsp<Template>),
    #[response(status = 422)]
    InvalidConnect(crate::headers::WithCsp<Template>),
}

/// A list's page links, for `partials/pager`.
#[derive(Debug, Serialize)]
pub struct Pager {
    pub page: i64,
    pub pages: i64,
    pub total: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// `page` is clamped to the pages there are; `link(n)` is page n's address.
    pub fn new(page: i64, total: i64, page_size: i64, link: impl Fn(i64) -> String) -> Pager {
        let pages = ((total + page_size - 1) / page_size).max(1);
        let page = page.clamp(1, pages);
        Pager {
            page,
            pages,
            total,
            prev: (page > 1).then(|| link(page - 1)),
            next: (page < pages).then(|| link(page + 1)),
        }
    }
}

pub const MSG_CORRECT_FIELDS: &str = "Please correct the highlighted fields.";

impl Reply {
    /// A form sent back with its problems (422), what was typed kept in `page`.
    pub fn invalid(
        layout: Layout<'_>,
        template: &'static str,
        title: &str,
        page: impl Serialize,
    ) -> Reply {
        Reply::invalid_with(layout, MSG_CORRECT_FIELDS, template, title, page)
    }

    pub fn invalid_with(
        layout: Layout<'_>,
        message: &str,
        template: &'static str,
        title: &str,
        page: impl Serialize,
    ) -> Reply {
        let layout = layout.with_flash(FlashKind::Error, message);
        Reply::Invalid(layout.render(template, title, page))
    }
}

pub fn routes() -> Vec<Route> {
    let mut routes = rocket::routes![
        home::index,
        health::healthz,
        assets::file,
        auth::login_page,
        auth::login,
        auth::logout,
        auth::register_page,
        auth::register,
        dashboard::show,
        platforms::index,
        platforms::new,
        platforms::create,
        platforms::edit,
        platforms::update,
        platforms::make_default,
        platforms::delete,
        platforms::switch,
        platforms::verify,
        platforms::connect,
        platforms::callback,
        api::platforms,
        api::switch_platform,
        media_audit::show,
        media_audit::scan,
        media_audit::save,
        media_audit::retry,
        media_audit::publish_all,
        media_audit::progress,
        account::show,
        account::change_password,
        account::change_email,
        account::revoke_session,
        account::revoke_other_sessions,
        admin::home,
        admin::users,
        admin::new_user,
        admin::create_user,
        admin::user_action,
        admin::audit_log,
    ];
    routes.extend(admin::fallbacks());
    routes
}

/// `next` after login: only a local path (`/x`), never `//host`, `/\host` or a scheme, and only
/// one that is a valid URI (a redirect to anything else would fail).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(|c| c.is_control() || c == '\\')
                && rocket::http::uri::Origin::parse(n).is_ok() =>
        {
            n.to_string()
        }
        _ => rocket::uri!(dashboard::show).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_accepts_only_local_paths() {
        assert_eq!(safe_next(Some("/platforms?x=1")), "/platforms?x=1");
        assert_eq!(safe_next(Some("//evil.example")), "/dashboard");
        assert_eq!(safe_next(Some("/\\evil.example")), "/dashboard");
        assert_eq!(safe_next(Some("https://evil.example")), "/dashboard");
        assert_eq!(safe_next(Some("javascript:alert(1)")), "/dashboard");
        assert_eq!(safe_next(Some("/ok\nLocation: x")), "/dashboard");
        assert_eq!(safe_next(None), "/dashboard");
        assert_eq!(safe_next(Some("/a b")), "/dashboard");
        assert_eq!(safe_next(Some("/\"quoted\"")), "/dashboard");
        assert_eq!(safe_next(Some("/caf%C3%A9")), "/caf%C3%A9");
    }
}
