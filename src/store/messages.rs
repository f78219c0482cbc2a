//! Messages and the changes made to them. Every change to a conversation (a new message, an
//! edit, a deletion, a reaction) takes the next number of the room's one sequence (`rooms.last_seq`)
//! in the transaction that makes it, under the room's row lock on PostgreSQL (SQLite has one
//! writer), so changes commit in sequence order and a poller that has seen N misses nothing below N.

use sqlx::{Any, AnyConnection, AnyPool, Transaction};

use super::attachments::{self, Attachment, NewAttachment};
use super::rooms::OTHER_PERSON;
use crate::db::{Engine, Unique};
use crate::domain::{ClientKey, Emoji, MessageBody};

/// A message as shown: what every renderer of a message needs, nothing more.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Message {
    pub id: i64,
    pub room_id: i64,
    /// The change that created it: its id in the conversation (`data-message-id`).
    pub seq: i64,
    /// The last change that touched it (its creation, an edit, a reaction).
    pub changed_seq: i64,
    pub author_id: i64,
    /// The author's username: who wrote it.
    pub author: String,
    /// The author's display name when it was read or rendered (empty: none), shown beside
    /// `author`.
    #[sqlx(default)]
    pub author_display: String,
    /// The author's picture's key when it was read or rendered (empty: none, the initials).
    #[sqlx(default)]
    pub author_avatar: String,
    pub body: String,
    pub created_ms: i64,
    pub edited_ms: Option<i64>,
    /// Lowercase usernames it mentions, space-separated.
    pub mentions: String,
    /// What it is: `""` for what someone wrote, [`CALL_RECORD`] for a call's record.
    #[sqlx(default)]
    pub kind: String,
    #[sqlx(skip)]
    pub reactions: Vec<Reaction>,
    /// Its files, in the order they were sent.
    #[sqlx(skip)]
    pub attachments: Vec<Attachment>,
}

/// One emoji on a message and who chose it, in the order they did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    pub emoji: String,
    pub users: Vec<String>,
}

/// A user named in a message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Mention {
    pub id: i64,
    pub key: String,
}

/// One step of a conversation's change sequence, as live delivery carries it.
#[derive(Debug, Clone)]
pub enum Change {
    New(Message),
    /// The message's current state after an edit or a reaction.
    Updated(Message),
    /// Change `at` deleted message `seq`.
    Deleted {
        room_id: i64,
        seq: i64,
        at: i64,
    },
    /// Change `at` set the reactions of message `seq` to these.
    Reacted {
        room_id: i64,
        seq: i64,
        at: i64,
        reactions: Vec<Reaction>,
    },
}

impl Change {
    /// Its number in the room's change sequence.
    pub fn at(&self) -> i64 {
        match self {
            Change::New(m) => m.seq,
            Change::Updated(m) => m.changed_seq,
            Change::Deleted { at, .. } | Change::Reacted { at, .. } => *at,
        }
    }

    pub fn room_id(&self) -> i64 {
        match self {
            Change::New(m) | Change::Updated(m) => m.room_id,
            Change::Deleted { room_id, .. } | Change::Reacted { room_id, .. } => *room_id,
        }
    }
}

const SELECT: &str = "SELECT m.id AS id, m.room_id AS room_id, m.seq AS seq,
                             m.changed_seq AS changed_seq, m.author_id AS author_id,
                             u.username AS author, u.display_name AS author_display,
                             u.avatar AS author_avatar, m.body AS body, m.created_ms AS created_ms,
                             m.edited_ms AS edited_ms, m.mentions AS mentions, m.kind AS kind
                      FROM messages m JOIN users u ON u.id = m.author_id";

/// The kind of message that records a call: written by Parley, not editable.
pub const CALL_RECORD: &str = "call";
/// The kind of message that records a topic change ("alice set the topic to …"): not editable.
pub const TOPIC_RECORD: &str = "topic";

fn mention_keys(mentions: &[Mention]) -> String {
    let keys: Vec<&str> = mentions.iter().map(|m| m.key.as_str()).collect();
    keys.join(" ")
}

/// Who writes a message, as the message shows them.
#[derive(Debug, Clone, Copy)]
pub struct Author<'a> {
    pub id: i64,
    pub username: &'a str,
    /// Empty when they have none.
    pub display_name: &'a str,
    /// Their picture's key; empty for none.
    pub avatar: &'a str,
}

/// A message someone is sending.
pub struct Draft<'a> {
    pub room: i64,
    pub author: Author<'a>,
    /// Its text: empty only for a message of files alone.
    pub body: &'a str,
    pub client_key: Option<&'a ClientKey>,
    pub mentions: &'a [Mention],
    /// Files already in the file store, attached in this order.
    pub files: &'a [NewAttachment],
    /// The caller announces the message to the other processes itself, after the commit, when
    /// [`Draft::announced_by_sender`] says so (`Hub::announce`, for a process that does). False:
    /// the database announces it at its commit, as every other change.
    pub announce_after: bool,
}

impl<'a> Draft<'a> {
    /// A message of text alone.
    pub fn text(room: i64, author: Author<'a>, body: &'a MessageBody) -> Self {
        Draft {
            room,
            author,
            body: body.as_str(),
            client_key: None,
            mentions: &[],
            files: &[],
            announce_after: false,
        }
    }

    /// Whether [`insert`] left announcing the new message to the other processes to the caller
    /// (`Hub::announce`): on PostgreSQL, when asked to (`announce_after`), a message of text
    /// without mentions, stored in one statement that does not NOTIFY (see the migration
    /// `notify_after_commit`).
    pub fn announced_by_sender(&self, engine: Engine) -> bool {
        self.announce_after && engine == Engine::Postgres && self.simple()
    }

    fn simple(&self) -> bool {
        self.mentions.is_empty() && self.files.is_empty()
    }
}

/// Stores a message (with its attachments' rows) and returns it; `fresh` is false when
/// `client_key` named a message this author already sent (a retried send), which is then
/// returned unchanged.
///
/// The message's sequence number is taken from its room as it is stored, so that sends to a room
/// commit in sequence order and a poller that has seen N can never miss a later-committing N-1.
pub async fn insert(
    pool: &AnyPool,
    engine: Engine,
    draft: &Draft<'_>,
) -> sqlx::Result<(Message, bool)> {
    let author = draft.author;
    let author_id = author.id;
    let new = NewMessage {
        room: draft.room,
        author_id,
        body: draft.body,
        created_ms: crate::now_ms(),
        client_key: draft.client_key,
        mentions: &mention_keys(draft.mentions),
        kind: "",
    };
    let simple = draft.simple();
    let stored = match engine {
        Engine::Sqlite if simple => insert_sqlite(pool, &new).await.map(|s| (s, Vec::new())),
        Engine::Postgres if simple => insert_postgres(pool, &new, draft.announce_after)
            .await
            .map(|s| (s, Vec::new())),
        _ => insert_locked(pool, &new, draft.mentions, draft.files).await,
    };
    let ((id, seq), attached) = match (stored, draft.client_key) {
        (Ok(stored), _) => stored,
        // A retry of a send that was stored: nothing of this one was kept (its sequence number
        // neither); answer with the original.
        (Err(err), Some(key)) if crate::db::violated(&err) == Some(Unique::ClientKey) => {
            let existing = by_client_key(pool, author_id, key).await?.ok_or(err)?;
            return Ok((existing, false));
        }
        (Err(err), _) => return Err(err),
    };
    let mut message = new.stored(id, seq, author);
    message.attachments = attached;
    Ok((message, true))
}

/// Stores a record Parley writes in `author`'s name (a call's, see `store::calls`; a topic
/// change's) in the transaction `tx` that makes what it records: one record per event.
pub async fn insert_record(
    tx: &mut Transaction<'static, Any>,
    room: i64,
    author: Author<'_>,
    body: &MessageBody,
    kind: &'static str,
) -> sqlx::Result<Message> {
    let new = NewMessage {
        room,
        author_id: author.id,
        body: body.as_str(),
        created_ms: crate::now_ms(),
        client_key: None,
        mentions: "",
        kind,
    };
    let (id, seq) = insert_in(tx, &new, &[]).await?;
    Ok(new.stored(id, seq, author))
}

struct NewMessage<'a> {
    room: i64,
    author_id: i64,
    body: &'a str,
    created_ms: i64,
    client_key: Option<&'a ClientKey>,
    mentions: &'a str,
    kind: &'a str,
}

impl NewMessage<'_> {
    /// The message as stored under `id`, change number `seq`.
    fn stored(&self, id: i64, seq: i64, author: Author<'_>) -> Message {
        Message {
            id,
            room_id: self.room,
            seq,
            changed_seq: seq,
            author_id: self.author_id,
            author: author.username.to_owned(),
            author_display: author.display_name.to_owned(),
            author_avatar: author.avatar.to_owned(),
            body: self.body.to_owned(),
            created_ms: self.created_ms,
            edited_ms: None,
            mentions: self.mentions.to_owned(),
            kind: self.kind.to_owned(),
            reactions: Vec::new(),
            attachments: Vec::new(),
        }
    }
}

/// SQLite, the common case of a message that names nobody: one statement. SQLite serialises
/// writers, so `last_seq + 1` cannot be taken twice; the trigger `messages_after_insert` moves the
/// room's `last_seq` and the sender's membership.
async fn insert_sqlite(pool: &AnyPool, m: &NewMessage<'_>) -> sqlx::Result<(i64, i64)> {
    let insert = sqlx::query_as(
        "INSERT INTO messages (room_id, seq, changed_seq, author_id, body, created_ms, client_key, mentions, kind)
         SELECT id, last_seq + 1, last_seq + 1, $2, $3, $4, $5, $6, $7 FROM rooms WHERE id = $1
         RETURNING id, seq",
    );
    bind_new(insert, m)
        .fetch_optional(pool)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// PostgreSQL, the common case: [`insert_locked`]'s work in one statement, so one round trip
/// instead of six (a transaction's begin and commit, the room's number, the message, the
/// sender's membership, their mentions). The room's row stays locked from the number's update to
/// the commit, as in the transaction; a statement is all or nothing, so a refused retry
/// (`client_key`) takes no number either. The sender's membership moves to what they wrote,
/// as `insert_in` does.
///
/// With `later`, it does not NOTIFY: the room's trigger fires at the end of the statement, after
/// the `set_config` in its last line has asked it not to, and the caller announces the message
/// after the commit ([`Draft::announced_by_sender`]).
async fn insert_postgres(
    pool: &AnyPool,
    m: &NewMessage<'_>,
    later: bool,
) -> sqlx::Result<(i64, i64)> {
    let insert = sqlx::query_as::<_, (i64, i64, String)>(
        "WITH room AS (
            UPDATE rooms SET last_seq = last_seq + 1 WHERE id = $1 RETURNING id, last_seq
         ), message AS (
            INSERT INTO messages (room_id, seq, changed_seq, author_id, body, created_ms, client_key, mentions, kind)
            SELECT id, last_seq, last_seq, $2, $3, $4, $5, $6, $7 FROM room
            RETURNING id, seq, room_id, author_id, created_ms
         ), joined AS (
            INSERT INTO memberships (room_id, user_id, last_read_seq, joined_ms)
            SELECT room_id, author_id, seq, created_ms FROM message
            ON CONFLICT (room_id, user_id) DO UPDATE SET last_read_seq = excluded.last_read_seq
         )
         SELECT id, seq, set_config('parley.notify_later', $8, true) FROM message",
    );
    bind_new(insert, m)
        .bind(if later { "on" } else { "off" })
        .fetch_optional(pool)
        .await?
        .map(|(id, seq, _)| (id, seq))
        .ok_or(sqlx::Error::RowNotFound)
}

/// A send's values: `$1` the room, `$2`–`$7` the message.
fn bind_new<'q, O>(
    query: sqlx::query::QueryAs<'q, Any, O, sqlx::any::AnyArguments<'q>>,
    m: &NewMessage<'q>,
) -> sqlx::query::QueryAs<'q, Any, O, sqlx::any::AnyArguments<'q>> {
    query
        .bind(m.room)
        .bind(m.author_id)
        .bind(m.body)
        .bind(m.created_ms)
        .bind(m.client_key.map(ClientKey::as_str))
        .bind(m.mentions)
        .bind(m.kind)
}

/// Takes the room's next change number under its row lock (PostgreSQL), or under SQLite's
/// single writer, inside the transaction that makes the change.
async fn next_seq(tx: &mut Transaction<'static, Any>, room: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar("UPDATE rooms SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq")
        .bind(room)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// The transaction form of a send: PostgreSQL's concurrent writers take the sequence number
/// under the room's row lock (identity values alone can commit out of order), and a message that
/// mentions people stores who, and one with files their rows, in the same transaction.
async fn insert_locked(
    pool: &AnyPool,
    m: &NewMessage<'_>,
    mentions: &[Mention],
    files: &[NewAttachment],
) -> sqlx::Result<((i64, i64), Vec<Attachment>)> {
    let mut tx = pool.begin().await?;
    // On a unique violation the transaction is dropped, which rolls it back.
    let (id, seq) = insert_in(&mut tx, m, mentions).await?;
    let attached = match files {
        [] => Vec::new(),
        files => {
            attachments::insert_in(&mut tx, id, m.room, m.author_id, m.created_ms, files).await?
        }
    };
    tx.commit().await?;
    Ok(((id, seq), attached))
}

/// A message stored inside `tx`, with the room's next change number: its id and number.
async fn insert_in(
    tx: &mut Transaction<'static, Any>,
    m: &NewMessage<'_>,
    mentions: &[Mention],
) -> sqlx::Result<(i64, i64)> {
    let seq = next_seq(tx, m.room).await?;
    let insert = sqlx::query_as(
        "INSERT INTO messages (room_id, seq, changed_seq, author_id, body, created_ms, client_key, mentions, kind)
         VALUES ($1, $8, $8, $2, $3, $4, $5, $6, $7) RETURNING id",
    );
    let (id,): (i64,) = bind_new(insert, m).bind(seq).fetch_one(&mut **tx).await?;
    // Sending joins the room, and what you wrote yourself is not unread to you. (On SQLite the
    // insert trigger does this too; the upsert makes the second time a no-op.)
    sqlx::query(
        "INSERT INTO memberships (room_id, user_id, last_read_seq, joined_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (room_id, user_id) DO UPDATE SET last_read_seq = excluded.last_read_seq",
    )
    .bind(m.room)
    .bind(m.author_id)
    .bind(seq)
    .bind(m.created_ms)
    .execute(&mut **tx)
    .await?;
    store_mentions(tx, id, m.room, seq, mentions).await?;
    Ok((id, seq))
}

/// Sets whom message `message` mentions. Those it named already keep their row (and their read
/// state); those it names anew count as of change `seq`. The users named anew.
async fn store_mentions(
    tx: &mut Transaction<'static, Any>,
    message: i64,
    room: i64,
    seq: i64,
    mentions: &[Mention],
) -> sqlx::Result<Vec<i64>> {
    let before: Vec<i64> = sqlx::query_scalar("SELECT user_id FROM mentions WHERE message_id = $1")
        .bind(message)
        .fetch_all(&mut **tx)
        .await?;
    for gone in before
        .iter()
        .filter(|u| !mentions.iter().any(|m| m.id == **u))
    {
        sqlx::query("DELETE FROM mentions WHERE message_id = $1 AND user_id = $2")
            .bind(message)
            .bind(gone)
            .execute(&mut **tx)
            .await?;
    }
    let mut named = Vec::new();
    for m in mentions.iter().filter(|m| !before.contains(&m.id)) {
        sqlx::query(
            "INSERT INTO mentions (message_id, user_id, room_id, seq) VALUES ($1, $2, $3, $4)",
        )
        .bind(message)
        .bind(m.id)
        .bind(room)
        .bind(seq)
        .execute(&mut **tx)
        .await?;
        named.push(m.id);
    }
    Ok(named)
}

/// The message `author` sent with `key`, as it now is (a retry answers with it).
async fn by_client_key(
    pool: &AnyPool,
    author: i64,
    key: &ClientKey,
) -> sqlx::Result<Option<Message>> {
    let found: Option<(i64, i64)> = sqlx::query_as(
        "SELECT room_id, seq FROM messages WHERE author_id = $1 AND client_key = $2",
    )
    .bind(author)
    .bind(key.as_str())
    .fetch_optional(pool)
    .await?;
    match found {
        Some((room, seq)) => find(pool, room, seq).await,
        None => Ok(None),
    }
}

/// Message `seq` of `room`, with its reactions.
pub async fn find(pool: &AnyPool, room: i64, seq: i64) -> sqlx::Result<Option<Message>> {
    let mut conn = pool.acquire().await?;
    find_on(&mut conn, room, seq).await
}

/// [`find`] on one connection (inside a transaction: what it committed, as it committed it).
async fn find_on(
    conn: &mut sqlx::AnyConnection,
    room: i64,
    seq: i64,
) -> sqlx::Result<Option<Message>> {
    let found: Option<Message> =
        sqlx::query_as(&format!("{SELECT} WHERE m.room_id = $1 AND m.seq = $2"))
            .bind(room)
            .bind(seq)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(mut message) = found else {
        return Ok(None);
    };
    message.reactions = reactions_on(conn, message.id).await?;
    message.attachments = attachments::of_message(conn, message.id).await?;
    Ok(Some(message))
}

/// An edit made: the message as it now is, and who it names anew.
#[derive(Debug)]
pub struct Edited {
    pub message: Message,
    pub named: Vec<i64>,
}

/// Replaces the text of message `seq` (and whom it mentions) as the room's next change; None
/// when there is no such message (and then no change number is spent). Staff edits in the admin
/// come here too, with the text the admin stored.
pub async fn edit(
    pool: &AnyPool,
    room: i64,
    seq: i64,
    body: &MessageBody,
    mentions: &[Mention],
) -> sqlx::Result<Option<Edited>> {
    let mut tx = pool.begin().await?;
    let at = next_seq(&mut tx, room).await?;
    let id: Option<i64> = sqlx::query_scalar(
        "UPDATE messages SET body = $3, mentions = $4, edited_ms = $5, changed_seq = $6
         WHERE room_id = $1 AND seq = $2 AND kind = '' RETURNING id",
    )
    .bind(room)
    .bind(seq)
    .bind(body.as_str())
    .bind(mention_keys(mentions))
    .bind(crate::now_ms())
    .bind(at)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(id) = id else {
        return Ok(None); // rolled back: the sequence number is not spent
    };
    // Someone named anew counts the mention as of the edit, not as of the old message.
    let named = store_mentions(&mut tx, id, room, at, mentions).await?;
    let message = find_on(&mut tx, room, seq)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    tx.commit().await?;
    Ok(Some(Edited { message, named }))
}

/// A deletion made: its change, and the file store's keys of the bytes of the message's
/// attachments, whose rows went with it (the caller deletes the bytes).
#[derive(Debug)]
pub struct Deleted {
    pub change: Change,
    pub files: Vec<String>,
}

/// Deletes message `seq` for good (its text, reactions, mentions and attachments go with the
/// row), leaving a tombstone for polls from before; None when there was no such message.
pub async fn delete(pool: &AnyPool, room: i64, seq: i64) -> sqlx::Result<Option<Deleted>> {
    let mut tx = pool.begin().await?;
    let at = next_seq(&mut tx, room).await?;
    let id: Option<i64> =
        sqlx::query_scalar("SELECT id FROM messages WHERE room_id = $1 AND seq = $2")
            .bind(room)
            .bind(seq)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(id) = id else {
        return Ok(None); // rolled back: the sequence number is not spent
    };
    let files = attachments::delete_of_message(&mut tx, id).await?;
    sqlx::query("DELETE FROM messages WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO message_tombstones (room_id, seq, deleted_seq) VALUES ($1, $2, $3)")
        .bind(room)
        .bind(seq)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let change = Change::Deleted {
        room_id: room,
        seq,
        at,
    };
    Ok(Some(Deleted { change, files }))
}

/// Takes attachment `attachment` off message `seq` of `room`, as the room's next change: the
/// message as it now is and the keys of the file's bytes (for the caller to delete), or None when
/// the message has no such attachment.
pub async fn detach(
    pool: &AnyPool,
    room: i64,
    seq: i64,
    attachment: i64,
) -> sqlx::Result<Option<(Message, Vec<String>)>> {
    let mut tx = pool.begin().await?;
    let at = next_seq(&mut tx, room).await?;
    let Some(id) = touch(&mut tx, room, seq, at).await? else {
        return Ok(None);
    };
    let Some(files) = attachments::delete_one(&mut tx, id, attachment).await? else {
        return Ok(None); // rolled back: the sequence number is not spent
    };
    let message = find_on(&mut tx, room, seq)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    tx.commit().await?;
    Ok(Some((message, files)))
}

/// Marks message `seq` of `room` as last changed by change `at`: its id, or None when there is
/// no such message.
async fn touch(
    tx: &mut Transaction<'static, Any>,
    room: i64,
    seq: i64,
    at: i64,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "UPDATE messages SET changed_seq = $3 WHERE room_id = $1 AND seq = $2 RETURNING id",
    )
    .bind(room)
    .bind(seq)
    .bind(at)
    .fetch_optional(&mut **tx)
    .await
}

/// The room and sequence number of message `id` (for staff, who name messages by id).
pub async fn locate(pool: &AnyPool, id: i64) -> sqlx::Result<Option<(i64, i64)>> {
    sqlx::query_as("SELECT room_id, seq FROM messages WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Adds the user's `emoji` to message `seq`, or takes it away if they had put it there; the
/// change and the message's reactions after it, or None when there is no such message.
pub async fn toggle_reaction(
    pool: &AnyPool,
    room: i64,
    seq: i64,
    user: i64,
    emoji: &Emoji,
) -> sqlx::Result<Option<Change>> {
    let mut tx = pool.begin().await?;
    let at = next_seq(&mut tx, room).await?;
    let Some(id) = touch(&mut tx, room, seq, at).await? else {
        return Ok(None);
    };
    let removed =
        sqlx::query("DELETE FROM reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3")
            .bind(id)
            .bind(user)
            .bind(emoji.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
    if removed == 0 {
        sqlx::query(
            "INSERT INTO reactions (message_id, user_id, emoji, created_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(user)
        .bind(emoji.as_str())
        .bind(crate::now_ms())
        .execute(&mut *tx)
        .await?;
    }
    let reactions = reactions_on(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Some(Change::Reacted {
        room_id: room,
        seq,
        at,
        reactions,
    }))
}

#[derive(sqlx::FromRow)]
struct ReactionRow {
    seq: i64,
    emoji: String,
    username: String,
}

fn group(rows: impl IntoIterator<Item = (String, String)>) -> Vec<Reaction> {
    let mut out: Vec<Reaction> = Vec::new();
    for (emoji, user) in rows {
        match out.iter_mut().find(|r| r.emoji == emoji) {
            Some(r) => r.users.push(user),
            None => out.push(Reaction {
                emoji,
                users: vec![user],
            }),
        }
    }
    out
}

async fn reactions_on(conn: &mut sqlx::AnyConnection, message: i64) -> sqlx::Result<Vec<Reaction>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT r.emoji, u.username FROM reactions r JOIN users u ON u.id = r.user_id
         WHERE r.message_id = $1 ORDER BY r.created_ms, u.username_key",
    )
    .bind(message)
    .fetch_all(conn)
    .await?;
    Ok(group(rows))
}

/// Fills in the reactions and attachments of a run of one room's messages, with a query each.
async fn with_reactions(
    conn: &mut AnyConnection,
    mut messages: Vec<Message>,
) -> sqlx::Result<Vec<Message>> {
    let (Some(first), Some(last)) = (messages.first(), messages.last()) else {
        return Ok(messages);
    };
    let (lo, hi) = (first.seq.min(last.seq), first.seq.max(last.seq));
    let files = attachments::of_messages(&mut *conn, first.room_id, lo, hi).await?;
    let rows: Vec<ReactionRow> = sqlx::query_as(
        "SELECT m.seq AS seq, r.emoji AS emoji, u.username AS username
         FROM reactions r JOIN messages m ON m.id = r.message_id JOIN users u ON u.id = r.user_id
         WHERE m.room_id = $1 AND m.seq BETWEEN $2 AND $3
         ORDER BY m.seq, r.created_ms, u.username_key",
    )
    .bind(first.room_id)
    .bind(lo)
    .bind(hi)
    .fetch_all(conn)
    .await?;
    for message in &mut messages {
        let mine = rows
            .iter()
            .filter(|r| r.seq == message.seq)
            .map(|r| (r.emoji.clone(), r.username.clone()));
        message.reactions = group(mine);
        message.attachments = files
            .iter()
            .filter(|(seq, _)| *seq == message.seq)
            .map(|(_, a)| a.clone())
            .collect();
    }
    Ok(messages)
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
    let mut conn = pool.acquire().await?;
    let mut rows: Vec<Message> = sqlx::query_as(&format!(
        "{SELECT} WHERE m.room_id = $1 AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3"
    ))
    .bind(room)
    .bind(before)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.reverse();
    with_reactions(&mut conn, rows).await
}

/// Up to `limit` messages with `after` < seq <= `until`, oldest first: a page forward from an
/// older window (the newer ones the page's poll brings).
pub async fn after(
    pool: &AnyPool,
    room: i64,
    after: i64,
    until: i64,
    limit: i64,
) -> sqlx::Result<Vec<Message>> {
    let mut conn = pool.acquire().await?;
    let rows: Vec<Message> = sqlx::query_as(&format!(
        "{SELECT} WHERE m.room_id = $1 AND m.seq > $2 AND m.seq <= $3 ORDER BY m.seq LIMIT $4"
    ))
    .bind(room)
    .bind(after)
    .bind(until)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    with_reactions(&mut conn, rows).await
}

/// What a poll at `after` has not seen, rebuilt from the database: the messages created since
/// (as they are now), the older ones changed since (as they are now), and the deletions since,
/// in change order, with the cursor they bring the poll to. At most `limit` of each kind; a poll
/// that is further behind than that re-polls from the cursor returned.
///
/// The room's `last_seq` is read first: every change up to it has committed (changes commit in
/// sequence order), so what the reads below see of (after, cursor] is complete. They all read
/// one snapshot (a read transaction; `REPEATABLE READ` on PostgreSQL), so nothing committed
/// after `last_seq` was read shows in them: a reaction or edit that did would be in this answer
/// and, beyond its cursor, in the next one again.
///
/// An answer cut short by `limit` ends below `last_seq`, but its messages are still shown as of
/// `last_seq`: one edited or reacted to after the cut comes again, the same, in the next answer.
/// Only a poll more than `limit` changes behind sees that, and a page shows the same thing twice
/// (htmx swaps the element for itself).
pub async fn changes_after(
    pool: &AnyPool,
    room: i64,
    after: i64,
    limit: i64,
) -> sqlx::Result<(Vec<Change>, i64)> {
    changes_after_then(pool, room, after, limit, std::future::ready(())).await
}

/// [`changes_after`], running `meanwhile` once the room's `last_seq` has been read and before
/// the rest is: how a test commits a change in the middle of the read.
#[doc(hidden)]
pub async fn changes_after_then(
    pool: &AnyPool,
    room: i64,
    after: i64,
    limit: i64,
    meanwhile: impl std::future::Future<Output = ()>,
) -> sqlx::Result<(Vec<Change>, i64)> {
    let mut tx = pool.begin().await?;
    if Engine::of(&tx) == Engine::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
    }
    let last: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM rooms WHERE id = $1")
        .bind(room)
        .fetch_optional(&mut *tx)
        .await?;
    meanwhile.await;
    let Some(mut cursor) = last.filter(|last| *last > after) else {
        tx.commit().await?;
        return Ok((Vec::new(), after));
    };
    let created: Vec<Message> = sqlx::query_as(&format!(
        "{SELECT} WHERE m.room_id = $1 AND m.seq > $2 AND m.seq <= $3 ORDER BY m.seq LIMIT $4"
    ))
    .bind(room)
    .bind(after)
    .bind(cursor)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    if created.len() as i64 == limit {
        // Too far behind for one answer: bring it up to the last new message, re-poll for more.
        cursor = created.last().map_or(cursor, |m| m.seq);
    }
    let changed: Vec<Message> = sqlx::query_as(&format!(
        "{SELECT} WHERE m.room_id = $1 AND m.changed_seq > m.seq
           AND m.seq <= $2 AND m.changed_seq > $2 AND m.changed_seq <= $3
         ORDER BY m.changed_seq LIMIT $4"
    ))
    .bind(room)
    .bind(after)
    .bind(cursor)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let deleted: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT seq, deleted_seq FROM message_tombstones
         WHERE room_id = $1 AND seq <= $2 AND deleted_seq > $2 AND deleted_seq <= $3
         ORDER BY deleted_seq LIMIT $4",
    )
    .bind(room)
    .bind(after)
    .bind(cursor)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    // Each list is complete up to its last row only when it is full: the answer stops at the
    // lowest such row, and the poll asks again from there.
    if changed.len() as i64 == limit {
        cursor = cursor.min(changed.last().map_or(cursor, |m| m.changed_seq));
    }
    if deleted.len() as i64 == limit {
        cursor = cursor.min(deleted.last().map_or(cursor, |d| d.1));
    }
    let created: Vec<Message> = created.into_iter().filter(|m| m.seq <= cursor).collect();
    let changed: Vec<Message> = changed
        .into_iter()
        .filter(|m| m.changed_seq <= cursor)
        .collect();
    let deleted = deleted.into_iter().filter(|d| d.1 <= cursor);
    let mut changes: Vec<Change> = with_reactions(&mut tx, created)
        .await?
        .into_iter()
        .map(Change::New)
        .collect();
    for m in changed {
        let mut m = with_reactions(&mut tx, vec![m]).await?;
        changes.extend(m.pop().map(Change::Updated));
    }
    changes.extend(deleted.map(|(seq, at)| Change::Deleted {
        room_id: room,
        seq,
        at,
    }));
    tx.commit().await?;
    changes.sort_by_key(Change::at);
    Ok((changes, cursor))
}

/// A message that mentions someone, for their `/mentions` page.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Mentioned {
    pub seq: i64,
    pub author: String,
    pub author_display: String,
    pub body: String,
    pub created_ms: i64,
    #[sqlx(try_from = "String")]
    pub room_kind: crate::store::rooms::RoomKind,
    pub room_name: Option<String>,
    /// In a direct conversation, the other person (whose name is its URL).
    pub other: Option<String>,
}

/// The newest messages that mention `user`, newest first, in conversations they can read (every
/// public room, their own direct ones: a mention is only stored for someone who can read it).
pub async fn mentioning(pool: &AnyPool, user: i64, limit: i64) -> sqlx::Result<Vec<Mentioned>> {
    sqlx::query_as(&format!(
        "SELECT m.seq AS seq, a.username AS author, a.display_name AS author_display,
                m.body AS body, m.created_ms AS created_ms, r.kind AS room_kind, r.name AS room_name, {OTHER_PERSON} AS other
         FROM mentions x
         JOIN messages m ON m.id = x.message_id
         JOIN users a ON a.id = m.author_id
         JOIN rooms r ON r.id = x.room_id
         WHERE x.user_id = $1
         ORDER BY m.created_ms DESC, m.id DESC LIMIT $2"
    ))
    .bind(user)
    .bind(limit)
    .fetch_all(pool)
    .await
}
