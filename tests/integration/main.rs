//! Integration tests: each starts the real server on 127.0.0.1 with a fresh database and talks
//! HTTP to it with a cookie-keeping client, as a browser would. Every test runs on SQLite, and
//! again on PostgreSQL when one is reachable (see `support::postgres_url`).

mod support;

mod access_log;
mod accounts;
pub mod admin;
mod assets;
mod backup;
mod browser;
mod browser_calls;
mod browser_files;
mod browser_pages;
mod browser_profile;
mod browser_reading;
mod browser_rooms;
pub mod calls;
mod changes;
mod chat;
mod connections;
mod delivery;
mod errors;
mod files;
mod input;
mod joining;
mod limits;
pub mod metrics;
pub mod multiprocess;
mod profile;
mod reading;
mod repoll;
mod rooms;
mod search;
mod sessions;
mod timeline;
mod transfer;
