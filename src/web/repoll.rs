//! The short way in for a page's long-poll.
//!
//! Nearly every request a busy Parley answers is a page's long-poll coming back after an answer:
//! `GET {conv}/messages?after=N&t=T&s=S` (or `/feed?t=T&s=S`), sent by htmx with the person's
//! session and CSRF cookies. Through the endpoint chain each one pays for the router, three
//! middleware layers, the extractors and a placeholder response: a fifth of the server's CPU in
//! the fan-out scenario (BENCHMARKS.md, "The seventh day"). Yet on a re-poll every check the chain
//! makes is answered by a cache: the login (`session::cached_login`), the conversation
//! (`conversation::cached`), the caps (`limits`). So the connection loop asks this module first
//! (`server::Shortcut`): it makes those same checks on the request's head, and when every one is
//! answered from what is cached it holds the poll itself, with the chain's own wait
//! (`messages::wait`), headers, metrics and access log line.
//!
//! Anything else goes through the chain, which decides it as it always has: a cache miss, a
//! name or query it does not read plainly (percent-encoded, an unknown parameter), a host the
//! server does not answer to, a CSRF cookie still to be set, a person at their cap of polls,
//! debug logging on (the chain's span). The short way only ever says yes where the chain would
//! say yes, and never says no.

use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::Response;
use poem::http::{HeaderMap, HeaderName, HeaderValue, Method, header};

use super::server::{Head, Shortcut, network};
use super::{AppState, conversation, csrf, messages, session, telemetry};
use crate::cache::RELOAD_AHEAD;
use crate::metrics::POLL_ROUTES;

/// The shortcut `server::serve` asks about every request.
pub struct Repoll {
    app: AppState,
}

impl Repoll {
    pub fn new(app: AppState) -> Self {
        Self { app }
    }
}

impl Shortcut for Repoll {
    type Conn = Known;

    fn answer(
        &self,
        known: &mut Known,
        head: Head<'_>,
    ) -> Option<impl Future<Output = Response> + Send + use<>> {
        answer(&self.app, known, head)
    }
}

/// What the last poll that took the short way on a connection was found to be. A page's poller
/// asks again on the connection its answer came on, with the same cookies and address: that
/// poll again needs none of the look-ups while nothing they depend on can have changed (the
/// entries it came from have not expired, and nothing was forgotten or revoked since).
#[derive(Default)]
pub struct Known(Option<Box<Found>>);

struct Found {
    /// The request's `Cookie`, `Host` and path as sent, one after the other (a copy: hyper's
    /// read buffer must not be kept), and where the first two end.
    head: Box<[u8]>,
    cookie_end: usize,
    host_end: Option<usize>,
    /// What the look-ups found for it.
    checked: Checked,
    /// When presence was last told of the user from here (`session::seen`).
    seen: Option<Instant>,
}

/// What a poll's cookies and path were found to be, and for how long that holds.
struct Checked {
    user: i64,
    revision: u64,
    conv: Option<(i64, Arc<str>)>,
    /// When the first of the cache entries it came from is due to be read again, a little
    /// before it expires (`cache::RELOAD_AHEAD`): from then on each poll asks the caches again,
    /// which have it read again in the background.
    until: Instant,
    /// The caches' generations and the revocations in all, when it was found.
    marks: [u64; 3],
}

impl Found {
    fn new(cookie: &[u8], host: Option<&[u8]>, path: &str, checked: Checked) -> Box<Self> {
        let host_bytes = host.unwrap_or_default();
        let mut head = Vec::with_capacity(cookie.len() + host_bytes.len() + path.len());
        head.extend_from_slice(cookie);
        head.extend_from_slice(host_bytes);
        head.extend_from_slice(path.as_bytes());
        Box::new(Found {
            head: head.into_boxed_slice(),
            cookie_end: cookie.len(),
            host_end: host.map(|h| cookie.len() + h.len()),
            checked,
            seen: None,
        })
    }

    /// Whether a request with these was the one found.
    fn is(&self, cookie: &[u8], host: Option<&[u8]>, path: &str) -> bool {
        let (sent_cookie, rest) = self.head.split_at(self.cookie_end);
        let (sent_host, sent_path) = match self.host_end {
            Some(end) => {
                let (h, p) = rest.split_at(end - self.cookie_end);
                (Some(h), p)
            }
            None => (None, rest),
        };
        sent_cookie == cookie && sent_host == host && sent_path == path.as_bytes()
    }
}

/// The marks a [`Found`] holds while they stand still.
fn marks(app: &AppState) -> [u64; 3] {
    [
        app.auth.generation(),
        app.directory.generation(),
        app.hub.revocations_in_all(),
    ]
}

/// The request's one `Cookie` header (a browser sends one; several are the chain's to read).
fn one_cookie(headers: &HeaderMap) -> Option<&HeaderValue> {
    let mut all = headers.get_all(header::COOKIE).iter();
    let first = all.next()?;
    all.next().is_none().then_some(first)
}

/// Header names made once, not parsed from text on every poll.
const HX_REQUEST: HeaderName = HeaderName::from_static("hx-request");
const X_CONTENT_TYPE_OPTIONS: HeaderName = HeaderName::from_static("x-content-type-options");

/// How often presence is told of a person polling on one connection (it writes at most every
/// few seconds anyway: see `presence`).
const SEEN_EVERY: Duration = Duration::from_secs(1);

/// What a poll's URL names.
#[derive(Debug, PartialEq, Eq)]
enum Polled<'a> {
    /// `/rooms/{name}/messages` (`direct: false`) or `/dm/{username}/messages`.
    Conversation { raw: &'a str, direct: bool },
    /// `/feed`: a page with no conversation open.
    Feed,
}

impl<'a> Polled<'a> {
    fn of(path: &'a str) -> Option<Self> {
        if path == "/feed" {
            return Some(Polled::Feed);
        }
        let (rest, direct) = match (path.strip_prefix("/rooms/"), path.strip_prefix("/dm/")) {
            (Some(rest), _) => (rest, false),
            (_, Some(rest)) => (rest, true),
            _ => return None,
        };
        let raw = rest.strip_suffix("/messages")?;
        // The chain percent-decodes path parameters: a name spelt any other way than plainly
        // is the chain's to read.
        (!raw.is_empty() && !raw.contains(['/', '%']))
            .then_some(Polled::Conversation { raw, direct })
    }

    /// The route's label, as the chain's metrics and access log name it.
    fn route(&self) -> &'static str {
        match self {
            Polled::Conversation { direct: false, .. } => POLL_ROUTES[0],
            Polled::Conversation { direct: true, .. } => POLL_ROUTES[1],
            Polled::Feed => POLL_ROUTES[2],
        }
    }
}

/// A poll's query: `after` (a conversation's), `t` and `s`, each at most once, as plain text.
#[derive(Debug, Default, PartialEq, Eq)]
struct Asked {
    after: Option<i64>,
    t: Option<i64>,
    s: Option<String>,
}

impl Asked {
    /// One pass over the bytes: the general tools (`split`, `str::parse`) cost several times
    /// as much on every poll.
    fn of(query: &str) -> Option<Self> {
        let mut asked = Asked::default();
        let mut rest = query;
        loop {
            let end = rest.bytes().position(|b| b == b'&').unwrap_or(rest.len());
            let (pair, next) = rest.split_at(end);
            let (name, value) = pair.split_at(pair.bytes().position(|b| b == b'=')?);
            let value = &value[1..];
            match name {
                "after" if asked.after.is_none() => asked.after = Some(number(value)?),
                "t" if asked.t.is_none() => asked.t = Some(number(value)?),
                // Anything encoded is the chain's to decode.
                "s" if asked.s.is_none() && !value.bytes().any(|b| b == b'%' || b == b'+') => {
                    asked.s = Some(value.to_owned());
                }
                _ => return None,
            }
            match next.strip_prefix('&') {
                Some(next) => rest = next,
                None => return Some(asked),
            }
        }
    }
}

/// A number written plainly in decimal: no sign, at most 18 digits (no overflow). Anything else
/// is the chain's to read.
fn number(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 18 {
        return None;
    }
    text.bytes().try_fold(0i64, |n, b| {
        b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
    })
}

/// The answer to `head`'s request, if it is a page's poll whose every check a cache answers.
fn answer(
    app: &AppState,
    known: &mut Known,
    head: Head<'_>,
) -> Option<impl Future<Output = Response> + Send + use<>> {
    let started = Instant::now();
    if *head.method != Method::GET || telemetry::spans_enabled() {
        return None;
    }
    let headers = head.headers;
    let htmx = headers.get(&HX_REQUEST).map(HeaderValue::as_bytes) == Some(b"true");
    if !htmx {
        return None;
    }
    let path = head.uri.path();
    let polled = Polled::of(path)?;
    let asked = Asked::of(head.uri.query().unwrap_or_default())?;
    // A conversation's poll says where it is; the feed has no such place.
    if asked.after.is_some() != matches!(polled, Polled::Conversation { .. }) {
        return None;
    }
    let cookie = one_cookie(headers)?.as_bytes();
    let host = headers.get(header::HOST).map(HeaderValue::as_bytes);
    let same = known.0.as_deref().is_some_and(|f| f.is(cookie, host, path));
    if !same {
        known.0 = None;
    }
    let holds = |c: &Checked| started < c.until && c.marks == marks(app);
    let found = match known.0.as_deref_mut() {
        Some(found) if holds(&found.checked) => found,
        // The same poll, found again (its entries expired or something was forgotten):
        // refreshed where it is kept.
        Some(found) => {
            found.checked = check(app, headers, &polled, started)?;
            found
        }
        None => {
            let checked = check(app, headers, &polled, started)?;
            known.0.insert(Found::new(cookie, host, path, checked))
        }
    };
    let Checked {
        user,
        revision,
        marks,
        ..
    } = found.checked;
    let client = super::client_of(head.peer.ip(), headers, &app.settings.trusted_proxies);
    let place = app.limits.poll_place(user, Some(network(client)))?;
    // Yes: from here on, this is what the chain would do.
    if found
        .seen
        .is_none_or(|at| started.duration_since(at) >= SEEN_EVERY)
    {
        session::seen(app, user);
        found.seen = Some(started);
    }
    app.metrics.short_polls.inc();
    let mut exchange = telemetry::Exchange::begin(head.method, started, app.metrics.clone());
    if telemetry::access_log_enabled() {
        exchange.set_client(Some(client));
    }
    exchange.routed_to(polled.route(), user);
    let poll = messages::Poll {
        user,
        revision,
        // The marks held a moment ago (`holds`), and the revision was current when they were read.
        current_while: Some(marks[2]),
        htmx,
        conv: found.checked.conv.clone(),
        after: asked.after.unwrap_or(0),
        t: asked.t,
        s: asked.s,
    };
    let app = app.clone();
    Some(async move {
        exchange.hold();
        // Made here, not captured: a captured future would be kept twice in this one's state
        // (as captured, and as awaited), a kilobyte more for every held poll.
        let mut resp = messages::wait(app, place, poll).await;
        // What the outermost middleware puts on a held poll (`web::frame`).
        let headers = resp.headers_mut();
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        if !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        exchange.answered(&mut resp);
        resp
    })
}

/// The checks the chain would make of a poll with `headers`, each answered from a cache, or
/// `None` where one is not.
fn check(
    app: &AppState,
    headers: &HeaderMap,
    polled: &Polled<'_>,
    now: Instant,
) -> Option<Checked> {
    // Read before the look-ups: a forget or a revocation during them shows as a change.
    let marks = marks(app);
    if let Some(host) = headers.get(header::HOST)
        && !app.allowed_hosts.allows(host.to_str().unwrap_or_default())
    {
        return None;
    }
    // Without the cookie, the chain sets one.
    if !parley_admin::cookie_in(headers, csrf::CSRF_COOKIE).is_some_and(csrf::well_formed) {
        return None;
    }
    let sent = parley_admin::cookie_in(headers, session::SESSION_COOKIE)?;
    let (user, revision, mut left) = session::cached_login(app, sent)?;
    let conv = match *polled {
        Polled::Conversation { raw, direct } => {
            let ((room, base), kept) = conversation::cached(app, user, raw, direct)?;
            left = left.min(kept);
            // Shared with each poll it answers, not copied for each.
            Some((room, Arc::from(base)))
        }
        Polled::Feed => None,
    };
    Some(Checked {
        user,
        revision,
        conv,
        until: now + left.saturating_sub(RELOAD_AHEAD),
        marks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plainly_spelt_poll_urls_are_read() {
        let room = |raw| Some(Polled::Conversation { raw, direct: false });
        assert_eq!(Polled::of("/rooms/general/messages"), room("general"));
        assert_eq!(
            Polled::of("/dm/bob/messages"),
            Some(Polled::Conversation {
                raw: "bob",
                direct: true
            })
        );
        assert_eq!(Polled::of("/feed"), Some(Polled::Feed));
        for other in [
            "/rooms/gen%65ral/messages",
            "/rooms//messages",
            "/rooms/a/b/messages",
            "/rooms/general/messages/",
            "/rooms/general/messages/4",
            "/rooms/general",
            "/feed/",
            "/sidebar",
        ] {
            assert_eq!(Polled::of(other), None, "{other}");
        }
    }

    #[test]
    fn only_a_poll_query_spelt_plainly_is_read() {
        assert_eq!(
            Asked::of("after=12&t=1700000000000&s=1f.3-2.9"),
            Some(Asked {
                after: Some(12),
                t: Some(1_700_000_000_000),
                s: Some("1f.3-2.9".into())
            })
        );
        assert_eq!(
            Asked::of("t=5"),
            Some(Asked {
                t: Some(5),
                ..Asked::default()
            })
        );
        for other in [
            "after=1&after=2",
            "after=",
            "after=x",
            "after=1&before=0",
            "after=1&since=0",
            "after=1&until=9",
            "after=1&_=123",
            "after=1&",
            "after",
            "after=1&s=a%20b",
            "after=1&s=a+b",
            "after=-1",
            "after=+1",
            "after=1234567890123456789",
            "t=1&t=2",
            "s=a&s=b",
            "",
            "&after=1",
            "after=1&&t=2",
        ] {
            assert_eq!(Asked::of(other), None, "{other}");
        }
    }
}
