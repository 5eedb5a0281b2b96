//! Background work, beside the server on the same pool. Each job is a plain function of the
//! pool and the application's shared parts, so a test can run one pass directly; `stage` starts
//! the loops at liftoff and stops them at shutdown. Work that must happen once is claimed in the
//! database, so several tether processes can run the same jobs.

pub mod refresh;

use rocket::fairing::AdHoc;

pub fn stage() -> AdHoc {
    AdHoc::on_liftoff("Background jobs", |rocket| {
        Box::pin(async move { refresh::spawn(rocket) })
    })
}
