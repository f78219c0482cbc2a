//! `GET /metrics`: what `crate::metrics` counts, for Prometheus. Never public: on the public
//! address only to a request carrying `Authorization: Bearer` with `--metrics-token`, else on
//! an address of its own (`--metrics-addr`, for a private interface); with neither it is 404
//! like any address that names nothing.

use std::time::Duration;

use poem::http::{StatusCode, header};
use poem::web::Data;
use poem::{EndpointExt, Request, Response, Route, get, handler};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::AppError;

/// `/metrics` on the public address: with the token, or not at all.
#[handler]
pub async fn public(req: &Request, Data(app): Data<&AppState>) -> Result<Response, AppError> {
    let Some(token) = app
        .settings
        .metrics_token
        .as_deref()
        .filter(|t| !t.is_empty())
    else {
        return Err(AppError::NotFound("There is no page at this address."));
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        return Ok(Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(header::WWW_AUTHENTICATE, "Bearer")
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body("The metrics need the token (Authorization: Bearer …)."));
    }
    Ok(render(app))
}

#[handler]
async fn private(Data(app): Data<&AppState>) -> Response {
    render(app)
}

fn render(app: &AppState) -> Response {
    let text = app
        .metrics
        .render(&app.db.pool, app.settings.db_max_connections);
    Response::builder()
        .header(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)
        .header(header::CACHE_CONTROL, "no-store")
        .body(text)
}

/// Serves `/metrics` alone on `listener` (`--metrics-addr`) until the task is dropped.
pub fn spawn_private(
    app: &AppState,
    listener: tokio::net::TcpListener,
) -> tokio::task::JoinHandle<()> {
    let endpoint = Route::new().at("/metrics", get(private)).data(app.clone());
    let limits = super::server::ConnLimits {
        grace: Duration::ZERO,
        ..super::server::ConnLimits::from_settings(&app.settings)
    };
    tokio::spawn(async move {
        let forever = std::future::pending::<()>();
        if let Err(err) = super::server::serve(
            listener,
            endpoint,
            std::sync::Arc::new(super::server::Chain),
            limits,
            forever,
            || {},
            None,
        )
        .await
        {
            tracing::error!(%err, "the metrics address stopped");
        }
    })
}
