//! The person's own profile (display name, bio) and theme: `GET|POST /profile`,
//! `POST /account/theme`.

use poem::http::StatusCode;
use poem::web::{Form, Query};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;

use super::error::AppError;
use super::{Ctx, see_other, session, with_status};
use crate::domain::{Bio, DisplayName, Theme};
use crate::store::users;
use crate::views::profile::{ProfileForm, profile_page};

#[derive(Deserialize)]
struct Saved {
    saved: Option<String>,
}

#[handler]
pub(super) async fn profile_form(ctx: Ctx, Query(q): Query<Saved>) -> Result<Response, AppError> {
    let me = users::find_by_id(&ctx.app.db.pool, ctx.user.id)
        .await?
        .ok_or(AppError::NotFound("Your account no longer exists."))?;
    let form = ProfileForm {
        display_name: &me.display_name,
        bio: &me.bio,
        notice: q.saved.map(|_| "Your profile was saved."),
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
                notice: None,
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
