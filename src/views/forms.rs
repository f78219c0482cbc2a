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
}

impl AccountForm<'_> {
    pub fn empty() -> Self {
        Self {
            username: "",
            username_error: None,
            password_error: None,
            form_error: None,
            next: None,
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
            p { "New here? " a href="/register" { "Create an account" } }
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
    page(
        title,
        viewer,
        "page-account",
        html! {
            main #main .account {
                h1 { (title) }
                @if let Some(error) = form.form_error {
                    p.form-error role="alert" { (error) }
                }
                form method="post" action=(action) novalidate {
                    (csrf_field(viewer.csrf))
                    @if let Some(next) = form.next { input type="hidden" name="next" value=(next); }
                    label for="username" { "Username" }
                    input #username type="text" name="username" value=(form.username) required
                        autocomplete="username" autocapitalize="none" spellcheck="false" maxlength="32"
                        aria-invalid=[form.username_error.map(|_| "true")]
                        aria-describedby=[form.username_error.map(|_| "username-error")];
                    (field_error("username", form.username_error))
                    @if new_password {
                        p.hint { "3–32 letters, digits, _ . or -" }
                    }
                    label for="password" { "Password" }
                    input #password type="password" name="password" required autocomplete=(autocomplete)
                        aria-invalid=[form.password_error.map(|_| "true")]
                        aria-describedby=[form.password_error.map(|_| "password-error")];
                    (field_error("password", form.password_error))
                    @if new_password {
                        p.hint { "At least 8 characters." }
                    }
                    button.primary type="submit" { (submit) }
                }
                (footer)
            }
        },
    )
}
