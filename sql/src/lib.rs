//! sifa-sql: a live tier's Arrow Flight SQL endpoint (docs/SQL.md), and its client for
//! `sifa query --connect`.
//!
//! - [`service`]: the Flight SQL service over a `sifa-queries` session: the same tables, views and
//!   `rollup(...)` as `sifa query`, plus the reports acknowledged but not yet flushed to Parquet;
//!   every caller sees only the subtree [`Callers`] grants it; queries only.
//! - [`server`]: serving it on a listener with the tier's mutual TLS.
//! - [`client`]: `sifa query --connect https://HOST:PORT`.
//!
//! The crate knows neither certificates' rules nor the write-ahead log: the aggregator hands it a
//! [`Callers`] (who may query which subtree) and an [`Unflushed`] (its log's tail).

pub mod client;
pub mod server;
pub mod service;

pub use sifa_queries::session::Unflushed;
use tonic::Status;
use tonic::metadata::MetadataMap;
use tonic::transport::CertificateDer;

pub use server::serve;
pub use service::SqlService;

/// Who may query: the unit whose subtree a caller sees, from its TLS certificate chain (leaf first)
/// and its request's metadata.
pub trait Callers: Send + Sync + 'static {
    /// The unit whose subtree the caller may query, or the status refusing it (unauthenticated or
    /// permission denied, saying why and what to do).
    fn scope(&self, peer_certs: Option<&[CertificateDer<'_>]>, metadata: &MetadataMap) -> Result<String, Status>;
}
