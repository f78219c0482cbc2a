//! What a browser does around the measured traffic: register, keep cookies, read the CSRF token
//! from each page, join rooms. Each simulated user has its own cookie jar; its session (cookie
//! header + CSRF token) is then shared by many listener connections, as one person's open tabs
//! share theirs, so that setting up 1,000 listeners costs a handful of argon2 hashes.

use std::sync::Arc;
use std::time::Duration;

use crate::bail;
use crate::http::{Conn, Response, Result, Target, build_request, find};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The credentials a connection needs to act as one logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    /// Value of the `Cookie` header.
    pub cookie: Arc<str>,
    pub csrf: Arc<str>,
}

pub struct Browser {
    pub target: Target,
    conn: Conn,
    cookies: Vec<(String, String)>,
    csrf: String,
}

impl Browser {
    pub fn new(target: Target) -> Self {
        let conn = Conn::new(target.addr, None);
        Browser {
            target,
            conn,
            cookies: Vec::new(),
            csrf: String::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn absorb(&mut self, resp: &Response) {
        for (name, value) in &resp.headers {
            if name == "set-cookie" {
                self.set_cookie(value);
            }
        }
        if let Some(token) = csrf_token(&resp.body) {
            self.csrf = token;
        }
    }

    fn set_cookie(&mut self, header: &str) {
        let mut parts = header.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
        let expired = parts.any(|attr| {
            let attr = attr.trim().to_ascii_lowercase();
            attr == "max-age=0" || attr.starts_with("max-age=-") || attr.contains("1970")
        });
        self.cookies.retain(|(n, _)| *n != name);
        if !expired && !value.is_empty() {
            self.cookies.push((name, value));
        }
    }

    /// A browser already logged in as `session` (its cookies and token).
    pub fn with_session(target: Target, session: &Session) -> Self {
        let mut b = Browser::new(target);
        b.cookies = session
            .cookie
            .split("; ")
            .filter_map(|c| c.split_once('='))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        b.csrf = session.csrf.to_string();
        b
    }

    pub async fn get(&mut self, path: &str) -> Result<Response> {
        self.get_as(path, false).await
    }

    /// `htmx`: send `HX-Request: true` and get the fragment instead of the page.
    pub async fn get_as(&mut self, path: &str, htmx: bool) -> Result<Response> {
        let req = build_request("GET", path, &self.target, &self.cookie_header(), htmx, None);
        let resp = self
            .conn
            .request(&req, REQUEST_TIMEOUT)
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        self.absorb(&resp);
        Ok(resp)
    }

    /// A form POST carrying the page's CSRF token, as the browser submits it.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Result<Response> {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        let csrf = self.csrf.clone();
        all.push(("csrf_token", &csrf));
        let req = build_request(
            "POST",
            path,
            &self.target,
            &self.cookie_header(),
            false,
            Some(&all),
        );
        let resp = self
            .conn
            .request(&req, REQUEST_TIMEOUT)
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        self.absorb(&resp);
        Ok(resp)
    }

    /// GET /register, POST the form, expect 303 to `/`, then load `/` for the logged-in
    /// session's CSRF token (a server may rotate it on login, as Django does).
    pub async fn register(&mut self, username: &str, password: &str) -> Result<Session> {
        let page = self.get("/register").await?;
        if page.status != 200 {
            bail!("GET /register answered {}: {}", page.status, page.snippet());
        }
        if self.csrf.is_empty() {
            bail!("GET /register has no <meta name=\"csrf-token\" content=\"...\">");
        }
        let resp = self
            .post(
                "/register",
                &[("username", username), ("password", password)],
            )
            .await?;
        if resp.status != 303 || resp.header("location") != Some("/") {
            bail!(
                "POST /register for {username} answered {} (location {:?}), expected 303 to /: {}",
                resp.status,
                resp.header("location"),
                resp.snippet()
            );
        }
        let home = self.get("/").await?;
        if home.status != 200 {
            bail!(
                "after registering {username}, GET / answered {} (location {:?}): the session cookie did not log in",
                home.status,
                home.header("location")
            );
        }
        Ok(self.session())
    }

    pub fn session(&self) -> Session {
        Session {
            cookie: self.cookie_header().into(),
            csrf: self.csrf.clone().into(),
        }
    }

    /// POST /rooms {name}: creates or joins; expects 303 to /rooms/{name}.
    pub async fn join(&mut self, room: &str) -> Result<()> {
        let resp = self.post("/rooms", &[("name", room)]).await?;
        let want = format!("/rooms/{room}");
        if resp.status != 303 || resp.header("location") != Some(want.as_str()) {
            bail!(
                "POST /rooms name={room} answered {} (location {:?}), expected 303 to {want}: {}",
                resp.status,
                resp.header("location"),
                resp.snippet()
            );
        }
        Ok(())
    }

    /// The largest message id on the room page: where a listener's cursor starts.
    pub async fn room_cursor(&mut self, room: &str) -> Result<i64> {
        let resp = self.get(&format!("/rooms/{room}")).await?;
        if resp.status != 200 {
            bail!(
                "GET /rooms/{room} answered {}: {}",
                resp.status,
                resp.snippet()
            );
        }
        Ok(crate::messages::parse(&resp.body)
            .iter()
            .map(|m| m.id)
            .max()
            .unwrap_or(0))
    }
}

/// `<meta name="csrf-token" content="...">`, attributes in either order.
fn csrf_token(html: &[u8]) -> Option<String> {
    let mut rest = html;
    while let Some(i) = find(rest, b"<meta") {
        rest = &rest[i..];
        let end = find(rest, b">")?;
        let tag = String::from_utf8_lossy(&rest[..end]);
        if tag.contains("\"csrf-token\"") || tag.contains("'csrf-token'") {
            return attr(&tag, "content");
        }
        rest = &rest[end..];
    }
    None
}

fn attr(tag: &str, name: &str) -> Option<String> {
    for quote in ['"', '\''] {
        let key = format!("{name}={quote}");
        if let Some(i) = tag.find(&key) {
            let value = &tag[i + key.len()..];
            let end = value.find(quote)?;
            return Some(unescape(&value[..end]));
        }
    }
    None
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_csrf_meta_in_either_attribute_order() {
        let a = br#"<head><meta charset="utf-8"><meta name="csrf-token" content="abc+/="></head>"#;
        let b = br#"<meta content="xyz" name="csrf-token">"#;
        assert_eq!(csrf_token(a).as_deref(), Some("abc+/="));
        assert_eq!(csrf_token(b).as_deref(), Some("xyz"));
        assert_eq!(csrf_token(b"<meta name=\"x\" content=\"y\">"), None);
    }
}
