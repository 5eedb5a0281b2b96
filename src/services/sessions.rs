//! Starting and ending sessions.

use crate::config::Settings;
use crate::crypto::{random_token, token_hash};
use crate::db::{DbConn, Timestamp};
use crate::error::Result;
use crate::guards::ClientInfo;
use crate::models::{NewSession, SessionRecord};

/// A new session's secret: goes into the browser's cookie, never into the database.
pub struct SessionToken(pub String);

/// Starts a brand-new session for `user_id`, replacing the one whose token the browser had (a
/// token a browser had before login never becomes a session), and forgets expired sessions so
/// the table stays small without a background job.
pub async fn start(
    db: &mut DbConn,
    settings: &Settings,
    client: &ClientInfo,
    user_id: i64,
    replacing: Option<&str>,
) -> Result<SessionToken> {
    if let Some(old) = replacing {
        SessionRecord::delete_by_token_hash(db, &token_hash(old)).await?;
    }
    SessionRecord::delete_stale(db, settings.idle_timeout()).await?;
    let token = random_token();
    SessionRecord::create(
        db,
        NewSession {
            user_id,
            token_hash: &token_hash(&token),
            csrf_token: &random_token(),
            expires_at: Timestamp::now().plus_seconds(settings.absolute_timeout()),
            user_agent: client.user_agent.as_deref(),
            ip: client.ip(),
        },
    )
    .await?;
    Ok(SessionToken(token))
}
