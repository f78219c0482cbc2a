//! `parley backup FILE`: a consistent copy of a running SQLite installation in one tar file: the
//! database as `parley.db` (SQLite's `VACUUM INTO`, which reads one snapshot while the server goes
//! on writing) and the bytes of every attachment and picture that snapshot names, under `parley-files/` with
//! their store keys. Restore with `tar xf FILE` and
//! `parley serve --database-url sqlite://parley.db --files-dir parley-files`.
//!
//! PostgreSQL has its own tools (`pg_dump`; the README says how); a bucket has its own versioning.
//! The archive is written under a temporary name beside FILE and renamed when complete, so FILE
//! is never half-written.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::config::Settings;
use crate::files::Files;

/// What a backup holds, for its one line of report.
#[derive(Debug)]
pub struct Report {
    pub messages: i64,
    pub files: usize,
    pub bytes: u64,
    /// Files the snapshot names that were deleted before they could be copied (their message
    /// was deleted meanwhile).
    pub missing: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("reading the database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("reading a file from the store: {0}")]
    Store(#[from] object_store::Error),
    #[error(transparent)]
    Files(#[from] crate::files::OpenError),
}

/// Removes what it names when dropped, unless kept: the partial archive and the snapshot.
struct Scratch(Option<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn refuse(why: String) -> BackupError {
    BackupError::Refused(why)
}

pub async fn backup(settings: &Settings, target: &Path) -> Result<Report, BackupError> {
    let url = settings.database_url.as_str();
    if !url.starts_with("sqlite:") {
        return Err(refuse(
            "backup copies SQLite databases; for PostgreSQL use pg_dump (see the README)".into(),
        ));
    }
    let source = SqliteConnectOptions::from_str(url)?
        .create_if_missing(false)
        .read_only(true);
    let db_file = source.get_filename().to_owned();
    if !db_file.is_file() {
        return Err(refuse(format!("no database at {}", db_file.display())));
    }
    if target.exists() {
        return Err(refuse(format!("{} already exists", target.display())));
    }
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(refuse(format!("no directory {}", parent.display())));
    }
    let name = target
        .file_name()
        .ok_or_else(|| refuse(format!("{} names no file", target.display())))?
        .to_string_lossy()
        .into_owned();
    let pid = std::process::id();
    let snapshot = Scratch(Some(parent.join(format!(".{name}.{pid}.db"))));
    let partial = Scratch(Some(parent.join(format!(".{name}.{pid}.partial"))));
    let snapshot_path = snapshot.0.clone().expect("set");
    let partial_path = partial.0.clone().expect("set");

    // The database holds live session ids, secrets and password hashes: the copies are the
    // owner's alone, whatever the umask of whoever runs the backup. (VACUUM INTO writes into an
    // empty file that exists.)
    private_file(&snapshot_path)
        .map_err(|e| BackupError::Io(format!("creating {}", snapshot_path.display()), e))?;
    // One snapshot of the live database, however busy it is.
    let mut live = SqliteConnection::connect_with(&source).await?;
    sqlx::query("VACUUM INTO $1")
        .bind(snapshot_path.to_string_lossy().into_owned())
        .execute(&mut live)
        .await?;
    live.close().await?;

    // What the snapshot holds, and which files it names.
    let copy = SqliteConnectOptions::new()
        .filename(&snapshot_path)
        .read_only(true);
    let mut copy = SqliteConnection::connect_with(&copy).await?;
    let messages: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(&mut copy)
        .await?;
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT storage_key FROM attachments
         UNION SELECT preview_key FROM attachments WHERE preview_key IS NOT NULL
         UNION SELECT avatar FROM users WHERE avatar <> ''
         ORDER BY 1",
    )
    .fetch_all(&mut copy)
    .await?;
    copy.close().await?;

    let io = |what: &str, e| BackupError::Io(format!("{what} {}", partial_path.display()), e);
    let out = private_file(&partial_path).map_err(|e| io("creating", e))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(out));
    tar.append_path_with_name(&snapshot_path, "parley.db")
        .map_err(|e| io("writing", e))?;
    let mut report = Report {
        messages,
        files: 0,
        bytes: 0,
        missing: 0,
    };
    if !keys.is_empty() {
        let files = Files::open(settings)?;
        for key in &keys {
            let bytes = match files.read_all(key).await {
                Ok(bytes) => bytes,
                Err(object_store::Error::NotFound { .. }) => {
                    report.missing += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o600);
            header.set_mtime(crate::now_ms() as u64 / 1000);
            header.set_cksum();
            tar.append_data(&mut header, format!("parley-files/{key}"), &bytes[..])
                .map_err(|e| io("writing", e))?;
            report.files += 1;
            report.bytes += bytes.len() as u64;
        }
    }
    let out = tar
        .into_inner()
        .map_err(|e| io("finishing", e))?
        .into_inner()
        .map_err(|e| io("finishing", e.into_error()))?;
    out.sync_all().map_err(|e| io("syncing", e))?;
    drop(out);
    // The final name only for a whole archive, and never over a file made meanwhile.
    if target.exists() {
        return Err(refuse(format!("{} already exists", target.display())));
    }
    std::fs::rename(&partial_path, target).map_err(|e| io("renaming", e))?;
    let mut partial = partial;
    partial.0 = None;
    Ok(report)
}

/// A new file only its owner may read (0600).
pub(crate) fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}
