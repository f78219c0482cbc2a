//! Favourites: `POST /favourites {conversation}` stars a conversation, `POST /favourites/remove
//! {conversation}` unstars it, `conversation` being its path (`/rooms/general`, `/dm/bob`).

use maud::html;
use poem::web::Form;
use poem::{IntoResponse, Response, handler};
use serde::Deserialize;

use super::conversation::open;
use super::error::AppError;
use super::sidebar::sidebar_oob;
use super::{Ctx, see_other};
use crate::store::favourites;
use crate::views::chat::star_form;

#[derive(Deserialize)]
pub struct FavouriteForm {
    #[serde(default)]
    conversation: String,
}

#[handler]
pub async fn add(ctx: Ctx, Form(form): Form<FavouriteForm>) -> Result<Response, AppError> {
    set(ctx, &form.conversation, true).await
}

#[handler]
pub async fn remove(ctx: Ctx, Form(form): Form<FavouriteForm>) -> Result<Response, AppError> {
    set(ctx, &form.conversation, false).await
}

/// Stars or unstars the conversation at `path`, if the viewer may open it (else 404): 303 back
/// to it; with htmx, the star's form in its new state and the sidebar out of band.
async fn set(ctx: Ctx, path: &str, starred: bool) -> Result<Response, AppError> {
    let app = &ctx.app;
    let target = open(app, &ctx, path).await?;
    let pool = &app.db.pool;
    match starred {
        true => favourites::add(pool, ctx.user.id, target.room).await?,
        false => favourites::remove(pool, ctx.user.id, target.room).await?,
    }
    // The person's other pages list it anew.
    app.hub.changed_for(ctx.user.id);
    if !ctx.htmx {
        return Ok(see_other(&target.base));
    }
    let sidebar = sidebar_oob(app, ctx.user.id, &target.base).await?;
    Ok(html! { (star_form(&target.base, starred, &ctx.csrf)) (sidebar) }.into_response())
}
