//! The admin's own schema (the `admin_log` table), applied by the host with one call at start.
//!
//! The crate keeps track of its migrations in its own table, `admin_schema_migrations`, rather
//! than through a second sqlx `Migrator`: sqlx 0.8 keeps every migrator's versions in the one
//! `_sqlx_migrations` table, and each migrator then sees the other's versions as "applied but
//! missing" and refuses to run unless both set `ignore_missing`, which would also hide a real
//! missing migration of the host's. A table of our own keeps the two histories apart and needs no
//! change in the host's migrator. Each migration runs in a transaction with its bookkeeping row.

use sqlx::{AnyPool, Connection};

/// (version, SQLite text, PostgreSQL text), in order. Never edit one that has shipped; add one.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    include_str!("../migrations/sqlite/0001_admin_log.sql"),
    include_str!("../migrations/postgres/0001_admin_log.sql"),
)];

/// Brings the admin's tables up to date on the pool's database (SQLite or PostgreSQL). Safe to
/// call at every start, after the host's own migrations.
pub async fn migrate(pool: &AnyPool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let postgres = conn.backend_name().eq_ignore_ascii_case("postgresql");
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS admin_schema_migrations \
         (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    for (version, sqlite, pg) in MIGRATIONS {
        let mut tx = conn.begin().await?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM admin_schema_migrations WHERE version = $1")
                .bind(*version)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_some() {
            continue;
        }
        sqlx::raw_sql(if postgres { pg } else { sqlite })
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO admin_schema_migrations (version, applied_ms) VALUES ($1, $2)")
            .bind(*version)
            .bind(crate::clock::now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Where the admin's tables stand against this build's migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Every migration applied, and none this build does not know.
    Current,
    /// Some not applied yet (none at all: never made).
    Behind,
    /// Made by a newer build: it holds migrations this one does not know.
    Ahead,
}

/// Where the admin's tables stand, read without changing anything: for a host that must not
/// change a database it was only asked to read.
pub async fn schema(pool: &AnyPool) -> Result<Schema, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let exists = if conn.backend_name().eq_ignore_ascii_case("postgresql") {
        "SELECT COUNT(*) FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_name = 'admin_schema_migrations'"
    } else {
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'admin_schema_migrations'"
    };
    let n: i64 = sqlx::query_scalar(exists).fetch_one(&mut *conn).await?;
    if n == 0 {
        return Ok(Schema::Behind);
    }
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM admin_schema_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await?;
    let known = |v: &i64| MIGRATIONS.iter().any(|(k, _, _)| k == v);
    Ok(if !applied.iter().all(known) {
        Schema::Ahead
    } else if applied.len() < MIGRATIONS.len() {
        Schema::Behind
    } else {
        Schema::Current
    })
}
