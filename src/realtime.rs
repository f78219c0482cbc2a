//! Live delivery: held long-polls and their wake-ups.
//!
//! Each conversation that someone listens to has a `RoomFeed`: a `watch` of the highest change
//! number known to be committed in its change sequence (new messages, edits, deletions,
//! reactions), and a window of its recent changes, already rendered. A poll subscribes to the
//! watch first, then looks for changes after its cursor, and only then waits for the watch to
//! move: the look marks the value it read as seen (`borrow_and_update`) and `changed` returns for
//! any newer one, so a change that lands between the look and the wait is never lost.
//!
//! Woken polls are answered from the window, not the database: a message sent to a room with a
//! thousand listeners costs one insert and a thousand copies of an `Arc<str>`, not a thousand reads.
//! Changes made on this process go into the window themselves; on PostgreSQL, changes from other
//! processes arrive as NOTIFY, and one catch-up read per room fills the window before the watch is
//! bumped.
//!
//! Each person with a held poll also has a `PersonFeed`: the time their sidebar (unread and
//! mention counts, who is online) last changed. The same held poll answers for it, so a tab holds
//! one connection whatever it shows; a person who is only reading the conversation that changed
//! is not woken for it. The same poll carries call signalling addressed to the person (see
//! `signals`).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::AnyPool;
use tokio::sync::{OnceCell, watch};
use tokio::time::Instant;

use crate::signals::{self, Cursor, Signal, Switchboard};
use crate::store::messages::{self, Change};
use crate::store::rooms;

/// A change rendered once for every poll that delivers it. It stands for the change numbers
/// `first..=seq` of its room: one, or, after a catch-up read that folded several changes of
/// one message into its current state, the run since the previous item.
#[derive(Debug)]
pub struct Rendered {
    pub first: i64,
    pub seq: i64,
    /// The message it shows, or whose reactions (0 for none), so that a later edit or deletion
    /// can rewrite it.
    message: i64,
    /// Whether it is that message's creation (rather than an edit of it).
    created: bool,
    pub html: Arc<str>,
}

pub type Render = fn(&Change) -> String;

/// The PostgreSQL channel every process LISTENs on: `room:seq` for a committed change (sent by
/// the trigger on `rooms.last_seq`), [`FORGET`] or [`PRESENCE`].
const CHANNEL: &str = "parley_messages";
/// How often each process re-reads its listened rooms' latest change numbers on PostgreSQL: the
/// bound on how late a message is whose server stopped between its commit and its announcement.
const RESYNC_EVERY: Duration = Duration::from_secs(30);
/// "Forget your rooms' recent messages": staff changed what they show (a user's name).
const FORGET: &str = "forget";
/// "Forget your rooms' rendered changes", and nothing else: someone's display name changed.
const FORGET_WINDOWS: &str = "forget-windows";
/// "Someone came or went": sidebars show who is online.
const PRESENCE: &str = "presence";
/// "`join:room:user`": a person now belongs to a room (their feed may be on this process).
const JOIN: &str = "join:";
/// "`left:room:user`": a person no longer belongs to a room (left it).
const LEFT: &str = "left:";
/// "`revoke:user`": a session of the user ended (logged out, deactivated, password changed).
const REVOKE: &str = "revoke:";
/// "`ping:origin:n`": a process timing its own NOTIFY's way back to it (`spawn_notify_probe`);
/// the others ignore it.
const PING: &str = "ping:";
/// How often a process times a NOTIFY.
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// How many rendered changes a room keeps for woken polls; a poll further behind reads the database.
const WINDOW: usize = 256;
/// The most changes one poll answer carries; the client re-polls for the rest.
pub const BATCH: i64 = 200;
/// How long a person's feed is kept after their last poll.
const PERSON_KEPT: Duration = Duration::from_secs(120);
/// A person's sidebar is sent again at most this often, however busy their rooms are.
pub const FEED_PACE_MS: i64 = 1000;

/// What every poll looks up, by a room's or a person's id. The ids are the database's, not
/// chosen by a client: a quicker hash than the default (SipHash, made to resist chosen keys).
type IdMap<V> = fnv::FnvHashMap<i64, V>;

pub struct Hub {
    pool: AnyPool,
    render: Render,
    feeds: Mutex<IdMap<Arc<RoomFeed>>>,
    people: Mutex<People>,
    presence_dirty: AtomicBool,
    /// The server is stopping: held polls answer at once. It wakes them through what they wait
    /// on anyway (their room's and their person's feeds), not through a channel of its own
    /// that every held poll would subscribe to, all on one shared count.
    stopping: AtomicBool,
    /// What a poll with neither a room nor a person to wait on waits on (see `poll`).
    stop: watch::Sender<i64>,
    /// Database reads made by polls the window could not answer (see `poll_reads`).
    reads: AtomicU64,
    /// On PostgreSQL, for telling the other processes who joined what.
    pg: std::sync::OnceLock<sqlx::PgPool>,
    /// On PostgreSQL, the changes this process announces after their commit (`announce`).
    announcer: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<(i64, i64)>>,
    /// Joins told to the other processes lately (a send joins its room every time).
    announced: crate::cache::Cache<(i64, i64), ()>,
    /// Call signalling on its way to people's pages.
    pub switchboard: Switchboard,
    /// How many times each user's sessions were revoked, on any process: what was checked at
    /// an older count (a cached login, a held poll) is checked again.
    revocations: Mutex<IdMap<u64>>,
    /// Revocations of anyone's sessions, in all: what was checked while it stood still needs
    /// no look at `revocations` (`revocations_in_all`).
    revoked: AtomicU64,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// This process's NOTIFY probes: its mark (random at start), and the probe on its way.
    probe_origin: u64,
    probe: Mutex<Option<(u64, std::time::Instant)>>,
}

struct RoomFeed {
    latest: watch::Sender<i64>,
    init: OnceCell<()>,
    window: Mutex<Window>,
    /// One catch-up read from the database at a time per room.
    catch_up: tokio::sync::Mutex<()>,
}

/// The people with a feed on this process: by id, by lowercase name (for mentions), and by the
/// rooms they belong to (for unread counts).
#[derive(Default)]
struct People {
    feeds: IdMap<Arc<PersonFeed>>,
    by_name: HashMap<String, i64>,
    by_room: HashMap<i64, HashSet<i64>>,
}

struct PersonFeed {
    /// Unix ms of the last change to what their sidebar shows. A call signal for them wakes
    /// its receivers without changing it (a poll then looks for signals).
    changed: watch::Sender<i64>,
    init: OnceCell<()>,
    /// Held polls by the conversation they show (0: none).
    polls: Mutex<IdMap<usize>>,
    /// When a poll last ended or a page was made (unix ms): a feed is kept a while after its
    /// last poll, since the next one follows at once (a new feed would send its sidebar once
    /// more).
    last_used: AtomicI64,
}

impl PersonFeed {
    /// Whether every poll this person holds shows `room`: then its changes are on their screen
    /// already and their sidebar need not be sent again for it.
    fn all_on(&self, room: i64) -> bool {
        let polls = self.polls.lock().expect("polls lock");
        let here = polls.get(&room).copied().unwrap_or(0);
        here > 0 && polls.values().sum::<usize>() == here
    }

    fn bump(&self) {
        self.changed.send_replace(crate::now_ms());
    }
}

/// Counts a held poll against its person and conversation for as long as it is held.
struct Holding<'a>(&'a PersonFeed, i64);

impl<'a> Holding<'a> {
    fn new(feed: &'a PersonFeed, room: i64) -> Self {
        *feed
            .polls
            .lock()
            .expect("polls lock")
            .entry(room)
            .or_default() += 1;
        Self(feed, room)
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.0.last_used.store(crate::now_ms(), Ordering::Relaxed);
        let mut polls = self.0.polls.lock().expect("polls lock");
        if let Some(n) = polls.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                polls.remove(&self.1);
            }
        }
    }
}

/// Who holds a poll, the sidebar state their page has (unix ms; see [`PersonFeed`]), and, for a
/// page that takes calls, the call signals it has seen.
#[derive(Debug, Clone)]
pub struct Listener {
    pub user: i64,
    /// A page's poll: a cursor its room never reached is answered with `reload` (a page older
    /// than the room's history, as after a restore), rather than a wait for messages it would
    /// then miss.
    pub reload_ahead: bool,
    pub feed_since: i64,
    /// Boxed: it is part of every held poll's state, and mostly absent.
    pub signals: Option<Box<Cursor>>,
}

/// What a poll answers with: the changes after its cursor, the cursor to poll with next,
/// whether the person's sidebar changed since the page had it, and call signals for them with
/// the signal cursor to poll with next.
#[derive(Debug, Default)]
pub struct Answer {
    /// The page should load again (see `Listener::reload_ahead`); nothing else is answered.
    pub reload: bool,
    pub changes: Vec<Arc<Rendered>>,
    pub cursor: i64,
    pub feed: bool,
    pub signals: Vec<Arc<Signal>>,
    pub signal_cursor: Option<Cursor>,
}

/// A contiguous run of a room's changes, plus those that arrived ahead of a gap (two changes
/// committed in one order and published in the other).
#[derive(Default)]
struct Window {
    items: VecDeque<Arc<Rendered>>,
    early: BTreeMap<i64, Arc<Rendered>>,
    /// Messages deleted lately: a change showing one that arrives after its deletion (published
    /// out of order) is blanked as it comes in.
    deleted: VecDeque<i64>,
}

impl Window {
    fn end(&self) -> Option<i64> {
        self.items.back().map(|m| m.seq)
    }

    fn add(&mut self, mut item: Arc<Rendered>) {
        if item.message != 0 && self.deleted.contains(&item.message) {
            item = Arc::new(Rendered {
                first: item.first,
                seq: item.seq,
                message: item.message,
                created: item.created,
                html: Arc::from(""),
            });
        }
        match self.end() {
            None => self.items.push_back(item),
            Some(end) if item.first == end + 1 => self.items.push_back(item),
            Some(end) if item.seq <= end => return,
            Some(end) if item.first <= end => {
                // A catch-up read overlapping what this process published: start again from it.
                self.items.clear();
                self.items.push_back(item);
            }
            Some(_) => {
                self.early.insert(item.first, item);
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
        self.early.retain(|_, m| m.seq > end);
        while self.items.len() > WINDOW {
            self.items.pop_front();
        }
    }

    /// Changes after `after` up to `upto`, when the window holds all of them.
    fn after(&self, after: i64, upto: i64) -> Option<Vec<Arc<Rendered>>> {
        if self.end()? < upto {
            return None;
        }
        let start = self.items.partition_point(|m| m.seq <= after);
        if self.items.get(start)?.first != after + 1 {
            return None;
        }
        Some(
            self.items
                .iter()
                .skip(start)
                .take(BATCH as usize)
                .cloned()
                .collect(),
        )
    }

    /// What the window holds of `message` from before change `before` is rewritten: its creation
    /// shows `now` (the message as it is, or nothing once deleted), and earlier edits and
    /// reactions nothing. A poll from before them gets the message as it is, never a text since
    /// replaced or deleted, nor reactions it already shows.
    fn rewrite(&mut self, message: i64, before: i64, now: Option<&Arc<str>>) {
        let empty: Arc<str> = Arc::from("");
        for item in self.items.iter_mut().chain(self.early.values_mut()) {
            if item.message != message || item.seq >= before {
                continue;
            }
            let html = match (item.created, now) {
                (true, Some(now)) => now.clone(),
                _ => empty.clone(),
            };
            *item = Arc::new(Rendered {
                first: item.first,
                seq: item.seq,
                message: item.message,
                created: item.created,
                html,
            });
        }
    }

    fn deleted(&mut self, message: i64, at: i64) {
        self.rewrite(message, at, None);
        self.deleted.push_back(message);
        if self.deleted.len() > WINDOW {
            self.deleted.pop_front();
        }
    }
}

impl Hub {
    pub fn new(pool: AnyPool, render: Render, metrics: Arc<crate::metrics::Metrics>) -> Arc<Self> {
        Arc::new(Self {
            pool,
            render,
            feeds: Mutex::new(IdMap::default()),
            people: Mutex::new(People::default()),
            presence_dirty: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            stop: watch::channel(0).0,
            reads: AtomicU64::new(0),
            pg: std::sync::OnceLock::new(),
            announcer: std::sync::OnceLock::new(),
            announced: crate::cache::Cache::new(Duration::from_secs(600), 100_000),
            switchboard: Switchboard::new(),
            revocations: Mutex::new(IdMap::default()),
            revoked: AtomicU64::new(0),
            metrics,
            probe_origin: rand::random(),
            probe: Mutex::new(None),
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

    /// The feed of `room`, with its latest change number read from the database on first use.
    async fn ready_feed(&self, room: i64) -> sqlx::Result<Arc<RoomFeed>> {
        let feed = self.feed(room);
        if feed.init.initialized() {
            return Ok(feed);
        }
        // The first read is boxed: its future would otherwise be part of every held poll's.
        Box::pin(feed.init.get_or_try_init(|| async {
            let last = rooms::find_by_id(&self.pool, room)
                .await?
                .map_or(0, |r| r.last_seq);
            feed.latest.send_if_modified(|v| bump(v, last));
            Ok::<_, sqlx::Error>(())
        }))
        .await?;
        Ok(feed)
    }

    fn render(&self, change: &Change, first: i64) -> Arc<Rendered> {
        let (message, created) = match change {
            Change::New(m) => (m.seq, true),
            Change::Updated(m) => (m.seq, false),
            // A message's reactions, like an edit of it, are superseded by a later edit (whose
            // element carries them) and by its deletion: both blank them in the window.
            Change::Reacted { seq, .. } => (*seq, false),
            Change::Deleted { .. } => (0, false),
        };
        Arc::new(Rendered {
            first,
            seq: change.at(),
            message,
            created,
            html: (self.render)(change).into(),
        })
    }

    /// Puts a change in a room's window (standing for the changes `first..=upto`, when a catch-up
    /// read folded several into it), rewriting what it supersedes there; the last change number
    /// it stands for.
    fn keep(&self, window: &mut Window, change: &Change, first: i64, upto: Option<i64>) -> i64 {
        let mut item = self.render(change, first);
        if let Some(upto) = upto.filter(|u| *u > item.seq) {
            item = Arc::new(Rendered {
                first: item.first,
                seq: upto,
                message: item.message,
                created: item.created,
                html: item.html.clone(),
            });
        }
        let seq = item.seq;
        window.add(item);
        match change {
            Change::Updated(m) => {
                let now: Arc<str> = (self.render)(&Change::New(m.clone())).into();
                window.rewrite(m.seq, change.at(), Some(&now));
            }
            Change::Deleted { seq, at, .. } => window.deleted(*seq, *at),
            _ => {}
        }
        seq
    }

    /// Makes a change made through this process visible to every held poll of its room, and to
    /// the sidebars of the people it concerns.
    pub fn published(&self, change: &Change) {
        let feed = self.feed(change.room_id());
        {
            let mut window = feed.window.lock().expect("window lock");
            self.keep(&mut window, change, change.at(), None);
        }
        feed.latest.send_if_modified(|v| bump(v, change.at()));
        self.tell_people(std::slice::from_ref(change));
    }

    /// Another process committed change `seq` in `room` (PostgreSQL NOTIFY): read what this
    /// process has not seen once, then wake.
    pub async fn remote_published(&self, room: i64, seq: i64) {
        let feed = {
            let feeds = self.feeds.lock().expect("hub lock");
            feeds.get(&room).cloned()
        };
        let Some(feed) = feed else {
            // Nobody here reads that room, but people here may belong to it (unread counts).
            if self.has_members_here(room) {
                self.catch_up_people(room, seq).await;
            }
            return;
        };
        // Already in the window's contiguous run? (Not "latest ≥ seq": a change this process
        // published may have moved `latest` past `seq` while `seq` itself is still missing, and
        // every woken poll would read the database until the gap closed.)
        let held = |feed: &RoomFeed| {
            let window = feed.window.lock().expect("window lock");
            window.end().is_some_and(|end| end >= seq)
        };
        // A catch-up for an earlier notice may have read this change already: the watch is still
        // bumped to it (the polls it wakes find it in the window).
        let wake = |upto: i64| feed.latest.send_if_modified(|v| bump(v, upto));
        if held(&feed) {
            wake(seq);
            return;
        }
        let _one_at_a_time = feed.catch_up.lock().await;
        if held(&feed) {
            wake(seq);
            return;
        }
        let from = feed
            .window
            .lock()
            .expect("window lock")
            .end()
            .unwrap_or(seq - 1)
            .min(seq - 1);
        let mut upto = seq;
        match messages::changes_after(&self.pool, room, from, 1000).await {
            Ok((changes, cursor)) => {
                // What committed after `seq` and was read with it is woken for now too.
                upto = upto.max(cursor);
                let mut window = feed.window.lock().expect("window lock");
                let mut first = from + 1;
                let last = changes.len().saturating_sub(1);
                for (i, change) in changes.iter().enumerate() {
                    // What came after the last change folded into it (or into nothing, as when
                    // a message was sent and deleted): it stands for the run up to the cursor.
                    let upto = (i == last).then_some(cursor);
                    first = self.keep(&mut window, change, first, upto) + 1;
                }
                if changes.is_empty() && cursor >= first {
                    // Nothing left to show of (from, cursor]: an empty item keeps the run whole.
                    window.add(Arc::new(Rendered {
                        first,
                        seq: cursor,
                        message: 0,
                        created: false,
                        html: Arc::from(""),
                    }));
                }
                drop(window);
                self.tell_people(&changes);
            }
            Err(err) => {
                tracing::warn!(%err, room, "catch-up read failed; polls will read themselves")
            }
        }
        wake(upto);
    }

    fn has_members_here(&self, room: i64) -> bool {
        let people = self.people.lock().expect("people lock");
        people.by_room.get(&room).is_some_and(|m| !m.is_empty())
    }

    /// A change in a room nobody here reads: its members here still see its unread count.
    async fn catch_up_people(&self, room: i64, seq: i64) {
        match messages::changes_after(&self.pool, room, seq - 1, 1).await {
            Ok((changes, _)) => self.tell_people(&changes),
            Err(err) => tracing::warn!(%err, room, "could not read a change for the sidebars"),
        }
    }

    /// New messages change the unread counts of their room's members, and the mention counts of
    /// whom they name. Each is told, unless every poll they hold shows that room already. (Who
    /// an edit names anew is told by the process that made the edit.)
    fn tell_people(&self, changes: &[Change]) {
        let people = self.people.lock().expect("people lock");
        if people.feeds.is_empty() {
            return;
        }
        for change in changes {
            let Change::New(message) = change else {
                continue;
            };
            let room = message.room_id;
            let told = |user: i64| {
                if user == message.author_id {
                    return;
                }
                if let Some(feed) = people.feeds.get(&user).filter(|f| !f.all_on(room)) {
                    feed.bump();
                }
            };
            for user in people.by_room.get(&room).into_iter().flatten() {
                told(*user);
            }
            for name in message.mentions.split_whitespace() {
                if let Some(user) = people.by_name.get(name) {
                    told(*user);
                }
            }
        }
    }

    fn person(&self, user: i64) -> Arc<PersonFeed> {
        let mut people = self.people.lock().expect("people lock");
        people
            .feeds
            .entry(user)
            .or_insert_with(|| {
                Arc::new(PersonFeed {
                    // A feed made now knows nothing of what happened before it: a page older
                    // than it gets its sidebar once. A page made after it (`watch_person`), even
                    // within the same millisecond, does not.
                    changed: watch::channel(crate::now_ms() - 1).0,
                    init: OnceCell::new(),
                    polls: Mutex::new(IdMap::default()),
                    last_used: AtomicI64::new(crate::now_ms()),
                })
            })
            .clone()
    }

    /// The feed of `user`, with their name and rooms read from the database on first use.
    async fn ready_person(&self, user: i64) -> sqlx::Result<Arc<PersonFeed>> {
        let feed = self.person(user);
        if feed.init.initialized() {
            return Ok(feed);
        }
        Box::pin(feed.init.get_or_try_init(|| async {
            let (name, rooms) = rooms::name_and_rooms(&self.pool, user).await?;
            let mut people = self.people.lock().expect("people lock");
            people.by_name.insert(name.to_ascii_lowercase(), user);
            for room in rooms {
                people.by_room.entry(room).or_default().insert(user);
            }
            Ok::<_, sqlx::Error>(())
        }))
        .await?;
        Ok(feed)
    }

    /// `user`'s sidebar is about to be read for a page (or a feed answer): their feed exists from
    /// now on, with their rooms known, so every change after the moment returned reaches it. The
    /// page's poll says that moment as its `t`; a poll of a page just made is then not sent the
    /// sidebar it already shows (a feed made by the poll itself would know nothing older, and
    /// would send it).
    pub async fn watch_person(&self, user: i64) -> sqlx::Result<i64> {
        let feed = self.ready_person(user).await?;
        feed.last_used.store(crate::now_ms(), Ordering::Relaxed);
        Ok(crate::now_ms())
    }

    /// Reads whom `user` is and which rooms they belong to, for their feed.
    async fn load_person(&self, user: i64) -> sqlx::Result<()> {
        let (name, rooms) = rooms::name_and_rooms(&self.pool, user).await?;
        let mut people = self.people.lock().expect("people lock");
        people.by_name.insert(name.to_ascii_lowercase(), user);
        for room in rooms {
            people.by_room.entry(room).or_default().insert(user);
        }
        Ok(())
    }

    /// Something only `user`'s own sidebar shows changed (they read a conversation): their
    /// other pages are told.
    pub fn changed_for(&self, user: i64) {
        if let Some(feed) = self.people.lock().expect("people lock").feeds.get(&user) {
            feed.bump();
        }
    }

    /// A call signal for `user`, to every page they have open on any process.
    pub fn signal(&self, user: i64, json: String) {
        self.switchboard.send(user, json);
        self.signalled(user);
    }

    fn signalled(&self, user: i64) {
        if let Some(feed) = self.people.lock().expect("people lock").feeds.get(&user) {
            feed.changed.send_modify(|_| {});
        }
    }

    /// `user` now belongs to `room` (joined it, or a private conversation was opened with them).
    /// On PostgreSQL the other processes are told too (`join:room:user`), since the person's
    /// feed may live on any of them.
    pub fn joined(&self, room: i64, user: i64) {
        self.joined_here(room, user);
        let Some(pg) = self.pg.get() else { return };
        if self.announced.get(&(room, user)).is_some() {
            return;
        }
        self.announced.put((room, user), ());
        let (pg, note) = (pg.clone(), format!("{JOIN}{room}:{user}"));
        tokio::spawn(async move {
            if let Err(err) = tell_others(&pg, &note).await {
                tracing::debug!(%err, "could not tell the other servers about a join");
            }
        });
    }

    /// `user` no longer belongs to `room` (they left it): its messages stop waking their
    /// sidebar, here and, on PostgreSQL, on the other processes (`left:room:user`).
    pub fn left(&self, room: i64, user: i64) {
        self.left_here(room, user);
        let Some(pg) = self.pg.get() else { return };
        let (pg, note) = (pg.clone(), format!("{LEFT}{room}:{user}"));
        tokio::spawn(async move {
            if let Err(err) = tell_others(&pg, &note).await {
                tracing::debug!(%err, "could not tell the other servers about a departure");
            }
        });
    }

    fn left_here(&self, room: i64, user: i64) {
        // Coming back is announced again, whichever process it is made on.
        self.announced.remove(&(room, user));
        let mut people = self.people.lock().expect("people lock");
        if let Some(members) = people.by_room.get_mut(&room) {
            members.remove(&user);
            if members.is_empty() {
                people.by_room.remove(&room);
            }
        }
    }

    /// How many times `user`'s sessions have been revoked (see `revoke`).
    pub fn revocation(&self, user: i64) -> u64 {
        let revocations = self.revocations.lock().expect("revocations lock");
        revocations.get(&user).copied().unwrap_or(0)
    }

    /// A session of `user` ended, or all of them did: every process checks their sessions
    /// again on their next request, and their held polls answer without what they waited for.
    /// On PostgreSQL the other processes are told before this returns (`revoke:user`), so a
    /// cookie logged out here no longer works there, whatever they had cached.
    pub async fn revoke(&self, user: i64) {
        self.revoked_here(user);
        let Some(pg) = self.pg.get() else { return };
        if let Err(err) = tell_others(pg, &format!("{REVOKE}{user}")).await {
            tracing::warn!(%err, "could not tell the other servers that a session ended");
        }
    }

    /// How many revocations there have been, of anyone's sessions: while it stands still,
    /// every user's [`Hub::revocation`] does too.
    pub fn revocations_in_all(&self) -> u64 {
        self.revoked.load(Ordering::Acquire)
    }

    fn revoked_here(&self, user: i64) {
        {
            let mut revocations = self.revocations.lock().expect("revocations lock");
            *revocations.entry(user).or_insert(0) += 1;
            // Under the lock: nobody sees the user's count moved and the total not.
            self.revoked.fetch_add(1, Ordering::AcqRel);
        }
        // Their held polls wake, and see the count moved.
        if let Some(feed) = self.people.lock().expect("people lock").feeds.get(&user) {
            feed.bump();
        }
    }

    fn joined_here(&self, room: i64, user: i64) {
        let mut people = self.people.lock().expect("people lock");
        if people.feeds.contains_key(&user) {
            people.by_room.entry(room).or_default().insert(user);
        }
    }

    /// Someone came online or went: every sidebar shows it within a second (see
    /// `spawn_presence_ticker`), on every process.
    pub fn presence_changed(&self) {
        self.presence_dirty.store(true, Ordering::Relaxed);
    }

    fn tell_everyone(&self) {
        let people = self.people.lock().expect("people lock");
        for feed in people.feeds.values() {
            feed.bump();
        }
    }

    /// Once a second at most, tells every sidebar (here, and on PostgreSQL every other process)
    /// that someone came online or went.
    pub fn spawn_presence_ticker(self: &Arc<Self>, pg: Option<sqlx::PgPool>) {
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(500));
            loop {
                every.tick().await;
                let Some(hub) = hub.upgrade() else { return };
                if !hub.presence_dirty.swap(false, Ordering::Relaxed) {
                    continue;
                }
                hub.tell_everyone();
                if let Some(pg) = &pg
                    && let Err(err) = tell_others(pg, PRESENCE).await
                {
                    tracing::debug!(%err, "could not tell the other servers about presence");
                }
            }
        });
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
    /// listened room's latest change number and wake its polls.
    pub async fn resync_all(&self) {
        self.resync_rooms().await;
        self.tell_everyone();
    }

    /// Re-reads every listened room's latest change number, and catches up on what no notice
    /// announced: a plain message's is sent after its commit (`announce`), so a server that
    /// stopped in between never sent it.
    async fn resync_rooms(&self) {
        let rooms = self.listened_rooms();
        for room in rooms {
            match rooms::find_by_id(&self.pool, room).await {
                Ok(Some(r)) => self.remote_published(room, r.last_seq).await,
                Ok(None) => {}
                Err(err) => tracing::warn!(%err, room, "resync failed"),
            }
        }
    }

    /// Forgets what this process knows of a room (what its messages show changed: a user renamed).
    pub fn invalidate(&self, room: i64) {
        if let Some(feed) = self.feeds.lock().expect("hub lock").get(&room) {
            let mut window = feed.window.lock().expect("window lock");
            window.items.clear();
            window.early.clear();
        }
    }

    /// Forgets every room's rendered changes here and, on PostgreSQL, in every other process too
    /// (what they show of someone changed: their display name). Memberships did not change, so
    /// nobody is read again and no sidebar is told.
    pub async fn forget_windows_everywhere(&self, pg: Option<&sqlx::PgPool>) {
        self.forget_windows();
        self.notify(pg, FORGET_WINDOWS).await;
    }

    fn forget_windows(&self) {
        for room in self.listened_rooms() {
            self.invalidate(room);
        }
    }

    /// Tells every other process `note`, on PostgreSQL.
    async fn notify(&self, pg: Option<&sqlx::PgPool>, note: &str) {
        let Some(pg) = pg else { return };
        if let Err(err) = tell_others(pg, note).await {
            tracing::warn!(%err, note, "could not tell the other servers");
        }
    }

    /// Forgets every room's recent changes, and reads again whom the people here belong to
    /// (memberships may have gone with a user or a room). Their feeds stay — held polls wait on
    /// them — and are told, since what their sidebars show may have changed too.
    pub async fn invalidate_all(&self) {
        self.forget_windows();
        let users: Vec<i64> = {
            let mut people = self.people.lock().expect("people lock");
            people.by_room.clear();
            people.by_name.clear();
            people.feeds.keys().copied().collect()
        };
        for user in users {
            if let Err(err) = self.load_person(user).await {
                tracing::warn!(%err, user, "could not read a person's rooms again");
            }
        }
        self.tell_everyone();
    }

    /// Forgets every room's recent changes here and, on PostgreSQL, in every other process too
    /// (staff deleted or renamed users or rooms, which rendered changes show).
    pub async fn invalidate_everywhere(&self, pg: Option<&sqlx::PgPool>) {
        self.invalidate_all().await;
        self.notify(pg, FORGET).await;
    }

    /// Forgets the rooms and people nobody is listening for, so that a long-running server keeps
    /// windows only for live rooms (each can hold 256 rendered changes). A feed is in use while a
    /// poll or a send holds it; both take it under the same lock this sweep holds, so none is
    /// dropped from under them. A forgotten feed's next use starts afresh from the database.
    pub fn sweep(&self) -> usize {
        let mut feeds = self.feeds.lock().expect("hub lock");
        let before = feeds.len();
        feeds.retain(|_, feed| Arc::strong_count(feed) > 1 || feed.latest.receiver_count() > 0);
        let swept = before - feeds.len();
        drop(feeds);
        let mut people = self.people.lock().expect("people lock");
        let gone: HashSet<i64> = people
            .feeds
            .iter()
            .filter(|(_, f)| {
                let idle = crate::now_ms() - f.last_used.load(Ordering::Relaxed);
                Arc::strong_count(f) == 1
                    && f.changed.receiver_count() == 0
                    && idle > PERSON_KEPT.as_millis() as i64
            })
            .map(|(id, _)| *id)
            .collect();
        if !gone.is_empty() {
            people.feeds.retain(|id, _| !gone.contains(id));
            people.by_name.retain(|_, id| !gone.contains(id));
            for members in people.by_room.values_mut() {
                members.retain(|id| !gone.contains(id));
            }
            people.by_room.retain(|_, m| !m.is_empty());
        }
        swept
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
        // Set before the wake-ups: a poll that subscribed after them sees it on its first look.
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.send_replace(1);
        let rooms: Vec<_> = self
            .feeds
            .lock()
            .expect("hub lock")
            .values()
            .cloned()
            .collect();
        for feed in rooms {
            feed.latest.send_modify(|_| {});
        }
        let people: Vec<_> = (self.people.lock().expect("people lock").feeds)
            .values()
            .cloned()
            .collect();
        for feed in people {
            feed.changed.send_modify(|_| {});
        }
    }

    /// Whether `after` is beyond the newest change `room` ever had: a cursor from before the
    /// database was restored from a backup, or from a room deleted and made again under its name.
    /// Such a poll would wait for change numbers the room will only reach much later, missing
    /// everything until then. (On PostgreSQL this process may not have heard of the newest yet,
    /// so a cursor beyond what it knows is checked against the database.) A missing room has had
    /// no change; a failed read says no.
    async fn never_reached(&self, room: i64, after: i64) -> bool {
        match Box::pin(rooms::find_by_id(&self.pool, room)).await {
            Ok(found) => after > found.map_or(0, |r| r.last_seq),
            Err(_) => false,
        }
    }

    /// The changes of `room` after `after`, and whether the listener's sidebar changed: at once if
    /// there are any, else as soon as there are, else an empty answer when `hold` has passed or
    /// the server shuts down. A sidebar change is answered at most once per `FEED_PACE_MS`. With
    /// no room, the poll is the listener's sidebar alone.
    pub async fn poll(
        &self,
        room: Option<i64>,
        after: i64,
        who: Listener,
        hold: Duration,
    ) -> sqlx::Result<Answer> {
        let deadline = Instant::now() + hold;
        // What reads the database before the wait (first reads, a catch-up) is boxed where it
        // happens: the state kept for the wait is then a few pointers, not those futures.
        let feed = match room {
            Some(room) => Some(self.ready_feed(room).await?),
            None => None,
        };
        // A client that did not say when it got its sidebar (not a page) has no feed to wait on.
        let person = match who.feed_since {
            i64::MAX => None,
            _ => Some(self.ready_person(who.user).await?),
        };
        let _holding = person
            .as_deref()
            .map(|p| Holding::new(p, room.unwrap_or(0)));
        let mut latest = feed.as_ref().map(|f| f.latest.subscribe());
        // Subscribed before the first look, so a change or a call signal after the look wakes
        // the wait. A poll with neither a room nor a person waits on `stop` in its place, so
        // that shutting down wakes it too; it is never due (`since` is `i64::MAX`).
        let mut mine = match (&person, &latest) {
            (Some(p), _) => Some(p.changed.subscribe()),
            (None, None) => Some(self.stop.subscribe()),
            (None, Some(_)) => None,
        };
        let since = who.feed_since;
        let paced = || crate::now_ms() >= since.saturating_add(FEED_PACE_MS);
        // Change numbers up to `checked` have been looked for. Normally that is `after`; when
        // the changes above it were deleted messages, what is left to wait for is a newer one.
        let mut checked = after;
        let mut reload_check = who.reload_ahead;
        loop {
            if let (Some(feed), Some(latest), Some(room)) = (&feed, &mut latest, room) {
                let upto = *latest.borrow_and_update();
                // Only what the database says is beyond the room: `latest` may lag it.
                if std::mem::take(&mut reload_check)
                    && after > upto
                    && self.never_reached(room, after).await
                {
                    return Ok(Answer {
                        reload: true,
                        ..Answer::default()
                    });
                }
                if upto > checked {
                    let cached = feed.window.lock().expect("window lock").after(after, upto);
                    let (changes, cursor) = match cached {
                        Some(found) => {
                            let cursor = found.last().map_or(after, |m| m.seq);
                            (found, cursor)
                        }
                        None => Box::pin(self.read_after(room, after)).await?,
                    };
                    if !changes.is_empty() {
                        let feed = mine.as_ref().is_some_and(|m| *m.borrow() >= since) && paced();
                        return Ok(self.with_signals(
                            Answer {
                                changes,
                                cursor,
                                feed,
                                ..Answer::default()
                            },
                            &who,
                        ));
                    }
                    checked = upto.max(cursor);
                }
            }
            let feed_due = mine
                .as_mut()
                .is_some_and(|m| *m.borrow_and_update() >= since);
            if let Some(cursor) = &who.signals
                && self.switchboard.any_after(who.user, cursor)
            {
                return Ok(self.with_signals(
                    Answer {
                        cursor: after,
                        feed: feed_due && paced(),
                        ..Answer::default()
                    },
                    &who,
                ));
            }
            if feed_due && paced() {
                return Ok(self.with_signals(
                    Answer {
                        cursor: after,
                        feed: true,
                        ..Answer::default()
                    },
                    &who,
                ));
            }
            if self.stopping.load(Ordering::SeqCst) {
                return Ok(Answer::default());
            }
            // One timer: the end of the hold, or, with a sidebar change waiting for its pace, the
            // moment it may go (each timer is a few hundred bytes of every held poll).
            let wake_at = match feed_due {
                true => {
                    let wait = since
                        .saturating_add(FEED_PACE_MS)
                        .saturating_sub(crate::now_ms())
                        .clamp(0, FEED_PACE_MS);
                    deadline.min(Instant::now() + Duration::from_millis(wait as u64))
                }
                false => deadline,
            };
            // Only numbers cross the awaits, so the future stays Send.
            let woke = tokio::select! {
                // Any new value, even one not past `checked` (or none, when stopping): the
                // loop looks again.
                changed = async {
                    match &mut latest {
                        Some(latest) => latest.changed().await,
                        None => std::future::pending().await,
                    }
                } => changed.is_ok(),
                changed = async {
                    match &mut mine {
                        Some(mine) => mine.changed().await,
                        None => std::future::pending().await,
                    }
                // While a sidebar waits for its pace, only a page that takes calls still listens
                // (a call signal must not wait), and a poll with no room (nothing else would wake
                // it when the server stops); a sidebar change then just waits again.
                }, if !feed_due || who.signals.is_some() || latest.is_none() => changed.is_ok(),
                _ = tokio::time::sleep_until(wake_at) => wake_at < deadline,
            };
            if !woke {
                return Ok(Answer::default());
            }
        }
    }

    /// Whatever a poll answers, it brings the person's call signals with it.
    fn with_signals(&self, mut answer: Answer, who: &Listener) -> Answer {
        if let Some(cursor) = &who.signals {
            let (found, next) = self.switchboard.after(who.user, cursor);
            answer.signals = found;
            answer.signal_cursor = Some(next);
        }
        answer
    }

    async fn read_after(&self, room: i64, after: i64) -> sqlx::Result<(Vec<Arc<Rendered>>, i64)> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let (changes, cursor) = messages::changes_after(&self.pool, room, after, BATCH).await?;
        let mut first = after + 1;
        let rendered = changes
            .iter()
            .map(|change| {
                let item = self.render(change, first);
                first = item.seq + 1;
                item
            })
            .collect();
        Ok((rendered, cursor))
    }

    /// On PostgreSQL: LISTEN for changes made through every process, for as long as the server runs.
    pub fn spawn_listener(self: &Arc<Self>, pg: sqlx::PgPool) {
        let _ = self.pg.set(pg.clone());
        self.spawn_announcer(pg.clone());
        self.spawn_resync();
        self.switchboard.spawn_sender(pg.clone(), CHANNEL);
        self.spawn_notify_probe(pg.clone());
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

    /// Every `RESYNC_EVERY`, `resync_rooms`: for as long as the hub lives.
    fn spawn_resync(self: &Arc<Self>) {
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval_at(Instant::now() + RESYNC_EVERY, RESYNC_EVERY);
            loop {
                every.tick().await;
                let Some(hub) = hub.upgrade() else { return };
                hub.resync_rooms().await;
            }
        });
    }

    /// Whether this process announces the plain messages it stores itself (PostgreSQL, once
    /// listening): see `messages::Draft::announce_after`.
    pub fn announces(&self) -> bool {
        self.announcer.get().is_some()
    }

    /// Tells the other processes (PostgreSQL) of change `seq` of `room`, committed by a statement
    /// that did not (`messages::Draft::announced_by_sender`). Queued: see `spawn_announcer`.
    pub fn announce(&self, room: i64, seq: i64) {
        if let Some(announcer) = self.announcer.get() {
            let _ = announcer.send((room, seq));
        }
    }

    /// Sends what `announce` queued: whatever is queued by the time the last NOTIFY is done goes
    /// in the next, in one transaction that does not wait for its commit to reach the disk (a
    /// notification is not kept anyway), on a connection of its own. So sends do not queue
    /// behind each other's disk flush for the notification lock, as they did when each sending
    /// transaction NOTIFYed. What cannot be sent is tried again until it is; what a server that
    /// stopped before announcing never sent, the others find within `RESYNC_EVERY`.
    fn spawn_announcer(self: &Arc<Self>, pg: sqlx::PgPool) {
        use sqlx::Connection;
        let (queue, mut queued) = tokio::sync::mpsc::unbounded_channel::<(i64, i64)>();
        if self.announcer.set(queue).is_err() {
            return;
        }
        let options = pg.connect_options();
        drop(pg);
        tokio::spawn(async move {
            let mut conn: Option<sqlx::PgConnection> = None;
            let mut notes: Vec<String> = Vec::new();
            let mut backoff = Duration::from_millis(100);
            loop {
                if notes.is_empty() {
                    let Some((room, seq)) = queued.recv().await else {
                        return;
                    };
                    notes.push(format!("{room}:{seq}"));
                }
                while let Ok((room, seq)) = queued.try_recv() {
                    notes.push(format!("{room}:{seq}"));
                }
                if conn.is_none() {
                    match sqlx::PgConnection::connect_with(&options).await {
                        Ok(c) => conn = Some(c),
                        Err(err) => tracing::warn!(%err, "could not connect to announce changes"),
                    }
                }
                let sent = match conn.as_mut() {
                    Some(c) => announce_all(c, &notes).await,
                    None => Err(sqlx::Error::PoolClosed),
                };
                match sent {
                    Ok(()) => {
                        notes.clear();
                        backoff = Duration::from_millis(100);
                    }
                    Err(err) => {
                        tracing::warn!(%err, queued = notes.len(), "announcing changes failed; trying again");
                        conn = None;
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }

    /// On PostgreSQL: every `PROBE_EVERY`, a NOTIFY to ourselves, timed from its sending to its
    /// arrival on the LISTEN connection (`parley_notify_lag_seconds`). It queues behind every
    /// other notification, so a listener falling behind shows as lag.
    fn spawn_notify_probe(self: &Arc<Self>, pg: sqlx::PgPool) {
        let hub = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(PROBE_EVERY);
            let mut n: u64 = 0;
            loop {
                every.tick().await;
                let Some(hub) = hub.upgrade() else { return };
                // The connection first, so that waiting for one is not counted as lag.
                let Ok(mut conn) = pg.acquire().await else {
                    continue;
                };
                n += 1;
                let payload = format!("{PING}{}:{n}", hub.probe_origin);
                *hub.probe.lock().expect("probe lock") = Some((n, std::time::Instant::now()));
                if let Err(err) = sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(CHANNEL)
                    .bind(payload)
                    .execute(&mut *conn)
                    .await
                {
                    tracing::debug!(%err, "NOTIFY probe failed");
                }
            }
        });
    }

    /// A probe came back: ours (from this process) is timed.
    fn probe_returned(&self, probe: &str) {
        let Some((origin, n)) = probe.split_once(':') else {
            return;
        };
        if origin.parse() != Ok(self.probe_origin) {
            return;
        }
        let mut sent = self.probe.lock().expect("probe lock");
        if let Some((expected, at)) = *sent
            && n.parse() == Ok(expected)
        {
            self.metrics.notify_lag.observe(at.elapsed().as_secs_f64());
            *sent = None;
        }
    }

    async fn listen(self: &Arc<Self>, pg: &sqlx::PgPool) -> sqlx::Result<()> {
        let mut listener = sqlx::postgres::PgListener::connect_with(pg).await?;
        listener.listen(CHANNEL).await?;
        // Whatever was sent while we were not listening would otherwise wait for the next send.
        self.resync_all().await;
        tracing::info!("listening for changes from other servers");
        loop {
            let note = listener.recv().await?;
            match note.payload() {
                FORGET => {
                    let hub = Arc::clone(self);
                    tokio::spawn(async move { hub.invalidate_all().await });
                    continue;
                }
                FORGET_WINDOWS => {
                    self.forget_windows();
                    continue;
                }
                PRESENCE => {
                    self.tell_everyone();
                    continue;
                }
                other => {
                    if let Some(probe) = other.strip_prefix(PING) {
                        self.probe_returned(probe);
                        continue;
                    }
                    if let Some(signal) = other.strip_prefix(signals::NOTE) {
                        if let Some(user) = self.switchboard.received(signal) {
                            self.signalled(user);
                        }
                        continue;
                    }
                    if let Some(user) = other.strip_prefix(REVOKE) {
                        if let Ok(user) = user.parse() {
                            self.revoked_here(user);
                        }
                        continue;
                    }
                    if let Some((room, user)) =
                        other.strip_prefix(JOIN).and_then(|j| j.split_once(':'))
                    {
                        if let (Ok(room), Ok(user)) = (room.parse(), user.parse()) {
                            self.joined_here(room, user);
                        }
                        continue;
                    }
                    if let Some((room, user)) =
                        other.strip_prefix(LEFT).and_then(|l| l.split_once(':'))
                    {
                        if let (Ok(room), Ok(user)) = (room.parse(), user.parse()) {
                            self.left_here(room, user);
                        }
                        continue;
                    }
                }
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

/// Sends every note on the channel every process LISTENs on, in one transaction whose commit
/// does not wait for the disk.
async fn announce_all(conn: &mut sqlx::PgConnection, notes: &[String]) -> sqlx::Result<()> {
    sqlx::query(
        "SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, note)
         FROM unnest($2::text[]) AS note",
    )
    .bind(CHANNEL)
    .bind(notes)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Sends `note` on the channel every process LISTENs on.
async fn tell_others(pg: &sqlx::PgPool, note: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(note)
        .execute(pg)
        .await
        .map(|_| ())
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
            first: seq,
            seq,
            message: seq,
            created: true,
            html: Arc::from(seq.to_string()),
        })
    }

    const NOBODY: Listener = Listener {
        user: 1,
        reload_ahead: false,
        feed_since: i64::MAX,
        signals: None,
    };

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
        let hub = Hub::new(pool, |c| c.at().to_string(), Default::default());
        drop(hub.feed(1));
        let held = hub.feed(2);
        let listening = hub.feed(3).latest.subscribe();
        assert_eq!(hub.sweep(), 1, "only the idle room goes");
        assert_eq!(hub.sweep(), 0);
        drop((held, listening));
        assert_eq!(hub.sweep(), 2);
    }

    fn message(room: i64, seq: i64) -> Change {
        Change::New(messages::Message {
            id: seq,
            room_id: room,
            seq,
            changed_seq: seq,
            author_id: 1,
            author: "alice".into(),
            author_display: String::new(),
            author_avatar: String::new(),
            body: format!("message {seq}"),
            created_ms: 0,
            edited_ms: None,
            mentions: String::new(),
            kind: String::new(),
            reactions: Vec::new(),
            attachments: Vec::new(),
        })
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
        (
            Hub::new(db.pool.clone(), |c| c.at().to_string(), Default::default()),
            db,
            dir,
        )
    }

    /// Alice, and the room `general` she made: their ids.
    async fn alice_in_general(db: &crate::db::Db) -> (i64, i64) {
        use crate::domain::{RoomName, Username};
        let name = Username::parse("alice").unwrap();
        let alice = users::create(&db.pool, &name, "x", false).await.unwrap();
        let general = RoomName::parse("general").unwrap();
        let room = rooms::create_or_get_public(&db.pool, &general, alice)
            .await
            .unwrap()
            .id;
        (alice, room)
    }

    fn alice_author(id: i64) -> messages::Author<'static> {
        messages::Author {
            id,
            username: "alice",
            display_name: "",
            avatar: "",
        }
    }

    #[tokio::test]
    async fn a_notified_message_fills_the_gap_a_later_local_one_left() {
        use crate::domain::MessageBody;
        let (hub, db, _dir) = hub_and_db().await;
        let (alice, room) = alice_in_general(&db).await;
        let author = alice_author(alice);
        let mut stored = Vec::new();
        for text in ["one", "two", "three"] {
            let body = MessageBody::parse(text).unwrap();
            let draft = messages::Draft::text(room, author, &body);
            let (m, _) = messages::insert(&db.pool, db.engine, &draft).await.unwrap();
            stored.push(Change::New(m));
        }
        // This process sent 1 and 3; 2 came from another process, whose NOTIFY arrives last.
        hub.published(&stored[0]);
        hub.published(&stored[2]);
        hub.remote_published(room, 2).await;
        let found = hub
            .poll(Some(room), 1, NOBODY, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(seqs(&found.changes), vec![2, 3]);
        assert_eq!(found.cursor, 3);
        assert_eq!(
            hub.poll_reads(),
            0,
            "served from the window, which has no gap"
        );
    }

    #[tokio::test]
    async fn a_catch_up_that_read_ahead_of_its_notice_wakes_polls_for_what_it_read() {
        use crate::domain::MessageBody;
        let (hub, db, _dir) = hub_and_db().await;
        let (alice, room) = alice_in_general(&db).await;
        let author = alice_author(alice);
        // A poll here made the room's feed before anything was sent.
        let feed = hub.ready_feed(room).await.unwrap();
        // Another process sent two messages; the second committed before this process read what
        // the NOTIFY of the first announced, so that read brought both into the window.
        for text in ["one", "two"] {
            let body = MessageBody::parse(text).unwrap();
            let draft = messages::Draft::text(room, author, &body);
            messages::insert(&db.pool, db.engine, &draft).await.unwrap();
        }
        hub.remote_published(room, 1).await;
        hub.remote_published(room, 2).await;
        let found = hub
            .poll(Some(room), 1, NOBODY, Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!(
            seqs(&found.changes),
            vec![2],
            "the second message is not lost"
        );
        drop(feed);
    }

    #[tokio::test]
    async fn a_resync_finds_a_message_nobody_announced() {
        use crate::domain::MessageBody;
        let (hub, db, _dir) = hub_and_db().await;
        let (alice, room) = alice_in_general(&db).await;
        let feed = hub.ready_feed(room).await.unwrap();
        // Stored by a server that stopped before it could announce it.
        let author = alice_author(alice);
        let body = MessageBody::parse("unannounced").unwrap();
        let draft = messages::Draft::text(room, author, &body);
        messages::insert(&db.pool, db.engine, &draft).await.unwrap();
        hub.resync_rooms().await;
        let found = hub
            .poll(Some(room), 0, NOBODY, Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!(seqs(&found.changes), vec![1]);
        drop(feed);
    }

    #[tokio::test]
    async fn a_thousand_woken_polls_read_nothing_from_the_database() {
        let (hub, _dir) = hub_on_a_database().await;
        hub.published(&message(1, 1));
        let polls: Vec<_> = (0..1000)
            .map(|_| {
                let hub = hub.clone();
                tokio::spawn(
                    async move { hub.poll(Some(1), 1, NOBODY, Duration::from_secs(5)).await },
                )
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        hub.published(&message(1, 2));
        for poll in polls {
            assert_eq!(seqs(&poll.await.unwrap().unwrap().changes), vec![2]);
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
        let found = hub
            .poll(Some(1), 3, NOBODY, Duration::from_millis(300))
            .await
            .unwrap();
        assert!(found.changes.is_empty());
        assert_eq!(
            hub.poll_reads(),
            1,
            "one look, then a wait for something newer"
        );
    }

    #[test]
    fn window_serves_runs_folded_by_a_catch_up_read_only_from_their_edges() {
        let mut w = Window::default();
        w.add(m(1));
        // A catch-up read folded changes 2..=4 into one item (say, two edits of one message).
        w.add(Arc::new(Rendered {
            first: 2,
            seq: 4,
            message: 1,
            created: false,
            html: Arc::from("edited 1"),
        }));
        w.add(m(5));
        assert_eq!(seqs(&w.after(1, 5).unwrap()), vec![4, 5]);
        assert_eq!(seqs(&w.after(4, 5).unwrap()), vec![5]);
        assert!(w.after(2, 5).is_none(), "2 is inside the folded run");
    }

    #[test]
    fn a_deleted_message_leaves_no_text_in_the_window() {
        let mut w = Window::default();
        w.add(m(1));
        w.add(m(2));
        w.add(Arc::new(Rendered {
            first: 3,
            seq: 3,
            message: 0,
            created: false,
            html: Arc::from("delete 1"),
        }));
        w.deleted(1, 3);
        let all = w.after(0, 3).unwrap();
        assert_eq!(seqs(&all), vec![1, 2, 3], "the run stays whole");
        assert_eq!(&*all[0].html, "", "message 1's text is gone");
        assert_eq!(&*all[1].html, "2");
    }

    #[test]
    fn a_message_published_after_its_deletion_arrives_blank() {
        let mut w = Window::default();
        w.add(m(1));
        // Deletion (3) of message 2 published before message 2 itself.
        w.add(Arc::new(Rendered {
            first: 3,
            seq: 3,
            message: 0,
            created: false,
            html: Arc::from("delete 2"),
        }));
        w.deleted(2, 3);
        w.add(m(2));
        let all = w.after(0, 3).unwrap();
        assert_eq!(seqs(&all), vec![1, 2, 3]);
        assert_eq!(&*all[1].html, "", "message 2's text never enters");
    }

    #[tokio::test]
    async fn an_edit_rewrites_what_the_window_holds_of_the_message() {
        fn bodies(c: &Change) -> String {
            match c {
                Change::New(m) | Change::Updated(m) => m.body.clone(),
                _ => String::new(),
            }
        }
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .connect_lazy("sqlite::memory:")
            .unwrap();
        let hub = Hub::new(pool, bodies, Default::default());
        hub.published(&message(1, 1));
        let Change::New(mut edited) = message(1, 1) else {
            unreachable!()
        };
        edited.body = "the new text".into();
        edited.changed_seq = 2;
        hub.published(&Change::Updated(edited));
        let feed = hub.feed(1);
        let window = feed.window.lock().unwrap();
        let all = window.after(0, 2).unwrap();
        assert_eq!(seqs(&all), vec![1, 2]);
        // The creation now shows the message as it is, so a poll from before it never sees the
        // old text.
        assert_eq!(&*all[0].html, "the new text");
        assert_eq!(&*all[1].html, "the new text");
    }

    /// A poll from before a message gets its creation in its latest form, reactions included:
    /// the reactions fragments before the edit that made that form are superseded, and sending
    /// them too would repeat reactions the page already shows.
    #[tokio::test]
    async fn an_edit_blanks_the_reactions_it_supersedes_in_the_window() {
        fn shown(c: &Change) -> String {
            match c {
                Change::New(m) | Change::Updated(m) => m.body.clone(),
                Change::Reacted { reactions, .. } => format!("{} reactions", reactions.len()),
                Change::Deleted { .. } => String::new(),
            }
        }
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .connect_lazy("sqlite::memory:")
            .unwrap();
        let hub = Hub::new(pool, shown, Default::default());
        let reacted = |at| Change::Reacted {
            room_id: 1,
            seq: 1,
            at,
            reactions: vec![messages::Reaction {
                emoji: "👍".into(),
                users: vec!["bob".into()],
            }],
        };
        hub.published(&message(1, 1));
        hub.published(&reacted(2));
        let Change::New(mut edited) = message(1, 1) else {
            unreachable!()
        };
        edited.body = "the new text".into();
        edited.changed_seq = 3;
        hub.published(&Change::Updated(edited));
        hub.published(&reacted(4));
        let feed = hub.feed(1);
        let window = feed.window.lock().unwrap();
        let all = window.after(0, 4).unwrap();
        assert_eq!(seqs(&all), vec![1, 2, 3, 4]);
        let html: Vec<&str> = all.iter().map(|r| &*r.html).collect();
        assert_eq!(
            html,
            ["the new text", "", "the new text", "1 reactions"],
            "the reaction before the edit is in the edited message; the one after it stays"
        );
    }

    /// A hub over a database with alice (user 1) and bob (user 2).
    async fn alice_and_bob() -> (Arc<Hub>, crate::db::Db, tempfile::TempDir) {
        let (hub, db, dir) = hub_and_db().await;
        for name in ["alice", "bob"] {
            let name = crate::domain::Username::parse(name).unwrap();
            users::create(&db.pool, &name, "x", false).await.unwrap();
        }
        (hub, db, dir)
    }

    #[tokio::test]
    async fn a_person_reading_the_room_is_not_woken_for_it_but_one_elsewhere_is() {
        let (hub, _db, _dir) = alice_and_bob().await;
        let since = crate::now_ms() + 1;
        let bob = Listener {
            user: 2,
            reload_ahead: false,
            feed_since: since,
            signals: None,
        };
        hub.joined(1, 2);
        let reading = tokio::spawn({
            let (hub, bob) = (hub.clone(), bob.clone());
            async move { hub.poll(Some(1), 0, bob, Duration::from_millis(600)).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        hub.joined(1, 2);
        hub.published(&message(1, 1));
        let answer = reading.await.unwrap().unwrap();
        assert_eq!(seqs(&answer.changes), vec![1]);
        assert!(!answer.feed, "the room's change is on bob's screen already");
        // Now bob is on another page: the next message changes his sidebar.
        let elsewhere = tokio::spawn({
            let hub = hub.clone();
            async move { hub.poll(None, 0, bob, Duration::from_secs(3)).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        hub.published(&message(1, 2));
        let answer = elsewhere.await.unwrap().unwrap();
        assert!(answer.feed);
    }

    #[tokio::test]
    async fn a_room_someone_left_no_longer_wakes_their_sidebar() {
        let (hub, _db, _dir) = alice_and_bob().await;
        let bob = Listener {
            user: 2,
            reload_ahead: false,
            feed_since: crate::now_ms() + 1,
            signals: None,
        };
        let elsewhere = |hold: Duration| {
            let (hub, bob) = (hub.clone(), bob.clone());
            tokio::spawn(async move { hub.poll(None, 0, bob, hold).await })
        };
        // Members are kept for people whose feed is here: their first poll makes it. Held past
        // the sidebar's pace (`FEED_PACE_MS`), when a change would be answered.
        let waiting = elsewhere(Duration::from_millis(FEED_PACE_MS as u64 + 600));
        tokio::time::sleep(Duration::from_millis(100)).await;
        hub.joined(1, 2);
        hub.left(1, 2);
        hub.published(&message(1, 1));
        let answer = waiting.await.unwrap().unwrap();
        assert!(!answer.feed, "a room bob left changed his sidebar");
        // Back in it, he is told again.
        hub.joined(1, 2);
        let waiting = elsewhere(Duration::from_secs(3));
        tokio::time::sleep(Duration::from_millis(100)).await;
        hub.published(&message(1, 2));
        assert!(waiting.await.unwrap().unwrap().feed);
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
