//! What the admin needs from the application that mounts it. The admin owns no sessions, no
//! password hashing and no CSRF checking: those stay in the app, in one place.

use std::future::Future;
use std::pin::Pin;

use poem::Request;

/// A boxed future, so that [`AdminHost`] stays object safe without the async-trait crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The logged-in person as the admin sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminUser {
    pub id: i64,
    pub username: String,
    pub is_staff: bool,
    pub is_superuser: bool,
    pub is_active: bool,
}

impl AdminUser {
    /// Like Django: superusers still need `is_staff` to enter the admin area.
    pub fn may_enter(&self) -> bool {
        self.is_active && self.is_staff
    }
}

/// What a save did, for a model's [`crate::ModelAdmin::after_save`] hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteAction {
    Added,
    Changed,
    /// The password of the object was set through the password form.
    PasswordChanged,
}

/// Implemented by the application that mounts the admin.
pub trait AdminHost: Send + Sync + 'static {
    /// The user behind this request, if any. Asked on every admin request, so a user who was
    /// deactivated or lost staff rights a moment ago is refused at once.
    fn current_user<'a>(&'a self, req: &'a Request) -> BoxFuture<'a, Option<AdminUser>>;

    /// The token the app's CSRF middleware expects. The admin puts it in every form (field
    /// `csrf_token`) and in `<meta name="csrf-token">`; checking it is the app's job.
    fn csrf_token(&self, req: &Request) -> String;

    /// Where to send someone who is not logged in; `next` is the admin URL they asked for.
    fn login_url(&self, next: &str) -> String;

    /// Validate and hash `raw` and store it as the password of user `user_id`. The error text is
    /// shown next to the password field. The admin never sees or stores a hash itself.
    ///
    /// `req` is the admin request: when `user_id` is the acting user, the host should keep this
    /// session logged in under the new password (Django's `update_session_auth_hash`) while
    /// ending the user's other sessions.
    fn set_password<'a>(
        &'a self,
        req: &'a Request,
        user_id: i64,
        raw: &'a str,
    ) -> BoxFuture<'a, Result<(), String>>;
}
