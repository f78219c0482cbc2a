//! How a conversation reads in a browser (runs of one person's messages, days) as messages arrive
//! live, and leaving and joining rooms without JavaScript.

use fantoccini::{Client, Locator};
use serde_json::json;

use crate::browser::{ONE_AT_A_TIME, browser, click, driver, register, screenshot, wait_for_text};
use crate::support::TestApp;

const MINUTE: i64 = 60_000;
const DAY: i64 = 24 * 60 * MINUTE;

/// Says when message `seq` of #general was written.
async fn written_at(app: &TestApp, seq: i64, ms: i64) {
    sqlx::query(
        "UPDATE messages SET created_ms = $1
         WHERE seq = $2 AND room_id = (SELECT id FROM rooms WHERE name = 'general')",
    )
    .bind(ms)
    .bind(seq)
    .execute(&app.pool().await)
    .await
    .unwrap();
}

/// Which of these messages are shown as continuing a run.
async fn grouped(c: &Client, ids: &[i64]) -> Vec<bool> {
    let found = c
        .execute(
            "return arguments[0].map(function (id) {
               return document.getElementById('m-' + id).classList.contains('grouped');
             });",
            vec![json!(ids)],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

async fn day_dividers(c: &Client) -> Vec<String> {
    let found = c
        .execute(
            "return Array.prototype.map.call(document.querySelectorAll('#scroller .day-divider'),
               function (d) { return d.textContent + ' > ' + d.nextElementSibling.id; });",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

async fn time_opacity(c: &Client, id: i64) -> String {
    c.execute(
        "return getComputedStyle(document.querySelector('#m-' + arguments[0] + ' time')).opacity;",
        vec![json!(id)],
    )
    .await
    .unwrap()
    .as_str()
    .unwrap()
    .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_break_at_five_minutes_and_live_messages_are_grouped_and_dated_where_they_land() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    // Yesterday at noon (UTC, the browser's zone here), 4:59 apart, then 5:01 apart.
    let now = parley::now_ms();
    let noon = now - now % DAY - DAY + 12 * 60 * MINUTE;
    let mut old = Vec::new();
    for (text, ms) in [
        ("yesterday's first", noon),
        ("just under five minutes on", noon + 5 * MINUTE - 1000),
        ("just over five minutes on", noon + 10 * MINUTE),
    ] {
        let seq = alice.say("/rooms/general", text).await;
        written_at(&app, seq, ms).await;
        old.push(seq);
    }
    let c = browser(&driver, true, 1280).await;
    // A newcomer is in #general from the start.
    register(&c, &app.base, "bob").await;
    click(&c, "#room-list a[href='/rooms/general']").await;
    wait_for_text(&c, "#messages", "just over five minutes on").await;
    assert_eq!(grouped(&c, &old).await, vec![false, true, false]);
    assert_eq!(
        day_dividers(&c).await,
        vec![format!("Yesterday > m-{}", old[0])]
    );
    // A grouped message's time shows on hover and focus only.
    assert_eq!(time_opacity(&c, old[1]).await, "0");
    c.execute(
        "document.querySelector('#m-' + arguments[0] + ' .more').focus();",
        vec![json!(old[1])],
    )
    .await
    .unwrap();
    assert_eq!(time_opacity(&c, old[1]).await, "1");
    assert_eq!(
        time_opacity(&c, old[0]).await,
        "1",
        "a run's first shows it"
    );
    // Live: today's first message opens a day, the next continues its run, and another
    // person's starts their own.
    let first = alice.say("/rooms/general", "good morning").await;
    wait_for_text(&c, "#messages", "good morning").await;
    let second = alice.say("/rooms/general", "anyone here?").await;
    wait_for_text(&c, "#messages", "anyone here?").await;
    let bobs = bob_says(&c, "me!").await;
    let live = [first, second, bobs];
    assert_eq!(grouped(&c, &live).await, vec![false, true, false]);
    assert_eq!(
        day_dividers(&c).await,
        vec![
            format!("Yesterday > m-{}", old[0]),
            format!("Today > m-{first}")
        ]
    );
    screenshot(&c, "grouped-messages").await;
    // The page made again by the server reads the same.
    c.refresh().await.unwrap();
    wait_for_text(&c, "#messages", "me!").await;
    assert_eq!(grouped(&c, &live).await, vec![false, true, false]);
    assert_eq!(grouped(&c, &old).await, vec![false, true, false]);
    assert_eq!(day_dividers(&c).await.len(), 2);
    // Deleting a run's first message makes the next one lead it, under the day's divider.
    alice
        .post(&format!("/rooms/general/messages/{first}/delete"), &[])
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while c.find(Locator::Id(&format!("m-{first}"))).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "the deletion arrived");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(grouped(&c, &[second]).await, vec![false]);
    assert_eq!(
        day_dividers(&c).await,
        vec![
            format!("Yesterday > m-{}", old[0]),
            format!("Today > m-{second}")
        ]
    );
    c.close().await.ok();
}

/// Sends a message from the browser's composer and returns its id once it shows.
async fn bob_says(c: &Client, text: &str) -> i64 {
    let body = c.find(Locator::Css("#composer-body")).await.unwrap();
    body.send_keys(text).await.unwrap();
    body.send_keys("\u{E007}").await.unwrap();
    wait_for_text(c, "#messages", text).await;
    let id = c
        .execute(
            "var all = document.querySelectorAll('#messages article.message');
             return Number(all[all.length - 1].dataset.messageId);",
            vec![],
        )
        .await
        .unwrap();
    id.as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_is_left_from_its_header_and_joined_again_from_browse_rooms_without_javascript() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "books")]).await;
    alice
        .post("/rooms/books/topic", &[("topic", "What we are reading")])
        .await;
    let c = browser(&driver, false, 1280).await;
    register(&c, &app.base, "bob").await;
    c.goto(&format!("{}/rooms/books", app.base)).await.unwrap();
    wait_for_text(&c, "#conversation-title", "#books").await;
    click(&c, "details.members summary").await;
    click(&c, ".leave-form button").await;
    wait_for_text(&c, ".welcome", "Hello, bob").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/");
    let sidebar = c.find(Locator::Css("#room-list")).await.unwrap();
    let rooms = sidebar.text().await.unwrap();
    assert!(!rooms.contains("books"), "{rooms}");
    assert!(rooms.contains("general"), "{rooms}");
    click(&c, "#rooms a[href='/rooms']").await;
    wait_for_text(&c, "#room-books", "What we are reading").await;
    wait_for_text(&c, "#room-books", "1 member").await;
    screenshot(&c, "browse-rooms").await;
    click(&c, "#room-books button").await;
    wait_for_text(&c, "#conversation-title", "#books").await;
    wait_for_text(&c, "#room-list", "books").await;
    c.close().await.ok();
}
