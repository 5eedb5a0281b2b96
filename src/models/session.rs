use sqlx::FromRow;

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
    pub role: String,
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

    pub async fn set_active_platform(
        db: &mut impl Exec,
        session_id: i64,
        platform_id: Option<i64>,
    ) -> Result<(), sqlx::Error> {
        query("UPDATE user_sessions SET active_platform_id = $2 WHERE id = $1")
            .bind(session_id)
            .bind(platform_id)
            .execute(db)
            .await
            .map(drop)
    }
}
