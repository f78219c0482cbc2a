//! Login throttling: too many failures for one username or from one address within a window
//! → 429 until the window has passed. Kept in memory per process; with several servers an
//! attacker gets the allowance once per server, which still bounds guessing to a handful per minute.
//!
//! An attempt counts from the moment it begins, not when its password check (tens of
//! milliseconds of argon2) ends: otherwise a burst of concurrent guesses would all pass the check
//! before the first failure was counted.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Throttle {
    window: Duration,
    per_name: u32,
    per_addr: u32,
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Clone, Copy)]
struct Entry {
    failures: u32,
    /// When the window of these failures began.
    since: Instant,
    /// Attempts begun and not yet finished; they count as failures until they succeed.
    in_flight: u32,
}

/// One log-in attempt in progress. It is a failure unless [`Attempt::succeeded`] is called
/// (dropped half-way, as when the client hangs up, it counts as one).
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    name: String,
    addr: String,
    succeeded: bool,
    /// Whether the name's limit applied: only then does a success clear the name's failures
    /// (the owner let in past a lockout must not give the guesser a fresh allowance).
    name_checked: bool,
    /// Not checked at all (the password workers were busy): neither a success nor a failure.
    unchecked: bool,
}

impl Throttle {
    pub fn new(window: Duration, per_name: u32, per_addr: u32) -> Self {
        Self {
            window,
            per_name,
            per_addr,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Begins an attempt for `name` from `addr`, or says how long to wait if too many have
    /// failed (or are still being checked).
    ///
    /// A name's limit stops guessing from everywhere at once, but it must not lock its owner
    /// out: it does not apply to a browser that has logged in as that name before
    /// (`known_device`, a signed cookie), nor to an address with no failures (and none being
    /// checked) in the window. Every address still has its own limit, so a guesser gets a
    /// handful of tries per address, not per name.
    pub fn begin(
        &self,
        name: &str,
        addr: &str,
        known_device: bool,
    ) -> Result<Attempt<'_>, Duration> {
        let (name, addr) = (name_key(name), addr_key(addr));
        let mut entries = self.entries.lock().expect("throttle lock");
        let now = Instant::now();
        if entries.len() > 100_000 {
            // Bound the memory an attacker can make us spend on keys.
            entries.retain(|_, e| e.in_flight > 0 || now.duration_since(e.since) < self.window);
        }
        let clean = entries.get(&addr).is_none_or(|e| {
            e.in_flight == 0 && (e.failures == 0 || now.duration_since(e.since) >= self.window)
        });
        let name_applies = !known_device && !clean;
        let wait = [(&name, self.per_name), (&addr, self.per_addr)]
            .into_iter()
            .filter(|(key, _)| *key != &name || name_applies)
            .filter_map(|(key, limit)| {
                let e = entries.get(key)?;
                let left = self
                    .window
                    .checked_sub(now.duration_since(e.since))
                    .unwrap_or_default();
                let failures = if left.is_zero() { 0 } else { e.failures };
                (failures + e.in_flight >= limit).then_some(left.max(Duration::from_secs(1)))
            })
            .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        for key in [&name, &addr] {
            let e = entries.entry(key.clone()).or_insert(Entry {
                failures: 0,
                since: now,
                in_flight: 0,
            });
            e.in_flight += 1;
        }
        Ok(Attempt {
            throttle: self,
            name,
            addr,
            succeeded: false,
            name_checked: name_applies,
            unchecked: false,
        })
    }

    fn finish(&self, attempt: &Attempt<'_>) {
        let mut entries = self.entries.lock().expect("throttle lock");
        let now = Instant::now();
        for key in [&attempt.name, &attempt.addr] {
            let Some(e) = entries.get_mut(key) else {
                continue;
            };
            e.in_flight = e.in_flight.saturating_sub(1);
            if attempt.succeeded || attempt.unchecked {
                continue;
            }
            if e.failures == 0 || now.duration_since(e.since) >= self.window {
                (e.failures, e.since) = (0, now);
            }
            e.failures += 1;
        }
        // A successful login clears the name's failures (not the address's: one address
        // guessing many names stays throttled), unless it got past the name's lockout.
        if attempt.succeeded
            && attempt.name_checked
            && let Some(e) = entries.get_mut(&attempt.name)
        {
            e.failures = 0;
        }
    }
}

impl Attempt<'_> {
    pub fn succeeded(mut self) {
        self.succeeded = true;
    }

    /// The password could not be checked (see `password::Busy`): the guess was never made.
    pub fn unchecked(mut self) {
        self.unchecked = true;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.throttle.finish(self);
    }
}

fn name_key(name: &str) -> String {
    format!("u:{}", name.trim().to_ascii_lowercase())
}

fn addr_key(addr: &str) -> String {
    format!("a:{addr}")
}

/// Token buckets, one per key (a user, an address): up to `capacity` actions at once, refilled
/// at `capacity` per `period`. A person typing never meets one; a script does, after its burst.
/// A capacity of 0 means no limit.
pub struct Buckets<K> {
    capacity: f64,
    per_sec: f64,
    entries: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Eq + Hash + Clone> Buckets<K> {
    pub fn new(capacity: u32, period: Duration) -> Self {
        Self {
            capacity: f64::from(capacity),
            per_sec: f64::from(capacity) / period.as_secs_f64().max(0.001),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one action's token for `key`, or says how long until there is one.
    pub fn take(&self, key: &K) -> Result<(), Duration> {
        if self.capacity == 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("bucket lock");
        if entries.len() > 100_000 {
            // Bound the memory: a full bucket is the same as none.
            entries.retain(|_, (tokens, at)| self.refilled(*tokens, *at, now) < self.capacity);
        }
        let (tokens, at) = entries.entry(key.clone()).or_insert((self.capacity, now));
        let available = self.refilled(*tokens, *at, now);
        if available < 1.0 {
            let wait = (1.0 - available) / self.per_sec;
            return Err(Duration::from_secs_f64(wait).max(Duration::from_secs(1)));
        }
        (*tokens, *at) = (available - 1.0, now);
        Ok(())
    }

    fn refilled(&self, tokens: f64, at: Instant, now: Instant) -> f64 {
        (tokens + now.duration_since(at).as_secs_f64() * self.per_sec).min(self.capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(t: &Throttle, name: &str, addr: &str) {
        drop(t.begin(name, addr, false).expect("not blocked yet"));
    }

    #[test]
    fn blocks_a_name_after_its_limit_and_forgets_on_success() {
        let t = Throttle::new(Duration::from_secs(60), 3, 100);
        for _ in 0..3 {
            fail(&t, "Alice", "1.2.3.4");
        }
        assert!(t.begin("ALICE", "1.2.3.4", false).is_err());
        assert!(t.begin("bob", "1.2.3.4", false).is_ok());
        let t = Throttle::new(Duration::from_secs(60), 3, 100);
        fail(&t, "alice", "1.2.3.4");
        fail(&t, "alice", "1.2.3.4");
        t.begin("alice", "1.2.3.4", false).unwrap().succeeded();
        for _ in 0..3 {
            fail(&t, "alice", "1.2.3.4");
        }
        assert!(t.begin("alice", "1.2.3.4", false).is_err());
    }

    #[test]
    fn a_locked_name_still_lets_in_its_known_browsers_and_clean_addresses() {
        let t = Throttle::new(Duration::from_secs(60), 3, 100);
        for i in 0..3 {
            fail(&t, "alice", &format!("6.6.6.{i}"));
        }
        for i in 0..3 {
            assert!(t.begin("alice", &format!("6.6.6.{i}"), false).is_err());
        }
        assert!(
            t.begin("alice", "6.6.6.0", true).is_ok(),
            "a browser that logged in as alice before"
        );
        let clean = t.begin("alice", "5.6.7.8", false);
        assert!(clean.is_ok(), "an address that has not failed");
        clean.unwrap().succeeded();
        assert!(
            t.begin("alice", "6.6.6.1", false).is_err(),
            "the owner let in does not unlock the name for the guesser"
        );
    }

    #[test]
    fn blocks_an_address_guessing_many_names() {
        let t = Throttle::new(Duration::from_secs(60), 100, 5);
        for i in 0..5 {
            fail(&t, &format!("user{i}"), "9.9.9.9");
        }
        assert!(t.begin("someone-else", "9.9.9.9", false).is_err());
        assert!(t.begin("someone-else", "1.1.1.1", false).is_ok());
        assert!(
            t.begin("someone-else", "9.9.9.9", true).is_err(),
            "a device cookie does not lift an address's limit"
        );
    }

    #[test]
    fn attempts_still_being_checked_count_against_the_limit() {
        let t = Throttle::new(Duration::from_secs(60), 3, 100);
        let burst: Vec<_> = (0..3)
            .map(|_| t.begin("alice", "1.2.3.4", false).unwrap())
            .collect();
        assert!(
            t.begin("alice", "1.2.3.4", false).is_err(),
            "a fourth concurrent guess waits"
        );
        drop(burst);
        assert!(
            t.begin("alice", "1.2.3.4", false).is_err(),
            "three failures now"
        );
    }

    #[test]
    fn successful_logins_do_not_use_up_an_address() {
        let t = Throttle::new(Duration::from_secs(60), 3, 3);
        for i in 0..10 {
            t.begin(&format!("user{i}"), "10.0.0.1", false)
                .unwrap()
                .succeeded();
        }
        assert!(t.begin("user10", "10.0.0.1", false).is_ok());
    }

    #[test]
    fn a_bucket_allows_its_burst_then_one_per_refill() {
        let b = Buckets::new(3, Duration::from_millis(300));
        for _ in 0..3 {
            assert!(b.take(&1).is_ok());
        }
        let wait = b.take(&1).expect_err("the burst is spent");
        assert!(
            wait >= Duration::from_secs(1),
            "Retry-After is whole seconds"
        );
        assert!(b.take(&2).is_ok(), "another key has its own bucket");
        std::thread::sleep(Duration::from_millis(120));
        assert!(b.take(&1).is_ok(), "refilled by one");
        assert!(Buckets::new(0, Duration::from_secs(1)).take(&1).is_ok());
    }

    #[test]
    fn a_window_that_has_passed_is_forgotten() {
        let t = Throttle::new(Duration::from_millis(50), 1, 100);
        fail(&t, "alice", "1.2.3.4");
        assert!(t.begin("alice", "1.2.3.4", false).is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(t.begin("alice", "1.2.3.4", false).is_ok());
    }
}
