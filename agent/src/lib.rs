//! The office agent (`sifa-agent`): reads a judicial office's books (a case
//! ledger and/or a totals sheet), computes each month's report, validates it
//! with the one validation library, keeps it in a durable outbox and delivers
//! it to the office's county aggregator, once, in order, however long the
//! office is offline. See docs/AGENT.md.
//!
//! - [`config`]: the config file; [`dates`]: dates as offices write them;
//! - [`ledger`]: the books' rows read into monthly figures; [`csv_sheet`]: CSV (UTF-8/GBK), streamed;
//!   [`workbook`]: .xlsx and other workbooks (size cap, visible sheet, merged cells, formulas);
//! - [`compute`]: rows → month reports; [`drops`]: a ledger that lost rows is held for confirmation;
//! - [`outbox`]: the durable queue and revision numbering; [`push`]: delivery with backoff;
//! - [`catalog_cache`]: the catalog from the aggregator, cached for offline work;
//! - [`daemon`]: one round and the schedule loop; [`status`]: what `status` prints;
//! - [`cli`]: the commands, shared by `sifa-agent` and `sifa agent`.
//!
//! Demo books (synthetic ledgers) are in the `sifa-sim` crate, not shipped with the agent.

pub mod catalog_cache;
pub mod cli;
pub mod compute;
pub mod config;
pub mod csv_sheet;
pub mod daemon;
pub mod dates;
pub mod drops;
pub mod ledger;
pub mod outbox;
pub mod push;
pub mod status;
pub mod workbook;
