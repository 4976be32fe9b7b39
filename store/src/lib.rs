//! The data directory of a sifa tier, as the aggregator writes it and every
//! reader (`sifa query`, DuckDB, pyarrow) reads it. The layout is a public
//! contract, documented in docs/STORAGE.md; keep the two in step.
//!
//! - [`layout`]: every file and directory name of a data directory;
//! - [`schema`]: a stored row ([`StoredReport`]) and the Arrow schema of the Parquet files;
//! - [`files`]: writing, listing and reading the Parquet files under `reports/`;
//! - [`current`]: `current/`, the figures in force derived from them;
//! - [`meta`]: `store.toml` and the reference files (catalog, registry) in force;
//! - [`deadline`]: when a month's report is due, and what "late" means;
//! - [`sweep`]: removing the temporary files of writes a crash interrupted.
//!
//! Files are written through [`sifa_proto::fs`], the one atomic write.
//! No gRPC server, no certificates, no write-ahead log here: those are the
//! aggregator's.

pub mod approvals;
pub mod current;
pub mod deadline;
pub mod error;
pub mod files;
pub mod layout;
pub mod meta;
pub mod schema;
pub mod sweep;

pub use deadline::{deadline_ms, is_late};
pub use error::StoreError;
pub use files::{decode_file, encode_file, list_files, list_partitioned, read_file, write_file};
pub use meta::{StoreMeta, write_reference_files};
pub use schema::{StoredReport, arrow_schema, record_batch};
pub use sweep::remove_interrupted_writes;
