//! Typed configuration, read once at start from flags and the environment, with defaults that
//! work on a laptop without any set-up.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "parley", version, about = "Parley: real-time web chat", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub settings: Settings,
}

/// Who may create an account (`--registration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Registration {
    /// Anyone, at `/register`.
    Open,
    /// Whoever has an invite link that staff made in the admin.
    Invite,
    /// Nobody by themselves: staff make accounts in the admin.
    Closed,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations and serve HTTP (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Copy a (running) SQLite installation into one tar file: the database and the
    /// attachments' bytes. PostgreSQL: use pg_dump.
    Backup {
        /// The archive to write; it must not exist yet.
        file: PathBuf,
    },
    /// Write everything people made (users, rooms, messages, files, …) into a new directory, as
    /// newline-delimited JSON plus the files: the way to move to another database.
    Export {
        /// The directory to write; it must not exist, or be empty.
        dir: PathBuf,
        /// Keep the password hashes (else everyone needs a reset link after the move).
        #[arg(long)]
        with_password_hashes: bool,
    },
    /// Read an export into this database (SQLite or PostgreSQL), which must have no users yet.
    Import {
        /// The directory `parley export` wrote.
        dir: PathBuf,
    },
    /// Create a superuser (staff, all rights) for the admin area.
    Createsuperuser {
        /// The new superuser's name.
        #[arg(long)]
        username: String,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Database URL: sqlite://FILE (created when missing) or postgres://USER@HOST/DB.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        default_value = "sqlite://parley.db"
    )]
    pub database_url: String,

    /// Address to listen on.
    #[arg(
        long,
        global = true,
        env = "PARLEY_ADDR",
        default_value = "127.0.0.1:8000"
    )]
    pub addr: SocketAddr,

    /// Mark cookies Secure. Set it when Parley is served over HTTPS (behind a TLS proxy);
    /// requests carrying `X-Forwarded-Proto: https` get Secure cookies regardless.
    #[arg(
        long,
        global = true,
        env = "PARLEY_SECURE_COOKIES",
        default_value_t = false
    )]
    pub secure_cookies: bool,

    /// How long a long-poll is held before it answers 204 (seconds, at most 30).
    #[arg(long, global = true, env = "PARLEY_POLL_TIMEOUT_SECS", default_value_t = 25,
          value_parser = clap::value_parser!(u64).range(1..=30))]
    pub poll_timeout_secs: u64,

    /// Reverse proxies in front of Parley (comma-separated IP addresses). A request from one of
    /// them is attributed to the client its `X-Forwarded-For` names, for login throttling;
    /// from anyone else the header is ignored.
    #[arg(
        long,
        global = true,
        env = "PARLEY_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpAddr>,

    /// Largest number of database connections in the pool.
    #[arg(
        long,
        global = true,
        env = "PARLEY_DB_MAX_CONNECTIONS",
        default_value_t = 16
    )]
    pub db_max_connections: u32,

    /// STUN/TURN servers for calls (comma-separated, e.g. `stun:stun.example.org:3478,
    /// turn:turn.example.org:3478`). None by default: browsers that can reach each other
    /// directly (one network) need none; across NATs a TURN server is needed (see the README).
    #[arg(long, global = true, env = "PARLEY_ICE_SERVERS", value_delimiter = ',')]
    pub ice_servers: Vec<String>,

    /// How long a call rings before it counts as missed (seconds).
    #[arg(long, global = true, env = "PARLEY_CALL_RING_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=120))]
    pub call_ring_secs: u64,

    /// The secret shared with coturn (`use-auth-secret`, `static-auth-secret`): each person's
    /// browser gets its own TURN credentials, valid for a day. Preferred over a fixed
    /// user name and password.
    #[arg(
        long,
        global = true,
        env = "PARLEY_TURN_SECRET",
        hide_env_values = true
    )]
    pub turn_secret: Option<String>,

    /// The TURN servers' user name (given to logged-in people's browsers with the list).
    #[arg(
        long,
        global = true,
        env = "PARLEY_TURN_USERNAME",
        hide_env_values = true
    )]
    pub turn_username: Option<String>,

    /// The TURN servers' password (given to logged-in people's browsers with the list).
    #[arg(
        long,
        global = true,
        env = "PARLEY_TURN_CREDENTIAL",
        hide_env_values = true
    )]
    pub turn_credential: Option<String>,

    /// Where attachments' bytes are kept: a directory, created at start when missing (the
    /// default, beside the database). Ignored when `--files-url` is given.
    #[arg(
        long,
        global = true,
        env = "PARLEY_FILES_DIR",
        default_value = "parley-files"
    )]
    pub files_dir: PathBuf,

    /// An S3-compatible bucket for attachments instead of the directory, for several servers:
    /// `s3://BUCKET` or `s3://BUCKET/PREFIX`, with the usual environment variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, and `AWS_ENDPOINT` with
    /// `AWS_ALLOW_HTTP=true` for a server other than Amazon's).
    #[arg(long, global = true, env = "PARLEY_FILES_URL")]
    pub files_url: Option<String>,

    /// The largest file one may attach (MB).
    #[arg(long, global = true, env = "PARLEY_MAX_UPLOAD_MB", default_value_t = 25,
          value_parser = clap::value_parser!(u64).range(1..=10_240))]
    pub max_upload_mb: u64,

    /// How much one person may upload in an hour (MB).
    #[arg(
        long,
        global = true,
        env = "PARLEY_UPLOAD_MB_PER_HOUR",
        default_value_t = 200
    )]
    pub upload_mb_per_hour: u64,

    /// How often bytes no attachment names (left by a crash mid-upload) are swept away: those
    /// a day old (seconds).
    #[arg(long, global = true, env = "PARLEY_FILES_SWEEP_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub files_sweep_secs: u64,

    /// Host names (the `Host` header, without its port) this server answers to, comma-separated;
    /// a leading dot allows subdomains (`.example.org`). Any other gets 400, so a web page on a
    /// rebound DNS name cannot reach a local instance. Always allowed: IP addresses and
    /// `localhost` names (a rebinding attack needs a name of its own).
    #[arg(
        long,
        global = true,
        env = "PARLEY_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,

    /// Long-polls one person may hold at once (one per open tab); beyond it a poll answers at
    /// once (429) instead of waiting. 0: no limit.
    #[arg(
        long,
        global = true,
        env = "PARLEY_MAX_POLLS_PER_USER",
        default_value_t = 16
    )]
    pub max_polls_per_user: usize,

    /// Long-polls one client address (an IPv6 /64) may hold at once. 0: no limit.
    #[arg(
        long,
        global = true,
        env = "PARLEY_MAX_POLLS_PER_ADDR",
        default_value_t = 256
    )]
    pub max_polls_per_addr: usize,

    /// Messages one person may send in a minute (a burst of that many, then the same pace).
    /// 0: no limit.
    #[arg(
        long,
        global = true,
        env = "PARLEY_MESSAGES_PER_MINUTE",
        default_value_t = 240
    )]
    pub messages_per_minute: u32,

    /// Rooms one person may create in an hour. 0: no limit.
    #[arg(
        long,
        global = true,
        env = "PARLEY_ROOMS_PER_HOUR",
        default_value_t = 20
    )]
    pub rooms_per_hour: u32,

    /// Rooms one person may have created in all. 0: no limit.
    #[arg(
        long,
        global = true,
        env = "PARLEY_MAX_ROOMS_PER_USER",
        default_value_t = 100
    )]
    pub max_rooms_per_user: u32,

    /// New private conversations one person may start in an hour. 0: no limit.
    #[arg(
        long,
        global = true,
        env = "PARLEY_CONVERSATIONS_PER_HOUR",
        default_value_t = 30
    )]
    pub conversations_per_hour: u32,

    /// Topic changes one person may make in an hour. 0: no limit.
    #[arg(
        long,
        global = true,
        env = "PARLEY_TOPICS_PER_HOUR",
        default_value_t = 30
    )]
    pub topics_per_hour: u32,

    /// Display-name changes one person may make in an hour (each makes every server forget the
    /// messages it has rendered). 0: no limit.
    #[arg(
        long,
        global = true,
        env = "PARLEY_RENAMES_PER_HOUR",
        default_value_t = 10
    )]
    pub renames_per_hour: u32,

    /// Log-in attempts, successful or not, from one client address in a minute (each costs a
    /// password hash). 0: no limit.
    #[arg(
        long,
        global = true,
        env = "PARLEY_LOGINS_PER_MINUTE",
        default_value_t = 30
    )]
    pub logins_per_minute: u32,

    /// Who may create an account: `open` (anyone), `invite` (with an invite link staff made in
    /// the admin), `closed` (only staff make accounts, in the admin).
    #[arg(
        long,
        global = true,
        env = "PARLEY_REGISTRATION",
        value_enum,
        default_value_t = Registration::Open
    )]
    pub registration: Registration,

    /// Password hashes (argon2, ~20 ms and 19 MB each) computed at once; 0: one per core.
    #[arg(long, global = true, env = "PARLEY_HASH_WORKERS", default_value_t = 0)]
    pub hash_workers: usize,

    /// Password hashes that may wait for a worker; past it, 503 with Retry-After.
    #[arg(long, global = true, env = "PARLEY_HASH_QUEUE", default_value_t = 8)]
    pub hash_queue: usize,

    /// How long a new connection has to send its first request head (seconds); then it is
    /// closed.
    #[arg(long, global = true, env = "PARLEY_HEADER_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_secs: u64,

    /// How long a kept-alive connection may wait, with no request in progress, for its next
    /// one (seconds). A held long-poll is a request in progress.
    #[arg(long, global = true, env = "PARLEY_IDLE_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_secs: u64,

    /// How long reading a request's body may take (seconds); then 408.
    #[arg(long, global = true, env = "PARLEY_BODY_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_secs: u64,

    /// Connections open at once; past it a new one gets 503 and is closed. 0: the open-file
    /// limit less what the database and the rest of the process need.
    #[arg(
        long,
        global = true,
        env = "PARLEY_MAX_CONNECTIONS",
        default_value_t = 0
    )]
    pub max_connections: usize,

    /// Connections open at once from one client address (an IPv6 /64); the trusted proxies
    /// have no such cap. 0: no limit.
    #[arg(
        long,
        global = true,
        env = "PARLEY_MAX_CONNECTIONS_PER_ADDR",
        default_value_t = 256
    )]
    pub max_connections_per_addr: usize,

    /// Serve `/metrics` (Prometheus) on this address of its own, e.g. `127.0.0.1:9100` or a
    /// private interface's; anyone who reaches it may read them. Off by default.
    #[arg(long, global = true, env = "PARLEY_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Serve `/metrics` on the main address too, to requests carrying
    /// `Authorization: Bearer TOKEN`. Off by default (then `/metrics` there is 404).
    #[arg(
        long,
        global = true,
        env = "PARLEY_METRICS_TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,

    /// How log lines are written to stderr: `text` for people, `json` (one object a line)
    /// for a log collector.
    #[arg(long, global = true, env = "PARLEY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Settings {
    pub fn poll_timeout(&self) -> Duration {
        Duration::from_secs(self.poll_timeout_secs)
    }

    /// How long a call rings (ms).
    pub fn ring_ms(&self) -> i64 {
        self.call_ring_secs as i64 * 1000
    }

    /// The largest file one may attach, in bytes.
    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_mb * 1024 * 1024
    }

    /// Settings for tests and tools: a given database, any free port.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            secure_cookies: false,
            poll_timeout_secs: 25,
            trusted_proxies: Vec::new(),
            db_max_connections: 16,
            ice_servers: Vec::new(),
            call_ring_secs: 30,
            turn_secret: None,
            turn_username: None,
            turn_credential: None,
            files_dir: PathBuf::from("parley-files"),
            files_url: None,
            max_upload_mb: 25,
            upload_mb_per_hour: 200,
            files_sweep_secs: 3600,

            allowed_hosts: Vec::new(),
            max_polls_per_user: 16,
            max_polls_per_addr: 256,
            messages_per_minute: 240,
            rooms_per_hour: 20,
            max_rooms_per_user: 100,
            conversations_per_hour: 30,
            topics_per_hour: 30,
            renames_per_hour: 10,
            logins_per_minute: 30,
            registration: Registration::Open,
            hash_workers: 0,
            hash_queue: 8,
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            body_timeout_secs: 30,
            max_connections: 0,
            max_connections_per_addr: 256,
            metrics_addr: None,
            metrics_token: None,
            log_format: LogFormat::Text,
        }
    }
}
