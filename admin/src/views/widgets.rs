//! The form's widgets and page (Django's `widgets` and `change_form.html`). The state and
//! cleaning are in `clean.rs`.

use maud::{Markup, html};
use poem::http::StatusCode;

use crate::db::{self, Object};
use crate::html::{capfirst, crumb, csrf_field, describe_hash, last_crumb, layout, show_value};
use crate::http::{AdminError, AdminResult, Ctx};
use crate::model::{Field, FieldKind, ModelAdmin, Perms, Value};
use crate::site::Site;
use crate::views::clean::{FormState, PASSWORD1, PASSWORD2};
use crate::views::{list_url, object_url};

/// Rows offered in a foreign-key select. Beyond this a select is no longer usable anyway; the
/// current value is always included.
const MAX_OPTIONS: i64 = 1000;

/// The add or change page. `object` is `None` on the add form.
pub async fn render(
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
        let editable = can_save && field.editable_by(&ctx.user);
        let widget = if editable {
            widget(site, field, state.raw(field.name)).await?
        } else {
            readonly(site, ctx, model, object, field, perms.change).await?
        };
        rows.push(field_row(field, state, editable, widget));
    }
    if object.is_none() && model.password_column.is_some() {
        rows.push(password_rows(state));
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
            @if can_save { (submit_row(ctx, model, object, perms)) }
        }
    };
    Ok(ctx.page(status, layout(site, ctx, &title, &crumbs, body)))
}

fn field_row(field: &Field, state: &FormState, editable: bool, widget: Markup) -> Markup {
    html! {
        div .form-row .errors[state.errors_for(field.name).next().is_some()] {
            (errorlist(state.errors_for(field.name)))
            @if field.kind == FieldKind::Bool && editable {
                div .checkbox-row { (widget) " " label for={ "id_" (field.name) } { (field.label) } }
            } @else {
                label for={ "id_" (field.name) } .required[field.required] { (field.label) ":" }
                div .field { (widget) }
            }
            @if let Some(help) = field.help { div .help { (help) } }
        }
    }
}

/// The two password fields, as the add form and the password form show them. Their input is
/// never echoed back.
pub fn password_rows(state: &FormState) -> Markup {
    html! {
        @for (name, label) in [(PASSWORD1, "Password"), (PASSWORD2, "Password (again)")] {
            div .form-row .errors[state.errors_for(name).next().is_some()] {
                (errorlist(state.errors_for(name)))
                label .required for={ "id_" (name) } { (label) ":" }
                div .field { input type="password" id={ "id_" (name) } name=(name) autocomplete="new-password"; }
            }
        }
    }
}

/// Django's three save buttons, and the link to delete.
fn submit_row(ctx: &Ctx, model: &ModelAdmin, object: Option<&Object>, perms: Perms) -> Markup {
    html! {
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

pub fn errorlist<'a>(errors: impl Iterator<Item = &'a String>) -> Markup {
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
