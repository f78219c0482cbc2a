//! Where a conversation opens: at the first message the reader has not read, under a "New"
//! divider rendered from the stored read position (so without JavaScript too).

use crate::on_both_engines;
use crate::support::TestApp;

on_both_engines!(
    a_conversation_with_much_unread_opens_at_the_first_unread_message,
    a_conversation_with_a_little_unread_opens_at_the_end_with_the_divider,
    a_page_with_javascript_leaves_the_read_position_to_the_script,
);

async fn read_position(app: &TestApp, who: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT s.last_read_seq FROM memberships s JOIN users u ON u.id = s.user_id
         JOIN rooms r ON r.id = s.room_id WHERE u.username = $1 AND r.name = 'general'",
    )
    .bind(who)
    .fetch_one(&app.pool().await)
    .await
    .unwrap()
}

async fn a_conversation_with_much_unread_opens_at_the_first_unread_message(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    for c in [&alice, &bob] {
        c.post("/rooms", &[("name", "general")]).await;
    }
    for i in 1..=10 {
        alice.say("/rooms/general", &format!("read {i}")).await;
    }
    assert_eq!(
        bob.get("/rooms/general").await.status,
        200,
        "bob reads them"
    );
    let mut first_new = 0;
    for i in 1..=81 {
        let id = alice.say("/rooms/general", &format!("missed {i}")).await;
        if i == 1 {
            first_new = id;
        }
    }
    let page = bob.get("/rooms/general").await;
    let shown = page.message_ids();
    // Five read messages for context, then the first missed one under the divider.
    assert_eq!(shown[5], first_new, "{shown:?}");
    assert_eq!(page.select(".message .body")[4], "read 10");
    assert!(
        page.has(&format!("#unread-divider + #m-{first_new}")),
        "the divider is just above it"
    );
    assert!(page.has("#newer"), "the rest is a newer page away");
    // Without JavaScript, what the page showed is read, and no more.
    assert_eq!(read_position(app, "bob").await, *shown.last().unwrap());
    // Opened again, the divider is where the reading stopped.
    let again = bob.get("/rooms/general").await;
    let next = again.attr("#unread-divider + article", "data-message-id");
    let next: i64 = next.expect("a divider above a message").parse().unwrap();
    assert!(next > *shown.last().unwrap());
}

async fn a_conversation_with_a_little_unread_opens_at_the_end_with_the_divider(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    for c in [&alice, &bob] {
        c.post("/rooms", &[("name", "general")]).await;
    }
    for i in 1..=30 {
        alice.say("/rooms/general", &format!("old {i}")).await;
    }
    bob.get("/rooms/general").await;
    let first_new = alice.say("/rooms/general", "new 1").await;
    alice.say("/rooms/general", "new 2").await;
    let page = bob.get("/rooms/general").await;
    assert!(!page.has("#newer"), "the newest page");
    assert!(
        page.has(&format!("#unread-divider + #m-{first_new}")),
        "{}",
        page.body
    );
    // All read now: no divider.
    assert!(!bob.get("/rooms/general").await.has("#unread-divider"));
    // Nor after Bob answers what he had not read: answering is having read it.
    alice.say("/rooms/general", "new 3").await;
    bob.say("/rooms/general", "mine").await;
    assert!(!bob.get("/rooms/general").await.has("#unread-divider"));
}

async fn a_page_with_javascript_leaves_the_read_position_to_the_script(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    for c in [&alice, &bob] {
        c.post("/rooms", &[("name", "general")]).await;
    }
    let before = read_position(app, "bob").await;
    alice.say("/rooms/general", "unseen yet").await;
    bob.add_cookie("parley_js=1; Path=/");
    assert_eq!(bob.get("/rooms/general").await.status, 200);
    assert_eq!(
        read_position(app, "bob").await,
        before,
        "the page's script reports it"
    );
}
