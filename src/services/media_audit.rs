//! The alt-text audit as a person works it: what the audit page and the dashboard show, asking
//! for a scan, and saving, queueing and retrying descriptions. The instance is never called
//! from here: the worker in `jobs::media_audit` does that, outside any request.

use serde::Serialize;

use crate::config::Runtime;
use crate::db::{ScopedConnection, Timestamp};
use crate::error::{Error, Result};
use crate::forms::DescriptionAction;
use crate::guards::PlatformContext;
use crate::instance::edits_media_attributes;
use crate::models::{
    MediaAudit, MediaFilter, MediaItem, MediaState, MediaSummary, Platform, PlatformType, ScanState,
};

pub const PAGE_SIZE: i64 = 20;
pub const NOT_FOUND: Error = Error::NotFound("Image");

/// Mastodon's limit since 2.x; Pixelfed's default. The instance's own figure wins once a scan
/// has read it.
pub fn default_description_limit(kind: PlatformType) -> i64 {
    match kind {
        PlatformType::Mastodon => 1500,
        PlatformType::Pixelfed => 1000,
    }
}

/// Where the account's scan stands, in the words and numbers the page shows.
#[derive(Clone, Debug, Serialize)]
pub struct ScanView {
    pub state: ScanState,
    pub in_progress: bool,
    pub posts_scanned: i64,
    pub max_posts: i64,
    pub requested_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub waiting_until: Option<Timestamp>,
    pub error: Option<String>,
    /// One sentence: "Scanned 120 of at most 400 posts", "Waiting for … until …".
    pub message: String,
    /// The progress bar: posts read of at most `max_posts`, full once the scan has finished
    /// (an account with fewer posts ends early).
    pub bar_value: i64,
    pub bar_max: i64,
}

impl ScanView {
    pub fn of(audit: Option<&MediaAudit>, host: &str) -> ScanView {
        let Some(audit) = audit else {
            return ScanView {
                state: ScanState::Idle,
                in_progress: false,
                posts_scanned: 0,
                max_posts: 0,
                requested_at: None,
                finished_at: None,
                waiting_until: None,
                error: None,
                message: "This account has not been scanned yet.".into(),
                bar_value: 0,
                bar_max: 0,
            };
        };
        let now = Timestamp::now();
        let waiting_until = audit.waiting_until.filter(|t| *t > now);
        let progress = format!(
            "Scanned {} of at most {} posts",
            audit.posts_scanned, audit.max_posts
        );
        let message = match (audit.scan_state, waiting_until) {
            (ScanState::Idle, _) => "This account has not been scanned yet.".into(),
            (state, Some(until)) if state.in_progress() => format!(
                "{progress}. Waiting for {host}'s rate limit until {}.",
                until.display()
            ),
            (ScanState::Queued, _) => "Scan queued: it starts in a moment.".into(),
            (ScanState::Running | ScanState::Waiting, _) => format!("{progress}…"),
            (ScanState::Finished, _) => format!(
                "{progress}; finished {}.",
                audit
                    .scan_finished_at
                    .map(Timestamp::display)
                    .unwrap_or_default()
            ),
            (ScanState::Failed, _) => audit
                .scan_error
                .clone()
                .unwrap_or_else(|| "The scan stopped.".into()),
        };
        ScanView {
            state: audit.scan_state,
            in_progress: audit.scan_state.in_progress(),
            posts_scanned: audit.posts_scanned,
            max_posts: audit.max_posts,
            requested_at: audit.scan_requested_at,
            finished_at: audit.scan_finished_at,
            waiting_until,
            error: audit.scan_error.clone(),
            message,
            bar_value: audit.posts_scanned,
            bar_max: if audit.scan_state == ScanState::Finished {
                audit.posts_scanned.max(1)
            } else {
                audit.max_posts
            },
        }
    }
}

/// One attachment on the page, with what its state means in words.
#[derive(Clone, Debug, Serialize)]
pub struct ItemView {
    #[serde(flatten)]
    pub item: MediaItem,
    pub kind_label: &'static str,
    pub state_label: &'static str,
    pub posted_iso: String,
    /// What the text area starts with: the draft, else the instance's description.
    pub text: String,
    pub has_description: bool,
    pub can_retry: bool,
    /// The state, in one sentence (with the time of a wait, the reason of a failure).
    pub status_line: String,
    /// Why the text just sent was not kept (the form is shown again with it).
    pub field_error: Option<String>,
}

impl ItemView {
    pub fn of(item: MediaItem) -> ItemView {
        let text = item
            .draft
            .clone()
            .or_else(|| item.description.clone())
            .unwrap_or_default();
        let has_description = item
            .description
            .as_deref()
            .is_some_and(|d| !d.trim().is_empty());
        let status_line = match item.state {
            MediaState::None if has_description => "Has a description on the instance.".into(),
            MediaState::None => "No description yet.".into(),
            MediaState::Draft => "Draft saved in tether, not published.".into(),
            MediaState::Queued => "Queued for publishing.".into(),
            MediaState::Waiting => match item.waiting_until {
                Some(until) => format!(
                    "Waiting for the instance's rate limit until {}.",
                    until.display()
                ),
                None => "Waiting for the instance's rate limit.".into(),
            },
            MediaState::Published => match item.published_at {
                Some(at) => format!("Published {}.", at.display()),
                None => "Published.".into(),
            },
            MediaState::Failed => format!(
                "Publishing failed: {}",
                item.error.as_deref().unwrap_or("the instance refused it.")
            ),
        };
        ItemView {
            kind_label: item.media_type.label(),
            posted_iso: item.posted_at.iso(),
            state_label: item.state.label(),
            can_retry: item.state == MediaState::Failed,
            text,
            has_description,
            status_line,
            field_error: None,
            item,
        }
    }
}

/// Everything the audit page shows.
#[derive(Debug, Serialize)]
pub struct AuditPage {
    pub scan: ScanView,
    pub summary: MediaSummary,
    pub items: Vec<ItemView>,
    pub filter: MediaFilter,
    pub page: i64,
    pub pages: i64,
    pub matching: i64,
    pub description_limit: i64,
    /// Why publishing cannot work here, if it cannot (an old Mastodon).
    pub publish_blocked: Option<String>,
}

fn description_limit(platform: &Platform, audit: Option<&MediaAudit>) -> i64 {
    audit
        .and_then(|a| a.description_limit)
        .filter(|l| *l > 0)
        .unwrap_or_else(|| default_description_limit(platform.platform_type))
}

fn publish_blocked(platform: &Platform, audit: Option<&MediaAudit>) -> Option<String> {
    let version = audit?.instance_version.as_deref()?;
    (platform.platform_type == PlatformType::Mastodon && !edits_media_attributes(version))
        .then(|| old_mastodon_message(platform.host(), version))
}

pub async fn page(
    conn: &ScopedConnection,
    platform: &Platform,
    filter: MediaFilter,
    page: i64,
) -> Result<AuditPage> {
    let mut db = conn.get().await?;
    let audit = MediaAudit::find(&mut *db, platform.id).await?;
    let summary = MediaItem::summary(&mut *db, platform.id).await?;
    let matching = MediaItem::count(&mut *db, platform.id, filter).await?;
    let pages = ((matching + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let page = page.clamp(1, pages);
    let items = MediaItem::page(
        &mut *db,
        platform.id,
        filter,
        (page - 1) * PAGE_SIZE,
        PAGE_SIZE,
    )
    .await?;
    Ok(AuditPage {
        scan: ScanView::of(audit.as_ref(), platform.host()),
        summary,
        items: items.into_iter().map(ItemView::of).collect(),
        filter,
        page,
        pages,
        matching,
        description_limit: description_limit(platform, audit.as_ref()),
        publish_blocked: publish_blocked(platform, audit.as_ref()),
    })
}

/// The dashboard's card: counts and the last scan, without the items.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub scan: ScanView,
    pub counts: MediaSummary,
}

/// The active platform's summary: from what the platform guard already loaded when it could,
/// else two statements of its own.
pub async fn summary(conn: &ScopedConnection, context: &PlatformContext) -> Result<Summary> {
    let platform = &context.active;
    if let Some(snapshot) = &context.active_audit {
        return Ok(Summary {
            scan: ScanView::of(snapshot.audit.as_ref(), platform.host()),
            counts: snapshot.counts,
        });
    }
    let mut db = conn.get().await?;
    let audit = MediaAudit::find(&mut *db, platform.id).await?;
    let counts = MediaItem::summary(&mut *db, platform.id).await?;
    Ok(Summary {
        scan: ScanView::of(audit.as_ref(), platform.host()),
        counts,
    })
}

/// Queues a scan of the account; `false` when one is already under way.
pub async fn request_scan(
    conn: &ScopedConnection,
    runtime: &Runtime,
    platform: &Platform,
) -> Result<bool> {
    let max_posts = i64::try_from(runtime.settings.audit_max_posts.max(1)).unwrap_or(i64::MAX);
    let mut db = conn.get().await?;
    Ok(MediaAudit::request_scan(&mut *db, platform.id, max_posts).await?)
}

/// What became of a saved description.
#[derive(Debug, PartialEq, Eq)]
pub enum Saved {
    Draft,
    Cleared,
    Queued,
    /// Kept as a draft, but this instance cannot take it (the reason).
    KeptNotQueued(String),
}

/// A description as typed, checked against the instance's limit. `Err` is the message for the
/// field; nothing is stored then (the page shows the text again).
fn cleaned(text: &str, limit: i64) -> std::result::Result<Option<String>, String> {
    let text: String = text
        .replace("\r\n", "\n")
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect();
    let text = text.trim();
    let length = i64::try_from(text.chars().count()).unwrap_or(i64::MAX);
    if length > limit {
        return Err(format!(
            "This description is {length} characters long; the instance accepts at most {limit}."
        ));
    }
    Ok((!text.is_empty()).then(|| text.to_string()))
}

/// The user's item with its platform and audit row; another user's item is not found.
async fn owned(
    db: &mut crate::db::DbConn,
    user_id: i64,
    id: i64,
) -> Result<(MediaItem, Platform, Option<MediaAudit>)> {
    let item = MediaItem::find_for_user(db, user_id, id)
        .await?
        .ok_or(NOT_FOUND)?;
    let platform = Platform::find_for_user(db, user_id, item.platform_id)
        .await?
        .ok_or(NOT_FOUND)?;
    let audit = MediaAudit::find(db, platform.id).await?;
    Ok((item, platform, audit))
}

/// "Save" or "Publish" next to one image. The draft is stored before anything else happens, so
/// what was typed survives whatever the instance does later.
pub async fn save(
    conn: &ScopedConnection,
    user_id: i64,
    id: i64,
    text: &str,
    action: DescriptionAction,
) -> Result<std::result::Result<(MediaItem, Saved), String>> {
    let mut db = conn.get().await?;
    let (item, platform, audit) = owned(&mut db, user_id, id).await?;
    let draft = match cleaned(text, description_limit(&platform, audit.as_ref())) {
        Ok(draft) => draft,
        Err(message) => return Ok(Err(message)),
    };
    if draft.is_none() && action == DescriptionAction::Publish {
        return Ok(Err("Write a description before publishing it.".into()));
    }
    let mut tx = db.begin().await?;
    MediaItem::save_draft(&mut tx, id, draft.as_deref()).await?;
    let saved = match (draft, action) {
        (None, _) => Saved::Cleared,
        (Some(_), DescriptionAction::Save) => Saved::Draft,
        (Some(_), DescriptionAction::Publish) => match publish_blocked(&platform, audit.as_ref()) {
            Some(reason) => Saved::KeptNotQueued(reason),
            None => {
                MediaItem::queue(&mut tx, id).await?;
                MediaAudit::wake(&mut tx, platform.id).await?;
                Saved::Queued
            }
        },
    };
    tx.commit().await?;
    Ok(Ok((item, saved)))
}

/// "Retry" on a failed item; `Err` says why this instance cannot take it.
pub async fn retry(
    conn: &ScopedConnection,
    user_id: i64,
    id: i64,
) -> Result<std::result::Result<MediaItem, String>> {
    let mut db = conn.get().await?;
    let (item, platform, audit) = owned(&mut db, user_id, id).await?;
    if let Some(reason) = publish_blocked(&platform, audit.as_ref()) {
        return Ok(Err(reason));
    }
    let mut tx = db.begin().await?;
    if MediaItem::queue(&mut tx, id).await? {
        MediaAudit::wake(&mut tx, item.platform_id).await?;
    }
    tx.commit().await?;
    Ok(Ok(item))
}

/// "Publish all drafts" of the account; how many were queued, or why none can be.
pub async fn publish_all(
    conn: &ScopedConnection,
    platform: &Platform,
) -> Result<std::result::Result<u64, String>> {
    let mut db = conn.get().await?;
    let audit = MediaAudit::find(&mut *db, platform.id).await?;
    if let Some(reason) = publish_blocked(platform, audit.as_ref()) {
        return Ok(Err(reason));
    }
    let mut tx = db.begin().await?;
    let queued = MediaItem::queue_all(&mut tx, platform.id).await?;
    if queued > 0 {
        MediaAudit::wake(&mut tx, platform.id).await?;
    }
    tx.commit().await?;
    Ok(Ok(queued))
}

/// What the page's script polls: the scan and the items whose state can still change.
#[derive(Debug, Serialize)]
pub struct Progress {
    pub platform_id: i64,
    pub scan: ScanView,
    pub summary: MediaSummary,
    pub items: Vec<ItemProgress>,
}

#[derive(Debug, Serialize)]
pub struct ItemProgress {
    pub id: i64,
    pub state: MediaState,
    pub state_label: &'static str,
    pub status_line: String,
    pub can_retry: bool,
}

pub async fn progress(conn: &ScopedConnection, platform: &Platform) -> Result<Progress> {
    let (audit, summary, items) = {
        let mut db = conn.get().await?;
        (
            MediaAudit::find(&mut *db, platform.id).await?,
            MediaItem::summary(&mut *db, platform.id).await?,
            MediaItem::in_flight(&mut *db, platform.id).await?,
        )
    };
    Ok(Progress {
        platform_id: platform.id,
        scan: ScanView::of(audit.as_ref(), platform.host()),
        summary,
        items: items
            .into_iter()
            .map(|item| {
                let view = ItemView::of(item);
                ItemProgress {
                    id: view.item.id,
                    state: view.item.state,
                    state_label: view.state_label,
                    status_line: view.status_line,
                    can_retry: view.can_retry,
                }
            })
            .collect(),
    })
}

pub fn reconnect_message(host: &str) -> String {
    format!(
        "{host} no longer accepts tether's access to this account. Reconnect it, then scan again."
    )
}

pub fn old_mastodon_message(host: &str, version: &str) -> String {
    format!(
        "{host} runs Mastodon {version}, which cannot edit the descriptions of images that are \
         already posted (Mastodon 4.1 and later can). Your draft is kept."
    )
}

#[cfg(test)]
mod tests {
    use super::cleaned;

    #[test]
    fn descriptions_are_trimmed_and_bounded_in_characters() {
        assert_eq!(cleaned("  a dog\r\n ", 10), Ok(Some("a dog".into())));
        assert_eq!(cleaned("   ", 10), Ok(None));
        assert_eq!(
            cleaned("ü".repeat(10).as_str(), 10),
            Ok(Some("ü".repeat(10)))
        );
        assert!(cleaned(&"x".repeat(11), 10).is_err());
        assert_eq!(cleaned("a\u{0}b", 10), Ok(Some("ab".into())));
    }
}
