//! A small expiring map: what Parley remembers briefly to keep database reads off the hot paths
//! (which room a URL names, which user a session is, whom it has seen lately). (The login
//! throttle keeps windows of counters with attempts in flight, which are not an expiring cache,
//! in `throttle`.)

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Cache<K, V> {
    ttl: Duration,
    /// Past this many entries, expired ones are dropped; past it again, all of them.
    cap: usize,
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    pub fn new(ttl: Duration, cap: usize) -> Self {
        Self {
            ttl,
            cap,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().expect("cache lock");
        let (value, at) = entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    pub fn put(&self, key: K, value: V) {
        let mut entries = self.entries.lock().expect("cache lock");
        if entries.len() >= self.cap {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if entries.len() >= self.cap {
                entries.clear();
            }
        }
        entries.insert(key, (value, Instant::now()));
    }

    /// How long ago `key` was put, if it has not expired.
    pub fn age(&self, key: &K) -> Option<Duration> {
        let entries = self.entries.lock().expect("cache lock");
        let (_, at) = entries.get(key)?;
        Some(at.elapsed()).filter(|age| *age < self.ttl)
    }

    /// Forgets what has expired; how many entries that was.
    pub fn purge(&self) -> usize {
        let mut entries = self.entries.lock().expect("cache lock");
        let before = entries.len();
        let ttl = self.ttl;
        entries.retain(|_, (_, at)| at.elapsed() < ttl);
        before - entries.len()
    }

    pub fn remove(&self, key: &K) {
        self.entries.lock().expect("cache lock").remove(key);
    }

    /// Forgets the entries `drop` picks.
    pub fn forget(&self, mut drop: impl FnMut(&K, &V) -> bool) {
        self.entries
            .lock()
            .expect("cache lock")
            .retain(|k, (v, _)| !drop(k, v));
    }

    pub fn clear(&self) {
        self.entries.lock().expect("cache lock").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_the_size_stays_bounded() {
        let cache = Cache::new(Duration::from_millis(30), 2);
        cache.put(1, "one");
        assert_eq!(cache.get(&1), Some("one"));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get(&1), None, "expired");
        cache.put(2, "two");
        cache.put(3, "three");
        cache.put(4, "four");
        assert!(cache.entries.lock().unwrap().len() <= 2);
        assert_eq!(cache.get(&4), Some("four"));
        cache.forget(|k, _| *k == 4);
        assert_eq!(cache.get(&4), None);
        cache.put(5, "five");
        assert!(cache.age(&5).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.age(&5), None);
        assert_eq!(cache.purge(), 1);
    }
}
