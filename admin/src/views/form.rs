//! Add and change forms.

use maud::{Markup, html};
use poem::Request;
use poem::http::StatusCode;

use crate::clock::{format_ms, parse_datetime};
use crate::db::{self, LogEntry, Object};
use crate::host::WriteAction;
use crate::html::{capfirst, crumb, csrf_field, describe_hash, last_crumb, layout, show_value};
use crate::http::{AdminError, AdminResult, Ctx, Flash, first, read_form};
use crate::model::{Field, FieldErrors, FieldKind, ModelAdmin, SaveKind, Value, Values};
use crate::site::Site;
use crate::views::{join_words, list_url, object_url};

/// Rows offered in a foreign-key select. Beyond this a select is no longer usable anyway; the
/// current value is always included.
const MAX_OPTIONS: i64 = 1000;
/// Password fields on the add form of a model with a password form.
const PASSWORD1: &str = "password1";
const PASSWORD2: &str = "password2";

/// What the user typed (kept when the form comes back with errors) and what is wrong with it.
#[derive(Default)]
struct FormState {
    raw: Vec<(&'static str, String)>,
    errors: FieldErrors,
}

impl FormState {
    fn raw(&self, name: &str) -> &str {
        self.raw
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    fn errors_for<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.errors
            .iter()
            .filter(move |(n, _)| *n == name)
            .map(|(_, e)| e)
    }

    fn from_values(model: &ModelAdmin, values: &Values) -> Self {
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

fn defaults(model: &ModelAdmin) -> Values {
    let mut v = Values::new();
    for f in &model.fields {
        if let Some(d) = &f.default {
            v.set(f.name, d.clone());
        }
    }
    v
}

pub async fn add(
    site: &Site,
    ctx: &Ctx,
    model: &ModelAdmin,
    req: &mut Request,
    is_post: bool,
) -> AdminResult {
    if !site.perms(ctx, model, None).add {
        return Err(AdminError::Forbidden);
    }
    if !is_post {
        let state = FormState::from_values(model, &defaults(model));
        return render(site, ctx, model, None, &state, StatusCode::OK).await;
    }
    let form = read_form(req).await?;
    let (mut values, mut state) = clean(site, ctx, model, &form, defaults(model)).await?;
    let password = match model.password_column {
        Some(column) => {
            let (p1, p2) = (
                first(&form, PASSWORD1).unwrap_or(""),
                first(&form, PASSWORD2).unwrap_or(""),
            );
            if p1.is_empty() {
                state
                    .errors
                    .push((PASSWORD1, "This field is required.".to_owned()));
            } else if p1 != p2 {
                state.errors.push((
                    PASSWORD2,
                    "The two password fields didn’t match.".to_owned(),
                ));
            }
            // Unusable until the host has hashed the typed password.
            values.set(column, Value::text("!"));
            Some(p1)
        }
        None => None,
    };
    if state.errors.is_empty()
        && let Some(hook) = model.before_save
        && let Err(errors) = hook(&mut values, SaveKind::Add)
    {
        state.errors = errors;
    }
    if !state.errors.is_empty() {
        return render(
            site,
            ctx,
            model,
            None,
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }

    let mut tx = site.db.begin().await?;
    let id = match db::insert(&mut tx, model, &values).await {
        Ok(id) => id,
        Err(e) => {
            drop(tx);
            return refused(site, ctx, model, None, state, e).await;
        }
    };
    let repr = db::repr(&mut tx, model, id).await?;
    let entry = |user_id| LogEntry {
        user_id,
        model: model.slug,
        object_id: id,
        object_repr: &repr,
        flag: db::ADDITION,
        message: "Added.",
    };
    match password {
        None => {
            db::log(&mut tx, entry(ctx.user.id)).await?;
            tx.commit().await?;
        }
        Some(raw) => {
            // The host writes the hash through its own connection, so the row must be committed
            // first; if the password is refused, the row (never usable, never logged) goes again.
            tx.commit().await?;
            if let Err(message) = site.host.set_password(id, raw).await {
                let mut conn = site.db.acquire().await?;
                db::delete(&mut conn, model, id).await?;
                state.errors.push((PASSWORD1, message));
                return render(
                    site,
                    ctx,
                    model,
                    None,
                    &state,
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
            let mut conn = site.db.acquire().await?;
            db::log(&mut conn, entry(ctx.user.id)).await?;
        }
    }
    site.host
        .after_write(model.slug, &[id], WriteAction::Added)
        .await;
    let done = format!("The {} “{repr}” was added successfully.", model.singular);
    Ok(after_save(ctx, model, id, &form, done))
}

pub async fn change(
    site: &Site,
    ctx: &Ctx,
    model: &ModelAdmin,
    id: i64,
    req: &mut Request,
    is_post: bool,
) -> AdminResult {
    let mut conn = site.db.acquire().await?;
    let object = db::fetch_object(&mut conn, model, id)
        .await?
        .ok_or(AdminError::NotFound)?;
    drop(conn);
    let perms = site.perms(ctx, model, Some(&object.values));
    if !perms.view {
        return Err(AdminError::Forbidden);
    }
    if !is_post {
        let state = FormState::from_values(model, &object.values);
        return render(site, ctx, model, Some(&object), &state, StatusCode::OK).await;
    }
    if !perms.change {
        return Err(AdminError::Forbidden);
    }
    let form = read_form(req).await?;
    let (mut values, mut state) = clean(site, ctx, model, &form, object.values.clone()).await?;
    if state.errors.is_empty()
        && let Some(hook) = model.before_save
        && let Err(errors) = hook(&mut values, SaveKind::Change)
    {
        state.errors = errors;
    }
    if !state.errors.is_empty() {
        return render(
            site,
            ctx,
            model,
            Some(&object),
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let changed: Vec<&Field> = model
        .fields
        .iter()
        .filter(|f| f.editable_by(&ctx.user) && values.get(f.name) != object.values.get(f.name))
        .collect();
    // Editable fields, plus whatever the hook computed: columns it set that are not fields, and
    // read-only fields whose value it changed.
    let columns: Vec<&'static str> = values
        .iter()
        .filter(|(col, v)| {
            *col != "id"
                && match model.field_named(col) {
                    Some(f) => f.editable_by(&ctx.user) || object.values.get(col) != Some(*v),
                    None => true,
                }
        })
        .map(|(col, _)| col)
        .collect();

    let mut tx = site.db.begin().await?;
    match db::update(&mut tx, model, id, &values, &columns).await {
        Ok(true) => {}
        Ok(false) => return Err(AdminError::NotFound),
        Err(e) => {
            drop(tx);
            return refused(site, ctx, model, Some(&object), state, e).await;
        }
    }
    let repr = db::repr(&mut tx, model, id).await?;
    let message = if changed.is_empty() {
        "No fields changed.".to_owned()
    } else {
        let labels: Vec<String> = changed.iter().map(|f| f.label.to_lowercase()).collect();
        format!("Changed {}.", join_words(&labels))
    };
    let entry = LogEntry {
        user_id: ctx.user.id,
        model: model.slug,
        object_id: id,
        object_repr: &repr,
        flag: db::CHANGE,
        message: &message,
    };
    db::log(&mut tx, entry).await?;
    tx.commit().await?;
    site.host
        .after_write(model.slug, &[id], WriteAction::Changed)
        .await;
    let done = format!("The {} “{repr}” was changed successfully.", model.singular);
    Ok(after_save(ctx, model, id, &form, done))
}

/// Django's three buttons decide where a successful save goes.
fn after_save(
    ctx: &Ctx,
    model: &ModelAdmin,
    id: i64,
    form: &[(String, String)],
    done: String,
) -> poem::Response {
    if first(form, "_continue").is_some() {
        let text = format!("{done} You may edit it again below.");
        ctx.redirect(
            &object_url(ctx, model.slug, id, "change"),
            Flash::success(text),
        )
    } else if first(form, "_addanother").is_some() {
        let text = format!("{done} You may add another {} below.", model.singular);
        ctx.redirect(
            &ctx.url(&format!("{}/add/", model.slug)),
            Flash::success(text),
        )
    } else {
        ctx.redirect(&list_url(ctx, model), Flash::success(done))
    }
}

/// A write the database refused: a broken unique rule becomes an error next to its field.
async fn refused(
    site: &Site,
    ctx: &Ctx,
    model: &ModelAdmin,
    object: Option<&Object>,
    mut state: FormState,
    err: sqlx::Error,
) -> AdminResult {
    let sqlx::Error::Database(dberr) = &err else {
        return Err(err.into());
    };
    let error = match dberr.kind() {
        sqlx::error::ErrorKind::UniqueViolation => {
            let message = dberr.message();
            let constraint = dberr.constraint().unwrap_or("");
            let hit = model.uniques.iter().find(|u| {
                message.contains(&format!("{}.{}", model.table, u.column))
                    || constraint.contains(u.column)
            });
            match hit {
                Some(u) => (u.field, u.message.to_owned()),
                None => (
                    "",
                    format!("A {} with these values already exists.", model.singular),
                ),
            }
        }
        sqlx::error::ErrorKind::ForeignKeyViolation
        | sqlx::error::ErrorKind::CheckViolation
        | sqlx::error::ErrorKind::NotNullViolation => (
            "",
            "The database refused these values: they break one of its rules.".to_owned(),
        ),
        _ => return Err(err.into()),
    };
    state.errors.push(error);
    render(
        site,
        ctx,
        model,
        object,
        &state,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

/// Reads the editable fields from the form over `base`; errors are kept beside the raw input.
async fn clean(
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

async fn render(
    site: &Site,
    ctx: &Ctx,
    model: &ModelAdmin,
    object: Option<&Object>,
    state: &FormState,
    status: StatusCode,
) -> AdminResult {
    let perms = site.perms(ctx, model, object.map(|o| &o.values));
    let can_save = if object.is_some() {
        perms.change
    } else {
        perms.add
    };
    let mut rows = Vec::new();
    for field in &model.fields {
        if object.is_none() && (field.readonly || field.kind == FieldKind::Secret) {
            continue;
        }
        let widget = if can_save && field.editable_by(&ctx.user) {
            widget(site, field, state.raw(field.name)).await?
        } else {
            readonly(site, ctx, model, object, field, perms.change).await?
        };
        rows.push(html! {
            div .form-row .errors[state.errors_for(field.name).next().is_some()] {
                (errorlist(state.errors_for(field.name)))
                @if field.kind == FieldKind::Bool && can_save && field.editable_by(&ctx.user) {
                    div .checkbox-row { (widget) " " label for={ "id_" (field.name) } { (field.label) } }
                } @else {
                    label for={ "id_" (field.name) } .required[field.required] { (field.label) ":" }
                    div .field { (widget) }
                }
                @if let Some(help) = field.help { div .help { (help) } }
            }
        });
    }
    if object.is_none() && model.password_column.is_some() {
        for (name, label) in [
            (PASSWORD1, "Password"),
            (PASSWORD2, "Password confirmation"),
        ] {
            rows.push(html! {
                div .form-row .errors[state.errors_for(name).next().is_some()] {
                    (errorlist(state.errors_for(name)))
                    label .required for={ "id_" (name) } { (label) ":" }
                    div .field { input type="password" id={ "id_" (name) } name=(name) autocomplete="new-password"; }
                }
            });
        }
    }
    let (title, action, crumbs) = match object {
        Some(o) => (
            format!(
                "{} {}",
                if can_save { "Change" } else { "View" },
                model.singular
            ),
            object_url(ctx, model.slug, o.id, "change"),
            vec![
                crumb(capfirst(model.plural), list_url(ctx, model)),
                last_crumb(o.repr.clone()),
            ],
        ),
        None => (
            format!("Add {}", model.singular),
            ctx.url(&format!("{}/add/", model.slug)),
            vec![
                crumb(capfirst(model.plural), list_url(ctx, model)),
                last_crumb(format!("Add {}", model.singular)),
            ],
        ),
    };
    let body = html! {
        @if let Some(o) = object {
            ul .object-tools {
                li { a .historylink href=(object_url(ctx, model.slug, o.id, "history")) { "History" } }
            }
            h2 .object-repr { (o.repr) }
        }
        form method="post" action=(action) novalidate {
            (csrf_field(ctx))
            @if !state.errors.is_empty() {
                p .errornote { "Please correct the errors below." }
                (errorlist(state.errors_for("")))
            }
            fieldset .module .aligned { @for row in &rows { (row) } }
            @if can_save {
                div .submit-row {
                    button .default type="submit" name="_save" value="1" { "Save" }
                    @if perms.add { button type="submit" name="_addanother" value="1" { "Save and add another" } }
                    button type="submit" name="_continue" value="1" { "Save and continue editing" }
                    @if let Some(o) = object {
                        @if perms.delete { a .deletelink href=(object_url(ctx, model.slug, o.id, "delete")) { "Delete" } }
                    }
                }
            }
        }
    };
    Ok(ctx.page(status, layout(site, ctx, &title, &crumbs, body)))
}

fn errorlist<'a>(errors: impl Iterator<Item = &'a String>) -> Markup {
    let errors: Vec<&String> = errors.collect();
    html! {
        @if !errors.is_empty() {
            ul .errorlist { @for e in errors { li { (e) } } }
        }
    }
}

async fn widget(site: &Site, field: &Field, raw: &str) -> Result<Markup, AdminError> {
    let id = format!("id_{}", field.name);
    Ok(match field.kind {
        FieldKind::Text { max_len } => html! {
            input type="text" id=(id) name=(field.name) value=(raw) maxlength=(max_len) required[field.required];
        },
        FieldKind::TextArea { max_len } => html! {
            textarea id=(id) name=(field.name) rows="8" cols="60" maxlength=(max_len) required[field.required] { (raw) }
        },
        FieldKind::Bool => html! {
            input type="checkbox" id=(id) name=(field.name) checked[!raw.is_empty()];
        },
        FieldKind::Int => html! {
            input type="number" step="1" id=(id) name=(field.name) value=(raw) required[field.required];
        },
        FieldKind::Timestamp => html! {
            input type="text" id=(id) name=(field.name) value=(raw) placeholder="YYYY-MM-DD HH:MM:SS" required[field.required];
            " UTC"
        },
        FieldKind::ForeignKey { table, display, .. } => {
            let mut options = db::options(&site.db, table, display, MAX_OPTIONS).await?;
            if let Ok(current) = raw.parse::<i64>()
                && !options.iter().any(|(i, _)| *i == current)
                && let Some(name) = db::label_of(&site.db, table, display, current).await?
            {
                options.push((current, name));
            }
            html! {
                select id=(id) name=(field.name) required[field.required] {
                    option value="" { "---------" }
                    @for (value, name) in &options {
                        @let v = value.to_string();
                        option value=(v) selected[v == raw] { (name) }
                    }
                }
            }
        }
        FieldKind::Choice(choices) => html! {
            select id=(id) name=(field.name) required[field.required] {
                @if !field.required || raw.is_empty() { option value="" { "---------" } }
                @for (value, label) in choices {
                    option value=(value) selected[*value == raw] { (label) }
                }
            }
        },
        FieldKind::Secret => html! { (describe_hash(raw)) },
    })
}

async fn readonly(
    site: &Site,
    ctx: &Ctx,
    model: &ModelAdmin,
    object: Option<&Object>,
    field: &Field,
    can_change: bool,
) -> Result<Markup, AdminError> {
    let Some(o) = object else {
        return Ok(html! { span .empty { "—" } });
    };
    let value = o
        .values
        .get(field.name)
        .cloned()
        .unwrap_or_else(|| field.null_value());
    let label = match (field.kind, &value) {
        (FieldKind::ForeignKey { table, display, .. }, Value::Int(Some(id))) => {
            db::label_of(&site.db, table, display, *id).await?
        }
        _ => None,
    };
    let link = match (field.kind, &value) {
        (FieldKind::ForeignKey { model: slug, .. }, Value::Int(Some(id)))
            if site.model(slug).is_ok() =>
        {
            Some(object_url(ctx, slug, *id, "change"))
        }
        _ => None,
    };
    Ok(html! {
        div .readonly #{ "id_" (field.name) } {
            @match link {
                Some(href) => a href=(href) { (show_value(field.kind, &value, label.as_deref())) },
                None => (show_value(field.kind, &value, label.as_deref())),
            }
            @if model.password_column == Some(field.name) && can_change {
                " "
                a .button href=(object_url(ctx, model.slug, o.id, "password")) { "Change password" }
            }
        }
    })
}
