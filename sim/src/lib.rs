//! `sifa-sim`: what the demo (`sifa demo`) and the end-to-end tests need to
//! play a province on one machine, kept out of the binaries offices run.
//!
//! - [`synth`]: realistic, deterministic books of an office (case ledger,
//!   totals sheet) and the agent config that reads them;
//! - [`national`]: a synthetic national registry and its units' monthly figures
//!   (`sifa sim store`, the benchmarks at national scale);
//! - [`xlsx_writer`]: the .xlsx files those books are written as;
//! - [`supervisor`]: a real `sifa aggregator` process: start and wait for its
//!   address, kill -9, restart, stop.

pub mod national;
pub mod supervisor;
pub mod synth;
pub mod xlsx_writer;
