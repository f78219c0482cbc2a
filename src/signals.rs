//! Call signalling in flight: small JSON messages (a ring, an accept, an SDP offer or answer, an
//! ICE candidate, a hang-up) addressed to one person, carried to every page they have open by
//! that page's one held poll. They are never stored in the database (only a call's record is).
//!
//! Every process keeps every signal of the last minute, whoever it is for, so that a poll finds
//! its person's signals on whichever process it lands. Signals made here are numbered by this
//! process (its `origin`, random at start, and a counter, taken under the same lock that keeps
//! it); on PostgreSQL they reach the other processes as NOTIFY, sent in order by one task, so
//! each process sees each origin's signals in number order. A page's cursor is therefore the last
//! number it has seen per origin (`"origin.seq-origin.seq"`), carried forward whichever process
//! answers: nothing is skipped, nothing delivered twice. (A process that missed some of an
//! origin's signals while its LISTEN connection was down cannot deliver those; calls.js also
//! ignores a signal it has acted on already.)

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// How long a signal is kept: a ring lasts up to `--call-ring-secs` (at most 120 s), and a page
/// opened while it rings still rings.
const KEPT: Duration = Duration::from_secs(150);
/// The most signals kept at once, whoever they are for (each is at most a few KB)...
const MAX_KEPT: usize = 4096;
/// ...and for one person: a pair flooding their own call cannot push out everyone else's.
const MAX_KEPT_EACH: usize = 256;
/// Most cursor entries a page keeps (one per process that signalled them lately).
const MAX_ORIGINS: usize = 16;
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
            .take(MAX_ORIGINS)
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
    kept: Mutex<Kept>,
    /// Parts of signals from other processes that have not all arrived yet.
    partial: Mutex<HashMap<(u32, u64), Partial>>,
    /// On PostgreSQL, the task that tells the other processes (in order).
    outbox: std::sync::OnceLock<mpsc::UnboundedSender<Arc<Signal>>>,
}

/// The signals of the last `KEPT`, by the person they are for, and all of them in the order
/// they came (for expiry). Each person's queue is in the same order, so the oldest signal of all
/// is at the front of its person's queue.
#[derive(Default)]
struct Kept {
    next: u64,
    order: VecDeque<(Instant, i64)>,
    by_user: HashMap<i64, VecDeque<Arc<Signal>>>,
}

impl Kept {
    fn push(&mut self, signal: Arc<Signal>) {
        while self
            .order
            .front()
            .is_some_and(|(at, _)| at.elapsed() > KEPT || self.order.len() >= MAX_KEPT)
        {
            self.pop_oldest();
        }
        let mine = self.by_user.entry(signal.to).or_default();
        if mine.len() >= MAX_KEPT_EACH {
            mine.pop_front();
            if let Some(i) = self.order.iter().position(|(_, to)| *to == signal.to) {
                self.order.remove(i);
            }
        }
        self.order.push_back((signal.at, signal.to));
        self.by_user.entry(signal.to).or_default().push_back(signal);
    }

    fn pop_oldest(&mut self) {
        let Some((_, to)) = self.order.pop_front() else {
            return;
        };
        if let Some(mine) = self.by_user.get_mut(&to) {
            mine.pop_front();
            if mine.is_empty() {
                self.by_user.remove(&to);
            }
        }
    }

    /// `user`'s signals still kept.
    fn of(&self, user: i64) -> impl Iterator<Item = &Arc<Signal>> {
        self.by_user
            .get(&user)
            .into_iter()
            .flatten()
            .filter(|s| s.at.elapsed() <= KEPT)
    }
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
            kept: Mutex::new(Kept::default()),
            partial: Mutex::new(HashMap::new()),
            outbox: std::sync::OnceLock::new(),
        }
    }

    /// Keeps a signal made here for `to`, and passes it to the other processes.
    pub fn send(&self, to: i64, json: String) {
        // Numbered, kept and queued for the other processes under one lock: this process's own
        // signals are kept, and sent, in number order.
        let mut kept = self.kept.lock().expect("signals lock");
        kept.next += 1;
        let signal = Arc::new(Signal {
            origin: self.origin,
            seq: kept.next,
            to,
            json: json.into(),
            at: Instant::now(),
        });
        kept.push(signal.clone());
        if let Some(outbox) = self.outbox.get() {
            let _ = outbox.send(signal);
        }
    }

    fn keep(&self, signal: Arc<Signal>) {
        self.kept.lock().expect("signals lock").push(signal);
    }

    /// The kept signals for `user` that `cursor` has not seen, and the cursor after them: the
    /// page's own, moved on past what is delivered now (an origin this process has nothing from
    /// is carried forward, so the page's next poll, on another process, repeats nothing).
    pub fn after(&self, user: i64, cursor: &Cursor) -> (Vec<Arc<Signal>>, Cursor) {
        let kept = self.kept.lock().expect("signals lock");
        let found: Vec<Arc<Signal>> = kept
            .of(user)
            .filter(|s| s.seq > cursor.seen(s.origin))
            .cloned()
            .collect();
        let mut next = cursor.clone();
        for signal in &found {
            match next.0.iter_mut().find(|(o, _)| *o == signal.origin) {
                Some(entry) => entry.1 = entry.1.max(signal.seq),
                None => next.0.push((signal.origin, signal.seq)),
            }
        }
        // Over the cap, the origins this process keeps nothing from for `user` go first (the
        // cursor's oldest entries, as a process that restarted left them).
        while next.0.len() > MAX_ORIGINS {
            let stale = next
                .0
                .iter()
                .position(|(o, _)| !kept.of(user).any(|s| s.origin == *o))
                .unwrap_or(0);
            next.0.remove(stale);
        }
        (found, next)
    }

    /// Whether anything is waiting for `user` past `cursor` (cheap when nothing is).
    pub fn any_after(&self, user: i64, cursor: &Cursor) -> bool {
        let kept = self.kept.lock().expect("signals lock");
        kept.of(user).any(|s| s.seq > cursor.seen(s.origin))
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

    /// On PostgreSQL: one task sends this process's signals to the others, in the order they
    /// were made.
    pub fn spawn_sender(&self, pg: sqlx::PgPool, channel: &'static str) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Arc<Signal>>();
        if self.outbox.set(tx).is_err() {
            return;
        }
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while rx.recv_many(&mut batch, 32).await > 0 {
                // Once more after a failure (a connection that broke); then they are lost, and
                // calls.js's own time limits end a call that cannot connect.
                for attempt in 0..2 {
                    match notify(&pg, channel, &batch).await {
                        Ok(()) => break,
                        Err(err) if attempt == 0 => {
                            tracing::debug!(%err, "retrying call signals to the other servers");
                        }
                        Err(err) => {
                            tracing::warn!(%err, "could not pass call signals to the other servers");
                        }
                    }
                }
                batch.clear();
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

/// Sends signals, in order: a lone one-part signal as one statement, anything more in one
/// transaction (whose notifications are delivered together, in the order sent).
async fn notify(pg: &sqlx::PgPool, channel: &str, signals: &[Arc<Signal>]) -> sqlx::Result<()> {
    let payloads: Vec<String> = signals.iter().flat_map(|s| payloads(s)).collect();
    let note = |payload| {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload)
    };
    if let [one] = payloads.as_slice() {
        return note(one.clone()).execute(pg).await.map(|_| ());
    }
    let mut tx = pg.begin().await?;
    for payload in payloads {
        note(payload).execute(&mut *tx).await?;
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
    fn a_cursor_is_carried_forward_by_a_process_that_has_nothing_from_its_origins() {
        let (here, there) = (Switchboard::new(), Switchboard::new());
        there.send(1, "from there".into());
        let (_, cursor) = there.after(1, &Cursor::default());
        // The page's next poll lands here, which has none of those: its answer keeps them.
        here.send(1, "from here".into());
        let (got, cursor) = here.after(1, &cursor);
        assert_eq!(got.len(), 1);
        assert!(there.after(1, &cursor).0.is_empty(), "nothing twice");
    }

    #[test]
    fn one_person_cannot_fill_the_board() {
        let board = Switchboard::new();
        board.send(2, "for bob".into());
        for i in 0..(MAX_KEPT_EACH + 50) {
            board.send(1, format!("{i}"));
        }
        assert_eq!(board.after(1, &Cursor::default()).0.len(), MAX_KEPT_EACH);
        assert_eq!(board.after(2, &Cursor::default()).0.len(), 1);
        let kept = board.kept.lock().unwrap();
        assert_eq!(kept.order.len(), MAX_KEPT_EACH + 1);
    }

    #[test]
    fn unreadable_cursors_are_empty() {
        assert_eq!(Cursor::parse(""), Cursor::default());
        assert_eq!(Cursor::parse("zz.1-3.x"), Cursor::default());
        assert_eq!(Cursor::parse("a.3").to_string(), "a.3");
    }
}
