//! Reading a busy conversation: it opens at the first unread message under a "New" divider,
//! messages count as read as they come into view, and new messages never move a reader who has
//! scrolled up (a button counts them and takes the reader down).

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::json;

use crate::browser::{ONE_AT_A_TIME, browser, driver, in_view, register, wait_for_text};
use crate::support::TestApp;

async fn read_position(app: &TestApp, who: &str, room: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT s.last_read_seq FROM memberships s JOIN users u ON u.id = s.user_id
         JOIN rooms r ON r.id = s.room_id WHERE u.username = $1 AND r.name = $2",
    )
    .bind(who)
    .bind(room)
    .fetch_one(&app.pool().await)
    .await
    .unwrap()
}

/// Where element `id` is on the screen (its top, in CSS pixels).
async fn top_of(c: &Client, id: &str) -> f64 {
    c.execute(
        "return document.getElementById(arguments[0]).getBoundingClientRect().top;",
        vec![json!(id)],
    )
    .await
    .unwrap()
    .as_f64()
    .unwrap()
}

async fn scroll_top(c: &Client) -> f64 {
    c.execute(
        "return document.getElementById('scroller').scrollTop;",
        vec![],
    )
    .await
    .unwrap()
    .as_f64()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_room_opens_at_the_first_unread_message_and_reads_what_comes_into_view() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    let c = browser(&driver, true, 1280).await;
    register(&c, &app.base, "bob").await;
    c.goto(&format!("{}/rooms/general", app.base))
        .await
        .unwrap();
    wait_for_text(&c, "#conversation-title", "#general").await;
    for i in 1..=20 {
        alice.say("/rooms/general", &format!("backlog {i}")).await;
    }
    wait_for_text(&c, "#messages", "backlog 20").await;
    // Bob goes elsewhere; 81 messages arrive meanwhile.
    c.goto(&format!("{}/", app.base)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let read_before = read_position(&app, "bob", "general").await;
    let mut first_new = 0;
    for i in 1..=81 {
        let id = alice.say("/rooms/general", &format!("missed {i}")).await;
        if i == 1 {
            first_new = id;
        }
    }
    c.goto(&format!("{}/rooms/general", app.base))
        .await
        .unwrap();
    wait_for_text(&c, "#unread-divider", "New").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        in_view(&c, "#unread-divider").await,
        "the divider is in view"
    );
    assert!(
        in_view(&c, &format!("#m-{first_new}")).await,
        "the first missed message is in view"
    );
    assert!(!in_view(&c, "#poller").await, "not the newest");
    // Opening it read nothing that is not on screen.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let read = read_position(&app, "bob", "general").await;
    assert!(
        read >= read_before && read < first_new + 40,
        "read up to {read} on opening"
    );
    // Reading down (End) reads the rest, once the newer pages have come.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(more) = c.find(Locator::Css("#newer a")).await {
            more.click().await.ok();
        }
        c.find(Locator::Css("body"))
            .await
            .unwrap()
            .send_keys("\u{E010}")
            .await
            .ok();
        tokio::time::sleep(Duration::from_millis(500)).await;
        if read_position(&app, "bob", "general").await >= first_new + 80 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reading to the end never counted as read"
        );
    }
    c.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_messages_do_not_move_a_reader_who_scrolled_up_and_a_button_counts_them() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    for i in 1..=60 {
        alice.say("/rooms/general", &format!("earlier {i}")).await;
    }
    let c = browser(&driver, true, 1280).await;
    register(&c, &app.base, "bob").await;
    c.goto(&format!("{}/rooms/general", app.base))
        .await
        .unwrap();
    wait_for_text(&c, "#messages", "earlier 60").await;
    // Bob scrolls up to read something older.
    c.execute(
        "document.getElementById('scroller').scrollTop = -600;",
        vec![],
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first_visible = c
        .execute(
            "var box = document.getElementById('scroller').getBoundingClientRect();
             var seen = Array.prototype.filter.call(document.querySelectorAll('#messages [data-message-id]'),
               function (m) { return m.getBoundingClientRect().top >= box.top; });
             return seen.length ? seen[0].id : '';",
            vec![],
        )
        .await
        .unwrap();
    let top_before = top_of(&c, first_visible.as_str().unwrap()).await;
    for i in 1..=3 {
        alice.say("/rooms/general", &format!("meanwhile {i}")).await;
    }
    wait_for_text(&c, "#jump-newest", "3 new").await;
    let id = first_visible.as_str().unwrap().to_owned();
    assert!(
        in_view(&c, &format!("#{id}")).await,
        "the reader's place is kept"
    );
    let moved = top_of(&c, &id).await - top_before;
    assert!(
        moved.abs() < 4.0,
        "the first message read moved by {moved} px"
    );
    c.find(Locator::Css("#jump-newest"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(scroll_top(&c).await.abs() < 5.0, "at the newest");
    assert!(in_view(&c, "#messages article:last-of-type").await);
    let state = c
        .execute(
            "return [document.getElementById('jump-newest').hidden, document.activeElement.id];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(state, json!([true, "composer-body"]));
    c.close().await.ok();
}
