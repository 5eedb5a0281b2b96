use sqlx::FromRow;

use super::Role;
use crate::db::{query, Exec, Timestamp};

/// A session row joined with its user: everything `CurrentUser` needs, in one query.
#[derive(Clone, Debug, FromRow)]
pub struct SessionRecord {
    pub session_id: i64,
    pub user_id: i64,
    pub active_platform_id: Option<i64>,
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
    pub username: String,
    pub email: String,
    pub role: Role,
    pub user_is_active: bool,
}

pub struct NewSession<'a> {
    pub user_id: i64,
    pub token_hash: &'a str,
    pub csrf_token: &'a str,
    pub expires_at: Timestamp,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
}

impl SessionRecord {
    pub async fn find_by_token_hash(
        db: &mut impl Exec,
        token_hash: &str,
    ) -> Result<Option<SessionRecord>, sqlx::Error> {
        query(
            "SELECT s.id AS session_id, s.user_id, s.active_platform_id, s.csrf_token,
                    s.created_at, s.last_seen_at, s.expires_at,
                    u.username, u.email, u.role, u.is_active AS user_is_active
             FROM user_sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(db)
        .await
    }

    pub async fn create(db: &mut impl Exec, new: NewSession<'_>) -> Result<i64, sqlx::Error> {
        let now = Timestamp::now();
        let (id,): (i64,) = query(
            "INSERT INTO user_sessions
                 (token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at,
                  user_agent, ip)
             VALUES ($1, $2, $3, $4, $4, $5, $6, $7)
             RETURNING id",
        )
        .bind(new.token_hash)
        .bind(new.user_id)
        .bind(new.csrf_token)
        .bind(now)
        .bind(new.expires_at)
        .bind(new.user_agent)
        .bind(new.ip)
        .fetch_one(db)
        .await?;
        Ok(id)
    }

    pub async fn touch(db: &mut impl Exec, session_id: i64) -> Result<(), sqlx::Error> {
        query("UPDATE user_sessions SET last_seen_at = $2 WHERE id = $1")
            .bind(session_id)
            .bind(Timestamp::now())
            .execute(db)
            .await
            .map(drop)
    }

    pub async fn delete(db: &mut impl Exec, session_id: i64) -> Result<(), sqlx::Error> {
        query("DELETE FROM user_sessions WHERE id = $1")
            .bind(session_id)
            .execute(db)
            .await
            .map(drop)
    }

    pub async fn delete_by_token_hash(
        db: &mut impl Exec,
        token_hash: &str,
    ) -> Result<(), sqlx::Error> {
        query("DELETE FROM user_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(db)
            .await
            .map(drop)
    }

    /// Forgets sessions past their absolute or idle limit (run at login, so the table stays
    /// small without a background job).
    pub async fn delete_stale(db: &mut impl Exec, idle_timeout: i64) -> Result<u64, sqlx::Error> {
        let now = Timestamp::now();
        query("DELETE FROM user_sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
            .bind(now)
            .bind(now.minus_seconds(idle_timeout))
            .execute(db)
            .await
    }

    /// Points the session at one of its user's active platforms (or at none), in one statement
    /// that checks ownership and activity itself, so a check made earlier cannot go stale. False
    /// when the platform is not (or no longer) the user's and active, or the session is gone.
    pub async fn set_active_platform(
        db: &mut impl Exec,
        session_id: i64,
        user_id: i64,
        platform_id: Option<i64>,
    ) -> Result<bool, sqlx::Error> {
        let changed = query(
            "UPDATE user_sessions SET active_platform_id = $2
             WHERE id = $1 AND user_id = $3
               AND ($2 IS NULL OR EXISTS (SELECT 1 FROM platform_connections
                                          WHERE id = $2 AND user_id = $3 AND is_active))",
        )
        .bind(session_id)
        .bind(platform_id)
        .bind(user_id)
        .execute(db)
        .await;
        match changed {
            Ok(n) => Ok(n > 0),
            // PostgreSQL: the platform was deleted by a transaction that committed after this
            // statement's snapshot. The session keeps its old choice.
            Err(e) if is_foreign_key_violation(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Forgets a platform as any session's active choice (it was deactivated); those sessions
    /// fall back to the default on their next request.
    pub async fn forget_platform(db: &mut impl Exec, platform_id: i64) -> Result<(), sqlx::Error> {
        query("UPDATE user_sessions SET active_platform_id = NULL WHERE active_platform_id = $1")
            .bind(platform_id)
            .execute(db)
            .await
            .map(drop)
    }
}

/// A session as its owner sees it on the account page.
#[derive(Clone, Debug, FromRow, serde::Serialize)]
pub struct SessionSummary {
    pub id: i64,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

impl SessionSummary {
    /// The user's sessions that are still valid, most recently used first.
    pub async fn list_for_user(
        db: &mut impl Exec,
        user_id: i64,
        idle_timeout: i64,
    ) -> Result<Vec<SessionSummary>, sqlx::Error> {
        let now = Timestamp::now();
        query(
            "SELECT id, created_at, last_seen_at, user_agent, ip FROM user_sessions
             WHERE user_id = $1 AND expires_at > $2 AND last_seen_at > $3
             ORDER BY last_seen_at DESC, id DESC",
        )
        .bind(user_id)
        .bind(now)
        .bind(now.minus_seconds(idle_timeout))
        .fetch_all(db)
        .await
    }

    /// Ends one of the user's sessions; false when it is not theirs (or already gone).
    pub async fn revoke(
        db: &mut impl Exec,
        user_id: i64,
        session_id: i64,
    ) -> Result<bool, sqlx::Error> {
        let deleted = query("DELETE FROM user_sessions WHERE id = $1 AND user_id = $2")
            .bind(session_id)
            .bind(user_id)
            .execute(db)
            .await?;
        Ok(deleted > 0)
    }

    /// Ends every session of the user except `keep`; returns how many ended.
    pub async fn revoke_all(
        db: &mut impl Exec,
        user_id: i64,
        keep: Option<i64>,
    ) -> Result<u64, sqlx::Error> {
        query("DELETE FROM user_sessions WHERE user_id = $1 AND ($2 IS NULL OR id <> $2)")
            .bind(user_id)
            .bind(keep)
            .execute(db)
            .await
    }
}

/// SQLite reports 787 (`SQLITE_CONSTRAINT_FOREIGNKEY`), PostgreSQL 23503.
fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| matches!(d.code().as_deref(), Some("787" | "23503")))
}
