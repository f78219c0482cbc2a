//! The person's own pages: their mentions, and their style sheet.

use maud::{Markup, html};

use super::chat::timestamp;
use super::timeline::display_name;
use crate::store::messages::Mentioned;
use crate::store::rooms::RoomKind;

/// Where a message is: its conversation's URL and name as the viewer knows them, from the room's
/// kind, its name (a public room) and the other person (a private conversation).
pub fn place(kind: RoomKind, room: Option<&str>, other: Option<&str>) -> (String, String) {
    match (kind, room, other) {
        (RoomKind::Public, Some(room), _) => (format!("/rooms/{room}"), format!("#{room}")),
        (RoomKind::Direct, _, Some(other)) => (format!("/dm/{other}"), other.to_owned()),
        _ => ("/".to_owned(), "a conversation".to_owned()),
    }
}

/// Who wrote a message listed away from its conversation, where and when: "Alice Smith alice
/// in #general 14:05".
pub fn byline(author: &str, author_display: &str, place: &str, created_ms: i64) -> Markup {
    html! {
        (display_name(author_display)) span.author { (author) } " in " span.where { (place) } " " (timestamp(created_ms))
    }
}

pub fn mentions(found: &[Mentioned]) -> Markup {
    html! {
        section #mentions .mentions-page aria-labelledby="mentions-title" {
            h1 #mentions-title { "Mentions" }
            @if found.is_empty() {
                p.empty { "Nobody has mentioned you yet. When someone writes @ and your name, it shows here." }
            }
            ol.mention-list {
                @for m in found {
                    @let (url, name) = place(m.room_kind, m.room_name.as_deref(), m.other.as_deref());
                    li.mentioned {
                        a href=(format!("{url}#m-{}", m.seq)) {
                            (byline(&m.author, &m.author_display, &name, m.created_ms))
                        }
                        p.body { (m.body) }
                    }
                }
            }
        }
    }
}

/// The viewer's own rules over messages that are the same for everyone: their mentions stand
/// out, their reactions are marked, the name is a CSS string (usernames have no quotes or
/// backslashes: letters, digits, `_ . -`).
pub fn my_style(username: &str) -> String {
    let me = username.to_ascii_lowercase();
    format!(
        ".message[data-mentions~=\"{me}\"] {{ background: var(--mention-bg); box-shadow: inset 3px 0 0 var(--accent); }}\n\
         .mention[data-user=\"{me}\"] {{ font-weight: 600; color: var(--accent); }}\n\
         .chip[data-by~=\"{me}\"] {{ border-color: var(--accent); background: var(--mention-bg); }}\n"
    )
}
