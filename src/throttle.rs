//! Login throttling: too many failures for one username or from one address within a window
//! → 429 until the window has passed. Kept in memory per process; with several servers an
//! attacker gets the allowance once per server, which still bounds guessing to a handful per minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Throttle {
    window: Duration,
    per_name: u32,
    per_addr: u32,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Throttle {
    pub fn new(window: Duration, per_name: u32, per_addr: u32) -> Self {
        Self {
            window,
            per_name,
            per_addr,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// How long the caller must wait before trying again, if it must.
    pub fn blocked(&self, name: &str, addr: &str) -> Option<Duration> {
        let failures = self.failures.lock().expect("throttle lock");
        let now = Instant::now();
        [
            (name_key(name), self.per_name),
            (addr_key(addr), self.per_addr),
        ]
        .into_iter()
        .filter_map(|(key, limit)| {
            let (count, since) = failures.get(&key)?;
            let left = self.window.checked_sub(now.duration_since(*since))?;
            (*count >= limit).then_some(left)
        })
        .max()
    }

    pub fn record_failure(&self, name: &str, addr: &str) {
        let mut failures = self.failures.lock().expect("throttle lock");
        let now = Instant::now();
        if failures.len() > 100_000 {
            // Bound the memory an attacker can make us spend on keys.
            failures.retain(|_, (_, since)| now.duration_since(*since) < self.window);
        }
        for key in [name_key(name), addr_key(addr)] {
            let entry = failures.entry(key).or_insert((0, now));
            if now.duration_since(entry.1) >= self.window {
                *entry = (0, now);
            }
            entry.0 += 1;
        }
    }

    /// A successful login clears the name's failures (not the address's: one address guessing
    /// many names stays throttled).
    pub fn record_success(&self, name: &str) {
        self.failures
            .lock()
            .expect("throttle lock")
            .remove(&name_key(name));
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

    #[test]
    fn blocks_a_name_after_its_limit_and_forgets_on_success() {
        let t = Throttle::new(Duration::from_secs(60), 3, 100);
        for _ in 0..3 {
            assert!(t.blocked("Alice", "1.2.3.4").is_none());
            t.record_failure("alice", "1.2.3.4");
        }
        assert!(t.blocked("ALICE", "5.6.7.8").is_some());
        t.record_success("alice");
        assert!(t.blocked("alice", "1.2.3.4").is_none());
    }

    #[test]
    fn blocks_an_address_guessing_many_names() {
        let t = Throttle::new(Duration::from_secs(60), 100, 5);
        for i in 0..5 {
            t.record_failure(&format!("user{i}"), "9.9.9.9");
        }
        assert!(t.blocked("someone-else", "9.9.9.9").is_some());
        assert!(t.blocked("someone-else", "1.1.1.1").is_none());
    }
}
