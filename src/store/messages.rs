use sqlx::AnyPool;

use crate::domain::{ClientKey, MessageBody};

/// A message as shown: what every renderer of a message needs, nothing more.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Message {
    pub id: i64,
    pub room_id: i64,
    pub seq: i64,
    pub author: String,
    pub body: String,
    pub created_ms: i64,
}

const SELECT: &str = "SELECT m.id AS id, m.room_id AS room_id, m.seq AS seq, u.username AS author,
                             m.body AS body, m.created_ms AS created_ms
                      FROM messages m JOIN users u ON u.id = m.author_id";

/// Stores a message and returns it; `fresh` is false when `client_key` named a message this
/// author already sent (a retried send), which is then returned unchanged.
///
/// The room's sequence number is taken in the same transaction as the insert: on PostgreSQL the
/// `UPDATE` locks the room's row, so sends to one room commit in sequence order and a poller that
/// has seen N can never miss a later-committing N-1. SQLite serialises all writers anyway.
pub async fn insert(
    pool: &AnyPool,
    room: i64,
    author: i64,
    body: &MessageBody,
    client_key: Option<&ClientKey>,
) -> sqlx::Result<(Message, bool)> {
    if let Some(key) = client_key {
        if let Some(existing) = by_client_key(pool, author, key).await? {
            return Ok((existing, false));
        }
    }
    let mut tx = pool.begin().await?;
    let seq: i64 = sqlx::query_scalar("UPDATE rooms SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq")
        .bind(room)
        .fetch_one(&mut *tx)
        .await?;
    let created_ms = crate::now_ms();
    let inserted = sqlx::query_scalar(
        "INSERT INTO messages (room_id, seq, author_id, body, created_ms, client_key)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(room)
    .bind(seq)
    .bind(author)
    .bind(body.as_str())
    .bind(created_ms)
    .bind(client_key.map(ClientKey::as_str))
    .fetch_one(&mut *tx)
    .await;
    let id: i64 = match inserted {
        Ok(id) => id,
        // Two retries of one send raced past the look-up above: the first one won.
        Err(err) if client_key.is_some() && crate::db::is_unique_violation(&err) => {
            tx.rollback().await?;
            let key = client_key.expect("checked above");
            let existing = by_client_key(pool, author, key).await?.ok_or(err)?;
            return Ok((existing, false));
        }
        Err(err) => return Err(err),
    };
    // What you wrote yourself is not unread to you.
    sqlx::query("UPDATE memberships SET last_read_seq = $3 WHERE room_id = $1 AND user_id = $2 AND last_read_seq < $3")
        .bind(room)
        .bind(author)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let author_name: String = sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
        .bind(author)
        .fetch_one(pool)
        .await?;
    let message = Message { id, room_id: room, seq, author: author_name, body: body.as_str().to_owned(), created_ms };
    Ok((message, true))
}

async fn by_client_key(pool: &AnyPool, author: i64, key: &ClientKey) -> sqlx::Result<Option<Message>> {
    sqlx::query_as(&format!("{SELECT} WHERE m.author_id = $1 AND m.client_key = $2"))
        .bind(author)
        .bind(key.as_str())
        .fetch_optional(pool)
        .await
}

/// The newest `limit` messages of a room, oldest first.
pub async fn latest(pool: &AnyPool, room: i64, limit: i64) -> sqlx::Result<Vec<Message>> {
    before(pool, room, i64::MAX, limit).await
}

/// Up to `limit` messages with seq < `before`, oldest first.
pub async fn before(pool: &AnyPool, room: i64, before: i64, limit: i64) -> sqlx::Result<Vec<Message>> {
    let mut rows: Vec<Message> =
        sqlx::query_as(&format!("{SELECT} WHERE m.room_id = $1 AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3"))
            .bind(room)
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await?;
    rows.reverse();
    Ok(rows)
}

/// Up to `limit` messages with seq > `after`, oldest first.
pub async fn after(pool: &AnyPool, room: i64, after: i64, limit: i64) -> sqlx::Result<Vec<Message>> {
    sqlx::query_as(&format!("{SELECT} WHERE m.room_id = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3"))
        .bind(room)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await
}
