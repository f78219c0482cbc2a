//! How a conversation reads: messages grouped under their author's name, days divided, and
//! everyone's initials in a colour of their own.
//!
//! Pages are made for one reader, so they are grouped and divided here, in the reader's time zone
//! (a cookie app.js sets; UTC without it). A message delivered live is rendered once for every
//! listener, and what grouping needs is what every message shows anyway (its author and its
//! `<time datetime>`, to the second): app.js groups and divides it where it lands, with the same
//! rules (see `arrange` in assets/app.js).

use maud::{Markup, html};
use time::{Date, OffsetDateTime, UtcOffset};

use crate::store::messages::Message;

/// Messages by one person this close together read as one group, under one name and time.
pub const GROUP_WITHIN_MS: i64 = 5 * 60 * 1000;

/// Who is reading, as far as dates go: their time zone, and what "today" is.
#[derive(Debug, Clone, Copy)]
pub struct Reader {
    pub offset: UtcOffset,
    pub now_ms: i64,
}

impl Reader {
    /// A reader `minutes` east of UTC (what app.js reads from the browser); anything beyond the
    /// world's time zones (±14 hours) is UTC.
    pub fn at(minutes: i32, now_ms: i64) -> Self {
        let offset = (-14 * 60..=14 * 60)
            .contains(&minutes)
            .then(|| UtcOffset::from_whole_seconds(minutes * 60).ok())
            .flatten()
            .unwrap_or(UtcOffset::UTC);
        Reader { offset, now_ms }
    }

    fn date(&self, ms: i64) -> Date {
        OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .to_offset(self.offset)
            .date()
    }

    /// "Today", "Yesterday", "Fri 28 Nov", or "Fri 28 Nov 2025" for another year than this one.
    pub fn day_label(&self, ms: i64) -> String {
        let (day, today) = (self.date(ms), self.date(self.now_ms));
        if day == today {
            return "Today".into();
        }
        if today.previous_day() == Some(day) {
            return "Yesterday".into();
        }
        let weekday = &day.weekday().to_string()[..3];
        let month = &day.month().to_string()[..3];
        if day.year() == today.year() {
            format!("{weekday} {} {month}", day.day())
        } else {
            format!("{weekday} {} {month} {}", day.day(), day.year())
        }
    }

    /// The day as a number, `20261128`, which app.js computes alike for the divider it checks.
    fn day_key(&self, ms: i64) -> i32 {
        let d = self.date(ms);
        d.year() * 10_000 + i32::from(u8::from(d.month())) * 100 + i32::from(d.day())
    }

    /// "Today 14:05", "Fri 28 Nov 09:30": a moment in the reader's time zone.
    pub fn moment(&self, ms: i64) -> String {
        let t = OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .to_offset(self.offset);
        format!("{} {:02}:{:02}", self.day_label(ms), t.hour(), t.minute())
    }

    pub fn same_day(&self, a: i64, b: i64) -> bool {
        self.date(a) == self.date(b)
    }
}

/// Whether `m` continues the group of `prev`: same author, both written by people (records of
/// calls and topics stand alone), within five minutes and on the same day.
pub fn continues(reader: &Reader, prev: &Message, m: &Message) -> bool {
    prev.kind.is_empty()
        && m.kind.is_empty()
        && prev.author == m.author
        && (0..GROUP_WITHIN_MS).contains(&(m.created_ms - prev.created_ms))
        && reader.same_day(prev.created_ms, m.created_ms)
}

/// The divider above the first message of a day.
pub fn day_divider(reader: &Reader, ms: i64) -> Markup {
    let label = reader.day_label(ms);
    html! {
        div.day-divider role="separator" aria-label=(label) data-day=(reader.day_key(ms)) {
            span { (label) }
        }
    }
}

/// A person's initials in a circle of their colour. The name is always written beside it, so it
/// is hidden from assistive technology.
pub fn avatar(name: &str) -> Markup {
    html! {
        span class=(format!("avatar c{}", colour_of(name))) aria-hidden="true" { (initials(name)) }
    }
}

/// The width and height of a picture avatar as stored: the largest it is drawn (2.1rem) on a
/// screen of twice the density, cropped to a square.
pub const PICTURE_SIZE: u32 = 96;

/// A person's avatar: their picture when they have one (`picture` is its file store key), else
/// [`avatar`], byte for byte. Decorative either way: their name is written beside it.
pub fn avatar_of(name: &str, picture: &str) -> Markup {
    if picture.is_empty() {
        return avatar(name);
    }
    html! {
        img.avatar src=(avatar_url(picture)) alt="" width=(PICTURE_SIZE) height=(PICTURE_SIZE);
    }
}

/// Where a picture avatar is served: its key's last part (`{32 hex}.png`), the route puts the
/// rest back (see `web::profile::avatar`).
pub fn avatar_url(key: &str) -> String {
    format!("/avatars/{}", key.rsplit('/').next().unwrap_or(key))
}

/// A person's display name, when they have one, shown before their username (which is theirs
/// alone and stays who they are): "Alice Smith alice", the username muted (app.css). Nothing at
/// all for someone without one, so their messages are not a byte longer.
pub fn display_name(name: &str) -> Markup {
    html! {
        @if !name.is_empty() { bdi.display-name { (name) } " " }
    }
}

/// The first letter of a name, or of its first two parts (`mary_jane` → MJ).
pub fn initials(name: &str) -> String {
    let mut parts = name.split(['_', '.', '-']).filter(|p| !p.is_empty());
    let first = parts.next().and_then(|p| p.chars().next());
    let second = parts.next().and_then(|p| p.chars().next());
    first
        .into_iter()
        .chain(second)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// How many avatar colours there are (`.avatar.c0` … `.c7` in app.css, each with white text
/// at 4.5:1 or more).
pub const COLOURS: u32 = 8;

/// One of the avatar colours for a name, the same wherever and whenever it is drawn (FNV-1a of
/// the name in lower case: not `std`'s hasher, whose output may change between releases).
pub fn colour_of(name: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in name.to_ascii_lowercase().bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % COLOURS
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3600 * 1000;
    // 2026-11-28 (a Saturday) 12:00 UTC.
    const NOON: i64 = 1_795_867_200_000;

    #[test]
    fn days_are_named_from_the_readers_today() {
        let utc = Reader::at(0, NOON);
        assert_eq!(utc.day_label(NOON - 3_600_000), "Today");
        assert_eq!(utc.day_label(NOON - DAY), "Yesterday");
        assert_eq!(utc.day_label(NOON - 2 * DAY), "Thu 26 Nov");
        assert_eq!(utc.day_label(NOON - 365 * DAY), "Fri 28 Nov 2025");
    }

    #[test]
    fn midnight_is_the_readers_own() {
        // 23:30 UTC on the 27th is already the 28th half an hour east of London and beyond.
        let late = NOON - DAY + 11 * 3_600_000 + 1_800_000;
        assert_eq!(Reader::at(0, NOON).day_label(late), "Yesterday");
        assert_eq!(Reader::at(60, NOON).day_label(late), "Today");
        assert!(!Reader::at(0, NOON).same_day(late, late + 3_600_000));
        assert!(Reader::at(-120, NOON).same_day(late, late + 3_600_000));
        // Nonsense is UTC.
        assert_eq!(Reader::at(100_000, NOON).offset, UtcOffset::UTC);
        // A cookie may say anything: the smallest i32 has no absolute value.
        assert_eq!(Reader::at(i32::MIN, NOON).offset, UtcOffset::UTC);
    }

    #[test]
    fn initials_and_colours_are_stable() {
        assert_eq!(initials("alice"), "A");
        assert_eq!(initials("mary_jane.x"), "MJ");
        assert_eq!(initials("-bob"), "B");
        assert_eq!(colour_of("Alice"), colour_of("alice"));
        let spread: std::collections::HashSet<u32> = ["alice", "bob", "carol", "dave", "erin"]
            .iter()
            .map(|n| colour_of(n))
            .collect();
        assert!(spread.len() > 2, "names spread over the colours");
    }

    #[test]
    fn a_person_without_a_picture_keeps_the_initials_byte_for_byte() {
        assert_eq!(
            avatar_of("alice", "").into_string(),
            avatar("alice").into_string()
        );
        assert_eq!(
            avatar_of("alice", "a/3a/3a9c.png").into_string(),
            r#"<img class="avatar" src="/avatars/3a9c.png" alt="" width="96" height="96">"#
        );
    }
}
