//! What can go wrong reading or writing a data directory.

use std::io;
use std::path::{Path, PathBuf};

use sifa_proto::fs::FsError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: io::Error },
    #[error(transparent)]
    Write(#[from] FsError),
    #[error("Parquet file {path}: {source}")]
    Parquet { path: PathBuf, source: parquet::errors::ParquetError },
    #[error("Arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("Parquet file {path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("the store at {url}: {message}")]
    Bucket { url: String, message: String },
    #[error("store description {path}: {message}")]
    Meta { path: PathBuf, message: String },
}

pub(crate) fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { what, path: path.to_path_buf(), source }
}
