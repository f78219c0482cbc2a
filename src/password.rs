//! argon2id password hashing, off the async threads (a hash costs ~20 ms of CPU and 19 MB in
//! release). The web layer hashes through a [`Hasher`], which bounds how many run at once: an
//! unbounded number of logins would otherwise take every core and a gigabyte of memory.

use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use tokio::sync::Semaphore;

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

/// Every worker is busy and the queue is full: the request is refused (503) rather than wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password checks are all busy")]
pub struct Busy;

/// Password hashing with a bound: `workers` hashes at once (one per core: more would only slow
/// each other and everything else), and at most `queue` waiting for one.
pub struct Hasher {
    running: Semaphore,
    waiting: AtomicUsize,
    queue: usize,
}

/// A place in the queue, given back however the wait ends (a client that hangs up included).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Hasher {
    /// `workers` 0 means one per core.
    pub fn new(workers: usize, queue: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            running: Semaphore::new(if workers == 0 { cores } else { workers }),
            waiting: AtomicUsize::new(0),
            queue,
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<Option<T>, Busy> {
        let _permit = match self.running.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.queue {
                    self.waiting.fetch_sub(1, Ordering::Relaxed);
                    return Err(Busy);
                }
                let _waiting = Waiting(&self.waiting);
                self.running.acquire().await.map_err(|_| Busy)?
            }
        };
        Ok(off_thread(work).await)
    }

    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn hash(&self, password: &Password) -> Result<String, Busy> {
        let raw = password.expose().to_owned();
        let hashed = self.run(move || hash_now(&raw)).await?;
        Ok(hashed.expect("the hashing task does not panic"))
    }

    /// True when `raw` matches `stored`. A malformed stored hash (e.g. "!", an unusable password
    /// set by the admin) matches nothing.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn verify(&self, raw: &str, stored: &str) -> Result<bool, Busy> {
        let (raw, stored) = (raw.to_owned(), stored.to_owned());
        let matched = self.run(move || verify_now(&raw, &stored)).await?;
        Ok(matched.unwrap_or(false))
    }

    /// Checks `raw` against a hash of a random password, for a login that names no known user:
    /// a wrong name costs as much time as a wrong password and does not reveal who has an
    /// account.
    pub async fn dummy_verify(&self, raw: &str) -> Result<(), Busy> {
        static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
        let stored = DUMMY
            .get_or_init(|| async {
                hash(&Password::parse("not a real password, only for timing", None).expect("valid"))
                    .await
            })
            .await;
        self.verify(raw, stored).await.map(drop)
    }
}

fn hash_now(raw: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(raw.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail on a bounded password")
        .to_string()
}

fn verify_now(raw: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(raw.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash outside any bound, for tools (`createsuperuser`) and tests.
pub async fn hash(password: &Password) -> String {
    let raw = password.expose().to_owned();
    off_thread(move || hash_now(&raw))
        .await
        .expect("the hashing task does not panic")
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
        Err(users::CreateUserError::Taken | users::CreateUserError::TooSimilar) => {
            Err(SuperuserError::Taken(name.to_string()))
        }
        Err(users::CreateUserError::Db(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashes_beyond_the_workers_and_the_queue_are_refused() {
        let hasher = std::sync::Arc::new(Hasher::new(1, 1));
        let password = || Password::parse("long enough", None).unwrap();
        let tries: Vec<_> = (0..4)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(&password()).await.map(drop) })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tries {
            outcomes.push(t.await.unwrap());
        }
        let done = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(done, 2, "one running, one waiting: {outcomes:?}");
        assert_eq!(hasher.waiting.load(Ordering::Relaxed), 0);
        assert!(hasher.hash(&password()).await.is_ok(), "free again");
    }
}
