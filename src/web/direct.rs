//! Private conversations between two people. `/dm/{username}` always means the viewer's own
//! conversation with that person, so no URL can reach someone else's: the privacy check is the
//! room look-up itself, on every route.

use poem::web::{Data, Form, Path, Query};
use poem::{Response, Route, get, handler, post};

use super::conversation::{self, CursorQuery, Open, PageQuery, ReadForm, SendForm};
use super::error::AppError;
use super::{AppState, Ctx};
use crate::store::{rooms, users};

/// Adds this feature's routes.
pub fn routes(route: Route) -> Route {
    route
        .at("/dm/:username", get(dm_page))
        .at("/dm/:username/messages", get(messages).post(send))
        .at("/dm/:username/read", post(read))
}

async fn open(app: &AppState, ctx: &Ctx, username: &str) -> Result<Open, AppError> {
    const NOBODY: AppError = AppError::NotFound("There is nobody with that name to talk to.");
    let other = users::find_by_name(&app.db.pool, username).await?.filter(|u| u.is_active).ok_or(NOBODY)?;
    if other.id == ctx.user.id {
        return Err(NOBODY);
    }
    let room = rooms::create_or_get_direct(&app.db.pool, ctx.user.id, other.id).await?;
    Ok(Open { title: other.username.clone(), base: format!("/dm/{}", other.username), room })
}

#[handler]
async fn dm_page(
    Data(app): Data<&AppState>,
    ctx: Ctx,
    Path(username): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Response, AppError> {
    let open = open(app, &ctx, &username).await?;
    conversation::page_response(app, &ctx, &open, q.before, None).await
}

#[handler]
async fn send(Data(app): Data<&AppState>, ctx: Ctx, Path(username): Path<String>, Form(form): Form<SendForm>) -> Result<Response, AppError> {
    let open = open(app, &ctx, &username).await?;
    conversation::send(app, &ctx, &open, form).await
}

#[handler]
async fn messages(
    Data(app): Data<&AppState>,
    ctx: Ctx,
    Path(username): Path<String>,
    Query(q): Query<CursorQuery>,
) -> Result<Response, AppError> {
    let key = format!("/dm/{}", username.to_ascii_lowercase());
    let (room, base) = match app.directory.get(ctx.user.id, &key) {
        Some(room) => (room, format!("/dm/{username}")),
        None => {
            let open = open(app, &ctx, &username).await?;
            app.directory.put(ctx.user.id, &key, open.room.id);
            (open.room.id, open.base)
        }
    };
    conversation::messages(app, &ctx, room, &base, q).await
}

#[handler]
async fn read(Data(app): Data<&AppState>, ctx: Ctx, Path(username): Path<String>, Form(form): Form<ReadForm>) -> Result<Response, AppError> {
    let open = open(app, &ctx, &username).await?;
    conversation::mark_read(app, &ctx, open.room.id, form).await
}
