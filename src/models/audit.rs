//! The audit trail: every login attempt and every administrative action, in the database (for
//! `/admin/audit`) and in Rocket's log. Never a password or a token.

use serde::Serialize;
use sqlx::FromRow;

use crate::db::{query, Exec, Timestamp};

#[derive(Clone, Debug, FromRow, Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub created_at: Timestamp,
    pub action: String,
    pub actor_name: Option<String>,
    pub target_name: Option<String>,
    pub ip: Option<String>,
    pub detail: String,
}

/// Who did it, or whom it was done to.
#[derive(Clone, Copy, Debug)]
pub struct Party<'a> {
    pub id: Option<i64>,
    pub name: &'a str,
}

/// Everything the trail records, named once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditAction {
    LoginSuccess,
    LoginFailure,
    LoginThrottled,
    PasswordChange,
    EmailChange,
    AdminCreateUser,
    AdminActivate,
    AdminDeactivate,
    AdminPromote,
    AdminDemote,
    AdminEndSessions,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::LoginSuccess => "login.success",
            AuditAction::LoginFailure => "login.failure",
            AuditAction::LoginThrottled => "login.throttled",
            AuditAction::PasswordChange => "account.password_change",
            AuditAction::EmailChange => "account.email_change",
            AuditAction::AdminCreateUser => "admin.create_user",
            AuditAction::AdminActivate => "admin.activate",
            AuditAction::AdminDeactivate => "admin.deactivate",
            AuditAction::AdminPromote => "admin.promote",
            AuditAction::AdminDemote => "admin.demote",
            AuditAction::AdminEndSessions => "admin.end_sessions",
        }
    }
}

/// One entry for the trail: `NewAuditEvent::new(action).by(admin).on(user).from(ip)`.
#[derive(Clone, Copy, Debug)]
pub struct NewAuditEvent<'a> {
    pub action: AuditAction,
    pub actor: Option<Party<'a>>,
    pub target: Option<Party<'a>>,
    pub ip: Option<&'a str>,
    pub detail: &'a str,
}

impl<'a> NewAuditEvent<'a> {
    pub fn new(action: AuditAction) -> NewAuditEvent<'a> {
        NewAuditEvent {
            action,
            actor: None,
            target: None,
            ip: None,
            detail: "",
        }
    }

    pub fn by(self, actor: Party<'a>) -> Self {
        NewAuditEvent {
            actor: Some(actor),
            ..self
        }
    }

    pub fn on(self, target: Party<'a>) -> Self {
        NewAuditEvent {
            target: Some(target),
            ..self
        }
    }

    pub fn from(self, ip: Option<&'a str>) -> Self {
        NewAuditEvent { ip, ..self }
    }

    pub fn detail(self, detail: &'a str) -> Self {
        NewAuditEvent { detail, ..self }
    }

    pub async fn record(self, db: &mut impl Exec) -> Result<(), sqlx::Error> {
        AuditEvent::record(db, self).await
    }
}

impl AuditEvent {
    pub async fn record(db: &mut impl Exec, event: NewAuditEvent<'_>) -> Result<(), sqlx::Error> {
        // Names may be whatever someone typed at the login form: no control characters, so a
        // crafted name cannot forge log lines, and debug-quoted in the log.
        let name = |p: Option<Party<'_>>| {
            p.map(|p| {
                p.name
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(64)
                    .collect::<String>()
            })
        };
        rocket::info!(
            "audit: {} actor={:?} target={:?} ip={:?} {:?}",
            event.action.as_str(),
            name(event.actor).unwrap_or_else(|| "-".into()),
            name(event.target).unwrap_or_else(|| "-".into()),
            event.ip.unwrap_or("-"),
            event.detail
        );
        query(
            "INSERT INTO audit_events
                 (created_at, action, actor_user_id, actor_name, target_user_id, target_name, ip,
                  detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(Timestamp::now())
        .bind(event.action.as_str())
        .bind(event.actor.and_then(|p| p.id))
        .bind(name(event.actor))
        .bind(event.target.and_then(|p| p.id))
        .bind(name(event.target))
        .bind(event.ip)
        .bind(event.detail)
        .execute(db)
        .await
        .map(drop)
    }

    /// Newest first.
    pub async fn page(
        db: &mut impl Exec,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<AuditEvent>, sqlx::Error> {
        query(
            "SELECT id, created_at, action, actor_name, target_name, ip, detail
             FROM audit_events ORDER BY id DESC LIMIT $1 OFFSET $2",
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(db)
        .await
    }

    pub async fn count(db: &mut impl Exec) -> Result<i64, sqlx::Error> {
        let (n,): (i64,) = query("SELECT COUNT(*) FROM audit_events")
            .fetch_one(db)
            .await?;
        Ok(n)
    }
}
