//! Sessions and what a page may do: a session that ends ends everywhere at once, side effects
//! never come from a cross-site GET, the CSRF token changes with who is logged in, private pages
//! are not cached, and only this server's own names reach it.

use std::time::Duration;

use crate::on_both_engines;
use crate::support::{Client, TestApp};

on_both_engines!(a_poll_held_when_its_session_ends_delivers_nothing,);

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
