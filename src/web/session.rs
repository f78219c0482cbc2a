//! Sessions (tower-sessions, stored in the database) under poem, and who the visitor is.
//!
//! tower-sessions' own layer does not fit poem's request type, so this middleware does what its
//! `SessionManager` does: session from cookie → request extensions → save and set the cookie if
//! the handler changed it, expire the cookie if the session was emptied.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use parley_admin::cookie_str;
use poem::http::header;
use poem::{Endpoint, FromRequest, IntoResponse, Middleware, Request, RequestBody, Response};
use tower_sessions_core::Session;
use tower_sessions_core::session::{Expiry, Id};

use super::AppState;
use super::error::AppError;
use crate::cache::{Cache, RELOAD_AHEAD};
use crate::db::SessionBackend;
use crate::store::users::{self, User};

pub const SESSION_COOKIE: &str = "parley_session";
const SESSION_DAYS: i64 = 14;
const USER_ID: &str = "user_id";
/// A fingerprint of the password hash: changing the password ends the other sessions.
const AUTH_TAG: &str = "auth";

/// How long a verified session → user mapping is trusted without asking the database. Bounds
/// how long a logout on another server, a deactivation or a password change takes to bite.
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(10);

pub struct SessionLayer {
    pub store: Arc<SessionBackend>,
    pub secure: bool,
}

impl<E: Endpoint> Middleware<E> for SessionLayer {
    type Output = SessionEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        SessionEndpoint {
            inner,
            store: self.store.clone(),
            secure: self.secure,
        }
    }
}

pub struct SessionEndpoint<E> {
    inner: E,
    store: Arc<SessionBackend>,
    secure: bool,
}

impl<E: Endpoint> Endpoint for SessionEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let sent_id = cookie_str(&req, SESSION_COOKIE).and_then(|v| Id::from_str(v).ok());
        let secure = self.secure || is_https(&req);
        let session = Session::new(sent_id, self.store.clone(), Some(expiry()));
        req.extensions_mut().insert(session.clone());
        let mut resp = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => super::error::response_of(e),
        };
        // An error's page says who is looking (`error::render`): only then is the session read.
        if resp.extensions().get::<super::error::Failure>().is_some() {
            resp.extensions_mut().insert(session.clone());
        }
        // The store's futures are boxed: this middleware's future is part of every request, and
        // inline they would make each one kilobytes larger for a path few requests take.
        if session.is_modified() {
            if Box::pin(session.is_empty()).await {
                if sent_id.is_some() {
                    append_cookie(
                        &mut resp,
                        &format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"),
                    );
                }
            } else if let Err(err) = Box::pin(session.save()).await {
                tracing::error!(%err, "could not save the session");
            } else if let Some(id) = session.id() {
                let max_age = SESSION_DAYS * 24 * 3600;
                let flags = if secure { "; Secure" } else { "" };
                append_cookie(
                    &mut resp,
                    &format!(
                        "{SESSION_COOKIE}={id}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{flags}"
                    ),
                );
            }
        }
        Ok(resp)
    }
}

fn expiry() -> Expiry {
    Expiry::OnInactivity(time::Duration::days(SESSION_DAYS))
}

pub fn is_https(req: &Request) -> bool {
    req.uri().scheme_str() == Some("https")
        || req
            .headers()
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes() == b"https")
}

pub fn append_cookie(resp: &mut Response, value: &str) {
    if let Ok(v) = header::HeaderValue::from_str(value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The logged-in user, as far as the handlers need to know.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: i64,
    pub username: String,
    /// Empty when they have none.
    pub display_name: String,
    /// Their picture's key; empty for none.
    pub avatar: String,
    pub theme: crate::domain::Theme,
    pub is_staff: bool,
    pub is_superuser: bool,
    /// The user's revocation count (`Hub::revocation`) when this was read from the database.
    pub revision: u64,
}

impl CurrentUser {
    /// The user as a page's header shows them.
    pub fn viewer<'a>(&'a self, csrf: &'a str) -> crate::views::Viewer<'a> {
        crate::views::Viewer {
            username: Some(&self.username),
            display_name: &self.display_name,
            theme: self.theme,
            is_staff: self.is_staff,
            csrf,
        }
    }

    /// The user as the messages they write show them.
    pub fn author(&self) -> crate::store::messages::Author<'_> {
        crate::store::messages::Author {
            id: self.id,
            username: &self.username,
            display_name: &self.display_name,
            avatar: &self.avatar,
        }
    }
}

/// Session id → user, so that a long-poll (one per listener per message) costs no database read.
pub type AuthCache = Cache<String, CurrentUser>;

impl AuthCache {
    /// Drops every cached session of a user (deactivated, deleted, password changed here).
    pub fn forget_user(&self, user: i64) {
        self.forget(|_, u| u.id == user);
    }

    pub fn forget_session(&self, session: &str) {
        self.remove(&session.to_owned());
    }
}

/// `user`'s sessions may have ended (logged out, deactivated, password changed): every process
/// reads them again before trusting them, and their held polls answer without what they waited
/// for (see `Hub::revoke`).
pub async fn revoke(app: &super::App, user: i64) {
    app.auth.forget_user(user);
    app.hub.revoke(user).await;
}

fn auth_tag(user: &User) -> String {
    // The tail of the argon2 string is the hash itself, different for every password set.
    let hash = &user.password_hash;
    hash[hash.len().saturating_sub(16)..].to_owned()
}

/// Who is logged in on this request, if anyone. Cheap on the hot path (a cache hit); on a miss it
/// reads the session and the user, and ends the session of a deactivated user or a changed password.
pub async fn current_user(req: &Request) -> Result<Option<CurrentUser>, AppError> {
    let Some(session) = req.extensions().get::<Session>() else {
        return Ok(None);
    };
    let state = req.data::<AppState>().expect("app state is installed");
    user_of(session, state).await
}

/// Whose `session` is, as [`current_user`] decides it (also for an error's page, after the
/// request is gone).
/// The logged-in user of `session` if a login of theirs is cached, without reading the session
/// store or the database (for answers made while those may be failing).
pub fn cached_user_of(session: &Session, state: &super::App) -> Option<CurrentUser> {
    let key = session.id()?.to_string();
    // A cached login holds until the user's sessions are revoked, here or on another process.
    state
        .auth
        .get(&key)
        .filter(|user| user.revision == state.hub.revocation(user.id))
}

/// Who is logged in with the session id `sent` (a session cookie's value), if the login cache
/// says without reading anything: their id and revocation count, and for how long the cache
/// keeps them. What [`cached_user_of`] decides, for a request that is not (yet) a poem
/// `Request` (`repoll`).
///
/// One about to expire is read again in the background (`RELOAD_AHEAD`): a person's polls all
/// come back at once, and would otherwise all find it expired together.
pub fn cached_login(state: &AppState, sent: &str) -> Option<(i64, u64, Duration)> {
    // The cache's keys are ids as tower-sessions spells them; a cookie that is not one is no
    // login here (the chain decides what it is).
    let id = Id::from_str(sent).ok()?;
    let found = state
        .auth
        .read(sent, |user, left| (user.id, user.revision, left))
        .filter(|&(id, revision, _)| revision == state.hub.revocation(id))?;
    if found.2 < RELOAD_AHEAD && !state.auth.is_loading(sent) {
        tokio::spawn(reload_login(state.clone(), id));
    }
    Some(found)
}

/// Reads the login of session `id` again, as a request missing it would (the session's expiry
/// in the store moves on, as it does then), unless it was read again or forgotten since it was
/// found about to expire. A login that has ended (logged out, deactivated, password changed) is
/// forgotten at once: the next request is the chain's to refuse.
async fn reload_login(state: AppState, id: Id) {
    let key = id.to_string();
    let Some(_turn) = state.auth.try_turn(&key) else {
        return;
    };
    if state.auth.read(key.as_str(), |_, left| left < RELOAD_AHEAD) != Some(true) {
        return;
    }
    let session = Session::new(
        Some(id),
        Arc::new(state.db.sessions.clone()),
        Some(expiry()),
    );
    let saved = match read_login(&session, &state, key.clone()).await {
        Ok(Some(_)) => session.save().await.map_err(session_error),
        Ok(None) => {
            state.auth.forget_session(&key);
            Ok(())
        }
        Err(err) => Err(err),
    };
    if let Err(err) = saved {
        tracing::warn!(%err, "could not read a login again");
    }
}

/// Every page, fragment and held poll of a logged-in user counts as presence.
pub fn seen(state: &super::App, user: i64) {
    if state.presence.seen(user) {
        state.hub.presence_changed();
    }
}

pub async fn user_of(
    session: &Session,
    state: &super::App,
) -> Result<Option<CurrentUser>, AppError> {
    let Some(id) = session.id() else {
        return Ok(None);
    };
    if let Some(user) = cached_user_of(session, state) {
        return Ok(Some(user));
    }
    let key = id.to_string();
    // Every poll of a person's tabs re-polls at once when a message wakes them: one of them
    // reads the session and the user, the rest wait for it and find what it cached.
    let _turn = state.auth.turn(&key).await;
    if let Some(user) = cached_user_of(session, state) {
        return Ok(Some(user));
    }
    read_login(session, state, key).await
}

/// Reads who is logged in with `session` (whose id is `key`) from the store and the database,
/// and caches it; ends the session of a deactivated user or a changed password.
async fn read_login(
    session: &Session,
    state: &super::App,
    key: String,
) -> Result<Option<CurrentUser>, AppError> {
    // Taken before the reads: a logout during them (which forgets) keeps what they found out.
    let generation = state.auth.generation();
    state.metrics.login_reads.inc();
    let user_id: Option<i64> = session.get(USER_ID).await.map_err(session_error)?;
    let Some(user_id) = user_id else {
        return Ok(None);
    };
    // Taken before the read: a revocation during it makes the next request read again.
    let revision = state.hub.revocation(user_id);
    let tag: Option<String> = session.get(AUTH_TAG).await.map_err(session_error)?;
    let user = users::find_by_id(&state.db.pool, user_id).await?;
    let Some(user) = user.filter(|u| u.is_active && tag.as_deref() == Some(auth_tag(u).as_str()))
    else {
        session.flush().await.map_err(session_error)?;
        return Ok(None);
    };
    // Keep an active user's session alive: the store's expiry moves on each save.
    session.set_expiry(Some(expiry()));
    let current = CurrentUser {
        id: user.id,
        username: user.username,
        display_name: user.display_name,
        avatar: user.avatar,
        theme: user.theme,
        is_staff: user.is_staff,
        is_superuser: user.is_superuser,
        revision,
    };
    state.auth.put_since(generation, key, current.clone());
    Ok(Some(current))
}

fn session_error(err: tower_sessions_core::session::Error) -> AppError {
    AppError::Internal(Box::new(err))
}

/// Starts a fresh session for `user` (a new id: no session fixation).
pub async fn log_in(req: &Request, user: &User) -> Result<(), AppError> {
    let session = req
        .extensions()
        .get::<Session>()
        .expect("session middleware is installed");
    if let Some(old) = session.id() {
        req.data::<AppState>()
            .expect("state")
            .auth
            .forget_session(&old.to_string());
    }
    session.cycle_id().await.map_err(session_error)?;
    session
        .insert(USER_ID, user.id)
        .await
        .map_err(session_error)?;
    session
        .insert(AUTH_TAG, auth_tag(user))
        .await
        .map_err(session_error)?;
    Ok(())
}

pub async fn log_out(req: &Request) -> Result<(), AppError> {
    let session = req
        .extensions()
        .get::<Session>()
        .expect("session middleware is installed");
    if let Some(id) = session.id() {
        req.data::<AppState>()
            .expect("state")
            .auth
            .forget_session(&id.to_string());
    }
    session.flush().await.map_err(session_error)
}

impl<'a> FromRequest<'a> for CurrentUser {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        match current_user(req).await? {
            Some(user) => {
                super::telemetry::record_user(req, user.id);
                seen(req.data::<AppState>().expect("state"), user.id);
                Ok(user)
            }
            None => Err(AppError::LoginRequired {
                next: req.uri().path().to_owned(),
                htmx: super::is_htmx(req),
            }
            .into()),
        }
    }
}
