use maud::html;
use poem::http::StatusCode;

use crate::clock::format_ms;
use crate::db;
use crate::html::{capfirst, layout};
use crate::http::{AdminResult, Ctx};
use crate::site::Site;
use crate::views::{list_url, object_url};

pub async fn index(site: &Site, ctx: &Ctx) -> AdminResult {
    let mut rows = Vec::new();
    for model in &site.models {
        let perms = site.perms(ctx, model, None);
        if perms.view {
            rows.push((
                model,
                perms,
                db::count(&site.db, model, model.rows_for(&ctx.user)).await?,
            ));
        }
    }
    let recent = db::recent_actions(
        &site.db,
        (site.user_table, site.user_display),
        ctx.user.id,
        10,
    )
    .await?;
    let body = html! {
        div .index {
            table #models {
                caption { "Models" }
                tbody {
                    @for (model, perms, count) in &rows {
                        tr {
                            th scope="row" { a href=(list_url(ctx, model)) { (capfirst(model.plural)) } }
                            td .count { (count) }
                            td { @if perms.add { a .addlink href=(ctx.url(&format!("{}/add/", model.slug))) { "Add" } } }
                            td { a .changelink href=(list_url(ctx, model)) { @if perms.change { "Change" } @else { "View" } } }
                        }
                    }
                }
            }
            section #recent-actions {
                h2 { "Recent actions" }
                h3 { "My actions" }
                @if recent.is_empty() {
                    p { "None available" }
                } @else {
                    ul .actionlist {
                        @for a in &recent {
                            @let model = site.models.iter().find(|m| m.slug == a.model);
                            @let class = match a.flag { db::ADDITION => "added", db::DELETION => "deleted", _ => "changed" };
                            li class=(class) {
                                @match (model, a.object_id.parse::<i64>()) {
                                    (Some(m), Ok(id)) if a.flag != db::DELETION => {
                                        a href=(object_url(ctx, m.slug, id, "change")) { (a.object_repr) }
                                    }
                                    _ => { (a.object_repr) }
                                }
                                br;
                                span .mini { (model.map_or(a.model.as_str(), |m| m.singular)) " · " (format_ms(a.time_ms)) " UTC" }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(ctx.page(StatusCode::OK, layout(site, ctx, &site.name, &[], body)))
}
