//! The change list's query step (Django's `views/main.py` `ChangeList`): the request's
//! parameters, the counts, the page and its rows. Rendering is in `list.rs`.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::clock::{DateRange, now_ms};
use crate::db::{self, Sql, display_sql};
use crate::host::AdminUser;
use crate::html::capfirst;
use crate::http::{AdminError, parse_pairs, query_string};
use crate::model::{Field, FieldKind, ModelAdmin, Value};
use crate::site::Site;

/// More search terms than this are ignored; each one adds a condition per search field.
const MAX_TERMS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterValue {
    Bool(bool),
    Choice(&'static str),
    Id(i64),
    Date(DateRange),
}

/// The recognised query parameters; anything else in the query string is ignored.
pub struct Params<'m> {
    pub q: String,
    /// Index into `list_display` and whether descending.
    pub order: Option<(usize, bool)>,
    pub page: i64,
    pub filters: Vec<(&'m Field, FilterValue)>,
    /// The valid parameters as given, for building links that change one of them.
    pub kept: Vec<(String, String)>,
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
    pub fn with(&self, key: &str, value: Option<&str>) -> String {
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

    pub fn filter_is(&self, field: &Field, value: Option<&FilterValue>) -> bool {
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

/// The conditions of the search, the filters and the user's row filter.
fn where_clause(
    model: &ModelAdmin,
    rows: Option<&'static str>,
    params: &Params,
    sql: &mut Sql,
) -> String {
    let mut conds: Vec<String> = rows.map(|r| format!("({r})")).into_iter().collect();
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

/// One row of the list: its id, and per column its value and, for a foreign key, the name of
/// the row it refers to.
pub struct ListRow {
    pub id: i64,
    pub cells: Vec<(Value, Option<String>)>,
}

/// A change-list column: a field, or the row's name.
pub struct Column {
    pub label: String,
    pub kind: FieldKind,
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

/// Everything the change list shows, read from the database for one request.
pub struct ChangeList<'m> {
    pub model: &'m ModelAdmin,
    pub params: Params<'m>,
    pub columns: Vec<Column>,
    pub rows: Vec<ListRow>,
    /// Rows matching the search and filters.
    pub count: i64,
    /// Rows the user may see at all.
    pub total: i64,
    /// The page shown (clamped to the last) and how many there are.
    pub page: i64,
    pub pages: i64,
}

impl<'m> ChangeList<'m> {
    pub async fn get(
        site: &Site,
        user: &AdminUser,
        model: &'m ModelAdmin,
        query: &str,
    ) -> Result<Self, AdminError> {
        let params = Params::parse(model, &parse_pairs(query)?);
        let columns: Vec<Column> = model
            .list_display
            .iter()
            .map(|n| Column::new(model, n))
            .collect();
        let rows_filter = model.rows_for(user);
        let mut sql = Sql::default();
        let where_sql = where_clause(model, rows_filter, &params, &mut sql);
        sql.text = format!("SELECT COUNT(*) FROM {} t{where_sql}", model.table);
        let count: i64 = sql.query().fetch_one(&site.db).await?.try_get(0)?;
        let total = if params.q.is_empty() && params.filters.is_empty() {
            count
        } else {
            db::count(&site.db, model, rows_filter).await?
        };
        let pages = ((count + model.per_page - 1) / model.per_page).max(1);
        let page = params.page.min(pages);
        sql.text = format!(
            "SELECT {} FROM {} t{where_sql} ORDER BY {} LIMIT {} OFFSET {}",
            select_list(&columns),
            model.table,
            order_by(model, &columns, params.order),
            model.per_page,
            (page - 1) * model.per_page
        );
        let rows = sql
            .query()
            .fetch_all(&site.db)
            .await?
            .iter()
            .map(|row| list_row(&columns, row))
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(ChangeList {
            model,
            params,
            columns,
            rows,
            count,
            total,
            page,
            pages,
        })
    }
}

/// `t.id`, then per column its value as `c{i}` and, for a foreign key, the referred row's name
/// as `d{i}` (so that sorting by it sorts by name).
fn select_list(columns: &[Column]) -> String {
    let mut cols = vec!["t.id".to_owned()];
    for (i, f) in columns.iter().enumerate() {
        cols.push(format!("{} AS c{i}", f.select));
        if let FieldKind::ForeignKey { table, display, .. } = f.kind {
            cols.push(format!(
                "(SELECT {} FROM {table} WHERE id = {}) AS d{i}",
                display_sql(display),
                f.select
            ));
        }
    }
    cols.join(", ")
}

fn order_by(model: &ModelAdmin, columns: &[Column], order: Option<(usize, bool)>) -> String {
    match order {
        Some((i, desc)) => {
            let alias = if matches!(columns[i].kind, FieldKind::ForeignKey { .. }) {
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
    }
}

fn list_row(columns: &[Column], row: &AnyRow) -> Result<ListRow, sqlx::Error> {
    let mut idx = 1;
    let mut cells = Vec::new();
    for f in columns {
        let v = db::decode(row, idx, f.kind)?;
        idx += 1;
        let label = if matches!(f.kind, FieldKind::ForeignKey { .. }) {
            idx += 1;
            row.try_get::<Option<String>, _>(idx - 1)?
        } else {
            None
        };
        cells.push((v, label));
    }
    Ok(ListRow {
        id: row.try_get(0)?,
        cells,
    })
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
