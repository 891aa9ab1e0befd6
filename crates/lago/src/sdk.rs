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

use crate::config::{Config, ConfigError, Sources};
use crate::env::{Env, EnvError, EnvOptions};
use crate::host::process::SystemRunner;
use crate::ops::init::{Host, InitError, InitOptions};
use crate::prefix::workdir::{Workdir, WorkdirError};
use crate::report::{NoopReporter, Reporter};

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
    let mut config = Config::load(&Sources::from_host())?;
    let mut flags = (false, false, false);
    let mut prefix_name = crate::prefix::workdir::DEFAULT_PREFIX.to_owned();
    for (name, value) in options {
        let flag = |v: &str| match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" | "" => Ok(false),
            _ => Err(SdkError::BadOption { name: name.clone(), value: value.clone(), expected: "true or false" }),
        };
        match name.as_str() {
            "skip_bootstrap" => flags.0 = flag(value)?,
            "skip_build" => flags.1 = flag(value)?,
            "set_current" => flags.2 = flag(value)?,
            "prefix_name" => prefix_name = value.clone(),
            n if INIT_OPTIONS.contains(&n) => config.set("init", n, value),
            _ => return Err(SdkError::UnknownOption { name: name.clone() }),
        }
    }
    config.validate()?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let workdir = workdir.map(|w| cwd.join(w)).unwrap_or_else(|| cwd.join(crate::prefix::workdir::DEFAULT_WORKDIR));
    let opts = InitOptions {
        init_file: cwd.join(init_file),
        workdir,
        prefix_name,
        set_current: flags.2,
        skip_bootstrap: flags.0,
        skip_build: flags.1,
        template_repo_path: config.get("init", "template_repo_path").map(str::to_owned),
        template_repo_name: config.get("init", "template_repo_name").map(str::to_owned),
        template_store: config.path("init", "template_store").unwrap_or_default(),
        template_repos: config.path("init", "template_repos").unwrap_or_default(),
        defaults: crate::plan::PlanDefaults::from_config(&config),
        accel: config.accel()?,
        state_dir: config.state_dir().to_owned(),
        cwd,
        lease_dir: config.lease_dir(),
    };
    let fetcher = config.fetcher();
    let prefix = crate::ops::init::init(&opts, &Host { runner: &SystemRunner, fetcher: &fetcher, reporter })?;
    let _ = crate::host::logfile::attach(&prefix.join("logs/lago.log"));
    Ok(Env::load(crate::prefix::Prefix::open(&prefix).map_err(EnvError::from)?, EnvOptions::from_config(&config)?)?)
}

/// Loads the current environment of an existing workdir.
pub fn load_env(workdir: &Path) -> Result<Env, SdkError> {
    let config = Config::load(&Sources::from_host())?;
    let wd = Workdir::load(workdir)?;
    let prefix =
        crate::prefix::Prefix::open(&wd.prefix_path(crate::prefix::workdir::CURRENT)?).map_err(EnvError::from)?;
    let _ = crate::host::logfile::attach(&prefix.join("logs/lago.log"));
    Ok(Env::load(prefix, EnvOptions::from_config(&config)?)?)
}
