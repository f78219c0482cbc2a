//! Secrets the server processes share (`server_secrets`): made by the first process that needs
//! one, read by the others.

use rand::RngCore;
use sqlx::AnyPool;

/// The secret called `name`, made now (32 random bytes, hex) if no process has made it yet.
/// Two processes starting at once both insert; the primary key keeps the first, and both read it.
pub async fn get_or_make(pool: &AnyPool, name: &str) -> sqlx::Result<Vec<u8>> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let fresh: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    sqlx::query(
        "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(fresh)
    .execute(pool)
    .await?;
    let value: String = sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1")
        .bind(name)
        .fetch_one(pool)
        .await?;
    Ok(value.into_bytes())
}
