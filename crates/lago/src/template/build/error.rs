//! Why a template build failed.

use crate::host::process::ProcessError;

/// Templates this build knows how to make.
pub const BUILDABLE: &[&str] = &["tiny", "debian12", "debian12-cloud"];

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No recipe for this template.
    #[error("Unknown template {name:?} (lago can build: {})", BUILDABLE.join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
    },
    /// A tool failed.
    #[error("Cannot {step}")]
    Tool {
        /// What was being done.
        step: String,
        /// The tool's failure (command and stderr).
        #[source]
        source: ProcessError,
    },
    /// `qemu-img` failed.
    #[error(transparent)]
    Image(#[from] crate::host::images::ImageError),
    /// A lock (the package cache's, the repository's) could not be taken.
    #[error(transparent)]
    Lock(#[from] crate::host::lock::LockError),
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] crate::host::pathio::PathError),
    /// Something expected in the packages is missing.
    #[error("{0}")]
    Missing(String),
    /// The repository's `repo.metadata` cannot be updated.
    #[error("{0}")]
    Repo(String),
    /// lago was interrupted; the repository is as it was.
    #[error("Template build stopped")]
    Interrupted(#[source] crate::host::interrupt::Interrupted),
}
