//! The admin's page frame and small components. Everything goes through maud's escaping; no
//! inline scripts or styles, so the app's Content-Security-Policy can forbid them.

use maud::{DOCTYPE, Markup, html};

use crate::clock::format_ms;
use crate::http::{Ctx, Level};
use crate::model::{FieldKind, Value};
use crate::site::Site;

pub const CSS: &str = include_str!("../static/admin.css");

/// A short content hash, so the stylesheet can be cached for a year and still change.
pub fn css_version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        use std::hash::Hasher;
        let mut hash = fnv::FnvHasher::default();
        hash.write(CSS.as_bytes());
        format!("{:x}", hash.finish() & 0xffff_ffff)
    })
}

pub struct Crumb {
    pub label: String,
    pub href: Option<String>,
}

pub fn crumb(label: impl Into<String>, href: impl Into<String>) -> Crumb {
    Crumb {
        label: label.into(),
        href: Some(href.into()),
    }
}

pub fn last_crumb(label: impl Into<String>) -> Crumb {
    Crumb {
        label: label.into(),
        href: None,
    }
}

pub fn layout(site: &Site, ctx: &Ctx, title: &str, crumbs: &[Crumb], body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(ctx.csrf);
                meta name="robots" content="noindex, nofollow";
                title { (title) " | " (site.name) }
                link rel="stylesheet" href={ (ctx.url("static/admin.css")) "?v=" (css_version()) };
            }
            body {
                header #header {
                    div #branding { a href=(ctx.url("")) { (site.name) } }
                    div #user-tools {
                        "Welcome, " strong { (ctx.user.username) } ". "
                        a href=(site.site_url) { "View site" }
                        " / "
                        form #logout-form method="post" action=(site.logout_url) {
                            input type="hidden" name="csrf_token" value=(ctx.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                nav .breadcrumbs aria-label="Breadcrumbs" {
                    a href=(ctx.url("")) { "Home" }
                    @for c in crumbs {
                        " › "
                        @match &c.href {
                            Some(href) => a href=(href) { (c.label) },
                            None => span aria-current="page" { (c.label) },
                        }
                    }
                }
                @if let Some(flash) = &ctx.flash {
                    ul .messagelist {
                        li class=(match flash.level { Level::Success => "success", Level::Warning => "warning" }) { (flash.text) }
                    }
                }
                main #content {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A bare page for refusals before anything else is known about the user.
pub fn bare_page(site: &Site, csrf: &str, base: &str, title: &str, text: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="csrf-token" content=(csrf);
                title { (title) " | " (site.name) }
                link rel="stylesheet" href={ (base) "/static/admin.css?v=" (css_version()) };
            }
            body {
                header #header { div #branding { (site.name) } }
                main #content {
                    h1 { (title) }
                    p { (text) }
                    p { a href=(site.site_url) { "Back to the site" } }
                }
            }
        }
    }
}

pub fn csrf_field(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(ctx.csrf); }
}

pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A stored value as read-only text; `fk_label` is the related row's name for foreign keys.
pub fn show_value(kind: FieldKind, value: &Value, fk_label: Option<&str>) -> Markup {
    match (kind, value) {
        (_, v) if v.is_null() => html! { span .empty { "—" } },
        (FieldKind::Bool, Value::Bool(Some(b))) => yes_no(*b),
        // Zero stands for "never" (e.g. a user who was never seen online).
        (FieldKind::Timestamp, Value::Int(Some(ms))) if *ms <= 0 => {
            html! { span .empty { "never" } }
        }
        (FieldKind::Timestamp, Value::Int(Some(ms))) => {
            html! { time { (format_ms(*ms)) " UTC" } }
        }
        (FieldKind::ForeignKey { .. }, Value::Int(Some(id))) => match fk_label {
            Some(label) => html! { (label) },
            None => html! { "#" (id) },
        },
        (FieldKind::Choice(choices), Value::Text(Some(s))) => {
            let label = choices
                .iter()
                .find(|(v, _)| v == s)
                .map_or(s.as_str(), |(_, l)| l);
            html! { (label) }
        }
        (FieldKind::Secret, Value::Text(Some(s))) => html! { (describe_hash(s)) },
        (_, Value::Int(Some(i))) => html! { (i) },
        (_, Value::Text(Some(s))) => html! { (s) },
        (_, Value::Bool(Some(b))) => yes_no(*b),
        _ => html! {},
    }
}

pub fn yes_no(b: bool) -> Markup {
    html! {
        @if b { span .yes title="Yes" { "✔" span .visually-hidden { " yes" } } }
        @else { span .no title="No" { "✘" span .visually-hidden { " no" } } }
    }
}

/// Names the algorithm of a password hash and nothing else.
pub fn describe_hash(hash: &str) -> String {
    if hash.is_empty() || hash.starts_with('!') {
        return "No password set.".to_owned();
    }
    match hash.strip_prefix('$').and_then(|h| h.split('$').next()) {
        Some(alg)
            if !alg.is_empty() && alg.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            format!("algorithm: {alg} ••••••••")
        }
        _ => "Unknown password format.".to_owned(),
    }
}

pub fn plural<'a>(n: i64, singular: &'a str, plural: &'a str) -> &'a str {
    if n == 1 { singular } else { plural }
}

/// Django's title-case for verbose names in headings ("Rooms").
pub fn capfirst(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_show_only_their_algorithm() {
        assert_eq!(
            describe_hash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"),
            "algorithm: argon2id ••••••••"
        );
        assert_eq!(describe_hash("!"), "No password set.");
        assert_eq!(describe_hash("plain"), "Unknown password format.");
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("héllo", 10), "héllo");
        assert_eq!(truncate("héllo wörld", 6), "héllo…");
    }
}
