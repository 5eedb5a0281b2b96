//! One row per platform: the progress of its alt-text scan, what tether learnt about its
//! instance, and the claim of the worker that scans or publishes for it. The claim is what keeps
//! one account's work to one worker at a time across every tether process; `due_at` is when a
//! worker should look next, recomputed from the data whenever a claim is let go.

use serde::Serialize;
use sqlx::FromRow;

use crate::db::{query, Engine, Exec, Timestamp};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanState {
    /// Never scanned.
    Idle,
    Queued,
    Running,
    /// Paused by the instance's rate limit until `waiting_until`.
    Waiting,
    Finished,
    Failed,
}

impl ScanState {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanState::Idle => "idle",
            ScanState::Queued => "queued",
            ScanState::Running => "running",
            ScanState::Waiting => "waiting",
            ScanState::Finished => "finished",
            ScanState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<ScanState> {
        [
            ScanState::Idle,
            ScanState::Queued,
            ScanState::Running,
            ScanState::Waiting,
            ScanState::Finished,
            ScanState::Failed,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
    }

    /// Started and not over: a new request changes nothing.
    pub fn in_progress(self) -> bool {
        matches!(
            self,
            ScanState::Queued | ScanState::Running | ScanState::Waiting
        )
    }
}

crate::text_enum!(ScanState);

#[derive(Clone, Debug, FromRow, Serialize)]
pub struct MediaAudit {
    pub platform_id: i64,
    pub scan_state: ScanState,
    pub scan_run: i64,
    pub posts_scanned: i64,
    pub max_posts: i64,
    #[serde(skip)]
    pub scan_cursor: Option<String>,
    pub reached_end: bool,
    #[serde(skip)]
    pub oldest_posted_at: Option<Timestamp>,
    pub scan_requested_at: Option<Timestamp>,
    pub scan_finished_at: Option<Timestamp>,
    pub scan_error: Option<String>,
    pub instance_version: Option<String>,
    pub description_limit: Option<i64>,
    pub waiting_until: Option<Timestamp>,
}

/// One platform's audit as the dashboard shows it: the scan (none before the first) and the
/// counts. Loaded together with the user's platforms (`Platform::list_active_with_audit`).
#[derive(Clone, Debug, Default)]
pub struct AuditSnapshot {
    pub audit: Option<MediaAudit>,
    pub counts: super::MediaSummary,
}

const SELECT: &str = "SELECT platform_id, scan_state, scan_run, posts_scanned, max_posts,
       scan_cursor, reached_end, oldest_posted_at, scan_requested_at, scan_finished_at,
       scan_error, instance_version, description_limit, waiting_until
FROM media_audits";

/// When the account next has work, from what is stored: an unfinished scan (now, or when the
/// rate limit resets), else the first queued item. `$1` is now.
const NEXT_DUE: &str = "CASE
    WHEN media_audits.waiting_until IS NOT NULL AND media_audits.waiting_until > $1
        AND (media_audits.scan_state IN ('queued', 'running', 'waiting')
             OR EXISTS (SELECT 1 FROM media_items i WHERE i.platform_id = media_audits.platform_id
                        AND i.state IN ('queued', 'waiting')))
        THEN media_audits.waiting_until
    WHEN media_audits.scan_state IN ('queued', 'running', 'waiting') THEN $1
    WHEN EXISTS (SELECT 1 FROM media_items i WHERE i.platform_id = media_audits.platform_id
                 AND i.state IN ('queued', 'waiting')) THEN $1
    ELSE NULL
END";

impl MediaAudit {
    pub async fn find(db: &mut impl Exec, platform_id: i64) -> Result<Option<Self>, sqlx::Error> {
        query(&format!("{SELECT} WHERE platform_id = $1"))
            .bind(platform_id)
            .fetch_optional(db)
            .await
    }

    /// Queues a scan unless one is in progress; `false` when one already was.
    pub async fn request_scan(
        db: &mut impl Exec,
        platform_id: i64,
        max_posts: i64,
    ) -> Result<bool, sqlx::Error> {
        let now = Timestamp::now();
        let queued: Option<(i64,)> = query(
            "INSERT INTO media_audits (platform_id, scan_state, max_posts, scan_requested_at, due_at)
             VALUES ($1, 'queued', $2, $3, $3)
             ON CONFLICT (platform_id) DO UPDATE
                 SET scan_state = 'queued', max_posts = $2, scan_requested_at = $3,
                     scan_error = NULL, posts_scanned = 0, scan_cursor = NULL,
                     due_at = CASE WHEN media_audits.waiting_until > $3
                                   THEN media_audits.waiting_until ELSE $3 END
                 WHERE media_audits.scan_state NOT IN ('queued', 'running', 'waiting')
             RETURNING platform_id",
        )
        .bind(platform_id)
        .bind(max_posts)
        .bind(now)
        .fetch_optional(db)
        .await?;
        Ok(queued.is_some())
    }

    /// After items were queued: make sure a worker looks at the account (the row exists once
    /// the account was scanned, which is the only way it has items).
    pub async fn wake(db: &mut impl Exec, platform_id: i64) -> Result<(), sqlx::Error> {
        query(&format!(
            "UPDATE media_audits SET due_at = {NEXT_DUE} WHERE platform_id = $2"
        ))
        .bind(Timestamp::now())
        .bind(platform_id)
        .execute(db)
        .await
        .map(drop)
    }

    /// Claims up to `limit` accounts with work due, for `token` until `until`. On PostgreSQL,
    /// rows another process is claiming are skipped rather than waited for; a crashed process's
    /// claim runs out by itself. Accounts whose token was refused wait for a reconnect.
    pub async fn claim_due(
        db: &mut impl Exec,
        engine: Engine,
        token: &str,
        until: Timestamp,
        limit: i64,
    ) -> Result<Vec<(i64, i64)>, sqlx::Error> {
        let lock = match engine {
            Engine::Postgres => "FOR UPDATE OF a SKIP LOCKED",
            Engine::Sqlite => "",
        };
        let sql = format!(
            "UPDATE media_audits SET claim_token = $1, claimed_until = $2
             WHERE platform_id IN (
                 SELECT a.platform_id FROM media_audits a
                 JOIN platform_connections p ON p.id = a.platform_id
                 WHERE a.due_at <= $3
                   AND (a.claimed_until IS NULL OR a.claimed_until <= $3)
                   AND p.is_active AND NOT p.needs_reconnect
                 ORDER BY a.due_at, a.platform_id
                 LIMIT $4 {lock})
               AND (claimed_until IS NULL OR claimed_until <= $3)
             RETURNING platform_id,
                 (SELECT user_id FROM platform_connections p WHERE p.id = media_audits.platform_id)"
        );
        query(&sql)
            .bind(token)
            .bind(until)
            .bind(Timestamp::now())
            .bind(limit)
            .fetch_all(db)
            .await
    }

    /// Keeps the claim for longer; `false` once it was lost (it ran out and another worker has
    /// the account), and the caller must stop.
    pub async fn extend_claim(
        db: &mut impl Exec,
        platform_id: i64,
        token: &str,
        until: Timestamp,
    ) -> Result<bool, sqlx::Error> {
        query(
            "UPDATE media_audits SET claimed_until = $1 WHERE platform_id = $2 AND claim_token = $3",
        )
        .bind(until)
        .bind(platform_id)
        .bind(token)
        .execute(db)
        .await
        .map(|n| n == 1)
    }

    /// Lets the account go and sets when it is next due from what is left to do.
    pub async fn release(
        db: &mut impl Exec,
        platform_id: i64,
        token: &str,
    ) -> Result<(), sqlx::Error> {
        query(&format!(
            "UPDATE media_audits SET claim_token = NULL, claimed_until = NULL, due_at = {NEXT_DUE}
             WHERE platform_id = $2 AND claim_token = $3"
        ))
        .bind(Timestamp::now())
        .bind(platform_id)
        .bind(token)
        .execute(db)
        .await
        .map(drop)
    }

    /// A queued scan begins: a new run, from the first page.
    pub async fn start_scan(
        db: &mut impl Exec,
        platform_id: i64,
        token: &str,
        first_page: &str,
        version: &str,
        description_limit: Option<i64>,
    ) -> Result<Option<i64>, sqlx::Error> {
        let run: Option<(i64,)> = query(
            "UPDATE media_audits SET scan_state = 'running', scan_run = scan_run + 1,
                 posts_scanned = 0, scan_cursor = $1, reached_end = FALSE, oldest_posted_at = NULL,
                 scan_error = NULL, instance_version = $2, description_limit = $3
             WHERE platform_id = $4 AND claim_token = $5 AND scan_state = 'queued'
             RETURNING scan_run",
        )
        .bind(first_page)
        .bind(version)
        .bind(description_limit)
        .bind(platform_id)
        .bind(token)
        .fetch_optional(db)
        .await?;
        Ok(run.map(|(run,)| run))
    }

    /// One page is stored: the count, where the next page is, the oldest post seen.
    pub async fn record_page(
        db: &mut impl Exec,
        platform_id: i64,
        token: &str,
        posts_scanned: i64,
        cursor: Option<&str>,
        oldest_posted_at: Option<Timestamp>,
    ) -> Result<bool, sqlx::Error> {
        query(
            "UPDATE media_audits SET scan_state = 'running', posts_scanned = $1, scan_cursor = $2,
                 oldest_posted_at = $3, waiting_until = NULL
             WHERE platform_id = $4 AND claim_token = $5",
        )
        .bind(posts_scanned)
        .bind(cursor)
        .bind(oldest_posted_at)
        .bind(platform_id)
        .bind(token)
        .execute(db)
        .await
        .map(|n| n == 1)
    }

    /// The instance's rate limit is used up: the account's work pauses until `until` (a scan
    /// that had not started yet stays queued).
    pub async fn wait_until(
        db: &mut impl Exec,
        platform_id: i64,
        token: &str,
        until: Timestamp,
    ) -> Result<(), sqlx::Error> {
        query(
            "UPDATE media_audits SET waiting_until = $1,
                 scan_state = CASE WHEN scan_state = 'running' THEN 'waiting' ELSE scan_state END
             WHERE platform_id = $2 AND claim_token = $3",
        )
        .bind(until)
        .bind(platform_id)
        .bind(token)
        .execute(db)
        .await
        .map(drop)
    }

    pub async fn finish_scan(
        db: &mut impl Exec,
        platform_id: i64,
        token: &str,
        reached_end: bool,
    ) -> Result<(), sqlx::Error> {
        query(
            "UPDATE media_audits SET scan_state = 'finished', scan_finished_at = $1,
                 scan_cursor = NULL, reached_end = $2, waiting_until = NULL
             WHERE platform_id = $3 AND claim_token = $4",
        )
        .bind(Timestamp::now())
        .bind(reached_end)
        .bind(platform_id)
        .bind(token)
        .execute(db)
        .await
        .map(drop)
    }

    pub async fn fail_scan(
        db: &mut impl Exec,
        platform_id: i64,
        token: &str,
        message: &str,
    ) -> Result<(), sqlx::Error> {
        query(
            "UPDATE media_audits SET scan_state = 'failed', scan_error = $1, scan_cursor = NULL,
                 waiting_until = NULL
             WHERE platform_id = $2 AND claim_token = $3",
        )
        .bind(message)
        .bind(platform_id)
        .bind(token)
        .execute(db)
        .await
        .map(drop)
    }
}
