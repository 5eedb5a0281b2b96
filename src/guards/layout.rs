use std::borrow::Cow;
use std::convert::Infallible;

use rocket::request::{FromRequest, Outcome, Request};
use rocket_dyn_templates::Template;
use serde::Serialize;

use super::{CsrfToken, CurrentUser, PlatformContext};
use crate::error::Failure;
use crate::flash::{self, FlashKind};
use crate::models::{Platform, PlatformType};
use crate::routes::assets;

/// What the shared layout shows on every page (the seed app's "context processor"): the
/// signed-in user, the active platform and the switcher's entries, the CSRF token for the meta
/// tag, and any flash message. Borrowed from the request's cached guards, so it costs no extra
/// query and no copies when the handler already resolved the user and platform.
#[derive(Debug, Serialize)]
pub struct Layout<'r> {
    pub user: Option<UserView<'r>>,
    pub active_platform: Option<&'r Platform>,
    pub user_platforms: Vec<PlatformEntry<'r>>,
    pub csrf_token: Cow<'r, str>,
    pub flash: Option<FlashView>,
    pub asset_version: &'static str,
}

#[derive(Debug, Serialize)]
pub struct UserView<'r> {
    pub id: i64,
    pub username: &'r str,
    pub is_admin: bool,
}

impl UserView<'_> {
    fn of(user: &CurrentUser) -> UserView<'_> {
        UserView {
            id: user.id,
            username: &user.username,
            is_admin: user.is_admin(),
        }
    }
}

/// One of the user's platforms as the switcher and the dashboard's list show it: only what they
/// print, with the decisions (`current`, `host`) made here rather than by template helpers,
/// which handlebars runs once per entry.
#[derive(Debug, Serialize)]
pub struct PlatformEntry<'r> {
    pub id: i64,
    pub name: &'r str,
    pub platform_type: PlatformType,
    pub username: &'r str,
    pub host: &'r str,
    pub display_name: Option<&'r str>,
    pub avatar_url: Option<&'r str>,
    pub is_default: bool,
    pub needs_reconnect: bool,
    /// The active platform.
    pub current: bool,
}

impl<'r> PlatformEntry<'r> {
    fn list(ctx: &'r PlatformContext) -> Vec<PlatformEntry<'r>> {
        ctx.platforms
            .iter()
            .map(|p| PlatformEntry {
                id: p.id,
                name: &p.name,
                platform_type: p.platform_type,
                username: &p.username,
                host: p.host(),
                display_name: p.display_name.as_deref(),
                avatar_url: p.avatar_url.as_deref(),
                is_default: p.is_default,
                needs_reconnect: p.needs_reconnect,
                current: p.id == ctx.active.id,
            })
            .collect()
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct FlashView {
    pub kind: String,
    pub message: String,
    /// Errors interrupt (`alert`); confirmations wait their turn (`status`).
    pub role: &'static str,
}

impl FlashView {
    pub fn new(kind: FlashKind, message: impl Into<String>) -> FlashView {
        let role = match kind {
            FlashKind::Error | FlashKind::Warning => "alert",
            FlashKind::Success => "status",
        };
        FlashView {
            kind: kind.as_str().to_string(),
            message: message.into(),
            role,
        }
    }
}

#[derive(Serialize)]
struct View<'a, T: Serialize> {
    #[serde(flatten)]
    layout: &'a Layout<'a>,
    title: &'a str,
    page: T,
}

impl<'r> Layout<'r> {
    fn of(
        user: Option<&'r CurrentUser>,
        platform: Option<&'r PlatformContext>,
        csrf_token: Cow<'r, str>,
        flash: Option<FlashView>,
    ) -> Layout<'r> {
        Layout {
            user: user.map(UserView::of),
            active_platform: platform.map(|p| &p.active),
            user_platforms: platform.map(PlatformEntry::list).unwrap_or_default(),
            csrf_token,
            flash,
            asset_version: assets::version(),
        }
    }

    /// The layout for error pages: whatever this request's guards already resolved, and never a
    /// database query, so an error page cannot fail for the reason that produced it.
    pub fn for_error(req: &'r Request<'_>) -> Layout<'r> {
        fn unresolved<T>() -> Result<T, Failure> {
            Err(Failure {
                status: rocket::http::Status::Unauthorized,
                recovery: crate::error::Recovery::None,
                message: String::new(),
            })
        }
        let user: &Result<CurrentUser, Failure> = req.local_cache(unresolved);
        let user = user.as_ref().ok();
        let platform: Option<&PlatformContext> = match user {
            Some(_) => {
                let cached: &Result<PlatformContext, Failure> = req.local_cache(unresolved);
                cached.as_ref().ok()
            }
            None => None,
        };
        let csrf_token = Cow::Borrowed(user.map_or("", |u| u.csrf_token.as_str()));
        Layout::of(user, platform, csrf_token, None)
    }

    pub fn render(&self, template: &'static str, title: &str, page: impl Serialize) -> Template {
        Template::render(
            template,
            View {
                layout: self,
                title,
                page,
            },
        )
    }

    /// Shows `message` in this page's flash region (for forms re-rendered with an error).
    pub fn with_flash(mut self, kind: FlashKind, message: impl Into<String>) -> Layout<'r> {
        self.flash = Some(FlashView::new(kind, message));
        self
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Layout<'r> {
    type Error = Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Infallible> {
        let user = req.guard::<&CurrentUser>().await.succeeded();
        let platform = match user {
            Some(_) => req.guard::<&PlatformContext>().await.succeeded(),
            None => None,
        };
        let csrf_token = match user {
            Some(user) => Cow::Borrowed(&user.csrf_token[..]),
            None => req
                .guard::<CsrfToken>()
                .await
                .succeeded()
                .map_or(Cow::Borrowed(""), |t| Cow::Owned(t.as_str().to_string())),
        };
        let flash = flash::take(req).map(|(kind, message)| FlashView::new(kind, message));
        Outcome::Success(Layout::of(user, platform, csrf_token, flash))
    }
}
