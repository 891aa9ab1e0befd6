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
use crate::init::{Host, InitError, InitOptions};
use crate::process::SystemRunner;
use crate::report::NoopReporter;
use crate::template::HttpFetcher;
use crate::workdir::{Workdir, WorkdirError};

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
}

/// Creates the environment of `init_file` in `workdir` (prefix `default`) and loads it.
pub fn init(init_file: &Path, workdir: &Path) -> Result<Env, SdkError> {
    let config = Config::load(&Sources::from_host())?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let opts = InitOptions {
        init_file: cwd.join(init_file),
        workdir: cwd.join(workdir),
        prefix_name: crate::workdir::DEFAULT_PREFIX.into(),
        set_current: false,
        skip_bootstrap: false,
        skip_build: false,
        template_repo_path: config.get("init", "template_repo_path").map(str::to_owned),
        template_repo_name: config.get("init", "template_repo_name").map(str::to_owned),
        template_store: config.path("init", "template_store").unwrap_or_default(),
        template_repos: config.path("init", "template_repos").unwrap_or_default(),
        defaults: config.plan_defaults(),
        accel: config.accel()?,
        cwd,
    };
    let prefix = crate::init::init(
        &opts,
        &Host { runner: &SystemRunner, fetcher: &HttpFetcher::default(), reporter: &NoopReporter },
    )?;
    Ok(Env::load(crate::prefix::Prefix::open(&prefix).map_err(EnvError::from)?, EnvOptions::from_config(&config)?)?)
}

/// Loads the current environment of an existing workdir.
pub fn load_env(workdir: &Path) -> Result<Env, SdkError> {
    let config = Config::load(&Sources::from_host())?;
    let wd = Workdir::load(workdir)?;
    let prefix = crate::prefix::Prefix::open(&wd.prefix_path(crate::workdir::CURRENT)?).map_err(EnvError::from)?;
    Ok(Env::load(prefix, EnvOptions::from_config(&config)?)?)
}
