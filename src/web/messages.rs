//! Everything done to a conversation's messages: sending, live delivery and paging, read
//! positions, and the changes people make afterwards (edit, delete, react). Every handler takes
//! a [`Conv`], so the conversation is resolved and the viewer's right to it checked before the
//! handler runs.

use std::future::Future;
use std::sync::Arc;

use maud::Markup;
use poem::error::ResponseError;
use poem::http::{HeaderValue, StatusCode, header};
use poem::web::{Form, Query};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;

use super::conversation::{Conv, PAGE, Window, message_id, page_response};
use super::error::AppError;
use super::held::held;
use super::sidebar::sidebar_oob;
use super::{AppState, Ctx, see_other, with_status};
use crate::domain::{ClientKey, Emoji, MessageBody, mentioned_names};
use crate::realtime::{Listener, Rendered};
use crate::signals::{Cursor, Signal};
use crate::store::messages::{self, Change, Draft, Message};
use crate::store::rooms;
use crate::views::chat;
use crate::views::messages as views;

#[derive(Deserialize)]
pub struct SendForm {
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub client_key: String,
}

/// The people a message by `author` names (not the author) who may read its conversation.
pub(super) async fn mentions_in(
    app: &AppState,
    room: i64,
    author: i64,
    body: &MessageBody,
) -> Result<Vec<messages::Mention>, AppError> {
    let names = mentioned_names(body.as_str());
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut named = rooms::readers_named(&app.db.pool, room, &names).await?;
    named.retain(|m| m.id != author);
    Ok(named)
}

/// `POST {conv}/messages`. The store and the wake-up run in their own task: once the insert has
/// begun, a client that hangs up cannot leave a committed message unannounced.
#[handler]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn send(
    Conv { ctx, target }: Conv,
    Form(form): Form<SendForm>,
) -> Result<Response, AppError> {
    let app = &ctx.app;
    let parsed = MessageBody::parse(&form.body)
        .and_then(|body| Ok((body, ClientKey::parse(&form.client_key)?)));
    let (body, key) = match parsed {
        Ok(ok) => ok,
        Err(invalid) if ctx.htmx => {
            return Ok(unprocessable(views::field_error(invalid.0)));
        }
        Err(invalid) => {
            return page_response(
                app,
                &ctx,
                &target,
                Window::Latest,
                Some((&form.body, invalid.0)),
            )
            .await;
        }
    };
    super::limits::take(
        &app.limits.messages,
        &ctx.user.id,
        "You are sending messages faster than Parley takes them.",
    )?;
    let mentions = mentions_in(app, target.room, ctx.user.id, &body).await?;
    let (db, hub, room) = (app.db.clone(), app.hub.clone(), target.room);
    let me = ctx.user.clone();
    let stored = tokio::spawn(async move {
        let turn = db.write_turn().await;
        let draft = Draft {
            client_key: key.as_ref(),
            mentions: &mentions,
            announce_after: hub.announces(),
            ..Draft::text(room, me.author(), &body)
        };
        let (message, fresh) = messages::insert(db.sends(), db.engine, &draft).await?;
        drop(turn);
        if fresh && draft.announced_by_sender(db.engine) {
            hub.announce(room, message.seq);
        }
        if fresh {
            hub.joined(room, me.id);
            hub.published(&Change::New(message.clone()));
        }
        Ok::<_, sqlx::Error>(message)
    })
    .await
    .map_err(|e| AppError::Internal(Box::new(e)))??;
    app.metrics.sends.inc();
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
    /// Pages forward (no hold) from an older window, up to `until` when given.
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// The page's sidebar is as of this time (unix ms): the feed answers what changed since.
    pub t: Option<i64>,
    /// The call signals the page has seen (see `signals::Cursor`); absent: it takes no calls.
    pub s: Option<String>,
}

/// `GET {conv}/messages`: `?after=` long-polls; `?before=` pages back; `?since=` (with
/// `&until=`) pages forward without holding; none of them gives the latest page.
#[handler]
pub async fn list(
    req: &Request,
    Conv { ctx, target }: Conv,
    Query(q): Query<CursorQuery>,
) -> Result<Response, AppError> {
    let app = &ctx.app;
    let (room, base) = (target.room, target.base.as_str());
    let html = match (q.after, q.before, q.since) {
        (Some(after), None, None) => {
            return Ok(hold(req, &ctx, Some((room, base)), after, q.t, q.s));
        }
        (None, None, Some(since)) => {
            let until = q.until.unwrap_or(i64::MAX);
            // Nothing newer (all of it deleted meanwhile): an empty page, which takes the
            // loader away (htmx would leave it for a 204, a link that does nothing).
            let mut rows = messages::after(&app.db.pool, room, since, until, PAGE + 1).await?;
            let more = rows.len() as i64 > PAGE;
            rows.truncate(PAGE as usize);
            chat::newer_messages(base, &rows, more.then_some(until), &ctx.reader()).into_string()
        }
        (None, Some(before), None) => {
            let mut rows = messages::before(&app.db.pool, room, before, PAGE + 1).await?;
            if rows.is_empty() {
                return Ok(no_content());
            }
            let more = rows.len() as i64 > PAGE;
            if more {
                rows.remove(0);
            }
            chat::older_messages(base, &rows, more, &ctx.reader()).into_string()
        }
        (None, None, None) => {
            let rows = messages::latest(&app.db.pool, room, PAGE).await?;
            chat::older_messages(base, &rows, false, &ctx.reader()).into_string()
        }
        _ => {
            return Err(AppError::BadRequest(
                "Give one of after, before and since, not several.",
            ));
        }
    };
    Ok(fragment(html))
}

#[derive(Deserialize)]
pub struct FeedQuery {
    pub t: Option<i64>,
    pub s: Option<String>,
}

/// `GET /feed?t=`: the long-poll of a page with no conversation open; it answers when the
/// person's sidebar changes.
#[handler]
pub async fn feed(req: &Request, ctx: Ctx, Query(q): Query<FeedQuery>) -> Response {
    hold(req, &ctx, None, 0, q.t, q.s)
}

/// A held long-poll for a conversation's changes (`conv`: its room and URL) and the person's own
/// feed. Everything about the request has been checked: it waits outside the endpoint chain.
///
/// One person (or one address) holds only so many at once (`--max-polls-per-user`, a tab's
/// worth each): past that a poll answers at once with 429 and never waits, so no account can
/// take every connection the server has.
fn hold(
    req: &Request,
    ctx: &Ctx,
    conv: Option<(i64, &str)>,
    after: i64,
    t: Option<i64>,
    s: Option<String>,
) -> Response {
    let addr = super::client_network(req, &ctx.app);
    let Some(place) = ctx.app.limits.poll_place(ctx.user.id, addr) else {
        return too_many_polls();
    };
    let poll = Poll {
        user: ctx.user.id,
        revision: ctx.user.revision,
        current_while: None,
        htmx: ctx.htmx,
        conv: conv.map(|(room, base)| (room, Arc::from(base))),
        after,
        t,
        s,
    };
    held(wait(ctx.app.clone(), place, poll))
}

/// A long-poll that has passed every check, whichever way it came in (the endpoint chain, or
/// `repoll`'s short way): whose it is and what it waits for.
pub struct Poll {
    pub user: i64,
    /// The user's revocation count when their login was checked (`CurrentUser::revision`).
    pub revision: u64,
    /// Revocations of anyone's sessions in all (`Hub::revocations_in_all`) when `revision` was
    /// known to be current, if it was: while that count stands still, so does the user's, and
    /// the answer need not look it up under the hub's lock.
    pub current_while: Option<u64>,
    pub htmx: bool,
    /// The conversation's room and URL; none for the feed of a page without one.
    pub conv: Option<(i64, Arc<str>)>,
    pub after: i64,
    /// `?t=`: when the page got its sidebar.
    pub t: Option<i64>,
    /// `?s=`: the call signals the page has seen.
    pub s: Option<String>,
}

/// The answer to `poll`, once there is one. `place` is its place under the caps, held while
/// it waits.
pub fn wait(
    app: AppState,
    place: super::limits::PollPlace,
    poll: Poll,
) -> impl Future<Output = Response> + Send + 'static {
    let hold = app.settings.poll_timeout();
    let Poll {
        user,
        revision,
        current_while,
        htmx,
        conv,
        after,
        t,
        s,
    } = poll;
    let room = conv.as_ref().map(|&(room, _)| room);
    let base = conv.map(|(_, base)| base);
    // Only a page (which says when it got its sidebar) is sent the sidebar.
    let feed_since = match (htmx, t) {
        (true, Some(t)) => t,
        _ => i64::MAX,
    };
    // Call signals ride on a page's feed.
    let signals = s
        .filter(|_| feed_since != i64::MAX)
        .map(|s| Box::new(Cursor::parse(&s)));
    async move {
        let _place = place;
        let hub = &app.hub;
        let who = Listener {
            user,
            // htmx reloads the page for HX-Refresh.
            reload_ahead: htmx,
            feed_since,
            signals,
        };
        let answer = match hub.poll(room, after.max(0), who, hold).await {
            Ok(answer) => answer,
            Err(err) => return super::error::note(AppError::from(err).as_response()),
        };
        if answer.reload {
            return Response::builder()
                .header("HX-Refresh", "true")
                .header(header::CACHE_CONTROL, NO_STORE)
                .finish();
        }
        // The session was good when the poll began; if the user's sessions were revoked since
        // (logged out, deactivated), the poll answers with nothing, and the next one is checked
        // afresh.
        let revoked = match current_while {
            Some(n) if hub.revocations_in_all() == n => false,
            _ => hub.revocation(user) != revision,
        };
        if revoked {
            return no_content();
        }
        if answer.changes.is_empty() && !answer.feed && answer.signals.is_empty() {
            return no_content();
        }
        if !answer.changes.is_empty() {
            app.metrics.deliveries.inc();
        }
        let mut out =
            String::with_capacity(answer.changes.iter().map(|m| m.html.len()).sum::<usize>() + 200);
        push_changes(&mut out, &answer.changes);
        let mut t = feed_since;
        if answer.feed {
            t = crate::now_ms();
            let current = base.as_deref().unwrap_or("/");
            match Box::pin(sidebar_oob(&app, user, current)).await {
                Ok(sidebar) => out.push_str(&sidebar.into_string()),
                Err(err) => return super::error::note(err.as_response()),
            }
        }
        if htmx {
            let calls = chat::Calls {
                cursor: answer.signal_cursor.as_ref().map(ToString::to_string),
                signals: (!answer.signals.is_empty()).then(|| signal_list(&answer.signals)),
            };
            let conv = base.as_deref().map(|base| (base, answer.cursor));
            chat::push_poller(&mut out, conv, t, &calls);
        }
        fragment(out)
    }
}

/// Signals as one JSON array (each is a JSON object already).
fn signal_list(signals: &[Arc<Signal>]) -> String {
    let mut json = String::from("[");
    for (i, signal) in signals.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&signal.json);
    }
    json.push(']');
    json
}

fn push_changes(out: &mut String, changes: &[Arc<Rendered>]) {
    for m in changes {
        out.push_str(&m.html);
    }
}

fn fragment(html: String) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, HTML)
        .header(header::CACHE_CONTROL, NO_STORE)
        .body(html)
}

/// Header values made once: from text, each would be parsed and copied on every answer.
const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// A poll beyond the caps: answered at once, and the page's poller backs off before the next.
fn too_many_polls() -> Response {
    let text = "Too many pages are waiting for messages at once: close some tabs.";
    let mut resp = super::error::failure(StatusCode::TOO_MANY_REQUESTS, "Slow down", text);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    resp
}

fn no_content() -> Response {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header(header::CACHE_CONTROL, NO_STORE)
        .finish()
}

fn unprocessable(markup: Markup) -> Response {
    with_status(markup, StatusCode::UNPROCESSABLE_ENTITY)
}

#[derive(Deserialize)]
pub struct ReadForm {
    pub seq: i64,
}

/// `POST {conv}/read`: the viewer has seen the conversation up to `seq` (sent by app.js while
/// the page is visible).
#[handler]
pub async fn read(
    Conv { ctx, target }: Conv,
    Form(form): Form<ReadForm>,
) -> Result<Response, AppError> {
    if rooms::mark_read(&ctx.app.db.pool, target.room, ctx.user.id, form.seq).await? {
        ctx.app.hub.changed_for(ctx.user.id);
    }
    Ok(no_content())
}

/// The message a request names, loaded; 404 when the conversation has none by that number.
async fn load(req: &Request, conv: &Conv) -> Result<Message, AppError> {
    let id = message_id(req)?;
    messages::find(&conv.ctx.app.db.pool, conv.target.room, id)
        .await?
        .ok_or(AppError::NotFound(
            "There is no such message in this conversation.",
        ))
}

/// The message, if it is the viewer's own: only its author may edit or delete it.
async fn own(req: &Request, conv: &Conv) -> Result<Message, AppError> {
    let message = load(req, conv).await?;
    if message.author_id != conv.ctx.user.id {
        return Err(AppError::Forbidden("Only its author can change a message."));
    }
    if message.kind == messages::CALL_RECORD {
        return Err(AppError::Forbidden("A call's record cannot be changed."));
    }
    if !message.kind.is_empty() {
        return Err(AppError::Forbidden("Parley's records cannot be changed."));
    }
    Ok(message)
}

/// Where a no-JS form goes back to: the message in its conversation.
fn back_to(conv: &Conv, seq: i64) -> Response {
    see_other(&format!("{}#m-{seq}", conv.target.base))
}

/// `GET {conv}/messages/{id}`: one message (htmx puts it back after a cancelled edit).
#[handler]
pub async fn show(req: &Request, conv: Conv) -> Result<Response, AppError> {
    let message = load(req, &conv).await?;
    if !conv.ctx.htmx {
        return Ok(back_to(&conv, message.seq));
    }
    Ok(chat::message(&message).into_response())
}

/// `GET {conv}/messages/{id}/actions`: what the viewer may do with a message (everyone reacts;
/// its author also edits and deletes). A small menu for htmx, a page without.
#[handler]
pub async fn actions(req: &Request, conv: Conv) -> Result<Response, AppError> {
    let message = load(req, &conv).await?;
    let mine = message.author_id == conv.ctx.user.id && message.kind != messages::CALL_RECORD;
    let menu = views::actions(&conv.target.base, &message, mine, &conv.ctx.csrf);
    if conv.ctx.htmx {
        return Ok(menu.into_response());
    }
    Ok(views::page_of(
        &conv.ctx.viewer(),
        &conv.target.title,
        &conv.target.base,
        &message,
        menu,
    )
    .into_response())
}

#[derive(Deserialize)]
pub struct EditForm {
    #[serde(default)]
    pub body: String,
}

/// `GET {conv}/messages/{id}/edit`: the edit form, in place of the message (htmx) or as a page.
#[handler]
pub async fn edit_form(req: &Request, conv: Conv) -> Result<Response, AppError> {
    let message = own(req, &conv).await?;
    Ok(edit_response(
        &conv,
        &message,
        &message.body,
        None,
        StatusCode::OK,
    ))
}

fn edit_response(
    conv: &Conv,
    message: &Message,
    body: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let form = views::edit_form(&conv.target.base, message, body, error, &conv.ctx.csrf);
    let markup = if conv.ctx.htmx {
        form
    } else {
        views::page_of(
            &conv.ctx.viewer(),
            &conv.target.title,
            &conv.target.base,
            message,
            form,
        )
    };
    with_status(markup, status)
}

/// `POST {conv}/messages/{id}/edit {body}`: the same rules as a send; the change reaches every
/// open page of the conversation, marked "edited".
#[handler]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn edit(
    req: &Request,
    conv: Conv,
    Form(form): Form<EditForm>,
) -> Result<Response, AppError> {
    let message = own(req, &conv).await?;
    let body = match MessageBody::parse(&form.body) {
        Ok(body) => body,
        // The form again with its error: in place of the message (htmx) or as a page.
        Err(invalid) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return Ok(edit_response(
                &conv,
                &message,
                &form.body,
                Some(invalid.0),
                status,
            ));
        }
    };
    let edited = edit_message(&conv.ctx.app, conv.target.room, &message, body)
        .await?
        .ok_or(AppError::NotFound(
            "There is no such message in this conversation.",
        ))?;
    if conv.ctx.htmx {
        return Ok(chat::message(&edited).into_response());
    }
    Ok(back_to(&conv, edited.seq))
}

/// Gives `message` the text `body` and tells every open page (also what staff edits do): the
/// message as it now is, or None when it is gone.
pub async fn edit_message(
    app: &AppState,
    room: i64,
    message: &Message,
    body: MessageBody,
) -> Result<Option<Message>, AppError> {
    let mentions = mentions_in(app, room, message.author_id, &body).await?;
    let (db, hub, seq) = (app.db.clone(), app.hub.clone(), message.seq);
    let edited = tokio::spawn(async move {
        let turn = db.write_turn().await;
        let edited = messages::edit(&db.pool, room, seq, &body, &mentions).await?;
        drop(turn);
        if let Some(edited) = &edited {
            hub.published(&Change::Updated(edited.message.clone()));
            for user in &edited.named {
                hub.changed_for(*user);
            }
        }
        Ok::<_, sqlx::Error>(edited.map(|e| e.message))
    })
    .await
    .map_err(|e| AppError::Internal(Box::new(e)))??;
    if edited.is_some() {
        app.metrics.edits.inc();
    }
    Ok(edited)
}

/// `GET {conv}/messages/{id}/delete`: "Delete this message?", inline (htmx) or as a page.
#[handler]
pub async fn delete_form(req: &Request, conv: Conv) -> Result<Response, AppError> {
    let message = own(req, &conv).await?;
    let confirm = views::delete_confirm(&conv.target.base, &message, &conv.ctx.csrf);
    if conv.ctx.htmx {
        return Ok(confirm.into_response());
    }
    Ok(views::page_of(
        &conv.ctx.viewer(),
        &conv.target.title,
        &conv.target.base,
        &message,
        confirm,
    )
    .into_response())
}

/// `POST {conv}/messages/{id}/delete`: gone for good, from every open page too.
#[handler]
pub async fn delete(req: &Request, conv: Conv) -> Result<Response, AppError> {
    let message = own(req, &conv).await?;
    delete_message(&conv.ctx.app, conv.target.room, message.seq).await?;
    if conv.ctx.htmx {
        return Ok(StatusCode::OK.into_response());
    }
    Ok(see_other(&conv.target.base))
}

/// Deletes message `seq` of `room` and tells every open page (also what staff deletions do);
/// its files' bytes go after it.
pub async fn delete_message(app: &AppState, room: i64, seq: i64) -> Result<bool, AppError> {
    let (db, hub, files) = (app.db.clone(), app.hub.clone(), app.files.clone());
    let deleted = tokio::spawn(async move {
        let turn = db.write_turn().await;
        let deleted = messages::delete(&db.pool, room, seq).await?;
        drop(turn);
        let Some(deleted) = deleted else {
            return Ok(false);
        };
        hub.published(&deleted.change);
        files.delete(&deleted.files).await;
        Ok::<_, sqlx::Error>(true)
    })
    .await
    .map_err(|e| AppError::Internal(Box::new(e)))??;
    Ok(deleted)
}

#[derive(Deserialize)]
pub struct ReactionForm {
    /// A button of the picker (or a reaction's chip).
    #[serde(default)]
    pub emoji: String,
    /// The picker's "any emoji" field.
    #[serde(default)]
    pub other: String,
}

impl ReactionForm {
    fn chosen(&self) -> &str {
        if self.emoji.is_empty() {
            &self.other
        } else {
            &self.emoji
        }
    }
}

/// `GET {conv}/messages/{id}/react`: the emoji picker, for people without JavaScript.
#[handler]
pub async fn react_form(req: &Request, conv: Conv) -> Result<Response, AppError> {
    let message = load(req, &conv).await?;
    let picker = views::picker(&conv.target.base, &message, None, &conv.ctx.csrf);
    if conv.ctx.htmx {
        return Ok(picker.into_response());
    }
    Ok(views::page_of(
        &conv.ctx.viewer(),
        &conv.target.title,
        &conv.target.base,
        &message,
        picker,
    )
    .into_response())
}

/// `POST {conv}/messages/{id}/reactions {emoji}`: adds the viewer's reaction, or takes it away
/// when they had made it.
#[handler]
pub async fn react(
    req: &Request,
    conv: Conv,
    Form(form): Form<ReactionForm>,
) -> Result<Response, AppError> {
    let message = load(req, &conv).await?;
    let emoji = match Emoji::parse(form.chosen()) {
        Ok(emoji) => emoji,
        Err(invalid) => {
            let picker =
                views::picker(&conv.target.base, &message, Some(invalid.0), &conv.ctx.csrf);
            if conv.ctx.htmx {
                // The picker again, with its error, where it was (app.js swaps it in).
                return Ok(unprocessable(picker));
            }
            let page = views::page_of(
                &conv.ctx.viewer(),
                &conv.target.title,
                &conv.target.base,
                &message,
                picker,
            );
            return Ok(unprocessable(page));
        }
    };
    let app = &conv.ctx.app;
    let (db, hub, room, seq, user) = (
        app.db.clone(),
        app.hub.clone(),
        conv.target.room,
        message.seq,
        conv.ctx.user.id,
    );
    let change = tokio::spawn(async move {
        let turn = db.write_turn().await;
        let change = messages::toggle_reaction(&db.pool, room, seq, user, &emoji).await?;
        drop(turn);
        if let Some(change) = &change {
            hub.published(change);
        }
        Ok::<_, sqlx::Error>(change)
    })
    .await
    .map_err(|e| AppError::Internal(Box::new(e)))??;
    let Some(Change::Reacted { reactions, .. }) = change else {
        return Err(AppError::NotFound(
            "There is no such message in this conversation.",
        ));
    };
    if !conv.ctx.htmx {
        return Ok(back_to(&conv, seq));
    }
    // The whole message: before its first reaction it has no reactions element to replace.
    let message = Message {
        reactions,
        ..message
    };
    Ok(chat::message(&message).into_response())
}
