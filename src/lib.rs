//! Parley: a real-time web chat served by one binary.
//!
//! The folders follow the architecture: `web/` holds one module per feature (each owning its
//! routes), `views/` the HTML components they share, `store/` the SQL per entity, `realtime`
//! the long-poll fan-out, and `admin_site` what Parley registers with the generic admin crate.

pub mod admin_site;
pub mod assets;
pub mod backup;
pub mod cache;
pub mod config;
pub mod db;
pub mod domain;
pub mod files;
pub mod media;
pub mod metrics;
pub mod password;
pub mod presence;
pub mod realtime;
pub mod signals;
pub mod store;
pub mod throttle;
pub mod transfer;
pub mod views;
pub mod web;

pub use config::{Cli, Command, Settings};
pub use web::{App, serve};

/// Unix time in milliseconds: the one time representation in the database.
pub use parley_admin::now_ms;
