//! Managing connected platforms: the list, the connect and edit forms, default, delete and the
//! no-JavaScript switcher.

use rocket::response::Redirect;
use rocket::{get, post, uri};
use serde::Serialize;

use super::{dashboard, Reply};
use crate::config::Runtime;
use crate::db::Connection;
use crate::error::{Error, Result};
use crate::flash::Flash;
use crate::forms::{ConnectForm, CsrfOnly, FieldErrors, PlatformForm, PlatformValues};
use crate::guards::{App, CallbackParams, CsrfForm, CurrentUser, Layout};
use crate::headers::{Csp, WithCsp};
use crate::models::{Platform, PlatformType};
use crate::services::connect::{self as connecting, Callback, Finished, Started};
use crate::services::platforms::{self as service, Checked, DefaultOutcome, NOT_FOUND};

#[derive(Serialize)]
struct PlatformRow<'a> {
    #[serde(flatten)]
    platform: &'a Platform,
    label: &'static str,
    host: &'a str,
}

#[derive(Serialize)]
struct IndexPage<'a> {
    platforms: Vec<PlatformRow<'a>>,
}

#[derive(Serialize)]
struct TypeOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

#[derive(Serialize)]
struct FormPage {
    editing: bool,
    /// What was typed in "Connect with your instance".
    instance: String,
    /// The token form starts open when it is the one being corrected.
    token_open: bool,
    connect_action: String,
    action: String,
    values: PlatformValues,
    errors: FieldErrors,
    types: Vec<TypeOption>,
}

impl FormPage {
    fn new(editing: Option<i64>, values: PlatformValues, errors: FieldErrors) -> FormPage {
        let types = PlatformType::ALL
            .into_iter()
            .map(|t| TypeOption {
                value: t.as_str(),
                label: t.label(),
                selected: values.platform_type == t.as_str(),
            })
            .collect();
        FormPage {
            editing: editing.is_some(),
            instance: String::new(),
            token_open: !errors.is_empty() && !errors.contains_key("instance"),
            connect_action: uri!(connect).to_string(),
            action: editing.map_or_else(
                || uri!(create).to_string(),
                |id| uri!(update(id)).to_string(),
            ),
            values,
            errors,
            types,
        }
    }

    fn title(&self) -> &'static str {
        if self.editing {
            "Edit platform"
        } else {
            "Connect a platform"
        }
    }

    fn render(self, layout: Layout<'_>, allowed: &[String]) -> Reply {
        let page = layout.render("platform_form", self.title(), self);
        Reply::Connect(WithCsp(page, connect_policy(allowed)))
    }

    fn invalid(self, layout: Layout<'_>, allowed: &[String]) -> Reply {
        let title = self.title();
        match Reply::invalid(layout, "platform_form", title, self) {
            Reply::Invalid(page) => Reply::InvalidConnect(WithCsp(page, connect_policy(allowed))),
            other => other,
        }
    }
}

fn to_list(message: String) -> Flash<Redirect> {
    Flash::success(Redirect::to(uri!(index)), message)
}

#[get("/platforms")]
pub async fn index(user: &CurrentUser, layout: Layout<'_>, conn: Connection<'_>) -> Result<Reply> {
    let mut db = conn.get().await?;
    let platforms = Platform::list_for_user(&mut *db, user.id).await?;
    let page = IndexPage {
        platforms: platforms
            .iter()
            .map(|p| PlatformRow {
                platform: p,
                label: p.platform_type.label(),
                host: p.host(),
            })
            .collect(),
    };
    Ok(Reply::Page(layout.render("platforms", "Platforms", page)))
}

/// The connect form posts to tether, which redirects to the instance: browsers check that
/// redirect against this page's `form-action`, and the instance is whatever the user types. Any
/// https origin, plus the allow-listed local instances (which may use http).
fn connect_policy(allowed: &[String]) -> Csp {
    // The allow-listed instances' avatars too, as on every other page.
    allowed.iter().fold(
        Csp::default().allow_form_action("https:"),
        |csp, host_port| {
            csp.allow_form_action(format!("http://{host_port}"))
                .allow_images_from(format!("http://{host_port}"))
        },
    )
}

fn default_values() -> PlatformValues {
    PlatformValues {
        platform_type: PlatformType::Mastodon.as_str().into(),
        is_active: true,
        ..PlatformValues::default()
    }
}

/// `?instance=` fills in the connect form (the Reconnect buttons link here).
#[get("/platforms/new?<instance>")]
pub fn new(
    _user: &CurrentUser,
    layout: Layout<'_>,
    runtime: &rocket::State<Runtime>,
    instance: Option<&str>,
) -> Reply {
    let mut page = FormPage::new(None, default_values(), FieldErrors::new());
    page.instance = instance
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(255)
        .collect();
    page.render(layout, &runtime.settings.outbound_allow_private)
}

#[post("/platforms", data = "<form>")]
pub async fn create(
    user: &CurrentUser,
    layout: Layout<'_>,
    conn: Connection<'_>,
    app: App<'_>,
    form: CsrfForm<PlatformForm>,
) -> Result<Reply> {
    let form = form.0;
    let allowed = &app.runtime.settings.outbound_allow_private;
    let invalid = |errors| FormPage::new(None, form.values(), errors).invalid(layout, allowed);
    let (new, token) = match form.validate(true) {
        Ok((new, Some(token))) => (new, token),
        Ok((_, None)) => return Err(Error::Internal("validated form without a token".into())),
        Err(errors) => return Ok(invalid(errors)),
    };
    match service::create(&conn, &app, user, &new, &token).await? {
        Ok(platform) => Ok(Reply::Flash(Flash::success(
            Redirect::to(uri!(dashboard::show)),
            format!("Connected {}.", platform.name),
        ))),
        Err(errors) => Ok(invalid(errors)),
    }
}

#[get("/platforms/<id>/edit")]
pub async fn edit(
    id: i64,
    user: &CurrentUser,
    layout: Layout<'_>,
    conn: Connection<'_>,
    runtime: &rocket::State<Runtime>,
) -> Result<Reply> {
    let mut db = conn.get().await?;
    let platform = Platform::find_for_user(&mut *db, user.id, id)
        .await?
        .ok_or(NOT_FOUND)?;
    let values = PlatformValues {
        name: platform.name,
        platform_type: platform.platform_type.as_str().to_string(),
        instance_url: platform.instance_url,
        username: platform.username,
        is_active: platform.is_active,
    };
    let allowed = &runtime.settings.outbound_allow_private;
    Ok(FormPage::new(Some(id), values, FieldErrors::new()).render(layout, allowed))
}

/// Saves the edit form. A blank token keeps the stored one; deactivating the platform a session
/// is using makes that session fall back to the default on its next request.
#[post("/platforms/<id>", data = "<form>")]
pub async fn update(
    id: i64,
    user: &CurrentUser,
    layout: Layout<'_>,
    conn: Connection<'_>,
    app: App<'_>,
    form: CsrfForm<PlatformForm>,
) -> Result<Reply> {
    let form = form.0;
    let allowed = &app.runtime.settings.outbound_allow_private;
    let invalid = |errors| FormPage::new(Some(id), form.values(), errors).invalid(layout, allowed);
    let (changes, token) = match form.validate(false) {
        Ok(valid) => valid,
        Err(errors) => {
            // A form for a platform that is not there is a 404, whatever its fields say.
            let mut db = conn.get().await?;
            Platform::find_for_user(&mut *db, user.id, id)
                .await?
                .ok_or(NOT_FOUND)?;
            return Ok(invalid(errors));
        }
    };
    match service::update(&conn, &app, user, id, &changes, token.as_deref()).await? {
        Ok(platform) => Ok(Reply::Flash(to_list(format!("Saved {}.", platform.name)))),
        Err(errors) => Ok(invalid(errors)),
    }
}

#[post("/platforms/<id>/default", data = "<_form>")]
pub async fn make_default(
    id: i64,
    user: &CurrentUser,
    conn: Connection<'_>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<Flash<Redirect>> {
    let mut db = conn.get().await?;
    Ok(match service::make_default(&mut db, user, id).await? {
        DefaultOutcome::Done(p) => to_list(format!("{} is now your default platform.", p.name)),
        DefaultOutcome::Inactive(p) => Flash::error(
            Redirect::to(uri!(index)),
            format!("Activate {} before making it your default.", p.name),
        ),
    })
}

#[post("/platforms/<id>/delete", data = "<_form>")]
pub async fn delete(
    id: i64,
    user: &CurrentUser,
    conn: Connection<'_>,
    app: App<'_>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<Flash<Redirect>> {
    let platform = service::delete(&conn, &app, user, id).await?;
    Ok(to_list(format!("Removed {}.", platform.name)))
}

/// The switcher without JavaScript.
#[post("/platforms/<id>/switch", data = "<_form>")]
pub async fn switch(
    id: i64,
    user: &CurrentUser,
    conn: Connection<'_>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<Flash<Redirect>> {
    let mut db = conn.get().await?;
    match service::switch_active(&mut db, user, id).await {
        Ok(platform) => Ok(Flash::success(
            Redirect::to(uri!(dashboard::show)),
            format!("Now working with {}.", platform.name),
        )),
        Err(Error::Unprocessable(message)) => Ok(Flash::error(Redirect::to(uri!(index)), message)),
        Err(e) => Err(e),
    }
}

/// "Check connection": ask the instance now and store what it says.
#[post("/platforms/<id>/verify", data = "<_form>")]
pub async fn verify(
    id: i64,
    user: &CurrentUser,
    conn: Connection<'_>,
    app: App<'_>,
    _form: CsrfForm<CsrfOnly>,
) -> Result<Flash<Redirect>> {
    let back = || Redirect::to(uri!(index));
    Ok(match service::check(&conn, &app, user.id, id).await? {
        Checked::Verified(p) => {
            Flash::success(back(), format!("{} is connected and working.", p.name))
        }
        Checked::NeedsReconnect(p) => Flash::warning(
            back(),
            format!(
                "{} no longer accepts tether's access. Reconnect it to keep using it.",
                p.name
            ),
        ),
        Checked::Unavailable(_, message) => Flash::error(back(), message),
    })
}

/// "Connect with your instance": registers tether there if needed and sends the browser to the
/// instance to approve. The page holding this form allows any https `form-action`, because the
/// post redirects to an instance that is not known when the page is rendered.
#[post("/platforms/connect", data = "<form>")]
pub async fn connect(
    user: &CurrentUser,
    layout: Layout<'_>,
    conn: Connection<'_>,
    app: App<'_>,
    form: CsrfForm<ConnectForm>,
) -> Result<Reply> {
    let form = form.0;
    match connecting::start(&conn, &app, user, &form.instance).await? {
        Started::Authorize(url) => Ok(Reply::Redirect(Redirect::to(url.to_string()))),
        Started::Invalid(message) => {
            let mut page = FormPage::new(None, default_values(), FieldErrors::new());
            page.instance = form.instance.trim().to_string();
            page.errors.insert("instance", message);
            Ok(page.invalid(layout, &app.runtime.settings.outbound_allow_private))
        }
    }
}

/// Where the instance sends the browser back (`?code=&state=` or `?error=&state=`): a top-level
/// cross-site GET, so the session cookie (SameSite=Lax) comes along. The query arrives through
/// [`CallbackParams`], so the code is never logged.
#[get("/platforms/connect/callback")]
pub async fn callback(
    user: &CurrentUser,
    conn: Connection<'_>,
    app: App<'_>,
    params: &CallbackParams,
) -> Result<Flash<Redirect>> {
    let callback = Callback {
        code: params.code.as_deref(),
        state: params.state.as_deref(),
        error: params.error.as_deref(),
    };
    Ok(
        match connecting::finish(&conn, &app, user, callback).await? {
            Finished::Connected(p) => Flash::success(
                Redirect::to(uri!(dashboard::show)),
                format!("Connected {}.", handle(&p)),
            ),
            Finished::Reconnected(p) => Flash::success(
                Redirect::to(uri!(dashboard::show)),
                format!("Reconnected {}.", handle(&p)),
            ),
            Finished::Failed(message) => {
                Flash::error(Redirect::to(uri!(new(instance = _))), message)
            }
        },
    )
}

/// `@alice@mastodon.social`.
fn handle(platform: &Platform) -> String {
    format!("@{}@{}", platform.username, platform.host())
}
