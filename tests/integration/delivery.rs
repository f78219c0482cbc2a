//! Live delivery by long-polling: held polls, cursors, paging, restarts.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::on_both_engines;
use crate::support::{Client, TestApp};

async fn room_with(app: &TestApp, names: &[&str]) -> Vec<Client> {
    let mut clients = Vec::new();
    for name in names {
        let c = app.member(name).await;
        c.post("/rooms", &[("name", "general")]).await;
        clients.push(c);
    }
    clients
}

on_both_engines!(
    a_poll_held_before_a_send_returns_that_message,
    a_poll_with_nothing_new_ends_in_204_after_the_hold,
    the_htmx_answer_carries_the_next_poller,
    a_page_whose_cursor_the_room_never_reached_is_told_to_reload,
    cursors_give_every_message_once_in_order_under_concurrent_senders,
    before_pages_back_through_history,
    nothing_is_lost_across_a_server_restart,
    a_private_conversation_is_live_too,
    a_page_just_made_is_not_sent_the_sidebar_it_shows,
);

async fn a_poll_held_before_a_send_returns_that_message(app: &TestApp) {
    let people = room_with(app, &["alice", "bob"]).await;
    let (alice, bob) = (&people[0], &people[1]);
    let started = Instant::now();
    let (poll, _) = tokio::join!(bob.poll("/rooms/general", 0), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        alice.say("/rooms/general", "are you there?").await
    });
    assert_eq!(poll.status, 200);
    assert_eq!(poll.message_ids(), vec![1]);
    assert_eq!(poll.select("#m-1 .body"), ["are you there?"]);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "answered at the send, not at the hold's end"
    );
}

async fn a_poll_with_nothing_new_ends_in_204_after_the_hold(app: &TestApp) {
    let people = room_with(app, &["alice"]).await;
    people[0].say("/rooms/general", "old news").await;
    let started = Instant::now();
    let poll = people[0].poll("/rooms/general", 1).await;
    assert_eq!(poll.status, 204);
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "held for the configured 2 s"
    );
    assert!(poll.body.is_empty());
    // The wait runs after the middleware chain; what the chain adds must still be there.
    assert_eq!(
        poll.headers.get("x-content-type-options").unwrap(),
        "nosniff"
    );
    assert_eq!(poll.headers.get("cache-control").unwrap(), "no-store");
}

async fn the_htmx_answer_carries_the_next_poller(app: &TestApp) {
    let people = room_with(app, &["alice"]).await;
    people[0].say("/rooms/general", "one").await;
    people[0].say("/rooms/general", "two").await;
    let page = people[0].get_htmx("/rooms/general/messages?after=0").await;
    assert_eq!(page.message_ids(), vec![1, 2]);
    assert_eq!(
        page.attr("#poller", "hx-get").as_deref(),
        Some("/rooms/general/messages?after=2")
    );
    assert_eq!(page.headers.get("cache-control").unwrap(), "no-store");
    assert_eq!(
        page.headers.get("content-type").unwrap(),
        "text/html; charset=utf-8"
    );
    assert_eq!(
        page.headers.get("x-content-type-options").unwrap(),
        "nosniff"
    );
}

async fn a_page_whose_cursor_the_room_never_reached_is_told_to_reload(app: &TestApp) {
    // As after a restore from an older backup: the page has seen message 5, the room has 1.
    let people = room_with(app, &["alice"]).await;
    people[0].say("/rooms/general", "the only one").await;
    let started = Instant::now();
    let poll = people[0].get_htmx("/rooms/general/messages?after=5").await;
    assert_eq!(poll.status, 200);
    assert_eq!(poll.headers.get("hx-refresh").unwrap(), "true");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "at once, not after the hold"
    );
    // A cursor the room has reached holds as ever.
    let poll = people[0].get_htmx("/rooms/general/messages?after=1").await;
    assert_eq!(poll.status, 204);
    assert!(poll.headers.get("hx-refresh").is_none());
}

async fn cursors_give_every_message_once_in_order_under_concurrent_senders(app: &TestApp) {
    let people = room_with(app, &["alice", "bob", "carol", "dave", "erin"]).await;
    const EACH: usize = 25;
    let senders = &people[..4];
    let listener = &people[4];
    let total = senders.len() * EACH;
    let listen = async {
        let mut seen = Vec::new();
        let mut cursor = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.len() < total && Instant::now() < deadline {
            let page = listener.poll("/rooms/general", cursor).await;
            if page.status == 204 {
                continue;
            }
            assert_eq!(page.status, 200);
            let ids = page.message_ids();
            assert!(
                ids.windows(2).all(|w| w[1] == w[0] + 1),
                "contiguous: {ids:?}"
            );
            assert_eq!(
                ids.first().copied(),
                Some(cursor + 1),
                "no gap after the cursor"
            );
            cursor = *ids.last().unwrap();
            seen.extend(ids);
        }
        seen
    };
    let send =
        futures_util::future::join_all(senders.iter().enumerate().map(|(s, c)| async move {
            for i in 0..EACH {
                c.say("/rooms/general", &format!("sender {s} message {i}"))
                    .await;
            }
        }));
    let (seen, _) = tokio::join!(listen, send);
    assert_eq!(seen, (1..=total as i64).collect::<Vec<_>>());
    // And every body arrived exactly once.
    let all = listener.poll("/rooms/general", 0).await;
    let bodies = all.select(".message .body");
    assert_eq!(bodies.len(), total);
    assert_eq!(bodies.iter().collect::<HashSet<_>>().len(), total);
}

async fn before_pages_back_through_history(app: &TestApp) {
    let people = room_with(app, &["alice"]).await;
    let alice = &people[0];
    for i in 1..=120 {
        alice.say("/rooms/general", &format!("m{i}")).await;
    }
    let page = alice.get("/rooms/general").await;
    assert_eq!(
        page.message_ids(),
        (71..=120).collect::<Vec<_>>(),
        "the page shows the latest 50"
    );
    let older = alice.get("/rooms/general/messages?before=71").await;
    assert_eq!(older.status, 200);
    assert_eq!(older.message_ids(), (21..=70).collect::<Vec<_>>());
    assert_eq!(
        older.attr("#history a", "hx-get").as_deref(),
        Some("/rooms/general/messages?before=21"),
        "a loader for the page before"
    );
    let oldest = alice.get("/rooms/general/messages?before=21").await;
    assert_eq!(oldest.message_ids(), (1..=20).collect::<Vec<_>>());
    assert!(
        !oldest.has("#history") && !oldest.body.contains("Load older"),
        "nothing before the first"
    );
    assert_eq!(
        alice.get("/rooms/general/messages?before=1").await.status,
        204
    );
    assert_eq!(
        alice
            .get("/rooms/general/messages?before=5&after=1")
            .await
            .status,
        400
    );
    assert_eq!(
        alice.get("/rooms/general/messages?after=abc").await.status,
        400
    );
}

async fn nothing_is_lost_across_a_server_restart(app: &mut TestApp) {
    let people = room_with(app, &["alice", "bob"]).await;
    people[0].say("/rooms/general", "before the restart").await;
    app.restart().await;
    let mut alice = Client::new(&app.base).await;
    assert_eq!(
        alice.login("alice", crate::support::PASSWORD).await.status,
        303
    );
    alice.say("/rooms/general", "after the restart").await;
    let mut bob = Client::new(&app.base).await;
    bob.login("bob", crate::support::PASSWORD).await;
    let page = bob.poll("/rooms/general", 1).await;
    assert_eq!(page.message_ids(), vec![2]);
    assert_eq!(page.select("#m-2 .body"), ["after the restart"]);
    let page = bob.poll("/rooms/general", 0).await;
    assert_eq!(page.message_ids(), vec![1, 2]);
}

async fn a_private_conversation_is_live_too(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let (poll, _) = tokio::join!(bob.poll("/dm/alice", 0), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        alice.say("/dm/bob", "just between us").await
    });
    assert_eq!(poll.message_ids(), vec![1]);
    assert_eq!(poll.select("#m-1 .body"), ["just between us"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_polls_are_answered_at_shutdown() {
    let mut app = crate::support::TestApp::sqlite().await;
    let people = room_with(&app, &["alice"]).await;
    let poll = people[0].poll("/rooms/general", 0);
    let started = Instant::now();
    let (page, _) = tokio::join!(poll, async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.shut_down().await;
    });
    assert_eq!(page.status, 204);
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "answered at shutdown, before the 2 s hold"
    );
}

/// Whatever a poll waits on, its room, its person's sidebar, or neither: shutting down answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_of_every_kind_are_answered_at_shutdown() {
    let mut app = crate::support::TestApp::sqlite().await;
    app.restart_with(|s| s.metrics_token = Some(crate::metrics::TOKEN.to_owned()))
        .await;
    let people = room_with(&app, &["alice"]).await;
    let alice = &people[0];
    // A sidebar from an hour ahead: no change to it (alice coming online) is due before then.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 3_600_000;
    let (in_room, without_room) = (
        format!("/rooms/general/messages?after=0&t={t}"),
        format!("/feed?t={t}"),
    );
    let started = Instant::now();
    let (page_in_room, page_without_room, not_a_page, _) = tokio::join!(
        alice.get_htmx(&in_room),
        alice.get_htmx(&without_room),
        alice.get_htmx("/feed"),
        async {
            // All three held first.
            crate::metrics::wait_for(&app, "parley_held_polls", 3.0).await;
            app.shut_down().await;
        }
    );
    for page in [page_in_room, page_without_room, not_a_page] {
        assert_eq!(page.status, 204, "{}", page.body);
    }
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "answered at shutdown, before the 2 s hold"
    );
}

/// A page's poll says when its sidebar was read (`t`). Its first answer brings the new message
/// alone: the sidebar it would bring is the one the page was made with.
async fn a_page_just_made_is_not_sent_the_sidebar_it_shows(app: &TestApp) {
    let people = room_with(app, &["alice", "bob"]).await;
    let (alice, bob) = (&people[0], &people[1]);
    // Whatever joining told bob's sidebar has been paced out by the time his page is made.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let page = bob.get("/rooms/general").await;
    let t = page.attr("#poller", "data-t").expect("the poller says t");
    let after = page.attr("#poller", "data-after").expect("and its cursor");
    let poll = format!("/rooms/general/messages?after={after}&t={t}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (answer, id) = tokio::join!(bob.get_htmx(&poll), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        alice.say("/rooms/general", "just this").await
    });
    assert_eq!(answer.message_ids(), vec![id], "{}", answer.body);
    assert!(
        !answer.has("#sidebar-lists"),
        "the page has this sidebar already"
    );
    // A change to the sidebar itself still comes: carol opens a conversation with bob.
    let carol = app.member("carol").await;
    let next = format!(
        "{}&t={}",
        answer.attr("#poller", "hx-get").expect("the next poller"),
        answer.attr("#poller", "data-t").expect("with t")
    );
    let (answer, _) = tokio::join!(bob.get_htmx(&next), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        carol.say("/dm/bob", "hello bob").await
    });
    assert!(answer.has("#sidebar-lists"), "a new private conversation");
}
