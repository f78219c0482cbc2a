//! Files attached to messages: their rows. The bytes live in the file store (`crate::files`),
//! under keys these rows name; a row is written in the transaction that stores its message, and
//! goes with the message (ON DELETE CASCADE).

use sqlx::{Any, AnyPool, Transaction};

/// An attachment as a message shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Attachment {
    pub id: i64,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    /// The thumbnail's size, when the file is a picture that has one.
    pub width: Option<i64>,
    pub height: Option<i64>,
}

impl Attachment {
    pub fn has_preview(&self) -> bool {
        self.width.is_some()
    }
}

/// A file stored and about to be attached to the message being sent.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub storage_key: String,
    /// The thumbnail's key and size, for a picture that has one.
    pub preview: Option<(String, u32, u32)>,
}

/// Everything needed to serve an attachment's bytes, and to decide who may have them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Stored {
    pub id: i64,
    pub room_id: i64,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub storage_key: String,
    pub preview_key: Option<String>,
    pub created_ms: i64,
}

/// Stores the rows of `files`, attached to message `message` (inside the send's transaction).
pub async fn insert_in(
    tx: &mut Transaction<'static, Any>,
    message: i64,
    room: i64,
    uploader: i64,
    created_ms: i64,
    files: &[NewAttachment],
) -> sqlx::Result<Vec<Attachment>> {
    let mut attached = Vec::with_capacity(files.len());
    for (position, file) in files.iter().enumerate() {
        let (preview_key, width, height) = match &file.preview {
            Some((key, w, h)) => (Some(key.as_str()), Some(i64::from(*w)), Some(i64::from(*h))),
            None => (None, None, None),
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO attachments (message_id, room_id, uploader_id, position, name, content_type,
                                      size, storage_key, preview_key, width, height, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        )
        .bind(message)
        .bind(room)
        .bind(uploader)
        .bind(position as i64)
        .bind(&file.name)
        .bind(&file.content_type)
        .bind(file.size)
        .bind(&file.storage_key)
        .bind(preview_key)
        .bind(width)
        .bind(height)
        .bind(created_ms)
        .fetch_one(&mut **tx)
        .await?;
        attached.push(Attachment {
            id,
            name: file.name.clone(),
            content_type: file.content_type.clone(),
            size: file.size,
            width,
            height,
        });
    }
    Ok(attached)
}

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    #[sqlx(flatten)]
    attachment: Attachment,
}

const COLUMNS: &str = "a.id AS id, a.name AS name, a.content_type AS content_type, a.size AS size,
                       a.width AS width, a.height AS height";

/// The attachments of one room's messages with seq in `lo..=hi`, by message seq, in order.
pub async fn of_messages(
    conn: &mut sqlx::AnyConnection,
    room: i64,
    lo: i64,
    hi: i64,
) -> sqlx::Result<Vec<(i64, Attachment)>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT m.seq AS seq, {COLUMNS}
         FROM messages m JOIN attachments a ON a.message_id = m.id
         WHERE m.room_id = $1 AND m.seq BETWEEN $2 AND $3
         ORDER BY m.seq, a.position"
    ))
    .bind(room)
    .bind(lo)
    .bind(hi)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.seq, r.attachment)).collect())
}

/// The attachments of message `message`, in order (on the connection of a transaction).
pub async fn of_message(
    conn: &mut sqlx::AnyConnection,
    message: i64,
) -> sqlx::Result<Vec<Attachment>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM attachments a WHERE a.message_id = $1 ORDER BY a.position"
    ))
    .bind(message)
    .fetch_all(conn)
    .await
}

/// Attachment `id`, if it is in a conversation `user` may read: every public room, and the
/// direct conversations they are a member of. Anyone else learns nothing, not even that it exists.
pub async fn readable(pool: &AnyPool, id: i64, user: i64) -> sqlx::Result<Option<Stored>> {
    sqlx::query_as(
        "SELECT a.id, a.room_id, a.name, a.content_type, a.size, a.storage_key, a.preview_key,
                a.created_ms
         FROM attachments a JOIN rooms r ON r.id = a.room_id
         WHERE a.id = $1
           AND (r.kind = 'public'
                OR EXISTS (SELECT 1 FROM memberships s WHERE s.room_id = r.id AND s.user_id = $2))",
    )
    .bind(id)
    .bind(user)
    .fetch_optional(pool)
    .await
}

/// Takes the rows of message `message`'s attachments away (inside its deletion's transaction) and
/// returns the keys of their bytes, for the caller to delete once the transaction has committed.
pub async fn delete_of_message(
    tx: &mut Transaction<'static, Any>,
    message: i64,
) -> sqlx::Result<Vec<String>> {
    const SQL: &str =
        "DELETE FROM attachments WHERE message_id = $1 RETURNING storage_key, preview_key";
    delete_returning_keys(tx, SQL, message).await
}

async fn delete_returning_keys(
    tx: &mut Transaction<'static, Any>,
    sql: &'static str,
    id: i64,
) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as(sql).bind(id).fetch_all(&mut **tx).await?;
    Ok(keys(rows))
}

/// Takes the row of attachment `id` of message `message` away (inside a transaction): the keys
/// of its bytes, or None when the message has no such attachment.
pub async fn delete_one(
    tx: &mut Transaction<'static, Any>,
    message: i64,
    id: i64,
) -> sqlx::Result<Option<Vec<String>>> {
    let row: Option<(String, Option<String>)> = sqlx::query_as(
        "DELETE FROM attachments WHERE id = $1 AND message_id = $2
         RETURNING storage_key, preview_key",
    )
    .bind(id)
    .bind(message)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|row| keys(vec![row])))
}

/// Where attachment `id` is: its message's room and sequence number, and whether it is all the
/// message holds (no text, no other file).
pub async fn place(pool: &AnyPool, id: i64) -> sqlx::Result<Option<(i64, i64, bool)>> {
    let found: Option<(i64, i64, i64)> = sqlx::query_as(
        "SELECT m.room_id, m.seq,
                CASE WHEN m.body = '' AND (SELECT COUNT(*) FROM attachments o
                                           WHERE o.message_id = m.id) = 1
                     THEN 1 ELSE 0 END
         FROM attachments a JOIN messages m ON m.id = a.message_id WHERE a.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(found.map(|(room, seq, only)| (room, seq, only == 1)))
}

/// Takes the rows of every attachment in room `room` away (inside the room's deletion's
/// transaction): the keys of their bytes, for the caller to delete once it has committed.
pub async fn delete_in_room(
    tx: &mut Transaction<'static, Any>,
    room: i64,
) -> sqlx::Result<Vec<String>> {
    const SQL: &str =
        "DELETE FROM attachments WHERE room_id = $1 RETURNING storage_key, preview_key";
    delete_returning_keys(tx, SQL, room).await
}

fn keys(rows: Vec<(String, Option<String>)>) -> Vec<String> {
    rows.into_iter()
        .flat_map(|(file, preview)| std::iter::once(file).chain(preview))
        .collect()
}

/// Of `candidates`, the keys no attachment row names (bytes left behind, to be swept).
pub async fn unreferenced(pool: &AnyPool, candidates: &[String]) -> sqlx::Result<Vec<String>> {
    let mut orphans = Vec::new();
    for batch in candidates.chunks(100) {
        // Placeholders only, one per key: the keys themselves are bound.
        let list: Vec<String> = (1..=batch.len()).map(|i| format!("${i}")).collect();
        let list = list.join(", ");
        let sql = format!(
            "SELECT storage_key, preview_key FROM attachments
             WHERE storage_key IN ({list}) OR preview_key IN ({list})"
        );
        let mut query = sqlx::query_as::<_, (String, Option<String>)>(&sql);
        for key in batch {
            query = query.bind(key);
        }
        let named = keys(query.fetch_all(pool).await?);
        orphans.extend(batch.iter().filter(|k| !named.contains(k)).cloned());
    }
    Ok(orphans)
}

/// Bytes `user` has uploaded since `since_ms`: what their hourly allowance has used.
pub async fn uploaded_since(pool: &AnyPool, user: i64, since_ms: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM attachments
         WHERE uploader_id = $1 AND created_ms > $2",
    )
    .bind(user)
    .bind(since_ms)
    .fetch_one(pool)
    .await
}
