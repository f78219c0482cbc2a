use sqlx::AnyPool;

use crate::db::Engine;
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
/// The message's sequence number is taken from its room as it is stored, so that sends to a room
/// commit in sequence order and a poller that has seen N can never miss a later-committing N-1.
pub async fn insert(
    pool: &AnyPool,
    engine: Engine,
    room: i64,
    author: (i64, &str),
    body: &MessageBody,
    client_key: Option<&ClientKey>,
) -> sqlx::Result<(Message, bool)> {
    let (author_id, author_name) = author;
    let created_ms = crate::now_ms();
    let stored = match engine {
        Engine::Sqlite => insert_sqlite(pool, room, author_id, body, created_ms, client_key).await,
        Engine::Postgres => {
            insert_locked(pool, room, author_id, body, created_ms, client_key).await
        }
    };
    let (id, seq) = match (stored, client_key) {
        (Ok(stored), _) => stored,
        // A retry of a send that was stored: nothing of this one was kept (its sequence number
        // neither); answer with the original.
        (Err(err), Some(key)) if crate::db::is_unique_violation(&err) => {
            let existing = by_client_key(pool, author_id, key).await?.ok_or(err)?;
            return Ok((existing, false));
        }
        (Err(err), _) => return Err(err),
    };
    let message = Message {
        id,
        room_id: room,
        seq,
        author: author_name.to_owned(),
        body: body.as_str().to_owned(),
        created_ms,
    };
    Ok((message, true))
}

/// SQLite: one statement. It serialises writers, so `last_seq + 1` cannot be taken twice; the
/// trigger `messages_after_insert` moves the room's `last_seq` and the sender's membership.
async fn insert_sqlite(
    pool: &AnyPool,
    room: i64,
    author: i64,
    body: &MessageBody,
    created_ms: i64,
    client_key: Option<&ClientKey>,
) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "INSERT INTO messages (room_id, seq, author_id, body, created_ms, client_key)
         SELECT id, last_seq + 1, $2, $3, $4, $5 FROM rooms WHERE id = $1
         RETURNING id, seq",
    )
    .bind(room)
    .bind(author)
    .bind(body.as_str())
    .bind(created_ms)
    .bind(client_key.map(ClientKey::as_str))
    .fetch_optional(pool)
    .await?
    .ok_or(sqlx::Error::RowNotFound)
}

/// PostgreSQL: concurrent writers, so the sequence number is taken under the room's row lock
/// (the `UPDATE`), in the transaction that inserts the message; identity values alone can commit
/// out of order.
async fn insert_locked(
    pool: &AnyPool,
    room: i64,
    author: i64,
    body: &MessageBody,
    created_ms: i64,
    client_key: Option<&ClientKey>,
) -> sqlx::Result<(i64, i64)> {
    let mut tx = pool.begin().await?;
    let seq: i64 = sqlx::query_scalar(
        "UPDATE rooms SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq",
    )
    .bind(room)
    .fetch_one(&mut *tx)
    .await?;
    // On a unique violation the transaction is dropped, which rolls it back.
    let id: i64 = sqlx::query_scalar(
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
    .await?;
    // Sending joins the room, and what you wrote yourself is not unread to you.
    sqlx::query(
        "INSERT INTO memberships (room_id, user_id, last_read_seq, joined_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (room_id, user_id) DO UPDATE SET last_read_seq = excluded.last_read_seq",
    )
    .bind(room)
    .bind(author)
    .bind(seq)
    .bind(created_ms)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((id, seq))
}

async fn by_client_key(
    pool: &AnyPool,
    author: i64,
    key: &ClientKey,
) -> sqlx::Result<Option<Message>> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE m.author_id = $1 AND m.client_key = $2"
    ))
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
pub async fn before(
    pool: &AnyPool,
    room: i64,
    before: i64,
    limit: i64,
) -> sqlx::Result<Vec<Message>> {
    let mut rows: Vec<Message> = sqlx::query_as(&format!(
        "{SELECT} WHERE m.room_id = $1 AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3"
    ))
    .bind(room)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.reverse();
    Ok(rows)
}

/// Up to `limit` messages with seq > `after`, oldest first.
pub async fn after(
    pool: &AnyPool,
    room: i64,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<Message>> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE m.room_id = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3"
    ))
    .bind(room)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}
