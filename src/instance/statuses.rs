//! Posts and their media: the account's statuses page by page, one status and its source, the
//! edit that rewrites a post's media descriptions, and Pixelfed's media update. Every answer's
//! rate-limit headers are read, so the caller can pause before the instance has to refuse.

use serde::Deserialize;
use serde_json::{json, Value as Json};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use url::Url;

use super::{error_text, id_string, Instance, InstanceError, Result};
use crate::db::Timestamp;
use crate::outbound::{OutboundRequest, OutboundResponse};

/// Mastodon's and Pixelfed's largest page.
pub const PAGE_SIZE: usize = 40;

/// What a post's attachment is. Audio has no picture to describe here and is left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    Gifv,
    Video,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Gifv => "gifv",
            MediaKind::Video => "video",
        }
    }

    pub fn parse(s: &str) -> Option<MediaKind> {
        match s {
            "image" => Some(MediaKind::Image),
            "gifv" => Some(MediaKind::Gifv),
            "video" => Some(MediaKind::Video),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            MediaKind::Image => "Image",
            MediaKind::Gifv => "Animated GIF",
            MediaKind::Video => "Video",
        }
    }
}

crate::text_enum!(MediaKind);

#[derive(Clone, Debug, Deserialize)]
pub struct Attachment {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub preview_url: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

impl Attachment {
    pub fn media_kind(&self) -> Option<MediaKind> {
        MediaKind::parse(&self.kind)
    }

    /// An empty description is no description.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref().filter(|d| !d.trim().is_empty())
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Status {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    pub created_at: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub spoiler_text: String,
    #[serde(default)]
    pub sensitive: bool,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub media_attachments: Vec<Attachment>,
    #[serde(default)]
    pub reblog: Option<Json>,
}

impl Status {
    /// When it was posted; an unreadable date counts as the epoch rather than failing the scan.
    pub fn posted_at(&self) -> Timestamp {
        OffsetDateTime::parse(&self.created_at, &Rfc3339)
            .map(|t| Timestamp::from_unix(t.unix_timestamp()))
            .unwrap_or(Timestamp::from_unix(0))
    }

    pub fn attachment(&self, media_id: &str) -> Option<&Attachment> {
        self.media_attachments.iter().find(|a| a.id == media_id)
    }
}

/// What the author typed (`GET /api/v1/statuses/:id/source`): the text an edit must send back,
/// since `content` is the rendered HTML.
#[derive(Clone, Debug, Deserialize)]
pub struct StatusSource {
    /// Required: an answer without it must not become an edit that blanks the post.
    pub text: String,
    #[serde(default)]
    pub spoiler_text: String,
}

/// `X-RateLimit-Remaining` and when the window resets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimit {
    pub remaining: Option<i64>,
    pub reset: Option<Timestamp>,
}

impl RateLimit {
    /// Mastodon sends the reset as an ISO 8601 time; Laravel (Pixelfed) as Unix seconds, plus
    /// `Retry-After` seconds on a 429.
    pub fn of(res: &OutboundResponse) -> RateLimit {
        let now = Timestamp::now();
        let retry_after = res
            .header("retry-after")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map(|secs| now.plus_seconds(secs.max(0)));
        let reset = res.header("x-ratelimit-reset").and_then(|v| {
            let v = v.trim();
            match v.parse::<i64>() {
                // Some servers send seconds from now rather than an instant.
                Ok(n) if n < 1_000_000_000 => Some(now.plus_seconds(n.max(0))),
                Ok(n) => Some(Timestamp::from_unix(n)),
                Err(_) => OffsetDateTime::parse(v, &Rfc3339)
                    .ok()
                    .map(|t| Timestamp::from_unix(t.unix_timestamp())),
            }
        });
        RateLimit {
            remaining: res
                .header("x-ratelimit-remaining")
                .and_then(|v| v.trim().parse().ok()),
            reset: retry_after.or(reset),
        }
    }

    /// Used up: the next call would be refused until `reset`.
    pub fn exhausted(&self) -> Option<Timestamp> {
        match self.remaining {
            Some(remaining) if remaining <= 0 => self.reset,
            _ => None,
        }
    }
}

/// One page of the account's posts and where the next one is.
#[derive(Clone, Debug)]
pub struct Page {
    pub statuses: Vec<Status>,
    /// Mastodon's `Link: <…>; rel="next"`, only when it stays on this instance.
    pub next: Option<Url>,
    pub limit: RateLimit,
}

/// One attachment's new description in an edit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentEdit {
    pub id: String,
    pub description: String,
}

/// Everything Mastodon's `PUT /api/v1/statuses/:id` replaces: a field left out is blanked or
/// detached, so an edit always carries the whole post.
#[derive(Clone, Debug)]
pub struct StatusEdit {
    pub status: String,
    pub spoiler_text: String,
    pub sensitive: bool,
    pub language: Option<String>,
    pub media: Vec<AttachmentEdit>,
}

impl StatusEdit {
    /// The post as it is, with `descriptions` (media id → text) applied and every other
    /// attachment's description kept.
    pub fn keeping(
        source: &StatusSource,
        status: &Status,
        descriptions: &[(String, String)],
    ) -> StatusEdit {
        let media = status
            .media_attachments
            .iter()
            .map(|a| AttachmentEdit {
                id: a.id.clone(),
                description: descriptions
                    .iter()
                    .find(|(id, _)| *id == a.id)
                    .map(|(_, d)| d.clone())
                    .unwrap_or_else(|| a.description.clone().unwrap_or_default()),
            })
            .collect();
        StatusEdit {
            status: source.text.clone(),
            spoiler_text: source.spoiler_text.clone(),
            sensitive: status.sensitive,
            language: status.language.clone(),
            media,
        }
    }

    fn body(&self) -> Json {
        let mut body = json!({
            "status": self.status,
            "spoiler_text": self.spoiler_text,
            "sensitive": self.sensitive,
            "media_ids": self.media.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            "media_attributes": self
                .media
                .iter()
                .map(|m| json!({ "id": m.id, "description": m.description }))
                .collect::<Vec<_>>(),
        });
        if let (Some(language), Some(map)) = (&self.language, body.as_object_mut()) {
            map.insert("language".into(), json!(language));
        }
        body
    }
}

/// The `rel="next"` target of a `Link` header.
fn link_next(header: &str) -> Option<&str> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim();
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then_some(target)
    })
}

/// Status codes of the API calls, as errors.
fn checked(res: OutboundResponse) -> Result<OutboundResponse> {
    match res.status {
        200..=299 => Ok(res),
        401 => Err(InstanceError::Rejected(error_text(&res))),
        // Refused for this post or attachment only, not a dead token.
        403 => Err(InstanceError::Invalid(error_text(&res))),
        404 => Err(InstanceError::NotFound),
        422 => Err(InstanceError::Invalid(error_text(&res))),
        429 => Err(InstanceError::RateLimited(RateLimit::of(&res).reset)),
        status => Err(InstanceError::Status(status)),
    }
}

impl Instance<'_> {
    /// The first page of the account's own posts with media, boosts left out.
    pub fn statuses_url(&self, account_id: &str) -> Result<Url> {
        let mut url = self.url(&format!(
            "/api/v1/accounts/{}/statuses",
            url::form_urlencoded::byte_serialize(account_id.as_bytes()).collect::<String>()
        ))?;
        url.query_pairs_mut()
            .append_pair("only_media", "true")
            .append_pair("exclude_reblogs", "true")
            .append_pair("limit", &PAGE_SIZE.to_string());
        Ok(url)
    }

    /// Pixelfed sends no `Link`: the next page is the first page's address with `max_id`.
    pub fn older_than(&self, account_id: &str, max_id: &str) -> Result<Url> {
        let mut url = self.statuses_url(account_id)?;
        url.query_pairs_mut().append_pair("max_id", max_id);
        Ok(url)
    }

    /// Only addresses on this instance are ever sent the token.
    pub fn is_own(&self, url: &Url) -> bool {
        url.origin() == self.origin.origin()
    }

    pub async fn statuses_page(&self, token: &str, url: Url) -> Result<Page> {
        if !self.is_own(&url) {
            return Err(InstanceError::NotFound);
        }
        let res = checked(self.send(OutboundRequest::get(url).bearer(token)).await?)?;
        let limit = RateLimit::of(&res);
        let next = res
            .header("link")
            .and_then(link_next)
            .and_then(|next| Url::parse(next).ok())
            .filter(|next| self.is_own(next));
        let statuses: Vec<Status> = res.json()?;
        Ok(Page {
            statuses,
            next,
            limit,
        })
    }

    pub async fn status(&self, token: &str, id: &str) -> Result<(Status, RateLimit)> {
        let url = self.url(&format!("/api/v1/statuses/{}", path_segment(id)))?;
        let res = checked(self.send(OutboundRequest::get(url).bearer(token)).await?)?;
        Ok((res.json()?, RateLimit::of(&res)))
    }

    /// Mastodon 3.5 and later.
    pub async fn status_source(&self, token: &str, id: &str) -> Result<StatusSource> {
        let url = self.url(&format!("/api/v1/statuses/{}/source", path_segment(id)))?;
        let res = checked(self.send(OutboundRequest::get(url).bearer(token)).await?)?;
        Ok(res.json()?)
    }

    /// Mastodon 4.1 and later apply `media_attributes`; older versions ignore them.
    pub async fn edit_status(&self, token: &str, id: &str, edit: &StatusEdit) -> Result<Status> {
        let url = self.url(&format!("/api/v1/statuses/{}", path_segment(id)))?;
        let req = OutboundRequest::put(url).bearer(token).json(&edit.body());
        let res = checked(self.send(req).await?)?;
        Ok(res.json()?)
    }

    /// Pixelfed: a posted image's description is changed on the attachment itself (Mastodon
    /// answers 404 here for anything already in a post).
    pub async fn update_media(&self, token: &str, media_id: &str, description: &str) -> Result<()> {
        let url = self.url(&format!("/api/v1/media/{}", path_segment(media_id)))?;
        let req = OutboundRequest::put(url)
            .bearer(token)
            .form(&[("description", description)]);
        checked(self.send(req).await?).map(drop)
    }
}

/// Ids come from the instance; they are escaped rather than trusted to be digits.
fn path_segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// `4.1.0`, `4.3.0+glitch`, `v4.2.10`: whether this Mastodon applies `media_attributes` in an
/// edit (4.1 and later). Unreadable versions are assumed new: the read-back still confirms.
pub fn edits_media_attributes(version: &str) -> bool {
    let digits = version.trim().trim_start_matches('v');
    let mut parts = digits
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (4, 1),
        (Some(major), None) => major >= 4,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_next_finds_the_next_target_among_others() {
        let header = "<https://m.example/api/v1/accounts/1/statuses?max_id=7>; rel=\"next\", \
                      <https://m.example/api/v1/accounts/1/statuses?min_id=9>; rel=\"prev\"";
        assert_eq!(
            link_next(header),
            Some("https://m.example/api/v1/accounts/1/statuses?max_id=7")
        );
        assert_eq!(link_next("<https://m.example/x>; rel=\"prev\""), None);
        assert_eq!(link_next("garbage"), None);
    }

    #[test]
    fn versions_from_4_1_edit_media_attributes() {
        assert!(edits_media_attributes("4.1.0"));
        assert!(edits_media_attributes("4.3.0+glitch"));
        assert!(edits_media_attributes("v4.10.1"));
        assert!(!edits_media_attributes("4.0.2"));
        assert!(!edits_media_attributes("3.5.3"));
    }

    #[test]
    fn an_edit_keeps_the_text_and_the_other_descriptions() {
        let status: Status = serde_json::from_value(json!({
            "id": "1", "created_at": "2026-11-30T10:00:00.000Z", "sensitive": true,
            "language": "de",
            "media_attachments": [
                {"id": "a", "type": "image", "description": "kept"},
                {"id": "b", "type": "image", "description": null}
            ]
        }))
        .expect("status");
        let source = StatusSource {
            text: "hello".into(),
            spoiler_text: "cw".into(),
        };
        let edit = StatusEdit::keeping(&source, &status, &[("b".into(), "new".into())]);
        let body = edit.body();
        assert_eq!(body["status"], "hello");
        assert_eq!(body["spoiler_text"], "cw");
        assert_eq!(body["sensitive"], true);
        assert_eq!(body["language"], "de");
        assert_eq!(body["media_ids"], json!(["a", "b"]));
        assert_eq!(
            body["media_attributes"],
            json!([{"id": "a", "description": "kept"}, {"id": "b", "description": "new"}])
        );
        assert_eq!(status.posted_at().unix(), 1_796_032_800);
    }
}
