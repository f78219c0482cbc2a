//! Several `parley serve` processes on one PostgreSQL: messages cross processes through
//! LISTEN/NOTIFY, privacy holds across them, restarts lose nothing, and a database that goes
//! away is survived. PostgreSQL only; skipped (loudly) when none is reachable.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

use crate::support::{Client, fresh_postgres_database, insert_member, log_in, postgres_url};

/// A `parley serve` process of its own.
pub struct Server {
    child: Child,
    pub base: String,
    /// Its attachments' directory, unless it was given a bucket.
    _files: tempfile::TempDir,
}

impl Server {
    async fn start(database_url: &str) -> Server {
        Self::start_with(database_url, &[]).await
    }

    /// A server with more environment variables (its settings) than the database's.
    pub async fn start_with(database_url: &str, env: &[(&str, &str)]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let files = tempfile::tempdir().expect("a temporary directory");
        let child = Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .env("DATABASE_URL", database_url)
            .env("PARLEY_POLL_TIMEOUT_SECS", "3")
            .env("RUST_LOG", "warn")
            .env("PARLEY_FILES_DIR", files.path())
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start parley serve");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = reqwest::get(format!("{base}/healthz")).await
                && r.status() == 200
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "parley did not come up at {base}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Server {
            child,
            base,
            _files: files,
        }
    }

    /// Its process id, to read its memory from /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        // SIGTERM, as a service manager would: the graceful path.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A member, put straight into the database at `url`, logged in through the server at `base`.
async fn member(url: &str, base: &str, name: &str) -> Client {
    insert_member(url, name).await;
    log_in(base, name).await
}

async fn database() -> Option<String> {
    let admin = postgres_url().await?;
    Some(fresh_postgres_database(&admin).await.0)
}

/// Servers A and B on one database; Alice on A and Bob on B, both in the room `general`.
async fn alice_on_a_and_bob_on_b_in_general(url: &str) -> (Server, Server, Client, Client) {
    let a = Server::start(url).await;
    let b = Server::start(url).await;
    let alice = member(url, &a.base, "alice").await;
    let bob = member(url, &b.base, "bob").await;
    alice.post("/rooms", &[("name", "general")]).await;
    bob.post("/rooms", &[("name", "general")]).await;
    (a, b, alice, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_through_one_server_reaches_a_listener_on_another() {
    let Some(url) = database().await else { return };
    let (_a, b, alice, bob) = alice_on_a_and_bob_on_b_in_general(&url).await;
    let started = Instant::now();
    let (poll, _) = tokio::join!(bob.poll("/rooms/general", 0), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        alice.say("/rooms/general", "across servers").await
    });
    assert_eq!(poll.message_ids(), vec![1]);
    assert_eq!(poll.select("#m-1 .body"), ["across servers"]);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "woken by NOTIFY, not by the hold ending"
    );

    // A session made on one server is good on the other (sessions live in the database).
    let cookie = alice.cookie("parley_session").unwrap();
    let resp = reqwest::Client::new()
        .get(format!("{}/", b.base))
        .header("cookie", format!("parley_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Private stays private across servers.
    let carol = member(&url, &b.base, "carol").await;
    alice.say("/dm/bob", "only for bob").await;
    let bobs = bob.poll("/dm/alice", 0).await;
    assert_eq!(bobs.select(".message .body"), ["only for bob"]);
    assert_eq!(carol.poll("/dm/bob", 0).await.status, 204);
    assert!(!carol.get("/dm/alice").await.body.contains("only for bob"));

    // Presence and unread counts come from the database, so the other server sees them.
    let home = bob.get("/").await;
    assert_eq!(
        home.select("#people-list a[href='/dm/alice'] .badge"),
        ["1 unread"],
        "bob's unread DM, counted on B"
    );
    let people = bob.get_htmx("/people").await;
    assert_eq!(people.online("alice"), Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_logged_out_through_one_server_stops_working_on_the_others_at_once() {
    let Some(url) = database().await else { return };
    let (_a, b, alice, _bob) = alice_on_a_and_bob_on_b_in_general(&url).await;
    let cookie = alice.cookie("parley_session").unwrap();
    let on_b = |path: &'static str| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!("{}{path}", b.base))
            .header("cookie", format!("parley_session={cookie}"))
            .send()
    };
    // B has the session cached.
    assert_eq!(on_b("/").await.unwrap().status(), 200);
    assert_eq!(alice.post("/logout", &[]).await.status, 303);
    // Told by NOTIFY, B reads the session again: it is gone.
    let started = Instant::now();
    loop {
        if on_b("/").await.unwrap().status() == 303 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "B still serves a cookie logged out on A"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A page's poll on B takes the short way in, and B's connection remembers what it was found to
/// be (`web::repoll`). A logout through A must end that at once too, though B was only told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_polling_one_server_the_short_way_stops_when_its_session_ends_on_another() {
    let Some(url) = database().await else { return };
    let token = crate::metrics::TOKEN;
    let a = Server::start(&url).await;
    let b = Server::start_with(&url, &[("PARLEY_METRICS_TOKEN", token)]).await;
    let alice = member(&url, &a.base, "alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    alice.say("/rooms/general", "hello").await;
    // Alice's page on B: her session, B's own CSRF cookie, one kept-alive connection.
    let on_b = Client::new(&b.base).await;
    let session = alice.cookie("parley_session").expect("alice's session");
    on_b.add_cookie(&format!("parley_session={session}"));
    assert_eq!(on_b.get("/rooms/general").await.status, 200);
    let short_polls = || async {
        crate::metrics::value(
            &crate::metrics::scrape_at(&b.base).await,
            "parley_short_polls_total",
        )
    };
    let poll = "/rooms/general/messages?after=0";
    for _ in 0..2 {
        let page = on_b.get_htmx(poll).await;
        assert_eq!(page.select(".message .body"), ["hello"]);
    }
    assert_eq!(short_polls().await, 2.0, "both took the short way");
    assert_eq!(alice.post("/logout", &[]).await.status, 303);
    let started = Instant::now();
    loop {
        let page = on_b.get_htmx(poll).await;
        if page.status == 401 {
            break;
        }
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "B's short way still answers a session logged out on A"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_on_two_servers_give_every_listener_every_message_in_order() {
    let Some(url) = database().await else { return };
    let a = Server::start(&url).await;
    let b = Server::start(&url).await;
    let mut senders = Vec::new();
    for (i, server) in [&a, &b, &a, &b, &a, &b].iter().enumerate() {
        let c = member(&url, &server.base, &format!("sender{i}")).await;
        c.post("/rooms", &[("name", "busy")]).await;
        senders.push(c);
    }
    let listeners = [
        member(&url, &a.base, "listener_a").await,
        member(&url, &b.base, "listener_b").await,
    ];
    const EACH: usize = 20;
    let total = senders.len() * EACH;
    async fn listen(c: &Client, total: usize) -> Vec<i64> {
        {
            let mut seen: Vec<i64> = Vec::new();
            let mut cursor = 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            while seen.len() < total && Instant::now() < deadline {
                let page = c.poll("/rooms/busy", cursor).await;
                if page.status != 200 {
                    continue;
                }
                let ids = page.message_ids();
                assert_eq!(
                    ids.first().copied(),
                    Some(cursor + 1),
                    "no gap after {cursor}: {ids:?}"
                );
                assert!(
                    ids.windows(2).all(|w| w[1] == w[0] + 1),
                    "in order: {ids:?}"
                );
                cursor = *ids.last().unwrap();
                seen.extend(ids);
            }
            seen
        }
    }
    let send =
        futures_util::future::join_all(senders.iter().enumerate().map(|(s, c)| async move {
            for i in 0..EACH {
                c.say("/rooms/busy", &format!("s{s} m{i}")).await;
            }
        }));
    let (la, lb, _) = tokio::join!(
        listen(&listeners[0], total),
        listen(&listeners[1], total),
        send
    );
    let expected: Vec<i64> = (1..=total as i64).collect();
    assert_eq!(la, expected);
    assert_eq!(lb, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_one_server_loses_nothing() {
    let Some(url) = database().await else { return };
    let mut a = Server::start(&url).await;
    let b = Server::start(&url).await;
    let alice = member(&url, &a.base, "alice").await;
    let bob = member(&url, &b.base, "bob").await;
    alice.post("/rooms", &[("name", "general")]).await;
    alice.say("/rooms/general", "one").await;
    a.stop();
    // While A is down, B keeps taking messages.
    bob.say("/rooms/general", "two").await;
    let a2 = Server::start(&url).await;
    let alice = log_in(&a2.base, "alice").await;
    let page = alice.poll("/rooms/general", 1).await;
    assert_eq!(page.message_ids(), vec![2]);
    let (poll, _) = tokio::join!(alice.poll("/rooms/general", 2), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        bob.say("/rooms/general", "three").await
    });
    assert_eq!(poll.message_ids(), vec![3]);
}

#[tokio::test]
async fn a_database_that_is_down_at_start_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env(
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:{port}/parley"),
        )
        .output()
        .expect("run parley");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot open the database"), "{stderr}");
    assert!(!stderr.contains("panicked"));
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// A TCP proxy in front of PostgreSQL that the test can cut and restore.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(tokio::sync::watch::channel(0u64).0);
        let (c, g) = (cut.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let mut cut_signal = g.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_signal.changed() => {}
                    }
                });
            }
        });
        Proxy {
            port,
            cut,
            generation,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_goes_away_gives_503_and_the_server_recovers_by_itself() {
    let Some(url) = database().await else { return };
    let rest = url.split_once("://").unwrap().1;
    let (auth_host, db_name) = rest.split_once('/').unwrap();
    let (user, host) = auth_host.split_once('@').unwrap_or(("postgres", auth_host));
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    let proxy = Proxy::start(host).await;
    let via_proxy = format!("postgres://{user}@127.0.0.1:{}/{db_name}", proxy.port);

    let a = Server::start(&via_proxy).await;
    let b = Server::start(&url).await;
    let alice = member(&url, &a.base, "alice").await;
    let bob = member(&url, &b.base, "bob").await;
    alice.post("/rooms", &[("name", "general")]).await;
    alice.say("/rooms/general", "before the outage").await;

    proxy.cut();
    let page = alice.get("/rooms/general").await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.body.contains("cannot reach its database"));
    let health = reqwest::get(format!("{}/healthz", a.base)).await.unwrap();
    assert_eq!(health.status(), 503);
    // Meanwhile B takes a message that A's listener cannot hear about.
    bob.say("/rooms/general", "during the outage").await;

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{}/healthz", a.base))
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(Instant::now() < deadline, "A did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let page = alice.poll("/rooms/general", 1).await;
    assert_eq!(
        page.message_ids(),
        vec![2],
        "what was sent during the outage is delivered"
    );
    // And live delivery across servers works again once A's listener has reconnected.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 2;
    loop {
        let (poll, _) = tokio::join!(alice.poll("/rooms/general", n), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            bob.say("/rooms/general", "after the outage").await
        });
        n += 1;
        if poll.message_ids().first() == Some(&n) && poll.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cross-server delivery did not come back"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_staff_delete_through_one_server_is_gone_from_the_others_too() {
    let Some(url) = database().await else { return };
    let (a, _b, alice, bob) = alice_on_a_and_bob_on_b_in_general(&url).await;
    // Bob listens on B while Alice sends through A: B reads what the NOTIFYs announce into its
    // room window.
    let (poll, _) = tokio::join!(bob.poll("/rooms/general", 0), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        alice.say("/rooms/general", "keep me").await;
        alice.say("/rooms/general", "spam to delete").await;
    });
    assert_eq!(poll.select("#m-1 .body"), ["keep me"]);
    let poll = bob.poll("/rooms/general", 1).await;
    assert_eq!(poll.select("#m-2 .body"), ["spam to delete"]);

    insert_member(&url, "boss").await;
    let db = sqlx::postgres::PgPool::connect(&url).await.unwrap();
    sqlx::query("UPDATE users SET is_staff = 1, is_superuser = 1 WHERE username = 'boss'")
        .execute(&db)
        .await
        .unwrap();
    let boss = log_in(&a.base, "boss").await;
    let id: i64 = sqlx::query_scalar("SELECT id FROM messages WHERE body = 'spam to delete'")
        .fetch_one(&db)
        .await
        .unwrap();
    let page = boss
        .post(&format!("/admin/messages/{id}/delete/"), &[("post", "yes")])
        .await;
    assert_eq!(page.status, 303, "{}", page.body);

    // A listener on B that had not yet received it must not get it from B's memory: it is told
    // of the deletion instead.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let poll = bob.poll("/rooms/general", 1).await;
    assert_eq!(poll.status, 200, "{}", poll.body);
    assert!(!poll.body.contains("spam to delete"), "{}", poll.body);
    assert_eq!(poll.attr("#m-2", "hx-swap-oob").as_deref(), Some("delete"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_and_a_reaction_made_through_one_server_reach_a_poll_held_on_another() {
    let Some(url) = database().await else { return };
    let (_a, _b, alice, bob) = alice_on_a_and_bob_on_b_in_general(&url).await;
    alice.say("/rooms/general", "first take").await;
    // Bob's server has the room's window from this poll on.
    assert_eq!(bob.poll("/rooms/general", 0).await.message_ids(), vec![1]);
    let (poll, edited) = tokio::join!(bob.poll("/rooms/general", 1), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        alice
            .post_htmx("/rooms/general/messages/1/edit", &[("body", "second take")])
            .await
    });
    assert_eq!(edited.status, 200);
    assert_eq!(
        poll.attr("#m-1", "hx-swap-oob").as_deref(),
        Some("outerHTML")
    );
    assert_eq!(poll.select("#m-1 .body"), ["second take"]);
    let (poll, _) = tokio::join!(bob.poll("/rooms/general", 2), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        alice
            .post_htmx("/rooms/general/messages/1/reactions", &[("emoji", "🎉")])
            .await
    });
    // Rebuilt from the database on the other server, the change comes as the message's current
    // state, reactions included.
    assert_eq!(
        poll.attr("#m-1", "hx-swap-oob").as_deref(),
        Some("outerHTML")
    );
    assert_eq!(poll.select("#m-1 #r-1 .chip .count"), ["1"]);
}

/// Bob's feed, on his server, as of now: (status, body) once it answers.
async fn feed(bob: &Client) -> (u16, String) {
    let url = format!("{}/feed?t={}", bob.base, parley::now_ms());
    let resp = bob
        .http
        .get(url)
        .header("HX-Request", "true")
        .send()
        .await
        .expect("feed");
    (
        resp.status().as_u16(),
        resp.text().await.unwrap_or_default(),
    )
}

/// Bob's feed while Alice, 300 ms into its hold, writes `text` at `path`.
async fn feed_while_alice_says(
    bob: &Client,
    alice: &Client,
    path: &str,
    text: &str,
) -> (u16, String) {
    let (answer, _) = tokio::join!(feed(bob), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        alice.say(path, text).await
    });
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_conversation_opened_through_one_server_reaches_a_feed_held_on_another() {
    let Some(url) = database().await else { return };
    let (_a, _b, alice, bob) = alice_on_a_and_bob_on_b_in_general(&url).await;
    // Bob's feed on B knows his rooms: a message in #general reaches it.
    let answer = feed_while_alice_says(&bob, &alice, "/rooms/general", "hello").await;
    assert_eq!(answer.0, 200);
    // Alice opens their private conversation for the first time, on A, and writes.
    let started = Instant::now();
    let (answer, _) = tokio::join!(feed(&bob), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        alice.get("/dm/bob").await;
        alice.say("/dm/bob", "a word in private").await
    });
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    let page = crate::support::Page::of_html(answer.1);
    assert_eq!(
        page.attr("#people-list a[href='/dm/alice']", "data-unread")
            .as_deref(),
        Some("1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_left_through_one_server_no_longer_wakes_a_feed_held_on_another() {
    let Some(url) = database().await else { return };
    let (a, _b, alice, bob) = alice_on_a_and_bob_on_b_in_general(&url).await;
    // Bob's feed on B is woken by #general.
    let answer = feed_while_alice_says(&bob, &alice, "/rooms/general", "hello").await;
    assert_eq!(answer.0, 200);
    // He leaves it from a tab on A.
    let bob_on_a = log_in(&a.base, "bob").await;
    bob_on_a.post("/rooms/general/leave", &[]).await;
    // What the leave itself changed (his sidebar, who is online) has been told by then.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = Instant::now();
    let answer = feed_while_alice_says(&bob, &alice, "/rooms/general", "after bob left").await;
    // Held to its end (3 s here) with nothing for him: the room is no longer his.
    assert_eq!(
        answer.0,
        204,
        "woken after {:?}: {}",
        started.elapsed(),
        answer.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_signalling_sent_through_one_server_reaches_a_page_polling_another() {
    use crate::calls::{post_json, signals};
    use serde_json::json;
    let Some(url) = database().await else { return };
    let (_a, _b, alice, bob) = alice_on_a_and_bob_on_b_in_general(&url).await;
    // Bob's page polls B, holding; Alice calls through A.
    let started = Instant::now();
    let (ring, id) = tokio::join!(signals(&bob, ""), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (status, body) = post_json(&alice, "/dm/bob/calls", json!({})).await;
        assert_eq!(status, 201, "{body}");
        body["call"].as_i64().unwrap()
    });
    let (list, mut cursor) = ring.expect("the ring reaches B");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(list[0]["type"], "ring");
    assert_eq!(list[0]["call"], id);
    // Bob answers through B; Alice's offer, bigger than one NOTIFY, crosses whole.
    let (status, _) = post_json(&bob, &format!("/dm/alice/calls/{id}/accept"), json!({})).await;
    assert_eq!(status, 204);
    let sdp = format!("v=0\r\n{}", "a=candidate:ünïcode\r\n".repeat(700));
    assert!(sdp.len() > 8000 && sdp.len() < 16 * 1024);
    let offer = json!({ "type": "offer", "sdp": sdp });
    let (status, _) = post_json(&alice, &format!("/dm/bob/calls/{id}/signal"), offer).await;
    assert_eq!(status, 204);
    let deadline = Instant::now() + Duration::from_secs(5);
    let got = loop {
        assert!(Instant::now() < deadline, "the offer did not reach B");
        if let Some((list, next)) = signals(&bob, &cursor).await {
            cursor = next;
            if let Some(offer) = list.into_iter().find(|s| s["type"] == "offer") {
                break offer;
            }
        }
    };
    assert_eq!(got["sdp"], sdp);
}

/// A plain message is announced to the other servers once, after its commit, by the server that
/// stored it (its statement does not NOTIFY: that held PostgreSQL's notification lock through
/// the commit's disk flush); one that mentions someone, or comes through the attachments route,
/// is stored in a transaction that does, and is announced once too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_announced_to_the_other_servers_exactly_once() {
    let Some(url) = database().await else { return };
    let (a, _b, alice, _bob) = alice_on_a_and_bob_on_b_in_general(&url).await;
    let mut listener = sqlx::postgres::PgListener::connect(&url).await.unwrap();
    listener.listen("parley_messages").await.unwrap();
    let room: i64 = {
        let db = sqlx::postgres::PgPool::connect(&url).await.unwrap();
        sqlx::query_scalar("SELECT id FROM rooms WHERE name = 'general'")
            .fetch_one(&db)
            .await
            .unwrap()
    };
    let plain = alice.say("/rooms/general", "plain words").await;
    let named = alice.say("/rooms/general", "over to you, @bob").await;
    // Text alone through the form a page without JavaScript sends (the attachments route).
    let page = crate::files::upload(&alice, "/rooms/general", &[], "no script here", false).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let scriptless = named + 1;
    // What the channel carries for the room's changes in the next moments ("room:seq"; joins,
    // presence and probes have notes of their own).
    let mut heard = Vec::new();
    let until = Instant::now() + Duration::from_millis(1500);
    while let Ok(Ok(note)) = tokio::time::timeout(
        until.saturating_duration_since(Instant::now()),
        listener.recv(),
    )
    .await
    {
        if let Some(seq) = note.payload().strip_prefix(&format!("{room}:")) {
            heard.push(seq.parse::<i64>().unwrap());
        }
    }
    heard.sort();
    assert_eq!(
        heard,
        vec![plain, named, scriptless],
        "each once, nothing else"
    );
    drop(a);
}
