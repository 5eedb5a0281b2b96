use std::convert::Infallible;

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::uri::Origin;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::Data;

/// What an instance sends back to `/platforms/connect/callback`. The authorization code must
/// never reach a log line, and Rocket logs every request's URI with its query, so a request
/// fairing takes the parameters out of the URI before Rocket logs it and keeps them here.
#[derive(Clone, Debug, Default)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
}

pub const CALLBACK_PATH: &str = "/platforms/connect/callback";

/// The request fairing that moves the callback's query into [`CallbackParams`].
pub struct HideCallbackQuery;

#[rocket::async_trait]
impl Fairing for HideCallbackQuery {
    fn info(&self) -> Info {
        Info {
            name: "Keep OAuth callback codes out of the log",
            kind: Kind::Request,
        }
    }

    async fn on_request(&self, req: &mut Request<'_>, _: &mut Data<'_>) {
        if req.uri().path().as_str() != CALLBACK_PATH {
            return;
        }
        let mut params = CallbackParams::default();
        if let Some(query) = req.uri().query() {
            for (key, value) in url::form_urlencoded::parse(query.as_str().as_bytes()) {
                let slot = match key.as_ref() {
                    "code" => &mut params.code,
                    "state" => &mut params.state,
                    "error" => &mut params.error,
                    _ => continue,
                };
                if slot.is_none() {
                    *slot = Some(value.into_owned());
                }
            }
        }
        req.local_cache(|| params);
        req.set_uri(Origin::path_only(CALLBACK_PATH));
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for &'r CallbackParams {
    type Error = Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Infallible> {
        Outcome::Success(req.local_cache(CallbackParams::default))
    }
}
