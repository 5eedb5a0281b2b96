use serde::Serialize;
use sqlx::FromRow;

use crate::db::{query, DbConn, Engine, Exec, Timestamp, Tx};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

crate::text_enum!(Role);

#[derive(Clone, Debug, FromRow, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub role: Role,
    pub is_active: bool,
    pub created_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
}

/// What login needs, and nothing a page should see.
#[derive(Debug, FromRow)]
pub struct Credentials {
    pub id: i64,
    pub password_hash: String,
    pub is_active: bool,
}

pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    /// `None`: an admin if this is the first user of an empty database, else a user.
    pub role: Option<Role>,
}

impl User {
    pub async fn find(db: &mut impl Exec, id: i64) -> Result<Option<User>, sqlx::Error> {
        query(
            "SELECT id, username, email, role, is_active, created_at, last_login_at
             FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(db)
        .await
    }

    pub async fn credentials(
        db: &mut impl Exec,
        username: &str,
    ) -> Result<Option<Credentials>, sqlx::Error> {
        query("SELECT id, password_hash, is_active FROM users WHERE lower(username) = lower($1)")
            .bind(username)
            .fetch_optional(db)
            .await
    }

    pub async fn username_taken(db: &mut impl Exec, username: &str) -> Result<bool, sqlx::Error> {
        let row: Option<(i64,)> = query("SELECT id FROM users WHERE lower(username) = lower($1)")
            .bind(username)
            .fetch_optional(db)
            .await?;
        Ok(row.is_some())
    }

    pub async fn email_taken(
        db: &mut impl Exec,
        email: &str,
        except_user: Option<i64>,
    ) -> Result<bool, sqlx::Error> {
        let row: Option<(i64,)> = query(
            "SELECT id FROM users WHERE lower(email) = lower($1) AND ($2 IS NULL OR id <> $2)",
        )
        .bind(email)
        .bind(except_user)
        .fetch_optional(db)
        .await?;
        Ok(row.is_some())
    }

    /// Inserts the user; with `role: None` the first user of an empty database becomes admin.
    /// On PostgreSQL two simultaneous first registrations would each see an empty table, so the
    /// insert runs under the admin lock there; SQLite has one writer at a time anyway.
    pub async fn create(db: &mut DbConn, new: NewUser<'_>) -> Result<User, sqlx::Error> {
        let engine = db.engine();
        let mut tx = db.begin().await?;
        if engine == Engine::Postgres && new.role.is_none() {
            query("SELECT pg_advisory_xact_lock($1)")
                .bind(ADMIN_LOCK_ID)
                .execute(&mut tx)
                .await?;
        }
        let user = query(
            "INSERT INTO users (username, email, password_hash, role, is_active, created_at)
             VALUES ($1, $2, $3,
                     COALESCE($4, CASE WHEN EXISTS (SELECT 1 FROM users) THEN 'user' ELSE 'admin' END),
                     TRUE, $5)
             RETURNING id, username, email, role, is_active, created_at, last_login_at",
        )
        .bind(new.username)
        .bind(new.email)
        .bind(new.password_hash)
        .bind(new.role)
        .bind(Timestamp::now())
        .fetch_one(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Takes the user's row lock for the rest of the transaction (a no-op write, so it works the
    /// same on both engines: a row lock on PostgreSQL, the write lock on SQLite) and says whether
    /// the user exists. Serialises changes to one user's platforms and role.
    pub async fn lock(db: &mut impl Exec, id: i64) -> Result<bool, sqlx::Error> {
        let locked = query("UPDATE users SET role = role WHERE id = $1")
            .bind(id)
            .execute(db)
            .await?;
        Ok(locked > 0)
    }

    /// Stamps a successful login and, when the stored hash was weaker than today's parameters,
    /// replaces it.
    pub async fn record_login(
        db: &mut impl Exec,
        id: i64,
        upgraded_hash: Option<String>,
    ) -> Result<(), sqlx::Error> {
        query(
            "UPDATE users SET last_login_at = $2, password_hash = COALESCE($3, password_hash)
             WHERE id = $1",
        )
        .bind(id)
        .bind(Timestamp::now())
        .bind(upgraded_hash)
        .execute(db)
        .await
        .map(drop)
    }
}

/// Serialises "is there another active admin?" checks on PostgreSQL, where two concurrent
/// demotions could otherwise each see the other admin and both succeed. SQLite runs one writer at
/// a time, so the statement itself is enough there.
const ADMIN_LOCK_ID: i64 = 0x7465_7468;

impl User {
    pub async fn password_hash(db: &mut impl Exec, id: i64) -> Result<Option<String>, sqlx::Error> {
        let row: Option<(String,)> = query("SELECT password_hash FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?;
        Ok(row.map(|(h,)| h))
    }

    pub async fn set_password(db: &mut impl Exec, id: i64, hash: &str) -> Result<(), sqlx::Error> {
        query("UPDATE users SET password_hash = $2 WHERE id = $1")
            .bind(id)
            .bind(hash)
            .execute(db)
            .await
            .map(drop)
    }

    pub async fn set_email(db: &mut impl Exec, id: i64, email: &str) -> Result<(), sqlx::Error> {
        query("UPDATE users SET email = $2 WHERE id = $1")
            .bind(id)
            .bind(email)
            .execute(db)
            .await
            .map(drop)
    }

    /// One page of users, optionally those whose username or email contains `search`.
    pub async fn search(
        db: &mut impl Exec,
        search: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<User>, sqlx::Error> {
        query(
            "SELECT id, username, email, role, is_active, created_at, last_login_at FROM users
             WHERE lower(username) LIKE $1 ESCAPE '\\' OR lower(email) LIKE $1 ESCAPE '\\'
             ORDER BY lower(username) LIMIT $2 OFFSET $3",
        )
        .bind(contains_pattern(search))
        .bind(limit)
        .bind(offset)
        .fetch_all(db)
        .await
    }

    pub async fn search_count(db: &mut impl Exec, search: &str) -> Result<i64, sqlx::Error> {
        let (n,): (i64,) = query(
            "SELECT COUNT(*) FROM users
             WHERE lower(username) LIKE $1 ESCAPE '\\' OR lower(email) LIKE $1 ESCAPE '\\'",
        )
        .bind(contains_pattern(search))
        .fetch_one(db)
        .await?;
        Ok(n)
    }

    /// Serialises "is there another active admin?" checks for the rest of the transaction. Run
    /// after [`User::lock`] and before [`User::set_role`] or [`User::set_active`].
    pub async fn lock_admins(tx: &mut Tx<'_>) -> Result<(), sqlx::Error> {
        if tx.engine() == Engine::Postgres {
            query("SELECT pg_advisory_xact_lock($1)")
                .bind(ADMIN_LOCK_ID)
                .execute(tx)
                .await?;
        }
        Ok(())
    }

    /// Changes the role, refusing to demote the last active admin (false then).
    pub async fn set_role(tx: &mut Tx<'_>, id: i64, role: Role) -> Result<bool, sqlx::Error> {
        let sql = match role {
            Role::Admin => "UPDATE users SET role = 'admin' WHERE id = $1",
            Role::User => DEMOTE,
        };
        Ok(query(sql).bind(id).execute(tx).await? > 0)
    }

    /// Activates or deactivates, refusing to deactivate the last active admin (false then).
    pub async fn set_active(tx: &mut Tx<'_>, id: i64, active: bool) -> Result<bool, sqlx::Error> {
        let sql = if active {
            "UPDATE users SET is_active = TRUE WHERE id = $1"
        } else {
            DEACTIVATE
        };
        Ok(query(sql).bind(id).execute(tx).await? > 0)
    }
}

/// `%text%` for LIKE, with the wildcards in `text` taken literally.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.trim().to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Demote unless this is the last active admin.
const DEMOTE: &str = "UPDATE users SET role = 'user'
     WHERE id = $1
       AND (role <> 'admin' OR NOT is_active
            OR EXISTS (SELECT 1 FROM users other
                       WHERE other.role = 'admin' AND other.is_active AND other.id <> $1))";

/// Deactivate unless this is the last active admin.
const DEACTIVATE: &str = "UPDATE users SET is_active = FALSE
     WHERE id = $1
       AND (role <> 'admin' OR NOT is_active
            OR EXISTS (SELECT 1 FROM users other
                       WHERE other.role = 'admin' AND other.is_active AND other.id <> $1))";
