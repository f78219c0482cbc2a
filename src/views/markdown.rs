//! Light formatting of what people write: bold, italic, `code`, fenced code blocks, quotes,
//! lists and links, read as CommonMark by pulldown-cmark. Nothing the parser sees as HTML passes:
//! every event is written here, text always escaped, so the escaping of messages stays total.
//! A line break is a line break (a chat is not a document); addresses (`https://…`, `www.…`) are
//! linked and `@names` marked as in plain text. Rendered once per message, shared by every reader.

use maud::{Markup, PreEscaped, Render};
use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

/// `body` formatted, `mentions` (lowercase names, space-separated) marked.
pub fn render(body: &str, mentions: &str) -> Markup {
    let mut out = String::with_capacity(body.len() + 32);
    // Links open in their own tab; a Markdown link to anything but http(s) is its text alone.
    let mut links: Vec<bool> = Vec::new();
    let mut in_code = false;
    // The parser hands out text in pieces (it stops at every character that could start
    // something); an address is linked in the whole run.
    let mut text = String::new();
    for event in Parser::new_ext(body, Options::ENABLE_STRIKETHROUGH) {
        // What looks like HTML is shown as the text it is (addresses in it linked too).
        if let Event::Text(piece) | Event::Html(piece) | Event::InlineHtml(piece) = &event
            && !in_code
            && links.is_empty()
        {
            text.push_str(piece);
            continue;
        }
        flush(&mut out, &mut text, mentions);
        match event {
            Event::Start(tag) => start(&mut out, tag, &mut links, &mut in_code),
            Event::End(tag) => end(&mut out, tag, &mut links, &mut in_code),
            Event::Text(piece) => escape(&mut out, &piece),
            Event::Code(code) => {
                out.push_str("<code>");
                escape(&mut out, &code);
                out.push_str("</code>");
            }
            Event::Html(raw) | Event::InlineHtml(raw) => escape(&mut out, &raw),
            Event::SoftBreak | Event::HardBreak => out.push_str("<br>"),
            Event::Rule => out.push_str("<hr>"),
            Event::InlineMath(t) | Event::DisplayMath(t) | Event::FootnoteReference(t) => {
                escape(&mut out, &t)
            }
            Event::TaskListMarker(done) => out.push_str(if done { "☑ " } else { "☐ " }),
        }
    }
    flush(&mut out, &mut text, mentions);
    PreEscaped(out)
}

/// Writes a run of text, its addresses linked and its mentions marked.
fn flush(out: &mut String, text: &mut String, mentions: &str) {
    if text.is_empty() {
        return;
    }
    // Only HTML-looking blocks keep their line ends in the text: each is a line break.
    for (i, line) in text.trim_end_matches('\n').split('\n').enumerate() {
        if i > 0 {
            out.push_str("<br>");
        }
        out.push_str(&super::chat::linked_text(line, mentions).into_string());
    }
    text.clear();
}

fn escape(out: &mut String, text: &str) {
    out.push_str(&text.render().into_string());
}

fn start(out: &mut String, tag: Tag<'_>, links: &mut Vec<bool>, in_code: &mut bool) {
    match tag {
        Tag::Paragraph => out.push_str("<p>"),
        // A "# title" in a chat is emphasis, not a document's heading.
        Tag::Heading { .. } => out.push_str("<p><strong>"),
        Tag::BlockQuote(_) => out.push_str("<blockquote>"),
        Tag::CodeBlock(kind) => {
            *in_code = true;
            let language = match kind {
                CodeBlockKind::Fenced(info) => {
                    info.split_whitespace().next().unwrap_or("").to_owned()
                }
                CodeBlockKind::Indented => String::new(),
            };
            if language.is_empty() {
                out.push_str("<pre><code>");
            } else {
                out.push_str("<pre><code data-language=\"");
                escape(out, &language);
                out.push_str("\">");
            }
        }
        Tag::List(Some(first)) if first != 1 => out.push_str(&format!("<ol start=\"{first}\">")),
        Tag::List(Some(_)) => out.push_str("<ol>"),
        Tag::List(None) => out.push_str("<ul>"),
        Tag::Item => out.push_str("<li>"),
        Tag::Emphasis => out.push_str("<em>"),
        Tag::Strong => out.push_str("<strong>"),
        Tag::Strikethrough => out.push_str("<del>"),
        Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. } => {
            let web = dest_url.starts_with("https://") || dest_url.starts_with("http://");
            if web {
                out.push_str("<a href=\"");
                escape(out, &dest_url);
                out.push_str(
                    "\" dir=\"ltr\" rel=\"noopener noreferrer nofollow ugc\" target=\"_blank\">",
                );
            }
            links.push(web);
        }
        _ => {}
    }
}

fn end(out: &mut String, tag: TagEnd, links: &mut Vec<bool>, in_code: &mut bool) {
    match tag {
        TagEnd::Paragraph => out.push_str("</p>"),
        TagEnd::Heading(_) => out.push_str("</strong></p>"),
        TagEnd::BlockQuote(_) => out.push_str("</blockquote>"),
        TagEnd::CodeBlock => {
            *in_code = false;
            out.push_str("</code></pre>");
        }
        TagEnd::List(true) => out.push_str("</ol>"),
        TagEnd::List(false) => out.push_str("</ul>"),
        TagEnd::Item => out.push_str("</li>"),
        TagEnd::Emphasis => out.push_str("</em>"),
        TagEnd::Strong => out.push_str("</strong>"),
        TagEnd::Strikethrough => out.push_str("</del>"),
        TagEnd::Link | TagEnd::Image if links.pop() == Some(true) => out.push_str("</a>"),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(s: &str) -> String {
        render(s, "").into_string()
    }

    #[test]
    fn formatting_is_rendered_and_nothing_else() {
        assert_eq!(
            md("**bold** and *it* and `x<y`"),
            "<p><strong>bold</strong> and <em>it</em> and <code>x&lt;y</code></p>"
        );
        assert_eq!(md("one\ntwo"), "<p>one<br>two</p>");
        assert_eq!(md("> quoted"), "<blockquote><p>quoted</p></blockquote>");
        assert_eq!(md("- a\n- b"), "<ul><li>a</li><li>b</li></ul>");
        assert_eq!(
            md("3. c\n4. d"),
            "<ol start=\"3\"><li>c</li><li>d</li></ol>"
        );
        assert_eq!(md("~~gone~~"), "<p><del>gone</del></p>");
    }

    #[test]
    fn no_html_passes_not_even_inside_code() {
        assert_eq!(
            md("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(
            md("```html\n<script>alert(1)</script>\n```"),
            "<pre><code data-language=\"html\">&lt;script&gt;alert(1)&lt;/script&gt;\n</code></pre>"
        );
        assert_eq!(
            md("a <b onclick=x>b</b>"),
            "<p>a &lt;b onclick=x&gt;b&lt;/b&gt;</p>"
        );
        assert!(!md("```\"><script>\n```").contains("<script>"));
        assert!(
            md("``` \"onmouseover=alert(1)\n```")
                .starts_with("<pre><code data-language=\"&quot;onmouseover=alert(1)\">")
        );
    }

    #[test]
    fn links_are_web_addresses_only() {
        assert_eq!(
            md("[site](https://example.org/a?b=1&c=2)"),
            "<p><a href=\"https://example.org/a?b=1&amp;c=2\" dir=\"ltr\" rel=\"noopener noreferrer nofollow ugc\" target=\"_blank\">site</a></p>"
        );
        assert_eq!(md("[x](javascript:alert(1))"), "<p>x</p>");
        assert!(md("see www.example.org now").contains("href=\"https://www.example.org\""));
        assert!(md("at https://example.org.").contains("href=\"https://example.org\""));
        assert!(
            md("see https://example.com/a?b=<c>").contains("href=\"https://example.com/a?b=\"")
        );
    }
}
