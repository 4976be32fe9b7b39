//! Every name in a data directory, in one place (docs/STORAGE.md describes
//! each). The aggregator writes them, `sifa query`, `sifa demo` and the tests
//! read them; nobody else spells them.
//!
//! ```text
//! DATA_DIR/
//!   store.toml  catalog.toml  registry.csv   the store's description and reference files
//!   aggregator.addr                          the running server's bound address
//!   reports/year=YYYY/part-NNN….parquet       the store
//!   current/year=YYYY/part-NNN….parquet       the figures in force, derived from reports/
//!   wal/                                     the write-ahead log (the aggregator's)
//!   state/                                   locks, forwarding cursor and refusals, compaction intent
//!   state/index/part-NNN….keys               the keys of each Parquet file (the aggregator's start-up)
//! ```

use std::path::{Path, PathBuf};

/// The directory of the Parquet files.
pub const REPORTS_DIR: &str = "reports";
/// The directory of the figures in force, derived from `reports/` (the `current` module).
pub const CURRENT_DIR: &str = "current";
/// The write-ahead log's directory (its segment names are the aggregator's `wal` module's).
pub const WAL_DIR: &str = "wal";
/// The directory of the tier's small state files.
pub const STATE_DIR: &str = "state";
/// The store's description.
pub const STORE_META_FILE: &str = "store.toml";
/// The catalog in force.
pub const CATALOG_FILE: &str = "catalog.toml";
/// The registry in force.
pub const REGISTRY_FILE: &str = "registry.csv";
/// The running server's bound listen address (removed when it stops).
pub const ADDR_FILE: &str = "aggregator.addr";
/// The running server's bound HTTP address (`[http] listen`; removed when it stops).
pub const HTTP_ADDR_FILE: &str = "http.addr";
/// The running server's bound Flight SQL address, when it serves one (`[sql]`; removed when it stops).
pub const SQL_ADDR_FILE: &str = "sql.addr";

/// Under `state/`: closed periods and their overrides.
pub const LOCKS_FILE: &str = "locks.json";
/// Under `state/`: the LSN up to which the tier above has acknowledged.
pub const FORWARD_CURSOR_FILE: &str = "forward.cursor";
/// Under `state/`: reports the tier above refused, one JSON object a line.
pub const FORWARD_REJECTED_FILE: &str = "forward_rejected.jsonl";
/// Under `state/`: how the link to the tier above stands (delivering, unreachable, refused and why).
pub const FORWARD_LINK_FILE: &str = "forward.state.json";
/// The tier's approvals of months (approved, accepted, withdrawn), one CSV row each (docs/STORAGE.md).
pub const APPROVALS_FILE: &str = "approvals.csv";
/// The small files a store is read with beside `reports/` and `current/` (what a bucket holding a
/// store has besides its Parquet; `approvals.csv` only once a month was approved).
pub const SMALL_FILES: [&str; 4] = [STORE_META_FILE, CATALOG_FILE, REGISTRY_FILE, APPROVALS_FILE];
/// Under `state/`: a compaction under way (its inputs and output).
pub const COMPACTION_FILE: &str = "compaction.json";
/// Under `state/`: the key files of the Parquet files (the aggregator's `key_files` module).
pub const INDEX_DIR: &str = "index";

pub fn reports_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(REPORTS_DIR)
}

pub fn wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(WAL_DIR)
}

pub fn state_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(STATE_DIR)
}

pub fn index_dir(data_dir: &Path) -> PathBuf {
    state_dir(data_dir).join(INDEX_DIR)
}

pub fn addr_file(data_dir: &Path) -> PathBuf {
    data_dir.join(ADDR_FILE)
}

pub fn http_addr_file(data_dir: &Path) -> PathBuf {
    data_dir.join(HTTP_ADDR_FILE)
}

/// The running server's bound Flight SQL address file.
pub fn sql_addr_file(data_dir: &Path) -> PathBuf {
    data_dir.join(SQL_ADDR_FILE)
}

/// The partition directory of a year (Hive style, `year=YYYY`).
pub fn year_dir(data_dir: &Path, year: u16) -> PathBuf {
    reports_dir(data_dir).join(format!("year={year}"))
}

/// The partition directory of a year's current figures (`current/year=YYYY`).
pub fn current_year_dir(data_dir: &Path, year: u16) -> PathBuf {
    current_dir(data_dir).join(format!("year={year}"))
}

/// The directory of the current figures.
pub fn current_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(CURRENT_DIR)
}

/// The year of a partition directory's name, `year=YYYY`.
pub fn parse_year_dir(name: &str) -> Option<u16> {
    name.strip_prefix("year=")?.parse().ok()
}

/// The name of the `seq`-th Parquet file of the store.
pub fn file_name(seq: u64) -> String {
    format!("part-{seq:020}.parquet")
}

/// The name of the key file of the `seq`-th Parquet file, under `state/index/`.
pub fn key_file_name(seq: u64) -> String {
    format!("part-{seq:020}.keys")
}

/// The sequence number of a key file's name; `None` for anything else.
pub fn parse_key_file_name(name: &str) -> Option<u64> {
    name.strip_prefix("part-")?.strip_suffix(".keys")?.parse().ok()
}

/// The sequence number of a Parquet file's name; `None` for anything else
/// (a temporary file of an interrupted write included).
pub fn parse_file_name(name: &str) -> Option<u64> {
    name.strip_prefix("part-")?.strip_suffix(".parquet")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(file_name(7), "part-00000000000000000007.parquet");
        assert_eq!(parse_file_name(&file_name(7)), Some(7));
        assert_eq!(parse_file_name(&sifa_proto::fs::temp_name(&file_name(7))), None);
        assert_eq!(parse_key_file_name(&key_file_name(7)), Some(7));
        assert_eq!(parse_key_file_name(&file_name(7)), None);
        assert_eq!(year_dir(Path::new("/d"), 2024), Path::new("/d/reports/year=2024"));
        assert_eq!(parse_year_dir("year=2024"), Some(2024));
        assert_eq!(parse_year_dir("2024"), None);
    }

    /// docs/STORAGE.md is the contract readers rely on: it names every entry.
    #[test]
    fn storage_doc_names_every_entry() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/STORAGE.md")).unwrap();
        for name in [
            REPORTS_DIR,
            CURRENT_DIR,
            WAL_DIR,
            STATE_DIR,
            STORE_META_FILE,
            CATALOG_FILE,
            REGISTRY_FILE,
            APPROVALS_FILE,
            ADDR_FILE,
            HTTP_ADDR_FILE,
            SQL_ADDR_FILE,
        ] {
            assert!(doc.contains(name), "docs/STORAGE.md does not mention {name}");
        }
        assert!(doc.contains(&file_name(1)) && doc.contains("year=2024/"), "the Parquet file names");
    }
}
