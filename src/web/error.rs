//! One way to fail: every handler error becomes an `AppError`, turned into a response here. The
//! user sees a clear page; the log gets the cause; a 500 never shows internals.

use std::time::Duration;

use poem::Response;
use poem::error::ResponseError;
use poem::http::{StatusCode, header};

use crate::views::{Viewer, notice_page};

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
        let viewer = Viewer::anonymous("");
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
            AppError::NotFound(what) => ("Not found", *what),
            AppError::Forbidden(why) => ("Forbidden", *why),
            AppError::BadRequest(why) => ("Bad request", *why),
            AppError::TooMany { what, wait } => {
                let text = try_again(what, *wait);
                let mut resp = super::with_status(
                    notice_page("Slow down", &viewer, &text),
                    StatusCode::TOO_MANY_REQUESTS,
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, retry_after(*wait));
                return resp;
            }
            AppError::Busy => {
                let mut resp = super::with_status(
                    notice_page(
                        "Busy",
                        &viewer,
                        "Parley is busy checking passwords. Please try again in a moment.",
                    ),
                    status,
                );
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    poem::http::HeaderValue::from_static("1"),
                );
                return resp;
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                tracing::warn!(error = %self, "database unavailable");
                (
                    "Service unavailable",
                    "Parley cannot reach its database right now. Please try again in a moment.",
                )
            }
            _ => {
                tracing::error!(error = %self, "request failed");
                (
                    "Something went wrong",
                    "Parley hit an unexpected error. It has been logged; please try again.",
                )
            }
        };
        let mut resp = super::with_status(notice_page(title, &viewer, text), status);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                poem::http::HeaderValue::from_static("5"),
            );
        }
        resp
    }
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
