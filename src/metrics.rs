//! What `/metrics` reports, in Prometheus' text format: requests by route pattern and status and
//! their durations, held polls, deliveries, what people do (sends, edits, uploads, logins), the
//! requests refused by a limit, the database pool, PostgreSQL's notification lag and the
//! process's resident memory.
//!
//! Each server has its own registry (the tests start many in one process). Recording never
//! allocates once a series exists: labels are `&'static str` (a route *pattern*, never a path,
//! so no room or person's name can become a label) and small integers, and a series is made
//! the first time its labels are seen; the set of routes, methods and statuses is finite.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of what [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Request durations, in seconds: from a page's few milliseconds to a long-poll's hold.
const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// NOTIFY's lag, in seconds: well under a millisecond on a quiet server.
const LAG_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

type Histograms = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The routes of a page's long-polls, as their labels read: nearly every request a busy server
/// answers is one of them.
pub const POLL_ROUTES: [&str; 3] = ["/rooms/{name}/messages", "/dm/{username}/messages", "/feed"];

/// A series the polls' answers are counted in, kept at hand: a family's look-up takes a shared
/// lock and hashes the labels, on every request.
struct Hot {
    route: &'static str,
    status: u16,
    /// Made on first use, so that `/metrics` shows only what happened.
    series: OnceLock<(Counter, Histogram)>,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

pub struct Metrics {
    registry: Registry,
    /// The poll routes' `GET`s answered 200 or 204 (see [`Hot`]).
    hot: Vec<Hot>,
    requests: Family<RequestLabels, Counter>,
    durations: Histograms,
    throttled: Family<RouteLabels, Counter>,
    /// Long-polls waiting now (held outside the endpoint chain).
    pub held_polls: Gauge,
    /// Long-polls held by the short way in (`web::repoll`), without the endpoint chain.
    pub short_polls: Counter,
    /// Long-poll answers that carried changes to a listener.
    pub deliveries: Counter,
    /// Messages people sent (text, or with files).
    pub sends: Counter,
    pub edits: Counter,
    /// Files stored with messages.
    pub uploads: Counter,
    pub logins: Counter,
    /// Log-ins refused for a wrong name or password (not those refused by a limit: those are
    /// throttled requests).
    pub login_failures: Counter,
    /// Logged-in requests that read their login from the session store and the database: the
    /// login cache's misses.
    pub login_reads: Counter,
    /// From sending a NOTIFY to this process's LISTEN connection receiving it (PostgreSQL).
    pub notify_lag: Histogram,
    db_connections: Family<StateLabels, Gauge>,
    db_max: Gauge,
    resident: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut root = Registry::default();
        let resident = Gauge::default();
        root.register_with_unit(
            "process_resident_memory",
            "Resident memory of the process",
            Unit::Bytes,
            resident.clone(),
        );
        let hot = POLL_ROUTES
            .iter()
            .flat_map(|&route| {
                [200, 204].map(|status| Hot {
                    route,
                    status,
                    series: OnceLock::new(),
                })
            })
            .collect();
        let metrics = Self {
            registry: Registry::default(),
            hot,
            requests: Family::default(),
            durations: Histograms::new_with_constructor(duration_histogram),
            throttled: Family::default(),
            held_polls: Gauge::default(),
            short_polls: Counter::default(),
            deliveries: Counter::default(),
            sends: Counter::default(),
            edits: Counter::default(),
            uploads: Counter::default(),
            logins: Counter::default(),
            login_failures: Counter::default(),
            login_reads: Counter::default(),
            notify_lag: Histogram::new(LAG_BUCKETS),
            db_connections: Family::default(),
            db_max: Gauge::default(),
            resident,
        };
        let r = root.sub_registry_with_prefix("parley");
        r.register(
            "http_requests",
            "HTTP requests answered, by method, route pattern and status (499: the client left first)",
            metrics.requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its answer (a long-poll's includes its hold)",
            Unit::Seconds,
            metrics.durations.clone(),
        );
        r.register(
            "throttled_requests",
            "Requests refused with 429 by a limit, by method and route pattern",
            metrics.throttled.clone(),
        );
        r.register(
            "held_polls",
            "Long-polls waiting for a change now",
            metrics.held_polls.clone(),
        );
        r.register(
            "short_polls",
            "Long-polls held the short way: their login and conversation were cached, so no endpoint chain ran",
            metrics.short_polls.clone(),
        );
        r.register(
            "deliveries",
            "Long-poll answers that carried changes to a listener",
            metrics.deliveries.clone(),
        );
        r.register(
            "messages_sent",
            "Messages sent (text, or with files)",
            metrics.sends.clone(),
        );
        r.register("messages_edited", "Messages edited", metrics.edits.clone());
        r.register(
            "uploads",
            "Files stored with messages",
            metrics.uploads.clone(),
        );
        r.register("logins", "Successful log-ins", metrics.logins.clone());
        r.register(
            "login_failures",
            "Log-ins refused for a wrong name or password",
            metrics.login_failures.clone(),
        );
        r.register(
            "login_reads",
            "Requests that read their login from the session store and the database (the login cache's misses)",
            metrics.login_reads.clone(),
        );
        r.register_with_unit(
            "notify_lag",
            "PostgreSQL only: from sending a NOTIFY to this process's LISTEN connection receiving it",
            Unit::Seconds,
            metrics.notify_lag.clone(),
        );
        r.register(
            "db_connections",
            "Database pool connections, by state (in_use, idle)",
            metrics.db_connections.clone(),
        );
        r.register(
            "db_connections_max",
            "The database pool's size limit",
            metrics.db_max.clone(),
        );
        Self {
            registry: root,
            ..metrics
        }
    }

    /// One request answered: `route` is its pattern (`/rooms/{name}/messages`), never its path.
    pub fn request(&self, method: &'static str, route: &'static str, status: u16, secs: f64) {
        if method == "GET"
            && let Some(hot) = self
                .hot
                .iter()
                .find(|h| h.status == status && h.route == route)
        {
            let (count, durations) = hot.series.get_or_init(|| {
                let labels = RequestLabels {
                    method,
                    route,
                    status,
                };
                let route_labels = RouteLabels { method, route };
                (
                    self.requests.get_or_create(&labels).clone(),
                    self.durations.get_or_create(&route_labels).clone(),
                )
            });
            count.inc();
            durations.observe(secs);
            return;
        }
        let labels = RequestLabels {
            method,
            route,
            status,
        };
        self.requests.get_or_create(&labels).inc();
        let route_labels = RouteLabels { method, route };
        self.durations.get_or_create(&route_labels).observe(secs);
        if status == 429 {
            self.throttled.get_or_create(&route_labels).inc();
        }
    }

    /// Everything, as Prometheus reads it, with the pool and memory as of now.
    pub fn render(&self, pool: &sqlx::AnyPool, max_connections: u32) -> String {
        let (size, idle) = (pool.size(), pool.num_idle() as u32);
        let in_use = size.saturating_sub(idle);
        let state = |state| StateLabels { state };
        self.db_connections
            .get_or_create(&state("in_use"))
            .set(in_use.into());
        self.db_connections
            .get_or_create(&state("idle"))
            .set(idle.into());
        self.db_max.set(max_connections.into());
        if let Some(bytes) = resident_memory() {
            self.resident.set(bytes);
        }
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }
}

/// The process's resident set, from /proc (Linux); None elsewhere.
fn resident_memory() -> Option<i64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_counts_by_pattern_and_status_and_a_429_as_throttled() {
        let m = Metrics::new();
        m.request("POST", "/rooms/{name}/messages", 200, 0.003);
        m.request("POST", "/rooms/{name}/messages", 429, 0.001);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &m.registry).unwrap();
        assert!(
            out.contains(
                r#"parley_http_requests_total{method="POST",route="/rooms/{name}/messages",status="200"} 1"#
            ),
            "{out}"
        );
        assert!(
            out.contains(
                r#"parley_throttled_requests_total{method="POST",route="/rooms/{name}/messages"} 1"#
            ),
            "{out}"
        );
        assert!(
            out.contains(
                r#"parley_http_request_duration_seconds_count{method="POST",route="/rooms/{name}/messages"} 2"#
            ),
            "{out}"
        );
    }

    #[test]
    fn a_polls_answer_is_counted_in_the_same_series_either_way() {
        let m = Metrics::new();
        m.request("GET", "/feed", 204, 0.002);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &m.registry).unwrap();
        // Only what happened is shown.
        assert!(!out.contains(r#"route="/rooms/{name}/messages""#), "{out}");
        let route = String::from("/feed").leak();
        m.request("GET", route, 204, 0.004);
        m.request("GET", "/feed", 200, 0.1);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &m.registry).unwrap();
        for line in [
            r#"parley_http_requests_total{method="GET",route="/feed",status="204"} 2"#,
            r#"parley_http_requests_total{method="GET",route="/feed",status="200"} 1"#,
            r#"parley_http_request_duration_seconds_count{method="GET",route="/feed"} 3"#,
        ] {
            assert!(out.contains(line), "{line} in {out}");
        }
    }

    #[test]
    fn resident_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(resident_memory().is_some_and(|b| b > 1024 * 1024));
        }
    }
}
