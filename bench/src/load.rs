//! Listeners holding long-polls, senders posting on a schedule, and the bookkeeping that turns
//! their timestamps into delivery latency, losses, duplicates and bytes per delivery.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::bail;
use crate::browser::Session;
use crate::http::{Conn, Result, Target, build_request, source_ip};
use crate::messages;
use crate::server::Server;

/// The server holds a poll at most 30 s; anything longer is a hung server.
const POLL_LIMIT: Duration = Duration::from_secs(40);
const SEND_LIMIT: Duration = Duration::from_secs(15);
/// Connections opened at once while setting up listeners: enough to be quick, few enough not to
/// overflow the server's accept backlog (a dropped SYN costs a 1 s retransmit).
const CONNECT_CONCURRENCY: usize = 128;
/// A server answering 200 with no message in it this many times in a row is spinning the client.
const MAX_EMPTY_ANSWERS: u32 = 50;

/// What change number `s` of a run is. Fan-out runs only send; the changes scenario mixes in
/// edits and reactions, which reach listeners as out-of-band swaps of older messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Send,
    /// Edit the message of send `of` (the new text carries this change's number).
    Edit {
        of: u32,
    },
    /// Add reaction number `k` (an emoji it has not had yet) to the message of send `of`.
    React {
        of: u32,
        k: usize,
    },
}

/// The emoji reactions are made with, one after another on the same message.
pub const EMOJI: [&str; 8] = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀"];

pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn sends_only(n: usize) -> Plan {
        Plan {
            steps: vec![Step::Send; n],
        }
    }

    /// 70% sends, 20% edits, 10% reactions, interleaved. An edit or a reaction is of a message
    /// sent at least ten changes earlier (half a second at 20 a second), so it exists by then.
    /// No message is edited twice: two edits of one message 50 ms apart reach a listener that
    /// polls slower than that as one (its latest text, rightly), and could not be told apart
    /// from a lost change.
    pub fn mixed(n: usize) -> Plan {
        let mut steps = Vec::with_capacity(n);
        let mut reactions: std::collections::HashMap<u32, usize> = Default::default();
        let mut edited = std::collections::HashSet::new();
        for s in 0..n {
            let sent_before = |skip: &std::collections::HashSet<u32>| {
                steps
                    .iter()
                    .take(s.saturating_sub(10))
                    .enumerate()
                    .rev()
                    .find(|(i, step)| **step == Step::Send && !skip.contains(&(*i as u32)))
                    .map(|(i, _)| i as u32)
            };
            let target = sent_before(&std::collections::HashSet::new());
            let unedited = sent_before(&edited);
            let step = match (s % 10, target, unedited) {
                (7 | 8, _, Some(of)) => {
                    edited.insert(of);
                    Step::Edit { of }
                }
                (9, Some(of), _) if reactions.get(&of).copied().unwrap_or(0) < EMOJI.len() => {
                    let k = reactions.entry(of).or_default();
                    *k += 1;
                    Step::React { of, k: *k - 1 }
                }
                _ => Step::Send,
            };
            steps.push(step);
        }
        Plan { steps }
    }

    fn is_mixed(&self) -> bool {
        self.steps.iter().any(|s| *s != Step::Send)
    }

    /// The change that gave the message of send `of` its reaction number `k`.
    fn reaction(&self, of: u32, k: usize) -> Option<u32> {
        self.steps
            .iter()
            .position(|s| *s == Step::React { of, k })
            .map(|s| s as u32)
    }
}

/// Counters every listener updates, read by the controller while the load runs.
pub struct Shared {
    pub epoch: Instant,
    /// First-time deliveries of bench messages, over all listeners.
    pub delivered: AtomicU64,
    /// Listeners connected; each writes its first poll right after connecting.
    pub armed: AtomicUsize,
    /// Polls written and not answered yet: the polls the server is holding.
    pub pending: AtomicUsize,
    /// Listeners that stopped on an error.
    pub failed: AtomicUsize,
}

impl Shared {
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
}

/// What one listener saw.
#[derive(Default)]
pub struct ListenerOutcome {
    pub room: usize,
    /// (send number, receive time in µs since the epoch).
    pub deliveries: Vec<(u32, u64)>,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub foreign: u64,
    pub bytes: u64,
    pub no_content: u64,
    /// Answers that brought the person's sidebar (the feed).
    pub sidebars: u64,
    pub error: Option<String>,
    /// The first few duplicated or out-of-order changes, with the answer they came in: what
    /// to look at when those counts are not zero.
    pub notes: Vec<String>,
}

struct ListenerSpec {
    plan: Arc<Plan>,
    page: bool,
    target: Target,
    source: std::net::IpAddr,
    room_index: usize,
    room: String,
    cookie: Arc<str>,
    cursor: i64,
    sends: usize,
}

async fn listen(
    spec: ListenerSpec,
    shared: Arc<Shared>,
    gate: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> ListenerOutcome {
    let mut out = ListenerOutcome {
        room: spec.room_index,
        ..Default::default()
    };
    let mut conn = Conn::new(spec.target.addr, Some(spec.source));
    {
        let Ok(_permit) = gate.acquire().await else {
            return out;
        };
        if let Err(e) = conn.connect().await {
            out.error = Some(e.0);
            shared.failed.fetch_add(1, Ordering::Relaxed);
            return out;
        }
    }
    shared.armed.fetch_add(1, Ordering::Relaxed);

    let mut seen = vec![false; spec.sends];
    let mut known = Known::default();
    let mut last_id = spec.cursor;
    let mut sidebar_at = spec.page.then(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    });
    let mut empty_in_a_row = 0;
    // Bounded: every message is delivered at most once per poll, and idle polls end after 30 s.
    let max_polls = spec.sends as u64 * 4 + 10_000;
    let mut polls = 0;
    while polls < max_polls && !*stop.borrow() {
        let path = match sidebar_at {
            Some(t) => format!("/rooms/{}/messages?after={last_id}&t={t}", spec.room),
            None => format!("/rooms/{}/messages?after={last_id}", spec.room),
        };
        let req = build_request("GET", &path, &spec.target, &spec.cookie, true, None);
        polls += 1;
        shared.pending.fetch_add(1, Ordering::Relaxed);
        let res = tokio::select! {
            biased;
            _ = stop.changed() => {
                shared.pending.fetch_sub(1, Ordering::Relaxed);
                break;
            }
            r = conn.request(&req, POLL_LIMIT) => r,
        };
        shared.pending.fetch_sub(1, Ordering::Relaxed);
        // The moment the listener has the message: the whole response is read.
        let now = shared.now_us();
        let resp = match res {
            Ok(r) => r,
            Err(e) => {
                out.error = Some(format!("long-poll {path}: {e}"));
                break;
            }
        };
        if let (Some(t), Some(new)) = (sidebar_at.as_mut(), messages::sidebar_time(&resp.body)) {
            *t = new;
        }
        if messages::has_sidebar(&resp.body) {
            out.sidebars += 1;
        }
        match resp.status {
            200 if spec.plan.is_mixed() => {
                let seen_before = out.deliveries.len() + out.duplicates as usize;
                changes(
                    &spec.plan, &resp.body, &mut known, &mut seen, &mut out, &shared, now,
                );
                let counted = out.deliveries.len() + out.duplicates as usize;
                if counted == seen_before && !messages::has_sidebar(&resp.body) {
                    empty_in_a_row += 1;
                    if empty_in_a_row >= MAX_EMPTY_ANSWERS {
                        out.error = Some(format!(
                            "long-poll {path} answered 200 without a change {MAX_EMPTY_ANSWERS} times in a row: {}",
                            resp.snippet()
                        ));
                        break;
                    }
                } else {
                    empty_in_a_row = 0;
                }
                // A cursor never goes back; an answer with only the person's sidebar in it
                // (the feed) keeps it where it was.
                let changed = counted > seen_before;
                match messages::cursor(&resp.body) {
                    Some(cursor) if cursor > last_id => last_id = cursor,
                    Some(cursor) if cursor < last_id || changed => out.out_of_order += 1,
                    _ => {}
                }
            }
            200 => {
                let found = messages::parse(&resp.body);
                if found.is_empty() && messages::has_sidebar(&resp.body) {
                    continue; // the person's sidebar (the feed), nothing of the room
                }
                if found.is_empty() {
                    empty_in_a_row += 1;
                    if empty_in_a_row >= MAX_EMPTY_ANSWERS {
                        out.error = Some(format!(
                            "long-poll {path} answered 200 without any data-message-id {MAX_EMPTY_ANSWERS} times in a row: {}",
                            resp.snippet()
                        ));
                        break;
                    }
                    continue;
                }
                empty_in_a_row = 0;
                for f in found {
                    match f.seq {
                        Some(s) if (s as usize) < spec.sends => {
                            if seen[s as usize] {
                                out.duplicates += 1;
                            } else {
                                seen[s as usize] = true;
                                if f.id <= last_id {
                                    out.out_of_order += 1;
                                }
                                out.deliveries.push((s, now));
                                shared.delivered.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        _ => out.foreign += 1,
                    }
                    last_id = last_id.max(f.id);
                }
            }
            204 => out.no_content += 1,
            s => {
                out.error = Some(format!("long-poll {path} answered {s}: {}", resp.snippet()));
                break;
            }
        }
    }
    out.bytes = conn.bytes_read + conn.bytes_written;
    if out.error.is_some() {
        shared.failed.fetch_add(1, Ordering::Relaxed);
    }
    out
}

/// What one listener has seen of each message (by the server's id): which send it is, the
/// newest text (a change number) and how many reactions it showed.
#[derive(Default)]
pub struct Known {
    messages: std::collections::HashMap<i64, Version>,
    /// The newest send seen: new messages must come in the order they were sent.
    last_send: Option<u32>,
}

#[derive(Clone, Copy)]
struct Version {
    send: u32,
    text: u32,
    reactions: usize,
}

/// Counts the changes of a mixed run in one answer. A message element is its send, or the
/// send and an edit when its text carries the edit's number; the reactions it shows (inside it,
/// or in a reactions fragment) are the reactions of its send, by how many there are.
///
/// A listener that fell behind may get several changes of one message as one element in its
/// latest form (a catch-up from the database gives each message once, where it stands in the
/// conversation): every change that form stands for counts as delivered then. What counts as
/// duplicated is a version of a message (its text and reactions) seen before; out of order, a
/// new message older than one already seen.
fn changes(
    plan: &Plan,
    body: &[u8],
    known: &mut Known,
    seen: &mut [bool],
    out: &mut ListenerOutcome,
    shared: &Shared,
    now: u64,
) {
    let answer: Vec<Option<u32>> = messages::parse(body).iter().map(|f| f.seq).collect();
    let note = |out: &mut ListenerOutcome, what: &str, s: u32, last: Option<u32>| {
        if out.notes.len() < 3 {
            let step = plan.steps.get(s as usize);
            out.notes.push(format!(
                "{what} change {s} ({step:?}) after {last:?} at {:.3} s, in an answer of {answer:?}",
                now as f64 / 1e6
            ));
        }
    };
    let sends = seen.len();
    let mut deliver = |out: &mut ListenerOutcome, known: &mut Known, change: u32| {
        if seen[change as usize] {
            return false;
        }
        seen[change as usize] = true;
        if plan.steps[change as usize] == Step::Send {
            if known.last_send.is_some_and(|l| change < l) {
                out.out_of_order += 1;
                note(out, "out of order", change, known.last_send);
            }
            known.last_send = known.last_send.max(Some(change));
        }
        out.deliveries.push((change, now));
        shared.delivered.fetch_add(1, Ordering::Relaxed);
        true
    };
    // Elements and reactions fragments in document order, as the page applies them: a reaction
    // made before an edit (in the server's order) comes first, and the edited message after it
    // shows it again.
    enum Part {
        Element(messages::Found),
        Reactions(i64, usize),
    }
    let mut parts: Vec<(usize, Part)> = Vec::new();
    let mut at = 0;
    for f in messages::parse(body) {
        at = messages::element(body, f.id).map_or(at, |(e, _)| e);
        parts.push((at, Part::Element(f)));
    }
    for (at, id, shown) in messages::reactions(body) {
        parts.push((at, Part::Reactions(id, shown)));
    }
    parts.sort_by_key(|(at, _)| *at);
    let mut in_this_answer = std::collections::HashSet::new();
    for (_, part) in parts {
        let f = match part {
            Part::Element(f) => f,
            Part::Reactions(id, shown) => {
                let Some(mut v) = known.messages.get(&id).copied() else {
                    out.foreign += 1;
                    continue;
                };
                let mut new = false;
                for k in 0..shown {
                    if let Some(r) = plan.reaction(v.send, k) {
                        new |= deliver(out, known, r);
                    }
                }
                if !new && shown <= v.reactions {
                    out.duplicates += 1;
                    note(out, "duplicated reactions of", v.send, known.last_send);
                }
                v.reactions = v.reactions.max(shown);
                known.messages.insert(id, v);
                continue;
            }
        };
        let Some(s) = f.seq.filter(|s| (*s as usize) < sends) else {
            out.foreign += 1;
            continue;
        };
        // The same element twice in one answer (a change and its catch-up) is one version.
        if !in_this_answer.insert(f.id) {
            continue;
        }
        let send = match plan.steps[s as usize] {
            Step::Edit { of } => of,
            _ => s,
        };
        let shown = messages::reactions_inside(body, f.id);
        let before = known.messages.get(&f.id).copied();
        let mut new = deliver(out, known, send);
        new |= deliver(out, known, s);
        for k in 0..shown {
            if let Some(r) = plan.reaction(send, k) {
                new |= deliver(out, known, r);
            }
        }
        let version = Version {
            send,
            text: s,
            reactions: shown,
        };
        if !new && before.is_some_and(|b| b.text == s && b.reactions == shown) {
            out.duplicates += 1;
            note(out, "duplicated", s, known.last_send);
        }
        let text = before.map_or(s, |b| b.text.max(s));
        let reactions = before.map_or(shown, |b| b.reactions.max(shown));
        known.messages.insert(
            f.id,
            Version {
                text,
                reactions,
                ..version
            },
        );
    }
}

/// When each send started and whether it was acknowledged.
pub struct SendLog {
    pub start_us: Vec<AtomicU64>,
    pub acked: Vec<AtomicBool>,
    /// The id in the POST's answer fragment, when it carries one (0 otherwise).
    pub ids: Vec<AtomicI64>,
    pub errors: std::sync::Mutex<Vec<String>>,
    /// From the first send's start to the last send's answer.
    pub elapsed: std::sync::Mutex<Duration>,
}

impl SendLog {
    pub fn new(n: usize) -> Self {
        SendLog {
            start_us: (0..n).map(|_| AtomicU64::new(0)).collect(),
            acked: (0..n).map(|_| AtomicBool::new(false)).collect(),
            ids: (0..n).map(|_| AtomicI64::new(0)).collect(),
            errors: std::sync::Mutex::new(Vec::new()),
            elapsed: std::sync::Mutex::new(Duration::ZERO),
        }
    }

    pub fn acked_count(&self) -> usize {
        self.acked
            .iter()
            .filter(|a| a.load(Ordering::Relaxed))
            .count()
    }

    pub fn error_list(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    fn error(&self, e: String) {
        if let Ok(mut errors) = self.errors.lock() {
            errors.push(e);
        }
    }
}

/// POST /rooms/{room}/messages as htmx does; Ok on 2xx.
pub async fn send_one(
    conn: &mut Conn,
    target: &Target,
    session: &Session,
    room: &str,
    run: &str,
    seq: u32,
) -> Result<Option<i64>> {
    let body = messages::body(seq);
    let key = messages::client_key(run, seq);
    let fields = [("body", body.as_str()), ("client_key", key.as_str())];
    let path = format!("/rooms/{room}/messages");
    let answer = post_form(conn, target, session, &path, &fields).await?;
    Ok(messages::parse(&answer).first().map(|f| f.id))
}

/// A form POST as htmx makes it (with the session's CSRF token); the body of a 2xx answer.
async fn post_form(
    conn: &mut Conn,
    target: &Target,
    session: &Session,
    path: &str,
    fields: &[(&str, &str)],
) -> Result<Vec<u8>> {
    let mut fields = fields.to_vec();
    fields.push(("csrf_token", &session.csrf));
    let req = build_request("POST", path, target, &session.cookie, true, Some(&fields));
    let resp = conn
        .request(&req, SEND_LIMIT)
        .await
        .map_err(|e| format!("POST {path}: {e}"))?;
    if !(200..300).contains(&resp.status) {
        bail!("POST {path} answered {}: {}", resp.status, resp.snippet());
    }
    Ok(resp.body)
}

/// POST /rooms/{room}/messages/{id}/{what} (an edit or a reaction) as htmx does; Ok on 2xx.
async fn change_one(
    conn: &mut Conn,
    target: &Target,
    session: &Session,
    room: &str,
    id: i64,
    what: &str,
    field: (&str, &str),
) -> Result<Option<i64>> {
    let path = format!("/rooms/{room}/messages/{id}/{what}");
    post_form(conn, target, session, &path, &[field]).await?;
    Ok(None)
}

/// Listeners spread over rooms, holding polls until stopped.
pub struct Load {
    pub shared: Arc<Shared>,
    plan: Arc<Plan>,
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<ListenerOutcome>>,
    pub rooms: Vec<String>,
    listeners_in_room: Vec<usize>,
    pub sends: usize,
}

pub struct LoadSpec<'a> {
    pub target: &'a Target,
    /// Listener `i` listens in room `i % rooms.len()` as user `i % sessions.len()`.
    pub rooms: Vec<String>,
    pub sessions: &'a [Session],
    pub listeners: usize,
    /// Number of sends that will be made; send `s` goes to room `s % rooms.len()`.
    pub sends: usize,
    pub source_ips: usize,
    /// Each room's cursor when the listeners start.
    pub cursors: Vec<i64>,
    /// What each of the `sends` changes is.
    pub plan: Arc<Plan>,
    /// Listeners poll as a page does, saying when their sidebar was last brought up to date
    /// (`&t=`), so the server's per-person feed is in play as in a browser.
    pub pages: bool,
}

impl Load {
    /// Starts the listeners and returns once every one has its first poll on the wire and the
    /// server has accepted their connections (seen in its /proc fd table), so that what follows
    /// measures held polls and not connection set-up.
    pub async fn start(spec: LoadSpec<'_>, server: &Server) -> Result<Load> {
        let shared = Arc::new(Shared {
            epoch: Instant::now(),
            delivered: AtomicU64::new(0),
            armed: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
        });
        let (stop, stop_rx) = watch::channel(false);
        let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
        let mut listeners_in_room = vec![0; spec.rooms.len()];
        let mut handles = Vec::with_capacity(spec.listeners);
        for i in 0..spec.listeners {
            let room_index = i % spec.rooms.len();
            listeners_in_room[room_index] += 1;
            let listener = ListenerSpec {
                target: spec.target.clone(),
                source: source_ip(i, spec.source_ips),
                room_index,
                room: spec.rooms[room_index].clone(),
                plan: spec.plan.clone(),
                page: spec.pages,
                cookie: spec.sessions[i % spec.sessions.len()].cookie.clone(),
                cursor: spec.cursors[room_index],
                sends: spec.sends,
            };
            handles.push(tokio::spawn(listen(
                listener,
                shared.clone(),
                gate.clone(),
                stop_rx.clone(),
            )));
        }
        let load = Load {
            shared,
            plan: spec.plan.clone(),
            stop,
            handles,
            rooms: spec.rooms,
            listeners_in_room,
            sends: spec.sends,
        };

        let deadline = Instant::now()
            + Duration::from_secs(60)
            + Duration::from_millis(spec.listeners as u64 * 2);
        loop {
            let armed = load.shared.armed.load(Ordering::Relaxed);
            let failed = load.shared.failed.load(Ordering::Relaxed);
            if failed > 0 {
                let first = load
                    .finish_now()
                    .await
                    .into_iter()
                    .find_map(|o| o.error)
                    .unwrap_or_default();
                bail!("{failed} listener(s) failed while connecting; first error: {first}");
            }
            // Idle keep-alive connections left from registration count too: hence the settle
            // time below.
            let drained = server.drained_connections();
            if armed == spec.listeners && drained.is_none_or(|d| d >= spec.listeners) {
                break;
            }
            if Instant::now() > deadline {
                load.finish_now().await;
                bail!(
                    "listeners not set up in time: {armed}/{} connected, the server has read {} requests",
                    spec.listeners,
                    drained.map_or("?".to_owned(), |d| d.to_string())
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Read is not yet parked: give the server a moment to register every poll.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(load)
    }

    async fn finish_now(self) -> Vec<ListenerOutcome> {
        let _ = self.stop.send(true);
        let mut out = Vec::new();
        for h in self.handles {
            if let Ok(o) = h.await {
                out.push(o);
            }
        }
        out
    }

    /// Sends `self.sends` messages at `rate` per second over `conns` keep-alive connections:
    /// send `s` starts at `s / rate` seconds (or at once when the sender is behind).
    pub async fn send(
        &self,
        target: &Target,
        session: &Session,
        run: &str,
        rate: f64,
        conns: usize,
    ) -> Arc<SendLog> {
        let log = Arc::new(SendLog::new(self.sends));
        let t0 = tokio::time::Instant::now();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for k in 0..conns.max(1) {
            let (log, target, session, run, rooms, shared) = (
                log.clone(),
                target.clone(),
                session.clone(),
                run.to_owned(),
                self.rooms.clone(),
                self.shared.clone(),
            );
            let (sends, conns, plan) = (self.sends, conns.max(1), self.plan.clone());
            tasks.push(tokio::spawn(async move {
                let mut conn = Conn::new(target.addr, None);
                for seq in (k..sends).step_by(conns) {
                    tokio::time::sleep_until(t0 + Duration::from_secs_f64(seq as f64 / rate)).await;
                    let room = &rooms[seq % rooms.len()];
                    let step = plan.steps[seq];
                    let of = match step {
                        Step::Send => 0,
                        Step::Edit { of } | Step::React { of, .. } => {
                            log.ids[of as usize].load(Ordering::Relaxed)
                        }
                    };
                    log.start_us[seq].store(shared.now_us().max(1), Ordering::Relaxed);
                    let sent = match step {
                        Step::Send => {
                            send_one(&mut conn, &target, &session, room, &run, seq as u32).await
                        }
                        _ if of == 0 => {
                            Err(format!("change {seq}: its message was not stored").into())
                        }
                        Step::Edit { .. } => {
                            change_one(
                                &mut conn,
                                &target,
                                &session,
                                room,
                                of,
                                "edit",
                                ("body", &messages::body(seq as u32)),
                            )
                            .await
                        }
                        Step::React { k, .. } => {
                            change_one(
                                &mut conn,
                                &target,
                                &session,
                                room,
                                of,
                                "reactions",
                                ("emoji", EMOJI[k]),
                            )
                            .await
                        }
                    };
                    match sent {
                        Ok(id) => {
                            log.acked[seq].store(true, Ordering::Relaxed);
                            log.ids[seq].store(id.unwrap_or(0), Ordering::Relaxed);
                        }
                        Err(e) => log.error(e.0),
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        if let Ok(mut e) = log.elapsed.lock() {
            *e = started.elapsed();
        }
        log
    }

    /// Waits (at most `grace`) until every listener has every acknowledged message of its room
    /// (or one has failed), without stopping them; returns the deliveries expected.
    pub async fn settle(&self, log: &SendLog, grace: Duration) -> u64 {
        let expected: u64 = (0..self.sends)
            .filter(|&s| log.acked[s].load(Ordering::Relaxed))
            .map(|s| self.listeners_in_room[s % self.rooms.len()] as u64)
            .sum();
        let deadline = Instant::now() + grace;
        while self.shared.delivered.load(Ordering::Relaxed) < expected
            && Instant::now() < deadline
            && self.shared.failed.load(Ordering::Relaxed) == 0
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        expected
    }

    /// Waits (at most `grace`) until every listener has every acknowledged message of its room,
    /// then stops the listeners and tallies.
    pub async fn finish(self, log: &SendLog, grace: Duration) -> LoadResult {
        let expected = self.settle(log, grace).await;
        let rooms = self.rooms.len();
        let outcomes = self.finish_now().await;
        tally(&outcomes, log, expected, rooms)
    }
}

pub struct LoadResult {
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub foreign: u64,
    /// Polls that ended empty with 204 after the server's hold time.
    pub no_content: u64,
    /// Answers that brought the person's sidebar.
    pub sidebars: u64,
    /// Delivery latencies in µs, sorted.
    pub latencies: Vec<u64>,
    /// The slowest delivery of each send, in µs (0: none delivered).
    pub slowest_by_send: Vec<u64>,
    pub bytes: u64,
    pub errors: Vec<String>,
    /// What the listeners noted about changes lost, duplicated or out of order (a few).
    pub notes: Vec<String>,
}

impl LoadResult {
    pub fn bytes_per_delivery(&self) -> f64 {
        if self.delivered == 0 {
            0.0
        } else {
            self.bytes as f64 / self.delivered as f64
        }
    }

    /// Nearest-rank percentile in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        percentile_ms(&self.latencies, p)
    }

    /// The `n` sends whose last listener waited longest: (send number, that wait in ms).
    pub fn slowest_sends(&self, n: usize) -> Vec<(usize, f64)> {
        let mut by: Vec<(usize, f64)> = self
            .slowest_by_send
            .iter()
            .enumerate()
            .map(|(send, us)| (send, *us as f64 / 1000.0))
            .collect();
        by.sort_by(|a, b| b.1.total_cmp(&a.1));
        by.truncate(n);
        by
    }
}

pub fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    sorted_us[rank.clamp(1, sorted_us.len()) - 1] as f64 / 1000.0
}

fn tally(outcomes: &[ListenerOutcome], log: &SendLog, expected: u64, rooms: usize) -> LoadResult {
    let mut r = LoadResult {
        expected,
        delivered: 0,
        lost: 0,
        duplicates: 0,
        out_of_order: 0,
        foreign: 0,
        no_content: 0,
        sidebars: 0,
        latencies: Vec::new(),
        slowest_by_send: vec![0; log.acked.len()],
        bytes: 0,
        errors: Vec::new(),
        notes: Vec::new(),
    };
    let sends = log.acked.len();
    for o in outcomes {
        let mut got = vec![false; sends];
        for &(seq, at) in &o.deliveries {
            got[seq as usize] = true;
            let start = log.start_us[seq as usize].load(Ordering::Relaxed);
            if start > 0 {
                let took = at.saturating_sub(start);
                r.latencies.push(took);
                let slowest = &mut r.slowest_by_send[seq as usize];
                *slowest = (*slowest).max(took);
            }
        }
        let lost: Vec<usize> = (0..sends)
            .filter(|&s| s % rooms == o.room && log.acked[s].load(Ordering::Relaxed) && !got[s])
            .collect();
        if !lost.is_empty() && r.notes.len() < 6 {
            r.notes.push(format!(
                "a listener lost {} changes, the first {:?}",
                lost.len(),
                &lost[..lost.len().min(8)]
            ));
        }
        r.lost += lost.len() as u64;
        if r.notes.len() < 6 {
            r.notes.extend(o.notes.iter().take(2).cloned());
        }
        r.delivered += o.deliveries.len() as u64;
        r.duplicates += o.duplicates;
        r.out_of_order += o.out_of_order;
        r.foreign += o.foreign;
        r.no_content += o.no_content;
        r.sidebars += o.sidebars;
        r.bytes += o.bytes;
        if let Some(e) = &o.error {
            r.errors.push(e.clone());
        }
    }
    r.latencies.sort_unstable();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(id: i64, change: u32, chips: usize) -> String {
        let chips = "<a class=\"chip\">x</a>".repeat(chips);
        format!(
            "<article id=\"m-{id}\" data-message-id=\"{id}\"><p>pbench s{change}e hi</p>\
             <div class=\"reactions\" id=\"r-{id}\">{chips}</div></article>"
        )
    }

    fn count(plan: &Plan, answers: &[String]) -> ListenerOutcome {
        let shared = Shared {
            epoch: Instant::now(),
            delivered: AtomicU64::new(0),
            armed: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
        };
        let (mut known, mut seen) = (Known::default(), vec![false; plan.steps.len()]);
        let mut out = ListenerOutcome::default();
        for a in answers {
            changes(
                plan,
                a.as_bytes(),
                &mut known,
                &mut seen,
                &mut out,
                &shared,
                0,
            );
        }
        out
    }

    #[test]
    fn a_catch_up_in_latest_forms_counts_every_change_once_and_a_repeat_is_caught() {
        // Sends 0, 1, 2; an edit of 0; a reaction to 0.
        let plan = Plan {
            steps: vec![
                Step::Send,
                Step::Send,
                Step::Send,
                Step::Edit { of: 0 },
                Step::React { of: 0, k: 0 },
            ],
        };
        // A listener behind all of it gets each message once, as it now stands.
        let catch_up = element(1, 3, 1) + &element(2, 1, 0) + &element(3, 2, 0);
        let out = count(&plan, std::slice::from_ref(&catch_up));
        assert_eq!(out.deliveries.len(), 5);
        assert_eq!((out.duplicates, out.out_of_order, out.foreign), (0, 0, 0));
        // The same answer again is what a server must never send.
        let out = count(&plan, &[catch_up.clone(), catch_up]);
        assert_eq!(out.duplicates, 3);
        // New messages in the wrong order are caught.
        let out = count(&plan, &[element(3, 2, 0), element(2, 1, 0)]);
        assert_eq!(out.out_of_order, 1);
    }

    /// A reactions fragment swapped in out of band.
    fn reactions(id: i64, chips: usize) -> String {
        let chips = "<a class=\"chip\">x</a>".repeat(chips);
        format!("<div class=\"reactions\" id=\"r-{id}\" hx-swap-oob=\"outerHTML\">{chips}</div>")
    }

    #[test]
    fn a_reaction_the_server_took_before_an_edit_planned_first_is_no_duplicate() {
        // Send 0; the plan edits it, then reacts to it; the server got the reaction first.
        let plan = Plan {
            steps: vec![
                Step::Send,
                Step::Edit { of: 0 },
                Step::React { of: 0, k: 0 },
            ],
        };
        let first = element(1, 0, 0);
        // The reaction, then the edited message, which shows the reaction too.
        let both = reactions(1, 1)
            + &element(1, 1, 1).replace("<article", "<article hx-swap-oob=\"outerHTML\"");
        let out = count(&plan, &[first.clone(), both]);
        assert_eq!(out.deliveries.len(), 3);
        assert_eq!((out.duplicates, out.out_of_order, out.foreign), (0, 0, 0));
        // The same fragment again is a duplicate.
        let out = count(&plan, &[first, reactions(1, 1), reactions(1, 1)]);
        assert_eq!(out.duplicates, 1);
    }
}
