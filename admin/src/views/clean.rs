//! The form's state and cleaning (Django's `forms`): what was typed, what it means as column
//! values, and what is wrong with it. The widgets and the page are in `widgets.rs`.

use crate::clock::{format_ms, parse_datetime};
use crate::db;
use crate::http::{AdminError, Ctx, first};
use crate::model::{Field, FieldErrors, FieldKind, ModelAdmin, Value, Values};
use crate::site::Site;

/// Password fields, on the add form of a model with a password form and on the password form.
pub const PASSWORD1: &str = "password1";
pub const PASSWORD2: &str = "password2";

/// What the user typed (kept when the form comes back with errors) and what is wrong with it.
#[derive(Default)]
pub struct FormState {
    pub raw: Vec<(&'static str, String)>,
    pub errors: FieldErrors,
}

impl FormState {
    pub fn raw(&self, name: &str) -> &str {
        self.raw
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn errors_for<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.errors
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, e)| e)
    }

    pub fn from_values(model: &ModelAdmin, values: &Values) -> Self {
        let raw = model
            .fields
            .iter()
            .filter_map(|f| values.get(f.name).map(|v| (f.name, raw_of(f.kind, v))))
            .collect();
        Self {
            raw,
            errors: Vec::new(),
        }
    }
}

fn raw_of(kind: FieldKind, value: &Value) -> String {
    match (kind, value) {
        (FieldKind::Timestamp, Value::Int(Some(ms))) => format_ms(*ms),
        (_, Value::Int(Some(i))) => i.to_string(),
        (_, Value::Bool(Some(true))) => "on".to_owned(),
        (_, Value::Text(Some(s))) => s.clone(),
        _ => String::new(),
    }
}

pub fn defaults(model: &ModelAdmin) -> Values {
    let mut v = Values::new();
    for f in &model.fields {
        if let Some(d) = &f.default {
            v.set(f.name, d.clone());
        }
    }
    v
}

/// Reads the editable fields from the form over `base`; errors are kept beside the raw input.
pub async fn clean(
    site: &Site,
    ctx: &Ctx,
    model: &ModelAdmin,
    form: &[(String, String)],
    base: Values,
) -> Result<(Values, FormState), AdminError> {
    let mut values = base;
    let mut state = FormState::from_values(model, &values);
    for field in model.fields.iter().filter(|f| f.editable_by(&ctx.user)) {
        let raw = first(form, field.name);
        state.raw.retain(|(n, _)| *n != field.name);
        state.raw.push((field.name, raw.unwrap_or("").to_owned()));
        match clean_field(site, field, raw).await? {
            Ok(v) => values.set(field.name, v),
            Err(e) => state.errors.push((field.name, e)),
        }
    }
    Ok((values, state))
}

async fn clean_field(
    site: &Site,
    field: &Field,
    raw: Option<&str>,
) -> Result<Result<Value, String>, AdminError> {
    if field.kind == FieldKind::Bool {
        // An unticked checkbox is simply absent from the form.
        return Ok(Ok(Value::Bool(Some(
            raw.is_some_and(|v| !matches!(v, "" | "0" | "false" | "off")),
        ))));
    }
    let s = raw.unwrap_or("").trim();
    if s.contains('\0') {
        // As Django's ProhibitNullCharactersValidator: PostgreSQL cannot store one in text.
        return Ok(Err("Null characters are not allowed.".to_owned()));
    }
    if s.is_empty() {
        return Ok(if field.required {
            Err("This field is required.".to_owned())
        } else if field.null {
            Ok(field.null_value())
        } else if matches!(
            field.kind,
            FieldKind::Text { .. } | FieldKind::TextArea { .. } | FieldKind::Choice(_)
        ) {
            Ok(Value::text(""))
        } else {
            Err("This field is required.".to_owned())
        });
    }
    let s = match field.validator {
        Some(validate) => match validate(s) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        },
        None => s.to_owned(),
    };
    Ok(match field.kind {
        FieldKind::Text { max_len } | FieldKind::TextArea { max_len } => {
            let n = s.chars().count();
            if n > max_len {
                Err(format!(
                    "Ensure this value has at most {max_len} characters (it has {n})."
                ))
            } else {
                Ok(Value::Text(Some(s)))
            }
        }
        FieldKind::Int => s
            .parse()
            .map(|i| Value::Int(Some(i)))
            .map_err(|_| "Enter a whole number.".to_owned()),
        FieldKind::Timestamp => parse_datetime(&s)
            .map(|ms| Value::Int(Some(ms)))
            .ok_or_else(|| "Enter a valid date and time (YYYY-MM-DD HH:MM:SS, UTC).".to_owned()),
        FieldKind::ForeignKey { table, display, .. } => {
            let invalid = || {
                "Select a valid choice. That choice is not one of the available choices.".to_owned()
            };
            match s.parse::<i64>() {
                Ok(id) if db::label_of(&site.db, table, display, id).await?.is_some() => {
                    Ok(Value::Int(Some(id)))
                }
                _ => Err(invalid()),
            }
        }
        FieldKind::Choice(choices) => match choices.iter().find(|(v, _)| *v == s) {
            Some(_) => Ok(Value::Text(Some(s))),
            None => Err(format!(
                "Select a valid choice. {s} is not one of the available choices."
            )),
        },
        FieldKind::Bool | FieldKind::Secret => Err("This field cannot be changed here.".to_owned()),
    })
}

/// The two typed passwords, or what is wrong with them before the host has its say.
pub fn new_password(form: &[(String, String)]) -> Result<&str, (&'static str, String)> {
    let (p1, p2) = (
        first(form, PASSWORD1).unwrap_or(""),
        first(form, PASSWORD2).unwrap_or(""),
    );
    if p1.is_empty() {
        Err((PASSWORD1, "This field is required.".to_owned()))
    } else if p1 != p2 {
        Err((
            PASSWORD2,
            "The two password fields didn’t match.".to_owned(),
        ))
    } else {
        Ok(p1)
    }
}

/// A write the database refused, as an error for the form: a broken unique rule next to its
/// field, any other broken rule for the whole form; `None` for errors that are not the input's
/// fault.
pub fn refusal(model: &ModelAdmin, err: &sqlx::Error) -> Option<(&'static str, String)> {
    let sqlx::Error::Database(dberr) = err else {
        return None;
    };
    match dberr.kind() {
        sqlx::error::ErrorKind::UniqueViolation => {
            let hit = match dberr.constraint() {
                // PostgreSQL names the constraint (or unique index).
                Some(name) => model.uniques.iter().find(|u| u.constraint == name),
                // SQLite names none. Its message, `UNIQUE constraint failed: table.column`, is
                // the only place the column appears: read it there, as a fallback only.
                None => {
                    let message = dberr.message();
                    let failed = message
                        .strip_prefix("UNIQUE constraint failed: ")
                        .unwrap_or("");
                    model.uniques.iter().find(|u| {
                        failed
                            .split(", ")
                            .any(|c| c == format!("{}.{}", model.table, u.column))
                    })
                }
            };
            Some(match hit {
                Some(u) => (u.field, u.message.to_owned()),
                None => (
                    "",
                    format!("A {} with these values already exists.", model.singular),
                ),
            })
        }
        sqlx::error::ErrorKind::ForeignKeyViolation
        | sqlx::error::ErrorKind::CheckViolation
        | sqlx::error::ErrorKind::NotNullViolation => Some((
            "",
            "The database refused these values: they break one of its rules.".to_owned(),
        )),
        _ => None,
    }
}
