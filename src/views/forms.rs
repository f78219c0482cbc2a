//! Forms: the account forms and the small pieces every form uses.

use maud::{Markup, html};

use super::{Viewer, page};

pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(token); }
}

/// A field's error, tied to its input by id for screen readers.
pub fn field_error(id: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(error) = error {
            p.field-error id=(format!("{id}-error")) role="alert" { (error) }
        }
    }
}

pub struct AccountForm<'a> {
    pub username: &'a str,
    pub username_error: Option<&'a str>,
    pub password_error: Option<&'a str>,
    pub form_error: Option<&'a str>,
    pub next: Option<&'a str>,
    /// The invite the registration goes on with (`--registration invite`).
    pub invite: Option<&'a str>,
    /// Whether the log-in page offers to create an account (registration is open).
    pub sign_up: bool,
}

impl AccountForm<'_> {
    pub fn empty() -> Self {
        Self {
            username: "",
            username_error: None,
            password_error: None,
            form_error: None,
            next: None,
            invite: None,
            sign_up: true,
        }
    }
}

pub fn register_page(viewer: &Viewer<'_>, form: &AccountForm<'_>) -> Markup {
    account_page(
        "Create your account",
        "/register",
        "Create account",
        true,
        viewer,
        form,
        html! {
            p { "Already have an account? " a href="/login" { "Log in" } }
        },
    )
}

pub fn login_page(viewer: &Viewer<'_>, form: &AccountForm<'_>) -> Markup {
    account_page(
        "Log in to Parley",
        "/login",
        "Log in",
        false,
        viewer,
        form,
        html! {
            @if form.sign_up {
                p { "New here? " a href="/register" { "Create an account" } }
            }
        },
    )
}

fn account_page(
    title: &str,
    action: &str,
    submit: &str,
    new_password: bool,
    viewer: &Viewer<'_>,
    form: &AccountForm<'_>,
    footer: Markup,
) -> Markup {
    let autocomplete = if new_password {
        "new-password"
    } else {
        "current-password"
    };
    account_shell(
        title,
        viewer,
        html! {
            @if let Some(error) = form.form_error {
                p.form-error role="alert" { (error) }
            }
            form method="post" action=(action) novalidate {
                (csrf_field(viewer.csrf))
                @if let Some(next) = form.next { input type="hidden" name="next" value=(next); }
                @if let Some(invite) = form.invite { input type="hidden" name="invite" value=(invite); }
                label for="username" { "Username" }
                input #username type="text" name="username" value=(form.username) required
                    autocomplete="username" autocapitalize="none" spellcheck="false" maxlength="32"
                    aria-invalid=[form.username_error.map(|_| "true")]
                    aria-describedby=[form.username_error.map(|_| "username-error")];
                (field_error("username", form.username_error))
                @if new_password {
                    p.hint { "3–32 letters, digits, _ . or -" }
                }
                (password_input("password", "password", "Password", autocomplete, form.password_error))
                @if new_password {
                    p.hint { "At least 8 characters." }
                }
                button.primary type="submit" { (submit) }
            }
            (footer)
        },
    )
}

/// `/reset/{token}`: a new password for `username`, through a link staff made.
pub fn reset_page(viewer: &Viewer<'_>, token: &str, username: &str, error: Option<&str>) -> Markup {
    account_shell(
        "Choose a new password",
        viewer,
        html! {
            p { "For the account " strong { (username) } ". This link works once." }
            form method="post" action=(format!("/reset/{token}")) novalidate {
                (csrf_field(viewer.csrf))
                input type="text" name="username" value=(username) autocomplete="username"
                    hidden readonly;
                (password_input("new_password", "new_password", "New password", "new-password", error))
                p.hint { "At least 8 characters." }
                button.primary type="submit" { "Set password and log in" }
            }
        },
    )
}

/// What a good form post did, said at the top of the page it led back to.
pub(super) fn notice(text: Option<&str>) -> Markup {
    html! {
        @if let Some(text) = text { p.notice role="status" { (text) } }
    }
}

/// The frame of the account pages: a card with a title.
pub(super) fn account_shell(title: &str, viewer: &Viewer<'_>, body: Markup) -> Markup {
    page(
        title,
        viewer,
        "page-account",
        html! {
            main #main .account {
                h1 { (title) }
                (body)
            }
        },
    )
}

/// A labelled password input with its error, tied together for screen readers.
fn password_input(
    id: &str,
    name: &str,
    label: &str,
    autocomplete: &str,
    error: Option<&str>,
) -> Markup {
    html! {
        label for=(id) { (label) }
        input id=(id) type="password" name=(name) required autocomplete=(autocomplete)
            aria-invalid=[error.map(|_| "true")]
            aria-describedby=[error.map(|_| format!("{id}-error"))];
        (field_error(id, error))
    }
}

/// The change-password form's state: an error per field, or the notice that it worked.
#[derive(Default)]
pub struct PasswordForm<'a> {
    pub current_error: Option<&'a str>,
    pub new_error: Option<&'a str>,
    pub notice: Option<&'a str>,
}

pub fn password_page(viewer: &Viewer<'_>, form: &PasswordForm<'_>) -> Markup {
    account_shell(
        "Change your password",
        viewer,
        html! {
            (notice(form.notice))
            form method="post" action="/account/password" novalidate {
                (csrf_field(viewer.csrf))
                // For password managers: whose password this is.
                input type="hidden" name="username" autocomplete="username"
                    value=(viewer.username.unwrap_or(""));
                (password_input("current-password", "current_password", "Current password",
                    "current-password", form.current_error))
                (password_input("new-password", "new_password", "New password", "new-password",
                    form.new_error))
                p.hint { "At least 8 characters. Your other sessions are logged out; this one stays." }
                button.primary type="submit" { "Change password" }
            }
            p { a href="/" { "Back to the chat" } }
        },
    )
}
