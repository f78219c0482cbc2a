//! The person's own menu in the header, and their profile page.

use maud::{Markup, html};

use super::Viewer;
use super::forms::{account_shell, csrf_field, field_error, notice};
use super::timeline::avatar_of;
use crate::domain::{Bio, DisplayName, Theme};

/// The person menu: their name in the header opens it (a `<details>`: a button to keyboards and
/// screen readers, open and shut without JavaScript; Escape and a click elsewhere shut it with
/// app.js). `.me` is exactly the username: app.js tells the viewer's own messages by it.
pub fn person_menu(username: &str, viewer: &Viewer<'_>) -> Markup {
    html! {
        details.person-menu #person-menu {
            summary title="Your profile, password, theme and log out" {
                @if !viewer.display_name.is_empty() {
                    bdi.me-display { (viewer.display_name) } " "
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
    /// Their picture's key (empty for none), and why the one they sent was refused.
    pub avatar: &'a str,
    pub avatar_error: Option<&'a str>,
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
            (picture_form(viewer, username, form))
            p { a href="/account/password" { "Change your password" } }
            p { a href="/" { "Back to the chat" } }
        },
    )
}

/// The picture shown beside the person's name: the current one (or the initials), a multipart
/// form to send another (the token first: the handler checks it before it reads the picture),
/// and Remove when there is one. Plain forms: they work without JavaScript.
fn picture_form(viewer: &Viewer<'_>, username: &str, form: &ProfileForm<'_>) -> Markup {
    html! {
        section.picture #picture aria-labelledby="picture-title" {
            h2 #picture-title { "Picture" }
            div.picture-now { (avatar_of(username, form.avatar)) }
            form method="post" action="/profile/avatar" enctype="multipart/form-data" {
                (csrf_field(viewer.csrf))
                label for="picture-file" { "A new picture" }
                input #picture-file type="file" name="picture" accept="image/png,image/jpeg,image/webp,image/gif"
                    aria-invalid=[form.avatar_error.map(|_| "true")]
                    aria-describedby=(if form.avatar_error.is_some() { "picture-error picture-hint" } else { "picture-hint" });
                (field_error("picture", form.avatar_error))
                p.hint #picture-hint { "PNG, JPEG, GIF or WebP, up to 5 MB. Shown round, cropped to its centre, beside your name." }
                button.primary type="submit" { "Upload" }
            }
            @if !form.avatar.is_empty() {
                form method="post" action="/profile/avatar/remove" {
                    (csrf_field(viewer.csrf))
                    button type="submit" { "Remove picture" }
                }
            }
        }
    }
}
