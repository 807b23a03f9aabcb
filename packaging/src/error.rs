//! Why a package could not be written; each variant names the file or the package part.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(
        "reading {path}: {source} (run packaging/build, which builds and strips the binaries)"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("building the RPM: {0}")]
    Rpm(#[from] rpm::Error),
}
