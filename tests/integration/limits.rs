//! Fairness: what one person or one address may do at once and how fast, so that nobody can
//! take the server, or everyone's sidebar, for themselves.

use std::time::{Duration, Instant};

use crate::on_both_engines;
use crate::support::{Client, PASSWORD, Page, TestApp};

on_both_engines!(
    one_person_holds_only_so_many_polls_and_the_next_answers_at_once,
    one_address_holds_only_so_many_polls,
    sending_faster_than_the_limit_is_refused_with_retry_after_and_stores_nothing,
    creating_rooms_has_a_pace_and_a_total_but_joining_has_neither,
    starting_private_conversations_has_a_pace_but_reopening_one_does_not,
    good_logins_count_against_their_address_too,
    password_checks_beyond_the_workers_and_queue_get_503_and_count_as_no_guess,
    a_locked_out_name_still_lets_its_owner_in,
    a_locked_out_name_does_not_stop_its_owner_changing_the_password,
    topics_are_set_by_members_at_a_pace_and_said_in_the_room,
    display_names_change_at_a_pace_and_bios_freely,
);

fn retry_after(page: &Page) -> u64 {
    page.headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After in whole seconds: {:?}", page.headers))
}

/// A held poll of `c`'s feed, as a task: (status, when it answered).
fn feed_poll(c: &Client) -> tokio::task::JoinHandle<(u16, Instant)> {
    let req = c.http.get(format!("{}/feed", c.base));
    tokio::spawn(async move {
        let status = req.send().await.expect("poll").status().as_u16();
        (status, Instant::now())
    })
}

async fn one_person_holds_only_so_many_polls_and_the_next_answers_at_once(app: &mut TestApp) {
    app.restart_with(|s| {
        s.max_polls_per_user = 3;
        s.poll_timeout_secs = 3;
    })
    .await;
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let held: Vec<_> = (0..3).map(|_| feed_poll(&alice)).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let page = alice.get("/feed").await;
    assert_eq!(
        page.status, 429,
        "the fourth poll is not held: {}",
        page.body
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered at once"
    );
    assert!(retry_after(&page) >= 1);
    assert!(page.body.contains("close some tabs"), "{}", page.body);
    // Someone else is not held back by alice's polls.
    let other = feed_poll(&bob);
    for poll in held {
        let (status, _) = poll.await.unwrap();
        assert_eq!(status, 204, "the first three were held to the end");
    }
    let (status, answered) = other.await.unwrap();
    assert_eq!(status, 204);
    assert!(
        answered.duration_since(started) > Duration::from_secs(1),
        "bob's was held"
    );
    // Their places are given back when they answer.
    let again = feed_poll(&alice);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!again.is_finished(), "held again");
}

async fn one_address_holds_only_so_many_polls(app: &mut TestApp) {
    app.restart_with(|s| s.max_polls_per_addr = 2).await;
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let _held = [feed_poll(&alice), feed_poll(&bob)];
    tokio::time::sleep(Duration::from_millis(500)).await;
    let page = app.member("carol").await.get("/feed").await;
    assert_eq!(page.status, 429, "a third from the same address");
}

async fn sending_faster_than_the_limit_is_refused_with_retry_after_and_stores_nothing(
    app: &mut TestApp,
) {
    app.restart_with(|s| s.messages_per_minute = 3).await;
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    assert_eq!(
        alice.post("/rooms", &[("name", "general")]).await.status,
        303
    );
    for i in 0..3 {
        alice.say("/rooms/general", &format!("hello {i}")).await;
    }
    let page = alice
        .post_htmx("/rooms/general/messages", &[("body", "one too many")])
        .await;
    assert_eq!(page.status, 429);
    assert!(
        page.body
            .contains("You are sending messages faster than Parley takes them. Try again in"),
        "{}",
        page.body
    );
    assert!(
        (1..=20).contains(&retry_after(&page)),
        "a third of a minute at most"
    );
    let page = alice
        .post("/rooms/general/messages", &[("body", "one too many")])
        .await;
    assert_eq!(page.status, 429, "without JavaScript too");
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 3);
    // Each person has their own pace.
    bob.say("/rooms/general", "my turn").await;
}

async fn creating_rooms_has_a_pace_and_a_total_but_joining_has_neither(app: &mut TestApp) {
    app.restart_with(|s| {
        s.rooms_per_hour = 2;
        s.max_rooms_per_user = 3;
    })
    .await;
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    for name in ["one", "two"] {
        let page = alice.post("/rooms", &[("name", name)]).await;
        assert_eq!(page.status, 303, "{}", page.body);
    }
    let page = alice.post("/rooms", &[("name", "three")]).await;
    assert_eq!(page.status, 429);
    assert!(
        page.body
            .contains("You are creating rooms faster than Parley allows.")
    );
    assert!(retry_after(&page) > 60, "the pace is per hour");
    // Opening rooms that exist costs nothing.
    for _ in 0..3 {
        assert_eq!(alice.post("/rooms", &[("name", "two")]).await.status, 303);
        assert_eq!(bob.post("/rooms", &[("name", "one")]).await.status, 303);
    }
    // The total counts what was made before, on any process, however slowly.
    let pool = app.pool().await;
    sqlx::query(
        "INSERT INTO rooms (kind, name, name_key, created_by, created_ms)
         SELECT 'public', 'old', 'old', id, 0 FROM users WHERE username = 'bob'",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE rooms SET created_by = (SELECT id FROM users WHERE username = 'bob') WHERE name_key IN ('one', 'two')")
        .execute(&pool)
        .await
        .unwrap();
    let page = bob.post("/rooms", &[("name", "four")]).await;
    assert_eq!(page.status, 403);
    assert!(
        page.body
            .contains("You have created as many rooms as one person may.")
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM rooms WHERE name_key IN ('three', 'four')")
            .await,
        0
    );
}

async fn starting_private_conversations_has_a_pace_but_reopening_one_does_not(app: &mut TestApp) {
    app.restart_with(|s| s.conversations_per_hour = 2).await;
    let alice = app.member("alice").await;
    for name in ["bob", "carol", "dave"] {
        crate::support::insert_member(&app.database_url, name).await;
    }
    assert_eq!(alice.get("/dm/bob").await.status, 200);
    assert_eq!(alice.get("/dm/carol").await.status, 200);
    let page = alice.get("/dm/dave").await;
    assert_eq!(page.status, 429);
    assert!(
        page.body
            .contains("You are starting private conversations faster")
    );
    assert!(retry_after(&page) > 60);
    assert_eq!(
        alice.get("/dm/bob").await.status,
        200,
        "an existing one opens"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM rooms WHERE kind = 'direct'")
            .await,
        2
    );
}

async fn good_logins_count_against_their_address_too(app: &mut TestApp) {
    app.restart_with(|s| s.logins_per_minute = 3).await;
    crate::support::insert_member(&app.database_url, "alice").await;
    let mut c = app.client().await;
    for _ in 0..3 {
        assert_eq!(c.login("alice", PASSWORD).await.status, 303);
    }
    let page = c.login("alice", PASSWORD).await;
    assert_eq!(page.status, 429);
    assert!(
        page.body
            .contains("Too many log-in attempts from your address.")
    );
    assert!(retry_after(&page) >= 1);
}

async fn password_checks_beyond_the_workers_and_queue_get_503_and_count_as_no_guess(
    app: &mut TestApp,
) {
    app.restart_with(|s| {
        s.hash_workers = 1;
        s.hash_queue = 1;
    })
    .await;
    crate::support::insert_member(&app.database_url, "alice").await;
    let pages = app.guesses_at_once("alice", 8).await;
    let busy: Vec<_> = pages.iter().filter(|p| p.status == 503).collect();
    let checked = pages.iter().filter(|p| p.status == 401).count();
    assert!(
        !busy.is_empty(),
        "{:?}",
        pages.iter().map(|p| p.status).collect::<Vec<_>>()
    );
    assert!(checked >= 2, "one running and one queued are checked");
    for page in &busy {
        assert_eq!(retry_after(page), 1);
        assert!(page.body.contains("busy checking passwords"));
    }
    // Refused checks were no guesses: alice is not locked out by them.
    let mut alice = app.client().await;
    assert_eq!(
        alice.login("alice", PASSWORD).await.status,
        303,
        "{checked} failures only"
    );
}

async fn a_locked_out_name_still_lets_its_owner_in(app: &mut TestApp) {
    app.restart_with(|s| s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()])
        .await;
    crate::support::insert_member(&app.database_url, "alice").await;
    let mut laptop = app.client().await;
    assert_eq!(
        laptop
            .login_from("198.51.100.7", "alice", PASSWORD)
            .await
            .status,
        303,
        "alice's own browser, once"
    );
    assert_eq!(laptop.post("/logout", &[]).await.status, 303);
    laptop.csrf = crate::support::csrf_from(&laptop.get("/login").await.body).unwrap();
    // Someone guesses from a few addresses until the name is locked.
    let guesser = app.client().await;
    for i in 0..5 {
        let from = format!("203.0.113.{i}");
        assert_eq!(
            guesser.login_from(&from, "alice", "guess").await.status,
            401
        );
    }
    let page = guesser.login_from("203.0.113.0", "alice", PASSWORD).await;
    assert_eq!(page.status, 429, "the guesser's addresses stay locked");
    // alice's browser is known, even from one of those addresses...
    assert_eq!(
        laptop
            .login_from("203.0.113.0", "alice", PASSWORD)
            .await
            .status,
        303
    );
    // ...and a new device on an address that never failed gets in too.
    let phone = app.client().await;
    assert_eq!(
        phone
            .login_from("192.0.2.44", "alice", PASSWORD)
            .await
            .status,
        303
    );
    // A forged device cookie is no key.
    let token = guesser.csrf.clone();
    let resp = reqwest::Client::new()
        .post(format!("{}/login", app.base))
        .header("X-Forwarded-For", "203.0.113.1")
        .header(
            "Cookie",
            format!("parley_csrf={token}; parley_device=99999999999999:00ff:alice"),
        )
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 429);
}

async fn a_locked_out_name_does_not_stop_its_owner_changing_the_password(app: &TestApp) {
    let alice = app.member("alice").await;
    let mut guesser = app.client().await;
    for _ in 0..5 {
        assert_eq!(guesser.login("alice", "guess").await.status, 401);
    }
    assert_eq!(guesser.login("alice", PASSWORD).await.status, 429);
    let page = alice
        .post(
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a brand new secret"),
            ],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
}

async fn topics_are_set_by_members_at_a_pace_and_said_in_the_room(app: &mut TestApp) {
    app.restart_with(|s| s.topics_per_hour = 2).await;
    let alice = app.member("alice").await;
    let mallory = app.member("mallory").await;
    assert_eq!(
        alice.post("/rooms", &[("name", "general")]).await.status,
        303
    );
    let page = mallory
        .post("/rooms/general/topic", &[("topic", "buy my stuff")])
        .await;
    assert_eq!(page.status, 403, "not a member");
    assert!(
        page.body
            .contains("Only the room's members may set its topic")
    );
    let page = alice
        .post("/rooms/general/topic", &[("topic", "Plans for Friday")])
        .await;
    assert_eq!(page.status, 303);
    let room = alice.get("/rooms/general").await;
    assert_eq!(room.select("#conversation-topic"), ["Plans for Friday"]);
    let record = room.select(".message.topic-record .body");
    assert_eq!(record, ["set the topic to “Plans for Friday”"]);
    assert_eq!(room.select(".message.topic-record .author"), ["alice"]);
    // It reaches open pages as any message does, and cannot be edited away.
    let id = room.message_ids()[0];
    let edit = alice
        .post_htmx(
            &format!("/rooms/general/messages/{id}/edit"),
            &[("body", "nothing happened")],
        )
        .await;
    assert_eq!(edit.status, 403);
    assert_eq!(
        alice
            .post("/rooms/general/topic", &[("topic", "")])
            .await
            .status,
        303
    );
    let page = alice
        .post("/rooms/general/topic", &[("topic", "third")])
        .await;
    assert_eq!(page.status, 429);
    assert!(retry_after(&page) > 60);
    let room = alice.get("/rooms/general").await;
    assert_eq!(
        room.select(".message.topic-record .body"),
        ["set the topic to “Plans for Friday”", "cleared the topic"]
    );
}

/// Each new display name makes every server forget the messages it has rendered: a person may
/// change theirs only so often. Saving the bio alone is not a rename.
async fn display_names_change_at_a_pace_and_bios_freely(app: &mut TestApp) {
    app.restart_with(|s| s.renames_per_hour = 2).await;
    let alice = app.member("alice").await;
    let save = |name: &'static str, bio: &'static str| {
        let alice = &alice;
        async move {
            alice
                .post("/profile", &[("display_name", name), ("bio", bio)])
                .await
        }
    };
    assert_eq!(save("Al", "").await.status, 303);
    assert_eq!(save("Alice", "").await.status, 303);
    let third = save("Alice S.", "").await;
    assert_eq!(third.status, 429, "{}", third.body);
    assert!(third.headers.contains_key("retry-after"));
    assert!(
        third
            .body
            .contains("changing your display name faster than Parley allows")
    );
    assert_eq!(
        save("Alice", "Still me.").await.status,
        303,
        "the same name"
    );
    let profile = alice.get("/profile").await;
    assert_eq!(
        profile.attr("#display-name", "value").as_deref(),
        Some("Alice")
    );
    assert_eq!(profile.select("#bio"), ["Still me."]);
}
