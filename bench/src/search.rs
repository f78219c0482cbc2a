//! Scenario 7: message search over a large history. The history (messages over public rooms
//! and private conversations, people) is written straight into the database with sqlx — through
//! HTTP it would take longer than the measurement — between a first start of the server (which
//! creates the schema and registers the searchers and senders over HTTP, as browsers would) and
//! a second, which is measured: searchers with varied queries while senders post messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::{AnyConnection, Connection};

use crate::bail;
use crate::browser::{Browser, Session};
use crate::http::{Conn, Result, Target, build_request, encode_form, source_ip};
use crate::load;
use crate::report::Report;
use crate::scenarios::{Ctx, drop_postgres, fresh_postgres, ms, progress, redact};
use crate::server::Server;

pub struct SearchSizes {
    pub messages: usize,
    pub rooms: usize,
    pub people: usize,
    pub searchers: usize,
    pub senders: usize,
    /// Sends per second asked of the senders together (paced, as people write): the figure is
    /// whether the server keeps up while it searches.
    pub send_rate: f64,
    pub duration: Duration,
}

/// Each searcher waits this long between searches on average: a person reading results and typing
/// again, not a loop that only measures the server's queue (20 searchers: about 20 searches a
/// second). The waits are drawn at random (exponentially, so searches arrive as independent
/// people's do) and the searchers start spread over one wait: twenty people do not press Enter
/// in the same millisecond every second, and a bench whose searchers did measured its own
/// bursts — the twentieth search of each burst queued behind the other nineteen.
const THINK: Duration = Duration::from_millis(1000);
/// No wait is longer than this many average waits (the exponential's tail, cut).
const THINK_MAX: f64 = 5.0;
const SEARCH_LIMIT: Duration = Duration::from_secs(10);
/// A word in one public message and one private conversation the searchers are not in.
const NEEDLE: &str = "zqxneedle";

pub async fn search(
    ctx: &mut Ctx,
    report: &mut Report,
    sizes: SearchSizes,
    postgres_url: Option<&str>,
) -> Result<()> {
    let dir = ctx.dir.join("search");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    search_on(
        ctx,
        report,
        ("7 search (SQLite)", "search-sqlite"),
        &url,
        &sizes,
    )
    .await?;
    let sc = "7 search (PostgreSQL)";
    let run = format!("{}_search", ctx.run);
    let Some(db) = fresh_postgres(sc, postgres_url, &run, report).await else {
        return Ok(());
    };
    let outcome = search_on(ctx, report, (sc, "search-postgres"), &db.url, &sizes).await;
    drop_postgres(sc, db, outcome).await
}

/// `names`: the scenario's name in the table, and its servers' (log files).
async fn search_on(
    ctx: &mut Ctx,
    report: &mut Report,
    (sc, name): (&str, &str),
    url: &str,
    sizes: &SearchSizes,
) -> Result<()> {
    // First start: the schema, and the accounts that log in (each costs the server a hash).
    let server = ctx.start(name, url, report).await?;
    progress(sc, "registering searchers and senders");
    // Senders share a few accounts, as one person's tabs would: sign-ups per address are limited.
    let accounts = register(&server.target, sizes.searchers + sizes.senders.clamp(1, 4)).await;
    server.stop().await?;
    let sessions = accounts?;
    progress(
        sc,
        &format!(
            "writing {} messages over {} rooms and {} people into the database",
            sizes.messages, sizes.rooms, sizes.people
        ),
    );
    let started = Instant::now();
    generate(url, sizes).await?;
    report.info(
        sc,
        "history written (sqlx, not HTTP)",
        format!(
            "{} messages, {} rooms, {} people in {:.1} s",
            sizes.messages,
            sizes.rooms,
            sizes.people,
            started.elapsed().as_secs_f64()
        ),
    );
    let server = ctx.start(name, url, report).await?;
    let outcome = measure(ctx, report, sc, &server, sizes, &sessions).await;
    let stopped = server.stop().await;
    outcome?;
    stopped?;
    index_size(report, sc, url).await
}

async fn register(target: &Target, n: usize) -> Result<Vec<Session>> {
    // One after another: the server hashes a few passwords at once and answers 503 past its
    // queue, as it would to two dozen people signing up in the same instant.
    let mut sessions = Vec::with_capacity(n);
    for i in 0..n {
        let mut b = Browser::new(target.clone());
        sessions.push(
            b.register(&format!("finder{i}"), "bench-password-1")
                .await?,
        );
    }
    Ok(sessions)
}

/// A small deterministic generator (xorshift64*): the same history every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Exponentially distributed, mean 1.
    fn exponential(&mut self) -> f64 {
        // 53 random bits as a fraction in (0, 1].
        let u = ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        -u.ln()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A word of `words`: three in ten from the common words at the start (each then in about
    /// one message in twenty), the rest from the long tail (each in about one in two hundred).
    fn word(&mut self, words: &[String]) -> usize {
        match self.below(10) < 3 {
            true => self.below(COMMON.len()),
            false => COMMON.len() + self.below(words.len() - COMMON.len()),
        }
    }
}

const COMMON: &[&str] = &[
    "meeting",
    "deploy",
    "release",
    "lunch",
    "coffee",
    "review",
    "branch",
    "server",
    "database",
    "query",
    "index",
    "search",
    "message",
    "tomorrow",
    "today",
    "friday",
    "monday",
    "weekend",
    "project",
    "budget",
    "design",
    "customer",
    "ticket",
    "bug",
    "fix",
    "test",
    "build",
    "ship",
    "update",
    "change",
    "plan",
    "idea",
    "question",
    "answer",
    "problem",
    "solution",
    "report",
    "numbers",
    "morning",
    "evening",
    "holiday",
    "office",
    "remote",
    "call",
    "video",
    "notes",
    "draft",
    "document",
    "slides",
    "demo",
    "launch",
    "metrics",
    "dashboard",
    "alert",
    "incident",
    "postmortem",
    "schedule",
    "agenda",
    "invite",
    "team",
    "lead",
    "hiring",
    "interview",
    "offer",
    "pizza",
    "running",
    "searching",
    "deployed",
    "reviewed",
    "planning",
    "writing",
    "reading",
];

/// COMMON, then a long tail of made-up words.
fn vocabulary() -> Vec<String> {
    let syllables = [
        "ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "pa", "qu", "bo", "di", "fe", "gu",
    ];
    let mut words: Vec<String> = COMMON.iter().map(|w| (*w).to_owned()).collect();
    for a in syllables {
        for b in syllables {
            for c in ["n", "r", "s", "l", "x", "m", "t", "k"] {
                words.push(format!("{a}{b}{c}"));
            }
        }
    }
    words
}

fn body(rng: &mut Rng, words: &[String]) -> String {
    let n = 4 + rng.below(16);
    let parts: Vec<&str> = (0..n).map(|_| words[rng.word(words)].as_str()).collect();
    parts.join(" ")
}

async fn connect(url: &str) -> Result<AnyConnection> {
    sqlx::any::install_default_drivers();
    AnyConnection::connect(url)
        .await
        .map_err(|e| format!("connecting to {}: {e}", redact(url)).into())
}

fn db(e: sqlx::Error) -> crate::http::Error {
    format!("writing the history: {e}").into()
}

/// Writes the history: people (who never log in), public rooms, private conversations (two
/// people each, a tenth of the messages), and the messages, in per-room sequence order.
async fn generate(url: &str, sizes: &SearchSizes) -> Result<()> {
    let mut conn = connect(url).await?;
    let postgres = url.starts_with("postgres");
    let now = 1_796_000_000_000i64; // late 2026
    let year_ms = 365 * 86_400_000i64;
    let mut tx = conn.begin().await.map_err(db)?;
    for i in 0..sizes.people {
        sqlx::query(
            "INSERT INTO users (username, username_key, password_hash, created_ms)
             VALUES ($1, $1, '!', $2)",
        )
        .bind(format!("person{i}"))
        .bind(now - year_ms)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    let people: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM users WHERE username LIKE 'person%' ORDER BY id")
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
    let mut rooms: Vec<i64> = Vec::new();
    for i in 0..sizes.rooms {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO rooms (kind, name, name_key, created_ms) VALUES ('public', $1, $1, $2)
             RETURNING id",
        )
        .bind(format!("room-{i}"))
        .bind(now - year_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        rooms.push(id);
    }
    let public = rooms.len();
    // As many private conversations as rooms, each between two generated people.
    for i in 0..sizes.rooms {
        let (a, b) = (
            people[(2 * i) % people.len()],
            people[(2 * i + 1) % people.len()],
        );
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO rooms (kind, direct_key, created_ms) VALUES ('direct', $1, $2) RETURNING id",
        )
        .bind(format!("{}:{}", a.min(b), a.max(b)))
        .bind(now - year_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        for user in [a, b] {
            sqlx::query(
                "INSERT INTO memberships (room_id, user_id, last_read_seq, joined_ms)
                 VALUES ($1, $2, 0, $3)",
            )
            .bind(id)
            .bind(user)
            .bind(now - year_ms)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        rooms.push(id);
    }
    let words = vocabulary();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seqs = vec![0i64; rooms.len()];
    // Rows per INSERT: 5 values each, well under both engines' limits on bound values.
    const BATCH: usize = 500;
    let mut done = 0;
    while done < sizes.messages {
        let n = BATCH.min(sizes.messages - done);
        // Per row: room, seq (also its changed_seq), author, body, time.
        let marks: Vec<String> = (0..n)
            .map(|r| {
                let b = r * 5;
                format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, '')",
                    b + 1,
                    b + 2,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO messages (room_id, seq, changed_seq, author_id, body, created_ms, mentions)
             VALUES {}",
            marks.join(", ")
        );
        let mut insert = sqlx::query(&sql);
        for k in 0..n {
            let i = done + k;
            // A tenth of the messages are private; the needle is once in each kind.
            let r = match i {
                7 => 0,
                8 => public,
                _ if rng.below(10) == 0 => public + rng.below(rooms.len() - public),
                _ => rng.below(public),
            };
            seqs[r] += 1;
            let mut text = body(&mut rng, &words);
            if i == 7 || i == 8 {
                text.push(' ');
                text.push_str(NEEDLE);
            }
            // In a private conversation, one of its two people writes.
            let d = r.wrapping_sub(public);
            let author = if r >= public {
                people[(2 * d + rng.below(2)) % people.len()]
            } else {
                people[rng.below(people.len())]
            };
            // Spread over the past year, in order.
            let at = now - year_ms + (i as i64 * year_ms / sizes.messages as i64);
            insert = insert
                .bind(rooms[r])
                .bind(seqs[r])
                .bind(author)
                .bind(text)
                .bind(at);
        }
        insert.execute(&mut *tx).await.map_err(db)?;
        done += n;
    }
    for room in &rooms {
        sqlx::query(
            "UPDATE rooms SET last_seq = (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE room_id = $1)
             WHERE id = $1",
        )
        .bind(room)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    // As a database that has been in use for a year would be: checkpointed (SQLite; else every
    // read looks through a WAL of the whole history), vacuumed and analysed (PostgreSQL; else the
    // first reads write hint bits).
    let settle = if postgres {
        "VACUUM ANALYZE"
    } else {
        "PRAGMA wal_checkpoint(TRUNCATE)"
    };
    sqlx::query(settle).execute(&mut conn).await.map_err(db)?;
    let _ = conn.close().await;
    Ok(())
}

/// The queries the searchers cycle through: common and rare words, two words, phrases, words
/// being typed, and every operator.
fn queries(sizes: &SearchSizes) -> Vec<String> {
    let words = vocabulary();
    let tail = |i: usize| words[COMMON.len() + (i * 37) % (words.len() - COMMON.len())].clone();
    let room = |i: usize| format!("room-{}", i % sizes.rooms.max(1));
    let person = |i: usize| format!("person{}", (i * 7) % sizes.people.max(1));
    let mut out = Vec::new();
    for i in 0..8 {
        let common = COMMON[(i * 5) % COMMON.len()];
        let other = COMMON[(i * 11 + 3) % COMMON.len()];
        out.push(common.to_owned());
        out.push(tail(i));
        out.push(format!("{common} {other}"));
        out.push(format!("\"{common} {other}\""));
        out.push(common[..common.len().min(4)].to_owned());
        out.push(format!("{} {}", tail(i + 1), &tail(i + 2)[..3]));
        out.push(format!("from:{} {common}", person(i)));
        out.push(format!("in:{} {other}", room(i)));
        out.push(format!("{common} before:2026-06-01"));
        out.push(format!("after:2026-09-01 {}", tail(i + 3)));
    }
    out
}

async fn get(conn: &mut Conn, target: &Target, session: &Session, path: &str) -> Result<Vec<u8>> {
    let req = build_request("GET", path, target, &session.cookie, true, None);
    let resp = conn
        .request(&req, SEARCH_LIMIT)
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    if resp.status != 200 {
        bail!("GET {path} answered {}: {}", resp.status, resp.snippet());
    }
    Ok(resp.body)
}

fn search_path(q: &str) -> String {
    format!("/search?{}", encode_form(&[("q", q)]))
}

async fn measure(
    ctx: &Ctx,
    report: &mut Report,
    sc: &str,
    server: &Server,
    sizes: &SearchSizes,
    sessions: &[Session],
) -> Result<()> {
    let target = &server.target;
    let (searchers, senders) = sessions.split_at(sizes.searchers);
    // Privacy, on the real history: the needle is in one public room and in one private
    // conversation no searcher is in.
    let mut conn = Conn::new(target.addr, None);
    let body = get(&mut conn, target, &sessions[0], &search_path(NEEDLE)).await?;
    let text = String::from_utf8_lossy(&body);
    let hits = text.matches("class=\"hit\"").count();
    let private = text.matches("href=\"/dm/").count();
    report.check(
        sc,
        "results for a word in one public and one private message",
        format!("{hits} found, {private} private"),
        "1 found, 0 private",
        hits == 1 && private == 0,
    );

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut send_tasks = Vec::new();
    let begun = Instant::now();
    let rate = sizes.send_rate.max(1.0);
    for k in 0..sizes.senders {
        let (stop, sent, next, errors) = (stop.clone(), sent.clone(), next.clone(), errors.clone());
        let (target, run, rooms) = (target.clone(), ctx.run.clone(), sizes.rooms.max(1));
        let session = senders[k % senders.len()].clone();
        let source = source_ip(k, ctx.source_ips);
        send_tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(target.addr, Some(source));
            let mut failed = 0;
            while !stop.load(Ordering::Relaxed) && failed < 10 {
                let seq = next.fetch_add(1, Ordering::Relaxed) as u32;
                // On schedule: send n at n / rate seconds (at once when behind).
                let due = begun + Duration::from_secs_f64(seq as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                let room = format!("room-{}", seq as usize % rooms);
                match load::send_one(&mut conn, &target, &session, &room, &run, seq).await {
                    Ok(_) => {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        failed += 1;
                        if let Ok(mut list) = errors.lock() {
                            list.push(e.0);
                        }
                    }
                }
            }
        }));
    }
    let queries = Arc::new(queries(sizes));
    progress(
        sc,
        &format!(
            "{} searchers ({} queries) and {} senders for {:.0} s",
            sizes.searchers,
            queries.len(),
            sizes.senders,
            sizes.duration.as_secs_f64()
        ),
    );
    let started = Instant::now();
    let deadline = started + sizes.duration;
    let mut search_tasks = Vec::new();
    for (k, session) in searchers.iter().enumerate() {
        let (target, queries, errors) = (target.clone(), queries.clone(), errors.clone());
        let session = session.clone();
        let source = source_ip(k + sizes.senders, ctx.source_ips);
        let start = started + THINK.mul_f64(k as f64 / sizes.searchers as f64);
        search_tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(target.addr, Some(source));
            let mut times = Vec::new();
            let mut i = k * 7;
            // Seeds that differ in their low bits only start alike: the first draws go.
            let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ (k as u64 + 1));
            for _ in 0..16 {
                rng.next();
            }
            tokio::time::sleep_until(start.into()).await;
            while Instant::now() < deadline {
                let path = search_path(&queries[i % queries.len()]);
                i += 1;
                let t = Instant::now();
                match get(&mut conn, &target, &session, &path).await {
                    Ok(_) => times.push(t.elapsed().as_micros() as u64),
                    Err(e) => {
                        if let Ok(mut list) = errors.lock() {
                            list.push(e.0);
                        }
                    }
                }
                tokio::time::sleep(THINK.mul_f64(rng.exponential().min(THINK_MAX))).await;
            }
            times
        }));
    }
    tokio::time::sleep_until(deadline.into()).await;
    // The sends made by the deadline, against those due by it: a paced sender cannot beat its
    // schedule, so "kept up" is every due send made but the one each sender has in flight.
    let sent_by_deadline = sent.load(Ordering::Relaxed);
    let window = deadline.duration_since(begun).as_secs_f64();
    let due = due_by(window, rate);
    let mut times = Vec::new();
    for t in search_tasks {
        times.extend(t.await.map_err(|e| format!("searcher task: {e}"))?);
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = begun.elapsed().as_secs_f64();
    for t in send_tasks {
        t.await.map_err(|e| format!("sender task: {e}"))?;
    }
    times.sort_unstable();
    let p95 = load::percentile_ms(&times, 95.0);
    let made = sent_by_deadline as f64 / window;
    let behind = due.saturating_sub(sent_by_deadline);
    let kept_up = kept_up(due, sent_by_deadline, sizes.senders);
    let errors = errors.lock().map(|e| e.clone()).unwrap_or_default();
    for e in errors.iter().take(3) {
        progress(sc, &format!("error: {e}"));
    }
    report.info(
        sc,
        "searches (20 a page, HX-Request)",
        format!("{} in {elapsed:.1} s", times.len()),
    );
    report.info(sc, "search p50", ms(load::percentile_ms(&times, 50.0)));
    report.perf(sc, "search p95", ms(p95), "≤ 50 ms", p95 <= 50.0);
    report.info(sc, "search p99", ms(load::percentile_ms(&times, 99.0)));
    report.perf(
        sc,
        &format!(
            "sends per second while searching ({:.0}/s asked)",
            sizes.send_rate
        ),
        format!("{made:.0}/s ({behind} of {due} due not made at the end)"),
        "≥ 2000/s: all due made but those in flight",
        kept_up && sizes.send_rate >= 2000.0,
    );
    report.check(
        sc,
        "failed searches and sends",
        // The first one's reason in the row itself: CI shows only the table's end.
        match errors.first() {
            None => "0".to_owned(),
            Some(first) => format!(
                "{} (first: {})",
                errors.len(),
                first.chars().take(160).collect::<String>()
            ),
        },
        "0",
        errors.is_empty() && (sizes.searchers == 0 || !times.is_empty()),
    );
    Ok(())
}

/// The size of the search index, next to the text it indexes.
async fn index_size(report: &mut Report, sc: &str, url: &str) -> Result<()> {
    let mut conn = connect(url).await?;
    let (index, what): (i64, &str) = if url.starts_with("postgres") {
        let gin: i64 = sqlx::query_scalar("SELECT pg_relation_size('messages_search')")
            .fetch_one(&mut conn)
            .await
            .map_err(db)?;
        let column: i64 =
            sqlx::query_scalar("SELECT CAST(SUM(pg_column_size(search)) AS BIGINT) FROM messages")
                .fetch_one(&mut conn)
                .await
                .map_err(db)?;
        (gin + column, "GIN index + tsvector column")
    } else {
        let fts: i64 = sqlx::query_scalar(
            "SELECT CAST((SELECT COALESCE(SUM(length(block)), 0) FROM messages_fts_data)
                       + (SELECT COALESCE(SUM(length(sz)), 0) FROM messages_fts_docsize)
                       + (SELECT COUNT(*) * 16 FROM messages_fts_idx) AS BIGINT)",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(db)?;
        (fts, "FTS5 tables")
    };
    let text: i64 =
        sqlx::query_scalar("SELECT CAST(COALESCE(SUM(length(body)), 0) AS BIGINT) FROM messages")
            .fetch_one(&mut conn)
            .await
            .map_err(db)?;
    let _ = conn.close().await;
    report.info(
        sc,
        &format!("index size ({what})"),
        format!(
            "{:.1} MB for {:.1} MB of text",
            index as f64 / 1e6,
            text as f64 / 1e6
        ),
    );
    Ok(())
}

/// The sends due by `window` seconds into a schedule of `rate` a second (send n at n / rate).
fn due_by(window: f64, rate: f64) -> u64 {
    (window * rate).floor() as u64 + 1
}

/// Whether paced senders kept their schedule: every due send made but the one each of them
/// may have in flight.
fn kept_up(due: u64, made: u64, senders: usize) -> bool {
    due.saturating_sub(made) <= senders as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_exactly_on_schedule_kept_up() {
        // 32 senders at 2,000 a second for 20 s, each with a send in flight at the end: the
        // rate divided out is under 2,000, yet nothing was late.
        let due = due_by(20.0, 2000.0);
        assert_eq!(due, 40_001);
        let made = due - 32;
        assert!((made as f64 / 20.0) < 2000.0);
        assert!(kept_up(due, made, 32));
        assert!(!kept_up(due, made - 1, 32));
    }

    #[test]
    fn waits_average_about_one_think() {
        let mut rng = Rng(7);
        let n = 100_000;
        let mean = (0..n)
            .map(|_| rng.exponential().min(THINK_MAX))
            .sum::<f64>()
            / n as f64;
        assert!((0.97..1.01).contains(&mean), "mean wait {mean}");
    }
}
