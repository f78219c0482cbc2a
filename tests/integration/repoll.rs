//! A page's long-poll takes a short way in when everything about it is cached (`web::repoll`):
//! what it is answered, and whom, must not depend on which way it came in.
//!
//! The chain is made to answer the same poll by spelling the room's name percent-encoded, which
//! the short way leaves to the chain; `parley_short_polls_total` says which way each one went.

use std::time::{Duration, Instant};

use crate::metrics::{TOKEN, scrape, value};
use crate::on_both_engines;
use crate::support::{Client, Page, TestApp};

on_both_engines!(
    a_poll_is_answered_alike_whichever_way_it_comes_in,
    a_held_poll_of_a_session_that_ended_answers_nothing_and_the_next_is_refused,
    nobody_takes_the_short_way_into_a_conversation_that_is_not_theirs,
    a_copy_of_a_session_cookie_stops_taking_the_short_way_when_the_session_ends,
    short_polls_are_answered_at_shutdown,
    a_private_conversation_and_the_feed_are_answered_alike_whichever_way,
    a_room_renamed_by_staff_is_not_polled_under_its_old_name,
    an_account_deactivated_behind_the_servers_back_stops_polling_when_its_login_expires,
    a_login_and_a_room_in_use_are_read_again_before_they_expire_and_polls_keep_the_short_way,
);

/// How many polls took the short way so far.
async fn short_polls(app: &TestApp) -> f64 {
    value(&scrape(app).await, "parley_short_polls_total")
}

/// How many requests the metrics count for `route` with `status` (a GET).
async fn requests(app: &TestApp, route: &str, status: u16) -> f64 {
    let series =
        format!(r#"parley_http_requests_total{{method="GET",route="{route}",status="{status}"}}"#);
    value(&scrape(app).await, &series)
}

/// With debug logging on (`TEST_LOG=1`), every poll goes through the chain, for its span.
fn short_way_open() -> bool {
    !tracing::enabled!(tracing::Level::DEBUG)
}

/// Alice, a member of #general, with the room's page open: her login and the room are cached.
async fn alice_in_general(app: &mut TestApp) -> Client {
    app.restart_with(|s| s.metrics_token = Some(TOKEN.to_owned()))
        .await;
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    assert_eq!(alice.get("/rooms/general").await.status, 200);
    alice
}

/// Status, body and headers but the date, which differ by the second.
fn answer(page: &Page) -> (u16, String, Vec<(String, String)>) {
    let mut headers: Vec<(String, String)> = page
        .headers
        .iter()
        .filter(|(name, _)| *name != "date")
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    (page.status, page.body.clone(), headers)
}

async fn a_poll_is_answered_alike_whichever_way_it_comes_in(app: &mut TestApp) {
    let alice = alice_in_general(app).await;
    alice.say("/rooms/general", "hello").await;
    let before = short_polls(app).await;
    // New messages, at once; a cursor the room never reached, at once; nothing new, after the
    // hold; a page's poll, with its sidebar's time and the calls it has seen.
    for query in [
        "after=0",
        "after=9",
        "after=1",
        "after=0&t=4102444800000&s=1.0",
    ] {
        let (short, chain) = (
            format!("/rooms/general/messages?{query}"),
            format!("/rooms/gener%61l/messages?{query}"),
        );
        let (short, chain) = tokio::join!(alice.get_htmx(&short), alice.get_htmx(&chain));
        assert_eq!(answer(&short), answer(&chain), "?{query}");
        if query == "after=0" {
            assert_eq!(short.status, 200);
            assert_eq!(short.select(".message .body"), ["hello"]);
            assert_eq!(short.headers["x-content-type-options"], "nosniff");
            assert_eq!(short.headers["cache-control"], "no-store");
        }
    }
    if short_way_open() {
        assert_eq!(short_polls(app).await - before, 4.0, "one of each pair");
    }
}

async fn a_held_poll_of_a_session_that_ended_answers_nothing_and_the_next_is_refused(
    app: &mut TestApp,
) {
    let alice = alice_in_general(app).await;
    let before = short_polls(app).await;
    // A page's poll, with its sidebar as of now: the person's feed wakes it when the session
    // ends (and a sidebar is sent at most once a second, so nothing else answers it first).
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let poll = format!("/rooms/general/messages?after=0&t={t}");
    let started = Instant::now();
    let (held, _) = tokio::join!(alice.get_htmx(&poll), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Logging out ends the session the held poll was checked with.
        alice.post("/logout", &[]).await;
    });
    assert_eq!(held.status, 204, "{}", held.body);
    assert!(held.body.is_empty());
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "at the logout"
    );
    let next = alice.get_htmx(&poll).await;
    assert_eq!(next.status, 401, "{}", next.body);
    assert!(!next.body.contains("hello"));
    if short_way_open() {
        assert_eq!(short_polls(app).await - before, 1.0, "the first only");
    }
}

async fn nobody_takes_the_short_way_into_a_conversation_that_is_not_theirs(app: &mut TestApp) {
    app.restart_with(|s| s.metrics_token = Some(TOKEN.to_owned()))
        .await;
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let carol = app.member("carol").await;
    alice.say("/dm/bob", "just between us").await;
    assert_eq!(bob.get("/dm/alice").await.status, 200);
    // Carol's `/dm/bob` is her own conversation with Bob, whatever Alice's and Bob's is cached
    // as: hers holds, and ends with nothing.
    assert_eq!(carol.get("/dm/bob").await.status, 200);
    let before = short_polls(app).await;
    let (carols, bobs) = tokio::join!(
        carol.get_htmx("/dm/bob/messages?after=0"),
        bob.get_htmx("/dm/alice/messages?after=0"),
    );
    assert_eq!(carols.status, 204, "{}", carols.body);
    assert!(!carols.body.contains("just between us"));
    assert_eq!(bobs.status, 200);
    assert!(bobs.body.contains("just between us"));
    if short_way_open() {
        assert_eq!(short_polls(app).await - before, 2.0);
    }
}

/// A connection remembers what its last short poll was found to be (`repoll::Known`); the
/// session ending elsewhere must end that too, though this connection sends the same cookies.
async fn a_copy_of_a_session_cookie_stops_taking_the_short_way_when_the_session_ends(
    app: &mut TestApp,
) {
    let alice = alice_in_general(app).await;
    alice.say("/rooms/general", "hello").await;
    let copy = Client::new(&app.base).await;
    let session = alice.cookie("parley_session").expect("alice's session");
    copy.add_cookie(&format!("parley_session={session}"));
    let before = short_polls(app).await;
    // Twice on one kept-alive connection: the second is what the first was found to be.
    for _ in 0..2 {
        let page = copy.get_htmx("/rooms/general/messages?after=0").await;
        assert_eq!(page.status, 200, "{}", page.body);
        assert_eq!(page.select(".message .body"), ["hello"]);
    }
    if short_way_open() {
        assert_eq!(short_polls(app).await - before, 2.0);
    }
    alice.post("/logout", &[]).await;
    let page = copy.get_htmx("/rooms/general/messages?after=0").await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(!page.body.contains("hello"));
}

async fn short_polls_are_answered_at_shutdown(app: &mut TestApp) {
    let alice = alice_in_general(app).await;
    let before = short_polls(app).await;
    let started = Instant::now();
    let (page, _) = tokio::join!(alice.get_htmx("/rooms/general/messages?after=0"), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if short_way_open() {
            assert_eq!(short_polls(app).await - before, 1.0, "held the short way");
        }
        app.shut_down().await;
    });
    assert_eq!(page.status, 204);
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "answered at shutdown, before the 2 s hold"
    );
}

async fn a_private_conversation_and_the_feed_are_answered_alike_whichever_way(app: &mut TestApp) {
    app.restart_with(|s| s.metrics_token = Some(TOKEN.to_owned()))
        .await;
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    alice.post("/rooms", &[("name", "general")]).await;
    alice.say("/dm/bob", "just between us").await;
    alice.say("/rooms/general", "hello").await;
    assert_eq!(bob.get("/dm/alice").await.status, 200);
    let before = short_polls(app).await;
    let dm = "/dm/{username}/messages";
    let dms = requests(app, dm, 200).await;
    // Bob's private conversation: the chain reads `%61lice` as `alice`.
    let (short, chain) = tokio::join!(
        bob.get_htmx("/dm/alice/messages?after=0"),
        bob.get_htmx("/dm/%61lice/messages?after=0"),
    );
    assert_eq!(answer(&short), answer(&chain));
    assert_eq!(short.select(".message .body"), ["just between us"]);
    // His feed, with a sidebar as old as can be: answered at once with the whole sidebar. The
    // chain reads `t=%30` as `t=0`.
    let (short, chain) = tokio::join!(bob.get_htmx("/feed?t=0"), bob.get_htmx("/feed?t=%30"));
    // The sidebar says when it was made (`data-t`), to the millisecond.
    let made_at = |page: &Page| page.attr("#poller", "data-t").expect("the sidebar's time");
    let (mut short_answer, mut chain_answer) = (answer(&short), answer(&chain));
    short_answer.1 = short_answer.1.replace(&made_at(&short), "T");
    chain_answer.1 = chain_answer.1.replace(&made_at(&chain), "T");
    assert_eq!(short_answer, chain_answer);
    assert_eq!(short.status, 200, "{}", short.body);
    assert!(
        short.has("#people-list a[href='/dm/alice']"),
        "{}",
        short.body
    );
    if short_way_open() {
        assert_eq!(short_polls(app).await - before, 2.0, "one of each pair");
    }
    // Both ways are counted under the route's name, as the chain names it.
    assert_eq!(requests(app, dm, 200).await - dms, 2.0);
}

/// Staff renaming a room forgets every conversation the directory kept: a connection's memo of
/// its last poll must not go on answering for the room under its old name.
async fn a_room_renamed_by_staff_is_not_polled_under_its_old_name(app: &mut TestApp) {
    let alice = alice_in_general(app).await;
    alice.say("/rooms/general", "hello").await;
    let before = short_polls(app).await;
    for _ in 0..2 {
        let page = alice.get_htmx("/rooms/general/messages?after=0").await;
        assert_eq!(page.select(".message .body"), ["hello"]);
    }
    if short_way_open() {
        assert_eq!(short_polls(app).await - before, 2.0);
    }
    let boss = crate::admin::superuser(app).await;
    crate::admin::save_room(app, &boss, "general", "lobby", "").await;
    let old = alice.get_htmx("/rooms/general/messages?after=0").await;
    assert_eq!(old.status, 404, "{}", old.body);
    let new = alice.get_htmx("/rooms/lobby/messages?after=0").await;
    assert_eq!(new.select(".message .body"), ["hello"]);
}

/// A connection's memo is trusted no longer than the login cache entry it came from. An account
/// deactivated in the database with nobody told (as a script or a second process on SQLite
/// would) is read again once that entry expires, on the very connection that kept polling.
async fn an_account_deactivated_behind_the_servers_back_stops_polling_when_its_login_expires(
    app: &mut TestApp,
) {
    let alice = alice_in_general(app).await;
    alice.say("/rooms/general", "hello").await;
    let poll = "/rooms/general/messages?after=0";
    assert_eq!(alice.get_htmx(poll).await.status, 200);
    sqlx::query("UPDATE users SET is_active = 0 WHERE username = 'alice'")
        .execute(&app.pool().await)
        .await
        .unwrap();
    let started = Instant::now();
    let deadline = parley::web::session::AUTH_CACHE_TTL + Duration::from_secs(2);
    loop {
        let page = alice.get_htmx(poll).await;
        if page.status == 401 {
            break;
        }
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            started.elapsed() < deadline,
            "still answered after the login cache let it go"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A room's polls come back together, and a login or a room expiring under them would send
/// them all down the chain at once, each waiting for one read. Both are read again a little
/// before they expire (`cache::RELOAD_AHEAD`), in the background: polls that go on past the
/// lifetimes of both all keep the short way.
async fn a_login_and_a_room_in_use_are_read_again_before_they_expire_and_polls_keep_the_short_way(
    app: &mut TestApp,
) {
    let alice = alice_in_general(app).await;
    alice.say("/rooms/general", "hello").await;
    let poll = "/rooms/general/messages?after=0";
    let login_reads = || async { value(&scrape(app).await, "parley_login_reads_total") };
    let (before, reads) = (short_polls(app).await, login_reads().await);
    let started = Instant::now();
    let mut polls = 0.0;
    let lifetime =
        parley::web::session::AUTH_CACHE_TTL.max(parley::web::conversation::DIRECTORY_TTL);
    while started.elapsed() < lifetime + Duration::from_secs(2) {
        let page = alice.get_htmx(poll).await;
        assert_eq!(page.select(".message .body"), ["hello"]);
        polls += 1.0;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(login_reads().await > reads, "the login was read again");
    if short_way_open() {
        assert_eq!(
            short_polls(app).await - before,
            polls,
            "every poll took the short way"
        );
    }
}
