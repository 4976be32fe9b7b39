//! Where a tier's Parquet store lives: its data directory (the default), or a prefix of a bucket
//! on S3-compatible storage (`store = "s3://BUCKET/PREFIX"`, docs/STORAGE.md).
//!
//! The flusher, the compaction, the current figures and the index load at start go through
//! [`ReportFiles`] and do not care which. With a bucket, `reports/` and `current/` are objects
//! there and nowhere else; the data directory keeps the log, `state/` (with the key files of
//! `state/index/`) and the small files, which are put in the bucket whenever they change
//! ([`ReportFiles::publish_small_files`]), so `sifa query --data s3://…` reads the store as
//! it reads a directory.
//!
//! A PUT is atomic: a reader sees a whole object or none. A report file is put under a name no
//! other file had (its sequence number) and only if nothing is there (a conditional put); a
//! record leaves the log only once its file is in the bucket, so while the bucket is down the
//! tier keeps acknowledging reports into its log, and flushes them when the bucket is back.
//! Compaction keeps its local order (intent, merged file, inputs deleted) with objects.
//!
//! The methods block: they are called from the flusher's and the log writer's threads (a bucket
//! is driven through the tier's runtime), never from a task of that runtime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use sifa_proto::Catalog;
use sifa_queries::remote::Bucket;
use sifa_store::layout::{self, CURRENT_DIR, REPORTS_DIR, SMALL_FILES};
use sifa_store::{StoreError, StoredReport};

/// One report file of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFile {
    pub year: u16,
    pub seq: u64,
    /// Its size in bytes.
    pub len: u64,
    /// Its path, or its object's key.
    pub location: String,
}

/// The report files of a tier, and its current figures derived from them.
#[derive(Debug)]
pub enum ReportFiles {
    /// Under the data directory.
    Directory(PathBuf),
    /// In a bucket.
    Bucket(InBucket),
}

/// A store in a bucket, driven from a thread outside the runtime.
#[derive(Debug)]
pub struct InBucket {
    pub bucket: Bucket,
    runtime: tokio::runtime::Handle,
    /// The data directory whose small files are put in the bucket.
    data_dir: PathBuf,
    /// The small files as last put: (length, modified).
    small: std::sync::Mutex<BTreeMap<&'static str, (u64, SystemTime)>>,
}

impl ReportFiles {
    /// The store in `bucket` of the tier with data directory `data_dir`; `runtime` drives the requests.
    pub fn in_bucket(bucket: Bucket, data_dir: PathBuf, runtime: tokio::runtime::Handle) -> ReportFiles {
        ReportFiles::Bucket(InBucket { bucket, runtime, data_dir, small: Default::default() })
    }

    /// Every report file, in seq order.
    pub fn list(&self) -> Result<Vec<ReportFile>, StoreError> {
        match self {
            ReportFiles::Directory(dir) => {
                let mut out = Vec::new();
                for (year, seq, path) in sifa_store::list_files(dir)? {
                    let len = std::fs::metadata(&path)
                        .map_err(|source| StoreError::Io { what: "cannot read", path: path.clone(), source })?
                        .len();
                    out.push(ReportFile { year, seq, len, location: path.to_string_lossy().into_owned() });
                }
                Ok(out)
            }
            ReportFiles::Bucket(b) => {
                let by_year = b.block_on(b.bucket.files(REPORTS_DIR)).map_err(|e| b.store_error(e))?;
                let mut out: Vec<ReportFile> = by_year
                    .into_iter()
                    .flat_map(|(year, files)| {
                        files.into_iter().map(move |(seq, object, len)| ReportFile {
                            year,
                            seq,
                            len,
                            location: object.to_string(),
                        })
                    })
                    .collect();
                out.sort_by_key(|f| f.seq);
                Ok(out)
            }
        }
    }

    /// Writes rows of one year as the new report file `seq` (a number no file of the store has
    /// had); returns its size.
    pub fn write(&self, catalog: &Catalog, year: u16, seq: u64, rows: &[StoredReport]) -> Result<u64, StoreError> {
        match self {
            ReportFiles::Directory(dir) => {
                let path = sifa_store::write_file(dir, catalog, year, seq, rows)?;
                let len =
                    std::fs::metadata(&path).map_err(|source| StoreError::Io { what: "cannot read", path, source })?;
                Ok(len.len())
            }
            ReportFiles::Bucket(b) => {
                let bytes = sifa_store::encode_file(catalog, rows)?;
                let len = bytes.len() as u64;
                b.put_new(&report_key(year, seq), bytes)?;
                Ok(len)
            }
        }
    }

    /// The rows of `file`.
    pub fn read(&self, file: &ReportFile, catalog: &Catalog) -> Result<Vec<StoredReport>, StoreError> {
        match self {
            ReportFiles::Directory(_) => sifa_store::read_file(Path::new(&file.location), catalog),
            ReportFiles::Bucket(b) => {
                let bytes = b.get(&object_store::path::Path::from(file.location.as_str()))?;
                sifa_store::decode_file(bytes, &b.origin(&file.location), catalog)
            }
        }
    }

    /// Whether the report file `seq` of `year` is there.
    pub fn exists(&self, year: u16, seq: u64) -> Result<bool, StoreError> {
        match self {
            ReportFiles::Directory(dir) => Ok(layout::year_dir(dir, year).join(layout::file_name(seq)).exists()),
            ReportFiles::Bucket(b) => {
                let object = b.bucket.object(&report_key(year, seq));
                match b.block_on(b.bucket.store.head(&object)) {
                    Ok(_) => Ok(true),
                    Err(object_store::Error::NotFound { .. }) => Ok(false),
                    Err(e) => Err(b.error(&format!("cannot look for {object}"), e)),
                }
            }
        }
    }

    /// Deletes the report files `seqs` of `year` (the inputs of a compaction); one already gone is
    /// no error. Durable when it returns.
    pub fn delete(&self, year: u16, seqs: &[u64]) -> Result<(), StoreError> {
        match self {
            ReportFiles::Directory(data_dir) => {
                let dir = layout::year_dir(data_dir, year);
                for seq in seqs {
                    let p = dir.join(layout::file_name(*seq));
                    match std::fs::remove_file(&p) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(StoreError::Io { what: "cannot delete compacted file", path: p, source: e });
                        }
                    }
                }
                sifa_proto::fs::sync_dir(&dir)?;
                Ok(())
            }
            ReportFiles::Bucket(b) => {
                for seq in seqs {
                    b.delete(&report_key(year, *seq))?;
                }
                Ok(())
            }
        }
    }

    /// Derives again the current figures of each year whose report files changed; returns (year,
    /// report files covered) of each.
    pub fn refresh_current(&self, catalog: &Catalog) -> Result<Vec<(u16, usize)>, StoreError> {
        match self {
            ReportFiles::Directory(dir) => {
                Ok(sifa_store::current::refresh(dir, catalog)?.into_iter().map(|c| (c.year, c.covers.len())).collect())
            }
            ReportFiles::Bucket(b) => b.refresh_current(catalog),
        }
    }

    /// Puts the small files (store.toml, catalog.toml, registry.csv, approvals.csv) that changed
    /// since they were last put; nothing to do for a store in the data directory.
    pub fn publish_small_files(&self) -> Result<usize, StoreError> {
        let ReportFiles::Bucket(b) = self else { return Ok(0) };
        let mut put = 0;
        for name in SMALL_FILES {
            let path = b.data_dir.join(name);
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            let stamp = (meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
            if b.small.lock().expect("small files").get(name) == Some(&stamp) {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|source| StoreError::Io { what: "cannot read", path, source })?;
            b.put(name, bytes)?;
            b.small.lock().expect("small files").insert(name, stamp);
            put += 1;
        }
        Ok(put)
    }

    /// Moves report files left in the data directory (a tier that had its store there before its
    /// `store` named a bucket) into the bucket, then removes them and the directory's `current/`.
    /// Returns how many were moved.
    pub fn take_in_directory_files(&self) -> Result<usize, StoreError> {
        let ReportFiles::Bucket(b) = self else { return Ok(0) };
        let data_dir = b.data_dir.as_path();
        let local = sifa_store::list_files(data_dir)?;
        for (year, seq, path) in &local {
            let bytes = std::fs::read(path).map_err(|source| StoreError::Io {
                what: "cannot read",
                path: path.clone(),
                source,
            })?;
            // Put unconditionally: an earlier start may have put it and stopped before removing it.
            b.put(&report_key(*year, *seq), bytes)?;
        }
        for (_, _, path) in &local {
            std::fs::remove_file(path).map_err(|source| StoreError::Io {
                what: "cannot remove",
                path: path.clone(),
                source,
            })?;
        }
        for dir in [REPORTS_DIR, CURRENT_DIR] {
            let dir = data_dir.join(dir);
            if dir.is_dir() {
                std::fs::remove_dir_all(&dir).map_err(|source| StoreError::Io {
                    what: "cannot remove",
                    path: dir,
                    source,
                })?;
            }
        }
        Ok(local.len())
    }
}

/// `reports/year=YYYY/part-SEQ.parquet`.
fn report_key(year: u16, seq: u64) -> String {
    format!("{REPORTS_DIR}/year={year}/{}", layout::file_name(seq))
}

impl InBucket {
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    fn error(&self, what: &str, e: object_store::Error) -> StoreError {
        self.store_error(self.bucket.error(what, e))
    }

    /// A request's error, as the store's.
    fn store_error(&self, e: sifa_queries::QueryError) -> StoreError {
        match e {
            sifa_queries::QueryError::Remote { url, message } => StoreError::Bucket { url, message },
            other => StoreError::Bucket { url: self.bucket.url.clone(), message: other.to_string() },
        }
    }

    /// How an object names itself in an error: `s3://bucket/key`.
    fn origin(&self, key: &str) -> PathBuf {
        PathBuf::from(format!("s3://{}/{key}", self.bucket.bucket))
    }

    /// Puts `name` (relative to the prefix), replacing what is there.
    fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let object = self.bucket.object(name);
        self.block_on(self.bucket.store.put(&object, PutPayload::from(bytes)))
            .map(|_| ())
            .map_err(|e| self.error(&format!("cannot put {name}"), e))
    }

    /// Puts `name` only if nothing is there: a report file is never rewritten under its name.
    fn put_new(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let object = self.bucket.object(name);
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match self.block_on(self.bucket.store.put_opts(&object, PutPayload::from(bytes), options)) {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(StoreError::Bucket {
                url: self.bucket.url.clone(),
                message: format!(
                    "{name} is already there: another tier writes under the same prefix? Give each tier its own \
                     `store` prefix"
                ),
            }),
            Err(e) => Err(self.error(&format!("cannot put {name}"), e)),
        }
    }

    /// The bytes of `object`.
    fn get(&self, object: &object_store::path::Path) -> Result<bytes::Bytes, StoreError> {
        let bytes = self.block_on(async { self.bucket.store.get(object).await?.bytes().await });
        bytes.map_err(|e| self.error(&format!("cannot read {object}"), e))
    }

    /// Deletes `name` (relative to the prefix); one already gone is no error.
    fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.delete_object(&self.bucket.object(name))
    }

    fn delete_object(&self, object: &object_store::path::Path) -> Result<(), StoreError> {
        match self.block_on(self.bucket.store.delete(object)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(&format!("cannot delete {object}"), e)),
        }
    }

    /// The current figures of each year whose newest current object does not cover exactly the
    /// year's report files: derived from them, put, then the year's older current objects deleted.
    fn refresh_current(&self, catalog: &Catalog) -> Result<Vec<(u16, usize)>, StoreError> {
        let reports = self.block_on(self.bucket.files(REPORTS_DIR)).map_err(|e| self.store_error(e))?;
        let current = self.block_on(self.bucket.files(CURRENT_DIR)).map_err(|e| self.store_error(e))?;
        let mut made = Vec::new();
        for (year, files) in reports {
            let seqs: Vec<u64> = files.iter().map(|(seq, _, _)| *seq).collect();
            let held = current.get(&year).cloned().unwrap_or_default();
            if let Some((_, newest, size)) = held.last()
                && self.block_on(self.bucket.covers(newest, *size)).ok().as_ref() == Some(&seqs)
            {
                continue;
            }
            let mut contents = Vec::with_capacity(files.len());
            for (seq, object, _) in &files {
                contents.push((*seq, self.get(object)?, self.origin(object.as_ref())));
            }
            let Some(derived) = sifa_store::current::derive(catalog, contents)? else { continue };
            let name = format!("{CURRENT_DIR}/year={year}/{}", layout::file_name(derived.seq));
            self.put(&name, derived.encode()?)?;
            let kept = self.bucket.object(&name);
            for (_, older, _) in held.iter().filter(|(_, o, _)| *o != kept) {
                self.delete_object(older)?;
            }
            made.push((year, derived.covers.len()));
        }
        Ok(made)
    }
}
