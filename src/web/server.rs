//! The connection loop: hyper's HTTP/1 server, calling the poem endpoint for every request.
//!
//! Parley runs its own loop rather than poem's `Server` so that every held long-poll costs as
//! little as hyper allows: bounded read buffers (`max_buf_size`), requests detached from them
//! (`detach`), and held answers completed here, outside the endpoint chain (`held`). The
//! measurements behind each choice are in BENCHMARKS.md ("What made the difference"). Parley
//! speaks HTTP/1.1 only: behind a TLS proxy that is what the upstream hop uses.
//!
//! It also keeps connections from taking the server: a cap on open connections (below the
//! open-file limit) and per client address, answered 503 at once without a task or a wait; a
//! deadline for a connection's first request head and for a kept-alive connection with nothing
//! in progress (a held poll is in progress); TCP keepalive, so a peer that vanished is noticed.
//! The deadlines cost no timer per request: each connection has one watchdog, which sleeps
//! until the earliest moment its connection could be idle too long and then looks at two
//! counters the requests keep (see [`Activity`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::Either;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use poem::http::uri::Scheme;
use poem::http::{HeaderMap, HeaderValue, Method, Uri};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, EndpointExt, Response};
use tokio::net::TcpListener;

use super::held;

/// What a request's head says, for a [`Shortcut`] to look at.
pub struct Head<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub peer: SocketAddr,
}

/// Answers some requests without the endpoint chain (see `web::repoll`).
pub trait Shortcut: Send + Sync + 'static {
    /// What it keeps of one connection, between that connection's requests.
    type Conn: Default + Send + 'static;

    /// The answer to the request `head` begins, or `None` for the chain to answer it. It
    /// decides at once, from the head alone. The answer is not boxed: hyper keeps a request's
    /// future in one allocation per connection, made once, and the short way's lives there.
    fn answer(
        &self,
        conn: &mut Self::Conn,
        head: Head<'_>,
    ) -> Option<impl Future<Output = Response> + Send + use<Self>>;
}

/// No shortcut: the chain answers every request.
pub struct Chain;

impl Shortcut for Chain {
    type Conn = ();

    fn answer(
        &self,
        _: &mut (),
        _: Head<'_>,
    ) -> Option<impl Future<Output = Response> + Send + use<>> {
        None::<std::future::Pending<Response>>
    }
}

/// What the connection loop allows (from `Settings`).
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// For a new connection's first request head.
    pub header_timeout: Duration,
    /// For a kept-alive connection with no request in progress.
    pub idle_timeout: Duration,
    /// Connections open at once (already below the open-file limit).
    pub max_open: usize,
    /// Per client address (an IPv6 /64); 0: none.
    pub max_per_addr: usize,
    /// Addresses without a per-address cap (the reverse proxies, through which everyone comes).
    pub uncapped: Vec<IpAddr>,
    /// How long open connections may go on finishing what they do once the server stops.
    pub grace: Duration,
}

impl ConnLimits {
    pub fn from_settings(s: &crate::config::Settings) -> Self {
        let max_open = match s.max_connections {
            0 => open_file_limit()
                // What else needs files: the database pool, the LISTEN connection, logs,
                // the blocking pool's odds and ends.
                .saturating_sub(s.db_max_connections as usize + 128)
                .max(64),
            n => n,
        };
        Self {
            header_timeout: Duration::from_secs(s.header_timeout_secs),
            idle_timeout: Duration::from_secs(s.idle_timeout_secs),
            max_open,
            max_per_addr: s.max_connections_per_addr,
            uncapped: s.trusted_proxies.clone(),
            grace: Duration::from_secs(10),
        }
    }
}

fn open_file_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed to it.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
}

/// The connections open now: in all, and per client address.
struct Gate {
    limits: ConnLimits,
    open: AtomicUsize,
    per_addr: Mutex<HashMap<IpAddr, usize>>,
    /// The most open at once since memory was last handed back (see `spawn_trimmer`).
    peak: AtomicUsize,
    refused: AtomicU64,
    /// When a refusal was last logged (ms since `EPOCH`): at most one line a second.
    logged_ms: AtomicU64,
}

/// A connection's place at the gate, given back when it closes.
struct Admitted {
    gate: Arc<Gate>,
    addr: Option<IpAddr>,
}

impl Gate {
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Admitted> {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        let addr = (self.limits.max_per_addr > 0 && !self.limits.uncapped.contains(&peer))
            .then(|| network(peer));
        let admitted = Admitted {
            gate: self.clone(),
            addr: None,
        };
        if open > self.limits.max_open {
            return None;
        }
        self.peak.fetch_max(open, Ordering::Relaxed);
        let Some(addr) = addr else {
            return Some(admitted);
        };
        let mut per_addr = self.per_addr.lock().expect("gate lock");
        let n = per_addr.entry(addr).or_insert(0);
        if *n >= self.limits.max_per_addr {
            return None;
        }
        *n += 1;
        let mut admitted = admitted;
        admitted.addr = Some(addr);
        Some(admitted)
    }

    /// Says why connections are refused, once a second at most: a flood must not become a
    /// flood of log lines.
    fn refused(&self, peer: IpAddr) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        if self.time_to_log() {
            tracing::warn!(
                %peer,
                refused,
                open = self.open.load(Ordering::Relaxed),
                max = self.limits.max_open,
                per_addr = self.limits.max_per_addr,
                "too many connections: refusing new ones with 503"
            );
        }
    }

    /// Whether a second has passed since the last line about refusals or failed accepts.
    fn time_to_log(&self) -> bool {
        let now = since_epoch_ms();
        let last = self.logged_ms.load(Ordering::Relaxed);
        now.saturating_sub(last) >= 1000
            && self
                .logged_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.gate.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(addr) = self.addr {
            let mut per_addr = self.gate.per_addr.lock().expect("gate lock");
            if let Some(n) = per_addr.get_mut(&addr) {
                *n -= 1;
                if *n == 0 {
                    per_addr.remove(&addr);
                }
            }
        }
    }
}

/// Whom a per-address cap counts: the address, or for IPv6 its /64 (one subscriber has them all).
pub fn network(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & (!0u128 << 64)).into()),
        v4 => v4,
    }
}

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Answers made, by every server in the process: what the trimmer looks at to see a burst
/// (`spawn_trimmer`).
static ANSWERS: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

fn since_epoch_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

/// What a connection is doing, kept by its requests for its watchdog: two atomic stores per
/// request, no timer.
#[derive(Default)]
struct Activity {
    /// Requests in progress (a held poll among them).
    in_flight: AtomicUsize,
    /// Whether any request has begun (before that, the head deadline applies).
    served: AtomicBool,
    /// When the last request ended, in ms since `EPOCH`.
    last_ms: AtomicU64,
}

/// A request in progress on its connection; done when dropped (answered, or its client gone).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.served.store(true, Ordering::Relaxed);
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.last_ms.store(since_epoch_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves when the connection has been idle too long: no first request head within
/// `header`, or nothing in progress for `idle` since the last request ended. It sleeps until the
/// moment that could be true (or an `idle` from now, if sooner: a request may come and go
/// meanwhile), and looks again.
async fn idle_too_long(activity: &Activity, accepted: Instant, header: Duration, idle: Duration) {
    loop {
        let now = Instant::now();
        let close_at = if activity.in_flight.load(Ordering::Relaxed) > 0 {
            None
        } else if !activity.served.load(Ordering::Relaxed) {
            Some(accepted + header)
        } else {
            let last = Duration::from_millis(activity.last_ms.load(Ordering::Relaxed));
            Some(epoch() + last + idle)
        };
        if close_at.is_some_and(|at| at <= now) {
            return;
        }
        let wake = close_at.map_or(now + idle, |at| at.min(now + idle));
        tokio::time::sleep_until(wake.into()).await;
    }
}

/// The answer to a connection past a cap, written without waiting (a full socket buffer just
/// loses it) and without a task: refusing must cost less than accepting.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
Retry-After: 1\r\nConnection: close\r\nContent-Length: 49\r\n\r\nParley has too many connections. Try again soon.\n";

/// What else holds memory it can give back, asked before the allocator is trimmed (see
/// `spawn_trimmer`): the database's caches.
pub type Release = Arc<dyn Fn() -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

/// Serves `ep` on `listener` until `shutdown` resolves; then stops accepting, calls `on_shutdown`
/// (which answers held polls) and gives open connections up to `limits.grace` to finish.
/// `shortcut` is asked first about every request. `release` is asked to free what it can
/// whenever a flood of connections or a burst of answers is over.
pub async fn serve<E, S: Shortcut>(
    listener: TcpListener,
    ep: E,
    shortcut: Arc<S>,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
    on_shutdown: impl FnOnce(),
    release: Option<Release>,
) -> std::io::Result<()>
where
    E: Endpoint<Output = Response> + 'static,
{
    let ep = Arc::new(ep.boxed());
    let local = LocalAddr(Addr::SocketAddr(listener.local_addr()?));
    let graceful = GracefulShutdown::new();
    let (header_timeout, idle_timeout, grace) =
        (limits.header_timeout, limits.idle_timeout, limits.grace);
    let gate = Arc::new(Gate {
        limits,
        open: AtomicUsize::new(0),
        per_addr: Mutex::new(HashMap::new()),
        peak: AtomicUsize::new(0),
        refused: AtomicU64::new(0),
        logged_ms: AtomicU64::new(0),
    });
    spawn_trimmer(&gate, release);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(10));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, typically: keep the connections we have, retry
                    // soon (and say so at most once a second).
                    if gate.time_to_log() {
                        tracing::warn!(%err, open = gate.open.load(Ordering::Relaxed), "accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(admitted) = gate.admit(peer.ip()) else {
            gate.refused(peer.ip());
            let _ = stream.try_write(REFUSAL);
            continue;
        };
        let accepted = Instant::now();
        let _ = stream.set_nodelay(true);
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        let activity = Arc::new(Activity::default());
        let service = service_fn({
            let (ep, local, remote) = (ep.clone(), local.clone(), remote(peer));
            let (activity, shortcut) = (activity.clone(), shortcut.clone());
            // The connection's requests come one at a time: this is never borrowed twice.
            let kept = std::cell::RefCell::new(S::Conn::default());
            move |req: hyper::Request<Incoming>| {
                let in_flight = InFlight::begin(&activity);
                let head = Head {
                    method: req.method(),
                    uri: req.uri(),
                    headers: req.headers(),
                    peer,
                };
                // A request the shortcut answers is dropped here, before its answer is awaited:
                // hyper then reads the connection's next request into the same buffer, which
                // costs no allocation but keeps that buffer's first page resident while the poll
                // is held (BENCHMARKS.md, "The seventh day", 5, weighs the two).
                let answer = shortcut.answer(&mut kept.borrow_mut(), head);
                // Polled where it is: an async block awaiting a future it captured would keep
                // that future twice in its state (as captured, and as awaited). The chain's own
                // future is boxed, so that the short way's sets the size of the slot.
                let way = match answer {
                    Some(answer) => Either::Left(answer),
                    None => Either::Right({
                        // (Cloned here only: `ep` is one count all connections share.)
                        let (ep, local, remote) = (ep.clone(), local.clone(), remote.clone());
                        Box::pin(async move {
                            let req =
                                poem::Request::from((detach(req), local, remote, Scheme::HTTP));
                            held::finish(ep.get_response(req).await).await
                        })
                    }),
                };
                way.map(move |resp| {
                    drop(in_flight);
                    ANSWERS.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, Infallible>(hyper::Response::from(resp))
                })
            }
        });
        let conn = http1::Builder::new()
            // No per-request header timer (it cost fan-out latency: BENCHMARKS.md): the
            // connection's watchdog below keeps the deadlines. Up to 32 KB of request head:
            // nginx's default.
            .header_read_timeout(None)
            .max_buf_size(32 * 1024)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _admitted = admitted;
            tokio::select! {
                ended = conn => {
                    if let Err(err) = ended {
                        tracing::debug!(%err, "connection ended with an error");
                    }
                }
                // Dropping the connection closes it: nothing is in progress on it.
                () = idle_too_long(&activity, accepted, header_timeout, idle_timeout) => {
                    tracing::debug!("closed an idle connection");
                }
            }
        });
    }
    drop(listener);
    on_shutdown();
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still busy after {grace:?}; closing them");
    }
    Ok(())
}

/// The request with its own copies of the URI and header values. hyper hands them out as slices
/// of its read buffer, which cannot be reused while any slice lives; hyper reads on (to see a
/// hang-up) while the request is still in the endpoint chain, and would allocate a second buffer
/// (measured in BENCHMARKS.md).
fn detach(req: hyper::Request<Incoming>) -> hyper::Request<Incoming> {
    let (mut parts, body) = req.into_parts();
    for value in parts.headers.values_mut() {
        if let Ok(copy) = HeaderValue::from_bytes(value.as_bytes()) {
            *value = copy;
        }
    }
    if let Ok(uri) = Uri::try_from(parts.uri.to_string()) {
        parts.uri = uri;
    }
    hyper::Request::from_parts(parts, body)
}

fn remote(peer: SocketAddr) -> RemoteAddr {
    RemoteAddr(Addr::SocketAddr(peer))
}

/// Hands memory that is free again back to the system. glibc keeps freed memory in its arenas,
/// and under Parley's loads it stays there, scattered among memory still in use:
///
/// - after a flood of connections, a server that once held 20,000 sockets would go on holding
///   hundreds of megabytes it no longer uses: trimmed when the open connections have fallen well
///   below the peak since the last trim;
/// - after a burst of answers (a message to a room of 10,000 listeners answers 10,000 held polls
///   at once, and each polls again), the worker threads' arenas are left holding about as much
///   free memory as they use: trimmed once the burst is over (at most `QUIET` answers in a
///   `TICK`: a trickle of other answers, such as sidebars, goes on between messages) if at least
///   `BURST` answers were made since the last trim and the arenas hold `FREE_ENOUGH` unused.
///   (`mallinfo2`'s count of free memory does not fall after a trim, whose chunks stay free: once
///   it has passed `FREE_ENOUGH`, a light steady load is trimmed after every `BURST` answers, a
///   few milliseconds each. Measuring resident free memory instead, as resident pages less what
///   is allocated, was tried: allocated-but-untouched memory, such as hyper's 8 KB write buffers,
///   made it read near zero, and nothing was trimmed.)
/// - under a steady load, which is never quiet, each moment of higher use (a catch-up after a
///   stalled write, a log-in's work) leaves a little free memory among what is in use, and the
///   worker threads' arenas creep up by half a megabyte at a time: trimmed every `STEADY` while
///   answers are being made, but only while the heap is at most `SMALL_HEAP`, where a trim takes
///   a millisecond or so.
///
/// `malloc_trim` holds each arena's lock while it walks it, up to a few hundred milliseconds in a
/// fragmented heap of a few hundred megabytes: never in the middle of a burst, and never under a
/// steady load in a large heap. BENCHMARKS.md, "Memory in the steady state" and "The thirteenth
/// day", has the measurements.
fn spawn_trimmer(gate: &Arc<Gate>, release: Option<Release>) {
    let gate = Arc::downgrade(gate);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Trimmer::TICK);
        let mut trimmer = Trimmer::new(ANSWERS.load(Ordering::Relaxed), Instant::now());
        loop {
            every.tick().await;
            let Some(gate) = gate.upgrade() else { return };
            let (peak, open) = (
                gate.peak.load(Ordering::Relaxed),
                gate.open.load(Ordering::Relaxed),
            );
            let now = Instant::now();
            let Some(why) = trimmer.due(now, ANSWERS.load(Ordering::Relaxed), peak, open, heap)
            else {
                continue;
            };
            gate.peak.store(open, Ordering::Relaxed);
            if let Some(release) = &release {
                // Never the end of trimming, whatever happens to the database.
                let _ = tokio::time::timeout(Duration::from_secs(5), release()).await;
            }
            trim(why).await;
        }
    });
}

/// Why the trimmer hands memory back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    FloodOver,
    BurstOver,
    Steady,
}

/// The allocator's figures the trimmer looks at (0 where they cannot be known).
#[derive(Clone, Copy, Debug, Default)]
struct Heap {
    /// Bytes the arenas hold from the system (resident or not).
    size: u64,
    /// Of those, bytes no allocation uses.
    free: u64,
}

/// When the trimmer hands memory back (see `spawn_trimmer`): looked at every `TICK`.
struct Trimmer {
    /// The answer count at the last tick.
    last: u64,
    /// The answer count at the last trim (or at the start).
    trimmed_answers: u64,
    /// The moment of the last trim, or of the last look at a heap too large for a steady trim.
    looked_at: Instant,
}

impl Trimmer {
    const TICK: Duration = Duration::from_millis(250);
    const QUIET: u64 = 64;
    const BURST: u64 = 1000;
    const FREE_ENOUGH: u64 = 64 << 20;
    const STEADY: Duration = Duration::from_secs(30);
    const SMALL_HEAP: u64 = 96 << 20;

    fn new(answers: u64, now: Instant) -> Self {
        Self {
            last: answers,
            trimmed_answers: answers,
            looked_at: now,
        }
    }

    /// Whether to trim now, `answers` having been made in all and `open` connections being open
    /// (at most `peak` since the last trim); a trim is counted as done when this says so.
    /// `heap` is asked only when a trim is otherwise due: `mallinfo2` walks every arena's free
    /// chunks with its lock held, as a trim does, and a large heap has many.
    fn due(
        &mut self,
        now: Instant,
        answers: u64,
        peak: usize,
        open: usize,
        heap: impl FnOnce() -> Heap,
    ) -> Option<Why> {
        let quiet = answers - self.last <= Self::QUIET;
        self.last = answers;
        let busy = answers - self.trimmed_answers >= Self::BURST;
        let steady = now.duration_since(self.looked_at) >= Self::STEADY;
        let why = if peak >= 1000 && open < peak / 2 {
            Why::FloodOver
        } else if !busy || !(quiet || steady) {
            return None;
        } else {
            let heap = heap();
            if quiet && heap.free >= Self::FREE_ENOUGH {
                Why::BurstOver
            } else if steady && heap.size <= Self::SMALL_HEAP {
                Why::Steady
            } else {
                if steady {
                    self.looked_at = now;
                }
                return None;
            }
        };
        self.trimmed_answers = answers;
        self.looked_at = now;
        Some(why)
    }
}

fn heap() -> Heap {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        let info = unsafe { libc::mallinfo2() };
        Heap {
            size: info.arena as u64,
            free: info.fordblks as u64,
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    Heap::default()
}

async fn trim(why: Why) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = Instant::now();
        // SAFETY: malloc_trim only returns free memory to the system.
        let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
        let Heap { size, free } = heap();
        tracing::debug!(?why, took = ?started.elapsed(), size, free, "handed free memory back");
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = why;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(max_open: usize, max_per_addr: usize) -> Arc<Gate> {
        Arc::new(Gate {
            limits: ConnLimits {
                header_timeout: Duration::from_secs(1),
                idle_timeout: Duration::from_secs(1),
                max_open,
                max_per_addr,
                uncapped: vec!["10.0.0.1".parse().unwrap()],
                grace: Duration::ZERO,
            },
            open: AtomicUsize::new(0),
            per_addr: Mutex::new(HashMap::new()),
            peak: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            logged_ms: AtomicU64::new(0),
        })
    }

    #[test]
    fn the_gate_caps_connections_in_all_and_per_network() {
        let g = gate(4, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let first = g.admit(a).unwrap();
        let _second = g.admit(a).unwrap();
        assert!(g.admit(a).is_none(), "a third from one address");
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let _one = g.admit(v6("2001:db8::1")).unwrap();
        let _two = g.admit(v6("2001:db8::2")).unwrap();
        assert!(
            g.admit(v6("2001:db8::ffff")).is_none(),
            "one /64 is one address"
        );
        assert!(
            g.admit(v6("2001:db9::1")).is_none(),
            "four open: the total cap"
        );
        drop(first);
        let proxy = g.admit("10.0.0.1".parse().unwrap());
        assert!(proxy.is_some(), "a proxy");
        assert_eq!(g.open.load(Ordering::Relaxed), 4, "refusals hold nothing");
        assert_eq!(g.per_addr.lock().unwrap().get(&a), Some(&1));
    }

    /// Runs `trimmer` for `secs` seconds of ticks, `per_tick` answers a tick, in `heap`: the
    /// trims it made, with the second each was made in, and how often it asked for the heap.
    fn run(
        trimmer: &mut Trimmer,
        start: Instant,
        secs: u64,
        per_tick: u64,
        heap: Heap,
    ) -> (Vec<(u64, Why)>, usize) {
        let ticks = secs * 1000 / Trimmer::TICK.as_millis() as u64;
        let mut asked = 0;
        let trims = (1..=ticks)
            .filter_map(|t| {
                let now = start + Trimmer::TICK * t as u32;
                let why = trimmer.due(now, t * per_tick, 0, 0, || {
                    asked += 1;
                    heap
                })?;
                Some((now.duration_since(start).as_secs(), why))
            })
            .collect();
        (trims, asked)
    }

    #[test]
    fn a_steady_load_in_a_small_heap_is_trimmed_every_half_minute_and_a_large_heap_is_not() {
        let start = Instant::now();
        let small = Heap {
            size: 40 << 20,
            free: 80 << 20,
        };
        let mut trimmer = Trimmer::new(0, start);
        // The soak's load: 20 messages a second to 1,000 listeners, never quiet.
        let (trims, asked) = run(&mut trimmer, start, 100, 5_000, small);
        assert_eq!(
            trims,
            vec![(30, Why::Steady), (60, Why::Steady), (90, Why::Steady)]
        );
        assert_eq!(asked, 3, "the heap is looked at only when a trim is due");
        // The same load in a heap a trim would take long to walk: left alone, and looked at
        // no more often than it would be trimmed.
        let large = Heap {
            size: 200 << 20,
            ..small
        };
        let mut trimmer = Trimmer::new(0, start);
        assert_eq!(run(&mut trimmer, start, 100, 5_000, large), (vec![], 3));
        // Idle: nothing to give back.
        let mut trimmer = Trimmer::new(0, start);
        assert_eq!(run(&mut trimmer, start, 100, 0, small), (vec![], 0));
    }

    #[test]
    fn a_burst_is_trimmed_once_it_is_over_and_a_flood_once_it_has_ebbed() {
        let start = Instant::now();
        let heap = Heap {
            size: 200 << 20,
            free: 80 << 20,
        };
        let mut trimmer = Trimmer::new(0, start);
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(
            trimmer.due(at(250), 10_000, 0, 0, || heap),
            None,
            "mid-burst"
        );
        assert_eq!(
            trimmer.due(at(500), 10_010, 0, 0, || heap),
            Some(Why::BurstOver)
        );
        assert_eq!(trimmer.due(at(750), 10_020, 0, 0, || heap), None, "once");
        let little = Heap {
            free: 1 << 20,
            ..heap
        };
        assert_eq!(trimmer.due(at(1000), 30_000, 0, 0, || little), None);
        assert_eq!(
            trimmer.due(at(1250), 30_000, 0, 0, || little),
            None,
            "little free"
        );
        assert_eq!(
            trimmer.due(at(1500), 30_000, 20_000, 9_000, || little),
            Some(Why::FloodOver)
        );
    }
}
