//! Static assets: compressed at build time and served by `Accept-Encoding`, revalidated by
//! ETag, cached for a year only under the fingerprinted URL pages link to.

use std::io::Read;

use crate::support::TestApp;

/// The URLs the log-in page links (with their `?v=` fingerprint).
async fn linked_assets(app: &TestApp) -> Vec<String> {
    let page = app.client().await.get("/login").await;
    let mut urls = page.attrs("link[rel=stylesheet]", "href");
    urls.extend(page.attrs("link[rel=icon]", "href"));
    urls.extend(page.attrs("script[src]", "src"));
    assert!(urls.len() >= 4, "{urls:?}");
    urls
}

async fn get(app: &TestApp, url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{}{url}", app.base));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.expect("GET an asset")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_and_brotli_bodies_are_the_same_bytes_as_the_plain_one() {
    let app = TestApp::sqlite().await;
    for url in linked_assets(&app).await {
        let plain = get(&app, &url, &[]).await;
        assert_eq!(plain.status(), 200, "{url}");
        assert!(plain.headers().get("content-encoding").is_none());
        let vary = plain.headers()["vary"].to_str().unwrap().to_owned();
        let original = plain.bytes().await.unwrap();

        let gz = get(&app, &url, &[("accept-encoding", "gzip")]).await;
        let vary_gz = gz.headers()["vary"].to_str().unwrap().to_owned();
        let encoding = gz.headers().get("content-encoding").cloned();
        let body = gz.bytes().await.unwrap();
        let br = get(
            &app,
            &url,
            &[("accept-encoding", "gzip, deflate, br, zstd")],
        )
        .await;
        let br_encoding = br.headers().get("content-encoding").cloned();
        let br_body = br.bytes().await.unwrap();
        assert_eq!(vary, "Accept-Encoding", "{url}");
        assert_eq!(vary_gz, "Accept-Encoding");
        if original.len() < 1000 {
            // The favicon: too small to gain anything, sent as it is.
            continue;
        }
        assert_eq!(
            encoding.as_ref().map(|e| e.to_str().unwrap()),
            Some("gzip"),
            "{url}"
        );
        assert!(body.len() < original.len() / 2, "{url} compressed");
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, original, "{url}: gzip");

        assert_eq!(
            br_encoding.as_ref().map(|e| e.to_str().unwrap()),
            Some("br"),
            "{url}"
        );
        assert!(br_body.len() <= body.len(), "brotli is the smaller");
        let mut unbrotli = Vec::new();
        brotli::Decompressor::new(&br_body[..], 4096)
            .read_to_end(&mut unbrotli)
            .unwrap();
        assert_eq!(unbrotli, original, "{url}: brotli");

        // br refused (q=0): gzip.
        let no_br = get(&app, &url, &[("accept-encoding", "br;q=0, gzip")]).await;
        assert_eq!(no_br.headers()["content-encoding"], "gzip");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etag_makes_a_304_and_only_fingerprinted_urls_are_immutable() {
    let app = TestApp::sqlite().await;
    let url = linked_assets(&app)
        .await
        .into_iter()
        .find(|u| u.starts_with("/assets/app.js?v="))
        .expect("app.js is linked with its version");
    let first = get(&app, &url, &[("accept-encoding", "br")]).await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        first.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(
        first.headers().get("set-cookie").is_none(),
        "nothing personal on a public asset"
    );
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with("-br\""), "{etag}");
    let again = get(
        &app,
        &url,
        &[("accept-encoding", "br"), ("if-none-match", &etag)],
    )
    .await;
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag.as_str());
    assert_eq!(again.headers()["vary"], "Accept-Encoding");
    assert!(again.bytes().await.unwrap().is_empty());

    // Another version's tag: the whole body.
    let stale = get(&app, &url, &[("if-none-match", "\"0123456789abcdef\"")]).await;
    assert_eq!(stale.status(), 200);
    let plain_etag = stale.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(plain_etag, etag, "each encoding has its own tag");

    // Without the fingerprint, or with an old one: revalidated each time, never kept a year.
    for unversioned in ["/assets/app.js", "/assets/app.js?v=0000000000000000"] {
        let resp = get(&app, unversioned, &[]).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["cache-control"], "no-cache", "{unversioned}");
        let revalidated = get(&app, unversioned, &[("if-none-match", &plain_etag)]).await;
        assert_eq!(revalidated.status(), 304);
    }
    assert_eq!(get(&app, "/assets/nothing.js", &[]).await.status(), 404);
}
