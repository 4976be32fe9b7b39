//! An aggregator: one tier of the reporting tree (county, city or province).
//!
//! - [`config`]: the config file; [`cli`]: `sifa aggregator ...`;
//! - [`ingest`]: validation and the single log writer (group commit); [`wal`]: the write-ahead log;
//! - [`index`]: what is stored, for duplicates, conflicts and completeness;
//! - [`flush`]: the log to Parquet (through `sifa_store`), trimming and compaction;
//! - [`forward`]: to the tier above; [`completeness`]; [`locks`]: closed periods; [`approvals`]: approved months;
//! - [`service`]: the gRPC services; [`sql`]: the Flight SQL endpoint (crate `sifa-sql`) for analysts; [`status`]: the one map from their errors to gRPC statuses;
//! - [`server`]: running a tier.

/// Approved months: the data directory's approvals file (`sifa_store::approvals`).
pub use sifa_store::approvals;
pub mod auth;
pub mod cli;
pub mod completeness;
pub mod config;
pub mod flush;
pub mod forward;
pub mod index;
pub mod ingest;
pub mod locks;
pub mod server;
pub mod service;
pub mod sql;
pub mod status;
pub mod wal;
