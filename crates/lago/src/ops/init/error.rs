//! Why `init` failed.

use std::path::PathBuf;

use super::seed::BootstrapError;
use crate::host::images::ImageError;
use crate::host::process::ProcessError;
use crate::prefix::leases::SubnetError;
use crate::prefix::workdir::WorkdirError;
use crate::spec::SpecError;
use crate::template::{RepoError, StoreError};

/// Why `init` failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The init file is wrong.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Workdir or prefix naming problem.
    #[error(transparent)]
    Workdir(#[from] WorkdirError),
    /// The template repository cannot be used.
    #[error("Cannot use template repository {location}")]
    Repo {
        /// Path or URL.
        location: String,
        /// Why.
        #[source]
        source: Box<RepoError>,
    },
    /// No repository was configured.
    #[error("No template repo was configured or specified (set `template_repo_path`)")]
    NoRepo,
    /// A template could not be stored.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An image could not be created.
    #[error("Cannot create disk {disk} of VM {vm}")]
    Disk {
        /// VM.
        vm: String,
        /// Disk name.
        disk: String,
        /// Why.
        #[source]
        source: ImageError,
    },
    /// A template image is unusable as a base.
    #[error("Template {name} at {path} has a backing file ({backing}); templates must be standalone images")]
    TemplateHasBacking {
        /// Store name.
        name: String,
        /// Its path.
        path: PathBuf,
        /// Its backing file.
        backing: String,
    },
    /// A qcow2 disk's backing file is missing and does not name a template version.
    #[error(
        "Backing file resolution of disk {disk} failed: backing file {backing} is missing and is not a lago image (<template>:<version>)"
    )]
    BadBacking {
        /// The disk image.
        disk: PathBuf,
        /// Its backing file.
        backing: String,
    },
    /// Bootstrap material could not be written.
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    /// A build step failed.
    #[error("Build step {step} ({builder}) failed on disk {disk} of VM {vm}")]
    Build {
        /// VM.
        vm: String,
        /// Disk.
        disk: String,
        /// Step index.
        step: usize,
        /// Builder.
        builder: String,
        /// The failure (command and stderr).
        #[source]
        source: ProcessError,
    },
    /// Copying a file disk failed.
    #[error("Cannot download disk {url} of VM {vm}: {reason}")]
    Download {
        /// The VM.
        vm: String,
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    #[error("Cannot copy {from} for VM {vm}")]
    Copy {
        /// VM.
        vm: String,
        /// Source file.
        from: PathBuf,
        /// The failure.
        #[source]
        source: ProcessError,
    },
    /// The prefix lock could not be taken.
    #[error(transparent)]
    Lock(#[from] crate::host::lock::LockError),
    /// The lease store could not be used.
    #[error(transparent)]
    Runtime(#[from] crate::prefix::state::RuntimeError),
    /// A network's subnet (or IPv6 prefix) could not be leased.
    #[error("Cannot lease the subnet of network {net}")]
    Subnet {
        /// The network (the first of those leased together).
        net: String,
        /// Why.
        #[source]
        source: SubnetError,
    },
    /// A step after validation failed; the log was kept.
    #[error("Init of prefix {prefix} failed; nothing was left behind, the log is at {}", log.display())]
    Failed {
        /// The prefix that was being created.
        prefix: PathBuf,
        /// Where the log was kept.
        log: PathBuf,
        /// What failed.
        #[source]
        source: Box<InitError>,
    },
}

impl InitError {
    /// Whether the failure is the user's input (exit code 2) rather than the host's.
    pub fn is_user_error(&self) -> bool {
        match self {
            InitError::Spec(_) | InitError::Repo { .. } | InitError::NoRepo | InitError::BadBacking { .. } => true,
            InitError::Workdir(e) => !matches!(e, WorkdirError::Io(_)),
            InitError::Failed { source, .. } => source.is_user_error(),
            InitError::Store(StoreError::HashMismatch { .. } | StoreError::NoHash { .. }) => true,
            InitError::Subnet { source: SubnetError::Taken { .. } | SubnetError::Taken6 { .. }, .. } => true,
            _ => false,
        }
    }

    /// Advice for the user, when there is some.
    pub fn hint(&self) -> Option<String> {
        match self {
            InitError::Repo { source, .. } if matches!(**source, RepoError::Missing { .. }) => {
                Some("build the local template repository with `lago template build tiny`, or point `template_repo_path` at a repository".into())
            }
            InitError::Workdir(WorkdirError::PrefixExists { .. }) => Some("specify a different prefix name (`--prefix-name`) or remove it (`lago destroy`)".into()),
            InitError::Failed { source, .. } => source.hint(),
            InitError::Subnet { source: SubnetError::Taken { .. }, .. } => Some(
                "another environment's libvirt network has that subnet: choose another `gw`, or destroy that environment".into(),
            ),
            InitError::Subnet { source: SubnetError::Taken6 { .. }, .. } => Some(
                "another environment's host leg holds that prefix: choose another `ipv6` (or `ipv6: auto`), or destroy that environment".into(),
            ),
            InitError::Subnet { source: SubnetError::Full { .. }, .. } => {
                Some("`lago destroy` the environments you no longer use".into())
            }
            _ => None,
        }
    }
}
