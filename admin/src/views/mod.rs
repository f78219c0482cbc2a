//! One module per admin page.

pub mod changelist;
pub mod clean;
pub mod delete;
pub mod form;
pub mod history;
pub mod index;
pub mod list;
pub mod password;
pub mod widgets;

use maud::html;
use poem::Response;

use crate::db::{self, Object};
use crate::html::layout;
use crate::http::{AdminError, Ctx};
use crate::model::ModelAdmin;
use crate::site::Site;

pub fn error_page(site: &Site, ctx: &Ctx, err: AdminError) -> Response {
    if let AdminError::Db(e) = &err {
        tracing::error!(error = %e, "admin: database error");
    }
    let body = html! {
        p { (err.explanation()) }
        p { a href=(ctx.url("")) { "Back to the administration home" } }
    };
    ctx.page(err.status(), layout(site, ctx, err.title(), &[], body))
}

/// The object as this user may see it: `None` when it does not exist or the model's row filter
/// hides it from them (which the views answer with 404, as Django does for rows outside
/// `get_queryset`: a 403 would confirm that the row exists).
pub async fn visible_object(
    site: &Site,
    ctx: &Ctx,
    model: &ModelAdmin,
    id: i64,
) -> Result<Option<Object>, AdminError> {
    let mut conn = site.db.acquire().await?;
    Ok(db::fetch_object(&mut conn, model, id, model.rows_for(&ctx.user)).await?)
}

pub fn list_url(ctx: &Ctx, model: &ModelAdmin) -> String {
    ctx.url(&format!("{}/", model.slug))
}

pub fn object_url(ctx: &Ctx, model: &str, id: i64, view: &str) -> String {
    ctx.url(&format!("{model}/{id}/{view}/"))
}

/// "a", "a and b", "a, b and c".
pub fn join_words(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}
