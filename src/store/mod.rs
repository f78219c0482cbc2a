//! SQL per entity. Plain queries with bound parameters; the same text runs on SQLite and
//! PostgreSQL through sqlx's Any driver, and the integration tests run it on both.

pub mod attachments;
pub mod calls;
pub mod favourites;
pub mod joining;
pub mod messages;
pub mod rooms;
pub mod search;
pub mod secrets;
pub mod users;

/// Someone counts as online when they were seen in the last minute (a held long-poll refreshes
/// that at least every 30 s).
pub const ONLINE_WINDOW_MS: i64 = 60_000;

/// A LIKE pattern matching its argument anywhere, wildcards in it taken literally (the admin's
/// search and the sidebar's search escape alike).
pub use parley_admin::like_pattern as contains_pattern;
