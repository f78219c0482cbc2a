//! The add and change views: check rights, clean the input (`clean.rs`), write, log, and go
//! where the pressed button says; the page itself is drawn by `widgets.rs`.

use poem::http::StatusCode;
use poem::{Request, Response};

use crate::db::{self, LogEntry, Object};
use crate::host::WriteAction;
use crate::http::{AdminError, AdminResult, Ctx, Flash, first, read_form};
use crate::model::{Field, ModelAdmin, SaveKind, Values};
use crate::site::Site;
use crate::views::clean::{FormState, PASSWORD1, clean, defaults, new_password, refusal};
use crate::views::widgets::render;
use crate::views::{join_words, list_url, object_url, visible_object};

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
            // Unusable until the host has hashed the typed password.
            values.set(column, crate::model::Value::text("!"));
            match new_password(&form) {
                Ok(p) => Some(p),
                Err(e) => {
                    state.errors.push(e);
                    None
                }
            }
        }
        None => None,
    };
    run_before_save(model, &mut values, &mut state, SaveKind::Add);
    if !state.errors.is_empty() {
        return render(site, ctx, model, None, &state, UNPROCESSABLE).await;
    }
    let (id, repr) = match insert(site, ctx, model, &values, password, req).await? {
        Ok(done) => done,
        Err(error) => {
            state.errors.push(error);
            return render(site, ctx, model, None, &state, UNPROCESSABLE).await;
        }
    };
    if let Some(hook) = &model.after_save {
        hook(vec![id], WriteAction::Added).await;
    }
    let done = format!("The {} “{repr}” was added successfully.", model.singular);
    Ok(after_save(ctx, model, id, &form, done))
}

const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

fn run_before_save(model: &ModelAdmin, values: &mut Values, state: &mut FormState, kind: SaveKind) {
    if state.errors.is_empty()
        && let Some(hook) = model.before_save
        && let Err(errors) = hook(values, kind)
    {
        state.errors = errors;
    }
}

/// Inserts and logs the new row, and sets its password through the host when the model has
/// one; the inner error is one to show on the form.
async fn insert(
    site: &Site,
    ctx: &Ctx,
    model: &ModelAdmin,
    values: &Values,
    password: Option<&str>,
    req: &Request,
) -> Result<Result<(i64, String), (&'static str, String)>, AdminError> {
    let mut tx = site.db.begin().await?;
    let id = match db::insert(&mut tx, model, values).await {
        Ok(id) => id,
        Err(e) => return refusal(model, &e).map(Err).ok_or(e.into()),
    };
    let repr = db::repr(&mut tx, model, id).await?;
    let entry = LogEntry {
        user_id: ctx.user.id,
        model: model.slug,
        object_id: id,
        object_repr: &repr,
        flag: db::ADDITION,
        message: "Added.",
    };
    let Some(raw) = password else {
        db::log(&mut tx, entry).await?;
        tx.commit().await?;
        return Ok(Ok((id, repr)));
    };
    // The host writes the hash through its own connection, so the row must be committed first;
    // if the password is refused, the row (never usable, never logged) goes again.
    tx.commit().await?;
    let mut conn = site.db.acquire().await?;
    if let Err(message) = site.host.set_password(req, id, raw).await {
        db::delete(&mut conn, model, id).await?;
        return Ok(Err((PASSWORD1, message)));
    }
    db::log(&mut conn, entry).await?;
    Ok(Ok((id, repr)))
}

pub async fn change(
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
    run_before_save(model, &mut values, &mut state, SaveKind::Change);
    if state.errors.is_empty() {
        match update(site, ctx, model, &object, &values).await? {
            Ok(repr) => {
                if let Some(hook) = &model.after_save {
                    hook(vec![id], WriteAction::Changed).await;
                }
                let done = format!("The {} “{repr}” was changed successfully.", model.singular);
                return Ok(after_save(ctx, model, id, &form, done));
            }
            Err(error) => state.errors.push(error),
        }
    }
    render(site, ctx, model, Some(&object), &state, UNPROCESSABLE).await
}

/// Writes what changed and logs it; answers the object's new name, or an error for the form.
async fn update(
    site: &Site,
    ctx: &Ctx,
    model: &ModelAdmin,
    object: &Object,
    values: &Values,
) -> Result<Result<String, (&'static str, String)>, AdminError> {
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
    match db::update(&mut tx, model, object.id, values, &columns).await {
        Ok(true) => {}
        Ok(false) => return Err(AdminError::NotFound),
        Err(e) => return refusal(model, &e).map(Err).ok_or(e.into()),
    }
    let repr = db::repr(&mut tx, model, object.id).await?;
    let message = if changed.is_empty() {
        "No fields changed.".to_owned()
    } else {
        let labels: Vec<String> = changed.iter().map(|f| f.label.to_lowercase()).collect();
        format!("Changed {}.", join_words(&labels))
    };
    let entry = LogEntry {
        user_id: ctx.user.id,
        model: model.slug,
        object_id: object.id,
        object_repr: &repr,
        flag: db::CHANGE,
        message: &message,
    };
    db::log(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(Ok(repr))
}

/// Django's three buttons decide where a successful save goes.
fn after_save(
    ctx: &Ctx,
    model: &ModelAdmin,
    id: i64,
    form: &[(String, String)],
    done: String,
) -> Response {
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
