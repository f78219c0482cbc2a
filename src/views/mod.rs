//! HTML components. One function per thing, each with a stable DOM id, used alike by the full
//! page, by the fragments htmx swaps in, and by live delivery.

pub mod calls;
pub mod chat;
pub mod forms;
pub mod home;
pub mod markdown;
pub mod messages;
pub mod profile;
pub mod rooms;
pub mod search;
pub mod timeline;

use maud::{DOCTYPE, Markup, html};

use crate::assets;
use crate::domain::Theme;

/// What every page needs to know about who is looking.
pub struct Viewer<'a> {
    pub username: Option<&'a str>,
    /// Empty when they have none.
    pub display_name: &'a str,
    /// How they want pages to look (someone logged out gets their system's).
    pub theme: Theme,
    pub is_staff: bool,
    pub csrf: &'a str,
}

impl<'a> Viewer<'a> {
    /// Someone not logged in.
    pub fn anonymous(csrf: &'a str) -> Self {
        Viewer {
            username: None,
            display_name: "",
            theme: Theme::System,
            is_staff: false,
            csrf,
        }
    }
}

/// The document around every page: head, header bar and one main area.
pub fn page(title: &str, viewer: &Viewer<'_>, body_class: &str, main: Markup) -> Markup {
    document(title, viewer, body_class, None, main)
}

/// A conversation's page. Its messages are rendered once for all readers, and a private
/// conversation has a different URL for each of its two people, so the links inside a message
/// are relative (`messages/7/actions`) and resolve against `<base href="{base}/">`.
pub fn conversation_page(title: &str, viewer: &Viewer<'_>, base: &str, main: Markup) -> Markup {
    document(title, viewer, "page-conversation", Some(base), main)
}

pub(crate) fn document(
    title: &str,
    viewer: &Viewer<'_>,
    body_class: &str,
    base: Option<&str>,
    main: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        // The person's theme; without one the style sheet follows the system's preference.
        html lang="en" data-theme=[viewer.theme.attribute()] {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(base) = base { base href=(format!("{base}/")); }
                meta name="csrf-token" content=(viewer.csrf);
                // htmx must not inject inline styles or evaluate strings: the CSP forbids both.
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"historyCacheSize":0}"#;
                title { (title) " · Parley" }
                link rel="stylesheet" href=(assets::url("app.css"));
                @if viewer.username.is_some() { link rel="stylesheet" href="/me.css"; }
                link rel="icon" href=(assets::url("favicon.svg")) type="image/svg+xml";
                script src=(assets::url("htmx.min.js")) defer {}
                script src=(assets::url("app.js")) defer {}
                @if viewer.username.is_some() { script src=(assets::url("calls.js")) defer {} }
            }
            body class=(body_class) {
                // With a <base>, "#main" alone would lead to another address.
                a.skip href=(format!("{}#main", base.unwrap_or(""))) { "Skip to content" }
                header.topbar {
                    a.brand href="/" { "Parley" }
                    @if let Some(name) = viewer.username {
                        (chat::search_box(""))
                        nav.account aria-label="Account" {
                            @if viewer.is_staff { a href="/admin/" { "Admin" } }
                            a href="/mentions" { "Mentions" }
                            button.link #notify-toggle type="button" hidden { "Notify me" }
                            (profile::person_menu(name, viewer))
                        }
                    }
                }
                (main)
                @if viewer.username.is_some() { (calls::call_panel()) }
            }
        }
    }
}

/// "No room #genral": for someone logged in, with their own header, and a way to create it
/// (a form, so that a typo in an address never creates a room by itself).
pub fn no_such_room(viewer: &Viewer<'_>, name: &str) -> Markup {
    page(
        "No such room",
        viewer,
        "page-notice",
        html! {
            main #main .notice {
                h1 { "There is no room #" (name) }
                p { "Nobody has opened a room of that name yet." }
                form method="post" action="/rooms" {
                    (forms::csrf_field(viewer.csrf))
                    input type="hidden" name="name" value=(name);
                    button.primary type="submit" { "Create #" (name) }
                }
                p { a href="/" { "Back to Parley" } }
            }
        },
    )
}

/// A plain page with one message: errors, 404s. The way on is back to Parley, or for someone
/// logged out (whom `/` would only send there), the log-in page.
pub fn notice_page(title: &str, viewer: &Viewer<'_>, text: &str) -> Markup {
    page(
        title,
        viewer,
        "page-notice",
        html! {
            main #main .notice {
                h1 { (title) }
                p { (text) }
                @if viewer.username.is_some() {
                    p { a href="/" { "Back to Parley" } }
                } @else {
                    p { a href="/login" { "Log in to Parley" } }
                }
            }
        },
    )
}

/// What an htmx request that failed is told: app.js shows it next to what was tried (htmx swaps
/// no error answer by itself).
pub fn error_note(text: &str) -> Markup {
    html! { p.error-note role="alert" { (text) } }
}

/// What a path keeps as it is inside a query value: unreserved characters and `/`.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Percent-encodes a path for use as a query value (`/login?next=/rooms/general`).
pub fn encode_query(raw: &str) -> String {
    percent_encoding::utf8_percent_encode(raw, QUERY_VALUE).to_string()
}

/// The characters RFC 5987's `attr-char` allows as they are (everything else is %-encoded): for
/// a file's name in `Content-Disposition`'s `filename*`, and in its download URL.
pub const ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// The download URL of attachment `id` named `name`: `/files/{id}/{name}`. The name is only for
/// the person saving the file (the id decides which file it is), made safe for a URL, and never
/// `preview`, which is the thumbnail's URL.
pub fn file_url(id: i64, name: &str) -> String {
    // `#` would end the path and start a fragment.
    const SEGMENT: &percent_encoding::AsciiSet = &ATTR_CHAR.add(b'#');
    let encoded = percent_encoding::utf8_percent_encode(name, SEGMENT).to_string();
    let segment = match encoded.as_str() {
        "" | "." | ".." => "file",
        "preview" => "preview_",
        other => other,
    };
    format!("/files/{id}/{segment}")
}

/// A size as people read it: "812 bytes", "34 KB", "2.1 MB".
pub fn human_size(bytes: i64) -> String {
    const KB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KB {
        format!("{bytes} bytes")
    } else if b < KB * KB {
        format!("{:.0} KB", b / KB)
    } else if b < KB * KB * KB {
        format!("{:.1} MB", b / KB / KB)
    } else {
        format!("{:.1} GB", b / KB / KB / KB)
    }
}
