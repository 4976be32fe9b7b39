//! `store.toml` and the reference files in force (catalog.toml, registry.csv):
//! what a data directory holds, so that any reader can interpret its files.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sifa_proto::Period;
use sifa_proto::catalog::Catalog;
use sifa_proto::fs::write_atomic;
use sifa_proto::registry::Registry;

use crate::StoreError;
use crate::error::io_err;
use crate::layout::{CATALOG_FILE, REGISTRY_FILE, STORE_META_FILE};

/// `store.toml`: what a data directory holds (docs/STORAGE.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreMeta {
    /// The subtree this store holds.
    pub root_unit: String,
    /// A month's report is due by this day of the next month.
    pub deadline_day: u8,
    /// The catalog the newest files were written with.
    pub catalog_version: String,
}

impl StoreMeta {
    pub fn read(data_dir: &Path) -> Result<StoreMeta, StoreError> {
        let path = data_dir.join(STORE_META_FILE);
        let text = fs::read_to_string(&path).map_err(io_err("cannot read", &path))?;
        toml::from_str(&text).map_err(|e| StoreError::Meta { path, message: e.to_string() })
    }

    /// Writes `store.toml` atomically (unless it already says the same).
    pub fn write(&self, data_dir: &Path) -> Result<(), StoreError> {
        let body = format!(
            "# Written by the sifa aggregator; read by `sifa query`. See docs/STORAGE.md.\n{}",
            toml::to_string(self).expect("plain fields")
        );
        write_if_changed(data_dir, STORE_META_FILE, body.as_bytes())
    }

    /// The deadline of `period` in this store (see [`crate::deadline`]).
    pub fn deadline_ms(&self, period: Period) -> i64 {
        crate::deadline_ms(period, self.deadline_day)
    }
}

/// Creates (or refreshes) the described parts of a data directory: the store
/// description, the catalog and the registry in force.
pub fn write_reference_files(
    data_dir: &Path,
    meta: &StoreMeta,
    catalog: &Catalog,
    registry: &Registry,
) -> Result<(), StoreError> {
    meta.write(data_dir)?;
    write_if_changed(data_dir, CATALOG_FILE, catalog.source().as_bytes())?;
    write_if_changed(data_dir, REGISTRY_FILE, registry.to_csv().as_bytes())
}

/// Writes `dir/name` atomically unless it already holds `bytes`: a tier restarting with the same
/// reference data writes nothing (it can start on a full disk).
fn write_if_changed(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    if fs::read(dir.join(name)).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    write_atomic(dir, name, bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_and_reference_files() {
        let dir = tempfile::tempdir().unwrap();
        let meta = StoreMeta { root_unit: "62".into(), deadline_day: 5, catalog_version: "2024.1".into() };
        write_reference_files(dir.path(), &meta, &Catalog::builtin(), &Registry::demo()).unwrap();
        assert_eq!(StoreMeta::read(dir.path()).unwrap(), meta);
        // The same again writes nothing.
        let modified = |name| fs::metadata(dir.path().join(name)).unwrap().modified().unwrap();
        let before = [STORE_META_FILE, CATALOG_FILE, REGISTRY_FILE].map(modified);
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_reference_files(dir.path(), &meta, &Catalog::builtin(), &Registry::demo()).unwrap();
        assert_eq!([STORE_META_FILE, CATALOG_FILE, REGISTRY_FILE].map(modified), before);
        let reg = Registry::load(&dir.path().join(REGISTRY_FILE)).unwrap();
        assert_eq!(reg.len(), Registry::demo().len());
        let cat = Catalog::load(&dir.path().join(CATALOG_FILE)).unwrap();
        assert_eq!(cat.source(), Catalog::builtin().source());
        let p: Period = "2024-03".parse().unwrap();
        assert_eq!(meta.deadline_ms(p), crate::deadline_ms(p, 5));
        fs::write(dir.path().join(STORE_META_FILE), "root_unit = 62\n").unwrap();
        let e = StoreMeta::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("store.toml"), "{e}");
    }
}
