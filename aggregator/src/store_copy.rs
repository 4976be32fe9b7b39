//! The copy of the tier's store on S3-compatible storage (`store_copy = "s3://BUCKET/PREFIX"`,
//! docs/STORAGE.md), which `sifa query --data s3://…` and `sifa publish` read.
//!
//! The tier keeps working in its `data_dir` (log, state, key files and the Parquet it writes);
//! after every flush interval this task brings the bucket in line with the directory:
//! 1. new report files, then new current files, are put (a PUT is atomic: a reader sees the whole
//!    object or none; names are unique, a file is never rewritten under its name);
//! 2. the small files (store.toml, catalog.toml, registry.csv, approvals.csv) are put when they
//!    changed;
//! 3. only then are the objects the directory no longer has deleted (the inputs of a compaction,
//!    a current file derived again), so a reader never misses a row: between 1 and 3 it may list
//!    a merged file beside its inputs, and every view keeps a revision once; a current file whose
//!    `sifa.covers` no longer matches the listed report files is not used.
//!
//! S3 being slow or down never holds up a report: the round is logged as a warning and retried
//! the next round (what the bucket holds is listed again). The tier copies once more when it
//! stops, after its last flush.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sifa_queries::remote::Bucket;
use sifa_store::layout::{self, CATALOG_FILE, REGISTRY_FILE, STORE_META_FILE};
use tokio::sync::watch;

/// The small files a store is read with, copied whenever they change.
const SMALL_FILES: [&str; 4] = [STORE_META_FILE, CATALOG_FILE, REGISTRY_FILE, sifa_store::approvals::APPROVALS_CSV];

/// How one round went.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub put: usize,
    pub deleted: usize,
}

/// Keeps `bucket` a copy of the store in `data_dir`.
#[derive(Debug)]
pub struct StoreCopy {
    pub data_dir: PathBuf,
    pub bucket: Bucket,
    /// The objects the bucket is known to hold (keys relative to the prefix); `None`: list it.
    held: Option<BTreeSet<String>>,
    /// The small files as last put: (length, modified).
    small: BTreeMap<&'static str, (u64, SystemTime)>,
}

impl StoreCopy {
    pub fn new(data_dir: PathBuf, bucket: Bucket) -> StoreCopy {
        StoreCopy { data_dir, bucket, held: None, small: BTreeMap::new() }
    }

    /// Copies every `interval` until `stop` turns true, then once more (call it after the last flush).
    pub async fn run(mut self, interval: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            let stopping = *stop.borrow();
            match self.round().await {
                Ok(r) if r != Round::default() => {
                    tracing::info!(put = r.put, deleted = r.deleted, bucket = %self.bucket.url, "store copied")
                }
                Ok(_) => {}
                Err(e) => {
                    self.held = None;
                    tracing::warn!(bucket = %self.bucket.url, "cannot copy the store (retried next round): {e}");
                }
            }
            if stopping {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// One round: puts what is new, then deletes what the directory no longer has.
    pub async fn round(&mut self) -> Result<Round, String> {
        let held = match self.held.take() {
            Some(h) => h,
            None => self.list().await?,
        };
        let mut held = held;
        let mut round = Round::default();
        let mut local = BTreeSet::new();
        for dir in [layout::REPORTS_DIR, layout::CURRENT_DIR] {
            let files = sifa_store::list_partitioned(&self.data_dir.join(dir)).map_err(|e| e.to_string())?;
            for (year, seq, path) in files {
                let key = format!("{dir}/year={year}/{}", layout::file_name(seq));
                if !held.contains(&key) {
                    match std::fs::read(&path) {
                        Ok(bytes) => {
                            self.put(&key, bytes).await?;
                            held.insert(key.clone());
                            round.put += 1;
                        }
                        // Compacted away since it was listed: the next round sees the merged file.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
                    }
                }
                local.insert(key);
            }
        }
        for name in SMALL_FILES {
            let path = self.data_dir.join(name);
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            let stamp = (meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
            if self.small.get(name) != Some(&stamp) || !held.contains(name) {
                let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                self.put(name, bytes).await?;
                held.insert(name.to_string());
                self.small.insert(name, stamp);
                round.put += 1;
            }
        }
        let gone: Vec<String> = held
            .iter()
            .filter(|k| (k.starts_with("reports/") || k.starts_with("current/")) && !local.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            let object = self.bucket.object(&key);
            match self.bucket.store.delete(&object).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.bucket.error(&format!("cannot delete {key}"), e).to_string()),
            }
            held.remove(&key);
            round.deleted += 1;
        }
        self.held = Some(held);
        Ok(round)
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), String> {
        let object = self.bucket.object(key);
        self.bucket
            .store
            .put(&object, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| self.bucket.error(&format!("cannot put {key}"), e).to_string())
    }

    /// The keys under the prefix, relative to it.
    async fn list(&self) -> Result<BTreeSet<String>, String> {
        let prefix = self.bucket.prefix.clone();
        let listed: Vec<_> = self
            .bucket
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| self.bucket.error("cannot list the bucket", e).to_string())?;
        let skip = if prefix.as_ref().is_empty() { 0 } else { prefix.as_ref().len() + 1 };
        Ok(listed.into_iter().map(|m| m.location.as_ref()[skip..].to_string()).collect())
    }
}
