//! Favourites: the conversations (public rooms, private conversations) a person has starred,
//! listed first in their sidebar in the order they starred them.

use sqlx::AnyPool;

use super::rooms::{OTHER_PERSON, RoomKind};

/// Stars `room` for `user`; starring it again changes nothing (nor its place in the order).
pub async fn add(pool: &AnyPool, user: i64, room: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO favourites (user_id, room_id, created_ms) VALUES ($1, $2, $3)
         ON CONFLICT (user_id, room_id) DO NOTHING",
    )
    .bind(user)
    .bind(room)
    .bind(crate::now_ms())
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn remove(pool: &AnyPool, user: i64, room: i64) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM favourites WHERE user_id = $1 AND room_id = $2")
        .bind(user)
        .bind(room)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn is_starred(pool: &AnyPool, user: i64, room: i64) -> sqlx::Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM favourites WHERE user_id = $1 AND room_id = $2")
            .bind(user)
            .bind(room)
            .fetch_optional(pool)
            .await?;
    Ok(found.is_some())
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    #[sqlx(try_from = "String")]
    kind: RoomKind,
    name: Option<String>,
    other: Option<String>,
}

/// The URLs of the conversations `user` starred (`/rooms/{name}`, `/dm/{username}`), in the
/// order starred.
pub async fn urls(pool: &AnyPool, user: i64) -> sqlx::Result<Vec<String>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT r.kind AS kind, r.name AS name, {OTHER_PERSON} AS other
         FROM favourites f JOIN rooms r ON r.id = f.room_id
         WHERE f.user_id = $1 ORDER BY f.id"
    ))
    .bind(user)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| match (r.kind, r.name, r.other) {
            (RoomKind::Public, Some(name), _) => Some(format!("/rooms/{name}")),
            (RoomKind::Direct, _, Some(other)) => Some(format!("/dm/{other}")),
            _ => None,
        })
        .collect())
}
