//! A store on S3-compatible object storage: `--data s3://BUCKET/PREFIX` (docs/STORAGE.md).
//!
//! Under PREFIX, the layout of a data directory: `store.toml`, `catalog.toml`, `registry.csv`,
//! `approvals.csv`, `reports/year=YYYY/part-SEQ.parquet` and `current/…`. The small files are
//! fetched once into a temporary directory and read as a local store's are; `reports/` and
//! `current/` are listed in the bucket and scanned by DataFusion through `object_store` (the
//! version DataFusion is built on). Credentials and the endpoint come from the standard AWS
//! environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`,
//! `AWS_ENDPOINT_URL` for a store other than AWS, `AWS_ALLOW_HTTP=true` for one without TLS).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::parquet::file::metadata::ParquetMetaDataReader;
use datafusion::prelude::SessionContext;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, RetryConfig};
use sifa_store::layout::{self, CATALOG_FILE, CURRENT_DIR, REGISTRY_FILE, REPORTS_DIR, STORE_META_FILE};

use crate::error::{QueryError, Result};

/// How a `--data` on object storage begins (`s3://`; a path type may fold the slashes).
pub const SCHEME: &str = "s3:";

/// The variables one of which must say how to sign requests (an instance profile is not tried:
/// on a machine that has none, asking for one only waits).
const CREDENTIALS: [&str; 4] =
    ["AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_SKIP_SIGNATURE"];

/// Whether `--data` names a store on object storage.
pub fn is_remote(data: &Path) -> bool {
    data.to_str().is_some_and(|s| s.starts_with(SCHEME))
}

/// A prefix of a bucket on S3-compatible storage, connected with the AWS_* settings of the
/// environment (also where an aggregator with `store` keeps its Parquet).
#[derive(Debug, Clone)]
pub struct Bucket {
    /// `s3://bucket/prefix` (no trailing slash).
    pub url: String,
    pub bucket: String,
    pub prefix: ObjectPath,
    pub store: Arc<dyn ObjectStore>,
}

impl Bucket {
    /// Checks `url` (`s3://bucket/prefix`) and the environment's credentials; no request is made yet.
    pub fn connect(url: &str) -> Result<Bucket> {
        let rest = url.strip_prefix(SCHEME).unwrap_or(url).trim_matches('/');
        let url = format!("s3://{rest}");
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let err = |message: String| QueryError::Remote { url: url.clone(), message };
        if bucket.is_empty() {
            return Err(err("no bucket: write s3://BUCKET/PREFIX".into()));
        }
        if !CREDENTIALS.iter().any(|v| std::env::var_os(v).is_some()) {
            return Err(err(format!(
                "no AWS credentials in the environment: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or one of {}); \
                 AWS_ENDPOINT_URL names a store other than AWS",
                CREDENTIALS[1..].join(", ")
            )));
        }
        // A wrong endpoint or a dead link says so within seconds, not after object_store's 3 minutes.
        let retry = RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(15), ..RetryConfig::default() };
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(retry)
            .build()
            .map_err(|e| err(format!("cannot use the AWS settings of the environment: {e}")))?;
        Ok(Bucket { bucket: bucket.to_string(), prefix: ObjectPath::from(prefix), store: Arc::new(store), url })
    }

    /// `prefix/name` (`name` may hold slashes: `reports/year=2024/part-….parquet`).
    pub fn object(&self, name: &str) -> ObjectPath {
        name.split('/').fold(self.prefix.clone(), |p, part| p.join(part))
    }

    /// The Parquet files under `dir` (`reports` or `current`) by year: (seq, object, size), by seq.
    pub async fn files(&self, dir: &str) -> Result<BTreeMap<u16, Vec<(u64, ObjectPath, u64)>>> {
        let mut out: BTreeMap<u16, Vec<(u64, ObjectPath, u64)>> = BTreeMap::new();
        let listed = self.store.list_with_delimiter(Some(&self.object(dir))).await;
        let listed = listed.map_err(|e| self.error(&format!("cannot list {dir}/"), e))?;
        for year_dir in listed.common_prefixes {
            let Some(year) = year_dir.filename().and_then(layout::parse_year_dir) else { continue };
            let files = self.store.list_with_delimiter(Some(&year_dir)).await;
            let files = files.map_err(|e| self.error(&format!("cannot list {year_dir}"), e))?;
            for meta in files.objects {
                if let Some(seq) = meta.location.filename().and_then(layout::parse_file_name) {
                    out.entry(year).or_default().push((seq, meta.location.clone(), meta.size));
                }
            }
        }
        for files in out.values_mut() {
            files.sort_unstable_by_key(|(seq, _, _)| *seq);
        }
        Ok(out)
    }

    /// A current file's `sifa.covers`, read from its footer.
    pub async fn covers(&self, file: &ObjectPath, size: u64) -> Result<Vec<u64>> {
        let bad = |message: String| QueryError::Remote { url: self.url.clone(), message: format!("{file}: {message}") };
        if size < 12 {
            return Err(bad("too short to be Parquet".into()));
        }
        let tail = self.store.get_range(file, size - 8..size).await.map_err(|e| self.error("cannot read", e))?;
        if &tail[4..] != b"PAR1" {
            return Err(bad("not a Parquet file (no PAR1 at its end)".into()));
        }
        let len = u64::from(u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")));
        if len + 8 > size {
            return Err(bad("its footer is longer than the file".into()));
        }
        let footer =
            self.store.get_range(file, size - 8 - len..size - 8).await.map_err(|e| self.error("cannot read", e))?;
        let metadata = ParquetMetaDataReader::decode_metadata(&footer).map_err(|e| bad(e.to_string()))?;
        sifa_store::current::covers(metadata.file_metadata()).map_err(bad)
    }

    /// An error of a request, naming the store and what to check.
    pub fn error(&self, what: &str, e: object_store::Error) -> QueryError {
        if matches!(e, object_store::Error::NotFound { .. }) && e.to_string().contains("NoSuchBucket") {
            return QueryError::Remote {
                url: self.url.clone(),
                message: format!(
                    "the bucket {} does not exist: check its name, and AWS_ENDPOINT_URL for a store other than AWS",
                    self.bucket
                ),
            };
        }
        QueryError::Remote {
            url: self.url.clone(),
            message: format!(
                "{what}: {e}. Check that the bucket exists, the credentials may use it, and AWS_ENDPOINT_URL \
                 (for a store other than AWS)"
            ),
        }
    }
}

/// A store under `s3://bucket/prefix`, its small files fetched.
#[derive(Debug)]
pub struct Remote {
    pub bucket: Bucket,
    /// store.toml, catalog.toml, registry.csv and approvals.csv, as fetched (`None`: the tier whose
    /// store this is reads its own, [`Remote::of_tier`]).
    cache: Option<tempfile::TempDir>,
}

/// The years of a remote store: those with report files, and those `current/` covers.
#[derive(Debug, Default)]
pub struct RemoteYears {
    pub stored: Vec<u16>,
    pub current: Vec<u16>,
}

impl Remote {
    /// Connects to `url` (`s3://bucket/prefix`) and fetches its small files.
    pub async fn open(url: &str) -> Result<Remote> {
        let bucket = Bucket::connect(url)?;
        let cache = tempfile::Builder::new().prefix("sifa-s3-").tempdir().map_err(|source| QueryError::Io {
            what: "cannot make a temporary directory",
            path: "/tmp".into(),
            source,
        })?;
        let remote = Remote { bucket, cache: None };
        for file in layout::SMALL_FILES {
            remote.fetch(cache.path(), file).await?;
        }
        Ok(Remote { cache: Some(cache), ..remote })
    }

    /// The store in `bucket` of the tier that writes it: its small files are the tier's own.
    pub fn of_tier(bucket: Bucket) -> Remote {
        Remote { bucket, cache: None }
    }

    /// `s3://bucket/prefix`.
    pub fn url(&self) -> &str {
        &self.bucket.url
    }

    /// The local directory holding the fetched small files (`None` for a tier's own store).
    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache.as_ref().map(|c| c.path())
    }

    /// Copies `name` into `dir`; a missing store.toml, catalog.toml or registry.csv is an error.
    async fn fetch(&self, dir: &Path, name: &str) -> Result<()> {
        let bytes = match self.bucket.store.get(&self.bucket.object(name)).await {
            Ok(got) => got.bytes().await.map_err(|e| self.bucket.error(&format!("cannot read {name}"), e))?,
            Err(e @ object_store::Error::NotFound { .. }) if e.to_string().contains("NoSuchBucket") => {
                return Err(self.bucket.error("", e));
            }
            Err(object_store::Error::NotFound { .. }) if name == sifa_store::approvals::APPROVALS_CSV => return Ok(()),
            Err(object_store::Error::NotFound { .. }) => {
                return Err(QueryError::NotAStore { path: self.bucket.url.clone().into(), what: static_name(name) });
            }
            Err(e) => return Err(self.bucket.error(&format!("cannot read {name}"), e)),
        };
        let path = dir.join(name);
        std::fs::write(&path, &bytes).map_err(|source| QueryError::Io { what: "cannot write", path, source })
    }

    /// The years with report files, from one listing of `reports/` (what a live tier's session needs
    /// before each statement).
    pub async fn stored_years(&self) -> Result<Vec<u16>> {
        let dir = self.bucket.object(REPORTS_DIR);
        let listed = self.bucket.store.list_with_delimiter(Some(&dir)).await;
        let listed = listed.map_err(|e| self.bucket.error(&format!("cannot list {REPORTS_DIR}/"), e))?;
        let mut years: Vec<u16> =
            listed.common_prefixes.iter().filter_map(|p| p.filename().and_then(layout::parse_year_dir)).collect();
        years.sort_unstable();
        Ok(years)
    }

    /// The years with report files, and those whose newest current file covers exactly them
    /// (`sifa_store::current`'s rule: otherwise a reader deduplicates the year's report files).
    pub async fn years(&self) -> Result<RemoteYears> {
        let reports = self.bucket.files(REPORTS_DIR).await?;
        let current = self.bucket.files(CURRENT_DIR).await?;
        let mut years = RemoteYears { stored: reports.keys().copied().collect(), current: Vec::new() };
        for (year, files) in &reports {
            let Some((_, newest, size)) = current.get(year).and_then(|c| c.last()) else { continue };
            let seqs: Vec<u64> = files.iter().map(|(seq, _, _)| *seq).collect();
            if self.bucket.covers(newest, *size).await? == seqs {
                years.current.push(*year);
            }
        }
        Ok(years)
    }

    /// The URL DataFusion lists for `dir` (`reports` or `current`).
    pub fn table_url(&self, dir: &str) -> String {
        format!("s3://{}/{}/", self.bucket.bucket, self.bucket.object(dir))
    }

    /// Lets `ctx` read this bucket.
    pub fn register(&self, ctx: &SessionContext) -> Result<()> {
        let url = ObjectStoreUrl::parse(format!("s3://{}", self.bucket.bucket))?;
        ctx.runtime_env().register_object_store(url.as_ref(), self.bucket.store.clone());
        Ok(())
    }
}

/// The name of a file every store has, as the `NotAStore` error spells it.
fn static_name(name: &str) -> &'static str {
    [STORE_META_FILE, CATALOG_FILE, REGISTRY_FILE].into_iter().find(|n| *n == name).unwrap_or(STORE_META_FILE)
}
