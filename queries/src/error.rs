//! What can go wrong opening a store or running a query, said so a person can act on it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(
        "{path} is not a sifa data directory: {what} is missing. Point --data at an aggregator's data_dir \
         (it holds store.toml, catalog.toml, registry.csv and reports/; see docs/STORAGE.md)"
    )]
    NotAStore { path: PathBuf, what: &'static str },
    #[error("reading the store: {0}")]
    Store(#[from] sifa_store::StoreError),
    #[error(transparent)]
    Write(#[from] sifa_proto::fs::FsError),
    #[error("the store's catalog {path}: {source}")]
    Catalog { path: PathBuf, source: sifa_proto::catalog::CatalogError },
    #[error("the store's registry {path}: {source}")]
    Registry { path: PathBuf, source: sifa_proto::registry::RegistryError },
    #[error("the store's root unit {0:?} (store.toml) is not in its registry.csv")]
    UnknownRoot(String),
    #[error("unit {unit} is not in this store: it holds the subtree of {root} only")]
    OutsideStore { unit: String, root: String },
    #[error("{0}")]
    Sql(String),
    #[error(
        "this endpoint is read-only: `{0} ...` is refused; run queries (SELECT, WITH, SHOW, EXPLAIN) over the \
         tables, views and rollup(...) (queries/README.md). Reports enter a tier only from its offices' agents"
    )]
    ReadOnly(String),
    #[error(
        "unknown rollup {name:?}; the standard rollups are: {known}. \
         (Their SQL is in queries/sql/; run any other file with -f FILE.sql)"
    )]
    UnknownRollup { name: String, known: String },
    #[error("rollup {rollup}: {message}")]
    RollupParameter { rollup: String, message: String },
    #[error("the store at {url}: {message}")]
    Remote { url: String, message: String },
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
}

impl From<datafusion::error::DataFusionError> for QueryError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        QueryError::Sql(crate::session::explain_error(&e))
    }
}

pub type Result<T, E = QueryError> = std::result::Result<T, E>;
