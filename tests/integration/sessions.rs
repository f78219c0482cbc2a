//! Sessions and what a page may do: a session that ends ends everywhere at once, side effects
//! never come from a cross-site GET, the CSRF token changes with who is logged in, private pages
//! are not cached, and only this server's own names reach it.

use std::time::Duration;

use crate::on_both_engines;
use crate::support::{Client, TestApp};

on_both_engines!(
    a_poll_held_when_its_session_ends_delivers_nothing,
    a_link_from_another_site_shows_a_conversation_but_changes_nothing,
    the_csrf_token_changes_when_someone_logs_in_or_out,
    private_pages_are_not_stored_and_say_they_vary_by_htmx,
    only_this_servers_own_host_names_are_answered,
    a_session_deleted_after_it_was_loaded_is_not_saved_back,
);

/// A GET as a browser sends it when another site's link was followed.
async fn from_another_site(c: &Client, path: &str) -> u16 {
    c.http
        .get(format!("{}{path}", c.base))
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await
        .expect("GET")
        .status()
        .as_u16()
}

/// `who`'s poll of `conv` after `after`, held in the background: (status, body).
fn held(who: &Client, conv: &str, after: i64) -> tokio::task::JoinHandle<(u16, String)> {
    let req = who
        .http
        .get(format!("{}{conv}/messages?after={after}", who.base));
    tokio::spawn(async move {
        let resp = req.send().await.expect("poll");
        (
            resp.status().as_u16(),
            resp.text().await.unwrap_or_default(),
        )
    })
}

async fn a_poll_held_when_its_session_ends_delivers_nothing(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    for c in [&alice, &bob] {
        assert_eq!(c.post("/rooms", &[("name", "general")]).await.status, 303);
    }
    let poll = held(&alice, "/rooms/general", 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The same cookie is logged out (from another tab) while the poll waits.
    assert_eq!(alice.post("/logout", &[]).await.status, 303);
    bob.say("/rooms/general", "not for a logged-out page").await;
    let (status, body) = poll.await.unwrap();
    assert_ne!(status, 200, "{body}");
    assert!(!body.contains("not for a logged-out page"));
    assert_eq!(
        alice.poll("/rooms/general", 0).await.status,
        303,
        "logged out"
    );
}

async fn a_link_from_another_site_shows_a_conversation_but_changes_nothing(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    assert_eq!(bob.post("/rooms", &[("name", "general")]).await.status, 303);
    bob.say("/rooms/general", "hello").await;
    let members = "SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id \
                   JOIN rooms r ON r.id = m.room_id \
                   WHERE u.username = 'alice' AND r.name = 'general'";
    assert_eq!(from_another_site(&alice, "/rooms/general").await, 200);
    assert_eq!(app.count(members).await, 0, "not joined");
    assert_eq!(alice.get("/rooms/general").await.status, 200);
    assert_eq!(app.count(members).await, 1, "joined from Parley's own page");
    bob.say("/rooms/general", "unread for alice").await;
    let read = "SELECT m.last_read_seq FROM memberships m JOIN users u ON u.id = m.user_id \
                WHERE u.username = 'alice'";
    let before = app.count(read).await;
    assert_eq!(from_another_site(&alice, "/rooms/general").await, 200);
    assert_eq!(app.count(read).await, before, "not marked read");
    // A private conversation is not started by another site's link...
    assert_eq!(from_another_site(&alice, "/dm/bob").await, 404);
    let direct = "SELECT COUNT(*) FROM rooms WHERE kind = 'direct'";
    assert_eq!(app.count(direct).await, 0);
    // ...but one that exists opens.
    assert_eq!(alice.get("/dm/bob").await.status, 200);
    assert_eq!(app.count(direct).await, 1);
    assert_eq!(from_another_site(&alice, "/dm/bob").await, 200);
}

async fn the_csrf_token_changes_when_someone_logs_in_or_out(app: &TestApp) {
    crate::support::insert_member(&app.database_url, "alice").await;
    let mut c = app.client().await;
    let anonymous = c.token();
    assert_eq!(c.login("alice", crate::support::PASSWORD).await.status, 303);
    let alices = c.token();
    assert_ne!(anonymous, alices, "a new token at login");
    let home = c.get("/").await;
    assert_eq!(crate::support::csrf_from(&home.body), Some(alices.clone()));
    let stale = c
        .post_raw(
            "/rooms",
            &[("name", "general"), ("csrf_token", &anonymous)],
            false,
        )
        .await;
    assert_eq!(stale.status, 403, "the token from before is no good");
    assert_eq!(c.post("/logout", &[]).await.status, 303);
    assert_ne!(c.token(), alices, "a new token at logout");
}

async fn private_pages_are_not_stored_and_say_they_vary_by_htmx(app: &TestApp) {
    let alice = app.member("alice").await;
    app.member("bob").await;
    assert_eq!(
        alice.post("/rooms", &[("name", "general")]).await.status,
        303
    );
    for path in [
        "/",
        "/dm/bob",
        "/rooms/general",
        "/sidebar",
        "/people",
        "/mentions",
    ] {
        for page in [alice.get(path).await, alice.get_htmx(path).await] {
            assert_eq!(page.status, 200, "{path}");
            assert_eq!(
                page.headers.get("cache-control").unwrap(),
                "no-store",
                "{path}"
            );
            let vary: Vec<_> = page.headers.get_all("vary").iter().collect();
            assert!(
                vary.iter()
                    .any(|v| v.to_str().unwrap().contains("HX-Request")),
                "{path}: {vary:?}"
            );
        }
    }
    let login = app.client().await.get("/login").await;
    assert_eq!(login.headers.get("cache-control").unwrap(), "no-store");
    let page = alice.get("/").await;
    let css = page.attr("link[rel=stylesheet]", "href").unwrap();
    let asset = alice.get(&css).await;
    assert!(
        asset.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    // The same for everyone, htmx or not: it varies by encoding alone.
    let vary: Vec<_> = asset.headers.get_all("vary").iter().collect();
    assert_eq!(vary, ["Accept-Encoding"]);
}

async fn only_this_servers_own_host_names_are_answered(app: &mut TestApp) {
    app.restart_with(|s| s.allowed_hosts = vec!["chat.example.org".into()])
        .await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let get = |host: String| {
        reqwest::Client::new()
            .get(format!("{}/login", app.base))
            .header("Host", host)
            .send()
    };
    for refused in ["rebind.evil.example", "localhost.evil.example"] {
        let resp = get(format!("{refused}:{port}")).await.unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{refused}");
        let body = resp.text().await.unwrap();
        assert!(body.contains("does not answer to that host name"));
    }
    for allowed in ["127.0.0.1", "localhost", "chat.example.org"] {
        let resp = get(format!("{allowed}:{port}")).await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{allowed}");
    }
}

/// A session is saved after it was loaded: its expiry moved on by a request that read the login,
/// or by the login read again in the background. One deleted in between (a logout, a login's new
/// id) must stay deleted: the session store's own save inserts or updates, and would bring back
/// a login that had ended.
async fn a_session_deleted_after_it_was_loaded_is_not_saved_back(app: &mut TestApp) {
    use tower_sessions_core::SessionStore;
    use tower_sessions_core::session::{Id, Record};
    let settings = parley::config::Settings::for_database(app.database_url.clone());
    let db = parley::db::Db::open(&settings)
        .await
        .expect("the app's database");
    let store = &db.sessions;
    let mut record = Record {
        id: Id::default(),
        data: [("user_id".to_owned(), serde_json::json!(1))].into(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::days(1),
    };
    store.create(&mut record).await.unwrap();
    let mut loaded = store.load(&record.id).await.unwrap().expect("made");
    loaded.expiry_date += time::Duration::hours(1);
    store.save(&loaded).await.unwrap();
    let saved = store.load(&record.id).await.unwrap().expect("still there");
    assert_eq!(saved.expiry_date, loaded.expiry_date, "its expiry moved on");
    store.delete(&record.id).await.unwrap();
    store.save(&loaded).await.unwrap();
    assert!(
        store.load(&record.id).await.unwrap().is_none(),
        "a session deleted since it was loaded stays deleted"
    );
}
