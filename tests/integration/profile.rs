//! The person menu's pages: a display name and a bio people see beside the username, and a
//! theme each person keeps for themselves.

use crate::admin::superuser;
use crate::on_both_engines;
use crate::support::{Client, Page, TestApp};

on_both_engines!(
    a_display_name_and_bio_show_beside_the_username_wherever_people_see_them,
    a_refused_profile_comes_back_with_what_was_typed_and_changes_nothing,
    a_display_name_is_shown_as_text_never_as_markup,
    a_new_display_name_reaches_messages_a_room_already_rendered,
    the_theme_is_each_persons_own_and_drawn_on_every_page,
    profile_and_theme_changes_need_the_token_and_a_login,
    staff_edit_a_display_name_in_the_admin,
);

async fn profile_of(app: &TestApp, name: &str) -> (String, String, String) {
    sqlx::query_as("SELECT display_name, bio, theme FROM users WHERE username = $1")
        .bind(name)
        .fetch_one(&app.pool().await)
        .await
        .unwrap()
}

/// The person menu's theme form, posted from the page at `referer`.
async fn choose_theme(c: &Client, theme: &str, referer: &str) -> Page {
    let req = c
        .http
        .post(format!("{}/account/theme", c.base))
        .header("Referer", referer)
        .form(&[("theme", theme), ("csrf_token", &c.token())]);
    Client::page(req.send().await.expect("POST")).await
}

async fn a_display_name_and_bio_show_beside_the_username_wherever_people_see_them(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    bob.post("/rooms", &[("name", "general")]).await;
    // Someone without a display name: their message is not a byte longer for it.
    let plain = bob
        .post_htmx("/rooms/general/messages", &[("body", "no name yet")])
        .await;
    assert!(!plain.body.contains("display-name"), "{}", plain.body);

    let saved = alice
        .post(
            "/profile",
            &[
                ("display_name", "  Alice Smith "),
                ("bio", "Reads.\r\nWrites."),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(saved.location(), Some("/profile?saved=1"));
    let form = alice.get("/profile?saved=1").await;
    assert_eq!(form.select("p.notice"), ["Your profile was saved."]);
    assert_eq!(
        form.attr("#display-name", "value").as_deref(),
        Some("Alice Smith")
    );
    assert_eq!(form.select("#bio"), ["Reads.\nWrites."]);
    // The header's menu: the name, then the username (which app.js reads alone).
    assert_eq!(form.select(".topbar .me-display"), ["Alice Smith"]);
    assert_eq!(form.select(".topbar .me"), ["alice"]);

    alice.say("/rooms/general", "hello from alice").await;
    alice.say("/dm/bob", "psst").await;
    let room = bob.get("/rooms/general").await;
    assert_eq!(
        room.select(".message header .display-name"),
        ["Alice Smith"],
        "bob's own message has none: {}",
        room.body
    );
    assert_eq!(room.select(".message .author"), ["bob", "alice"]);
    assert_eq!(room.select("#member-list .display-name"), ["Alice Smith"]);
    assert_eq!(room.select("#people-list .display-name"), ["Alice Smith"]);
    // Her bio is not in the sidebar every page and feed answer carries (up to 500 people).
    assert_eq!(room.attr("#people-list a[href='/dm/alice']", "title"), None);
    // A live message carries the name as it was sent.
    let poll = bob.poll("/rooms/general", 1).await;
    assert_eq!(poll.select(".display-name"), ["Alice Smith"]);
    // Her private conversation's header says who she is.
    let dm = bob.get("/dm/alice").await;
    assert_eq!(
        dm.select("#conversation-title .display-name"),
        ["Alice Smith"]
    );
    assert_eq!(dm.select("#conversation-bio"), ["Reads.\nWrites."]);
    // The sidebar's search finds her by either name.
    let found = bob.get_htmx("/sidebar?q=smith").await;
    assert_eq!(found.select("#people-list .handle"), ["alice"]);
    // Message search and mentions list authors the same way.
    let hits = bob.get("/search?q=hello").await;
    assert_eq!(
        hits.select("#search-results .display-name"),
        ["Alice Smith"]
    );
    alice.say("/rooms/general", "hi @bob").await;
    let mentions = bob.get("/mentions").await;
    assert_eq!(
        mentions.select(".mention-list .display-name"),
        ["Alice Smith"]
    );

    // Emptied, the name is gone again.
    alice
        .post("/profile", &[("display_name", ""), ("bio", "")])
        .await;
    let room = bob.get("/rooms/general").await;
    assert!(!room.has(".display-name"), "{}", room.body);
    assert_eq!(profile_of(app, "alice").await.0, "");
}

async fn a_refused_profile_comes_back_with_what_was_typed_and_changes_nothing(app: &TestApp) {
    let alice = app.member("alice").await;
    alice
        .post("/profile", &[("display_name", "Alice"), ("bio", "Hi")])
        .await;
    let long = "n".repeat(41);
    let page = alice
        .post("/profile", &[("display_name", &long), ("bio", "Changed")])
        .await;
    assert_eq!(page.status, 422);
    assert_eq!(
        page.select("#display-name-error"),
        ["A display name has at most 40 characters."]
    );
    assert_eq!(page.attr("#display-name", "value"), Some(long.clone()));
    assert_eq!(
        page.attr("#display-name", "aria-invalid").as_deref(),
        Some("true")
    );
    assert_eq!(page.select("#bio"), ["Changed"], "what was typed stays");
    let page = alice
        .post(
            "/profile",
            &[("display_name", "Al\u{7}"), ("bio", &"b".repeat(201))],
        )
        .await;
    assert_eq!(page.status, 422);
    assert_eq!(
        page.select("#display-name-error"),
        ["A display name is a single line of text."]
    );
    assert_eq!(
        page.select("#bio-error"),
        ["A bio has at most 200 characters."]
    );
    let page = alice
        .post(
            "/profile",
            &[("display_name", "Fine"), ("bio", "\u{202E}evil")],
        )
        .await;
    assert_eq!(page.status, 422);
    assert!(page.has("#bio-error"));
    assert!(!page.has("#display-name-error"));
    let (name, bio, _) = profile_of(app, "alice").await;
    assert_eq!(
        (name.as_str(), bio.as_str()),
        ("Alice", "Hi"),
        "nothing changed"
    );
}

async fn a_display_name_is_shown_as_text_never_as_markup(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let name = "<script>alert(1)</script>";
    let bio = "<b>\"bold\"</b>";
    let saved = alice
        .post("/profile", &[("display_name", name), ("bio", bio)])
        .await;
    assert_eq!(saved.status, 303);
    let sent = alice
        .post_htmx("/rooms/general/messages", &[("body", "hi")])
        .await;
    assert!(
        sent.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        sent.body
    );
    for page in [
        bob.get("/rooms/general").await,
        bob.get("/dm/alice").await,
        alice.get("/profile").await,
    ] {
        assert!(!page.body.contains("<script>alert"), "{}", page.body);
        assert!(!page.body.contains("<b>"), "{}", page.body);
        assert!(
            page.select(".display-name, .me-display")
                .iter()
                .all(|t| t == name)
        );
    }
    assert_eq!(
        bob.get("/dm/alice").await.select("#conversation-bio"),
        [bio]
    );
}

async fn a_new_display_name_reaches_messages_a_room_already_rendered(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    bob.post("/rooms", &[("name", "general")]).await;
    let first = alice.say("/rooms/general", "before the name").await;
    // The room's window now holds the message, rendered without a name.
    assert!(
        !bob.poll("/rooms/general", first - 1)
            .await
            .has(".display-name")
    );
    alice
        .post("/profile", &[("display_name", "Alice Smith"), ("bio", "")])
        .await;
    let poll = bob.poll("/rooms/general", first - 1).await;
    assert_eq!(
        poll.select(".display-name"),
        ["Alice Smith"],
        "{}",
        poll.body
    );
}

async fn the_theme_is_each_persons_own_and_drawn_on_every_page(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let home = alice.get("/").await;
    assert_eq!(
        home.attr("html", "data-theme"),
        None,
        "the system's, at first"
    );
    assert_eq!(
        home.attrs(
            "#person-menu .theme-form button[aria-pressed=true]",
            "value"
        ),
        ["system"]
    );
    let chose = choose_theme(
        &alice,
        "dark",
        &format!("{}/rooms/general?before=9", alice.base),
    )
    .await;
    assert_eq!(chose.status, 303);
    assert_eq!(
        chose.location(),
        Some("/rooms/general?before=9"),
        "back where it was chosen"
    );
    for path in [
        "/",
        "/rooms/general",
        "/profile",
        "/account/password",
        "/mentions",
    ] {
        let page = alice.get(path).await;
        assert_eq!(
            page.attr("html", "data-theme").as_deref(),
            Some("dark"),
            "{path}"
        );
    }
    assert_eq!(
        alice.get("/").await.attrs(
            "#person-menu .theme-form button[aria-pressed=true]",
            "value"
        ),
        ["dark"]
    );
    assert_eq!(
        bob.get("/").await.attr("html", "data-theme"),
        None,
        "alice's alone"
    );
    // Another site's address as Referer leads home, not away.
    let chose = choose_theme(&alice, "light", "https://evil.example//evil.example/x").await;
    assert_eq!(chose.location(), Some("/"));
    assert_eq!(
        alice.get("/").await.attr("html", "data-theme").as_deref(),
        Some("light")
    );
    assert_eq!(choose_theme(&alice, "blue", "/").await.status, 400);
    assert_eq!(profile_of(app, "alice").await.2, "light");
    assert_eq!(choose_theme(&alice, "system", "/").await.status, 303);
    assert_eq!(alice.get("/").await.attr("html", "data-theme"), None);
}

async fn profile_and_theme_changes_need_the_token_and_a_login(app: &TestApp) {
    let alice = app.member("alice").await;
    let forged = alice
        .post_raw(
            "/profile",
            &[("display_name", "Mallory"), ("bio", "")],
            false,
        )
        .await;
    assert_eq!(forged.status, 403);
    let forged = alice
        .post_raw("/account/theme", &[("theme", "dark")], false)
        .await;
    assert_eq!(forged.status, 403);
    assert_eq!(
        profile_of(app, "alice").await,
        (String::new(), String::new(), "system".to_owned())
    );
    let anon = app.client().await;
    let page = anon.get("/profile").await;
    assert_eq!(page.location(), Some("/login?next=/profile"));
    let page = anon.post("/account/theme", &[("theme", "dark")]).await;
    assert_eq!(page.status, 303);
    assert!(page.location().is_some_and(|l| l.starts_with("/login")));
}

async fn staff_edit_a_display_name_in_the_admin(app: &TestApp) {
    let boss = superuser(app).await;
    let alice = app.member("alice").await;
    alice.say("/rooms/general", "hello").await;
    let id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'alice'")
        .fetch_one(&app.pool().await)
        .await
        .unwrap();
    let change = format!("/admin/users/{id}/change/");
    let form = boss.get(&change).await;
    assert!(form.has("input[name=display_name]"), "{}", form.body);
    assert!(form.has("textarea[name=bio]"));
    let edit = |name: &'static str| {
        [
            ("username", "alice"),
            ("display_name", name),
            ("bio", "Edited by staff"),
            ("is_active", "on"),
            ("_save", "1"),
        ]
    };
    let refused = boss.post(&change, &edit("two\u{7}lines")).await;
    assert_eq!(
        refused.status, 422,
        "the admin's form again, with the error"
    );
    assert!(
        refused
            .body
            .contains("A display name is a single line of text.")
    );
    assert_eq!(profile_of(app, "alice").await.0, "");
    let page = boss.post(&change, &edit("Alice Smith")).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(profile_of(app, "alice").await.0, "Alice Smith");
    let list = boss.get("/admin/users/").await;
    assert!(list.body.contains("Alice Smith"), "listed: {}", list.body);
    // What users see: her header and her messages, at once.
    let own = alice.get("/rooms/general").await;
    assert_eq!(own.select(".topbar .me-display"), ["Alice Smith"]);
    assert_eq!(own.select(".message .display-name"), ["Alice Smith"]);
}
