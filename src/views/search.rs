//! The message search: its form in the main pane and a page of results.

use maud::{Markup, html};

use super::encode_query;
use super::home::{byline, place};
use crate::store::search::{Found, Hit, MARK_END, MARK_START};

/// The search pane: the form (results follow as you type with htmx), then the results.
pub fn pane(query: &str, results: Markup) -> Markup {
    html! {
        section #search .search-page aria-labelledby="search-title" {
            h1 #search-title { "Search messages" }
            form #message-search method="get" action="/search" role="search" {
                label.sr-only for="message-q" { "Search messages" }
                div.inline {
                    input #message-q type="search" name="q" value=(query) autocomplete="off"
                        maxlength=(crate::domain::MAX_QUERY_CHARS) placeholder="Words, \"a phrase\", from:name, in:room…"
                        hx-get="/search" hx-trigger="input changed delay:300ms, search"
                        hx-target="#search-results" hx-swap="outerHTML";
                    button type="submit" { "Search" }
                }
                p.hint {
                    "All words must match; the last one may be unfinished. "
                    code { "\"a phrase\"" } ", " code { "from:alice" } ", " code { "in:general" } ", "
                    code { "in:@bob" } ", " code { "before:2026-12-01" } ", " code { "after:2026-11-01" } "."
                }
            }
            (results)
        }
    }
}

/// Page `page` of the results for `query`, each linking to the message in its conversation.
pub fn results(query: &str, found: &Found, page: i64) -> Markup {
    let link = |p: i64| format!("/search?q={}&p={p}", encode_query(query));
    html! {
        section #search-results aria-label="Results" {
            @if query.is_empty() {
                p.empty { "Type what you are looking for." }
            } @else if found.hits.is_empty() {
                p.empty { @if page > 1 { "No more results." } @else { "No messages match." } }
            }
            ol.hit-list start=((page - 1) * crate::store::search::PER_PAGE + 1) {
                @for hit in &found.hits { (result(hit)) }
            }
            @if page > 1 || found.more {
                nav.pages aria-label="Result pages" {
                    @if page > 1 {
                        a rel="prev" href=(link(page - 1)) hx-get=(link(page - 1))
                            hx-target="#search-results" hx-swap="outerHTML" { "‹ Previous" }
                    }
                    " "
                    @if found.more {
                        a rel="next" href=(link(page + 1)) hx-get=(link(page + 1))
                            hx-target="#search-results" hx-swap="outerHTML" { "Next ›" }
                    }
                }
            }
        }
    }
}

fn result(hit: &Hit) -> Markup {
    let (url, name) = place(
        hit.room_kind,
        hit.room_name.as_deref(),
        hit.other.as_deref(),
    );
    html! {
        li.hit {
            a href=(format!("{url}?around={}#m-{}", hit.seq, hit.seq)) {
                (byline(&hit.author, &hit.author_display, &name, hit.created_ms))
            }
            p.snippet { (snippet(&hit.snippet)) }
        }
    }
}

/// The snippet's text, escaped like every message, with its marked words in `<mark>`: the marks
/// are private-use characters until here, so no text can open or close one. Like a message's
/// text, it is shown without characters that turn text around.
fn snippet(text: &str) -> Markup {
    let text: String = text
        .chars()
        .filter(|c| !crate::domain::is_bidi_control(*c))
        .collect();
    let mut parts = Vec::new();
    for (i, outside) in text.split(MARK_START).enumerate() {
        let (marked, rest) = match outside.split_once(MARK_END) {
            Some((marked, rest)) if i > 0 => (marked, rest),
            _ => ("", outside),
        };
        parts.push((marked, rest.replace(MARK_END, "")));
    }
    html! {
        @for (marked, rest) in parts {
            @if !marked.is_empty() { mark { (marked) } }
            (rest)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_escaped_and_only_our_marks_highlight() {
        let text = format!("a {MARK_START}<b>{MARK_END} c {MARK_END} <mark>");
        assert_eq!(
            snippet(&text).into_string(),
            "a <mark>&lt;b&gt;</mark> c  &lt;mark&gt;"
        );
        assert_eq!(snippet("plain").into_string(), "plain");
        assert_eq!(snippet("a\u{202E}cba").into_string(), "acba");
    }
}
