use sqlx::AnyPool;

use super::contains_pattern;
use super::messages::{self, Message};
use crate::domain::{MessageBody, RoomName, Topic};

/// What a room is: public (anyone logged in reads and writes it) or the direct conversation of
/// two people. Stored as the text `public` / `direct`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomKind {
    Public,
    Direct,
}

impl TryFrom<String> for RoomKind {
    type Error = String;

    fn try_from(kind: String) -> Result<Self, Self::Error> {
        match kind.as_str() {
            "public" => Ok(RoomKind::Public),
            "direct" => Ok(RoomKind::Direct),
            other => Err(format!("unknown room kind {other:?}")),
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Room {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub kind: RoomKind,
    pub name: Option<String>,
    pub topic: String,
    pub last_seq: i64,
}

/// For a SELECT list over rooms `r`, with `$1` the viewer: in a direct conversation, the other
/// person's name (the conversation's URL for the viewer is `/dm/{it}`); NULL in a public room.
pub const OTHER_PERSON: &str =
    "(SELECT u.username FROM memberships o JOIN users u ON u.id = o.user_id
     WHERE r.kind = 'direct' AND o.room_id = r.id AND o.user_id <> $1 LIMIT 1)";

const ROOM_COLUMNS: &str = "id, kind, name, topic, last_seq";

pub async fn find_public(pool: &AnyPool, name: &str) -> sqlx::Result<Option<Room>> {
    sqlx::query_as(&format!(
        "SELECT {ROOM_COLUMNS} FROM rooms WHERE kind = 'public' AND name_key = $1"
    ))
    .bind(name.to_ascii_lowercase())
    .fetch_optional(pool)
    .await
}

pub async fn find_by_id(pool: &AnyPool, id: i64) -> sqlx::Result<Option<Room>> {
    sqlx::query_as(&format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The room with this name, created by `user` if nobody has yet. Creating and joining race
/// safely: the unique name key decides, and the loser simply reads the winner's room.
pub async fn create_or_get_public(
    pool: &AnyPool,
    name: &RoomName,
    user: i64,
) -> sqlx::Result<Room> {
    sqlx::query(
        "INSERT INTO rooms (kind, name, name_key, created_by, created_ms)
         VALUES ('public', $1, $2, $3, $4) ON CONFLICT (name_key) DO NOTHING",
    )
    .bind(name.as_str())
    .bind(name.key())
    .bind(user)
    .bind(crate::now_ms())
    .execute(pool)
    .await?;
    find_public(pool, name.as_str())
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// How many public rooms `user` has created.
pub async fn created_by(pool: &AnyPool, user: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM rooms WHERE created_by = $1 AND kind = 'public'")
        .bind(user)
        .fetch_one(pool)
        .await
}

/// The direct conversation of two users: one room per pair, whoever opens it first.
pub async fn create_or_get_direct(pool: &AnyPool, a: i64, b: i64) -> sqlx::Result<Room> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO rooms (kind, direct_key, created_by, created_ms)
         VALUES ('direct', $1, $2, $3) ON CONFLICT (direct_key) DO NOTHING",
    )
    .bind(direct_key(a, b))
    .bind(a)
    .bind(crate::now_ms())
    .execute(&mut *tx)
    .await?;
    let room: Room = sqlx::query_as(&format!(
        "SELECT {ROOM_COLUMNS} FROM rooms WHERE direct_key = $1"
    ))
    .bind(direct_key(a, b))
    .fetch_one(&mut *tx)
    .await?;
    for user in [a, b] {
        sqlx::query(
            "INSERT INTO memberships (room_id, user_id, last_read_seq, joined_ms)
             VALUES ($1, $2, 0, $3) ON CONFLICT (room_id, user_id) DO NOTHING",
        )
        .bind(room.id)
        .bind(user)
        .bind(crate::now_ms())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(room)
}

/// The direct conversation of two users, if either has opened it.
pub async fn find_direct(pool: &AnyPool, a: i64, b: i64) -> sqlx::Result<Option<Room>> {
    sqlx::query_as(&format!(
        "SELECT {ROOM_COLUMNS} FROM rooms WHERE direct_key = $1"
    ))
    .bind(direct_key(a, b))
    .fetch_optional(pool)
    .await
}

fn direct_key(a: i64, b: i64) -> String {
    format!("{}:{}", a.min(b), a.max(b))
}

/// Joins a room; a newcomer starts with the history counted as read. Someone who had left it
/// (see [`leave`]) has it back in their sidebar, being a member again.
pub async fn join(pool: &AnyPool, room: i64, user: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO memberships (room_id, user_id, last_read_seq, joined_ms)
         SELECT id, $2, last_seq, $3 FROM rooms WHERE id = $1
         ON CONFLICT (room_id, user_id) DO NOTHING",
    )
    .bind(room)
    .bind(user)
    .bind(crate::now_ms())
    .execute(pool)
    .await?;
    Ok(())
}

/// The room every new account joins, which a fresh installation has (a migration makes it).
pub const FIRST_ROOM: &str = "general";

/// Makes a new account a member of the first room, if staff have not removed it; the room.
pub async fn join_first_room(pool: &AnyPool, user: i64) -> sqlx::Result<Option<i64>> {
    let Some(first) = find_public(pool, FIRST_ROOM).await? else {
        return Ok(None);
    };
    join(pool, first.id, user).await?;
    Ok(Some(first.id))
}

/// Leaves a public room: the person is no longer among its members and the room leaves their
/// sidebar (and their favourites) until they are a member again, however they become one
/// (opening it, joining it, writing in it from a page still open). Their messages stay.
pub async fn leave(pool: &AnyPool, room: i64, user: i64) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM memberships WHERE room_id = $1 AND user_id = $2")
        .bind(room)
        .bind(user)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM favourites WHERE room_id = $1 AND user_id = $2")
        .bind(room)
        .bind(user)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO departures (room_id, user_id, left_ms) VALUES ($1, $2, $3)
         ON CONFLICT (user_id, room_id) DO UPDATE SET left_ms = excluded.left_ms",
    )
    .bind(room)
    .bind(user)
    .bind(crate::now_ms())
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// A public room as the "Browse rooms" page lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DirectoryEntry {
    pub name: String,
    pub topic: String,
    /// Its active members.
    pub members: i64,
    /// When its newest message was written; None when nobody has written in it.
    pub last_ms: Option<i64>,
    /// Whether the viewer belongs to it (1 or 0).
    pub joined: i64,
}

/// Every public room (at most 500, by name), filtered by part of a name, for `user` to browse.
pub async fn directory(
    pool: &AnyPool,
    user: i64,
    search: &str,
) -> sqlx::Result<Vec<DirectoryEntry>> {
    // The newest message by the (room_id, seq) index, rather than a MAX over the room's times.
    sqlx::query_as(
        "SELECT r.name AS name, r.topic AS topic,
                CAST((SELECT COUNT(*) FROM memberships s JOIN users u ON u.id = s.user_id
                      WHERE s.room_id = r.id AND u.is_active = 1) AS BIGINT) AS members,
                (SELECT x.created_ms FROM messages x WHERE x.room_id = r.id
                 ORDER BY x.seq DESC LIMIT 1) AS last_ms,
                CAST((SELECT COUNT(*) FROM memberships j
                      WHERE j.room_id = r.id AND j.user_id = $1) AS BIGINT) AS joined
         FROM rooms r
         WHERE r.kind = 'public' AND ($2 = '' OR r.name_key LIKE $3 ESCAPE '\\')
         ORDER BY r.name_key LIMIT 500",
    )
    .bind(user)
    .bind(search)
    .bind(contains_pattern(search))
    .fetch_all(pool)
    .await
}

/// Moves the user's read position forward to `seq` (never back, never past the room's end);
/// whether it moved.
pub async fn mark_read(pool: &AnyPool, room: i64, user: i64, seq: i64) -> sqlx::Result<bool> {
    let moved = sqlx::query(
        "UPDATE memberships SET last_read_seq = $3
         WHERE room_id = $1 AND user_id = $2 AND last_read_seq < $3
           AND $3 <= (SELECT last_seq FROM rooms WHERE id = $1)",
    )
    .bind(room)
    .bind(user)
    .bind(seq)
    .execute(pool)
    .await?;
    Ok(moved.rows_affected() > 0)
}

/// The first message by someone else that `user` has not read in `room`, and how many messages
/// (anyone's) there are from it on, counted up to `cap`; None when they have read everything.
pub async fn first_unread(
    pool: &AnyPool,
    room: i64,
    user: i64,
    cap: i64,
) -> sqlx::Result<Option<(i64, i64)>> {
    let first: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(m.seq) FROM messages m JOIN memberships s ON s.room_id = m.room_id
         WHERE m.room_id = $1 AND s.user_id = $2 AND m.seq > s.last_read_seq
           AND m.author_id <> $2",
    )
    .bind(room)
    .bind(user)
    .fetch_one(pool)
    .await?;
    let Some(first) = first else {
        return Ok(None);
    };
    let from_it: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM messages WHERE room_id = $1 AND seq >= $2 LIMIT $3) n",
    )
    .bind(room)
    .bind(first)
    .bind(cap)
    .fetch_one(pool)
    .await?;
    Ok(Some((first, from_it)))
}

/// A public room in the sidebar; `last_read_seq` is None for rooms the user has not joined.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RoomListing {
    pub name: String,
    pub topic: String,
    pub last_seq: i64,
    pub last_read_seq: Option<i64>,
    /// Messages by others since the user's read position (counted up to [`UNREAD_CAP`]).
    pub unread: i64,
    /// Of those, the ones that mention the user.
    pub mentions: i64,
}

impl RoomListing {
    pub fn unread(&self) -> Option<i64> {
        self.last_read_seq.map(|_| self.unread)
    }
}

/// Unread messages are counted up to this many per conversation ("99+"): a count costs at most
/// this many index entries, however long someone has been away.
pub const UNREAD_CAP: i64 = 100;

/// The unread and mention counts of membership `m` (of user $1) in room `r`, for a SELECT list.
/// Changes that are not new messages (edits, reactions) move `last_seq` but are not unread.
const COUNTS: &str = "CAST((SELECT COUNT(*) FROM (SELECT 1 FROM messages x
                                 WHERE x.room_id = r.id AND x.seq > m.last_read_seq
                                   AND x.author_id <> $1 LIMIT 100) c) AS BIGINT) AS unread,
                      CAST((SELECT COUNT(*) FROM mentions n
                            WHERE n.user_id = $1 AND n.room_id = r.id
                              AND n.seq > m.last_read_seq) AS BIGINT) AS mentions";

pub async fn public_rooms(
    pool: &AnyPool,
    user: i64,
    search: &str,
) -> sqlx::Result<Vec<RoomListing>> {
    // At most 500, by name; the ones the person starred or belongs to are always among them,
    // however many rooms others open.
    sqlx::query_as(&format!(
        "SELECT * FROM (
             SELECT r.name AS name, r.topic AS topic, r.last_seq AS last_seq,
                    m.last_read_seq AS last_read_seq, {COUNTS}, r.name_key AS name_key
             FROM rooms r LEFT JOIN memberships m ON m.room_id = r.id AND m.user_id = $1
             WHERE r.kind = 'public' AND ($2 = '' OR r.name_key LIKE $3 ESCAPE '\\')
               -- A room the person left stays out of the list while they are not a member again
               -- (every way of becoming one counts), but a search finds it.
               AND ($2 <> '' OR m.user_id IS NOT NULL
                    OR NOT EXISTS (SELECT 1 FROM departures d
                                   WHERE d.user_id = $1 AND d.room_id = r.id))
             ORDER BY EXISTS (SELECT 1 FROM favourites f WHERE f.user_id = $1 AND f.room_id = r.id) DESC,
                      m.user_id IS NULL, r.name_key
             LIMIT 500
         ) listed ORDER BY name_key"
    ))
    .bind(user)
    .bind(search)
    .bind(contains_pattern(search))
    .fetch_all(pool)
    .await
}

/// Unread counts of the user's direct conversations, by the other person's id.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DirectUnread {
    pub other_id: i64,
    pub unread: i64,
    pub mentions: i64,
}

pub async fn direct_unreads(pool: &AnyPool, user: i64) -> sqlx::Result<Vec<DirectUnread>> {
    sqlx::query_as(&format!(
        "SELECT o.user_id AS other_id, {COUNTS}
         FROM memberships m
         JOIN rooms r ON r.id = m.room_id AND r.kind = 'direct'
         JOIN memberships o ON o.room_id = r.id AND o.user_id <> m.user_id
         WHERE m.user_id = $1"
    ))
    .bind(user)
    .fetch_all(pool)
    .await
}

/// A user's name and the rooms they belong to (for their live sidebar).
pub async fn name_and_rooms(pool: &AnyPool, user: i64) -> sqlx::Result<(String, Vec<i64>)> {
    let name: String = sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
        .bind(user)
        .fetch_optional(pool)
        .await?
        .unwrap_or_default();
    let rooms = sqlx::query_scalar("SELECT room_id FROM memberships WHERE user_id = $1")
        .bind(user)
        .fetch_all(pool)
        .await?;
    Ok((name, rooms))
}

/// The users among `keys` (lowercase names) who may read `room`: anyone active for a public room,
/// the two members of a direct one.
pub async fn readers_named(
    pool: &AnyPool,
    room: i64,
    keys: &[String],
) -> sqlx::Result<Vec<crate::store::messages::Mention>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    // One placeholder per name ($2, $3, …): the count comes from our own parsing, never the text.
    let marks: Vec<String> = (0..keys.len()).map(|i| format!("${}", i + 2)).collect();
    let sql = format!(
        "SELECT u.id AS id, u.username_key AS key FROM users u JOIN rooms r ON r.id = $1
         WHERE u.is_active = 1 AND u.username_key IN ({})
           AND (r.kind = 'public'
                OR EXISTS (SELECT 1 FROM memberships m WHERE m.room_id = r.id AND m.user_id = u.id))
         ORDER BY u.username_key",
        marks.join(", ")
    );
    let mut query = sqlx::query_as(&sql).bind(room);
    for key in keys {
        query = query.bind(key);
    }
    query.fetch_all(pool).await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Member {
    pub username: String,
    /// Empty when they have none.
    pub display_name: String,
    /// Their picture's key; empty for none.
    pub avatar: String,
    pub last_seen_ms: i64,
}

pub async fn members(pool: &AnyPool, room: i64) -> sqlx::Result<Vec<Member>> {
    sqlx::query_as(
        "SELECT u.username AS username, u.display_name AS display_name,
                u.avatar AS avatar, u.last_seen_ms AS last_seen_ms
         FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.room_id = $1 AND u.is_active = 1 ORDER BY u.username_key LIMIT 200",
    )
    .bind(room)
    .fetch_all(pool)
    .await
}

/// Sets a room's topic and records who set it to what, as a message in the room, in one
/// transaction.
pub async fn set_topic(
    pool: &AnyPool,
    room: i64,
    topic: &Topic,
    by: messages::Author<'_>,
) -> sqlx::Result<Message> {
    let text = match topic.as_str() {
        "" => "cleared the topic".to_owned(),
        topic => format!("set the topic to “{topic}”"),
    };
    let body = MessageBody::parse(&text).map_err(|e| sqlx::Error::Protocol(e.0.to_owned()))?;
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE rooms SET topic = $2 WHERE id = $1")
        .bind(room)
        .bind(topic.as_str())
        .execute(&mut *tx)
        .await?;
    let record = messages::insert_record(&mut tx, room, by, &body, messages::TOPIC_RECORD).await?;
    tx.commit().await?;
    Ok(record)
}

/// Whether `user` belongs to `room`.
pub async fn is_member(pool: &AnyPool, room: i64, user: i64) -> sqlx::Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM memberships WHERE room_id = $1 AND user_id = $2")
            .bind(room)
            .bind(user)
            .fetch_optional(pool)
            .await?;
    Ok(found.is_some())
}
