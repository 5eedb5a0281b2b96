//! Connecting, changing, removing and switching platforms. Each change runs in one transaction
//! under the user's lock, with its checks inside: "is it still this user's, still active?" is
//! answered by the same transaction that writes.

use crate::crypto::TokenCipher;
use crate::db::{DbConn, Exec, Tx};
use crate::error::{Error, OnUnique, Result};
use crate::forms::FieldErrors;
use crate::guards::CurrentUser;
use crate::models::{NewPlatform, Platform, SessionRecord, User};

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

/// Connects a platform; the user's first becomes their default, and the session that had none
/// starts using it.
pub async fn create(
    db: &mut DbConn,
    cipher: &TokenCipher,
    user: &CurrentUser,
    new: &NewPlatform,
    token: &str,
) -> Result<std::result::Result<Platform, FieldErrors>> {
    let encrypted = cipher.encrypt(token, user.id)?;
    let mut tx = db.begin().await?;
    User::lock(&mut tx, user.id).await?;
    let errors = taken(&mut tx, user.id, new, None).await?;
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let platform = Platform::create(&mut tx, user.id, new, encrypted)
        .await
        .on_unique(raced)?;
    if user.active_platform_id.is_none() {
        SessionRecord::set_active_platform(&mut tx, user.session_id, user.id, Some(platform.id))
            .await?;
    }
    tx.commit().await?;
    Ok(Ok(platform))
}

/// Saves the edit form; `token: None` keeps the stored token. Deactivating a platform takes it
/// away from every session using it (they fall back to the default) and repairs the default.
pub async fn update(
    db: &mut DbConn,
    cipher: &TokenCipher,
    user: &CurrentUser,
    id: i64,
    changes: &NewPlatform,
    token: Option<&str>,
) -> Result<std::result::Result<Platform, FieldErrors>> {
    let encrypted = token.map(|t| cipher.encrypt(t, user.id)).transpose()?;
    let mut tx = db.begin().await?;
    locked(&mut tx, user, id).await?;
    let errors = taken(&mut tx, user.id, changes, Some(id)).await?;
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    Platform::update(&mut tx, user.id, id, changes, encrypted)
        .await
        .on_unique(raced)?;
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
/// default moves to the oldest active platform if it was this one.
pub async fn delete(db: &mut DbConn, user: &CurrentUser, id: i64) -> Result<Platform> {
    let mut tx = db.begin().await?;
    let platform = locked(&mut tx, user, id).await?;
    Platform::delete(&mut tx, user.id, id).await?;
    Platform::repair_default(&mut tx, user.id).await?;
    tx.commit().await?;
    Ok(platform)
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
