//! The catalog in force for the agent: fetched from its aggregator
//! (`DirectoryService.GetCatalog`), cached byte for byte as
//! `OUTBOX/catalog.toml`, used from the cache while offline, and the built-in
//! catalog when there is no cache yet.

use std::path::Path;
use std::time::Duration;

use sifa_proto::Catalog;
use sifa_proto::v1::GetCatalogRequest;
use sifa_proto::v1::directory_service_client::DirectoryServiceClient;

use crate::config::Config;

pub const CACHE_FILE: &str = "catalog.toml";

/// Where the catalog in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogSource {
    /// Fetched from the aggregator just now (and cached).
    Fetched,
    /// The cached copy (the aggregator was not reachable, or has the same version).
    Cached,
    /// sifa's built-in catalog: never reached the aggregator and no cache yet.
    Builtin,
}

/// The cached catalog, or the built-in one.
pub fn cached_or_builtin(outbox_dir: &Path) -> (Catalog, CatalogSource) {
    let path = outbox_dir.join(CACHE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => match Catalog::from_toml(&text) {
            Ok(c) => (c, CatalogSource::Cached),
            Err(e) => {
                tracing::warn!("cached catalog {} is not usable ({e}); using the built-in catalog", path.display());
                (Catalog::builtin(), CatalogSource::Builtin)
            }
        },
        Err(_) => (Catalog::builtin(), CatalogSource::Builtin),
    }
}

/// Asks the aggregator for its catalog; on success caches it. Offline or on
/// any error, falls back to the cache (or the built-in catalog).
pub async fn refresh(config: &Config) -> (Catalog, CatalogSource) {
    let (cached, source) = cached_or_builtin(&config.outbox_dir);
    let cached_version = if source == CatalogSource::Cached { cached.version.clone() } else { String::new() };
    match fetch(config, &cached_version).await {
        Ok(doc) if doc.toml.is_empty() && doc.version == cached_version && !cached_version.is_empty() => {
            (cached, CatalogSource::Cached)
        }
        Ok(doc) => match Catalog::from_toml(&doc.toml) {
            Ok(c) => {
                if let Err(e) = sifa_proto::fs::write_atomic(&config.outbox_dir, CACHE_FILE, doc.toml.as_bytes()) {
                    tracing::warn!("cannot cache the catalog: {e}");
                }
                (c, CatalogSource::Fetched)
            }
            Err(e) => {
                tracing::warn!(
                    "the aggregator's catalog {:?} is not usable ({e}); keeping the one in force",
                    doc.version
                );
                (cached, source)
            }
        },
        Err(e) => {
            tracing::info!(
                "catalog not fetched from {} ({e}); working with the {:?} catalog",
                config.aggregator,
                source
            );
            (cached, source)
        }
    }
}

async fn fetch(config: &Config, cached_version: &str) -> Result<sifa_proto::v1::CatalogDocument, String> {
    let endpoint = config
        .endpoint()
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(config.connect_timeout_seconds))
        .timeout(Duration::from_secs(config.connect_timeout_seconds.max(1) * 3));
    let channel = endpoint.connect().await.map_err(|e| format!("cannot connect: {e}"))?;
    let mut client = DirectoryServiceClient::new(channel);
    let mut req = tonic::Request::new(GetCatalogRequest { cached_version: cached_version.to_string() });
    if let Ok(v) = config.unit.parse() {
        req.metadata_mut().insert(sifa_proto::SENDER_METADATA_KEY, v);
    }
    client.get_catalog(req).await.map(|r| r.into_inner()).map_err(|s| format!("{}: {}", s.code(), s.message()))
}
