//! Public rooms: created on demand by name, readable and writable by everyone logged in.

use poem::web::{Data, Form, Path, Query};
use poem::{Response, Route, get, handler, post};
use serde::Deserialize;

use super::conversation::{self, CursorQuery, PageQuery, ReadForm, SendForm, Target};
use super::error::AppError;
use super::{AppState, Ctx, people, see_other};
use crate::domain::{RoomName, Topic};
use crate::store::rooms;

/// Adds this feature's routes.
pub fn routes(route: Route) -> Route {
    route
        .at("/rooms", get(people::room_list).post(create))
        .at("/rooms/:name", get(room_page))
        .at("/rooms/:name/messages", get(messages).post(send))
        .at("/rooms/:name/read", post(read))
        .at("/rooms/:name/topic", post(set_topic))
}

/// The public room named in the URL; anyone logged in may read and write it.
pub(super) async fn open(app: &AppState, name: &str) -> Result<Target, AppError> {
    let url = format!("/rooms/{name}");
    if let Some(target) = app.directory.get(0, &url) {
        return Ok(target);
    }
    let room = rooms::find_public(&app.db.pool, name)
        .await?
        .ok_or(AppError::NotFound("There is no room with that name."))?;
    let name = room.name.unwrap_or_default();
    let target = Target {
        room: room.id,
        title: format!("#{name}"),
        base: format!("/rooms/{name}"),
    };
    app.directory.put(0, &url, &target);
    Ok(target)
}

#[derive(Deserialize)]
struct CreateForm {
    #[serde(default)]
    name: String,
}

/// The student app's "room name" form: open the room, creating it if nobody has.
#[handler]
async fn create(
    Data(app): Data<&AppState>,
    ctx: Ctx,
    Form(form): Form<CreateForm>,
) -> Result<Response, AppError> {
    let name = match RoomName::parse(&form.name) {
        Ok(name) => name,
        Err(invalid) => {
            return people::home_response(app, &ctx, "", Some((&form.name, invalid.0))).await;
        }
    };
    let room = rooms::create_or_get_public(&app.db.pool, &name, ctx.user.id).await?;
    rooms::join(&app.db.pool, room.id, ctx.user.id).await?;
    Ok(see_other(&format!(
        "/rooms/{}",
        room.name.unwrap_or_default()
    )))
}

#[handler]
async fn room_page(
    Data(app): Data<&AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Response, AppError> {
    let target = open(app, &name).await?;
    rooms::join(&app.db.pool, target.room, ctx.user.id).await?;
    conversation::page_response(app, &ctx, &target, q.before, None).await
}

#[handler]
async fn send(
    Data(app): Data<&AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    Form(form): Form<SendForm>,
) -> Result<Response, AppError> {
    conversation::send(app, &ctx, &open(app, &name).await?, form).await
}

#[handler]
async fn messages(
    Data(app): Data<&AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    Query(q): Query<CursorQuery>,
) -> Result<Response, AppError> {
    conversation::messages(app, &ctx, &open(app, &name).await?, q).await
}

#[handler]
async fn read(
    Data(app): Data<&AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    Form(form): Form<ReadForm>,
) -> Result<Response, AppError> {
    conversation::mark_read(app, &ctx, &open(app, &name).await?, form).await
}

#[derive(Deserialize)]
struct TopicForm {
    #[serde(default)]
    topic: String,
}

#[handler]
async fn set_topic(
    Data(app): Data<&AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    Form(form): Form<TopicForm>,
) -> Result<Response, AppError> {
    let target = open(app, &name).await?;
    match Topic::parse(&form.topic) {
        Ok(topic) => {
            rooms::set_topic(&app.db.pool, target.room, topic.as_str()).await?;
            Ok(see_other(&target.base))
        }
        Err(invalid) => {
            conversation::page_response(app, &ctx, &target, None, Some(("", invalid.0))).await
        }
    }
}
