//! Conversations that change: editing, deleting and reacting to messages, mentions, and the
//! personal feed, each delivered live to polls already held.

use std::time::{Duration, Instant};

use crate::on_both_engines;
use crate::support::{Client, Page, TestApp};

on_both_engines!(
    an_edit_reaches_a_held_poll_as_the_same_message_marked_edited,
    only_the_author_edits_or_deletes_and_bad_edits_change_nothing,
    a_deleted_message_is_gone_from_the_database_the_pages_and_held_polls,
    reactions_toggle_and_reach_a_held_poll_and_only_emoji_are_accepted,
    a_third_user_reaches_nothing_of_a_private_conversation_through_the_new_routes,
    mentions_are_counted_for_the_person_named_and_listed_on_their_page,
    the_personal_feed_answers_when_a_private_message_arrives,
    a_poll_from_before_the_changes_gets_the_current_state_after_a_restart,
    without_javascript_edit_and_delete_are_pages_and_forms,
    a_staff_edit_in_the_admin_reaches_a_held_poll_marked_edited,
    someone_coming_online_reaches_the_sidebars_of_the_others_within_a_second_or_two,
    a_poll_far_behind_gets_every_deletion_however_many,
    a_staff_write_does_not_silence_the_feeds_being_held,
    an_edit_counts_only_whom_it_names_anew_and_nobody_mentions_themselves,
    one_emoji_typed_two_ways_is_one_reaction,
    a_staff_edit_works_out_whom_the_message_names_again,
    a_poll_from_before_an_edit_never_receives_the_old_text,
    a_catch_up_read_shows_nothing_committed_after_its_cursor,
);

/// A superuser's client.
async fn boss(app: &TestApp) -> Client {
    let boss = app.member("boss").await;
    sqlx::query("UPDATE users SET is_staff = 1, is_superuser = 1 WHERE username = 'boss'")
        .execute(&app.pool().await)
        .await
        .unwrap();
    boss
}

/// alice and bob in #general; alice has said "hello" (message 1).
async fn general_with_hello(app: &TestApp) -> (Client, Client) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    for c in [&alice, &bob] {
        assert_eq!(c.post("/rooms", &[("name", "general")]).await.status, 303);
    }
    assert_eq!(alice.say("/rooms/general", "hello").await, 1);
    (alice, bob)
}

/// A poll held by `who` from `after`, answered in the background.
fn held(who: &Client, conv: &str, after: i64) -> tokio::task::JoinHandle<Page> {
    let (http, base, csrf) = (who.http.clone(), who.base.clone(), who.csrf.clone());
    let url = format!("{base}{conv}/messages?after={after}");
    tokio::spawn(async move {
        let resp = http
            .get(url)
            .header("HX-Request", "true")
            .header("X-CSRF-Token", csrf)
            .send()
            .await
            .expect("poll");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        Page {
            status,
            headers,
            body: resp.text().await.unwrap_or_default(),
        }
    })
}

/// Gives `who` a feed on the server: its first poll answers once whatever happens (a new feed
/// knows nothing of what came before it), so the tests' own polls measure real news.
async fn warm_feed(who: &Client) {
    let (status, _) = feed_held(who).await.unwrap();
    assert_eq!(status, 200, "a new feed sends its sidebar once");
}

/// The feed of a page whose sidebar is as of now, held in the background: (status, body).
fn feed_held(who: &Client) -> tokio::task::JoinHandle<(u16, String)> {
    let url = format!("{}/feed?t={}", who.base, parley::now_ms());
    let http = who.http.clone();
    tokio::spawn(async move {
        let resp = http
            .get(url)
            .header("HX-Request", "true")
            .send()
            .await
            .expect("feed");
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    })
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}

async fn an_edit_reaches_a_held_poll_as_the_same_message_marked_edited(app: &TestApp) {
    let (alice, bob) = general_with_hello(app).await;
    let poll = held(&bob, "/rooms/general", 1);
    settle().await;
    let edited = alice
        .post_htmx("/rooms/general/messages/1/edit", &[("body", "hello again")])
        .await;
    assert_eq!(edited.status, 200, "{}", edited.body);
    assert_eq!(edited.select("#m-1 .body"), vec!["hello again"]);
    let got = poll.await.unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(
        got.attr("#m-1", "hx-swap-oob").as_deref(),
        Some("outerHTML")
    );
    assert_eq!(got.attr("#m-1", "data-message-id").as_deref(), Some("1"));
    assert_eq!(got.select("#m-1 .body"), vec!["hello again"]);
    assert_eq!(got.select("#m-1 .edited"), vec!["(edited)"]);
    assert_eq!(
        got.attr("#poller", "data-after").as_deref(),
        Some("2"),
        "the edit was change 2"
    );
    // Everyone's page shows the new text, marked.
    let page = bob.get("/rooms/general").await;
    assert_eq!(page.select("#m-1 .body"), vec!["hello again"]);
    assert!(page.has("#m-1 .edited"));
}

async fn only_the_author_edits_or_deletes_and_bad_edits_change_nothing(app: &TestApp) {
    let (alice, bob) = general_with_hello(app).await;
    let url = "/rooms/general/messages/1";
    assert_eq!(
        bob.post_htmx(&format!("{url}/edit"), &[("body", "mine now")])
            .await
            .status,
        403
    );
    assert_eq!(
        bob.post_htmx(&format!("{url}/delete"), &[]).await.status,
        403
    );
    assert_eq!(bob.get(&format!("{url}/edit")).await.status, 403);
    let none = "/rooms/general/messages/999";
    assert_eq!(
        alice
            .post_htmx(&format!("{none}/edit"), &[("body", "x")])
            .await
            .status,
        404
    );
    assert_eq!(
        alice.post_htmx(&format!("{none}/delete"), &[]).await.status,
        404
    );
    assert_eq!(
        alice.get("/rooms/general/messages/abc/edit").await.status,
        404
    );
    for bad in ["", "   ", &"x".repeat(4001), "bell\u{7}"] {
        let page = alice
            .post_htmx(&format!("{url}/edit"), &[("body", bad)])
            .await;
        assert_eq!(page.status, 422, "{bad:?}");
        // The form again, in place, saying why.
        assert!(page.has("form.editing#m-1 textarea"), "{bad:?}");
        assert!(page.has("form.editing .field-error"), "{bad:?}");
    }
    let page = alice.post(&format!("{url}/edit"), &[("body", "")]).await;
    assert_eq!(page.status, 422);
    assert!(
        page.has("form.editing textarea"),
        "the form again, with its error"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM messages WHERE body = 'hello' AND edited_ms IS NULL")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT last_seq FROM rooms WHERE name = 'general'")
            .await,
        1,
        "no change spent"
    );
    // The menu offers edit and delete to the author only.
    let mine = alice.get_htmx(&format!("{url}/actions")).await;
    assert!(mine.has(".message-menu a[href$='/edit']"));
    let theirs = bob.get_htmx(&format!("{url}/actions")).await;
    assert!(theirs.has(".message-menu .picker"));
    assert!(!theirs.has(".message-menu a[href$='/edit']"));
    assert!(!theirs.has(".message-menu a[href$='/delete']"));
}

async fn a_deleted_message_is_gone_from_the_database_the_pages_and_held_polls(app: &TestApp) {
    let (alice, bob) = general_with_hello(app).await;
    alice.say("/rooms/general", "a secret").await;
    alice.say("/rooms/general", "after it").await;
    let poll = held(&bob, "/rooms/general", 3);
    settle().await;
    let gone = alice
        .post_htmx("/rooms/general/messages/2/delete", &[])
        .await;
    assert_eq!(gone.status, 200);
    let got = poll.await.unwrap();
    assert_eq!(got.attr("#m-2", "hx-swap-oob").as_deref(), Some("delete"));
    assert!(!got.body.contains("a secret"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM messages WHERE body = 'a secret'")
            .await,
        0
    );
    let page = bob.get("/rooms/general").await;
    assert_eq!(page.message_ids(), vec![1, 3]);
    assert!(!page.body.contains("a secret"));
    let older = bob.get_htmx("/rooms/general/messages?before=4").await;
    assert!(!older.body.contains("a secret"));
    // A poll from before it was sent never sees its text.
    let from_start = bob.get_htmx("/rooms/general/messages?after=0").await;
    assert!(!from_start.body.contains("a secret"), "{}", from_start.body);
    assert_eq!(
        alice
            .post_htmx("/rooms/general/messages/2/delete", &[])
            .await
            .status,
        404
    );
}

async fn reactions_toggle_and_reach_a_held_poll_and_only_emoji_are_accepted(app: &TestApp) {
    let (alice, bob) = general_with_hello(app).await;
    let poll = held(&alice, "/rooms/general", 1);
    settle().await;
    let url = "/rooms/general/messages/1/reactions";
    let page = bob.post_htmx(url, &[("emoji", "👍")]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.select("#r-1 .chip .count"), vec!["1"]);
    let got = poll.await.unwrap();
    assert_eq!(
        got.attr("#r-1", "hx-swap-oob").as_deref(),
        Some("outerHTML")
    );
    assert_eq!(got.attr("#r-1 .chip", "title").as_deref(), Some("bob"));
    alice.post_htmx(url, &[("emoji", "👍")]).await;
    let page = alice.get("/rooms/general").await;
    assert_eq!(page.select("#r-1 .chip .count"), vec!["2"]);
    assert_eq!(
        page.attr("#r-1 .chip", "title").as_deref(),
        Some("bob, alice")
    );
    // Clicking your own reaction takes it away.
    let page = bob.post_htmx(url, &[("emoji", "👍")]).await;
    assert_eq!(page.select("#r-1 .chip .count"), vec!["1"]);
    let refused = bob.post_htmx(url, &[("emoji", "ok")]).await;
    assert!(
        refused.has("form.picker .field-error"),
        "the picker again, saying why"
    );
    for bad in ["", "ok", "👍👍", "a👍", &"👍".repeat(9), "<b>"] {
        assert_eq!(
            bob.post_htmx(url, &[("emoji", bad)]).await.status,
            422,
            "{bad:?}"
        );
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM reactions").await, 1);
    let missing = bob
        .post_htmx("/rooms/general/messages/9/reactions", &[("emoji", "👍")])
        .await;
    assert_eq!(missing.status, 404);
}

async fn a_third_user_reaches_nothing_of_a_private_conversation_through_the_new_routes(
    app: &TestApp,
) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let carol = app.member("carol").await;
    alice.say("/dm/bob", "just between us @carol").await;
    assert_eq!(
        bob.get("/dm/alice").await.select("#m-1 .body"),
        vec!["just between us @carol"]
    );
    // /dm/alice for carol is carol's own conversation with alice, which has no message 1.
    for path in [
        "/dm/alice/messages/1",
        "/dm/alice/messages/1/actions",
        "/dm/alice/messages/1/edit",
        "/dm/alice/messages/1/delete",
        "/dm/alice/messages/1/react",
    ] {
        assert_eq!(carol.get_htmx(path).await.status, 404, "{path}");
    }
    let react = carol
        .post_htmx("/dm/alice/messages/1/reactions", &[("emoji", "👍")])
        .await;
    assert_eq!(react.status, 404);
    assert_eq!(
        carol
            .post_htmx("/dm/alice/messages/1/delete", &[])
            .await
            .status,
        404
    );
    assert_eq!(
        carol
            .post_htmx("/dm/bob/messages/1/edit", &[("body", "x")])
            .await
            .status,
        404
    );
    // Named in a conversation she cannot read, carol is not told of it.
    let mentions = carol.get("/mentions").await;
    assert!(!mentions.body.contains("between us"));
    assert_eq!(app.count("SELECT COUNT(*) FROM mentions").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM reactions").await, 0);
    // Logged out: the login page, never content.
    let anon = app.client().await;
    assert_eq!(anon.get("/dm/alice/messages/1/actions").await.status, 303);
}

async fn mentions_are_counted_for_the_person_named_and_listed_on_their_page(app: &TestApp) {
    let (alice, bob) = general_with_hello(app).await;
    let carol = app.member("carol").await;
    carol.post("/rooms", &[("name", "general")]).await;
    alice
        .say("/rooms/general", "@BOB can you look? thanks @carol.")
        .await;
    let home = bob.get("/").await;
    assert_eq!(
        home.attr("#room-list a[href='/rooms/general']", "data-mentions")
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        home.select("#room-list a[href='/rooms/general'] .badge.mentions"),
        vec!["@1 mentioning you"]
    );
    let page = bob.get("/rooms/general").await;
    assert_eq!(
        page.attr("#m-2", "data-mentions").as_deref(),
        Some("bob carol")
    );
    assert_eq!(page.select("#m-2 .mention"), vec!["@BOB", "@carol"]);
    let listed = bob.get("/mentions").await;
    assert_eq!(listed.status, 200);
    assert_eq!(
        listed.attrs(".mention-list a", "href"),
        vec!["/rooms/general#m-2"]
    );
    assert_eq!(listed.select(".mention-list .author"), vec!["alice"]);
    // Read, the count is gone; the page still lists it.
    assert_eq!(
        bob.get("/")
            .await
            .attr("#room-list a[href='/rooms/general']", "data-mentions")
            .as_deref(),
        Some("0")
    );
    assert_eq!(bob.get_htmx("/mentions").await.count(".mention-list li"), 1);
    // An edit that names someone new counts for them.
    alice
        .post_htmx("/rooms/general/messages/1/edit", &[("body", "hello @dave")])
        .await;
    let dave = app.member("dave").await;
    assert_eq!(
        dave.get("/mentions").await.count(".mention-list li"),
        0,
        "dave did not exist then"
    );
    let style = bob.get("/me.css").await;
    assert!(style.body.contains(".message[data-mentions~=\"bob\"]"));
}

async fn the_personal_feed_answers_when_a_private_message_arrives(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    alice.say("/dm/bob", "first").await;
    bob.get("/dm/alice").await;
    warm_feed(&bob).await;
    let started = Instant::now();
    let feed = feed_held(&bob);
    settle().await;
    alice.say("/dm/bob", "are you there?").await;
    let (status, body) = feed.await.unwrap();
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "answered before the hold ended"
    );
    let page = Page::of_html(body);
    assert_eq!(
        page.attr("#sidebar-lists", "hx-swap-oob").as_deref(),
        Some("true")
    );
    assert_eq!(
        page.attr("#people-list a[href='/dm/alice']", "data-unread")
            .as_deref(),
        Some("1")
    );
    assert!(page.has("#poller[data-t]"));
    // Without news, the feed holds and ends with 204.
    let quiet = bob.get_htmx(&format!("/feed?t={}", parley::now_ms())).await;
    assert_eq!(quiet.status, 204);
}

async fn a_poll_from_before_the_changes_gets_the_current_state_after_a_restart(app: &TestApp) {
    let mut app = TestApp::start_on(app.database_url.clone()).await;
    let (alice, bob) = general_with_hello(&app).await;
    alice.say("/rooms/general", "two").await;
    alice.say("/rooms/general", "three").await;
    alice
        .post_htmx("/rooms/general/messages/1/edit", &[("body", "one, edited")])
        .await;
    alice
        .post_htmx("/rooms/general/messages/2/delete", &[])
        .await;
    bob.post_htmx("/rooms/general/messages/3/reactions", &[("emoji", "🎉")])
        .await;
    // A fresh process has no window: this poll is answered from the database.
    app.restart().await;
    let bob = crate::support::log_in(&app.base, "bob").await;
    let from_one = bob.get_htmx("/rooms/general/messages?after=1").await;
    assert_eq!(from_one.select("#m-1 .body"), vec!["one, edited"]);
    assert_eq!(
        from_one.attr("#m-1", "hx-swap-oob").as_deref(),
        Some("outerHTML")
    );
    assert_eq!(from_one.select("#m-3 .body"), vec!["three"]);
    assert_eq!(from_one.select("#m-3 .chip .count"), vec!["1"]);
    assert!(!from_one.body.contains("two"));
    assert_eq!(from_one.attr("#poller", "data-after").as_deref(), Some("6"));
    // Nothing after the cursor it was given: it holds.
    assert_eq!(
        bob.get_htmx("/rooms/general/messages?after=6").await.status,
        204
    );
}

async fn without_javascript_edit_and_delete_are_pages_and_forms(app: &TestApp) {
    let (alice, bob) = general_with_hello(app).await;
    let form = alice.get("/rooms/general/messages/1/edit").await;
    assert_eq!(form.status, 200);
    assert!(form.has("form.editing[action='/rooms/general/messages/1/edit'] textarea"));
    let saved = alice
        .post("/rooms/general/messages/1/edit", &[("body", "hi, edited")])
        .await;
    assert_eq!(saved.status, 303);
    assert_eq!(saved.location(), Some("/rooms/general#m-1"));
    let react = bob
        .post("/rooms/general/messages/1/reactions", &[("emoji", "❤️")])
        .await;
    assert_eq!(react.status, 303);
    let confirm = alice.get("/rooms/general/messages/1/delete").await;
    assert!(confirm.has("form.confirm[action='/rooms/general/messages/1/delete']"));
    let deleted = alice.post("/rooms/general/messages/1/delete", &[]).await;
    assert_eq!(deleted.status, 303);
    assert_eq!(deleted.location(), Some("/rooms/general"));
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM reactions").await, 0);
}

async fn a_staff_edit_in_the_admin_reaches_a_held_poll_marked_edited(app: &TestApp) {
    let (_alice, bob) = general_with_hello(app).await;
    let boss = app.member("boss").await;
    sqlx::query("UPDATE users SET is_staff = 1, is_superuser = 1 WHERE username = 'boss'")
        .execute(&app.pool().await)
        .await
        .unwrap();
    let id: i64 = sqlx::query_scalar("SELECT id FROM messages WHERE body = 'hello'")
        .fetch_one(&app.pool().await)
        .await
        .unwrap();
    let poll = held(&bob, "/rooms/general", 1);
    settle().await;
    let saved = boss
        .post(
            &format!("/admin/messages/{id}/change/"),
            &[("body", "hello (fixed by staff)"), ("_save", "1")],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let got = poll.await.unwrap();
    assert_eq!(
        got.attr("#m-1", "hx-swap-oob").as_deref(),
        Some("outerHTML")
    );
    assert_eq!(got.select("#m-1 .body"), vec!["hello (fixed by staff)"]);
    assert!(got.has("#m-1 .edited"));
}

async fn someone_coming_online_reaches_the_sidebars_of_the_others_within_a_second_or_two(
    app: &TestApp,
) {
    let bob = app.member("bob").await;
    crate::support::insert_member(&app.database_url, "carol").await;
    bob.get("/").await;
    warm_feed(&bob).await;
    let started = Instant::now();
    let feed = feed_held(&bob);
    settle().await;
    let _carol = crate::support::log_in(&app.base, "carol").await;
    let (status, body) = feed.await.unwrap();
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(Page::of_html(body).online("carol"), Some(true));
}

async fn a_poll_far_behind_gets_every_deletion_however_many(app: &TestApp) {
    let mut app = TestApp::start_on(app.database_url.clone()).await;
    let (alice, _bob) = general_with_hello(&app).await;
    const MANY: i64 = 210; // more than one answer's worth
    for i in 0..MANY {
        alice.say("/rooms/general", &format!("spam {i}")).await;
    }
    for id in 2..=MANY + 1 {
        let gone = alice
            .post_htmx(&format!("/rooms/general/messages/{id}/delete"), &[])
            .await;
        assert_eq!(gone.status, 200);
    }
    // A new process has no window: the poll reads the database, an answer at a time.
    app.restart().await;
    let bob = crate::support::log_in(&app.base, "bob").await;
    let mut cursor = MANY + 1;
    let mut deleted = std::collections::BTreeSet::new();
    loop {
        let page = bob
            .get_htmx(&format!("/rooms/general/messages?after={cursor}"))
            .await;
        if page.status == 204 {
            break;
        }
        assert_eq!(page.status, 200);
        for id in page.attrs("article[hx-swap-oob='delete']", "id") {
            deleted.insert(id);
        }
        let next: i64 = page.attr("#poller", "data-after").unwrap().parse().unwrap();
        assert!(next > cursor, "the cursor moves on");
        cursor = next;
    }
    assert_eq!(deleted.len() as i64, MANY, "every deletion arrived");
}

async fn a_staff_write_does_not_silence_the_feeds_being_held(app: &TestApp) {
    let (alice, bob) = general_with_hello(app).await;
    let boss = boss(app).await;
    alice.say("/dm/bob", "first").await;
    bob.get("/dm/alice").await;
    // Bob's feed is there, answering as it should...
    let feed = feed_held(&bob);
    settle().await;
    alice.say("/dm/bob", "one").await;
    assert_eq!(feed.await.unwrap().0, 200);
    // ...and a poll held on it when staff change something still hears of the next message.
    let started = Instant::now();
    let feed = feed_held(&bob);
    settle().await;
    crate::admin::save_room(app, &boss, "general", "general", "staff were here").await;
    alice.say("/dm/bob", "are you there?").await;
    let (status, _) = feed.await.unwrap();
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
}

/// The mention count beside #general in `who`'s sidebar.
async fn general_mentions(who: &Client) -> Option<String> {
    who.get("/")
        .await
        .attr("#room-list a[href='/rooms/general']", "data-mentions")
}

async fn an_edit_counts_only_whom_it_names_anew_and_nobody_mentions_themselves(app: &TestApp) {
    let (alice, bob) = general_with_hello(app).await;
    let id = alice.say("/rooms/general", "hi @bob").await;
    assert_eq!(general_mentions(&bob).await.as_deref(), Some("1"));
    bob.get("/rooms/general").await;
    assert_eq!(general_mentions(&bob).await.as_deref(), Some("0"));
    let url = format!("/rooms/general/messages/{id}/edit");
    alice
        .post_htmx(&url, &[("body", "hi @bob, see the docs @alice")])
        .await;
    assert_eq!(
        general_mentions(&bob).await.as_deref(),
        Some("0"),
        "bob had read it"
    );
    assert_eq!(
        general_mentions(&alice).await.as_deref(),
        Some("0"),
        "alice named herself"
    );
    let carol = app.member("carol").await;
    carol.post("/rooms", &[("name", "general")]).await;
    alice
        .post_htmx(&url, &[("body", "hi @bob and @carol")])
        .await;
    assert_eq!(
        general_mentions(&carol).await.as_deref(),
        Some("1"),
        "carol is named anew"
    );
    alice.post_htmx(&url, &[("body", "hi everyone")]).await;
    assert_eq!(
        general_mentions(&carol).await.as_deref(),
        Some("0"),
        "named no more"
    );
    assert_eq!(carol.get("/mentions").await.count(".mention-list li"), 0);
}

async fn one_emoji_typed_two_ways_is_one_reaction(app: &TestApp) {
    let (alice, bob) = general_with_hello(app).await;
    let url = "/rooms/general/messages/1/reactions";
    assert_eq!(alice.post_htmx(url, &[("emoji", "❤")]).await.status, 200);
    assert_eq!(bob.post_htmx(url, &[("emoji", "❤️")]).await.status, 200);
    let page = bob.post_htmx(url, &[("emoji", "👍\u{fe0f}")]).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.select("#r-1 .chip .count"), vec!["2", "1"]);
    assert_eq!(
        app.count("SELECT COUNT(DISTINCT emoji) FROM reactions")
            .await,
        2
    );
}

async fn a_staff_edit_works_out_whom_the_message_names_again(app: &TestApp) {
    let (alice, bob) = general_with_hello(app).await;
    let boss = boss(app).await;
    alice.say("/rooms/general", "@bob look at this").await;
    assert_eq!(bob.get("/mentions").await.count(".mention-list li"), 1);
    let id: i64 = sqlx::query_scalar("SELECT id FROM messages WHERE body = '@bob look at this'")
        .fetch_one(&app.pool().await)
        .await
        .unwrap();
    let saved = boss
        .post(
            &format!("/admin/messages/{id}/change/"),
            &[("body", "(removed by staff)"), ("_save", "1")],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(bob.get("/mentions").await.count(".mention-list li"), 0);
    let page = bob.get("/rooms/general").await;
    assert_eq!(page.attr("#m-2", "data-mentions"), None);
    assert!(page.has("#m-2 .edited"));
}

async fn a_poll_from_before_an_edit_never_receives_the_old_text(app: &TestApp) {
    let (alice, bob) = general_with_hello(app).await;
    let id = alice.say("/rooms/general", "the password is hunter2").await;
    // Bob's server has the room's window, holding the message as it was sent.
    assert_eq!(bob.poll("/rooms/general", 1).await.message_ids(), vec![id]);
    alice
        .post_htmx(
            &format!("/rooms/general/messages/{id}/edit"),
            &[("body", "(password removed)")],
        )
        .await;
    let from_before = bob.get_htmx("/rooms/general/messages?after=1").await;
    assert!(
        !from_before.body.contains("hunter2"),
        "{}",
        from_before.body
    );
    assert!(from_before.body.contains("(password removed)"));
}

/// A poll the window cannot answer reads the database: the room's last change, then the messages
/// and their reactions. An edit and a reaction committed between those reads belong to the next
/// answer only; shown in this one as well, they would reach the listener twice.
async fn a_catch_up_read_shows_nothing_committed_after_its_cursor(app: &TestApp) {
    use parley::domain::{Emoji, MessageBody};
    use parley::store::messages::{self, Change};
    let (_alice, _bob) = general_with_hello(app).await;
    let pool = app.pool().await;
    let room: i64 = sqlx::query_scalar("SELECT id FROM rooms WHERE name = 'general'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let bob: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'bob'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let writer = app.pool().await;
    let meanwhile = async {
        let edited = MessageBody::parse("hello, edited").unwrap();
        let e = messages::edit(&writer, room, 1, &edited, &[]).await;
        assert!(e.unwrap().is_some());
        let thumbs = Emoji::parse("👍").unwrap();
        let r = messages::toggle_reaction(&writer, room, 1, bob, &thumbs).await;
        assert!(r.unwrap().is_some());
    };
    let (first, cursor) = messages::changes_after_then(&pool, room, 0, 100, meanwhile)
        .await
        .unwrap();
    assert_eq!(cursor, 1);
    let [Change::New(m)] = first.as_slice() else {
        panic!("{first:?}");
    };
    assert_eq!((m.body.as_str(), m.reactions.len()), ("hello", 0), "{m:?}");
    let (next, cursor) = messages::changes_after(&pool, room, cursor, 100)
        .await
        .unwrap();
    assert_eq!(cursor, 3);
    let [Change::Updated(m)] = next.as_slice() else {
        panic!("{next:?}");
    };
    assert_eq!(
        (m.body.as_str(), m.reactions.len()),
        ("hello, edited", 1),
        "{m:?}"
    );
}
