//! Accounts: register, log in, log out.

use std::net::IpAddr;
use std::time::Duration;

use poem::http::StatusCode;
use poem::web::{Data, Form, Query};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;

use super::error::AppError;
use super::session::{self, current_user};
use super::{AppState, Ctx, client_addr, csrf_token, see_other, with_status};
use crate::domain::{Password, Username};
use crate::password;
use crate::store::users;
use crate::views::Viewer;
use crate::views::forms::{AccountForm, PasswordForm, login_page, password_page, register_page};

#[derive(Deserialize)]
struct Credentials {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

/// Only same-site paths are followed after login (no open redirect to another site). Browsers
/// drop tabs and newlines from a URL and read `\\` as `/`, so `/\t/evil.example` would become
/// `//evil.example`: a path here is printable ASCII without backslashes, as the request paths
/// Parley sends people back to are (percent-encoded).
fn safe_next(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if ok { next } else { "/" }
}

/// Whom the throttles count an attempt against: the client's address, or for IPv6 its /64 (one
/// subscriber's network: whoever has one address there has them all).
fn throttle_addr(req: &Request, app: &AppState) -> String {
    match client_addr(req, &app.settings.trusted_proxies).map(|a| a.to_canonical()) {
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(v4) => v4.to_string(),
        None => String::new(),
    }
}

/// "{why} Try again in 3 minutes."
fn try_again(why: &str, wait: Duration) -> String {
    let minutes = wait.as_secs().div_ceil(60).max(1);
    let plural = if minutes == 1 { "" } else { "s" };
    format!("{why} Try again in {minutes} minute{plural}.")
}

#[handler]
pub(super) async fn register_form(req: &Request) -> Result<Response, AppError> {
    if current_user(req).await?.is_some() {
        return Ok(see_other("/"));
    }
    let csrf = csrf_token(req);
    Ok(register_page(&Viewer::anonymous(&csrf), &AccountForm::empty()).into_response())
}

#[handler]
#[tracing::instrument(level = "debug", skip_all)]
pub(super) async fn register(
    req: &Request,
    Data(app): Data<&AppState>,
    Form(form): Form<Credentials>,
) -> Result<Response, AppError> {
    let csrf = csrf_token(req);
    let fail = |username_error: Option<&str>, password_error: Option<&str>| {
        let form = AccountForm {
            username: &form.username,
            username_error,
            password_error,
            ..AccountForm::empty()
        };
        with_status(
            register_page(&Viewer::anonymous(&csrf), &form),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
    };
    let name = Username::parse(&form.username);
    let pass = Password::parse(&form.password, Some(form.username.trim()));
    let (name, pass) = match (name, pass) {
        (Ok(name), Ok(pass)) => (name, pass),
        (name, pass) => {
            let ue = name.err().map(|e| e.0);
            let pe = pass.err().map(|e| e.0);
            return Ok(fail(ue, pe));
        }
    };
    // A taken name is said before any hashing (the unique index still settles a race).
    if users::find_by_name(&app.db.pool, name.as_str())
        .await?
        .is_some()
    {
        return Ok(fail(Some("That username is taken."), None));
    }
    let addr = throttle_addr(req, app);
    // Every account counts against its address, made or not (`Attempt` counts unless told
    // otherwise).
    let _signup = match app.signups.begin("", &addr) {
        Ok(attempt) => attempt,
        Err(wait) => {
            let text = try_again("Too many new accounts from your address.", wait);
            let form = AccountForm {
                username: &form.username,
                form_error: Some(&text),
                ..AccountForm::empty()
            };
            return Ok(with_status(
                register_page(&Viewer::anonymous(&csrf), &form),
                StatusCode::TOO_MANY_REQUESTS,
            ));
        }
    };
    let hash = password::hash(&pass).await;
    let id = match users::create(&app.db.pool, &name, &hash, false).await {
        Ok(id) => id,
        Err(users::CreateUserError::Taken) => {
            return Ok(fail(Some("That username is taken."), None));
        }
        Err(users::CreateUserError::Db(e)) => return Err(e.into()),
    };
    let user = users::find_by_id(&app.db.pool, id)
        .await?
        .ok_or(AppError::Internal("new user vanished".into()))?;
    session::log_in(req, &user).await?;
    tracing::info!(user = %user.username, "registered");
    Ok(see_other("/"))
}

#[handler]
pub(super) async fn login_form(req: &Request, Query(q): Query<Next>) -> Result<Response, AppError> {
    if current_user(req).await?.is_some() {
        return Ok(see_other(safe_next(q.next.as_deref().unwrap_or("/"))));
    }
    let csrf = csrf_token(req);
    let form = AccountForm {
        next: q.next.as_deref(),
        ..AccountForm::empty()
    };
    Ok(login_page(&Viewer::anonymous(&csrf), &form).into_response())
}

#[handler]
#[tracing::instrument(level = "debug", skip_all)]
pub(super) async fn login(
    req: &Request,
    Data(app): Data<&AppState>,
    Form(form): Form<Credentials>,
) -> Result<Response, AppError> {
    let csrf = csrf_token(req);
    let addr = throttle_addr(req, app);
    let next = (!form.next.is_empty()).then_some(form.next.as_str());
    let page = |error: &str, status| {
        let form = AccountForm {
            username: &form.username,
            form_error: Some(error),
            next,
            ..AccountForm::empty()
        };
        with_status(login_page(&Viewer::anonymous(&csrf), &form), status)
    };
    let attempt = match app.throttle.begin(&form.username, &addr) {
        Ok(attempt) => attempt,
        Err(wait) => {
            let text = try_again("Too many failed log-in attempts.", wait);
            return Ok(page(&text, StatusCode::TOO_MANY_REQUESTS));
        }
    };
    let user = if form.password.len() > Password::MAX_BYTES {
        None
    } else {
        // A name that could not have been registered is nobody's (and is not sent to the
        // database: PostgreSQL refuses a NUL in text with an error).
        let name = Username::parse(&form.username).ok();
        let found = match &name {
            Some(name) => users::find_by_name(&app.db.pool, name.as_str()).await?,
            None => None,
        };
        match found {
            Some(user) => password::verify(&form.password, &user.password_hash)
                .await
                .then_some(user),
            None => {
                password::dummy_verify(&form.password).await;
                None
            }
        }
    };
    let Some(user) = user.filter(|u| u.is_active) else {
        drop(attempt); // a failure
        return Ok(page(
            "Wrong username or password.",
            StatusCode::UNAUTHORIZED,
        ));
    };
    attempt.succeeded();
    session::log_in(req, &user).await?;
    if app.presence.seen(user.id) {
        app.hub.presence_changed();
    }
    Ok(see_other(safe_next(&form.next)))
}

#[handler]
pub(super) async fn logout(
    req: &Request,
    Data(app): Data<&AppState>,
) -> Result<Response, AppError> {
    if let Some(user) = current_user(req).await? {
        app.presence.gone(user.id).await;
        app.hub.presence_changed();
    }
    session::log_out(req).await?;
    Ok(see_other("/login"))
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next("/rooms/general"), "/rooms/general");
        assert_eq!(safe_next("//evil.example/"), "/");
        assert_eq!(safe_next("https://evil.example/"), "/");
        assert_eq!(safe_next("/\\evil.example"), "/");
        assert_eq!(safe_next("/\t/evil.example"), "/");
        assert_eq!(safe_next("/\n/evil.example"), "/");
        assert_eq!(safe_next("/ /evil.example"), "/");
        assert_eq!(
            safe_next("/rooms/general?before=5"),
            "/rooms/general?before=5"
        );
        assert_eq!(safe_next(""), "/");
    }
}

#[derive(Deserialize)]
struct Changed {
    changed: Option<String>,
}

#[handler]
pub(super) async fn password_form(ctx: Ctx, Query(q): Query<Changed>) -> Response {
    let form = PasswordForm {
        notice: q
            .changed
            .map(|_| "Your password was changed. Your other sessions are logged out."),
        ..PasswordForm::default()
    };
    password_page(&ctx.viewer(), &form).into_response()
}

#[derive(Deserialize)]
struct PasswordChange {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

/// Changes the viewer's password: the current one is checked (and throttled as a login is),
/// the new one must pass the same rules as at registration. Every other session of the user
/// ends (their tag no longer matches); this one goes on under a fresh id.
#[handler]
#[tracing::instrument(level = "debug", skip_all)]
pub(super) async fn change_password(
    req: &Request,
    Data(app): Data<&AppState>,
    ctx: Ctx,
    Form(form): Form<PasswordChange>,
) -> Result<Response, AppError> {
    let viewer = ctx.viewer();
    let refuse =
        |form: PasswordForm<'_>, status| with_status(password_page(&viewer, &form), status);
    let attempt = match app
        .throttle
        .begin(&ctx.user.username, &throttle_addr(req, app))
    {
        Ok(attempt) => attempt,
        Err(wait) => {
            let text = try_again("Too many wrong passwords.", wait);
            let form = PasswordForm {
                current_error: Some(&text),
                ..PasswordForm::default()
            };
            return Ok(refuse(form, StatusCode::TOO_MANY_REQUESTS));
        }
    };
    let pool = &app.db.pool;
    let user = users::find_by_id(pool, ctx.user.id)
        .await?
        .ok_or(AppError::NotFound("Your account no longer exists."))?;
    let right = form.current_password.len() <= Password::MAX_BYTES
        && password::verify(&form.current_password, &user.password_hash).await;
    if !right {
        drop(attempt); // a failure
        let form = PasswordForm {
            current_error: Some("That is not your current password."),
            ..PasswordForm::default()
        };
        return Ok(refuse(form, StatusCode::UNPROCESSABLE_ENTITY));
    }
    attempt.succeeded();
    let new = match Password::parse(&form.new_password, Some(&user.username)) {
        Ok(new) => new,
        Err(invalid) => {
            let form = PasswordForm {
                new_error: Some(invalid.0),
                ..PasswordForm::default()
            };
            return Ok(refuse(form, StatusCode::UNPROCESSABLE_ENTITY));
        }
    };
    let hash = password::hash(&new).await;
    users::set_password_hash(pool, user.id, &hash).await?;
    app.auth.forget_user(user.id);
    let user = users::find_by_id(pool, user.id)
        .await?
        .ok_or(AppError::NotFound("Your account no longer exists."))?;
    session::log_in(req, &user).await?;
    tracing::info!(user = %user.username, "changed their password");
    Ok(see_other("/account/password?changed=1"))
}
