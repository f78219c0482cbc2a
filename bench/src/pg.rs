//! A fresh PostgreSQL database per cross-process run, dropped afterwards, so figures never
//! depend on what an earlier run left behind.

use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tokio::time::timeout;

use crate::http::{Error, Result};

const PG_TIMEOUT: Duration = Duration::from_secs(10);

pub struct FreshDatabase {
    admin_url: String,
    pub name: String,
    /// The URL the servers get.
    pub url: String,
}

impl FreshDatabase {
    /// Connects with `admin_url` (any database on the server, e.g. postgres://127.0.0.1:5432/postgres)
    /// and creates `parley_bench_{run}`.
    pub async fn create(admin_url: &str, run: &str) -> Result<FreshDatabase> {
        let name = format!("parley_bench_{}", run.replace('-', "_"));
        let mut conn = connect(admin_url).await?;
        let sql = format!("CREATE DATABASE \"{name}\"");
        timeout(PG_TIMEOUT, sqlx::raw_sql(&sql).execute(&mut conn))
            .await
            .map_err(|_| Error("CREATE DATABASE timed out".into()))?
            .map_err(|e| Error(format!("CREATE DATABASE {name}: {e}")))?;
        let _ = conn.close().await;
        Ok(FreshDatabase {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
        })
    }

    pub async fn drop_database(self) -> Result<()> {
        let mut conn = connect(&self.admin_url).await?;
        // FORCE: a server that was killed may leave a connection behind for a moment.
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        timeout(PG_TIMEOUT, sqlx::raw_sql(&sql).execute(&mut conn))
            .await
            .map_err(|_| Error("DROP DATABASE timed out".into()))?
            .map_err(|e| Error(format!("DROP DATABASE {}: {e}", self.name)))?;
        let _ = conn.close().await;
        Ok(())
    }
}

async fn connect(url: &str) -> Result<PgConnection> {
    timeout(PG_TIMEOUT, PgConnection::connect(url))
        .await
        .map_err(|_| Error("connecting to PostgreSQL timed out".into()))?
        .map_err(|e| Error(format!("connecting to PostgreSQL: {e}")))
}

/// The same URL naming another database: `postgres://u:p@h:5432/old?x=y` → `.../{name}?x=y`.
pub fn with_database(url: &str, name: &str) -> String {
    let scheme_end = url.find("://").map(|i| i + 3).unwrap_or(0);
    let rest = &url[scheme_end..];
    let query_at = rest.find('?').unwrap_or(rest.len());
    let authority_end = rest[..query_at].find('/').unwrap_or(query_at);
    format!(
        "{}{}/{name}{}",
        &url[..scheme_end],
        &rest[..authority_end],
        &rest[query_at..]
    )
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_or_adds_the_database() {
        assert_eq!(
            with_database("postgres://127.0.0.1:5432/", "b"),
            "postgres://127.0.0.1:5432/b"
        );
        assert_eq!(
            with_database("postgres://127.0.0.1:5432", "b"),
            "postgres://127.0.0.1:5432/b"
        );
        assert_eq!(
            with_database("postgres://u:p@h/postgres?sslmode=disable", "b"),
            "postgres://u:p@h/b?sslmode=disable"
        );
    }
}
