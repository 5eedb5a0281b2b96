//! One-time messages carried across a redirect ("Connected Main.", "Session expired…").
//!
//! They travel in tether's own cookie, encrypted, `HttpOnly` and `SameSite=Lax` like every other
//! tether cookie: Rocket's `Flash` uses a plain `_flash` cookie that scripts can read and another
//! site's subdomain could plant.

use rocket::http::Cookie;
use rocket::request::Request;
use rocket::response::{self, Responder};

use crate::config::Runtime;
use crate::guards::app_cookie;

pub const FLASH_COOKIE: &str = "tether_flash";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashKind {
    Success,
    Warning,
    Error,
}

impl FlashKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FlashKind::Success => "success",
            FlashKind::Warning => "warning",
            FlashKind::Error => "error",
        }
    }

    fn parse(s: &str) -> Option<FlashKind> {
        [FlashKind::Success, FlashKind::Warning, FlashKind::Error]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A response (usually a redirect) that leaves a message for the next page.
pub struct Flash<R> {
    inner: R,
    kind: FlashKind,
    message: String,
}

impl<R> Flash<R> {
    pub fn new(inner: R, kind: FlashKind, message: impl Into<String>) -> Flash<R> {
        Flash {
            inner,
            kind,
            message: message.into(),
        }
    }

    pub fn success(inner: R, message: impl Into<String>) -> Flash<R> {
        Flash::new(inner, FlashKind::Success, message)
    }

    pub fn warning(inner: R, message: impl Into<String>) -> Flash<R> {
        Flash::new(inner, FlashKind::Warning, message)
    }

    pub fn error(inner: R, message: impl Into<String>) -> Flash<R> {
        Flash::new(inner, FlashKind::Error, message)
    }
}

impl<'r, 'o: 'r, R: Responder<'r, 'o>> Responder<'r, 'o> for Flash<R> {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'o> {
        let secure = req
            .rocket()
            .state::<Runtime>()
            .is_some_and(|r| r.secure_cookies);
        let value = format!("{}:{}", self.kind.as_str(), self.message);
        req.cookies()
            .add_private(app_cookie(FLASH_COOKIE, value, secure));
        self.inner.respond_to(req)
    }
}

/// The message left for this request, read once and cleared from the browser.
pub fn take(req: &Request<'_>) -> Option<(FlashKind, String)> {
    req.local_cache(|| {
        let cookies = req.cookies();
        let cookie = cookies.get_private(FLASH_COOKIE)?;
        cookies.remove_private(Cookie::build(FLASH_COOKIE).path("/"));
        let (kind, message) = cookie.value().split_once(':')?;
        Some((FlashKind::parse(kind)?, message.to_string()))
    })
    .clone()
}
