//! The one error type. Handlers and guards return it; its status and message are decided here,
//! and the catchers (see `catchers.rs`) turn it into a page, a recovery redirect or JSON.

use std::sync::Mutex;

use rocket::http::Status;
use rocket::request::Request;
use rocket::response::{self, Responder};

pub const MSG_LOGIN_REQUIRED: &str = "Please log in to access this page.";
pub const MSG_SESSION_EXPIRED: &str = "Session expired. Please log in again.";
pub const MSG_NO_PLATFORM: &str = "No active platform found. Please configure a platform.";
pub const MSG_DATABASE: &str = "A database error occurred. Please try again.";
pub const MSG_TOO_LARGE: &str = "The submitted data is too large.";
pub const MSG_CSRF: &str =
    "Your form has expired or did not come from this site. Reload the page and try again.";

#[derive(Debug)]
pub enum Error {
    /// No session cookie (or one that does not decrypt).
    NotSignedIn,
    /// A session cookie whose session is gone, expired or revoked, or whose user is deactivated.
    SessionExpired,
    /// Signed in, but no active platform to work with.
    NoPlatform,
    /// A missing or wrong CSRF token, or a cross-site state-changing request.
    Csrf,
    Forbidden(String),
    NotFound(&'static str),
    BadRequest(String),
    Unprocessable(String),
    UnsupportedMediaType(&'static str),
    PayloadTooLarge,
    TooManyRequests(String),
    /// A remote instance (or another service tether calls) failed: not tether's bug, not a 500.
    Upstream(UpstreamError),
    Database(sqlx::Error),
    /// A request asked for its database connection while it already held it: a bug, reported
    /// at once instead of waiting forever on itself.
    ConnectionInUse,
    Crypto(crate::crypto::CryptoError),
    Internal(String),
}

/// What went wrong talking to a remote service, in words a user can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamError {
    /// The service as the user knows it (an instance's host name).
    pub service: String,
    pub kind: UpstreamKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamKind {
    /// No connection could be made (refused, DNS, TLS).
    Unreachable,
    /// tether will not call it: not a public https address, and not allow-listed.
    NotPublic,
    /// Connected, but no complete answer in time: 504.
    Timeout,
    /// It answered, but not with something tether understands (5xx, malformed, too large).
    BadResponse(String),
}

/// What a catcher should do beyond showing the status and message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    None,
    Login,
    LoginAgain,
    SetupPlatform,
}

/// A recorded, cloneable summary of an [`Error`]: what guards report to Rocket and what the
/// catchers read back from request-local state (catchers see only the status otherwise).
#[derive(Clone, Debug)]
pub struct Failure {
    pub status: Status,
    pub recovery: Recovery,
    pub message: String,
}

#[derive(Default)]
struct RecordedFailure(Mutex<Option<Failure>>);

impl Error {
    pub fn status(&self) -> Status {
        match self {
            Error::NotSignedIn | Error::SessionExpired => Status::Unauthorized,
            Error::NoPlatform => Status::Conflict,
            Error::Csrf | Error::Forbidden(_) => Status::Forbidden,
            Error::NotFound(_) => Status::NotFound,
            Error::BadRequest(_) => Status::BadRequest,
            Error::Unprocessable(_) => Status::UnprocessableEntity,
            Error::UnsupportedMediaType(_) => Status::UnsupportedMediaType,
            Error::PayloadTooLarge => Status::PayloadTooLarge,
            Error::TooManyRequests(_) => Status::TooManyRequests,
            Error::Upstream(UpstreamError {
                kind: UpstreamKind::Timeout,
                ..
            }) => Status::GatewayTimeout,
            Error::Upstream(_) => Status::BadGateway,
            Error::Database(e) if is_unavailable(e) => Status::ServiceUnavailable,
            Error::Database(_) | Error::ConnectionInUse | Error::Crypto(_) | Error::Internal(_) => {
                Status::InternalServerError
            }
        }
    }

    /// The text a user may see: never a database message, a token or a path.
    pub fn message(&self) -> String {
        match self {
            Error::NotSignedIn => MSG_LOGIN_REQUIRED.into(),
            Error::SessionExpired => MSG_SESSION_EXPIRED.into(),
            Error::NoPlatform => MSG_NO_PLATFORM.into(),
            Error::Csrf => MSG_CSRF.into(),
            Error::NotFound(what) => format!("{what} not found."),
            Error::Forbidden(m)
            | Error::BadRequest(m)
            | Error::Unprocessable(m)
            | Error::TooManyRequests(m) => m.clone(),
            Error::UnsupportedMediaType(m) => (*m).into(),
            Error::PayloadTooLarge => MSG_TOO_LARGE.into(),
            Error::Upstream(e) => e.message(),
            Error::Database(_) => MSG_DATABASE.into(),
            Error::ConnectionInUse | Error::Crypto(_) | Error::Internal(_) => {
                "Something went wrong on our side. Please try again.".into()
            }
        }
    }

    pub fn recovery(&self) -> Recovery {
        match self {
            Error::NotSignedIn => Recovery::Login,
            Error::SessionExpired => Recovery::LoginAgain,
            Error::NoPlatform => Recovery::SetupPlatform,
            _ => Recovery::None,
        }
    }

    pub fn failure(&self) -> Failure {
        Failure {
            status: self.status(),
            recovery: self.recovery(),
            message: self.message(),
        }
    }

    fn log(&self) {
        match self {
            Error::Database(e) => rocket::error!("database error: {e}"),
            Error::Internal(e) => rocket::error!("internal error: {e}"),
            Error::Crypto(e) => rocket::error!("crypto error: {e}"),
            Error::ConnectionInUse => {
                rocket::error!("bug: the request's database connection was asked for while held")
            }
            Error::Upstream(e) => rocket::warn!("upstream {}: {:?}", e.service, e.kind),
            _ => {}
        }
    }
}

impl UpstreamError {
    pub fn message(&self) -> String {
        let service = &self.service;
        match &self.kind {
            UpstreamKind::Unreachable => {
                format!("{service} could not be reached. Check the address, or try again later.")
            }
            UpstreamKind::Timeout => {
                format!("{service} did not answer in time. Please try again in a moment.")
            }
            UpstreamKind::NotPublic => format!(
                "tether does not call {service}: it is not a public https address. An \
                 administrator can allow a local instance with `outbound_allow_private`."
            ),
            UpstreamKind::BadResponse(why) => {
                format!("{service} sent an answer tether could not use ({why}). Please try again later.")
            }
        }
    }
}

/// Pool timeouts, a closed pool and lost connections are the database being unavailable (503);
/// anything else the database says is our bug (500).
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // SQLite busy/locked past the busy timeout; PostgreSQL out of connections or shutting
        // down. Transient: worth a retry, not a bug.
        sqlx::Error::Database(d) => matches!(
            d.code().as_deref(),
            Some("5" | "6" | "517" | "53300" | "57P01" | "57P02" | "57P03")
        ),
        _ => false,
    }
}

impl Failure {
    /// Logs `error` and remembers it for this request's catcher; returns what the guard reports.
    pub fn record(req: &Request<'_>, error: &Error) -> Failure {
        error.log();
        let failure = error.failure();
        failure.remember(req);
        failure
    }

    /// Makes this the failure the request's catcher will see.
    pub fn remember(&self, req: &Request<'_>) {
        let cell = req.local_cache(RecordedFailure::default);
        if let Ok(mut slot) = cell.0.lock() {
            *slot = Some(self.clone());
        }
    }

    /// The failure recorded for this request, if it is the one behind `status`.
    pub fn recorded(req: &Request<'_>, status: Status) -> Option<Failure> {
        let cell = req.local_cache(RecordedFailure::default);
        let slot = cell.0.lock().ok()?;
        slot.as_ref().filter(|f| f.status == status).cloned()
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(e)
    }
}

/// For operators (the CLI, logs): the cause, where the user-facing message hides it.
impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Database(e) => write!(f, "database error: {e}"),
            Error::Crypto(e) => write!(f, "{e}"),
            Error::Internal(e) => f.write_str(e),
            other => f.write_str(&other.message()),
        }
    }
}

impl std::error::Error for Error {}

impl From<crate::crypto::CryptoError> for Error {
    fn from(e: crate::crypto::CryptoError) -> Self {
        Error::Crypto(e)
    }
}

/// Maps a unique-index violation to a user-facing error in one call; any other database error
/// stays a database error. For the race that form checks cannot close: another request took the
/// name between the check and the insert.
pub trait OnUnique<T> {
    fn on_unique(self, error: impl FnOnce() -> Error) -> Result<T>;
}

impl<T> OnUnique<T> for std::result::Result<T, sqlx::Error> {
    fn on_unique(self, error: impl FnOnce() -> Error) -> Result<T> {
        self.map_err(|e| match e.as_database_error() {
            Some(d) if d.is_unique_violation() => error(),
            _ => Error::Database(e),
        })
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        match f.recovery {
            Recovery::Login => Error::NotSignedIn,
            Recovery::LoginAgain => Error::SessionExpired,
            Recovery::SetupPlatform => Error::NoPlatform,
            Recovery::None if f.status == Status::ServiceUnavailable => {
                Error::Database(sqlx::Error::PoolTimedOut)
            }
            Recovery::None => Error::Internal(f.message),
        }
    }
}

/// Errors answer through the catchers, so HTML pages, recovery redirects and the JSON shape under
/// `/api/` are each decided in one place.
impl<'r> Responder<'r, 'static> for Error {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let failure = Failure::record(req, &self);
        Err(failure.status)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
