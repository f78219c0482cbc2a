//! Presence: a user is online while they hold a long-poll or made a request in the last minute.
//! The database keeps `last_seen_ms` (so every server sees the same), written at most every
//! few seconds per user so that a thousand re-polls do not become a thousand writes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::AnyPool;

const WRITE_EVERY: Duration = Duration::from_secs(10);
/// How long someone counts as online after they were last seen (`store::ONLINE_WINDOW_MS`).
const ONLINE: Duration = Duration::from_millis(crate::store::ONLINE_WINDOW_MS as u64);

pub struct Presence {
    pool: AnyPool,
    written: Mutex<HashMap<i64, Instant>>,
}

impl Presence {
    pub fn new(pool: AnyPool) -> Self {
        Self {
            pool,
            written: Mutex::new(HashMap::new()),
        }
    }

    /// Records that `user` is here now; cheap when it was recorded recently. True when they were
    /// not online before, as far as this process knows.
    pub fn seen(&self, user: i64) -> bool {
        let now = Instant::now();
        let came = {
            let written = self.written.lock().expect("presence lock");
            match written.get(&user) {
                Some(at) if now.duration_since(*at) < WRITE_EVERY => return false,
                Some(at) => now.duration_since(*at) >= ONLINE,
                None => true,
            }
        };
        self.written
            .lock()
            .expect("presence lock")
            .insert(user, now);
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
        let mut written = self.written.lock().expect("presence lock");
        let before = written.len();
        written.retain(|_, at| at.elapsed() < ONLINE);
        written.len() < before
    }

    /// A logged-out user is no longer online.
    pub async fn gone(&self, user: i64) {
        self.written.lock().expect("presence lock").remove(&user);
        let _ = crate::store::users::touch_last_seen(&self.pool, user, 0).await;
    }
}
