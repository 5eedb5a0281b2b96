use rocket::data::{self, Data, FromData};
use rocket::form::{Form, FromForm};
use rocket::http::{Cookie, SameSite, Status};
use rocket::outcome::try_outcome;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::serde::json::Json;
use serde::de::DeserializeOwned;

use super::{fail, CurrentUser};
use crate::config::Runtime;
use crate::crypto::{constant_time_eq, random_token};
use crate::error::{Error, Failure};

/// Holds the CSRF token of a visitor who is not signed in (login and registration forms). A
/// signed-in user's token lives on their session row instead, and is replaced at login.
pub const CSRF_COOKIE: &str = "tether_csrf";

pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// The CSRF token this request's client must echo back: the session's when signed in, otherwise
/// the anonymous cookie's (created on first need).
pub struct CsrfToken(String);

struct AnonymousToken(String);

impl CsrfToken {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, submitted: &str) -> bool {
        !submitted.is_empty() && constant_time_eq(submitted, &self.0)
    }
}

/// HttpOnly, `SameSite=Lax`, `Path=/`, and `Secure` when configured: the attributes of every
/// cookie tether sets.
pub fn app_cookie(name: &'static str, value: String, secure: bool) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .secure(secure)
        .build()
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for CsrfToken {
    type Error = Failure;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Failure> {
        match req.guard::<&CurrentUser>().await {
            Outcome::Success(user) => return Outcome::Success(CsrfToken(user.csrf_token.clone())),
            // Without the database we cannot tell whose token applies; do not guess.
            Outcome::Error((status, failure)) if status.code >= 500 => {
                return Outcome::Error((status, failure))
            }
            _ => {}
        }
        let token = req.local_cache(|| {
            let cookies = req.cookies();
            match cookies.get_private(CSRF_COOKIE) {
                Some(cookie) if !cookie.value().is_empty() => {
                    AnonymousToken(cookie.value().to_string())
                }
                _ => {
                    let token = random_token();
                    let secure = req
                        .rocket()
                        .state::<Runtime>()
                        .is_some_and(|r| r.secure_cookies);
                    cookies.add_private(app_cookie(CSRF_COOKIE, token.clone(), secure));
                    AnonymousToken(token)
                }
            }
        });
        Outcome::Success(CsrfToken(token.0.clone()))
    }
}

/// Refuses state-changing requests that a browser marks as coming from another site, whatever
/// token they carry.
fn cross_site(req: &Request<'_>) -> bool {
    let headers = req.headers();
    if headers
        .get_one("Sec-Fetch-Site")
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
    {
        return true;
    }
    let Some(origin) = headers.get_one("Origin") else {
        return false;
    };
    let Ok(origin) = url::Url::parse(origin) else {
        return true; // "null" and other opaque origins
    };
    let Some(host) = origin.host_str() else {
        return true;
    };
    // `Request::host` reads Host, or HTTP/2's :authority.
    let Some(request_host) = req.host() else {
        return true;
    };
    let same_port = request_host.port().is_none() && origin.port().is_none()
        || request_host.port() == origin.port_or_known_default();
    !(host.eq_ignore_ascii_case(request_host.domain().as_str()) && same_port)
}

/// A form whose `csrf_token` field is checked before the handler runs.
pub trait CsrfProtected {
    fn csrf_token(&self) -> &str;
}

/// Data guard: the parsed form, accepted only with this client's CSRF token and from this site.
/// A wrong token is a 403 and the handler never runs, so nothing changes.
pub struct CsrfForm<T>(pub T);

#[rocket::async_trait]
impl<'r, T> FromData<'r> for CsrfForm<T>
where
    T: FromForm<'r> + CsrfProtected + Send + 'r,
{
    type Error = Failure;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let form = match Form::<T>::from_data(req, data).await {
            data::Outcome::Success(form) => form.into_inner(),
            data::Outcome::Forward(f) => return data::Outcome::Forward(f),
            data::Outcome::Error((status, _)) => {
                let error = if status == Status::PayloadTooLarge {
                    Error::PayloadTooLarge
                } else {
                    Error::BadRequest("The form could not be read. Please try again.".into())
                };
                let failure = Failure::record(req, &error);
                return data::Outcome::Error((failure.status, failure));
            }
        };
        if cross_site(req) {
            let failure = Failure::record(req, &Error::Csrf);
            return data::Outcome::Error((failure.status, failure));
        }
        let expected = match req.guard::<CsrfToken>().await {
            Outcome::Success(token) => token,
            Outcome::Error(e) => return data::Outcome::Error(e),
            Outcome::Forward(_) => {
                let failure = Failure::record(req, &Error::Csrf);
                return data::Outcome::Error((failure.status, failure));
            }
        };
        if !expected.matches(form.csrf_token()) {
            let failure = Failure::record(req, &Error::Csrf);
            return data::Outcome::Error((failure.status, failure));
        }
        data::Outcome::Success(CsrfForm(form))
    }
}

/// Request guard for state-changing JSON calls: signed in, same-site, and the session's CSRF
/// token in the `X-CSRF-Token` header.
pub struct ApiCsrf;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ApiCsrf {
    type Error = Failure;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Failure> {
        let user = try_outcome!(req.guard::<&CurrentUser>().await);
        let submitted = req.headers().get_one(CSRF_HEADER).unwrap_or_default();
        if cross_site(req) || !CsrfToken(user.csrf_token.clone()).matches(submitted) {
            return fail(req, Error::Csrf);
        }
        Outcome::Success(ApiCsrf)
    }
}

/// Data guard: a JSON body, only with `Content-Type: application/json`; every way it can be wrong
/// is a 4xx with a message, in the API's JSON error shape.
pub struct JsonBody<T>(pub T);

#[rocket::async_trait]
impl<'r, T: DeserializeOwned + Send> FromData<'r> for JsonBody<T> {
    type Error = Failure;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        if !req.content_type().is_some_and(|ct| ct.is_json()) {
            let error = Error::UnsupportedMediaType(
                "Send the request body as JSON with Content-Type: application/json.",
            );
            let failure = Failure::record(req, &error);
            return data::Outcome::Error((failure.status, failure));
        }
        let error = match Json::<T>::from_data(req, data).await {
            data::Outcome::Success(Json(value)) => return data::Outcome::Success(JsonBody(value)),
            data::Outcome::Forward(f) => return data::Outcome::Forward(f),
            data::Outcome::Error((Status::PayloadTooLarge, _)) => Error::PayloadTooLarge,
            data::Outcome::Error((Status::UnprocessableEntity, e)) => {
                Error::Unprocessable(format!("Invalid request: {e}"))
            }
            data::Outcome::Error(_) => {
                Error::BadRequest("The request body is not valid JSON.".into())
            }
        };
        let failure = Failure::record(req, &error);
        data::Outcome::Error((failure.status, failure))
    }
}
