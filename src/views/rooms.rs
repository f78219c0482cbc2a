//! "Browse rooms": every public room, what it is about, how many are in it and when someone last
//! wrote there, with a way in.

use maud::{Markup, html};

use super::forms::csrf_field;
use super::timeline::Reader;
use crate::store::rooms::DirectoryEntry;

pub fn browse(rooms: &[DirectoryEntry], query: &str, reader: &Reader, csrf: &str) -> Markup {
    html! {
        section #browse .browse-page aria-labelledby="browse-title" {
            h1 #browse-title { "Browse rooms" }
            form.browse-filter method="get" action="/rooms" role="search" {
                label for="browse-q" { "Filter rooms by name" }
                div.inline {
                    input #browse-q type="search" name="q" value=(query) maxlength="64" autocomplete="off";
                    button type="submit" { "Filter" }
                }
            }
            @if rooms.is_empty() {
                p.empty { @if query.is_empty() { "There are no rooms yet." } @else { "No rooms match." } }
            }
            ul #room-directory .room-directory {
                @for room in rooms { (entry(room, reader, csrf)) }
            }
        }
    }
}

fn entry(room: &DirectoryEntry, reader: &Reader, csrf: &str) -> Markup {
    let href = format!("/rooms/{}", room.name);
    html! {
        li id=(format!("room-{}", room.name)) {
            div.about {
                a.room-name href=(href) { span.hash aria-hidden="true" { "#" } (room.name) }
                @if !room.topic.is_empty() { p.topic { (room.topic) } }
                p.meta {
                    span.member-count {
                        (room.members) @if room.members == 1 { " member" } @else { " members" }
                    }
                    " · "
                    @match room.last_ms {
                        // In the reader's time zone already: app.js leaves it as it is.
                        Some(ms) => { "last message " time datetime=(super::chat::iso(ms)) data-local="1" { (reader.moment(ms)) } }
                        None => { "no messages yet" }
                    }
                }
            }
            @if room.joined > 0 {
                a.button href=(href) { "Open" }
            } @else {
                // The form that opens a room by name joins it (and 303s to it).
                form method="post" action="/rooms" {
                    (csrf_field(csrf))
                    input type="hidden" name="name" value=(room.name);
                    button.primary type="submit" aria-label=(format!("Join #{}", room.name)) { "Join" }
                }
            }
        }
    }
}
