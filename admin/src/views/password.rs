use maud::html;
use poem::Request;
use poem::http::StatusCode;

use crate::db::{self, LogEntry};
use crate::host::WriteAction;
use crate::html::{capfirst, crumb, csrf_field, last_crumb, layout};
use crate::http::{AdminError, AdminResult, Ctx, Flash, first, read_form};
use crate::model::ModelAdmin;
use crate::site::Site;
use crate::views::{list_url, object_url};

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
    let mut conn = site.db.acquire().await?;
    let object = db::fetch_object(&mut conn, model, id)
        .await?
        .ok_or(AdminError::NotFound)?;
    drop(conn);
    if !site.perms(ctx, model, Some(&object.values)).change {
        return Err(AdminError::Forbidden);
    }
    let mut errors: Vec<(&str, String)> = Vec::new();
    if is_post {
        let form = read_form(req).await?;
        let (p1, p2) = (
            first(&form, "password1").unwrap_or(""),
            first(&form, "password2").unwrap_or(""),
        );
        if p1.is_empty() {
            errors.push(("password1", "This field is required.".to_owned()));
        } else if p1 != p2 {
            errors.push((
                "password2",
                "The two password fields didn’t match.".to_owned(),
            ));
        } else {
            match site.host.set_password(id, p1).await {
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
                    site.host
                        .after_write(model.slug, &[id], WriteAction::PasswordChanged)
                        .await;
                    let url = object_url(ctx, model.slug, id, "change");
                    return Ok(ctx.redirect(&url, Flash::success("Password changed successfully.")));
                }
                Err(message) => errors.push(("password1", message)),
            }
        }
    }
    let errors_for = |name: &str| -> Vec<&String> {
        errors
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, e)| e)
            .collect()
    };
    let body = html! {
        p { "Enter a new password for the " (model.singular) " " strong { (object.repr) } "." }
        form method="post" action=(object_url(ctx, model.slug, id, "password")) novalidate {
            (csrf_field(ctx))
            @if !errors.is_empty() { p .errornote { "Please correct the errors below." } }
            fieldset .module .aligned {
                @for (name, label) in [("password1", "Password"), ("password2", "Password (again)")] {
                    @let errs = errors_for(name);
                    div .form-row .errors[!errs.is_empty()] {
                        @if !errs.is_empty() { ul .errorlist { @for e in &errs { li { (e) } } } }
                        label .required for={ "id_" (name) } { (label) ":" }
                        div .field { input type="password" id={ "id_" (name) } name=(name) autocomplete="new-password"; }
                    }
                }
            }
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
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let title = format!("Change password: {}", object.repr);
    Ok(ctx.page(status, layout(site, ctx, &title, &crumbs, body)))
}
