//! Who may join (`--registration open|invite|closed`, invite links made in the admin) and
//! getting back in (one-time password-reset links made in the admin).

use crate::admin::superuser;
use crate::on_both_engines;
use crate::support::{Client, PASSWORD, TestApp};
use parley::config::Registration;

on_both_engines!(
    closed_registration_refuses_everyone_and_the_login_page_stops_offering_it,
    an_invite_made_in_the_admin_lets_as_many_people_in_as_it_allows,
    an_expired_or_unknown_invite_lets_nobody_in,
    a_reset_link_sets_a_new_password_once_and_ends_the_other_sessions,
    only_superusers_make_reset_links_and_a_day_old_link_is_dead,
);

/// The newest row's `column` of `table`.
async fn newest(app: &TestApp, table: &str, column: &str) -> String {
    sqlx::query_scalar(&format!(
        "SELECT {column} FROM {table} ORDER BY id DESC LIMIT 1"
    ))
    .fetch_one(&app.pool().await)
    .await
    .unwrap()
}

async fn users(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) FROM users").await
}

async fn closed_registration_refuses_everyone_and_the_login_page_stops_offering_it(
    app: &mut TestApp,
) {
    let open = app.client().await;
    assert!(open.get("/login").await.has("a[href='/register']"));
    app.restart_with(|s| s.registration = Registration::Closed)
        .await;
    let mut visitor = app.client().await;
    let login = visitor.get("/login").await;
    assert!(!login.has("a[href='/register']"), "{}", login.body);
    let form = visitor.get("/register").await;
    assert_eq!(form.status, 403);
    assert!(
        form.body.contains("Ask one of them for yours"),
        "{}",
        form.body
    );
    let before = users(app).await;
    let posted = visitor.register("carol", PASSWORD).await;
    assert_eq!(posted.status, 403);
    assert_eq!(users(app).await, before, "nothing made");
    // Staff still make accounts in the admin.
    let boss = superuser(app).await;
    let added = boss
        .post(
            "/admin/users/add/",
            &[
                ("username", "carol"),
                ("password1", "carol's first passphrase"),
                ("password2", "carol's first passphrase"),
                ("is_active", "on"),
                ("_save", "1"),
            ],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    assert_eq!(users(app).await, before + 2, "boss and carol");
    // An account staff add is in #general, as one that registers is.
    let in_general = "SELECT COUNT(*) FROM memberships s JOIN users u ON u.id = s.user_id
                      JOIN rooms r ON r.id = s.room_id
                      WHERE u.username = 'carol' AND r.name = 'general'";
    assert_eq!(app.count(in_general).await, 1);
}

async fn register_with(app: &TestApp, invite: &str, name: &str) -> (Client, crate::support::Page) {
    let c = app.client().await;
    let form = c.get(&format!("/register?invite={invite}")).await;
    if form.status == 200 {
        assert_eq!(
            form.attr("input[name=invite]", "value").as_deref(),
            Some(invite),
            "the form carries the invite on"
        );
    }
    let page = c
        .post(
            "/register",
            &[
                ("username", name),
                ("password", PASSWORD),
                ("invite", invite),
            ],
        )
        .await;
    (c, page)
}

async fn an_invite_made_in_the_admin_lets_as_many_people_in_as_it_allows(app: &mut TestApp) {
    app.restart_with(|s| s.registration = Registration::Invite)
        .await;
    let boss = superuser(app).await;
    let added = boss
        .post(
            "/admin/invites/add/",
            &[
                ("note", "the two new designers"),
                ("max_uses", "2"),
                ("_save", "1"),
            ],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    let code = newest(app, "invites", "code").await;
    assert_eq!(code.len(), 32);
    let list = boss.get("/admin/invites/").await;
    assert!(
        list.body.contains(&format!("/register?invite={code}")),
        "the list shows the link to hand out"
    );

    // Without it: a page that says it is by invitation.
    let mut stranger = app.client().await;
    let page = stranger.get("/register").await;
    assert_eq!(page.status, 403);
    assert!(page.body.contains("by invitation"), "{}", page.body);
    assert_eq!(stranger.register("mallory", PASSWORD).await.status, 403);

    let (dana, page) = register_with(app, &code, "dana").await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(dana.get("/").await.status, 200, "dana is in");
    // A name that is taken does not use the invite up.
    let (_, taken) = register_with(app, &code, "dana").await;
    assert_eq!(taken.status, 422);
    let (_, page) = register_with(app, &code, "erin").await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(
        app.count("SELECT uses FROM invites").await,
        2,
        "two accounts made"
    );
    let (_, spent) = register_with(app, &code, "frank").await;
    assert_eq!(spent.status, 403);
    assert!(spent.body.contains("used up"), "{}", spent.body);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE username = 'frank'")
            .await,
        0
    );
}

async fn an_expired_or_unknown_invite_lets_nobody_in(app: &mut TestApp) {
    app.restart_with(|s| s.registration = Registration::Invite)
        .await;
    let boss = superuser(app).await;
    let added = boss
        .post(
            "/admin/invites/add/",
            &[("note", "late"), ("max_uses", "5"), ("_save", "1")],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    let code = newest(app, "invites", "code").await;
    sqlx::query("UPDATE invites SET expires_ms = 1")
        .execute(&app.pool().await)
        .await
        .unwrap();
    let before = users(app).await;
    for invite in [
        code.as_str(),
        "0123456789abcdef0123456789abcdef",
        "nonsense",
        "'; --",
    ] {
        let (_, page) = register_with(app, invite, "gina").await;
        assert_eq!(page.status, 403, "{invite}: {}", page.body);
    }
    assert_eq!(users(app).await, before);
    // No invite is ever made with fewer than one use.
    let refused = boss
        .post(
            "/admin/invites/add/",
            &[("note", "none"), ("max_uses", "0"), ("_save", "1")],
        )
        .await;
    assert_eq!(refused.status, 422, "the form again, with its error");
    assert!(refused.body.contains("At least 1."), "{}", refused.body);
}

async fn issue_reset_link(app: &TestApp, boss: &Client, user: &str) -> String {
    let id = app
        .count(&format!("SELECT id FROM users WHERE username = '{user}'"))
        .await
        .to_string();
    let added = boss
        .post(
            "/admin/password_resets/add/",
            &[("user_id", id.as_str()), ("_save", "1")],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    let token = newest(app, "password_resets", "token").await;
    let list = boss.get("/admin/password_resets/").await;
    assert!(
        list.body.contains(&format!("/reset/{token}")),
        "the link to hand over"
    );
    format!("/reset/{token}")
}

async fn a_reset_link_sets_a_new_password_once_and_ends_the_other_sessions(app: &mut TestApp) {
    let boss = superuser(app).await;
    let old_session = app.member("alice").await;
    assert_eq!(old_session.get("/").await.status, 200);
    let link = issue_reset_link(app, &boss, "alice").await;

    let mut alice = app.client().await;
    let form = alice.get(&link).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert_eq!(
        form.headers
            .get("referrer-policy")
            .and_then(|v| v.to_str().ok()),
        Some("no-referrer"),
        "the page's assets must not carry the token away in a Referer"
    );
    assert!(form.body.contains("alice"));
    // A password the rules refuse changes nothing and leaves the link good.
    let weak = alice.post(&link, &[("new_password", "short")]).await;
    assert_eq!(weak.status, 422);
    assert_eq!(alice.get(&link).await.status, 200);

    let done = alice
        .post(&link, &[("new_password", "a brand new passphrase")])
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    alice.csrf = alice.token();
    assert_eq!(alice.get("/").await.status, 200, "logged in as alice");
    // The session from before the reset is over.
    assert_eq!(old_session.get("/").await.status, 303);
    // The new password works, the old one not.
    let mut again = app.client().await;
    assert_eq!(again.login("alice", PASSWORD).await.status, 401);
    assert_eq!(
        again.login("alice", "a brand new passphrase").await.status,
        303
    );
    // Once only.
    let mut late = app.client().await;
    let used = late.get(&link).await;
    assert_eq!(used.status, 404);
    assert!(used.body.contains("has been used or has expired"));
    let reuse = late
        .post(&link, &[("new_password", "another new passphrase")])
        .await;
    assert_eq!(reuse.status, 404);
    assert_eq!(
        late.login("alice", "another new passphrase").await.status,
        401
    );
}

async fn only_superusers_make_reset_links_and_a_day_old_link_is_dead(app: &mut TestApp) {
    let boss = superuser(app).await;
    app.member("alice").await;
    let staff = app.member("sam").await;
    sqlx::query("UPDATE users SET is_staff = 1 WHERE username = 'sam'")
        .execute(&app.pool().await)
        .await
        .unwrap();
    assert_eq!(staff.get("/admin/").await.status, 200);
    assert_eq!(staff.get("/admin/password_resets/").await.status, 403);
    let boss_id = app
        .count("SELECT id FROM users WHERE username = 'boss'")
        .await
        .to_string();
    let tried = staff
        .post(
            "/admin/password_resets/add/",
            &[("user_id", boss_id.as_str()), ("_save", "1")],
        )
        .await;
    assert_eq!(tried.status, 403);
    assert_eq!(app.count("SELECT COUNT(*) FROM password_resets").await, 0);

    let link = issue_reset_link(app, &boss, "alice").await;
    let day_and_a_second = 24 * 60 * 60 * 1000 + 1000;
    sqlx::query("UPDATE password_resets SET expires_ms = expires_ms - $1")
        .bind(day_and_a_second as i64)
        .execute(&app.pool().await)
        .await
        .unwrap();
    let mut alice = app.client().await;
    assert_eq!(alice.get(&link).await.status, 404);
    let tried = alice
        .post(&link, &[("new_password", "a brand new passphrase")])
        .await;
    assert_eq!(tried.status, 404);
    assert_eq!(alice.login("alice", PASSWORD).await.status, 303);
}
