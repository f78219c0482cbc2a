//! The person's own menu in the header, and their profile page.

use maud::{Markup, html};

use super::Viewer;
use super::forms::{account_shell, csrf_field, field_error, notice};
use crate::domain::{Bio, DisplayName, Theme};

/// The person menu: their name in the header opens it (a `<details>`: a button to keyboards and
/// screen readers, open and shut without JavaScript; Escape and a click elsewhere shut it with
/// app.js). `.me` is exactly the username: app.js tells the viewer's own messages by it.
pub fn person_menu(username: &str, viewer: &Viewer<'_>) -> Markup {
    html! {
        details.person-menu #person-menu {
            summary title="Your profile, password, theme and log out" {
                @if !viewer.display_name.is_empty() {
                    span.me-display { (viewer.display_name) } " "
                }
                span.me { (username) }
            }
            div.person-panel {
                a href="/profile" { "Profile" }
                a href="/account/password" { "Password" }
                (theme_form(viewer))
                form method="post" action="/logout" {
                    (csrf_field(viewer.csrf))
                    button.link type="submit" { "Log out" }
                }
            }
        }
    }
}

/// Light, dark or the system's: one button each, the current one pressed. A plain form: the
/// answer is the page the person was on, drawn in the theme they chose.
fn theme_form(viewer: &Viewer<'_>) -> Markup {
    html! {
        form.theme-form method="post" action="/account/theme" {
            (csrf_field(viewer.csrf))
            fieldset {
                legend { "Theme" }
                @for theme in Theme::ALL {
                    button type="submit" name="theme" value=(theme.as_str())
                        aria-pressed=(if theme == viewer.theme { "true" } else { "false" }) {
                        (theme.label())
                    }
                }
            }
        }
    }
}

/// The profile form's state: what was typed, an error per field, or the notice that it was saved.
#[derive(Default)]
pub struct ProfileForm<'a> {
    pub display_name: &'a str,
    pub bio: &'a str,
    pub display_name_error: Option<&'a str>,
    pub bio_error: Option<&'a str>,
    pub notice: Option<&'a str>,
}

pub fn profile_page(viewer: &Viewer<'_>, form: &ProfileForm<'_>) -> Markup {
    let username = viewer.username.unwrap_or("");
    account_shell(
        "Your profile",
        viewer,
        html! {
            (notice(form.notice))
            form method="post" action="/profile" novalidate {
                (csrf_field(viewer.csrf))
                label for="display-name" { "Display name" }
                input #display-name type="text" name="display_name" value=(form.display_name)
                    maxlength=(DisplayName::MAX_CHARS) autocomplete="name"
                    aria-invalid=[form.display_name_error.map(|_| "true")]
                    aria-describedby=(if form.display_name_error.is_some() { "display-name-error display-name-hint" } else { "display-name-hint" });
                (field_error("display-name", form.display_name_error))
                p.hint #display-name-hint {
                    "Shown beside your username, " strong { (username) } ", which stays how people mention you. Empty shows your username alone."
                }
                label for="bio" { "About you" }
                textarea #bio name="bio" rows="3" maxlength=(Bio::MAX_CHARS)
                    aria-invalid=[form.bio_error.map(|_| "true")]
                    aria-describedby=(if form.bio_error.is_some() { "bio-error bio-hint" } else { "bio-hint" }) { (form.bio) }
                (field_error("bio", form.bio_error))
                p.hint #bio-hint { "Up to 200 characters, shown at the top of private conversations with you." }
                button.primary type="submit" { "Save profile" }
            }
            p { a href="/account/password" { "Change your password" } }
            p { a href="/" { "Back to the chat" } }
        },
    )
}
