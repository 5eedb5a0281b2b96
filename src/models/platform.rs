use std::sync::LazyLock;

use serde::Serialize;
use sqlx::FromRow;

use super::media_item::summary_sql;
use super::{AuditSnapshot, MediaAudit, MediaSummary, ScanState};
use crate::db::{query, Exec, Timestamp};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlatformType {
    Mastodon,
    Pixelfed,
}

impl PlatformType {
    pub const ALL: [PlatformType; 2] = [PlatformType::Mastodon, PlatformType::Pixelfed];

    pub fn as_str(self) -> &'static str {
        match self {
            PlatformType::Mastodon => "mastodon",
            PlatformType::Pixelfed => "pixelfed",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            PlatformType::Mastodon => "Mastodon",
            PlatformType::Pixelfed => "Pixelfed",
        }
    }

    pub fn parse(s: &str) -> Option<PlatformType> {
        PlatformType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

crate::text_enum!(PlatformType);

/// A connected platform account. The access token is not a field: it stays encrypted in the
/// database and is read only through [`Platform::encrypted_token`].
#[derive(Clone, Debug, FromRow, Serialize)]
pub struct Platform {
    pub id: i64,
    #[serde(skip)]
    pub user_id: i64,
    pub name: String,
    pub platform_type: PlatformType,
    pub instance_url: String,
    pub username: String,
    pub is_active: bool,
    pub is_default: bool,
    #[serde(skip)]
    pub created_at: Timestamp,
    #[serde(skip)]
    pub updated_at: Timestamp,
    /// The copy of the instance's account, from the last successful check.
    pub account_id: Option<String>,
    pub acct: Option<String>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub followers_count: Option<i64>,
    pub following_count: Option<i64>,
    pub statuses_count: Option<i64>,
    pub verified_at: Option<Timestamp>,
    /// The instance refused the stored token: the user must connect again.
    pub needs_reconnect: bool,
}

/// The account as the instance showed it, stored with the platform.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountCopy {
    pub account_id: String,
    pub username: String,
    pub acct: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub followers_count: i64,
    pub following_count: i64,
    pub statuses_count: i64,
}

/// The encrypted credentials of a platform: never serialized, never shown.
#[derive(Clone, Debug, FromRow)]
pub struct StoredSecrets {
    pub access_token_encrypted: Vec<u8>,
    pub refresh_token_encrypted: Option<Vec<u8>>,
    pub token_expires_at: Option<Timestamp>,
    pub oauth_app_id: Option<i64>,
}

/// Validated fields of the setup and edit forms.
pub struct NewPlatform {
    pub name: String,
    pub platform_type: PlatformType,
    pub instance_url: String,
    pub username: String,
    pub is_active: bool,
}

const COLUMNS: &str = "id, user_id, name, platform_type, instance_url, username, is_active,
       is_default, created_at, updated_at, account_id, acct, display_name, avatar_url,
       followers_count, following_count, statuses_count, verified_at, needs_reconnect";

const SELECT: &str = "SELECT id, user_id, name, platform_type, instance_url, username, is_active,
       is_default, created_at, updated_at, account_id, acct, display_name, avatar_url,
       followers_count, following_count, statuses_count, verified_at, needs_reconnect
FROM platform_connections";

/// Oldest first: the order of the switcher and of the last-resort fallback.
const ORDER: &str = "ORDER BY created_at, id";

/// A platform row of [`Platform::list_active_with_audit`]: the platform, and on the focused row
/// its audit (the `audit_` columns, NULL before a first scan) and its media counts.
#[derive(FromRow)]
struct PlatformAuditRow {
    #[sqlx(flatten)]
    platform: Platform,
    focus: Option<bool>,
    audit_platform_id: Option<i64>,
    audit_scan_state: Option<ScanState>,
    audit_scan_run: Option<i64>,
    audit_posts_scanned: Option<i64>,
    audit_max_posts: Option<i64>,
    audit_reached_end: Option<bool>,
    audit_scan_requested_at: Option<Timestamp>,
    audit_scan_finished_at: Option<Timestamp>,
    audit_scan_error: Option<String>,
    audit_instance_version: Option<String>,
    audit_description_limit: Option<i64>,
    audit_waiting_until: Option<Timestamp>,
    total: Option<i64>,
    missing: Option<i64>,
    drafted: Option<i64>,
    queued: Option<i64>,
    published: Option<i64>,
}

impl PlatformAuditRow {
    fn split(self) -> (Platform, Option<AuditSnapshot>) {
        if self.focus != Some(true) {
            return (self.platform, None);
        }
        let audit = match (self.audit_platform_id, self.audit_scan_state) {
            (Some(platform_id), Some(scan_state)) => Some(MediaAudit {
                platform_id,
                scan_state,
                scan_run: self.audit_scan_run.unwrap_or_default(),
                posts_scanned: self.audit_posts_scanned.unwrap_or_default(),
                max_posts: self.audit_max_posts.unwrap_or_default(),
                // What only the scanner itself needs is not loaded here.
                scan_cursor: None,
                reached_end: self.audit_reached_end.unwrap_or_default(),
                oldest_posted_at: None,
                scan_requested_at: self.audit_scan_requested_at,
                scan_finished_at: self.audit_scan_finished_at,
                scan_error: self.audit_scan_error,
                instance_version: self.audit_instance_version,
                description_limit: self.audit_description_limit,
                waiting_until: self.audit_waiting_until,
            }),
            _ => None,
        };
        let counts = MediaSummary {
            total: self.total.unwrap_or_default(),
            missing: self.missing.unwrap_or_default(),
            drafted: self.drafted.unwrap_or_default(),
            queued: self.queued.unwrap_or_default(),
            published: self.published.unwrap_or_default(),
        };
        (self.platform, Some(AuditSnapshot { audit, counts }))
    }
}

/// [`Platform::list_active_with_audit`]'s statement, put together once rather than per request.
static ACTIVE_WITH_AUDIT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH focus AS (
             SELECT COALESCE($2, (SELECT id FROM platform_connections
                                  WHERE user_id = $1 AND is_default AND is_active)) AS id
         )
         SELECT p.id, p.user_id, p.name, p.platform_type, p.instance_url, p.username,
                p.is_active, p.is_default, p.created_at, p.updated_at, p.account_id, p.acct,
                p.display_name, p.avatar_url, p.followers_count, p.following_count,
                p.statuses_count, p.verified_at, p.needs_reconnect,
                p.id = f.id AS focus,
                a.platform_id AS audit_platform_id, a.scan_state AS audit_scan_state,
                a.scan_run AS audit_scan_run, a.posts_scanned AS audit_posts_scanned,
                a.max_posts AS audit_max_posts, a.reached_end AS audit_reached_end,
                a.scan_requested_at AS audit_scan_requested_at,
                a.scan_finished_at AS audit_scan_finished_at,
                a.scan_error AS audit_scan_error,
                a.instance_version AS audit_instance_version,
                a.description_limit AS audit_description_limit,
                a.waiting_until AS audit_waiting_until,
                c.total, c.missing, c.drafted, c.queued, c.published
         FROM platform_connections p
         CROSS JOIN focus f
         LEFT JOIN media_audits a ON a.platform_id = p.id AND p.id = f.id
         LEFT JOIN ({}) c ON p.id = f.id
         WHERE p.user_id = $1 AND p.is_active
         ORDER BY p.created_at, p.id",
        summary_sql("(SELECT id FROM focus)")
    )
});

impl Platform {
    /// The instance's host, as in `@alice@mastodon.social`. `instance_url` is stored normalized
    /// (`scheme://host[:port]`, see `forms::normalize_instance_url`), so this is a slice of it
    /// rather than a URL parse on every page that shows a handle.
    pub fn host(&self) -> &str {
        host_of(&self.instance_url)
    }

    pub async fn list_for_user(
        db: &mut impl Exec,
        user_id: i64,
    ) -> Result<Vec<Platform>, sqlx::Error> {
        query(&format!("{SELECT} WHERE user_id = $1 {ORDER}"))
            .bind(user_id)
            .fetch_all(db)
            .await
    }

    pub async fn list_active_for_user(
        db: &mut impl Exec,
        user_id: i64,
    ) -> Result<Vec<Platform>, sqlx::Error> {
        query(&format!(
            "{SELECT} WHERE user_id = $1 AND is_active {ORDER}"
        ))
        .bind(user_id)
        .fetch_all(db)
        .await
    }

    /// [`Platform::list_active_for_user`], and in the same statement the audit snapshot of the
    /// focused platform: `focus` if given (the session's choice), else the user's default. So a
    /// dashboard needs no statement of its own. The other rows come without a snapshot.
    pub async fn list_active_with_audit(
        db: &mut impl Exec,
        user_id: i64,
        focus: Option<i64>,
    ) -> Result<Vec<(Platform, Option<AuditSnapshot>)>, sqlx::Error> {
        let rows: Vec<PlatformAuditRow> = query(&ACTIVE_WITH_AUDIT)
            .bind(user_id)
            .bind(focus)
            .fetch_all(db)
            .await?;
        Ok(rows.into_iter().map(PlatformAuditRow::split).collect())
    }

    /// Ownership is part of the query: another user's id reads as missing.
    pub async fn find_for_user(
        db: &mut impl Exec,
        user_id: i64,
        id: i64,
    ) -> Result<Option<Platform>, sqlx::Error> {
        query(&format!("{SELECT} WHERE id = $1 AND user_id = $2"))
            .bind(id)
            .bind(user_id)
            .fetch_optional(db)
            .await
    }

    pub async fn encrypted_token(
        db: &mut impl Exec,
        user_id: i64,
        id: i64,
    ) -> Result<Option<Vec<u8>>, sqlx::Error> {
        let row: Option<(Vec<u8>,)> = query(
            "SELECT access_token_encrypted FROM platform_connections WHERE id = $1 AND user_id = $2",
        )
        .bind(id)
        .bind(user_id)
        .fetch_optional(db)
        .await?;
        Ok(row.map(|(token,)| token))
    }

    pub async fn name_taken(
        db: &mut impl Exec,
        user_id: i64,
        name: &str,
        except_id: Option<i64>,
    ) -> Result<bool, sqlx::Error> {
        let row: Option<(i64,)> = query(
            "SELECT id FROM platform_connections
             WHERE user_id = $1 AND name = $2 AND ($3 IS NULL OR id <> $3)",
        )
        .bind(user_id)
        .bind(name)
        .bind(except_id)
        .fetch_optional(db)
        .await?;
        Ok(row.is_some())
    }

    pub async fn account_taken(
        db: &mut impl Exec,
        user_id: i64,
        instance_url: &str,
        username: &str,
        except_id: Option<i64>,
    ) -> Result<bool, sqlx::Error> {
        let row: Option<(i64,)> = query(
            "SELECT id FROM platform_connections
             WHERE user_id = $1 AND instance_url = $2 AND lower(username) = lower($3)
               AND ($4 IS NULL OR id <> $4)",
        )
        .bind(user_id)
        .bind(instance_url)
        .bind(username)
        .bind(except_id)
        .fetch_optional(db)
        .await?;
        Ok(row.is_some())
    }

    /// Inserts the platform; a user's first platform becomes their default in the same statement.
    pub async fn create(
        db: &mut impl Exec,
        user_id: i64,
        new: &NewPlatform,
        encrypted_token: Vec<u8>,
    ) -> Result<Platform, sqlx::Error> {
        let now = Timestamp::now();
        let sql = format!(
            "INSERT INTO platform_connections
                 (user_id, name, platform_type, instance_url, username, access_token_encrypted,
                  is_active, is_default, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7,
                     $7 AND NOT EXISTS (SELECT 1 FROM platform_connections
                                        WHERE user_id = $1 AND is_default),
                     $8, $8)
             RETURNING {COLUMNS}"
        );
        query(&sql)
            .bind(user_id)
            .bind(new.name.as_str())
            .bind(new.platform_type)
            .bind(new.instance_url.as_str())
            .bind(new.username.as_str())
            .bind(encrypted_token)
            .bind(new.is_active)
            .bind(now)
            .fetch_one(db)
            .await
    }

    /// Updates the fields; `encrypted_token: None` keeps the stored token. False when the
    /// platform is not this user's.
    pub async fn update(
        db: &mut impl Exec,
        user_id: i64,
        id: i64,
        changes: &NewPlatform,
        encrypted_token: Option<Vec<u8>>,
    ) -> Result<bool, sqlx::Error> {
        let changed = query(
            "UPDATE platform_connections
             SET name = $3, platform_type = $4, instance_url = $5, username = $6, is_active = $7,
                 access_token_encrypted = COALESCE($8, access_token_encrypted), updated_at = $9
             WHERE id = $1 AND user_id = $2",
        )
        .bind(id)
        .bind(user_id)
        .bind(changes.name.as_str())
        .bind(changes.platform_type)
        .bind(changes.instance_url.as_str())
        .bind(changes.username.as_str())
        .bind(changes.is_active)
        .bind(encrypted_token)
        .bind(Timestamp::now())
        .execute(db)
        .await?;
        Ok(changed > 0)
    }

    pub async fn delete(db: &mut impl Exec, user_id: i64, id: i64) -> Result<bool, sqlx::Error> {
        let deleted = query("DELETE FROM platform_connections WHERE id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .execute(db)
            .await?;
        Ok(deleted > 0)
    }

    /// Makes `id` the user's only default. Run inside a transaction: the old default is cleared
    /// first because the one-default index is checked row by row.
    pub async fn set_default(
        db: &mut impl Exec,
        user_id: i64,
        id: i64,
    ) -> Result<bool, sqlx::Error> {
        // Only when the new default qualifies: clearing the old one for an id that is not the
        // user's active platform would leave no default at all.
        query(
            "UPDATE platform_connections SET is_default = FALSE
             WHERE user_id = $1 AND is_default AND id <> $2
               AND EXISTS (SELECT 1 FROM platform_connections
                           WHERE id = $2 AND user_id = $1 AND is_active)",
        )
        .bind(user_id)
        .bind(id)
        .execute(db)
        .await?;
        let changed = query(
            "UPDATE platform_connections SET is_default = TRUE, updated_at = $3
             WHERE id = $1 AND user_id = $2 AND is_active",
        )
        .bind(id)
        .bind(user_id)
        .bind(Timestamp::now())
        .execute(db)
        .await?;
        Ok(changed > 0)
    }

    /// Keeps "the default" meaningful after a delete or deactivation: an inactive platform stops
    /// being the default, and if no default is left the oldest active platform becomes it.
    pub async fn repair_default(db: &mut impl Exec, user_id: i64) -> Result<(), sqlx::Error> {
        query(
            "UPDATE platform_connections SET is_default = FALSE
             WHERE user_id = $1 AND is_default AND NOT is_active",
        )
        .bind(user_id)
        .execute(db)
        .await?;
        query(
            "UPDATE platform_connections SET is_default = TRUE
             WHERE id = (SELECT id FROM platform_connections
                         WHERE user_id = $1 AND is_active ORDER BY created_at, id LIMIT 1)
               AND NOT EXISTS (SELECT 1 FROM platform_connections
                               WHERE user_id = $1 AND is_default)",
        )
        .bind(user_id)
        .execute(db)
        .await?;
        Ok(())
    }

    pub async fn secrets(
        db: &mut impl Exec,
        id: i64,
    ) -> Result<Option<StoredSecrets>, sqlx::Error> {
        query(
            "SELECT access_token_encrypted, refresh_token_encrypted, token_expires_at, oauth_app_id
             FROM platform_connections WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(db)
        .await
    }

    /// Replaces the credentials (a reconnect, a refreshed Pixelfed token).
    pub async fn set_secrets(
        db: &mut impl Exec,
        id: i64,
        secrets: &StoredSecrets,
    ) -> Result<(), sqlx::Error> {
        query(
            "UPDATE platform_connections
             SET access_token_encrypted = $2, refresh_token_encrypted = $3,
                 token_expires_at = $4, oauth_app_id = $5, needs_reconnect = FALSE
             WHERE id = $1",
        )
        .bind(id)
        .bind(secrets.access_token_encrypted.clone())
        .bind(secrets.refresh_token_encrypted.clone())
        .bind(secrets.token_expires_at)
        .bind(secrets.oauth_app_id)
        .execute(db)
        .await
        .map(drop)
    }

    /// Stores the account as the instance just showed it; the token works, so the platform no
    /// longer needs reconnecting. The username follows the instance (an account can be renamed).
    pub async fn store_account(
        db: &mut impl Exec,
        id: i64,
        copy: &AccountCopy,
    ) -> Result<(), sqlx::Error> {
        query(
            "UPDATE platform_connections
             SET account_id = $2, acct = $3, display_name = $4, avatar_url = $5,
                 followers_count = $6, following_count = $7, statuses_count = $8,
                 verified_at = $9, needs_reconnect = FALSE, username = $10
             WHERE id = $1",
        )
        .bind(id)
        .bind(copy.account_id.as_str())
        .bind(copy.acct.as_str())
        .bind(copy.display_name.as_str())
        .bind(copy.avatar_url.clone())
        .bind(copy.followers_count)
        .bind(copy.following_count)
        .bind(copy.statuses_count)
        .bind(Timestamp::now())
        .bind(copy.username.as_str())
        .execute(db)
        .await
        .map(drop)
    }

    /// The instance refused the token: keep the platform, say it needs reconnecting.
    pub async fn mark_needs_reconnect(db: &mut impl Exec, id: i64) -> Result<(), sqlx::Error> {
        query(
            "UPDATE platform_connections SET needs_reconnect = TRUE, verified_at = $2
             WHERE id = $1",
        )
        .bind(id)
        .bind(Timestamp::now())
        .execute(db)
        .await
        .map(drop)
    }

    /// The user's platform for an account on an instance, if it is connected already.
    pub async fn find_account(
        db: &mut impl Exec,
        user_id: i64,
        instance_url: &str,
        username: &str,
    ) -> Result<Option<Platform>, sqlx::Error> {
        query(&format!(
            "{SELECT} WHERE user_id = $1 AND instance_url = $2 AND lower(username) = lower($3)"
        ))
        .bind(user_id)
        .bind(instance_url)
        .bind(username)
        .fetch_optional(db)
        .await
    }

    /// Claims up to `limit` platforms whose account copy is older than `stale_before`, or whose
    /// token expires before `expiring_before`, for this process until `claim_until`. Claimed in
    /// one statement; on PostgreSQL rows another process is claiming are skipped, not waited
    /// for, and a crashed process's claim simply runs out.
    pub async fn claim_due(
        db: &mut impl Exec,
        engine: crate::db::Engine,
        stale_before: Timestamp,
        expiring_before: Timestamp,
        claim_until: Timestamp,
        limit: i64,
    ) -> Result<Vec<(i64, i64)>, sqlx::Error> {
        let lock = match engine {
            crate::db::Engine::Postgres => "FOR UPDATE SKIP LOCKED",
            crate::db::Engine::Sqlite => "",
        };
        let sql = format!(
            "UPDATE platform_connections SET refresh_claimed_until = $1
             WHERE id IN (
                 SELECT id FROM platform_connections
                 WHERE is_active AND NOT needs_reconnect
                   AND (refresh_claimed_until IS NULL OR refresh_claimed_until <= $2)
                   AND (verified_at IS NULL OR verified_at <= $3 OR token_expires_at <= $4)
                 ORDER BY verified_at NULLS FIRST, id
                 LIMIT $5 {lock})
             RETURNING id, user_id"
        );
        query(&sql)
            .bind(claim_until)
            .bind(Timestamp::now())
            .bind(stale_before)
            .bind(expiring_before)
            .bind(limit)
            .fetch_all(db)
            .await
    }

    pub async fn release_claim(db: &mut impl Exec, id: i64) -> Result<(), sqlx::Error> {
        query("UPDATE platform_connections SET refresh_claimed_until = NULL WHERE id = $1")
            .bind(id)
            .execute(db)
            .await
            .map(drop)
    }
}

fn host_of(origin: &str) -> &str {
    let rest = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    match rest.strip_prefix('[') {
        // An unclosed bracket is never stored, but a slice past it must not panic.
        Some(v6) => v6.find(']').map_or(rest, |end| &rest[..end + 2]),
        None => rest.split([':', '/']).next().unwrap_or(rest),
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_is_the_origin_without_scheme_and_port() {
        assert_eq!(host_of("https://mastodon.social"), "mastodon.social");
        assert_eq!(host_of("https://pixelfed.example:8443"), "pixelfed.example");
        assert_eq!(host_of("http://127.0.0.1:4000"), "127.0.0.1");
        assert_eq!(host_of("http://[::1]:4000"), "[::1]");
        assert_eq!(host_of("[::1]"), "[::1]");
        assert_eq!(host_of("https://[::1"), "[::1");
        assert_eq!(host_of("mastodon.social"), "mastodon.social");
    }
}
