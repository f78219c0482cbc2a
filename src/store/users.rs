use sqlx::AnyPool;

use super::{ONLINE_WINDOW_MS, contains_pattern};
use crate::domain::{Bio, DisplayName, Theme, Username};

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub is_active: bool,
    /// Shown beside the username; empty is none.
    pub display_name: String,
    pub bio: String,
    pub theme: Theme,
    /// The file store key of their picture (`a/…`); empty for none.
    pub avatar: String,
}

/// Flags are stored as 0/1 (see the migration), turned into bools once, here.
#[derive(sqlx::FromRow)]
struct UserRow {
    id: i64,
    username: String,
    password_hash: String,
    is_staff: i64,
    is_superuser: i64,
    is_active: i64,
    display_name: String,
    bio: String,
    theme: String,
    avatar: String,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        Self {
            id: r.id,
            username: r.username,
            password_hash: r.password_hash,
            is_staff: r.is_staff == 1,
            is_superuser: r.is_superuser == 1,
            is_active: r.is_active == 1,
            display_name: r.display_name,
            bio: r.bio,
            // The database allows only the three (a CHECK); anything else would be a bug.
            theme: Theme::parse(&r.theme).unwrap_or_default(),
            avatar: r.avatar,
        }
    }
}

const USER_COLUMNS: &str = "id, username, password_hash, is_staff, is_superuser, is_active, display_name, bio, theme, avatar";

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("That username is taken.")]
    Taken,
    #[error("That username is too similar to an existing name.")]
    TooSimilar,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub async fn create(
    pool: &AnyPool,
    name: &Username,
    password_hash: &str,
    superuser: bool,
) -> Result<i64, CreateUserError> {
    let id = sqlx::query_scalar(
        "INSERT INTO users (username, username_key, username_fold, password_hash, is_staff, is_superuser, created_ms)
         VALUES ($1, $2, $3, $4, $5, $5, $6) RETURNING id",
    )
    .bind(name.as_str())
    .bind(name.key())
    .bind(name.fold())
    .bind(password_hash)
    .bind(i64::from(superuser))
    .bind(crate::now_ms())
    .fetch_one(pool)
    .await;
    match id {
        Ok(id) => Ok(id),
        Err(e) => match crate::db::violated(&e) {
            Some(crate::db::Unique::Username) => Err(CreateUserError::Taken),
            // The same name has the same fold too, and which rule the database names first is
            // its own affair: the same name is "taken", not "similar".
            Some(crate::db::Unique::UsernameFold) => {
                match find_by_name(pool, name.as_str()).await? {
                    Some(_) => Err(CreateUserError::Taken),
                    None => Err(CreateUserError::TooSimilar),
                }
            }
            _ => Err(e.into()),
        },
    }
}

pub async fn find_by_name(pool: &AnyPool, name: &str) -> sqlx::Result<Option<User>> {
    let row: Option<UserRow> = sqlx::query_as(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username_key = $1"
    ))
    .bind(name.to_ascii_lowercase())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(User::from))
}

/// Whether an account's name looks like `name` (has its fold).
pub async fn look_alike_exists(pool: &AnyPool, name: &Username) -> sqlx::Result<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE username_fold = $1")
        .bind(name.fold())
        .fetch_optional(pool)
        .await?;
    Ok(found.is_some())
}

pub async fn find_by_id(pool: &AnyPool, id: i64) -> sqlx::Result<Option<User>> {
    let row: Option<UserRow> =
        sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(User::from))
}

pub async fn set_password_hash(pool: &AnyPool, id: i64, hash: &str) -> sqlx::Result<bool> {
    let done = sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets what a person says about themselves, both or neither. Whether the display name changed is
/// returned: the caller then tells every process (messages rendered with the old name are shown
/// by pages until they are read from the database again).
pub async fn set_profile(
    pool: &AnyPool,
    id: i64,
    display_name: &DisplayName,
    bio: &Bio,
) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let before: Option<String> = sqlx::query_scalar("SELECT display_name FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    sqlx::query("UPDATE users SET display_name = $2, bio = $3 WHERE id = $1")
        .bind(id)
        .bind(display_name.as_str())
        .bind(bio.as_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(before.is_some_and(|b| b != display_name.as_str()))
}

/// Sets a person's picture (its key, or empty for none) and returns the one it replaces (empty
/// for none), whose bytes the caller deletes once this has committed. The swap is conditional on
/// what was read, so of two changes at once each learns the key it really replaced, and no
/// picture's bytes are left behind unnamed.
pub async fn set_avatar(pool: &AnyPool, id: i64, key: &str) -> sqlx::Result<String> {
    loop {
        let Some(before): Option<String> =
            sqlx::query_scalar("SELECT avatar FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        else {
            return Ok(String::new());
        };
        let swapped = sqlx::query("UPDATE users SET avatar = $2 WHERE id = $1 AND avatar = $3")
            .bind(id)
            .bind(key)
            .bind(&before)
            .execute(pool)
            .await?
            .rows_affected();
        if swapped == 1 {
            return Ok(before);
        }
    }
}

/// Those of `candidates` (picture keys) that nobody's `avatar` names.
pub async fn unreferenced_avatars(
    pool: &AnyPool,
    candidates: &[String],
) -> sqlx::Result<Vec<String>> {
    let mut orphans = Vec::new();
    for batch in candidates.chunks(100) {
        // Placeholders only, one per key: the keys themselves are bound.
        let list: Vec<String> = (1..=batch.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT avatar FROM users WHERE avatar IN ({})",
            list.join(", ")
        );
        let mut query = sqlx::query_scalar::<_, String>(&sql);
        for key in batch {
            query = query.bind(key);
        }
        let named = query.fetch_all(pool).await?;
        orphans.extend(batch.iter().filter(|k| !named.contains(k)).cloned());
    }
    Ok(orphans)
}

pub async fn set_theme(pool: &AnyPool, id: i64, theme: Theme) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET theme = $2 WHERE id = $1")
        .bind(id)
        .bind(theme.as_str())
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn touch_last_seen(pool: &AnyPool, id: i64, at_ms: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET last_seen_ms = $2 WHERE id = $1")
        .bind(id)
        .bind(at_ms)
        .execute(pool)
        .await?;
    Ok(())
}

/// A row of the people list.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Person {
    pub id: i64,
    pub username: String,
    /// Empty when they have none.
    pub display_name: String,
    /// Their picture's key; empty for none.
    pub avatar: String,
    pub last_seen_ms: i64,
}

impl Person {
    pub fn is_online(&self, now_ms: i64) -> bool {
        self.last_seen_ms > now_ms - ONLINE_WINDOW_MS
    }
}

/// Every active user, or those whose username or display name contains `search`, by username.
/// At most 500 people, by name, as `viewer` sees them: the ones they starred a conversation
/// with are always among them.
pub async fn people(pool: &AnyPool, viewer: i64, search: &str) -> sqlx::Result<Vec<Person>> {
    sqlx::query_as(
        "SELECT id, username, display_name, avatar, last_seen_ms FROM (
             SELECT u.id AS id, u.username AS username, u.display_name AS display_name,
                    u.avatar AS avatar,
                    u.last_seen_ms AS last_seen_ms, u.username_key AS username_key
             FROM users u
             WHERE u.is_active = 1 AND ($2 = '' OR u.username_key LIKE $3 ESCAPE '\\'
                                        OR LOWER(u.display_name) LIKE $3 ESCAPE '\\')
             ORDER BY EXISTS (
                     SELECT 1 FROM favourites f
                     JOIN memberships o ON o.room_id = f.room_id AND o.user_id = u.id
                     JOIN rooms r ON r.id = f.room_id AND r.kind = 'direct'
                     WHERE f.user_id = $1) DESC,
                 u.username_key
             LIMIT 500
         ) listed ORDER BY username_key",
    )
    .bind(viewer)
    .bind(search)
    .bind(contains_pattern(search))
    .fetch_all(pool)
    .await
}
