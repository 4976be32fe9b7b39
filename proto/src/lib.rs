//! sifa's contract: what every part of the system agrees on.
//!
//! - [`v1`]: the gRPC wire contract (`proto/sifa/v1/*.proto`), compiled by protox in `build.rs`;
//! - [`catalog`]: the data dictionary of statistics (flows and stocks, bounds, cross-field rules);
//! - [`registry`]: the tree of units (province → city → county → reporting units);
//! - [`validate`]: the one validation library, used by the agent and the aggregator alike;
//! - [`period`]: the reporting month; [`text`]: UTF-8/GBK text as offices write it;
//! - [`config`]: the one config loader (TOML, relative paths, errors naming file and key);
//! - [`tls`]: the `[tls]` config table and the client side of mutual TLS.
//!
//! This crate has no Arrow, Parquet or DataFusion in its dependency tree, so the
//! office agent that links it stays small.

pub mod catalog;
pub mod config;
pub mod period;
pub mod registry;
pub mod text;
pub mod tls;
pub mod validate;

/// The generated gRPC types and services of package `sifa.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("sifa.v1");
}

pub use catalog::{Catalog, Metric, MetricKind, ValueType};
pub use period::Period;
pub use registry::{Registry, Unit, UnitKind};
pub use validate::{Problem, Rejection, RejectionCode};

/// gRPC metadata key naming the sending unit (an office's own code, or a
/// forwarding aggregator's). Until mutual TLS is on it is the sender's claim;
/// with TLS the identity comes from the client certificate instead.
pub const SENDER_METADATA_KEY: &str = "x-sifa-sender";
