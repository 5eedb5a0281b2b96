//! Accounts: signing in, creating accounts, and the owner's own password and email changes.
//! Passwords are hashed with the connection back in the pool.

use super::sessions::{self, SessionToken};
use crate::crypto::PasswordHasherPool;
use crate::db::ScopedConnection;
use crate::error::{Error, OnUnique, Result};
use crate::forms::{self, FieldErrors};
use crate::guards::{App, CurrentUser};
use crate::models::throttle::{self, Scope};
use crate::models::{
    AuditAction, LoginThrottle, NewAuditEvent, NewUser, Party, Role, SessionSummary, User,
};

pub const MSG_INVALID_LOGIN: &str = "Invalid username or password.";
pub const MSG_THROTTLED: &str =
    "Too many failed login attempts. Please wait 15 minutes and try again.";

pub enum LoginOutcome {
    SignedIn(SessionToken),
    /// Unknown user, wrong password or deactivated account: one answer for all three.
    Invalid,
    Throttled,
}

/// Counts the attempt, checks the password off the connection, and on success starts a fresh
/// session (replacing the browser's old one).
pub async fn login(
    conn: &ScopedConnection,
    app: &App<'_>,
    username: &str,
    password: &str,
    replacing: Option<&str>,
) -> Result<LoginOutcome> {
    let key = throttle::username_key(username);
    let ip = app.client.ip();
    let attempted = Party {
        id: None,
        name: username,
    };
    let credentials = {
        let mut db = conn.get().await?;
        // Counted before the password is checked, whether or not the account exists, so a 429
        // reveals nothing and parallel guesses cannot outrun the count.
        let mut allowed = LoginThrottle::attempt(&mut *db, Scope::Username, &key).await?;
        if let Some(ip) = ip {
            allowed &= LoginThrottle::attempt(&mut *db, Scope::Address, ip).await?;
        }
        if !allowed {
            NewAuditEvent::new(AuditAction::LoginThrottled)
                .on(attempted)
                .from(ip)
                .record(&mut *db)
                .await?;
            return Ok(LoginOutcome::Throttled);
        }
        // Every stored username passes these rules; anything else (control characters, say)
        // cannot match, and is not worth a round trip the database might reject.
        if forms::check_username(username).is_ok() {
            User::credentials(&mut *db, username).await?
        } else {
            None
        }
    };
    let stored = credentials.as_ref().map(|c| c.password_hash.as_str());
    let verification = conn.released(app.hasher.verify(password, stored)).await??;

    let mut db = conn.get().await?;
    let user_id = match credentials {
        Some(c) if verification.valid && c.is_active => c.id,
        other => {
            let reason = match &other {
                None => "unknown username",
                Some(_) if !verification.valid => "wrong password",
                Some(_) => "account deactivated",
            };
            let target = Party {
                id: other.as_ref().map(|c| c.id),
                name: username,
            };
            NewAuditEvent::new(AuditAction::LoginFailure)
                .on(target)
                .from(ip)
                .detail(reason)
                .record(&mut *db)
                .await?;
            return Ok(LoginOutcome::Invalid);
        }
    };
    LoginThrottle::succeeded(&mut *db, &key, ip).await?;
    User::record_login(&mut *db, user_id, verification.upgraded_hash).await?;
    let target = Party {
        id: Some(user_id),
        name: username,
    };
    NewAuditEvent::new(AuditAction::LoginSuccess)
        .on(target)
        .from(ip)
        .record(&mut *db)
        .await?;
    let token = sessions::start(
        &mut db,
        &app.runtime.settings,
        &app.client,
        user_id,
        replacing,
    )
    .await?;
    Ok(LoginOutcome::SignedIn(token))
}

/// A new account's details, already through the field rules.
pub struct NewAccount<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    /// `None`: the first account of an empty database becomes its administrator.
    pub role: Option<Role>,
}

/// Adds "already taken" to a new account's field errors; when there are none, hashes the
/// password (connection released) and inserts the user. A name taken by a concurrent request
/// between the check and the insert is reported the same way.
pub async fn create(
    conn: &ScopedConnection,
    hasher: &PasswordHasherPool,
    account: NewAccount<'_>,
    mut errors: FieldErrors,
) -> Result<std::result::Result<User, FieldErrors>> {
    {
        let mut db = conn.get().await?;
        if !errors.contains_key("username")
            && User::username_taken(&mut *db, account.username).await?
        {
            errors.insert("username", MSG_USERNAME_TAKEN.into());
        }
        if !errors.contains_key("email") && User::email_taken(&mut *db, account.email, None).await?
        {
            errors.insert("email", MSG_EMAIL_TAKEN.into());
        }
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let password_hash = conn.released(hasher.hash(account.password)).await??;
    let mut db = conn.get().await?;
    let new = NewUser {
        username: account.username,
        email: account.email,
        password_hash: &password_hash,
        role: account.role,
    };
    let created = User::create(&mut db, new).await.on_unique(|| {
        Error::Unprocessable("That username or email was just taken. Please choose another.".into())
    });
    match created {
        Ok(user) => Ok(Ok(user)),
        Err(Error::Unprocessable(message)) => {
            let mut errors = FieldErrors::new();
            errors.insert("username", message);
            Ok(Err(errors))
        }
        Err(e) => Err(e),
    }
}

pub const MSG_USERNAME_TAKEN: &str = "That username is taken.";
pub const MSG_EMAIL_TAKEN: &str = "An account with this email already exists.";

/// Re-authentication for sensitive changes. Attempts count against the same per-username limit
/// as logins, so a stolen session cannot be used to guess the password either.
pub async fn current_password_ok(
    conn: &ScopedConnection,
    app: &App<'_>,
    user: &CurrentUser,
    password: &str,
) -> Result<bool> {
    let key = throttle::username_key(&user.username);
    let stored = {
        let mut db = conn.get().await?;
        if !LoginThrottle::attempt(&mut *db, Scope::Username, &key).await? {
            return Err(Error::TooManyRequests(MSG_THROTTLED.into()));
        }
        User::password_hash(&mut *db, user.id).await?
    };
    let valid = conn
        .released(app.hasher.verify(password, stored.as_deref()))
        .await??
        .valid;
    if valid {
        let mut db = conn.get().await?;
        LoginThrottle::succeeded(&mut *db, &key, None).await?;
    }
    Ok(valid)
}

/// Sets a new password and signs out every other session, in one transaction; returns how many
/// other sessions ended.
pub async fn change_password(
    conn: &ScopedConnection,
    app: &App<'_>,
    user: &CurrentUser,
    new_password: &str,
) -> Result<u64> {
    let hash = conn.released(app.hasher.hash(new_password)).await??;
    let mut db = conn.get().await?;
    let mut tx = db.begin().await?;
    User::set_password(&mut tx, user.id, &hash).await?;
    let ended = SessionSummary::revoke_all(&mut tx, user.id, Some(user.session_id)).await?;
    tx.commit().await?;
    let detail = format!("ended {ended} other sessions");
    NewAuditEvent::new(AuditAction::PasswordChange)
        .by(user.party())
        .on(user.party())
        .from(app.client.ip())
        .detail(&detail)
        .record(&mut *db)
        .await?;
    Ok(ended)
}

pub async fn change_email(
    conn: &ScopedConnection,
    app: &App<'_>,
    user: &CurrentUser,
    email: &str,
) -> Result<()> {
    let mut db = conn.get().await?;
    User::set_email(&mut *db, user.id, email)
        .await
        .on_unique(|| Error::Unprocessable(MSG_EMAIL_TAKEN.into()))?;
    NewAuditEvent::new(AuditAction::EmailChange)
        .by(user.party())
        .on(user.party())
        .from(app.client.ip())
        .record(&mut *db)
        .await?;
    Ok(())
}
