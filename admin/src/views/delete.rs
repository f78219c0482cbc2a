//! Deleting: a confirmation page listing what goes with the object, then one transaction.

use maud::{Markup, html};
use poem::Request;
use poem::http::StatusCode;

use crate::db::{self, LogEntry, Object};
use crate::html::{capfirst, crumb, csrf_field, last_crumb, layout};
use crate::http::{AdminError, AdminResult, Ctx, Flash, first, read_form};
use crate::model::{ModelAdmin, OnDelete, Related};
use crate::site::Site;
use crate::views::{list_url, object_url, visible_object};

/// Related rows listed by name on the confirmation page; the rest are counted.
const SAMPLE: i64 = 10;

pub async fn delete(
    site: &Site,
    ctx: &Ctx,
    model: &ModelAdmin,
    id: i64,
    req: &mut Request,
    is_post: bool,
) -> AdminResult {
    let object = visible_object(site, ctx, model, id)
        .await?
        .ok_or(AdminError::NotFound)?;
    if !site.perms(ctx, model, Some(&object.values)).delete {
        return Err(AdminError::Forbidden);
    }
    // Only a POST that says so deletes; a GET or a stray POST shows the question again.
    if is_post && first(&read_form(req).await?, "post") == Some("yes") {
        delete_objects(site, ctx, model, std::slice::from_ref(&object)).await?;
        let text = format!(
            "The {} “{}” was deleted successfully.",
            model.singular, object.repr
        );
        return Ok(ctx.redirect(&list_url(ctx, model), Flash::success(text)));
    }
    let cascades = cascades(site, model, &[id]).await?;
    let body = html! {
        p {
            "Are you sure you want to delete the " (model.singular) " “" (object.repr) "”? "
            @if cascades.iter().any(|(_, n, _)| *n > 0) {
                "All of the following related items will be deleted:"
            }
        }
        h2 { "Summary" }
        ul #deleted-summary {
            li { (capfirst(model.plural)) ": 1" }
            @for (r, n, _) in &cascades { @if *n > 0 { li { (capfirst(r.label)) ": " (n) } } }
        }
        h2 { "Objects" }
        ul #deleted-objects {
            li {
                (capfirst(model.singular)) ": "
                a href=(object_url(ctx, model.slug, id, "change")) { (object.repr) }
                (cascade_list(ctx, &cascades))
            }
        }
        form method="post" action=(object_url(ctx, model.slug, id, "delete")) {
            (csrf_field(ctx))
            input type="hidden" name="post" value="yes";
            button .deletelink type="submit" { "Yes, I’m sure" }
            " "
            a .button .cancel-link href=(object_url(ctx, model.slug, id, "change")) { "No, take me back" }
        }
    };
    let crumbs = [
        crumb(capfirst(model.plural), list_url(ctx, model)),
        crumb(
            object.repr.clone(),
            object_url(ctx, model.slug, id, "change"),
        ),
        last_crumb("Delete"),
    ];
    Ok(ctx.page(
        StatusCode::OK,
        layout(site, ctx, "Are you sure?", &crumbs, body),
    ))
}

/// The confirmation page of the "delete selected" action.
pub async fn confirm_many(
    site: &Site,
    ctx: &Ctx,
    model: &ModelAdmin,
    objects: &[Object],
) -> AdminResult {
    let ids: Vec<i64> = objects.iter().map(|o| o.id).collect();
    let cascades = cascades(site, model, &ids).await?;
    let body = html! {
        p {
            "Are you sure you want to delete the selected " (model.plural) "? "
            @if cascades.iter().any(|(_, n, _)| *n > 0) {
                "All of the following objects and their related items will be deleted:"
            }
        }
        h2 { "Summary" }
        ul #deleted-summary {
            li { (capfirst(model.plural)) ": " (objects.len()) }
            @for (r, n, _) in &cascades { @if *n > 0 { li { (capfirst(r.label)) ": " (n) } } }
        }
        h2 { "Objects" }
        ul #deleted-objects {
            @for o in objects {
                li { (capfirst(model.singular)) ": " a href=(object_url(ctx, model.slug, o.id, "change")) { (o.repr) } }
            }
        }
        @if cascades.iter().any(|(_, n, _)| *n > 0) {
            h2 { "Related items" }
            (cascade_list(ctx, &cascades))
        }
        form method="post" action=(list_url(ctx, model)) {
            (csrf_field(ctx))
            @for id in &ids { input type="hidden" name="_selected_action" value=(id); }
            input type="hidden" name="action" value="delete_selected";
            input type="hidden" name="post" value="yes";
            button .deletelink type="submit" { "Yes, I’m sure" }
            " "
            a .button .cancel-link href=(list_url(ctx, model)) { "No, take me back" }
        }
    };
    let crumbs = [
        crumb(capfirst(model.plural), list_url(ctx, model)),
        last_crumb("Delete multiple objects"),
    ];
    Ok(ctx.page(
        StatusCode::OK,
        layout(site, ctx, "Are you sure?", &crumbs, body),
    ))
}

type Cascade<'m> = (&'m Related, i64, Vec<(Option<i64>, String)>);

async fn cascades<'m>(
    site: &Site,
    model: &'m ModelAdmin,
    ids: &[i64],
) -> Result<Vec<Cascade<'m>>, AdminError> {
    let mut out = Vec::new();
    for r in model
        .related
        .iter()
        .filter(|r| r.on_delete == OnDelete::Cascade)
    {
        let (n, sample) = db::related_rows(&site.db, r, ids, SAMPLE).await?;
        out.push((r, n, sample));
    }
    Ok(out)
}

fn cascade_list(ctx: &Ctx, cascades: &[Cascade<'_>]) -> Markup {
    html! {
        @if cascades.iter().any(|(_, n, _)| *n > 0) {
            ul .cascades {
                @for (r, n, sample) in cascades {
                    @for (id, name) in sample {
                        li {
                            (capfirst(r.label)) ": "
                            @match (r.model, id) {
                                (Some(slug), Some(id)) => a href=(object_url(ctx, slug, *id, "change")) { (name) },
                                _ => (name),
                            }
                        }
                    }
                    @if *n > sample.len() as i64 {
                        li .more { "… and " (n - sample.len() as i64) " more " (r.label) }
                    }
                }
            }
        }
    }
}

/// Deletes the objects, with their cascades, and logs each deletion; returns how many were
/// still there to delete. Without a `delete_model` hook all of it is one transaction; with one,
/// the hook deletes each object its own way and the log entries follow in one transaction.
pub async fn delete_objects(
    site: &Site,
    ctx: &Ctx,
    model: &ModelAdmin,
    objects: &[Object],
) -> Result<usize, AdminError> {
    let mut deleted: Vec<&Object> = Vec::new();
    let mut tx = match &model.delete_model {
        Some(hook) => {
            for o in objects {
                if hook(o.id).await? {
                    deleted.push(o);
                }
            }
            site.db.begin().await?
        }
        None => {
            let mut tx = site.db.begin().await?;
            for o in objects {
                if db::delete(&mut tx, model, o.id).await? {
                    deleted.push(o);
                }
            }
            tx
        }
    };
    for o in &deleted {
        let entry = LogEntry {
            user_id: ctx.user.id,
            model: model.slug,
            object_id: o.id,
            object_repr: &o.repr,
            flag: db::DELETION,
            message: "Deleted.",
        };
        db::log(&mut tx, entry).await?;
    }
    tx.commit().await?;
    if let Some(hook) = &model.after_delete
        && !deleted.is_empty()
    {
        hook(deleted.iter().map(|o| o.id).collect()).await;
    }
    Ok(deleted.len())
}
