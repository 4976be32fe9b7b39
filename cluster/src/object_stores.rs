//! Where the scheduler, the executors and the client find a store's files: the local file system,
//! and any `s3://BUCKET` a plan names, connected on first use with the standard AWS variables of
//! the process's environment (as `sifa query --data s3://…` connects, `sifa_queries::remote`).
//!
//! A plan carries its files' URLs, not their stores: an executor learns of a bucket only when a
//! task reads it, so buckets are not configured per process.

use std::sync::Arc;

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use object_store::ObjectStore;
use sifa_queries::remote::Bucket;
use url::Url;

/// The file system and, made on first use, one S3 client per bucket.
#[derive(Debug, Default)]
pub struct Stores {
    known: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for Stores {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.known.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.known.get_store(url) {
            return Ok(store);
        }
        let bucket = match (url.scheme(), url.host_str()) {
            ("s3", Some(bucket)) => bucket,
            _ => return self.known.get_store(url),
        };
        let connected = Bucket::connect(&format!("s3://{bucket}")).map_err(|e| DataFusionError::External(e.into()))?;
        let root = Url::parse(&format!("s3://{bucket}")).map_err(|e| DataFusionError::External(e.into()))?;
        self.known.register_store(&root, connected.store.clone());
        Ok(connected.store)
    }
}

/// A DataFusion runtime reading through [`Stores`].
pub fn runtime() -> Result<Arc<RuntimeEnv>> {
    RuntimeEnvBuilder::new().with_object_store_registry(Arc::new(Stores::default())).build_arc()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_without_credentials_is_refused_with_what_to_set() {
        // SAFETY: this test binary's tests do not read the environment concurrently with this.
        unsafe {
            for v in [
                "AWS_ACCESS_KEY_ID",
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_SKIP_SIGNATURE",
            ] {
                std::env::remove_var(v);
            }
        }
        let stores = Stores::default();
        let e = stores.get_store(&Url::parse("s3://figures/reports/").unwrap()).unwrap_err().to_string();
        assert!(e.contains("AWS_ACCESS_KEY_ID"), "{e}");
        assert!(stores.get_store(&Url::parse("file:///tmp").unwrap()).is_ok());
    }
}
