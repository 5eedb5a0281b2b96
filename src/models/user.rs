use serde::Serialize;
use sqlx::FromRow;

use crate::db::{query, Exec, Timestamp};

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

    pub fn parse(s: &str) -> Role {
        if s == "admin" {
            Role::Admin
        } else {
            Role::User
        }
    }
}

#[derive(Clone, Debug, FromRow, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub role: String,
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
    pub fn role(&self) -> Role {
        Role::parse(&self.role)
    }

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

    /// Inserts the user; with `role: None` the first user of an empty database becomes admin, in
    /// the same statement, so two simultaneous first registrations cannot both become admin.
    pub async fn create(db: &mut impl Exec, new: NewUser<'_>) -> Result<User, sqlx::Error> {
        query(
            "INSERT INTO users (username, email, password_hash, role, is_active, created_at)
             VALUES ($1, $2, $3,
                     COALESCE($4, CASE WHEN EXISTS (SELECT 1 FROM users) THEN 'user' ELSE 'admin' END),
                     TRUE, $5)
             RETURNING id, username, email, role, is_active, created_at, last_login_at",
        )
        .bind(new.username)
        .bind(new.email)
        .bind(new.password_hash)
        .bind(new.role.map(Role::as_str))
        .bind(Timestamp::now())
        .fetch_one(db)
        .await
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

    pub async fn set_active(
        db: &mut impl Exec,
        id: i64,
        active: bool,
    ) -> Result<bool, sqlx::Error> {
        let changed = query("UPDATE users SET is_active = $2 WHERE id = $1")
            .bind(id)
            .bind(active)
            .execute(db)
            .await?;
        Ok(changed > 0)
    }
}
