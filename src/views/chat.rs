//! The chat's components: sidebar lists, the conversation pane, messages, the composer.

use maud::{Markup, PreEscaped, html};
use time::OffsetDateTime;

use super::forms::{csrf_field, field_error};
use super::timeline::{Reader, avatar_of, continues, day_divider, display_name};
use super::{file_url, human_size};
use crate::domain::is_bidi_control;
use crate::media::Inline;
use crate::store::attachments::Attachment;
use crate::store::messages::{CALL_RECORD, Change, Message, Reaction, TOPIC_RECORD};
use crate::store::rooms::{DirectUnread, Member, RoomListing};
use crate::store::users::Person;

/// One message. Rendered once per message (and once per change to it) and shared by every poll
/// that delivers it, so it holds nothing that depends on who is looking: what is the reader's own
/// is styled by their `/me.css`, and what they may do with it is asked for (`messages/{id}/actions`,
/// relative to the conversation's `<base>`).
pub fn message(m: &Message) -> Markup {
    message_as(m, false, false, false)
}

/// A message as it replaces its older self on a page (an edit, or its state rebuilt after a
/// reaction), swapped in out of band; or (`focus`) the one a page was opened at, marked; or
/// (`grouped`) one that continues its author's group on a page made for one reader, shown
/// without their name and avatar. app.js groups one that arrives live the same way, by what
/// every message shows anyway: its author and its `<time datetime>` (no extra attributes: they
/// would travel with every message to every listener).
fn message_as(m: &Message, oob: bool, focus: bool, grouped: bool) -> Markup {
    let actions = format!("messages/{}/actions", m.seq);
    html! {
        article.message.call-record[m.kind == CALL_RECORD].topic-record[m.kind == TOPIC_RECORD].focused[focus].grouped[grouped]
            id=(format!("m-{}", m.seq)) data-message-id=(m.seq)
            data-mentions=[(!m.mentions.is_empty()).then_some(&m.mentions)]
            aria-current=[focus.then_some("true")]
            hx-swap-oob=[oob.then_some("outerHTML")] {
            (avatar_of(&m.author, &m.author_avatar))
            header {
                // `.author` stays the username alone: app.js groups by it and knows the
                // viewer's own messages by it.
                (display_name(&m.author_display))
                span.author { (m.author) }
                " "
                (timestamp(m.created_ms))
                @if let Some(edited) = m.edited_ms {
                    " " span.edited title=(format!("edited {}", utc_label(edited))) { "(edited)" }
                }
                // app.js opens it inside the message; the bytes of an htmx attribute set here
                // would travel with every message to every listener.
                a.more href=(actions) aria-label="Message actions" { "⋯" }
            }
            @if m.kind.is_empty() && !m.body.is_empty() {
                div.body { (formatted(&m.body, &m.mentions)) }
            } @else if !m.body.is_empty() {
                p.body { (linkified(&m.body, &m.mentions)) }
            }
            @if !m.attachments.is_empty() { (attachments(&m.attachments)) }
            // No empty element per message on the wire: the first reaction's out-of-band swap
            // finds no target, and app.js puts it in the message.
            @if !m.reactions.is_empty() { (reactions(m.seq, &m.reactions, false)) }
        }
    }
}

/// A message's files: a picture as its thumbnail (opening the full picture), audio and video as
/// players, and each with a link to download it, its name, size and type.
fn attachments(files: &[Attachment]) -> Markup {
    html! {
        ul.attachments {
            @for file in files {
                @let url = file_url(file.id, &file.name);
                li.attachment {
                    @match (Inline::of(&file.content_type), file.width, file.height) {
                        (Inline::Picture, Some(w), Some(h)) => {
                            a.picture href=(url) target="_blank" rel="noopener" {
                                img src=(format!("/files/{}/preview", file.id)) width=(w) height=(h)
                                    alt=(file.name) loading="lazy";
                            }
                        }
                        (Inline::Audio, ..) => { audio controls preload="metadata" src=(url) {} }
                        (Inline::Video, ..) => { video controls preload="metadata" src=(url) {} }
                        _ => {}
                    }
                    a.file href=(url) download=(file.name) {
                        span.file-name { (file.name) }
                        " "
                        span.file-meta { (human_size(file.size)) " · " (file.content_type) }
                    }
                }
            }
        }
    }
}

/// A message's reactions: each emoji with its count and who chose it. Clicking one toggles your
/// own (a link to the picker page without JavaScript).
pub fn reactions(seq: i64, reactions: &[Reaction], oob: bool) -> Markup {
    let page = format!("messages/{seq}/react");
    let post = format!("messages/{seq}/reactions");
    html! {
        div.reactions id=(format!("r-{seq}")) hx-swap-oob=[oob.then_some("outerHTML")] {
            @for r in reactions {
                @let who = r.users.join(", ");
                a.chip href=(page) hx-post=(post) hx-vals=(format!(r#"{{"emoji":"{}"}}"#, r.emoji))
                    hx-target=(format!("#m-{seq}")) hx-swap="outerHTML"
                    data-by=(r.users.iter().map(|u| u.to_ascii_lowercase()).collect::<Vec<_>>().join(" "))
                    title=(who) aria-label=(format!("{} {}: {who}", r.emoji, r.users.len())) {
                    (r.emoji) " " span.count { (r.users.len()) }
                }
            }
        }
    }
}

/// One change of a conversation as live delivery carries it: a new message is appended; an
/// edited one replaces itself, a deleted one removes itself, and reactions replace the message's
/// reactions, out of band.
pub fn render_change(change: &Change) -> String {
    match change {
        Change::New(m) => message(m),
        Change::Updated(m) => message_as(m, true, false, false),
        Change::Deleted { seq, .. } => html! {
            article id=(format!("m-{seq}")) hx-swap-oob="delete" {}
        },
        Change::Reacted {
            seq, reactions: r, ..
        } => reactions(*seq, r, true),
    }
    .into_string()
}

/// `<time>` in UTC; app.js shows it in the reader's own time zone.
pub fn timestamp(ms: i64) -> Markup {
    let t = utc(ms);
    let iso = iso(ms);
    let hm = t
        .format(time::macros::format_description!("[hour]:[minute]"))
        .unwrap_or_default();
    html! { time datetime=(iso) title=(utc_label(ms)) { (hm) } }
}

/// "2026-12-01T14:05:00Z", for `<time datetime>`.
pub fn iso(ms: i64) -> String {
    utc(ms)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn utc(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// "2026-12-01 14:05 UTC".
pub fn utc_label(ms: i64) -> String {
    utc(ms)
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap_or_default()
}

/// A message body as text with its line breaks kept, its web addresses made into links and the
/// people it mentions marked. Every piece of user text goes through maud's escaping; only the
/// `<br>` is ours.
///
/// Characters that turn text around are left out (they are invisible, and what they do is
/// make one address read as another), and each link is isolated (`dir="ltr"`): however the text
/// around it runs, a link shows its address as it is.
fn linkified(body: &str, mentions: &str) -> Markup {
    let body = without_bidi(body);
    html! {
        @for (i, line) in body.split('\n').enumerate() {
            @if i > 0 { br; }
            (linked_text(line, mentions))
        }
    }
}

/// What people write, formatted (`views::markdown`), without direction-changing characters.
fn formatted(body: &str, mentions: &str) -> Markup {
    super::markdown::render(&without_bidi(body), mentions)
}

fn without_bidi(body: &str) -> std::borrow::Cow<'_, str> {
    if body.chars().any(is_bidi_control) {
        body.chars().filter(|c| !is_bidi_control(*c)).collect()
    } else {
        body.into()
    }
}

/// One line of text with its web addresses linked (`https://…`, and `www.…` as https) and the
/// `@names` of `mentions` marked.
pub fn linked_text(line: &str, mentions: &str) -> Markup {
    let mut finder = linkify::LinkFinder::new();
    finder
        .kinds(&[linkify::LinkKind::Url])
        .url_must_have_scheme(false);
    html! {
        @for span in finder.spans(line) {
            @let text = span.as_str();
            @let web = text.starts_with("https://") || text.starts_with("http://");
            @let www = text.starts_with("www.");
            @if span.kind().is_some() && web {
                a href=(text) dir="ltr" rel="noopener noreferrer nofollow ugc" target="_blank" { (text) }
            } @else if span.kind().is_some() && www {
                a href=(format!("https://{text}")) dir="ltr" rel="noopener noreferrer nofollow ugc" target="_blank" { (text) }
            } @else {
                (with_mentions(text, mentions))
            }
        }
    }
}

/// `text` with each `@name` of `mentions` (lowercase, space-separated) marked for styling.
fn with_mentions(text: &str, mentions: &str) -> Markup {
    if mentions.is_empty() {
        return html! { (text) };
    }
    let mut parts: Vec<(&str, Option<&str>)> = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let after = &rest[at + 1..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_.-".contains(c)))
            .unwrap_or(after.len());
        let name = after[..len].trim_end_matches(['.', '-']);
        let key = name.to_ascii_lowercase();
        // As the parser reads them: an @ inside a word (an address) names nobody.
        let consumed = text.len() - rest.len() + at;
        let in_word = text[..consumed]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if !in_word && !name.is_empty() && mentions.split(' ').any(|m| m == key) {
            parts.push((&rest[..at], None));
            parts.push((&rest[at..at + 1 + name.len()], Some(name)));
            rest = &rest[at + 1 + name.len()..];
        } else {
            parts.push((&rest[..at + 1], None));
            rest = after;
        }
    }
    parts.push((rest, None));
    html! {
        @for (text, name) in parts {
            @if let Some(name) = name {
                span.mention data-user=(name.to_ascii_lowercase()) { (text) }
            } @else {
                (text)
            }
        }
    }
}

/// The search box in the header: a plain GET form to the message search (whose page also
/// filters the sidebar by it), filtering the sidebar's people and rooms as you type when htmx is
/// there.
pub fn search_box(q: &str) -> Markup {
    html! {
        form.search method="get" action="/search" role="search" {
            label.sr-only for="search-q" { "Search messages, people and rooms" }
            input #search-q type="search" name="q" value=(q) placeholder="Search messages, people and rooms"
                autocomplete="off" maxlength=(crate::domain::MAX_QUERY_CHARS)
                title="Enter searches messages: words, \"a phrase\", from:name, in:room, in:@name, before:2026-12-01, after:2026-11-01"
                hx-get="/sidebar" hx-trigger="input changed delay:250ms, search"
                hx-include="#sidebar-current" hx-target="#sidebar-lists" hx-swap="outerHTML";
        }
    }
}

/// A starred conversation in the sidebar's Favourites.
#[derive(Debug, Clone)]
pub enum Favourite {
    Room(RoomListing),
    Person(Person, DirectUnread),
}

pub struct Sidebar<'a> {
    pub me: &'a str,
    pub rooms: &'a [RoomListing],
    pub people: &'a [(Person, DirectUnread)],
    /// Starred conversations in the order starred; they are not in `rooms` and `people` too.
    pub favourites: &'a [Favourite],
    pub now_ms: i64,
    pub query: &'a str,
    /// The open conversation's URL, to mark it in the lists.
    pub current: &'a str,
}

pub fn sidebar(s: &Sidebar<'_>, csrf: &str, room_error: Option<(&str, &str)>) -> Markup {
    html! {
        aside #sidebar .sidebar aria-label="Rooms and people" {
            (new_room_form(csrf, room_error))
            (sidebar_lists(s, false))
        }
    }
}

/// The two lists. The page's held poll brings them again when they change (unread and mention
/// counts, who is online), out of band; the refresh every 15 s also brings the open
/// conversation's header (topic, members), which no feed event announces.
pub fn sidebar_lists(s: &Sidebar<'_>, oob: bool) -> Markup {
    let refresh = format!("/sidebar?current={}", super::encode_query(s.current));
    html! {
        div #sidebar-lists hx-get=(refresh) hx-trigger="every 15s" hx-include="#search-q" hx-swap="outerHTML"
            hx-swap-oob=[oob.then_some("true")] {
            // What the search box sends along, so that its results keep the open conversation.
            input #sidebar-current type="hidden" name="current" value=(s.current);
            @if !s.query.is_empty() {
                p.search-note { "Results for “" (s.query) "” · " a href="/" { "clear" } }
            }
            @if !s.favourites.is_empty() { (favourite_list(s)) }
            (room_list(s))
            (people_list(s))
        }
    }
}

pub fn favourite_list(s: &Sidebar<'_>) -> Markup {
    html! {
        section #favourites aria-labelledby="favourites-heading" {
            h2 #favourites-heading { "Favourites" }
            ul.list #favourite-list {
                @for favourite in s.favourites {
                    @match favourite {
                        Favourite::Room(room) => (room_item(s, room)),
                        Favourite::Person(person, counts) => (person_item(s, person, counts)),
                    }
                }
            }
        }
    }
}

pub fn room_list(s: &Sidebar<'_>) -> Markup {
    html! {
        section #rooms aria-labelledby="rooms-heading" {
            h2 #rooms-heading { "Rooms" }
            @if s.rooms.is_empty() && s.favourites.is_empty() {
                p.empty { @if s.query.is_empty() { "No rooms yet. Create one above." } @else { "No rooms match." } }
            }
            ul.list #room-list {
                @for room in s.rooms { (room_item(s, room)) }
            }
            p.browse { a href="/rooms" { "Browse rooms" } }
        }
    }
}

fn room_item(s: &Sidebar<'_>, room: &RoomListing) -> Markup {
    let href = format!("/rooms/{}", room.name);
    let open = href == s.current;
    // The conversation being read is never unread: its page counts what arrives in it, and the
    // page's notifications (app.js) would count it twice.
    let (unread, mentions) = if open {
        (0, 0)
    } else {
        (room.unread().unwrap_or(0), room.mentions)
    };
    html! {
        li {
            a href=(href) aria-current=[open.then_some("page")] title=(room.topic)
                data-unread=(unread) data-mentions=(mentions) {
                span.hash aria-hidden="true" { "#" }
                span.name { (room.name) }
                (badges(unread, mentions))
            }
        }
    }
}

pub fn people_list(s: &Sidebar<'_>) -> Markup {
    html! {
        section #people aria-labelledby="people-heading" {
            h2 #people-heading { "People" }
            @if s.people.is_empty() && s.favourites.is_empty() { p.empty { "Nobody matches." } }
            ul.list #people-list {
                @for (person, counts) in s.people { (person_item(s, person, counts)) }
            }
        }
    }
}

fn person_item(s: &Sidebar<'_>, person: &Person, counts: &DirectUnread) -> Markup {
    // The viewer is here, whatever the last presence write says.
    let online = person.username == s.me || person.is_online(s.now_ms);
    let href = format!("/dm/{}", person.username);
    let open = href == s.current;
    // As for rooms: the conversation being read is never unread.
    let (unread, mentions) = if open {
        (0, 0)
    } else {
        (counts.unread, counts.mentions)
    };
    html! {
        li.person data-online=(online) {
            @if person.username == s.me {
                span.row {
                    (presence_dot(online))
                    (avatar_of(&person.username, &person.avatar))
                    (person_name(person))
                    span.muted { "(you)" }
                }
            } @else {
                a href=(href) aria-current=[open.then_some("page")]
                    data-unread=(unread) data-mentions=(mentions) {
                    (presence_dot(online))
                    (avatar_of(&person.username, &person.avatar))
                    (person_name(person))
                    (badges(unread, 0))
                }
            }
        }
    }
}

/// A person's name in the sidebar: one line, their display name first when they have one.
fn person_name(person: &Person) -> Markup {
    html! {
        span.name {
            @if person.display_name.is_empty() {
                (person.username)
            } @else {
                bdi.display-name { (person.display_name) } " " span.handle { (person.username) }
            }
        }
    }
}

fn presence_dot(online: bool) -> Markup {
    html! {
        span.dot.online[online] aria-hidden="true" {}
        span.sr-only { @if online { "online, " } @else { "offline, " } }
    }
}

fn badges(unread: i64, mentions: i64) -> Markup {
    html! {
        @if mentions > 0 {
            span.badge.mentions { "@" (mentions) span.sr-only { " mentioning you" } }
        }
        @if unread > 0 {
            span.badge {
                @if unread >= crate::store::rooms::UNREAD_CAP { "99+" } @else { (unread) }
                span.sr-only { " unread" }
            }
        }
    }
}

fn new_room_form(csrf: &str, error: Option<(&str, &str)>) -> Markup {
    let (value, message) = error.unwrap_or(("", ""));
    let message = (!message.is_empty()).then_some(message);
    html! {
        form.new-room method="post" action="/rooms" {
            (csrf_field(csrf))
            // Ask before creating: a typo opens nothing new (see `web::rooms::create`).
            input type="hidden" name="open" value="1";
            label for="new-room-name" { "Open or create a room" }
            div.inline {
                input #new-room-name type="text" name="name" value=(value) placeholder="room-name"
                    required maxlength="64" autocomplete="off"
                    aria-invalid=[message.map(|_| "true")]
                    aria-describedby=[message.map(|_| "new-room-name-error")];
                button type="submit" { "Go" }
            }
            (field_error("new-room-name", message))
        }
    }
}

/// The conversation being shown: a public room or a private one with another person.
pub struct Conversation<'a> {
    pub title: String,
    /// `/rooms/{name}` or `/dm/{username}`: every route of the conversation hangs below it.
    pub base: String,
    pub topic: Option<&'a str>,
    /// In a private conversation, who the other person says they are.
    pub about: Option<About<'a>>,
    pub members: &'a [Member],
    pub messages: &'a [Message],
    /// The sequence number to poll after.
    pub last_seq: i64,
    /// Newer messages than the page shows exist, after the first number up to the second (those
    /// after it the poll brings): a "newer" page is offered.
    pub newer: Option<(i64, i64)>,
    /// The message the page was opened at (`?around=`), marked.
    pub focus: Option<i64>,
    /// Said above the messages (why they are not the ones asked for).
    pub note: Option<&'a str>,
    /// The first message the viewer had not read when the page was made: a "New" divider goes
    /// above it (from the stored read position, so without JavaScript too).
    pub unread_from: Option<i64>,
    /// Whether the viewer has starred this conversation.
    pub starred: bool,
    pub now_ms: i64,
    /// When the page's sidebar was read: its poll's `t` (see `Hub::watch_person`).
    pub sidebar_at: i64,
    /// The reader's time zone, for the days that divide the messages.
    pub reader: Reader,
}

/// The other person of a private conversation, as they describe themselves (each may be empty).
pub struct About<'a> {
    pub display_name: &'a str,
    pub bio: &'a str,
}

pub struct Composer<'a> {
    pub body: &'a str,
    pub error: Option<&'a str>,
    pub client_key: &'a str,
}

pub fn conversation(
    c: &Conversation<'_>,
    composer_state: &Composer<'_>,
    csrf: &str,
    older: bool,
) -> Markup {
    let first = c.messages.first().map(|m| m.seq);
    html! {
        section #conversation .conversation aria-labelledby="conversation-title" {
            header.conversation-header {
                a.back href="/" { "‹ All chats" }
                div {
                    h1 #conversation-title {
                        @if let Some(about) = &c.about { (display_name(about.display_name)) }
                        (c.title)
                    }
                    @if let Some(topic) = c.topic { (topic_line(topic, false)) }
                    @if let Some(about) = c.about.as_ref().filter(|a| !a.bio.is_empty()) {
                        p #conversation-bio .topic .bio { (about.bio) }
                    }
                }
                @if c.base.starts_with("/dm/") { (super::calls::call_button(&c.base, &c.title)) }
                (star_form(&c.base, c.starred, csrf))
                details.members {
                    summary { (member_count(c.members, false)) }
                    // One panel, the list above the topic's form (Escape closes it: app.js).
                    div.members-panel {
                        (member_list(c.members, c.now_ms, false))
                        @if c.topic.is_some() {
                            (topic_form(&c.base, c.topic.unwrap_or(""), csrf))
                            (leave_form(&c.base, &c.title, csrf))
                        }
                    }
                }
            }
            div.scroller #scroller {
                // Older pages come in above the live region, not inside it: they are not news.
                div.timeline {
                    @if let (true, Some(first)) = (older, first) { (history_loader(&c.base, first)) }
                    div #messages role="log" aria-live="polite" aria-relevant="additions" aria-label="Messages"
                        data-focus=[c.focus] {
                        @if let Some(note) = c.note { p.note #jump-note role="status" { (note) } }
                        @if c.messages.is_empty() {
                            p.empty #no-messages { "No messages yet. Say hello!" }
                        }
                        (timeline(c.messages, &c.reader, c.unread_from, c.focus))
                        @if let Some((after, until)) = c.newer { (newer_loader(&c.base, after, until)) }
                        (poller(&c.base, c.last_seq, c.sidebar_at, &Calls::page()))
                    }
                }
            }
            // Shown by app.js while the reader is scrolled up and new messages arrive below.
            button #jump-newest .jump-newest type="button" hidden {
                "↓ " span #jump-count { "0" } " new"
            }
            (composer(&c.base, composer_state, csrf))
        }
    }
}

/// "3 members", in the summary of the conversation header's member list.
fn member_count(members: &[Member], oob: bool) -> Markup {
    html! {
        span #member-count hx-swap-oob=[oob.then_some("true")] {
            (members.len()) @if members.len() == 1 { " member" } @else { " members" }
        }
    }
}

fn member_list(members: &[Member], now_ms: i64, oob: bool) -> Markup {
    html! {
        ul #member-list hx-swap-oob=[oob.then_some("true")] {
            @for m in members {
                li {
                    (presence_dot(m.last_seen_ms > now_ms - crate::store::ONLINE_WINDOW_MS))
                    (avatar_of(&m.username, &m.avatar))
                    (display_name(&m.display_name))
                    span.name { (m.username) }
                }
            }
        }
    }
}

/// A public room's topic under its name (empty, and hidden, until someone sets one).
fn topic_line(topic: &str, oob: bool) -> Markup {
    html! { p #conversation-topic .topic hx-swap-oob=[oob.then_some("true")] { (topic) } }
}

/// The open conversation's header, swapped in out of band by the sidebar's periodic refresh, so
/// that its topic, who is in it and who is online stay current without a reload. The member
/// list is replaced inside its `<details>`, which stays open if the reader opened it.
pub fn header_update(topic: Option<&str>, members: &[Member], now_ms: i64) -> Markup {
    html! {
        @if let Some(topic) = topic { (topic_line(topic, true)) }
        (member_count(members, true))
        (member_list(members, now_ms, true))
    }
}

/// "Leave #room": the room leaves the person's sidebar until they open or join it again.
fn leave_form(base: &str, title: &str, csrf: &str) -> Markup {
    html! {
        form.leave-form method="post" action=(format!("{base}/leave")) {
            (csrf_field(csrf))
            button.danger type="submit" { "Leave " (title) }
        }
    }
}

fn topic_form(base: &str, topic: &str, csrf: &str) -> Markup {
    html! {
        form.topic-form method="post" action=(format!("{base}/topic")) {
            (csrf_field(csrf))
            label for="topic" { "Topic" }
            div.inline {
                input #topic type="text" name="topic" value=(topic) maxlength="200";
                button type="submit" { "Set topic" }
            }
        }
    }
}

/// The element that holds the next long-poll. It replaces itself with the new changes followed
/// by a fresh poller carrying the new cursor, and `data-t`, when the page's sidebar was last
/// brought up to date (app.js sends it as `t`); app.js re-fires it after a 204 or an error.
/// `calls`: for a page that takes calls, the call signals it has seen (`data-s`, sent as `s`)
/// and those this answer brings (`data-signals`, a JSON array app.js hands to calls.js).
pub fn poller(base: &str, after: i64, t: i64, calls: &Calls) -> Markup {
    let mut out = String::with_capacity(POLLER_LEN + 2 * base.len());
    push_poller(&mut out, Some((base, after)), t, calls);
    PreEscaped(out)
}

/// The poller of a page with no conversation open: it waits for the person's sidebar to change.
pub fn feed_poller(t: i64, calls: &Calls) -> Markup {
    let mut out = String::with_capacity(POLLER_LEN);
    push_poller(&mut out, None, t, calls);
    PreEscaped(out)
}

/// About how long a poller's markup is, without its conversation's URL and call signals.
const POLLER_LEN: usize = 160;

/// A poller's markup (see [`poller`]), for a conversation `(base, after)` or the feed, written
/// at the end of `out`: every long-poll answer ends with one, so it is written in place rather
/// than made apart and copied (maud's `html!` cannot write into a given buffer).
pub fn push_poller(out: &mut String, conv: Option<(&str, i64)>, t: i64, calls: &Calls) {
    use std::fmt::Write as _;

    use maud::Escaper;
    // Numbers by `itoa`, not `write!`: this is on every delivery, and the formatting machinery
    // cost more than the rest of the poller together (BENCHMARKS.md, "The eleventh day").
    let mut number = itoa::Buffer::new();
    match conv {
        Some((base, after)) => {
            let after = number.format(after);
            out.push_str(r#"<div id="poller" hx-get=""#);
            // Writing to a `String` cannot fail.
            let _ = Escaper::new(out).write_str(base);
            for part in [
                "/messages?after=",
                after,
                r#"" hx-trigger="load, poll" hx-swap="outerHTML" data-after=""#,
                after,
            ] {
                out.push_str(part);
            }
        }
        None => out.push_str(
            r#"<div id="poller" hx-get="/feed" hx-trigger="load, poll" hx-swap="outerHTML"#,
        ),
    }
    out.push_str(r#"" data-t=""#);
    out.push_str(number.format(t));
    out.push('"');
    for (name, value) in [
        (" data-s=\"", &calls.cursor),
        (" data-signals=\"", &calls.signals),
    ] {
        if let Some(value) = value {
            out.push_str(name);
            let _ = Escaper::new(out).write_str(value);
            out.push('"');
        }
    }
    out.push_str("></div>");
}

/// What a poller carries of call signalling (see [`poller`]).
#[derive(Debug, Default)]
pub struct Calls {
    pub cursor: Option<String>,
    pub signals: Option<String>,
}

impl Calls {
    /// A page's first poller: it has seen no signal yet.
    pub fn page() -> Self {
        Calls {
            cursor: Some(String::new()),
            signals: None,
        }
    }
}

/// "Load older messages": a link without JavaScript, loaded on scroll with htmx.
pub fn history_loader(base: &str, before: i64) -> Markup {
    html! {
        div #history .history {
            a href=(format!("{base}?before={before}")) hx-get=(format!("{base}/messages?before={before}"))
                hx-trigger="click, intersect once" hx-target="#history" hx-swap="outerHTML" {
                "Load older messages"
            }
        }
    }
}

/// Messages as a reader's page shows them: each day under its divider, each run of one
/// person's messages under one name (see `views::timeline`), and the "New" divider above the
/// first unread one, which starts a group of its own.
fn timeline(
    messages: &[Message],
    reader: &Reader,
    unread_from: Option<i64>,
    focus: Option<i64>,
) -> Markup {
    html! {
        @for (i, m) in messages.iter().enumerate() {
            @let prev = i.checked_sub(1).map(|p| &messages[p]);
            @if prev.is_none_or(|p| !reader.same_day(p.created_ms, m.created_ms)) {
                (day_divider(reader, m.created_ms))
            }
            @let unread = unread_from == Some(m.seq);
            @if unread {
                div #unread-divider .unread-divider role="separator" aria-label="New messages" {
                    span { "New" }
                }
            }
            @let grouped = !unread && prev.is_some_and(|p| continues(reader, p, m));
            (message_as(m, false, focus == Some(m.seq), grouped))
        }
    }
}

/// A page of older messages for htmx: a loader for the page before it (if any), then the messages.
pub fn older_messages(base: &str, messages: &[Message], more: bool, reader: &Reader) -> Markup {
    html! {
        @if let (true, Some(first)) = (more, messages.first()) { (history_loader(base, first.seq)) }
        (timeline(messages, reader, None, None))
    }
}

/// "Load newer messages", below a window of older ones: a link to the next page without
/// JavaScript; with htmx, the messages after `after` up to `until` (the page's poll brings those
/// after that), in its place. Loaded on click only: content added below what the reader is
/// looking at would move it.
pub fn newer_loader(base: &str, after: i64, until: i64) -> Markup {
    html! {
        div #newer .history {
            a href=(format!("{base}?since={after}"))
                hx-get=(format!("{base}/messages?since={after}&until={until}"))
                hx-target="#newer" hx-swap="outerHTML" {
                "Load newer messages"
            }
        }
    }
}

/// A page of newer messages for htmx: the messages, then a loader for the page after (if any).
pub fn newer_messages(
    base: &str,
    messages: &[Message],
    until: Option<i64>,
    reader: &Reader,
) -> Markup {
    html! {
        (timeline(messages, reader, None, None))
        @if let (Some(until), Some(last)) = (until, messages.last()) { (newer_loader(base, last.seq, until)) }
    }
}

/// Star or unstar a conversation: a form that works without JavaScript (303 back); with htmx it
/// answers with itself in its new state.
pub fn star_form(base: &str, starred: bool, csrf: &str) -> Markup {
    let action = if starred {
        "/favourites/remove"
    } else {
        "/favourites"
    };
    html! {
        form #star-form .star method="post" action=(action) hx-post=(action) hx-swap="outerHTML" {
            (csrf_field(csrf))
            input type="hidden" name="conversation" value=(base);
            @if starred {
                button.link type="submit" aria-pressed="true" title="Remove from Favourites" { "★ Starred" }
            } @else {
                button.link type="submit" aria-pressed="false" title="Add to Favourites" { "☆ Star" }
            }
        }
    }
}

pub fn composer(base: &str, state: &Composer<'_>, csrf: &str) -> Markup {
    html! {
        // Without JavaScript the form goes to `attachments` as a multipart form, which takes text
        // alone as well as files; app.js sends text alone to `messages` and files to
        // `attachments` (with a progress bar), and takes files dropped on the page or pasted.
        form #composer .composer method="post" action=(format!("{base}/attachments"))
            enctype="multipart/form-data"
            hx-post=(format!("{base}/messages")) hx-swap="none" {
            (csrf_field(csrf))
            input type="hidden" name="client_key" value=(state.client_key);
            label.sr-only for="composer-body" { "Message" }
            textarea #composer-body name="body" rows="1" maxlength="4000"
                placeholder="Write a message…" title="Enter sends, Shift+Enter starts a new line"
                aria-describedby="composer-error" aria-invalid=[state.error.map(|_| "true")] { (state.body) }
            input #composer-file .sr-only type="file" name="file" multiple;
            label.attach for="composer-file" title="Attach files" {
                // A paperclip, drawn here (an emoji depends on the fonts a machine has).
                svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true" focusable="false" {
                    path d="M9 7v9a3 3 0 0 0 6 0V6a5 5 0 0 0-10 0v10a7 7 0 0 0 14 0V8" fill="none"
                        stroke="currentColor" stroke-width="2" stroke-linecap="round" {}
                }
                span.sr-only { "Attach files" }
            }
            button.primary type="submit" { "Send" }
            p #composer-files .composer-files aria-live="polite" {}
            progress #composer-progress max="100" value="0" hidden aria-label="Upload progress" {}
            p #composer-error .field-error role="alert" { @if let Some(e) = state.error { (e) } }
            // Shown where there is a keyboard (app.css); on a touch screen Return is a new line.
            p.composer-hint aria-hidden="true" { "Enter sends · Shift+Enter for a new line" }
        }
    }
}

/// The home pane: what to do when no conversation is open.
pub fn welcome(me: &str) -> Markup {
    html! {
        section.welcome {
            h1 { "Hello, " (me) }
            p {
                "Open a room on the left, " a href="/rooms" { "browse all rooms" }
                ", create a new one, or pick a person to talk to privately."
            }
        }
    }
}

/// The shell: sidebar and main pane side by side (one at a time at phone width).
pub fn shell(sidebar: Markup, pane: Markup) -> Markup {
    html! {
        div.shell {
            (sidebar)
            main #main .pane { (pane) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poller_written_in_place_is_the_markup_maud_would_make() {
        // What the pollers were as maud templates.
        let made = |base: Option<&str>, after: i64, t: i64, calls: &Calls| match base {
            Some(base) => html! {
                div #poller hx-get=(format!("{base}/messages?after={after}")) hx-trigger="load, poll"
                    hx-swap="outerHTML" data-after=(after) data-t=(t) data-s=[calls.cursor.as_deref()]
                    data-signals=[calls.signals.as_deref()] {}
            },
            None => html! {
                div #poller hx-get="/feed" hx-trigger="load, poll" hx-swap="outerHTML" data-t=(t)
                    data-s=[calls.cursor.as_deref()] data-signals=[calls.signals.as_deref()] {}
            },
        };
        let signals = Calls {
            cursor: Some("1f.3-2.9".into()),
            signals: Some(r#"[{"kind":"offer","sdp":"a<b>&'c'"}]"#.into()),
        };
        for calls in [Calls::default(), Calls::page(), signals] {
            for base in ["/rooms/general", "/dm/o'neil", "/rooms/a&b\"<c>"] {
                assert_eq!(
                    poller(base, 42, 1_700_000_000_000, &calls).into_string(),
                    made(Some(base), 42, 1_700_000_000_000, &calls).into_string()
                );
            }
            assert_eq!(
                feed_poller(7, &calls).into_string(),
                made(None, 0, 7, &calls).into_string()
            );
        }
    }
}
