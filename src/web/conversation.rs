//! Which conversation a URL names, and whether the viewer may see it: resolved here, in one
//! place, for every route below `/rooms/{name}` and `/dm/{username}` (the [`Conv`] extractor).
//! Also the conversation's page.

use poem::http::StatusCode;
use poem::web::Query;
use poem::{FromRequest, Request, RequestBody, Response, handler};
use rand::RngCore;
use serde::Deserialize;

use super::error::AppError;
use super::sidebar::sidebar_data;
use super::{AppState, Ctx, with_status};
use crate::cache::{Cache, RELOAD_AHEAD};
use crate::domain::{RoomName, Username};
use crate::store::{favourites, messages, rooms, users};
use crate::views::chat::{self, About, Composer, Conversation};

/// Messages on a page and per "older" page.
pub const PAGE: i64 = 50;

/// A conversation the viewer may see, resolved from its URL: which room, and how to name it.
#[derive(Clone, Debug)]
pub struct Target {
    pub room: i64,
    pub title: String,
    /// `/rooms/{name}` or `/dm/{username}`, canonically spelt.
    pub base: String,
    pub public: bool,
    /// The other person of a private conversation.
    pub peer: Option<i64>,
}

/// Which room a conversation URL means for a viewer, remembered briefly so that long-polls and
/// sends (the hot paths) resolve it without a database read. Public rooms are stored under
/// viewer 0; a private conversation under its viewer, so the cache cannot hand one person's
/// conversation to another.
pub type Directory = Cache<(i64, String), Target>;

/// How long the directory keeps a conversation without reading it again.
pub const DIRECTORY_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// What a URL's name segment is, parsed as the forms parse names: anything else (a NUL, a
/// character no name has) names nothing, and reaches no query.
fn room_name(raw: &str) -> Result<RoomName, AppError> {
    RoomName::parse(raw).map_err(|_| AppError::NotFound("There is no room with that name."))
}

fn username(raw: &str) -> Result<Username, AppError> {
    Username::parse(raw)
        .map_err(|_| AppError::NotFound("There is nobody with that name to talk to."))
}

/// Where the directory keeps the public room `name`: under viewer 0, for everyone.
fn room_key(name: &RoomName) -> (i64, String) {
    (0, format!("/rooms/{}", name.key()))
}

/// Where the directory keeps `viewer`'s own conversation with `username`.
fn direct_key(viewer: i64, username: &Username) -> (i64, String) {
    (viewer, format!("/dm/{}", username.key()))
}

/// The room and canonical URL of the conversation a path names (`raw`: its `{name}` or
/// `{username}` segment, `direct` for the latter) for `viewer`, if the directory has it: what
/// [`Conv`] would resolve it to, without reading anything or creating a conversation (for
/// `repoll`), and for how long the directory keeps it. `None` is no answer, not a refusal.
///
/// One about to expire is read again in the background (`RELOAD_AHEAD`), so that a room's
/// listeners, all re-polling at once, do not find it expired together.
pub fn cached(
    app: &AppState,
    viewer: i64,
    raw: &str,
    direct: bool,
) -> Option<((i64, String), std::time::Duration)> {
    let (key, named) = match direct {
        false => {
            let name = RoomName::parse(raw).ok()?;
            (room_key(&name), Named::Room(name))
        }
        true => {
            let username = Username::parse(raw).ok()?;
            (
                direct_key(viewer, &username),
                Named::Direct(viewer, username),
            )
        }
    };
    let found = app.directory.read(&key, |target, left| {
        ((target.room, target.base.clone()), left)
    })?;
    if found.1 < RELOAD_AHEAD && !app.directory.is_loading(&key) {
        tokio::spawn(reload(app.clone(), key, named));
    }
    Some(found)
}

/// What a directory key was made of.
enum Named {
    Room(RoomName),
    /// A viewer's own conversation with a username.
    Direct(i64, Username),
}

/// Reads the conversation under `key` again, unless it was read again, or forgotten, since it
/// was found about to expire. One that is gone (a room renamed or deleted, a person
/// deactivated) is forgotten: the next request for it is the chain's to refuse.
async fn reload(app: AppState, key: (i64, String), named: Named) {
    let Some(_turn) = app.directory.try_turn(&key) else {
        return;
    };
    if app.directory.read(&key, |_, left| left < RELOAD_AHEAD) != Some(true) {
        return;
    }
    // Taken before the read: a rename or a deletion during it forgets what it would put.
    let generation = app.directory.generation();
    let found = match named {
        Named::Room(name) => load_room(&app, &name).await,
        Named::Direct(viewer, username) => existing_direct(&app, viewer, &username).await,
    };
    match found {
        Ok(Some(target)) => {
            app.directory.put_since(generation, key, target);
        }
        Ok(None) => app.directory.remove(&key),
        Err(err) => tracing::warn!(%err, "could not read a conversation again"),
    }
}

/// The public room `name`, read from the database.
async fn load_room(app: &AppState, name: &RoomName) -> Result<Option<Target>, AppError> {
    let room = rooms::find_public(&app.db.pool, name.as_str()).await?;
    Ok(room.map(|room| {
        let name = room.name.unwrap_or_default();
        Target {
            room: room.id,
            title: format!("#{name}"),
            base: format!("/rooms/{name}"),
            public: true,
            peer: None,
        }
    }))
}

/// `viewer`'s conversation with `username`, if there is one and that person is active.
async fn existing_direct(
    app: &AppState,
    viewer: i64,
    username: &Username,
) -> Result<Option<Target>, AppError> {
    let pool = &app.db.pool;
    let Some(other) = users::find_by_name(pool, username.as_str())
        .await?
        .filter(|u| u.is_active && u.id != viewer)
    else {
        return Ok(None);
    };
    let room = rooms::find_direct(pool, viewer, other.id).await?;
    Ok(room.map(|room| direct_target(room.id, &other.username, other.id)))
}

/// A private conversation, as the directory keeps it.
fn direct_target(room: i64, username: &str, peer: i64) -> Target {
    Target {
        room,
        title: username.to_owned(),
        base: format!("/dm/{username}"),
        public: false,
        peer: Some(peer),
    }
}

/// The public room `name`; anyone logged in may read and write it.
async fn open_room(app: &AppState, name: &RoomName) -> Result<Target, AppError> {
    let key = room_key(name);
    // A room's listeners all re-poll at once: one reads it, the others find it here.
    let _turn = match app.directory.get_or_turn(&key).await {
        Ok(target) => return Ok(target),
        Err(turn) => turn,
    };
    let generation = app.directory.generation();
    let target = load_room(app, name)
        .await?
        .ok_or(AppError::NotFound("There is no room with that name."))?;
    app.directory.put_since(generation, key, target.clone());
    Ok(target)
}

/// The viewer's own conversation with `username`, created on first use. `/dm/{username}` always
/// means the viewer's own, so no URL can reach someone else's: the privacy check is the look-up.
async fn open_direct(app: &AppState, ctx: &Ctx, username: &Username) -> Result<Target, AppError> {
    const NOBODY: AppError = AppError::NotFound("There is nobody with that name to talk to.");
    let key = direct_key(ctx.user.id, username);
    let _turn = match app.directory.get_or_turn(&key).await {
        Ok(target) => return Ok(target),
        Err(turn) => turn,
    };
    let other = users::find_by_name(&app.db.pool, username.as_str())
        .await?
        .filter(|u| u.is_active)
        .ok_or(NOBODY)?;
    if other.id == ctx.user.id {
        return Err(NOBODY);
    }
    let room = match rooms::find_direct(&app.db.pool, ctx.user.id, other.id).await? {
        Some(room) => room,
        None if ctx.cross_site => {
            return Err(AppError::NotFound(
                "You have no conversation with this person yet. Open it from Parley to start one.",
            ));
        }
        // A new conversation lands in the other person's sidebar: it has a pace.
        None => {
            super::limits::take(
                &app.limits.conversations,
                &ctx.user.id,
                "You are starting private conversations faster than Parley allows.",
            )?;
            rooms::create_or_get_direct(&app.db.pool, ctx.user.id, other.id).await?
        }
    };
    app.hub.joined(room.id, ctx.user.id);
    app.hub.joined(room.id, other.id);
    let target = direct_target(room.id, &other.username, other.id);
    app.directory.put(key, target.clone());
    Ok(target)
}

/// The conversation at a URL (`/rooms/{name}`, `/dm/{username}`, or the path of either with
/// more after it), if the viewer may see it and it exists: a look-up that creates nothing, for
/// requests that only read (the sidebar's refresh names the page it is on).
pub async fn existing(app: &AppState, ctx: &Ctx, url: &str) -> Result<Option<Target>, AppError> {
    let rest = |prefix: &str| {
        url.strip_prefix(prefix)
            .map(|r| r.split('/').next().unwrap_or(""))
    };
    if let Some(name) = rest("/rooms/") {
        let Ok(name) = RoomName::parse(name) else {
            return Ok(None);
        };
        return Ok(open_room(app, &name).await.ok());
    }
    let Some(Ok(username)) = rest("/dm/").map(Username::parse) else {
        return Ok(None);
    };
    if let Some(target) = app.directory.get(&direct_key(ctx.user.id, &username)) {
        return Ok(Some(target));
    }
    existing_direct(app, ctx.user.id, &username).await
}

/// The conversation at `path` (`/rooms/{name}` or `/dm/{username}`, nothing more), resolved and
/// checked as its page would be (a private conversation is created on first use); 404 for
/// anything else.
pub async fn open(app: &AppState, ctx: &Ctx, path: &str) -> Result<Target, AppError> {
    const NOWHERE: AppError = AppError::NotFound("There is no conversation at that address.");
    let named = |prefix: &str| {
        path.strip_prefix(prefix).filter(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        })
    };
    if let Some(name) = named("/rooms/") {
        open_room(app, &room_name(name)?).await
    } else if let Some(name) = named("/dm/") {
        open_direct(app, ctx, &username(name)?).await
    } else {
        Err(NOWHERE)
    }
}

/// A request inside a conversation the viewer may see: who asks, and which conversation.
pub struct Conv {
    pub ctx: Ctx,
    pub target: Target,
}

impl<'a> FromRequest<'a> for Conv {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let ctx = Ctx::from_request(req, body).await?;
        let app = req.data::<AppState>().expect("state");
        // Parameters as they come (percent-decoded), parsed as names before anything else: a
        // name with anything but what names are made of names nothing, and reaches no query.
        let target = if let Some(raw) = req.raw_path_param("name") {
            let name = room_name(raw)?;
            match open_room(app, &name).await {
                Ok(target) => target,
                // Opening a room by its address offers to create it, on the person's own page.
                Err(AppError::NotFound(_))
                    if req.method() == poem::http::Method::GET && !ctx.htmx =>
                {
                    let offer = crate::views::no_such_room(&ctx.viewer(), name.as_str());
                    return Err(poem::Error::from_response(with_status(
                        offer,
                        StatusCode::NOT_FOUND,
                    )));
                }
                Err(err) => return Err(err.into()),
            }
        } else if let Some(raw) = req.raw_path_param("username") {
            open_direct(app, &ctx, &username(raw)?).await?
        } else {
            return Err(AppError::NotFound("There is no conversation at that address.").into());
        };
        Ok(Conv { ctx, target })
    }
}

/// The message a URL names (`…/messages/{id}/…`), by its number in the conversation.
pub fn message_id(req: &Request) -> Result<i64, AppError> {
    req.raw_path_param("id")
        .and_then(|id| id.parse().ok())
        .ok_or(AppError::NotFound("There is no such message."))
}

pub fn new_client_key() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    pub before: Option<i64>,
    pub since: Option<i64>,
    pub around: Option<i64>,
}

/// Which messages of a conversation a page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The newest (the conversation as it is opened; reading it marks it read).
    Latest,
    /// Those before message N (`?before=N`, scrolling back).
    Before(i64),
    /// Those after message N (`?since=N`, paging forward from an older window).
    Since(i64),
    /// Those around message N, which is marked (`?around=N`, a search result or a permalink).
    Around(i64),
}

impl PageQuery {
    fn window(&self) -> Result<Window, AppError> {
        match (self.before, self.since, self.around) {
            (None, None, None) => Ok(Window::Latest),
            (Some(n), None, None) => Ok(Window::Before(n)),
            (None, Some(n), None) => Ok(Window::Since(n)),
            (None, None, Some(n)) => Ok(Window::Around(n)),
            _ => Err(AppError::BadRequest(
                "Give one of before, since and around, not several.",
            )),
        }
    }
}

/// Messages before and after the one a page is centred on.
const HALF: i64 = PAGE / 2;

/// Read messages shown above the first unread one when a conversation opens there.
const CONTEXT: i64 = 5;

/// `GET /rooms/{name}` (which joins the room) and `GET /dm/{username}`. Followed from another
/// site, it only shows: see `Ctx::cross_site`.
#[handler]
pub async fn page(conv: Conv, Query(q): Query<PageQuery>) -> Result<Response, AppError> {
    let window = q.window()?;
    let app = conv.ctx.app.clone();
    if conv.target.public && !conv.ctx.cross_site {
        rooms::join(&app.db.pool, conv.target.room, conv.ctx.user.id).await?;
        app.hub.joined(conv.target.room, conv.ctx.user.id);
    }
    page_response(&app, &conv.ctx, &conv.target, window, None).await
}

/// What a page shows of a conversation: its messages, oldest first, and where it stands.
struct Shown {
    messages: Vec<messages::Message>,
    window: Window,
    /// Whether there are newer messages (up to the room's last change) than the page shows.
    newer: bool,
    note: Option<&'static str>,
}

async fn shown(pool: &sqlx::AnyPool, room: &rooms::Room, window: Window) -> sqlx::Result<Shown> {
    let (id, until) = (room.id, room.last_seq);
    let shown = |messages, newer| Shown {
        messages,
        window,
        newer,
        note: None,
    };
    let latest = |messages| Shown {
        messages,
        window: Window::Latest,
        newer: false,
        note: None,
    };
    Ok(match window {
        Window::Latest => latest(messages::latest(pool, id, PAGE).await?),
        Window::Before(b) => shown(messages::before(pool, id, b, PAGE).await?, false),
        Window::Since(s) => {
            let mut rows = messages::after(pool, id, s, until, PAGE + 1).await?;
            let newer = rows.len() as i64 > PAGE;
            rows.truncate(PAGE as usize);
            shown(rows, newer)
        }
        Window::Around(seq) => {
            let Some(centre) = messages::find(pool, id, seq).await? else {
                return Ok(Shown {
                    note: Some(
                        "That message is not in this conversation (it may have been deleted): \
                         here are the newest messages.",
                    ),
                    ..latest(messages::latest(pool, id, PAGE).await?)
                });
            };
            let mut rows = messages::before(pool, id, seq, HALF).await?;
            let mut after = messages::after(pool, id, seq, until, HALF + 1).await?;
            let newer = after.len() as i64 > HALF;
            after.truncate(HALF as usize);
            rows.push(centre);
            rows.append(&mut after);
            shown(rows, newer)
        }
    })
}

/// The whole page of a conversation (also what a failed no-JS send re-renders, with its error).
pub async fn page_response(
    app: &AppState,
    ctx: &Ctx,
    target: &Target,
    window: Window,
    composer: Option<(&str, &str)>,
) -> Result<Response, AppError> {
    let pool = &app.db.pool;
    let room = rooms::find_by_id(pool, target.room)
        .await?
        .ok_or(AppError::NotFound("This conversation no longer exists."))?;
    // Opened as it is, a conversation with messages the person has not read opens at the first
    // of them, under a "New" divider, with a few read ones above it for context.
    let unread = match window {
        Window::Latest => rooms::first_unread(pool, room.id, ctx.user.id, PAGE + 1).await?,
        _ => None,
    };
    let window = match unread {
        Some((first, from_it)) if from_it > PAGE - CONTEXT => {
            let context = messages::before(pool, room.id, first, CONTEXT).await?;
            Window::Since(context.first().map_or(first, |m| m.seq) - 1)
        }
        _ => window,
    };
    let shown = shown(pool, &room, window).await?;
    let msgs = &shown.messages;
    // Without JavaScript, what a page shows of the conversation's end is read: the newest page
    // all of it, a page forward (opened at the first unread, or "newer") up to its last message;
    // the person's other pages show it as read. With JavaScript (the page says so by a cookie),
    // app.js reports what comes into view instead. A page another site sent the person to reads
    // nothing: looking is not reading.
    let read_upto = match shown.window {
        _ if ctx.scripted || ctx.cross_site => None,
        Window::Latest => Some(room.last_seq),
        Window::Since(_) => msgs.last().map(|m| m.seq),
        Window::Before(_) | Window::Around(_) => None,
    };
    if let Some(seq) = read_upto
        && rooms::mark_read(pool, room.id, ctx.user.id, seq).await?
    {
        app.hub.changed_for(ctx.user.id);
    }
    let members = rooms::members(pool, room.id).await?;
    let peer = match target.peer {
        Some(id) => users::find_by_id(pool, id).await?,
        None => None,
    };
    let data = sidebar_data(app, ctx.user.id, "").await?;
    let starred = favourites::is_starred(pool, ctx.user.id, room.id).await?;
    let now = crate::now_ms();
    let older = msgs.first().is_some_and(|m| match shown.window {
        // Sequence numbers count every change, so "is there anything older" is a question for
        // the database only when the page is full.
        Window::Latest | Window::Before(_) => msgs.len() as i64 == PAGE && m.seq > 1,
        Window::Since(_) | Window::Around(_) => m.seq > 1,
    });
    let newest = msgs.last().map_or(0, |m| m.seq);
    let conv = Conversation {
        title: target.title.clone(),
        base: target.base.clone(),
        topic: target.public.then_some(room.topic.as_str()),
        about: peer.as_ref().map(|p| About {
            display_name: &p.display_name,
            bio: &p.bio,
        }),
        members: &members,
        messages: msgs,
        // The room was read before its messages, so its last_seq never runs ahead of them. A page
        // of history polls from its own end, so the newer messages follow it; a page centred on
        // a message, or paged forward to, polls from the room's last change (live delivery goes
        // on from the newest) and offers the messages between as a "newer" page.
        last_seq: match shown.window {
            Window::Before(_) => newest,
            _ => newest.max(room.last_seq),
        },
        newer: shown.newer.then_some((newest, room.last_seq)),
        focus: match shown.window {
            Window::Around(seq) => Some(seq),
            _ => None,
        },
        note: shown.note,
        unread_from: unread.map(|(first, _)| first),
        starred,
        now_ms: now,
        sidebar_at: data.read_at,
        reader: ctx.reader(),
    };
    let key = new_client_key();
    let (body, error) = composer.unwrap_or(("", ""));
    let composer = Composer {
        body,
        error: (!error.is_empty()).then_some(error),
        client_key: &key,
    };
    let side = data.sidebar(&ctx.user.username, "", &target.base);
    let markup = crate::views::conversation_page(
        &target.title,
        &ctx.viewer(),
        &target.base,
        chat::shell(
            chat::sidebar(&side, &ctx.csrf, None),
            chat::conversation(&conv, &composer, &ctx.csrf, older),
        ),
    );
    let status = match composer.error {
        Some(_) => StatusCode::UNPROCESSABLE_ENTITY,
        None => StatusCode::OK,
    };
    Ok(with_status(markup, status))
}
