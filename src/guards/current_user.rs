use rocket::http::Cookie;
use rocket::request::{FromRequest, Outcome, Request};

use super::Connection;
use crate::config::Runtime;
use crate::crypto::token_hash;
use crate::db::Timestamp;
use crate::error::{Error, Failure};
use crate::models::{Party, Role, SessionRecord};

pub const SESSION_COOKIE: &str = "tether_session";

/// `last_seen_at` is written at most this often per session, not on every request.
const TOUCH_INTERVAL: i64 = 60;

/// The signed-in user, loaded afresh for every request from the session cookie: session and user
/// in one query, so nothing read here can outlive the request that loaded it.
#[derive(Clone, Debug)]
pub struct CurrentUser {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub role: Role,
    pub session_id: i64,
    pub active_platform_id: Option<i64>,
    pub csrf_token: String,
}

impl CurrentUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// This user as the audit trail names them.
    pub fn party(&self) -> Party<'_> {
        Party {
            id: Some(self.id),
            name: &self.username,
        }
    }

    async fn resolve(req: &Request<'_>) -> Result<CurrentUser, Error> {
        let Some(cookie) = req.cookies().get_private(SESSION_COOKIE) else {
            return Err(Error::NotSignedIn);
        };
        let runtime = req
            .rocket()
            .state::<Runtime>()
            .ok_or_else(|| Error::Internal("settings are not managed".into()))?;
        let conn = match req.guard::<Connection<'_>>().await {
            Outcome::Success(conn) => conn,
            _ => return Err(Error::Database(sqlx::Error::PoolClosed)),
        };
        let mut db = conn.get().await?;
        let Some(record) =
            SessionRecord::find_by_token_hash(&mut *db, &token_hash(cookie.value())).await?
        else {
            return Err(Error::SessionExpired);
        };

        let now = Timestamp::now();
        let idle_deadline = record
            .last_seen_at
            .plus_seconds(runtime.settings.idle_timeout());
        if record.expires_at <= now || idle_deadline <= now || !record.user_is_active {
            SessionRecord::delete(&mut *db, record.session_id).await?;
            return Err(Error::SessionExpired);
        }
        if now.unix() - record.last_seen_at.unix() >= TOUCH_INTERVAL {
            SessionRecord::touch(&mut *db, record.session_id).await?;
        }

        Ok(CurrentUser {
            id: record.user_id,
            role: record.role,
            username: record.username,
            email: record.email,
            session_id: record.session_id,
            active_platform_id: record.active_platform_id,
            csrf_token: record.csrf_token,
        })
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for &'r CurrentUser {
    type Error = Failure;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Failure> {
        let cached = req
            .local_cache_async(async {
                CurrentUser::resolve(req).await.map_err(|error| {
                    if matches!(error, Error::SessionExpired) {
                        req.cookies().remove_private(Cookie::from(SESSION_COOKIE));
                    }
                    Failure::record(req, &error)
                })
            })
            .await;
        super::outcome(req, cached)
    }
}
