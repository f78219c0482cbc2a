//! Request plumbing shared by the views: who is asking, flash messages, one error type, replies.

use maud::Markup;
use poem::http::{StatusCode, header};
use poem::{Request, Response};

use crate::host::AdminUser;

const FLASH_COOKIE: &str = "admin_flash";

/// Everything a view needs about the request besides its own parameters.
pub struct Ctx {
    pub user: AdminUser,
    pub csrf: String,
    /// Where the admin is mounted, without a trailing slash ("/admin").
    pub base: String,
    pub flash: Option<Flash>,
    had_flash_cookie: bool,
}

impl Ctx {
    pub fn new(req: &Request, user: AdminUser, csrf: String, base: &str) -> Self {
        let raw = cookie(req, FLASH_COOKIE);
        Self {
            user,
            csrf,
            base: base.to_owned(),
            flash: raw.as_deref().and_then(Flash::decode),
            had_flash_cookie: raw.is_some(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// A full page; a flash shown on it is spent.
    pub fn page(&self, status: StatusCode, markup: Markup) -> Response {
        let mut resp = Response::builder()
            .status(status)
            .content_type("text/html; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-store")
            .body(markup.into_string());
        if self.had_flash_cookie {
            set_cookie(
                &mut resp,
                &format!(
                    "{FLASH_COOKIE}=; Max-Age=0; Path={}/; HttpOnly; SameSite=Lax",
                    self.base
                ),
            );
        }
        resp
    }

    /// Post, redirect, get: the next page shows `flash`.
    pub fn redirect(&self, location: &str, flash: Flash) -> Response {
        let mut resp = see_other(location);
        set_cookie(
            &mut resp,
            &format!(
                "{FLASH_COOKIE}={}; Max-Age=60; Path={}/; HttpOnly; SameSite=Lax",
                flash.encode(),
                self.base
            ),
        );
        resp
    }
}

pub fn see_other(location: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location)
        .finish()
}

fn set_cookie(resp: &mut Response, value: &str) {
    if let Ok(v) = header::HeaderValue::from_str(value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The value of the cookie `name` the client sent (also the host application's reader).
pub fn cookie(req: &Request, name: &str) -> Option<String> {
    cookie_str(req, name).map(str::to_owned)
}

/// The value of the first cookie called `name`, borrowed from the request. Several layers ask for
/// a cookie on every request (a held poll's re-poll among them), so the header is scanned in
/// place: `name=value` pairs split on `;`, with the spaces around them trimmed, as browsers send
/// them (RFC 6265, 5.4); a pair without `=` is skipped.
pub fn cookie_str<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    cookie_in(req.headers(), name)
}

/// [`cookie_str`], from the headers alone (for a request not yet made a poem `Request`).
pub fn cookie_in<'a>(headers: &'a header::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|line| find_cookie(line, name))
}

fn find_cookie<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split(';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| n.trim() == name)
        .map(|(_, value)| value.trim())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Success,
    Warning,
}

/// A one-time message carried to the next page in a short-lived cookie. It is only ever
/// rendered through maud, so whatever the cookie holds is escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub level: Level,
    pub text: String,
}

impl Flash {
    pub fn success(text: impl Into<String>) -> Self {
        Self {
            level: Level::Success,
            text: text.into(),
        }
    }

    pub fn warning(text: impl Into<String>) -> Self {
        Self {
            level: Level::Warning,
            text: text.into(),
        }
    }

    fn encode(&self) -> String {
        let level = match self.level {
            Level::Success => "s",
            Level::Warning => "w",
        };
        // Form encoding keeps the cookie value free of ';', ',', spaces and quotes.
        serde_urlencoded::to_string([(level, self.text.as_str())]).unwrap_or_default()
    }

    fn decode(raw: &str) -> Option<Self> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).ok()?;
        let (level, text) = pairs.into_iter().next()?;
        let level = match level.as_str() {
            "s" => Level::Success,
            "w" => Level::Warning,
            _ => return None,
        };
        Some(Self {
            level,
            text: text.chars().take(500).collect(),
        })
    }
}

/// The one way an admin view fails.
#[derive(Debug)]
pub enum AdminError {
    NotFound,
    Forbidden,
    BadRequest,
    MethodNotAllowed,
    Db(sqlx::Error),
}

impl From<sqlx::Error> for AdminError {
    fn from(e: sqlx::Error) -> Self {
        AdminError::Db(e)
    }
}

impl AdminError {
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::NotFound => StatusCode::NOT_FOUND,
            AdminError::Forbidden => StatusCode::FORBIDDEN,
            AdminError::BadRequest => StatusCode::BAD_REQUEST,
            AdminError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AdminError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn title(&self) -> &'static str {
        match self {
            AdminError::NotFound => "Page not found",
            AdminError::Forbidden => "Permission denied",
            AdminError::BadRequest => "Bad request",
            AdminError::MethodNotAllowed => "Method not allowed",
            AdminError::Db(_) => "Server error",
        }
    }

    pub fn explanation(&self) -> &'static str {
        match self {
            AdminError::NotFound => {
                "The page or object you asked for does not exist. It may have been deleted."
            }
            AdminError::Forbidden => "You do not have permission to do this.",
            AdminError::BadRequest => "The request could not be understood.",
            AdminError::MethodNotAllowed => "This page does not accept that kind of request.",
            AdminError::Db(_) => "Something went wrong on our side. It has been logged.",
        }
    }
}

pub type AdminResult = Result<Response, AdminError>;

/// Pairs from a query string or a form body. Duplicate keys are kept (checkbox lists).
pub fn parse_pairs(raw: &str) -> Result<Vec<(String, String)>, AdminError> {
    serde_urlencoded::from_str(raw).map_err(|_| AdminError::BadRequest)
}

pub fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Form bodies are small; a cap keeps a huge POST from being buffered.
const MAX_FORM_BYTES: usize = 256 * 1024;

pub async fn read_form(req: &mut Request) -> Result<Vec<(String, String)>, AdminError> {
    let ct = req.content_type().unwrap_or_default();
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Err(AdminError::BadRequest);
    }
    let body = req
        .take_body()
        .into_bytes_limit(MAX_FORM_BYTES)
        .await
        .map_err(|_| AdminError::BadRequest)?;
    let text = std::str::from_utf8(&body).map_err(|_| AdminError::BadRequest)?;
    parse_pairs(text)
}

pub fn query_string(pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    format!(
        "?{}",
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flash_survives_the_cookie_round_trip() {
        let f = Flash::success("The room “a; b=c” was added.");
        let raw = f.encode();
        assert!(!raw.contains(';') && !raw.contains(' '));
        assert_eq!(Flash::decode(&raw), Some(f));
        assert_eq!(Flash::decode("x=1"), None);
    }

    #[test]
    fn a_cookie_is_found_by_its_whole_name_among_others() {
        let line = "parley_js=1; parley_session=abc=def ;  parley_tz=-60;flag; =x";
        assert_eq!(find_cookie(line, "parley_session"), Some("abc=def"));
        assert_eq!(find_cookie(line, "parley_tz"), Some("-60"));
        assert_eq!(find_cookie(line, "parley_js"), Some("1"));
        assert_eq!(find_cookie(line, "parley"), None, "not a prefix of a name");
        assert_eq!(
            find_cookie(line, "flag"),
            None,
            "a pair without a value is skipped"
        );
        assert_eq!(find_cookie(line, "js=1"), None);
        assert_eq!(find_cookie("a=1; a=2", "a"), Some("1"), "the first of two");
        assert_eq!(find_cookie("", "a"), None);
    }
}
