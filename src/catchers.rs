//! Where every failure ends up. Guards and handlers record why they failed (`error::Failure`);
//! these catchers read it back and answer with a recovery redirect, a friendly page, or — under
//! `/api/` — JSON with the real status. None of them touches the database, so an error page can
//! never fail for the reason that produced it.

use rocket::http::{Cookie, Status};
use rocket::request::Request;
use rocket::response::Redirect;
use rocket::serde::json::{json, Value};
use rocket::{catch, catchers, uri, Catcher};
use rocket_dyn_templates::Template;
use serde::Serialize;

use crate::error::{Failure, Recovery, MSG_LOGIN_REQUIRED, MSG_NO_PLATFORM, MSG_SESSION_EXPIRED};
use crate::flash::Flash;
use crate::guards::{Layout, SESSION_COOKIE};
use crate::routes::auth::rocket_uri_macro_login_page;

pub fn html() -> Vec<Catcher> {
    catchers![html_default]
}

pub fn api() -> Vec<Catcher> {
    catchers![api_default]
}

fn default_message(status: Status) -> &'static str {
    match status.code {
        400 => "The request could not be understood.",
        401 => MSG_LOGIN_REQUIRED,
        403 => "You do not have access to this page.",
        404 => "Page not found.",
        405 => "That method is not allowed here.",
        409 => MSG_NO_PLATFORM,
        413 => crate::error::MSG_TOO_LARGE,
        415 => "Unsupported content type.",
        422 => "The request could not be processed.",
        429 => "Too many attempts. Please wait and try again.",
        503 => crate::error::MSG_DATABASE,
        _ if status.code >= 500 => "Something went wrong on our side. Please try again.",
        _ => "The request could not be completed.",
    }
}

#[derive(Serialize)]
struct ErrorPage<'a> {
    code: u16,
    reason: &'a str,
    message: &'a str,
}

#[derive(rocket::Responder)]
pub enum CatcherReply {
    Redirect(Flash<Redirect>),
    Page((Status, Template)),
}

/// Back to the login page, returning afterwards to the page that asked. Only a GET can be
/// replayed: after a form post the user lands on the dashboard rather than a 404.
fn login_redirect(req: &Request<'_>, message: &str) -> CatcherReply {
    let next = (req.method() == rocket::http::Method::Get).then(|| req.uri().to_string());
    let target = uri!(login_page(next = next.as_deref()));
    CatcherReply::Redirect(Flash::error(Redirect::to(target), message))
}

/// Rocket answers 422 when a path segment does not parse (`/platforms/abc/edit`). Nothing can
/// live at such a path, so it is the same 404 as a missing id; every 422 tether itself produces
/// has a recorded failure.
fn effective_status(status: Status, failure: &Option<Failure>) -> Status {
    if status == Status::UnprocessableEntity && failure.is_none() {
        Status::NotFound
    } else {
        status
    }
}

#[catch(default)]
fn html_default(status: Status, req: &Request<'_>) -> CatcherReply {
    let failure = Failure::recorded(req, status);
    let status = effective_status(status, &failure);
    let recovery = failure.as_ref().map_or(Recovery::None, |f| f.recovery);
    match (status.code, recovery) {
        (_, Recovery::LoginAgain) => {
            req.cookies().remove_private(Cookie::from(SESSION_COOKIE));
            login_redirect(req, MSG_SESSION_EXPIRED)
        }
        (401, _) | (_, Recovery::Login) => login_redirect(req, MSG_LOGIN_REQUIRED),
        (_, Recovery::SetupPlatform) => CatcherReply::Redirect(Flash::warning(
            Redirect::to(uri!(crate::routes::platforms::new(instance = _))),
            MSG_NO_PLATFORM,
        )),
        _ => {
            let message = failure
                .as_ref()
                .map_or(default_message(status), |f| f.message.as_str());
            let page = ErrorPage {
                code: status.code,
                reason: status.reason().unwrap_or("Error"),
                message,
            };
            let title = format!("{} {}", status.code, page.reason);
            CatcherReply::Page((status, Layout::for_error(req).render("error", &title, page)))
        }
    }
}

#[catch(default)]
fn api_default(status: Status, req: &Request<'_>) -> (Status, Value) {
    let failure = Failure::recorded(req, status);
    let status = effective_status(status, &failure);
    if failure
        .as_ref()
        .is_some_and(|f| f.recovery == Recovery::LoginAgain)
    {
        req.cookies().remove_private(Cookie::from(SESSION_COOKIE));
    }
    let message = match (status.code, failure) {
        (_, Some(f)) => f.message,
        (404, None) => "Not found.".to_string(),
        (_, None) => default_message(status).to_string(),
    };
    (status, json!({ "success": false, "error": message }))
}
