//! The person's own profile (display name, bio, picture) and theme: `GET|POST /profile`,
//! `POST /profile/avatar`, `POST /profile/avatar/remove`, `GET /avatars/{name}`,
//! `POST /account/theme`.

use std::time::Duration;

use poem::http::{StatusCode, header};
use poem::web::{Form, Path, Query};
use poem::{Body, IntoResponse, Request, Response, handler};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::csrf::CsrfToFollow;
use super::error::AppError;
use super::{Ctx, csrf_token, see_other, session, with_status};
use crate::domain::{Bio, DisplayName, Theme};
use crate::files::Files;
use crate::media;
use crate::store::users;
use crate::views::profile::{ProfileForm, profile_page};
use crate::views::timeline::PICTURE_SIZE;

#[derive(Deserialize)]
struct Saved {
    saved: Option<String>,
    picture: Option<String>,
}

/// The viewer as stored (the form shows what the database holds, not a cached login).
async fn me(ctx: &Ctx) -> Result<users::User, AppError> {
    users::find_by_id(&ctx.app.db.pool, ctx.user.id)
        .await?
        .ok_or(AppError::NotFound("Your account no longer exists."))
}

#[handler]
pub(super) async fn profile_form(ctx: Ctx, Query(q): Query<Saved>) -> Result<Response, AppError> {
    let me = me(&ctx).await?;
    let form = ProfileForm {
        display_name: &me.display_name,
        bio: &me.bio,
        notice: match (q.saved, q.picture.as_deref()) {
            (Some(_), _) => Some("Your profile was saved."),
            (_, Some("removed")) => Some("Your picture was removed."),
            (_, Some(_)) => Some("Your picture was saved."),
            _ => None,
        },
        avatar: &me.avatar,
        ..ProfileForm::default()
    };
    Ok(profile_page(&ctx.viewer(), &form).into_response())
}

#[derive(Deserialize)]
struct ProfileChange {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    bio: String,
}

/// Saves the viewer's display name and bio, both or neither: a refused field comes back with
/// what was typed and why (422), and nothing is stored.
#[handler]
pub(super) async fn save_profile(
    ctx: Ctx,
    Form(form): Form<ProfileChange>,
) -> Result<Response, AppError> {
    let (name, bio) = match (
        DisplayName::parse(&form.display_name),
        Bio::parse(&form.bio),
    ) {
        (Ok(name), Ok(bio)) => (name, bio),
        (name, bio) => {
            let refused = ProfileForm {
                display_name: &form.display_name,
                bio: &form.bio,
                display_name_error: name.err().map(|e| e.0),
                bio_error: bio.err().map(|e| e.0),
                ..ProfileForm::default()
            };
            let page = profile_page(&ctx.viewer(), &refused);
            return Ok(with_status(page, StatusCode::UNPROCESSABLE_ENTITY));
        }
    };
    let app = &ctx.app;
    // A new name makes every server forget the messages it has rendered: not without bound.
    if name.as_str() != ctx.user.display_name {
        super::limits::take(
            &app.limits.renames,
            &ctx.user.id,
            "You are changing your display name faster than Parley allows.",
        )?;
    }
    let renamed = users::set_profile(&app.db.pool, ctx.user.id, &name, &bio).await?;
    changed(&ctx).await;
    if renamed {
        // Pages read from the database show the new name at once; so must the messages a poll
        // would take from a room's window of rendered changes, which holds the old one. Nobody's
        // rooms changed: the windows alone are forgotten.
        app.hub.forget_windows_everywhere(app.db.pg.as_ref()).await;
    }
    Ok(see_other("/profile?saved=1"))
}

/// The largest picture a person may send for their avatar.
const MAX_PICTURE_BYTES: usize = 5 * 1024 * 1024;

/// `POST /profile/avatar` (`multipart/form-data`: `csrf_token` first, then `picture`): the
/// viewer's new picture, cropped to its centred square, 96×96 PNG, under a fresh key (so every
/// cached copy of the old one is simply never asked for again); the old one's bytes go once the
/// new one is saved. Anything that is not a picture by its bytes, over 5 MB or over 40
/// megapixels → 422 with the profile page and the reason at the field, nothing changed.
#[handler]
pub(super) async fn upload_avatar(
    req: &Request,
    ctx: Ctx,
    body: Body,
) -> Result<Response, AppError> {
    let app = ctx.app.clone();
    let Some(boundary) = super::files::boundary(req) else {
        return refuse_picture(&ctx, "Choose a picture to upload.").await;
    };
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(MAX_PICTURE_BYTES as u64 + 256 * 1024)
            .for_field("picture", MAX_PICTURE_BYTES as u64 + 1)
            .per_field(4 * 1024),
    );
    let stall = Duration::from_secs(app.settings.body_timeout_secs);
    let mut form = multer::Multipart::with_constraints(
        super::files::stall_deadline(body.into_bytes_stream(), stall),
        boundary,
        constraints,
    );
    // Without the header, the form's token must come before the picture (the middleware did not
    // read this body): nothing of a forged form is decoded.
    let expected = req
        .extensions()
        .get::<CsrfToFollow>()
        .map(|_| csrf_token(req));
    let received = read_picture(&mut form, expected.as_deref()).await;
    let bytes = match received {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return refuse_picture(&ctx, "Choose a picture to upload.").await,
        Err(PictureRefusal::Forbidden) => {
            super::files::drain(form).await;
            return Err(AppError::Forbidden(
                "CSRF token missing or incorrect. Reload the page and try again.",
            ));
        }
        Err(PictureRefusal::Unprocessable(why)) => {
            super::files::drain(form).await;
            return refuse_picture(&ctx, why).await;
        }
    };
    let _turn = app
        .thumbnails
        .acquire()
        .await
        .map_err(|e| AppError::Internal(Box::new(e)))?;
    // A decoder that panics on a crafted file refuses the file, nothing more.
    let made = tokio::task::spawn_blocking(move || media::avatar(&bytes, PICTURE_SIZE))
        .await
        .unwrap_or(Err(media::NotAnAvatar(
            "That is not a picture Parley can show: choose a PNG, JPEG, GIF or WebP.",
        )));
    drop(_turn);
    let png = match made {
        Ok(png) => png,
        Err(media::NotAnAvatar(why)) => return refuse_picture(&ctx, why).await,
    };
    // Each change makes every server forget the messages it has rendered: paced like a rename.
    super::limits::take(
        &app.limits.renames,
        &ctx.user.id,
        "You are changing your profile faster than Parley allows.",
    )?;
    let key = Files::new_avatar_key();
    app.files
        .put(&key, png)
        .await
        .map_err(|e| AppError::Internal(Box::new(e)))?;
    let old = match users::set_avatar(&app.db.pool, ctx.user.id, &key).await {
        Ok(old) => old,
        Err(err) => {
            app.files.delete(&[key]).await;
            return Err(err.into());
        }
    };
    picture_changed(&ctx, old).await;
    Ok(see_other("/profile?picture=saved"))
}

/// `POST /profile/avatar/remove`: back to the initials; the picture's bytes are deleted.
#[handler]
pub(super) async fn remove_avatar(ctx: Ctx) -> Result<Response, AppError> {
    let app = &ctx.app;
    super::limits::take(
        &app.limits.renames,
        &ctx.user.id,
        "You are changing your profile faster than Parley allows.",
    )?;
    let old = users::set_avatar(&app.db.pool, ctx.user.id, "").await?;
    picture_changed(&ctx, old).await;
    Ok(see_other("/profile?picture=removed"))
}

/// After a new picture or none: the old bytes go, every process reads the person again, and
/// no poll serves a message rendered with the old picture from a room's window.
async fn picture_changed(ctx: &Ctx, old: String) {
    let app = &ctx.app;
    if !old.is_empty() {
        app.files.delete(&[old]).await;
    }
    changed(ctx).await;
    app.hub.forget_windows_everywhere(app.db.pg.as_ref()).await;
}

enum PictureRefusal {
    Forbidden,
    Unprocessable(&'static str),
}

/// The `picture` field's bytes (None when the form had none, or an empty one), with the token
/// checked first when `expected` says it must come in the form.
async fn read_picture(
    form: &mut multer::Multipart<'static>,
    expected: Option<&str>,
) -> Result<Option<Vec<u8>>, PictureRefusal> {
    const TOO_BIG: PictureRefusal =
        PictureRefusal::Unprocessable("That picture is too big: at most 5 MB.");
    const UNREADABLE: PictureRefusal =
        PictureRefusal::Unprocessable("The picture did not arrive whole. Try again.");
    let mut sent_token: Option<String> = None;
    let token_ok = |sent: &Option<String>| match expected {
        None => true,
        Some(expected) => bool::from(
            sent.as_deref()
                .unwrap_or_default()
                .as_bytes()
                .ct_eq(expected.as_bytes()),
        ),
    };
    let mut picture = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(multer::Error::StreamSizeExceeded { .. }) => return Err(TOO_BIG),
            Err(_) => return Err(UNREADABLE),
        };
        let mut field = field;
        match field.name() {
            Some("csrf_token") => sent_token = Some(field.text().await.map_err(|_| UNREADABLE)?),
            Some("picture") if picture.is_none() => {
                if !token_ok(&sent_token) {
                    return Err(PictureRefusal::Forbidden);
                }
                let mut bytes = Vec::new();
                loop {
                    match field.chunk().await {
                        Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                        Ok(None) => break,
                        Err(
                            multer::Error::FieldSizeExceeded { .. }
                            | multer::Error::StreamSizeExceeded { .. },
                        ) => return Err(TOO_BIG),
                        Err(_) => return Err(UNREADABLE),
                    }
                    if bytes.len() > MAX_PICTURE_BYTES {
                        return Err(TOO_BIG);
                    }
                }
                picture = Some(bytes);
            }
            _ => loop {
                match field.chunk().await {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => return Err(UNREADABLE),
                }
            },
        }
    }
    if !token_ok(&sent_token) {
        return Err(PictureRefusal::Forbidden);
    }
    Ok(picture.filter(|b| !b.is_empty()))
}

/// The profile page with the reason the picture was refused at its field (422); nothing changed.
async fn refuse_picture(ctx: &Ctx, why: &'static str) -> Result<Response, AppError> {
    let me = me(ctx).await?;
    let form = ProfileForm {
        display_name: &me.display_name,
        bio: &me.bio,
        avatar: &me.avatar,
        avatar_error: Some(why),
        ..ProfileForm::default()
    };
    let page = profile_page(&ctx.viewer(), &form);
    Ok(with_status(page, StatusCode::UNPROCESSABLE_ENTITY))
}

/// `GET /avatars/{name}`: a person's picture, to anyone logged in (as public as their name).
/// Only a name of an avatar key's shape reaches the store, so nothing else in it can be asked
/// for; the key changes with the picture, so it is cached for good.
#[handler]
pub(super) async fn avatar(ctx: Ctx, Path(name): Path<String>) -> Result<Response, AppError> {
    const NONE: AppError = AppError::NotFound("There is no such picture.");
    let key = Files::avatar_key(&name).ok_or(NONE)?;
    let bytes = match ctx.app.files.read_all(&key).await {
        Ok(bytes) => bytes,
        Err(crate::files::Error::NotFound { .. }) => return Err(NONE),
        Err(err) => return Err(AppError::Internal(Box::new(err))),
    };
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "image/png")
        .header(
            header::CACHE_CONTROL,
            "private, max-age=31536000, immutable",
        )
        .header("x-content-type-options", "nosniff")
        .header("content-security-policy", "sandbox")
        .body(bytes))
}

#[derive(Deserialize)]
struct ThemeChoice {
    #[serde(default)]
    theme: String,
}

/// Saves the viewer's theme and answers with the page they chose it on, drawn in it.
#[handler]
pub(super) async fn set_theme(
    req: &Request,
    ctx: Ctx,
    Form(form): Form<ThemeChoice>,
) -> Result<Response, AppError> {
    let theme = Theme::parse(&form.theme).map_err(|e| AppError::BadRequest(e.0))?;
    users::set_theme(&ctx.app.db.pool, ctx.user.id, theme).await?;
    changed(&ctx).await;
    Ok(see_other(&back(req)))
}

/// Every process reads the person again before their next page (a cached login carries the old
/// name and theme); their other pages' polls answer and poll afresh.
async fn changed(ctx: &Ctx) {
    session::revoke(&ctx.app, ctx.user.id).await;
}

/// The page a form was posted from, as a path on this site (`Referer`), or the home page.
fn back(req: &Request) -> String {
    let path = req
        .headers()
        .get(poem::http::header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<poem::http::Uri>().ok())
        .and_then(|uri| uri.path_and_query().map(|p| p.as_str().to_owned()))
        .unwrap_or_default();
    super::auth::safe_next(&path).to_owned()
}
