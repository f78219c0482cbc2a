//! Values that come in from the edge, parsed once. Past a handler nobody re-checks them, and the
//! error text is exactly what the form shows next to the field.

use std::fmt;

mod search;
pub use search::{MAX_QUERY_CHARS, Place, SearchQuery, Term};

/// Why a value was refused, worded for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub &'static str);

/// The characters that change the direction text is shown in (embeddings, overrides, isolates,
/// marks): invisible, and able to make `https://evil.example/moc.knab-doog//:sptth` read as
/// `https://evil.example/https://good-bank.com`. Names and topics refuse them; message text is
/// shown without them (`views::chat`), links each isolated.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

fn is_name_char(c: char, extra: &[char]) -> bool {
    c.is_ascii_alphanumeric() || extra.contains(&c)
}

/// A username: 3–32 ASCII letters, digits, `_`, `.` or `-`. ASCII only on purpose: usernames are
/// part of URLs (`/dm/{username}`) and look-alike Unicode names would let one person pose as another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name = raw.trim();
        if name.len() < 3 || name.len() > 32 {
            return Err(Invalid("A username has 3 to 32 characters."));
        }
        if !name.chars().all(|c| is_name_char(c, &['_', '.', '-'])) {
            return Err(Invalid(
                "A username may contain only letters, digits and the characters _ . -",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form the database keeps unique.
    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }

    /// The form look-alike names share, which the database keeps unique too: case folded,
    /// `.` `_` `-` dropped, and what passes for something else made one (I, l, 1 and | as l;
    /// O and 0 as o; 5 as s; rn as m; vv as w). The migration that added it spells the same
    /// steps in SQL: change one, change both.
    pub fn fold(&self) -> String {
        let folded: String = self
            .0
            .chars()
            .filter(|c| !matches!(c, '.' | '_' | '-'))
            .map(|c| match c.to_ascii_lowercase() {
                'i' | '1' | '|' => 'l',
                '0' => 'o',
                '5' => 's',
                c => c,
            })
            .collect();
        folded.replace("rn", "m").replace("vv", "w")
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password as typed: at least 8 characters, at most 1,024 bytes (argon2 work grows with the
/// input, so an unbounded password would be a cheap way to burn our CPU).
pub struct Password(String);

impl Password {
    pub const MAX_BYTES: usize = 1024;

    pub fn parse(raw: &str, username: Option<&str>) -> Result<Self, Invalid> {
        if raw.chars().count() < 8 {
            return Err(Invalid("A password has at least 8 characters."));
        }
        if raw.len() > Self::MAX_BYTES {
            return Err(Invalid("A password has at most 1,024 bytes."));
        }
        if username.is_some_and(|u| u.eq_ignore_ascii_case(raw.trim())) {
            return Err(Invalid("The password must not be the username."));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// Free text on one line, trimmed: at most `max` characters, no control characters, nothing that
/// turns text around. `says` is what each refusal says: too long, not one line, turned around.
fn one_line(raw: &str, max: usize, says: [&'static str; 3]) -> Result<String, Invalid> {
    let text = raw.trim();
    if text.chars().count() > max {
        return Err(Invalid(says[0]));
    }
    if text.chars().any(char::is_control) {
        return Err(Invalid(says[1]));
    }
    if text.chars().any(is_bidi_control) {
        return Err(Invalid(says[2]));
    }
    Ok(text.to_owned())
}

/// A public room's name: 1–64 ASCII letters, digits, `-` and `_`, so it can stand in a URL as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomName(String);

impl RoomName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name = raw.trim();
        if name.is_empty() || name.len() > 64 {
            return Err(Invalid("A room name has 1 to 64 characters."));
        }
        if !name.chars().all(|c| is_name_char(c, &['_', '-'])) {
            return Err(Invalid(
                "A room name may contain only letters, digits, - and _",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn key(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A room topic: free text, one line, at most 200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic(String);

impl Topic {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        one_line(
            raw,
            200,
            [
                "A topic has at most 200 characters.",
                "A topic is a single line of text.",
                "A topic cannot contain characters that change the direction of text.",
            ],
        )
        .map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A message body: 1–4,000 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    pub const MAX_CHARS: usize = 4000;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let body = raw.trim();
        if body.is_empty() {
            return Err(Invalid("A message cannot be empty."));
        }
        if body.chars().count() > Self::MAX_CHARS {
            return Err(Invalid("A message has at most 4,000 characters."));
        }
        let body = body.replace("\r\n", "\n");
        if body
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(Invalid(
                "A message cannot contain control characters (other than new lines and tabs).",
            ));
        }
        Ok(Self(body))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name a person goes by, shown beside their username (which stays who they are: in URLs,
/// mentions and `from:`). Empty is none. One line of at most 40 characters, so it fits beside a
/// username in a message's header, and nothing that turns text around: "Alice" must not be
/// made to read as someone else's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 40;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        one_line(
            raw,
            Self::MAX_CHARS,
            [
                "A display name has at most 40 characters.",
                "A display name is a single line of text.",
                "A display name cannot contain characters that change the direction of text.",
            ],
        )
        .map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A few words a person says about themselves: at most 200 characters, line breaks allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bio(String);

impl Bio {
    pub const MAX_CHARS: usize = 200;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let bio = raw.trim().replace("\r\n", "\n");
        if bio.chars().count() > Self::MAX_CHARS {
            return Err(Invalid("A bio has at most 200 characters."));
        }
        if bio.chars().any(|c| c.is_control() && c != '\n') {
            return Err(Invalid(
                "A bio cannot contain control characters (other than new lines).",
            ));
        }
        if bio.chars().any(is_bidi_control) {
            return Err(Invalid(
                "A bio cannot contain characters that change the direction of text.",
            ));
        }
        Ok(Self(bio))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How Parley looks to a person: light, dark, or as their system says (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Theme {
    #[default]
    System,
    Light,
    Dark,
}

impl Theme {
    pub const ALL: [Theme; 3] = [Theme::Light, Theme::Dark, Theme::System];

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw.trim() {
            "system" => Ok(Theme::System),
            "light" => Ok(Theme::Light),
            "dark" => Ok(Theme::Dark),
            _ => Err(Invalid("A theme is light, dark or system.")),
        }
    }

    /// As stored and as a form sends it.
    pub fn as_str(self) -> &'static str {
        match self {
            Theme::System => "system",
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }

    /// What `<html data-theme>` says: nothing for the system's choice, which the style sheet
    /// takes from `prefers-color-scheme`.
    pub fn attribute(self) -> Option<&'static str> {
        match self {
            Theme::System => None,
            other => Some(other.as_str()),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Theme::System => "System",
            Theme::Light => "Light",
            Theme::Dark => "Dark",
        }
    }
}

/// A client-chosen idempotency key for a send: up to 64 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey(String);

impl ClientKey {
    pub fn parse(raw: &str) -> Result<Option<Self>, Invalid> {
        let key = raw.trim();
        if key.is_empty() {
            return Ok(None);
        }
        if key.len() > 64 || !key.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Invalid(
                "The client key is up to 64 printable ASCII characters.",
            ));
        }
        Ok(Some(Self(key.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A reaction: one emoji (a skin tone and the emoji presentation selector allowed), at most 32 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emoji(String);

impl Emoji {
    /// The picker's choices; any other single emoji may be typed.
    pub const COMMON: [&'static str; 8] = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀"];

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        const NOT_ONE: Invalid = Invalid("A reaction is a single emoji.");
        let emoji = raw.trim();
        if emoji.is_empty() || emoji.len() > 32 {
            return Err(NOT_ONE);
        }
        // The table knows each emoji in its fully qualified form; people type either.
        let known = emojis::get(emoji)
            .or_else(|| emojis::get(&format!("{emoji}\u{fe0f}")))
            .or_else(|| emojis::get(&emoji.replace('\u{fe0f}', "")));
        // Stored as the table spells it, so "❤" and "❤️" are one reaction, not two.
        match known {
            Some(known) => Ok(Self(known.as_str().to_owned())),
            None => Err(NOT_ONE),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The usernames a message names as `@name`, lowercased, each once, at most 20: who they are, and
/// whether they may read the conversation, is for the caller to find out.
pub fn mentioned_names(body: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.find('@') {
        // An address (bob@example.org) names nobody: the @ must start a word.
        let preceded = body[..body.len() - rest.len() + at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[at + 1..];
        let len = rest
            .find(|c: char| !is_name_char(c, &['_', '.', '-']))
            .unwrap_or(rest.len());
        // A sentence may end right after a name: "thanks @bob."
        let name = rest[..len].trim_end_matches(['.', '-']);
        if !preceded && Username::parse(name).is_ok() {
            let key = name.to_ascii_lowercase();
            if !names.contains(&key) && names.len() < 20 {
                names.push(key);
            }
        }
        rest = &rest[len..];
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_published_rules() {
        assert!(Username::parse("al").is_err());
        assert!(Username::parse("alice").is_ok());
        assert!(Username::parse("a.b-c_d").is_ok());
        assert!(Username::parse(&"x".repeat(33)).is_err());
        assert!(Username::parse("bob smith").is_err());
        assert!(Username::parse("<script>").is_err());
        assert!(Username::parse("jösé").is_err());
        assert_eq!(Username::parse("Alice").unwrap().key(), "alice");
    }

    #[test]
    fn look_alike_names_fold_to_one_form() {
        let fold = |name: &str| Username::parse(name).unwrap().fold();
        for alike in ["aIice", "a1ice", "ALICE", "alice.", "a.l_i-ce", "al1ce"] {
            assert_eq!(fold(alike), fold("alice"), "{alike}");
        }
        assert_eq!(fold("b0b"), fold("bob"));
        assert_eq!(fold("rnary"), fold("mary"));
        assert_eq!(fold("vvendy"), fold("wendy"));
        assert_eq!(fold("5am"), fold("sam"));
        assert_ne!(fold("alice"), fold("alicia"));
        assert_ne!(fold("bob"), fold("bobby"));
    }

    #[test]
    fn passwords_need_eight_characters_and_fit_in_a_kilobyte() {
        assert!(Password::parse("short", None).is_err());
        assert!(Password::parse("long enough", None).is_ok());
        assert!(Password::parse(&"p".repeat(1024), None).is_ok());
        assert!(Password::parse(&"p".repeat(1025), None).is_err());
        assert!(Password::parse("alice123", Some("ALICE123")).is_err());
    }

    #[test]
    fn room_names_are_url_safe() {
        assert!(RoomName::parse("").is_err());
        assert!(RoomName::parse("general").is_ok());
        assert!(RoomName::parse("rust-beginners_2").is_ok());
        assert!(RoomName::parse("a.b").is_err());
        assert!(RoomName::parse(&"r".repeat(65)).is_err());
    }

    #[test]
    fn message_bodies_are_trimmed_and_bounded() {
        assert!(MessageBody::parse("   \n\t ").is_err());
        assert_eq!(
            MessageBody::parse("  hi \r\n there ").unwrap().as_str(),
            "hi \n there"
        );
        assert!(MessageBody::parse(&"é".repeat(4000)).is_ok());
        assert!(MessageBody::parse(&"é".repeat(4001)).is_err());
        assert!(MessageBody::parse("hi\0there").is_err());
        assert!(MessageBody::parse("bell\x07").is_err());
        assert!(MessageBody::parse("a lone \r return").is_err());
        assert!(MessageBody::parse("tab\tand\nnew line").is_ok());
    }

    #[test]
    fn topics_refuse_what_turns_text_around() {
        assert!(
            Topic::parse("שלום and hello").is_ok(),
            "right-to-left text is fine"
        );
        for c in ['\u{202E}', '\u{202B}', '\u{2067}', '\u{200F}'] {
            assert!(Topic::parse(&format!("a{c}b")).is_err(), "{c:?}");
        }
    }

    #[test]
    fn display_names_are_one_short_line_or_none() {
        assert_eq!(DisplayName::parse("  ").unwrap().as_str(), "");
        assert_eq!(
            DisplayName::parse("  Alice Smith ").unwrap().as_str(),
            "Alice Smith"
        );
        assert!(DisplayName::parse(&"é".repeat(40)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(41)).is_err());
        assert!(DisplayName::parse("two\nlines").is_err());
        assert!(DisplayName::parse("nul\0").is_err());
        assert!(DisplayName::parse("ecila\u{202E}").is_err());
        assert_eq!(
            DisplayName::parse("<script>").unwrap().as_str(),
            "<script>",
            "kept as typed: the views escape it"
        );
    }

    #[test]
    fn bios_are_short_and_may_have_lines() {
        assert_eq!(Bio::parse("").unwrap().as_str(), "");
        assert_eq!(
            Bio::parse(" Reads.\r\nWrites. ").unwrap().as_str(),
            "Reads.\nWrites."
        );
        assert!(Bio::parse(&"b".repeat(200)).is_ok());
        assert!(Bio::parse(&"b".repeat(201)).is_err());
        assert!(Bio::parse("bell\x07").is_err());
        assert!(Bio::parse("a\u{2066}b").is_err());
    }

    #[test]
    fn themes_are_light_dark_or_the_systems() {
        for theme in Theme::ALL {
            assert_eq!(Theme::parse(theme.as_str()), Ok(theme));
        }
        assert_eq!(Theme::default(), Theme::System);
        assert_eq!(Theme::System.attribute(), None);
        assert_eq!(Theme::Dark.attribute(), Some("dark"));
        assert!(Theme::parse("blue").is_err());
        assert!(Theme::parse("").is_err());
    }

    #[test]
    fn client_keys_are_optional_and_short() {
        assert_eq!(ClientKey::parse("").unwrap(), None);
        assert!(ClientKey::parse("abc-123").unwrap().is_some());
        assert!(ClientKey::parse(&"k".repeat(65)).is_err());
    }

    #[test]
    fn reactions_are_one_emoji() {
        assert!(Emoji::parse("👍").is_ok());
        assert!(Emoji::parse("👍🏽").is_ok());
        assert!(Emoji::parse("❤️").is_ok());
        assert!(Emoji::parse("❤").is_ok());
        assert!(Emoji::parse("👨‍👩‍👧").is_ok());
        assert!(Emoji::parse("").is_err());
        assert!(Emoji::parse("ok").is_err());
        assert!(Emoji::parse("👍👍").is_err());
        assert!(Emoji::parse("a👍").is_err());
        assert!(Emoji::parse(&"👍".repeat(9)).is_err());
        assert_eq!(Emoji::parse("❤").unwrap(), Emoji::parse("❤️").unwrap());
        assert_eq!(Emoji::parse("👍\u{fe0f}").unwrap().as_str(), "👍");
        // Stray presentation selectors are dropped: one reaction, spelt as the table spells it.
        assert_eq!(Emoji::parse("\u{fe0f}👍").unwrap().as_str(), "👍");
        assert_eq!(Emoji::parse("👍\u{fe0f}\u{fe0f}").unwrap().as_str(), "👍");
    }

    #[test]
    fn mentions_are_words_starting_with_an_at() {
        assert_eq!(mentioned_names("hi @Bob and @carol."), vec!["bob", "carol"]);
        assert_eq!(mentioned_names("@bob @BOB"), vec!["bob"]);
        assert_eq!(
            mentioned_names("mail bob@example.org"),
            Vec::<String>::new()
        );
        assert_eq!(
            mentioned_names("@al is too short, @a.b-c is fine"),
            vec!["a.b-c"]
        );
        assert_eq!(mentioned_names("(@dave)"), vec!["dave"]);
        assert_eq!(mentioned_names("@"), Vec::<String>::new());
    }
}
