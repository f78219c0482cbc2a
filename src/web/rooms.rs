//! Public rooms: created on demand by name, readable and writable by everyone logged in. (What a
//! room shares with private conversations — its page, its messages — is in `conversation` and
//! `messages`.)

use poem::web::{Form, Query};
use poem::{IntoResponse, Response, handler};
use serde::Deserialize;

use super::conversation::{Conv, Window, page_response};
use super::error::AppError;
use super::home::{List, Search, home_response, list_response, own_page};
use super::limits::take;
use super::{Ctx, see_other};
use crate::domain::{RoomName, Topic};
use crate::store::messages::Change;
use crate::store::rooms;

/// `GET /rooms`: every public room to browse (its topic, members, last activity, and a Join
/// button), filtered by `?q=`; for htmx, the sidebar's room list, as before.
#[handler]
pub async fn list(ctx: Ctx, Query(search): Query<Search>) -> Result<Response, AppError> {
    if ctx.htmx {
        return list_response(&ctx, &search, List::Rooms).await;
    }
    let q = search.query();
    let rooms = if q.len() > 64 || q.contains(char::is_control) {
        Vec::new()
    } else {
        rooms::directory(&ctx.app.db.pool, ctx.user.id, q).await?
    };
    let pane = crate::views::rooms::browse(&rooms, q, &ctx.reader(), &ctx.csrf);
    own_page(&ctx, "Browse rooms", "/rooms", "", pane).await
}

/// `POST /rooms/{name}/leave`: the person is no longer a member, and the room leaves their
/// sidebar until they open or join it again; what they wrote stays.
#[handler]
pub async fn leave(Conv { ctx, target }: Conv) -> Result<Response, AppError> {
    rooms::leave(&ctx.app.db.pool, target.room, ctx.user.id).await?;
    // Its messages no longer change their sidebar; their other pages' sidebars drop it.
    ctx.app.hub.left(target.room, ctx.user.id);
    ctx.app.hub.changed_for(ctx.user.id);
    Ok(see_other("/"))
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    /// Set by the sidebar's form: open the room if it exists, and ask before creating one (a
    /// typo must not put a room in everyone's sidebar).
    #[serde(default)]
    open: String,
}

/// `POST /rooms {name}`, the student app's "room name" form: open the room, creating it if
/// nobody has. With `open` (the sidebar's form), a room nobody has opened is offered first:
/// "There is no room #genral", with a Create button that posts the name alone.
#[handler]
pub async fn create(ctx: Ctx, Form(form): Form<CreateForm>) -> Result<Response, AppError> {
    let name = match RoomName::parse(&form.name) {
        Ok(name) => name,
        Err(invalid) => return home_response(&ctx, "", Some((&form.name, invalid.0))).await,
    };
    let pool = &ctx.app.db.pool;
    if rooms::find_public(pool, name.as_str()).await?.is_none() {
        if !form.open.is_empty() {
            return Ok(crate::views::no_such_room(&ctx.viewer(), name.as_str()).into_response());
        }
        may_create_a_room(&ctx).await?;
    }
    let room = rooms::create_or_get_public(pool, &name, ctx.user.id).await?;
    rooms::join(pool, room.id, ctx.user.id).await?;
    ctx.app.hub.joined(room.id, ctx.user.id);
    Ok(see_other(&format!(
        "/rooms/{}",
        room.name.unwrap_or_default()
    )))
}

/// Every room is in everyone's list of rooms: one person making hundreds would bury the others'.
/// So creating has a pace (`--rooms-per-hour`) and a total (`--max-rooms-per-user`).
async fn may_create_a_room(ctx: &Ctx) -> Result<(), AppError> {
    let limits = &ctx.app.limits;
    let made = rooms::created_by(&ctx.app.db.pool, ctx.user.id).await?;
    if limits.rooms_in_all > 0 && made >= i64::from(limits.rooms_in_all) {
        return Err(AppError::Forbidden(
            "You have created as many rooms as one person may. Ask someone else to create it, \
             or use one of the rooms there are.",
        ));
    }
    take(
        &limits.rooms,
        &ctx.user.id,
        "You are creating rooms faster than Parley allows.",
    )
}

#[derive(Deserialize)]
pub struct TopicForm {
    #[serde(default)]
    topic: String,
}

/// `POST /rooms/{name}/topic {topic}`: members only, at a pace, and said in the room ("alice set
/// the topic to …"), so that nobody changes what a room is about unseen.
#[handler]
pub async fn set_topic(
    Conv { ctx, target }: Conv,
    Form(form): Form<TopicForm>,
) -> Result<Response, AppError> {
    let topic = match Topic::parse(&form.topic) {
        Ok(topic) => topic,
        Err(invalid) => {
            return page_response(
                &ctx.app,
                &ctx,
                &target,
                Window::Latest,
                Some(("", invalid.0)),
            )
            .await;
        }
    };
    let app = &ctx.app;
    if !rooms::is_member(&app.db.pool, target.room, ctx.user.id).await? {
        return Err(AppError::Forbidden(
            "Only the room's members may set its topic: open the room to join it first.",
        ));
    }
    take(
        &app.limits.topics,
        &ctx.user.id,
        "You are changing topics faster than Parley allows.",
    )?;
    let (db, hub, room) = (app.db.clone(), app.hub.clone(), target.room);
    let me = ctx.user.clone();
    // In its own task, as a send is: a client that hangs up cannot leave the record untold.
    tokio::spawn(async move {
        let turn = db.write_turn().await;
        let record = rooms::set_topic(&db.pool, room, &topic, me.author()).await?;
        drop(turn);
        hub.published(&Change::New(record));
        Ok::<_, sqlx::Error>(())
    })
    .await
    .map_err(|e| AppError::Internal(Box::new(e)))??;
    Ok(see_other(&target.base))
}
