//! A small expiring map: what Parley remembers briefly to keep database reads off the hot paths
//! (which room a URL names, which user a session is, whom it has seen lately). (The login
//! throttle keeps windows of counters with attempts in flight, which are not an expiring cache,
//! in `throttle`.)

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

pub struct Cache<K, V> {
    ttl: Duration,
    /// Past this many entries, expired ones are dropped; past it again, all of them.
    cap: usize,
    entries: Mutex<HashMap<K, (V, Instant)>>,
    /// The keys being loaded now (see [`Cache::turn`]).
    loading: Mutex<HashMap<K, Arc<Load>>>,
    /// Moves whenever entries are dropped before they expire (see [`Cache::generation`]).
    generation: std::sync::atomic::AtomicU64,
}

/// A load in progress: its waiters are all woken when it ends.
#[derive(Default)]
struct Load {
    done: std::sync::atomic::AtomicBool,
    ended: Notify,
}

/// How long a miss waits for another request's load of the same key.
const TURN_WAIT: Duration = Duration::from_secs(1);

/// How long before it expires an entry that is in use is loaded again, in the background, by
/// what found it about to expire (the short way in for polls, `web::repoll`). A room's listeners
/// all re-poll at once: had the login or the room they poll expired under them, all of them
/// would go down the endpoint chain together, each waiting for one read, a few times a minute
/// (BENCHMARKS.md, "The eighth day").
pub const RELOAD_AHEAD: Duration = Duration::from_secs(3);

/// What [`Cache::turn`] gives: the load of a key, for the one request that loads it (its map
/// entry goes, and its waiters wake, when this is dropped), or nothing for the others.
pub struct Turn<'a, K: Eq + Hash, V> {
    cache: &'a Cache<K, V>,
    loading: Option<(K, Arc<Load>)>,
}

impl<K: Eq + Hash, V> Turn<'_, K, V> {
    /// Whether this request is the one that loads the key.
    pub fn loads(&self) -> bool {
        self.loading.is_some()
    }
}

impl<K: Eq + Hash, V> Drop for Turn<'_, K, V> {
    fn drop(&mut self) {
        if let Some((key, load)) = self.loading.take() {
            self.cache.loading.lock().expect("cache lock").remove(&key);
            load.done.store(true, std::sync::atomic::Ordering::Release);
            load.ended.notify_waiters();
        }
    }
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    pub fn new(ttl: Duration, cap: usize) -> Self {
        Self {
            ttl,
            cap,
            entries: Mutex::new(HashMap::new()),
            loading: Mutex::new(HashMap::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The value of `key`, or, when there is none, the turn to load it (see [`Cache::turn`]).
    pub async fn get_or_turn(&self, key: &K) -> Result<V, Turn<'_, K, V>>
    where
        K: Clone,
    {
        if let Some(value) = self.get(key) {
            return Ok(value);
        }
        let turn = self.turn(key).await;
        self.get(key).ok_or(turn)
    }

    /// The turn to load `key`. The first miss of a key loads it; a miss while that load is
    /// in progress waits for it to end and then looks again, so however many requests miss the
    /// same key at once (a thousand polls of one person, woken by one message, all finding its
    /// login expired), one of them reads and the others find what it put. All of them wake
    /// together when it ends. A load stuck on a failing database must not hold every request
    /// back: past `TURN_WAIT` a miss reads for itself, as it does when the load put nothing (a
    /// failure, or a value that is not cached).
    pub async fn turn(&self, key: &K) -> Turn<'_, K, V>
    where
        K: Clone,
    {
        let (load, first) = {
            let mut loading = self.loading.lock().expect("cache lock");
            match loading.get(key) {
                Some(load) => (load.clone(), false),
                None => {
                    let load = Arc::new(Load::default());
                    loading.insert(key.clone(), load.clone());
                    (load, true)
                }
            }
        };
        if first {
            return Turn {
                cache: self,
                loading: Some((key.clone(), load)),
            };
        }
        let ended = load.ended.notified();
        tokio::pin!(ended);
        // Registered before looking: an end between the look and the wait still wakes it.
        ended.as_mut().enable();
        if !load.done.load(std::sync::atomic::Ordering::Acquire) {
            let _ = tokio::time::timeout(TURN_WAIT, ended).await;
        }
        Turn {
            cache: self,
            loading: None,
        }
    }

    /// The turn to load `key` if nobody is loading it now, without waiting: for loading an
    /// entry again before it expires, in the background (see [`RELOAD_AHEAD`]).
    pub fn try_turn(&self, key: &K) -> Option<Turn<'_, K, V>>
    where
        K: Clone,
    {
        let mut loading = self.loading.lock().expect("cache lock");
        if loading.contains_key(key) {
            return None;
        }
        let load = Arc::new(Load::default());
        loading.insert(key.clone(), load.clone());
        Some(Turn {
            cache: self,
            loading: Some((key.clone(), load)),
        })
    }

    /// Whether `key` is being loaded now.
    pub fn is_loading<Q>(&self, key: &Q) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.loading.lock().expect("cache lock").contains_key(key)
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().expect("cache lock");
        let (value, at) = entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    /// What `read` makes of the value of `key` and how long it has left before it expires,
    /// without a copy of it (and, with `Q` a borrowed form of `K`, without making a key).
    pub fn read<Q, R>(&self, key: &Q, read: impl FnOnce(&V, Duration) -> R) -> Option<R>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let entries = self.entries.lock().expect("cache lock");
        let (value, at) = entries.get(key)?;
        let left = self.ttl.checked_sub(at.elapsed())?;
        (!left.is_zero()).then(|| read(value, left))
    }

    /// A number that moves whenever entries are forgotten before they expire (`remove`,
    /// `forget`, `clear`, or a full cache emptied): what was read while it stood still, and
    /// has not expired, is still what the cache holds.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn moved(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    pub fn put(&self, key: K, value: V) {
        let mut entries = self.entries.lock().expect("cache lock");
        self.insert(&mut entries, key, value);
    }

    fn insert(&self, entries: &mut HashMap<K, (V, Instant)>, key: K, value: V) {
        if entries.len() >= self.cap {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if entries.len() >= self.cap {
                entries.clear();
                self.moved();
            }
        }
        entries.insert(key, (value, Instant::now()));
    }

    /// Puts `value` under `key` unless entries were forgotten since `generation` was read (see
    /// [`Cache::generation`]), and says whether it did: what was read from the database before
    /// a forget (a logout, a room renamed) must not be put back after it.
    pub fn put_since(&self, generation: u64, key: K, value: V) -> bool {
        let mut entries = self.entries.lock().expect("cache lock");
        // The generation moves under this lock: no forget can come between the look and the put.
        if self.generation() != generation {
            return false;
        }
        self.insert(&mut entries, key, value);
        true
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

    // The generation moves while the lock is held: nobody can read the entry gone and the
    // generation unmoved.
    pub fn remove(&self, key: &K) {
        let mut entries = self.entries.lock().expect("cache lock");
        entries.remove(key);
        self.moved();
    }

    /// Forgets the entries `drop` picks.
    pub fn forget(&self, mut drop: impl FnMut(&K, &V) -> bool) {
        let mut entries = self.entries.lock().expect("cache lock");
        entries.retain(|k, (v, _)| !drop(k, v));
        self.moved();
    }

    pub fn clear(&self) {
        let mut entries = self.entries.lock().expect("cache lock");
        entries.clear();
        self.moved();
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
        assert_eq!(cache.read(&4, |v, _| v.len()), Some(4));
        let left = cache.read(&4, |_, left| left).unwrap();
        assert!(
            left <= Duration::from_millis(30) && !left.is_zero(),
            "{left:?}"
        );
        assert_eq!(cache.read(&1, |v, _| v.len()), None, "expired");
        let generation = cache.generation();
        cache.put(4, "four again");
        assert_eq!(cache.generation(), generation, "a put forgets nothing");
        cache.forget(|k, _| *k == 4);
        assert!(cache.generation() > generation, "a forget moves it");
        assert_eq!(cache.get(&4), None);
        cache.put(5, "five");
        assert!(cache.age(&5).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.age(&5), None);
        assert_eq!(cache.purge(), 1);
    }

    #[test]
    fn what_was_read_before_a_forget_is_not_put_back_after_it() {
        let cache: Cache<i32, &str> = Cache::new(Duration::from_secs(10), 10);
        let generation = cache.generation();
        assert!(cache.put_since(generation, 1, "one"));
        let generation = cache.generation();
        cache.remove(&2);
        assert!(!cache.put_since(generation, 3, "read before the forget"));
        assert_eq!(cache.get(&3), None);
        assert!(cache.put_since(cache.generation(), 3, "read after it"));
        assert_eq!(cache.get(&3), Some("read after it"));
    }

    #[test]
    fn a_turn_is_taken_without_waiting_only_while_nobody_loads() {
        let cache: Cache<i32, &str> = Cache::new(Duration::from_secs(10), 10);
        let turn = cache.try_turn(&1).expect("nobody loads 1");
        assert!(turn.loads());
        assert!(cache.is_loading(&1));
        assert!(cache.try_turn(&1).is_none(), "one load of a key at a time");
        assert!(cache.try_turn(&2).is_some(), "another key's");
        drop(turn);
        assert!(!cache.is_loading(&1));
        assert!(cache.try_turn(&1).is_some());
    }

    #[tokio::test]
    async fn one_miss_loads_a_key_and_the_others_find_its_value() {
        let cache = Arc::new(Cache::<u32, u32>::new(Duration::from_secs(60), 10));
        let loads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (cache, loads) = (cache.clone(), loads.clone());
                tokio::spawn(async move {
                    let _turn = match cache.get_or_turn(&7).await {
                        Ok(v) => return v,
                        Err(turn) => turn,
                    };
                    loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    cache.put(7, 49);
                    49
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), 49);
        }
        assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(
            cache.loading.lock().unwrap().is_empty(),
            "a turn nobody waits for is forgotten"
        );
    }

    #[tokio::test]
    async fn a_load_that_hangs_holds_the_others_back_for_a_second_only() {
        let cache = Arc::new(Cache::<u32, u32>::new(Duration::from_secs(60), 10));
        let stuck = cache.turn(&7).await;
        assert!(stuck.loads());
        let started = Instant::now();
        let other = cache.turn(&7).await;
        let waited = started.elapsed();
        assert!(waited >= TURN_WAIT && waited < TURN_WAIT * 3, "{waited:?}");
        assert!(
            !other.loads(),
            "it reads for itself, without the key's load"
        );
        drop(other);
        drop(stuck);
        assert!(cache.loading.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_leaves_nothing_behind() {
        let cache = Arc::new(Cache::<u32, u32>::new(Duration::from_secs(60), 10));
        let loading = cache.turn(&7).await;
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move {
                let _turn = cache.turn(&7).await;
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The load ends while the other still waits, which then goes (its client hung up)
        // before it ever runs again.
        drop(loading);
        waiter.abort();
        let _ = waiter.await;
        assert!(cache.loading.lock().unwrap().is_empty());
    }
}
