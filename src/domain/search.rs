//! A message search as typed in the search box, parsed once: words, `"phrases"` and the operators
//! `from:`, `in:`, `before:` and `after:`. Nothing typed is an error: a part that does not parse
//! (an unknown date, a name no one could have, an unclosed quote) is searched as plain words.

use super::{RoomName, Username};

/// Longer searches are cut to this many characters (not refused).
pub const MAX_QUERY_CHARS: usize = 256;

/// The shortest last word that is matched as a prefix: shorter ones begin hundreds of words, and
/// merging their lists costs a search hundreds of milliseconds.
const MIN_PREFIX_CHARS: usize = 3;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// A word that must occur (stemmed on PostgreSQL).
    Word(String),
    /// The last word while it is being typed: any word beginning with it.
    Prefix(String),
    /// Words that must occur together, in this order.
    Phrase(Vec<String>),
}

/// `in:general` (a public room) or `in:@bob` (the searcher's private conversation with bob).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    Room(RoomName),
    Direct(Username),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// What was typed (cut to [`MAX_QUERY_CHARS`], control characters as spaces), to show again.
    pub text: String,
    pub terms: Vec<Term>,
    pub from: Option<Username>,
    pub place: Option<Place>,
    /// Messages written before this time (unix ms, exclusive): the start of the `before:` day.
    pub before_ms: Option<i64>,
    /// Messages written from this time on (unix ms): the day after the `after:` day.
    pub after_ms: Option<i64>,
}

impl SearchQuery {
    pub fn parse(raw: &str) -> SearchQuery {
        let text: String = raw
            .chars()
            .take(MAX_QUERY_CHARS)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let mut query = SearchQuery {
            text: text.trim().to_owned(),
            ..SearchQuery::default()
        };
        let (tokens, open_end) = tokens(&text);
        let last = tokens.len().checked_sub(1);
        for (i, token) in tokens.into_iter().enumerate() {
            match token {
                Token::Quoted(words) => {
                    let words: Vec<String> = words
                        .split_whitespace()
                        .filter(|w| has_word_char(w))
                        .map(str::to_owned)
                        .collect();
                    match words.len() {
                        0 => {}
                        1 => query.terms.extend(words.into_iter().map(Term::Word)),
                        _ => query.terms.push(Term::Phrase(words)),
                    }
                }
                Token::Bare(word) => {
                    if query.operator(word) || !has_word_char(word) {
                        continue;
                    }
                    let typing = open_end && Some(i) == last;
                    let prefix = typing
                        && word.chars().count() >= MIN_PREFIX_CHARS
                        && word.chars().all(char::is_alphanumeric);
                    query.terms.push(match prefix {
                        true => Term::Prefix(word.to_owned()),
                        false => Term::Word(word.to_owned()),
                    });
                }
            }
        }
        query
    }

    /// Takes `word` as an operator if it is one with a value that parses.
    fn operator(&mut self, word: &str) -> bool {
        let Some((name, value)) = word.split_once(':') else {
            return false;
        };
        match name.to_ascii_lowercase().as_str() {
            "from" => Username::parse(value).map(|u| self.from = Some(u)).is_ok(),
            "in" => {
                let place = match value.strip_prefix('@') {
                    Some(user) => Username::parse(user).map(Place::Direct).ok(),
                    None => RoomName::parse(value).map(Place::Room).ok(),
                };
                place.map(|p| self.place = Some(p)).is_some()
            }
            "before" => day_start_ms(value)
                .map(|t| self.before_ms = Some(t))
                .is_some(),
            "after" => day_start_ms(value)
                .map(|t| self.after_ms = Some(t + DAY_MS))
                .is_some(),
            _ => false,
        }
    }

    /// Whether there is anything to look for: a search of nothing lists nothing.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
            && self.from.is_none()
            && self.place.is_none()
            && self.before_ms.is_none()
            && self.after_ms.is_none()
    }
}

enum Token<'a> {
    Bare(&'a str),
    Quoted(&'a str),
}

/// Splits at white space and pairs of `"`; an unclosed `"` is dropped (its words stay words).
/// Also whether the text ends inside a word (someone is still typing it).
fn tokens(text: &str) -> (Vec<Token<'_>>, bool) {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return (out, false);
        }
        if let Some(inner) = rest.strip_prefix('"') {
            if let Some(end) = inner.find('"') {
                out.push(Token::Quoted(&inner[..end]));
                rest = &inner[end + 1..];
            } else {
                rest = inner;
            }
            continue;
        }
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '"')
            .unwrap_or(rest.len());
        out.push(Token::Bare(&rest[..end]));
        rest = &rest[end..];
        if rest.is_empty() {
            return (out, true);
        }
    }
}

fn has_word_char(word: &str) -> bool {
    word.chars().any(char::is_alphanumeric)
}

/// The start (UTC) of the day `2026-12-01`, in unix ms.
fn day_start_ms(value: &str) -> Option<i64> {
    let mut parts = value.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    let all_digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !(all_digits(y, 4) && all_digits(m, 2) && all_digits(d, 2)) {
        return None;
    }
    let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
    let date = time::Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(raw: &str) -> Vec<Term> {
        SearchQuery::parse(raw).terms
    }

    fn word(w: &str) -> Term {
        Term::Word(w.to_owned())
    }

    #[test]
    fn words_phrases_and_the_word_being_typed() {
        assert_eq!(
            terms(r#"lunch "next friday" piz"#),
            vec![
                word("lunch"),
                Term::Phrase(vec!["next".into(), "friday".into()]),
                Term::Prefix("piz".into()),
            ]
        );
        assert_eq!(terms("pizza "), vec![word("pizza")], "a finished word");
        assert_eq!(terms("pi"), vec![word("pi")], "two letters are too short");
        assert_eq!(terms("foo-ba"), vec![word("foo-ba")]);
        assert_eq!(terms(r#""one""#), vec![word("one")]);
    }

    #[test]
    fn operators_take_their_values_and_bad_ones_are_words() {
        let q = SearchQuery::parse("from:Alice in:general before:2026-12-01 after:2026-11-01 x ");
        assert_eq!(q.from.unwrap().key(), "alice");
        assert_eq!(
            q.place,
            Some(Place::Room(RoomName::parse("general").unwrap()))
        );
        assert_eq!(q.before_ms, Some(1_796_083_200_000));
        assert_eq!(q.after_ms, Some(1_793_491_200_000 + DAY_MS));
        assert_eq!(q.terms, vec![word("x")]);
        let q = SearchQuery::parse("in:@bob");
        assert_eq!(
            q.place,
            Some(Place::Direct(Username::parse("bob").unwrap()))
        );
        assert!(q.terms.is_empty() && !q.is_empty());
        let q = SearchQuery::parse("before:2026-13-01 from:x in:@ nope:1 ");
        assert_eq!(
            q.terms,
            vec![
                word("before:2026-13-01"),
                word("from:x"),
                word("in:@"),
                word("nope:1")
            ]
        );
        assert!(q.from.is_none() && q.before_ms.is_none() && q.place.is_none());
    }

    #[test]
    fn nothing_typed_is_an_error() {
        assert!(SearchQuery::parse("").is_empty());
        assert!(SearchQuery::parse("  \" !!! \"").is_empty());
        assert_eq!(
            terms(r#"unclosed "quote here"#),
            terms("unclosed quote here")
        );
        assert_eq!(
            terms("tab\there\0x "),
            vec![word("tab"), word("here"), word("x")]
        );
        let long = "word ".repeat(100);
        let q = SearchQuery::parse(&long);
        assert!(q.text.chars().count() <= MAX_QUERY_CHARS);
        assert_eq!(q.terms.len(), MAX_QUERY_CHARS / 5 + 1);
    }
}
