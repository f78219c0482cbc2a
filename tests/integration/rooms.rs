//! Rooms that stay tidy: a fresh installation has "general", which newcomers join; every public
//! room can be browsed and joined; and a room one is done with can be left.

use crate::on_both_engines;
use crate::support::{Client, TestApp};

on_both_engines!(
    a_fresh_installation_has_general_and_every_newcomer_joins_it,
    browsing_rooms_lists_each_public_room_with_its_topic_members_and_last_message,
    joining_from_the_browse_page_opens_the_room_and_lists_it_as_open,
    leaving_a_room_takes_it_out_of_the_sidebar_until_it_is_opened_again,
    leaving_asks_for_the_token_and_a_room_that_exists,
);

async fn is_member(app: &TestApp, who: &str, room: &str) -> bool {
    app.count(&format!(
        "SELECT COUNT(*) FROM memberships s JOIN users u ON u.id = s.user_id
         JOIN rooms r ON r.id = s.room_id WHERE u.username = '{who}' AND r.name = '{room}'"
    ))
    .await
        == 1
}

fn in_sidebar(page: &crate::support::Page, room: &str) -> bool {
    page.has(&format!("#sidebar-lists a[href='/rooms/{room}']"))
}

async fn a_fresh_installation_has_general_and_every_newcomer_joins_it(app: &TestApp) {
    assert_eq!(
        app.count("SELECT COUNT(*) FROM rooms WHERE kind = 'public' AND name = 'general'")
            .await,
        1,
        "the migration made it"
    );
    let alice = app.user("alice").await;
    assert!(is_member(app, "alice", "general").await);
    let home = alice.get("/").await;
    assert!(in_sidebar(&home, "general"), "{}", home.body);
    assert!(!home.has("#rooms .empty"), "no \"No rooms yet\"");
    let page = alice.get("/rooms/general").await;
    assert_eq!(page.select("#member-list .name"), vec!["alice"]);
    // Nobody made it: it counts against nobody's allowance of rooms.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM rooms WHERE created_by IS NOT NULL")
            .await,
        0
    );
}

async fn browsing_rooms_lists_each_public_room_with_its_topic_members_and_last_message(
    app: &TestApp,
) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    alice.post("/rooms", &[("name", "books")]).await;
    alice
        .post("/rooms/books/topic", &[("topic", "What we are reading")])
        .await;
    alice.say("/rooms/books", "Dune, again").await;
    // A private conversation is nobody else's business.
    alice.say("/dm/bob", "psst").await;
    let page = bob.get("/rooms").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.select("#browse-title"), vec!["Browse rooms"]);
    let names = page.select("#room-directory .room-name");
    assert_eq!(
        names,
        vec!["#books", "#general"],
        "every public room, by name"
    );
    assert_eq!(
        page.select("#room-books .topic"),
        vec!["What we are reading"]
    );
    assert_eq!(page.select("#room-books .member-count"), vec!["1 member"]);
    let meta = page.select("#room-books .meta").concat();
    assert!(meta.contains("last message Today "), "{meta}");
    assert!(page.has("#room-books .meta time[datetime]"));
    assert_eq!(
        page.select("#room-general .member-count"),
        vec!["0 members"]
    );
    assert!(
        page.select("#room-general .meta")
            .concat()
            .contains("no messages yet")
    );
    assert_eq!(
        page.attrs(
            "#room-books form[method=post][action='/rooms'] input[name=name]",
            "value"
        ),
        vec!["books"],
        "a Join button that posts"
    );
    assert_eq!(page.select("#room-books button"), vec!["Join"]);
    // Filtered by name.
    let filtered = bob.get("/rooms?q=boo").await;
    assert_eq!(
        filtered.select("#room-directory .room-name"),
        vec!["#books"]
    );
    // The sidebar links to it.
    assert!(bob.get("/").await.has("#rooms a[href='/rooms']"));
    // htmx still gets the sidebar's room list from the same address.
    let fragment = bob.get_htmx("/rooms?q=boo").await;
    assert!(
        fragment.has("#room-list a[href='/rooms/books']"),
        "{}",
        fragment.body
    );
    assert!(!fragment.has("#browse"));
}

async fn joining_from_the_browse_page_opens_the_room_and_lists_it_as_open(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    alice.post("/rooms", &[("name", "books")]).await;
    assert!(!is_member(app, "bob", "books").await);
    let joined = bob.post("/rooms", &[("name", "books")]).await;
    assert_eq!(joined.status, 303);
    assert_eq!(joined.location(), Some("/rooms/books"));
    assert!(is_member(app, "bob", "books").await);
    let page = bob.get("/rooms").await;
    assert_eq!(page.select("#room-books .member-count"), vec!["2 members"]);
    assert_eq!(
        page.attrs("#room-books a.button", "href"),
        vec!["/rooms/books"],
        "open, not join"
    );
    assert!(!page.has("#room-books form"));
}

async fn leave(c: &Client, room: &str) {
    let left = c.post(&format!("/rooms/{room}/leave"), &[]).await;
    assert_eq!(left.status, 303, "{}", left.body);
    assert_eq!(left.location(), Some("/"));
}

async fn leaving_a_room_takes_it_out_of_the_sidebar_until_it_is_opened_again(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    alice.post("/rooms", &[("name", "books")]).await;
    bob.post("/rooms", &[("name", "books")]).await;
    let said = bob.say("/rooms/books", "bye all").await;
    bob.post("/favourites", &[("conversation", "/rooms/books")])
        .await;
    let page = bob.get("/rooms/books").await;
    assert_eq!(
        page.attr(".members-panel .leave-form", "action").as_deref(),
        Some("/rooms/books/leave"),
        "Leave is in the room's header menu"
    );
    leave(&bob, "books").await;
    assert!(!is_member(app, "bob", "books").await);
    let home = bob.get("/").await;
    assert!(!in_sidebar(&home, "books"), "{}", home.body);
    assert!(!home.has("#favourite-list a[href='/rooms/books']"));
    assert!(in_sidebar(&home, "general"), "other rooms stay");
    // Others see one member fewer; what bob wrote stays.
    let theirs = alice.get("/rooms/books").await;
    assert_eq!(theirs.select("#member-list .name"), vec!["alice"]);
    assert_eq!(theirs.select(&format!("#m-{said} .body")), vec!["bye all"]);
    // A search still finds it, and the browse page offers to join it again.
    assert!(in_sidebar(&bob.get("/?q=book").await, "books"));
    assert_eq!(
        bob.get("/rooms").await.select("#room-books button"),
        vec!["Join"]
    );
    // Opening it again is joining it again.
    assert_eq!(bob.get("/rooms/books").await.status, 200);
    assert!(is_member(app, "bob", "books").await);
    assert!(in_sidebar(&bob.get("/").await, "books"));
    // And leaving twice, or again after that, is the same.
    leave(&bob, "books").await;
    leave(&bob, "books").await;
    assert!(!in_sidebar(&bob.get("/").await, "books"));
    assert_eq!(bob.post("/rooms", &[("name", "books")]).await.status, 303);
    assert!(in_sidebar(&bob.get("/").await, "books"));
    // Writing in it from a page still open is being in it again, sidebar and all.
    leave(&bob, "books").await;
    bob.say("/rooms/books", "one more thing").await;
    assert!(is_member(app, "bob", "books").await);
    assert!(in_sidebar(&bob.get("/").await, "books"));
}

async fn leaving_asks_for_the_token_and_a_room_that_exists(app: &TestApp) {
    let bob = app.member("bob").await;
    bob.post("/rooms", &[("name", "general")]).await;
    let forged = bob.post_raw("/rooms/general/leave", &[], false).await;
    assert_eq!(forged.status, 403);
    assert!(is_member(app, "bob", "general").await);
    assert_eq!(bob.post("/rooms/nowhere/leave", &[]).await.status, 404);
    let anonymous = app.client().await;
    let page = anonymous.post("/rooms/general/leave", &[]).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location().map(|l| l.starts_with("/login")), Some(true));
}
