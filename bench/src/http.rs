//! A deliberately small HTTP/1.1 client over tokio sockets.
//!
//! Why not hyper: the benchmark holds up to 10,000 keep-alive connections and must count every
//! byte a listener reads and writes (headers included) to report bytes per delivered message.
//! A hand-written client does both with one small buffer per connection and exact counters, and
//! it sends exactly the headers a browser's htmx request needs and nothing else.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

/// Largest response head accepted; a server sending more is misbehaving.
const MAX_HEAD: usize = 64 * 1024;
/// Largest response body accepted (history pages are the biggest bodies the bench reads).
const MAX_BODY: usize = 64 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The bench's error: a message meant for a person reading the report.
#[derive(Debug, Clone)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error(s.to_owned())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// `return Err(...)` with `format!` arguments.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::http::Error(format!($($arg)*))) };
}

/// Where the server listens, and the `Host`/`Origin` a browser would send to it.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
}

impl Target {
    pub fn new(addr: SocketAddr) -> Self {
        Target {
            addr,
            host: addr.to_string(),
        }
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.host)
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The start of the body, for error messages.
    pub fn snippet(&self) -> String {
        let text = self.body_text();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        text.chars().take(300).collect()
    }
}

/// One keep-alive connection. Reconnects by itself when the server closed it between requests.
pub struct Conn {
    target: SocketAddr,
    source: Option<IpAddr>,
    stream: Option<TcpStream>,
    /// Bytes read past the end of the last response (none, unless the server pipelines).
    buf: Vec<u8>,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub connects: u32,
}

impl Conn {
    /// `source` picks the local address (127.0.0.x) so that many thousands of sockets do not
    /// exhaust one address's ephemeral ports.
    pub fn new(target: SocketAddr, source: Option<IpAddr>) -> Self {
        Conn {
            target,
            source,
            stream: None,
            buf: Vec::with_capacity(1024),
            bytes_read: 0,
            bytes_written: 0,
            connects: 0,
        }
    }

    pub async fn connect(&mut self) -> Result<()> {
        let stream = timeout(CONNECT_TIMEOUT, connect_from(self.target, self.source))
            .await
            .map_err(|_| Error(format!("connect to {} timed out", self.target)))?
            .map_err(|e| Error(format!("connect to {}: {e}", self.target)))?;
        // Requests are small and latency is what is measured: no Nagle delay.
        let _ = stream.set_nodelay(true);
        self.stream = Some(stream);
        self.buf.clear();
        self.connects += 1;
        Ok(())
    }

    /// Writes the request and reads one response, within `limit`. A request on a reused
    /// connection that the server had already closed is retried once on a fresh connection;
    /// this is what browsers do too, and the bench's POSTs carry a `client_key` so a retry
    /// cannot store a message twice.
    pub async fn request(&mut self, req: &[u8], limit: Duration) -> Result<Response> {
        match timeout(limit, self.request_inner(req)).await {
            Ok(r) => r,
            Err(_) => {
                self.stream = None;
                bail!("no response within {} s", limit.as_secs_f64())
            }
        }
    }

    async fn request_inner(&mut self, req: &[u8]) -> Result<Response> {
        let reused = self.stream.is_some();
        if !reused {
            self.connect().await?;
        }
        match self.exchange(req).await {
            Ok(resp) => Ok(resp),
            Err(Exchange::ClosedBeforeResponse) if reused => {
                self.connect().await?;
                self.exchange(req).await.map_err(Exchange::into_error)
            }
            Err(e) => Err(e.into_error()),
        }
    }

    async fn exchange(&mut self, req: &[u8]) -> std::result::Result<Response, Exchange> {
        let result = self.exchange_inner(req).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange_inner(&mut self, req: &[u8]) -> std::result::Result<Response, Exchange> {
        let stream = self.stream.as_mut().ok_or(Exchange::ClosedBeforeResponse)?;
        if let Err(e) = stream.write_all(req).await {
            return Err(match e.kind() {
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                    Exchange::ClosedBeforeResponse
                }
                _ => Exchange::Failed(format!("write: {e}")),
            });
        }
        self.bytes_written += req.len() as u64;

        // Head.
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(Exchange::Failed("response head larger than 64 KB".into()));
            }
            if self.fill().await? == 0 {
                return Err(if self.buf.is_empty() {
                    Exchange::ClosedBeforeResponse
                } else {
                    Exchange::Failed("connection closed inside a response head".into())
                });
            }
        };
        let (status, headers) = parse_head(&self.buf[..head_end]).map_err(Exchange::Failed)?;
        self.buf.drain(..head_end);

        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let close = get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let chunked =
            get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = match get("content-length") {
            Some(v) => Some(
                v.trim()
                    .parse::<usize>()
                    .map_err(|_| Exchange::Failed(format!("bad content-length {v:?}")))?,
            ),
            None => None,
        };

        let body = if status == 204 || status == 304 || (100..200).contains(&status) {
            Vec::new()
        } else if chunked {
            self.read_chunked().await?
        } else if let Some(len) = length {
            if len > MAX_BODY {
                return Err(Exchange::Failed(format!(
                    "body of {len} bytes is too large"
                )));
            }
            while self.buf.len() < len {
                if self.fill().await? == 0 {
                    return Err(Exchange::Failed("connection closed inside a body".into()));
                }
            }
            self.buf.drain(..len).collect()
        } else {
            // No length and not chunked: the body runs to the end of the connection.
            while self.fill().await? != 0 {
                if self.buf.len() > MAX_BODY {
                    return Err(Exchange::Failed("body too large".into()));
                }
            }
            self.stream = None;
            std::mem::take(&mut self.buf)
        };
        if close {
            self.stream = None;
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    async fn read_chunked(&mut self) -> std::result::Result<Vec<u8>, Exchange> {
        let mut body = Vec::new();
        loop {
            let line_end = self.line_end().await?;
            let line = std::str::from_utf8(&self.buf[..line_end - 2])
                .map_err(|_| Exchange::Failed("bad chunk size line".into()))?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| Exchange::Failed(format!("bad chunk size {size_text:?}")))?;
            self.buf.drain(..line_end);
            if size == 0 {
                // Trailers, ended by an empty line.
                loop {
                    let end = self.line_end().await?;
                    self.buf.drain(..end);
                    if end == 2 {
                        return Ok(body);
                    }
                }
            }
            if body.len() + size > MAX_BODY {
                return Err(Exchange::Failed("chunked body too large".into()));
            }
            while self.buf.len() < size + 2 {
                if self.fill().await? == 0 {
                    return Err(Exchange::Failed("connection closed inside a chunk".into()));
                }
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
    }

    /// Index just past the next CRLF in the buffer, reading more as needed.
    async fn line_end(&mut self) -> std::result::Result<usize, Exchange> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                return Ok(i + 2);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(Exchange::Failed("chunk header line too long".into()));
            }
            if self.fill().await? == 0 {
                return Err(Exchange::Failed(
                    "connection closed inside a chunked body".into(),
                ));
            }
        }
    }

    async fn fill(&mut self) -> std::result::Result<usize, Exchange> {
        let stream = self.stream.as_mut().ok_or(Exchange::ClosedBeforeResponse)?;
        let mut chunk = [0u8; 4096];
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && self.buf.is_empty() => {
                return Err(Exchange::ClosedBeforeResponse);
            }
            Err(e) => return Err(Exchange::Failed(format!("read: {e}"))),
        };
        self.buf.extend_from_slice(&chunk[..n]);
        self.bytes_read += n as u64;
        Ok(n)
    }
}

enum Exchange {
    /// The server closed an idle keep-alive connection: safe to retry on a new one.
    ClosedBeforeResponse,
    Failed(String),
}

impl Exchange {
    fn into_error(self) -> Error {
        match self {
            Exchange::ClosedBeforeResponse => {
                Error("server closed the connection without a response".into())
            }
            Exchange::Failed(m) => Error(m),
        }
    }
}

async fn connect_from(target: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(target).await
}

/// The source addresses client sockets are spread over: 127.0.0.1 ..= 127.0.0.`n`.
/// Linux answers on all of 127.0.0.0/8 on `lo`, so each gives its own ~28,000 ephemeral ports.
pub fn source_ip(i: usize, n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % n.max(1)) as u8))
}

fn parse_head(head: &[u8]) -> std::result::Result<(u16, Vec<(String, String)>), String> {
    let text = std::str::from_utf8(head).map_err(|_| "response head is not UTF-8".to_owned())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1 response: {status_line:?}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok((status, headers))
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A request as bytes. `cookie` is the `Cookie` header value (may be empty); `form` makes it a
/// form POST. Only the headers a browser's htmx request would need: Host, Cookie, HX-Request,
/// and for POSTs Origin and Sec-Fetch-Site, which a server may check as CSRF defence in depth.
pub fn build_request(
    method: &str,
    path: &str,
    target: &Target,
    cookie: &str,
    htmx: bool,
    form: Option<&[(&str, &str)]>,
) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", target.host);
    if !cookie.is_empty() {
        req.push_str("Cookie: ");
        req.push_str(cookie);
        req.push_str("\r\n");
    }
    if htmx {
        req.push_str("HX-Request: true\r\n");
    }
    let body = form.map(encode_form);
    if let Some(body) = &body {
        req.push_str(&format!(
            "Origin: {}\r\nSec-Fetch-Site: same-origin\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            target.origin(),
            body.len()
        ));
    }
    req.push_str("\r\n");
    if let Some(body) = body {
        req.push_str(&body);
    }
    req.into_bytes()
}

pub fn encode_form(fields: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        percent_encode(k, &mut out);
        out.push('=');
        percent_encode(v, &mut out);
    }
    out
}

fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_reserved_bytes() {
        assert_eq!(encode_form(&[("a b", "x&y=z/é")]), "a+b=x%26y%3Dz%2F%C3%A9");
    }

    #[test]
    fn head_parsing_lowercases_names() {
        let (status, headers) =
            parse_head(b"HTTP/1.1 303 See Other\r\nLocation: /\r\nSet-Cookie: a=b\r\n\r\n")
                .unwrap();
        assert_eq!(status, 303);
        assert_eq!(headers[0], ("location".into(), "/".into()));
    }
}
