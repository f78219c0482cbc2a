//! One span per request: method, route pattern, status, duration and, once known, the user. It
//! closes when the handler returns — a held long-poll's wait runs after that, outside it — and it
//! is a `debug` span, so that at the default level it costs the hot paths (a long-poll per
//! listener per message) nothing. `RUST_LOG=parley=debug` shows a line per request.
//!
//! It is opened and closed by the outermost middleware (`web::frame`) rather than by a layer of
//! its own: every layer adds its future to each request's, and held polls measured the
//! difference (BENCHMARKS.md).

use std::time::Instant;

use poem::{PathPattern, Request, Response};
use tracing::Span;
use tracing::field::Empty;

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

/// Records how the request went and logs it.
pub fn record(span: &Span, started: Instant, resp: Option<&Response>) {
    if span.is_disabled() {
        return;
    }
    match resp {
        Some(resp) => {
            let route = resp.data::<PathPattern>().map(|p| p.0.clone());
            span.record("route", route.as_deref().unwrap_or("-"));
            if super::held::is_held(resp) {
                span.record("status", "held");
            } else {
                span.record("status", resp.status().as_u16());
            }
        }
        None => {
            span.record("status", "error");
        }
    }
    span.record("ms", started.elapsed().as_secs_f64() * 1000.0);
    span.in_scope(|| tracing::debug!("handled"));
}

/// Notes who is asking in the request's span.
pub fn record_user(user: i64) {
    if tracing::enabled!(tracing::Level::DEBUG) {
        tracing::Span::current().record("user", user);
    }
}
