//! sifa's contract: what every part of the system agrees on.
//!
//! - [`v1`]: the gRPC wire contract (`proto/sifa/v1/*.proto`), compiled by protox in `build.rs`;
//! - [`catalog`]: the data dictionary of statistics (flows and stocks, bounds, cross-field rules);
//! - [`registry`]: the tree of units (province → city → county → reporting units);
//! - [`validate`]: the one validation library, used by the agent and the aggregator alike;
//! - [`period`]: the reporting month; [`text`]: UTF-8/GBK text as offices write it;
//! - [`unit_code`]: the one rule for a unit's code; [`identity`]: who a certificate says its holder is;
//! - [`tls`]: the `[tls]` config table and the client side of mutual TLS;
//! - [`upstream`]: sending reports to the tier above, what its failures mean, backoff;
//! - [`certificate`] (feature `x509`): reading a certificate's identity and serial;
//! - [`fs`]: durable atomic file writes (temp, fsync, rename, directory fsync), used by every crate;
//! - [`config`]: the one config loader (TOML, relative paths, errors naming file and key).
//!
//! This crate has no Arrow, Parquet or DataFusion in its dependency tree, so the
//! office agent that links it stays small.

pub mod catalog;
#[cfg(feature = "x509")]
pub mod certificate;
pub mod config;
pub mod fs;
pub mod identity;
pub mod period;
pub mod registry;
pub mod text;
pub mod tls;
pub mod unit_code;
pub mod upstream;
pub mod validate;

/// The generated gRPC types and services of package `sifa.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("sifa.v1");
}

pub use catalog::{Catalog, Metric, MetricKind, ValueType};
pub use identity::{Identity, Role};
pub use period::Period;
pub use registry::{Registry, Unit, UnitKind};
pub use unit_code::{UnitCode, UnitCodeError};
pub use validate::{Problem, Rejection, RejectionCode};

/// gRPC metadata key naming the sending unit (an office's own code, or a
/// forwarding aggregator's). Until mutual TLS is on it is the sender's claim;
/// with TLS the identity comes from the client certificate instead.
pub const SENDER_METADATA_KEY: &str = "x-sifa-sender";
