//! An aggregator: one tier of the reporting tree (county, city or province).
//!
//! - [`config`]: the config file; [`cli`]: `sifa aggregator ...`;
//! - [`ingest`]: validation and the single log writer (group commit); [`wal`]: the write-ahead log;
//! - [`disk`]: the free-space reserve below which new reports are refused;
//! - [`index`]: what is stored, for duplicates, conflicts and completeness; [`key_files`]: its keys per
//!   Parquet file, so a start does not read every row;
//! - [`flush`]: the log to Parquet (through `sifa_store`), trimming and compaction;
//! - [`forward`]: to the tier above; [`completeness`]; [`locks`]: closed periods; [`approvals`]: approved months;
//! - [`service`]: the gRPC services; [`status`]: the one map from their errors to gRPC statuses;
//! - [`sql`]: the Flight SQL endpoint (crate `sifa-sql`) for analysts;
//! - [`http`]: the HTTP side (metrics, health, status page); [`rejections`]: recent rejections for it;
//!   [`backlog`]: the age of what waits to be forwarded;
//! - [`server`]: running a tier.

/// Approved months: the data directory's approvals file (`sifa_store::approvals`).
pub use sifa_store::approvals;
pub mod auth;
pub mod backlog;
pub mod cli;
pub mod completeness;
pub mod config;
pub mod disk;
pub mod flush;
pub mod forward;
pub mod http;
pub mod in_order;
pub mod index;
pub mod ingest;
pub mod key_files;
pub mod locks;
pub mod rejections;
pub mod report_files;
pub mod server;
pub mod service;
pub mod sql;
pub mod status;
pub mod wal;
