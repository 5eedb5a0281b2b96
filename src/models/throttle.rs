//! Failed-login throttling, kept in the database so every tether instance sees the same counts.

use crate::db::{query, Exec, Timestamp};

/// Failures counted within this many seconds…
pub const WINDOW_SECONDS: i64 = 15 * 60;
/// …lock the key for this long once the limit is reached.
pub const LOCKOUT_SECONDS: i64 = 15 * 60;
/// Failed logins per submitted username within the window.
pub const USERNAME_LIMIT: i64 = 5;
/// Failed logins per client address within the window (a shared NAT has several people).
pub const ADDRESS_LIMIT: i64 = 20;

#[derive(Clone, Copy, Debug)]
pub enum Scope {
    Username,
    Address,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Username => "username",
            Scope::Address => "address",
        }
    }

    fn limit(self) -> i64 {
        match self {
            Scope::Username => USERNAME_LIMIT,
            Scope::Address => ADDRESS_LIMIT,
        }
    }
}

/// The key a submitted username is counted under: case-insensitive, bounded, whether or not an
/// account by that name exists.
pub fn username_key(username: &str) -> String {
    username
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect()
}

pub struct LoginThrottle;

impl LoginThrottle {
    /// Counts an attempt before the password is checked, in one statement, and says whether it
    /// may proceed. Counting first means parallel requests cannot all slip past the check: the
    /// sixth of any number of simultaneous guesses is refused. A key stays locked for
    /// `LOCKOUT_SECONDS` once it reaches its limit.
    pub async fn attempt(db: &mut impl Exec, scope: Scope, key: &str) -> Result<bool, sqlx::Error> {
        let now = Timestamp::now();
        let (count,): (i64,) = query(
            "INSERT INTO login_throttle (scope, key, failures, window_start, locked_until)
             VALUES ($1, $2, 1, $3, NULL)
             ON CONFLICT (scope, key) DO UPDATE SET
                 failures = CASE WHEN login_throttle.window_start <= $4
                                      AND (login_throttle.locked_until IS NULL
                                           OR login_throttle.locked_until <= $3)
                                 THEN 1 ELSE login_throttle.failures + 1 END,
                 window_start = CASE WHEN login_throttle.window_start <= $4
                                          AND (login_throttle.locked_until IS NULL
                                               OR login_throttle.locked_until <= $3)
                                     THEN $3 ELSE login_throttle.window_start END,
                 locked_until = CASE WHEN login_throttle.window_start <= $4
                                          AND (login_throttle.locked_until IS NULL
                                               OR login_throttle.locked_until <= $3)
                                     THEN NULL
                                     WHEN login_throttle.failures + 1 >= $5
                                          AND (login_throttle.locked_until IS NULL
                                               OR login_throttle.locked_until <= $3)
                                     THEN $6
                                     ELSE login_throttle.locked_until END
             RETURNING failures",
        )
        .bind(scope.as_str())
        .bind(key)
        .bind(now)
        .bind(now.minus_seconds(WINDOW_SECONDS))
        .bind(scope.limit())
        .bind(now.plus_seconds(LOCKOUT_SECONDS))
        .fetch_one(db)
        .await?;
        Ok(count <= scope.limit())
    }

    /// A successful login resets the username's count, and takes back its own attempt from the
    /// address's (so an office behind one address is not locked out by people who log in fine).
    pub async fn succeeded(
        db: &mut impl Exec,
        username_key: &str,
        address: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        query("DELETE FROM login_throttle WHERE scope = 'username' AND key = $1")
            .bind(username_key)
            .execute(&mut *db)
            .await?;
        query(
            "UPDATE login_throttle SET failures = failures - 1
             WHERE scope = 'address' AND key = $1 AND failures > 0",
        )
        .bind(address)
        .execute(&mut *db)
        .await?;
        // Forget keys whose window and lockout are both over, so the table stays small.
        let now = Timestamp::now();
        query(
            "DELETE FROM login_throttle
             WHERE window_start <= $1 AND (locked_until IS NULL OR locked_until <= $2)",
        )
        .bind(now.minus_seconds(WINDOW_SECONDS))
        .bind(now)
        .execute(db)
        .await
        .map(drop)
    }
}
