//! The stylesheet, script and icon, compiled into the binary so it runs from any directory. Pages link
//! them with a content hash (`?v=`), so a versioned URL can be cached for a year.

use std::sync::OnceLock;

use rocket::get;
use rocket::http::{ContentType, Header};

use crate::crypto::token_hash;

struct Asset {
    name: &'static str,
    content_type: fn() -> ContentType,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: || ContentType::CSS,
        body: include_bytes!("../../static/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: || ContentType::JavaScript,
        body: include_bytes!("../../static/app.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: || ContentType::SVG,
        body: include_bytes!("../../static/favicon.svg"),
    },
];

/// A short hash of every asset: changes whenever any of them does.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let all: Vec<u8> = ASSETS.iter().flat_map(|a| a.body.iter().copied()).collect();
        token_hash(&String::from_utf8_lossy(&all))[..12].to_string()
    })
}

#[derive(rocket::Responder)]
pub struct AssetResponse {
    body: &'static [u8],
    content_type: ContentType,
    cache: Header<'static>,
}

#[get("/static/<name>?<v>")]
pub fn file(name: &str, v: Option<&str>) -> Option<AssetResponse> {
    let asset = ASSETS.iter().find(|a| a.name == name)?;
    let cache = if v == Some(version()) {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300"
    };
    Some(AssetResponse {
        body: asset.body,
        content_type: (asset.content_type)(),
        cache: Header::new("Cache-Control", cache),
    })
}
