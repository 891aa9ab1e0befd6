//! A session: what both front ends (the `lago` command line and the Python SDK) do before and
//! around a verb, in one place. It loads the configuration (with the front end's overrides),
//! finds the workdir and prefix as the original's `in_prefix` did (reference §3.2), sweeps what
//! interrupted commands left beside the prefix, starts logging to the prefix's log, builds the
//! options of `init` and of environments, and destroys a workdir's every prefix.

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError, Sources};
use crate::env::{Env, EnvError, EnvOptions};
use crate::host::process::CommandRunner;
use crate::ops::init::{Host, InitError, InitOptions};
use crate::plan::PlanDefaults;
use crate::prefix::workdir::{CURRENT, DEFAULT_WORKDIR, Workdir, WorkdirError};
use crate::prefix::{Prefix, PrefixError};
use crate::report::Reporter;

/// Why a session could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The workdir cannot be used.
    #[error(transparent)]
    Workdir(#[from] WorkdirError),
    /// The prefix cannot be used.
    #[error(transparent)]
    Prefix(#[from] PrefixError),
    /// The environment failed.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// `init` failed.
    #[error(transparent)]
    Init(#[from] InitError),
    /// `--prefix-path` names neither a prefix nor a workdir.
    #[error("Unable to find prefix for {path}")]
    NoPrefix {
        /// The path given.
        path: PathBuf,
    },
    /// A directory could not be removed.
    #[error(transparent)]
    Io(#[from] crate::host::pathio::PathError),
}

/// Where a front end points a session: the original's global options.
#[derive(Debug, Clone, Default)]
pub struct Location {
    /// `--prefix-path`: a prefix, or a workdir (its current prefix).
    pub prefix_path: Option<String>,
    /// `--workdir-path`.
    pub workdir_path: Option<String>,
}

impl Location {
    /// The flags, else what the configuration gives (`[lago] prefix_path` / `workdir_path` of a
    /// file, `LAGO_PREFIX_PATH` / `LAGO_WORKDIR_PATH`): the flags' defaults, as in the original.
    /// A flag given keeps the other option's configured value away.
    pub fn or_configured(self, config: &Config) -> Self {
        if self.prefix_path.is_some() || self.workdir_path.is_some() {
            return self;
        }
        let configured = |key: &str| config.lago(key).filter(|v| !v.is_empty()).map(str::to_owned);
        Self { prefix_path: configured("prefix_path"), workdir_path: configured("workdir_path") }
    }
}

/// The request of an `init`: the init file and `lago init`'s options, each falling back to the
/// configuration when not given.
#[derive(Debug, Clone, Default)]
pub struct InitRequest {
    /// The init file (relative to the session's directory).
    pub init_file: PathBuf,
    /// The workdir to create the prefix in (default: `--workdir-path`, else `./.lago`).
    pub workdir: Option<PathBuf>,
    /// Make the new prefix the current one.
    pub set_current: bool,
    /// Write no bootstrap seeds.
    pub skip_bootstrap: bool,
    /// Run no `build` steps.
    pub skip_build: bool,
    /// `--ssh-key`: the environment's key pair (a private key, its `.pub` beside it).
    pub ssh_key: Option<PathBuf>,
    /// `template_repo_path`.
    pub template_repo_path: Option<String>,
    /// `template_repo_name`.
    pub template_repo_name: Option<String>,
    /// `template_store`.
    pub template_store: Option<PathBuf>,
    /// `template_repos`.
    pub template_repos: Option<PathBuf>,
}

/// The configuration and location of a front end's work.
#[derive(Debug, Clone)]
pub struct Session {
    /// The merged configuration.
    pub config: Config,
    /// The directory relative paths are resolved against.
    pub cwd: PathBuf,
    location: Location,
}

impl Session {
    /// A session on the host's configuration, with `overrides` of `[lago]` options (the command
    /// line's), in the process's directory.
    pub fn open(location: Location, overrides: &[(&str, String)]) -> Result<Self, SessionError> {
        let mut config = Config::load(&Sources::from_host())?;
        for (k, v) in overrides {
            config.set("lago", k, v);
        }
        config.validate()?;
        let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
        let location = location.or_configured(&config);
        Ok(Self { config, cwd, location })
    }

    /// A session on `config`, in `cwd`.
    pub fn with_config(config: Config, cwd: &Path, location: Location) -> Self {
        Self { config, cwd: cwd.to_owned(), location }
    }

    /// `--prefix-name` (default `current`).
    pub fn prefix_name(&self) -> String {
        self.config.lago("prefix_name").unwrap_or(CURRENT).to_owned()
    }

    /// `--workdir-path`, if given.
    pub fn workdir_arg(&self) -> Option<PathBuf> {
        self.location.workdir_path.as_deref().map(|p| self.cwd.join(p))
    }

    /// The workdir of `--workdir-path`, or the one found upwards from the session's directory.
    pub fn workdir(&self) -> Result<Workdir, SessionError> {
        Ok(match self.workdir_arg() {
            Some(p) => Workdir::load(&p)?,
            None => Workdir::resolve(&self.cwd)?,
        })
    }

    /// The directory of the prefix a verb works on, whether or not it is a sound prefix, and
    /// its workdir when it was found through one.
    pub fn prefix_dir(&self) -> Result<(PathBuf, Option<Workdir>), SessionError> {
        Ok(if let Some(pp) = &self.location.prefix_path {
            tracing::debug!("The option --prefix-path is going to be deprecated, use --workdir and --prefix instead");
            (resolve_prefix_path(&self.cwd.join(pp))?, None)
        } else if self.location.workdir_path.is_none() && Prefix::is_prefix(&self.cwd) {
            (self.cwd.clone(), None)
        } else {
            let wd = self.workdir()?;
            (wd.prefix_path(&self.prefix_name())?, Some(wd))
        })
    }

    /// The prefix a verb works on, entered (see [`Self::enter`]), and its workdir.
    pub fn prefix(&self, reporter: &dyn Reporter) -> Result<(Prefix, Option<Workdir>), SessionError> {
        let (path, workdir) = self.prefix_dir()?;
        let prefix = Prefix::open(&path)?;
        self.enter(&prefix, reporter);
        Ok((prefix, workdir))
    }

    /// Sweeps what interrupted commands left beside `prefix` (a half-built or half-removed
    /// prefix), saying what it repaired, and logs to the prefix's `logs/lago.log` from now on.
    pub fn enter(&self, prefix: &Prefix, reporter: &dyn Reporter) {
        if let Some(dir) = prefix.path.parent() {
            for repaired in crate::prefix::workdir::sweep_dir(dir) {
                reporter.warn(&repaired);
            }
        }
        let log = prefix.layout().log();
        if log.parent().is_some_and(Path::is_dir) {
            let _ = crate::host::logfile::attach(&log);
        }
    }

    /// The variables a program run for the prefix gets (a CLI plugin): `LAGO_PREFIX_PATH`, and
    /// `LAGO_WORKDIR_PATH` when the prefix was found through a workdir.
    pub fn prefix_vars(prefix: &Prefix, workdir: Option<&Workdir>) -> Vec<(&'static str, PathBuf)> {
        let mut vars = vec![("LAGO_PREFIX_PATH", prefix.path.clone())];
        if let Some(wd) = workdir {
            vars.push(("LAGO_WORKDIR_PATH", wd.path.clone()));
        }
        vars
    }

    /// The settings of environments this configuration gives.
    pub fn env_options(&self) -> Result<EnvOptions, SessionError> {
        Ok(EnvOptions::from_config(&self.config)?)
    }

    /// The environment of the prefix a verb works on.
    pub fn env(&self, reporter: &dyn Reporter) -> Result<Env, SessionError> {
        let (prefix, _) = self.prefix(reporter)?;
        Ok(Env::load(prefix, self.env_options()?)?)
    }

    /// The options of `init` for `request`: its values, else the configuration's.
    pub fn init_options(&self, request: &InitRequest) -> Result<InitOptions, SessionError> {
        let cfg = &self.config;
        let path_or = |given: &Option<PathBuf>, key: &str| {
            given.as_ref().map(|p| self.cwd.join(p)).or_else(|| cfg.path("init", key)).unwrap_or_default()
        };
        let workdir = request
            .workdir
            .as_ref()
            .map(|w| self.cwd.join(w))
            .or_else(|| self.workdir_arg())
            .unwrap_or_else(|| self.cwd.join(DEFAULT_WORKDIR));
        Ok(InitOptions {
            init_file: self.cwd.join(&request.init_file),
            workdir,
            prefix_name: self.prefix_name(),
            set_current: request.set_current,
            skip_bootstrap: request.skip_bootstrap,
            skip_build: request.skip_build,
            strict: cfg.bool_in("init", "strict")?.unwrap_or(true),
            ssh_key: request.ssh_key.as_ref().map(|k| self.cwd.join(k)),
            template_repo_path: match (&request.template_repo_path, &request.template_repo_name) {
                (Some(p), _) => Some(p.clone()),
                (None, Some(_)) => None,
                (None, None) => cfg.get("init", "template_repo_path").map(str::to_owned),
            },
            template_repo_name: request
                .template_repo_name
                .clone()
                .or_else(|| cfg.get("init", "template_repo_name").map(str::to_owned)),
            template_store: path_or(&request.template_store, "template_store"),
            template_repos: path_or(&request.template_repos, "template_repos"),
            defaults: PlanDefaults::from_config(cfg),
            accel: cfg.accel()?,
            state_dir: cfg.state_dir().to_owned(),
            cwd: self.cwd.clone(),
            lease_dir: cfg.lease_dir(),
            // Subnets are leased where a host leg can be made: never with `off`, always with
            // `on` (its start fails without the privilege), with `auto` when lago may create
            // interfaces (a normal user's environments keep the subnets they plan).
            lease_local_nets: match cfg.host_leg()?.leg {
                crate::config::HostLeg::Off => false,
                crate::config::HostLeg::On => true,
                crate::config::HostLeg::Auto => crate::host::netdev::may_create_interfaces().is_ok(),
            },
        })
    }

    /// Runs `init` for `request` and returns the new prefix, entered.
    pub fn init(
        &self,
        request: &InitRequest,
        runner: &dyn CommandRunner,
        reporter: &dyn Reporter,
    ) -> Result<Prefix, SessionError> {
        let opts = self.init_options(request)?;
        let fetcher = self.config.fetcher();
        let path = crate::ops::init::init(&opts, &Host { runner, fetcher: &fetcher, reporter })?;
        let prefix = Prefix::open(&path)?;
        crate::prefix::register::record(&self.register(), &prefix.path);
        self.enter(&prefix, reporter);
        Ok(prefix)
    }

    /// The host's register of environments of this user (`lago envs`).
    pub fn register(&self) -> crate::prefix::register::Register {
        crate::prefix::register::Register::of_user(self.config.state_dir())
    }

    /// Destroys every prefix of `workdir` and the workdir itself: each prefix is locked, its
    /// processes stopped, its leases released and its short socket link removed, then the
    /// directory goes.
    pub fn destroy_workdir(&self, workdir: &Workdir, reporter: &dyn Reporter) -> Result<(), SessionError> {
        let lease_dir = self.env_options()?.lease_dir;
        let mut locks = Vec::new();
        for name in workdir.prefixes()? {
            let p = Prefix { path: workdir.path.join(&name) };
            locks.push(
                crate::host::lock::acquire(&p.path, "destroy --all-prefixes", reporter).map_err(PrefixError::from)?,
            );
            p.stop_all(reporter)?;
            if let Ok(base) = crate::prefix::memory::base(&self.config.memory_dir()) {
                crate::prefix::memory::remove_prefix_files(&base, &p.path);
            }
            let _ = crate::env::release_leases(&p, &lease_dir);
            crate::prefix::remove_runtime_dir(&p.path);
            crate::prefix::register::forget(&self.register(), &p.path);
        }
        // Frozen states (`lago fork`) go with the workdir, their memory files too.
        crate::prefix::frozen::remove_all(&workdir.path);
        std::fs::remove_dir_all(&workdir.path).map_err(crate::host::pathio::at("remove", &workdir.path))?;
        drop(locks);
        Ok(())
    }

    /// Destroys the prefix a verb works on: its environment when it can be read, else what its
    /// pid files name and the directory (a prefix that lost its `uuid` or `virt/` is still
    /// removed, with its leases, rather than leaving the user in a dead end).
    pub fn destroy_prefix(&self, reporter: &dyn Reporter) -> Result<(), SessionError> {
        let (prefix, workdir) = match self.prefix(reporter) {
            Ok(found) => found,
            Err(e) => match self.prefix_dir() {
                Ok((path, wd)) if path.is_dir() => {
                    reporter.warn(&format!("{} is not a sound prefix, destroying what is there", path.display()));
                    let prefix =
                        Prefix { path: std::path::absolute(&path).map_err(crate::host::pathio::at("resolve", &path))? };
                    self.enter(&prefix, reporter);
                    (prefix, wd)
                }
                _ => return Err(e),
            },
        };
        crate::host::logfile::detach();
        let options = self.env_options()?;
        match Env::load(prefix.clone(), options.clone()) {
            Ok(env) => env.destroy(reporter)?,
            Err(_) => {
                let _ = crate::env::release_leases(&prefix, &options.lease_dir);
                prefix.destroy(reporter)?;
                crate::prefix::register::forget(&self.register(), &prefix.path);
            }
        }
        if let Some(wd) = workdir
            && wd.path.exists()
        {
            wd.repair()?;
        }
        Ok(())
    }
}

/// `--prefix-path`: a prefix, or a workdir (its current prefix).
fn resolve_prefix_path(p: &Path) -> Result<PathBuf, SessionError> {
    if crate::prefix::Layout::new(p).uuid().is_file() {
        return Ok(p.to_owned());
    }
    for wd in [p.to_owned(), p.join(DEFAULT_WORKDIR)] {
        if let Ok(w) = Workdir::load(&wd) {
            return Ok(w.prefix_path(CURRENT)?);
        }
    }
    Err(SessionError::NoPrefix { path: p.to_owned() })
}
