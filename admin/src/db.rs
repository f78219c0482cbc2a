//! The admin's SQL. Identifiers and expressions come from the static model descriptions; every
//! value is bound. The same text runs on SQLite and PostgreSQL through sqlx's Any driver.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AnyPool, Row};

use crate::model::{FieldKind, ModelAdmin, OnDelete, Related, Value, Values};

pub type Db = AnyPool;

/// SQL text with numbered placeholders for its bound values.
#[derive(Default)]
pub struct Sql {
    pub text: String,
    pub args: Vec<Value>,
}

impl Sql {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            args: Vec::new(),
        }
    }

    /// Adds a bound value and returns its placeholder.
    pub fn arg(&mut self, value: Value) -> String {
        self.args.push(value);
        format!("${}", self.args.len())
    }

    pub fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        self.args
            .iter()
            .fold(sqlx::query(&self.text), |q, v| match v {
                Value::Int(v) => q.bind(*v),
                Value::Bool(v) => q.bind(*v),
                Value::Text(v) => q.bind(v.clone()),
            })
    }
}

/// A row's name as text; the cast lets a model name rows by a number too.
pub fn display_sql(expr: &str) -> String {
    format!("CAST(({expr}) AS TEXT)")
}

pub fn decode(row: &AnyRow, idx: usize, kind: FieldKind) -> Result<Value, sqlx::Error> {
    Ok(match kind {
        FieldKind::Bool => match row.try_get::<Option<bool>, _>(idx) {
            Ok(v) => Value::Bool(v),
            // SQLite may hand back a plain integer for a boolean.
            Err(_) => Value::Bool(row.try_get::<Option<i64>, _>(idx)?.map(|i| i != 0)),
        },
        FieldKind::Int | FieldKind::Timestamp | FieldKind::ForeignKey { .. } => {
            Value::Int(row.try_get(idx)?)
        }
        FieldKind::Text { .. }
        | FieldKind::TextArea { .. }
        | FieldKind::Choice(_)
        | FieldKind::Secret => Value::Text(row.try_get(idx)?),
    })
}

/// ` AND (filter)`, or nothing: a model's row filter (see [`crate::RowFilter`]) added to a
/// `WHERE`.
pub fn and_rows(rows: Option<&str>) -> String {
    rows.map(|cond| format!(" AND ({cond})"))
        .unwrap_or_default()
}

/// How many rows of the model there are, of those `rows` lets through.
pub async fn count(db: &Db, model: &ModelAdmin, rows: Option<&str>) -> Result<i64, sqlx::Error> {
    let text = format!(
        "SELECT COUNT(*) FROM {} t WHERE 1 = 1{}",
        model.table,
        and_rows(rows)
    );
    sqlx::query_scalar(&text).fetch_one(db).await
}

/// One object with every declared field and its name.
#[derive(Debug, Clone)]
pub struct Object {
    pub id: i64,
    pub values: Values,
    pub repr: String,
}

fn object_select(model: &ModelAdmin) -> String {
    let cols: Vec<&str> = model.fields.iter().map(|f| f.name).collect();
    format!(
        "SELECT {}, {} FROM {} t",
        cols.join(", "),
        display_sql(model.display),
        model.table
    )
}

fn object_from_row(model: &ModelAdmin, row: &AnyRow) -> Result<Object, sqlx::Error> {
    let mut values = Values::new();
    for (i, f) in model.fields.iter().enumerate() {
        values.set(f.name, decode(row, i, f.kind)?);
    }
    let id = values.int("id").unwrap_or_default();
    let repr: Option<String> = row.try_get(model.fields.len())?;
    Ok(Object {
        id,
        values,
        repr: repr.unwrap_or_else(|| format!("#{id}")),
    })
}

/// The object, if it exists and `rows` (the model's row filter for the user) lets it through.
pub async fn fetch_object(
    conn: &mut AnyConnection,
    model: &ModelAdmin,
    id: i64,
    rows: Option<&str>,
) -> Result<Option<Object>, sqlx::Error> {
    let mut sql = Sql::new(object_select(model));
    let p = sql.arg(Value::Int(Some(id)));
    sql.push(&format!(" WHERE id = {p}{}", and_rows(rows)));
    match sql.query().fetch_optional(conn).await? {
        Some(row) => Ok(Some(object_from_row(model, &row)?)),
        None => Ok(None),
    }
}

pub async fn fetch_objects(
    db: &Db,
    model: &ModelAdmin,
    ids: &[i64],
    rows: Option<&str>,
) -> Result<Vec<Object>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(object_select(model));
    let marks: Vec<String> = ids
        .iter()
        .map(|id| sql.arg(Value::Int(Some(*id))))
        .collect();
    sql.push(&format!(
        " WHERE id IN ({}){} ORDER BY id",
        marks.join(", "),
        and_rows(rows)
    ));
    let rows = sql.query().fetch_all(db).await?;
    rows.iter().map(|row| object_from_row(model, row)).collect()
}

pub async fn repr(
    conn: &mut AnyConnection,
    model: &ModelAdmin,
    id: i64,
) -> Result<String, sqlx::Error> {
    let mut sql = Sql::new(format!(
        "SELECT {} FROM {} WHERE id = ",
        display_sql(model.display),
        model.table
    ));
    let p = sql.arg(Value::Int(Some(id)));
    sql.push(&p);
    let name: Option<Option<String>> = sql.query().fetch_optional(conn).await?.map(|r| r.get(0));
    Ok(name.flatten().unwrap_or_else(|| format!("#{id}")))
}

/// Rows of a related table to offer in a select, at most `limit`, by name.
pub async fn options(
    db: &Db,
    table: &str,
    display: &str,
    limit: i64,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    let d = display_sql(display);
    let rows = sqlx::query(&format!(
        "SELECT id, {d} AS d FROM {table} ORDER BY d, id LIMIT {limit}"
    ))
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            let id: i64 = r.try_get(0)?;
            let name: Option<String> = r.try_get(1)?;
            Ok((id, name.unwrap_or_else(|| format!("#{id}"))))
        })
        .collect()
}

pub async fn label_of(
    db: &Db,
    table: &str,
    display: &str,
    id: i64,
) -> Result<Option<String>, sqlx::Error> {
    let mut sql = Sql::new(format!(
        "SELECT {} FROM {table} WHERE id = ",
        display_sql(display)
    ));
    let p = sql.arg(Value::Int(Some(id)));
    sql.push(&p);
    let row = sql.query().fetch_optional(db).await?;
    Ok(row
        .map(|r| r.try_get::<Option<String>, _>(0))
        .transpose()?
        .map(|n| n.unwrap_or_else(|| format!("#{id}"))))
}

/// How many rows of `related` refer to the objects, and the names of the first `limit` (with
/// their ids when the related table is a registered model).
pub async fn related_rows(
    db: &Db,
    related: &Related,
    ids: &[i64],
    limit: i64,
) -> Result<(i64, Vec<(Option<i64>, String)>), sqlx::Error> {
    let mut sql = Sql::new(String::new());
    let marks: Vec<String> = ids
        .iter()
        .map(|id| sql.arg(Value::Int(Some(*id))))
        .collect();
    let cond = format!("{} IN ({})", related.column, marks.join(", "));
    sql.text = format!("SELECT COUNT(*) FROM {} WHERE {cond}", related.table);
    let count: i64 = sql.query().fetch_one(db).await?.try_get(0)?;
    let name = display_sql(related.display);
    // Tables without an id (a join table) are listed by name only.
    let (id_col, order) = if related.model.is_some() {
        ("id", "id")
    } else {
        ("NULL", "2")
    };
    sql.text = format!(
        "SELECT {id_col}, {name} FROM {} WHERE {cond} ORDER BY {order} LIMIT {limit}",
        related.table
    );
    let rows = sql.query().fetch_all(db).await?;
    let sample = rows
        .iter()
        .map(|r| {
            let id: Option<i64> = r.try_get(0)?;
            let name: Option<String> = r.try_get(1)?;
            Ok((id, name.unwrap_or_else(|| "—".to_owned())))
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok((count, sample))
}

fn stored(model: &ModelAdmin, column: &str, value: &Value) -> Value {
    model
        .field_named(column)
        .map_or_else(|| value.clone(), |f| f.stored(value))
}

pub async fn insert(
    conn: &mut AnyConnection,
    model: &ModelAdmin,
    values: &Values,
) -> Result<i64, sqlx::Error> {
    let mut sql = Sql::default();
    let mut cols = Vec::new();
    let mut marks = Vec::new();
    for (col, v) in values.iter().filter(|(c, _)| *c != "id") {
        cols.push(col);
        marks.push(sql.arg(stored(model, col, v)));
    }
    sql.text = format!(
        "INSERT INTO {} ({}) VALUES ({}) RETURNING id",
        model.table,
        cols.join(", "),
        marks.join(", ")
    );
    sql.query().fetch_one(conn).await?.try_get(0)
}

/// Writes `columns` of `values` to row `id`; false when the row is gone.
pub async fn update(
    conn: &mut AnyConnection,
    model: &ModelAdmin,
    id: i64,
    values: &Values,
    columns: &[&'static str],
) -> Result<bool, sqlx::Error> {
    let mut sql = Sql::default();
    let mut sets = Vec::new();
    for col in columns {
        if let Some(v) = values.get(col) {
            sets.push(format!("{col} = {}", sql.arg(stored(model, col, v))));
        }
    }
    let p = sql.arg(Value::Int(Some(id)));
    if sets.is_empty() {
        // Nothing to write, but the caller still needs to know whether the row exists.
        sql.text = format!("SELECT id FROM {} WHERE id = {p}", model.table);
        return Ok(sql.query().fetch_optional(conn).await?.is_some());
    }
    sql.text = format!(
        "UPDATE {} SET {} WHERE id = {p}",
        model.table,
        sets.join(", ")
    );
    Ok(sql.query().execute(conn).await?.rows_affected() > 0)
}

/// Deletes the object and what refers to it; false when the row is gone.
pub async fn delete(
    conn: &mut AnyConnection,
    model: &ModelAdmin,
    id: i64,
) -> Result<bool, sqlx::Error> {
    for r in &model.related {
        let text = match r.on_delete {
            OnDelete::Cascade => format!("DELETE FROM {} WHERE {} = $1", r.table, r.column),
            OnDelete::SetNull => format!(
                "UPDATE {} SET {c} = NULL WHERE {c} = $1",
                r.table,
                c = r.column
            ),
        };
        sqlx::query(&text).bind(id).execute(&mut *conn).await?;
    }
    let done = sqlx::query(&format!("DELETE FROM {} WHERE id = $1", model.table))
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub const ADDITION: i64 = 1;
pub const CHANGE: i64 = 2;
pub const DELETION: i64 = 3;

pub struct LogEntry<'a> {
    pub user_id: i64,
    pub model: &'a str,
    pub object_id: i64,
    pub object_repr: &'a str,
    pub flag: i64,
    pub message: &'a str,
}

pub async fn log(conn: &mut AnyConnection, e: LogEntry<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO admin_log (action_time_ms, user_id, model, object_id, object_repr, action_flag, change_message) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(crate::clock::now_ms())
    .bind(e.user_id)
    .bind(e.model.to_owned())
    .bind(e.object_id.to_string())
    .bind(e.object_repr.to_owned())
    .bind(e.flag)
    .bind(e.message.to_owned())
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct LoggedAction {
    pub time_ms: i64,
    pub user: Option<String>,
    pub model: String,
    pub object_id: String,
    pub object_repr: String,
    pub flag: i64,
    pub message: String,
}

fn logged_actions(rows: &[AnyRow]) -> Result<Vec<LoggedAction>, sqlx::Error> {
    rows.iter()
        .map(|r| {
            Ok(LoggedAction {
                time_ms: r.try_get(0)?,
                user: r.try_get(1)?,
                model: r.try_get(2)?,
                object_id: r.try_get(3)?,
                object_repr: r.try_get(4)?,
                flag: r.try_get(5)?,
                message: r.try_get(6)?,
            })
        })
        .collect()
}

fn log_select(user_table: &str, user_display: &str) -> String {
    format!(
        "SELECT l.action_time_ms, (SELECT {} FROM {user_table} WHERE id = l.user_id), l.model, \
         l.object_id, l.object_repr, l.action_flag, l.change_message FROM admin_log l",
        display_sql(user_display)
    )
}

pub async fn recent_actions(
    db: &Db,
    users: (&str, &str),
    user_id: i64,
    limit: i64,
) -> Result<Vec<LoggedAction>, sqlx::Error> {
    let text = format!(
        "{} WHERE l.user_id = $1 ORDER BY l.action_time_ms DESC, l.id DESC LIMIT {limit}",
        log_select(users.0, users.1)
    );
    logged_actions(&sqlx::query(&text).bind(user_id).fetch_all(db).await?)
}

pub async fn history(
    db: &Db,
    users: (&str, &str),
    model: &str,
    object_id: i64,
) -> Result<Vec<LoggedAction>, sqlx::Error> {
    let text = format!(
        "{} WHERE l.model = $1 AND l.object_id = $2 ORDER BY l.action_time_ms, l.id",
        log_select(users.0, users.1)
    );
    let rows = sqlx::query(&text)
        .bind(model.to_owned())
        .bind(object_id.to_string())
        .fetch_all(db)
        .await?;
    logged_actions(&rows)
}
