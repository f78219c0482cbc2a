//! The floor (see BENCHMARKS.md): a server that does nothing but hold polls in
//! memory and fan out — tokio + hyper, no database, no templates, no CSRF checking. The fan-out
//! scenario runs against it right after Parley, with the same load, so that Parley's latency can
//! be read against what the machine itself allows in the same run.
//!
//! It speaks exactly the part of Parley's HTTP contract that the fan-out generator uses:
//! `GET /healthz`, `GET /register` (a page with `<meta name="csrf-token">` and a csrf cookie),
//! `POST /register` (303 to `/` with a session cookie), `GET /`, `POST /rooms` (303 to
//! `/rooms/{name}`), `GET /rooms/{name}` (the latest messages), `POST /rooms/{name}/messages`
//! (200 with the message's `<article data-message-id>`, or 303 without `HX-Request`) and
//! `GET /rooms/{name}/messages?after=N` (held until a message with an id above N exists, then
//! all such messages; 204 after 25 s). Answers are shaped like Parley's — the same article
//! markup around the body, the same poller element for htmx, cookies and tokens of similar
//! length — so that bytes on the wire compare too.
//!
//! Started by the bench as `parley-bench floor-server --addr 127.0.0.1:PORT`, in its own
//! process, so it is measured as Parley is: a separate process on the same machine.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// How long a poll is held before 204, as Parley's default.
const HOLD: Duration = Duration::from_secs(25);
const BODY_LIMIT: usize = 64 * 1024;
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 30_000;
const MAX_ROOMS: usize = 10_000;
const MAX_SESSIONS: usize = 100_000;
const MAX_MESSAGES_PER_ROOM: usize = 2_000_000;
const MAX_MESSAGES_PER_ANSWER: usize = 1_000;
/// Messages on a room page, as Parley's page size.
const PAGE: usize = 50;
/// Same length as Parley's tokens (32 random bytes, base64url), so requests weigh the same.
const CSRF_TOKEN: &str = "floorfloorfloorfloorfloorfloorfloorfloorflo";
const CSRF_COOKIE: &str = "parley_csrf";
const SESSION_COOKIE: &str = "parley_session";

type Body = Full<Bytes>;

struct Room {
    log: RwLock<RoomLog>,
    /// The newest message id; polls wait for it to pass their cursor.
    newest: watch::Sender<i64>,
}

#[derive(Default)]
struct RoomLog {
    /// Rendered messages; message `i` has id `i + 1`.
    messages: Vec<Bytes>,
    /// client_key → id, so a retried POST is stored once.
    keys: HashMap<String, i64>,
}

#[derive(Default)]
struct State {
    rooms: RwLock<HashMap<String, Arc<Room>>>,
    /// Session id → username.
    sessions: RwLock<HashMap<String, String>>,
    next_session: AtomicU64,
}

/// Serves until SIGTERM or SIGINT, then exits 0 (held polls are simply dropped: by then the
/// bench has stopped its listeners).
pub async fn serve(addr: SocketAddr) -> Result<(), String> {
    if !addr.ip().is_loopback() {
        return Err(format!(
            "the floor server listens on 127.0.0.1 only, not {addr}"
        ));
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("binding {addr}: {e}"))?;
    let state = Arc::new(State::default());
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(10));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("SIGTERM handler: {e}"))?;
    loop {
        let permit = tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
            p = slots.clone().acquire_owned() => p.map_err(|e| format!("{e}"))?,
        };
        let (stream, _) = tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
            a = listener.accept() => match a {
                Ok(a) => a,
                // Out of file descriptors and the like: wait a moment, never spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(state.clone(), req));
            // Parley's connection settings (src/web/server.rs), so that the two compare fairly:
            // no per-request header timer, the same bound on read buffers.
            let _ = http1::Builder::new()
                .header_read_timeout(None)
                .max_buf_size(32 * 1024)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let htmx = req.headers().contains_key("hx-request");
    // Looked up only where a page or a message needs it, not on every poll.
    let user = || {
        cookie(&req, SESSION_COOKIE)
            .and_then(|id| state.sessions.read().ok().and_then(|s| s.get(id).cloned()))
    };
    let resp = match (&method, path.as_str()) {
        (&Method::GET, "/healthz") => respond(StatusCode::OK, "text/plain", "ok"),
        (&Method::GET, "/register") => {
            let mut r = page(StatusCode::OK, "Register", "");
            set_cookie(
                &mut r,
                &format!(
                    "{CSRF_COOKIE}={CSRF_TOKEN}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"
                ),
            );
            r
        }
        (&Method::POST, "/register") => match read_form(req).await {
            Ok(form) => register(&state, &form),
            Err(r) => r,
        },
        (&Method::GET, "/") => match user() {
            Some(_) => page(StatusCode::OK, "Parley floor", ""),
            None => see_other("/register"),
        },
        (&Method::POST, "/rooms") => match read_form(req).await {
            Ok(form) => create_room(&state, &form),
            Err(r) => r,
        },
        _ => match path.strip_prefix("/rooms/").map(|r| r.split_once('/')) {
            Some(None) if method == Method::GET => room_page(&state, &path["/rooms/".len()..]),
            Some(Some((name, "messages"))) => {
                let Some(room) = find_room(&state, name) else {
                    return Ok(respond(StatusCode::NOT_FOUND, "text/plain", "no such room"));
                };
                let name = name.to_owned();
                if method == Method::POST {
                    let user = user();
                    match read_form(req).await {
                        Ok(form) => send(&room, &name, user.as_deref(), &form, htmx),
                        Err(r) => r,
                    }
                } else if method == Method::GET {
                    match query_value(&query, "after").and_then(|v| v.parse::<i64>().ok()) {
                        Some(after) => poll(&room, &name, after.max(0), htmx).await,
                        None => respond(
                            StatusCode::BAD_REQUEST,
                            "text/plain",
                            "the floor answers ?after= only",
                        ),
                    }
                } else {
                    respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "")
                }
            }
            _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found"),
        },
    };
    Ok(resp)
}

fn register(state: &State, form: &[(String, String)]) -> Response<Body> {
    let Some(name) = field(form, "username").filter(|n| valid_name(n)) else {
        return respond(StatusCode::BAD_REQUEST, "text/plain", "bad username");
    };
    // 22 characters, as a base64 session id of 128 bits.
    let n = state.next_session.fetch_add(1, Ordering::Relaxed);
    let id = format!("{:022x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ n);
    {
        let Ok(mut sessions) = state.sessions.write() else {
            return respond(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "");
        };
        if sessions.len() >= MAX_SESSIONS {
            return respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "too many");
        }
        sessions.insert(id.clone(), name.to_owned());
    }
    let mut r = see_other("/");
    set_cookie(
        &mut r,
        &format!("{SESSION_COOKIE}={id}; Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax"),
    );
    r
}

fn create_room(state: &State, form: &[(String, String)]) -> Response<Body> {
    let Some(name) = field(form, "name").filter(|n| valid_name(n)) else {
        return respond(StatusCode::BAD_REQUEST, "text/plain", "bad room name");
    };
    let Ok(mut rooms) = state.rooms.write() else {
        return respond(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "");
    };
    if !rooms.contains_key(name) {
        if rooms.len() >= MAX_ROOMS {
            return respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "too many rooms",
            );
        }
        rooms.insert(
            name.to_owned(),
            Arc::new(Room {
                log: RwLock::new(RoomLog::default()),
                newest: watch::Sender::new(0),
            }),
        );
    }
    see_other(&format!("/rooms/{name}"))
}

fn find_room(state: &State, name: &str) -> Option<Arc<Room>> {
    state.rooms.read().ok()?.get(name).cloned()
}

fn room_page(state: &State, name: &str) -> Response<Body> {
    let Some(room) = find_room(state, name) else {
        return respond(StatusCode::NOT_FOUND, "text/plain", "no such room");
    };
    let Ok(log) = room.log.read() else {
        return respond(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "");
    };
    let from = log.messages.len().saturating_sub(PAGE);
    let mut html = String::new();
    for m in &log.messages[from..] {
        html.push_str(&String::from_utf8_lossy(m));
    }
    html.push_str(&poller(name, log.messages.len() as i64));
    page(StatusCode::OK, name, &html)
}

fn send(
    room: &Room,
    name: &str,
    user: Option<&str>,
    form: &[(String, String)],
    htmx: bool,
) -> Response<Body> {
    let Some(body) = field(form, "body").filter(|b| !b.trim().is_empty() && b.len() <= 4000) else {
        return respond(StatusCode::BAD_REQUEST, "text/plain", "bad body");
    };
    let key = field(form, "client_key").filter(|k| !k.is_empty() && k.len() <= 100);
    let (id, html) = {
        let Ok(mut log) = room.log.write() else {
            return respond(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "");
        };
        match key.and_then(|k| log.keys.get(k).copied()) {
            Some(id) => (id, log.messages[(id - 1) as usize].clone()),
            None => {
                if log.messages.len() >= MAX_MESSAGES_PER_ROOM {
                    return respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "room full");
                }
                let id = log.messages.len() as i64 + 1;
                let html = Bytes::from(render(id, user.unwrap_or("someone"), body));
                log.messages.push(html.clone());
                if let Some(k) = key {
                    log.keys.insert(k.to_owned(), id);
                }
                (id, html)
            }
        }
    };
    // After the lock: two sends racing may publish out of order, so only ever move forward.
    room.newest.send_if_modified(|newest| {
        if id > *newest {
            *newest = id;
            true
        } else {
            false
        }
    });
    if htmx {
        respond(StatusCode::OK, "text/html; charset=utf-8", html)
    } else {
        see_other(&format!("/rooms/{name}"))
    }
}

/// Held until the room has a message past `after` (or for 25 s, then 204).
async fn poll(room: &Room, name: &str, after: i64, htmx: bool) -> Response<Body> {
    let deadline = tokio::time::Instant::now() + HOLD;
    let mut rx = room.newest.subscribe();
    // Bounded by the deadline: every turn either answers or waits for a change.
    loop {
        let newest = *rx.borrow_and_update();
        if newest > after {
            let Ok(log) = room.log.read() else {
                return respond(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "");
            };
            let from = (after as usize).min(log.messages.len());
            let to = log.messages.len().min(from + MAX_MESSAGES_PER_ANSWER);
            let found = &log.messages[from..to];
            let mut out = Vec::with_capacity(found.iter().map(|m| m.len()).sum::<usize>() + 200);
            for m in found {
                out.extend_from_slice(m);
            }
            drop(log);
            if htmx {
                out.extend_from_slice(poller(name, to as i64).as_bytes());
            }
            return respond(StatusCode::OK, "text/html; charset=utf-8", out);
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            _ => {
                let mut r = respond(StatusCode::NO_CONTENT, "", Bytes::new());
                r.headers_mut().remove(header::CONTENT_TYPE);
                return r;
            }
        }
    }
}

/// Parley's message markup (src/views/chat.rs) without the link detection.
fn render(id: i64, author: &str, body: &str) -> String {
    let (iso, label, hm) = timestamp();
    format!(
        "<article class=\"message\" id=\"m-{id}\" data-message-id=\"{id}\"><header><span class=\"author\">{}</span> <time datetime=\"{iso}\" title=\"{label}\">{hm}</time></header><p class=\"body\">{}</p></article>",
        escape(author),
        escape(body).replace('\n', "<br>")
    )
}

fn poller(room: &str, after: i64) -> String {
    format!(
        "<div id=\"poller\" hx-get=\"/rooms/{room}/messages?after={after}\" hx-trigger=\"load, poll\" hx-swap=\"outerHTML\" data-after=\"{after}\"></div>"
    )
}

fn page(status: StatusCode, title: &str, main: &str) -> Response<Body> {
    let html = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"csrf-token\" content=\"{CSRF_TOKEN}\"><title>{}</title></head><body><main>{main}</main></body></html>",
        escape(title)
    );
    respond(status, "text/html; charset=utf-8", html)
}

/// Now in UTC as (ISO 8601, "YYYY-MM-DD HH:MM UTC", "HH:MM").
fn timestamp() -> (String, String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    (
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z"),
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC"),
        format!("{h:02}:{m:02}"),
    )
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if !content_type.is_empty() {
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/plain")),
        );
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn see_other(location: &str) -> Response<Body> {
    let mut r = respond(StatusCode::SEE_OTHER, "", Bytes::new());
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn set_cookie(r: &mut Response<Body>, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn cookie<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The request's urlencoded form, read within a size and a time limit.
async fn read_form(req: Request<Incoming>) -> Result<Vec<(String, String)>, Response<Body>> {
    let body = Limited::new(req.into_body(), BODY_LIMIT);
    match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Ok(Ok(collected)) => Ok(parse_form(&collected.to_bytes())),
        Ok(Err(_)) => Err(respond(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text/plain",
            "body too large or broken",
        )),
        Err(_) => Err(respond(
            StatusCode::REQUEST_TIMEOUT,
            "text/plain",
            "body not received in time",
        )),
    }
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn query_value(query: &str, name: &str) -> Option<String> {
    parse_form(query.as_bytes())
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn parse_form(raw: &[u8]) -> Vec<(String, String)> {
    raw.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |&b| b == b'=');
            let k = decode(it.next().unwrap_or(b""));
            let v = decode(it.next().unwrap_or(b""));
            (k, v)
        })
        .collect()
}

fn decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len()
                && s[i + 1].is_ascii_hexdigit()
                && s[i + 2].is_ascii_hexdigit() =>
            {
                let hex = std::str::from_utf8(&s[i + 1..i + 3]).unwrap_or("0");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Room and user names: what the bench uses, nothing that needs escaping in a path or cookie.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_messages_parse_back() {
        let form = parse_form(b"body=pbench+s12e+hi%21&client_key=r-12&x=%zz&y=%4");
        assert_eq!(field(&form, "body"), Some("pbench s12e hi!"));
        assert_eq!(field(&form, "client_key"), Some("r-12"));
        assert_eq!(field(&form, "x"), Some("%zz"));
        assert_eq!(field(&form, "y"), Some("%4"));
        let html = render(7, "ann", &crate::messages::body(12));
        let found = crate::messages::parse(html.as_bytes());
        assert_eq!(
            found,
            vec![crate::messages::Found {
                id: 7,
                seq: Some(12)
            }]
        );
    }

    #[test]
    fn timestamps_are_well_formed() {
        let (iso, label, hm) = timestamp();
        assert_eq!(iso.len(), "2026-11-25T21:14:31Z".len());
        assert!(label.ends_with(" UTC"));
        assert_eq!(hm.len(), 5);
    }
}
