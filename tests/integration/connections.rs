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
    the_server_side_of_a_connection_probes_a_vanished_peer_with_tcp_keepalive,
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

/// The kernel's view of the server's end of a connection from `client_port` to `server_port`:
/// the `tr` (timer) field of its line in /proc/net/tcp, or None when there is no such socket.
/// 0 is no timer, 1 retransmission, 2 the keepalive timer, 4 a zero-window probe.
#[cfg(target_os = "linux")]
fn server_side_timer(server_port: u16, client_port: u16) -> Option<u8> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let port = |field: &str| u16::from_str_radix(field.rsplit(':').next()?, 16).ok();
        (port(fields[1])? == server_port && port(fields[2])? == client_port)
            .then(|| fields[5].split(':').next()?.parse().ok())
            .flatten()
    })
}

/// A peer that vanishes without a FIN (a laptop lid closed, a NAT that forgot the flow) would
/// hold a poll's connection forever: the server's end has the keepalive timer armed.
async fn the_server_side_of_a_connection_probes_a_vanished_peer_with_tcp_keepalive(
    app: &mut TestApp,
) {
    #[cfg(target_os = "linux")]
    {
        let alice = alice_in_general(app).await;
        let (session, token) = (alice.cookie("parley_session").unwrap(), alice.token());
        let mut conn = TcpStream::connect(addr(app)).await.unwrap();
        let head = format!(
            "GET /rooms/general/messages?after=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Cookie: parley_session={session}; parley_csrf={token}\r\nHX-Request: true\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let server_port = conn.peer_addr().unwrap().port();
        let client_port = conn.local_addr().unwrap().port();
        assert_eq!(
            server_side_timer(server_port, client_port),
            Some(2),
            "the held poll's socket has its keepalive timer armed"
        );
    }
    #[cfg(not(target_os = "linux"))]
    let _ = app;
}

/// The resident memory of process `pid`, in MB (Linux).
#[cfg(target_os = "linux")]
fn resident_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb / 1024.0
}

/// Thousands of connections that each send half a request head take memory (a read buffer and a
/// task each); once they are gone, a real `parley serve` gives that memory back to the system
/// instead of keeping it for good.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_taken_by_a_flood_of_connections_is_given_back_when_it_ends() {
    use crate::multiprocess::Server;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/flood.db?mode=rwc", dir.path().display());
    let server = Server::start_with(
        &url,
        &[
            ("PARLEY_MAX_CONNECTIONS_PER_ADDR", "0"),
            ("PARLEY_HEADER_TIMEOUT_SECS", "120"),
        ],
    )
    .await;
    let target = server.base.trim_start_matches("http://").to_owned();
    let client = reqwest::Client::new();
    for _ in 0..20 {
        let page = client.get(format!("{}/login", server.base)).send().await;
        assert_eq!(page.unwrap().status(), 200);
    }
    let before = resident_mb(server.pid());

    // Each sends 8 KB of request head and stops short of its end.
    let head = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n",
        "a".repeat(8 * 1024)
    );
    let mut flood = Vec::new();
    for _ in 0..3000 {
        let mut conn = TcpStream::connect(&target).await.expect("connect");
        conn.write_all(head.as_bytes()).await.unwrap();
        flood.push(conn);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = resident_mb(server.pid());
    assert!(
        during >= before + 20.0,
        "the flood took memory: {before:.1} MB before, {during:.1} MB during"
    );
    drop(flood);

    // Within the trimmer's period (10 s) and some, back within a fifth of what the flood took.
    let allowed = before + (during - before) * 0.2;
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut after = resident_mb(server.pid());
    while after > allowed && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = resident_mb(server.pid());
    }
    assert!(
        after <= allowed,
        "{before:.1} MB before, {during:.1} MB during the flood, still {after:.1} MB after it"
    );
    assert_eq!(
        client
            .get(format!("{}/login", server.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
