//! What is told of each request: the metrics (`crate::metrics`) and a line of the access log
//! (target `parley::access`, at info) when it is answered — a held long-poll when its wait ends,
//! once — and, at debug, a span while its handler runs.
//!
//! All of it is done by the outermost middleware (`web::frame`) and, for held polls, by
//! `held::finish`, rather than by a layer of its own: every layer adds its future to each
//! request's, and held polls measured the difference (BENCHMARKS.md). Labels are static strings
//! (the route *pattern*, never the path, so no room or person's name reaches the metrics or the
//! log), and with the access log off (`RUST_LOG=warn`) nothing is formatted at all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Instant;

use poem::http::{Method, header};
use poem::{PathPattern, Request, Response};
use tracing::Span;
use tracing::field::Empty;

use crate::metrics::Metrics;

/// The access log's target: `RUST_LOG=parley::access=off` silences it alone.
pub const ACCESS: &str = "parley::access";

/// The route of a request no route answered (an unknown address, a refused host or CSRF token).
const UNROUTED: &str = "(unrouted)";

/// Status of a request whose client went away before its answer (nginx's convention).
const CLIENT_GONE: u16 = 499;

/// Who is asking, once the session says (`record_user`), for the access log: a slot the request
/// carries down the chain and the outermost middleware reads afterwards. (A task-local scope
/// around the chain did the same, but made every request's future larger: measured, 10,000 held
/// polls took 10 MB more.)
#[derive(Clone, Default)]
pub struct UserSlot(Arc<AtomicI64>);

impl UserSlot {
    /// The user, when one was recorded (ids start at 1).
    pub fn get(&self) -> Option<i64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|id| *id > 0)
    }
}

/// Whether access log lines are wanted (one cached check of the subscriber's filter).
pub fn access_log_enabled() -> bool {
    tracing::enabled!(target: ACCESS, tracing::Level::INFO)
}

/// Whether requests get a span ([`span`]): debug logging on for this module.
pub fn spans_enabled() -> bool {
    tracing::enabled!(tracing::Level::DEBUG)
}

/// The span of a request (disabled, and free, unless debug logging is on for Parley).
pub fn span(req: &Request) -> Span {
    tracing::debug_span!(
        "request",
        method = %req.method(),
        route = Empty,
        status = Empty,
        user = Empty,
        ms = Empty,
    )
}

/// Records how the handler went in the request's span and logs it at debug.
pub fn record(span: &Span, started: Instant, resp: &Response, held: bool) {
    if span.is_disabled() {
        return;
    }
    span.record("route", route_of(resp));
    if held {
        span.record("status", "held");
    } else {
        span.record("status", resp.status().as_u16());
    }
    span.record("ms", started.elapsed().as_secs_f64() * 1000.0);
    span.in_scope(|| tracing::debug!("handled"));
}

/// Notes who is asking, for the request's span and its access log line.
pub fn record_user(req: &Request, user: i64) {
    if let Some(slot) = req.extensions().get::<UserSlot>() {
        slot.0.store(user, Ordering::Relaxed);
    }
    if tracing::enabled!(tracing::Level::DEBUG) {
        tracing::Span::current().record("user", user);
    }
}

/// A request being answered. Dropped, it is counted and logged: with its answer's status, or as
/// 499 when its client went away first (a held poll whose connection closed).
pub struct Exchange {
    started: Instant,
    method: &'static str,
    route: &'static str,
    status: Option<u16>,
    bytes: Option<u64>,
    user: Option<i64>,
    /// Only looked up when the access log is on.
    client: Option<IpAddr>,
    holding: bool,
    metrics: Arc<Metrics>,
}

impl Exchange {
    pub fn begin(method: &Method, started: Instant, metrics: Arc<Metrics>) -> Self {
        Self {
            started,
            method: method_label(method),
            route: UNROUTED,
            status: None,
            bytes: None,
            user: None,
            client: None,
            holding: false,
            metrics,
        }
    }

    pub fn set_client(&mut self, client: Option<IpAddr>) {
        self.client = client;
    }

    /// What the endpoint chain said: the route it matched and whom the request was from.
    pub fn routed(&mut self, resp: &Response, user: Option<i64>) {
        self.route = route_of(resp);
        self.user = user;
    }

    /// What the short way in decided (`repoll`): `route` is the pattern's label, as
    /// [`route_label`] makes it.
    pub fn routed_to(&mut self, route: &'static str, user: i64) {
        self.route = route;
        self.user = Some(user);
    }

    /// The request is now a held poll, waiting outside the chain.
    pub fn hold(&mut self) {
        if !self.holding {
            self.holding = true;
            self.metrics.held_polls.inc();
        }
    }

    /// The request's answer is `resp` (told when the exchange is dropped).
    pub fn answered(&mut self, resp: &mut Response) {
        self.status = Some(resp.status().as_u16());
        if access_log_enabled() {
            self.bytes = body_len(resp);
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if self.holding {
            self.metrics.held_polls.dec();
        }
        let status = self.status.unwrap_or(CLIENT_GONE);
        let elapsed = self.started.elapsed();
        self.metrics
            .request(self.method, self.route, status, elapsed.as_secs_f64());
        if access_log_enabled() {
            tracing::info!(
                target: ACCESS,
                method = %self.method,
                route = %self.route,
                status,
                ms = (elapsed.as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
                bytes = self.bytes,
                user = self.user,
                client = self.client.map(display),
            );
        }
    }
}

/// The length of `resp`'s body, when it is known before it is sent (not a stream).
fn body_len(resp: &mut Response) -> Option<u64> {
    if let Some(len) = resp.headers().get(header::CONTENT_LENGTH) {
        return len.to_str().ok()?.parse().ok();
    }
    let body: http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error> =
        resp.take_body().into();
    let len = hyper::body::Body::size_hint(&body).exact();
    resp.set_body(poem::Body::from(body));
    len
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The route pattern that answered, as a label: `/rooms/{name}/messages`.
fn route_of(resp: &Response) -> &'static str {
    match resp.data::<PathPattern>() {
        Some(pattern) => route_label(&pattern.0),
        None => UNROUTED,
    }
}

/// Route patterns as static strings, made once each (there are as many as routes).
static ROUTES: LazyLock<RwLock<HashMap<Box<str>, &'static str>>> = LazyLock::new(Default::default);

/// More patterns than Parley has routes would be a bug; past it they share a label.
const MAX_ROUTES: usize = 1000;

/// poem's `/rooms/:name` as `/rooms/{name}` (and `*rest` as `{*rest}`), interned.
pub fn route_label(pattern: &str) -> &'static str {
    if let Some(label) = ROUTES.read().expect("routes lock").get(pattern) {
        return label;
    }
    let mut routes = ROUTES.write().expect("routes lock");
    if routes.len() >= MAX_ROUTES {
        return "(other)";
    }
    let mut label = String::with_capacity(pattern.len() + 8);
    for (i, segment) in pattern.split('/').enumerate() {
        if i > 0 {
            label.push('/');
        }
        match segment
            .strip_prefix(':')
            .or_else(|| segment.strip_prefix('*'))
        {
            Some(name) => {
                let star = if segment.starts_with('*') { "*" } else { "" };
                label.push_str(&format!("{{{star}{name}}}"));
            }
            None => label.push_str(segment),
        }
    }
    routes
        .entry(pattern.into())
        .or_insert_with(|| Box::leak(label.into_boxed_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exchange_stays_small_since_every_held_poll_keeps_one() {
        let size = std::mem::size_of::<Exchange>();
        assert!(
            size <= 128,
            "{size} bytes: ten thousand held polls keep one each"
        );
    }

    #[test]
    fn route_patterns_become_labels_with_braces() {
        assert_eq!(
            route_label("/rooms/:name/messages/:id"),
            "/rooms/{name}/messages/{id}"
        );
        assert_eq!(route_label("/admin/:model/*rest"), "/admin/{model}/{*rest}");
        assert_eq!(route_label("/healthz"), "/healthz");
        let first = route_label("/dm/:username");
        assert!(
            std::ptr::eq(first, route_label("/dm/:username")),
            "made once"
        );
    }
}
