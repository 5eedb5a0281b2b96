//! OAuth apps tether registered on instances, and the single-use states of connects in progress.

use sqlx::FromRow;

use super::PlatformType;
use crate::db::{query, Exec, Timestamp};

/// One registration per (instance origin, redirect URI), reused by every user who connects an
/// account there. The client secret is encrypted like access tokens.
#[derive(Clone, Debug, FromRow)]
pub struct OAuthApp {
    pub id: i64,
    pub instance_url: String,
    pub redirect_uri: String,
    pub platform_type: PlatformType,
    pub client_id: String,
    pub client_secret_encrypted: Vec<u8>,
}

const APP_COLUMNS: &str =
    "id, instance_url, redirect_uri, platform_type, client_id, client_secret_encrypted";

impl OAuthApp {
    pub async fn find(
        db: &mut impl Exec,
        instance_url: &str,
        redirect_uri: &str,
    ) -> Result<Option<OAuthApp>, sqlx::Error> {
        query(&format!(
            "SELECT {APP_COLUMNS} FROM oauth_apps WHERE instance_url = $1 AND redirect_uri = $2"
        ))
        .bind(instance_url)
        .bind(redirect_uri)
        .fetch_optional(db)
        .await
    }

    pub async fn find_by_id(db: &mut impl Exec, id: i64) -> Result<Option<OAuthApp>, sqlx::Error> {
        query(&format!(
            "SELECT {APP_COLUMNS} FROM oauth_apps WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(db)
        .await
    }

    /// Stores a registration; when another request registered the same pair meanwhile, keeps
    /// theirs and returns it (one app per pair, whoever wins).
    pub async fn store(
        db: &mut impl Exec,
        instance_url: &str,
        redirect_uri: &str,
        platform_type: PlatformType,
        client_id: &str,
        client_secret_encrypted: Vec<u8>,
    ) -> Result<OAuthApp, sqlx::Error> {
        query(
            "INSERT INTO oauth_apps
                 (instance_url, redirect_uri, platform_type, client_id, client_secret_encrypted,
                  created_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (instance_url, redirect_uri) DO NOTHING",
        )
        .bind(instance_url)
        .bind(redirect_uri)
        .bind(platform_type)
        .bind(client_id)
        .bind(client_secret_encrypted)
        .bind(Timestamp::now())
        .execute(&mut *db)
        .await?;
        OAuthApp::find(db, instance_url, redirect_uri)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// Forgets a registration the instance no longer accepts (`invalid_client`); the next
    /// connect registers again.
    pub async fn forget(db: &mut impl Exec, id: i64) -> Result<(), sqlx::Error> {
        query("DELETE FROM oauth_apps WHERE id = $1")
            .bind(id)
            .execute(db)
            .await
            .map(drop)
    }
}

/// A connect in progress: bound to one tether session and one app, used once, short-lived.
#[derive(Clone, Debug, FromRow)]
pub struct OAuthState {
    pub session_id: i64,
    pub app_id: i64,
    pub code_verifier_encrypted: Vec<u8>,
    pub expires_at: Timestamp,
}

impl OAuthState {
    pub async fn create(
        db: &mut impl Exec,
        state_hash: &str,
        state: &OAuthState,
    ) -> Result<(), sqlx::Error> {
        // Old states would pile up from connects people abandoned.
        query("DELETE FROM oauth_states WHERE expires_at <= $1")
            .bind(Timestamp::now())
            .execute(&mut *db)
            .await?;
        query(
            "INSERT INTO oauth_states
                 (state_hash, session_id, app_id, code_verifier_encrypted, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(state_hash)
        .bind(state.session_id)
        .bind(state.app_id)
        .bind(state.code_verifier_encrypted.clone())
        .bind(state.expires_at)
        .execute(db)
        .await
        .map(drop)
    }

    /// Takes the state out in one statement: of two callbacks with the same state, exactly one
    /// gets it. Whether it belongs to the caller's session and is still fresh is the caller's
    /// check; a state someone else presented is gone either way.
    pub async fn consume(
        db: &mut impl Exec,
        state_hash: &str,
    ) -> Result<Option<OAuthState>, sqlx::Error> {
        query(
            "DELETE FROM oauth_states WHERE state_hash = $1
             RETURNING session_id, app_id, code_verifier_encrypted, expires_at",
        )
        .bind(state_hash)
        .fetch_optional(db)
        .await
    }
}
