//! The web layer. Each feature module owns its routes; this module only assembles them with the
//! middleware every request passes through, and starts the server.

pub mod admin;
pub mod auth;
pub mod calls;
pub mod conversation;
pub mod csrf;
pub mod device;
pub mod error;
pub mod favourites;
pub mod files;
pub mod held;
pub mod home;
pub mod hosts;
pub mod limits;
pub mod messages;
pub mod metrics;
pub mod profile;
pub mod repoll;
pub mod rooms;
pub mod search;
pub mod server;
pub mod session;
pub mod sidebar;
pub mod telemetry;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::http::{HeaderValue, StatusCode};
use poem::web::Data;
use poem::{
    Endpoint, EndpointExt, FromRequest, IntoResponse, Request, RequestBody, Response, Route, get,
    handler, post,
};
use tracing::Instrument;

use crate::config::Settings;
use crate::db::Db;
use crate::presence::Presence;
use crate::realtime::Hub;
use crate::throttle::Throttle;
use crate::views::Viewer;
use csrf::CsrfToken;
pub use error::AppError;
use session::{AuthCache, CurrentUser};

/// New accounts one client address may create in an hour.
pub const SIGNUPS_PER_HOUR: u32 = 50;

/// Everything the handlers share.
pub struct App {
    pub db: Db,
    pub settings: Settings,
    pub hub: Arc<Hub>,
    pub presence: Presence,
    pub throttle: Throttle,
    /// New accounts per client address (each costs an argon2 hash).
    pub signups: Throttle,
    pub auth: AuthCache,
    pub directory: conversation::Directory,
    /// Searches running at once (see `search::SEARCHES_AT_ONCE`).
    pub searches: tokio::sync::Semaphore,
    /// Where attachments' bytes live.
    pub files: crate::files::Files,
    /// Thumbnails made at once (each decodes a whole picture: bounded memory and cores).
    pub thumbnails: tokio::sync::Semaphore,
    /// Bytes of uploads in progress, by person (see `files::InFlight`).
    pub uploading: std::sync::Mutex<std::collections::HashMap<i64, u64>>,
    /// Per-person and per-address rates and caps.
    pub limits: limits::Limits,
    /// Password checks by the current password (`/account/password`), per user: its own
    /// bucket, so that a lockout of the name at login never stops its owner changing it.
    pub password_checks: Throttle,
    pub hasher: crate::password::Hasher,
    /// Signs device cookies (`device`); the same on every process (`server_secrets`).
    pub device_key: Vec<u8>,
    pub allowed_hosts: hosts::AllowedHosts,
    /// What `/metrics` reports (`crate::metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
}

pub type AppState = Arc<App>;

impl App {
    pub fn new(
        settings: Settings,
        db: Db,
        device_key: Vec<u8>,
        files: crate::files::Files,
    ) -> AppState {
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let hub = Hub::new(
            db.pool.clone(),
            crate::views::chat::render_change,
            metrics.clone(),
        );
        Arc::new(App {
            presence: Presence::new(db.pool.clone()),
            // 5 failures per name, 20 per address, in 15 minutes.
            throttle: Throttle::new(Duration::from_secs(15 * 60), 5, 20),
            // 50 an hour from one address: a class behind one NAT registers, a script does not.
            signups: Throttle::new(Duration::from_secs(3600), u32::MAX, SIGNUPS_PER_HOUR),
            auth: AuthCache::new(session::AUTH_CACHE_TTL, 50_000),
            directory: conversation::Directory::new(conversation::DIRECTORY_TTL, 100_000),
            searches: tokio::sync::Semaphore::new(search::SEARCHES_AT_ONCE),
            files,
            thumbnails: tokio::sync::Semaphore::new(1),
            uploading: std::sync::Mutex::default(),
            limits: limits::Limits::new(&settings),
            password_checks: Throttle::new(Duration::from_secs(15 * 60), 5, u32::MAX),
            hasher: crate::password::Hasher::new(settings.hash_workers, settings.hash_queue),
            device_key,
            allowed_hosts: hosts::AllowedHosts::new(&settings.allowed_hosts),
            metrics,
            hub,
            db,
            settings,
        })
    }
}

/// The whole application as one endpoint: routes, then middleware, outermost last. Long-polls
/// answer with a held response that only `server::serve` completes (see `held`), so this is
/// served through it and nothing else.
fn endpoint(app: AppState) -> impl Endpoint<Output = Response> {
    let secure = app.settings.secure_cookies;
    let store = Arc::new(app.db.sessions.clone());
    // Every route, in one table. Conversations have two kinds of URL, `/rooms/{name}` and
    // `/dm/{username}`; the same handlers serve both, and `conversation::Conv` resolves either
    // (with the viewer's right to it) before they run.
    let route = Route::new()
        .at("/healthz", get(healthz))
        .at("/metrics", get(metrics::public))
        .at("/assets/:name", get(crate::assets::serve))
        .at("/", get(home::home))
        .at("/sidebar", get(home::sidebar))
        .at("/people", get(home::people_list))
        .at("/feed", get(messages::feed))
        .at("/mentions", get(home::mentions))
        .at("/calls/ice", get(calls::ice_servers))
        .at("/search", get(search::search))
        .at("/favourites", post(favourites::add))
        .at("/favourites/remove", post(favourites::remove))
        .at("/me.css", get(home::my_style))
        .at("/files/:id/:name", get(files::download))
        .at("/register", get(auth::register_form).post(auth::register))
        .at("/login", get(auth::login_form).post(auth::login))
        .at("/reset/:token", get(auth::reset_form).post(auth::reset))
        .at("/logout", post(auth::logout))
        .at(
            "/account/password",
            get(auth::password_form).post(auth::change_password),
        )
        .at(
            "/profile",
            get(profile::profile_form).post(profile::save_profile),
        )
        .at("/profile/avatar", post(profile::upload_avatar))
        .at("/profile/avatar/remove", post(profile::remove_avatar))
        .at("/avatars/:name", get(profile::avatar))
        .at("/account/theme", post(profile::set_theme))
        .at("/rooms", get(rooms::list).post(rooms::create))
        .at("/rooms/:name", get(conversation::page))
        .at("/rooms/:name/topic", post(rooms::set_topic))
        .at("/rooms/:name/leave", post(rooms::leave))
        .at("/rooms/:name/read", post(messages::read))
        .at(
            "/rooms/:name/messages",
            get(messages::list).post(messages::send),
        )
        .at("/rooms/:name/attachments", post(files::upload))
        .at("/rooms/:name/messages/:id", get(messages::show))
        .at("/rooms/:name/messages/:id/actions", get(messages::actions))
        .at(
            "/rooms/:name/messages/:id/edit",
            get(messages::edit_form).post(messages::edit),
        )
        .at(
            "/rooms/:name/messages/:id/delete",
            get(messages::delete_form).post(messages::delete),
        )
        .at("/rooms/:name/messages/:id/react", get(messages::react_form))
        .at("/rooms/:name/messages/:id/reactions", post(messages::react))
        .at("/dm/:username", get(conversation::page))
        .at("/dm/:username/read", post(messages::read))
        .at(
            "/dm/:username/messages",
            get(messages::list).post(messages::send),
        )
        .at("/dm/:username/attachments", post(files::upload))
        .at("/dm/:username/messages/:id", get(messages::show))
        .at("/dm/:username/messages/:id/actions", get(messages::actions))
        .at(
            "/dm/:username/messages/:id/edit",
            get(messages::edit_form).post(messages::edit),
        )
        .at(
            "/dm/:username/messages/:id/delete",
            get(messages::delete_form).post(messages::delete),
        )
        .at(
            "/dm/:username/messages/:id/react",
            get(messages::react_form),
        )
        .at(
            "/dm/:username/messages/:id/reactions",
            post(messages::react),
        )
        .at("/dm/:username/calls", post(calls::start))
        .at("/dm/:username/calls/:id/accept", post(calls::accept))
        .at("/dm/:username/calls/:id/decline", post(calls::decline))
        .at("/dm/:username/calls/:id/hangup", post(calls::hang_up))
        .at("/dm/:username/calls/:id/alive", post(calls::alive))
        .at("/dm/:username/calls/:id/signal", post(calls::signal));
    let route = admin::routes(route, &app);
    // The session layer wraps the CSRF layer so that its refusals, too, are answered with the
    // header of whoever is looking (see `error::render`).
    route
        .catch_all_error(error::from_poem)
        .with(csrf::CsrfLayer {
            secure,
            body_timeout: Duration::from_secs(app.settings.body_timeout_secs),
        })
        .with(session::SessionLayer { store, secure })
        .around(frame)
        .data(app)
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'";

const PERMISSIONS: &str = "microphone=(self), camera=(self), geolocation=(), payment=(), usb=()";

/// The outermost middleware: the request's span, its metrics and access log line (see
/// `telemetry`), and security headers on every response. A fragment fetched by htmx is never a
/// document, so it skips the document-only headers: a long-poll answer is sent once per message
/// per listener, and those 300 bytes would be a third of its size.
///
/// It also refuses hosts this server does not answer to (`hosts`), and marks what may not be
/// cached: every page but the assets is someone's own (`no-store`, unless the handler said
/// otherwise), and the same URL answers a page or a fragment by `HX-Request` (`Vary`).
async fn frame<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    let started = std::time::Instant::now();
    let htmx = is_htmx(&req);
    let app = req.data::<AppState>().expect("state");
    let mut exchange = telemetry::Exchange::begin(req.method(), started, app.metrics.clone());
    if telemetry::access_log_enabled() {
        exchange.set_client(client_addr(&req, &app.settings.trusted_proxies));
    }
    if let Some(host) = req.headers().get(poem::http::header::HOST)
        && !app.allowed_hosts.allows(host.to_str().unwrap_or_default())
    {
        let text = "This server does not answer to that host name.";
        let refused = error::failure(StatusCode::BAD_REQUEST, "Bad request", text);
        let mut resp = Box::pin(error::render(app, htmx, refused)).await;
        exchange.answered(&mut resp);
        return Ok(resp);
    }
    let asset = req.uri().path().starts_with("/assets/");
    let req_app = app.clone();
    let span = telemetry::span(&req);
    let who = telemetry::UserSlot::default();
    req.extensions_mut().insert(who.clone());
    let resp = match span.is_disabled() {
        true => next.call(req).await,
        false => next.call(req).instrument(span.clone()).await,
    };
    let user = who.get();
    // An error is answered here like any response, so that it gets the same headers.
    let mut resp = match resp {
        Ok(resp) => resp.into_response(),
        Err(err) => error::response_of(err),
    };
    // A refusal or failure becomes the app's page (or fragment) here, once, for every layer.
    // Boxed: only this path reads the session, and inline it would enlarge every request's future.
    // It shows who is looking, even at an address under /assets/ (whose answers shared caches
    // may keep): it is never stored.
    let failed = resp.extensions().get::<error::Failure>().is_some();
    if failed {
        resp = Box::pin(error::render(&req_app, htmx, resp)).await;
    }
    let asset = asset && !failed;
    let held_answer = held::is_held(&resp);
    telemetry::record(&span, started, &resp, held_answer);
    exchange.routed(&resp, user);
    let headers = resp.headers_mut();
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if !asset {
        if !headers.contains_key(poem::http::header::CACHE_CONTROL) {
            headers.insert(
                poem::http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            );
        }
        // Not on a long-poll's answer: it is never stored anywhere (its own no-store), and
        // 20 bytes more per message per listener is what fan-out pays most for.
        if !held_answer {
            headers.append(
                poem::http::header::VARY,
                HeaderValue::from_static("HX-Request"),
            );
        }
    }
    if !htmx {
        // A file's own policy (`sandbox`: an uploaded page never runs as one of ours) stays.
        if !headers.contains_key("content-security-policy") {
            headers.insert("content-security-policy", HeaderValue::from_static(CSP));
        }
        headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
        // A page with a secret in its URL (a reset link) sends no Referer at all.
        if !headers.contains_key("referrer-policy") {
            headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
        }
        // Calls use the microphone and camera, asked for by Parley's own pages only.
        headers.insert("permissions-policy", HeaderValue::from_static(PERMISSIONS));
        headers.insert(
            "cross-origin-opener-policy",
            HeaderValue::from_static("same-origin"),
        );
    }
    // A held poll is told when its wait ends (`held::finish`); anything else now.
    if let Err(mut exchange) = held::tell(&resp, exchange) {
        exchange.answered(&mut resp);
    }
    Ok(resp)
}

#[handler]
async fn healthz(Data(app): Data<&AppState>) -> Response {
    match sqlx::query("SELECT 1").execute(&app.db.pool).await {
        Ok(_) => "ok".into_response(),
        Err(err) => {
            tracing::warn!(%err, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// Is this an htmx request (which wants a fragment, not a page)?
pub fn is_htmx(req: &Request) -> bool {
    req.headers()
        .get("hx-request")
        .is_some_and(|v| v.as_bytes() == b"true")
}

/// The client's IP address: the peer's, or, when the peer is a trusted proxy, the nearest
/// address in `X-Forwarded-For` that is not one (proxies append the address they saw).
pub fn client_addr(req: &Request, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr()?.ip();
    Some(client_of(peer, req.headers(), trusted))
}

/// [`client_addr`] of a request from `peer` with `headers`.
pub fn client_of(peer: IpAddr, headers: &poem::http::HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    // From the right: what our proxies appended, until the first hop that is not one of them.
    for hop in forwarded.into_iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(addr) if trusted.contains(&addr) => continue,
            Ok(addr) => return addr,
            Err(_) => break,
        }
    }
    peer
}

/// The client's network, as the per-address caps count it: its address, or for IPv6 its /64.
pub fn client_network(req: &Request, app: &App) -> Option<IpAddr> {
    client_addr(req, &app.settings.trusted_proxies).map(server::network)
}

/// Whom per-address limits count a request against: the client's address, or for IPv6 its /64
/// (one subscriber's network: whoever has one address there has them all).
pub fn throttle_addr(req: &Request, app: &App) -> String {
    match client_addr(req, &app.settings.trusted_proxies).map(|a| a.to_canonical()) {
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(v4) => v4.to_string(),
        None => String::new(),
    }
}

/// A logged-in request's context: the app, who, their CSRF token, and whether htmx asked.
pub struct Ctx {
    pub app: AppState,
    pub user: CurrentUser,
    pub csrf: String,
    pub htmx: bool,
    /// The browser runs Parley's script (app.js sets the `parley_js` cookie): it reports what
    /// the reader has seen, so opening a page does not mark it read.
    pub scripted: bool,
    /// The reader's time zone, minutes east of UTC (the `parley_tz` cookie app.js sets; 0
    /// without it), for the days a conversation's page divides its messages into.
    pub tz_minutes: i32,
    /// Another site sent the person here (`csrf::from_another_site`): show, change nothing.
    pub cross_site: bool,
}

impl Ctx {
    pub fn viewer(&self) -> Viewer<'_> {
        self.user.viewer(&self.csrf)
    }

    /// Who reads, as far as dates go: their time zone and today.
    pub fn reader(&self) -> crate::views::timeline::Reader {
        crate::views::timeline::Reader::at(self.tz_minutes, crate::now_ms())
    }
}

impl<'a> FromRequest<'a> for Ctx {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let user = CurrentUser::from_request(req, body).await?;
        Ok(Ctx {
            app: req.data::<AppState>().expect("state").clone(),
            user,
            csrf: csrf_token(req),
            htmx: is_htmx(req),
            scripted: parley_admin::cookie_str(req, "parley_js").is_some(),
            tz_minutes: parley_admin::cookie_str(req, "parley_tz")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            cross_site: csrf::from_another_site(req),
        })
    }
}

pub fn csrf_token(req: &Request) -> String {
    req.extensions()
        .get::<CsrfToken>()
        .map(|t| t.0.clone())
        .unwrap_or_default()
}

/// A page or fragment with the status that says how the request went: a form refused with its
/// errors (422), a limit reached (429), a failed login (401).
pub fn with_status(markup: maud::Markup, status: StatusCode) -> Response {
    let mut resp = markup.into_response();
    resp.set_status(status);
    resp
}

/// A 303 See Other: the answer to a good form post.
pub fn see_other(to: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header("Location", to)
        .finish()
}

/// Runs the server until SIGINT/SIGTERM, then stops accepting, answers held polls and lets
/// in-flight requests (sends among them) finish.
pub async fn serve(settings: Settings, db: Db) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.addr).await?;
    tracing::info!(addr = %listener.local_addr()?, engine = ?db.engine, "Parley is listening");
    run(settings, db, listener, shutdown_signal()).await
}

/// The server on an already bound listener; tests use it with port 0.
pub async fn run(
    settings: Settings,
    db: Db,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let device_key = crate::store::secrets::get_or_make(&db.pool, "device-cookies")
        .await
        .map_err(std::io::Error::other)?;
    let files = crate::files::Files::open(&settings).map_err(std::io::Error::other)?;
    tracing::info!(?files, "attachments");
    let app = App::new(settings, db, device_key, files);
    // Dropped (and so stopped) when this server stops.
    let _metrics = match app.settings.metrics_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            tracing::info!(addr = %listener.local_addr()?, "metrics at /metrics");
            Some(AbortOnDrop(metrics::spawn_private(&app, listener)))
        }
        None => None,
    };
    app.db.spawn_session_cleanup();
    let every = Duration::from_secs(app.settings.files_sweep_secs);
    crate::files::spawn_sweeper(app.files.clone(), app.db.pool.clone(), every);
    if let Some(pg) = app.db.pg.clone() {
        app.hub.spawn_listener(pg);
    }
    app.hub.spawn_sweeper();
    app.hub.spawn_presence_ticker(app.db.pg.clone());
    spawn_presence_sweeper(&app);
    calls::spawn_call_sweeper(&app);
    search::spawn_indexer(&app);
    let hub = app.hub.clone();
    let on_shutdown = move || {
        tracing::info!("shutting down: answering held polls, finishing requests");
        hub.shut_down();
    };
    let limits = server::ConnLimits::from_settings(&app.settings);
    let db = app.db.clone();
    let release: server::Release = Arc::new(move || {
        let db = db.clone();
        Box::pin(async move { db.release_memory().await })
    });
    server::serve(
        listener,
        endpoint(app.clone()),
        Arc::new(repoll::Repoll::new(app)),
        limits,
        shutdown,
        on_shutdown,
        Some(release),
    )
    .await
}

/// A task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// People who stopped being seen went offline: their sidebars' dots go grey without a request.
fn spawn_presence_sweeper(app: &AppState) {
    let app = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            let Some(app) = app.upgrade() else { return };
            if app.presence.sweep_gone() {
                app.hub.presence_changed();
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("can listen for SIGTERM");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
