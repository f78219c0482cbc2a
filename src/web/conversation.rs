//! What public rooms and private conversations share: the page, sending, live delivery, paging
//! and read positions. `rooms` and `direct` decide which room a URL means and who may see it;
//! everything here runs only after that check.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use maud::html;
use poem::error::ResponseError;
use poem::http::{StatusCode, header};
use poem::{IntoResponse, Response};
use rand::RngCore;
use serde::Deserialize;

use super::error::AppError;
use super::held::held;
use super::{AppState, Ctx, see_other};
use crate::domain::{ClientKey, MessageBody};
use crate::realtime::Rendered;
use crate::store::{messages, rooms, users};
use crate::views::chat::{self, Composer, Conversation, Sidebar};
use crate::views::page;

/// Messages on a page and per "older" page.
pub const PAGE: i64 = 50;

/// A conversation the viewer may see, resolved from its URL: which room, and how to name it.
#[derive(Clone, Debug)]
pub struct Target {
    pub room: i64,
    pub title: String,
    /// `/rooms/{name}` or `/dm/{username}`, canonically spelt.
    pub base: String,
}

/// Which room a conversation URL means for a viewer, remembered briefly so that long-polls and
/// sends (the hot paths) resolve it without a database read. Public rooms are stored under viewer 0.
#[derive(Default)]
pub struct Directory {
    entries: Mutex<HashMap<(i64, String), (Target, Instant)>>,
}

const DIRECTORY_TTL: Duration = Duration::from_secs(30);

impl Directory {
    pub fn get(&self, viewer: i64, url: &str) -> Option<Target> {
        let entries = self.entries.lock().expect("directory lock");
        let (target, at) = entries.get(&(viewer, url.to_ascii_lowercase()))?;
        (at.elapsed() < DIRECTORY_TTL).then(|| target.clone())
    }

    pub fn put(&self, viewer: i64, url: &str, target: &Target) {
        let mut entries = self.entries.lock().expect("directory lock");
        if entries.len() > 100_000 {
            entries.retain(|_, (_, at)| at.elapsed() < DIRECTORY_TTL);
        }
        entries.insert(
            (viewer, url.to_ascii_lowercase()),
            (target.clone(), Instant::now()),
        );
    }

    pub fn clear(&self) {
        self.entries.lock().expect("directory lock").clear();
    }
}

pub fn new_client_key() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    pub before: Option<i64>,
}

/// The sidebar for a page, with the viewer's unread counts.
pub async fn sidebar_data(
    app: &AppState,
    ctx: &Ctx,
    query: &str,
) -> Result<(Vec<rooms::RoomListing>, Vec<(users::Person, i64)>), AppError> {
    // Names are at most 64 letters, digits and `_ . -`: a longer search, or one with a control
    // character (which PostgreSQL cannot even compare), matches nobody.
    if query.len() > 64 || query.contains(char::is_control) {
        return Ok((Vec::new(), Vec::new()));
    }
    let pool = &app.db.pool;
    let room_list = rooms::public_rooms(pool, ctx.user.id, query).await?;
    let people = users::people(pool, query).await?;
    let unread: HashMap<i64, i64> = rooms::direct_unreads(pool, ctx.user.id)
        .await?
        .into_iter()
        .map(|d| (d.other_id, d.unread))
        .collect();
    let people = people
        .into_iter()
        .map(|p| {
            let n = unread.get(&p.id).copied().unwrap_or(0);
            (p, n)
        })
        .collect();
    Ok((room_list, people))
}

/// The whole page of a conversation (also what a failed no-JS send re-renders, with its error).
pub async fn page_response(
    app: &AppState,
    ctx: &Ctx,
    target: &Target,
    before: Option<i64>,
    composer: Option<(&str, &str)>,
) -> Result<Response, AppError> {
    let pool = &app.db.pool;
    let room = rooms::find_by_id(pool, target.room)
        .await?
        .ok_or(AppError::NotFound("This conversation no longer exists."))?;
    let msgs = match before {
        Some(b) => messages::before(pool, room.id, b, PAGE).await?,
        None => messages::latest(pool, room.id, PAGE).await?,
    };
    if before.is_none() {
        rooms::mark_read(pool, room.id, ctx.user.id, room.last_seq).await?;
    }
    let members = rooms::members(pool, room.id).await?;
    let (room_list, people) = sidebar_data(app, ctx, "").await?;
    let now = crate::now_ms();
    let older = msgs.first().is_some_and(|m| m.seq > 1);
    let conv = Conversation {
        title: target.title.clone(),
        base: target.base.clone(),
        topic: rooms::is_public(&room).then_some(room.topic.as_str()),
        members: &members,
        messages: &msgs,
        // The room was read before its messages, so its last_seq never runs ahead of them; a page
        // of history polls from its own end, so the newer messages follow it.
        last_seq: match before {
            Some(_) => msgs.last().map_or(0, |m| m.seq),
            None => msgs.last().map_or(0, |m| m.seq).max(room.last_seq),
        },
        now_ms: now,
    };
    let key = new_client_key();
    let (body, error) = composer.unwrap_or(("", ""));
    let composer = Composer {
        body,
        error: (!error.is_empty()).then_some(error),
        client_key: &key,
    };
    let side = Sidebar {
        me: &ctx.user.username,
        rooms: &room_list,
        people: &people,
        now_ms: now,
        query: "",
        current: &target.base,
    };
    let markup = page(
        &target.title,
        &ctx.viewer(),
        "page-conversation",
        chat::shell(
            chat::sidebar(&side, &ctx.csrf, None),
            chat::conversation(&conv, &composer, &ctx.csrf, older),
        ),
    );
    let mut resp = markup.into_response();
    if composer.error.is_some() {
        resp.set_status(StatusCode::UNPROCESSABLE_ENTITY);
    }
    Ok(resp)
}

#[derive(Deserialize)]
pub struct SendForm {
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub client_key: String,
}

/// Stores a message. The store and the wake-up run in their own task: once the insert has begun,
/// a client that hangs up cannot leave a committed message unannounced.
pub async fn send(
    app: &AppState,
    ctx: &Ctx,
    target: &Target,
    form: SendForm,
) -> Result<Response, AppError> {
    let parsed = MessageBody::parse(&form.body)
        .and_then(|body| Ok((body, ClientKey::parse(&form.client_key)?)));
    let (body, key) = match parsed {
        Ok(ok) => ok,
        Err(invalid) if ctx.htmx => {
            let fragment = html! { p.field-error { (invalid.0) } };
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, fragment).into_response());
        }
        Err(invalid) => {
            return page_response(app, ctx, target, None, Some((&form.body, invalid.0))).await;
        }
    };
    let (db, hub, room) = (app.db.clone(), app.hub.clone(), target.room);
    let (author, name) = (ctx.user.id, ctx.user.username.clone());
    let stored = tokio::spawn(async move {
        let turn = db.write_turn().await;
        let (message, fresh) = messages::insert(
            &db.pool,
            db.engine,
            room,
            (author, &name),
            &body,
            key.as_ref(),
        )
        .await?;
        drop(turn);
        if fresh {
            hub.published(&message);
        }
        Ok::<_, sqlx::Error>(message)
    })
    .await
    .map_err(|e| AppError::Internal(format!("send task: {e}")))??;
    if ctx.htmx {
        Ok((StatusCode::OK, chat::message(&stored)).into_response())
    } else {
        Ok(see_other(&target.base))
    }
}

#[derive(Deserialize)]
pub struct CursorQuery {
    pub after: Option<i64>,
    pub before: Option<i64>,
}

/// `?after=` long-polls; `?before=` pages back; neither gives the latest page.
pub async fn messages(
    app: &AppState,
    ctx: &Ctx,
    target: &Target,
    q: CursorQuery,
) -> Result<Response, AppError> {
    let (room, base) = (target.room, target.base.as_str());
    let html = match (q.after, q.before) {
        (Some(_), Some(_)) => {
            return Err(AppError::BadRequest(
                "Give either after or before, not both.",
            ));
        }
        (Some(after), None) => {
            // Everything about the request has been checked: wait outside the endpoint chain.
            let (hub, hold) = (app.hub.clone(), app.settings.poll_timeout());
            let (base, htmx) = (base.to_owned(), ctx.htmx);
            return Ok(held(async move {
                // A page whose cursor the room has never reached reloads (htmx does that for
                // HX-Refresh), rather than wait for messages it would then miss.
                if htmx && hub.cursor_is_ahead(room, after).await.unwrap_or(false) {
                    return Response::builder()
                        .header("HX-Refresh", "true")
                        .header(header::CACHE_CONTROL, "no-store")
                        .finish();
                }
                match hub.poll(room, after.max(0), hold).await {
                    Ok(found) => poll_answer(&found, &base, htmx),
                    Err(err) => AppError::from(err).as_response(),
                }
            }));
        }
        (None, Some(before)) => {
            let mut rows = messages::before(&app.db.pool, room, before, PAGE + 1).await?;
            if rows.is_empty() {
                return Ok(no_content());
            }
            let more = rows.len() as i64 > PAGE;
            if more {
                rows.remove(0);
            }
            chat::older_messages(base, &rows, more).into_string()
        }
        (None, None) => {
            let rows = messages::latest(&app.db.pool, room, PAGE).await?;
            chat::older_messages(base, &rows, false).into_string()
        }
    };
    Ok(fragment(html))
}

/// A long-poll's answer: the messages found (with the next poller for htmx), or 204 when the
/// wait ended with none.
fn poll_answer(found: &[Arc<Rendered>], base: &str, htmx: bool) -> Response {
    let Some(last) = found.last().map(|m| m.seq) else {
        return no_content();
    };
    let mut out = String::with_capacity(found.iter().map(|m| m.html.len()).sum::<usize>() + 200);
    for m in found {
        out.push_str(&m.html);
    }
    if htmx {
        out.push_str(&chat::poller(base, last).into_string());
    }
    fragment(out)
}

fn fragment(html: String) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(html)
}

fn no_content() -> Response {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(header::CACHE_CONTROL, "no-store")
        .finish()
}

#[derive(Deserialize)]
pub struct ReadForm {
    pub seq: i64,
}

/// The viewer has seen the conversation up to `seq` (sent by app.js while the page is visible).
pub async fn mark_read(
    app: &AppState,
    ctx: &Ctx,
    target: &Target,
    form: ReadForm,
) -> Result<Response, AppError> {
    rooms::mark_read(&app.db.pool, target.room, ctx.user.id, form.seq).await?;
    Ok(no_content())
}
