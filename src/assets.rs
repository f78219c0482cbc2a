//! Static assets, compiled into the binary: our CSS and JavaScript from `assets/`, and htmx from
//! the npm registry (`node_modules`, installed by `npm ci`; see build.rs). URLs carry a content
//! hash, so they can be cached for a year and still change when the file does.

use std::sync::LazyLock;

use poem::http::{StatusCode, header};
use poem::web::Path;
use poem::{Response, handler};

struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static [u8],
}

static ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        mime: "text/css; charset=utf-8",
        body: include_bytes!("../assets/app.css"),
    },
    Asset {
        name: "app.js",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/app.js"),
    },
    Asset {
        name: "calls.js",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/calls.js"),
    },
    Asset {
        name: "favicon.svg",
        mime: "image/svg+xml",
        body: include_bytes!("../assets/favicon.svg"),
    },
    Asset {
        name: "htmx.min.js",
        mime: "text/javascript; charset=utf-8",
        body: include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/node_modules/htmx.org/dist/htmx.min.js"
        )),
    },
];

/// `name` → "name?v=hash", computed once.
static VERSIONED: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            (
                a.name,
                format!("/assets/{}?v={:016x}", a.name, fnv1a(a.body)),
            )
        })
        .collect()
});

/// A short, stable content hash for cache busting (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    h.write(bytes);
    h.finish()
}

/// The URL of an asset, with its version.
pub fn url(name: &str) -> &'static str {
    VERSIONED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, u)| u.as_str())
        .unwrap_or("/assets/missing")
}

#[handler]
pub fn serve(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => Response::builder()
            .header(header::CONTENT_TYPE, asset.mime)
            .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
            .body(asset.body),
        None => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body("not found"),
    }
}
