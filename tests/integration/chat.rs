//! Rooms, private conversations, the people list, unread counts, search, and the no-JS flows.

use crate::on_both_engines;
use crate::support::{PASSWORD, Page, TestApp};

on_both_engines!(
    light_formatting_is_shown_and_code_stays_text,
    two_people_chat_in_a_room,
    opening_a_room_ignores_case_and_bad_names_are_refused,
    empty_and_oversized_messages_are_refused_and_not_stored,
    user_text_is_shown_as_text_everywhere,
    a_message_keeps_its_line_breaks,
    a_private_conversation_is_only_for_its_two_people,
    unread_counts_move_as_people_write_and_read,
    people_appear_online_while_they_poll_and_go_offline_after,
    the_sidebar_refresh_brings_the_conversation_header_up_to_date,
    a_nul_byte_anywhere_is_a_clear_refusal_not_a_server_error,
    you_are_always_online_in_your_own_list,
    search_filters_people_and_rooms,
    everything_works_without_javascript,
    a_retried_send_with_the_same_client_key_stores_one_message,
    setting_a_topic_shows_it_in_the_room,
    an_address_with_an_unreadable_query_is_the_apps_error_page,
    older_messages_are_loaded_outside_the_live_region,
    a_room_that_does_not_exist_is_offered_not_created,
    the_sidebar_form_asks_before_creating_a_room,
);

async fn two_people_chat_in_a_room(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let page = alice.post("/rooms", &[("name", "general")]).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), Some("/rooms/general"));
    assert_eq!(
        bob.post("/rooms", &[("name", "general")]).await.location(),
        Some("/rooms/general")
    );
    alice.say("/rooms/general", "Hi Bob!").await;
    bob.say("/rooms/general", "Hi Alice, how are you?").await;
    for c in [&alice, &bob] {
        let page = c.get("/rooms/general").await;
        assert_eq!(page.status, 200);
        assert_eq!(
            page.select(".message .body"),
            ["Hi Bob!", "Hi Alice, how are you?"],
            "newest at the bottom"
        );
        assert_eq!(page.message_ids(), vec![1, 2]);
        assert_eq!(page.select("#member-count"), ["2 members"]);
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM rooms").await,
        1,
        "joining does not create a second room"
    );
}

async fn opening_a_room_ignores_case_and_bad_names_are_refused(app: &TestApp) {
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "Rust-Lovers")]).await;
    let page = alice.post("/rooms", &[("name", "rust-lovers")]).await;
    assert_eq!(page.location(), Some("/rooms/Rust-Lovers"));
    for bad in [
        "",
        "two words",
        "<script>alert(1)</script>",
        &"r".repeat(65),
    ] {
        let page = alice.post("/rooms", &[("name", bad)]).await;
        assert_eq!(page.status, 422, "{bad:?}");
        assert!(page.body.contains("A room name"), "{bad:?}");
        assert!(!page.body.contains("<script>alert"), "escaped");
    }
    // Rust-Lovers once, beside the #general every installation starts with.
    assert_eq!(app.count("SELECT COUNT(*) FROM rooms").await, 2);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM rooms WHERE name_key = 'rust-lovers'")
            .await,
        1
    );
    assert_eq!(alice.get("/rooms/nowhere").await.status, 404);
    let send = alice
        .post_htmx("/rooms/nowhere/messages", &[("body", "hello?")])
        .await;
    assert_eq!(send.status, 404);
}

async fn empty_and_oversized_messages_are_refused_and_not_stored(app: &TestApp) {
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    for body in ["", "   \n\t  ", &"x".repeat(4001)] {
        let page = alice
            .post_htmx("/rooms/general/messages", &[("body", body)])
            .await;
        assert_eq!(page.status, 422);
        let page = alice
            .post("/rooms/general/messages", &[("body", body)])
            .await;
        assert_eq!(
            page.status, 422,
            "without JS the room page comes back with the error"
        );
        assert!(page.body.contains("A message"));
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 0);
    alice.say("/rooms/general", &"x".repeat(4000)).await;
}

async fn user_text_is_shown_as_text_everywhere(app: &TestApp) {
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    alice
        .post(
            "/rooms/general/topic",
            &[("topic", "<img src=x onerror=alert(1)>")],
        )
        .await;
    alice
        .say(
            "/rooms/general",
            "<script>alert('x')</script> see https://example.com/a?b=<c>",
        )
        .await;
    let page = alice.get("/rooms/general").await;
    assert!(!page.body.contains("<script>alert"));
    assert!(!page.body.contains("<img src=x"));
    // The topic's change is said in the room (message 1), as text too.
    assert_eq!(
        page.select("#m-1 .body"),
        ["set the topic to “<img src=x onerror=alert(1)>”"]
    );
    assert_eq!(
        page.select("#m-2 .body"),
        ["<script>alert('x')</script> see https://example.com/a?b=<c>"]
    );
    assert_eq!(
        page.select("#conversation-topic"),
        ["<img src=x onerror=alert(1)>"]
    );
    assert_eq!(
        page.attrs("#m-2 .body a", "href"),
        ["https://example.com/a?b="],
        "links are made, and stop at <"
    );
    let poll = alice.poll("/rooms/general", 0).await;
    assert!(!poll.body.contains("<script>alert"));
}

async fn a_message_keeps_its_line_breaks(app: &TestApp) {
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    alice.say("/rooms/general", "line one\r\nline two").await;
    let page = alice.poll("/rooms/general", 0).await;
    assert_eq!(
        page.inner_html("#m-1 .body"),
        ["<p>line one<br>line two</p>"],
        "{}",
        page.body
    );
    assert!(page.has("#m-1 time[datetime]"));
}

async fn a_private_conversation_is_only_for_its_two_people(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let carol = app.member("carol").await;
    let page = alice.get("/dm/bob").await;
    assert_eq!(page.status, 200);
    alice.say("/dm/bob", "a secret for bob").await;
    bob.say("/dm/alice", "a secret for alice").await;
    let bobs = bob.get("/dm/alice").await;
    assert_eq!(
        bobs.select(".message .body"),
        ["a secret for bob", "a secret for alice"]
    );
    // Carol's /dm/alice and /dm/bob are her own conversations: every route shows none of theirs.
    for other in ["/dm/alice", "/dm/bob"] {
        let page = carol.get(other).await;
        assert!(!page.body.contains("secret"), "{other}");
        let poll = carol.poll(other, 0).await;
        assert_eq!(poll.status, 204, "{other}: nothing to deliver to carol");
        let older = carol.get(&format!("{other}/messages?before=100")).await;
        assert_eq!(older.status, 204);
        let latest = carol.get(&format!("{other}/messages")).await;
        assert!(!latest.body.contains("secret"));
    }
    // Her sends land in her own conversation, not theirs.
    carol.say("/dm/bob", "hello bob, carol here").await;
    assert!(!alice.get("/dm/bob").await.body.contains("carol here"));
    assert_eq!(
        bob.get("/dm/carol").await.select(".message .body"),
        ["hello bob, carol here"]
    );
    // Nobody, and not yourself.
    assert_eq!(alice.get("/dm/nobody").await.status, 404);
    assert_eq!(alice.get("/dm/alice").await.status, 404);
    assert_eq!(
        alice
            .post_htmx("/dm/nobody/messages", &[("body", "hi")])
            .await
            .status,
        404
    );
    assert_eq!(alice.poll("/dm/nobody", 0).await.status, 404);
    // Strangers get the login page, never content.
    let anon = app.client().await;
    assert_eq!(anon.get("/dm/bob").await.status, 303);
    assert_eq!(anon.poll("/dm/bob", 0).await.status, 303);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM rooms WHERE kind = 'direct'")
            .await,
        3
    );
}

async fn unread_counts_move_as_people_write_and_read(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    alice.post("/rooms", &[("name", "general")]).await;
    bob.post("/rooms", &[("name", "general")]).await;
    for i in 0..3 {
        alice.say("/rooms/general", &format!("news {i}")).await;
    }
    alice.say("/dm/bob", "psst").await;
    let home = bob.get("/").await;
    assert_eq!(
        home.select("#room-list a[href='/rooms/general'] .badge"),
        ["3 unread"],
        "{}",
        home.body
    );
    assert_eq!(
        home.select("#people-list a[href='/dm/alice'] .badge"),
        ["1 unread"],
        "the DM's unread count"
    );
    bob.get("/rooms/general").await;
    let home = bob.get("/").await;
    assert!(
        !home.has("#room-list a[href='/rooms/general'] .badge"),
        "read after viewing"
    );
    // Reading as app.js does, by position.
    alice.say("/rooms/general", "more").await;
    alice.say("/rooms/general", "and more").await;
    let read = bob.post_htmx("/rooms/general/read", &[("seq", "4")]).await;
    assert_eq!(read.status, 204);
    let home = bob.get("/").await;
    assert_eq!(
        home.select("#room-list a[href='/rooms/general'] .badge"),
        ["1 unread"]
    );
    // Your own sends are not unread to you.
    assert!(!alice.get("/").await.has(".badge"));
}

async fn people_appear_online_while_they_poll_and_go_offline_after(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    alice.post("/rooms", &[("name", "general")]).await;
    let page = bob.get_htmx("/people").await;
    assert_eq!(
        page.online("alice"),
        Some(true),
        "bob sees alice, who just acted"
    );
    // A minute without any request: offline.
    let pool = app.pool().await;
    sqlx::query("UPDATE users SET last_seen_ms = $1 WHERE username = 'alice'")
        .bind(parley::now_ms() - 61_000)
        .execute(&pool)
        .await
        .unwrap();
    let page = bob.get_htmx("/people").await;
    assert_eq!(page.online("alice"), Some(false), "{}", page.body);
    // Logging out takes you offline at once.
    let carol = app.member("carol").await;
    carol.post("/logout", &[]).await;
    let page = bob.get_htmx("/people").await;
    assert_eq!(page.online("carol"), Some(false));
}

async fn the_sidebar_refresh_brings_the_conversation_header_up_to_date(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let carol = app.member("carol").await;
    alice.post("/rooms", &[("name", "general")]).await;
    // Alice's page was rendered with herself alone; then Bob comes in.
    bob.get("/rooms/general").await;
    let refresh = alice.get_htmx("/sidebar?current=/rooms/general").await;
    assert_eq!(refresh.status, 200);
    assert_eq!(
        refresh.attr("#member-count", "hx-swap-oob").as_deref(),
        Some("true"),
        "the member count, out of band"
    );
    assert_eq!(refresh.select("#member-count"), ["2 members"]);
    assert_eq!(
        refresh.attr("#member-list", "hx-swap-oob").as_deref(),
        Some("true"),
        "the member list, out of band"
    );
    assert_eq!(members(&refresh), ["alice", "bob"]);
    // Bob sets a topic; Alice's header learns it at the same refresh.
    assert_eq!(
        refresh
            .attr("p#conversation-topic", "hx-swap-oob")
            .as_deref(),
        Some("true"),
        "{}",
        refresh.body
    );
    assert_eq!(refresh.select("#conversation-topic"), [""]);
    bob.post("/rooms/general/topic", &[("topic", "Plans for Friday")])
        .await;
    let refresh = alice.get_htmx("/sidebar?current=/rooms/general").await;
    assert_eq!(
        refresh
            .attr("p#conversation-topic", "hx-swap-oob")
            .as_deref(),
        Some("true"),
        "{}",
        refresh.body
    );
    assert_eq!(refresh.select("#conversation-topic"), ["Plans for Friday"]);
    // A private conversation's members are checked as opening it is: Carol's /dm/bob is hers.
    alice.say("/dm/bob", "just us").await;
    // Naming a private conversation nobody opened creates nothing.
    let directs = "SELECT COUNT(*) FROM rooms WHERE kind = 'direct'";
    let before = app.count(directs).await;
    let refresh = carol.get_htmx("/sidebar?current=/dm/bob").await;
    assert!(!refresh.body.contains("member-list"));
    assert_eq!(
        app.count(directs).await,
        before,
        "a refresh opened a conversation"
    );
    carol.get("/dm/bob").await;
    let refresh = carol.get_htmx("/sidebar?current=/dm/bob").await;
    assert_eq!(members(&refresh), ["bob", "carol"]);
    assert!(
        !refresh.body.contains("conversation-topic"),
        "a private conversation has no topic"
    );
    // Any other page, or one that does not exist: the lists alone.
    for current in ["/", "/rooms/nowhere", "/dm/nobody", "/admin/"] {
        let refresh = alice.get_htmx(&format!("/sidebar?current={current}")).await;
        assert_eq!(refresh.status, 200, "{current}");
        assert!(!refresh.body.contains("member-list"), "{current}");
    }
}

async fn a_nul_byte_anywhere_is_a_clear_refusal_not_a_server_error(app: &TestApp) {
    // PostgreSQL cannot store U+0000 in text: it must be refused before it gets there.
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    let send = alice
        .post_htmx("/rooms/general/messages", &[("body", "hi\0there")])
        .await;
    assert_eq!(send.status, 422, "{}", send.body);
    assert!(send.body.contains("control characters"), "{}", send.body);
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 0);
    let topic = alice
        .post("/rooms/general/topic", &[("topic", "a\0b")])
        .await;
    assert_eq!(topic.status, 422, "{}", topic.body);
    let search = alice.get_htmx("/sidebar?q=%00").await;
    assert_eq!(search.status, 200);
    assert!(search.body.contains("Nobody matches."), "{}", search.body);
    assert_eq!(alice.get("/?q=al%00").await.status, 200);
    let mut stranger = app.client().await;
    assert_eq!(stranger.login("al\0ice", PASSWORD).await.status, 401);
    assert_eq!(stranger.register("al\0ice", PASSWORD).await.status, 422);
}

async fn you_are_always_online_in_your_own_list(app: &TestApp) {
    let alice = app.member("alice").await;
    // Her last recorded presence is old, and the next write is not due yet (presence is
    // written at most every few seconds): the page she is looking at still shows her online.
    // (First let the write her registration started land, so that it cannot undo ours.)
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let pool = app.pool().await;
    sqlx::query("UPDATE users SET last_seen_ms = $1 WHERE username = 'alice'")
        .bind(parley::now_ms() - 61_000)
        .execute(&pool)
        .await
        .unwrap();
    let page = alice.get("/").await;
    assert_eq!(page.online("alice"), Some(true), "{}", page.body);
}

async fn search_filters_people_and_rooms(app: &TestApp) {
    let alice = app.member("alice").await;
    app.member("bob").await;
    app.member("bobby").await;
    alice.post("/rooms", &[("name", "books")]).await;
    alice.post("/rooms", &[("name", "general")]).await;
    let page = alice.get_htmx("/sidebar?q=bo").await;
    assert_eq!(names(&page, "#people-list"), ["bob", "bobby"]);
    assert_eq!(names(&page, "#room-list"), ["books"]);
    let page = alice.get("/?q=gen").await;
    assert_eq!(
        page.status, 200,
        "works as a plain GET form without JavaScript"
    );
    assert_eq!(names(&page, "#room-list"), ["general"]);
    let page = alice.get_htmx("/sidebar?q=%25").await;
    assert!(
        names(&page, "#room-list").is_empty(),
        "LIKE wildcards are literal"
    );
    let page = alice.get_htmx("/sidebar?q=%3Cscript%3E").await;
    assert!(!page.body.contains("<script>"));
    let rooms = alice.get_htmx("/rooms?q=gen").await;
    assert_eq!(names(&rooms, "#room-list"), ["general"]);
}

/// The names a sidebar list shows, in alphabetical order.
fn names(page: &Page, list: &str) -> Vec<String> {
    let mut names = page.select(&format!("{list} .name"));
    names.sort();
    names
}

/// The names in the conversation header's member list, in alphabetical order.
fn members(page: &Page) -> Vec<String> {
    let mut names = page.select("#member-list li .name");
    names.sort();
    names
}

async fn everything_works_without_javascript(app: &TestApp) {
    let alice = app.member("alice").await;
    let page = alice.post("/rooms", &[("name", "plain")]).await;
    assert_eq!(page.location(), Some("/rooms/plain"));
    let page = alice
        .post(
            "/rooms/plain/messages",
            &[("body", "no script here"), ("client_key", "form-1")],
        )
        .await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), Some("/rooms/plain"));
    let page = alice.get("/rooms/plain").await;
    assert_eq!(page.select(".message .body"), ["no script here"]);
    // A double-submitted form (same client_key) stores one message.
    alice
        .post(
            "/rooms/plain/messages",
            &[("body", "no script here"), ("client_key", "form-1")],
        )
        .await;
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 1);
    // Older history through a plain link.
    for i in 0..60 {
        alice.say("/rooms/plain", &format!("m{i}")).await;
    }
    let page = alice.get("/rooms/plain").await;
    assert_eq!(
        page.attr("#history a", "href").as_deref(),
        Some("/rooms/plain?before=12"),
        "a link to older messages"
    );
    let older = alice.get("/rooms/plain?before=12").await;
    assert_eq!(older.message_ids(), (1..12).collect::<Vec<_>>());
}

async fn a_retried_send_with_the_same_client_key_stores_one_message(app: &TestApp) {
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    let first = alice
        .post_htmx(
            "/rooms/general/messages",
            &[("body", "once"), ("client_key", "abc-1")],
        )
        .await;
    let retry = alice
        .post_htmx(
            "/rooms/general/messages",
            &[("body", "once"), ("client_key", "abc-1")],
        )
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(retry.status, 200);
    assert_eq!(first.message_ids(), retry.message_ids());
    // Concurrent retries too.
    let sends = (0..8).map(|_| {
        alice.post_htmx(
            "/rooms/general/messages",
            &[("body", "burst"), ("client_key", "abc-2")],
        )
    });
    let pages = futures_util::future::join_all(sends).await;
    assert!(pages.iter().all(|p| p.status == 200));
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 2);
    assert_eq!(
        app.count("SELECT last_seq FROM rooms").await,
        2,
        "no sequence numbers are burnt"
    );
}

async fn setting_a_topic_shows_it_in_the_room(app: &TestApp) {
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    let page = alice
        .post("/rooms/general/topic", &[("topic", "All things Parley")])
        .await;
    assert_eq!(page.status, 303);
    let page = alice.get("/rooms/general").await;
    assert_eq!(
        page.select("p.topic#conversation-topic"),
        ["All things Parley"]
    );
    let page = alice
        .post("/rooms/general/topic", &[("topic", &"t".repeat(201))])
        .await;
    assert_eq!(page.status, 422);
}

async fn an_address_with_an_unreadable_query_is_the_apps_error_page(app: &TestApp) {
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    for path in [
        "/rooms/general?before=abc",
        "/rooms/general/messages?after=x",
        "/rooms/general?around=%FF",
    ] {
        let page = alice.get(path).await;
        assert_eq!(page.status, 400, "{path}");
        assert!(page.has("main h1"), "{path}: the app's page: {}", page.body);
        assert!(
            !page.body.contains("invalid digit"),
            "{path}: {}",
            page.body
        );
    }
    // A post that is not a form.
    let resp = alice
        .http
        .post(format!("{}/rooms/general/messages", alice.base))
        .header("X-CSRF-Token", &alice.csrf)
        .header("Content-Type", "text/plain")
        .body("body=hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    assert!(resp.text().await.unwrap().contains("<h1>"));
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 0);
}

async fn older_messages_are_loaded_outside_the_live_region(app: &TestApp) {
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "long")]).await;
    for i in 1..=60 {
        alice.say("/rooms/long", &format!("message {i}")).await;
    }
    let page = alice.get("/rooms/long").await;
    assert!(page.has("#history"), "a room of 60 has older messages");
    // A screen reader announces what is added to the live region: older pages are not news.
    assert!(!page.has("[aria-live] #history"), "{}", page.body);
    assert!(!page.has("[aria-live] .history"));
    assert!(page.has("#scroller #history + #messages[aria-live]"));
}

async fn a_room_that_does_not_exist_is_offered_not_created(app: &TestApp) {
    let alice = app.member("alice").await;
    let page = alice.get("/rooms/genral").await;
    assert_eq!(page.status, 404);
    // The person's own page (their header), and a way to create it; nothing created yet.
    assert_eq!(page.select(".topbar .me"), ["alice"]);
    assert_eq!(
        page.attr("main form[action='/rooms'] input[name=name]", "value")
            .as_deref(),
        Some("genral")
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM rooms WHERE name = 'genral'")
            .await,
        0
    );
    let csrf = page
        .attr("main form input[name=csrf_token]", "value")
        .unwrap();
    let created = alice
        .post_raw(
            "/rooms",
            &[("name", "genral"), ("csrf_token", &csrf)],
            false,
        )
        .await;
    assert_eq!(created.location(), Some("/rooms/genral"));
    assert_eq!(alice.get("/rooms/genral").await.status, 200);
}

async fn the_sidebar_form_asks_before_creating_a_room(app: &TestApp) {
    let alice = app.member("alice").await;
    // A typo in the sidebar's form creates nothing; it asks.
    let asked = alice
        .post("/rooms", &[("name", "genral"), ("open", "1")])
        .await;
    assert_eq!(asked.status, 200);
    assert_eq!(
        asked
            .attr("main form[action='/rooms'] input[name=name]", "value")
            .as_deref(),
        Some("genral")
    );
    assert!(!asked.has("main form[action='/rooms'] input[name=open]"));
    let genral = "SELECT COUNT(*) FROM rooms WHERE name_key = 'genral'";
    assert_eq!(app.count(genral).await, 0);
    // The deliberate second click (the name alone, as the contract's plain POST) creates it.
    let created = alice.post("/rooms", &[("name", "genral")]).await;
    assert_eq!(created.location(), Some("/rooms/genral"));
    // A room that exists opens straight away, whatever the case typed.
    let opened = alice
        .post("/rooms", &[("name", "GENRAL"), ("open", "1")])
        .await;
    assert_eq!(opened.location(), Some("/rooms/genral"));
    assert_eq!(app.count(genral).await, 1);
}

async fn light_formatting_is_shown_and_code_stays_text(app: &TestApp) {
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    let text = "**bold** *it* `a<b`\n> quoted\n\n- one\n- two\n\n```\n<script>alert(1)</script>\n```\nsee www.example.org";
    let id = alice.say("/rooms/general", text).await;
    for page in [
        alice.get("/rooms/general").await,
        alice.poll("/rooms/general", id - 1).await,
    ] {
        let m = format!("#m-{id} .body");
        assert_eq!(page.select(&format!("{m} strong")), ["bold"]);
        assert_eq!(page.select(&format!("{m} em")), ["it"]);
        assert_eq!(
            page.select(&format!("{m} code"))
                .first()
                .map(String::as_str),
            Some("a<b")
        );
        assert_eq!(page.select(&format!("{m} blockquote")), ["quoted"]);
        assert_eq!(page.select(&format!("{m} li")), ["one", "two"]);
        assert_eq!(
            page.select(&format!("{m} pre code")),
            ["<script>alert(1)</script>\n"]
        );
        assert_eq!(
            page.attrs(&format!("{m} a"), "href"),
            ["https://www.example.org"]
        );
        assert!(!page.body.contains("<script>alert"), "code is text");
    }
    // The text is kept as written: an edit starts from it.
    let form = alice
        .get(&format!("/rooms/general/messages/{id}/edit"))
        .await;
    assert!(form.select("textarea").concat().contains("**bold**"));
}
