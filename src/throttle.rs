//! Login throttling: too many failures for one username or from one address within a window
//! → 429 until the window has passed. Kept in memory per process; with several servers an
//! attacker gets the allowance once per server, which still bounds guessing to a handful per minute.
//!
//! An attempt counts from the moment it begins, not when its password check (tens of
//! milliseconds of argon2) ends: otherwise a burst of concurrent guesses would all pass the check
//! before the first failure was counted.

use std::collections::HashMap;
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
    pub fn begin(&self, name: &str, addr: &str) -> Result<Attempt<'_>, Duration> {
        let (name, addr) = (name_key(name), addr_key(addr));
        let mut entries = self.entries.lock().expect("throttle lock");
        let now = Instant::now();
        if entries.len() > 100_000 {
            // Bound the memory an attacker can make us spend on keys.
            entries.retain(|_, e| e.in_flight > 0 || now.duration_since(e.since) < self.window);
        }
        let wait = [(&name, self.per_name), (&addr, self.per_addr)]
            .into_iter()
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
            if attempt.succeeded {
                continue;
            }
            if e.failures == 0 || now.duration_since(e.since) >= self.window {
                (e.failures, e.since) = (0, now);
            }
            e.failures += 1;
        }
        // A successful login clears the name's failures (not the address's: one address
        // guessing many names stays throttled).
        if attempt.succeeded
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(t: &Throttle, name: &str, addr: &str) {
        drop(t.begin(name, addr).expect("not blocked yet"));
    }

    #[test]
    fn blocks_a_name_after_its_limit_and_forgets_on_success() {
        let t = Throttle::new(Duration::from_secs(60), 3, 100);
        for _ in 0..3 {
            fail(&t, "Alice", "1.2.3.4");
        }
        assert!(t.begin("ALICE", "5.6.7.8").is_err());
        assert!(t.begin("bob", "1.2.3.4").is_ok());
        let t = Throttle::new(Duration::from_secs(60), 3, 100);
        fail(&t, "alice", "1.2.3.4");
        fail(&t, "alice", "1.2.3.4");
        t.begin("alice", "1.2.3.4").unwrap().succeeded();
        for _ in 0..3 {
            fail(&t, "alice", "1.2.3.4");
        }
        assert!(t.begin("alice", "1.2.3.4").is_err());
    }

    #[test]
    fn blocks_an_address_guessing_many_names() {
        let t = Throttle::new(Duration::from_secs(60), 100, 5);
        for i in 0..5 {
            fail(&t, &format!("user{i}"), "9.9.9.9");
        }
        assert!(t.begin("someone-else", "9.9.9.9").is_err());
        assert!(t.begin("someone-else", "1.1.1.1").is_ok());
    }

    #[test]
    fn attempts_still_being_checked_count_against_the_limit() {
        let t = Throttle::new(Duration::from_secs(60), 3, 100);
        let burst: Vec<_> = (0..3)
            .map(|_| t.begin("alice", "1.2.3.4").unwrap())
            .collect();
        assert!(
            t.begin("alice", "5.6.7.8").is_err(),
            "a fourth concurrent guess waits"
        );
        drop(burst);
        assert!(t.begin("alice", "5.6.7.8").is_err(), "three failures now");
    }

    #[test]
    fn successful_logins_do_not_use_up_an_address() {
        let t = Throttle::new(Duration::from_secs(60), 3, 3);
        for i in 0..10 {
            t.begin(&format!("user{i}"), "10.0.0.1")
                .unwrap()
                .succeeded();
        }
        assert!(t.begin("user10", "10.0.0.1").is_ok());
    }

    #[test]
    fn a_window_that_has_passed_is_forgotten() {
        let t = Throttle::new(Duration::from_millis(50), 1, 100);
        fail(&t, "alice", "1.2.3.4");
        assert!(t.begin("alice", "1.2.3.4").is_err());
        std::thread::sleep(Duration::from_millis(60));
        assert!(t.begin("alice", "1.2.3.4").is_ok());
    }
}
