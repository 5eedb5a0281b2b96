//! The alt-text audit of the active account: the page, the scan button, a description's save
//! and publish, retry, "publish all drafts", and the progress JSON the page's script polls.

use rocket::response::Redirect;
use rocket::serde::json::Json;
use rocket::{get, post, uri};

use super::{Pager, Reply};
use crate::db::Connection;
use crate::error::Result;
use crate::flash::{Flash, FlashKind};
use crate::forms::{CsrfOnly, DescriptionForm};
use crate::guards::{App, CsrfForm, CurrentUser, Layout, PlatformContext};
use crate::models::MediaFilter;
use crate::services::media_audit::{
    self as service, AuditPage, ItemView, Progress, Saved, PAGE_SIZE,
};

const TITLE: &str = "Alt-text audit";

fn back(filter: Option<MediaFilter>, page: Option<i64>, anchor: Option<i64>) -> Redirect {
    let to = uri!(show(filter = filter, page = page)).to_string();
    match anchor {
        Some(id) => Redirect::to(format!("{to}#item-{id}")),
        None => Redirect::to(to),
    }
}

#[get("/audit?<filter>&<page>")]
pub async fn show(
    _user: &CurrentUser,
    ctx: &PlatformContext,
    layout: Layout<'_>,
    conn: Connection<'_>,
    filter: Option<MediaFilter>,
    page: Option<i64>,
) -> Result<Reply> {
    let filter = filter.unwrap_or(MediaFilter::All);
    let page = service::page(&conn, &ctx.active, filter, page.unwrap_or(1)).await?;
    Ok(Reply::Page(layout.render("audit", TITLE, View::of(page))))
}

/// The page with its links: the filters and the pager.
#[derive(serde::Serialize)]
struct View {
    #[serde(flatten)]
    audit: AuditPage,
    filters: Vec<FilterLink>,
    pager: Pager,
    scan_action: String,
    publish_all_action: String,
    /// This page's own address, for the script's reloads (a re-rendered form's URL is the
    /// form's action, which only takes a POST).
    self_url: String,
}

#[derive(serde::Serialize)]
struct FilterLink {
    value: &'static str,
    label: &'static str,
    href: String,
    current: bool,
}

impl View {
    fn of(audit: AuditPage) -> View {
        let filter = audit.filter;
        let filters = MediaFilter::ALL
            .into_iter()
            .map(|f| FilterLink {
                value: f.as_str(),
                label: f.label(),
                href: uri!(show(filter = Some(f), page = None::<i64>)).to_string(),
                current: f == filter,
            })
            .collect();
        let pager = Pager::new(audit.page, audit.matching, PAGE_SIZE, |n| {
            uri!(show(filter = Some(filter), page = Some(n))).to_string()
        });
        let self_url = uri!(show(filter = Some(filter), page = Some(audit.page))).to_string();
        View {
            self_url,
            audit,
            filters,
            pager,
            scan_action: uri!(scan).to_string(),
            publish_all_action: uri!(publish_all).to_string(),
        }
    }
}

/// Queues the scan; the worker runs it, never this request.
#[post("/audit/scan", data = "<_form>")]
pub async fn scan(
    _user: &CurrentUser,
    ctx: &PlatformContext,
    conn: Connection<'_>,
    app: App<'_>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<Flash<Redirect>> {
    let to = back(None, None, None);
    Ok(
        if service::request_scan(&conn, app.runtime, &ctx.active).await? {
            Flash::success(
                to,
                format!("Scanning the recent posts of {}.", ctx.active.name),
            )
        } else {
            Flash::warning(to, "A scan of this account is already under way.")
        },
    )
}

/// "Save" and "Publish" for one image. A description the instance could not take (too long)
/// comes back in its text area with the reason beside it.
#[post("/audit/items/<id>", data = "<form>")]
pub async fn save(
    id: i64,
    user: &CurrentUser,
    ctx: &PlatformContext,
    layout: Layout<'_>,
    conn: Connection<'_>,
    form: CsrfForm<DescriptionForm>,
) -> Result<Reply> {
    let form = form.0;
    let (item, saved) =
        match service::save(&conn, user.id, id, &form.description, form.action).await? {
            Ok(done) => done,
            Err(message) => {
                let filter = form.filter.unwrap_or(MediaFilter::All);
                let mut page =
                    service::page(&conn, &ctx.active, filter, form.page.unwrap_or(1)).await?;
                let position = page.items.iter().position(|v| v.item.id == id);
                let mut view = match position {
                    Some(i) => page.items.remove(i),
                    None => match crate::models::MediaItem::find_for_user(
                        &mut *conn.get().await?,
                        user.id,
                        id,
                    )
                    .await?
                    {
                        Some(item) => ItemView::of(item),
                        None => return Err(service::NOT_FOUND),
                    },
                };
                view.text = form.description.clone();
                view.field_error = Some(message.clone());
                page.items.insert(position.unwrap_or(0), view);
                return Ok(Reply::invalid_with(
                    layout,
                    &message,
                    "audit",
                    TITLE,
                    View::of(page),
                ));
            }
        };
    let to = back(form.filter, form.page, Some(item.id));
    let (kind, message) = match saved {
        Saved::Draft => (FlashKind::Success, "Draft saved in tether.".to_string()),
        Saved::Cleared => (FlashKind::Success, "Draft removed.".to_string()),
        Saved::Queued => (
            FlashKind::Success,
            "Saved and queued: tether is publishing it to the instance.".to_string(),
        ),
        Saved::KeptNotQueued(reason) => (FlashKind::Warning, reason),
    };
    Ok(Reply::Flash(Flash::new(to, kind, message)))
}

#[post("/audit/items/<id>/retry", data = "<_form>")]
pub async fn retry(
    id: i64,
    user: &CurrentUser,
    conn: Connection<'_>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<Flash<Redirect>> {
    Ok(match service::retry(&conn, user.id, id).await? {
        Ok(item) => Flash::success(back(None, None, Some(item.id)), "Queued again."),
        Err(reason) => Flash::error(back(None, None, Some(id)), reason),
    })
}

#[post("/audit/publish-all", data = "<_form>")]
pub async fn publish_all(
    _user: &CurrentUser,
    ctx: &PlatformContext,
    conn: Connection<'_>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<Flash<Redirect>> {
    let to = back(Some(MediaFilter::Drafted), None, None);
    Ok(match service::publish_all(&conn, &ctx.active).await? {
        Ok(0) => Flash::warning(to, "There are no drafts to publish."),
        Ok(1) => Flash::success(to, "Queued 1 draft for publishing."),
        Ok(n) => Flash::success(to, format!("Queued {n} drafts for publishing.")),
        Err(reason) => Flash::error(to, reason),
    })
}

/// The page's script polls this while a scan or a publish is under way.
#[get("/api/audit")]
pub async fn progress(
    _user: &CurrentUser,
    ctx: &PlatformContext,
    conn: Connection<'_>,
) -> Result<Json<Progress>> {
    Ok(Json(service::progress(&conn, &ctx.active).await?))
}
