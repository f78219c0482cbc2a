//! Held answers: a long-poll that has passed every check (session, CSRF, who may see the room)
//! and now only waits for a message.
//!
//! A request in poem's endpoint chain carries its headers, its session, its extractors and a
//! future per middleware layer (about 10 KB: BENCHMARKS.md). A long-poll waits up to 25 s, and
//! ten thousand of them are held at once, so the handler does not wait inside the chain. It returns a placeholder response carrying the wait
//! ([`held`]); the middleware add their headers to it as to any answer, the chain ends and drops
//! the request, and the connection loop ([`finish`], called by `server::serve`) awaits the small
//! future that remains. What it yields decides the status, the body and its own headers; the
//! headers the middleware put on the placeholder stay.
//!
//! The outermost middleware leaves the request's `Exchange` with the wait (`tell`): the access
//! log and the metrics hear of a held poll once, when it is answered, and count it among the
//! held polls while it waits.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use poem::Response;
use poem::http::{HeaderMap, header};

use super::telemetry::Exchange;

type Wait = Pin<Box<dyn Future<Output = Response> + Send>>;

/// The wait and the request's exchange, in the placeholder's extensions (which want
/// `Clone + Sync`, hence the mutex).
#[derive(Clone)]
struct Held(Arc<Mutex<Slot>>);

struct Slot {
    wait: Option<Wait>,
    exchange: Option<Exchange>,
}

/// A response that is `answer` once it resolves.
pub fn held(answer: impl Future<Output = Response> + Send + 'static) -> Response {
    let mut placeholder = Response::default();
    placeholder
        .extensions_mut()
        .insert(Held(Arc::new(Mutex::new(Slot {
            wait: Some(Box::pin(answer)),
            exchange: None,
        }))));
    placeholder
}

/// Leaves the request's exchange with a held response, to be told when it is answered; any
/// other response gets it back.
pub fn tell(resp: &Response, exchange: Exchange) -> Result<(), Exchange> {
    match resp.extensions().get::<Held>() {
        Some(Held(slot)) => {
            slot.lock().expect("held lock").exchange = Some(exchange);
            Ok(())
        }
        None => Err(exchange),
    }
}

/// Whether `resp` is a placeholder whose answer is still to come.
pub fn is_held(resp: &Response) -> bool {
    resp.extensions().get::<Held>().is_some()
}

/// The final response: `resp` itself, or, for a held one, what its wait yields, with the
/// placeholder's headers kept where the answer does not set its own (and its cookies kept too).
///
/// Only what the answer needs crosses the wait: the placeholder itself (its header map, its
/// extensions) is dropped first, and its headers, the same few on nearly every held poll, are
/// kept once for all the polls that got them ([`shared`]).
pub async fn finish(mut resp: Response) -> Response {
    let Some(Held(slot)) = resp.extensions_mut().remove::<Held>() else {
        return resp;
    };
    let (wait, mut exchange) = {
        let mut slot = slot.lock().expect("held lock");
        (slot.wait.take(), slot.exchange.take())
    };
    drop(slot);
    let Some(wait) = wait else {
        return resp;
    };
    if let Some(exchange) = &mut exchange {
        exchange.hold();
    }
    let kept = shared(std::mem::take(resp.headers_mut()));
    drop(resp);
    let (mut parts, body) = wait.await.into_parts();
    let mut headers = HeaderMap::with_capacity(kept.len() + parts.headers.len());
    for name in kept.keys() {
        // Cookies add up; any other header of the answer replaces the placeholder's.
        if name == header::SET_COOKIE || !parts.headers.contains_key(name) {
            for value in kept.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    for (name, value) in &parts.headers {
        headers.append(name.clone(), value.clone());
    }
    parts.headers = headers;
    let mut resp = Response::from_parts(parts, body);
    if let Some(exchange) = &mut exchange {
        exchange.answered(&mut resp);
    }
    resp
}

/// The header sets placeholders had lately. Ten thousand held polls would otherwise keep ten
/// thousand copies of the same two or three headers (a map of them is about 600 bytes).
static COMMON: Mutex<Vec<Arc<HeaderMap>>> = Mutex::new(Vec::new());

/// How many different header sets [`COMMON`] keeps (a page's poll, a feed's, one without
/// htmx, …).
const COMMON_SETS: usize = 4;

/// `headers`, as one shared copy when a recent placeholder had the same. A set with a cookie
/// in it is one person's (a session being renewed): it is neither shared nor remembered.
fn shared(headers: HeaderMap) -> Arc<HeaderMap> {
    if headers.contains_key(header::SET_COOKIE) {
        return Arc::new(headers);
    }
    let mut common = COMMON.lock().expect("common headers lock");
    if let Some(same) = common.iter().find(|c| ***c == headers) {
        return same.clone();
    }
    let headers = Arc::new(headers);
    if common.len() == COMMON_SETS {
        common.remove(0);
    }
    common.push(headers.clone());
    headers
}

#[cfg(test)]
mod tests {
    use poem::http::StatusCode;

    use super::*;

    #[tokio::test]
    async fn an_ordinary_response_passes_through() {
        let resp = Response::builder()
            .status(StatusCode::NOT_FOUND)
            .header("x-a", "1")
            .body("gone");
        let out = finish(resp).await;
        assert_eq!(out.status(), StatusCode::NOT_FOUND);
        assert_eq!(out.headers()["x-a"], "1");
        assert_eq!(out.into_body().into_string().await.unwrap(), "gone");
    }

    #[tokio::test]
    async fn a_held_response_becomes_its_answer_and_keeps_the_middleware_headers() {
        let mut resp = held(async {
            Response::builder()
                .status(StatusCode::NO_CONTENT)
                .header("cache-control", "no-store")
                .header("set-cookie", "b=2")
                .finish()
        });
        // What middleware would add to the placeholder on its way out.
        let headers = resp.headers_mut();
        headers.insert("x-content-type-options", "nosniff".parse().unwrap());
        headers.insert("cache-control", "max-age=60".parse().unwrap());
        headers.append("set-cookie", "a=1".parse().unwrap());
        let out = finish(resp).await;
        assert_eq!(out.status(), StatusCode::NO_CONTENT);
        assert_eq!(out.headers()["x-content-type-options"], "nosniff");
        assert_eq!(
            out.headers()["cache-control"],
            "no-store",
            "the answer's own header wins"
        );
        let cookies: Vec<_> = out.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"], "cookies from both");
        assert!(out.extensions().get::<Held>().is_none());
    }
}
