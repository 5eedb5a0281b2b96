//! Connecting an account the way fediverse apps do: OAuth 2 with PKCE against the instance.
//!
//! `start` registers tether on the instance once per (origin, redirect URI), remembers a
//! single-use state bound to this session, and returns the instance's authorize URL; `finish`
//! takes the state back, exchanges the code, verifies the token and stores the account. Every
//! call to the instance runs with the database connection back in the pool.

use url::Url;

use crate::crypto::{pkce_challenge, random_token, token_hash, NO_USER};
use crate::db::{ScopedConnection, Timestamp};
use crate::error::Result;
use crate::forms;
use crate::guards::{App, CurrentUser};
use crate::instance::{AppCredentials, Instance, InstanceError, TokenSet};
use crate::models::{
    AccountCopy, NewPlatform, OAuthApp, OAuthState, Platform, SessionRecord, StoredSecrets, User,
};

/// A connect must come back within this many seconds.
pub const STATE_LIFETIME: i64 = 600;

pub const MSG_NO_PUBLIC_URL: &str = "Connecting with your instance needs tether's public address: \
     an administrator must set `public_url`. You can use an access token instead.";

pub enum Started {
    /// Send the browser here.
    Authorize(Url),
    /// A problem with what was typed or with the instance, for the instance field.
    Invalid(String),
}

pub async fn start(
    conn: &ScopedConnection,
    app: &App<'_>,
    user: &CurrentUser,
    input: &str,
) -> Result<Started> {
    let Some(redirect_uri) = app.runtime.redirect_uri() else {
        return Ok(Started::Invalid(MSG_NO_PUBLIC_URL.into()));
    };
    let origin = match forms::normalize_instance_url(input) {
        Ok(origin) => origin,
        Err(message) => return Ok(Started::Invalid(message)),
    };
    let instance = match Instance::new(app.http, &origin) {
        Ok(instance) => instance,
        Err(_) => return Ok(Started::Invalid(forms::MSG_BAD_INSTANCE.into())),
    };
    let host = instance.host();
    let known = {
        let mut db = conn.get().await?;
        OAuthApp::find(&mut *db, &origin, &redirect_uri).await?
    };
    let registered = match known {
        Some(registered) => registered,
        None => {
            let website = app.runtime.public_url.clone().unwrap_or_default();
            let registration = conn
                .released(async {
                    let info = instance.detect().await?;
                    let credentials = instance
                        .register_app(info.kind, &redirect_uri, &website)
                        .await?;
                    Ok::<_, InstanceError>((info, credentials))
                })
                .await?;
            let (info, credentials) = match registration {
                Ok(done) => done,
                Err(e) => return Ok(Started::Invalid(e.message(&host))),
            };
            let secret = app.cipher.encrypt(&credentials.client_secret, NO_USER)?;
            let mut db = conn.get().await?;
            OAuthApp::store(
                &mut *db,
                &origin,
                &redirect_uri,
                info.kind,
                &credentials.client_id,
                secret,
            )
            .await?
        }
    };

    let state = random_token();
    let verifier = random_token();
    {
        let mut db = conn.get().await?;
        let pending = OAuthState {
            session_id: user.session_id,
            app_id: registered.id,
            code_verifier_encrypted: app.cipher.encrypt(&verifier, user.id)?,
            expires_at: Timestamp::now().plus_seconds(STATE_LIFETIME),
        };
        OAuthState::create(&mut *db, &token_hash(&state), &pending).await?;
    }
    let url = instance.authorize_url(
        registered.platform_type,
        &registered.client_id,
        &redirect_uri,
        &state,
        &pkce_challenge(&verifier),
    );
    Ok(match url {
        Ok(url) => Started::Authorize(url),
        Err(e) => Started::Invalid(e.message(&host)),
    })
}

/// What the instance sent back to the callback.
pub struct Callback<'a> {
    pub code: Option<&'a str>,
    pub state: Option<&'a str>,
    pub error: Option<&'a str>,
}

pub enum Finished {
    Connected(Platform),
    Reconnected(Platform),
    /// Nothing was stored; the message says why, in words.
    Failed(String),
}

const MSG_BAD_STATE: &str =
    "That sign-in could not be matched to a connect you started here, or it expired. Please connect again.";

pub async fn finish(
    conn: &ScopedConnection,
    app: &App<'_>,
    user: &CurrentUser,
    callback: Callback<'_>,
) -> Result<Finished> {
    let failed = |message: &str| Ok(Finished::Failed(message.to_string()));
    let Some(state) = callback.state.filter(|s| !s.is_empty() && s.len() <= 128) else {
        return failed(MSG_BAD_STATE);
    };
    let Some(redirect_uri) = app.runtime.redirect_uri() else {
        return failed(MSG_NO_PUBLIC_URL);
    };
    let (pending, registered) = {
        let mut db = conn.get().await?;
        let Some(pending) = OAuthState::consume(&mut *db, &token_hash(state)).await? else {
            return failed(MSG_BAD_STATE);
        };
        if pending.session_id != user.session_id || pending.expires_at <= Timestamp::now() {
            return failed(MSG_BAD_STATE);
        }
        let Some(registered) = OAuthApp::find_by_id(&mut *db, pending.app_id).await? else {
            return failed(MSG_BAD_STATE);
        };
        (pending, registered)
    };
    let instance = match Instance::new(app.http, &registered.instance_url) {
        Ok(instance) => instance,
        Err(_) => return failed(MSG_BAD_STATE),
    };
    let host = instance.host();
    match callback.error {
        Some("access_denied") => {
            return failed(&format!(
                "You did not allow tether to use your account on {host}. Nothing was connected."
            ))
        }
        Some(_) => {
            return failed(&format!(
                "{host} did not complete the sign-in. Nothing was connected."
            ))
        }
        None => {}
    }
    let Some(code) = callback.code.filter(|c| !c.is_empty() && c.len() <= 2048) else {
        return failed(MSG_BAD_STATE);
    };
    let credentials = AppCredentials {
        client_id: registered.client_id.clone(),
        client_secret: app
            .cipher
            .decrypt(&registered.client_secret_encrypted, NO_USER)?,
    };
    let verifier = app
        .cipher
        .decrypt(&pending.code_verifier_encrypted, user.id)?;

    let exchanged = conn
        .released(async {
            let tokens = instance
                .exchange_code(&credentials, &redirect_uri, code, &verifier)
                .await?;
            let account = instance.verify_credentials(&tokens.access_token).await?;
            Ok::<_, InstanceError>((tokens, account))
        })
        .await?;
    let (tokens, account) = match exchanged {
        Ok(done) => done,
        Err(InstanceError::InvalidClient) => {
            let mut db = conn.get().await?;
            OAuthApp::forget(&mut *db, registered.id).await?;
            return failed(&InstanceError::InvalidClient.message(&host));
        }
        Err(InstanceError::Rejected(_)) => {
            return failed(&format!(
                "{host} did not accept the sign-in (it may have expired). Please connect again."
            ))
        }
        Err(e) => return failed(&e.message(&host)),
    };
    let copy = account.copy();
    if forms::check_account_name(&copy.username).is_err() {
        return failed(&format!(
            "{host} sent an account name tether cannot use. Nothing was connected."
        ));
    }
    let secrets = encrypt_tokens(app, user.id, &tokens, Some(registered.id))?;
    let mut db = conn.get().await?;
    let mut tx = db.begin().await?;
    User::lock(&mut tx, user.id).await?;
    let existing =
        Platform::find_account(&mut tx, user.id, &registered.instance_url, &copy.username).await?;
    let (id, reconnected) = match existing {
        Some(platform) => (platform.id, true),
        None => {
            let name = free_name(&mut tx, user.id, &copy, &host).await?;
            let new = NewPlatform {
                name,
                platform_type: registered.platform_type,
                instance_url: registered.instance_url.clone(),
                username: copy.username.clone(),
                is_active: true,
            };
            let created = Platform::create(
                &mut tx,
                user.id,
                &new,
                secrets.access_token_encrypted.clone(),
            )
            .await?;
            (created.id, false)
        }
    };
    Platform::set_secrets(&mut tx, id, &secrets).await?;
    Platform::store_account(&mut tx, id, &copy).await?;
    if reconnected {
        // Reconnecting is a clear wish to use the account: make sure it is usable.
        crate::db::query("UPDATE platform_connections SET is_active = TRUE WHERE id = $1")
            .bind(id)
            .execute(&mut tx)
            .await?;
        Platform::repair_default(&mut tx, user.id).await?;
    }
    SessionRecord::set_active_platform(&mut tx, user.session_id, user.id, Some(id)).await?;
    let platform = Platform::find_for_user(&mut tx, user.id, id)
        .await?
        .ok_or(crate::services::platforms::NOT_FOUND)?;
    tx.commit().await?;
    Ok(if reconnected {
        Finished::Reconnected(platform)
    } else {
        Finished::Connected(platform)
    })
}

/// The stored form of a token set; Pixelfed's expiry becomes a timestamp.
pub fn encrypt_tokens(
    app: &App<'_>,
    user_id: i64,
    tokens: &TokenSet,
    oauth_app_id: Option<i64>,
) -> Result<StoredSecrets> {
    Ok(StoredSecrets {
        access_token_encrypted: app.cipher.encrypt(&tokens.access_token, user_id)?,
        refresh_token_encrypted: tokens
            .refresh_token
            .as_deref()
            .map(|t| app.cipher.encrypt(t, user_id))
            .transpose()?,
        token_expires_at: tokens
            .expires_in
            .filter(|s| *s > 0)
            .map(|s| Timestamp::now().plus_seconds(s)),
        oauth_app_id,
    })
}

/// `@alice@mastodon.social`, or with a number when the user already has a platform by that name.
async fn free_name(
    tx: &mut crate::db::Tx<'_>,
    user_id: i64,
    copy: &AccountCopy,
    host: &str,
) -> Result<String> {
    let base: String = format!("@{}@{host}", copy.username)
        .chars()
        .take(forms::NAME_MAX_CHARS - 4)
        .collect();
    let mut name = base.clone();
    for n in 2..100 {
        if !Platform::name_taken(&mut *tx, user_id, &name, None).await? {
            break;
        }
        name = format!("{base} ({n})");
    }
    Ok(name)
}
