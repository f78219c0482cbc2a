//! The change list's rendering (Django's `templatetags/admin_list.py`) and its "delete selected"
//! action. The query step is `changelist.rs`.

use maud::{Markup, html};
use poem::Request;
use poem::http::StatusCode;

use crate::clock::DateRange;
use crate::db;
use crate::html::{capfirst, csrf_field, last_crumb, layout, plural, show_value, truncate};
use crate::http::{AdminError, AdminResult, Ctx, Flash, first, read_form};
use crate::model::{Field, FieldKind, ModelAdmin, Perms, Value};
use crate::site::Site;
use crate::views::changelist::{ChangeList, FilterValue, Params};
use crate::views::{delete, list_url, object_url};

/// Options listed under one related-object filter.
const MAX_FILTER_OPTIONS: i64 = 50;
const TRUNCATE_CELL: usize = 80;

pub async fn list(site: &Site, ctx: &Ctx, model: &ModelAdmin, query: &str) -> AdminResult {
    let perms = site.perms(ctx, model, None);
    if !perms.view {
        return Err(AdminError::Forbidden);
    }
    let cl = ChangeList::get(site, &ctx.user, model, query).await?;
    let mut sidebar = Vec::new();
    for name in &model.list_filter {
        if let Some(field) = model.field_named(name) {
            sidebar.push(filter_block(site, field, &cl.params).await?);
        }
    }
    let title = format!(
        "Select {} to {}",
        model.singular,
        if perms.change { "change" } else { "view" }
    );
    let body = html! {
        div #changelist {
            (toolbar(ctx, &cl, perms))
            div .changelist-body {
                form #changelist-form method="post" action=(list_url(ctx, model)) {
                    (csrf_field(ctx))
                    @if perms.delete && !cl.rows.is_empty() {
                        div .actions {
                            label { "Action: "
                                select name="action" {
                                    option value="" { "---------" }
                                    option value="delete_selected" { "Delete selected " (model.plural) }
                                }
                            }
                            button type="submit" name="index" value="0" { "Go" }
                        }
                    }
                    p .paginator-count {
                        (cl.count) " " (plural(cl.count, model.singular, model.plural))
                        @if cl.count != cl.total { " (" (cl.total) " total)" }
                    }
                    @if cl.rows.is_empty() {
                        p .empty { "No " (model.plural) " found." }
                    } @else {
                        (result_list(ctx, &cl, perms))
                    }
                    (paginator(&cl.params, cl.page, cl.pages))
                }
                @if !sidebar.is_empty() {
                    nav #changelist-filter aria-label="Filter" {
                        h2 { "Filter" }
                        @for block in &sidebar { (block) }
                    }
                }
            }
        }
    };
    let crumbs = [last_crumb(capfirst(model.plural))];
    Ok(ctx.page(StatusCode::OK, layout(site, ctx, &title, &crumbs, body)))
}

/// The search box and the "Add" button.
fn toolbar(ctx: &Ctx, cl: &ChangeList<'_>, perms: Perms) -> Markup {
    let model = cl.model;
    html! {
        div .toolbar {
            @if !model.search_fields.is_empty() {
                form #changelist-search method="get" action=(list_url(ctx, model)) role="search" {
                    label for="searchbar" { "Search" }
                    input #searchbar type="search" name="q" value=(cl.params.q) autofocus;
                    @for (k, v) in cl.params.kept.iter().filter(|(k, _)| k != "q" && k != "p") {
                        input type="hidden" name=(k) value=(v);
                    }
                    button type="submit" { "Search" }
                }
            }
            @if perms.add {
                a .addlink .button href=(ctx.url(&format!("{}/add/", model.slug))) { "Add " (model.singular) }
            }
        }
    }
}

/// The table of rows, with sortable headers and, for users who may delete, checkboxes.
fn result_list(ctx: &Ctx, cl: &ChangeList<'_>, perms: Perms) -> Markup {
    let model = cl.model;
    html! {
        table #result_list {
            thead { tr {
                @if perms.delete { th .action-checkbox-column scope="col" { span .visually-hidden { "Select" } } }
                @for (i, f) in cl.columns.iter().enumerate() {
                    @let (class, next) = match cl.params.order {
                        Some((j, false)) if j == i => ("sorted ascending", format!("-{}", i + 1)),
                        Some((j, true)) if j == i => ("sorted descending", format!("{}", i + 1)),
                        _ => ("sortable", format!("{}", i + 1)),
                    };
                    th scope="col" class=(class) {
                        a href=(cl.params.with("o", Some(&next))) { (f.label) }
                    }
                }
            } }
            tbody {
                @for row in &cl.rows {
                    tr {
                        @if perms.delete {
                            td .action-checkbox {
                                input type="checkbox" name="_selected_action" value=(row.id) aria-label={ "Select " (model.singular) " " (row.id) };
                            }
                        }
                        @for (i, (f, (v, label))) in cl.columns.iter().zip(&row.cells).enumerate() {
                            @let cell = cell(f.kind, v, label.as_deref());
                            @if i == 0 {
                                th scope="row" { a href=(object_url(ctx, model.slug, row.id, "change")) { (cell) } }
                            } @else {
                                td { (cell) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn cell(kind: FieldKind, value: &Value, fk_label: Option<&str>) -> Markup {
    match value {
        Value::Text(Some(s))
            if matches!(kind, FieldKind::Text { .. } | FieldKind::TextArea { .. }) =>
        {
            html! { (truncate(s, TRUNCATE_CELL)) }
        }
        _ => show_value(kind, value, fk_label),
    }
}

fn paginator(params: &Params, page: i64, pages: i64) -> Markup {
    html! {
        @if pages > 1 {
            nav .paginator aria-label="Pages" {
                @if page > 1 { a href=(params.with("p", Some(&(page - 1).to_string()))) rel="prev" { "‹ Previous" } " " }
                @for n in 1..=pages {
                    @if n == page {
                        span .this-page aria-current="page" { (n) } " "
                    } @else if n <= 3 || n > pages - 3 || (n - page).abs() <= 2 {
                        a href=(params.with("p", Some(&n.to_string()))) { (n) } " "
                    } @else if n == 4 || n == pages - 3 {
                        span .ellipsis { "…" } " "
                    }
                }
                @if page < pages { a href=(params.with("p", Some(&(page + 1).to_string()))) rel="next" { "Next ›" } }
                " "
                span .page-of { "Page " (page) " of " (pages) }
            }
        }
    }
}

async fn filter_block(
    site: &Site,
    field: &Field,
    params: &Params<'_>,
) -> Result<Markup, AdminError> {
    let mut options: Vec<(String, Option<FilterValue>, String)> =
        vec![("All".to_owned(), None, String::new())];
    match field.kind {
        FieldKind::Bool => {
            options.push((
                "Yes".to_owned(),
                Some(FilterValue::Bool(true)),
                "1".to_owned(),
            ));
            options.push((
                "No".to_owned(),
                Some(FilterValue::Bool(false)),
                "0".to_owned(),
            ));
        }
        FieldKind::Choice(choices) => {
            for (v, l) in choices {
                options.push((
                    (*l).to_owned(),
                    Some(FilterValue::Choice(v)),
                    (*v).to_owned(),
                ));
            }
        }
        FieldKind::ForeignKey { table, display, .. } => {
            for (id, name) in db::options(&site.db, table, display, MAX_FILTER_OPTIONS).await? {
                options.push((name, Some(FilterValue::Id(id)), id.to_string()));
            }
            // A filter chosen by URL for a row beyond the listed ones still shows as selected.
            if let Some((_, FilterValue::Id(id))) =
                params.filters.iter().find(|(f, _)| f.name == field.name)
                && !options
                    .iter()
                    .any(|(_, v, _)| *v == Some(FilterValue::Id(*id)))
            {
                let name = db::label_of(&site.db, table, display, *id)
                    .await?
                    .unwrap_or_else(|| format!("#{id}"));
                options.push((name, Some(FilterValue::Id(*id)), id.to_string()));
            }
        }
        FieldKind::Timestamp => {
            options[0].0 = "Any date".to_owned();
            for r in DateRange::ALL {
                options.push((
                    r.label().to_owned(),
                    Some(FilterValue::Date(r)),
                    r.param().to_owned(),
                ));
            }
        }
        _ => {}
    }
    Ok(html! {
        details open {
            summary { "By " (field.label.to_lowercase()) }
            ul {
                @for (label, value, raw) in &options {
                    @let selected = params.filter_is(field, value.as_ref());
                    li class=[selected.then_some("selected")] {
                        a href=(params.with(field.name, value.as_ref().map(|_| raw.as_str())))
                          aria-current=[selected.then_some("true")] { (label) }
                    }
                }
            }
        }
    })
}

/// POST to the change list: the "delete selected" action, first confirmed, then (with
/// `post=yes`) carried out.
pub async fn action(site: &Site, ctx: &Ctx, model: &ModelAdmin, req: &mut Request) -> AdminResult {
    let perms = site.perms(ctx, model, None);
    if !perms.view {
        return Err(AdminError::Forbidden);
    }
    let form = read_form(req).await?;
    if first(&form, "action") != Some("delete_selected") {
        return Ok(ctx.redirect(&list_url(ctx, model), Flash::warning("No action selected.")));
    }
    if !perms.delete {
        return Err(AdminError::Forbidden);
    }
    let mut ids: Vec<i64> = form
        .iter()
        .filter(|(k, _)| k == "_selected_action")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let objects = db::fetch_objects(&site.db, model, &ids, model.rows_for(&ctx.user)).await?;
    if objects.is_empty() {
        let text = "Items must be selected in order to perform actions on them. No items have been changed.";
        return Ok(ctx.redirect(&list_url(ctx, model), Flash::warning(text)));
    }
    if objects
        .iter()
        .any(|o| !site.perms(ctx, model, Some(&o.values)).delete)
    {
        return Err(AdminError::Forbidden);
    }
    if first(&form, "post") == Some("yes") {
        let n = delete::delete_objects(site, ctx, model, &objects).await? as i64;
        let text = format!(
            "Successfully deleted {n} {}.",
            plural(n, model.singular, model.plural)
        );
        return Ok(ctx.redirect(&list_url(ctx, model), Flash::success(text)));
    }
    delete::confirm_many(site, ctx, model, &objects).await
}
