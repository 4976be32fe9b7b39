//! sifa-queries: SQL over an aggregator's store, the standard rollups and the
//! year's published figures.
//!
//! - [`session`]: opening a data directory and registering its tables;
//!   [`views`]: the SQL of the views (`reports`, `yearly`, ...);
//! - [`query`]: running statements; [`format`]: table, CSV and JSON output;
//! - [`rollup`]: the standard rollups (`queries/sql/*.sql`);
//! - [`publish`]: `sifa publish`, the year's figures as HTML, CSV and JSON;
//! - [`cli`]: `sifa query` and `sifa publish`; [`repl`]: the interactive prompt.
//!
//! queries/README.md documents every table, view and rollup.

pub mod cli;
pub mod error;
pub mod format;
pub mod publish;
pub mod query;
pub mod remote;
pub mod repl;
pub mod rollup;
pub mod session;
pub mod views;

pub use error::QueryError;
pub use session::{Store, open};
