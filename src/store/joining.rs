//! Who may join and getting back in: invite links (registration by invitation) and one-time
//! password-reset links, both made by staff in the admin.

use rand::RngCore;
use sqlx::AnyPool;

/// How long an invite is good for when staff give no expiry.
pub const INVITE_DAYS: i64 = 7;
/// How long a reset link is good for.
pub const RESET_MS: i64 = 24 * 60 * 60 * 1000;

/// A fresh code for a link: 128 random bits, hex (nothing to guess, safe in a URL).
pub fn new_code() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a link's code may look like; anything else is not looked up.
pub fn well_formed(code: &str) -> bool {
    code.len() == 32 && code.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `code` names an invite with a use left, now.
pub async fn invite_usable(pool: &AnyPool, code: &str, now_ms: i64) -> sqlx::Result<bool> {
    if !well_formed(code) {
        return Ok(false);
    }
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM invites WHERE code = $1 AND uses < max_uses AND expires_ms > $2",
    )
    .bind(code)
    .bind(now_ms)
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}

/// Takes one use of the invite, if it has one left: one statement, so two people racing for
/// the last use cannot both have it.
pub async fn take_invite(pool: &AnyPool, code: &str, now_ms: i64) -> sqlx::Result<bool> {
    if !well_formed(code) {
        return Ok(false);
    }
    let done = sqlx::query(
        "UPDATE invites SET uses = uses + 1
         WHERE code = $1 AND uses < max_uses AND expires_ms > $2",
    )
    .bind(code)
    .bind(now_ms)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives back a use taken for an account that was then not made (its name was taken).
pub async fn give_back_invite(pool: &AnyPool, code: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE invites SET uses = uses - 1 WHERE code = $1 AND uses > 0")
        .bind(code)
        .execute(pool)
        .await?;
    Ok(())
}

/// The user a reset link is for, while it is unused and unexpired (and the account active).
pub async fn reset_user(pool: &AnyPool, token: &str, now_ms: i64) -> sqlx::Result<Option<i64>> {
    if !well_formed(token) {
        return Ok(None);
    }
    sqlx::query_scalar(
        "SELECT r.user_id FROM password_resets r JOIN users u ON u.id = r.user_id
         WHERE r.token = $1 AND r.used_ms IS NULL AND r.expires_ms > $2 AND u.is_active = 1",
    )
    .bind(token)
    .bind(now_ms)
    .fetch_optional(pool)
    .await
}

/// Sets the password a reset link is for and spends the link, in one transaction: the link
/// works once even when submitted twice at once. Answers the user, or None when the link was
/// no longer good.
pub async fn reset_password(
    pool: &AnyPool,
    token: &str,
    hash: &str,
    now_ms: i64,
) -> sqlx::Result<Option<i64>> {
    if !well_formed(token) {
        return Ok(None);
    }
    let mut tx = pool.begin().await?;
    let user: Option<i64> = sqlx::query_scalar(
        "UPDATE password_resets SET used_ms = $2
         WHERE token = $1 AND used_ms IS NULL AND expires_ms > $2
           AND user_id IN (SELECT id FROM users WHERE is_active = 1)
         RETURNING user_id",
    )
    .bind(token)
    .bind(now_ms)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(user) = user else {
        return Ok(None);
    };
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(user)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(user))
}
