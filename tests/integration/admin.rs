//! The admin area as mounted in Parley: who may enter, and that what staff change is what users see.
//! (The generic admin's own behaviour is tested in admin/tests.)

use crate::on_both_engines;
use crate::support::{Client, PASSWORD, TestApp};

pub async fn superuser(app: &TestApp) -> Client {
    let c = app.member("boss").await;
    sqlx::query("UPDATE users SET is_staff = 1, is_superuser = 1 WHERE username = 'boss'")
        .execute(&app.pool().await)
        .await
        .unwrap();
    c
}

/// The room `name` saved by `staff` through its admin form as `new_name` with `topic`; its id.
pub async fn save_room(
    app: &TestApp,
    staff: &Client,
    name: &str,
    new_name: &str,
    topic: &str,
) -> i64 {
    let room: i64 = sqlx::query_scalar("SELECT id FROM rooms WHERE name = $1")
        .bind(name)
        .fetch_one(&app.pool().await)
        .await
        .unwrap();
    let saved = staff
        .post(
            &format!("/admin/rooms/{room}/change/"),
            &[("name", new_name), ("topic", topic), ("_save", "1")],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    room
}

pub(crate) async fn user_id(app: &TestApp, name: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
        .bind(name)
        .fetch_one(&app.pool().await)
        .await
        .unwrap()
}

on_both_engines!(
    only_active_staff_enter_the_admin,
    deactivating_a_user_ends_their_sessions_and_blocks_their_login,
    a_poll_held_when_staff_deactivate_the_user_delivers_nothing,
    a_password_set_in_the_admin_is_hashed_and_ends_other_sessions,
    a_search_with_a_nul_byte_finds_nothing_and_fails_nothing,
    what_staff_change_in_the_admin_is_what_users_see,
    staff_who_change_their_own_password_in_the_admin_stay_logged_in,
    direct_conversations_are_for_superusers_only_in_the_admin,
);

async fn only_active_staff_enter_the_admin(app: &TestApp) {
    let anon = app.client().await;
    let page = anon.get("/admin/").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), Some("/admin/login/?next=/admin/"));
    let login = anon.get("/admin/login/?next=/admin/").await;
    assert_eq!(login.status, 200);
    assert_eq!(
        login.attr("input[name=next]", "value").as_deref(),
        Some("/admin/")
    );
    assert!(
        anon.get("/admin")
            .await
            .location()
            .is_some_and(|l| l.starts_with("/admin/login/"))
    );

    let bob = app.member("bob").await;
    assert_eq!(bob.get("/admin/").await.status, 403);
    assert_eq!(bob.get("/admin/users/").await.status, 403);
    assert!(
        !bob.get("/").await.has("[href='/admin/']"),
        "no admin link for non-staff"
    );

    let boss = superuser(app).await;
    let index = boss.get("/admin/").await;
    assert_eq!(index.status, 200, "{}", index.body);
    for model in ["users", "rooms", "messages"] {
        assert!(index.has(&format!("a[href='/admin/{model}/']")), "{model}");
        assert_eq!(
            boss.get(&format!("/admin/{model}/")).await.status,
            200,
            "{model}"
        );
    }
    // Logging in through the admin's page returns to the admin.
    let again = app.client().await;
    let page = again
        .post(
            "/login",
            &[
                ("username", "boss"),
                ("password", PASSWORD),
                ("next", "/admin/"),
            ],
        )
        .await;
    assert_eq!(page.location(), Some("/admin/"));
}

/// Staff untick "Active" on `name`'s account (the change form sends no flag for it).
async fn deactivate(app: &TestApp, staff: &Client, name: &str) {
    let id = user_id(app, name).await;
    let page = staff
        .post(
            &format!("/admin/users/{id}/change/"),
            &[("username", name), ("_save", "1")],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
}

async fn a_poll_held_when_staff_deactivate_the_user_delivers_nothing(app: &TestApp) {
    let boss = superuser(app).await;
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    for c in [&alice, &bob] {
        assert_eq!(c.post("/rooms", &[("name", "general")]).await.status, 303);
    }
    let poll = {
        let req = bob
            .http
            .get(format!("{}/rooms/general/messages?after=0", bob.base));
        tokio::spawn(async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    deactivate(app, &boss, "bob").await;
    alice.say("/rooms/general", "not for bob any more").await;
    let (status, body) = poll.await.unwrap();
    assert_ne!(status, 200, "{body}");
    assert!(!body.contains("not for bob any more"));
}

async fn deactivating_a_user_ends_their_sessions_and_blocks_their_login(app: &TestApp) {
    let boss = superuser(app).await;
    let mut bob = app.member("bob").await;
    assert_eq!(bob.get("/").await.status, 200);
    deactivate(app, &boss, "bob").await;
    assert_eq!(
        app.count("SELECT is_active FROM users WHERE username = 'bob'")
            .await,
        0
    );
    assert_eq!(bob.get("/").await.status, 303, "bob's session is over");
    assert_eq!(
        bob.login("bob", PASSWORD).await.status,
        401,
        "and he cannot log in again"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM admin_log WHERE model = 'users' AND action_flag = 2")
            .await,
        1
    );
}

async fn a_password_set_in_the_admin_is_hashed_and_ends_other_sessions(app: &TestApp) {
    let boss = superuser(app).await;
    let bob = app.member("bob").await;
    let id = user_id(app, "bob").await;
    let page = boss
        .post(
            &format!("/admin/users/{id}/password/"),
            &[
                ("password1", "brand new secret"),
                ("password2", "brand new secret"),
            ],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool().await)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "stored as an argon2id hash");
    assert_eq!(bob.get("/").await.status, 303, "the old session ends");
    let mut fresh = app.client().await;
    assert_eq!(fresh.login("bob", "brand new secret").await.status, 303);
    let weak = boss
        .post(
            &format!("/admin/users/{id}/password/"),
            &[("password1", "short"), ("password2", "short")],
        )
        .await;
    assert_eq!(weak.status, 422);
    assert!(weak.body.contains("A password has at least 8 characters."));
}

async fn a_search_with_a_nul_byte_finds_nothing_and_fails_nothing(app: &TestApp) {
    let boss = superuser(app).await;
    for model in ["users", "rooms", "messages"] {
        let page = boss.get(&format!("/admin/{model}/?q=a%00")).await;
        assert_eq!(page.status, 200, "{model}: {}", page.body);
    }
}

async fn staff_who_change_their_own_password_in_the_admin_stay_logged_in(app: &TestApp) {
    let boss = superuser(app).await;
    let mut elsewhere = app.client().await;
    assert_eq!(elsewhere.login("boss", PASSWORD).await.status, 303);
    assert_eq!(elsewhere.get("/admin/").await.status, 200);
    let id = user_id(app, "boss").await;
    let page = boss
        .post(
            &format!("/admin/users/{id}/password/"),
            &[
                ("password1", "my own new secret"),
                ("password2", "my own new secret"),
            ],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(
        page.location(),
        Some(format!("/admin/users/{id}/change/").as_str())
    );
    assert_eq!(
        boss.get("/admin/").await.status,
        200,
        "this session goes on under the new password"
    );
    assert_eq!(boss.get("/").await.status, 200);
    assert_eq!(
        elsewhere.get("/admin/").await.status,
        303,
        "their other session ends"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM admin_log WHERE change_message = 'Changed password.'")
            .await,
        1
    );
}

async fn direct_conversations_are_for_superusers_only_in_the_admin(app: &TestApp) {
    let boss = superuser(app).await;
    let stella = app.user("stella").await;
    sqlx::query("UPDATE users SET is_staff = 1 WHERE username = 'stella'")
        .execute(&app.pool().await)
        .await
        .unwrap();
    let alice = app.user("alice").await;
    app.user("bob").await;
    alice.post("/rooms", &[("name", "general")]).await;
    alice.say("/rooms/general", "hello everyone").await;
    alice.say("/dm/bob", "a private word").await;
    let private: i64 = sqlx::query_scalar("SELECT id FROM messages WHERE body = 'a private word'")
        .fetch_one(&app.pool().await)
        .await
        .unwrap();
    let direct: i64 = sqlx::query_scalar("SELECT id FROM rooms WHERE kind = 'direct'")
        .fetch_one(&app.pool().await)
        .await
        .unwrap();
    let list = stella.get("/admin/messages/").await;
    assert!(
        list.body.contains("hello everyone") && !list.body.contains("a private word"),
        "{}",
        list.body
    );
    for view in ["change", "delete", "history"] {
        assert_eq!(
            stella
                .get(&format!("/admin/messages/{private}/{view}/"))
                .await
                .status,
            404,
            "{view}"
        );
    }
    assert_eq!(
        stella
            .get(&format!("/admin/rooms/{direct}/delete/"))
            .await
            .status,
        404
    );
    let list = boss.get("/admin/messages/").await;
    assert!(
        list.body.contains("a private word"),
        "superusers see every message"
    );
}

async fn what_staff_change_in_the_admin_is_what_users_see(app: &TestApp) {
    let boss = superuser(app).await;
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    alice.say("/rooms/general", "keep me").await;
    alice.say("/rooms/general", "delete me").await;
    // Deleting a message removes it from the room page and from what polls deliver.
    assert_eq!(
        alice
            .poll("/rooms/general", 0)
            .await
            .select(".message .body"),
        ["keep me", "delete me"]
    );
    let message: i64 = sqlx::query_scalar("SELECT id FROM messages WHERE body = 'delete me'")
        .fetch_one(&app.pool().await)
        .await
        .unwrap();
    let confirm = boss
        .get(&format!("/admin/messages/{message}/delete/"))
        .await;
    assert_eq!(confirm.status, 200);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM messages").await,
        2,
        "a GET deletes nothing"
    );
    let page = boss
        .post(
            &format!("/admin/messages/{message}/delete/"),
            &[("post", "yes")],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let page = alice.get("/rooms/general").await;
    assert_eq!(page.select(".message .body"), ["keep me"]);
    assert!(!page.body.contains("delete me"));
    let poll = alice.poll("/rooms/general", 0).await;
    assert_eq!(poll.select(".message .body"), ["keep me"]);
    assert!(!poll.body.contains("delete me"));
    // A poll from before the deletion is told of it (the deletion is change 3), never the text,
    // and the next message follows it.
    let poll = alice.poll("/rooms/general", 1).await;
    assert_eq!(poll.attr("#m-2", "hx-swap-oob").as_deref(), Some("delete"));
    assert!(!poll.body.contains("delete me"));
    assert_eq!(alice.say("/rooms/general", "after the deletion").await, 4);
    // Deleting a user deletes their messages, which polls then no longer deliver either.
    let mallory = app.member("mallory").await;
    mallory.say("/rooms/general", "spam from mallory").await;
    assert_eq!(
        alice
            .poll("/rooms/general", 4)
            .await
            .select(".message .body"),
        ["spam from mallory"]
    );
    let id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'mallory'")
        .fetch_one(&app.pool().await)
        .await
        .unwrap();
    let page = boss
        .post(&format!("/admin/users/{id}/delete/"), &[("post", "yes")])
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    // A page that had the spam is told to remove it, and never gets its text again.
    let poll = alice.poll("/rooms/general", 5).await;
    assert_eq!(poll.attr("#m-5", "hx-swap-oob").as_deref(), Some("delete"));
    let poll = alice.poll("/rooms/general", 4).await;
    assert!(!poll.body.contains("spam from mallory"), "{}", poll.body);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE username = 'mallory'")
            .await,
        0
    );
    // A room's topic edited in the admin shows in the room.
    let room = save_room(app, &boss, "general", "general", "Edited by staff").await;
    assert_eq!(
        alice
            .get("/rooms/general")
            .await
            .select("#conversation-topic"),
        ["Edited by staff"]
    );
    // The cascade is listed before a room is deleted.
    let confirm = boss.get(&format!("/admin/rooms/{room}/delete/")).await;
    assert!(
        confirm.body.contains("keep me"),
        "the room's remaining message is listed: {}",
        confirm.body
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM rooms").await,
        1,
        "a GET deletes nothing"
    );
}
