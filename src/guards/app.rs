use rocket::request::{FromRequest, Outcome, Request};

use super::{fail, ClientInfo};
use crate::config::Runtime;
use crate::crypto::{PasswordHasherPool, TokenCipher};
use crate::error::{Error, Failure};

/// What the application lends a handler besides the database: its settings, the password
/// hasher, the token cipher, and who is asking. One guard instead of four parameters.
pub struct App<'r> {
    pub runtime: &'r Runtime,
    pub hasher: &'r PasswordHasherPool,
    pub cipher: &'r TokenCipher,
    pub client: ClientInfo,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for App<'r> {
    type Error = Failure;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Failure> {
        let rocket = req.rocket();
        let (Some(runtime), Some(hasher), Some(cipher)) = (
            rocket.state::<Runtime>(),
            rocket.state::<PasswordHasherPool>(),
            rocket.state::<TokenCipher>(),
        ) else {
            return fail(req, Error::Internal("configuration is not managed".into()));
        };
        let client = ClientInfo::of(req);
        Outcome::Success(App {
            runtime,
            hasher,
            cipher,
            client,
        })
    }
}
