//! Live delivery: held long-polls and their wake-ups.
//!
//! Each room that someone listens to has a `RoomFeed`: a `watch` of the highest message sequence
//! number known to be committed, and a window of the room's recent messages, already rendered.
//! A poll subscribes to the watch first, then looks for messages after its cursor, and only then
//! waits for the watch to pass the cursor: `wait_for` checks the current value before sleeping,
//! so a send that lands between the look and the wait is never lost.
//!
//! Woken polls are answered from the window, not the database: a message sent to a room with a
//! thousand listeners costs one insert and a thousand copies of an `Arc<str>`, not a thousand reads.
//! Sends on this process put their message in the window themselves; on PostgreSQL, messages
//! from other processes arrive as NOTIFY, and one catch-up read per room fills the window before
//! the watch is bumped.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::AnyPool;
use tokio::sync::{OnceCell, watch};
use tokio::time::Instant;

use crate::store::{messages, rooms};

/// A message rendered once for every poll that delivers it.
#[derive(Debug)]
pub struct Rendered {
    pub seq: i64,
    pub html: Arc<str>,
}

pub type Render = fn(&messages::Message) -> String;

/// The PostgreSQL channel every process LISTENs on: `room:seq` for a committed message (sent by
/// the insert trigger), or [`FORGET`].
const CHANNEL: &str = "parley_messages";
/// "Forget your rooms' recent messages": staff changed some.
const FORGET: &str = "forget";

/// How many rendered messages a room keeps for woken polls; a poll further behind reads the database.
const WINDOW: usize = 256;
/// The most messages one poll answer carries; the client re-polls for the rest.
pub const BATCH: i64 = 200;

pub struct Hub {
    pool: AnyPool,
    render: Render,
    feeds: Mutex<HashMap<i64, Arc<RoomFeed>>>,
    shutdown: watch::Sender<bool>,
    /// Database reads made by polls the window could not answer (see `poll_reads`).
    reads: AtomicU64,
}

struct RoomFeed {
    latest: watch::Sender<i64>,
    init: OnceCell<()>,
    window: Mutex<Window>,
    /// One catch-up read from the database at a time per room.
    catch_up: tokio::sync::Mutex<()>,
}

/// A contiguous run of a room's messages by sequence number, plus those that arrived ahead of a gap
/// (two sends committed in one order and published in the other).
#[derive(Default)]
struct Window {
    items: VecDeque<Arc<Rendered>>,
    early: BTreeMap<i64, Arc<Rendered>>,
}

impl Window {
    fn end(&self) -> Option<i64> {
        self.items.back().map(|m| m.seq)
    }

    fn add(&mut self, msg: Arc<Rendered>) {
        match self.end() {
            None => self.items.push_back(msg),
            Some(end) if msg.seq == end + 1 => self.items.push_back(msg),
            Some(end) if msg.seq <= end => return,
            Some(_) => {
                self.early.insert(msg.seq, msg);
                // A gap that never fills (its sender failed after committing) must not stall
                // the window forever: start again from what arrived.
                if self.early.len() > 32 {
                    self.items.clear();
                    let first = self.early.pop_first().map(|(_, m)| m);
                    self.items.extend(first);
                }
            }
        }
        while let Some(next) = self.end().and_then(|end| self.early.remove(&(end + 1))) {
            self.items.push_back(next);
        }
        let end = self.end().unwrap_or_default();
        self.early.retain(|seq, _| *seq > end);
        while self.items.len() > WINDOW {
            self.items.pop_front();
        }
    }

    /// Messages after `after` up to `upto`, when the window holds all of them.
    fn after(&self, after: i64, upto: i64) -> Option<Vec<Arc<Rendered>>> {
        let first = self.items.front()?.seq;
        let end = self.end()?;
        if after + 1 < first || end < upto {
            return None;
        }
        let skip = usize::try_from(after + 1 - first).unwrap_or(0);
        Some(
            self.items
                .iter()
                .skip(skip)
                .take(BATCH as usize)
                .cloned()
                .collect(),
        )
    }
}

impl Hub {
    pub fn new(pool: AnyPool, render: Render) -> Arc<Self> {
        let (shutdown, _) = watch::channel(false);
        Arc::new(Self {
            pool,
            render,
            feeds: Mutex::new(HashMap::new()),
            shutdown,
            reads: AtomicU64::new(0),
        })
    }

    fn feed(&self, room: i64) -> Arc<RoomFeed> {
        let mut feeds = self.feeds.lock().expect("hub lock");
        feeds
            .entry(room)
            .or_insert_with(|| {
                Arc::new(RoomFeed {
                    latest: watch::channel(0).0,
                    init: OnceCell::new(),
                    window: Mutex::new(Window::default()),
                    catch_up: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }

    /// The feed of `room`, with its latest sequence number read from the database on first use.
    async fn ready_feed(&self, room: i64) -> sqlx::Result<Arc<RoomFeed>> {
        let feed = self.feed(room);
        feed.init
            .get_or_try_init(|| async {
                let last = rooms::find_by_id(&self.pool, room)
                    .await?
                    .map_or(0, |r| r.last_seq);
                feed.latest.send_if_modified(|v| bump(v, last));
                Ok::<_, sqlx::Error>(())
            })
            .await?;
        Ok(feed)
    }

    /// Makes a message sent through this process visible to every held poll of its room.
    pub fn published(&self, message: &messages::Message) {
        let feed = self.feed(message.room_id);
        let rendered = Arc::new(Rendered {
            seq: message.seq,
            html: (self.render)(message).into(),
        });
        feed.window.lock().expect("window lock").add(rendered);
        feed.latest.send_if_modified(|v| bump(v, message.seq));
    }

    /// Another process committed `seq` in `room` (PostgreSQL NOTIFY): read it once, then wake.
    pub async fn remote_published(&self, room: i64, seq: i64) {
        let feed = {
            let feeds = self.feeds.lock().expect("hub lock");
            match feeds.get(&room) {
                Some(feed) => feed.clone(),
                // Nobody here listens to that room; its feed will read the database when they do.
                None => return,
            }
        };
        // Already in the window's contiguous run? (Not "latest ≥ seq": a message this process
        // published may have moved `latest` past `seq` while `seq` itself is still missing, and
        // every woken poll would read the database until the gap closed.)
        let held = |feed: &RoomFeed| {
            let window = feed.window.lock().expect("window lock");
            window.end().is_some_and(|end| end >= seq)
        };
        if held(&feed) {
            return;
        }
        let _one_at_a_time = feed.catch_up.lock().await;
        if held(&feed) {
            return;
        }
        let from = feed
            .window
            .lock()
            .expect("window lock")
            .end()
            .unwrap_or(seq - 1)
            .min(seq - 1);
        match messages::after(&self.pool, room, from, 1000).await {
            Ok(rows) => {
                let mut window = feed.window.lock().expect("window lock");
                for row in &rows {
                    window.add(Arc::new(Rendered {
                        seq: row.seq,
                        html: (self.render)(row).into(),
                    }));
                }
            }
            Err(err) => {
                tracing::warn!(%err, room, "catch-up read failed; polls will read themselves")
            }
        }
        feed.latest.send_if_modified(|v| bump(v, seq));
    }

    /// The rooms this process has a feed for.
    fn listened_rooms(&self) -> Vec<i64> {
        self.feeds
            .lock()
            .expect("hub lock")
            .keys()
            .copied()
            .collect()
    }

    /// After the notification channel was down, anything may have been missed: re-read every
    /// listened room's latest sequence number and wake its polls.
    pub async fn resync_all(&self) {
        let rooms = self.listened_rooms();
        for room in rooms {
            match rooms::find_by_id(&self.pool, room).await {
                Ok(Some(r)) => self.remote_published(room, r.last_seq).await,
                Ok(None) => {}
                Err(err) => tracing::warn!(%err, room, "resync failed"),
            }
        }
    }

    /// Forgets what this process knows of a room (its messages were edited or deleted by staff).
    pub fn invalidate(&self, room: i64) {
        if let Some(feed) = self.feeds.lock().expect("hub lock").get(&room) {
            let mut window = feed.window.lock().expect("window lock");
            window.items.clear();
            window.early.clear();
        }
    }

    /// Forgets every room's recent messages (a message was deleted or edited by staff).
    pub fn invalidate_all(&self) {
        let rooms = self.listened_rooms();
        for room in rooms {
            self.invalidate(room);
        }
    }

    /// Forgets every room's recent messages here and, on PostgreSQL, in every other process too
    /// (staff deleted or changed messages, or users whose names they show).
    pub async fn invalidate_everywhere(&self, pg: Option<&sqlx::PgPool>) {
        self.invalidate_all();
        let Some(pg) = pg else { return };
        let note = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(FORGET)
            .execute(pg)
            .await;
        if let Err(err) = note {
            tracing::warn!(%err, "could not tell the other servers to forget their message windows");
        }
    }

    /// Forgets the rooms nobody is listening to, so that a long-running server keeps windows only
    /// for live rooms (each can hold 256 rendered messages). A room's feed is in use while a poll
    /// or a send holds it; both take it under the same lock this sweep holds, so none is dropped
    /// from under them. A forgotten room's next poll or send starts a fresh feed from the database.
    pub fn sweep(&self) -> usize {
        let mut feeds = self.feeds.lock().expect("hub lock");
        let before = feeds.len();
        feeds.retain(|_, feed| Arc::strong_count(feed) > 1 || feed.latest.receiver_count() > 0);
        before - feeds.len()
    }

    /// Sweeps idle rooms every minute, for as long as the server runs.
    pub fn spawn_sweeper(self: &Arc<Self>) {
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            every.tick().await;
            loop {
                every.tick().await;
                let Some(hub) = hub.upgrade() else { return };
                hub.sweep();
            }
        });
    }

    /// How many times a poll has read the database because the room's window could not answer
    /// it. Woken polls of a live room should not: one message, a thousand listeners, no reads.
    pub fn poll_reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Answers held polls now (graceful shutdown): they end with 204 and clients re-poll.
    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// Whether `after` is beyond the newest message `room` ever had: a cursor from before the
    /// database was restored from a backup, or from a room deleted and made again under its name.
    /// Such a poll would wait for sequence numbers the room will only reach much later, missing
    /// everything until then. (On PostgreSQL this process may not have heard of the newest yet,
    /// so a cursor beyond what it knows is checked against the database.)
    pub async fn cursor_is_ahead(&self, room: i64, after: i64) -> sqlx::Result<bool> {
        let feed = self.ready_feed(room).await?;
        if after <= *feed.latest.borrow() {
            return Ok(false);
        }
        let last = rooms::find_by_id(&self.pool, room)
            .await?
            .map_or(0, |r| r.last_seq);
        Ok(after > last)
    }

    /// Messages of `room` after `after`: at once if there are any, else as soon as one is
    /// committed, else an empty list when `hold` has passed or the server shuts down.
    pub async fn poll(
        &self,
        room: i64,
        after: i64,
        hold: Duration,
    ) -> sqlx::Result<Vec<Arc<Rendered>>> {
        let deadline = Instant::now() + hold;
        let feed = self.ready_feed(room).await?;
        let mut latest = feed.latest.subscribe();
        let mut shutdown = self.shutdown.subscribe();
        // Sequence numbers up to `checked` have been looked for. Normally that is `after`; when
        // staff have deleted the messages above it, what is left to wait for is a newer one.
        let mut checked = after;
        loop {
            let upto = *latest.borrow_and_update();
            if upto > checked {
                let cached = feed.window.lock().expect("window lock").after(after, upto);
                let found = match cached {
                    Some(found) => found,
                    None => self.read_after(room, after).await?,
                };
                if !found.is_empty() {
                    return Ok(found);
                }
                checked = upto;
            }
            if *shutdown.borrow() {
                return Ok(Vec::new());
            }
            // Only the sequence number crosses the await, so the future stays Send.
            let woke = tokio::select! {
                changed = async { latest.wait_for(|v| *v > checked).await.map(|_| ()) } => changed.is_ok(),
                _ = shutdown.wait_for(|stop| *stop) => false,
                _ = tokio::time::sleep_until(deadline) => false,
            };
            if !woke {
                return Ok(Vec::new());
            }
        }
    }

    async fn read_after(&self, room: i64, after: i64) -> sqlx::Result<Vec<Arc<Rendered>>> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let rows = messages::after(&self.pool, room, after, BATCH).await?;
        Ok(rows
            .iter()
            .map(|row| {
                Arc::new(Rendered {
                    seq: row.seq,
                    html: (self.render)(row).into(),
                })
            })
            .collect())
    }

    /// On PostgreSQL: LISTEN for sends made through every process, for as long as the server runs.
    pub fn spawn_listener(self: &Arc<Self>, pg: sqlx::PgPool) {
        let hub = Arc::clone(self);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match hub.listen(&pg).await {
                    Ok(()) => return,
                    Err(err) => {
                        tracing::warn!(%err, "lost the notification channel; reconnecting");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }

    async fn listen(self: &Arc<Self>, pg: &sqlx::PgPool) -> sqlx::Result<()> {
        let mut listener = sqlx::postgres::PgListener::connect_with(pg).await?;
        listener.listen(CHANNEL).await?;
        // Whatever was sent while we were not listening would otherwise wait for the next send.
        self.resync_all().await;
        tracing::info!("listening for messages from other servers");
        loop {
            let note = listener.recv().await?;
            if note.payload() == FORGET {
                self.invalidate_all();
                continue;
            }
            let Some((room, seq)) = note.payload().split_once(':') else {
                continue;
            };
            let (Ok(room), Ok(seq)) = (room.parse::<i64>(), seq.parse::<i64>()) else {
                continue;
            };
            let hub = Arc::clone(self);
            tokio::spawn(async move { hub.remote_published(room, seq).await });
        }
    }
}

fn bump(value: &mut i64, seq: i64) -> bool {
    if seq > *value {
        *value = seq;
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::users;

    fn m(seq: i64) -> Arc<Rendered> {
        Arc::new(Rendered {
            seq,
            html: Arc::from(seq.to_string()),
        })
    }

    fn seqs(v: &[Arc<Rendered>]) -> Vec<i64> {
        v.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn window_serves_a_contiguous_run_and_refuses_what_it_does_not_hold() {
        let mut w = Window::default();
        for s in 5..=8 {
            w.add(m(s));
        }
        assert_eq!(seqs(&w.after(6, 8).unwrap()), vec![7, 8]);
        assert_eq!(seqs(&w.after(4, 8).unwrap()), vec![5, 6, 7, 8]);
        assert!(w.after(3, 8).is_none(), "seq 4 is not in the window");
        assert!(
            w.after(6, 9).is_none(),
            "seq 9 is committed but not here yet"
        );
    }

    #[test]
    fn window_reorders_sends_published_out_of_order() {
        let mut w = Window::default();
        w.add(m(1));
        w.add(m(3));
        assert!(w.after(1, 3).is_none());
        w.add(m(2));
        assert_eq!(seqs(&w.after(0, 3).unwrap()), vec![1, 2, 3]);
        w.add(m(2));
        assert_eq!(w.items.len(), 3, "a duplicate is ignored");
    }

    #[tokio::test]
    async fn sweeping_forgets_idle_rooms_but_not_listened_ones() {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .connect_lazy("sqlite::memory:")
            .unwrap();
        let hub = Hub::new(pool, |m| m.body.clone());
        drop(hub.feed(1));
        let held = hub.feed(2);
        let listening = hub.feed(3).latest.subscribe();
        assert_eq!(hub.sweep(), 1, "only the idle room goes");
        assert_eq!(hub.sweep(), 0);
        drop((held, listening));
        assert_eq!(hub.sweep(), 2);
    }

    fn message(room: i64, seq: i64) -> messages::Message {
        messages::Message {
            id: seq,
            room_id: room,
            seq,
            author: "alice".into(),
            body: format!("message {seq}"),
            created_ms: 0,
        }
    }

    /// A hub on a fresh, migrated SQLite database (rooms and messages tables, no rows).
    async fn hub_on_a_database() -> (Arc<Hub>, tempfile::TempDir) {
        let (hub, _, dir) = hub_and_db().await;
        (hub, dir)
    }

    async fn hub_and_db() -> (Arc<Hub>, crate::db::Db, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("hub.db").display());
        let db = crate::db::Db::connect(&crate::config::Settings::for_database(url))
            .await
            .unwrap();
        (Hub::new(db.pool.clone(), |m| m.body.clone()), db, dir)
    }

    #[tokio::test]
    async fn a_notified_message_fills_the_gap_a_later_local_one_left() {
        use crate::domain::{MessageBody, RoomName, Username};
        let (hub, db, _dir) = hub_and_db().await;
        let name = Username::parse("alice").unwrap();
        let alice = users::create(&db.pool, &name, "x", false).await.unwrap();
        let room =
            rooms::create_or_get_public(&db.pool, &RoomName::parse("general").unwrap(), alice)
                .await
                .unwrap()
                .id;
        let mut stored = Vec::new();
        for text in ["one", "two", "three"] {
            let body = MessageBody::parse(text).unwrap();
            let (m, _) = messages::insert(&db.pool, db.engine, room, (alice, "alice"), &body, None)
                .await
                .unwrap();
            stored.push(m);
        }
        // This process sent 1 and 3; 2 came from another process, whose NOTIFY arrives last.
        hub.published(&stored[0]);
        hub.published(&stored[2]);
        hub.remote_published(room, 2).await;
        let found = hub.poll(room, 1, Duration::from_secs(1)).await.unwrap();
        assert_eq!(seqs(&found), vec![2, 3]);
        assert_eq!(
            hub.poll_reads(),
            0,
            "served from the window, which has no gap"
        );
    }

    #[tokio::test]
    async fn a_thousand_woken_polls_read_nothing_from_the_database() {
        let (hub, _dir) = hub_on_a_database().await;
        hub.published(&message(1, 1));
        let polls: Vec<_> = (0..1000)
            .map(|_| {
                let hub = hub.clone();
                tokio::spawn(async move { hub.poll(1, 1, Duration::from_secs(5)).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        hub.published(&message(1, 2));
        for poll in polls {
            assert_eq!(seqs(&poll.await.unwrap().unwrap()), vec![2]);
        }
        assert_eq!(hub.poll_reads(), 0);
    }

    #[tokio::test]
    async fn a_poll_whose_newer_messages_were_deleted_waits_instead_of_spinning() {
        let (hub, _dir) = hub_on_a_database().await;
        // Seq 5 was announced, then staff deleted it: the window is cleared and the database
        // holds nothing after 3.
        hub.published(&message(1, 5));
        hub.invalidate(1);
        let found = hub.poll(1, 3, Duration::from_millis(300)).await.unwrap();
        assert!(found.is_empty());
        assert_eq!(
            hub.poll_reads(),
            1,
            "one look, then a wait for something newer"
        );
    }

    #[test]
    fn window_keeps_a_bounded_tail() {
        let mut w = Window::default();
        for s in 1..=(WINDOW as i64 + 10) {
            w.add(m(s));
        }
        assert_eq!(w.items.len(), WINDOW);
        assert!(w.after(0, 5).is_none());
    }
}
