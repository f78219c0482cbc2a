//! What one person or one address may do, and how fast: the per-user token buckets for
//! writing (messages, rooms, private conversations, topics), the per-address bucket for logging
//! in, and the caps on long-polls held at once. Each limit is a flag (README, "Limits"); a
//! request past one gets 429 with `Retry-After` and words saying what to do.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::error::AppError;
use crate::config::Settings;
use crate::throttle::{Buckets, Counts, Held};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

pub struct Limits {
    pub messages: Buckets<i64>,
    pub rooms: Buckets<i64>,
    /// Rooms one person may have created in all (`--max-rooms-per-user`; 0: none).
    pub rooms_in_all: u32,
    pub conversations: Buckets<i64>,
    pub topics: Buckets<i64>,
    /// Display-name changes.
    pub renames: Buckets<i64>,
    /// Log-in attempts per address, successful or not (each costs a hash).
    pub logins: Buckets<String>,
    polls_per_user: Arc<Counts<i64>>,
    polls_per_addr: Arc<Counts<Option<IpAddr>>>,
}

/// A held poll's places under both caps, given back when the poll answers or its client goes.
pub struct PollPlace {
    _user: Held<i64>,
    _addr: Held<Option<IpAddr>>,
}

impl Limits {
    pub fn new(s: &Settings) -> Self {
        Self {
            messages: Buckets::new(s.messages_per_minute, MINUTE),
            rooms: Buckets::new(s.rooms_per_hour, HOUR),
            rooms_in_all: s.max_rooms_per_user,
            conversations: Buckets::new(s.conversations_per_hour, HOUR),
            topics: Buckets::new(s.topics_per_hour, HOUR),
            renames: Buckets::new(s.renames_per_hour, HOUR),
            logins: Buckets::new(s.logins_per_minute, MINUTE),
            polls_per_user: Arc::new(Counts::new(s.max_polls_per_user)),
            polls_per_addr: Arc::new(Counts::new(s.max_polls_per_addr)),
        }
    }

    /// A place for one more held poll of `user` from `addr`, or None when either has as many
    /// as allowed.
    pub fn poll_place(&self, user: i64, addr: Option<IpAddr>) -> Option<PollPlace> {
        let user = self.polls_per_user.hold(user)?;
        let addr = self.polls_per_addr.hold(addr)?;
        Some(PollPlace {
            _user: user,
            _addr: addr,
        })
    }
}

/// Takes a token from `bucket` for `key`, or refuses with `what` (which says what was done too
/// often, as a sentence).
pub fn take<K: Eq + std::hash::Hash + Clone>(
    bucket: &Buckets<K>,
    key: &K,
    what: &'static str,
) -> Result<(), AppError> {
    bucket
        .take(key)
        .map_err(|wait| AppError::TooMany { what, wait })
}
