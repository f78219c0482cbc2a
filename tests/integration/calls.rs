//! Voice calls: the signalling routes, as calls.js uses them, and what reaches the other person's
//! pages through their held poll. (The browser tests connect real calls with real media.)

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::on_both_engines;
use crate::support::{Client, Page, TestApp};

on_both_engines!(
    a_call_rings_is_answered_carries_its_signalling_and_ends_with_one_record,
    declined_missed_and_busy_calls_are_recorded,
    only_the_two_people_of_the_call_can_signal,
    bad_signals_are_refused_and_change_nothing,
    a_page_opened_while_it_rings_rings_and_one_opened_after_does_not,
    two_people_calling_each_other_at_once_get_one_call,
    a_call_you_took_part_in_is_not_unread_but_a_missed_one_is,
);

/// A POST as calls.js makes it: JSON, CSRF token in the header.
pub async fn post_json(c: &Client, path: &str, body: Value) -> (u16, Value) {
    let resp = c
        .http
        .post(format!("{}{path}", c.base))
        .header("X-CSRF-Token", &c.csrf)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A page's held feed poll that takes calls: the signals it brings and the cursor after them.
/// `None` when it answered without any.
pub async fn signals(c: &Client, cursor: &str) -> Option<(Vec<Value>, String)> {
    let url = format!("{}/feed?t={}&s={cursor}", c.base, parley::now_ms() + 60_000);
    let resp = c
        .http
        .get(url)
        .header("HX-Request", "true")
        .send()
        .await
        .expect("feed");
    if resp.status() != 200 {
        return None;
    }
    let page = Page::of_html(resp.text().await.unwrap());
    let cursor = page.attr("#poller", "data-s").unwrap_or_default();
    let list = page.attr("#poller", "data-signals")?;
    Some((
        serde_json::from_str(&list).expect("signals are JSON"),
        cursor,
    ))
}

/// Polls until a signal of `kind` arrives (within 5 s); the signals up to it and the cursor.
async fn until(c: &Client, cursor: &mut String, kind: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "no {kind} signal for {}", c.name);
        if let Some((list, next)) = signals(c, cursor).await {
            *cursor = next;
            if let Some(found) = list.into_iter().find(|s| s["type"] == kind) {
                return found;
            }
        }
    }
}

async fn call(alice: &Client, to: &str) -> i64 {
    let (status, body) = post_json(alice, &format!("/dm/{to}/calls"), json!({})).await;
    assert_eq!(status, 201, "{body}");
    body["call"].as_i64().expect("the call's id")
}

async fn records(c: &Client, conv: &str) -> Vec<String> {
    c.get(conv)
        .await
        .select("#messages .message.call-record .body")
}

async fn a_call_rings_is_answered_carries_its_signalling_and_ends_with_one_record(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    alice.get("/dm/bob").await;
    let (mut a, mut b) = (String::new(), String::new());

    let started = Instant::now();
    let id = call(&alice, "bob").await;
    let ring = until(&bob, &mut b, "ring").await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(ring["call"], id);
    assert_eq!(ring["from"], "alice");
    assert_eq!(ring["conv"], "/dm/alice");

    let (status, _) = post_json(&bob, &format!("/dm/alice/calls/{id}/accept"), json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(until(&alice, &mut a, "accepted").await["call"], id);

    // The offer, the answer and candidates each reach the other side as sent.
    let sdp = format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n{}",
        "a=x\r\n".repeat(1500)
    );
    let offer = json!({ "type": "offer", "sdp": sdp });
    let (status, _) = post_json(&alice, &format!("/dm/bob/calls/{id}/signal"), offer).await;
    assert_eq!(status, 204);
    assert_eq!(until(&bob, &mut b, "offer").await["sdp"], sdp);
    let answer = json!({ "type": "answer", "sdp": "v=0\r\nanswer" });
    let (status, _) = post_json(&bob, &format!("/dm/alice/calls/{id}/signal"), answer).await;
    assert_eq!(status, 204);
    assert_eq!(
        until(&alice, &mut a, "answer").await["sdp"],
        "v=0\r\nanswer"
    );
    let candidate = json!({ "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
                            "sdpMid": "0", "sdpMLineIndex": 0 });
    let ice = json!({ "type": "ice", "candidate": candidate });
    let (status, _) = post_json(&bob, &format!("/dm/alice/calls/{id}/signal"), ice).await;
    assert_eq!(status, 204);
    assert_eq!(
        until(&alice, &mut a, "ice").await["candidate"]["candidate"],
        candidate["candidate"]
    );
    let (status, _) = post_json(&alice, &format!("/dm/bob/calls/{id}/alive"), json!({})).await;
    assert_eq!(status, 204);

    let (status, _) = post_json(&alice, &format!("/dm/bob/calls/{id}/hangup"), json!({})).await;
    assert_eq!(status, 204);
    for (who, cursor) in [(&alice, &mut a), (&bob, &mut b)] {
        let ended = until(who, cursor, "ended").await;
        assert_eq!(ended["outcome"], "completed");
        assert_eq!(ended["record"], "Call with bob · less than a minute");
    }
    // Hanging up again, or from the other side, finds it over: one record.
    let (status, _) = post_json(&bob, &format!("/dm/alice/calls/{id}/hangup"), json!({})).await;
    assert_eq!(status, 409);
    let (status, _) = post_json(&bob, &format!("/dm/alice/calls/{id}/alive"), json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(
        records(&bob, "/dm/alice").await,
        ["Call with bob · less than a minute"]
    );
    assert_eq!(records(&alice, "/dm/bob").await.len(), 1);
    // The record is the conversation's, not an editable message of Alice's.
    let page = alice.get("/dm/bob").await;
    let seq = page.message_ids()[0];
    let edit = alice
        .post(
            &format!("/dm/bob/messages/{seq}/edit"),
            &[("body", "Call with bob · 3 hours")],
        )
        .await;
    assert_eq!(edit.status, 403);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM messages WHERE body LIKE '%3 hours%'")
            .await,
        0
    );
    // Signalling never reaches the database: only the call and its record are stored.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM messages WHERE body LIKE '%v=0%'")
            .await,
        0
    );
}

async fn declined_missed_and_busy_calls_are_recorded(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let carol = app.member("carol").await;
    let mut a = String::new();

    let id = call(&alice, "bob").await;
    let (status, _) = post_json(&bob, &format!("/dm/alice/calls/{id}/decline"), json!({})).await;
    assert_eq!(status, 204);
    let ended = until(&alice, &mut a, "ended").await;
    assert_eq!(ended["outcome"], "declined");

    // Alice gives up before Bob answers: a missed call, and Bob can no longer answer it.
    let id = call(&alice, "bob").await;
    let (status, _) = post_json(&alice, &format!("/dm/bob/calls/{id}/hangup"), json!({})).await;
    assert_eq!(status, 204);
    let (status, _) = post_json(&bob, &format!("/dm/alice/calls/{id}/accept"), json!({})).await;
    assert_eq!(status, 409);

    // While Alice and Bob talk, Carol calling Bob is told he is busy, and he sees she called.
    let id = call(&alice, "bob").await;
    let (status, _) = post_json(&bob, &format!("/dm/alice/calls/{id}/accept"), json!({})).await;
    assert_eq!(status, 204);
    let (status, body) = post_json(&carol, "/dm/bob/calls", json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(body["busy"], true);
    assert_eq!(body["error"], "bob is in another call.");
    // And Alice, in a call, cannot start another.
    let (status, body) = post_json(&alice, "/dm/carol/calls", json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "You are in a call already.");
    post_json(&bob, &format!("/dm/alice/calls/{id}/hangup"), json!({})).await;

    // The record counts as news for the person called.
    let home = bob.get("/").await;
    assert_eq!(
        home.attr("#people-list a[href='/dm/carol']", "data-unread")
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        records(&bob, "/dm/alice").await,
        [
            "Call declined by bob",
            "Missed call from alice",
            "Call with bob · less than a minute"
        ]
    );
    assert_eq!(
        records(&bob, "/dm/carol").await,
        ["Missed call from carol (bob was in another call)"]
    );
}

async fn only_the_two_people_of_the_call_can_signal(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let carol = app.member("carol").await;
    let id = call(&alice, "bob").await;

    // Carol, through either of her own conversations with them: no such call.
    for path in [
        format!("/dm/bob/calls/{id}/accept"),
        format!("/dm/alice/calls/{id}/accept"),
        format!("/dm/alice/calls/{id}/decline"),
        format!("/dm/bob/calls/{id}/hangup"),
        format!("/dm/alice/calls/{id}/alive"),
    ] {
        let (status, _) = post_json(&carol, &path, json!({})).await;
        assert_eq!(status, 404, "{path}");
    }
    let ice = json!({ "type": "ice", "candidate": { "candidate": "candidate:1 1 udp 1 10.0.0.9 9 typ host" } });
    let (status, _) = post_json(&carol, &format!("/dm/alice/calls/{id}/signal"), ice.clone()).await;
    assert_eq!(status, 404);
    // Someone logged out (with a valid CSRF token from the login page): nothing is here.
    let stranger = Client::new(&app.base).await;
    let (status, _) = post_json(
        &stranger,
        &format!("/dm/alice/calls/{id}/hangup"),
        json!({}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = post_json(&stranger, "/dm/alice/calls", json!({})).await;
    assert_eq!(status, 404);
    // Calls are for private conversations; an unknown or unreadable id is no call.
    alice.post("/rooms", &[("name", "general")]).await;
    let (status, _) = post_json(&alice, "/rooms/general/calls", json!({})).await;
    assert_eq!(status, 404);
    for path in ["/dm/bob/calls/999999/hangup", "/dm/bob/calls/abc/hangup"] {
        let (status, _) = post_json(&alice, path, json!({})).await;
        assert_eq!(status, 404, "{path}");
    }
    // Nobody can call themselves or someone who does not exist.
    let (status, _) = post_json(&alice, "/dm/alice/calls", json!({})).await;
    assert_eq!(status, 404);
    let (status, _) = post_json(&alice, "/dm/nobody/calls", json!({})).await;
    assert_eq!(status, 404);
    // Carol's pages heard nothing of it.
    assert!(
        signals_now(&carol).await.is_empty(),
        "carol's feed got signals"
    );
    // And the call is still ringing for Bob, untouched by all that.
    let (status, _) = post_json(&bob, &format!("/dm/alice/calls/{id}/accept"), json!({})).await;
    assert_eq!(status, 204);
}

/// What a new page of `c` would be given at once: every signal kept for them.
async fn signals_now(c: &Client) -> Vec<Value> {
    let poll = tokio::time::timeout(Duration::from_millis(800), signals(c, ""));
    match poll.await {
        Ok(Some((list, _))) => list,
        _ => Vec::new(),
    }
}

async fn bad_signals_are_refused_and_change_nothing(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let id = call(&alice, "bob").await;
    let signal = format!("/dm/bob/calls/{id}/signal");
    let offer = json!({ "type": "offer", "sdp": "v=0" });

    // Before it is answered there is nothing to connect.
    let (status, _) = post_json(&alice, &signal, offer.clone()).await;
    assert_eq!(status, 409);
    // Only the person called answers; only once.
    let (status, _) = post_json(&alice, &format!("/dm/bob/calls/{id}/accept"), json!({})).await;
    assert_eq!(status, 409);
    let (status, _) = post_json(&bob, &format!("/dm/alice/calls/{id}/accept"), json!({})).await;
    assert_eq!(status, 204);
    let (status, _) = post_json(&bob, &format!("/dm/alice/calls/{id}/accept"), json!({})).await;
    assert_eq!(status, 409);
    let (status, _) = post_json(&bob, &format!("/dm/alice/calls/{id}/decline"), json!({})).await;
    assert_eq!(status, 409);

    for bad in [
        json!({}),
        json!({ "type": "offer" }),
        json!({ "type": "shout", "sdp": "v=0" }),
        json!({ "type": "ice", "candidate": "not an object" }),
        json!([1, 2, 3]),
    ] {
        let (status, body) = post_json(&alice, &signal, bad.clone()).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let resp = alice
        .http
        .post(format!("{}{signal}", alice.base))
        .header("X-CSRF-Token", &alice.csrf)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let huge = json!({ "type": "offer", "sdp": "a".repeat(16 * 1024 + 1) });
    let (status, body) = post_json(&alice, &signal, huge).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"], "A session description is at most 16 KB.");
    let long = json!({ "type": "ice", "candidate": { "candidate": "c".repeat(3000) } });
    assert_eq!(
        post_json(&bob, &format!("/dm/alice/calls/{id}/signal"), long)
            .await
            .0,
        413
    );
    // The callee does not offer; the caller does not answer.
    let (status, _) = post_json(&bob, &format!("/dm/alice/calls/{id}/signal"), offer).await;
    assert_eq!(status, 409);
    let answer = json!({ "type": "answer", "sdp": "v=0" });
    assert_eq!(post_json(&alice, &signal, answer).await.0, 409);
    // None of it reached Bob's pages.
    let got = signals_now(&bob).await;
    let kinds: Vec<&str> = got.iter().filter_map(|s| s["type"].as_str()).collect();
    assert_eq!(kinds, ["ring", "accepted"], "{got:?}");
}

async fn a_page_opened_while_it_rings_rings_and_one_opened_after_does_not(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let id = call(&alice, "bob").await;
    // A page Bob opens now gets the ring.
    let got = signals_now(&bob).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["type"], "ring");
    assert_eq!(got[0]["call"], id);
    // Once Alice gives up, a new page gets the ring with its end (and calls.js rings for
    // neither); the cursor then holds the page to what is new.
    post_json(&alice, &format!("/dm/bob/calls/{id}/hangup"), json!({})).await;
    let (list, cursor) = signals(&bob, "").await.expect("signals");
    let kinds: Vec<&str> = list.iter().filter_map(|s| s["type"].as_str()).collect();
    assert_eq!(kinds, ["ring", "ended"]);
    let again = tokio::time::timeout(Duration::from_millis(800), signals(&bob, &cursor)).await;
    assert!(
        again.is_err() || again.unwrap().is_none(),
        "nothing new after the cursor"
    );
}

async fn two_people_calling_each_other_at_once_get_one_call(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    alice.get("/dm/bob").await;
    for _ in 0..5 {
        let (a, b) = tokio::join!(
            post_json(&alice, "/dm/bob/calls", json!({})),
            post_json(&bob, "/dm/alice/calls", json!({}))
        );
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert_eq!(statuses, [201, 409], "{a:?} {b:?}");
        let (caller, callee, id) = match a.0 {
            201 => (&alice, "bob", a.1["call"].as_i64().unwrap()),
            _ => (&bob, "alice", b.1["call"].as_i64().unwrap()),
        };
        let (status, _) = post_json(
            caller,
            &format!("/dm/{callee}/calls/{id}/hangup"),
            json!({}),
        )
        .await;
        assert_eq!(status, 204);
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM calls WHERE state <> 'ended'")
            .await,
        0
    );
}

async fn a_call_you_took_part_in_is_not_unread_but_a_missed_one_is(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let id = call(&alice, "bob").await;
    post_json(&bob, &format!("/dm/alice/calls/{id}/decline"), json!({})).await;
    assert_eq!(unread_from_alice(&bob).await.as_deref(), Some("0"));
    let id = call(&alice, "bob").await;
    post_json(&bob, &format!("/dm/alice/calls/{id}/accept"), json!({})).await;
    post_json(&alice, &format!("/dm/bob/calls/{id}/hangup"), json!({})).await;
    assert_eq!(unread_from_alice(&bob).await.as_deref(), Some("0"));
    let id = call(&alice, "bob").await;
    post_json(&alice, &format!("/dm/bob/calls/{id}/hangup"), json!({})).await;
    assert_eq!(
        unread_from_alice(&bob).await.as_deref(),
        Some("1"),
        "a missed call is news"
    );
}

async fn unread_from_alice(c: &Client) -> Option<String> {
    c.get("/")
        .await
        .attr("#people-list a[href='/dm/alice']", "data-unread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_get_the_ice_servers_with_their_own_turn_credentials() {
    let app = TestApp::sqlite_with(|s| {
        s.ice_servers = vec![
            "stun:turn.example.org:3478".into(),
            "turn:turn.example.org:3478".into(),
        ];
        s.turn_secret = Some("shared-with-coturn".into());
    })
    .await;
    let alice = app.member("alice").await;
    let resp = alice.get("/calls/ice").await;
    assert_eq!(resp.status, 200);
    let got: Value = serde_json::from_str(&resp.body).unwrap();
    let servers = got["iceServers"].as_array().unwrap();
    assert_eq!(servers[0], json!({ "urls": "stun:turn.example.org:3478" }));
    let user = servers[1]["username"].as_str().unwrap();
    let (expires, id) = user.split_once(':').unwrap();
    assert!(expires.parse::<i64>().unwrap() > parley::now_ms() / 1000 + 3600);
    assert!(id.parse::<i64>().is_ok());
    assert_eq!(servers[1]["credential"].as_str().unwrap().len(), 28);
    // Not for anyone logged out.
    let stranger = Client::new(&app.base).await;
    assert_ne!(stranger.get("/calls/ice").await.status, 200);
}
