use rocket::request::{FromRequest, Outcome, Request};

use super::{fail, ClientInfo};
use crate::config::Runtime;
use crate::crypto::{PasswordHasherPool, TokenCipher};
use crate::error::{Error, Failure};
use crate::outbound::Outbound;

/// What the application lends a handler besides the database: its settings, the password
/// hasher, the token cipher, and who is asking. One guard instead of four parameters.
pub struct App<'r> {
    pub runtime: &'r Runtime,
    pub hasher: &'r PasswordHasherPool,
    pub cipher: &'r TokenCipher,
    pub http: &'r Outbound,
    pub client: ClientInfo,
}

impl<'r> App<'r> {
    /// The same, outside a request (background jobs): no client.
    pub fn of<P: rocket::Phase>(rocket: &'r rocket::Rocket<P>) -> Option<App<'r>> {
        Some(App {
            runtime: rocket.state::<Runtime>()?,
            hasher: rocket.state::<PasswordHasherPool>()?,
            cipher: rocket.state::<TokenCipher>()?,
            http: rocket.state::<Outbound>()?,
            client: ClientInfo::default(),
        })
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for App<'r> {
    type Error = Failure;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Failure> {
        match App::of(req.rocket()) {
            Some(app) => Outcome::Success(App {
                client: ClientInfo::of(req),
                ..app
            }),
            None => fail(req, Error::Internal("configuration is not managed".into())),
        }
    }
}
