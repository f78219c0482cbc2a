//! The person menu's pages: a display name and a bio people see beside the username, and a
//! theme each person keeps for themselves.

use reqwest::multipart::{Form, Part};

use crate::admin::{superuser, user_id};
use crate::files::{png, stored_files};
use crate::on_both_engines;
use crate::support::{Client, Page, TestApp};

on_both_engines!(
    a_display_name_and_bio_show_beside_the_username_wherever_people_see_them,
    a_refused_profile_comes_back_with_what_was_typed_and_changes_nothing,
    a_display_name_is_shown_as_text_never_as_markup,
    a_right_to_left_display_name_is_isolated_from_the_text_beside_it,
    a_new_display_name_reaches_messages_a_room_already_rendered,
    the_theme_is_each_persons_own_and_drawn_on_every_page,
    profile_and_theme_changes_need_the_token_and_a_login,
    staff_edit_a_display_name_in_the_admin,
    a_picture_shows_wherever_the_initials_did,
    something_that_is_not_a_picture_is_refused_and_changes_nothing,
    removing_or_replacing_a_picture_deletes_its_bytes,
    staff_remove_a_picture_in_the_admin,
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
    let id = user_id(app, "alice").await;
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

/// The profile's picture form as a browser without JavaScript sends it: the token first.
pub(crate) async fn upload_picture(who: &Client, name: &str, bytes: &[u8]) -> Page {
    let form = Form::new().text("csrf_token", who.token()).part(
        "picture",
        Part::bytes(bytes.to_vec()).file_name(name.to_owned()),
    );
    let req = who
        .http
        .post(format!("{}/profile/avatar", who.base))
        .multipart(form);
    Client::page(req.send().await.expect("upload")).await
}

async fn avatar_of(app: &TestApp, name: &str) -> String {
    sqlx::query_scalar("SELECT avatar FROM users WHERE username = $1")
        .bind(name)
        .fetch_one(&app.pool().await)
        .await
        .unwrap()
}

async fn a_picture_shows_wherever_the_initials_did(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    bob.post("/rooms", &[("name", "general")]).await;
    let first = alice.say("/rooms/general", "before the picture").await;
    // The room's window now holds her message, rendered with her initials.
    let before = bob.poll("/rooms/general", first - 1).await;
    assert!(!before.has("img.avatar"), "{}", before.body);

    let sent = upload_picture(&alice, "me.png", &png(300, 200)).await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    assert_eq!(sent.location(), Some("/profile?picture=saved"));
    let key = avatar_of(app, "alice").await;
    assert!(key.starts_with("a/") && key.ends_with(".png"), "{key}");
    let src = format!("/avatars/{}", key.rsplit('/').next().unwrap());
    let profile = alice.get("/profile?picture=saved").await;
    assert_eq!(profile.select("p.notice"), ["Your picture was saved."]);
    assert_eq!(
        profile.attr(".picture-now img.avatar", "src"),
        Some(src.clone())
    );
    assert!(profile.has("form[action='/profile/avatar/remove']"));

    // Served to anyone logged in, a 96×96 PNG cached for good; not to anyone else.
    let resp = bob
        .http
        .get(format!("{}{src}", bob.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["cache-control"], "private, max-age=31536000, immutable");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let picture = image::load_from_memory(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!((picture.width(), picture.height()), (96, 96));
    let anon = app.client().await;
    let refused = anon.get(&src).await;
    assert_eq!(refused.status, 303);
    assert!(refused.location().is_some_and(|l| l.starts_with("/login")));

    // Her message in a poll (the window was forgotten) and on the page, the lists too.
    let img = format!(r#"<img class="avatar" src="{src}" alt="" width="96" height="96">"#);
    let poll = bob.poll("/rooms/general", first - 1).await;
    assert!(poll.body.contains(&img), "{}", poll.body);
    let mine = bob.say("/rooms/general", "and me without one").await;
    let live = alice.poll("/rooms/general", mine - 1).await;
    // Someone without a picture: the initials span, byte for byte as before pictures.
    let initials = parley::views::timeline::avatar("bob").into_string();
    assert!(live.body.contains(&initials), "{}", live.body);
    assert!(!live.body.contains("img"), "{}", live.body);
    let page = bob.get("/rooms/general").await;
    assert_eq!(page.attrs(".message img.avatar", "src"), vec![src.clone()]);
    assert_eq!(
        page.attrs("#member-list img.avatar", "src"),
        vec![src.clone()]
    );
    assert_eq!(
        page.attrs("#people-list img.avatar", "src"),
        vec![src.clone()]
    );
    assert_eq!(page.count("#people-list span.avatar"), 1, "bob's initials");
}

async fn something_that_is_not_a_picture_is_refused_and_changes_nothing(app: &TestApp) {
    let alice = app.member("alice").await;
    let page = upload_picture(&alice, "face.png", b"just some text, not a picture").await;
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(
        page.select("#picture-error")[0].contains("not a picture"),
        "{}",
        page.body
    );
    assert_eq!(
        page.attr("#picture-file", "aria-invalid").as_deref(),
        Some("true")
    );
    let broken = upload_picture(&alice, "half.png", &png(50, 50)[..60]).await;
    assert_eq!(broken.status, 422, "{}", broken.body);
    // Over 5 MB: refused as soon as it passes the limit, whatever it is.
    let mut huge = png(64, 64);
    huge.resize(5 * 1024 * 1024 + 1, 0);
    let big = upload_picture(&alice, "huge.png", &huge).await;
    assert_eq!(big.status, 422, "{}", big.body);
    assert_eq!(
        big.select("#picture-error"),
        ["That picture is too big: at most 5 MB."]
    );
    let nothing = upload_picture(&alice, "", b"").await;
    assert_eq!(nothing.status, 422, "{}", nothing.body);
    assert_eq!(avatar_of(app, "alice").await, "");
    assert_eq!(stored_files(&app.files_dir), Vec::<String>::new());
    // A forged form (no token) stores nothing either.
    let form = Form::new().part("picture", Part::bytes(png(10, 10)).file_name("x.png"));
    let forged = alice
        .http
        .post(format!("{}/profile/avatar", alice.base))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(avatar_of(app, "alice").await, "");
    assert_eq!(stored_files(&app.files_dir), Vec::<String>::new());
    // Only a picture's own key shape is ever looked up.
    for path in [
        "/avatars/00000000000000000000000000000000.png",
        "/avatars/..%2F..%2Fetc%2Fpasswd",
        "/avatars/f",
    ] {
        assert_eq!(alice.get(path).await.status, 404, "{path}");
    }
}

async fn removing_or_replacing_a_picture_deletes_its_bytes(app: &TestApp) {
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    assert_eq!(
        upload_picture(&alice, "a.png", &png(40, 40)).await.status,
        303
    );
    let first = avatar_of(app, "alice").await;
    assert_eq!(stored_files(&app.files_dir), vec![first.clone()]);
    assert_eq!(
        upload_picture(&alice, "b.png", &png(80, 60)).await.status,
        303
    );
    let second = avatar_of(app, "alice").await;
    assert_ne!(first, second, "a new picture, a new key");
    assert_eq!(
        stored_files(&app.files_dir),
        vec![second.clone()],
        "the old one went"
    );

    let removed = alice.post("/profile/avatar/remove", &[]).await;
    assert_eq!(removed.status, 303, "{}", removed.body);
    assert_eq!(removed.location(), Some("/profile?picture=removed"));
    assert_eq!(avatar_of(app, "alice").await, "");
    assert_eq!(stored_files(&app.files_dir), Vec::<String>::new());
    let old = format!("/avatars/{}", second.rsplit('/').next().unwrap());
    assert_eq!(alice.get(&old).await.status, 404);
    let profile = alice.get("/profile").await;
    assert!(profile.has(".picture-now span.avatar"), "{}", profile.body);
    assert!(!profile.has("form[action='/profile/avatar/remove']"));
    alice.say("/rooms/general", "initials again").await;
    let page = alice.get("/rooms/general").await;
    assert!(!page.has("img.avatar"), "{}", page.body);
}

async fn staff_remove_a_picture_in_the_admin(app: &TestApp) {
    let boss = superuser(app).await;
    let alice = app.member("alice").await;
    assert_eq!(
        upload_picture(&alice, "me.png", &png(40, 40)).await.status,
        303
    );
    alice.say("/rooms/general", "hello").await;
    let key = avatar_of(app, "alice").await;
    let id = user_id(app, "alice").await;
    let change = format!("/admin/users/{id}/change/");
    let form = boss.get(&change).await;
    assert_eq!(form.attr("input[name=avatar]", "value"), Some(key.clone()));
    let edit = |avatar: &'static str| {
        [
            ("username", "alice"),
            ("avatar", avatar),
            ("is_active", "on"),
            ("_save", "1"),
        ]
    };
    // Staff may only empty it: no other key (nor anything else) can be put there.
    let refused = boss.post(&change, &edit("f/ab/abandoned")).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(avatar_of(app, "alice").await, key);
    let page = boss.post(&change, &edit("")).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(avatar_of(app, "alice").await, "");
    let own = alice.get("/rooms/general").await;
    assert!(own.has(".message span.avatar"), "{}", own.body);
    assert!(!own.has("img.avatar"));
}

/// A name written right to left would otherwise pull the username and the time beside it into
/// its direction ("alice" shown before it, digits reordered): each display name is its own
/// bidirectional island (`<bdi>`), wherever it is shown.
async fn a_right_to_left_display_name_is_isolated_from_the_text_beside_it(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let name = "אליס 2";
    let saved = alice.post("/profile", &[("display_name", name)]).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    alice.say("/rooms/general", "shalom").await;
    let room = bob.get("/rooms/general").await;
    assert_eq!(room.select(".message header bdi.display-name"), [name]);
    assert_eq!(room.select("#member-list bdi.display-name"), [name]);
    let own = alice.get("/rooms/general").await;
    assert_eq!(own.select(".topbar bdi.me-display"), [name]);
}
