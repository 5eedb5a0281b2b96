//! The fediverse instance API tether speaks: detection, app registration, the OAuth 2 code flow
//! with PKCE, token refresh and revocation, and the signed-in account. Mastodon and Pixelfed
//! share this surface (Pixelfed implements Mastodon's client API) with the differences noted
//! where they matter. Every call goes through the one [`Outbound`] client.

use serde::Deserialize;
use serde_json::Value as Json;
use url::Url;

use crate::db::Timestamp;
use crate::error::{UpstreamError, UpstreamKind};
use crate::models::PlatformType;
use crate::outbound::{Outbound, OutboundError, OutboundRequest, OutboundResponse};

mod statuses;

pub use statuses::{
    edits_media_attributes, Attachment, AttachmentEdit, MediaKind, Page, RateLimit, Status,
    StatusEdit, StatusSource,
};

/// Mastodon has granular scopes since 2.4.3; Pixelfed knows only `read write follow push`.
pub fn scopes(kind: PlatformType) -> &'static str {
    match kind {
        PlatformType::Mastodon => "read:accounts read:statuses write:statuses write:media",
        PlatformType::Pixelfed => "read write",
    }
}

/// Why an instance call did not give what was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstanceError {
    /// No usable answer (unreachable, timeout, redirect, too large, garbage).
    Outbound(OutboundError),
    /// The instance refused the token or code (`401`, `invalid_grant`).
    Rejected(String),
    /// The instance does not know tether's app (deleted, or the instance was reset).
    InvalidClient,
    /// It answered, but it is not a Mastodon-compatible server.
    NotMastodonLike,
    /// Any other error status.
    Status(u16),
    /// `429`: the instance's rate limit is used up until then (when it said).
    RateLimited(Option<Timestamp>),
    /// `404`: the post or attachment is not there (deleted, or not the token's account's).
    NotFound,
    /// `422`: the instance refused the content, in its own words.
    Invalid(String),
}

impl From<OutboundError> for InstanceError {
    fn from(e: OutboundError) -> Self {
        InstanceError::Outbound(e)
    }
}

impl InstanceError {
    /// The user-facing message, naming the instance by its host.
    pub fn message(&self, host: &str) -> String {
        match self {
            InstanceError::Outbound(e) => e.clone().into_upstream(host).message(),
            InstanceError::Rejected(_) => {
                format!("{host} did not accept the access token. Check it, or connect again.")
            }
            InstanceError::InvalidClient => {
                format!("{host} no longer knows tether's app registration. Please try again.")
            }
            InstanceError::NotMastodonLike => {
                format!("{host} does not look like a Mastodon or Pixelfed server.")
            }
            InstanceError::Status(code) => {
                format!("{host} answered with an error (HTTP {code}). Please try again later.")
            }
            InstanceError::RateLimited(Some(until)) => format!(
                "{host} asked tether to slow down until {}.",
                until.display()
            ),
            InstanceError::RateLimited(None) => format!("{host} asked tether to slow down."),
            InstanceError::NotFound => format!("{host} no longer has this post."),
            InstanceError::Invalid(why) => format!("{host} refused the change: {why}"),
        }
    }

    pub fn into_upstream(self, host: &str) -> UpstreamError {
        match self {
            InstanceError::Outbound(e) => e.into_upstream(host),
            other => UpstreamError {
                service: host.to_string(),
                kind: UpstreamKind::BadResponse(match other {
                    InstanceError::Rejected(_) => "the token was refused".into(),
                    InstanceError::InvalidClient => "the app registration was refused".into(),
                    InstanceError::NotMastodonLike => "not a Mastodon-compatible server".into(),
                    InstanceError::Status(code) => format!("HTTP {code}"),
                    InstanceError::RateLimited(_) => "rate limited".into(),
                    InstanceError::NotFound => "not found".into(),
                    InstanceError::Invalid(why) => why,
                    InstanceError::Outbound(_) => String::new(),
                }),
            },
        }
    }
}

pub type Result<T> = std::result::Result<T, InstanceError>;

/// What the instance endpoint says about the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceInfo {
    pub kind: PlatformType,
    pub version: String,
    /// The longest media description the instance accepts, where it says.
    pub description_limit: Option<i64>,
}

/// The account behind a token (`verify_credentials`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Account {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    pub username: String,
    pub acct: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub avatar: Option<String>,
    #[serde(default)]
    pub followers_count: i64,
    #[serde(default)]
    pub following_count: i64,
    #[serde(default)]
    pub statuses_count: i64,
}

impl Account {
    /// What tether keeps of it.
    pub fn copy(&self) -> crate::models::AccountCopy {
        crate::models::AccountCopy {
            account_id: self.id.clone(),
            username: self.username.clone(),
            acct: self.acct.clone(),
            display_name: self.display_name.chars().take(200).collect(),
            // Only an https (or allow-listed local http) picture is worth an <img>.
            avatar_url: self
                .avatar
                .clone()
                .filter(|a| a.starts_with("https://") || a.starts_with("http://")),
            followers_count: self.followers_count,
            following_count: self.following_count,
            statuses_count: self.statuses_count,
        }
    }
}

/// An app registered on an instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppCredentials {
    pub client_id: String,
    pub client_secret: String,
}

/// Tokens from the token endpoint. Mastodon's never expire; Pixelfed's come with a refresh token
/// and a lifetime.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct TokenSet {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<i64>,
}

/// Pixelfed returns numeric ids (`client_id: 7`); Mastodon strings.
fn id_string<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    match Json::deserialize(d)? {
        Json::String(s) => Ok(s),
        Json::Number(n) => Ok(n.to_string()),
        _ => Err(serde::de::Error::custom("expected a string or number id")),
    }
}

/// One instance, addressed by its origin (`https://mastodon.social`).
pub struct Instance<'a> {
    http: &'a Outbound,
    origin: Url,
}

impl<'a> Instance<'a> {
    pub fn new(http: &'a Outbound, origin: &str) -> Result<Instance<'a>> {
        let origin = Url::parse(origin)
            .map_err(|_| InstanceError::Outbound(OutboundError::NotAllowed("bad URL".into())))?;
        Ok(Instance { http, origin })
    }

    pub fn host(&self) -> String {
        self.origin.host_str().unwrap_or_default().to_string()
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.origin
            .join(path)
            .map_err(|_| InstanceError::Outbound(OutboundError::NotAllowed("bad URL".into())))
    }

    async fn send(&self, req: OutboundRequest) -> Result<OutboundResponse> {
        Ok(self.http.send(req).await?)
    }

    /// Mastodon 4.0+ answers `/api/v2/instance`; older Mastodon and Pixelfed `/api/v1/instance`,
    /// whose `version` names Pixelfed (`3.5.3 (compatible; Pixelfed 0.12.4)`).
    pub async fn detect(&self) -> Result<InstanceInfo> {
        let v2 = self
            .send(OutboundRequest::get(self.url("/api/v2/instance")?))
            .await?;
        if v2.status == 429 {
            return Err(InstanceError::RateLimited(RateLimit::of(&v2).reset));
        }
        let body: Json = if v2.is_success() {
            v2.json().map_err(|_| InstanceError::NotMastodonLike)?
        } else {
            let v1 = self
                .send(OutboundRequest::get(self.url("/api/v1/instance")?))
                .await?;
            if v1.status == 429 {
                return Err(InstanceError::RateLimited(RateLimit::of(&v1).reset));
            }
            if !v1.is_success() {
                return Err(if v1.status >= 500 {
                    InstanceError::Status(v1.status)
                } else {
                    InstanceError::NotMastodonLike
                });
            }
            v1.json().map_err(|_| InstanceError::NotMastodonLike)?
        };
        let version = body
            .get("version")
            .and_then(Json::as_str)
            .ok_or(InstanceError::NotMastodonLike)?
            .to_string();
        let kind = if version.to_lowercase().contains("pixelfed") {
            PlatformType::Pixelfed
        } else {
            PlatformType::Mastodon
        };
        let description_limit = body
            .pointer("/configuration/media_attachments/description_limit")
            .and_then(Json::as_i64);
        Ok(InstanceInfo {
            kind,
            version,
            description_limit,
        })
    }

    /// Registers tether (Pixelfed reads only the name and one redirect URI).
    pub async fn register_app(
        &self,
        kind: PlatformType,
        redirect_uri: &str,
        website: &str,
    ) -> Result<AppCredentials> {
        let req = OutboundRequest::post(self.url("/api/v1/apps")?).form(&[
            ("client_name", "tether"),
            ("redirect_uris", redirect_uri),
            ("scopes", scopes(kind)),
            ("website", website),
        ]);
        let res = self.send(req).await?;
        if !res.is_success() {
            return Err(InstanceError::Status(res.status));
        }
        #[derive(Deserialize)]
        struct App {
            #[serde(deserialize_with = "id_string")]
            client_id: String,
            client_secret: String,
        }
        let app: App = res.json()?;
        Ok(AppCredentials {
            client_id: app.client_id,
            client_secret: app.client_secret,
        })
    }

    /// Where the browser goes to approve tether. PKCE (S256) is always sent: Mastodon checks it
    /// since 4.3 and older servers ignore it.
    pub fn authorize_url(
        &self,
        kind: PlatformType,
        client_id: &str,
        redirect_uri: &str,
        state: &str,
        code_challenge: &str,
    ) -> Result<Url> {
        let mut url = self.url("/oauth/authorize")?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", scopes(kind))
            .append_pair("state", state)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(url)
    }

    async fn token(&self, form: &[(&str, &str)]) -> Result<TokenSet> {
        let res = self
            .send(OutboundRequest::post(self.url("/oauth/token")?).form(form))
            .await?;
        if res.is_success() {
            return Ok(res.json()?);
        }
        Err(oauth_error(&res))
    }

    pub async fn exchange_code(
        &self,
        app: &AppCredentials,
        redirect_uri: &str,
        code: &str,
        code_verifier: &str,
    ) -> Result<TokenSet> {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", &app.client_id),
            ("client_secret", &app.client_secret),
            ("redirect_uri", redirect_uri),
            ("code_verifier", code_verifier),
        ])
        .await
    }

    /// Pixelfed tokens expire; the refresh token buys a new pair.
    pub async fn refresh(&self, app: &AppCredentials, refresh_token: &str) -> Result<TokenSet> {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &app.client_id),
            ("client_secret", &app.client_secret),
            ("scope", "read write"),
        ])
        .await
    }

    /// Best effort: Pixelfed may answer 404 (unsupported), which is not an error here.
    pub async fn revoke(&self, app: &AppCredentials, token: &str) -> Result<()> {
        let req = OutboundRequest::post(self.url("/oauth/revoke")?).form(&[
            ("client_id", &app.client_id),
            ("client_secret", &app.client_secret),
            ("token", token),
        ]);
        let res = self.send(req).await?;
        match res.status {
            200..=299 | 404 => Ok(()),
            status => Err(InstanceError::Status(status)),
        }
    }

    pub async fn verify_credentials(&self, token: &str) -> Result<Account> {
        let req =
            OutboundRequest::get(self.url("/api/v1/accounts/verify_credentials")?).bearer(token);
        let res = self.send(req).await?;
        match res.status {
            200..=299 => res
                .json::<Account>()
                .map_err(|_| InstanceError::NotMastodonLike),
            401 | 403 => Err(InstanceError::Rejected(error_text(&res))),
            404 => Err(InstanceError::NotMastodonLike),
            status => Err(InstanceError::Status(status)),
        }
    }
}

/// `{"error": "invalid_grant", …}` from the token endpoint.
fn oauth_error(res: &OutboundResponse) -> InstanceError {
    let code = res
        .json::<Json>()
        .ok()
        .and_then(|b| b.get("error").and_then(Json::as_str).map(str::to_string))
        .unwrap_or_default();
    match code.as_str() {
        "invalid_client" | "unauthorized_client" => InstanceError::InvalidClient,
        "invalid_grant" => InstanceError::Rejected(code),
        _ if res.status == 401 => InstanceError::InvalidClient,
        _ if res.status == 400 => InstanceError::Rejected(code),
        _ => InstanceError::Status(res.status),
    }
}

/// The instance's own words for a refusal, bounded (never echoed with a token in it: Mastodon's
/// messages are fixed strings).
fn error_text(res: &OutboundResponse) -> String {
    res.json::<Json>()
        .ok()
        .and_then(|b| {
            b.get("error")
                .or_else(|| b.get("message"))
                .and_then(Json::as_str)
                .map(|s| s.chars().take(200).collect())
        })
        .unwrap_or_else(|| format!("HTTP {}", res.status))
}
