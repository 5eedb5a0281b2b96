//! Connecting, changing, removing and switching platforms. Each change runs in one transaction
//! under the user's lock, with its checks inside: "is it still this user's, still active?" is
//! answered by the same transaction that writes.

use super::connect::encrypt_tokens;
use crate::crypto::NO_USER;
use crate::db::{DbConn, Exec, ScopedConnection, Timestamp, Tx};
use crate::error::{Error, OnUnique, Result};
use crate::forms::{self, FieldErrors};
use crate::guards::{App, CurrentUser};
use crate::instance::{AppCredentials, Instance, InstanceError};
use crate::models::{
    AccountCopy, NewPlatform, OAuthApp, Platform, SessionRecord, StoredSecrets, User,
};

pub const NOT_FOUND: Error = Error::NotFound("Platform");

fn raced() -> Error {
    Error::Unprocessable(
        "A platform with this name or account was just added. Please check your platforms.".into(),
    )
}

/// Takes the user's lock, then loads the platform: what this transaction sees cannot change
/// under it until it commits.
async fn locked(tx: &mut Tx<'_>, user: &CurrentUser, id: i64) -> Result<Platform> {
    User::lock(tx, user.id).await?;
    Platform::find_for_user(tx, user.id, id)
        .await?
        .ok_or(NOT_FOUND)
}

/// The two per-user uniqueness rules, each reported next to its field.
async fn taken(
    db: &mut impl Exec,
    user_id: i64,
    platform: &NewPlatform,
    editing: Option<i64>,
) -> Result<FieldErrors> {
    let mut errors = FieldErrors::new();
    if Platform::name_taken(db, user_id, &platform.name, editing).await? {
        errors.insert("name", "You already have a platform with this name.".into());
    }
    if Platform::account_taken(
        db,
        user_id,
        &platform.instance_url,
        &platform.username,
        editing,
    )
    .await?
    {
        errors.insert(
            "username",
            "This account on this instance is already connected.".into(),
        );
    }
    Ok(errors)
}

/// Asks the instance who the token belongs to, with the connection released. A rejected token
/// is an error next to the token field, an instance that cannot be used one next to the instance
/// field, and a typed username that is not the token's account one next to the username.
async fn verify_token(
    conn: &ScopedConnection,
    app: &App<'_>,
    platform: &NewPlatform,
    token: &str,
) -> Result<std::result::Result<AccountCopy, FieldErrors>> {
    let mut errors = FieldErrors::new();
    let instance = match Instance::new(app.http, &platform.instance_url) {
        Ok(instance) => instance,
        Err(_) => {
            errors.insert("instance_url", forms::MSG_BAD_INSTANCE.into());
            return Ok(Err(errors));
        }
    };
    let host = instance.host();
    match conn.released(instance.verify_credentials(token)).await? {
        Ok(account) => {
            let copy = account.copy();
            if !copy.username.eq_ignore_ascii_case(&platform.username) {
                errors.insert(
                    "username",
                    format!(
                        "This token belongs to @{}@{host}, not @{}.",
                        copy.username, platform.username
                    ),
                );
                return Ok(Err(errors));
            }
            Ok(Ok(copy))
        }
        Err(e @ InstanceError::Rejected(_)) => {
            errors.insert("access_token", e.message(&host));
            Ok(Err(errors))
        }
        Err(e) => {
            errors.insert("instance_url", e.message(&host));
            Ok(Err(errors))
        }
    }
}

/// Connects a platform from the token form, after the instance confirmed the token; the user's
/// first becomes their default, and the session that had none starts using it.
pub async fn create(
    conn: &ScopedConnection,
    app: &App<'_>,
    user: &CurrentUser,
    new: &NewPlatform,
    token: &str,
) -> Result<std::result::Result<Platform, FieldErrors>> {
    {
        let mut db = conn.get().await?;
        let errors = taken(&mut *db, user.id, new, None).await?;
        if !errors.is_empty() {
            return Ok(Err(errors));
        }
    }
    let copy = match verify_token(conn, app, new, token).await? {
        Ok(copy) => copy,
        Err(errors) => return Ok(Err(errors)),
    };
    let encrypted = app.cipher.encrypt(token, user.id)?;
    let mut db = conn.get().await?;
    let mut tx = db.begin().await?;
    User::lock(&mut tx, user.id).await?;
    let errors = taken(&mut tx, user.id, new, None).await?;
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let platform = Platform::create(&mut tx, user.id, new, encrypted)
        .await
        .on_unique(raced)?;
    Platform::store_account(&mut tx, platform.id, &copy)
        .await
        .on_unique(raced)?;
    if user.active_platform_id.is_none() {
        SessionRecord::set_active_platform(&mut tx, user.session_id, user.id, Some(platform.id))
            .await?;
    }
    let platform = Platform::find_for_user(&mut tx, user.id, platform.id)
        .await?
        .ok_or(NOT_FOUND)?;
    tx.commit().await?;
    Ok(Ok(platform))
}

/// Saves the edit form; `token: None` keeps the stored token. A new token, instance or account
/// name is verified with the instance first. Deactivating a platform takes it away from every
/// session using it (they fall back to the default) and repairs the default.
pub async fn update(
    conn: &ScopedConnection,
    app: &App<'_>,
    user: &CurrentUser,
    id: i64,
    changes: &NewPlatform,
    token: Option<&str>,
) -> Result<std::result::Result<Platform, FieldErrors>> {
    let (current, stored) = {
        let mut db = conn.get().await?;
        let current = Platform::find_for_user(&mut *db, user.id, id)
            .await?
            .ok_or(NOT_FOUND)?;
        let errors = taken(&mut *db, user.id, changes, Some(id)).await?;
        if !errors.is_empty() {
            return Ok(Err(errors));
        }
        let stored = Platform::secrets(&mut *db, id).await?.ok_or(NOT_FOUND)?;
        (current, stored)
    };
    let moved = current.instance_url != changes.instance_url
        || !current.username.eq_ignore_ascii_case(&changes.username);
    let copy = match token {
        Some(token) => Some(verify_token(conn, app, changes, token).await?),
        None if moved => {
            let token = app
                .cipher
                .decrypt(&stored.access_token_encrypted, user.id)?;
            Some(verify_token(conn, app, changes, &token).await?)
        }
        None => None,
    };
    let copy = match copy {
        Some(Err(errors)) => return Ok(Err(errors)),
        Some(Ok(copy)) => Some(copy),
        None => None,
    };
    let encrypted = token.map(|t| app.cipher.encrypt(t, user.id)).transpose()?;
    let mut db = conn.get().await?;
    let mut tx = db.begin().await?;
    locked(&mut tx, user, id).await?;
    let errors = taken(&mut tx, user.id, changes, Some(id)).await?;
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    Platform::update(&mut tx, user.id, id, changes, encrypted)
        .await
        .on_unique(raced)?;
    if let Some(copy) = &copy {
        Platform::store_account(&mut tx, id, copy)
            .await
            .on_unique(raced)?;
    }
    if !changes.is_active {
        SessionRecord::forget_platform(&mut tx, id).await?;
    }
    Platform::repair_default(&mut tx, user.id).await?;
    let saved = Platform::find_for_user(&mut tx, user.id, id)
        .await?
        .ok_or(NOT_FOUND)?;
    tx.commit().await?;
    Ok(Ok(saved))
}

pub enum DefaultOutcome {
    Done(Platform),
    /// An inactive platform cannot be the default.
    Inactive(Platform),
}

pub async fn make_default(db: &mut DbConn, user: &CurrentUser, id: i64) -> Result<DefaultOutcome> {
    let mut tx = db.begin().await?;
    let platform = locked(&mut tx, user, id).await?;
    if !platform.is_active {
        return Ok(DefaultOutcome::Inactive(platform));
    }
    Platform::set_default(&mut tx, user.id, id).await?;
    tx.commit().await?;
    Ok(DefaultOutcome::Done(platform))
}

/// Removes the platform; sessions using it lose it (the foreign key sets them to none) and the
/// default moves to the oldest active platform if it was this one. The token is revoked at the
/// instance first, best effort: an instance that is down or refuses does not keep a platform
/// the user wants gone.
pub async fn delete(
    conn: &ScopedConnection,
    app: &App<'_>,
    user: &CurrentUser,
    id: i64,
) -> Result<Platform> {
    let (platform, secrets, registered) = {
        let mut db = conn.get().await?;
        let platform = Platform::find_for_user(&mut *db, user.id, id)
            .await?
            .ok_or(NOT_FOUND)?;
        let secrets = Platform::secrets(&mut *db, id).await?.ok_or(NOT_FOUND)?;
        let registered = match secrets.oauth_app_id {
            Some(app_id) => OAuthApp::find_by_id(&mut *db, app_id).await?,
            None => None,
        };
        (platform, secrets, registered)
    };
    if let Some(registered) = registered {
        revoke(conn, app, user, &platform, &secrets, &registered).await?;
    }
    let mut db = conn.get().await?;
    let mut tx = db.begin().await?;
    let platform = locked(&mut tx, user, id).await?;
    Platform::delete(&mut tx, user.id, id).await?;
    Platform::repair_default(&mut tx, user.id).await?;
    tx.commit().await?;
    Ok(platform)
}

async fn revoke(
    conn: &ScopedConnection,
    app: &App<'_>,
    user: &CurrentUser,
    platform: &Platform,
    secrets: &StoredSecrets,
    registered: &OAuthApp,
) -> Result<()> {
    let (Ok(token), Ok(client_secret)) = (
        app.cipher.decrypt(&secrets.access_token_encrypted, user.id),
        app.cipher
            .decrypt(&registered.client_secret_encrypted, NO_USER),
    ) else {
        rocket::warn!(
            "platform {}: stored secrets unreadable; not revoked",
            platform.id
        );
        return Ok(());
    };
    let credentials = AppCredentials {
        client_id: registered.client_id.clone(),
        client_secret,
    };
    let Ok(instance) = Instance::new(app.http, &platform.instance_url) else {
        return Ok(());
    };
    if let Err(e) = conn.released(instance.revoke(&credentials, &token)).await? {
        rocket::warn!(
            "platform {}: revoking its token at {} failed ({:?}); removing it anyway",
            platform.id,
            instance.host(),
            e
        );
    }
    Ok(())
}

pub enum Checked {
    Verified(Platform),
    /// The instance refused the token; the platform stays, marked.
    NeedsReconnect(Platform),
    /// The instance could not be asked; nothing changed.
    Unavailable(Platform, String),
}

/// "Check connection": asks the instance now and stores what it says. Also what the background
/// refresher runs for each due platform (a Pixelfed token near its expiry is refreshed first).
pub async fn check(conn: &ScopedConnection, app: &App<'_>, owner: i64, id: i64) -> Result<Checked> {
    let (platform, mut secrets, registered) = {
        let mut db = conn.get().await?;
        let platform = Platform::find_for_user(&mut *db, owner, id)
            .await?
            .ok_or(NOT_FOUND)?;
        let secrets = Platform::secrets(&mut *db, id).await?.ok_or(NOT_FOUND)?;
        let registered = match secrets.oauth_app_id {
            Some(app_id) => OAuthApp::find_by_id(&mut *db, app_id).await?,
            None => None,
        };
        (platform, secrets, registered)
    };
    let instance = match Instance::new(app.http, &platform.instance_url) {
        Ok(instance) => instance,
        Err(e) => {
            let message = e.message(&platform.instance_url);
            return Ok(Checked::Unavailable(platform, message));
        }
    };
    let host = instance.host();

    let expiring = secrets
        .token_expires_at
        .is_some_and(|at| at <= Timestamp::now().plus_seconds(REFRESH_BEFORE_EXPIRY));
    if let (true, Some(refresh), Some(registered)) = (
        expiring,
        secrets.refresh_token_encrypted.clone(),
        registered,
    ) {
        let refresh = app.cipher.decrypt(&refresh, owner)?;
        let credentials = AppCredentials {
            client_id: registered.client_id.clone(),
            client_secret: app
                .cipher
                .decrypt(&registered.client_secret_encrypted, NO_USER)?,
        };
        match conn
            .released(instance.refresh(&credentials, &refresh))
            .await?
        {
            Ok(tokens) => {
                let renewed = encrypt_tokens(app, owner, &tokens, Some(registered.id))?;
                let renewed = StoredSecrets {
                    refresh_token_encrypted: renewed
                        .refresh_token_encrypted
                        .clone()
                        .or(secrets.refresh_token_encrypted.clone()),
                    ..renewed
                };
                let mut db = conn.get().await?;
                Platform::set_secrets(&mut *db, id, &renewed).await?;
                secrets = renewed;
            }
            Err(InstanceError::Rejected(_)) | Err(InstanceError::InvalidClient) => {
                let mut db = conn.get().await?;
                Platform::mark_needs_reconnect(&mut *db, id).await?;
                return reloaded(conn, owner, id, Checked::NeedsReconnect).await;
            }
            Err(e) => return Ok(Checked::Unavailable(platform, e.message(&host))),
        }
    }

    let token = app.cipher.decrypt(&secrets.access_token_encrypted, owner)?;
    match conn.released(instance.verify_credentials(&token)).await? {
        Ok(account) => {
            let mut db = conn.get().await?;
            // The account may have been renamed to a name this user already has connected.
            let stored = Platform::store_account(&mut *db, id, &account.copy()).await;
            if let Err(e) = stored {
                if !e
                    .as_database_error()
                    .is_some_and(|d| d.is_unique_violation())
                {
                    return Err(e.into());
                }
            }
            drop(db);
            reloaded(conn, owner, id, Checked::Verified).await
        }
        Err(InstanceError::Rejected(_)) => {
            let mut db = conn.get().await?;
            Platform::mark_needs_reconnect(&mut *db, id).await?;
            drop(db);
            reloaded(conn, owner, id, Checked::NeedsReconnect).await
        }
        Err(e) => Ok(Checked::Unavailable(platform, e.message(&host))),
    }
}

/// Pixelfed tokens are refreshed when they have less than this many seconds left.
pub const REFRESH_BEFORE_EXPIRY: i64 = 7 * 24 * 3600;

async fn reloaded(
    conn: &ScopedConnection,
    owner: i64,
    id: i64,
    outcome: fn(Platform) -> Checked,
) -> Result<Checked> {
    let mut db = conn.get().await?;
    let platform = Platform::find_for_user(&mut *db, owner, id)
        .await?
        .ok_or(NOT_FOUND)?;
    Ok(outcome(platform))
}

/// Makes `id` this session's active platform (not the default, not other sessions'). Under the
/// user's lock, so a deletion of the same platform on another device either happened before
/// (404) or waits until the switch is done.
pub async fn switch_active(db: &mut DbConn, user: &CurrentUser, id: i64) -> Result<Platform> {
    let mut tx = db.begin().await?;
    let platform = locked(&mut tx, user, id).await?;
    if !platform.is_active {
        return Err(Error::Unprocessable(format!(
            "{} is deactivated. Activate it before switching to it.",
            platform.name
        )));
    }
    if !SessionRecord::set_active_platform(&mut tx, user.session_id, user.id, Some(id)).await? {
        // The session itself was ended meanwhile (signed out on another device).
        return Err(Error::SessionExpired);
    }
    tx.commit().await?;
    Ok(platform)
}
