//! What an administrator does to a user account. The last active administrator can be neither
//! deactivated nor demoted; each change and its audit entry commit together.

use crate::db::DbConn;
use crate::error::{Error, Result};
use crate::guards::CurrentUser;
use crate::models::{AuditAction, NewAuditEvent, Party, Role, SessionSummary, User};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminAction {
    Activate,
    Deactivate,
    Promote,
    Demote,
    EndSessions,
}

impl AdminAction {
    pub const ALL: [AdminAction; 5] = [
        AdminAction::Activate,
        AdminAction::Deactivate,
        AdminAction::Promote,
        AdminAction::Demote,
        AdminAction::EndSessions,
    ];

    /// How the action appears in a path: `/admin/users/<id>/end-sessions`.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminAction::Activate => "activate",
            AdminAction::Deactivate => "deactivate",
            AdminAction::Promote => "promote",
            AdminAction::Demote => "demote",
            AdminAction::EndSessions => "end-sessions",
        }
    }

    pub fn parse(s: &str) -> Option<AdminAction> {
        AdminAction::ALL.into_iter().find(|a| a.as_str() == s)
    }

    fn audit(self) -> AuditAction {
        match self {
            AdminAction::Activate => AuditAction::AdminActivate,
            AdminAction::Deactivate => AuditAction::AdminDeactivate,
            AdminAction::Promote => AuditAction::AdminPromote,
            AdminAction::Demote => AuditAction::AdminDemote,
            AdminAction::EndSessions => AuditAction::AdminEndSessions,
        }
    }
}

pub enum AdminOutcome {
    /// Done; the message says what happened.
    Done(String),
    /// Refused: it would leave no active administrator.
    LastAdmin(String),
}

pub async fn apply(
    db: &mut DbConn,
    admin: &CurrentUser,
    ip: Option<&str>,
    id: i64,
    action: AdminAction,
) -> Result<AdminOutcome> {
    let mut tx = db.begin().await?;
    if !User::lock(&mut tx, id).await? {
        return Err(Error::NotFound("User"));
    }
    User::lock_admins(&mut tx).await?;
    let target = User::find(&mut tx, id)
        .await?
        .ok_or(Error::NotFound("User"))?;
    let name = target.username.as_str();
    let changed = match action {
        AdminAction::Activate => User::set_active(&mut tx, id, true).await?,
        AdminAction::Deactivate => {
            let changed = User::set_active(&mut tx, id, false).await?;
            if changed {
                SessionSummary::revoke_all(&mut tx, id, None).await?;
            }
            changed
        }
        AdminAction::Promote => User::set_role(&mut tx, id, Role::Admin).await?,
        AdminAction::Demote => User::set_role(&mut tx, id, Role::User).await?,
        AdminAction::EndSessions => {
            let ended = SessionSummary::revoke_all(&mut tx, id, None).await?;
            let detail = format!("ended {ended} sessions");
            record(&mut tx, admin, action, &target, ip, &detail).await?;
            tx.commit().await?;
            return Ok(AdminOutcome::Done(format!(
                "Ended {ended} session(s) of {name}."
            )));
        }
    };
    if !changed {
        return Ok(AdminOutcome::LastAdmin(format!(
            "{name} is the last active administrator: promote someone else first."
        )));
    }
    record(&mut tx, admin, action, &target, ip, "").await?;
    tx.commit().await?;
    Ok(AdminOutcome::Done(match action {
        AdminAction::Activate => format!("{name} can sign in again."),
        AdminAction::Deactivate => format!("{name} is deactivated and signed out everywhere."),
        AdminAction::Promote => format!("{name} is now an administrator."),
        AdminAction::Demote | AdminAction::EndSessions => {
            format!("{name} is no longer an administrator.")
        }
    }))
}

async fn record(
    tx: &mut crate::db::Tx<'_>,
    admin: &CurrentUser,
    action: AdminAction,
    target: &User,
    ip: Option<&str>,
    detail: &str,
) -> Result<()> {
    NewAuditEvent::new(action.audit())
        .by(admin.party())
        .on(Party {
            id: Some(target.id),
            name: &target.username,
        })
        .from(ip)
        .detail(detail)
        .record(tx)
        .await?;
    Ok(())
}
