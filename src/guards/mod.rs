//! Request guards. They compose: `PlatformContext` is built on `CurrentUser`, which is built on
//! the request's one `Connection`; each result is cached for the request, so a rule runs once.

mod admin;
mod app;
mod callback;
mod client;
mod csrf;
mod current_user;
mod layout;
mod platform_context;

pub use crate::db::Connection;
pub use admin::AdminUser;
pub use app::App;
pub use callback::{CallbackParams, HideCallbackQuery, CALLBACK_PATH};
pub use client::ClientInfo;
pub use csrf::{app_cookie, ApiCsrf, CsrfForm, CsrfProtected, CsrfToken, JsonBody, CSRF_COOKIE};
pub use current_user::{CurrentUser, SESSION_COOKIE};
pub use layout::{FlashView, Layout};
pub use platform_context::PlatformContext;

use rocket::request::{Outcome, Request};

use crate::error::{Error, Failure};

/// Turns a cached guard result into the guard's outcome, re-recording the failure so the catcher
/// sees it even if a later guard recorded something else.
fn outcome<'r, T>(req: &'r Request<'_>, cached: &'r Result<T, Failure>) -> Outcome<&'r T, Failure> {
    match cached {
        Ok(value) => Outcome::Success(value),
        Err(failure) => {
            failure.remember(req);
            Outcome::Error((failure.status, failure.clone()))
        }
    }
}

fn fail<T>(req: &Request<'_>, error: Error) -> Outcome<T, Failure> {
    let failure = Failure::record(req, &error);
    Outcome::Error((failure.status, failure))
}
