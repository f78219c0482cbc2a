//! What one person or one address may do, and how fast: the per-user token buckets for
//! writing (messages, rooms, private conversations, topics), the per-address bucket for logging
//! in, and the caps on long-polls held at once. Each limit is a flag (README, "Limits"); a
//! request past one gets 429 with `Retry-After` and words saying what to do.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::AppError;
use crate::config::Settings;
use crate::throttle::Buckets;

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
    polls: Arc<PollCaps>,
}

/// Long-polls held now, per person and per address, each capped (0: no cap).
///
/// Every poll takes its places when it begins and gives them back when it answers, tens of
/// thousands of times a second on a busy server, from every worker thread: so both counts are
/// under one lock, and a place holds one reference to them, not one per cap.
struct PollCaps {
    per_user: usize,
    per_addr: usize,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    /// By user id: the database's, not chosen by a client, so a quicker hash than SipHash.
    users: fnv::FnvHashMap<i64, usize>,
    /// By client network, which a client does choose: the default hash, made to resist that.
    addrs: HashMap<Option<IpAddr>, usize>,
}

/// A held poll's places under both caps, given back when the poll answers or its client goes.
pub struct PollPlace {
    caps: Arc<PollCaps>,
    user: i64,
    addr: Option<IpAddr>,
}

impl PollCaps {
    fn new(per_user: usize, per_addr: usize) -> Self {
        let cap = |n| if n == 0 { usize::MAX } else { n };
        Self {
            per_user: cap(per_user),
            per_addr: cap(per_addr),
            held: Mutex::default(),
        }
    }

    fn hold(self: &Arc<Self>, user: i64, addr: Option<IpAddr>) -> Option<PollPlace> {
        let mut held = self.held.lock().expect("poll caps lock");
        let Held { users, addrs } = &mut *held;
        let by_user = users.entry(user).or_insert(0);
        let by_addr = addrs.entry(addr).or_insert(0);
        if *by_user >= self.per_user || *by_addr >= self.per_addr {
            // Places looked up only to be refused are not kept.
            let (no_user, no_addr) = (*by_user == 0, *by_addr == 0);
            if no_user {
                users.remove(&user);
            }
            if no_addr {
                addrs.remove(&addr);
            }
            return None;
        }
        *by_user += 1;
        *by_addr += 1;
        Some(PollPlace {
            caps: self.clone(),
            user,
            addr,
        })
    }
}

impl Drop for PollPlace {
    fn drop(&mut self) {
        let mut held = self.caps.held.lock().expect("poll caps lock");
        let Held { users, addrs } = &mut *held;
        release(users, &self.user);
        release(addrs, &self.addr);
    }
}

/// One place under `key` given back; a key with none left is forgotten.
fn release<K: Eq + std::hash::Hash, S: std::hash::BuildHasher>(
    counts: &mut HashMap<K, usize, S>,
    key: &K,
) {
    if let Some(n) = counts.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(key);
        }
    }
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
            polls: Arc::new(PollCaps::new(s.max_polls_per_user, s.max_polls_per_addr)),
        }
    }

    /// A place for one more held poll of `user` from `addr`, or None when either has as many
    /// as allowed.
    pub fn poll_place(&self, user: i64, addr: Option<IpAddr>) -> Option<PollPlace> {
        self.polls.hold(user, addr)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_places_are_capped_per_person_and_per_address_and_freed_on_drop() {
        let caps = Arc::new(PollCaps::new(2, 3));
        let (home, cafe) = (Some("192.0.2.1".parse().unwrap()), None);
        let first = caps.hold(1, home).unwrap();
        let _second = caps.hold(1, home).unwrap();
        assert!(caps.hold(1, cafe).is_none(), "a third of one person's");
        let third = caps.hold(2, home).unwrap();
        assert!(caps.hold(3, home).is_none(), "a fourth from one address");
        {
            let held = caps.held.lock().unwrap();
            assert_eq!(held.users.get(&1), Some(&2), "a refusal holds nothing");
            assert_eq!(held.addrs.get(&home), Some(&3));
            assert_eq!(held.users.get(&3), None, "nor keeps the key it refused");
            assert_eq!(held.addrs.get(&cafe), None);
        }
        drop(first);
        assert!(caps.hold(1, cafe).is_some(), "a place given back");
        drop(third);
        let held = caps.held.lock().unwrap();
        assert_eq!(held.users.get(&2), None, "emptied keys go");
        assert_eq!(held.addrs.get(&cafe), None);
        assert_eq!(held.addrs.get(&home), Some(&1));
    }

    #[test]
    fn a_cap_of_zero_is_no_cap() {
        let caps = Arc::new(PollCaps::new(0, 0));
        let places: Vec<_> = (0..1000).map(|_| caps.hold(1, None).unwrap()).collect();
        assert_eq!(places.len(), 1000);
    }
}
