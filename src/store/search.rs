//! Message search, one interface over two engines: SQLite's FTS5 index (`messages_fts`, ranked by
//! bm25) and PostgreSQL's `tsvector` column (`messages.search`, ranked by `ts_rank`), both kept in
//! step with the messages by the database itself (see the migrations), so an edit is found at once
//! and a deleted message never.
//!
//! What the searcher may read is decided in the SQL (every public room, and the private
//! conversations they are a member of), never by dropping rows afterwards: counts, pages and the
//! time a search takes then say nothing about conversations that are not theirs.

use sqlx::AnyPool;

use super::rooms::{OTHER_PERSON, RoomKind};
use super::{rooms, users};
use crate::db::Engine;
use crate::domain::{Place, SearchQuery, Term};

/// Results per page.
pub const PER_PAGE: i64 = 20;
/// Relevance is ranked among the newest this many matching messages the searcher may read: a
/// ranking costs a score per candidate, and a common word matches thousands of messages (50 ms on
/// SQLite for 9,000, under no load). Fifty pages of results, as many as are served.
pub const CANDIDATES: i64 = PER_PAGE * MAX_PAGE;
/// Pages beyond this are not served: nobody reads the thousandth result, and a deep OFFSET costs.
pub const MAX_PAGE: i64 = 50;

/// Around each matched word in a [`Hit::snippet`]: control characters, which no message can
/// hold (`MessageBody` refuses them), so no text can open or close a mark; the snippet stays
/// plain text until the view escapes it and only then turns these into `<mark>`.
pub const MARK_START: char = '\u{1}';
pub const MARK_END: char = '\u{2}';

/// The text as PostgreSQL indexes it (see the migration): HTML-escaped, so that its parser
/// takes nothing typed for a tag. [`unescape`] turns a snippet of it back into the text.
const PG_ESCAPED_BODY: &str =
    "replace(replace(replace(m.body, '&', '&amp;'), '<', '&lt;'), '>', '&gt;')";

/// At most this many characters of a message listed without words to match (`from:alice`).
const PLAIN_SNIPPET_CHARS: usize = 200;

/// One message found.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Hit {
    pub seq: i64,
    pub author: String,
    /// The author's display name (empty: none).
    pub author_display: String,
    pub created_ms: i64,
    #[sqlx(try_from = "String")]
    pub room_kind: RoomKind,
    pub room_name: Option<String>,
    /// In a private conversation, the other person (whose name is its URL for the searcher).
    pub other: Option<String>,
    /// Part of the text, the matched words between [`MARK_START`] and [`MARK_END`]; raw text.
    pub snippet: String,
}

#[derive(Debug, Default)]
pub struct Found {
    pub hits: Vec<Hit>,
    /// Whether there is a next page.
    pub more: bool,
}

/// The conversations `$1` (the searcher) may read, for a WHERE clause over rooms `r`.
const READABLE: &str = "(r.kind = 'public'
    OR EXISTS (SELECT 1 FROM memberships v WHERE v.room_id = r.id AND v.user_id = $1))";

fn columns() -> String {
    format!(
        "m.seq AS seq, a.username AS author, a.display_name AS author_display,
         m.created_ms AS created_ms, r.kind AS room_kind,
         r.name AS room_name, {OTHER_PERSON} AS other"
    )
}

enum Value {
    Int(i64),
    Text(String),
}

/// The WHERE conditions and values of a search, `$1` being the searcher. Conditions are fixed
/// text chosen by the parsed query; what was typed only ever travels as a bound value.
struct Sql {
    values: Vec<Value>,
    filters: String,
}

impl Sql {
    fn bind(&mut self, value: Value) -> String {
        self.values.push(value);
        format!("${}", self.values.len())
    }

    fn filter(&mut self, condition: &str, value: i64) {
        let mark = self.bind(Value::Int(value));
        self.filters.push_str(&format!(" AND {condition} {mark}"));
    }
}

/// SQLite: indexes the messages sent since the last call, in one transaction (see the search
/// migration: a segment per batch, not per send). The number indexed; 0, cheaply, when there are
/// none (a read, without waiting for the write turn). PostgreSQL keeps its index in the row
/// itself and has nothing to do.
pub async fn index_new(db: &crate::db::Db) -> sqlx::Result<i64> {
    if db.engine != Engine::Sqlite {
        return Ok(0);
    }
    let pool = &db.pool;
    let newest = || {
        sqlx::query_as::<_, (i64, i64)>(
            "SELECT indexed_upto, (SELECT COALESCE(MAX(id), 0) FROM messages) FROM search_state",
        )
    };
    let (upto, latest) = newest().fetch_one(pool).await?;
    if latest <= upto {
        return Ok(0);
    }
    let _turn = db.write_turn().await;
    // On the connection sends are stored on, whose cache this write then leaves current.
    let writer = db.sends();
    // Read again in the turn: another indexing may have run meanwhile.
    let (upto, newest) = newest().fetch_one(writer).await?;
    if newest <= upto {
        return Ok(0);
    }
    let mut tx = writer.begin().await?;
    sqlx::query(
        "INSERT INTO messages_fts (rowid, body)
         SELECT id, body FROM messages WHERE id > $1 AND id <= $2 ORDER BY id",
    )
    .bind(upto)
    .bind(newest)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE search_state SET indexed_upto = $1")
        .bind(newest)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(newest - upto)
}

/// Page `page` (from 1) of the messages matching `query` that `viewer` may read: by relevance
/// (among the newest [`CANDIDATES`]), then newest first; newest first alone when only operators
/// were given.
pub async fn messages(
    pool: &AnyPool,
    engine: Engine,
    viewer: i64,
    query: &SearchQuery,
    page: i64,
) -> sqlx::Result<Found> {
    if query.is_empty() || page > MAX_PAGE {
        return Ok(Found::default());
    }
    let mut sql = Sql {
        values: vec![Value::Int(viewer)],
        // A call's record is not something anyone wrote.
        filters: String::from(" AND m.kind = ''"),
    };
    // Names become ids first; a name that leads nowhere finds nothing.
    if let Some(from) = &query.from {
        let Some(author) = users::find_by_name(pool, from.as_str()).await? else {
            return Ok(Found::default());
        };
        sql.filter("m.author_id =", author.id);
    }
    if let Some(place) = &query.place {
        let room = match place {
            Place::Room(name) => rooms::find_public(pool, name.as_str()).await?,
            Place::Direct(name) => match users::find_by_name(pool, name.as_str()).await? {
                Some(other) => rooms::find_direct(pool, viewer, other.id).await?,
                None => None,
            },
        };
        let Some(room) = room else {
            return Ok(Found::default());
        };
        sql.filter("m.room_id =", room.id);
    }
    if let Some(before) = query.before_ms {
        sql.filter("m.created_ms <", before);
    }
    if let Some(after) = query.after_ms {
        sql.filter("m.created_ms >=", after);
    }
    let limit = sql.bind(Value::Int(PER_PAGE + 1));
    let offset = sql.bind(Value::Int((page.max(1) - 1) * PER_PAGE));
    let (filters, columns) = (sql.filters.clone(), columns());
    let text = if query.terms.is_empty() {
        format!(
            "SELECT {columns}, m.body AS snippet
             FROM messages m JOIN rooms r ON r.id = m.room_id JOIN users a ON a.id = m.author_id
             WHERE {READABLE}{filters}
             ORDER BY m.created_ms DESC, m.id DESC LIMIT {limit} OFFSET {offset}"
        )
    } else if engine == Engine::Sqlite {
        let matching = sql.bind(Value::Text(fts5_query(&query.terms)));
        // The newest candidates (FTS5 walks its lists newest first and stops), ranked; then
        // snippets for the page only: snippet() re-reads each text.
        format!(
            "WITH candidates AS (
                SELECT messages_fts.rowid AS id, bm25(messages_fts) AS score, m.created_ms AS created_ms
                FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
                JOIN rooms r ON r.id = m.room_id
                WHERE messages_fts MATCH {matching} AND {READABLE}{filters}
                ORDER BY messages_fts.rowid DESC LIMIT {CANDIDATES}
             ),
             hits AS (
                SELECT id, score, created_ms FROM candidates
                ORDER BY score, created_ms DESC, id DESC LIMIT {limit} OFFSET {offset}
             )
             SELECT {columns}, snippet(messages_fts, 0, char(1), char(2), '…', 24) AS snippet
             FROM hits JOIN messages_fts ON messages_fts.rowid = hits.id
             JOIN messages m ON m.id = hits.id
             JOIN rooms r ON r.id = m.room_id JOIN users a ON a.id = m.author_id
             WHERE messages_fts MATCH {matching}
             ORDER BY hits.score, hits.created_ms DESC, hits.id DESC"
        )
    } else {
        let (words, prefix) = websearch_query(&query.terms);
        let words = (!words.is_empty()).then(|| {
            let words = sql.bind(Value::Text(words));
            format!("websearch_to_tsquery('english', {words})")
        });
        // The word being typed: itself (stemmed), or any word that begins with it.
        let typing = prefix.map(|prefix| {
            let p = sql.bind(Value::Text(prefix));
            format!("(to_tsquery('english', {p}) || to_tsquery('simple', {p} || ':*'))")
        });
        // Without words, no empty `websearch_to_tsquery('')`: PostgreSQL answers that with a
        // notice ("doesn't contain lexemes"), a message to the client on every such search.
        let tsquery = match (words, typing) {
            (Some(words), Some(typing)) => format!("{words} && {typing}"),
            (Some(one), None) | (None, Some(one)) => one,
            // Not reached (there are terms here); an empty query would match nothing.
            (None, None) => "''::tsquery".to_owned(),
        };
        let options = sql.bind(Value::Text(format!(
            "StartSel={MARK_START}, StopSel={MARK_END}, MaxWords=24, MinWords=12"
        )));
        // The newest candidates by time, not by id: with `before:` the time index starts at
        // the date, where walking ids back from the newest passed over every later message
        // first (29 ms instead of 6 for a common word before a date half a year back).
        format!(
            "WITH q AS (SELECT {tsquery} AS q),
             candidates AS (
                SELECT m.id AS id, m.search AS search, m.created_ms AS created_ms
                FROM messages m JOIN rooms r ON r.id = m.room_id
                WHERE m.search @@ ({tsquery}) AND {READABLE}{filters}
                ORDER BY m.created_ms DESC, m.id DESC LIMIT {CANDIDATES}
             ),
             hits AS (
                SELECT c.id AS id, ts_rank(c.search, q.q) AS score, c.created_ms AS created_ms
                FROM q, candidates c
                ORDER BY score DESC, c.created_ms DESC, c.id DESC LIMIT {limit} OFFSET {offset}
             )
             SELECT {columns}, ts_headline('english', {PG_ESCAPED_BODY}, q.q, {options}) AS snippet
             FROM q, hits JOIN messages m ON m.id = hits.id
             JOIN rooms r ON r.id = m.room_id JOIN users a ON a.id = m.author_id
             ORDER BY hits.score DESC, hits.created_ms DESC, hits.id DESC"
        )
    };
    let mut select = sqlx::query_as::<_, Hit>(&text);
    for value in sql.values {
        select = match value {
            Value::Int(v) => select.bind(v),
            Value::Text(v) => select.bind(v),
        };
    }
    let mut hits = select.fetch_all(pool).await?;
    // No page past the last that may be asked for.
    let more = hits.len() as i64 > PER_PAGE && page < MAX_PAGE;
    hits.truncate(PER_PAGE as usize);
    for hit in &mut hits {
        if query.terms.is_empty() {
            shorten(&mut hit.snippet);
        } else if engine == Engine::Postgres {
            hit.snippet = unescape(&hit.snippet);
        }
    }
    Ok(Found { hits, more })
}

/// An FTS5 query: every term a quoted string (nothing typed is FTS5 syntax), all of them required;
/// the word being typed matches as a prefix.
fn fts5_query(terms: &[Term]) -> String {
    let quoted = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let parts: Vec<String> = terms
        .iter()
        .map(|term| match term {
            Term::Word(w) => quoted(w),
            Term::Prefix(w) => format!("{}*", quoted(w)),
            Term::Phrase(words) => quoted(&words.join(" ")),
        })
        .collect();
    parts.join(" ")
}

/// The words and phrases as `websearch_to_tsquery` text (each quoted, so that `or` and `-` are
/// words, not operators; the parser leaves no `"` inside a term), and the word being typed.
fn websearch_query(terms: &[Term]) -> (String, Option<String>) {
    let mut parts = Vec::new();
    let mut prefix = None;
    for term in terms {
        match term {
            // Escaped as the indexed text is (see `PG_ESCAPED_BODY`), so `<script>` finds itself.
            Term::Word(w) => parts.push(format!("\"{}\"", html_escaped(w))),
            Term::Phrase(words) => parts.push(format!("\"{}\"", html_escaped(&words.join(" ")))),
            // Letters and digits only (the parser's rule for a prefix): valid `to_tsquery` text.
            Term::Prefix(w) => prefix = Some(w.clone()),
        }
    }
    (parts.join(" "), prefix)
}

/// `&`, `<` and `>` as [`PG_ESCAPED_BODY`] escapes them.
fn html_escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The text [`PG_ESCAPED_BODY`] escaped, as it was typed (the view escapes it again, for HTML).
fn unescape(escaped: &str) -> String {
    escaped
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn shorten(text: &mut String) {
    if let Some((cut, _)) = text.char_indices().nth(PLAIN_SNIPPET_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_text_never_becomes_query_syntax() {
        let q = SearchQuery::parse(r#"a OR b NOT "c* d" NEAR(x y) mat"#);
        assert_eq!(
            fts5_query(&q.terms),
            r#""a" "OR" "b" "NOT" "c* d" "NEAR(x" "y)" "mat"*"#
        );
        let (words, prefix) = websearch_query(&q.terms);
        assert_eq!(words, r#""a" "OR" "b" "NOT" "c* d" "NEAR(x" "y)""#);
        assert_eq!(prefix.as_deref(), Some("mat"));
    }

    #[test]
    fn escaped_snippets_come_back_as_typed() {
        assert_eq!(unescape("&amp;lt; &lt;b&gt; &amp;amp;"), "&lt; <b> &amp;");
    }

    #[test]
    fn plain_snippets_are_cut() {
        let mut long = "x".repeat(300);
        shorten(&mut long);
        assert_eq!(long.chars().count(), PLAIN_SNIPPET_CHARS + 1);
    }
}
