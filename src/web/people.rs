//! The app shell and its lists: home, people, rooms, and the search that filters them.

use maud::html;
use poem::web::{Data, Query};
use poem::{IntoResponse, Response, Route, get, handler};
use serde::Deserialize;

use super::conversation::sidebar_data;
use super::error::AppError;
use super::{AppState, Ctx};
use crate::store::rooms;
use crate::views::chat::{self, Sidebar};
use crate::views::page;

/// Adds this feature's routes.
pub fn routes(route: Route) -> Route {
    route
        .at("/", get(home))
        .at("/sidebar", get(sidebar))
        .at("/people", get(people_list))
}

#[derive(Deserialize, Default)]
pub struct Search {
    #[serde(default)]
    q: String,
    #[serde(default)]
    current: String,
}

impl Search {
    fn query(&self) -> &str {
        self.q.trim()
    }
}

#[handler]
async fn home(
    Data(app): Data<&AppState>,
    ctx: Ctx,
    Query(search): Query<Search>,
) -> Result<Response, AppError> {
    home_response(app, &ctx, search.query(), None).await
}

/// The home page; a rejected "open or create a room" form comes back here with its error (422).
pub async fn home_response(
    app: &AppState,
    ctx: &Ctx,
    query: &str,
    room_error: Option<(&str, &str)>,
) -> Result<Response, AppError> {
    let (rooms, people) = sidebar_data(app, ctx, query).await?;
    let side = Sidebar {
        me: &ctx.user.username,
        rooms: &rooms,
        people: &people,
        now_ms: crate::now_ms(),
        query,
        current: "/",
    };
    let markup = page(
        "Home",
        &ctx.viewer(),
        "page-home",
        chat::shell(
            chat::sidebar(&side, &ctx.csrf, room_error),
            chat::welcome(&ctx.user.username),
        ),
    );
    let mut resp = markup.into_response();
    if room_error.is_some() {
        resp.set_status(poem::http::StatusCode::UNPROCESSABLE_ENTITY);
    }
    Ok(resp)
}

/// Which list a fragment request wants.
enum List {
    Both,
    People,
    Rooms,
}

/// A list as an htmx fragment; without htmx, the home page filtered by the same search.
async fn list_response(
    app: &AppState,
    ctx: &Ctx,
    search: &Search,
    which: List,
) -> Result<Response, AppError> {
    if !ctx.htmx {
        return home_response(app, ctx, search.query(), None).await;
    }
    let (rooms, people) = sidebar_data(app, ctx, search.query()).await?;
    let current = if search.current.starts_with('/') {
        search.current.as_str()
    } else {
        "/"
    };
    let side = Sidebar {
        me: &ctx.user.username,
        rooms: &rooms,
        people: &people,
        now_ms: crate::now_ms(),
        query: search.query(),
        current,
    };
    let markup = match which {
        List::Both => html! {
            (chat::sidebar_lists(&side))
            // The sidebar's refresh also brings the open conversation's header up to date.
            @if let Some((topic, members)) = open_header(app, ctx, current).await {
                (chat::header_update(topic.as_deref(), &members, side.now_ms))
            }
        },
        List::People => chat::people_list(&side),
        List::Rooms => chat::room_list(&side),
    };
    Ok(markup.into_response())
}

/// The topic (public rooms only) and members of the conversation at `url` (`/rooms/{name}` or
/// `/dm/{username}`), checked as opening it would be; `None` for any other page, or one the
/// viewer may not see.
async fn open_header(
    app: &AppState,
    ctx: &Ctx,
    url: &str,
) -> Option<(Option<String>, Vec<rooms::Member>)> {
    let target = if let Some(name) = url.strip_prefix("/rooms/") {
        super::rooms::open(app, name).await
    } else if let Some(username) = url.strip_prefix("/dm/") {
        super::direct::open(app, ctx, username).await
    } else {
        return None;
    };
    let target = target.ok()?;
    let pool = &app.db.pool;
    let read = async {
        let room = rooms::find_by_id(pool, target.room).await?;
        let members = rooms::members(pool, target.room).await?;
        Ok::<_, sqlx::Error>((room, members))
    };
    match read.await {
        Ok((Some(room), members)) => {
            let topic = rooms::is_public(&room).then(|| room.topic.clone());
            Some((topic, members))
        }
        Ok((None, _)) => None,
        Err(err) => {
            tracing::warn!(%err, "could not read a conversation's header");
            None
        }
    }
}

/// Both lists, for the live refresh and the search box.
#[handler]
async fn sidebar(
    Data(app): Data<&AppState>,
    ctx: Ctx,
    Query(search): Query<Search>,
) -> Result<Response, AppError> {
    list_response(app, &ctx, &search, List::Both).await
}

#[handler]
pub async fn people_list(
    Data(app): Data<&AppState>,
    ctx: Ctx,
    Query(search): Query<Search>,
) -> Result<Response, AppError> {
    list_response(app, &ctx, &search, List::People).await
}

#[handler]
pub async fn room_list(
    Data(app): Data<&AppState>,
    ctx: Ctx,
    Query(search): Query<Search>,
) -> Result<Response, AppError> {
    list_response(app, &ctx, &search, List::Rooms).await
}
