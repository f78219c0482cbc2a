//! The file store: where attachments' bytes live. One interface (`object_store`) over a local
//! directory (the default, beside the database) and an S3-compatible bucket (for several servers),
//! chosen at start. Bytes are streamed in and out in chunks, never held whole.
//!
//! Keys are random (`f/3a/3a9c…`), never made from what the uploader called the file, so no name
//! can reach the file system; previews live under `p/`. A row in `attachments` names each key; a
//! periodic sweep deletes what no row names (bytes left by a crash between the two writes).

use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use rand::RngCore;

use crate::config::Settings;

pub use object_store::Error;

/// The file store of this process.
#[derive(Clone)]
pub struct Files {
    store: Arc<dyn ObjectStore>,
    /// How much of an upload is gathered before it is written as one part: S3 takes no part
    /// smaller than 5 MiB (but the last); a directory takes any.
    chunk: usize,
    /// What it is, for the log and `Debug`.
    describe: String,
    /// The directory, when it is one (for the sweep of staged leftovers).
    dir: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the files directory {0}: {1}")]
    Directory(String, #[source] std::io::Error),
    #[error("--files-url must be s3://BUCKET[/PREFIX] (got “{0}”)")]
    Url(String),
    #[error("cannot use the object store: {0}")]
    Store(#[from] object_store::Error),
}

impl Files {
    /// The store the settings name: `--files-url` (S3, configured by the usual `AWS_*`
    /// environment variables) or else the directory `--files-dir`, created when missing.
    pub fn open(settings: &Settings) -> Result<Files, OpenError> {
        match &settings.files_url {
            Some(url) => Self::s3(url),
            None => Self::directory(&settings.files_dir),
        }
    }

    fn directory(dir: &FsPath) -> Result<Files, OpenError> {
        let shown = dir.display().to_string();
        std::fs::create_dir_all(dir).map_err(|e| OpenError::Directory(shown.clone(), e))?;
        let store = LocalFileSystem::new_with_prefix(dir)?;
        Ok(Files {
            store: Arc::new(store),
            chunk: 1024 * 1024,
            describe: format!("files in {shown}"),
            dir: Some(dir.to_owned()),
        })
    }

    fn s3(url: &str) -> Result<Files, OpenError> {
        if !url.starts_with("s3://") {
            return Err(OpenError::Url(url.to_owned()));
        }
        // The S3 client's TLS (rustls) needs a crypto provider; ring is the one built in. A second
        // call finds one installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (bucket_url, prefix) = match url["s3://".len()..].split_once('/') {
            Some((bucket, prefix)) => (format!("s3://{bucket}"), prefix.trim_matches('/')),
            None => (url.to_owned(), ""),
        };
        let store = AmazonS3Builder::from_env().with_url(bucket_url).build()?;
        let store: Arc<dyn ObjectStore> = match prefix {
            "" => Arc::new(store),
            prefix => Arc::new(object_store::prefix::PrefixStore::new(store, prefix)),
        };
        Ok(Files {
            store,
            chunk: 5 * 1024 * 1024,
            describe: format!("files in {url}"),
            dir: None,
        })
    }

    /// A fresh key for a file's bytes, or its preview's.
    pub fn new_key(preview: bool) -> String {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let kind = if preview { "p" } else { "f" };
        format!("{kind}/{}/{hex}", &hex[..2])
    }

    /// A fresh key for a person's picture: `a/3a/3a9c….png`. Under a prefix of its own, which the
    /// attachments' sweep never lists (a `users.avatar` names it instead).
    pub fn new_avatar_key() -> String {
        let key = Self::new_key(false);
        let hex = key.rsplit('/').next().unwrap_or_default();
        format!("a/{}/{hex}.png", &hex[..2])
    }

    /// The key of the picture served as `/avatars/{name}`, when `name` has the shape of one
    /// (32 lower-case hex digits and `.png`) and so cannot name anything else in the store.
    pub fn avatar_key(name: &str) -> Option<String> {
        let hex = name.strip_suffix(".png")?;
        let shaped = hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        shaped.then(|| format!("a/{}/{hex}.png", &hex[..2]))
    }

    /// A writer of the bytes of `key`, sent in parts as they come.
    pub async fn writer(&self, key: &str) -> Result<Writer, Error> {
        let upload = self.store.put_multipart(&Path::from(key)).await?;
        Ok(Writer {
            inner: Some(WriteMultipart::new_with_chunk_size(upload, self.chunk)),
        })
    }

    /// Stores `bytes` under `key` in one go (a preview: small).
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), Error> {
        self.store.put(&Path::from(key), bytes.into()).await?;
        Ok(())
    }

    /// The bytes of `key` (those in `range`, when given), as a stream of chunks.
    pub async fn read(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static, Error> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let got = self.store.get_opts(&Path::from(key), options).await?;
        Ok(got.into_stream().map_err(std::io::Error::other))
    }

    /// All the bytes of `key` (a picture on its way to a thumbnail).
    pub async fn read_all(&self, key: &str) -> Result<Bytes, Error> {
        self.store.get(&Path::from(key)).await?.bytes().await
    }

    /// Deletes the bytes of `keys`. A key already gone is no failure; any other failure is logged,
    /// and the sweep deletes those bytes later.
    pub async fn delete(&self, keys: &[String]) {
        for key in keys {
            match self.store.delete(&Path::from(key.as_str())).await {
                Ok(()) | Err(Error::NotFound { .. }) => {}
                Err(err) => tracing::warn!(%err, key, "could not delete a file; the sweep will"),
            }
        }
    }

    /// Deletes the bytes under Parley's own prefixes (`f/`, `p/`, `a/`: nothing else in a shared
    /// bucket) that no attachment (or, under `a/`, no person's picture) names and that are older
    /// than `grace` (younger ones may belong to an upload whose row is not stored yet; on S3 an
    /// object's time is when its upload began). The number deleted.
    pub async fn sweep(&self, db: &sqlx::AnyPool, grace: Duration) -> Result<usize, SweepError> {
        let cutoff = cutoff_ms(grace);
        let mut swept = 0;
        for prefix in ["f", "p", "a"] {
            let mut listed = self.store.list(Some(&Path::from(prefix)));
            let mut batch = Vec::new();
            while let Some(meta) = listed.next().await {
                let meta = meta?;
                if meta.last_modified.timestamp_millis() > cutoff {
                    continue;
                }
                batch.push(meta.location.to_string());
                if batch.len() == 500 {
                    swept += self
                        .sweep_batch(db, prefix, std::mem::take(&mut batch))
                        .await?;
                }
            }
            swept += self.sweep_batch(db, prefix, batch).await?;
        }
        if let Some(dir) = self.dir.clone() {
            swept += tokio::task::spawn_blocking(move || sweep_staged(&dir, cutoff))
                .await
                .unwrap_or(0);
        }
        Ok(swept)
    }

    async fn sweep_batch(
        &self,
        db: &sqlx::AnyPool,
        prefix: &str,
        keys: Vec<String>,
    ) -> Result<usize, SweepError> {
        // A picture staff removed in the admin, or whose old bytes could not be deleted.
        let orphans = if prefix == "a" {
            crate::store::users::unreferenced_avatars(db, &keys).await?
        } else {
            crate::store::attachments::unreferenced(db, &keys).await?
        };
        self.delete(&orphans).await;
        Ok(orphans.len())
    }
}

/// Deletes the part-files a directory store stages an upload in (`name#N`), which a process
/// killed mid-upload leaves behind and which the store's own listing does not show.
fn sweep_staged(dir: &FsPath, cutoff_ms: i64) -> usize {
    let mut swept = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            swept += sweep_staged(&path, cutoff_ms);
            continue;
        }
        let staged = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.rsplit_once('#'))
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let modified_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(i64::MAX, |d| d.as_millis() as i64);
        if staged && modified_ms < cutoff_ms && std::fs::remove_file(&path).is_ok() {
            swept += 1;
        }
    }
    swept
}

fn cutoff_ms(grace: Duration) -> i64 {
    crate::now_ms() - grace.as_millis() as i64
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("listing the files failed: {0}")]
    Store(#[from] object_store::Error),
    #[error("the database failed: {0}")]
    Db(#[from] sqlx::Error),
}

/// How old bytes no row names must be before the sweep deletes them: longer than any upload
/// takes (ten files of the largest size, over a slow line), and than any clock skew.
pub const SWEEP_GRACE: Duration = Duration::from_secs(24 * 3600);

/// Sweeps the file store every `every`, for as long as the server runs: bytes no row names and
/// older than [`SWEEP_GRACE`] go.
pub fn spawn_sweeper(files: Files, db: sqlx::AnyPool, every: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match files.sweep(&db, SWEEP_GRACE).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(n, "swept files no attachment names"),
                Err(err) => tracing::warn!(%err, "the file sweep failed"),
            }
        }
    });
}

/// The bytes of one file on their way in. Dropped unfinished, it is aborted: nothing is left
/// under its key.
pub struct Writer {
    inner: Option<WriteMultipart>,
}

impl Writer {
    /// Adds `bytes`, waiting while two parts are already on their way (so a fast client cannot
    /// make the server hold more than a few parts of its file).
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let inner = self.inner.as_mut().expect("not finished");
        inner.wait_for_capacity(2).await?;
        inner.write(bytes);
        Ok(())
    }

    /// Stores what was written under the key.
    pub async fn finish(mut self) -> Result<(), Error> {
        let inner = self.inner.take().expect("not finished");
        inner.finish().await?;
        Ok(())
    }

    /// Gives up: whatever was sent is deleted.
    pub async fn abort(mut self) {
        if let Some(inner) = self.inner.take()
            && let Err(err) = inner.abort().await
        {
            tracing::warn!(%err, "could not abort an upload");
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            // The request went away mid-upload: abort in the background.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = inner.abort().await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Files;

    #[test]
    fn an_avatar_url_names_only_an_avatar_key() {
        let key = Files::new_avatar_key();
        let name = key.rsplit('/').next().unwrap();
        assert_eq!(Files::avatar_key(name), Some(key));
        for bad in [
            "",
            ".png",
            "../../etc/passwd",
            "3a9c.png",
            "3A9C0000000000000000000000000000.png",
            "3a9c0000000000000000000000000000",
            "3a9c0000000000000000000000000000.png/..",
            "f/3a/3a9c0000000000000000000000000000",
        ] {
            assert_eq!(Files::avatar_key(bad), None, "{bad}");
        }
    }
}
