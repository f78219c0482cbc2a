//! The access log: a real `parley serve` whose stderr is read back. One line per request, with
//! the route pattern (never the path), status, duration, size, the user once known and the
//! client as the trusted-proxy rule decides; a held poll once, when answered; JSON on request.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{insert_member, log_in};

/// A `parley serve` on a fresh SQLite database, its stderr kept in a file.
struct Logged {
    child: Child,
    base: String,
    log: std::path::PathBuf,
    database_url: String,
    _dir: tempfile::TempDir,
}

impl Logged {
    async fn start(env: &[(&str, &str)]) -> Logged {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let database_url = format!("sqlite://{}", dir.path().join("parley.db").display());
        let log = dir.path().join("stderr.log");
        let child = Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .env("DATABASE_URL", &database_url)
            .env("PARLEY_FILES_DIR", dir.path().join("files"))
            .env("PARLEY_POLL_TIMEOUT_SECS", "3")
            .env("RUST_LOG", "info")
            .env_remove("PARLEY_LOG_FORMAT")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start parley serve");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !reqwest::get(format!("{base}/healthz"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(Instant::now() < deadline, "parley did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Logged {
            child,
            base,
            log,
            database_url,
            _dir: dir,
        }
    }

    /// The access log's lines so far (after a moment for them to be written).
    async fn access_lines(&self) -> Vec<String> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .filter(|l| l.contains("parley::access"))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `field=` in a text line (up to the next space).
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    line[start..].split(' ').next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_one_line_with_its_route_status_time_size_user_and_client() {
    let server = Logged::start(&[]).await;
    insert_member(&server.database_url, "alice").await;
    let alice = log_in(&server.base, "alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    let page = alice.get("/rooms/general").await;
    assert_eq!(page.status, 200);

    let lines = server.access_lines().await;
    let room_pages: Vec<_> = lines
        .iter()
        .filter(|l| field(l, "route") == Some("/rooms/{name}"))
        .collect();
    assert_eq!(
        room_pages.len(),
        1,
        "one line for the one request: {lines:#?}"
    );
    let line = room_pages[0];
    assert!(line.contains(" INFO parley::access: "), "{line}");
    assert_eq!(field(line, "method"), Some("GET"));
    assert_eq!(field(line, "status"), Some("200"));
    assert!(field(line, "ms").unwrap().parse::<f64>().unwrap() > 0.0);
    assert_eq!(
        field(line, "bytes").unwrap().parse::<usize>().unwrap(),
        page.body.len(),
        "{line}"
    );
    assert_eq!(field(line, "user"), Some("1"), "alice is user 1: {line}");
    assert_eq!(field(line, "client"), Some("127.0.0.1"));
    assert!(!line.contains("general"), "no room name: {line}");

    // The log-in knows whom it logged in.
    let logins: Vec<_> = lines
        .iter()
        .filter(|l| field(l, "route") == Some("/login") && field(l, "method") == Some("POST"))
        .collect();
    assert_eq!(logins.len(), 1, "{lines:#?}");
    assert_eq!(field(logins[0], "status"), Some("303"));
    assert_eq!(field(logins[0], "user"), Some("1"));
    // Someone not logged in has no user.
    let anonymous = lines
        .iter()
        .find(|l| field(l, "route") == Some("/login") && field(l, "method") == Some("GET"))
        .expect("the log-in page");
    assert_eq!(field(anonymous, "user"), None, "{anonymous}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_poll_is_logged_once_when_it_is_answered() {
    let server = Logged::start(&[]).await;
    insert_member(&server.database_url, "alice").await;
    insert_member(&server.database_url, "bob").await;
    let alice = log_in(&server.base, "alice").await;
    let bob = log_in(&server.base, "bob").await;
    alice.post("/rooms", &[("name", "general")]).await;
    bob.post("/rooms", &[("name", "general")]).await;
    let polls = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .filter(|l| {
                field(l, "route") == Some("/rooms/{name}/messages")
                    && field(l, "method") == Some("GET")
            })
            .cloned()
            .collect()
    };
    let req = bob
        .http
        .get(format!("{}/rooms/general/messages?after=0", bob.base));
    let poll = tokio::spawn(async move { req.send().await.unwrap().status().as_u16() });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        polls(&server.access_lines().await),
        Vec::<String>::new(),
        "not while held"
    );
    let started = Instant::now();
    alice.say("/rooms/general", "hi").await;
    assert_eq!(poll.await.unwrap(), 200);
    let lines = polls(&server.access_lines().await);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(field(&lines[0], "status"), Some("200"));
    assert_eq!(field(&lines[0], "user"), Some("2"), "bob");
    let ms: f64 = field(&lines[0], "ms").unwrap().parse().unwrap();
    assert!(
        ms >= 500.0 && ms < 500.0 + started.elapsed().as_secs_f64() * 1000.0 + 1000.0,
        "the whole hold: {ms} ms"
    );
    assert!(field(&lines[0], "bytes").unwrap().parse::<usize>().unwrap() > 0);
}

/// A line's fields but its time (`ms`), by name.
fn fields_but_time(line: &str) -> std::collections::BTreeMap<&str, &str> {
    line.split(' ')
        .filter_map(|word| word.split_once('='))
        .filter(|(name, _)| *name != "ms")
        .collect()
}

/// A page's poll that takes the short way in (`web::repoll`) is logged as the chain logs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pages_poll_is_logged_alike_whichever_way_it_comes_in() {
    let server = Logged::start(&[("PARLEY_METRICS_TOKEN", crate::metrics::TOKEN)]).await;
    insert_member(&server.database_url, "alice").await;
    let alice = log_in(&server.base, "alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    alice.say("/rooms/general", "hi").await;
    assert_eq!(alice.get("/rooms/general").await.status, 200);
    let short_polls = || async {
        crate::metrics::value(
            &crate::metrics::scrape_at(&server.base).await,
            "parley_short_polls_total",
        )
    };
    let before = short_polls().await;
    // The chain reads `gener%61l` as `general`; the short way leaves it to the chain.
    let short = alice.get_htmx("/rooms/general/messages?after=0").await;
    let chain = alice.get_htmx("/rooms/gener%61l/messages?after=0").await;
    assert_eq!((short.status, chain.status), (200, 200));
    assert_eq!(
        short_polls().await - before,
        1.0,
        "the first took the short way"
    );
    let lines: Vec<String> = server
        .access_lines()
        .await
        .into_iter()
        .filter(|l| {
            field(l, "route") == Some("/rooms/{name}/messages") && field(l, "method") == Some("GET")
        })
        .collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(fields_but_time(&lines[0]), fields_but_time(&lines[1]));
    assert_eq!(field(&lines[0], "user"), Some("1"), "{}", lines[0]);
    assert_eq!(field(&lines[0], "client"), Some("127.0.0.1"));
    assert_eq!(
        field(&lines[0], "bytes").unwrap().parse::<usize>().unwrap(),
        short.body.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_is_the_address_the_trusted_proxy_names_and_no_one_else_does() {
    let server = Logged::start(&[("PARLEY_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let http = reqwest::Client::new();
    http.get(format!("{}/login", server.base))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    let untrusted = Logged::start(&[]).await;
    http.get(format!("{}/login", untrusted.base))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    let through_proxy = server.access_lines().await;
    let line = through_proxy
        .iter()
        .find(|l| field(l, "route") == Some("/login"))
        .expect("a line for the log-in page");
    assert_eq!(field(line, "client"), Some("203.0.113.7"), "{line}");
    let direct = untrusted.access_lines().await;
    let line = direct
        .iter()
        .find(|l| field(l, "route") == Some("/login"))
        .expect("a line for the log-in page");
    assert_eq!(field(line, "client"), Some("127.0.0.1"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_a_line() {
    let server = Logged::start(&[("PARLEY_LOG_FORMAT", "json")]).await;
    reqwest::get(format!("{}/login", server.base))
        .await
        .unwrap();
    reqwest::get(format!("{}/rooms/somewhere", server.base))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let all = std::fs::read_to_string(&server.log).unwrap();
    let mut access = Vec::new();
    for line in all.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["target"] == "parley::access" {
            access.push(v);
        }
    }
    let login = access
        .iter()
        .find(|v| v["route"] == "/login")
        .unwrap_or_else(|| panic!("the log-in page's line: {all}"));
    assert_eq!(login["level"], "INFO");
    assert_eq!(login["method"], "GET");
    assert_eq!(login["status"], 200);
    assert!(login["ms"].as_f64().is_some());
    assert!(login["bytes"].as_u64().unwrap() > 0);
    assert_eq!(login["client"], "127.0.0.1");
    assert!(login["timestamp"].is_string());
    let other = access
        .iter()
        .find(|v| v["route"] == "/rooms/{name}")
        .expect("the room's line");
    assert_eq!(other["status"], 303, "logged out: sent to log in");
    assert!(!all.contains("somewhere"), "no path in the log");
}
