//! Background work, beside the server on the same pool. Each job is a plain function of the
//! pool and the application's shared parts, so a test can run one pass directly; `stage` starts
//! the loops at liftoff and stops them at shutdown. Work that must happen once is claimed in the
//! database, so several tether processes can run the same jobs.

pub mod media_audit;
pub mod refresh;

use rocket::fairing::AdHoc;
use std::time::Duration;

use rocket::Rocket;

use crate::config::Runtime;
use crate::crypto::{PasswordHasherPool, TokenCipher};
use crate::db::{Db, DbPool};
use crate::guards::{App, ClientInfo};
use crate::outbound::Outbound;

/// Runs `pass` every `every` until shutdown, on its own task; a failed pass is logged and the
/// next one comes all the same.
pub fn every<F, Fut, T>(
    rocket: &Rocket<rocket::Orbit>,
    name: &'static str,
    every: Duration,
    pass: F,
) where
    F: Fn(Deps) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = crate::error::Result<T>> + Send,
{
    let Some(deps) = Deps::of(rocket) else {
        rocket::warn!("{name} not started: application state missing");
        return;
    };
    let mut shutdown = rocket.shutdown();
    rocket::tokio::spawn(async move {
        loop {
            rocket::tokio::select! {
                _ = &mut shutdown => break,
                _ = rocket::tokio::time::sleep(every) => {}
            }
            if let Err(e) = pass(deps.clone()).await {
                rocket::warn!("{name} pass failed: {e}");
            }
        }
    });
}

/// What a pass needs, owned, so the loop outlives the liftoff callback.
#[derive(Clone)]
pub struct Deps {
    pub pool: DbPool,
    pub runtime: Runtime,
    pub cipher: TokenCipher,
    pub hasher: PasswordHasherPool,
    pub http: Outbound,
}

impl Deps {
    pub fn of<P: rocket::Phase>(rocket: &Rocket<P>) -> Option<Deps> {
        Some(Deps {
            pool: (**rocket.state::<Db>()?).clone(),
            runtime: rocket.state::<Runtime>()?.clone(),
            cipher: rocket.state::<TokenCipher>()?.clone(),
            hasher: rocket.state::<PasswordHasherPool>()?.clone(),
            http: rocket.state::<Outbound>()?.clone(),
        })
    }

    pub fn app(&self) -> App<'_> {
        App {
            runtime: &self.runtime,
            hasher: &self.hasher,
            cipher: &self.cipher,
            http: &self.http,
            client: ClientInfo::default(),
        }
    }
}

pub fn stage() -> AdHoc {
    AdHoc::on_liftoff("Background jobs", |rocket| {
        Box::pin(async move {
            refresh::spawn(rocket);
            media_audit::spawn(rocket);
        })
    })
}
