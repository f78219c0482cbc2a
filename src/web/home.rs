//! The app shell and the person's own things: the home page, the sidebar and its lists (also
//! live, through the feed), the search that filters them, their mentions and their style.

use maud::html;
use poem::http::{StatusCode, header};
use poem::web::Query;
use poem::{IntoResponse, Response, handler};
use serde::Deserialize;

use super::conversation::existing;
use super::error::AppError;
use super::sidebar::sidebar_data;
use super::{Ctx, with_status};
use crate::store::{messages, rooms};
use crate::views::chat;
use crate::views::{home as views, page};

#[derive(Deserialize, Default)]
pub struct Search {
    #[serde(default)]
    q: String,
    #[serde(default)]
    current: String,
}

impl Search {
    pub fn query(&self) -> &str {
        self.q.trim()
    }
}

#[handler]
pub async fn home(ctx: Ctx, Query(search): Query<Search>) -> Result<Response, AppError> {
    home_response(&ctx, search.query(), None).await
}

/// The home page; a rejected "open or create a room" form comes back here with its error (422).
pub async fn home_response(
    ctx: &Ctx,
    query: &str,
    room_error: Option<(&str, &str)>,
) -> Result<Response, AppError> {
    let data = sidebar_data(&ctx.app, ctx.user.id, query).await?;
    let side = data.sidebar(&ctx.user.username, query, "/");
    let markup = page(
        "Home",
        &ctx.viewer(),
        "page-home",
        chat::shell(
            chat::sidebar(&side, &ctx.csrf, room_error),
            html! { (chat::welcome(&ctx.user.username)) (chat::feed_poller(data.read_at, &chat::Calls::page())) },
        ),
    );
    let status = match room_error {
        Some(_) => StatusCode::UNPROCESSABLE_ENTITY,
        None => StatusCode::OK,
    };
    Ok(with_status(markup, status))
}

/// Which list a fragment request wants.
pub enum List {
    Both,
    People,
    Rooms,
}

/// A list as an htmx fragment; without htmx, the home page filtered by the same search.
pub async fn list_response(ctx: &Ctx, search: &Search, which: List) -> Result<Response, AppError> {
    if !ctx.htmx {
        return home_response(ctx, search.query(), None).await;
    }
    let app = &ctx.app;
    let data = sidebar_data(app, ctx.user.id, search.query()).await?;
    let current = if search.current.starts_with('/') {
        search.current.as_str()
    } else {
        "/"
    };
    let side = data.sidebar(&ctx.user.username, search.query(), current);
    let markup = match which {
        List::Both => html! {
            (chat::sidebar_lists(&side, false))
            // The sidebar's refresh also brings the open conversation's header up to date.
            @if let Some((topic, members)) = open_header(ctx, current).await {
                (chat::header_update(topic.as_deref(), &members, side.now_ms))
            }
        },
        List::People => chat::people_list(&side),
        List::Rooms => chat::room_list(&side),
    };
    Ok(markup.into_response())
}

/// The topic (public rooms only) and members of the conversation at `url`, checked as opening
/// it would be; `None` for any other page, or one the viewer may not see.
async fn open_header(ctx: &Ctx, url: &str) -> Option<(Option<String>, Vec<rooms::Member>)> {
    if !url.starts_with("/rooms/") && !url.starts_with("/dm/") {
        return None;
    }
    let target = existing(&ctx.app, ctx, url).await.ok().flatten()?;
    let pool = &ctx.app.db.pool;
    let read = async {
        let room = rooms::find_by_id(pool, target.room).await?;
        let members = rooms::members(pool, target.room).await?;
        Ok::<_, sqlx::Error>((room, members))
    };
    match read.await {
        Ok((Some(room), members)) => {
            let topic = (room.kind == rooms::RoomKind::Public).then(|| room.topic.clone());
            Some((topic, members))
        }
        Ok((None, _)) => None,
        Err(err) => {
            tracing::warn!(%err, "could not read a conversation's header");
            None
        }
    }
}

/// `GET /sidebar`: both lists, for the search box and the slow fallback refresh.
#[handler]
pub async fn sidebar(ctx: Ctx, Query(search): Query<Search>) -> Result<Response, AppError> {
    list_response(&ctx, &search, List::Both).await
}

/// `GET /people`.
#[handler]
pub async fn people_list(ctx: Ctx, Query(search): Query<Search>) -> Result<Response, AppError> {
    list_response(&ctx, &search, List::People).await
}

/// `GET /mentions`: the messages that name the viewer, newest first, each linking to itself in
/// its conversation.
#[handler]
pub async fn mentions(ctx: Ctx) -> Result<Response, AppError> {
    let found = messages::mentioning(&ctx.app.db.pool, ctx.user.id, 100).await?;
    let list = views::mentions(&found);
    if ctx.htmx {
        return Ok(list.into_response());
    }
    own_page(&ctx, "Mentions", "/mentions", "", list).await
}

/// A page of the person's own (no conversation open): the sidebar, filtered by `query`, and
/// `pane`, with the feed's poller.
pub async fn own_page(
    ctx: &Ctx,
    title: &str,
    current: &str,
    query: &str,
    pane: maud::Markup,
) -> Result<Response, AppError> {
    let data = sidebar_data(&ctx.app, ctx.user.id, query).await?;
    let side = data.sidebar(&ctx.user.username, query, current);
    let class = format!("page-{}", current.trim_start_matches('/'));
    let markup = page(
        title,
        &ctx.viewer(),
        &class,
        chat::shell(
            chat::sidebar(&side, &ctx.csrf, None),
            html! { (pane) (chat::feed_poller(data.read_at, &chat::Calls::page())) },
        ),
    );
    Ok(markup.into_response())
}

/// `GET /me.css`: the viewer's own style. Messages are rendered once for everyone, so what
/// depends on who is looking (your mentions highlighted, your reactions marked) is styled here.
#[handler]
pub async fn my_style(ctx: Ctx) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/css; charset=utf-8")
        .header(header::CACHE_CONTROL, "private, no-cache")
        .body(views::my_style(&ctx.user.username))
}
