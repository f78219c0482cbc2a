//! `parley export DIR` and `parley import DIR`: everything people made in Parley, as
//! newline-delimited JSON plus the attachments' bytes, readable by either engine. This is the way
//! from one server on SQLite to several on PostgreSQL: export there, import here.
//!
//! An export is a directory:
//!
//! | file | what |
//! |---|---|
//! | `manifest.json` | format name and version, when, from which engine, whether password hashes are in it, each table's columns and rows, the number of files |
//! | `{table}.ndjson` | one JSON object per row (column → number, text or null), in primary-key order |
//! | `files/{key}` | the bytes of each attachment, thumbnail and person's picture, under its store key |
//!
//! Rows keep their ids, so what refers to what survives the move. The tables are [`TABLES`]: what
//! people and staff made. Sessions, server secrets, unused reset links and the search index are
//! not moved: they are made again (the index from the messages) or are secrets of the old server.
//! Without `--with-password-hashes` every account arrives without a password, and staff give
//! each a reset link (or a superuser sets one) after the move.
//!
//! Both commands refuse in one line (exit code 1) a target they cannot use, and never leave a
//! half-written result: an export is written under a temporary name and renamed when whole; an
//! import is one transaction (its files are stored first; if the transaction fails they are
//! bytes no row names, which the sweep removes).

use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::config::Settings;
use crate::db::{Db, Engine, Schema};
use crate::files::Files;

pub const FORMAT: &str = "parley-export";
pub const VERSION: u32 = 1;

/// The tables moved, parents before children, each with the columns of its primary key (the
/// order rows are written in, so two exports of the same content are the same bytes).
pub const TABLES: &[(&str, &str)] = &[
    ("users", "id"),
    ("rooms", "id"),
    ("messages", "id"),
    ("memberships", "room_id, user_id"),
    ("message_tombstones", "room_id, seq"),
    ("reactions", "message_id, user_id, emoji"),
    ("mentions", "message_id, user_id"),
    ("calls", "id"),
    ("attachments", "id"),
    ("favourites", "id"),
    ("departures", "user_id, room_id"),
    ("invites", "id"),
    ("admin_log", "id"),
];

/// Rows per INSERT on import: well under either engine's limit of bound parameters.
const ROWS_PER_INSERT: usize = 200;

#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub exported_ms: i64,
    pub engine: String,
    pub password_hashes: bool,
    pub tables: BTreeMap<String, TableInfo>,
    pub files: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TableInfo {
    pub columns: Vec<String>,
    pub rows: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Connect(#[from] crate::db::ConnectError),
    #[error("file store: {0}")]
    Store(#[from] object_store::Error),
    #[error(transparent)]
    Files(#[from] crate::files::OpenError),
    #[error("{0}: {1}")]
    Json(String, #[source] serde_json::Error),
}

fn refuse(why: impl Into<String>) -> TransferError {
    TransferError::Refused(why.into())
}

fn io(what: impl std::fmt::Display, path: &Path) -> impl FnOnce(std::io::Error) -> TransferError {
    let what = format!("{what} {}", path.display());
    move |e| TransferError::Io(what, e)
}

/// A column and whether it holds integers (else text).
#[derive(Debug, Clone)]
struct Column {
    name: String,
    int: bool,
}

/// The stored columns of `table` (not generated ones, such as PostgreSQL's search vector).
async fn columns(
    conn: &mut AnyConnection,
    engine: Engine,
    table: &str,
) -> Result<Vec<Column>, TransferError> {
    let found: Vec<(String, String)> = match engine {
        Engine::Sqlite => {
            sqlx::query_as("SELECT name, type FROM pragma_table_xinfo($1) WHERE hidden = 0")
                .bind(table)
                .fetch_all(&mut *conn)
                .await?
        }
        Engine::Postgres => {
            sqlx::query_as(
                "SELECT column_name::text, data_type::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1
                   AND is_generated = 'NEVER'
                 ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await?
        }
    };
    if found.is_empty() {
        return Err(refuse(format!("the database has no table {table}")));
    }
    found
        .into_iter()
        .map(|(name, kind)| {
            let kind = kind.to_ascii_lowercase();
            if kind.contains("int") {
                Ok(Column { name, int: true })
            } else if kind.contains("text") || kind.contains("char") {
                Ok(Column { name, int: false })
            } else {
                Err(refuse(format!(
                    "{table}.{name} has a type export does not know: {kind}"
                )))
            }
        })
        .collect()
}

fn progress(what: &str, len: u64) -> ProgressBar {
    // Drawn on standard error, and only when it is a terminal.
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg:>20} [{bar:30}] {pos}/{len}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// Removes a directory when dropped, unless kept: the export being written.
struct Scratch(Option<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// The source database must exist: export never creates one.
fn check_source(settings: &Settings) -> Result<(), TransferError> {
    use std::str::FromStr;
    let url = settings.database_url.as_str();
    if url.starts_with("sqlite:") {
        let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
        if !opts.get_filename().is_file() {
            return Err(refuse(format!(
                "no database at {}",
                opts.get_filename().display()
            )));
        }
    }
    Ok(())
}

/// What an export wrote, for its report.
#[derive(Debug)]
pub struct Counts {
    pub rows: BTreeMap<String, u64>,
    pub files: usize,
    /// Files whose message was deleted while the export ran (their bytes were gone).
    pub missing: usize,
}

pub async fn export(
    settings: &Settings,
    target: &Path,
    password_hashes: bool,
) -> Result<Counts, TransferError> {
    if target.exists() {
        let empty = target.is_dir()
            && std::fs::read_dir(target)
                .map_err(io("reading", target))?
                .next()
                .is_none();
        if !empty {
            return Err(refuse(format!(
                "{} exists and is not empty",
                target.display()
            )));
        }
    }
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(refuse(format!("no directory {}", parent.display())));
    }
    check_source(settings)?;
    // Read as it is: a server of another version may be using it, and migrating its schema
    // would change that server's tables underneath it.
    let db = Db::open(settings).await?;
    match db.schema().await? {
        Schema::Current => {}
        Schema::Behind => {
            return Err(refuse(
                "the database's schema is older than this Parley's: start this version's server \
                 on it, or run `parley migrate`, then export"
                    .to_owned(),
            ));
        }
        Schema::Ahead => {
            return Err(refuse(
                "the database was migrated by a newer Parley: export it with that version"
                    .to_owned(),
            ));
        }
        Schema::Differs => {
            return Err(refuse(
                "the database's migrations differ from this Parley's (one was changed after it \
                 was applied): export it with the version that migrated it"
                    .to_owned(),
            ));
        }
    }
    let name = target
        .file_name()
        .ok_or_else(|| refuse(format!("{} names no directory", target.display())))?
        .to_string_lossy()
        .into_owned();
    let work = parent.join(format!(".{name}.{}.partial", std::process::id()));
    let scratch = Scratch(Some(work.clone()));
    // Only its owner may read it: it may hold password hashes, and holds invite codes.
    let mut dir = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
    dir.create(&work).map_err(io("creating", &work))?;

    let mut conn = db.pool.acquire().await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    if db.engine == Engine::Postgres {
        // One snapshot for every table, however busy the server is.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
    }
    let mut manifest = Manifest {
        format: FORMAT.to_owned(),
        version: VERSION,
        exported_ms: crate::now_ms(),
        engine: match db.engine {
            Engine::Sqlite => "sqlite".to_owned(),
            Engine::Postgres => "postgres".to_owned(),
        },
        password_hashes,
        tables: BTreeMap::new(),
        files: 0,
    };
    let mut keys = Vec::new();
    for &(table, order) in TABLES {
        let cols = columns(&mut tx, db.engine, table).await?;
        let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut *tx)
            .await?;
        let bar = progress(table, total as u64);
        let path = work.join(format!("{table}.ndjson"));
        let mut out = BufWriter::new(std::fs::File::create(&path).map_err(io("creating", &path))?);
        let list = cols
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT {list} FROM {table} ORDER BY {order}");
        let mut rows = sqlx::query(&sql).fetch(&mut *tx);
        let mut n = 0u64;
        while let Some(row) = rows.next().await {
            let mut object = row_to_json(&row?, &cols)?;
            if table == "users" && !password_hashes {
                object.insert("password_hash".into(), Value::String(String::new()));
            }
            if table == "attachments" {
                for key in ["storage_key", "preview_key"] {
                    if let Some(Value::String(k)) = object.get(key) {
                        keys.push(k.clone());
                    }
                }
            }
            // A person's picture: the store holds it under its key like a file's bytes.
            if table == "users"
                && let Some(Value::String(k)) = object.get("avatar").filter(|k| k != &"")
            {
                keys.push(k.clone());
            }
            serde_json::to_writer(&mut out, &object)
                .map_err(|e| TransferError::Json(format!("writing {table}"), e))?;
            out.write_all(b"\n").map_err(io("writing", &path))?;
            n += 1;
            bar.inc(1);
        }
        drop(rows);
        finish_file(out, &path)?;
        bar.finish_and_clear();
        manifest.tables.insert(
            table.to_owned(),
            TableInfo {
                columns: cols.into_iter().map(|c| c.name).collect(),
                rows: n,
            },
        );
    }
    tx.commit().await?;

    let files = Files::open(settings)?;
    let bar = progress("files", keys.len() as u64);
    let mut missing = 0;
    for key in &keys {
        let path = work.join("files").join(key);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        }
        let mut stream = match files.read(key, None).await {
            Ok(stream) => stream,
            // Its message was deleted after the tables were read: the server goes on running.
            Err(object_store::Error::NotFound { .. }) => {
                missing += 1;
                bar.inc(1);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut out = BufWriter::new(std::fs::File::create(&path).map_err(io("creating", &path))?);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(io("reading the stored file for", &path))?;
            out.write_all(&chunk).map_err(io("writing", &path))?;
        }
        finish_file(out, &path)?;
        manifest.files += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();

    let path = work.join("manifest.json");
    let text = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| TransferError::Json("writing the manifest".into(), e))?;
    std::fs::write(&path, text).map_err(io("writing", &path))?;
    if target.exists() {
        // The empty directory it was allowed to be (a non-empty one meanwhile is refused).
        std::fs::remove_dir(target).map_err(io("replacing", target))?;
    }
    std::fs::rename(&work, target).map_err(io("renaming to", target))?;
    let mut scratch = scratch;
    scratch.0 = None;
    Ok(Counts {
        rows: manifest
            .tables
            .iter()
            .map(|(t, i)| (t.clone(), i.rows))
            .collect(),
        files: manifest.files,
        missing,
    })
}

fn finish_file(out: BufWriter<std::fs::File>, path: &Path) -> Result<(), TransferError> {
    let file = out
        .into_inner()
        .map_err(|e| TransferError::Io(format!("writing {}", path.display()), e.into_error()))?;
    file.sync_all().map_err(io("syncing", path))
}

fn row_to_json(row: &AnyRow, cols: &[Column]) -> Result<Map<String, Value>, TransferError> {
    let mut object = Map::new();
    for (i, col) in cols.iter().enumerate() {
        let value = if col.int {
            row.try_get::<Option<i64>, _>(i)?.map(Value::from)
        } else {
            row.try_get::<Option<String>, _>(i)?.map(Value::from)
        };
        object.insert(col.name.clone(), value.unwrap_or(Value::Null));
    }
    Ok(object)
}

pub async fn import(settings: &Settings, source: &Path) -> Result<Counts, TransferError> {
    let manifest_path = source.join("manifest.json");
    if !source.is_dir() {
        return Err(refuse(format!("no export at {}", source.display())));
    }
    let text = std::fs::read(&manifest_path).map_err(|_| {
        refuse(format!(
            "{} has no manifest.json: not an export",
            source.display()
        ))
    })?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| refuse(format!("{}: {e}", manifest_path.display())))?;
    if manifest.format != FORMAT || manifest.version != VERSION {
        return Err(refuse(format!(
            "{} is {} version {}; this Parley reads {FORMAT} version {VERSION}",
            source.display(),
            manifest.format,
            manifest.version
        )));
    }
    let db = Db::connect(settings).await?;
    let people: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&db.pool)
        .await?;
    if people > 0 {
        return Err(refuse(format!(
            "the database already has {people} users; import into one that has none"
        )));
    }

    // The files first: if the rows fail, they are bytes no row names (the sweep's to remove).
    let files = Files::open(settings)?;
    let dir = source.join("files");
    let bar = progress("files", manifest.files as u64);
    let mut stored = 0;
    if dir.is_dir() {
        for path in walk(&dir)? {
            let key = path
                .strip_prefix(&dir)
                .map_err(|_| refuse("a file outside the export"))?
                .to_string_lossy()
                .replace(std::path::MAIN_SEPARATOR, "/");
            copy_in(&files, &key, &path).await?;
            stored += 1;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    let mut conn = db.pool.acquire().await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    // What a fresh installation made by itself (a first room, say) makes way for the export.
    for &(table, _) in TABLES.iter().rev() {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await?;
    }
    let mut counts = BTreeMap::new();
    for &(table, _) in TABLES {
        let Some(info) = manifest.tables.get(table) else {
            counts.insert(table.to_owned(), 0);
            continue;
        };
        let target = columns(&mut tx, db.engine, table).await?;
        let cols: Vec<Column> = info
            .columns
            .iter()
            .map(|name| {
                target.iter().find(|c| &c.name == name).cloned().ok_or_else(|| {
                    refuse(format!(
                        "the export has {table}.{name}, which this database lacks: import it with the Parley that made it"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        if table == "memberships" {
            // SQLite's trigger made an author a member of each room as their messages came in;
            // the export says what each membership really is.
            sqlx::query("DELETE FROM memberships")
                .execute(&mut *tx)
                .await?;
        }
        let bar = progress(table, info.rows);
        let path = source.join(format!("{table}.ndjson"));
        let file = std::fs::File::open(&path).map_err(io("opening", &path))?;
        let mut batch = Vec::with_capacity(ROWS_PER_INSERT);
        let mut n = 0u64;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(io("reading", &path))?;
            if line.trim().is_empty() {
                continue;
            }
            let object: Map<String, Value> = serde_json::from_str(&line).map_err(|e| {
                TransferError::Json(format!("{} line {}", path.display(), n + 1), e)
            })?;
            batch.push(object);
            if batch.len() == ROWS_PER_INSERT {
                insert(&mut tx, db.engine, table, &cols, &batch).await?;
                bar.inc(batch.len() as u64);
                batch.clear();
            }
            n += 1;
        }
        if !batch.is_empty() {
            insert(&mut tx, db.engine, table, &cols, &batch).await?;
            bar.inc(batch.len() as u64);
        }
        bar.finish_and_clear();
        if n != info.rows {
            return Err(refuse(format!(
                "{} has {n} rows where the manifest says {}: the export is damaged",
                path.display(),
                info.rows
            )));
        }
        counts.insert(table.to_owned(), n);
    }
    after_rows(&mut tx, db.engine).await?;
    tx.commit().await?;
    Ok(Counts {
        rows: counts,
        files: stored,
        missing: 0,
    })
}

/// Every file under `dir`, depth first.
fn walk(dir: &Path) -> Result<Vec<PathBuf>, TransferError> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).map_err(io("reading", &d))? {
            let path = entry.map_err(io("reading", &d))?.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

async fn copy_in(files: &Files, key: &str, path: &Path) -> Result<(), TransferError> {
    let mut file = std::fs::File::open(path).map_err(io("opening", path))?;
    let mut writer = files.writer(key).await?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io("reading", path))?;
        if n == 0 {
            break;
        }
        if let Err(e) = writer.write(&buf[..n]).await {
            writer.abort().await;
            return Err(e.into());
        }
    }
    writer.finish().await?;
    Ok(())
}

async fn insert(
    conn: &mut AnyConnection,
    engine: Engine,
    table: &str,
    cols: &[Column],
    rows: &[Map<String, Value>],
) -> Result<(), TransferError> {
    let names = cols
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = format!("INSERT INTO {table} ({names})");
    if engine == Engine::Postgres {
        // The ids are the export's: what refers to what stays true.
        sql.push_str(" OVERRIDING SYSTEM VALUE");
    }
    sql.push_str(" VALUES ");
    let mut p = 0;
    for (i, _) in rows.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for j in 0..cols.len() {
            if j > 0 {
                sql.push_str(", ");
            }
            p += 1;
            sql.push_str(&format!("${p}"));
        }
        sql.push(')');
    }
    let mut query = sqlx::query(&sql);
    for row in rows {
        for col in cols {
            let value = row.get(&col.name).unwrap_or(&Value::Null);
            query = match (col.int, value) {
                (true, Value::Number(n)) => query.bind(n.as_i64().ok_or_else(|| {
                    refuse(format!("{table}.{}: {n} is not an integer", col.name))
                })?),
                (true, Value::Null) => query.bind(None::<i64>),
                (false, Value::String(s)) => query.bind(s.clone()),
                (false, Value::Null) => query.bind(None::<String>),
                (_, other) => {
                    return Err(refuse(format!(
                        "{table}.{}: {other} is not what the column holds",
                        col.name
                    )));
                }
            };
        }
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// What the engines keep beside the rows: PostgreSQL's id sequences continue after the
/// imported ids; SQLite's search index is built from the imported messages.
async fn after_rows(conn: &mut AnyConnection, engine: Engine) -> Result<(), TransferError> {
    match engine {
        Engine::Postgres => {
            for &(table, order) in TABLES {
                if order != "id" {
                    continue;
                }
                sqlx::query(&format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                                   COALESCE(MAX(id), 1), MAX(id) IS NOT NULL)::bigint FROM {table}"
                ))
                .execute(&mut *conn)
                .await?;
            }
        }
        Engine::Sqlite => {
            sqlx::query("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
                .execute(&mut *conn)
                .await?;
            sqlx::query("UPDATE search_state SET indexed_upto = (SELECT COALESCE(MAX(id), 0) FROM messages)")
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}
