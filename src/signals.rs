//! Call signalling in flight: small JSON messages (a ring, an accept, an SDP offer or answer, an
//! ICE candidate, a hang-up) addressed to one person, carried to every page they have open by
//! that page's one held poll. They are never stored in the database (only a call's record is).
//!
//! Every process keeps every signal of the last minute, whoever it is for, so that a poll finds
//! its person's signals on whichever process it lands. Signals made here are numbered by this
//! process (its `origin`, random at start, and a counter); on PostgreSQL they reach the other
//! processes as NOTIFY, sent in order by one task, so each process sees each origin's signals in
//! number order. A page's cursor is therefore the last number it has seen per origin
//! (`"origin.seq-origin.seq"`): nothing is skipped, nothing is delivered twice, whichever
//! process answers which poll.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// How long a signal is kept: a ring lasts 30 s, and a page opened while it rings still rings.
const KEPT: Duration = Duration::from_secs(60);
/// The most signals kept at once, whoever they are for (each is at most a few KB).
const MAX_KEPT: usize = 4096;
/// NOTIFY payloads are limited to 8,000 bytes; larger signals travel in parts.
const PART: usize = 7000;
/// The prefix of a signal's NOTIFY payload: `sig:origin:seq:to:part/parts:text`.
pub const NOTE: &str = "sig:";

/// One signal for one person.
#[derive(Debug)]
pub struct Signal {
    pub origin: u32,
    pub seq: u64,
    pub to: i64,
    pub json: Arc<str>,
    at: Instant,
}

/// The last signal a page has seen from each origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor(Vec<(u32, u64)>);

impl Cursor {
    /// `"origin.seq-origin.seq"` (origins in hex); anything unreadable is left out, which at
    /// worst delivers a kept signal again, never skips one.
    pub fn parse(text: &str) -> Self {
        let pairs = text
            .split('-')
            .filter_map(|pair| {
                let (origin, seq) = pair.split_once('.')?;
                Some((u32::from_str_radix(origin, 16).ok()?, seq.parse().ok()?))
            })
            .take(16)
            .collect();
        Cursor(pairs)
    }

    fn seen(&self, origin: u32) -> u64 {
        self.0
            .iter()
            .find(|(o, _)| *o == origin)
            .map_or(0, |(_, seq)| *seq)
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (origin, seq)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            write!(f, "{origin:x}.{seq}")?;
        }
        Ok(())
    }
}

pub struct Switchboard {
    origin: u32,
    next: AtomicU64,
    kept: Mutex<VecDeque<Arc<Signal>>>,
    /// Parts of signals from other processes that have not all arrived yet.
    partial: Mutex<HashMap<(u32, u64), Partial>>,
    /// On PostgreSQL, the task that tells the other processes (in order).
    outbox: std::sync::OnceLock<mpsc::UnboundedSender<Arc<Signal>>>,
}

struct Partial {
    to: i64,
    parts: Vec<Option<String>>,
    at: Instant,
}

impl Default for Switchboard {
    fn default() -> Self {
        Self::new()
    }
}

impl Switchboard {
    pub fn new() -> Self {
        Switchboard {
            origin: rand::random::<u32>() | 1,
            next: AtomicU64::new(1),
            kept: Mutex::new(VecDeque::new()),
            partial: Mutex::new(HashMap::new()),
            outbox: std::sync::OnceLock::new(),
        }
    }

    /// Keeps a signal made here for `to`, and passes it to the other processes.
    pub fn send(&self, to: i64, json: String) {
        let signal = Arc::new(Signal {
            origin: self.origin,
            seq: self.next.fetch_add(1, Ordering::Relaxed),
            to,
            json: json.into(),
            at: Instant::now(),
        });
        // Numbered and kept under one lock, so this process's own signals are kept in order.
        self.keep(signal.clone());
        if let Some(outbox) = self.outbox.get() {
            let _ = outbox.send(signal);
        }
    }

    fn keep(&self, signal: Arc<Signal>) {
        let mut kept = self.kept.lock().expect("signals lock");
        while kept
            .front()
            .is_some_and(|s| s.at.elapsed() > KEPT || kept.len() >= MAX_KEPT)
        {
            kept.pop_front();
        }
        kept.push_back(signal);
    }

    /// The kept signals for `user` that `cursor` has not seen, and the cursor after them (which
    /// names only origins still kept: one that has none left has nothing older to deliver).
    pub fn after(&self, user: i64, cursor: &Cursor) -> (Vec<Arc<Signal>>, Cursor) {
        let kept = self.kept.lock().expect("signals lock");
        let mut next = Cursor::default();
        let mut found = Vec::new();
        for signal in kept.iter() {
            if signal.at.elapsed() > KEPT {
                continue;
            }
            let seen = cursor.seen(signal.origin);
            if signal.to == user && signal.seq > seen {
                found.push(signal.clone());
            }
            if !next.0.iter().any(|(o, _)| *o == signal.origin) {
                next.0.push((signal.origin, seen));
            }
        }
        for signal in &found {
            if let Some(entry) = next.0.iter_mut().find(|(o, _)| *o == signal.origin) {
                entry.1 = entry.1.max(signal.seq);
            }
        }
        next.0.retain(|(_, seq)| *seq > 0);
        (found, next)
    }

    /// Whether anything is waiting for `user` past `cursor` (cheaper than `after`).
    pub fn any_after(&self, user: i64, cursor: &Cursor) -> bool {
        let kept = self.kept.lock().expect("signals lock");
        kept.iter()
            .any(|s| s.to == user && s.seq > cursor.seen(s.origin) && s.at.elapsed() <= KEPT)
    }

    /// A NOTIFY payload (after [`NOTE`]) from another process: the person it is for, once the
    /// whole signal has arrived.
    pub fn received(&self, payload: &str) -> Option<i64> {
        let mut fields = payload.splitn(5, ':');
        let origin = u32::from_str_radix(fields.next()?, 16).ok()?;
        let seq: u64 = fields.next()?.parse().ok()?;
        let to: i64 = fields.next()?.parse().ok()?;
        let (part, parts) = fields.next()?.split_once('/')?;
        let (part, parts): (usize, usize) = (part.parse().ok()?, parts.parse().ok()?);
        let text = fields.next()?;
        if origin == self.origin || parts == 0 || part >= parts || parts > 64 {
            return None;
        }
        let json = if parts == 1 {
            text.to_owned()
        } else {
            let mut partial = self.partial.lock().expect("partial lock");
            partial.retain(|_, p| p.at.elapsed() < KEPT);
            let entry = partial.entry((origin, seq)).or_insert_with(|| Partial {
                to,
                parts: vec![None; parts],
                at: Instant::now(),
            });
            if entry.parts.len() != parts || entry.to != to {
                return None;
            }
            entry.parts[part] = Some(text.to_owned());
            if entry.parts.iter().any(Option::is_none) {
                return None;
            }
            let done = partial.remove(&(origin, seq))?;
            done.parts.into_iter().flatten().collect()
        };
        self.keep(Arc::new(Signal {
            origin,
            seq,
            to,
            json: json.into(),
            at: Instant::now(),
        }));
        Some(to)
    }

    /// On PostgreSQL: one task sends this process's signals to the others, one transaction per
    /// signal, in the order they were made.
    pub fn spawn_sender(&self, pg: sqlx::PgPool, channel: &'static str) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Arc<Signal>>();
        if self.outbox.set(tx).is_err() {
            return;
        }
        tokio::spawn(async move {
            while let Some(signal) = rx.recv().await {
                if let Err(err) = notify(&pg, channel, &signal).await {
                    tracing::warn!(%err, "could not pass a call signal to the other servers");
                }
            }
        });
    }
}

/// The NOTIFY payloads of a signal: its JSON cut at character boundaries into parts.
fn payloads(signal: &Signal) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest: &str = &signal.json;
    while !rest.is_empty() || parts.is_empty() {
        let mut cut = rest.len().min(PART);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        parts.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    let n = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            format!(
                "{NOTE}{:x}:{}:{}:{i}/{n}:{text}",
                signal.origin, signal.seq, signal.to
            )
        })
        .collect()
}

async fn notify(pg: &sqlx::PgPool, channel: &str, signal: &Signal) -> sqlx::Result<()> {
    let mut tx = pg.begin().await?;
    for payload in payloads(signal) {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_delivers_each_signal_once() {
        let board = Switchboard::new();
        board.send(1, "a".into());
        board.send(2, "b".into());
        board.send(1, "c".into());
        let (first, cursor) = board.after(1, &Cursor::default());
        assert_eq!(
            first.iter().map(|s| &*s.json).collect::<Vec<_>>(),
            ["a", "c"]
        );
        let cursor = Cursor::parse(&cursor.to_string());
        assert!(board.after(1, &cursor).0.is_empty());
        assert!(!board.any_after(1, &cursor));
        board.send(1, "d".into());
        assert!(board.any_after(1, &cursor));
        assert_eq!(&*board.after(1, &cursor).0[0].json, "d");
    }

    #[test]
    fn signals_from_another_process_arrive_whole_and_in_parts() {
        let (here, there) = (Switchboard::new(), Switchboard::new());
        let big = "x".repeat(PART * 2 + 10);
        let signal = Signal {
            origin: there.origin,
            seq: 7,
            to: 5,
            json: big.clone().into(),
            at: Instant::now(),
        };
        let notes = payloads(&signal);
        assert_eq!(notes.len(), 3);
        assert!(notes.iter().all(|n| n.len() < 8000));
        // The parts may interleave with other signals; the last one completes it.
        assert_eq!(here.received(notes[0].strip_prefix(NOTE).unwrap()), None);
        assert_eq!(here.received(notes[2].strip_prefix(NOTE).unwrap()), None);
        assert_eq!(here.received(notes[1].strip_prefix(NOTE).unwrap()), Some(5));
        let (got, cursor) = here.after(5, &Cursor::default());
        assert_eq!(&*got[0].json, big);
        assert_eq!(cursor.to_string(), format!("{:x}.7", there.origin));
        // A process ignores its own signals coming back.
        let own = Signal {
            origin: here.origin,
            ..signal
        };
        assert_eq!(
            here.received(payloads(&own)[0].strip_prefix(NOTE).unwrap()),
            None
        );
    }

    #[test]
    fn unreadable_cursors_are_empty() {
        assert_eq!(Cursor::parse(""), Cursor::default());
        assert_eq!(Cursor::parse("zz.1-3.x"), Cursor::default());
        assert_eq!(Cursor::parse("a.3").to_string(), "a.3");
    }
}
