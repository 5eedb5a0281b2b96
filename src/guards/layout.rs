use std::convert::Infallible;

use rocket::request::{FromRequest, Outcome, Request};
use rocket_dyn_templates::Template;
use serde::Serialize;

use super::{CsrfToken, CurrentUser, PlatformContext};
use crate::error::Failure;
use crate::flash::{self, FlashKind};
use crate::models::Platform;
use crate::routes::assets;

/// What the shared layout shows on every page (the seed app's "context processor"): the
/// signed-in user, the active platform and the switcher's entries, the CSRF token for the meta
/// tag, and any flash message. Built from the request's cached guards, so it costs no extra
/// query when the handler already resolved the user and platform.
#[derive(Clone, Debug, Serialize)]
pub struct Layout {
    pub user: Option<UserView>,
    pub active_platform: Option<Platform>,
    pub user_platforms: Vec<Platform>,
    pub csrf_token: String,
    pub flash: Option<FlashView>,
    pub asset_version: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct UserView {
    pub id: i64,
    pub username: String,
    pub is_admin: bool,
}

impl UserView {
    fn of(user: &CurrentUser) -> UserView {
        UserView {
            id: user.id,
            username: user.username.clone(),
            is_admin: user.is_admin(),
        }
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
    layout: &'a Layout,
    title: &'a str,
    page: T,
}

impl Layout {
    /// The layout for error pages: whatever this request's guards already resolved, and never a
    /// database query, so an error page cannot fail for the reason that produced it.
    pub fn for_error(req: &Request<'_>) -> Layout {
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
        Layout {
            user: user.map(UserView::of),
            active_platform: platform.map(|p| p.active.clone()),
            user_platforms: platform.map(|p| p.platforms.clone()).unwrap_or_default(),
            csrf_token: user.map(|u| u.csrf_token.clone()).unwrap_or_default(),
            flash: None,
            asset_version: assets::version(),
        }
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
    pub fn with_flash(mut self, kind: FlashKind, message: impl Into<String>) -> Layout {
        self.flash = Some(FlashView::new(kind, message));
        self
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Layout {
    type Error = Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Infallible> {
        let user = req.guard::<&CurrentUser>().await.succeeded();
        let platform = match user {
            Some(_) => req.guard::<&PlatformContext>().await.succeeded(),
            None => None,
        };
        let csrf_token = req
            .guard::<CsrfToken>()
            .await
            .succeeded()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default();
        let flash = flash::take(req).map(|(kind, message)| FlashView::new(kind, message));
        Outcome::Success(Layout {
            user: user.map(UserView::of),
            active_platform: platform.map(|p| p.active.clone()),
            user_platforms: platform.map(|p| p.platforms.clone()).unwrap_or_default(),
            csrf_token,
            flash,
            asset_version: assets::version(),
        })
    }
}
