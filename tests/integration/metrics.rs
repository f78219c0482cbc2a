//! `/metrics`: never public, readable with the token or on its own address, counting what
//! people do without ever naming them or their rooms.

use std::time::{Duration, Instant};

use crate::on_both_engines;
use crate::support::{Client, TestApp};

on_both_engines!(
    metrics_are_not_served_on_the_public_address_by_default,
    a_missing_or_wrong_token_is_refused_and_the_right_one_reads_the_metrics,
    metrics_are_served_on_their_own_address,
    counters_move_with_logins_sends_edits_polls_and_refusals,
    no_person_or_room_name_reaches_the_metrics,
    many_requests_of_one_login_at_once_read_it_once,
);

pub const TOKEN: &str = "a-long-scrape-token";

/// The value of the series `series` (its name and labels exactly as written), 0 when absent.
pub fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().expect("a sample is a number"))
}

/// The metrics, read from the public address with the token.
pub async fn scrape(app: &TestApp) -> String {
    scrape_at(&app.base).await
}

/// The metrics of the server at `base`, read with the token.
pub async fn scrape_at(base: &str) -> String {
    let resp = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

async fn with_token(app: &mut TestApp) {
    app.restart_with(|s| s.metrics_token = Some(TOKEN.to_owned()))
        .await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn metrics_are_not_served_on_the_public_address_by_default(app: &mut TestApp) {
    let c = app.client().await;
    assert_eq!(c.get("/metrics").await.status, 404);
    // Nor to someone who guesses a token.
    let resp = reqwest::Client::new()
        .get(format!("{}/metrics", app.base))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(!resp.text().await.unwrap().contains("parley_"));
}

async fn a_missing_or_wrong_token_is_refused_and_the_right_one_reads_the_metrics(
    app: &mut TestApp,
) {
    with_token(app).await;
    let http = reqwest::Client::new();
    let url = format!("{}/metrics", app.base);
    for auth in [None, Some("Bearer wrong"), Some("a-long-scrape-token")] {
        let mut req = http.get(&url);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        assert!(!resp.text().await.unwrap().contains("parley_"));
    }
    let resp = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "Prometheus' text format"
    );
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("# TYPE parley_http_requests_total counter"),
        "{body}"
    );
    assert!(body.contains("# TYPE process_resident_memory_bytes gauge"));
    assert!(value(&body, "process_resident_memory_bytes") > 1e6);
    assert!(
        value(
            &body,
            r#"parley_http_requests_total{method="GET",route="/metrics",status="401"}"#
        ) >= 3.0,
        "the refusals were counted: {body}"
    );
}

async fn metrics_are_served_on_their_own_address(app: &mut TestApp) {
    let port = free_port();
    app.restart_with(|s| s.metrics_addr = Some(([127, 0, 0, 1], port).into()))
        .await;
    // The server binds it as it starts, in its own task.
    let deadline = Instant::now() + Duration::from_secs(10);
    let resp = loop {
        match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            Ok(resp) => break resp,
            Err(err) => assert!(Instant::now() < deadline, "no metrics address: {err}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("parley_db_connections{state=\"idle\"}"),
        "{body}"
    );
    assert!(value(&body, "parley_db_connections_max") >= 1.0);
    // Only the metrics there; and still nothing on the public address without a token.
    let other = reqwest::get(format!("http://127.0.0.1:{port}/login"))
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    assert_eq!(app.client().await.get("/metrics").await.status, 404);
}

async fn counters_move_with_logins_sends_edits_polls_and_refusals(app: &mut TestApp) {
    app.restart_with(|s| {
        s.metrics_token = Some(TOKEN.to_owned());
        s.messages_per_minute = 3;
    })
    .await;
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    bob.post("/rooms", &[("name", "general")]).await;
    alice.post("/rooms", &[("name", "general")]).await;
    let before = scrape(app).await;
    assert_eq!(value(&before, "parley_logins_total"), 2.0, "{before}");

    let mut stranger = app.client().await;
    assert_eq!(
        stranger.login("alice", "not her password").await.status,
        401
    );

    // Bob holds a poll; alice's message answers it.
    let cursor = bob.get("/rooms/general").await;
    let after: i64 = cursor
        .attr("#poller", "data-after")
        .map_or(0, |a| a.parse().unwrap());
    let poll = {
        let req = bob
            .http
            .get(format!("{}/rooms/general/messages?after={after}", bob.base));
        tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
    };
    wait_for(app, "parley_held_polls", 1.0).await;
    let id = alice.say("/rooms/general", "hello").await;
    assert_eq!(poll.await.unwrap(), 200);
    alice
        .post_htmx(
            &format!("/rooms/general/messages/{id}/edit"),
            &[("body", "hello, edited")],
        )
        .await;
    alice.say("/rooms/general", "two").await;
    alice.say("/rooms/general", "three").await;
    let refused = alice
        .post_htmx("/rooms/general/messages", &[("body", "four")])
        .await;
    assert_eq!(refused.status, 429);

    let after = scrape(app).await;
    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(moved("parley_login_failures_total"), 1.0, "{after}");
    assert_eq!(moved("parley_logins_total"), 0.0);
    assert_eq!(moved("parley_messages_sent_total"), 3.0);
    assert_eq!(moved("parley_messages_edited_total"), 1.0);
    assert_eq!(moved("parley_deliveries_total"), 1.0);
    assert_eq!(value(&after, "parley_held_polls"), 0.0, "answered");
    let sends =
        r#"parley_http_requests_total{method="POST",route="/rooms/{name}/messages",status="200"}"#;
    assert_eq!(moved(sends), 3.0);
    let refusals =
        r#"parley_throttled_requests_total{method="POST",route="/rooms/{name}/messages"}"#;
    assert_eq!(moved(refusals), 1.0);
    let polls = r#"parley_http_request_duration_seconds_count{method="GET",route="/rooms/{name}/messages"}"#;
    assert_eq!(moved(polls), 1.0, "the held poll, counted once");
    let failures = r#"parley_http_requests_total{method="POST",route="/login",status="401"}"#;
    assert_eq!(moved(failures), 1.0);

    if app.database_url.starts_with("postgres") {
        // The NOTIFY probe (every 5 s) comes back through LISTEN.
        wait_for(app, "parley_notify_lag_seconds_count", 1.0).await;
    }
}

/// Waits (up to 12 s) until the series `series` reaches `at_least`.
pub async fn wait_for(app: &TestApp, series: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(12);
    loop {
        let now = value(&scrape(app).await, series);
        if now >= at_least {
            return;
        }
        assert!(Instant::now() < deadline, "{series} stayed at {now}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn no_person_or_room_name_reaches_the_metrics(app: &mut TestApp) {
    with_token(app).await;
    let zebediah = app.member("zebediah").await;
    let quentin = app.member("quentin").await;
    zebediah.post("/rooms", &[("name", "xylophone-club")]).await;
    zebediah.say("/rooms/xylophone-club", "secret words").await;
    zebediah.say("/dm/quentin", "psst").await;
    quentin.get("/dm/zebediah").await;
    quentin.get("/rooms/xylophone-club/messages/1").await;
    quentin.get("/search?q=secret").await;
    quentin.get("/rooms/no-such-room-ever").await;
    quentin.get("/nowhere/at/all").await;
    Client::new(&app.base)
        .await
        .login("zebediah", "wrong")
        .await;
    let body = scrape(app).await;
    for name in [
        "zebediah",
        "quentin",
        "xylophone",
        "secret",
        "psst",
        "no-such-room",
        "nowhere",
    ] {
        assert!(!body.contains(name), "{name} in the metrics:\n{body}");
    }
    assert!(
        body.contains(r#"route="/rooms/{name}/messages/{id}""#),
        "{body}"
    );
    assert!(body.contains(r#"route="/dm/{username}""#));
    assert!(
        body.contains(r#"route="(unrouted)""#),
        "the unknown address"
    );
}

/// A message wakes every tab a person has open, and they all poll again at once. When their
/// cached login has expired, one of those requests reads it; the others wait for that read,
/// rather than each reading the session, reading the user and saving the session again.
async fn many_requests_of_one_login_at_once_read_it_once(app: &mut TestApp) {
    with_token(app).await;
    // Logged in, and not asked for anything yet: nothing of this login is cached.
    let alice = app.member("alice").await;
    let before = scrape(app).await;
    let pages: Vec<_> = (0..40)
        .map(|_| {
            let req = alice.http.get(format!("{}/profile", alice.base));
            tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
        })
        .collect();
    for page in pages {
        assert_eq!(page.await.unwrap(), 200);
    }
    let after = scrape(app).await;
    let reads =
        value(&after, "parley_login_reads_total") - value(&before, "parley_login_reads_total");
    assert_eq!(reads, 1.0, "{after}");
}
