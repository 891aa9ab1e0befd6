//! What `init` needs to know ([`InitOptions`]) and the host services it uses ([`Host`]).

use std::path::PathBuf;

use crate::config::Accel;
use crate::host::fetch::Fetcher;
use crate::host::process::CommandRunner;
use crate::plan::PlanDefaults;
use crate::report::Reporter;

/// What `init` needs to know.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The init file.
    pub init_file: PathBuf,
    /// The workdir (created if missing).
    pub workdir: PathBuf,
    /// The prefix name (`current` means `default`).
    pub prefix_name: String,
    /// Make the new prefix current even when the workdir has one.
    pub set_current: bool,
    /// Write no bootstrap seeds.
    pub skip_bootstrap: bool,
    /// Run no `build` steps.
    pub skip_build: bool,
    /// `[init] strict`: a key lago does not know in the init file is an error (else a warning).
    pub strict: bool,
    /// `--ssh-key`: the environment's private key (its `.pub` beside it) instead of a new pair,
    /// for images that already trust it.
    pub ssh_key: Option<PathBuf>,
    /// `template_repo_path`: path or URL of `repo.metadata`.
    pub template_repo_path: Option<String>,
    /// `template_repo_name`: a repository under `template_repos`, by name.
    pub template_repo_name: Option<String>,
    /// `template_store`.
    pub template_store: PathBuf,
    /// `template_repos`.
    pub template_repos: PathBuf,
    /// Defaults from the configuration.
    pub defaults: PlanDefaults,
    /// Acceleration (decides `force_tcg` for `virt-customize`).
    pub accel: Accel,
    /// lago's state directory, where the KVM probe's verdicts are kept.
    pub state_dir: PathBuf,
    /// Directory relative paths in the init file are resolved against.
    pub cwd: PathBuf,
    /// `lease_dir`: the host-wide subnet leases of libvirt networks.
    pub lease_dir: PathBuf,
    /// Whether `nat` networks of `local-qemu` VMs are leased too: they may get a host leg
    /// (`host_leg = on`, or `auto` where lago may create interfaces).
    pub lease_local_nets: bool,
}

/// The host services `init` uses.
pub struct Host<'a> {
    /// Runs `qemu-img`, `ssh-keygen`, `xz`, `virt-customize`.
    pub runner: &'a dyn CommandRunner,
    /// Reads http template sources.
    pub fetcher: &'a dyn Fetcher,
    /// Receives progress.
    pub reporter: &'a dyn Reporter,
}
