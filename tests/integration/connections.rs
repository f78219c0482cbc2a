//! Connections cannot take the server: idle and slow ones are closed by their deadlines, past
//! the caps new ones are refused at once, and none of it stops people chatting.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::on_both_engines;
use crate::support::{Client, TestApp};

on_both_engines!(
    idle_and_slow_connections_are_closed_by_their_deadlines_while_people_chat,
    a_held_poll_is_not_idle_and_a_kept_alive_connection_is_closed_when_it_is,
    connections_past_the_caps_are_refused_at_once_and_the_open_ones_go_on,
    a_body_sent_too_slowly_is_cut_off,
    an_upload_that_stops_arriving_is_cut_off,
);

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

async fn alice_in_general(app: &TestApp) -> Client {
    let alice = app.member("alice").await;
    let page = alice.post("/rooms", &[("name", "general")]).await;
    assert_eq!(page.status, 303);
    alice
}

/// Whether the server has closed `conn`: it reads to the end (or a reset) within `within`.
async fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, conn.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

async fn idle_and_slow_connections_are_closed_by_their_deadlines_while_people_chat(
    app: &mut TestApp,
) {
    app.restart_with(|s| {
        s.header_timeout_secs = 2;
        s.idle_timeout_secs = 2;
        s.max_connections_per_addr = 0;
    })
    .await;
    let alice = alice_in_general(app).await;
    let started = Instant::now();
    let mut idle = Vec::new();
    let mut slow = Vec::new();
    for i in 0..4000 {
        let mut conn = TcpStream::connect(addr(app)).await.expect("connect");
        if i % 2 == 0 {
            idle.push(conn);
        } else {
            conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
            slow.push(conn);
        }
    }
    // The slow ones go on dribbling their heads, a byte each half second.
    let dribble = tokio::spawn(async move {
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            for conn in &mut slow {
                let _ = conn.write_all(b"X").await;
            }
        }
        slow
    });
    let mut sends = Vec::new();
    for i in 0..100 {
        let t = Instant::now();
        alice
            .say("/rooms/general", &format!("still here {i}"))
            .await;
        sends.push(t.elapsed());
    }
    sends.sort();
    assert!(
        sends[sends.len() * 99 / 100 - 1] <= Duration::from_millis(100),
        "send p99 {:?}",
        sends.last()
    );
    let mut fresh = app.client().await;
    assert_eq!(
        fresh.login("alice", crate::support::PASSWORD).await.status,
        303
    );
    let mut slow = dribble.await.unwrap();
    // Every one is closed by its deadline (2 s from its accept), with a little slack.
    let by = started + Duration::from_secs(2) + Duration::from_millis(2500);
    for conn in idle.iter_mut().chain(slow.iter_mut()) {
        let left = by.saturating_duration_since(Instant::now());
        assert!(
            closed_within(conn, left).await,
            "still open at {:?}",
            started.elapsed()
        );
    }
}

async fn a_held_poll_is_not_idle_and_a_kept_alive_connection_is_closed_when_it_is(
    app: &mut TestApp,
) {
    app.restart_with(|s| {
        s.idle_timeout_secs = 1;
        s.poll_timeout_secs = 3;
    })
    .await;
    let alice = alice_in_general(app).await;
    // A poll held three times the idle deadline answers as usual.
    let started = Instant::now();
    let poll = alice.poll("/rooms/general", 0).await;
    assert_eq!(poll.status, 204);
    assert!(started.elapsed() >= Duration::from_millis(2900));
    // A connection that made one request and then said nothing is closed.
    let mut conn = TcpStream::connect(addr(app)).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let idle_from = Instant::now();
    assert!(closed_within(&mut conn, Duration::from_secs(3)).await);
    assert!(
        idle_from.elapsed() >= Duration::from_millis(900),
        "not before its deadline"
    );
}

async fn connections_past_the_caps_are_refused_at_once_and_the_open_ones_go_on(app: &mut TestApp) {
    app.restart_with(|s| {
        s.max_connections = 12;
        s.max_connections_per_addr = 0;
    })
    .await;
    let alice = app.member("alice").await;
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..20 {
        let mut conn = TcpStream::connect(addr(app)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut buf = vec![0u8; 512];
        match tokio::time::timeout(Duration::from_millis(200), conn.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                assert!(text.starts_with("HTTP/1.1 503"), "{text}");
                assert!(text.contains("Retry-After: 1"));
                refused += 1;
            }
            _ => open.push(conn),
        }
    }
    assert!(refused >= 8, "{refused} refused, {} open", open.len());
    // alice's connection, open before, goes on.
    assert_eq!(alice.get("/").await.status, 200);
    drop(open);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.client().await.get("/login").await.status,
        200,
        "room again"
    );

    // One address may hold only so many.
    app.restart_with(|s| s.max_connections_per_addr = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr(app)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = TcpStream::connect(addr(app)).await.unwrap();
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(1), fourth.read(&mut buf))
        .await
        .expect("answered at once")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 503"));
}

async fn a_body_sent_too_slowly_is_cut_off(app: &mut TestApp) {
    app.restart_with(|s| s.body_timeout_secs = 1).await;
    let token = "ab".repeat(32);
    let mut conn = TcpStream::connect(addr(app)).await.unwrap();
    let head = format!(
        "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: parley_csrf={token}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nusername=al"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), conn.read(&mut buf))
        .await
        .expect("answered by the deadline")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

async fn an_upload_that_stops_arriving_is_cut_off(app: &mut TestApp) {
    app.restart_with(|s| s.body_timeout_secs = 1).await;
    let alice = alice_in_general(app).await;
    let (session, token) = (alice.cookie("parley_session").unwrap(), alice.token());
    let mut conn = TcpStream::connect(addr(app)).await.unwrap();
    let head = format!(
        "POST /rooms/general/attachments HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Cookie: parley_session={session}; parley_csrf={token}\r\nX-CSRF-Token: {token}\r\n\
         HX-Request: true\r\nContent-Type: multipart/form-data; boundary=XYZ\r\n\
         Content-Length: 100000\r\n\r\n--XYZ\r\nContent-Disposition: form-data; name=\"file\"; \
         filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nthe first bytes, then nothing"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .expect("answered soon after the deadline")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("The upload stopped arriving."), "{text}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(app.count("SELECT COUNT(*) FROM attachments").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 0);
}
