//! The alt-text worker: scans an account's recent posts for media, and publishes the
//! descriptions people wrote, one account at a time per claim and in the order they were
//! queued. Nothing here runs inside a request; a request only queues work and wakes the account.
//!
//! Every instance call is made with the pool connection handed back, and every wait on a rate
//! limit is stored (`waiting_until`) rather than slept through, so a restarted or second process
//! carries on where this one stopped.

use std::collections::HashSet;
use std::time::Duration;

use rand::RngCore;
use rocket::{Orbit, Rocket};

use super::Deps;
use crate::db::{ScopedConnection, Timestamp};
use crate::error::Result;
use crate::html_text::plain_text;
use crate::instance::{
    edits_media_attributes, Instance, InstanceError, RateLimit, Status, StatusEdit,
};
use crate::models::{FoundMedia, MediaAudit, MediaItem, Platform, PlatformType, ScanState};
use crate::services::media_audit::{old_mastodon_message, reconnect_message};
use crate::services::platforms::NOT_FOUND;

/// How long a claim holds without being extended: longer than one page or one item takes (a
/// few 15 s calls).
const CLAIM_SECONDS: i64 = 120;
/// Accounts one pass works on at once.
const BATCH: i64 = 4;
/// When an instance says "slow down" without saying until when.
const DEFAULT_WAIT: i64 = 60;
/// Pixelfed allows 10 media updates a minute per user.
const PIXELFED_UPDATES_PER_MINUTE: i64 = 10;
/// How much of a post's text is kept for the audit page.
pub const TEXT_EXCERPT_CHARS: usize = 500;

/// What one pass did, summed over its accounts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub accounts: usize,
    pub pages: usize,
    pub published: usize,
    pub failed: usize,
}

impl Pass {
    fn add(&mut self, other: Pass) {
        self.accounts += other.accounts;
        self.pages += other.pages;
        self.published += other.published;
        self.failed += other.failed;
    }
}

/// Claims the accounts with work due and works them concurrently, each under its own claim.
pub async fn run_once(deps: &Deps) -> Result<Pass> {
    let token = claim_token();
    let claimed = {
        let mut db = deps.pool.acquire().await?;
        let engine = db.engine();
        MediaAudit::claim_due(
            &mut db,
            engine,
            &token,
            Timestamp::now().plus_seconds(CLAIM_SECONDS),
            BATCH,
        )
        .await?
    };
    let mut tasks = rocket::tokio::task::JoinSet::new();
    for (platform_id, owner) in claimed {
        let deps = deps.clone();
        let token = token.clone();
        tasks.spawn(async move {
            let worked = Worker::new(&deps, platform_id, owner, &token).run().await;
            if let Ok(mut db) = deps.pool.acquire().await {
                if let Err(e) = MediaAudit::release(&mut db, platform_id, &token).await {
                    rocket::warn!("alt-text worker could not release platform {platform_id}: {e}");
                }
            }
            worked.unwrap_or_else(|e| {
                // Deleted meanwhile, or the database is away: the claim runs out by itself.
                rocket::warn!("alt-text work for platform {platform_id} stopped: {e}");
                Pass::default()
            })
        });
    }
    let mut pass = Pass::default();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(worked) => pass.add(worked),
            Err(e) => rocket::warn!("alt-text task ended abnormally: {e}"),
        }
    }
    Ok(pass)
}

/// The loop: a pass every `audit_poll_interval` seconds, until shutdown.
pub fn spawn(rocket: &Rocket<Orbit>) {
    let seconds = rocket
        .state::<crate::config::Runtime>()
        .map_or(2, |r| r.settings.audit_poll_interval.max(1));
    super::every(
        rocket,
        "alt-text worker",
        Duration::from_secs(seconds),
        |deps| async move { run_once(&deps).await },
    );
}

/// Identifies this pass's claims, so a worker whose claim ran out cannot write over the next.
fn claim_token() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How a step ended when it did not simply go on.
enum Stop {
    /// The rate limit is used up until then.
    Wait(Timestamp),
    /// The token was refused: the platform now needs reconnecting.
    Reconnect,
    /// Another worker has the account now.
    Lost,
}

struct Worker<'a> {
    deps: &'a Deps,
    conn: ScopedConnection,
    platform_id: i64,
    owner: i64,
    token: &'a str,
    pass: Pass,
}

impl<'a> Worker<'a> {
    fn new(deps: &'a Deps, platform_id: i64, owner: i64, token: &'a str) -> Worker<'a> {
        Worker {
            deps,
            conn: ScopedConnection::new(deps.pool.clone()),
            platform_id,
            owner,
            token,
            pass: Pass {
                accounts: 1,
                ..Pass::default()
            },
        }
    }

    async fn run(mut self) -> Result<Pass> {
        let (platform, access, audit) = {
            let mut db = self.conn.get().await?;
            let platform = Platform::find_for_user(&mut *db, self.owner, self.platform_id)
                .await?
                .ok_or(NOT_FOUND)?;
            let secrets = Platform::secrets(&mut *db, self.platform_id)
                .await?
                .ok_or(NOT_FOUND)?;
            let audit = MediaAudit::find(&mut *db, self.platform_id)
                .await?
                .ok_or(NOT_FOUND)?;
            (platform, secrets, audit)
        };
        if audit.waiting_until.is_some_and(|t| t > Timestamp::now()) {
            return Ok(self.pass);
        }
        let access = self
            .deps
            .cipher
            .decrypt(&access.access_token_encrypted, self.owner)?;
        let instance = match Instance::new(&self.deps.http, &platform.instance_url) {
            Ok(instance) => instance,
            Err(e) => {
                let message = e.message(&platform.instance_url);
                let mut db = self.conn.get().await?;
                MediaAudit::fail_scan(&mut *db, self.platform_id, self.token, &message).await?;
                return Ok(self.pass);
            }
        };
        let account = Account {
            platform: &platform,
            instance: &instance,
            access: &access,
        };
        let mut stop = None;
        if audit.scan_state.in_progress() {
            stop = self.scan(&account, &audit).await?;
        }
        if stop.is_none() {
            // The scan may have learnt the instance's version just now.
            let audit = {
                let mut db = self.conn.get().await?;
                MediaAudit::find(&mut *db, self.platform_id)
                    .await?
                    .ok_or(NOT_FOUND)?
            };
            stop = self.publish(&account, &audit).await?;
        }
        if let Some(stop) = stop {
            self.stopped(stop).await?;
        }
        Ok(self.pass)
    }

    async fn stopped(&mut self, stop: Stop) -> Result<()> {
        let mut db = self.conn.get().await?;
        match stop {
            Stop::Wait(until) => {
                MediaAudit::wait_until(&mut *db, self.platform_id, self.token, until).await?
            }
            Stop::Reconnect => Platform::mark_needs_reconnect(&mut *db, self.platform_id).await?,
            Stop::Lost => {}
        }
        Ok(())
    }

    async fn keep_claim(&self) -> Result<bool> {
        let mut db = self.conn.get().await?;
        Ok(MediaAudit::extend_claim(
            &mut *db,
            self.platform_id,
            self.token,
            Timestamp::now().plus_seconds(CLAIM_SECONDS),
        )
        .await?)
    }

    async fn call<T>(
        &self,
        fut: impl std::future::Future<Output = crate::instance::Result<T>>,
    ) -> Result<crate::instance::Result<T>> {
        self.conn.released(fut).await
    }

    // ---- Scan ----------------------------------------------------------------------------

    async fn scan(&mut self, account: &Account<'_>, audit: &MediaAudit) -> Result<Option<Stop>> {
        let host = account.instance.host();
        let Some(account_id) = account.platform.account_id.clone() else {
            self.fail_scan(&format!(
                "tether has not verified this account with {host} yet. Check the connection first."
            ))
            .await?;
            return Ok(None);
        };
        let (run, mut cursor, mut posts, mut oldest) = if audit.scan_state == ScanState::Queued {
            // What the instance says about itself decides the description limit and whether
            // Mastodon can edit posted media; an instance that will not say (a locked-down
            // server's 401, an odd answer) is taken to be the type it was connected as.
            let info = match self.call(account.instance.detect()).await? {
                Ok(info) => info,
                Err(e @ InstanceError::RateLimited(_)) => return self.scan_error(e, &host).await,
                Err(_) => crate::instance::InstanceInfo {
                    kind: account.platform.platform_type,
                    version: String::new(),
                    description_limit: None,
                },
            };
            let first = match account.instance.statuses_url(&account_id) {
                Ok(url) => url,
                Err(e) => return self.scan_error(e, &host).await,
            };
            let limit = info.description_limit.or(match info.kind {
                PlatformType::Mastodon => Some(1500),
                PlatformType::Pixelfed => Some(1000),
            });
            let mut db = self.conn.get().await?;
            let started = MediaAudit::start_scan(
                &mut *db,
                self.platform_id,
                self.token,
                first.as_str(),
                &info.version,
                limit,
            )
            .await?;
            match started {
                Some(run) => (run, Some(first.to_string()), 0, None),
                None => return Ok(Some(Stop::Lost)),
            }
        } else {
            (
                audit.scan_run,
                audit.scan_cursor.clone(),
                audit.posts_scanned,
                audit.oldest_posted_at,
            )
        };
        let max = audit.max_posts.max(1);
        let mut seen: HashSet<String> = HashSet::new();
        let reached_end = loop {
            if posts >= max {
                break false;
            }
            let Some(url) = cursor.as_deref().and_then(|c| url::Url::parse(c).ok()) else {
                break true;
            };
            // Pixelfed repeats the post named by `max_id` at the top of the next page.
            if let Some((_, max_id)) = url.query_pairs().find(|(k, _)| k == "max_id") {
                seen.insert(max_id.into_owned());
            }
            let page = match self
                .call(account.instance.statuses_page(account.access, url))
                .await?
            {
                Ok(page) => page,
                Err(e) => return self.scan_error(e, &host).await,
            };
            self.pass.pages += 1;
            let remaining = usize::try_from(max - posts).unwrap_or(0);
            let new: Vec<&Status> = page
                .statuses
                .iter()
                .filter(|s| seen.insert(s.id.clone()))
                .collect();
            // The end: an empty page, or one that only repeats what was seen.
            if new.is_empty() {
                break true;
            }
            // A server that ignores `exclude_reblogs` may send a page of boosts: skip them and
            // go on, it is not the end of the account.
            let fresh: Vec<&Status> = new
                .into_iter()
                .filter(|s| s.reblog.is_none())
                .take(remaining)
                .collect();
            let next = match (&page.next, account.platform.platform_type) {
                (Some(next), _) => Some(next.to_string()),
                (None, PlatformType::Pixelfed) => page
                    .statuses
                    .last()
                    .and_then(|last| account.instance.older_than(&account_id, &last.id).ok())
                    .map(|u| u.to_string()),
                (None, PlatformType::Mastodon) => None,
            };
            posts += i64::try_from(fresh.len()).unwrap_or(0);
            for status in &fresh {
                let at = status.posted_at();
                oldest = Some(oldest.map_or(at, |o: Timestamp| o.min(at)));
            }
            {
                let mut db = self.conn.get().await?;
                let mut tx = db.begin().await?;
                for status in &fresh {
                    store(&mut tx, self.platform_id, run, status).await?;
                }
                tx.commit().await?;
                let recorded = MediaAudit::record_page(
                    &mut *db,
                    self.platform_id,
                    self.token,
                    posts,
                    next.as_deref(),
                    oldest,
                )
                .await?;
                if !recorded {
                    return Ok(Some(Stop::Lost));
                }
            }
            if !self.keep_claim().await? {
                return Ok(Some(Stop::Lost));
            }
            if next.is_none() {
                break true;
            }
            if let Some(reset) = page.limit.exhausted() {
                return Ok(Some(Stop::Wait(wait_until(Some(reset)))));
            }
            cursor = next;
        };
        let mut db = self.conn.get().await?;
        MediaItem::remove_unseen(&mut *db, self.platform_id, run, reached_end, oldest).await?;
        MediaAudit::finish_scan(&mut *db, self.platform_id, self.token, reached_end).await?;
        Ok(None)
    }

    async fn fail_scan(&self, message: &str) -> Result<()> {
        let mut db = self.conn.get().await?;
        MediaAudit::fail_scan(&mut *db, self.platform_id, self.token, message).await?;
        Ok(())
    }

    async fn scan_error(&self, e: InstanceError, host: &str) -> Result<Option<Stop>> {
        match e {
            InstanceError::RateLimited(reset) => Ok(Some(Stop::Wait(wait_until(reset)))),
            InstanceError::Rejected(_) => {
                self.fail_scan(&reconnect_message(host)).await?;
                Ok(Some(Stop::Reconnect))
            }
            e => {
                self.fail_scan(&format!(
                    "The scan stopped: {} What was found so far is kept.",
                    e.message(host)
                ))
                .await?;
                Ok(None)
            }
        }
    }

    // ---- Publish -------------------------------------------------------------------------

    async fn publish(&mut self, account: &Account<'_>, audit: &MediaAudit) -> Result<Option<Stop>> {
        let host = account.instance.host();
        loop {
            if !self.keep_claim().await? {
                return Ok(Some(Stop::Lost));
            }
            let (head, group) = {
                let mut db = self.conn.get().await?;
                let Some(head) = MediaItem::next_queued(&mut *db, self.platform_id).await? else {
                    return Ok(None);
                };
                let group = match account.platform.platform_type {
                    // One edit carries every queued description of the post, so the people
                    // who boosted it are notified once.
                    PlatformType::Mastodon => {
                        MediaItem::queued_in_status(&mut *db, self.platform_id, &head.status_id)
                            .await?
                    }
                    PlatformType::Pixelfed => vec![head.clone()],
                };
                (head, group)
            };
            let outcome = match account.platform.platform_type {
                PlatformType::Mastodon => {
                    let version = audit.instance_version.as_deref().unwrap_or_default();
                    if !edits_media_attributes(version) {
                        for item in &group {
                            self.fail(item, &old_mastodon_message(&host, version))
                                .await?;
                        }
                        continue;
                    }
                    self.publish_mastodon(account, &head.status_id, &group)
                        .await?
                }
                PlatformType::Pixelfed => match self.pixelfed_slot().await? {
                    Some(until) => Err(InstanceError::RateLimited(Some(until))),
                    None => self.publish_pixelfed(account, &head).await?,
                },
            };
            match outcome {
                Ok(limit) => {
                    if let Some(reset) = limit.exhausted() {
                        return Ok(Some(Stop::Wait(wait_until(Some(reset)))));
                    }
                }
                Err(InstanceError::RateLimited(reset)) => {
                    let until = wait_until(reset);
                    let mut db = self.conn.get().await?;
                    for item in &group {
                        let sent = item.draft.as_deref().unwrap_or_default();
                        MediaItem::mark_waiting(&mut *db, item.id, sent, until).await?;
                    }
                    return Ok(Some(Stop::Wait(until)));
                }
                // The items stay queued: reconnecting the account lets them go.
                Err(InstanceError::Rejected(_)) => return Ok(Some(Stop::Reconnect)),
                Err(e) => {
                    let message = match e {
                        InstanceError::NotFound => {
                            format!("{host} no longer has this post (it may have been deleted).")
                        }
                        e => e.message(&host),
                    };
                    for item in &group {
                        self.fail(item, &message).await?;
                    }
                }
            }
        }
    }

    async fn fail(&mut self, item: &MediaItem, message: &str) -> Result<()> {
        let sent = item.draft.as_deref().unwrap_or_default();
        let mut db = self.conn.get().await?;
        MediaItem::mark_failed(&mut *db, item.id, sent, message).await?;
        self.pass.failed += 1;
        Ok(())
    }

    /// Source and status, then the whole post back with the new descriptions, then a read-back.
    async fn publish_mastodon(
        &mut self,
        account: &Account<'_>,
        status_id: &str,
        group: &[MediaItem],
    ) -> Result<crate::instance::Result<RateLimit>> {
        let (instance, access) = (account.instance, account.access);
        {
            let mut db = self.conn.get().await?;
            for item in group {
                MediaItem::mark_attempted(&mut *db, item.id).await?;
            }
        }
        let source = match self.call(instance.status_source(access, status_id)).await? {
            Ok(source) => source,
            Err(e) => return Ok(Err(e)),
        };
        let (status, _) = match self.call(instance.status(access, status_id)).await? {
            Ok(status) => status,
            Err(e) => return Ok(Err(e)),
        };
        // An edit sends the text back; without it the post would lose its text.
        if source.text.trim().is_empty() && !plain_text(&status.content, 10).is_empty() {
            return Ok(Err(InstanceError::Invalid(
                "it did not give tether the post's text, so the post was not edited".into(),
            )));
        }
        let mut descriptions = Vec::new();
        for item in group {
            match (&item.draft, status.attachment(&item.media_id)) {
                (Some(draft), Some(_)) => descriptions.push((item.media_id.clone(), draft.clone())),
                _ => {
                    self.fail(
                        item,
                        "This image is no longer part of the post. Scan again to refresh the list.",
                    )
                    .await?;
                }
            }
        }
        if descriptions.is_empty() {
            return Ok(Ok(RateLimit::default()));
        }
        let edit = StatusEdit::keeping(&source, &status, &descriptions);
        if let Err(e) = self
            .call(instance.edit_status(access, status_id, &edit))
            .await?
        {
            return Ok(Err(e));
        }
        let (confirmed, limit) = match self.call(instance.status(access, status_id)).await? {
            Ok(read) => read,
            Err(e) => return Ok(Err(e)),
        };
        self.confirm(group, &confirmed, &instance.host()).await?;
        Ok(Ok(limit))
    }

    async fn publish_pixelfed(
        &mut self,
        account: &Account<'_>,
        item: &MediaItem,
    ) -> Result<crate::instance::Result<RateLimit>> {
        let (instance, access) = (account.instance, account.access);
        let Some(draft) = item.draft.clone() else {
            self.fail(item, "There is no draft to publish.").await?;
            return Ok(Ok(RateLimit::default()));
        };
        {
            let mut db = self.conn.get().await?;
            MediaItem::mark_attempted(&mut *db, item.id).await?;
        }
        if let Err(e) = self
            .call(instance.update_media(access, &item.media_id, &draft))
            .await?
        {
            return Ok(Err(e));
        }
        let (confirmed, limit) = match self.call(instance.status(access, &item.status_id)).await? {
            Ok(read) => read,
            Err(e) => return Ok(Err(e)),
        };
        self.confirm(std::slice::from_ref(item), &confirmed, &instance.host())
            .await?;
        Ok(Ok(limit))
    }

    /// Each item is published only if the instance now shows exactly its draft.
    async fn confirm(&mut self, items: &[MediaItem], status: &Status, host: &str) -> Result<()> {
        for item in items {
            let Some(draft) = item.draft.as_deref() else {
                continue;
            };
            let shown = status
                .attachment(&item.media_id)
                .and_then(|a| a.description.as_deref());
            if shown.map(str::trim) == Some(draft.trim()) {
                let mut db = self.conn.get().await?;
                MediaItem::mark_published(&mut *db, item.id, draft).await?;
                self.pass.published += 1;
            } else if item.state != crate::models::MediaState::Failed {
                self.fail(
                    item,
                    &format!("{host} accepted the edit but does not show the new description."),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Pixelfed's limit, kept by tether itself: `Some(until)` when this minute's updates are
    /// used up.
    async fn pixelfed_slot(&self) -> Result<Option<Timestamp>> {
        let now = Timestamp::now();
        let mut db = self.conn.get().await?;
        let (count, oldest) =
            MediaItem::attempts_since(&mut *db, self.platform_id, now.minus_seconds(60)).await?;
        Ok((count >= PIXELFED_UPDATES_PER_MINUTE).then(|| oldest.unwrap_or(now).plus_seconds(61)))
    }
}

/// What the worker needs of one account for its calls.
struct Account<'a> {
    platform: &'a Platform,
    instance: &'a Instance<'a>,
    access: &'a str,
}

async fn store(
    db: &mut crate::db::Tx<'_>,
    platform_id: i64,
    run: i64,
    status: &Status,
) -> std::result::Result<(), sqlx::Error> {
    let text = plain_text(
        if status.spoiler_text.is_empty() {
            &status.content
        } else {
            &status.spoiler_text
        },
        TEXT_EXCERPT_CHARS,
    );
    let url = status.url.as_deref().filter(|u| is_web_address(u));
    for (position, attachment) in status.media_attachments.iter().enumerate() {
        let Some(kind) = attachment.media_kind() else {
            continue;
        };
        let preview = attachment
            .preview_url
            .as_deref()
            .or(attachment.url.as_deref())
            .filter(|u| is_web_address(u));
        let found = FoundMedia {
            status_id: &status.id,
            status_url: url,
            posted_at: status.posted_at(),
            status_text: &text,
            media_id: &attachment.id,
            position: i64::try_from(position).unwrap_or(0),
            media_type: kind,
            preview_url: preview,
            description: attachment.description(),
        };
        MediaItem::upsert(db, platform_id, run, &found).await?;
    }
    Ok(())
}

/// Only http(s) addresses become links and images (never `javascript:` or `data:`).
fn is_web_address(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "https" | "http"))
}

fn wait_until(reset: Option<Timestamp>) -> Timestamp {
    let now = Timestamp::now();
    match reset {
        // Never sooner than a second, never longer than an hour, whatever the header says.
        Some(at) => at.max(now.plus_seconds(1)).min(now.plus_seconds(3600)),
        None => now.plus_seconds(DEFAULT_WAIT),
    }
}
