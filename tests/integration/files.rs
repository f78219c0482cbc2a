//! Sending files: uploads streamed to the file store, downloads only for those who may read the
//! conversation, pictures' thumbnails, the limits, and nothing left behind when a file goes.

use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use reqwest::multipart::{Form, Part};

use crate::on_both_engines;
use crate::support::{Client, Page, TestApp};

on_both_engines!(
    files_sent_with_a_message_come_back_byte_for_byte,
    a_file_is_delivered_live_as_part_of_its_message,
    only_people_who_may_read_the_conversation_get_a_file,
    a_file_over_the_limit_is_refused_and_leaves_nothing_behind,
    empty_files_and_too_many_files_are_refused,
    pages_and_drawings_are_served_as_downloads_that_cannot_run,
    any_file_name_is_kept_and_none_reaches_the_file_system,
    a_picture_gets_a_thumbnail_turned_upright_without_its_metadata,
    something_that_only_claims_to_be_a_picture_is_a_plain_file,
    parts_of_a_file_are_served_for_seeking,
    deleting_a_message_or_a_room_deletes_the_bytes_of_its_files,
    a_retried_upload_is_stored_once,
    the_plain_form_works_without_javascript,
    audio_and_video_play_in_place,
    staff_list_search_and_delete_files_in_the_admin,
);

/// A multipart upload of `files` (name, bytes) with `body`, as htmx sends it (CSRF header,
/// fragment wanted) or, with `htmx` false, as the plain form does (CSRF field first).
pub(crate) async fn upload(
    who: &Client,
    conv: &str,
    files: &[(&str, &[u8])],
    body: &str,
    htmx: bool,
) -> Page {
    let mut form = Form::new();
    if !htmx {
        form = form.text("csrf_token", who.csrf.clone());
    }
    form = form.text("body", body.to_owned());
    for (name, bytes) in files {
        form = form.part(
            "file",
            Part::bytes(bytes.to_vec()).file_name(name.to_string()),
        );
    }
    let mut req = who
        .http
        .post(format!("{}{conv}/attachments", who.base))
        .multipart(form);
    if htmx {
        req = req
            .header("HX-Request", "true")
            .header("X-CSRF-Token", &who.csrf);
    }
    Client::page(req.send().await.expect("upload")).await
}

/// The download links of the files in a message fragment, in order.
pub(crate) fn links(page: &Page) -> Vec<String> {
    page.attrs(".attachments a.file", "href")
}

/// GET `path` as raw bytes, with optional extra headers.
async fn fetch(who: &Client, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = who.http.get(format!("{}{path}", who.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("GET")
}

pub(crate) async fn bytes_of(who: &Client, path: &str) -> (u16, Vec<u8>) {
    let resp = fetch(who, path, &[]).await;
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

/// Every file under `dir`, as paths relative to it.
pub(crate) fn stored_files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Bytes that look like nothing in particular, `n` of them.
pub(crate) fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub(crate) fn png(width: u32, height: u32) -> Vec<u8> {
    let picture =
        image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 120]));
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(picture)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// A JPEG of `width`×`height` whose EXIF says "turn me 90° clockwise to show me" (orientation
/// 6, as phones write) and carries a GPS position.
fn sideways_jpeg_with_gps(width: u32, height: u32) -> Vec<u8> {
    let picture =
        image::RgbImage::from_fn(width, height, |x, _| image::Rgb([(x % 256) as u8, 40, 200]));
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(picture)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    let jpeg = out.into_inner();
    // TIFF, little-endian: IFD0 with Orientation = 6 and a GPS IFD pointer; the GPS IFD with
    // GPSLatitudeRef = "N".
    let mut tiff: Vec<u8> = b"II*\0".to_vec();
    tiff.extend_from_slice(&8u32.to_le_bytes());
    tiff.extend_from_slice(&2u16.to_le_bytes());
    tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
    let gps_at: u32 = 8 + 2 + 2 * 12 + 4;
    tiff.extend_from_slice(&[0x25, 0x88, 4, 0, 1, 0, 0, 0]);
    tiff.extend_from_slice(&gps_at.to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes());
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&[0x01, 0x00, 2, 0, 2, 0, 0, 0, b'N', 0, 0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut with_exif = jpeg[..2].to_vec();
    with_exif.extend_from_slice(&[0xFF, 0xE1]);
    with_exif.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    with_exif.extend_from_slice(&app1);
    with_exif.extend_from_slice(&jpeg[2..]);
    with_exif
}

/// alice and bob in #general.
async fn alice_and_bob(app: &TestApp) -> (Client, Client) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    for c in [&alice, &bob] {
        assert_eq!(c.post("/rooms", &[("name", "general")]).await.status, 303);
    }
    (alice, bob)
}

async fn files_sent_with_a_message_come_back_byte_for_byte(app: &TestApp) {
    let (alice, bob) = alice_and_bob(app).await;
    let big = noise(3 * 1024 * 1024 + 17, 1);
    let text = b"plain notes\n".to_vec();
    let page = upload(
        &alice,
        "/rooms/general",
        &[("notes.txt", &text), ("data.bin", &big)],
        "two files",
        true,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.select(".body"), ["two files"]);
    let hrefs = links(&page);
    assert_eq!(hrefs.len(), 2, "{}", page.body);
    assert!(
        hrefs[0].starts_with("/files/") && hrefs[0].ends_with("/notes.txt"),
        "{hrefs:?}"
    );
    assert_eq!(bytes_of(&bob, &hrefs[0]).await, (200, text));
    let (status, got) = bytes_of(&bob, &hrefs[1]).await;
    assert_eq!(status, 200);
    assert!(
        got == big,
        "the 3 MB file came back changed ({} bytes)",
        got.len()
    );
    let meta = page.select(".attachments .file-meta");
    assert_eq!(meta[0], "12 bytes · text/plain");
    assert_eq!(meta[1], "3.0 MB · application/octet-stream");

    let resp = fetch(&bob, &hrefs[1], &[]).await;
    let h = resp.headers();
    assert_eq!(h["content-type"], "application/octet-stream");
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"data.bin\"; filename*=UTF-8''data.bin"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-security-policy"], "sandbox");
    assert_eq!(h["cache-control"], "private, max-age=31536000, immutable");
    assert_eq!(h["content-length"], big.len().to_string());
    assert_eq!(h["accept-ranges"], "bytes");
    let etag = h["etag"].to_str().unwrap().to_owned();
    let again = fetch(&bob, &hrefs[1], &[("if-none-match", &etag)]).await;
    assert_eq!(again.status(), 304);
    // The bytes are stored under keys of their own: nothing is named after the upload.
    let stored = stored_files(&app.files_dir);
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(
        stored
            .iter()
            .all(|f| f.starts_with("f/") && !f.contains("notes") && !f.contains("data"))
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM attachments").await, 2);
}

async fn a_file_is_delivered_live_as_part_of_its_message(app: &TestApp) {
    let (alice, bob) = alice_and_bob(app).await;
    let last = alice.say("/rooms/general", "before").await;
    let poll = {
        let bob_poll = bob.poll("/rooms/general", last);
        let send = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            upload(&alice, "/rooms/general", &[("a.txt", b"live")], "", true).await
        };
        let (poll, sent) = tokio::join!(bob_poll, send);
        assert_eq!(sent.status, 200, "{}", sent.body);
        poll
    };
    assert_eq!(poll.status, 200);
    let hrefs = links(&poll);
    assert_eq!(hrefs.len(), 1, "{}", poll.body);
    assert!(!poll.has(".body"), "a message of a file alone has no text");
    assert_eq!(bytes_of(&bob, &hrefs[0]).await, (200, b"live".to_vec()));
    // And on the page as loaded.
    let page = bob.get("/rooms/general").await;
    assert_eq!(links(&page), hrefs);
}

async fn only_people_who_may_read_the_conversation_get_a_file(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let carol = app.member("carol").await;
    let page = upload(
        &alice,
        "/dm/bob",
        &[("secret.png", &png(500, 300))],
        "for bob",
        true,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let file = links(&page).remove(0);
    let id = file.split('/').nth(2).unwrap().to_owned();
    let preview = format!("/files/{id}/preview");
    assert_eq!(bytes_of(&bob, &file).await.0, 200);
    assert_eq!(bytes_of(&bob, &preview).await.0, 200);
    let stranger = app.client().await;
    for (who, name) in [(&carol, "carol"), (&stranger, "logged out")] {
        for path in [&file, &preview, &format!("/files/{id}/other-name.png")] {
            let (status, bytes) = bytes_of(who, path).await;
            assert_eq!(status, 404, "{name} on {path}");
            assert!(!bytes.starts_with(b"\x89PNG"), "{name} got the bytes");
        }
    }
    for path in ["/files/999999/x", "/files/abc/x", "/files/-1/preview"] {
        assert_eq!(bytes_of(&bob, path).await.0, 404, "{path}");
    }
    // Carol cannot send into their conversation either: /dm/bob is her own with bob.
    let hers = upload(&carol, "/dm/bob", &[("hi.txt", b"hi")], "", true).await;
    assert_eq!(hers.status, 200);
    assert_ne!(links(&hers)[0], file);
    assert_eq!(
        bytes_of(&alice, &links(&hers)[0]).await.0,
        404,
        "alice cannot read carol's and bob's"
    );
    // A public room's files are for everyone logged in.
    alice.post("/rooms", &[("name", "open")]).await;
    let public = upload(&alice, "/rooms/open", &[("p.txt", b"public")], "", true).await;
    assert_eq!(
        bytes_of(&carol, &links(&public)[0]).await,
        (200, b"public".to_vec())
    );
}

async fn a_file_over_the_limit_is_refused_and_leaves_nothing_behind(app: &TestApp) {
    let (alice, _) = alice_and_bob(app).await;
    let too_big = noise(26 * 1024 * 1024, 2);
    let page = upload(
        &alice,
        "/rooms/general",
        &[("small.txt", b"fine"), ("huge.bin", &too_big)],
        "keep me",
        true,
    )
    .await;
    assert_eq!(page.status, 413, "{}", page.body);
    assert!(
        page.body.contains("“huge.bin” is larger than 25 MB"),
        "{}",
        page.body
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM attachments").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stored_files(&app.files_dir),
        Vec::<String>::new(),
        "nothing half-stored"
    );
    // Without JavaScript: the conversation's page again, the text kept, the reason given.
    let page = upload(
        &alice,
        "/rooms/general",
        &[("huge.bin", &too_big)],
        "keep me",
        false,
    )
    .await;
    assert_eq!(page.status, 413);
    assert_eq!(page.select("#composer-body"), ["keep me"]);
    assert!(page.select("#composer-error")[0].contains("larger than 25 MB"));
}

async fn empty_files_and_too_many_files_are_refused(app: &TestApp) {
    let (alice, _) = alice_and_bob(app).await;
    let page = upload(&alice, "/rooms/general", &[("empty.txt", b"")], "", true).await;
    assert_eq!(page.status, 422);
    assert!(page.body.contains("“empty.txt” is empty"), "{}", page.body);
    let eleven: Vec<(String, Vec<u8>)> = (0..11)
        .map(|i| (format!("{i}.txt"), vec![b'x'; 10]))
        .collect();
    let files: Vec<(&str, &[u8])> = eleven
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let page = upload(&alice, "/rooms/general", &files, "", true).await;
    assert_eq!(page.status, 422);
    assert!(page.body.contains("At most 10 files"), "{}", page.body);
    let page = upload(&alice, "/rooms/general", &[], "", true).await;
    assert_eq!(page.status, 422, "neither text nor a file");
    let ten = upload(&alice, "/rooms/general", &files[..10], "", true).await;
    assert_eq!(ten.status, 200);
    assert_eq!(links(&ten).len(), 10);
    assert_eq!(app.count("SELECT COUNT(*) FROM attachments").await, 10);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stored_files(&app.files_dir).len(),
        10,
        "the refused files left nothing"
    );
}

async fn pages_and_drawings_are_served_as_downloads_that_cannot_run(app: &TestApp) {
    let (alice, bob) = alice_and_bob(app).await;
    let html = b"<html><script>alert(document.cookie)</script></html>";
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>";
    let page = upload(
        &alice,
        "/rooms/general",
        &[("page.html", html), ("drawing.svg", svg)],
        "",
        true,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        !page.has(".attachments img"),
        "an SVG is no picture shown inline"
    );
    for (link, kind) in links(&page).iter().zip(["text/html", "image/svg+xml"]) {
        let resp = fetch(&bob, link, &[]).await;
        let h = resp.headers();
        assert_eq!(h["content-type"], kind);
        assert!(
            h["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment;")
        );
        assert_eq!(h["content-security-policy"], "sandbox");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
}

async fn any_file_name_is_kept_and_none_reaches_the_file_system(app: &TestApp) {
    let (alice, bob) = alice_and_bob(app).await;
    let long = format!("{}.txt", "ü".repeat(300));
    // A browser sends a quote, a CR and an LF in a file name as %22, %0D and %0A (HTML's
    // multipart/form-data encoding).
    let names = [
        "../../x",
        "a/b",
        long.as_str(),
        "say %22hi%22%0D%0ASet-Cookie: x=1.txt",
        "..",
        "preview",
        "#1 draft.txt",
    ];
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (*n, b"x".as_slice())).collect();
    let page = upload(&alice, "/rooms/general", &files, "", true).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let shown = page.select(".attachments .file-name");
    assert_eq!(
        shown,
        [
            "../../x",
            "a/b",
            long.as_str(),
            "say \"hi\"Set-Cookie: x=1.txt",
            "..",
            "preview",
            "#1 draft.txt"
        ]
    );
    // The whole name is shown; a download's header carries at most 255 characters of it (what
    // file systems take), the extension kept.
    let cut = format!("{}.txt", "ü".repeat(251));
    let hrefs = links(&page);
    for (href, name) in hrefs.iter().zip(&shown) {
        let resp = fetch(&bob, href, &[]).await;
        assert_eq!(resp.status(), 200, "{href}");
        let disposition = resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!resp.headers().contains_key("set-cookie"));
        let encoded = disposition.split("filename*=UTF-8''").nth(1).unwrap();
        let decoded = percent_encoding::percent_decode_str(encoded)
            .decode_utf8()
            .unwrap();
        let expected = if name.chars().count() > 255 {
            &cut
        } else {
            name
        };
        assert_eq!(&decoded, expected, "{disposition}");
        assert_eq!(resp.bytes().await.unwrap().as_ref(), b"x");
    }
    assert!(
        hrefs[5].ends_with("/preview_"),
        "a file named preview is not its thumbnail: {hrefs:?}"
    );
    let stored = stored_files(&app.files_dir);
    assert_eq!(stored.len(), names.len());
    assert!(stored.iter().all(|f| f.starts_with("f/")), "{stored:?}");
    assert!(!app.files_dir.parent().unwrap().join("x").exists());
}

async fn a_picture_gets_a_thumbnail_turned_upright_without_its_metadata(app: &TestApp) {
    let (alice, bob) = alice_and_bob(app).await;
    let photo = sideways_jpeg_with_gps(1200, 600);
    let page = upload(
        &alice,
        "/rooms/general",
        &[("holiday.jpg", &photo), ("wide.png", &png(1000, 250))],
        "look",
        true,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    // Turned upright, the photo is 600 wide and 1200 tall: its thumbnail fits 400×800.
    assert_eq!(page.attrs(".attachments img", "width"), ["400", "400"]);
    assert_eq!(page.attrs(".attachments img", "height"), ["800", "100"]);
    let previews = page.attrs(".attachments img", "src");
    let full = page.attrs(".attachments a.picture", "href");
    assert_eq!(full, links(&page), "the thumbnail opens the full picture");
    let resp = fetch(&bob, &previews[0], &[]).await;
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert_eq!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .split(';')
            .next(),
        Some("inline")
    );
    let thumb = resp.bytes().await.unwrap();
    let decoded = image::load_from_memory(&thumb).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (400, 800));
    assert!(
        !thumb.windows(4).any(|w| w == b"Exif"),
        "the thumbnail carries no EXIF (nor GPS)"
    );
    // The full picture is the original, shown inline.
    let resp = fetch(&bob, &full[0], &[]).await;
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline;")
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), photo.as_slice());
    // Made once, at upload: two files and two thumbnails are stored, whoever looks.
    for _ in 0..3 {
        assert_eq!(bytes_of(&alice, &previews[1]).await.0, 200);
    }
    let stored = stored_files(&app.files_dir);
    assert_eq!(
        stored.iter().filter(|f| f.starts_with("p/")).count(),
        2,
        "{stored:?}"
    );
}

async fn something_that_only_claims_to_be_a_picture_is_a_plain_file(app: &TestApp) {
    let (alice, bob) = alice_and_bob(app).await;
    // A "picture bomb": a real PNG header claiming 100,000 × 100,000 pixels.
    let mut bomb = png(1, 1);
    bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let page = upload(
        &alice,
        "/rooms/general",
        &[("fake.png", b"this is not a picture"), ("bomb.png", &bomb)],
        "",
        true,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        !page.has(".attachments img"),
        "no thumbnail for either: {}",
        page.body
    );
    let meta = page.select(".attachments .file-meta");
    assert!(meta[0].ends_with("application/octet-stream"), "{meta:?}");
    let resp = fetch(&bob, &links(&page)[0], &[]).await;
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    assert_eq!(
        bytes_of(
            &bob,
            &format!(
                "/files/{}/preview",
                links(&page)[1].split('/').nth(2).unwrap()
            )
        )
        .await
        .0,
        404
    );
}

async fn parts_of_a_file_are_served_for_seeking(app: &TestApp) {
    let (alice, bob) = alice_and_bob(app).await;
    let data = noise(100_000, 3);
    let page = upload(&alice, "/rooms/general", &[("song.bin", &data)], "", true).await;
    let link = links(&page).remove(0);
    let resp = fetch(&bob, &link, &[("range", "bytes=10-19")]).await;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["content-range"], "bytes 10-19/100000");
    assert_eq!(resp.headers()["content-length"], "10");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &data[10..20]);
    let resp = fetch(&bob, &link, &[("range", "bytes=-5")]).await;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &data[99_995..]);
    let resp = fetch(&bob, &link, &[("range", "bytes=99990-")]).await;
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &data[99_990..]);
    let resp = fetch(&bob, &link, &[("range", "bytes=100000-")]).await;
    assert_eq!(resp.status(), 416);
    assert_eq!(resp.headers()["content-range"], "bytes */100000");
    let resp = fetch(&bob, &link, &[("range", "bytes=0-1,5-6")]).await;
    assert_eq!(resp.status(), 200, "several ranges: the whole file");
    assert_eq!(resp.bytes().await.unwrap().len(), 100_000);
}

async fn deleting_a_message_or_a_room_deletes_the_bytes_of_its_files(app: &TestApp) {
    let (alice, bob) = alice_and_bob(app).await;
    let page = upload(
        &alice,
        "/rooms/general",
        &[("pic.png", &png(600, 400)), ("b.txt", b"b")],
        "mine",
        true,
    )
    .await;
    let seq = page.message_ids()[0];
    let link = links(&page).remove(0);
    assert_eq!(
        stored_files(&app.files_dir).len(),
        3,
        "two files and a thumbnail"
    );
    // Only the author deletes, and the files go with the message.
    assert_eq!(
        bob.post(&format!("/rooms/general/messages/{seq}/delete"), &[])
            .await
            .status,
        403
    );
    let gone = alice
        .post(&format!("/rooms/general/messages/{seq}/delete"), &[])
        .await;
    assert_eq!(gone.status, 303);
    assert_eq!(bytes_of(&bob, &link).await.0, 404);
    assert_eq!(stored_files(&app.files_dir), Vec::<String>::new());
    assert_eq!(app.count("SELECT COUNT(*) FROM attachments").await, 0);

    // A room deleted by staff takes its files' bytes with it.
    alice.post("/rooms", &[("name", "doomed")]).await;
    upload(&alice, "/rooms/doomed", &[("c.txt", b"c")], "", true).await;
    upload(&alice, "/rooms/general", &[("kept.txt", b"k")], "", true).await;
    assert_eq!(stored_files(&app.files_dir).len(), 2);
    let admin = crate::admin::superuser(app).await;
    let room: i64 = app
        .count("SELECT id FROM rooms WHERE name = 'doomed'")
        .await;
    let deleted = admin
        .post(&format!("/admin/rooms/{room}/delete/"), &[("post", "yes")])
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    assert_eq!(
        stored_files(&app.files_dir).len(),
        1,
        "only #general's file is left"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM attachments").await, 1);
}

async fn a_retried_upload_is_stored_once(app: &TestApp) {
    let (alice, _) = alice_and_bob(app).await;
    let send = || async {
        let form = Form::new()
            .text("client_key", "retry-1")
            .part("file", Part::bytes(b"once".to_vec()).file_name("once.txt"));
        alice
            .http
            .post(format!("{}/rooms/general/attachments", alice.base))
            .header("HX-Request", "true")
            .header("X-CSRF-Token", &alice.csrf)
            .multipart(form)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let first = Page::of_html(send().await);
    let second = Page::of_html(send().await);
    assert_eq!(first.message_ids(), second.message_ids());
    assert_eq!(links(&first), links(&second));
    assert_eq!(app.count("SELECT COUNT(*) FROM attachments").await, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stored_files(&app.files_dir).len(),
        1,
        "the retry's bytes were dropped"
    );
}

async fn the_plain_form_works_without_javascript(app: &TestApp) {
    let (alice, bob) = alice_and_bob(app).await;
    let page = upload(
        &alice,
        "/rooms/general",
        &[("plain.txt", b"no js")],
        "with a file",
        false,
    )
    .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), Some("/rooms/general"));
    // Text alone through the same form is a message like any other.
    let page = upload(&alice, "/rooms/general", &[("", b"")], "just text", false).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let room = bob.get("/rooms/general").await;
    assert_eq!(room.select(".message .body"), ["with a file", "just text"]);
    assert_eq!(room.select(".attachments .file-name"), ["plain.txt"]);
    // The form's token is checked, and must come before the files; a wrong header is refused;
    // text alone through that form has its token checked too.
    let post = |form: Form, header: Option<String>| {
        let mut req = alice
            .http
            .post(format!("{}/rooms/general/attachments", alice.base))
            .multipart(form);
        if let Some(token) = header {
            req = req.header("X-CSRF-Token", token);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let file = || Part::bytes(b"x".to_vec()).file_name("x.txt");
    let late = Form::new()
        .part("file", file())
        .text("csrf_token", alice.csrf.clone());
    assert_eq!(post(late, None).await, 403);
    assert_eq!(
        post(Form::new().part("file", file()), Some("0".repeat(64))).await,
        403
    );
    let forged = Form::new()
        .text("csrf_token", "0".repeat(64))
        .text("body", "forged");
    assert_eq!(post(forged, None).await, 403);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM messages WHERE body = 'forged'")
            .await,
        0
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM attachments").await, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stored_files(&app.files_dir).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_count_against_an_hourly_allowance() {
    let app = TestApp::sqlite_with(|s| {
        s.upload_mb_per_hour = 1;
    })
    .await;
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    let half = noise(600 * 1024, 4);
    let first = upload(&alice, "/rooms/general", &[("a.bin", &half)], "", true).await;
    assert_eq!(first.status, 200);
    let second = upload(&alice, "/rooms/general", &[("b.bin", &half)], "", true).await;
    assert_eq!(second.status, 429, "{}", second.body);
    assert!(
        second.body.contains("1 MB of files in the last hour"),
        "{}",
        second.body
    );
    assert!(second.headers.contains_key("retry-after"));
    assert_eq!(app.count("SELECT COUNT(*) FROM attachments").await, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stored_files(&app.files_dir).len(), 1);
    // Uploads sent side by side share the allowance too.
    let carol = app.member("carol").await;
    let d: [(&str, &[u8]); 1] = [("d.bin", &half)];
    let e: [(&str, &[u8]); 1] = [("e.bin", &half)];
    let (one, two) = tokio::join!(
        upload(&carol, "/rooms/general", &d, "", true),
        upload(&carol, "/rooms/general", &e, "", true),
    );
    let mut statuses = [one.status, two.status];
    statuses.sort();
    assert_eq!(statuses, [200, 429]);
    // Someone else has their own.
    let bob = app.member("bob").await;
    assert_eq!(
        upload(&bob, "/rooms/general", &[("c.bin", &half)], "", true)
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_removes_bytes_no_attachment_names() {
    let app = TestApp::sqlite_with(|s| s.files_sweep_secs = 1).await;
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    let kept = upload(&alice, "/rooms/general", &[("kept.txt", b"kept")], "", true).await;
    let face = crate::profile::upload_picture(&alice, "me.png", &png(20, 20)).await;
    assert_eq!(face.status, 303, "{}", face.body);
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
    let put = |path: &str, old: bool| {
        let path = app.files_dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"left behind").unwrap();
        if old {
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(two_days_ago).unwrap();
        }
        path
    };
    // Bytes a crash left between storing a file and its row, and a part-file of an upload a
    // killed process was receiving: both old, and named by nothing.
    let orphan = put("f/ab/abandoned", true);
    let staged = put("f/cd/interrupted#3", true);
    // A picture staff removed in the admin (its bytes stay until now).
    let picture = put("a/12/12000000000000000000000000000000.png", true);
    // Her picture, old but named.
    let named: String = sqlx::query_scalar("SELECT avatar FROM users WHERE username = 'alice'")
        .fetch_one(&app.pool().await)
        .await
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(app.files_dir.join(&named))
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    // Bytes of an upload that may still be going on, and someone else's file beside ours.
    let recent = put("f/ef/in-progress", false);
    let foreign = put("backups/keep-me", true);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while orphan.exists() || staged.exists() || picture.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the orphans were never swept"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(recent.exists(), "bytes younger than a day are not swept");
    assert!(foreign.exists(), "only Parley's own prefixes are swept");
    let url = format!("/avatars/{}", named.rsplit('/').next().unwrap());
    assert_eq!(bytes_of(&alice, &url).await.0, 200, "a named picture stays");
    assert_eq!(
        bytes_of(&alice, &links(&kept)[0]).await,
        (200, b"kept".to_vec())
    );
}

/// An S3-compatible server (`s3s-fs`, installed with `cargo install s3s-fs --features binary`)
/// over a temporary directory, on 127.0.0.1, with the bucket `parley`. None, loudly, when it is
/// not installed, unless PARLEY_TEST_REQUIRE_S3 is set (as in CI), when that fails the test.
struct S3 {
    child: std::process::Child,
    root: tempfile::TempDir,
    endpoint: String,
}

impl S3 {
    async fn start() -> Option<S3> {
        let bin = std::env::var("S3S_FS").unwrap_or_else(|_| "s3s-fs".to_owned());
        let installed = std::process::Command::new(&bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            if std::env::var_os("PARLEY_TEST_REQUIRE_S3").is_some() {
                panic!("PARLEY_TEST_REQUIRE_S3 is set but {bin} is not installed");
            }
            eprintln!(
                "\n*** SKIPPED the S3 test: no s3s-fs (cargo install s3s-fs --features binary) ***\n"
            );
            return None;
        }
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("parley")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--access-key",
                "parley-test",
                "--secret-key",
                "parley-test-secret",
            ])
            .arg(root.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(std::time::Instant::now() < deadline, "s3s-fs did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(S3 {
            child,
            root,
            endpoint: format!("http://127.0.0.1:{port}"),
        })
    }

    /// What a Parley server needs to use the bucket.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PARLEY_FILES_URL", "s3://parley/attachments".to_owned()),
            ("AWS_ACCESS_KEY_ID", "parley-test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "parley-test-secret".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }

    /// The objects in the bucket, under Parley's prefix.
    fn objects(&self) -> Vec<String> {
        stored_files(&self.root.path().join("parley/attachments"))
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two servers on one PostgreSQL database share one bucket: a file sent through one is served by
/// the other, and deleting it there deletes its bytes from the bucket. (Without PostgreSQL, one
/// server on SQLite.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_servers_share_files_through_an_s3_bucket() {
    use crate::multiprocess::Server;
    let Some(s3) = S3::start().await else { return };
    let env = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sqlite = tempfile::tempdir().unwrap();
    let url = match crate::support::postgres_url().await {
        Some(admin) => crate::support::fresh_postgres_database(&admin).await.0,
        None => format!("sqlite://{}", sqlite.path().join("parley.db").display()),
    };
    let a = Server::start_with(&url, &env).await;
    let b = match url.starts_with("postgres") {
        true => Some(Server::start_with(&url, &env).await),
        false => None,
    };
    let b_base = b.as_ref().map_or(a.base.clone(), |b| b.base.clone());
    crate::support::insert_member(&url, "alice").await;
    crate::support::insert_member(&url, "bob").await;
    let alice = crate::support::log_in(&a.base, "alice").await;
    let bob = crate::support::log_in(&b_base, "bob").await;
    for c in [&alice, &bob] {
        assert_eq!(c.post("/rooms", &[("name", "general")]).await.status, 303);
    }
    let big = noise(12 * 1024 * 1024 + 5, 9);
    let page = upload(
        &alice,
        "/rooms/general",
        &[("big.bin", &big), ("pic.png", &png(800, 600))],
        "through the bucket",
        true,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let hrefs = links(&page);
    let (status, got) = bytes_of(&bob, &hrefs[0]).await;
    assert_eq!(status, 200);
    assert!(
        got == big,
        "the 12 MB file came back changed from the other server"
    );
    let part = fetch(&bob, &hrefs[0], &[("range", "bytes=100-199")]).await;
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &big[100..200]);
    let preview = page.attrs(".attachments img", "src").remove(0);
    assert_eq!(bytes_of(&bob, &preview).await.0, 200);
    assert_eq!(
        s3.objects().len(),
        3,
        "two files and a thumbnail: {:?}",
        s3.objects()
    );
    // Over the limit: refused, the multipart upload aborted, nothing left in the bucket.
    let too_big = noise(25 * 1024 * 1024 + 1, 10);
    let refused = upload(
        &alice,
        "/rooms/general",
        &[("huge.bin", &too_big)],
        "",
        true,
    )
    .await;
    assert_eq!(refused.status, 413);
    assert_eq!(s3.objects().len(), 3);
    // Deleted on the other server: the bytes leave the bucket.
    let seq = page.message_ids()[0];
    let bob_as_alice = crate::support::log_in(&b_base, "alice").await;
    let gone = bob_as_alice
        .post(&format!("/rooms/general/messages/{seq}/delete"), &[])
        .await;
    assert_eq!(gone.status, 303);
    assert_eq!(s3.objects(), Vec::<String>::new());
    assert_eq!(bytes_of(&bob, &hrefs[0]).await.0, 404);
}

/// A WAV file of `samples` silent 8-bit samples.
fn wav(samples: u32) -> Vec<u8> {
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36 + samples).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&samples.to_le_bytes());
    out.extend(std::iter::repeat_n(128u8, samples as usize));
    out
}

async fn audio_and_video_play_in_place(app: &TestApp) {
    let (alice, bob) = alice_and_bob(app).await;
    // An MP4's first box, as a phone writes it.
    let mut mp4 = vec![0, 0, 0, 0x18];
    mp4.extend_from_slice(b"ftypmp42\0\0\0\0mp42isom");
    mp4.extend_from_slice(&noise(2000, 5));
    let page = upload(
        &alice,
        "/rooms/general",
        &[("voice.wav", &wav(8000)), ("clip.mp4", &mp4)],
        "",
        true,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let hrefs = links(&page);
    assert_eq!(page.attrs(".attachments audio", "src"), [hrefs[0].clone()]);
    assert_eq!(page.attrs(".attachments video", "src"), [hrefs[1].clone()]);
    for (href, kind) in hrefs.iter().zip(["audio/x-wav", "video/mp4"]) {
        let resp = fetch(&bob, href, &[("range", "bytes=0-3")]).await;
        assert_eq!(resp.status(), 206, "players seek by range");
        assert_eq!(resp.headers()["content-type"], kind);
        assert!(
            resp.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("inline;")
        );
    }
}

async fn staff_list_search_and_delete_files_in_the_admin(app: &TestApp) {
    let (alice, bob) = alice_and_bob(app).await;
    let both = upload(
        &alice,
        "/rooms/general",
        &[("report.pdf", b"%PDF-1.4 x"), ("notes.txt", b"n")],
        "two",
        true,
    )
    .await;
    let alone = upload(&alice, "/rooms/general", &[("lonely.txt", b"l")], "", true).await;
    let private = upload(&alice, "/dm/bob", &[("secret.txt", b"s")], "", true).await;
    assert_eq!(private.status, 200);
    let boss = crate::admin::superuser(app).await;
    let list = boss.get("/admin/attachments/").await;
    assert_eq!(list.status, 200, "{}", list.body);
    for name in ["report.pdf", "notes.txt", "lonely.txt", "secret.txt"] {
        assert!(list.body.contains(name), "{name} listed");
    }
    assert!(list.body.contains("application/pdf"));
    let found = boss.get("/admin/attachments/?q=report").await;
    assert!(found.body.contains("report.pdf") && !found.body.contains("notes.txt"));
    // Plain staff see the files of public rooms only.
    let staff = app.member("staffer").await;
    sqlx::query("UPDATE users SET is_staff = 1 WHERE username = 'staffer'")
        .execute(&app.pool().await)
        .await
        .unwrap();
    let theirs = staff.get("/admin/attachments/").await;
    assert!(theirs.body.contains("report.pdf") && !theirs.body.contains("secret.txt"));
    // Deleting one of a message's files: the message stays, without it, for everyone.
    let pdf: i64 = app
        .count("SELECT id FROM attachments WHERE name = 'report.pdf'")
        .await;
    let seq = both.message_ids()[0];
    let after = bob.get("/rooms/general").await;
    let cursor = *after.message_ids().last().unwrap();
    let gone = boss
        .post(
            &format!("/admin/attachments/{pdf}/delete/"),
            &[("post", "yes")],
        )
        .await;
    assert_eq!(gone.status, 303, "{}", gone.body);
    let live = bob.poll("/rooms/general", cursor).await;
    assert!(
        live.body.contains("notes.txt") && !live.body.contains("report.pdf"),
        "{}",
        live.body
    );
    let page = bob.get("/rooms/general").await;
    assert_eq!(page.select(&format!("#m-{seq} .file-name")), ["notes.txt"]);
    assert_eq!(bytes_of(&bob, &links(&both)[0]).await.0, 404);
    // The last file of a message without text takes the message with it.
    let lonely: i64 = app
        .count("SELECT id FROM attachments WHERE name = 'lonely.txt'")
        .await;
    boss.post(
        &format!("/admin/attachments/{lonely}/delete/"),
        &[("post", "yes")],
    )
    .await;
    let page = bob.get("/rooms/general").await;
    assert!(!page.has(&format!("#m-{}", alone.message_ids()[0])));
    // Each deletion is in the admin's log, under the file's name.
    let logged = app
        .count("SELECT COUNT(*) FROM admin_log WHERE model = 'attachments' AND action_flag = 3")
        .await;
    assert_eq!(logged, 2);
    let notes: i64 = app
        .count("SELECT id FROM attachments WHERE name = 'notes.txt'")
        .await;
    let history = boss
        .get(&format!("/admin/attachments/{notes}/history/"))
        .await;
    assert_eq!(history.status, 200);
    assert_eq!(
        stored_files(&app.files_dir).len(),
        2,
        "notes.txt and secret.txt are left"
    );
    // Nobody adds or renames files in the admin.
    assert_ne!(boss.get("/admin/attachments/add/").await.status, 200);
    // A user deleted by staff takes the bytes of every file they sent with them.
    let alice_id: i64 = app
        .count("SELECT id FROM users WHERE username = 'alice'")
        .await;
    let deleted = boss
        .post(
            &format!("/admin/users/{alice_id}/delete/"),
            &[("post", "yes")],
        )
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    assert_eq!(stored_files(&app.files_dir), Vec::<String>::new());
    assert_eq!(app.count("SELECT COUNT(*) FROM attachments").await, 0);
}
