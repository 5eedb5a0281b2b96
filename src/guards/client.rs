use std::convert::Infallible;

use rocket::request::{FromRequest, Outcome, Request};

/// Who is on the other end, as far as we can tell: kept with a session so people can recognise
/// their sessions. Bounded, since both come from the client.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

const MAX_USER_AGENT: usize = 256;

impl ClientInfo {
    pub fn of(req: &Request<'_>) -> ClientInfo {
        let user_agent = req.headers().get_one("User-Agent").map(|ua| {
            ua.chars()
                .filter(|c| !c.is_control())
                .take(MAX_USER_AGENT)
                .collect()
        });
        let ip = req.client_ip().map(|ip| ip.to_string());
        ClientInfo { user_agent, ip }
    }

    pub fn ip(&self) -> Option<&str> {
        self.ip.as_deref()
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ClientInfo {
    type Error = Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Infallible> {
        Outcome::Success(ClientInfo::of(req))
    }
}
