//! SQL per entity. Plain queries with bound parameters; the same text runs on SQLite and
//! PostgreSQL through sqlx's Any driver, and the integration tests run it on both.

pub mod messages;
pub mod rooms;
pub mod users;

/// Someone counts as online when they were seen in the last minute (a held long-poll refreshes
/// that at least every 30 s).
pub const ONLINE_WINDOW_MS: i64 = 60_000;

/// A LIKE pattern matching `needle` anywhere, with LIKE's wildcards in the input taken literally.
pub fn contains_pattern(needle: &str) -> String {
    let mut out = String::with_capacity(needle.len() + 2);
    out.push('%');
    for c in needle.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}
