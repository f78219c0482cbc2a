//! argon2id password hashing, off the async threads (a hash costs ~20 ms of CPU in release).

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};

use crate::db::Db;
use crate::domain::{Password, Username};
use crate::store::users;

/// Runs `work` on the blocking pool, inside the caller's span (so its logs say which request).
async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .ok()
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn hash(password: &Password) -> String {
    let raw = password.expose().to_owned();
    off_thread(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(raw.as_bytes(), &salt)
            .expect("argon2 with default parameters cannot fail on a bounded password")
            .to_string()
    })
    .await
    .expect("the hashing task does not panic")
}

/// True when `raw` matches `stored`. A malformed stored hash (e.g. "!", an unusable password set by
/// the admin) matches nothing.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn verify(raw: &str, stored: &str) -> bool {
    let raw = raw.to_owned();
    let stored = stored.to_owned();
    off_thread(move || {
        PasswordHash::new(&stored)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(raw.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password, checked against when a login names no known user, so that a
/// wrong name costs as much time as a wrong password and does not reveal who has an account.
pub async fn dummy_verify(raw: &str) {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let stored = DUMMY
        .get_or_init(|| async {
            hash(&Password::parse("not a real password, only for timing", None).expect("valid"))
                .await
        })
        .await;
    verify(raw, stored).await;
}

#[derive(Debug, thiserror::Error)]
pub enum SuperuserError {
    #[error("{0}")]
    Invalid(#[from] crate::domain::Invalid),
    #[error("a user named “{0}” exists already")]
    Taken(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// `parley createsuperuser`: a new active user with staff and superuser rights.
pub async fn create_superuser(
    db: &Db,
    username: &str,
    raw: &str,
) -> Result<Username, SuperuserError> {
    let name = Username::parse(username)?;
    let password = Password::parse(raw, Some(name.as_str()))?;
    let hashed = hash(&password).await;
    match users::create(&db.pool, &name, &hashed, true).await {
        Ok(_) => Ok(name),
        Err(users::CreateUserError::Taken) => Err(SuperuserError::Taken(name.to_string())),
        Err(users::CreateUserError::Db(e)) => Err(e.into()),
    }
}
