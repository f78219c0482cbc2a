use maud::html;
use poem::Request;
use poem::http::StatusCode;

use crate::db::{self, LogEntry};
use crate::host::WriteAction;
use crate::html::{capfirst, crumb, csrf_field, last_crumb, layout};
use crate::http::{AdminError, AdminResult, Ctx, Flash, read_form};
use crate::model::ModelAdmin;
use crate::site::Site;
use crate::views::clean::{FormState, PASSWORD1, new_password};
use crate::views::widgets::password_rows;
use crate::views::{list_url, object_url, visible_object};

/// Sets a password through the host, which validates and hashes it. The hash is never shown
/// here, and no form anywhere accepts one.
pub async fn password(
    site: &Site,
    ctx: &Ctx,
    model: &ModelAdmin,
    id: i64,
    req: &mut Request,
    is_post: bool,
) -> AdminResult {
    if model.password_column.is_none() {
        return Err(AdminError::NotFound);
    }
    let object = visible_object(site, ctx, model, id)
        .await?
        .ok_or(AdminError::NotFound)?;
    if !site.perms(ctx, model, Some(&object.values)).change {
        return Err(AdminError::Forbidden);
    }
    let mut state = FormState::default();
    if is_post {
        let form = read_form(req).await?;
        let result = match new_password(&form) {
            Ok(raw) => site
                .host
                .set_password(req, id, raw)
                .await
                .map_err(|message| (PASSWORD1, message)),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                let mut conn = site.db.acquire().await?;
                let entry = LogEntry {
                    user_id: ctx.user.id,
                    model: model.slug,
                    object_id: id,
                    object_repr: &object.repr,
                    flag: db::CHANGE,
                    message: "Changed password.",
                };
                db::log(&mut conn, entry).await?;
                drop(conn);
                if let Some(hook) = &model.after_save {
                    hook(vec![id], WriteAction::PasswordChanged).await;
                }
                let url = object_url(ctx, model.slug, id, "change");
                return Ok(ctx.redirect(&url, Flash::success("Password changed successfully.")));
            }
            Err(error) => state.errors.push(error),
        }
    }
    let body = html! {
        p { "Enter a new password for the " (model.singular) " " strong { (object.repr) } "." }
        form method="post" action=(object_url(ctx, model.slug, id, "password")) novalidate {
            (csrf_field(ctx))
            @if !state.errors.is_empty() { p .errornote { "Please correct the errors below." } }
            fieldset .module .aligned { (password_rows(&state)) }
            div .submit-row { button .default type="submit" { "Change password" } }
        }
    };
    let crumbs = [
        crumb(capfirst(model.plural), list_url(ctx, model)),
        crumb(
            object.repr.clone(),
            object_url(ctx, model.slug, id, "change"),
        ),
        last_crumb("Change password"),
    ];
    let status = if state.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let title = format!("Change password: {}", object.repr);
    Ok(ctx.page(status, layout(site, ctx, &title, &crumbs, body)))
}
