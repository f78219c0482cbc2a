use maud::html;
use poem::http::StatusCode;

use crate::clock::format_ms;
use crate::db;
use crate::html::{capfirst, crumb, last_crumb, layout};
use crate::http::{AdminError, AdminResult, Ctx};
use crate::model::ModelAdmin;
use crate::site::Site;
use crate::views::{list_url, object_url, visible_object};

/// The object's log entries, oldest first. A deleted object keeps its history page.
pub async fn history(site: &Site, ctx: &Ctx, model: &ModelAdmin, id: i64) -> AdminResult {
    let object = visible_object(site, ctx, model, id).await?;
    if object.is_none() && model.rows_for(&ctx.user).is_some() {
        // A deleted object's history stays visible, but only to users who see every row: for
        // the others there is no telling whether the row was one they may see.
        return Err(AdminError::NotFound);
    }
    if !site
        .perms(ctx, model, object.as_ref().map(|o| &o.values))
        .view
    {
        return Err(AdminError::Forbidden);
    }
    let entries = db::history(
        &site.db,
        (site.user_table, site.user_display),
        model.slug,
        id,
    )
    .await?;
    let repr = match (&object, entries.last()) {
        (Some(o), _) => o.repr.clone(),
        (None, Some(e)) => e.object_repr.clone(),
        (None, None) => return Err(AdminError::NotFound),
    };
    let body = html! {
        @if entries.is_empty() {
            p { "This object doesn’t have a change history. It probably wasn’t added via this admin site." }
        } @else {
            table #change-history {
                thead { tr { th scope="col" { "Date/time (UTC)" } th scope="col" { "User" } th scope="col" { "Action" } } }
                tbody {
                    @for e in &entries {
                        tr {
                            th scope="row" { (format_ms(e.time_ms)) }
                            td { (e.user.as_deref().unwrap_or("—")) }
                            td { (e.message) }
                        }
                    }
                }
            }
        }
    };
    let object_crumb = match object {
        Some(_) => crumb(repr.clone(), object_url(ctx, model.slug, id, "change")),
        None => last_crumb(repr.clone()),
    };
    let crumbs = [
        crumb(capfirst(model.plural), list_url(ctx, model)),
        object_crumb,
        last_crumb("History"),
    ];
    let title = format!("Change history: {repr}");
    Ok(ctx.page(StatusCode::OK, layout(site, ctx, &title, &crumbs, body)))
}
