//! Private conversations between two people. `/dm/{username}` always means the viewer's own
//! conversation with that person, so no URL can reach someone else's: the privacy check is the
//! room look-up itself, on every route.

use poem::web::{Data, Form, Path, Query};
use poem::{Response, Route, get, handler, post};

use super::conversation::{self, CursorQuery, PageQuery, ReadForm, SendForm, Target};
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

/// The viewer's own conversation with `username`, created on first use. Cached per viewer, so the
/// cache cannot hand one person's conversation to another either.
pub(super) async fn open(app: &AppState, ctx: &Ctx, username: &str) -> Result<Target, AppError> {
    const NOBODY: AppError = AppError::NotFound("There is nobody with that name to talk to.");
    let url = format!("/dm/{username}");
    if let Some(target) = app.directory.get(ctx.user.id, &url) {
        return Ok(target);
    }
    let other = users::find_by_name(&app.db.pool, username)
        .await?
        .filter(|u| u.is_active)
        .ok_or(NOBODY)?;
    if other.id == ctx.user.id {
        return Err(NOBODY);
    }
    let room = rooms::create_or_get_direct(&app.db.pool, ctx.user.id, other.id).await?;
    let target = Target {
        room: room.id,
        title: other.username.clone(),
        base: format!("/dm/{}", other.username),
    };
    app.directory.put(ctx.user.id, &url, &target);
    Ok(target)
}

#[handler]
async fn dm_page(
    Data(app): Data<&AppState>,
    ctx: Ctx,
    Path(username): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Response, AppError> {
    conversation::page_response(
        app,
        &ctx,
        &open(app, &ctx, &username).await?,
        q.before,
        None,
    )
    .await
}

#[handler]
async fn send(
    Data(app): Data<&AppState>,
    ctx: Ctx,
    Path(username): Path<String>,
    Form(form): Form<SendForm>,
) -> Result<Response, AppError> {
    conversation::send(app, &ctx, &open(app, &ctx, &username).await?, form).await
}

#[handler]
async fn messages(
    Data(app): Data<&AppState>,
    ctx: Ctx,
    Path(username): Path<String>,
    Query(q): Query<CursorQuery>,
) -> Result<Response, AppError> {
    conversation::messages(app, &ctx, &open(app, &ctx, &username).await?, q).await
}

#[handler]
async fn read(
    Data(app): Data<&AppState>,
    ctx: Ctx,
    Path(username): Path<String>,
    Form(form): Form<ReadForm>,
) -> Result<Response, AppError> {
    conversation::mark_read(app, &ctx, &open(app, &ctx, &username).await?, form).await
}
