//! The benchmark's baseline (`bench/dashboard.sh`): Rocket doing as good as nothing, built with
//! the same Rocket version and release profile as tether. `/` answers "Hello, world!" (13 bytes);
//! `/page` answers a 6 KB HTML page held in memory, about the size of tether's dashboard.

use rocket::response::content::RawHtml;
use rocket::{get, routes};

#[get("/")]
fn hello() -> &'static str {
    "Hello, world!"
}

#[get("/page")]
fn page() -> RawHtml<&'static str> {
    static PAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let page = PAGE.get_or_init(|| {
        let row = "<li class=\"platform-list__item\"><p>An account on an instance</p></li>\n";
        let mut html = String::from(
            "<!doctype html><html lang=\"en\"><head><title>page</title></head><body><ul>\n",
        );
        while html.len() < 6 * 1024 - 24 {
            html.push_str(row);
        }
        html.push_str("</ul></body></html>\n");
        html
    });
    RawHtml(page.as_str())
}

#[rocket::launch]
fn rocket() -> _ {
    rocket::build().mount("/", routes![hello, page])
}
