//! Finding messages again: the message search, a conversation opened at a message
//! (`?around=`), and favourites.

use crate::on_both_engines;
use crate::support::{Client, Page, TestApp};

on_both_engines!(
    results_are_ranked_by_relevance_then_newest_first,
    every_word_must_match_and_the_last_may_be_unfinished,
    a_phrase_matches_only_those_words_together_in_order,
    from_in_before_and_after_narrow_a_search,
    edits_and_deletions_are_reflected_in_search_at_once,
    a_third_user_finds_nothing_of_a_private_conversation_by_any_query,
    snippets_are_escaped_like_messages_and_mark_the_matched_words,
    empty_odd_and_very_long_queries_are_never_an_error,
    results_come_twenty_to_a_page,
    the_search_migration_indexes_the_messages_that_exist_already,
    a_conversation_opened_around_a_message_pages_both_ways_and_polls_from_the_newest,
    around_a_message_the_conversation_does_not_have_shows_the_newest_with_a_note,
    favourites_come_first_in_the_order_starred_and_unstar_the_same_way,
    only_a_conversation_the_viewer_can_open_can_be_starred,
    messages_changed_before_they_are_indexed_are_found_as_they_are,
    favourites_and_your_own_rooms_are_never_crowded_out_of_the_sidebar,
);

async fn search(who: &Client, q: &str) -> Page {
    let query = serde_urlencoded::to_string([("q", q)]).unwrap();
    let page = who.get(&format!("/search?{query}")).await;
    assert_eq!(page.status, 200, "search {q:?}: {}", page.body);
    page
}

/// The snippets' text of the results, in order.
async fn found(who: &Client, q: &str) -> Vec<String> {
    search(who, q)
        .await
        .select("#search-results li.hit .snippet")
}

/// The links of the results, in order.
async fn links(who: &Client, q: &str) -> Vec<String> {
    search(who, q)
        .await
        .attrs("#search-results li.hit a", "href")
}

/// alice and bob, both in #general.
async fn alice_and_bob(app: &TestApp) -> (Client, Client) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    for c in [&alice, &bob] {
        assert_eq!(c.post("/rooms", &[("name", "general")]).await.status, 303);
    }
    (alice, bob)
}

async fn results_are_ranked_by_relevance_then_newest_first(app: &TestApp) {
    let (alice, _) = alice_and_bob(app).await;
    let g = "/rooms/general";
    let once_in_many = alice
        .say(
            g,
            "a long message about many other things that happens to mention kiwi once somewhere in the middle of it all",
        )
        .await;
    let thrice = alice.say(g, "kiwi kiwi kiwi and more").await;
    let older = alice.say(g, "banana split").await;
    let newer = alice.say(g, "banana split").await;
    let kiwi = links(&alice, "kiwi ").await;
    assert_eq!(
        kiwi,
        [
            format!("{g}?around={thrice}#m-{thrice}"),
            format!("{g}?around={once_in_many}#m-{once_in_many}")
        ]
    );
    let banana = links(&alice, "banana ").await;
    assert_eq!(
        banana,
        [
            format!("{g}?around={newer}#m-{newer}"),
            format!("{g}?around={older}#m-{older}")
        ],
        "as relevant: newest first"
    );
    let page = search(&alice, "banana").await;
    assert_eq!(page.select("li.hit .author"), ["alice", "alice"]);
    assert_eq!(page.select("li.hit .where"), ["#general", "#general"]);
    assert_eq!(page.count("li.hit time[datetime]"), 2);
}

async fn every_word_must_match_and_the_last_may_be_unfinished(app: &TestApp) {
    let (alice, bob) = alice_and_bob(app).await;
    alice.say("/rooms/general", "apple and pineapple").await;
    bob.say("/rooms/general", "apple crumble").await;
    assert_eq!(found(&bob, "apple crumble ").await.len(), 1);
    assert_eq!(found(&bob, "apple ").await.len(), 2);
    assert_eq!(found(&bob, "pinea").await, ["apple and pineapple"]);
    assert!(
        found(&bob, "pinea ").await.is_empty(),
        "a finished word is a whole word"
    );
    assert_eq!(found(&bob, "APPLE CRUMB").await, ["apple crumble"]);
    if app.database_url.starts_with("postgres") {
        bob.say("/rooms/general", "we were searching for it").await;
        assert_eq!(found(&bob, "searches ").await.len(), 1, "stemmed");
    }
}

async fn a_phrase_matches_only_those_words_together_in_order(app: &TestApp) {
    let (alice, _) = alice_and_bob(app).await;
    alice.say("/rooms/general", "the quick brown fox").await;
    alice.say("/rooms/general", "brown is quick").await;
    assert_eq!(found(&alice, "quick brown").await.len(), 2);
    assert_eq!(
        found(&alice, "\"quick brown\"").await,
        ["the quick brown fox"]
    );
    assert_eq!(found(&alice, "\"brown quick\"").await.len(), 0);
}

async fn from_in_before_and_after_narrow_a_search(app: &TestApp) {
    let (alice, bob) = alice_and_bob(app).await;
    alice.post("/rooms", &[("name", "random")]).await;
    alice.say("/rooms/general", "meeting notes one").await;
    bob.say("/rooms/general", "meeting notes two").await;
    alice.say("/rooms/random", "meeting notes three").await;
    alice.say("/dm/bob", "meeting notes four").await;
    let pool = app.pool().await;
    // 2026-01-15 12:00 UTC.
    sqlx::query("UPDATE messages SET created_ms = 1768478400000 WHERE body = 'meeting notes one'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(found(&alice, "meeting").await.len(), 4);
    assert_eq!(
        found(&alice, "meeting from:bob").await,
        ["meeting notes two"]
    );
    assert_eq!(
        found(&alice, "meeting in:random").await,
        ["meeting notes three"]
    );
    assert_eq!(
        found(&alice, "in:@bob meeting").await,
        ["meeting notes four"]
    );
    assert_eq!(found(&bob, "in:@alice").await, ["meeting notes four"]);
    assert_eq!(
        found(&alice, "meeting before:2026-02-01").await,
        ["meeting notes one"]
    );
    assert_eq!(found(&alice, "meeting after:2026-01-15").await.len(), 3);
    assert_eq!(found(&alice, "meeting after:2026-01-14").await.len(), 4);
    assert_eq!(found(&alice, "from:bob").await, ["meeting notes two"]);
    assert!(found(&alice, "meeting from:nobody").await.is_empty());
    assert!(found(&alice, "meeting in:nowhere").await.is_empty());
    assert!(
        found(&alice, "meeting before:someday").await.is_empty(),
        "a bad operator is words"
    );
}

async fn edits_and_deletions_are_reflected_in_search_at_once(app: &TestApp) {
    let (alice, bob) = alice_and_bob(app).await;
    let id = alice.say("/rooms/general", "lunch at noon").await;
    let other = alice.say("/rooms/general", "lunch tomorrow").await;
    assert_eq!(found(&bob, "noon").await, ["lunch at noon"]);
    let edited = alice
        .post_htmx(
            &format!("/rooms/general/messages/{id}/edit"),
            &[("body", "dinner at eight")],
        )
        .await;
    assert_eq!(edited.status, 200);
    assert!(found(&bob, "noon").await.is_empty());
    assert_eq!(found(&bob, "dinner").await, ["dinner at eight"]);
    // A reaction touches the row, not the text.
    bob.post_htmx(
        &format!("/rooms/general/messages/{id}/reactions"),
        &[("emoji", "👍")],
    )
    .await;
    assert_eq!(found(&bob, "dinner").await, ["dinner at eight"]);
    for seq in [id, other] {
        let deleted = alice
            .post_htmx(&format!("/rooms/general/messages/{seq}/delete"), &[])
            .await;
        assert_eq!(deleted.status, 200);
    }
    assert!(found(&bob, "dinner").await.is_empty());
    assert!(found(&bob, "lunch").await.is_empty());
    assert!(
        found(&bob, "from:alice").await.is_empty(),
        "tombstones never match"
    );
}

async fn a_third_user_finds_nothing_of_a_private_conversation_by_any_query(app: &TestApp) {
    let (alice, bob) = alice_and_bob(app).await;
    let carol = app.member("carol").await;
    let secret = alice
        .say("/dm/bob", "secret plans for the zebra party")
        .await;
    alice.say("/rooms/general", "public words").await;
    assert_eq!(
        links(&alice, "zebra").await,
        [format!("/dm/bob?around={secret}#m-{secret}")]
    );
    assert_eq!(
        links(&bob, "zebra").await,
        [format!("/dm/alice?around={secret}#m-{secret}")]
    );
    for q in [
        "zebra",
        "zeb",
        "secret plans",
        "\"secret plans\"",
        "plans party",
        "from:alice",
        "from:alice zebra",
        "in:@alice",
        "in:@bob",
        "in:@bob zebra",
        "after:2000-01-01",
        "before:2100-01-01 zebra",
    ] {
        let results = search(&carol, q)
            .await
            .inner_html("#search-results")
            .join("");
        assert!(!results.contains("zebra"), "{q}: {results}");
        assert!(!results.contains("secret"), "{q}: {results}");
        assert!(!results.contains("/dm/"), "{q}: {results}");
    }
    let page = search(&carol, "from:alice").await;
    assert_eq!(page.select("li.hit .snippet"), ["public words"]);
    let none = search(&carol, "zebra").await;
    let also_none = search(&carol, "nothingatall").await;
    assert_eq!(
        none.inner_html("#search-results"),
        also_none.inner_html("#search-results"),
        "nothing found looks the same whatever is hidden"
    );
    // Carol has no address for their conversation: `/dm/{name}` is always her own.
    for who in ["alice", "bob"] {
        let page = carol.get(&format!("/dm/{who}?around={secret}")).await;
        assert_eq!(page.status, 200);
        assert!(!page.body.contains("zebra"));
        assert!(page.has("#jump-note"));
        assert!(!page.has(".message.focused"));
    }
    let none = carol
        .get(&format!("/rooms/nosuchroom?around={secret}"))
        .await;
    assert_eq!(none.status, 404);
}

async fn snippets_are_escaped_like_messages_and_mark_the_matched_words(app: &TestApp) {
    let (alice, bob) = alice_and_bob(app).await;
    alice
        .say(
            "/rooms/general",
            "<script>alert(1)</script> <mark>fake</mark> kiwi & cream",
        )
        .await;
    let page = search(&bob, "kiwi").await;
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    assert_eq!(page.select("li.hit .snippet mark"), ["kiwi"]);
    let snippet = page.select("li.hit .snippet");
    assert!(snippet[0].contains("<mark>fake</mark>"), "{snippet:?}");
    let page = search(&bob, "script").await;
    assert!(!page.body.contains("<script>alert"));
    assert!(page.has("li.hit .snippet mark"), "{}", page.body);
    // Searched as typed, with its angle brackets, it is found on both engines.
    assert_eq!(found(&bob, "<script>").await.len(), 1);
    assert_eq!(found(&bob, "\"kiwi & cream\"").await.len(), 1);
}

async fn empty_odd_and_very_long_queries_are_never_an_error(app: &TestApp) {
    let (alice, _) = alice_and_bob(app).await;
    alice.say("/rooms/general", "kiwi").await;
    let page = alice.get("/search?q=").await;
    assert_eq!(page.status, 200);
    assert!(page.has("#search-results p.empty"));
    assert!(!page.has("li.hit"));
    for q in [
        "\"",
        "\"\"",
        "***",
        "kiwi\"",
        "OR",
        "NOT kiwi",
        "NEAR(kiwi",
        "kiwi*",
        "-kiwi",
        "in:",
        "from:",
        ":",
        "'",
        "\\",
        "$1",
        "%",
        "kiwi) OR (1=1",
        "🙂",
        "\u{E000}kiwi\u{E001}",
    ] {
        search(&alice, q).await;
    }
    assert_eq!(found(&alice, "kiwi*").await.len(), 1);
    assert_eq!(alice.get("/search?q=a%00b").await.status, 200);
    for p in ["abc", "-5", "0", "99999", ""] {
        let page = alice.get(&format!("/search?q=kiwi&p={p}")).await;
        assert_eq!(page.status, 200, "p={p}");
    }
    let long = format!("kiwi {}", "x".repeat(400));
    let page = search(&alice, &long).await;
    let shown = page.attr("#message-q", "value").unwrap();
    assert_eq!(shown.chars().count(), 256, "cut, not refused");
    let htmx = alice.get_htmx("/search?q=kiwi").await;
    assert_eq!(htmx.status, 200);
    assert!(!htmx.body.contains("<!DOCTYPE"));
    assert_eq!(htmx.count("#search-results li.hit"), 1);
}

async fn results_come_twenty_to_a_page(app: &TestApp) {
    let (alice, _) = alice_and_bob(app).await;
    for i in 0..45 {
        alice.say("/rooms/general", &format!("paging row{i}")).await;
    }
    let mut seen = Vec::new();
    for (p, n, next) in [(1, 20, true), (2, 20, true), (3, 5, false)] {
        let page = alice.get(&format!("/search?q=paging&p={p}")).await;
        assert_eq!(page.count("li.hit"), n, "page {p}");
        assert_eq!(page.has("a[rel=next]"), next, "page {p}");
        assert_eq!(page.has("a[rel=prev]"), p > 1, "page {p}");
        seen.extend(page.attrs("li.hit a", "href"));
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 45);
    assert_eq!(seen[0], "/rooms/general?around=45#m-45", "newest first");
    let next = alice.get("/search?q=paging&p=1").await;
    assert_eq!(
        next.attr("a[rel=next]", "href").as_deref(),
        Some("/search?q=paging&p=2")
    );
}

async fn the_search_migration_indexes_the_messages_that_exist_already(app: &mut TestApp) {
    let (alice, _) = alice_and_bob(app).await;
    alice
        .say("/rooms/general", "written before search existed")
        .await;
    let pool = app.pool().await;
    // Undo the migration, as if the message had been written by the version before it.
    let undo: &[&str] = if app.database_url.starts_with("postgres") {
        &[
            "DROP INDEX messages_search",
            "ALTER TABLE messages DROP COLUMN search",
        ]
    } else {
        &[
            "DROP TRIGGER messages_fts_delete",
            "DROP TRIGGER messages_fts_update",
            "DROP TABLE messages_fts",
            "DROP TABLE search_state",
        ]
    };
    for sql in undo {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    sqlx::query("DELETE FROM _sqlx_migrations WHERE description = 'message search'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    app.restart().await;
    let alice = crate::support::log_in(&app.base, "alice").await;
    assert_eq!(
        found(&alice, "existed").await,
        ["written before search existed"]
    );
}

async fn a_conversation_opened_around_a_message_pages_both_ways_and_polls_from_the_newest(
    app: &TestApp,
) {
    let (alice, bob) = alice_and_bob(app).await;
    for i in 1..=120 {
        alice.say("/rooms/general", &format!("line {i}")).await;
    }
    let page = bob.get("/rooms/general?around=60").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.message_ids(), (35..=85).collect::<Vec<_>>());
    assert_eq!(page.select(".message.focused .body"), ["line 60"]);
    assert_eq!(page.attr("#m-60", "aria-current").as_deref(), Some("true"));
    assert_eq!(page.attr("#messages", "data-focus").as_deref(), Some("60"));
    assert_eq!(
        page.attr("#poller", "data-after").as_deref(),
        Some("120"),
        "live delivery goes on from the newest"
    );
    assert_eq!(
        page.attr("#history a", "href").as_deref(),
        Some("/rooms/general?before=35")
    );
    assert_eq!(
        page.attr("#newer a", "href").as_deref(),
        Some("/rooms/general?since=85")
    );
    let newer = page.attr("#newer a", "hx-get").unwrap();
    assert_eq!(newer, "/rooms/general/messages?since=85&until=120");
    // Down: the messages up to where the poll begins, then no more loader.
    let down = bob.get_htmx(&newer).await;
    assert_eq!(down.message_ids(), (86..=120).collect::<Vec<_>>());
    assert!(!down.has("#newer"));
    // Up.
    let up = bob.get_htmx("/rooms/general/messages?before=35").await;
    assert_eq!(up.message_ids(), (1..=34).collect::<Vec<_>>());
    // Without JavaScript, the next page forward is a page.
    let forward = bob.get("/rooms/general?since=85").await;
    assert_eq!(forward.message_ids(), (86..=120).collect::<Vec<_>>());
    assert!(!forward.has("#newer"));
    let forward = bob.get("/rooms/general?since=10").await;
    assert_eq!(forward.message_ids(), (11..=60).collect::<Vec<_>>());
    assert_eq!(
        forward.attr("#newer a", "href").as_deref(),
        Some("/rooms/general?since=60")
    );
    // Live delivery after it.
    let sent = alice.say("/rooms/general", "fresh news").await;
    let poll = bob.poll("/rooms/general", 120).await;
    assert_eq!(poll.message_ids(), [sent]);
    // Around the first and the last messages.
    assert_eq!(
        bob.get("/rooms/general?around=1").await.message_ids(),
        (1..=26).collect::<Vec<_>>()
    );
    let last = bob.get(&format!("/rooms/general?around={sent}")).await;
    assert!(!last.has("#newer"));
    assert_eq!(last.message_ids().last(), Some(&sent));
    assert_eq!(
        bob.get("/rooms/general?around=3&before=2").await.status,
        400
    );
    assert_eq!(
        bob.get_htmx("/rooms/general/messages?since=3&after=2")
            .await
            .status,
        400
    );
}

async fn around_a_message_the_conversation_does_not_have_shows_the_newest_with_a_note(
    app: &TestApp,
) {
    let (alice, bob) = alice_and_bob(app).await;
    let first = alice.say("/rooms/general", "first").await;
    let gone = alice.say("/rooms/general", "to be deleted").await;
    alice
        .post_htmx(&format!("/rooms/general/messages/{gone}/delete"), &[])
        .await;
    for around in [gone, 999, -1] {
        let page = bob.get(&format!("/rooms/general?around={around}")).await;
        assert_eq!(page.status, 200);
        assert!(page.has("#jump-note"), "{}", page.body);
        assert_eq!(page.message_ids(), [first]);
        assert!(!page.has(".message.focused"));
    }
    assert_eq!(bob.get("/rooms/general?around=abc").await.status, 400);
}

async fn favourites_come_first_in_the_order_starred_and_unstar_the_same_way(app: &TestApp) {
    let (alice, _) = alice_and_bob(app).await;
    app.member("carol").await;
    alice.post("/rooms", &[("name", "random")]).await;
    let page = alice.get("/rooms/random").await;
    assert!(!page.has("#favourites"));
    assert_eq!(
        page.attr("#star-form", "action").as_deref(),
        Some("/favourites")
    );
    for conv in ["/rooms/random", "/dm/carol", "/rooms/general"] {
        let starred = alice.post("/favourites", &[("conversation", conv)]).await;
        assert_eq!(starred.status, 303, "{conv}: {}", starred.body);
        assert_eq!(starred.location(), Some(conv));
    }
    // Twice is once.
    alice
        .post("/favourites", &[("conversation", "/rooms/random")])
        .await;
    let page = alice.get("/").await;
    assert_eq!(
        page.select("#favourite-list .name"),
        ["random", "carol", "general"]
    );
    assert!(page.select("#room-list .name").is_empty());
    assert_eq!(page.select("#people-list .name"), ["alice", "bob"]);
    let room = alice.get("/rooms/general").await;
    assert_eq!(
        room.attr("#star-form", "action").as_deref(),
        Some("/favourites/remove")
    );
    // With htmx: the form in its new state and the sidebar with it.
    let unstarred = alice
        .post_htmx("/favourites/remove", &[("conversation", "/rooms/random")])
        .await;
    assert_eq!(unstarred.status, 200);
    assert_eq!(
        unstarred.attr("#star-form", "action").as_deref(),
        Some("/favourites")
    );
    assert_eq!(
        unstarred.select("#favourite-list .name"),
        ["carol", "general"]
    );
    assert_eq!(unstarred.select("#room-list .name"), ["random"]);
    let page = alice.get("/").await;
    assert_eq!(page.select("#favourite-list .name"), ["carol", "general"]);
    // Someone else's favourites are their own.
    let bob = crate::support::log_in(&app.base, "bob").await;
    assert!(!bob.get("/").await.has("#favourites"));
}

async fn only_a_conversation_the_viewer_can_open_can_be_starred(app: &TestApp) {
    let (alice, _) = alice_and_bob(app).await;
    for conv in [
        "/rooms/nosuch",
        "/dm/nobody",
        "/dm/alice",
        "/rooms/general/messages",
        "/rooms/",
        "/admin/",
        "general",
        "",
        "/rooms/gen eral",
        "/dm/bob/../carol",
    ] {
        for route in ["/favourites", "/favourites/remove"] {
            let page = alice.post(route, &[("conversation", conv)]).await;
            assert_eq!(page.status, 404, "{route} {conv:?}");
        }
    }
    let no_token = alice
        .post_raw("/favourites", &[("conversation", "/rooms/general")], false)
        .await;
    assert_eq!(no_token.status, 403);
    assert_eq!(app.count("SELECT COUNT(*) FROM favourites").await, 0);
}

/// SQLite indexes new messages a few times a second, off the send path; a search, an edit and a
/// deletion in between must still see each message as it is.
async fn messages_changed_before_they_are_indexed_are_found_as_they_are(app: &TestApp) {
    let (alice, bob) = alice_and_bob(app).await;
    for round in 0..5 {
        let edited = alice
            .say("/rooms/general", &format!("quokka{round} before"))
            .await;
        let gone = alice
            .say("/rooms/general", &format!("wombat{round} here"))
            .await;
        let kept = alice
            .say("/rooms/general", &format!("numbat{round} stays"))
            .await;
        let edit = alice
            .post(
                &format!("/rooms/general/messages/{edited}/edit"),
                &[("body", &format!("platypus{round} after"))],
            )
            .await;
        assert_eq!(edit.status, 303);
        let delete = alice
            .post(&format!("/rooms/general/messages/{gone}/delete"), &[])
            .await;
        assert_eq!(delete.status, 303);
        assert!(found(&bob, &format!("quokka{round}")).await.is_empty());
        assert_eq!(
            found(&bob, &format!("platypus{round}")).await,
            [format!("platypus{round} after")]
        );
        assert!(found(&bob, &format!("wombat{round}")).await.is_empty());
        assert_eq!(
            found(&bob, &format!("numbat{round}")).await.len(),
            1,
            "{kept}"
        );
        // Once indexed, the same again changes the index in place.
        let edit = alice
            .post(
                &format!("/rooms/general/messages/{kept}/edit"),
                &[("body", &format!("echidna{round} now"))],
            )
            .await;
        assert_eq!(edit.status, 303);
        assert!(found(&bob, &format!("numbat{round}")).await.is_empty());
        assert_eq!(found(&bob, &format!("echidna{round}")).await.len(), 1);
    }
    // The index is whole: FTS5 checks it against the messages.
    if app.database_url.starts_with("sqlite") {
        let pool = app.pool().await;
        sqlx::query("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)")
            .execute(&pool)
            .await
            .expect("the search index matches the messages");
    }
}

/// The sidebar lists at most 500 rooms and 500 people: those you starred or belong to are
/// always among them, however many others open before them in the alphabet.
async fn favourites_and_your_own_rooms_are_never_crowded_out_of_the_sidebar(app: &TestApp) {
    let alice = app.member("alice").await;
    app.member("zed").await;
    for name in ["zeta", "zoo"] {
        alice.post("/rooms", &[("name", name)]).await;
    }
    alice
        .post("/favourites", &[("conversation", "/rooms/zeta")])
        .await;
    alice.get("/dm/zed").await;
    alice
        .post("/favourites", &[("conversation", "/dm/zed")])
        .await;
    let pool = app.pool().await;
    for i in 0..510 {
        let name = format!("aaa{i:03}");
        sqlx::query(
            "INSERT INTO rooms (kind, name, name_key, created_ms) VALUES ('public', $1, $1, 0)",
        )
        .bind(&name)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO users (username, username_key, password_hash, created_ms)
             VALUES ($1, $1, 'x', 0)",
        )
        .bind(format!("bbb{i:03}"))
        .execute(&pool)
        .await
        .unwrap();
    }
    let page = alice.get("/").await;
    assert_eq!(page.select("#favourite-list .name"), ["zeta", "zed"]);
    let rooms = page.select("#room-list .name");
    assert_eq!(rooms.len(), 499);
    assert!(
        rooms.contains(&"zoo".to_owned()),
        "a room alice belongs to is listed"
    );
}
