//! Files in the browser: attached with the button, dropped on the conversation, pasted, with a
//! progress bar; refused with the reason and the text kept; and sent by the plain form without
//! JavaScript.

use std::io::Cursor;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::json;

use crate::browser::{
    ONE_AT_A_TIME, browser, click, driver, fill, open_or_create, path, register, screenshot,
    wait_for_text,
};
use crate::support::TestApp;

/// A PNG picture of `width`×`height` written to `dir/name`; its path.
fn picture_file(dir: &std::path::Path, name: &str, width: u32, height: u32) -> String {
    let picture = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 160])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(picture)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    let file = dir.join(name);
    std::fs::write(&file, out.into_inner()).unwrap();
    file.display().to_string()
}

/// Chooses the file at `path` in the composer's file input, as the paperclip's dialog does.
async fn choose(c: &Client, path: &str) {
    let input = c.find(Locator::Css("#composer-file")).await.unwrap();
    input.send_keys(path).await.unwrap();
}

/// Waits until a thumbnail in the messages has loaded, and returns its natural width.
async fn thumbnail_width(c: &Client) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let width = c
            .execute(
                "var img = document.querySelector('#messages .attachments img');
                 return img && img.complete ? img.naturalWidth : 0;",
                vec![],
            )
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(0);
        if width > 0 {
            return width;
        }
        assert!(Instant::now() < deadline, "no thumbnail loaded within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// alice and bob, each in a browser of their own, both in #general.
async fn alice_and_bob_in_general(
    app: &TestApp,
    driver: &crate::browser::Driver,
) -> (Client, Client) {
    let alice = browser(driver, true, 1280).await;
    let bob = browser(driver, true, 1280).await;
    register(&alice, &app.base, "alice").await;
    register(&bob, &app.base, "bob").await;
    open_or_create(&alice, "general").await;
    open_or_create(&bob, "general").await;
    (alice, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_picture_attached_in_the_composer_reaches_the_other_person_live() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    let (alice, bob) = alice_and_bob_in_general(&app, &driver).await;
    let dir = tempfile::tempdir().unwrap();
    let sunset = picture_file(dir.path(), "sunset.png", 900, 600);
    // Every step of the upload's progress bar, as the page shows it.
    alice
        .execute(
            "window.seen = [];
             document.addEventListener('htmx:xhr:progress', function () {
               var bar = document.getElementById('composer-progress');
               window.seen.push([bar.hidden, bar.value]);
             });",
            vec![],
        )
        .await
        .unwrap();
    // Text alone first: the composer's form is a multipart one without JavaScript, and must
    // still send text as a plain form with it.
    fill(&alice, "#composer-body", "words first\u{E007}").await;
    wait_for_text(&bob, "#messages", "words first").await;
    choose(&alice, &sunset).await;
    wait_for_text(&alice, "#composer-files", "sunset.png").await;
    fill(&alice, "#composer-body", "the view from here\u{E007}").await;
    wait_for_text(&bob, "#messages", "the view from here").await;
    wait_for_text(&bob, "#messages .attachments", "sunset.png").await;
    assert_eq!(thumbnail_width(&bob).await, 400, "a thumbnail 400 px wide");
    let seen = alice.execute("return window.seen;", vec![]).await.unwrap();
    assert!(
        seen.as_array().unwrap().contains(&json!([false, 100])),
        "the progress bar was shown and reached the end: {seen}"
    );
    // Sent: the bar goes, the composer is empty again, the list of files too.
    let state = alice
        .execute(
            "return [document.getElementById('composer-progress').hidden,
                     document.getElementById('composer-file').files.length,
                     document.getElementById('composer-files').textContent];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(state, json!([true, 0, ""]));
    // And text alone again after the files.
    fill(&alice, "#composer-body", "words after\u{E007}").await;
    wait_for_text(&bob, "#messages", "words after").await;
    assert_eq!(
        alice
            .find(Locator::Css("#composer-error"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        ""
    );
    // The thumbnail opens the full picture.
    let href = bob
        .find(Locator::Css("#messages .attachments a.picture"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(href.ends_with("/sunset.png"), "{href}");
    screenshot(&bob, "attachment-picture").await;
    alice.close().await.ok();
    bob.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_dropped_on_the_conversation_or_pasted_are_sent() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    let (alice, bob) = alice_and_bob_in_general(&app, &driver).await;
    // Dropped anywhere on the conversation.
    alice
        .execute(
            "var files = new DataTransfer();
             files.items.add(new File(['dropped bytes'], 'dropped.txt', { type: 'text/plain' }));
             var target = document.getElementById('messages');
             target.dispatchEvent(new DragEvent('dragover', { bubbles: true, cancelable: true, dataTransfer: files }));
             target.dispatchEvent(new DragEvent('drop', { bubbles: true, cancelable: true, dataTransfer: files }));",
            vec![],
        )
        .await
        .unwrap();
    wait_for_text(&alice, "#composer-files", "dropped.txt").await;
    // A picture pasted from the clipboard joins it.
    alice
        .execute(
            "var canvas = document.createElement('canvas');
             canvas.width = 300; canvas.height = 200;
             var g = canvas.getContext('2d'); g.fillStyle = '#c33'; g.fillRect(0, 0, 300, 200);
             var raw = atob(canvas.toDataURL('image/png').split(',')[1]);
             var bytes = new Uint8Array(raw.length);
             for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
             var clip = new DataTransfer();
             clip.items.add(new File([bytes], 'image.png', { type: 'image/png' }));
             document.getElementById('composer-body').dispatchEvent(
               new ClipboardEvent('paste', { bubbles: true, cancelable: true, clipboardData: clip }));",
            vec![],
        )
        .await
        .unwrap();
    wait_for_text(&alice, "#composer-files", "image.png").await;
    // Enter sends files without any text.
    fill(&alice, "#composer-body", "\u{E007}").await;
    wait_for_text(&bob, "#messages .attachments", "dropped.txt").await;
    wait_for_text(&bob, "#messages .attachments", "image.png").await;
    assert_eq!(thumbnail_width(&bob).await, 300);
    // The dropped file downloads as it was.
    let text = bob
        .execute_async(
            "var done = arguments[0];
             fetch(document.querySelector('#messages .attachments a.file').href)
               .then(function (r) { return r.text(); }).then(done);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(text, json!("dropped bytes"));
    alice.close().await.ok();
    bob.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upload_says_why_and_keeps_the_text_and_the_files() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    let c = browser(&driver, true, 1280).await;
    register(&c, &app.base, "writer").await;
    open_or_create(&c, "general").await;
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    choose(&c, &empty.display().to_string()).await;
    fill(&c, "#composer-body", "about this file").await;
    click(&c, "#composer button[type=submit]").await;
    wait_for_text(&c, "#composer-error", "“empty.txt” is empty").await;
    let kept = c
        .execute(
            "return [document.getElementById('composer-body').value,
                     document.getElementById('composer-file').files.length];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(kept, json!(["about this file", 1]));
    screenshot(&c, "attachment-refused").await;
    c.close().await.ok();
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_picture_is_sent_with_the_plain_form_without_javascript() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    let c = browser(&driver, false, 1280).await;
    register(&c, &app.base, "nojs").await;
    open_or_create(&c, "plain").await;
    let dir = tempfile::tempdir().unwrap();
    let picture = picture_file(dir.path(), "plain.png", 640, 480);
    choose(&c, &picture).await;
    fill(&c, "#composer-body", "sent by a plain form").await;
    click(&c, "#composer button[type=submit]").await;
    wait_for_text(&c, "#messages .attachments", "plain.png").await;
    assert_eq!(path(&c).await, "/rooms/plain");
    wait_for_text(&c, "#messages", "sent by a plain form").await;
    assert_eq!(thumbnail_width(&c).await, 400);
    screenshot(&c, "attachment-nojs").await;
    c.close().await.ok();
}
