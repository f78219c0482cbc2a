//! A generic admin area in the manner of Django's, for poem + maud + sqlx (Any driver).
//!
//! The crate knows nothing about the application: it is given [`ModelAdmin`] descriptions of
//! tables and an [`AdminHost`] that answers who is logged in and sets passwords. What a write
//! means to the application (dropping caches, ending sessions, deleting its own way) is said on
//! each model's registration: [`ModelAdmin::after_save`], [`ModelAdmin::after_delete`] and
//! [`ModelAdmin::delete_model`]; which rows a user may see, by [`ModelAdmin::row_filter`]. It
//! serves Django's URL scheme under its mount path (by default `/admin`):
//!
//! | URL | |
//! |---|---|
//! | `/admin/` | models with counts, and the current user's recent actions |
//! | `/admin/{model}/` | change list: `?q=` search, `?o=` ordering by list column (1-based, `-` reverses), `?p=` page (1-based), filters by field name |
//! | `/admin/{model}/add/` | add form |
//! | `/admin/{model}/{id}/change/` | change form |
//! | `/admin/{model}/{id}/delete/` | confirmation (GET) and deletion (POST with `post=yes`) |
//! | `/admin/{model}/{id}/history/` | the object's entries in `admin_log` |
//! | `/admin/{model}/{id}/password/` | password form, for models that opt in |
//!
//! Access is checked on every request: anonymous users are sent to
//! [`AdminHost::login_url`], logged-in users who are not active staff get 403, and each model's
//! [`PermissionRule`] decides what staff may do (by default everything; see
//! [`only_superusers_delete`]).
//!
//! Writes are logged in the crate's own `admin_log` table, which the host creates by calling
//! [`migrate`] at start (after its own migrations). Every model needs an integer `id` primary key.

mod clock;
mod db;
mod host;
mod html;
mod http;
mod migrate;
mod model;
mod site;
mod views;

use std::sync::Arc;

use sqlx::AnyPool;

pub use clock::now_ms;
pub use host::{AdminHost, AdminUser, BoxFuture, WriteAction};
pub use http::{cookie, cookie_in, cookie_str};
pub use migrate::{Schema, migrate, schema};
pub use model::{
    AfterDelete, AfterSave, BeforeSave, DeleteModel, Field, FieldErrors, FieldKind, ModelAdmin,
    OnDelete, Ordering, PermissionRule, Perms, Related, RowFilter, STR_COLUMN, SaveKind, Unique,
    Validator, Value, Values, only_superusers_delete, staff_may_do_everything,
};
pub use site::AdminEndpoint;
pub use views::changelist::like_pattern;

/// The admin site under construction.
pub struct Admin {
    site: site::Site,
}

impl Admin {
    pub fn new(pool: AnyPool, host: Arc<dyn AdminHost>) -> Self {
        Self {
            site: site::Site {
                name: "Site administration".to_owned(),
                site_url: "/".to_owned(),
                logout_url: "/logout".to_owned(),
                base: "/admin".to_owned(),
                user_table: "users",
                user_display: "username",
                models: Vec::new(),
                host,
                db: pool,
            },
        }
    }

    /// Adds a model; panics if the description names unknown fields or a slug twice.
    pub fn register(mut self, model: ModelAdmin) -> Self {
        model.check();
        assert!(
            self.site.models.iter().all(|m| m.slug != model.slug),
            "model {} registered twice",
            model.slug
        );
        self.site.models.push(model);
        self
    }

    pub fn site_name(mut self, name: impl Into<String>) -> Self {
        self.site.name = name.into();
        self
    }

    /// The "View site" link.
    pub fn site_url(mut self, url: impl Into<String>) -> Self {
        self.site.site_url = url.into();
        self
    }

    /// Where the "Log out" form posts (with the CSRF token).
    pub fn logout_url(mut self, url: impl Into<String>) -> Self {
        self.site.logout_url = url.into();
        self
    }

    /// Where the endpoint is nested ("/admin"); used for links, redirects and the cookie path.
    pub fn mount_path(mut self, path: impl Into<String>) -> Self {
        self.site.base = path.into().trim_end_matches('/').to_owned();
        self
    }

    /// The table `admin_log.user_id` refers to, and a SQL expression naming its rows.
    pub fn user_table(mut self, table: &'static str, display: &'static str) -> Self {
        self.site.user_table = table;
        self.site.user_display = display;
        self
    }

    /// The endpoint to nest at the mount path: `Route::new().nest("/admin", admin.routes())`.
    pub fn routes(self) -> AdminEndpoint {
        AdminEndpoint {
            site: Arc::new(self.site),
        }
    }
}
