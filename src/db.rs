//! The database: one `sqlx::Any` pool whose SQL runs on SQLite and PostgreSQL alike, the typed
//! pool the session store needs, and migrations for the engine in use.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::AnyPoolOptions;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AnyPool, Executor};
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use crate::config::Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// The engine behind a connection of the `Any` pool.
    pub fn of(conn: &sqlx::AnyConnection) -> Self {
        if conn.backend_name() == <sqlx::Postgres as sqlx::Database>::NAME {
            Self::Postgres
        } else {
            Self::Sqlite
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("DATABASE_URL must start with sqlite:// or postgres:// (got “{0}”)")]
    UnknownScheme(String),
    #[error("cannot open the database: {0}")]
    Open(#[source] sqlx::Error),
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub engine: Engine,
    pub sessions: SessionBackend,
    /// The typed PostgreSQL pool, for LISTEN (None on SQLite).
    pub pg: Option<PgPool>,
    /// SQLite: the one connection messages are stored on ([`Db::sends`]).
    sends: Option<AnyPool>,
    /// SQLite: the session store's pool (for [`Db::release_memory`]).
    sessions_sqlite: Option<SqlitePool>,
    /// SQLite takes one writer at a time; the others wait in its busy handler, which sleeps in
    /// steps of milliseconds. Queuing hot writers here instead hands the lock over at once.
    write_gate: Option<Arc<tokio::sync::Mutex<()>>>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Where a database's schema stands against this build's migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Every migration of this build applied, and none it does not know.
    Current,
    /// Some of this build's migrations are not applied yet (none at all: a new database).
    Behind,
    /// A newer build has migrated it: it holds migrations this one does not know.
    Ahead,
    /// A migration it holds is not the text this build has under the same version (edited
    /// since it was applied): migrating refuses it too.
    Differs,
}

impl Db {
    /// Opens the database named by the settings and brings its schema up to date.
    pub async fn connect(settings: &Settings) -> Result<Self, ConnectError> {
        let db = Self::open(settings).await?;
        db.migrate().await?;
        Ok(db)
    }

    /// Opens the database named by the settings without migrating it: for commands that read a
    /// database a server (perhaps an older or newer build) may be using. See [`Db::schema`].
    /// On SQLite it does set the connection pragmas, WAL among them (a lasting setting of the
    /// file, which Parley's own servers have always made), and creates a missing file.
    pub async fn open(settings: &Settings) -> Result<Self, ConnectError> {
        sqlx::any::install_default_drivers();
        let url = settings.database_url.as_str();
        let max = settings.db_max_connections.max(2);
        let db = if url.starts_with("sqlite:") {
            // The typed pool creates the file when missing; Any takes only a URL, so the
            // pragmas it needs are set on every new connection.
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(ConnectError::Open)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let typed = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(opts)
                .await
                .map_err(ConnectError::Open)?;
            let pool = sqlite_pool(max)
                .connect(url)
                .await
                .map_err(ConnectError::Open)?;
            let store = SqliteStore::new(typed.clone());
            let sends = sqlite_pool(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect(url)
                .await
                .map_err(ConnectError::Open)?;
            Db {
                pool,
                sends: Some(sends),
                sessions_sqlite: Some(typed.clone()),
                engine: Engine::Sqlite,
                sessions: SessionBackend::Sqlite(store, typed.clone()),
                pg: None,
                write_gate: Some(Arc::new(tokio::sync::Mutex::new(()))),
            }
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let typed = PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url)
                .await
                .map_err(ConnectError::Open)?;
            let pool = AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url)
                .await
                .map_err(ConnectError::Open)?;
            let store = PostgresStore::new(typed.clone());
            Db {
                pool,
                engine: Engine::Postgres,
                sessions: SessionBackend::Postgres(store, typed.clone()),
                pg: Some(typed),
                sends: None,
                sessions_sqlite: None,
                write_gate: None,
            }
        } else {
            return Err(ConnectError::UnknownScheme(url.to_owned()));
        };
        Ok(db)
    }

    /// Brings the schema up to date: Parley's migrations, the admin crate's table (tracked apart
    /// from them), and the session store's.
    async fn migrate(&self) -> Result<(), ConnectError> {
        self.migrator().run(&self.pool).await?;
        parley_admin::migrate(&self.pool)
            .await
            .map_err(sqlx::migrate::MigrateError::Execute)?;
        match &self.sessions {
            SessionBackend::Sqlite(store, _) => store.migrate().await,
            SessionBackend::Postgres(store, _) => store.migrate().await,
        }
        .map_err(ConnectError::Open)
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.engine {
            Engine::Sqlite => &SQLITE_MIGRATIONS,
            Engine::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Where the schema stands against this build's migrations (Parley's and the admin
    /// crate's), read without changing anything.
    pub async fn schema(&self) -> sqlx::Result<Schema> {
        let known: Vec<(i64, Vec<u8>)> = self
            .migrator()
            .iter()
            .map(|m| (m.version, m.checksum.to_vec()))
            .collect();
        let applied: Vec<(i64, Vec<u8>)> = if self.has_table("_sqlx_migrations").await? {
            sqlx::query_as(
                "SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version",
            )
            .fetch_all(&self.pool)
            .await?
        } else {
            Vec::new()
        };
        for (version, checksum) in &applied {
            match known.iter().find(|(v, _)| v == version) {
                None => return Ok(Schema::Ahead),
                Some((_, ours)) if ours != checksum => return Ok(Schema::Differs),
                Some(_) => {}
            }
        }
        // Every applied one is known: fewer is behind.
        let behind = applied.len() < known.len();
        Ok(match parley_admin::schema(&self.pool).await? {
            parley_admin::Schema::Ahead => Schema::Ahead,
            _ if behind => Schema::Behind,
            parley_admin::Schema::Behind => Schema::Behind,
            parley_admin::Schema::Current => Schema::Current,
        })
    }

    async fn has_table(&self, name: &str) -> sqlx::Result<bool> {
        let sql = match self.engine {
            Engine::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1"
            }
            Engine::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables
                 WHERE table_schema = current_schema() AND table_name = $1"
            }
        };
        let n: i64 = sqlx::query_scalar(sql)
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// Where messages are stored: on SQLite one connection of its own, taken in the write turn.
    ///
    /// A connection that finds the database changed by another since its last statement drops
    /// its page cache and unmaps its memory map (`pagerBeginReadTransaction`), and the pool
    /// hands connections out in turn, so a send on the least recently used one always paid that
    /// (an `munmap` per send, with the page faults and cross-CPU flushes after it: 2,100 sends a
    /// second instead of 2,900). The connection that made the last change has nothing to drop.
    pub fn sends(&self) -> &AnyPool {
        self.sends.as_ref().unwrap_or(&self.pool)
    }

    /// Waits for this process's turn to write, on engines that take one writer at a time.
    pub async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.write_gate {
            Some(gate) => Some(gate.clone().lock_owned().await),
            None => None,
        }
    }

    /// After a burst: closes the SQLite connections nobody is using beyond a few, and hands back
    /// the page caches of those it keeps (`PRAGMA shrink_memory`); the one messages are stored
    /// on ([`Db::sends`]) is left alone. A burst opens every connection the pools allow, and
    /// each keeps about half a megabyte in its worker thread's allocator arena (statements,
    /// caches) for as long as it is open; one is opened again, in a millisecond or so, when it
    /// is needed. Nothing to do on PostgreSQL, whose connections hold their memory in the
    /// database server.
    pub async fn release_memory(&self) {
        if self.engine != Engine::Sqlite {
            return;
        }
        let idle: Vec<_> = std::iter::from_fn(|| self.pool.try_acquire()).collect();
        shrink_or_close(idle, KEEP_AFTER_BURST).await;
        // The connection messages are stored on keeps its cache: that is what makes it fast.
        if let Some(pool) = &self.sessions_sqlite {
            let idle: Vec<_> = std::iter::from_fn(|| pool.try_acquire()).collect();
            shrink_or_close(idle, 1).await;
        }
    }

    /// Deletes expired sessions now and then, for as long as the server runs.
    pub fn spawn_session_cleanup(&self) {
        let sessions = self.sessions.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(600));
            loop {
                every.tick().await;
                if let Err(err) = sessions.delete_expired().await {
                    tracing::warn!(%err, "could not delete expired sessions");
                }
            }
        });
    }
}

/// Idle SQLite connections [`Db::release_memory`] keeps open in the main pool.
const KEEP_AFTER_BURST: usize = 2;

/// Closes all but `keep` of `idle` and empties the page caches of those.
async fn shrink_or_close<DB: sqlx::Database>(
    mut idle: Vec<sqlx::pool::PoolConnection<DB>>,
    keep: usize,
) where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    for conn in idle.split_off(keep.min(idle.len())) {
        if let Err(err) = conn.close().await {
            tracing::debug!(%err, "could not close an idle connection");
        }
    }
    for conn in &mut idle {
        if let Err(err) = conn.execute("PRAGMA shrink_memory").await {
            tracing::debug!(%err, "could not shrink a connection's cache");
        }
    }
}

/// The `Any` pool options for SQLite: the pragmas it needs on every new connection (the typed
/// pool that creates the file takes them as options; `Any` takes only a URL).
fn sqlite_pool(max: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|conn, _| {
            Box::pin(async move {
                // mmap: every connection reads the same pages from the OS's cache,
                // not a copy each in its own 2 MB page cache (searches read megabytes
                // of index, and there are up to 16 connections).
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                     PRAGMA mmap_size = 268435456;",
                )
                .await?;
                Ok(())
            })
        })
}

/// The unique rules the code turns into answers for people (rather than errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unique {
    /// `users.username_key`: the name is taken.
    Username,
    /// `users.username_fold`: the name looks like one that is taken.
    UsernameFold,
    /// `messages (author_id, client_key)`: a retried send.
    ClientKey,
}

impl Unique {
    const ALL: [Unique; 3] = [Unique::Username, Unique::UsernameFold, Unique::ClientKey];

    /// PostgreSQL's name for the constraint (the default name of the schema's UNIQUE clause).
    fn constraint(self) -> &'static str {
        match self {
            Unique::Username => "users_username_key_key",
            Unique::UsernameFold => "users_username_fold",
            Unique::ClientKey => "messages_author_id_client_key_key",
        }
    }

    /// What SQLite, which names no constraint, says after `UNIQUE constraint failed: `.
    fn columns(self) -> &'static str {
        match self {
            Unique::Username => "users.username_key",
            Unique::UsernameFold => "users.username_fold",
            Unique::ClientKey => "messages.author_id, messages.client_key",
        }
    }
}

/// The unique rule this error broke, if it is a unique violation of one of [`Unique`]'s: by the
/// constraint's name on PostgreSQL, by the columns in the message on SQLite.
pub fn violated(err: &sqlx::Error) -> Option<Unique> {
    let sqlx::Error::Database(db) = err else {
        return None;
    };
    if !db.is_unique_violation() {
        return None;
    }
    match db.constraint() {
        Some(name) => Unique::ALL.into_iter().find(|u| u.constraint() == name),
        None => {
            let failed = db.message().strip_prefix("UNIQUE constraint failed: ")?;
            Unique::ALL.into_iter().find(|u| u.columns() == failed)
        }
    }
}

/// tower-sessions' store for the engine in use (with its pool, for [`SessionStore::save`]). An
/// enum rather than a generic so that the rest of the app has one concrete session type whichever
/// database it runs on.
#[derive(Debug, Clone)]
pub enum SessionBackend {
    Sqlite(SqliteStore, SqlitePool),
    Postgres(PostgresStore, PgPool),
}

impl SessionBackend {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s, _) => s.delete_expired().await,
            Self::Postgres(s, _) => s.delete_expired().await,
        }
    }
}

#[async_trait]
impl SessionStore for SessionBackend {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s, _) => s.create(record).await,
            Self::Postgres(s, _) => s.create(record).await,
        }
    }

    /// Saves the record of a session that exists, and only of one that does. A session is saved
    /// after it was loaded (its expiry moved on by a request that read the login, or by a login
    /// read again in the background); the stores' own save inserts or updates, so a session
    /// deleted in between (a logout, a login's new id) would come back, and with it a login that
    /// had ended. New sessions are made by `create`. (The table, columns and encoding are the
    /// stores' own.)
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = rmp_serde::to_vec(record)
            .map_err(|err| session_store::Error::Encode(err.to_string()))?;
        let saved = match self {
            Self::Sqlite(_, pool) => sqlx::query(
                "UPDATE tower_sessions SET data = ?, expiry_date = ? WHERE id = ?",
            )
            .bind(data)
            .bind(record.expiry_date)
            .bind(record.id.to_string())
            .execute(pool)
            .await
            .map(|_| ()),
            Self::Postgres(_, pool) => sqlx::query(
                r#"UPDATE "tower_sessions"."session" SET data = $1, expiry_date = $2 WHERE id = $3"#,
            )
            .bind(data)
            .bind(record.expiry_date)
            .bind(record.id.to_string())
            .execute(pool)
            .await
            .map(|_| ()),
        };
        saved.map_err(|err| session_store::Error::Backend(err.to_string()))
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Self::Sqlite(s, _) => s.load(id).await,
            Self::Postgres(s, _) => s.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            Self::Sqlite(s, _) => s.delete(id).await,
            Self::Postgres(s, _) => s.delete(id).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn after_a_burst_only_a_few_idle_connections_stay_open() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("burst.db").display());
        let db = Db::connect(&Settings::for_database(url)).await.unwrap();
        // A burst: eight statements at once, each on a connection of its own.
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(db.pool.acquire().await.unwrap());
        }
        drop(held);
        // Connections go back to the pool in tasks of their own.
        for _ in 0..100 {
            if db.pool.num_idle() >= 8 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(db.pool.num_idle() >= 8);
        db.release_memory().await;
        assert_eq!(db.pool.size() as usize, KEEP_AFTER_BURST);
        // The pool opens connections again as they are needed.
        let one: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(one, 1);
    }
}
