//! File-system errors that name their path: one type shared by every module's error enum
//! (`#[error(transparent)] Io(#[from] PathError)`), so no I/O error reaches the user without the
//! file it was about.

use std::path::{Path, PathBuf};

/// An I/O error with what was being done and on which path.
#[derive(Debug, thiserror::Error)]
#[error("Cannot {action} {path}")]
pub struct PathError {
    /// What was being done (`read`, `create`, ...).
    pub action: &'static str,
    /// On what.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// For `map_err`: `std::fs::read(p).map_err(at("read", p))?`.
pub fn at(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PathError {
    let path = path.to_owned();
    move |source| PathError { action, path, source }
}
