//! Message search: `GET /search?q=…&p=N`, the messages the viewer may read that match, a page at
//! a time, each linking to itself in its conversation (`{conv}?around={id}#m-{id}`).

use poem::web::Query;
use poem::{IntoResponse, Response, handler};
use serde::Deserialize;

use super::Ctx;
use super::error::AppError;
use super::home::own_page;
use crate::domain::SearchQuery;
use crate::store::search as store;
use crate::views::search as views;

/// Searches a process runs at once; the others wait their turn. A search is milliseconds of CPU
/// and holds a database connection meanwhile: more at once than there are cores makes none
/// faster, and under load would take the connections that sends need.
pub const SEARCHES_AT_ONCE: usize = 2;

#[derive(Deserialize, Default)]
pub struct SearchParams {
    #[serde(default)]
    q: String,
    /// The page, from 1. Anything else is the first page: a search is never an error.
    #[serde(default)]
    p: String,
}

#[handler]
pub async fn search(ctx: Ctx, Query(params): Query<SearchParams>) -> Result<Response, AppError> {
    let query = SearchQuery::parse(&params.q);
    let page = params
        .p
        .trim()
        .parse::<i64>()
        .unwrap_or(1)
        .clamp(1, store::MAX_PAGE + 1);
    let app = &ctx.app;
    let found = {
        let _turn = app
            .searches
            .acquire()
            .await
            .map_err(|e| AppError::Internal(Box::new(e)))?;
        // What was sent a moment ago is in the index before it is searched.
        store::index_new(&app.db).await?;
        store::messages(&app.db.pool, app.db.engine, ctx.user.id, &query, page).await?
    };
    let results = views::results(&query.text, &found, page);
    if ctx.htmx {
        return Ok(results.into_response());
    }
    // The sidebar lists everything: a message search (`from:alice lunch`) is no name to filter by.
    own_page(
        &ctx,
        "Search",
        "/search",
        "",
        views::pane(&query.text, results),
    )
    .await
}

/// SQLite: indexes new messages for search a few times a second, off the send path (see
/// `store::search::index_new`), for as long as the server runs.
pub fn spawn_indexer(app: &super::AppState) {
    if app.db.engine != crate::db::Engine::Sqlite {
        return;
    }
    let app = std::sync::Arc::downgrade(app);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_millis(250));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(app) = app.upgrade() else { return };
            if let Err(err) = store::index_new(&app.db).await {
                tracing::warn!(%err, "could not index new messages for search");
            }
        }
    });
}
