use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use parley::config::LogFormat;
use parley::{Cli, Command, db, password};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.settings.log_format);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("parley: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let settings = cli.settings;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            raise_open_file_limit();
            return_large_allocations_to_the_os();
            let db = db::Db::connect(&settings).await?;
            parley::serve(settings, db).await?;
        }
        Command::Migrate => {
            db::Db::connect(&settings).await?;
            println!("Migrations applied.");
        }
        Command::Backup { file } => {
            let r = parley::backup::backup(&settings, &file).await?;
            let missing = match r.missing {
                0 => String::new(),
                n => format!(" ({n} deleted while the backup ran)"),
            };
            println!(
                "Backed up {} messages and {} files ({:.1} MB){missing} to {}.",
                r.messages,
                r.files,
                r.bytes as f64 / 1e6,
                file.display()
            );
        }
        Command::Export {
            dir,
            with_password_hashes,
        } => {
            let counts = parley::transfer::export(&settings, &dir, with_password_hashes).await?;
            let missing = match counts.missing {
                0 => String::new(),
                n => format!(" ({n} files deleted while it ran)"),
            };
            println!(
                "Exported {}{missing} to {}.",
                summary(&counts),
                dir.display()
            );
        }
        Command::Import { dir } => {
            let counts = parley::transfer::import(&settings, &dir).await?;
            println!("Imported {} from {}.", summary(&counts), dir.display());
        }
        Command::Createsuperuser { username } => {
            let db = db::Db::connect(&settings).await?;
            let raw = superuser_password()?;
            let user = password::create_superuser(&db, &username, &raw).await?;
            println!("Superuser “{user}” created.");
        }
    }
    Ok(())
}

/// "3 users, 2 rooms, 120 messages and 4 files".
fn summary(counts: &parley::transfer::Counts) -> String {
    let of = |table: &str| counts.rows.get(table).copied().unwrap_or(0);
    format!(
        "{} users, {} rooms, {} messages and {} files",
        of("users"),
        of("rooms"),
        of("messages"),
        counts.files
    )
}

/// Logs to stderr at `RUST_LOG`'s levels (info by default, with a line per request from
/// `parley::access`), as text or as one JSON object a line.
fn init_logs(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal, not for a file or a journal.
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => logs.init(),
        // Each event's fields at the top level of its object, beside `timestamp`, `level`
        // and `target`: what log collectors index.
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
}

/// Like Django: PARLEY_SUPERUSER_PASSWORD for scripts, else ask twice on the terminal.
fn superuser_password() -> Result<String, Box<dyn std::error::Error>> {
    if let Ok(raw) = std::env::var("PARLEY_SUPERUSER_PASSWORD") {
        return Ok(raw);
    }
    if !std::io::stdin().is_terminal() {
        return Err("no terminal to ask for the password: set PARLEY_SUPERUSER_PASSWORD".into());
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Password (again): ")?;
    if first != second {
        return Err("the two passwords differ".into());
    }
    Ok(first)
}

/// Every held long-poll is a socket; the default soft limit (often 1,024) would cap listeners
/// far below what the server can hold, so raise it to the hard limit.
fn raise_open_file_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// argon2 works in 19 MiB of memory per hash, on blocking-pool threads. glibc's dynamic mmap
/// threshold rises to that size after the first free, so later hashes come from per-thread heap
/// arenas that are never given back: measured ~19 MB of resident memory per login. A fixed
/// threshold keeps such blocks in mmap, returned to the system as soon as they are freed.
fn return_large_allocations_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before the runtime spawns work.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}
