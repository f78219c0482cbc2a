//! Starting and stopping Parley processes, and reading their memory from /proc.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bail;
use crate::http::{Conn, Error, Result, Target, build_request};

const HEALTHZ_DEADLINE: Duration = Duration::from_secs(60);
const STOP_DEADLINE: Duration = Duration::from_secs(10);

pub struct Server {
    pub name: String,
    pub target: Target,
    child: Option<Child>,
    pub pid: u32,
    log: PathBuf,
    /// From spawn to the first 200 on /healthz.
    pub startup: Duration,
}

/// A port nobody listens on right now. The server binds it a moment later; the window is small
/// and a clash shows up as a clear start-up failure.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    Ok(l.local_addr()
        .map_err(|e| format!("finding a free port: {e}"))?
        .port())
}

impl Server {
    /// `{bin} serve --addr 127.0.0.1:{port} --database-url {url}`, logging to `{dir}/{name}.log`,
    /// then waits for /healthz to answer 200.
    pub async fn start(bin: &Path, name: &str, database_url: &str, dir: &Path) -> Result<Server> {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = Command::new(bin);
        cmd.args([
            "serve",
            "--addr",
            &addr.to_string(),
            "--database-url",
            database_url,
        ])
        // The same settings by environment too, so an outer DATABASE_URL cannot leak in.
        .env("DATABASE_URL", database_url)
        .env("PARLEY_ADDR", addr.to_string())
        // Attachments beside the run's logs, not in the directory the bench was started from.
        .env("PARLEY_FILES_DIR", dir.join(format!("{name}-files")));
        // The scenarios are one machine playing thousands of people: a few users hold every
        // poll, from one address, and send as fast as asked. The per-person and per-address
        // limits are lifted (by environment, which a server without them ignores); the
        // connection deadlines and caps stay, since they are part of what is measured.
        for limit in [
            "PARLEY_MAX_POLLS_PER_USER",
            "PARLEY_MAX_POLLS_PER_ADDR",
            "PARLEY_MESSAGES_PER_MINUTE",
            "PARLEY_ROOMS_PER_HOUR",
            "PARLEY_MAX_CONNECTIONS_PER_ADDR",
            "PARLEY_LOGINS_PER_MINUTE",
        ] {
            cmd.env(limit, "0");
        }
        // Per-request info logs would cost the server CPU that the figures should not include.
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "warn");
        }
        Self::launch(cmd, bin, name, addr, dir).await
    }

    /// The floor server (src/floor.rs): this very binary, `floor-server --addr 127.0.0.1:{port}`,
    /// in its own process like Parley.
    pub async fn start_floor(name: &str, dir: &Path) -> Result<Server> {
        let bin = std::env::current_exe()
            .map_err(|e| format!("finding the bench's own binary to start the floor: {e}"))?;
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = Command::new(&bin);
        cmd.args(["floor-server", "--addr", &addr.to_string()]);
        Self::launch(cmd, &bin, name, addr, dir).await
    }

    async fn launch(
        mut cmd: Command,
        bin: &Path,
        name: &str,
        addr: SocketAddr,
        dir: &Path,
    ) -> Result<Server> {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| format!("{e}"))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let started = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let pid = child.id();
        let mut server = Server {
            name: name.to_owned(),
            target: Target::new(addr),
            child: Some(child),
            pid,
            log,
            startup: Duration::ZERO,
        };
        match server.wait_healthy(started).await {
            Ok(()) => Ok(server),
            Err(e) => {
                let tail = server.log_tail();
                server.kill();
                bail!(
                    "server {name} did not become healthy: {e}\n--- last lines of {} ---\n{tail}",
                    server.log.display()
                )
            }
        }
    }

    async fn wait_healthy(&mut self, started: Instant) -> Result<()> {
        let req = build_request("GET", "/healthz", &self.target, "", false, None);
        let mut last = String::from("no answer yet");
        while started.elapsed() < HEALTHZ_DEADLINE {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("the process exited with {status}");
            }
            let mut conn = Conn::new(self.target.addr, None);
            match conn.request(&req, Duration::from_secs(2)).await {
                Ok(r) if r.status == 200 => {
                    self.startup = started.elapsed();
                    return Ok(());
                }
                Ok(r) => last = format!("/healthz answered {}", r.status),
                Err(e) => last = e.0,
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bail!(
            "no 200 on /healthz within {} s ({last})",
            HEALTHZ_DEADLINE.as_secs()
        )
    }

    /// Resident memory in bytes (VmRSS).
    pub fn rss(&self) -> Result<u64> {
        rss_of(self.pid)
    }

    /// Its own memory (see [`anon_of`]); 0 when /proc does not say.
    pub fn anon(&self) -> u64 {
        anon_of(self.pid).unwrap_or(0)
    }

    /// CPU time the process has used so far, user and system (utime + stime).
    pub fn cpu_time(&self) -> Option<Duration> {
        cpu_time_of(self.pid)
    }

    /// Established connections to the server whose receive queue is empty, i.e. whose request
    /// the server has read: a held poll looks exactly like this. None when /proc/net/tcp is
    /// not readable.
    pub fn drained_connections(&self) -> Option<usize> {
        let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
        let port = format!(":{:04X}", self.target.addr.port());
        let drained = table
            .lines()
            .skip(1)
            .filter(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                // f[1] local address, f[3] state (01 = ESTABLISHED), f[4] tx:rx queues.
                f.len() > 4
                    && f[1].ends_with(&port)
                    && f[3] == "01"
                    && f[4]
                        .split(':')
                        .nth(1)
                        .is_some_and(|rx| rx.trim_start_matches('0').is_empty())
            })
            .count();
        Some(drained)
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM, then up to 10 s for a graceful exit; SIGKILL after that, reported as an error.
    pub async fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let asked = Instant::now();
        while asked.elapsed() < STOP_DEADLINE {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    // Graceful shutdown is part of the design: dying of the signal itself means
                    // held polls and in-flight writes were cut off.
                    let how = if status.signal() == Some(libc::SIGTERM) {
                        "was ended by SIGTERM itself (no graceful shutdown)".to_owned()
                    } else {
                        format!("exited with {status} after SIGTERM")
                    };
                    bail!(
                        "server {} {how}; last lines of its log:\n{}",
                        self.name,
                        self.log_tail()
                    )
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => bail!("waiting for server {}: {e}", self.name),
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(Error(format!(
            "server {} did not exit within {} s of SIGTERM (killed)",
            self.name,
            STOP_DEADLINE.as_secs()
        )))
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    /// A scenario that failed half-way must not leave a server running.
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn rss_of(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("reading /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| Error(format!("no VmRSS in /proc/{pid}/status")))
}

/// The process's own memory (`RssAnon`, bytes): resident memory without the pages of files it
/// maps (its own code as it is paged in, and for SQLite the database's pages, shared with the
/// OS's cache and growing with the history by design).
pub fn anon_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// utime + stime from /proc/{pid}/stat, in clock ticks converted to a duration.
pub fn cpu_time_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks <= 0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / ticks as f64,
    ))
}

/// Raises the soft open-file limit to the hard one. Servers started afterwards inherit it, and
/// 10,000 held polls need 10,000 sockets on each side.
pub fn raise_open_file_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                return wanted.rlim_cur;
            }
        }
        lim.rlim_cur
    }
}
