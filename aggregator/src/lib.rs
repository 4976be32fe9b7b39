//! An aggregator: one tier of the reporting tree (county, city or province).

pub mod store;
