//! The SDK entry points, shaped like the original's `lago.sdk` (reference §8):
//!
//! ```no_run
//! use lago::report::NoopReporter;
//! let env = lago::sdk::init("/tmp/el7-init.yaml".as_ref(), "/tmp/my_test_env".as_ref())?;
//! env.start(&[], &NoopReporter)?;
//! let out = env.vm("vm01")?.ssh(&["hostname", "-f"])?;
//! assert_eq!(out.code, 0);
//! env.destroy(&NoopReporter)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Configuration is read as the CLI reads it (files, `LAGO_*` variables), without flags.

use std::path::Path;

use crate::config::ConfigError;
use crate::env::{Env, EnvError};
use crate::host::process::SystemRunner;
use crate::ops::init::InitError;
use crate::prefix::workdir::WorkdirError;
use crate::report::{NoopReporter, Reporter};
use crate::session::{InitRequest, Location, Session, SessionError};

/// SDK failures.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `init`.
    #[error(transparent)]
    Init(#[from] InitError),
    /// Workdir.
    #[error(transparent)]
    Workdir(#[from] WorkdirError),
    /// The environment.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The session (workdir, prefix, configuration).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// An option `init` does not take.
    #[error("Unknown init option {name:?} (known: {})", INIT_OPTIONS.join(", "))]
    UnknownOption {
        /// The option.
        name: String,
    },
    /// An option's value is not what it takes.
    #[error("Init option {name} is {value:?}, expected {expected}")]
    BadOption {
        /// The option.
        name: String,
        /// Its value.
        value: String,
        /// What it takes.
        expected: &'static str,
    },
}

/// The options `init` takes besides the init file: the `[init]` section of the configuration
/// and the flags of `lago init`.
pub const INIT_OPTIONS: &[&str] = &[
    "template_repo_path",
    "template_repo_name",
    "template_store",
    "template_repos",
    "skip_bootstrap",
    "skip_build",
    "set_current",
    "prefix_name",
    "ssh_key",
];

/// Creates the environment of `init_file` in `workdir` (prefix `default`) and loads it.
pub fn init(init_file: &Path, workdir: &Path) -> Result<Env, SdkError> {
    init_with(init_file, Some(workdir), &[], &NoopReporter)
}

/// [`init`] with options (see [`INIT_OPTIONS`]; they override the configuration), a workdir
/// that defaults to `./.lago`, and progress reported to `reporter`.
pub fn init_with(
    init_file: &Path,
    workdir: Option<&Path>,
    options: &[(String, String)],
    reporter: &dyn Reporter,
) -> Result<Env, SdkError> {
    let mut request = InitRequest {
        init_file: init_file.to_owned(),
        workdir: workdir.map(Path::to_path_buf),
        ..InitRequest::default()
    };
    let mut overrides: Vec<(&str, String)> = Vec::new();
    for (name, value) in options {
        let flag = |v: &str| match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" | "" => Ok(false),
            _ => Err(SdkError::BadOption { name: name.clone(), value: value.clone(), expected: "true or false" }),
        };
        match name.as_str() {
            "skip_bootstrap" => request.skip_bootstrap = flag(value)?,
            "skip_build" => request.skip_build = flag(value)?,
            "set_current" => request.set_current = flag(value)?,
            "prefix_name" => overrides.push(("prefix_name", value.clone())),
            "template_repo_path" => request.template_repo_path = Some(value.clone()),
            "template_repo_name" => request.template_repo_name = Some(value.clone()),
            "template_store" => request.template_store = Some(value.into()),
            "template_repos" => request.template_repos = Some(value.into()),
            "ssh_key" => request.ssh_key = Some(value.into()),
            _ => return Err(SdkError::UnknownOption { name: name.clone() }),
        }
    }
    // The SDK's prefix is `default` unless named (the CLI's `current` names the workdir's).
    if !overrides.iter().any(|(k, _)| *k == "prefix_name") {
        overrides.push(("prefix_name", crate::prefix::workdir::DEFAULT_PREFIX.to_owned()));
    }
    let session = Session::open(Location::default(), &overrides)?;
    let prefix = session.init(&request, &SystemRunner, reporter)?;
    Ok(Env::load(prefix, session.env_options()?)?)
}

/// Loads the current environment of an existing workdir.
pub fn load_env(workdir: &Path) -> Result<Env, SdkError> {
    load_env_named(workdir, None)
}

/// Loads prefix `name` of `workdir` (its `current` when `None`).
pub fn load_env_named(workdir: &Path, name: Option<&str>) -> Result<Env, SdkError> {
    let location = Location { workdir_path: Some(workdir.display().to_string()), ..Location::default() };
    let overrides: Vec<(&str, String)> = name.map(|n| ("prefix_name", n.to_owned())).into_iter().collect();
    let session = Session::open(location, &overrides)?;
    Ok(session.env(&NoopReporter)?)
}

/// Loads the environment of the prefix directory `prefix` (or of a workdir's current prefix),
/// as `--prefix-path` does.
pub fn load_prefix(prefix: &Path) -> Result<Env, SdkError> {
    let location = Location { prefix_path: Some(prefix.display().to_string()), ..Location::default() };
    let session = Session::open(location, &[])?;
    Ok(session.env(&NoopReporter)?)
}
