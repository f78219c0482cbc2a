//! CSRF protection for every state-changing request, anonymous forms included (as Django does).
//!
//! A random token lives in an HttpOnly cookie; pages carry it in `<meta name="csrf-token">` and
//! forms in the field `csrf_token`; htmx sends it as `X-CSRF-Token` (see app.js). A POST whose
//! token does not match the cookie is refused with 403, and so is one a browser marks as
//! cross-site (`Sec-Fetch-Site`) or whose `Origin` is not this host: defence in depth.

use std::time::Duration;

use poem::http::{Method, StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response};
use rand::RngCore;
use subtle::ConstantTimeEq;
use tokio::io::AsyncReadExt;

use parley_admin::cookie;

use super::error::{Failure, failure};
use super::session::{append_cookie, is_https};

pub const CSRF_COOKIE: &str = "parley_csrf";
pub const CSRF_FIELD: &str = "csrf_token";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The largest request body Parley accepts (a 4,000-character message is at most 16 KB of UTF-8,
/// percent-encoded ×3).
pub const MAX_BODY: usize = 64 * 1024;

/// The token for this request's pages and forms.
#[derive(Clone, Debug)]
pub struct CsrfToken(pub String);

/// Marks an upload sent without the header: its body is a stream the handler reads, so the
/// handler checks the form's `csrf_token` field, which must come before the first file.
#[derive(Clone, Copy, Debug)]
pub struct CsrfToFollow;

/// A file upload: a multipart POST to a conversation's `attachments`, whose body (up to ten
/// files) is streamed by its handler within its own limits, or of a person's picture (up to
/// 5 MB), never read here.
fn is_upload(req: &Request) -> bool {
    (req.uri().path().ends_with("/attachments") || req.uri().path() == "/profile/avatar")
        && req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("multipart/form-data"))
}

/// Put on a response by a handler that changed who is logged in (log in, log out): the
/// browser gets a new token with it, so a token seen before (by someone else at this computer,
/// or in an old page) is no good to the next person.
#[derive(Clone, Copy, Debug)]
struct Rotate;

pub fn rotate(resp: &mut Response) {
    resp.extensions_mut().insert(Rotate);
}

pub struct CsrfLayer {
    pub secure: bool,
    /// How long reading a body may take (`--body-timeout-secs`).
    pub body_timeout: Duration,
}

impl<E: Endpoint> Middleware<E> for CsrfLayer {
    type Output = CsrfEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        CsrfEndpoint {
            inner,
            secure: self.secure,
            body_timeout: self.body_timeout,
        }
    }
}

pub struct CsrfEndpoint<E> {
    inner: E,
    secure: bool,
    body_timeout: Duration,
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

fn refuse(why: &'static str) -> Response {
    failure(StatusCode::FORBIDDEN, "Forbidden", why)
}

/// Whether the browser says another site made this request (a link followed or a form sent
/// from elsewhere). A GET from another site shows what it asks for but changes nothing (no
/// joining a room, no marking read, no new conversation): SameSite=Lax sends the cookie with
/// top-level navigations, so such a GET could otherwise act for the person.
pub fn from_another_site(req: &Request) -> bool {
    req.headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
}

fn cross_site(req: &Request) -> bool {
    if from_another_site(req) {
        return true;
    }
    let Some(origin) = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let bare = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    bare != Some(host)
}

impl<E: Endpoint> Endpoint for CsrfEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let existing = cookie(&req, CSRF_COOKIE).filter(|t| well_formed(t));
        let fresh = existing.is_none();
        let token = existing.unwrap_or_else(new_token);
        let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            if cross_site(&req) {
                let mut refused = refuse("Cross-site requests are not accepted.");
                if !fresh {
                    refused.extensions_mut().insert(CsrfToken(token));
                }
                return Ok(refused);
            }
            if fresh {
                return Ok(refuse(
                    "CSRF cookie not set. Reload the page and try again.",
                ));
            }
            if let Err(mut refused) =
                Box::pin(check_post(&mut req, &token, self.body_timeout)).await
            {
                // The browser's own token, for the header's forms on the page that says so.
                refused.extensions_mut().insert(CsrfToken(token));
                return Ok(refused);
            }
        }
        let secure = self.secure || is_https(&req);
        // An asset is public and cached for a year, by shared caches too: a cookie on it would
        // hand one visitor's token to everyone the cache serves.
        let fresh = fresh && !req.uri().path().starts_with("/assets/");
        req.extensions_mut().insert(CsrfToken(token.clone()));
        let mut resp = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => super::error::response_of(e),
        };
        if resp.extensions().get::<Failure>().is_some() {
            resp.extensions_mut().insert(CsrfToken(token.clone()));
        }
        let rotated = resp.extensions_mut().remove::<Rotate>().is_some();
        if fresh || rotated {
            let token = if rotated { new_token() } else { token };
            let flags = if secure { "; Secure" } else { "" };
            append_cookie(
                &mut resp,
                &format!(
                    "{CSRF_COOKIE}={token}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax{flags}"
                ),
            );
        }
        Ok(resp)
    }
}

/// Checks a POST's token (the header, or the form's field), reading its body within the cap, or
/// the refusal to answer with. Boxed by its caller: only POSTs take this path, and inline it would
/// enlarge every GET's future.
async fn check_post(req: &mut Request, token: &str, limit: Duration) -> Result<(), Response> {
    if is_upload(req) {
        return match req.headers().get(CSRF_HEADER).map(|v| v.as_bytes()) {
            Some(sent) if bool::from(sent.ct_eq(token.as_bytes())) => Ok(()),
            Some(_) => Err(refuse(
                "CSRF token missing or incorrect. Reload the page and try again.",
            )),
            None => {
                req.extensions_mut().insert(CsrfToFollow);
                Ok(())
            }
        };
    }
    // Every body is read here, within the cap, so that no handler can be made to buffer
    // an unbounded one (a Content-Length check alone would miss chunked bodies). A body sent a
    // byte at a time would hold its connection (and its place under the caps) for as long as the
    // sender likes: it has a deadline. (An upload streams its files within its own limits.)
    let bytes = match tokio::time::timeout(limit, read_capped(req.take_body())).await {
        Ok(Ok(bytes)) => bytes,
        Err(_) => {
            let text = "What was sent took too long to arrive. Try again.";
            let mut resp = failure(StatusCode::REQUEST_TIMEOUT, "Too slow", text);
            resp.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            return Err(resp);
        }
        Ok(Err(StatusCode::PAYLOAD_TOO_LARGE)) => {
            let text = "What was sent is larger than Parley accepts: a message holds up to 4,000 characters.";
            return Err(failure(StatusCode::PAYLOAD_TOO_LARGE, "Too large", text));
        }
        Ok(Err(status)) => {
            let text = "What was sent could not be read. Try again.";
            return Err(failure(status, "Bad request", text));
        }
    };
    let sent = match req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        Some(header) => Some(header.to_owned()),
        None => form_field(&bytes, CSRF_FIELD),
    };
    req.set_body(Body::from(bytes));
    let matches = sent.is_some_and(|s| bool::from(s.as_bytes().ct_eq(token.as_bytes())));
    if !matches {
        return Err(refuse(
            "CSRF token missing or incorrect. Reload the page and try again.",
        ));
    }
    Ok(())
}

/// How much of a refused body is still read (and thrown away), and for how long, before the 413.
const DRAIN_BYTES: u64 = 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// The body, if it is at most `MAX_BODY` bytes. A larger one is refused with 413, but only after
/// reading on (and throwing away) up to `DRAIN_BYTES` of it or for up to `DRAIN_TIME`: a client
/// still sending would otherwise meet a reset connection instead of reading the answer (the
/// "lingering close" nginx does too).
async fn read_capped(body: Body) -> Result<Vec<u8>, StatusCode> {
    let mut reader = body.into_async_read();
    let mut buf = Vec::new();
    (&mut reader)
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut buf)
        .await
        .map_err(|_| StatusCode::BAD_REQUEST)?;
    if buf.len() <= MAX_BODY {
        return Ok(buf);
    }
    let (mut rest, mut sink) = (reader.take(DRAIN_BYTES), tokio::io::sink());
    let _ = tokio::time::timeout(DRAIN_TIME, tokio::io::copy(&mut rest, &mut sink)).await;
    Err(StatusCode::PAYLOAD_TOO_LARGE)
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}
