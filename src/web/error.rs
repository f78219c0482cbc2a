//! One way to fail: every handler error becomes an `AppError`, and every refusal (ours, the CSRF
//! layer's, poem's own: no route, a method the route does not take, a query it cannot parse) a
//! response carrying a [`Failure`]; the outermost middleware makes that the app's page, with the
//! header of whoever is looking, or for htmx a fragment the page shows next to what was tried
//! ([`render`]). The log gets the cause; a 500 never shows internals.

use std::borrow::Cow;
use std::time::Duration;

use poem::error::ResponseError;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{PathPattern, Response};
use tower_sessions_core::Session;

use super::App;
use super::csrf::CsrfToken;
use crate::views::{Viewer, error_note, notice_page};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    NotFound(&'static str),
    #[error("not logged in")]
    LoginRequired { next: String, htmx: bool },
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    BadRequest(&'static str),
    /// A limit reached (see `Limits`): 429 with `Retry-After`, and what to do, in words.
    #[error("{what}")]
    TooMany { what: &'static str, wait: Duration },
    /// Every password worker is busy and the queue is full: 503, try again in a second.
    #[error("password checks are all busy")]
    Busy,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("internal: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    fn is_unavailable(&self) -> bool {
        matches!(
            self,
            AppError::Db(
                sqlx::Error::PoolTimedOut
                    | sqlx::Error::Io(_)
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            )
        ) || matches!(self, AppError::Db(sqlx::Error::Database(e)) if e.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08")))
    }
}

impl ResponseError for AppError {
    fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::LoginRequired { htmx: true, .. } => StatusCode::UNAUTHORIZED,
            AppError::LoginRequired { .. } => StatusCode::SEE_OTHER,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            _ if self.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Db(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn as_response(&self) -> Response {
        let status = self.status();
        let (title, text) = match self {
            AppError::LoginRequired { next, htmx } => {
                let to = if next == "/" || next.is_empty() {
                    "/login".to_owned()
                } else {
                    format!("/login?next={}", encode_query(next))
                };
                if *htmx {
                    // htmx follows HX-Redirect with a full page load.
                    return Response::builder()
                        .status(status)
                        .header("HX-Redirect", to)
                        .finish();
                }
                return Response::builder()
                    .status(status)
                    .header(header::LOCATION, to)
                    .finish();
            }
            AppError::NotFound(what) => ("Not found", Cow::Borrowed(*what)),
            AppError::Forbidden(why) => ("Forbidden", Cow::Borrowed(*why)),
            AppError::BadRequest(why) => ("Bad request", Cow::Borrowed(*why)),
            AppError::TooMany { what, wait } => {
                let mut resp = failure(status, "Slow down", try_again(what, *wait));
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, retry_after(*wait));
                return resp;
            }
            AppError::Busy => {
                let text = "Parley is busy checking passwords. Please try again in a moment.";
                let mut resp = failure(status, "Busy", text);
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return resp;
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                tracing::warn!(error = %self, "database unavailable");
                let mut resp = failure(status, "Service unavailable", UNAVAILABLE);
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                return resp;
            }
            _ => {
                tracing::error!(error = %self, "request failed");
                ("Something went wrong", Cow::Borrowed(BROKEN))
            }
        };
        failure(status, title, text)
    }
}

const UNAVAILABLE: &str =
    "Parley cannot reach its database right now. Please try again in a moment.";
const BROKEN: &str = "Parley hit an unexpected error. It has been logged; please try again.";

/// What went wrong, in words, carried by an error's response until the outermost middleware
/// (`render`) makes it the page or the fragment: only there is it known cheaply who is looking
/// (the session is read on this path alone, never on one that succeeds).
#[derive(Clone, Debug)]
pub struct Failure {
    pub title: &'static str,
    pub text: Cow<'static, str>,
}

/// A refusal or a failure: its status, with what to say, for `render` to dress.
pub fn failure(
    status: StatusCode,
    title: &'static str,
    text: impl Into<Cow<'static, str>>,
) -> Response {
    let mut resp = Response::builder().status(status).finish();
    resp.extensions_mut().insert(Failure {
        title,
        text: text.into(),
    });
    resp
}

/// Every error a route answers with, in Parley's words: poem's own (no route, a method the route
/// does not take, a query or a form its parser cannot read) say what happened without the
/// parser's words; ours (`AppError`) and whole responses (an offer to create a room) stand.
pub async fn from_poem(err: poem::Error) -> Response {
    response_of(err)
}

/// [`from_poem`], where an error is made a response (every layer that meets one).
pub fn response_of(err: poem::Error) -> Response {
    // The route that answered, for the access log and the metrics.
    let pattern = err.data::<PathPattern>().cloned();
    let mut resp = words_of(err);
    if let Some(pattern) = pattern {
        resp.set_data(pattern);
    }
    resp
}

fn words_of(err: poem::Error) -> Response {
    // Not `into_response`: poem replaces the response's extensions (our `Failure`) with the
    // error's own.
    if let Some(ours) = err.downcast_ref::<AppError>() {
        return ours.as_response();
    }
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    if err.is::<poem::error::ParseQueryError>() {
        let text = "Parley could not read this address: a number or a name in it is not what the page expects.";
        return failure(status, "Bad request", text);
    }
    if status.is_server_error() {
        tracing::error!(error = %err, "request failed");
    }
    let (title, text) = words_for(status);
    failure(status, title, text)
}

/// What a status means to the person who met it.
fn words_for(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::BAD_REQUEST => (
            "Bad request",
            "Parley could not read this request: something in it is not what the page expects.",
        ),
        StatusCode::NOT_FOUND => ("Not found", "There is no page at this address."),
        StatusCode::METHOD_NOT_ALLOWED => (
            "Not allowed here",
            "This address does not take that kind of request: use the page's own links and buttons.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("Too large", "What was sent is larger than Parley accepts.")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "Bad request",
            "Parley could not read what was sent: it is not a form this page takes.",
        ),
        StatusCode::UNPROCESSABLE_ENTITY => (
            "Not accepted",
            "Parley could not accept what was sent. Check it and try again.",
        ),
        StatusCode::TOO_MANY_REQUESTS => (
            "Slow down",
            "Too many requests in a short time. Wait a moment and try again.",
        ),
        StatusCode::SERVICE_UNAVAILABLE => ("Service unavailable", UNAVAILABLE),
        s if s.is_server_error() => ("Something went wrong", BROKEN),
        _ => ("Not done", "Parley could not do that."),
    }
}

/// The page (or, for htmx, the fragment) of a response that carries a [`Failure`], with the
/// header of whoever is looking: the session (put on the response by the session layer) is read
/// only here, and a login cached by `AuthCache` costs no query. Status and headers stay.
pub async fn render(app: &App, htmx: bool, mut resp: Response) -> Response {
    if htmx {
        return note(resp);
    }
    let Some(failure) = resp.extensions_mut().remove::<Failure>() else {
        return resp;
    };
    let session = resp.extensions_mut().remove::<Session>();
    let csrf = resp
        .extensions_mut()
        .remove::<CsrfToken>()
        .map(|t| t.0)
        .unwrap_or_default();
    // When the server is short of something (5xx, 429, 408), the database is not asked: a login
    // not cached gets the header of someone logged out.
    let strained = resp.status().is_server_error()
        || matches!(
            resp.status(),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT
        );
    let user = match &session {
        Some(session) if strained => super::session::cached_user_of(session, app),
        Some(session) => super::session::user_of(session, app).await.ok().flatten(),
        None => None,
    };
    let viewer = match &user {
        Some(user) => user.viewer(&csrf),
        None => Viewer::anonymous(&csrf),
    };
    with_html(resp, notice_page(failure.title, &viewer, &failure.text))
}

/// The fragment of a response that carries a [`Failure`], for htmx (which needs no header): also
/// what a held poll that fails answers, after the middleware is gone.
pub fn note(mut resp: Response) -> Response {
    match resp.extensions_mut().remove::<Failure>() {
        Some(failure) => with_html(resp, error_note(&failure.text)),
        None => resp,
    }
}

fn with_html(mut resp: Response, markup: maud::Markup) -> Response {
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp.set_body(markup.into_string());
    resp
}

pub use crate::views::encode_query;

impl From<crate::password::Busy> for AppError {
    fn from(_: crate::password::Busy) -> Self {
        AppError::Busy
    }
}

/// `Retry-After` in whole seconds (at least one).
pub fn retry_after(wait: Duration) -> poem::http::HeaderValue {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    poem::http::HeaderValue::from(secs.max(1))
}

/// "{why} Try again in 40 seconds." (or minutes, for longer waits).
pub fn try_again(why: &str, wait: Duration) -> String {
    let secs = wait.as_secs().max(1);
    let (n, unit) = if secs < 120 {
        (secs, "second")
    } else {
        (secs.div_ceil(60), "minute")
    };
    let plural = if n == 1 { "" } else { "s" };
    format!("{why} Try again in {n} {unit}{plural}.")
}
