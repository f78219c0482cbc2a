//! The bench's messages and how they are recognised in the server's HTML fragments.
//!
//! Each message body carries its send number between markers made only of characters that HTML
//! escaping and link detection leave alone, so the number survives rendering and tells which
//! send a delivered element is, independently of the server's ids.

use crate::http::find;

const MARK: &[u8] = b"pbench s";
const ID_ATTR: &[u8] = b"data-message-id=\"";

/// The body of send number `seq`: about the size of a short chat line.
pub fn body(seq: u32) -> String {
    format!("pbench s{seq}e hello from the load generator, a short chat line")
}

/// Makes a retried POST idempotent on the server.
pub fn client_key(run: &str, seq: u32) -> String {
    format!("{run}-{seq}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub id: i64,
    /// The send number, when the element is one of the bench's messages.
    pub seq: Option<u32>,
}

/// Every message element in a fragment, in document order. The text between one
/// `data-message-id` and the next belongs to the former; an element nesting a second attribute
/// with the same id counts once, the same message sent twice counts twice.
pub fn parse(html: &[u8]) -> Vec<Found> {
    let mut starts = Vec::new();
    let mut from = 0;
    while let Some(i) = find(&html[from..], ID_ATTR) {
        starts.push(from + i);
        from += i + ID_ATTR.len();
    }
    let mut out: Vec<Found> = Vec::with_capacity(starts.len());
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(html.len());
        let segment = &html[start + ID_ATTR.len()..end];
        let digits = segment.iter().take_while(|b| b.is_ascii_digit()).count();
        let Some(id) = std::str::from_utf8(&segment[..digits])
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
        else {
            continue;
        };
        let seq = find(segment, MARK).and_then(|m| {
            let rest = &segment[m + MARK.len()..];
            let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if n == 0 || rest.get(n) != Some(&b'e') {
                return None;
            }
            std::str::from_utf8(&rest[..n]).ok()?.parse::<u32>().ok()
        });
        // An attribute nested in the element it belongs to splits one message's text in two,
        // with the body in only one part; two parts that each carry a body are two elements,
        // i.e. the server sent the message twice.
        match out.last_mut() {
            Some(last) if last.id == id && (last.seq.is_none() || seq.is_none()) => {
                last.seq = last.seq.or(seq);
            }
            _ => out.push(Found { id, seq }),
        }
    }
    out
}

/// The cursor an answer's `#poller` carries (`data-after="N"`): what to poll with next when the
/// answer holds changes to older messages, whose ids are below it.
pub fn cursor(html: &[u8]) -> Option<i64> {
    number_after(html, b"data-after=\"")
}

/// When the answer's sidebar is from (`data-t="ms"` on its `#poller`), for the next poll's `t`.
pub fn sidebar_time(html: &[u8]) -> Option<i64> {
    number_after(html, b"data-t=\"")
}

/// Whether the answer brings the person's sidebar (out of band): a feed answer, not a change.
pub fn has_sidebar(html: &[u8]) -> bool {
    find(html, b"id=\"sidebar-lists\"").is_some()
}

/// The number right after the first `prefix` in `html`.
fn number_after(html: &[u8], prefix: &[u8]) -> Option<i64> {
    let at = find(html, prefix)? + prefix.len();
    let digits = html[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&html[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// The reactions elements swapped in out of band (`<div … id="r-{id}" hx-swap-oob=…>`), each as
/// (position in `html`, message id, number of reactions shown), in document order.
pub fn reactions(html: &[u8]) -> Vec<(usize, i64, usize)> {
    const OPEN: &[u8] = b"id=\"r-";
    const OOB: &[u8] = b"\" hx-swap-oob=\"outerHTML\"";
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = find(&html[from..], OPEN) {
        let at = from + i + OPEN.len();
        from = at;
        let digits = html[at..].iter().take_while(|b| b.is_ascii_digit()).count();
        if !html[at + digits..].starts_with(OOB) {
            continue; // the reactions inside a message element
        }
        let Some(id) = std::str::from_utf8(&html[at..at + digits])
            .ok()
            .and_then(|s| s.parse().ok())
        else {
            continue;
        };
        out.push((at, id, chips(html, at)));
    }
    out
}

/// How many reactions the message element `id` shows inside itself (a whole message sent
/// again, or in its latest form to a listener catching up). A message without reactions has no
/// reactions element, so the look ends with the element: the same message's reactions fragment
/// later in the answer is not part of it.
pub fn reactions_inside(html: &[u8], id: i64) -> usize {
    let Some((at, _)) = element(html, id) else {
        return 0;
    };
    let end = find(&html[at..], b"</article>").map_or(html.len(), |e| at + e);
    let open = format!("id=\"r-{id}\"");
    let Some(r) = find(&html[at..end], open.as_bytes()).map(|r| at + r) else {
        return 0;
    };
    chips(html, r)
}

/// The reactions (chips) in the reactions element that starts at `at`.
fn chips(html: &[u8], at: usize) -> usize {
    let end = find(&html[at..], b"</div>").map_or(html.len(), |e| at + e);
    let mut chips = 0;
    let mut k = at;
    while let Some(c) = find(&html[k..end], b"class=\"chip\"") {
        chips += 1;
        k += c + 1;
    }
    chips
}

/// Where the message element `id` stands in `html`, and whether it replaces an older one (an
/// edit) rather than being new.
pub fn element(html: &[u8], id: i64) -> Option<(usize, bool)> {
    let open = format!("id=\"m-{id}\" data-message-id=\"{id}\"");
    let at = find(html, open.as_bytes())?;
    let tag_end = find(&html[at..], b">").map_or(html.len(), |e| at + e);
    Some((
        at,
        find(&html[at..tag_end], b"hx-swap-oob=\"outerHTML\"").is_some(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cursors_reactions_and_replacements() {
        let html = br#"<article class="message" id="m-3" data-message-id="3" hx-swap-oob="outerHTML"><p class="body">x</p><div class="reactions" id="r-3"><a class="chip">a</a></div></article><div class="reactions" id="r-2" hx-swap-oob="outerHTML"><a class="chip">x</a><a class="chip">y</a></div><div id="poller" data-after="17"></div>"#;
        assert_eq!(cursor(html), Some(17));
        let shown = |html: &[u8]| {
            reactions(html)
                .iter()
                .map(|r| (r.1, r.2))
                .collect::<Vec<_>>()
        };
        assert_eq!(shown(html), vec![(2, 2)]);
        assert_eq!(element(html, 3).map(|e| e.1), Some(true));
        assert_eq!(reactions_inside(html, 3), 1);
        assert_eq!(reactions_inside(html, 2), 0);
        // An edit of a message without reactions, then its first reaction out of band: the
        // element shows none, the fragment one.
        let edit_then_reaction = br#"<article class="message" id="m-5" data-message-id="5" hx-swap-oob="outerHTML"><p class="body">y</p></article><div class="reactions" id="r-5" hx-swap-oob="outerHTML"><a class="chip">z</a></div>"#;
        assert_eq!(reactions_inside(edit_then_reaction, 5), 0);
        assert_eq!(shown(edit_then_reaction), vec![(5, 1)]);
        let new = br#"<article class="message" id="m-4" data-message-id="4">"#;
        assert_eq!(element(new, 4), Some((25, false)));
    }

    #[test]
    fn parses_ids_and_send_numbers() {
        let html = format!(
            r#"<li data-message-id="7"><b>ann</b><p>{}</p></li><li data-message-id="8"><div data-message-id="8">{}</div></li><li data-message-id="9">other</li>"#,
            body(3),
            body(12)
        );
        assert_eq!(
            parse(html.as_bytes()),
            vec![
                Found {
                    id: 7,
                    seq: Some(3)
                },
                Found {
                    id: 8,
                    seq: Some(12)
                },
                Found { id: 9, seq: None },
            ]
        );
        let twice = format!(
            r#"<p data-message-id="4">{}</p><p data-message-id="4">{}</p>"#,
            body(1),
            body(1)
        );
        assert_eq!(parse(twice.as_bytes()).len(), 2);
    }
}
