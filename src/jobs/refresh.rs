//! Keeps stored account copies fresh (older than `account_refresh_interval`) and refreshes
//! Pixelfed tokens before they expire.

use std::time::Duration;

use rocket::{Orbit, Rocket};

use super::Deps;
use crate::db::{ScopedConnection, Timestamp};
use crate::error::Result;
use crate::models::Platform;
use crate::services::platforms::{self, Checked, REFRESH_BEFORE_EXPIRY};

/// How long a claim holds: longer than one platform's calls can take (two 15 s requests).
const CLAIM_SECONDS: i64 = 120;
/// Platforms one pass takes on.
const BATCH: i64 = 20;

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub verified: usize,
    pub needs_reconnect: usize,
    pub unavailable: usize,
}

/// Claims the due platforms and checks each with its instance, one at a time, holding no pool
/// connection across a call.
pub async fn run_once(deps: &Deps) -> Result<Pass> {
    let interval =
        i64::try_from(deps.runtime.settings.account_refresh_interval).unwrap_or(i64::MAX);
    let now = Timestamp::now();
    let claimed = {
        let mut db = deps.pool.acquire().await?;
        let engine = db.engine();
        Platform::claim_due(
            &mut db,
            engine,
            now.minus_seconds(interval),
            now.plus_seconds(REFRESH_BEFORE_EXPIRY),
            now.plus_seconds(CLAIM_SECONDS),
            BATCH,
        )
        .await?
    };
    let app = deps.app();
    let mut pass = Pass::default();
    for (id, owner) in claimed {
        let scope = ScopedConnection::new(deps.pool.clone());
        match platforms::check(&scope, &app, owner, id).await {
            Ok(Checked::Verified(_)) => pass.verified += 1,
            Ok(Checked::NeedsReconnect(_)) => pass.needs_reconnect += 1,
            Ok(Checked::Unavailable(_, message)) => {
                pass.unavailable += 1;
                rocket::info!("refresh of platform {id} postponed: {message}");
            }
            // Deleted meanwhile, or the database is away: the claim runs out by itself.
            Err(e) => rocket::warn!("refresh of platform {id} failed: {e}"),
        }
        drop(scope);
        if let Ok(mut db) = deps.pool.acquire().await {
            let _ = Platform::release_claim(&mut db, id).await;
        }
    }
    Ok(pass)
}

/// The loop: a pass every minute (or every interval, when shorter), until shutdown.
pub fn spawn(rocket: &Rocket<Orbit>) {
    let seconds = rocket
        .state::<crate::config::Runtime>()
        .map_or(60, |r| r.settings.account_refresh_interval.clamp(1, 60));
    super::every(
        rocket,
        "background refresh",
        Duration::from_secs(seconds),
        |deps| async move { run_once(&deps).await },
    );
}
