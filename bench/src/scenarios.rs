//! The benchmark's scenarios. Each starts its own server on a fresh database, so one
//! scenario's rooms, sessions and memory cannot colour another's figures.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::bail;
use crate::browser::{Browser, Session};
use crate::http::{Conn, Result, Target, source_ip};
use crate::load::{self, Load, LoadResult, LoadSpec, Plan, SendLog};
use crate::messages;
use crate::pg::FreshDatabase;
use crate::report::Report;
use crate::server::Server;

const MB: f64 = 1024.0 * 1024.0;

/// Everything the scenarios share.
pub struct Ctx {
    pub server_bin: PathBuf,
    pub dir: PathBuf,
    /// Names this run: client keys and the cross-process database carry it.
    pub run: String,
    pub source_ips: usize,
    pub open_files: u64,
    server_noted: bool,
}

impl Ctx {
    pub fn new(
        server_bin: PathBuf,
        dir: PathBuf,
        run: String,
        source_ips: usize,
        open_files: u64,
    ) -> Self {
        Ctx {
            server_bin,
            dir,
            run,
            source_ips,
            open_files,
            server_noted: false,
        }
    }

    /// Fails unless `n` connections (`what`) fit the open-file limit: each is a socket here
    /// and one in the server, which inherits this limit.
    pub fn need_sockets(&self, n: usize, what: &str) -> Result<()> {
        let needed = n as u64 + 256;
        if self.open_files < needed {
            bail!(
                "{n} {what} need an open-file limit of at least {needed}; it is {} (raise `ulimit -Hn`)",
                self.open_files
            );
        }
        Ok(())
    }

    pub async fn start_sqlite(&mut self, name: &str, report: &mut Report) -> Result<Server> {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let url = format!("sqlite://{}", dir.join("bench.db").display());
        self.start(name, &url, report).await
    }

    pub async fn start(&mut self, name: &str, url: &str, report: &mut Report) -> Result<Server> {
        progress(
            name,
            &format!("starting {} on {}", self.server_bin.display(), redact(url)),
        );
        let server = Server::start(&self.server_bin, name, url, &self.dir).await?;
        // Start-up time and idle memory once, from the first server of the run.
        if !self.server_noted {
            self.server_noted = true;
            tokio::time::sleep(Duration::from_millis(200)).await;
            report.info(
                "server",
                "start → first 200 on /healthz",
                format!("{:.0} ms", server.startup.as_secs_f64() * 1000.0),
            );
            report.info(
                "server",
                "idle resident memory (VmRSS)",
                format!("{:.1} MB", server.rss()? as f64 / MB),
            );
        }
        Ok(server)
    }
}

/// Progress on stderr, stamped with seconds since the run began, so a slow phase shows.
pub fn progress(scenario: &str, what: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("{t:7.2}s [{scenario}] {what}");
}

/// Hides a password in a database URL before printing it.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Registers `n` users. The first creates the rooms and the others join them concurrently
/// (creation first, so the measurement is not about a creation race).
pub(crate) async fn register_users(
    target: &Target,
    prefix: &str,
    n: usize,
    rooms: &[String],
) -> Result<Vec<Session>> {
    let password = "bench-password-1";
    let mut first = Browser::new(target.clone());
    first.register(&format!("{prefix}0"), password).await?;
    for room in rooms {
        first.join(room).await?;
    }
    let mut sessions = vec![first.session()];
    let mut tasks = Vec::new();
    for i in 1..n {
        let (target, rooms, name) = (target.clone(), rooms.to_vec(), format!("{prefix}{i}"));
        tasks.push(tokio::spawn(async move {
            let mut b = Browser::new(target);
            b.register(&name, password).await?;
            for room in &rooms {
                b.join(room).await?;
            }
            Ok::<_, crate::http::Error>(b.session())
        }));
    }
    for t in tasks {
        sessions.push(t.await.map_err(|e| format!("registration task: {e}"))??);
    }
    Ok(sessions)
}

async fn cursors(target: &Target, session: &Session, rooms: &[String]) -> Result<Vec<i64>> {
    let mut b = Browser::with_session(target.clone(), session);
    let mut out = Vec::with_capacity(rooms.len());
    for room in rooms {
        out.push(b.room_cursor(room).await?);
    }
    Ok(out)
}

pub fn ms(v: f64) -> String {
    format!("{v:.2} ms")
}

/// Rows shared by fan-out and cross-process: completeness, latency, bytes.
pub(crate) fn delivery_rows(
    report: &mut Report,
    sc: &str,
    r: &LoadResult,
    log: &SendLog,
    p50_target: Option<f64>,
    p99_target: Option<f64>,
) {
    let sends = log.acked.len();
    let acked = log.acked_count();
    report.check(
        sc,
        "sends acknowledged (2xx)",
        format!("{acked}/{sends}"),
        "all",
        acked == sends,
    );
    let elapsed = log.elapsed.lock().map(|d| d.as_secs_f64()).unwrap_or(0.0);
    if elapsed > 0.0 {
        report.info(
            sc,
            "send rate achieved",
            format!("{:.1}/s", sends as f64 / elapsed),
        );
    }
    report.info(sc, "deliveries", format!("{}/{}", r.delivered, r.expected));
    let p50 = r.percentile_ms(50.0);
    match p50_target {
        Some(t) => report.perf(
            sc,
            "delivery latency p50",
            ms(p50),
            &format!("≤ {t} ms"),
            p50 <= t,
        ),
        None => report.info(sc, "delivery latency p50", ms(p50)),
    }
    let p99 = r.percentile_ms(99.0);
    match p99_target {
        Some(t) => report.perf(
            sc,
            "delivery latency p99",
            ms(p99),
            &format!("≤ {t} ms"),
            p99 <= t,
        ),
        None => report.info(sc, "delivery latency p99", ms(p99)),
    }
    report.info(sc, "delivery latency max", ms(r.percentile_ms(100.0)));
    report.check(sc, "lost", r.lost.to_string(), "0", r.lost == 0);
    report.check(
        sc,
        "duplicated",
        r.duplicates.to_string(),
        "0",
        r.duplicates == 0,
    );
    report.check(
        sc,
        "out of order",
        r.out_of_order.to_string(),
        "0",
        r.out_of_order == 0,
    );
    report.info(
        sc,
        "polls ended by 204 (idle hold)",
        r.no_content.to_string(),
    );
    report.info(
        sc,
        "answers bringing the listener's sidebar (feed)",
        r.sidebars.to_string(),
    );
    if r.foreign > 0 {
        report.info(sc, "other message elements seen", r.foreign.to_string());
    }
    report.check(
        sc,
        "listener errors",
        r.errors.len().to_string(),
        "0",
        r.errors.is_empty(),
    );
    for e in r.errors.iter().take(3) {
        progress(sc, &format!("listener error: {e}"));
    }
    for n in &r.notes {
        progress(sc, n);
    }
    for e in log.error_list().iter().take(3) {
        progress(sc, &format!("send error: {e}"));
    }
}

pub struct FanoutSizes {
    pub listeners: usize,
    pub rate: f64,
    pub messages: usize,
}

/// Listener users: sessions are shared by many connections, so a few suffice.
fn listener_users(listeners: usize) -> usize {
    listeners.clamp(1, 8)
}

/// What a fan-out run measured.
pub(crate) struct FanoutRun {
    pub result: LoadResult,
    pub log: Arc<SendLog>,
    /// The CPU time `listen` used from the first send until every listener had every message
    /// (or the grace ran out), when /proc tells it: set-up (registrations, connections) is left
    /// out.
    pub cpu: Option<Duration>,
    /// `listen`'s resident memory, in bytes.
    pub memory: FanoutMemory,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FanoutMemory {
    /// After the registrations, before any listener connects.
    pub before: u64,
    /// The server's own memory (RssAnon) then.
    pub own_before: u64,
    /// The most seen from the first send until a second after the last delivery.
    pub peak: u64,
    /// The moment every listener had every message: the last message's answers may still be
    /// on their way to the others.
    pub last: u64,
    /// A second later ([`SETTLED`]), every listener polling again: the steady state between
    /// messages.
    pub end: u64,
}

/// How long after the last delivery the fan-out's memory is read as its steady state (the big
/// room sends a message a second).
const SETTLED: Duration = Duration::from_secs(1);

/// Fan-out load in one room: listeners on `listen`, sends through `send`.
pub(crate) async fn fanout_load(
    ctx: &Ctx,
    sc: &str,
    listen: &Server,
    send: &Target,
    sizes: &FanoutSizes,
    plan: Plan,
) -> Result<FanoutRun> {
    let rooms = vec!["fanout".to_owned()];
    progress(
        sc,
        &format!(
            "registering {} listener users and 1 sender",
            listener_users(sizes.listeners)
        ),
    );
    let sessions = register_users(
        &listen.target,
        "listener",
        listener_users(sizes.listeners),
        &rooms,
    )
    .await?;
    let sender = register_users(send, "sender", 1, &rooms).await?.remove(0);
    let cursors = cursors(&listen.target, &sessions[0], &rooms).await?;
    progress(sc, &format!("connecting {} listeners", sizes.listeners));
    let spec = LoadSpec {
        target: &listen.target,
        rooms,
        sessions: &sessions,
        listeners: sizes.listeners,
        sends: sizes.messages,
        source_ips: ctx.source_ips,
        cursors,
        plan: Arc::new(plan),
        pages: true,
    };
    let mixed = spec.plan.steps.iter().any(|s| *s != load::Step::Send);
    let before = listen.rss()?;
    let own_before = listen.anon();
    let load = Load::start(spec, listen).await?;
    progress(
        sc,
        &format!("sending {} changes at {}/s", sizes.messages, sizes.rate),
    );
    let cpu_before = listen.cpu_time();
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let peak = tokio::spawn(peak_rss(listen.pid, sampling.clone()));
    // Four connections keep the schedule even when one send is slow; changes to older messages
    // go one at a time, so that they commit in the order the listeners are checked against.
    let conns = if mixed { 1 } else { 4 };
    let log = load.send(send, &sender, &ctx.run, sizes.rate, conns).await;
    load.settle(&log, FANOUT_GRACE).await;
    let cpu = listen
        .cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let last = listen.rss()?;
    tokio::time::sleep(SETTLED).await;
    sampling.store(false, Ordering::Relaxed);
    let end = listen.rss()?;
    let peak = peak.await.unwrap_or(0).max(last).max(end);
    let result = load.finish(&log, FANOUT_GRACE).await;
    Ok(FanoutRun {
        result,
        log,
        cpu,
        memory: FanoutMemory {
            before,
            own_before,
            peak,
            last,
            end,
        },
    })
}

/// The most resident memory `pid` has while `on` stays true, sampled every 50 ms.
async fn peak_rss(pid: u32, on: Arc<std::sync::atomic::AtomicBool>) -> u64 {
    let mut peak = 0;
    while on.load(Ordering::Relaxed) {
        peak = peak.max(crate::server::rss_of(pid).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    peak
}

/// How long listeners may take to get the last messages once sending ends.
const FANOUT_GRACE: Duration = Duration::from_secs(10);

/// Server CPU per delivered message, in µs.
fn cpu_per_delivery_us(cpu: Option<Duration>, delivered: u64) -> Option<f64> {
    cpu.filter(|_| delivered > 0)
        .map(|c| c.as_secs_f64() * 1e6 / delivered as f64)
}

fn cpu_row(report: &mut Report, sc: &str, cpu: Option<Duration>, delivered: u64) {
    let value = match (cpu, cpu_per_delivery_us(cpu, delivered)) {
        // /proc counts in clock ticks (10 ms): a tiny run's figure is mostly rounding.
        (Some(c), Some(us)) if c < Duration::from_millis(200) => format!(
            "{us:.1} µs ({:.2} s in all: too little for /proc's 10 ms ticks)",
            c.as_secs_f64()
        ),
        (Some(c), Some(us)) => format!("{us:.1} µs ({:.2} s in all)", c.as_secs_f64()),
        _ => "unknown (/proc/{pid}/stat not readable)".to_owned(),
    };
    report.info(
        sc,
        "server CPU per delivery (utime+stime, first send → all delivered)",
        value,
    );
}

/// The floor run's figures, for comparing with Parley's.
struct FloorFigures {
    p50: f64,
    p99: f64,
    cpu_us: Option<f64>,
    memory: FanoutMemory,
}

/// The floor (src/floor.rs) under the same fan-out load, in its own process; its rows go under
/// scenario `sc` (e.g. "1 fan-out floor"). Correctness is checked as for Parley: a floor that
/// loses messages means the bench itself is wrong.
async fn fanout_floor(
    ctx: &Ctx,
    report: &mut Report,
    sc: &str,
    sizes: &FanoutSizes,
) -> Result<FloorFigures> {
    progress(sc, "starting the floor server (parley-bench floor-server)");
    let server = Server::start_floor("floor", &ctx.dir).await?;
    let outcome = fanout_load(
        ctx,
        sc,
        &server,
        &server.target.clone(),
        sizes,
        Plan::sends_only(sizes.messages),
    )
    .await;
    let stopped = server.stop().await;
    let FanoutRun {
        result: r,
        log,
        cpu,
        memory,
    } = outcome?;
    let sends = log.acked.len();
    let acked = log.acked_count();
    report.check(
        sc,
        "sends acknowledged (2xx)",
        format!("{acked}/{sends}"),
        "all",
        acked == sends,
    );
    report.info(sc, "deliveries", format!("{}/{}", r.delivered, r.expected));
    let (p50, p99) = (r.percentile_ms(50.0), r.percentile_ms(99.0));
    report.info(sc, "delivery latency p50", ms(p50));
    report.info(sc, "delivery latency p99", ms(p99));
    report.info(sc, "delivery latency max", ms(r.percentile_ms(100.0)));
    let bad = r.lost + r.duplicates + r.out_of_order;
    report.check(
        sc,
        "lost / duplicated / out of order",
        format!("{} / {} / {}", r.lost, r.duplicates, r.out_of_order),
        "0 / 0 / 0",
        bad == 0,
    );
    report.check(
        sc,
        "listener errors",
        r.errors.len().to_string(),
        "0",
        r.errors.is_empty(),
    );
    for e in r.errors.iter().take(3) {
        progress(sc, &format!("listener error: {e}"));
    }
    for e in log.error_list().iter().take(3) {
        progress(sc, &format!("send error: {e}"));
    }
    report.info(
        sc,
        "bytes on the wire per delivered message",
        format!("{:.0} B", r.bytes_per_delivery()),
    );
    cpu_row(report, sc, cpu, r.delivered);
    stopped?;
    Ok(FloorFigures {
        p50,
        p99,
        cpu_us: cpu_per_delivery_us(cpu, r.delivered),
        memory,
    })
}

/// Parley's delivery p50 and p99 and CPU per delivery against the floor's in the same run, each
/// a row with its target (a ratio) or, without one, for information.
fn against_floor(
    report: &mut Report,
    sc: &str,
    (result, cpu): (&LoadResult, Option<Duration>),
    f: &FloorFigures,
    [p50_target, p99_target, cpu_target]: [Option<f64>; 3],
) {
    let mut row = |figure: &str, parley: f64, floor: f64, unit: &str, target: Option<f64>| {
        let ratio = parley / floor;
        let value = format!("{ratio:.2}× ({parley:.1} {unit} / {floor:.1} {unit})");
        match target {
            Some(t) => report.perf(
                sc,
                figure,
                value,
                &format!("≤ {t}×"),
                ratio.is_finite() && ratio <= t,
            ),
            None => report.info(sc, figure, value),
        }
    };
    let (p50, p99) = (result.percentile_ms(50.0), result.percentile_ms(99.0));
    row("delivery p50 vs floor", p50, f.p50, "ms", p50_target);
    row("delivery p99 vs floor", p99, f.p99, "ms", p99_target);
    if let (Some(parley), Some(floor)) = (cpu_per_delivery_us(cpu, result.delivered), f.cpu_us)
        && floor > 0.0
    {
        row(
            "server CPU per delivery vs floor",
            parley,
            floor,
            "µs",
            cpu_target,
        );
    }
}

/// Scenario 1 (and 4, bytes per delivered message, from the same traffic). With `floor`, the
/// same load then runs against the floor server, and Parley's p50 is compared with the floor's
/// (the target: within 2× of a floor measured in the same run).
pub async fn fanout(
    ctx: &mut Ctx,
    report: &mut Report,
    sizes: FanoutSizes,
    floor: bool,
    pairs: usize,
) -> Result<()> {
    let sc = "1 fan-out";
    let server = ctx.start_sqlite("fanout", report).await?;
    let outcome = fanout_load(
        ctx,
        sc,
        &server,
        &server.target.clone(),
        &sizes,
        Plan::sends_only(sizes.messages),
    )
    .await;
    let stopped = server.stop().await;
    let FanoutRun {
        result, log, cpu, ..
    } = outcome?;
    report.info(sc, "listeners in one room", sizes.listeners.to_string());
    delivery_rows(report, sc, &result, &log, Some(5.0), Some(50.0));
    cpu_row(report, sc, cpu, result.delivered);
    if floor {
        // After Parley has stopped, so the two never share the machine.
        match fanout_floor(ctx, report, "1 fan-out floor", &sizes).await {
            Ok(f) => {
                // The CPU row is the pairs' median, below.
                against_floor(report, sc, (&result, None), &f, [Some(2.0), None, None]);
                let first = cpu_per_delivery_us(cpu, result.delivered).zip(f.cpu_us);
                if let Err(e) = cpu_against_floor(ctx, report, sc, &sizes, pairs, first).await {
                    progress(sc, &format!("error: {e}"));
                    report.error(sc, &e.0);
                }
            }
            Err(e) => {
                progress("1 fan-out floor", &format!("error: {e}"));
                report.error("1 fan-out floor", &e.0);
            }
        }
    }
    let bytes = result.bytes_per_delivery();
    report.perf(
        "4 bytes",
        "bytes on the wire per delivered message (listeners, headers included)",
        format!("{bytes:.0} B"),
        "≤ 1024 B",
        bytes <= 1024.0 && result.delivered > 0,
    );
    stopped
}

/// Server CPU per delivery against the floor's, from `pairs` runs of each, alternated (Parley,
/// then the floor, then Parley again...), the first pair being the run reported above (`first`:
/// Parley's and the floor's µs). One pair can mislead: on a two-core machine shared with the
/// generator the same binary's figure has moved by a fifth from run to run within an evening, as
/// much as the gap the target is about. The median of the pairs' ratios is held to the target,
/// and every pair is shown; a pair whose floor read no CPU time (a run too short for /proc's
/// ticks) gives no ratio.
async fn cpu_against_floor(
    ctx: &mut Ctx,
    report: &mut Report,
    sc: &str,
    sizes: &FanoutSizes,
    pairs: usize,
    first: Option<(f64, f64)>,
) -> Result<()> {
    // A run too short for /proc's 10 ms ticks may read 0 for the floor: no ratio from it.
    let usable = |(p, f): (f64, f64)| (f > 0.0 && p.is_finite()).then_some((p, f));
    let mut runs: Vec<(f64, f64)> = first.and_then(usable).into_iter().collect();
    for pair in 2..=pairs {
        let name = format!("{sc} pair {pair}");
        let server = ctx.start_sqlite(&format!("fanout-{pair}"), report).await?;
        let plan = Plan::sends_only(sizes.messages);
        let parley = fanout_load(ctx, &name, &server, &server.target.clone(), sizes, plan).await;
        server.stop().await?;
        let parley = parley?;
        let floor_name = format!("{sc} floor pair {pair}");
        progress(
            &floor_name,
            "starting the floor server (parley-bench floor-server)",
        );
        let server = Server::start_floor(&format!("floor-{pair}"), &ctx.dir).await?;
        let plan = Plan::sends_only(sizes.messages);
        let floor = fanout_load(
            ctx,
            &floor_name,
            &server,
            &server.target.clone(),
            sizes,
            plan,
        )
        .await;
        server.stop().await?;
        let floor = floor?;
        for (who, run) in [("Parley", &parley), ("the floor", &floor)] {
            let r = &run.result;
            if r.delivered != r.expected || r.lost + r.duplicates + r.out_of_order > 0 {
                bail!(
                    "pair {pair}: {who} delivered {} of {} ({} lost, {} duplicated, {} out of order)",
                    r.delivered,
                    r.expected,
                    r.lost,
                    r.duplicates,
                    r.out_of_order
                );
            }
        }
        let us = |run: &FanoutRun| cpu_per_delivery_us(run.cpu, run.result.delivered);
        if let Some(pair) = us(&parley).zip(us(&floor)).and_then(usable) {
            runs.push(pair);
        }
    }
    if runs.is_empty() {
        report.info(
            sc,
            "server CPU per delivery vs floor",
            "unknown (no CPU time read)".to_owned(),
        );
        return Ok(());
    }
    let mut ratios: Vec<f64> = runs.iter().map(|(p, f)| p / f).collect();
    let each = runs
        .iter()
        .map(|(p, f)| format!("{:.2}× ({p:.1} / {f:.1} µs)", p / f))
        .collect::<Vec<_>>()
        .join(", ");
    ratios.sort_by(f64::total_cmp);
    let mid = ratios.len() / 2;
    let median = match ratios.len() % 2 {
        1 => ratios[mid],
        _ => (ratios[mid - 1] + ratios[mid]) / 2.0,
    };
    let figure = match runs.len() {
        1 => "server CPU per delivery vs floor".to_owned(),
        n => format!("server CPU per delivery vs floor: median of {n} alternated pairs"),
    };
    report.perf(
        sc,
        &figure,
        format!("{median:.2}× (each: {each})"),
        "≤ 1.2×",
        median.is_finite() && median <= 1.2,
    );
    Ok(())
}

/// Scenario 6: the fan-out load with the conversation changing, as people use it: of every ten
/// changes, seven new messages, two edits and one reaction. Every change must reach every
/// listener once and in order.
pub async fn changes(ctx: &mut Ctx, report: &mut Report, sizes: FanoutSizes) -> Result<()> {
    let sc = "6 changes";
    let server = ctx.start_sqlite("changes", report).await?;
    let plan = Plan::mixed(sizes.messages);
    let mix = |k: fn(&load::Step) -> bool| plan.steps.iter().filter(|s| k(s)).count();
    let (sends, edits, reactions) = (
        mix(|s| matches!(s, load::Step::Send)),
        mix(|s| matches!(s, load::Step::Edit { .. })),
        mix(|s| matches!(s, load::Step::React { .. })),
    );
    let target = server.target.clone();
    let outcome = fanout_load(ctx, sc, &server, &target, &sizes, plan).await;
    let stopped = server.stop().await;
    let FanoutRun {
        result, log, cpu, ..
    } = outcome?;
    report.info(sc, "listeners in one room", sizes.listeners.to_string());
    report.info(
        sc,
        "changes: sends / edits / reactions",
        format!("{sends} / {edits} / {reactions}"),
    );
    delivery_rows(report, sc, &result, &log, None, Some(50.0));
    cpu_row(report, sc, cpu, result.delivered);
    report.info(
        sc,
        "bytes on the wire per delivered change",
        format!("{:.0} B", result.bytes_per_delivery()),
    );
    stopped
}

pub struct CapacitySizes {
    pub polls: usize,
    pub rooms: usize,
}

/// Scenario 2: many held polls, the server's memory, and whether they all still deliver. With
/// `floor`, the same polls are then held by the floor server, whose memory per poll is what
/// hyper's connection alone costs.
pub async fn capacity(
    ctx: &mut Ctx,
    report: &mut Report,
    sizes: CapacitySizes,
    floor: bool,
) -> Result<()> {
    let sc = "2 capacity";
    ctx.need_sockets(sizes.polls, "polls")?;
    let server = ctx.start_sqlite("capacity", report).await?;
    let outcome = capacity_load(ctx, sc, &server, &sizes, report, Some(200.0)).await;
    let stopped = server.stop().await;
    let (per_poll, steady_mb) = outcome?;
    stopped?;
    if floor {
        // After Parley has stopped, so the two never share the machine.
        let sc = "2 capacity floor";
        progress(sc, "starting the floor server (parley-bench floor-server)");
        let server = Server::start_floor("capacity-floor", &ctx.dir).await?;
        let outcome = capacity_load(ctx, sc, &server, &sizes, report, None).await;
        let stopped = server.stop().await;
        let (floor_per_poll, floor_steady_mb) = outcome?;
        stopped?;
        report.info(
            "2 capacity",
            "memory per held poll vs floor",
            format!(
                "{:.2}× ({per_poll:.1} KB / {floor_per_poll:.1} KB)",
                per_poll / floor_per_poll
            ),
        );
        let ratio = steady_mb / floor_steady_mb;
        report.perf(
            "2 capacity",
            "steady-state resident memory vs floor",
            format!("{ratio:.2}× ({steady_mb:.1} MB / {floor_steady_mb:.1} MB)"),
            "≤ 1.1×",
            ratio.is_finite() && ratio <= 1.1,
        );
    }
    Ok(())
}

async fn capacity_load(
    ctx: &Ctx,
    sc: &str,
    server: &Server,
    sizes: &CapacitySizes,
    report: &mut Report,
    target_mb: Option<f64>,
) -> Result<(f64, f64)> {
    let rooms: Vec<String> = (0..sizes.rooms.max(1))
        .map(|i| format!("cap-{i}"))
        .collect();
    progress(
        sc,
        &format!("registering users, creating {} rooms", rooms.len()),
    );
    // One user holds every poll (a session may be used from many connections at once): each
    // registration costs the server an argon2 hash, whose ~19 MB the allocator may keep, and
    // this scenario measures the memory of held polls, not of registrations.
    let sessions = register_users(&server.target, "holder", 1, &rooms).await?;
    let sender = register_users(&server.target, "sender", 1, &rooms)
        .await?
        .remove(0);
    let idle = server.rss()?;
    progress(
        sc,
        &format!(
            "connecting {} long-polls over {} rooms",
            sizes.polls,
            rooms.len()
        ),
    );
    let spec = LoadSpec {
        target: &server.target,
        cursors: vec![0; rooms.len()],
        plan: Arc::new(Plan::sends_only(rooms.len())),
        // One user holding ten thousand polls in a hundred rooms is no page: no sidebar.
        pages: false,
        rooms: rooms.clone(),
        sessions: &sessions,
        listeners: sizes.polls,
        sends: rooms.len(),
        source_ips: ctx.source_ips,
    };
    let load = Load::start(spec, server).await?;
    // The largest of a few samples: memory settles as the last requests are parsed.
    let mut held_rss = 0;
    for _ in 0..5 {
        held_rss = held_rss.max(server.rss()?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let held = load.shared.pending.load(Ordering::Relaxed);
    progress(
        sc,
        &format!(
            "{held} polls held, server RSS {:.1} MB; one send per room",
            held_rss as f64 / MB
        ),
    );
    let log = load
        .send(&server.target, &sender, &ctx.run, 1000.0, 8)
        .await;
    // The steady state a live chat is in: every listener has had an answer and polls again.
    load.settle(&log, Duration::from_secs(20)).await;
    let again = Instant::now() + Duration::from_secs(10);
    while load.shared.pending.load(Ordering::Relaxed) < held && Instant::now() < again {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held_again = load.shared.pending.load(Ordering::Relaxed);
    let mut steady_rss = 0;
    for _ in 0..5 {
        steady_rss = steady_rss.max(server.rss()?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let result = load.finish(&log, Duration::from_secs(20)).await;

    report.info(
        sc,
        "resident memory before the polls",
        format!("{:.1} MB", idle as f64 / MB),
    );
    report.perf(
        sc,
        "polls held at once",
        format!("{held}/{}", sizes.polls),
        "all",
        held >= sizes.polls,
    );
    // Resident memory against the target (Parley's) or as information (the floor's), and
    // what it comes to per poll over the idle server.
    let mut memory_rows = |figure: String, per_poll_figure: &str, rss: u64| {
        let value = format!("{:.1} MB", rss as f64 / MB);
        match target_mb {
            Some(target) => report.perf(
                sc,
                &figure,
                value,
                &format!("≤ {target:.0} MB"),
                rss as f64 <= target * MB,
            ),
            None => report.info(sc, &figure, value),
        }
        let per_poll = rss.saturating_sub(idle) as f64 / 1024.0 / sizes.polls.max(1) as f64;
        report.info(sc, per_poll_figure, format!("{per_poll:.1} KB"));
        per_poll
    };
    let per_poll = memory_rows(
        format!("resident memory with {} held polls", sizes.polls),
        "memory per held poll",
        held_rss,
    );
    memory_rows(
        format!(
            "resident memory in the steady state ({held_again} polls held again after one answer each)"
        ),
        "memory per held poll, steady state",
        steady_rss,
    );
    let acked = log.acked_count();
    report.check(
        sc,
        "sends acknowledged (one per room)",
        format!("{acked}/{}", rooms.len()),
        "all",
        acked == rooms.len(),
    );
    report.check(
        sc,
        "listeners reached",
        format!("{}/{}", result.delivered, result.expected),
        "all",
        result.delivered == result.expected && result.expected > 0,
    );
    report.check(sc, "lost", result.lost.to_string(), "0", result.lost == 0);
    report.check(
        sc,
        "duplicated",
        result.duplicates.to_string(),
        "0",
        result.duplicates == 0,
    );
    report.info(sc, "delivery latency p50", ms(result.percentile_ms(50.0)));
    report.info(sc, "delivery latency p99", ms(result.percentile_ms(99.0)));
    report.check(
        sc,
        "listener errors",
        result.errors.len().to_string(),
        "0",
        result.errors.is_empty(),
    );
    for e in result.errors.iter().take(3) {
        progress(sc, &format!("listener error: {e}"));
    }
    for e in log.error_list().iter().take(3) {
        progress(sc, &format!("send error: {e}"));
    }
    Ok((per_poll, steady_rss as f64 / MB))
}

pub struct ThroughputSizes {
    pub senders: usize,
    pub messages: usize,
    pub rooms: usize,
}

/// Scenario 3: stored messages per second from concurrent keep-alive senders, then every
/// acknowledged message looked up in the room's history over HTTP.
pub async fn throughput(ctx: &mut Ctx, report: &mut Report, sizes: ThroughputSizes) -> Result<()> {
    let sc = "3 throughput";
    let server = ctx.start_sqlite("throughput", report).await?;
    let outcome = throughput_load(ctx, sc, &server, &sizes, report).await;
    let stopped = server.stop().await;
    outcome?;
    stopped
}

async fn throughput_load(
    ctx: &Ctx,
    sc: &str,
    server: &Server,
    sizes: &ThroughputSizes,
    report: &mut Report,
) -> Result<()> {
    let rooms: Vec<String> = (0..sizes.rooms.max(1))
        .map(|i| format!("tput-{i}"))
        .collect();
    let senders = sizes.senders.max(1);
    progress(
        sc,
        &format!("registering {} users", listener_users(senders)),
    );
    let sessions =
        register_users(&server.target, "writer", listener_users(senders), &rooms).await?;
    let log = Arc::new(SendLog::new(sizes.messages));
    let next = Arc::new(AtomicUsize::new(0));
    progress(
        sc,
        &format!(
            "{} messages from {senders} concurrent senders",
            sizes.messages
        ),
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..senders {
        let (log, next, target, rooms, run) = (
            log.clone(),
            next.clone(),
            server.target.clone(),
            rooms.clone(),
            ctx.run.clone(),
        );
        let session = sessions[k % sessions.len()].clone();
        let source = source_ip(k, ctx.source_ips);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(target.addr, Some(source));
            let mut times = Vec::new();
            let mut errors = 0;
            // Bounded by the message count; a sender whose requests keep failing gives up.
            while errors < 10 {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= log.acked.len() {
                    break;
                }
                let t = Instant::now();
                match load::send_one(
                    &mut conn,
                    &target,
                    &session,
                    &rooms[seq % rooms.len()],
                    &run,
                    seq as u32,
                )
                .await
                {
                    Ok(id) => {
                        times.push(t.elapsed().as_micros() as u64);
                        log.acked[seq].store(true, Ordering::Relaxed);
                        log.ids[seq].store(id.unwrap_or(0), Ordering::Relaxed);
                    }
                    Err(e) => {
                        errors += 1;
                        if let Ok(mut list) = log.errors.lock() {
                            list.push(e.0);
                        }
                    }
                }
            }
            times
        }));
    }
    let mut times = Vec::new();
    for t in tasks {
        times.extend(t.await.map_err(|e| format!("sender task: {e}"))?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    times.sort_unstable();
    let acked = log.acked_count();
    let rate = acked as f64 / elapsed;

    report.info(sc, "concurrent keep-alive senders", senders.to_string());
    report.perf(
        sc,
        "stored messages per second",
        format!("{rate:.0}/s"),
        "≥ 3000/s",
        rate >= 3000.0,
    );
    report.info(
        sc,
        "send request latency p50",
        ms(load::percentile_ms(&times, 50.0)),
    );
    report.info(
        sc,
        "send request latency p99",
        ms(load::percentile_ms(&times, 99.0)),
    );
    report.check(
        sc,
        "sends acknowledged (2xx)",
        format!("{acked}/{}", sizes.messages),
        "all",
        acked == sizes.messages,
    );
    for e in log.error_list().iter().take(3) {
        progress(sc, &format!("send error: {e}"));
    }

    progress(sc, "reading the rooms' history back with ?before=");
    let history = read_history(&server.target, &sessions[0], &rooms, &log).await?;
    let mut missing = 0;
    let mut duplicated = 0;
    for (seq, acked) in log.acked.iter().enumerate() {
        let stored = history.get(&(seq as u32)).copied().unwrap_or(0);
        if acked.load(Ordering::Relaxed) && stored == 0 {
            missing += 1;
        }
        if stored > 1 {
            duplicated += stored - 1;
        }
    }
    report.check(
        sc,
        "acknowledged but missing from history",
        missing.to_string(),
        "0",
        missing == 0,
    );
    report.check(
        sc,
        "stored twice",
        duplicated.to_string(),
        "0",
        duplicated == 0,
    );
    Ok(())
}

/// How often each send number appears in the rooms' history, paged with `?before=` like the
/// browser scrolling up.
async fn read_history(
    target: &Target,
    session: &Session,
    rooms: &[String],
    log: &SendLog,
) -> Result<HashMap<u32, usize>> {
    let mut b = Browser::with_session(target.clone(), session);
    let newest = log
        .ids
        .iter()
        .map(|i| i.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    // Past the newest id the POST answers showed; without ids, past anything plausible.
    let top = if newest > 0 { newest + 1 } else { i64::MAX / 2 };
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for room in rooms {
        let mut before = top;
        // Every page holds at least one message, so this bounds the loop.
        for page in 0..=log.acked.len() + 1 {
            let path = format!("/rooms/{room}/messages?before={before}");
            let resp = b.get_as(&path, true).await?;
            if resp.status == 204 {
                break;
            }
            if resp.status != 200 {
                bail!("GET {path} answered {}: {}", resp.status, resp.snippet());
            }
            let found = messages::parse(&resp.body);
            let Some(min) = found.iter().map(|f| f.id).min() else {
                break;
            };
            if let Some(bad) = found.iter().find(|f| f.id >= before) {
                bail!(
                    "GET {path} (page {page}) returned message {} which is not before {before}",
                    bad.id
                );
            }
            for f in found.iter().filter_map(|f| f.seq) {
                *counts.entry(f).or_default() += 1;
            }
            before = min;
        }
    }
    Ok(counts)
}

/// Scenario 5: listeners on process A, sends through process B, one PostgreSQL database.
pub async fn crossproc(
    ctx: &mut Ctx,
    report: &mut Report,
    sizes: FanoutSizes,
    postgres_url: Option<&str>,
) -> Result<()> {
    let sc = "5 cross-process";
    let Some(db) = fresh_postgres(sc, postgres_url, &ctx.run, report).await else {
        return Ok(());
    };
    let outcome = crossproc_load(ctx, sc, report, &db.url, &sizes).await;
    drop_postgres(sc, db, outcome).await
}

/// A fresh PostgreSQL database named after `run` on the server at `admin_url` for scenario `sc`;
/// None, with a row in the table saying why, when there is no PostgreSQL to use.
pub async fn fresh_postgres(
    sc: &str,
    admin_url: Option<&str>,
    run: &str,
    report: &mut Report,
) -> Option<FreshDatabase> {
    let Some(url) = admin_url else {
        report.info(
            sc,
            "skipped",
            "no PostgreSQL URL (--postgres-url or PARLEY_BENCH_POSTGRES_URL)".into(),
        );
        return None;
    };
    match FreshDatabase::create(url, run).await {
        Ok(db) => {
            progress(sc, &format!("fresh database {}", db.name));
            Some(db)
        }
        Err(e) => {
            progress(sc, &format!("skipped: {e}"));
            report.info(
                sc,
                "skipped",
                format!("PostgreSQL not usable at {}", redact(url)),
            );
            None
        }
    }
}

/// Drops the scenario's database whatever its outcome, which it then returns.
pub async fn drop_postgres(sc: &str, db: FreshDatabase, outcome: Result<()>) -> Result<()> {
    let dropped = db.drop_database().await;
    outcome?;
    if let Err(e) = dropped {
        progress(sc, &format!("could not drop the bench database: {e}"));
    }
    Ok(())
}

async fn crossproc_load(
    ctx: &mut Ctx,
    sc: &str,
    report: &mut Report,
    url: &str,
    sizes: &FanoutSizes,
) -> Result<()> {
    // A first, alone, so that only one process applies the migrations.
    let a = ctx.start("crossproc-a", url, report).await?;
    let b = match ctx.start("crossproc-b", url, report).await {
        Ok(b) => b,
        Err(e) => {
            let _ = a.stop().await;
            return Err(e);
        }
    };
    let outcome = fanout_load(
        ctx,
        sc,
        &a,
        &b.target.clone(),
        sizes,
        Plan::sends_only(sizes.messages),
    )
    .await;
    let stopped_a = a.stop().await;
    let stopped_b = b.stop().await;
    let FanoutRun { result, log, .. } = outcome?;
    report.info(
        sc,
        "listeners on process A, sends through B",
        sizes.listeners.to_string(),
    );
    delivery_rows(report, sc, &result, &log, None, Some(50.0));
    report.info(
        sc,
        "bytes per delivered message",
        format!("{:.0} B", result.bytes_per_delivery()),
    );
    stopped_a?;
    stopped_b
}

/// Scenario 10: a big room. Every listener of the fan-out scenario in one room, ten times as
/// many of them, and a message a second: each send answers 10,000 polls at once, which all poll
/// again. Figures: the server's memory while they stay (every message delivered) and after they
/// leave, against the memory before they came; delivery against the floor server's in the same
/// run.
pub async fn bigroom(
    ctx: &mut Ctx,
    report: &mut Report,
    sizes: FanoutSizes,
    floor: bool,
) -> Result<()> {
    let sc = "10 big room";
    ctx.need_sockets(sizes.listeners, "listeners")?;
    let server = ctx.start_sqlite("bigroom", report).await?;
    let target = server.target.clone();
    let outcome = async {
        let run = fanout_load(
            ctx,
            sc,
            &server,
            &target,
            &sizes,
            Plan::sends_only(sizes.messages),
        )
        .await?;
        progress(
            sc,
            "the listeners have left; waiting for the memory to come back",
        );
        let left = memory_after(&server, run.memory.before).await?;
        Ok::<_, crate::http::Error>((run, left))
    }
    .await;
    let stopped = server.stop().await;
    let (run, left) = outcome?;
    stopped?;
    let FanoutRun {
        result,
        log,
        cpu,
        memory,
    } = run;
    report.info(
        sc,
        "listeners in one room, messages",
        format!(
            "{}, {} at {}/s",
            sizes.listeners, sizes.messages, sizes.rate
        ),
    );
    delivery_rows(report, sc, &result, &log, None, None);
    let slowest: Vec<String> = result
        .slowest_sends(3)
        .iter()
        .map(|(send, wait)| format!("#{send}: {}", ms(*wait)))
        .collect();
    report.info(
        sc,
        "slowest messages (send number: its last delivery)",
        slowest.join(", "),
    );
    cpu_row(report, sc, cpu, result.delivered);
    let mb = |bytes: u64| bytes as f64 / MB;
    report.info(
        sc,
        "resident memory before the listeners came (the server's own: RssAnon)",
        format!(
            "{:.1} MB ({:.1} MB)",
            mb(memory.before),
            mb(memory.own_before)
        ),
    );
    report.info(
        sc,
        "resident memory at its highest (first send → a second after the last delivery)",
        format!("{:.1} MB", mb(memory.peak)),
    );
    report.info(
        sc,
        "resident memory the moment the last listener had the last message",
        format!("{:.1} MB", mb(memory.last)),
    );
    report.perf(
        sc,
        "resident memory at the end: a second after the last delivery, every listener polling again",
        format!("{:.1} MB", mb(memory.end)),
        "≤ 200 MB",
        mb(memory.end) <= 200.0,
    );
    let ratio = |after: u64, before: u64| after as f64 / before.max(1) as f64;
    let back = ratio(left.rss, memory.before);
    report.perf(
        sc,
        "resident memory after the listeners left vs before they came",
        format!(
            "{back:.2}× ({:.1} MB / {:.1} MB)",
            mb(left.rss),
            mb(memory.before)
        ),
        "≤ 1.2×",
        back <= 1.2,
    );
    report.info(
        sc,
        "the server's own memory (RssAnon) after the listeners left vs before they came",
        format!(
            "{:.2}× ({:.1} MB / {:.1} MB)",
            ratio(left.own, memory.own_before),
            mb(left.own),
            mb(memory.own_before)
        ),
    );
    if floor {
        match fanout_floor(ctx, report, "10 big room floor", &sizes).await {
            Ok(f) => {
                against_floor(report, sc, (&result, cpu), &f, [None, Some(1.5), None]);
                report.info(
                    sc,
                    "floor's resident memory before / highest / at the last delivery / a second later",
                    format!(
                        "{:.1} / {:.1} / {:.1} / {:.1} MB",
                        mb(f.memory.before),
                        mb(f.memory.peak),
                        mb(f.memory.last),
                        mb(f.memory.end)
                    ),
                );
            }
            Err(e) => {
                progress("10 big room floor", &format!("error: {e}"));
                report.error("10 big room floor", &e.0);
            }
        }
    }
    Ok(())
}

/// What the server holds once its listeners have gone.
struct Left {
    /// Resident memory (VmRSS), the least seen.
    rss: u64,
    /// Its own memory (RssAnon), the least seen.
    own: u64,
}

/// The server's memory once its listeners have gone: sampled for up to 30 s (the server looks
/// at its connections every 10 s), ending early once its resident memory is within a fifth of
/// `before`; the least seen of each. Its own memory (RssAnon) leaves out the pages of its
/// program and of the database file that the run read in, which the OS's cache keeps.
async fn memory_after(server: &Server, before: u64) -> Result<Left> {
    let until = Instant::now() + Duration::from_secs(30);
    let mut left = Left {
        rss: server.rss()?,
        own: server.anon(),
    };
    while left.rss as f64 > before as f64 * 1.2 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        left.rss = left.rss.min(server.rss()?);
        left.own = left.own.min(server.anon());
    }
    Ok(left)
}
