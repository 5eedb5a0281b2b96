//! tether: a multi-account dashboard for fediverse platforms.
//!
//! `rocket()` assembles the application; every piece lives in its own module and is attached
//! here, so the whole app is visible on one screen.

pub mod catchers;
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod flash;
pub mod forms;
pub mod guards;
pub mod headers;
pub mod html_text;
pub mod instance;
pub mod jobs;
pub mod models;
pub mod outbound;
pub mod routes;
pub mod services;

use rocket::figment::Figment;
use rocket::shield::Shield;
use rocket::{Build, Rocket};
use rocket_dyn_templates::Template;

/// The application, configured from Rocket.toml and `ROCKET_*` over tether's defaults.
pub fn rocket() -> Rocket<Build> {
    rocket_from(config::figment())
}

/// The application with an explicit configuration (tests point it at their own database).
pub fn rocket_from(figment: Figment) -> Rocket<Build> {
    rocket::custom(figment)
        // Our own fairing sends the security headers; an empty Shield replaces Rocket's default.
        .attach(Shield::new())
        .attach(config::stage())
        .attach(db::stage())
        .attach(Template::fairing())
        .attach(headers::SecurityHeaders)
        .attach(guards::HideCallbackQuery)
        .attach(jobs::stage())
        .mount("/", routes::routes())
        .register("/", catchers::html())
        .register("/api", catchers::api())
}
