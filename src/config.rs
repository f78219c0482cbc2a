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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations and serve HTTP (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
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
        }
    }
}
