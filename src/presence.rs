//! Presence: a user is online while they hold a long-poll or made a request in the last minute.
//! The database keeps `last_seen_ms` (so every server sees the same), written at most every
//! few seconds per user so that a thousand re-polls do not become a thousand writes.

use std::time::Duration;

use sqlx::AnyPool;

use crate::cache::Cache;

const WRITE_EVERY: Duration = Duration::from_secs(10);
/// How long someone counts as online after they were last seen (`store::ONLINE_WINDOW_MS`).
const ONLINE: Duration = Duration::from_millis(crate::store::ONLINE_WINDOW_MS as u64);

pub struct Presence {
    pool: AnyPool,
    /// When each user's presence was last written, for as long as that keeps them online.
    written: Cache<i64, ()>,
}

impl Presence {
    pub fn new(pool: AnyPool) -> Self {
        Self {
            pool,
            written: Cache::new(ONLINE, 1_000_000),
        }
    }

    /// Records that `user` is here now; cheap when it was recorded recently. True when they were
    /// not online before, as far as this process knows.
    pub fn seen(&self, user: i64) -> bool {
        let came = match self.written.age(&user) {
            Some(age) if age < WRITE_EVERY => return false,
            Some(_) => false,
            None => true,
        };
        self.written.put(user, ());
        let pool = self.pool.clone();
        tokio::spawn(async move {
            if let Err(err) =
                crate::store::users::touch_last_seen(&pool, user, crate::now_ms()).await
            {
                tracing::debug!(%err, user, "could not record presence");
            }
        });
        came
    }

    /// Forgets the people not seen for longer than counts as online; true if there were any.
    pub fn sweep_gone(&self) -> bool {
        self.written.purge() > 0
    }

    /// A logged-out user is no longer online.
    pub async fn gone(&self, user: i64) {
        self.written.remove(&user);
        let _ = crate::store::users::touch_last_seen(&self.pool, user, 0).await;
    }
}
