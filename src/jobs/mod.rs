//! Background work, beside the server on the same pool. Each job is a plain function of the
//! pool and the application's shared parts, so a test can run one pass directly; `stage` starts
//! the loops at liftoff and stops them at shutdown. Work that must happen once is claimed in the
//! database, so several tether processes can run the same jobs.

pub mod media_audit;
pub mod refresh;

use rocket::fairing::AdHoc;
use rocket::Rocket;

use crate::config::Runtime;
use crate::crypto::{PasswordHasherPool, TokenCipher};
use crate::db::{Db, DbPool};
use crate::guards::{App, ClientInfo};
use crate::outbound::Outbound;

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
