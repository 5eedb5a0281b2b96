use rocket::outcome::try_outcome;
use rocket::request::{FromRequest, Outcome, Request};

use super::{Connection, CurrentUser};
use crate::error::{Error, Failure};
use crate::models::{AuditSnapshot, Platform, SessionRecord};

/// The platform the dashboard works with, resolved afresh each request: the session's choice if
/// it is still this user's and active; else the user's default; else the oldest active one (and
/// the session's stale choice is repaired). No active platform at all is a failure that the
/// catchers turn into the setup page.
#[derive(Clone, Debug)]
pub struct PlatformContext {
    pub active: Platform,
    /// All of the user's active platforms, oldest first: the switcher's entries.
    pub platforms: Vec<Platform>,
    /// The active platform's audit, loaded in the same statement when the active platform is
    /// the one the session chose (or the default): the steady state. `None` after a fallback;
    /// then whoever needs it loads it.
    pub active_audit: Option<AuditSnapshot>,
}

impl PlatformContext {
    async fn resolve(req: &Request<'_>, user: &CurrentUser) -> Result<PlatformContext, Error> {
        let conn = match req.guard::<Connection<'_>>().await {
            Outcome::Success(conn) => conn,
            _ => return Err(Error::Database(sqlx::Error::PoolClosed)),
        };
        let mut db = conn.get().await?;
        let rows =
            Platform::list_active_with_audit(&mut *db, user.id, user.active_platform_id).await?;
        let mut focused = None;
        let mut platforms = Vec::with_capacity(rows.len());
        for (platform, snapshot) in rows {
            if let Some(snapshot) = snapshot {
                focused = Some((platform.id, snapshot));
            }
            platforms.push(platform);
        }
        let chosen = user
            .active_platform_id
            .and_then(|id| platforms.iter().find(|p| p.id == id))
            .or_else(|| platforms.iter().find(|p| p.is_default))
            .or_else(|| platforms.first())
            .cloned();

        let stale = user.active_platform_id.is_some()
            && user.active_platform_id != chosen.as_ref().map(|p| p.id);
        if stale {
            // Best effort: if the fallback itself vanished meanwhile, the next request repairs.
            SessionRecord::set_active_platform(
                &mut *db,
                user.session_id,
                user.id,
                chosen.as_ref().map(|p| p.id),
            )
            .await?;
        }
        match chosen {
            Some(active) => {
                let active_audit = focused
                    .filter(|(id, _)| *id == active.id)
                    .map(|(_, snapshot)| snapshot);
                Ok(PlatformContext {
                    active,
                    platforms,
                    active_audit,
                })
            }
            None => Err(Error::NoPlatform),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for &'r PlatformContext {
    type Error = Failure;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Failure> {
        let user = try_outcome!(req.guard::<&CurrentUser>().await);
        let cached = req
            .local_cache_async(async {
                PlatformContext::resolve(req, user)
                    .await
                    .map_err(|error| Failure::record(req, &error))
            })
            .await;
        super::outcome(req, cached)
    }
}
