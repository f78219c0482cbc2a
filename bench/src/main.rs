//! parley-bench: the load generator behind `just bench` (the performance targets of
//! BENCHMARKS.md). It starts Parley itself on a fresh database per scenario, talks to it over HTTP on
//! 127.0.0.1 exactly as browsers do (cookies, CSRF token, htmx headers, long-polls), and prints
//! one table: scenario | figure | value | target | pass/miss.
//!
//! Exit code: 1 when anything is lost, duplicated, out of order or fails; missed performance
//! targets are reported as MISS but do not change the exit code.

mod browser;
mod files;
mod floor;
mod http;
mod load;
mod messages;
mod pg;
mod report;
mod scenarios;
mod search;
mod server;
mod soak;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use report::Report;
use scenarios::{CapacitySizes, Ctx, FanoutSizes, ThroughputSizes};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Fanout,
    Capacity,
    Throughput,
    Crossproc,
    Changes,
    Search,
    Files,
    Soak,
    Bigroom,
    All,
}

#[derive(Debug, Parser)]
#[command(
    name = "parley-bench",
    about = "Load generator for Parley: delivery latency, capacity, throughput"
)]
struct Cli {
    /// The Parley binary to start (`{bin} serve --addr ... --database-url ...`).
    #[arg(long, default_value = "target/release/parley")]
    server_bin: PathBuf,

    /// Which scenario to run.
    #[arg(long, value_enum, default_value = "all")]
    scenario: Scenario,

    /// Fan-out and cross-process: listeners held in the room [1,000; cross-process 500; big
    /// room 10,000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=15_000))]
    listeners: Option<u64>,

    /// Fan-out and cross-process: sends per second [20; big room 1].
    #[arg(long)]
    rate: Option<f64>,

    /// Fan-out and cross-process: how long to send, in seconds [30; big room 20].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=600))]
    duration_secs: Option<u64>,

    /// Capacity: held long-polls [10,000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=18_000))]
    polls: Option<u64>,

    /// Capacity: rooms the polls are spread over [100]; throughput: rooms written to [1].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    rooms: Option<u64>,

    /// Throughput: concurrent keep-alive senders [64].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    senders: Option<u64>,

    /// Throughput: messages to send [20,000]; fan-out and cross-process: overrides rate × duration.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    messages: Option<u64>,

    /// Search: concurrent searchers [20] (0 measures the sends alone, on the same history).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=200))]
    searchers: Option<u64>,

    /// Cross-process: a PostgreSQL server to create a fresh database on, e.g.
    /// postgres://127.0.0.1:5432/postgres. Without it the scenario is skipped.
    #[arg(long, env = "PARLEY_BENCH_POSTGRES_URL")]
    postgres_url: Option<String>,

    /// Client sockets are spread over 127.0.0.1 ..= 127.0.0.N so ephemeral ports never run short.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=200))]
    source_ips: u64,

    /// Every scenario at a tiny size, for the test suite: fails only on errors and on lost,
    /// duplicated or out-of-order messages, never on latency.
    #[arg(long)]
    smoke: bool,

    /// Fan-out and capacity: skip the floor runs (the same load against a do-nothing hyper
    /// server, whose p50 and memory per held poll Parley's are compared with).
    #[arg(long)]
    no_floor: bool,

    /// Fan-out: how many Parley and floor runs, alternated, the CPU-per-delivery ratio is the
    /// median of [5; the smoke run 1].
    #[arg(long)]
    floor_pairs: Option<u64>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The floor server the fan-out scenario compares Parley with (started by the bench itself).
    #[command(hide = true)]
    FloorServer {
        /// Where to listen: 127.0.0.1 only.
        #[arg(long)]
        addr: SocketAddr,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::FloorServer { addr }) = cli.command {
        return match floor::serve(addr).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("parley-bench floor-server: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("parley-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Ok(passed) once the table is printed; Err when nothing could run at all.
async fn run(cli: Cli) -> http::Result<bool> {
    if !cli.server_bin.is_file() {
        bail!(
            "no server binary at {} (build it with `cargo build --release`, or pass --server-bin)",
            cli.server_bin.display()
        );
    }
    // Before any server starts, so the servers inherit the raised limit.
    let open_files = server::raise_open_file_limit();
    let dir = tempfile::Builder::new()
        .prefix("parley-bench-")
        .tempdir()
        .map_err(|e| format!("creating a temporary directory: {e}"))?;
    let run_id = format!(
        "{}{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            & 0xffffff
    );
    let server_bin = std::fs::canonicalize(&cli.server_bin).unwrap_or(cli.server_bin.clone());
    let mut ctx = Ctx::new(
        server_bin,
        dir.path().to_owned(),
        run_id,
        cli.source_ips as usize,
        open_files,
    );

    let smoke = cli.smoke;
    let pick = |flag: Option<u64>, full: usize, tiny: usize| {
        flag.map(|v| v as usize)
            .unwrap_or(if smoke { tiny } else { full })
    };
    let rate = cli
        .rate
        .filter(|r| *r > 0.0 && r.is_finite())
        .unwrap_or(20.0);
    let duration = cli.duration_secs.unwrap_or(30) as f64;
    let fanout_sizes = |listeners_full: usize, listeners_tiny: usize| FanoutSizes {
        listeners: pick(cli.listeners, listeners_full, listeners_tiny),
        rate,
        messages: pick(cli.messages, (rate * duration).round().max(1.0) as usize, 5),
    };

    let all = cli.scenario == Scenario::All;
    let mut report = Report::default();
    if all || cli.scenario == Scenario::Fanout {
        let r = scenarios::fanout(
            &mut ctx,
            &mut report,
            fanout_sizes(1000, 5),
            !cli.no_floor,
            pick(cli.floor_pairs, 5, 1),
        )
        .await;
        note(&mut report, "1 fan-out", r);
    }
    if all || cli.scenario == Scenario::Capacity {
        let sizes = CapacitySizes {
            polls: pick(cli.polls, 10_000, 50),
            rooms: pick(cli.rooms, 100, 5),
        };
        let r = scenarios::capacity(&mut ctx, &mut report, sizes, !cli.no_floor).await;
        note(&mut report, "2 capacity", r);
    }
    if all || cli.scenario == Scenario::Throughput {
        let sizes = ThroughputSizes {
            senders: pick(cli.senders, 64, 8),
            messages: pick(cli.messages, 20_000, 200),
            rooms: pick(cli.rooms, 1, 1),
        };
        let r = scenarios::throughput(&mut ctx, &mut report, sizes).await;
        note(&mut report, "3 throughput", r);
    }
    if all || cli.scenario == Scenario::Crossproc {
        let r = scenarios::crossproc(
            &mut ctx,
            &mut report,
            fanout_sizes(500, 5),
            cli.postgres_url.as_deref(),
        )
        .await;
        note(&mut report, "5 cross-process", r);
    }

    if all || cli.scenario == Scenario::Changes {
        let r = scenarios::changes(&mut ctx, &mut report, fanout_sizes(1000, 5)).await;
        note(&mut report, "6 changes", r);
    }

    if all || cli.scenario == Scenario::Search {
        let sizes = search::SearchSizes {
            messages: pick(cli.messages, 200_000, 2_000),
            rooms: pick(cli.rooms, 50, 5),
            people: 500.min(if smoke { 20 } else { 500 }),
            searchers: pick(cli.searchers, 20, 3),
            senders: pick(cli.senders, 32, 2),
            send_rate: cli.rate.unwrap_or(if smoke { 100.0 } else { 2000.0 }),
            duration: std::time::Duration::from_secs(cli.duration_secs.unwrap_or(if smoke {
                1
            } else {
                20
            })),
        };
        let r = search::search(&mut ctx, &mut report, sizes, cli.postgres_url.as_deref()).await;
        note(&mut report, "7 search", r);
    }

    if all || cli.scenario == Scenario::Files {
        let sizes = files::FilesSizes {
            uploads: 16,
            bytes: if smoke { 256 * 1024 } else { 20 * 1024 * 1024 },
            listeners: pick(cli.listeners, 500, 5),
        };
        let r = files::files(&mut ctx, &mut report, sizes).await;
        note(&mut report, "8 files", r);
    }

    if all || cli.scenario == Scenario::Soak {
        let sizes = soak::SoakSizes {
            listeners: pick(cli.listeners, 1000, 20),
            rate,
            duration: std::time::Duration::from_secs(cli.duration_secs.unwrap_or(if smoke {
                30
            } else {
                600
            })),
        };
        let r = soak::soak(&mut ctx, &mut report, sizes).await;
        note(&mut report, "9 soak", r);
    }

    if all || cli.scenario == Scenario::Bigroom {
        let rate = cli
            .rate
            .filter(|r| *r > 0.0 && r.is_finite())
            .unwrap_or(1.0);
        let duration = cli.duration_secs.unwrap_or(20) as f64;
        let sizes = FanoutSizes {
            listeners: pick(cli.listeners, 10_000, 20),
            rate,
            messages: pick(cli.messages, (rate * duration).round().max(1.0) as usize, 5),
        };
        let r = scenarios::bigroom(&mut ctx, &mut report, sizes, !cli.no_floor).await;
        note(&mut report, "10 big room", r);
    }

    println!();
    report.print();
    let passed = !report.failed();
    if !passed {
        // The servers' logs (`{name}.log`) say why a request failed: kept for whoever looks.
        let kept = dir.keep();
        eprintln!(
            "\nsomething failed: the servers' logs are kept in {}",
            kept.display()
        );
    }
    if smoke {
        println!("\nsmoke run: {}", if passed { "ok" } else { "FAILED" });
    }
    Ok(passed)
}

fn note(report: &mut Report, scenario: &str, result: http::Result<()>) {
    if let Err(e) = result {
        eprintln!("[{scenario}] error: {e}");
        report.error(scenario, &e.0);
    }
}
