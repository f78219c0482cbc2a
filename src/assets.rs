//! Static assets, compiled into the binary: our CSS and JavaScript from `assets/`, and htmx from
//! the npm registry (`node_modules`, installed by `npm ci`; see build.rs). Pages link them with a
//! content hash (`/assets/app.js?v=…`): such a URL is cached for a year, and the next version
//! has another. Each is also embedded gzip- and brotli-compressed (made by build.rs) and served
//! in the encoding the browser takes best, with an `ETag` per encoding for revalidation.

use std::sync::LazyLock;

use poem::http::{HeaderMap, HeaderValue, StatusCode, header};
use poem::web::Path;
use poem::{Request, Response, handler};

struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static [u8],
    gzip: &'static [u8],
    brotli: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $mime:literal, $file:expr) => {
        Asset {
            name: $name,
            mime: $mime,
            body: include_bytes!($file),
            gzip: include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".gz")),
            brotli: include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".br")),
        }
    };
}

// The same list as build.rs's, which compresses them.
static ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8", "../assets/app.css"),
    asset!(
        "app.js",
        "text/javascript; charset=utf-8",
        "../assets/app.js"
    ),
    asset!(
        "calls.js",
        "text/javascript; charset=utf-8",
        "../assets/calls.js"
    ),
    asset!("favicon.svg", "image/svg+xml", "../assets/favicon.svg"),
    asset!(
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/node_modules/htmx.org/dist/htmx.min.js"
        )
    ),
];

/// Per asset, its content hash: the URL's `v` and the root of its ETags. Computed once.
static HASHES: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| format!("{:016x}", fnv1a(a.body)))
        .collect()
});

/// `name` → "/assets/name?v=hash", computed once.
static VERSIONED: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .zip(HASHES.iter())
        .map(|(a, hash)| (a.name, format!("/assets/{}?v={hash}", a.name)))
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

impl Encoding {
    fn suffix(self) -> &'static str {
        match self {
            Encoding::Identity => "",
            Encoding::Gzip => "-gz",
            Encoding::Brotli => "-br",
        }
    }
}

/// The encoding to answer with: brotli, else gzip, when the client takes it (`q` above 0).
fn chosen(headers: &HeaderMap) -> Encoding {
    let (mut gzip, mut brotli) = (false, false);
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        for item in value.to_str().unwrap_or_default().split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            match name {
                _ if refused => {}
                n if n.eq_ignore_ascii_case("br") => brotli = true,
                n if n.eq_ignore_ascii_case("gzip") || n.eq_ignore_ascii_case("x-gzip") => {
                    gzip = true
                }
                _ => {}
            }
        }
    }
    match (brotli, gzip) {
        (true, _) => Encoding::Brotli,
        (false, true) => Encoding::Gzip,
        _ => Encoding::Identity,
    }
}

/// Whether `If-None-Match` names this asset as the client has it (any of its encodings: the
/// content is the same).
fn not_modified(headers: &HeaderMap, hash: &str) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().any(|value| {
        value.to_str().unwrap_or_default().split(',').any(|tag| {
            let tag = tag.trim();
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            tag == "*"
                || tag
                    .strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .and_then(|t| t.strip_prefix(hash))
                    .is_some_and(|rest| ["", "-gz", "-br"].contains(&rest))
        })
    })
}

/// `GET /assets/{name}`: the asset in the best encoding the client takes. Only the URL pages
/// link to (with the current `v`) is cached for a year; any other is revalidated (`no-cache`),
/// which its ETag makes a 304.
#[handler]
pub fn serve(req: &Request, Path(name): Path<String>) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body("not found");
    };
    let (asset, hash) = (&ASSETS[i], HASHES[i].as_str());
    let fingerprinted = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .any(|pair| pair.strip_prefix("v=") == Some(hash));
    // A compressed form no smaller than the original is not worth a Content-Encoding.
    let encoding = match chosen(req.headers()) {
        Encoding::Brotli if asset.brotli.len() < asset.body.len() => Encoding::Brotli,
        Encoding::Brotli | Encoding::Gzip if asset.gzip.len() < asset.body.len() => Encoding::Gzip,
        _ => Encoding::Identity,
    };
    let etag = HeaderValue::try_from(format!("\"{hash}{}\"", encoding.suffix()))
        .expect("a hash is a header value");
    let cache = match fingerprinted {
        true => "public, max-age=31536000, immutable",
        false => "no-cache",
    };
    let builder = Response::builder()
        .header(header::ETAG, etag)
        .header(header::CACHE_CONTROL, cache)
        .header(header::VARY, "Accept-Encoding");
    if not_modified(req.headers(), hash) {
        return builder.status(StatusCode::NOT_MODIFIED).finish();
    }
    let builder = builder.header(header::CONTENT_TYPE, asset.mime);
    match encoding {
        Encoding::Identity => builder.body(asset.body),
        Encoding::Gzip => builder
            .header(header::CONTENT_ENCODING, "gzip")
            .body(asset.gzip),
        Encoding::Brotli => builder
            .header(header::CONTENT_ENCODING, "br")
            .body(asset.brotli),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_best_encoding_the_client_takes_is_chosen() {
        assert_eq!(chosen(&HeaderMap::new()), Encoding::Identity);
        assert_eq!(
            chosen(&accepting("gzip, deflate, br, zstd")),
            Encoding::Brotli
        );
        assert_eq!(chosen(&accepting("gzip")), Encoding::Gzip);
        assert_eq!(chosen(&accepting("br;q=0, gzip;q=0.5")), Encoding::Gzip);
        assert_eq!(chosen(&accepting("br;q=0,gzip; q=0")), Encoding::Identity);
        assert_eq!(chosen(&accepting("identity")), Encoding::Identity);
    }

    #[test]
    fn if_none_match_matches_any_encoding_of_the_same_content() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, v.parse().unwrap());
            h
        };
        assert!(not_modified(&with("\"abc\""), "abc"));
        assert!(not_modified(&with("W/\"abc-br\""), "abc"));
        assert!(not_modified(&with("\"x\", \"abc-gz\""), "abc"));
        assert!(!not_modified(&with("\"abcd\""), "abc"));
        assert!(!not_modified(&with("\"ab\""), "abc"));
        assert!(!not_modified(&HeaderMap::new(), "abc"));
    }
}
