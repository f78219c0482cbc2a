//! The chat's components: sidebar lists, the conversation pane, messages, the composer.

use maud::{Markup, html};
use time::OffsetDateTime;

use super::forms::{csrf_field, field_error};
use crate::store::messages::Message;
use crate::store::rooms::{Member, RoomListing};
use crate::store::users::Person;

/// One message. Rendered once per message and shared by every poll that delivers it, so it holds
/// nothing that depends on who is looking.
pub fn message(m: &Message) -> Markup {
    html! {
        article.message id=(format!("m-{}", m.seq)) data-message-id=(m.seq) {
            header {
                span.author { (m.author) }
                " "
                (timestamp(m.created_ms))
            }
            p.body { (linkified(&m.body)) }
        }
    }
}

pub fn render_message(m: &Message) -> String {
    message(m).into_string()
}

/// `<time>` in UTC; app.js shows it in the reader's own time zone.
pub fn timestamp(ms: i64) -> Markup {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let iso = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let label = format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    );
    html! { time datetime=(iso) title=(label) { (format!("{:02}:{:02}", t.hour(), t.minute())) } }
}

/// A message body as text with its line breaks kept and its web addresses made into links.
/// Every piece of user text goes through maud's escaping; only the `<br>` is ours.
fn linkified(body: &str) -> Markup {
    let mut finder = linkify::LinkFinder::new();
    finder.kinds(&[linkify::LinkKind::Url]);
    html! {
        @for (i, line) in body.split('\n').enumerate() {
            @if i > 0 { br; }
            @for span in finder.spans(line) {
                @let text = span.as_str();
                @if span.kind().is_some() && (text.starts_with("https://") || text.starts_with("http://")) {
                    a href=(text) rel="noopener noreferrer nofollow ugc" target="_blank" { (text) }
                } @else {
                    (text)
                }
            }
        }
    }
}

/// The search box in the header: a plain GET form to the home page, filtering the sidebar as
/// you type when htmx is there.
pub fn search_box(q: &str) -> Markup {
    html! {
        form.search method="get" action="/" role="search" {
            label.sr-only for="search-q" { "Search people and rooms" }
            input #search-q type="search" name="q" value=(q) placeholder="Search people and rooms"
                autocomplete="off" maxlength="64"
                hx-get="/sidebar" hx-trigger="input changed delay:250ms, search"
                hx-include="#sidebar-current" hx-target="#sidebar-lists" hx-swap="outerHTML";
        }
    }
}

pub struct Sidebar<'a> {
    pub me: &'a str,
    pub rooms: &'a [RoomListing],
    pub people: &'a [(Person, i64)],
    pub now_ms: i64,
    pub query: &'a str,
    /// The open conversation's URL, to mark it in the lists.
    pub current: &'a str,
}

pub fn sidebar(s: &Sidebar<'_>, csrf: &str, room_error: Option<(&str, &str)>) -> Markup {
    html! {
        aside #sidebar .sidebar aria-label="Rooms and people" {
            (new_room_form(csrf, room_error))
            (sidebar_lists(s))
        }
    }
}

/// The two lists, refreshed every few seconds (unread counts, who is online) and by the search box.
pub fn sidebar_lists(s: &Sidebar<'_>) -> Markup {
    let refresh = format!("/sidebar?current={}", s.current);
    html! {
        div #sidebar-lists hx-get=(refresh) hx-trigger="every 15s" hx-include="#search-q" hx-swap="outerHTML" {
            // What the search box sends along, so that its results keep the open conversation.
            input #sidebar-current type="hidden" name="current" value=(s.current);
            @if !s.query.is_empty() {
                p.search-note { "Results for “" (s.query) "” · " a href="/" { "clear" } }
            }
            (room_list(s))
            (people_list(s))
        }
    }
}

pub fn room_list(s: &Sidebar<'_>) -> Markup {
    html! {
        section #rooms aria-labelledby="rooms-heading" {
            h2 #rooms-heading { "Rooms" }
            @if s.rooms.is_empty() {
                p.empty { @if s.query.is_empty() { "No rooms yet. Create one above." } @else { "No rooms match." } }
            }
            ul.list #room-list {
                @for room in s.rooms {
                    @let href = format!("/rooms/{}", room.name);
                    li {
                        a href=(href) aria-current=[(href == s.current).then_some("page")] title=(room.topic) {
                            span.hash aria-hidden="true" { "#" }
                            span.name { (room.name) }
                            (unread_badge(room.unread().unwrap_or(0)))
                        }
                    }
                }
            }
        }
    }
}

pub fn people_list(s: &Sidebar<'_>) -> Markup {
    html! {
        section #people aria-labelledby="people-heading" {
            h2 #people-heading { "People" }
            @if s.people.is_empty() { p.empty { "Nobody matches." } }
            ul.list #people-list {
                @for (person, unread) in s.people {
                    // The viewer is here, whatever the last presence write says.
                    @let online = person.username == s.me || person.is_online(s.now_ms);
                    @let href = format!("/dm/{}", person.username);
                    li.person data-online=(online) {
                        @if person.username == s.me {
                            span.row {
                                (presence_dot(online))
                                span.name { (person.username) }
                                span.muted { "(you)" }
                            }
                        } @else {
                            a href=(href) aria-current=[(href == s.current).then_some("page")] {
                                (presence_dot(online))
                                span.name { (person.username) }
                                (unread_badge(*unread))
                            }
                        }
                    }
                }
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

fn unread_badge(unread: i64) -> Markup {
    html! {
        @if unread > 0 {
            span.badge { (unread) span.sr-only { " unread" } }
        }
    }
}

fn new_room_form(csrf: &str, error: Option<(&str, &str)>) -> Markup {
    let (value, message) = error.unwrap_or(("", ""));
    let message = (!message.is_empty()).then_some(message);
    html! {
        form.new-room method="post" action="/rooms" {
            (csrf_field(csrf))
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
    pub members: &'a [Member],
    pub messages: &'a [Message],
    /// The sequence number to poll after (the newest message the page shows).
    pub last_seq: i64,
    pub now_ms: i64,
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
                    h1 #conversation-title { (c.title) }
                    @if let Some(topic) = c.topic { (topic_line(topic, false)) }
                }
                details.members {
                    summary { (member_count(c.members, false)) }
                    (member_list(c.members, c.now_ms, false))
                    @if c.topic.is_some() { (topic_form(&c.base, c.topic.unwrap_or(""), csrf)) }
                }
            }
            div.scroller #scroller {
                div #messages role="log" aria-live="polite" aria-relevant="additions" aria-label="Messages" {
                    @if let (true, Some(first)) = (older, first) { (history_loader(&c.base, first)) }
                    @if c.messages.is_empty() {
                        p.empty #no-messages { "No messages yet. Say hello!" }
                    }
                    @for m in c.messages { (message(m)) }
                    (poller(&c.base, c.last_seq))
                }
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
                li { (presence_dot(m.last_seen_ms > now_ms - crate::store::ONLINE_WINDOW_MS)) (m.username) }
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

/// The element that holds the next long-poll. It replaces itself with the new messages followed
/// by a fresh poller carrying the new cursor; app.js re-fires it after a 204 or an error.
pub fn poller(base: &str, after: i64) -> Markup {
    html! {
        div #poller hx-get=(format!("{base}/messages?after={after}")) hx-trigger="load, poll"
            hx-swap="outerHTML" data-after=(after) {}
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

/// A page of older messages for htmx: a loader for the page before it (if any), then the messages.
pub fn older_messages(base: &str, messages: &[Message], more: bool) -> Markup {
    html! {
        @if let (true, Some(first)) = (more, messages.first()) { (history_loader(base, first.seq)) }
        @for m in messages { (message(m)) }
    }
}

pub fn composer(base: &str, state: &Composer<'_>, csrf: &str) -> Markup {
    html! {
        form #composer .composer method="post" action=(format!("{base}/messages"))
            hx-post=(format!("{base}/messages")) hx-swap="none" {
            (csrf_field(csrf))
            input type="hidden" name="client_key" value=(state.client_key);
            label.sr-only for="composer-body" { "Message" }
            textarea #composer-body name="body" rows="1" required maxlength="4000"
                placeholder="Write a message…" title="Enter sends, Shift+Enter starts a new line"
                aria-describedby="composer-error" aria-invalid=[state.error.map(|_| "true")] { (state.body) }
            button.primary type="submit" { "Send" }
            p #composer-error .field-error role="alert" { @if let Some(e) = state.error { (e) } }
        }
    }
}

/// The home pane: what to do when no conversation is open.
pub fn welcome(me: &str) -> Markup {
    html! {
        section.welcome {
            h1 { "Hello, " (me) }
            p { "Open a room on the left, create a new one, or pick a person to talk to privately." }
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
