//! What a person does with one message: the actions menu, the edit form, the delete confirmation
//! and the emoji picker. Each is a fragment htmx puts inside the message, and the same fragment in
//! a page of its own without JavaScript. These are per viewer (they carry the CSRF token and what
//! the viewer may do); the message itself is not.

use maud::{Markup, html};

use super::chat::message;
use super::forms::csrf_field;
use super::{Viewer, document};
use crate::domain::Emoji;
use crate::store::messages::Message;

/// An error next to what was tried, for htmx (which shows it where the request came from).
pub fn field_error(text: &str) -> Markup {
    html! { p.field-error role="alert" { (text) } }
}

/// A page holding one message and what is being done to it (without JavaScript).
pub fn page_of(viewer: &Viewer<'_>, title: &str, base: &str, m: &Message, part: Markup) -> Markup {
    document(
        title,
        viewer,
        "page-message",
        Some(base),
        html! {
            main #main .message-page {
                p { a href=(format!("{base}#m-{}", m.seq)) { "‹ Back to " (title) } }
                // The message's own links are relative to its conversation.
                div.standalone { (message(m)) }
                (part)
            }
        },
    )
}

pub fn actions(base: &str, m: &Message, mine: bool, csrf: &str) -> Markup {
    let url = |what: &str| format!("{base}/messages/{}/{what}", m.seq);
    html! {
        div.message-menu role="group" aria-label="Message actions" {
            (picker(base, m, None, csrf))
            @if mine {
                a href=(url("edit")) hx-get=(url("edit")) hx-target="closest .message" hx-swap="outerHTML" { "Edit" }
                a.danger href=(url("delete")) hx-get=(url("delete")) hx-target="closest .message-menu" hx-swap="outerHTML" { "Delete" }
            }
            button.link.close type="button" { "Close" }
        }
    }
}

/// The common reactions as buttons, and a field for any other emoji.
pub fn picker(base: &str, m: &Message, error: Option<&str>, csrf: &str) -> Markup {
    let action = format!("{base}/messages/{}/reactions", m.seq);
    let target = format!("#m-{}", m.seq);
    html! {
        form.picker method="post" action=(action) hx-post=(action) hx-target=(target) hx-swap="outerHTML" {
            (csrf_field(csrf))
            @for emoji in Emoji::COMMON {
                button.emoji type="submit" name="emoji" value=(emoji) aria-label=(format!("React with {emoji}")) { (emoji) }
            }
            label.sr-only for=(format!("emoji-{}", m.seq)) { "Any emoji" }
            // Not `emoji`: the clicked button's emoji and an empty field would both arrive.
            input.any-emoji id=(format!("emoji-{}", m.seq)) type="text" name="other" maxlength="16"
                placeholder="🙂" autocomplete="off" aria-invalid=[error.map(|_| "true")];
            button type="submit" { "React" }
            @if let Some(e) = error { (field_error(e)) }
        }
    }
}

/// The edit form, in place of the message.
pub fn edit_form(base: &str, m: &Message, body: &str, error: Option<&str>, csrf: &str) -> Markup {
    let action = format!("{base}/messages/{}/edit", m.seq);
    let show = format!("{base}/messages/{}", m.seq);
    html! {
        form.message.editing id=(format!("m-{}", m.seq)) method="post" action=(action)
            hx-post=(action) hx-swap="outerHTML" {
            (csrf_field(csrf))
            label for=(format!("edit-{}", m.seq)) { "Edit your message" }
            textarea id=(format!("edit-{}", m.seq)) name="body" rows="3" required maxlength="4000"
                aria-invalid=[error.map(|_| "true")] { (body) }
            @if let Some(e) = error { (field_error(e)) }
            div.inline {
                button.primary type="submit" { "Save" }
                a href=(format!("{base}#m-{}", m.seq)) hx-get=(show) hx-target="closest form" hx-swap="outerHTML" { "Cancel" }
            }
        }
    }
}

/// "Delete this message?"
pub fn delete_confirm(base: &str, m: &Message, csrf: &str) -> Markup {
    let action = format!("{base}/messages/{}/delete", m.seq);
    html! {
        form.confirm method="post" action=(action) hx-post=(action) hx-target="closest .message" hx-swap="delete" {
            (csrf_field(csrf))
            p { "Delete this message? This cannot be undone." }
            button.danger type="submit" { "Delete" }
            " "
            a href=(format!("{base}#m-{}", m.seq)) { "Cancel" }
        }
    }
}
