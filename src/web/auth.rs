//! Accounts: register, log in, log out.

use poem::http::{StatusCode, header};
use poem::web::{Data, Form, Query};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;

use super::error::AppError;
use super::error::{retry_after, try_again};
use super::session::{self, current_user};
use super::{AppState, Ctx, csrf_token, see_other, throttle_addr, with_status};
use super::{csrf, device};
use crate::config::Registration;
use crate::domain::{Password, Username};
use crate::store::{joining, rooms, users};
use crate::views::forms::{
    AccountForm, PasswordForm, login_page, password_page, register_page, reset_page,
};
use crate::views::{Viewer, notice_page};

#[derive(Deserialize)]
struct Credentials {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    invite: String,
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

/// Only same-site paths are followed after login (no open redirect to another site). Browsers
/// drop tabs and newlines from a URL and read `\\` as `/`, so `/\t/evil.example` would become
/// `//evil.example`: a path here is printable ASCII without backslashes, as the request paths
/// Parley sends people back to are (percent-encoded).
pub(super) fn safe_next(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if ok { next } else { "/" }
}

const TOO_SIMILAR: &str =
    "That username is too similar to an existing name: people could take one for the other.";

/// Whether anyone may create an account (the log-in page then offers it).
fn sign_up_open(req: &Request) -> bool {
    req.data::<AppState>()
        .is_none_or(|app| app.settings.registration == Registration::Open)
}

#[derive(Deserialize)]
struct Invited {
    #[serde(default)]
    invite: String,
}

/// Who may come in by `/register` (`--registration`): anyone, whoever has a usable invite, or
/// nobody (a 403 page that says so and what to do).
enum Door {
    Open,
    Invited(String),
    Shut(Response),
}

async fn door(app: &AppState, csrf: &str, invite: &str) -> Result<Door, AppError> {
    let shut = |why: &str| {
        Door::Shut(with_status(
            notice_page("No new accounts here", &Viewer::anonymous(csrf), why),
            StatusCode::FORBIDDEN,
        ))
    };
    Ok(match app.settings.registration {
        Registration::Open => Door::Open,
        Registration::Closed => {
            shut("The people who run this Parley make its accounts. Ask one of them for yours.")
        }
        Registration::Invite => {
            let invite = invite.trim();
            if invite.is_empty() {
                shut("This Parley is by invitation: ask someone on it for an invite link.")
            } else if joining::invite_usable(&app.db.pool, invite, crate::now_ms()).await? {
                Door::Invited(invite.to_owned())
            } else {
                shut("That invite link has expired or been used up. Ask for a new one.")
            }
        }
    })
}

#[handler]
pub(super) async fn register_form(
    req: &Request,
    Data(app): Data<&AppState>,
    Query(q): Query<Invited>,
) -> Result<Response, AppError> {
    if current_user(req).await?.is_some() {
        return Ok(see_other("/"));
    }
    let csrf = csrf_token(req);
    let invite = match door(app, &csrf, &q.invite).await? {
        Door::Shut(page) => return Ok(page),
        Door::Open => None,
        Door::Invited(code) => Some(code),
    };
    let form = AccountForm {
        invite: invite.as_deref(),
        ..AccountForm::empty()
    };
    Ok(register_page(&Viewer::anonymous(&csrf), &form).into_response())
}

#[handler]
#[tracing::instrument(level = "debug", skip_all)]
pub(super) async fn register(
    req: &Request,
    Data(app): Data<&AppState>,
    Form(form): Form<Credentials>,
) -> Result<Response, AppError> {
    let csrf = csrf_token(req);
    // Before anything else: a closed door says nothing about names.
    let invite = match door(app, &csrf, &form.invite).await? {
        Door::Shut(page) => return Ok(page),
        Door::Open => None,
        Door::Invited(code) => Some(code),
    };
    let fail = |username_error: Option<&str>, password_error: Option<&str>| {
        let form = AccountForm {
            username: &form.username,
            username_error,
            password_error,
            invite: invite.as_deref(),
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
    let addr = throttle_addr(req, app);
    // Every answer about a name counts against its address, the account made or not, and "taken"
    // among them: otherwise the form would tell a script who has an account as fast as it asks
    // (`Attempt` counts unless told otherwise).
    let _signup = match app.signups.begin("", &addr, false) {
        Ok(attempt) => attempt,
        Err(wait) => {
            let text = try_again("Too many new accounts from your address.", wait);
            let form = AccountForm {
                username: &form.username,
                form_error: Some(&text),
                invite: invite.as_deref(),
                ..AccountForm::empty()
            };
            let mut resp = with_status(
                register_page(&Viewer::anonymous(&csrf), &form),
                StatusCode::TOO_MANY_REQUESTS,
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, retry_after(wait));
            return Ok(resp);
        }
    };
    // A taken name is said before any hashing (the unique index still settles a race).
    if users::find_by_name(&app.db.pool, name.as_str())
        .await?
        .is_some()
    {
        return Ok(fail(Some("That username is taken."), None));
    }
    if users::look_alike_exists(&app.db.pool, &name).await? {
        return Ok(fail(Some(TOO_SIMILAR), None));
    }
    let hash = app.hasher.hash(&pass).await?;
    // The invite's use is taken before the account is made (two people racing for its last use
    // cannot both have it), and given back if the account is not made after all.
    if let Some(code) = &invite
        && !joining::take_invite(&app.db.pool, code, crate::now_ms()).await?
    {
        let text = "That invite link has just been used up. Ask for a new one.";
        let page = notice_page("No new accounts here", &Viewer::anonymous(&csrf), text);
        return Ok(with_status(page, StatusCode::FORBIDDEN));
    }
    let created = users::create(&app.db.pool, &name, &hash, false).await;
    if let (Err(_), Some(code)) = (&created, &invite) {
        joining::give_back_invite(&app.db.pool, code).await?;
    }
    let id = match created {
        Ok(id) => id,
        Err(users::CreateUserError::Taken) => {
            return Ok(fail(Some("That username is taken."), None));
        }
        Err(users::CreateUserError::TooSimilar) => return Ok(fail(Some(TOO_SIMILAR), None)),
        Err(users::CreateUserError::Db(e)) => return Err(e.into()),
    };
    let user = users::find_by_id(&app.db.pool, id)
        .await?
        .ok_or(AppError::Internal("new user vanished".into()))?;
    // A newcomer lands among people: every new account joins the first room (if staff have not
    // removed it), so the sidebar does not open on nothing.
    if let Some(first) = rooms::join_first_room(&app.db.pool, user.id).await? {
        app.hub.joined(first, user.id);
    }
    session::log_in(req, &user).await?;
    tracing::info!(user = %user.username, "registered");
    let mut resp = see_other("/");
    csrf::rotate(&mut resp);
    Ok(resp)
}

#[handler]
pub(super) async fn login_form(req: &Request, Query(q): Query<Next>) -> Result<Response, AppError> {
    if current_user(req).await?.is_some() {
        return Ok(see_other(safe_next(q.next.as_deref().unwrap_or("/"))));
    }
    let csrf = csrf_token(req);
    let form = AccountForm {
        next: q.next.as_deref(),
        sign_up: sign_up_open(req),
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
            sign_up: sign_up_open(req),
            ..AccountForm::empty()
        };
        with_status(login_page(&Viewer::anonymous(&csrf), &form), status)
    };
    let refuse = |why: &str, wait| {
        let mut resp = page(&try_again(why, wait), StatusCode::TOO_MANY_REQUESTS);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, retry_after(wait));
        resp
    };
    // Every attempt costs a hash, a good one too: one address looping good logins would
    // otherwise keep the cores busy for everyone.
    if let Err(wait) = app.limits.logins.take(&addr) {
        return Ok(refuse("Too many log-in attempts from your address.", wait));
    }
    let known = device::knows(req, &app.device_key, &form.username);
    let attempt = match app.throttle.begin(&form.username, &addr, known) {
        Ok(attempt) => attempt,
        Err(wait) => return Ok(refuse("Too many failed log-in attempts.", wait)),
    };
    let user = match check_credentials(app, &form.username, &form.password).await {
        Ok(user) => user,
        Err(busy) => {
            attempt.unchecked();
            return Err(busy);
        }
    };
    let Some(user) = user.filter(|u| u.is_active) else {
        drop(attempt); // a failure
        app.metrics.login_failures.inc();
        return Ok(page(
            "Wrong username or password.",
            StatusCode::UNAUTHORIZED,
        ));
    };
    attempt.succeeded();
    session::log_in(req, &user).await?;
    app.metrics.logins.inc();
    super::telemetry::record_user(req, user.id);
    if app.presence.seen(user.id) {
        app.hub.presence_changed();
    }
    let mut resp = see_other(safe_next(&form.next));
    csrf::rotate(&mut resp);
    let secure = app.settings.secure_cookies || session::is_https(req);
    device::remember(&mut resp, &app.device_key, &user.username, secure);
    Ok(resp)
}

/// The user these credentials are, if they are right. A password too long to be anyone's is
/// not hashed; a name that is nobody's is checked against a dummy hash, so that it takes as long
/// as a wrong password and does not tell who has an account.
async fn check_credentials(
    app: &AppState,
    username: &str,
    password: &str,
) -> Result<Option<users::User>, AppError> {
    if password.len() > Password::MAX_BYTES {
        return Ok(None);
    }
    // A name that could not have been registered is nobody's (and is not sent to the database:
    // PostgreSQL refuses a NUL in text with an error).
    let found = match Username::parse(username) {
        Ok(name) => users::find_by_name(&app.db.pool, name.as_str()).await?,
        Err(_) => None,
    };
    Ok(match found {
        Some(user) => app
            .hasher
            .verify(password, &user.password_hash)
            .await?
            .then_some(user),
        None => {
            app.hasher.dummy_verify(password).await?;
            None
        }
    })
}

#[handler]
pub(super) async fn logout(
    req: &Request,
    Data(app): Data<&AppState>,
) -> Result<Response, AppError> {
    let user = current_user(req).await?;
    session::log_out(req).await?;
    if let Some(user) = user {
        session::revoke(app, user.id).await;
        app.presence.gone(user.id).await;
        app.hub.presence_changed();
    }
    let mut resp = see_other("/login");
    csrf::rotate(&mut resp);
    Ok(resp)
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
    // Its own throttle, per user: a lockout of the name at login (someone else guessing) must
    // not stop its owner, logged in, from changing the password.
    let key = ctx.user.id.to_string();
    let attempt = match app.password_checks.begin(&key, &key, false) {
        Ok(attempt) => attempt,
        Err(wait) => {
            let text = try_again("Too many wrong passwords.", wait);
            let form = PasswordForm {
                current_error: Some(&text),
                ..PasswordForm::default()
            };
            let mut resp = refuse(form, StatusCode::TOO_MANY_REQUESTS);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, retry_after(wait));
            return Ok(resp);
        }
    };
    let pool = &app.db.pool;
    let user = users::find_by_id(pool, ctx.user.id)
        .await?
        .ok_or(AppError::NotFound("Your account no longer exists."))?;
    let right = if form.current_password.len() > Password::MAX_BYTES {
        false
    } else {
        match app
            .hasher
            .verify(&form.current_password, &user.password_hash)
            .await
        {
            Ok(right) => right,
            Err(busy) => {
                attempt.unchecked();
                return Err(busy.into());
            }
        }
    };
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
    let hash = app.hasher.hash(&new).await?;
    users::set_password_hash(pool, user.id, &hash).await?;
    session::revoke(app, user.id).await;
    let user = users::find_by_id(pool, user.id)
        .await?
        .ok_or(AppError::NotFound("Your account no longer exists."))?;
    session::log_in(req, &user).await?;
    tracing::info!(user = %user.username, "changed their password");
    Ok(see_other("/account/password?changed=1"))
}

/// What a reset link says when it is no good: used, expired, or never made.
const RESET_GONE: &str = "This password-reset link has been used or has expired. Ask the people who run Parley for a new one.";

fn reset_gone(csrf: &str) -> Response {
    with_status(
        notice_page("Link no longer valid", &Viewer::anonymous(csrf), RESET_GONE),
        StatusCode::NOT_FOUND,
    )
}

/// The account a reset link is for, while the link is good.
async fn reset_account(app: &AppState, token: &str) -> Result<Option<users::User>, AppError> {
    let pool = &app.db.pool;
    match joining::reset_user(pool, token, crate::now_ms()).await? {
        Some(id) => Ok(users::find_by_id(pool, id).await?),
        None => Ok(None),
    }
}

fn reset_token(req: &Request) -> String {
    req.raw_path_param("token").unwrap_or_default().to_owned()
}

/// `GET /reset/{token}`: a form for a new password, while the link staff made is good.
#[handler]
pub(super) async fn reset_form(
    req: &Request,
    Data(app): Data<&AppState>,
) -> Result<Response, AppError> {
    let csrf = csrf_token(req);
    let token = reset_token(req);
    let Some(user) = reset_account(app, &token).await? else {
        return Ok(reset_gone(&csrf));
    };
    let page = reset_page(&Viewer::anonymous(&csrf), &token, &user.username, None);
    Ok(with_no_referrer(page.into_response()))
}

#[derive(Deserialize)]
pub(super) struct NewPassword {
    #[serde(default)]
    new_password: String,
}

/// `POST /reset/{token} {new_password}`: sets the password and spends the link; every session
/// of the account ends (their tag no longer matches), and this browser is logged in as it.
#[handler]
#[tracing::instrument(level = "debug", skip_all)]
pub(super) async fn reset(
    req: &Request,
    Data(app): Data<&AppState>,
    Form(form): Form<NewPassword>,
) -> Result<Response, AppError> {
    let csrf = csrf_token(req);
    let pool = &app.db.pool;
    let token = reset_token(req);
    let Some(user) = reset_account(app, &token).await? else {
        return Ok(reset_gone(&csrf));
    };
    let new = match Password::parse(&form.new_password, Some(&user.username)) {
        Ok(new) => new,
        Err(invalid) => {
            let page = reset_page(
                &Viewer::anonymous(&csrf),
                &token,
                &user.username,
                Some(invalid.0),
            );
            return Ok(with_no_referrer(with_status(
                page,
                StatusCode::UNPROCESSABLE_ENTITY,
            )));
        }
    };
    let hash = app.hasher.hash(&new).await?;
    let Some(id) = joining::reset_password(pool, &token, &hash, crate::now_ms()).await? else {
        return Ok(reset_gone(&csrf));
    };
    session::revoke(app, id).await;
    let user = users::find_by_id(pool, id)
        .await?
        .ok_or(AppError::NotFound("That account no longer exists."))?;
    session::log_in(req, &user).await?;
    tracing::info!(user = %user.username, "reset their password with a link");
    let mut resp = see_other("/");
    csrf::rotate(&mut resp);
    Ok(resp)
}

/// The link's token is in the page's URL: no request from the page may carry it away in a
/// `Referer`.
fn with_no_referrer(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        header::REFERRER_POLICY,
        poem::http::HeaderValue::from_static("no-referrer"),
    );
    resp
}
