//! Attachments: sending files with a message (`POST {conv}/attachments`), and handing their bytes
//! and pictures' thumbnails to the people who may read the conversation (`GET /files/{id}/…`).
//!
//! An upload is streamed: each file's bytes go to the file store as they arrive, counted against
//! the size limit and the uploader's hourly allowance, and refused the moment either is passed.
//! The message and its attachments' rows are stored in one transaction once every file is in;
//! whatever goes wrong before that deletes what was stored, so a refused upload leaves nothing.

use std::time::Duration;

use bytes::Bytes;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{Body, IntoResponse, Request, Response, handler};
use subtle::ConstantTimeEq;

use super::conversation::{Conv, Window, page_response};
use super::csrf::CsrfToFollow;
use super::error::AppError;
use super::session::current_user;
use super::{AppState, Ctx, csrf_token, see_other, with_status};
use crate::domain::{ClientKey, MessageBody};
use crate::files::Files;
use crate::media::{self, Inline};
use crate::store::attachments::{self, NewAttachment};
use crate::store::messages::{self, Change, Draft};
use crate::views::chat;
use crate::views::messages as views;

/// The most files one message may carry.
pub const MAX_FILES: usize = 10;

/// The allowance is counted over this window (an hour).
const ALLOWANCE_WINDOW_MS: i64 = 3_600_000;

/// The text fields of the form, each at most this long (the body: a message's worth).
const FIELD_LIMIT: u64 = 256;
const BODY_LIMIT: u64 = 64 * 1024;

/// Why an upload was refused (each with what the person is told), or failed.
enum Refusal {
    /// 413: a file over the size limit.
    TooLarge(String),
    /// 422: an empty file, too many files, no file, a bad text.
    Unprocessable(String),
    /// 429: over the hourly allowance.
    TooMuch(String),
    /// 403: the form's CSRF token (the first field, without the header) missing or wrong.
    Forbidden,
    /// 400: not a multipart form that could be read.
    Unreadable,
    /// The body stopped arriving for longer than `--body-timeout-secs`.
    Stalled,
    Failed(AppError),
}

impl From<AppError> for Refusal {
    fn from(err: AppError) -> Self {
        Refusal::Failed(err)
    }
}

impl From<crate::files::Error> for Refusal {
    fn from(err: crate::files::Error) -> Self {
        Refusal::Failed(AppError::Internal(Box::new(err)))
    }
}

impl From<multer::Error> for Refusal {
    fn from(err: multer::Error) -> Self {
        match err {
            multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
                Refusal::TooLarge("A field of the form is too long.".to_owned())
            }
            multer::Error::StreamReadFailed(err)
                if err
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut) =>
            {
                Refusal::Stalled
            }
            _ => Refusal::Unreadable,
        }
    }
}

/// What the form brought. The files it stored are deleted when it goes, unless [`keep`] was
/// called: a refusal, a failure, and a client that hangs up mid-upload (the handler is dropped)
/// all leave nothing behind.
///
/// [`keep`]: Received::keep
struct Received {
    body: String,
    client_key: String,
    csrf: Option<String>,
    files: Vec<NewAttachment>,
    /// The store to delete them from; None once they are kept (or deleted).
    store: Option<Files>,
}

impl Received {
    fn new(store: Files) -> Self {
        Received {
            body: String::new(),
            client_key: String::new(),
            csrf: None,
            files: Vec::new(),
            store: Some(store),
        }
    }

    /// The keys of everything stored so far.
    fn keys(&self) -> Vec<String> {
        self.files
            .iter()
            .flat_map(|f| {
                std::iter::once(f.storage_key.clone()).chain(f.preview.clone().map(|p| p.0))
            })
            .collect()
    }

    /// The files are the message's now (or may be: see `store`): they stay.
    fn keep(&mut self) {
        self.store = None;
    }

    /// Deletes the files stored so far, now.
    async fn discard(&mut self) {
        if let Some(store) = self.store.take() {
            store.delete(&self.keys()).await;
        }
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        let (Some(store), keys) = (self.store.take(), self.keys()) else {
            return;
        };
        if !keys.is_empty() {
            tokio::spawn(async move { store.delete(&keys).await });
        }
    }
}

/// The bytes a person's uploads in progress have brought so far, on this process: counted
/// against their hourly allowance with what they have stored, so that uploads sent side by side
/// cannot each use the whole of it. Given back when the upload ends (its files are then rows).
struct InFlight {
    app: AppState,
    user: i64,
    bytes: u64,
    /// The whole body's length was counted at the start (it had a `Content-Length`), so its
    /// chunks are not counted again.
    prepaid: bool,
}

impl InFlight {
    fn new(app: AppState, user: i64) -> Self {
        InFlight {
            app,
            user,
            bytes: 0,
            prepaid: false,
        }
    }

    /// Counts a body of `length` bytes at once, before reading it: of two uploads sent side by
    /// side, the first to arrive has its share and the second is refused at once. Whether the
    /// person is still within `allowance`.
    fn prepay(&mut self, length: u64, allowance: u64) -> bool {
        self.prepaid = true;
        self.add(length) <= allowance
    }

    /// Counts `n` bytes of a file as they arrive (when the body's length was not known): whether
    /// the person is still within `allowance`.
    fn within(&mut self, n: u64, allowance: u64) -> bool {
        self.prepaid || self.add(n) <= allowance
    }

    /// Adds `n` bytes; the person's bytes in flight on this process, all uploads together.
    fn add(&mut self, n: u64) -> u64 {
        self.bytes += n;
        let mut all = self.app.uploading.lock().unwrap_or_else(|e| e.into_inner());
        let theirs = all.entry(self.user).or_default();
        *theirs += n;
        *theirs
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut all = self.app.uploading.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(theirs) = all.get_mut(&self.user) {
            *theirs = theirs.saturating_sub(self.bytes);
            if *theirs == 0 {
                all.remove(&self.user);
            }
        }
    }
}

/// The limits of one upload.
struct Limits {
    per_file: u64,
    /// What the uploader may still store this hour, before what is in flight.
    allowance: u64,
    per_hour_mb: u64,
    max_mb: u64,
}

/// `POST {conv}/attachments` (`multipart/form-data`: `file` parts, `body`, `client_key`,
/// `csrf_token` or the `X-CSRF-Token` header): one message with these files (and the text, if
/// any; text alone is sent as a plain message, which is what the composer does without
/// JavaScript).
#[handler]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn upload(
    req: &Request,
    Conv { ctx, target }: Conv,
    body: Body,
) -> Result<Response, AppError> {
    let app = ctx.app.clone();
    let Some(boundary) = boundary(req) else {
        return Ok(refused(&ctx, &target, "", Refusal::Unreadable).await);
    };
    let used = attachments::uploaded_since(
        &app.db.pool,
        ctx.user.id,
        crate::now_ms() - ALLOWANCE_WINDOW_MS,
    )
    .await?;
    let settings = &app.settings;
    let limits = Limits {
        per_file: settings.max_upload_bytes(),
        allowance: (settings.upload_mb_per_hour * 1024 * 1024).saturating_sub(used.max(0) as u64),
        per_hour_mb: settings.upload_mb_per_hour,
        max_mb: settings.max_upload_mb,
    };
    // Files have no limit of the parser's: `store_file` counts their bytes and refuses one over
    // the limit with its name and the limit. Everything else is small.
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream((limits.per_file + 64 * 1024) * MAX_FILES as u64 + BODY_LIMIT + 64 * 1024)
            .for_field("file", u64::MAX)
            .for_field("body", BODY_LIMIT)
            .per_field(FIELD_LIMIT),
    );
    let stall = Duration::from_secs(settings.body_timeout_secs);
    let mut form = multer::Multipart::with_constraints(
        stall_deadline(body.into_bytes_stream(), stall),
        boundary,
        constraints,
    );
    let must_check_csrf = req.extensions().get::<CsrfToFollow>().is_some();
    let token = csrf_token(req);
    // A message with files is a message: it counts in the sender's pace like any other.
    if let Err(too_fast) = super::limits::take(
        &app.limits.messages,
        &ctx.user.id,
        "You are sending messages faster than Parley takes them.",
    ) {
        drain(form).await;
        return Err(too_fast);
    }
    let mut received = Received::new(app.files.clone());
    let mut in_flight = InFlight::new(app.clone(), ctx.user.id);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared
        && !in_flight.prepay(length, limits.allowance)
    {
        drain(form).await;
        return Ok(refused(&ctx, &target, "", over_allowance(&limits)).await);
    }
    let outcome = receive(
        &app,
        &mut form,
        &limits,
        must_check_csrf.then_some(token.as_str()),
        &mut received,
        &mut in_flight,
    )
    .await;
    if let Err(refusal) = outcome {
        received.discard().await;
        drain(form).await;
        return Ok(refused(&ctx, &target, &received.body, refusal).await);
    }
    match store(&ctx, target.room, &mut received).await {
        Ok(message) if ctx.htmx => Ok((StatusCode::OK, chat::message(&message)).into_response()),
        Ok(_) => Ok(see_other(&target.base)),
        Err(refusal) => {
            received.discard().await;
            Ok(refused(&ctx, &target, &received.body, refusal).await)
        }
    }
}

/// The boundary of a `multipart/form-data` body, when the request says it is one.
pub(super) fn boundary(req: &Request) -> Option<String> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok())
}

/// The upload's bytes, each piece within `stall` of the one before. The middleware's deadline
/// for reading a body does not apply to an upload (its handler streams it, and 25 MB on a slow
/// link may rightly take minutes), but one that stops arriving must not hold its connection, and
/// its place under the caps, for as long as the sender likes.
pub(super) fn stall_deadline<S>(
    body: S,
    stall: Duration,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static
where
    S: futures_util::Stream<Item = std::io::Result<Bytes>> + Send + Unpin + 'static,
{
    use futures_util::StreamExt;
    futures_util::stream::unfold(Some(body), move |body| async move {
        let mut body = body?;
        match tokio::time::timeout(stall, body.next()).await {
            Ok(Some(piece)) => Some((piece, Some(body))),
            Ok(None) => None,
            Err(_) => {
                let err = std::io::Error::new(std::io::ErrorKind::TimedOut, "the upload stalled");
                Some((Err(err), None))
            }
        }
    })
}

/// Whether the form's `csrf_token` (when the page's token must come in the form) is right.
fn token_ok(received: &Received, expected: Option<&str>) -> bool {
    let Some(expected) = expected else {
        return true; // the header was checked by the middleware
    };
    let sent = received.csrf.as_deref().unwrap_or_default();
    bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

/// Reads the form, storing each file as it comes. With `csrf` (no header was sent), the form's
/// `csrf_token` must come before its first file and match.
async fn receive(
    app: &AppState,
    form: &mut multer::Multipart<'static>,
    limits: &Limits,
    csrf: Option<&str>,
    received: &mut Received,
    in_flight: &mut InFlight,
) -> Result<(), Refusal> {
    while let Some(mut field) = form.next_field().await? {
        match field.name() {
            Some("csrf_token") => received.csrf = Some(field.text().await?),
            Some("body") => received.body = field.text().await?,
            Some("client_key") => received.client_key = field.text().await?,
            Some("file") => {
                if !token_ok(received, csrf) {
                    return Err(Refusal::Forbidden);
                }
                let name = clean_name(field.file_name().unwrap_or_default());
                // A form's file input with nothing chosen still sends an empty, nameless part.
                let Some(first) = first_bytes(&mut field).await? else {
                    if name.is_empty() {
                        continue;
                    }
                    return Err(Refusal::Unprocessable(format!(
                        "“{name}” is empty: there is nothing to send."
                    )));
                };
                if received.files.len() == MAX_FILES {
                    return Err(Refusal::Unprocessable(format!(
                        "At most {MAX_FILES} files can go in one message."
                    )));
                }
                let name = if name.is_empty() {
                    "file".to_owned()
                } else {
                    name
                };
                let file = store_file(app, &mut field, first, name, limits, in_flight).await?;
                received.files.push(file);
            }
            _ => while field.chunk().await?.is_some() {},
        }
    }
    // A form without files is a message too: its token is checked like a file's.
    if !token_ok(received, csrf) {
        return Err(Refusal::Forbidden);
    }
    Ok(())
}

/// The first bytes of a field that has any (a parser may hand out empty chunks).
async fn first_bytes(field: &mut multer::Field<'static>) -> Result<Option<Bytes>, multer::Error> {
    while let Some(bytes) = field.chunk().await? {
        if !bytes.is_empty() {
            return Ok(Some(bytes));
        }
    }
    Ok(None)
}

/// Streams one file into the store under a fresh key: its attachment, or a refusal with nothing
/// left of it in the store.
async fn store_file(
    app: &AppState,
    field: &mut multer::Field<'static>,
    first: Bytes,
    name: String,
    limits: &Limits,
    in_flight: &mut InFlight,
) -> Result<NewAttachment, Refusal> {
    let key = Files::new_key(false);
    let mut writer = app.files.writer(&key).await?;
    let mut head: Vec<u8> = Vec::with_capacity(media::SNIFF_BYTES);
    let mut size: u64 = 0;
    let mut chunk = Some(first);
    while let Some(bytes) = chunk {
        size += bytes.len() as u64;
        if size > limits.per_file {
            writer.abort().await;
            return Err(Refusal::TooLarge(format!(
                "“{name}” is larger than {} MB, the most one file may be.",
                limits.max_mb
            )));
        }
        if !in_flight.within(bytes.len() as u64, limits.allowance) {
            writer.abort().await;
            return Err(over_allowance(limits));
        }
        if head.len() < media::SNIFF_BYTES {
            let take = (media::SNIFF_BYTES - head.len()).min(bytes.len());
            head.extend_from_slice(&bytes[..take]);
        }
        if let Err(err) = writer.write(&bytes).await {
            writer.abort().await;
            return Err(err.into());
        }
        chunk = match field.chunk().await {
            Ok(next) => next,
            Err(err) => {
                writer.abort().await;
                return Err(err.into());
            }
        };
    }
    writer.finish().await?;
    let content_type = media::sniff(&head, &name);
    let mut file = NewAttachment {
        name,
        content_type,
        size: size as i64,
        storage_key: key,
        preview: None,
    };
    if Inline::of(&file.content_type) == Inline::Picture {
        match preview(app, &file.storage_key).await {
            Ok(made) => file.preview = made,
            Err(err) => {
                app.files
                    .delete(std::slice::from_ref(&file.storage_key))
                    .await;
                return Err(err);
            }
        }
    }
    Ok(file)
}

fn over_allowance(limits: &Limits) -> Refusal {
    Refusal::TooMuch(format!(
        "You have sent {} MB of files in the last hour, the most one person may. Try again later.",
        limits.per_hour_mb
    ))
}

/// Makes the thumbnail of the picture stored under `key`, once, now; None when it cannot be
/// decoded (a picture bomb, a broken file): it is then shown as a plain file.
async fn preview(app: &AppState, key: &str) -> Result<Option<(String, u32, u32)>, Refusal> {
    let _turn = app
        .thumbnails
        .acquire()
        .await
        .map_err(|e| AppError::Internal(Box::new(e)))?;
    let bytes = app.files.read_all(key).await?;
    // A decoder that panics on a crafted file is a file without a preview, not a failed upload.
    let thumb = tokio::task::spawn_blocking(move || media::thumbnail(&bytes))
        .await
        .unwrap_or(None);
    let Some(thumb) = thumb else {
        return Ok(None);
    };
    let extension = if thumb.content_type == "image/png" {
        "png"
    } else {
        "jpg"
    };
    let preview_key = format!("{}.{extension}", Files::new_key(true));
    app.files.put(&preview_key, thumb.bytes).await?;
    Ok(Some((preview_key, thumb.width, thumb.height)))
}

/// Stores the message with its files, and tells every open page.
async fn store(
    ctx: &Ctx,
    room: i64,
    received: &mut Received,
) -> Result<messages::Message, Refusal> {
    let app = &ctx.app;
    // Files may go without text; text alone (the composer's form without JavaScript) is a
    // message like any other, by the same rules.
    let body = match (received.body.trim(), received.files.is_empty()) {
        ("", false) => None,
        _ => Some(
            MessageBody::parse(&received.body)
                .map_err(|e| Refusal::Unprocessable(e.0.to_owned()))?,
        ),
    };
    let key = ClientKey::parse(&received.client_key)
        .map_err(|e| Refusal::Unprocessable(e.0.to_owned()))?;
    let mentions = match &body {
        Some(body) => super::messages::mentions_in(app, room, ctx.user.id, body).await?,
        None => Vec::new(),
    };
    let (db, hub, files) = (app.db.clone(), app.hub.clone(), received.files.clone());
    let me = ctx.user.clone();
    let stored = tokio::spawn(async move {
        let text = body.as_ref().map_or("", MessageBody::as_str);
        let draft = Draft {
            room,
            author: me.author(),
            body: text,
            client_key: key.as_ref(),
            mentions: &mentions,
            files: &files,
            // Announced by the database at its commit: this route is the rarer one (files, or a
            // page without JavaScript).
            announce_after: false,
        };
        let turn = db.write_turn().await;
        let stored = messages::insert(db.sends(), db.engine, &draft).await;
        drop(turn);
        let (message, fresh) = stored?;
        if fresh {
            hub.joined(room, me.id);
            hub.published(&Change::New(message.clone()));
        }
        Ok::<_, sqlx::Error>((message, fresh))
    })
    .await;
    let (message, fresh) = match stored {
        Ok(Ok(stored)) => stored,
        Ok(Err(err)) => return Err(AppError::from(err).into()),
        Err(panicked) => {
            // Whether the message was stored is unknown: its files stay (the sweep deletes them
            // if no row names them).
            received.keep();
            return Err(AppError::Internal(Box::new(panicked)).into());
        }
    };
    if fresh {
        app.metrics.sends.inc();
        app.metrics.uploads.inc_by(received.files.len() as u64);
        received.keep();
    } else {
        // A retry of an upload that was stored: the first one's files stand, these go.
        received.discard().await;
    }
    Ok(message)
}

/// What the person is told about a refused upload: next to the composer (htmx), or on the
/// conversation's page with the text they wrote kept.
async fn refused(
    ctx: &Ctx,
    target: &super::conversation::Target,
    body: &str,
    refusal: Refusal,
) -> Response {
    let (status, text) = match refusal {
        Refusal::TooLarge(text) => (StatusCode::PAYLOAD_TOO_LARGE, text),
        Refusal::Unprocessable(text) => (StatusCode::UNPROCESSABLE_ENTITY, text),
        Refusal::TooMuch(text) => (StatusCode::TOO_MANY_REQUESTS, text),
        Refusal::Forbidden => (
            StatusCode::FORBIDDEN,
            "CSRF token missing or incorrect. Reload the page and try again.".to_owned(),
        ),
        Refusal::Unreadable => (
            StatusCode::BAD_REQUEST,
            "The upload could not be read: send the files as a multipart form.".to_owned(),
        ),
        Refusal::Stalled => (
            StatusCode::REQUEST_TIMEOUT,
            "The upload stopped arriving. Try again.".to_owned(),
        ),
        Refusal::Failed(err) => return poem::error::ResponseError::as_response(&err),
    };
    let mut resp = if ctx.htmx {
        with_status(views::field_error(&text), status)
    } else {
        match page_response(&ctx.app, ctx, target, Window::Latest, Some((body, &text))).await {
            Ok(mut page) => {
                page.set_status(status);
                page
            }
            Err(err) => return poem::error::ResponseError::as_response(&err),
        }
    };
    if status == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("3600"));
    }
    resp
}

/// Reads on (and throws away) what the client is still sending, for a moment, so that it reads
/// the refusal instead of meeting a reset connection.
pub(super) async fn drain(mut form: multer::Multipart<'static>) {
    let rest = async {
        while let Ok(Some(mut field)) = form.next_field().await {
            while let Ok(Some(_)) = field.chunk().await {}
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), rest).await;
}

/// The longest file name kept (in characters); a longer one is cut, keeping its extension.
const MAX_NAME_CHARS: usize = 1024;

/// The longest file name put in a download's header (in characters).
const HEADER_NAME_CHARS: usize = 255;

/// The name a file is shown and downloaded under: as sent, without control characters (a CR or
/// LF could not go in a header), cut at [`MAX_NAME_CHARS`]. The file store never sees it.
fn clean_name(raw: &str) -> String {
    // Browsers send `"`, CR and LF in a file name as %22, %0D and %0A (HTML's encoding of
    // multipart/form-data).
    let raw = raw
        .replace("%22", "\"")
        .replace("%0D", "")
        .replace("%0A", "");
    // Bidirectional controls would let `invoice\u{202E}fdp.exe` show as `invoiceexe.pdf`.
    let name: String = raw
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .collect();
    shorten(name.trim(), MAX_NAME_CHARS)
}

/// `name` cut to `max` characters, keeping its extension.
fn shorten(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        return name.to_owned();
    }
    let extension = name
        .rsplit_once('.')
        .map(|(_, ext)| ext)
        .filter(|ext| ext.chars().count() <= 16)
        .unwrap_or("");
    let keep = max - extension.chars().count() - usize::from(!extension.is_empty());
    let stem: String = name.chars().take(keep).collect();
    match extension {
        "" => stem,
        ext => format!("{stem}.{ext}"),
    }
}

/// `GET /files/{id}/{name}`: the bytes of attachment `id`, to someone who may read its
/// conversation; `GET /files/{id}/preview`: its thumbnail. Anyone else, and anyone logged out,
/// gets 404: the same answer as for a file that does not exist.
#[handler]
pub async fn download(req: &Request) -> Result<Response, AppError> {
    const NONE: AppError = AppError::NotFound("There is no such file.");
    let app = req.data::<AppState>().expect("state");
    let id: i64 = req
        .raw_path_param("id")
        .and_then(|id| id.parse().ok())
        .ok_or(NONE)?;
    let wants_preview = req.raw_path_param("name") == Some("preview");
    let user = current_user(req).await?.ok_or(NONE)?;
    let file = attachments::readable(&app.db.pool, id, user.id)
        .await?
        .ok_or(NONE)?;
    let (key, content_type, disposition, size) = if wants_preview {
        let key = file.preview_key.clone().ok_or(NONE)?;
        let content_type = if key.ends_with(".png") {
            "image/png"
        } else {
            "image/jpeg"
        };
        (key, content_type.to_owned(), "inline", None)
    } else {
        let inline = Inline::of(&file.content_type) != Inline::No;
        let disposition = if inline { "inline" } else { "attachment" };
        (
            file.storage_key.clone(),
            file.content_type.clone(),
            disposition,
            Some(file.size as u64),
        )
    };
    let etag = format!("\"{}\"", key.rsplit('/').next().unwrap_or(&key));
    let mut resp = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(
            header::CONTENT_DISPOSITION,
            content_disposition(disposition, &file.name),
        )
        .header(header::ETAG, &etag)
        .header(
            header::CACHE_CONTROL,
            "private, max-age=31536000, immutable",
        )
        .header("content-security-policy", "sandbox")
        .header("x-content-type-options", "nosniff");
    if let Some(sent) = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        && sent.split(',').any(|t| t.trim() == etag || t.trim() == "*")
    {
        return Ok(resp.status(StatusCode::NOT_MODIFIED).finish());
    }
    let range = match (
        size,
        req.headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok()),
    ) {
        (Some(size), Some(asked)) => match byte_range(asked, size) {
            Ranged::Whole => None,
            Ranged::Part(range) => Some((range, size)),
            Ranged::Unsatisfiable => {
                return Ok(resp
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                    .finish());
            }
        },
        _ => None,
    };
    if size.is_some() {
        resp = resp.header(header::ACCEPT_RANGES, "bytes");
    }
    let stream = match app
        .files
        .read(&key, range.as_ref().map(|(r, _)| r.clone()))
        .await
    {
        Ok(stream) => stream,
        Err(crate::files::Error::NotFound { .. }) => return Err(NONE),
        Err(err) => return Err(AppError::Internal(Box::new(err))),
    };
    if let Some((range, size)) = range {
        resp = resp
            .status(StatusCode::PARTIAL_CONTENT)
            .header(
                header::CONTENT_RANGE,
                format!("bytes {}-{}/{size}", range.start, range.end - 1),
            )
            .header(header::CONTENT_LENGTH, range.end - range.start);
    } else if let Some(size) = size {
        resp = resp.header(header::CONTENT_LENGTH, size);
    }
    Ok(resp.body(Body::from_bytes_stream(stream)))
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Ranged {
    /// No range this server serves (none, several, or not understood): the whole file, 200.
    Whole,
    /// One range of bytes, 206.
    Part(std::ops::Range<u64>),
    /// A range wholly past the end, 416.
    Unsatisfiable,
}

/// A single `bytes=a-b`, `bytes=a-` or `bytes=-n` range (RFC 9110 §14.1.2).
fn byte_range(header: &str, size: u64) -> Ranged {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let range = match (first.parse::<u64>(), last.parse::<u64>()) {
        (Ok(first), Ok(last)) if first <= last => first..last.saturating_add(1).min(size),
        (Ok(first), Err(_)) if last.is_empty() => first..size,
        (Err(_), Ok(suffix)) if first.is_empty() => size.saturating_sub(suffix)..size,
        _ => return Ranged::Whole,
    };
    if range.start >= size || range.is_empty() {
        return Ranged::Unsatisfiable;
    }
    Ranged::Part(range)
}

/// The characters that change the direction text is shown in.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `Content-Disposition` (RFC 6266): the UTF-8 name encoded as `filename*`, and a plain ASCII
/// `filename` for the clients that read only that.
fn content_disposition(kind: &str, name: &str) -> String {
    // A file system takes names of up to 255 bytes, and a proxy's header buffer (nginx: 4 or
    // 8 KB) refuses a longer header: a very long name is cut, keeping its extension.
    let name = &shorten(name, HEADER_NAME_CHARS);
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' && c != '/' => c,
            _ => '_',
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(name, crate::views::ATTR_CHAR);
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(byte_range("bytes=0-9", 100), Ranged::Part(0..10));
        assert_eq!(byte_range("bytes=90-", 100), Ranged::Part(90..100));
        assert_eq!(byte_range("bytes=-10", 100), Ranged::Part(90..100));
        assert_eq!(byte_range("bytes=95-200", 100), Ranged::Part(95..100));
        assert_eq!(byte_range("bytes=100-", 100), Ranged::Unsatisfiable);
        assert_eq!(byte_range("bytes=0-1,5-6", 100), Ranged::Whole);
        assert_eq!(byte_range("items=0-1", 100), Ranged::Whole);
        assert_eq!(byte_range("bytes=9-3", 100), Ranged::Whole);
        assert_eq!(
            byte_range("bytes=0-18446744073709551615", 100),
            Ranged::Part(0..100)
        );
    }

    #[test]
    fn a_name_is_kept_for_display_without_control_characters() {
        assert_eq!(clean_name("a\r\nb\".txt"), "ab\".txt");
        assert_eq!(clean_name("say %22hi%22%0D%0A.txt"), "say \"hi\".txt");
        assert_eq!(clean_name("../../x"), "../../x");
        assert_eq!(clean_name("invoice\u{202E}fdp.exe"), "invoicefdp.exe");
        let long = format!("{}.pdf", "é".repeat(300));
        assert_eq!(clean_name(&long), long, "a long name is kept whole");
        let too_long = format!("{}.pdf", "é".repeat(2000));
        let cut = clean_name(&too_long);
        assert_eq!(cut.chars().count(), MAX_NAME_CHARS);
        assert!(cut.ends_with("é.pdf"));
    }

    #[test]
    fn names_in_headers_and_urls_are_encoded() {
        assert_eq!(
            content_disposition("attachment", "naïve \"q\".txt"),
            "attachment; filename=\"na_ve _q_.txt\"; filename*=UTF-8''na%C3%AFve%20%22q%22.txt"
        );
        assert_eq!(crate::views::file_url(4, "../../x"), "/files/4/..%2F..%2Fx");
        assert_eq!(crate::views::file_url(4, "preview"), "/files/4/preview_");
        assert_eq!(crate::views::file_url(4, ".."), "/files/4/file");
        assert_eq!(
            crate::views::file_url(4, "preview#x.png"),
            "/files/4/preview%23x.png"
        );
    }
}
