//! The change list: columns, sorting, search, filters, paging, and the "delete selected" action.

use maud::{Markup, html};
use poem::Request;
use poem::http::StatusCode;
use sqlx::Row;

use crate::clock::{DateRange, now_ms};
use crate::db::{self, Sql, display_sql};
use crate::html::{capfirst, csrf_field, last_crumb, layout, plural, show_value, truncate};
use crate::http::{
    AdminError, AdminResult, Ctx, Flash, first, parse_pairs, query_string, read_form,
};
use crate::model::{Field, FieldKind, ModelAdmin, Value};
use crate::site::Site;
use crate::views::{delete, list_url, object_url};

/// More search terms than this are ignored; each one adds a condition per search field.
const MAX_TERMS: usize = 8;
/// Options listed under one related-object filter.
const MAX_FILTER_OPTIONS: i64 = 50;
const TRUNCATE_CELL: usize = 80;

#[derive(Debug, Clone, PartialEq, Eq)]
enum FilterValue {
    Bool(bool),
    Choice(&'static str),
    Id(i64),
    Date(DateRange),
}

/// The recognised query parameters; anything else in the query string is ignored.
struct Params<'m> {
    q: String,
    /// Index into `list_display` and whether descending.
    order: Option<(usize, bool)>,
    page: i64,
    filters: Vec<(&'m Field, FilterValue)>,
    /// The valid parameters as given, for building links that change one of them.
    kept: Vec<(String, String)>,
}

impl<'m> Params<'m> {
    fn parse(model: &'m ModelAdmin, pairs: &[(String, String)]) -> Self {
        let mut p = Params {
            q: String::new(),
            order: None,
            page: 1,
            filters: Vec::new(),
            kept: Vec::new(),
        };
        for (k, v) in pairs {
            if p.kept.iter().any(|(kk, _)| kk == k) {
                continue;
            }
            let ok = match k.as_str() {
                "q" => {
                    p.q = v.trim().chars().take(200).collect();
                    !p.q.is_empty()
                }
                "o" => {
                    let (desc, n) = match v.strip_prefix('-') {
                        Some(n) => (true, n),
                        None => (false, v.as_str()),
                    };
                    match n.parse::<usize>() {
                        Ok(i) if i >= 1 && i <= model.list_display.len() => {
                            p.order = Some((i - 1, desc));
                            true
                        }
                        _ => false,
                    }
                }
                "p" => match v.parse::<i64>() {
                    Ok(n) if n >= 1 => {
                        p.page = n;
                        true
                    }
                    _ => false,
                },
                name => match model
                    .list_filter
                    .iter()
                    .find(|f| **f == name)
                    .and_then(|f| model.field_named(f))
                {
                    Some(field) => match filter_value(field, v) {
                        Some(fv) => {
                            p.filters.push((field, fv));
                            true
                        }
                        None => false,
                    },
                    None => false,
                },
            };
            if ok {
                p.kept.push((k.clone(), v.clone()));
            }
        }
        p
    }

    /// This list's URL query with `key` set to `value` (or removed); changing anything but the
    /// page goes back to page one.
    fn with(&self, key: &str, value: Option<&str>) -> String {
        let mut pairs: Vec<(String, String)> = self
            .kept
            .iter()
            .filter(|(k, _)| k != key && (key == "p" || k != "p"))
            .cloned()
            .collect();
        if let Some(v) = value {
            pairs.push((key.to_owned(), v.to_owned()));
        }
        let qs = query_string(&pairs);
        if qs.is_empty() { "?".to_owned() } else { qs }
    }

    fn filter_is(&self, field: &Field, value: Option<&FilterValue>) -> bool {
        self.filters
            .iter()
            .find(|(f, _)| f.name == field.name)
            .map(|(_, v)| v)
            == value
    }
}

fn filter_value(field: &Field, raw: &str) -> Option<FilterValue> {
    match field.kind {
        FieldKind::Bool => match raw {
            "1" => Some(FilterValue::Bool(true)),
            "0" => Some(FilterValue::Bool(false)),
            _ => None,
        },
        FieldKind::Choice(choices) => choices
            .iter()
            .find(|(v, _)| *v == raw)
            .map(|(v, _)| FilterValue::Choice(v)),
        FieldKind::ForeignKey { .. } => raw.parse().ok().map(FilterValue::Id),
        FieldKind::Timestamp => DateRange::from_param(raw).map(FilterValue::Date),
        _ => None,
    }
}

/// `%term%` for `LOWER(x) LIKE … ESCAPE '\'`: the term lower-cased, with `\`, `%` and `_`
/// escaped so that they match themselves.
pub fn like_pattern(term: &str) -> String {
    let mut escaped = String::with_capacity(term.len() + 2);
    escaped.push('%');
    for c in term.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

fn where_clause(model: &ModelAdmin, params: &Params, sql: &mut Sql) -> String {
    let mut conds = Vec::new();
    if !model.search_fields.is_empty() {
        for term in params.q.split_whitespace().take(MAX_TERMS) {
            if term.contains('\0') {
                // Nothing stored holds one (PostgreSQL cannot even compare it): no match.
                conds.push("1 = 0".to_owned());
                continue;
            }
            let p = sql.arg(Value::text(like_pattern(term)));
            let ors: Vec<String> = model
                .search_fields
                .iter()
                .map(|f| format!("LOWER(CAST(t.{f} AS TEXT)) LIKE {p} ESCAPE '\\'"))
                .collect();
            conds.push(format!("({})", ors.join(" OR ")));
        }
    }
    for (field, value) in &params.filters {
        let col = field.name;
        conds.push(match value {
            FilterValue::Bool(b) => format!(
                "t.{col} = {}",
                sql.arg(field.stored(&Value::Bool(Some(*b))))
            ),
            FilterValue::Choice(c) => format!("t.{col} = {}", sql.arg(Value::text(*c))),
            FilterValue::Id(id) => format!("t.{col} = {}", sql.arg(Value::Int(Some(*id)))),
            FilterValue::Date(range) => {
                let (from, to) = range.bounds(now_ms());
                let a = sql.arg(Value::Int(Some(from)));
                let b = sql.arg(Value::Int(Some(to)));
                format!("t.{col} >= {a} AND t.{col} < {b}")
            }
        });
    }
    if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    }
}

struct ListRow {
    id: i64,
    cells: Vec<(Value, Option<String>)>,
}

pub async fn list(site: &Site, ctx: &Ctx, model: &ModelAdmin, query: &str) -> AdminResult {
    let perms = site.perms(ctx, model, None);
    if !perms.view {
        return Err(AdminError::Forbidden);
    }
    let pairs = parse_pairs(query)?;
    let params = Params::parse(model, &pairs);
    let fields: Vec<Column> = model
        .list_display
        .iter()
        .map(|n| Column::new(model, n))
        .collect();

    let mut sql = Sql::default();
    let filter_sql = where_clause(model, &params, &mut sql);
    sql.text = format!("SELECT COUNT(*) FROM {} t{filter_sql}", model.table);
    let count: i64 = sql.query().fetch_one(&site.db).await?.try_get(0)?;
    let total = if filter_sql.is_empty() {
        count
    } else {
        db::count(&site.db, model.table).await?
    };
    let pages = ((count + model.per_page - 1) / model.per_page).max(1);
    let page = params.page.min(pages);

    let mut cols = vec!["t.id".to_owned()];
    for (i, f) in fields.iter().enumerate() {
        cols.push(format!("{} AS c{i}", f.select));
        if let FieldKind::ForeignKey { table, display, .. } = f.kind {
            cols.push(format!(
                "(SELECT {} FROM {table} WHERE id = {}) AS d{i}",
                display_sql(display),
                f.select
            ));
        }
    }
    let order = match params.order {
        Some((i, desc)) => {
            let alias = if matches!(fields[i].kind, FieldKind::ForeignKey { .. }) {
                "d"
            } else {
                "c"
            };
            let dir = if desc { "DESC" } else { "ASC" };
            format!("{alias}{i} {dir}, t.id {dir}")
        }
        None => {
            let dir = if model.ordering.descending {
                "DESC"
            } else {
                "ASC"
            };
            format!("t.{} {dir}, t.id {dir}", model.ordering.column)
        }
    };
    sql.text = format!(
        "SELECT {} FROM {} t{filter_sql} ORDER BY {order} LIMIT {} OFFSET {}",
        cols.join(", "),
        model.table,
        model.per_page,
        (page - 1) * model.per_page
    );
    let mut rows = Vec::new();
    for row in sql.query().fetch_all(&site.db).await? {
        let mut idx = 1;
        let mut cells = Vec::new();
        for f in &fields {
            let v = db::decode(&row, idx, f.kind)?;
            idx += 1;
            let label = if matches!(f.kind, FieldKind::ForeignKey { .. }) {
                idx += 1;
                row.try_get::<Option<String>, _>(idx - 1)?
            } else {
                None
            };
            cells.push((v, label));
        }
        rows.push(ListRow {
            id: row.try_get(0)?,
            cells,
        });
    }

    let mut sidebar = Vec::new();
    for name in &model.list_filter {
        if let Some(field) = model.field_named(name) {
            sidebar.push(filter_block(site, field, &params).await?);
        }
    }

    let title = format!(
        "Select {} to {}",
        model.singular,
        if perms.change { "change" } else { "view" }
    );
    let body = html! {
        div #changelist {
            div .toolbar {
                @if !model.search_fields.is_empty() {
                    form #changelist-search method="get" action=(list_url(ctx, model)) role="search" {
                        label for="searchbar" { "Search" }
                        input #searchbar type="search" name="q" value=(params.q) autofocus;
                        @for (k, v) in params.kept.iter().filter(|(k, _)| k != "q" && k != "p") {
                            input type="hidden" name=(k) value=(v);
                        }
                        button type="submit" { "Search" }
                    }
                }
                @if perms.add {
                    a .addlink .button href=(ctx.url(&format!("{}/add/", model.slug))) { "Add " (model.singular) }
                }
            }
            div .changelist-body {
                form #changelist-form method="post" action=(list_url(ctx, model)) {
                    (csrf_field(ctx))
                    @if perms.delete && !rows.is_empty() {
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
                        (count) " " (plural(count, model.singular, model.plural))
                        @if count != total { " (" (total) " total)" }
                    }
                    @if rows.is_empty() {
                        p .empty { "No " (model.plural) " found." }
                    } @else {
                        table #result_list {
                            thead { tr {
                                @if perms.delete { th .action-checkbox-column scope="col" { span .visually-hidden { "Select" } } }
                                @for (i, f) in fields.iter().enumerate() {
                                    @let (class, next) = match params.order {
                                        Some((j, false)) if j == i => ("sorted ascending", format!("-{}", i + 1)),
                                        Some((j, true)) if j == i => ("sorted descending", format!("{}", i + 1)),
                                        _ => ("sortable", format!("{}", i + 1)),
                                    };
                                    th scope="col" class=(class) {
                                        a href=(params.with("o", Some(&next))) { (f.label) }
                                    }
                                }
                            } }
                            tbody {
                                @for row in &rows {
                                    tr {
                                        @if perms.delete {
                                            td .action-checkbox {
                                                input type="checkbox" name="_selected_action" value=(row.id) aria-label={ "Select " (model.singular) " " (row.id) };
                                            }
                                        }
                                        @for (i, (f, (v, label))) in fields.iter().zip(&row.cells).enumerate() {
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
                    (paginator(&params, page, pages))
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

/// A change-list column: a field, or the row's name.
struct Column {
    label: String,
    kind: FieldKind,
    select: String,
}

impl Column {
    fn new(model: &ModelAdmin, name: &str) -> Self {
        match model.field_named(name) {
            Some(f) => Column {
                label: f.label.to_owned(),
                kind: f.kind,
                select: format!("t.{}", f.name),
            },
            None => Column {
                label: capfirst(model.singular),
                kind: FieldKind::Text {
                    max_len: usize::MAX,
                },
                select: display_sql(model.display),
            },
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
    let objects = db::fetch_objects(&site.db, model, &ids).await?;
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

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("Ab"), "%ab%");
        assert_eq!(like_pattern("50%_x\\"), "%50\\%\\_x\\\\%");
    }
}
