//! What every command needs: the merged configuration, the reporter, the output format, and
//! prefix/workdir resolution as the original's `in_prefix` did it (reference §3.2).

use std::path::{Path, PathBuf};

use lago::config::{Config, Sources};
use lago::prefix::Prefix;
use lago::prefix::workdir::Workdir;
use serde_json::Value;

use crate::cli::Cli;
use crate::error::CliError;
use crate::progress::TaskPrinter;

pub(crate) struct Context {
    pub(crate) config: Config,
    pub(crate) reporter: TaskPrinter,
    pub(crate) format: lago::output::Format,
    pub(crate) cwd: PathBuf,
    prefix_path: Option<String>,
    workdir_path: Option<String>,
}

impl Context {
    pub(crate) fn new(cli: &Cli) -> Result<Self, CliError> {
        let mut config = Config::load(&Sources::from_host())?;
        for (k, v) in cli.overrides() {
            config.set("lago", k, &v);
        }
        config.validate()?;
        let loglevel = config.lago("loglevel").unwrap_or("info").to_owned();
        crate::logging::init(&loglevel, cli.ignore_warnings);
        for w in &config.warnings {
            tracing::warn!("{w}");
        }
        let logdepth = config.lago("logdepth").and_then(|d| d.trim().parse::<i64>().ok()).unwrap_or(3);
        let format = match cli.out_format {
            Some(f) => f.to_lib(),
            None => config.lago("out_format").and_then(lago::output::Format::from_name).unwrap_or_default(),
        };
        let cwd = std::env::current_dir().map_err(CliError::internal)?;
        Ok(Self {
            reporter: TaskPrinter::new(logdepth, &loglevel),
            format,
            cwd,
            prefix_path: cli.prefix_path.clone(),
            workdir_path: cli.workdir_path.clone(),
            config,
        })
    }

    /// `--prefix-name` (default `current`).
    pub(crate) fn prefix_name(&self) -> String {
        self.config.lago("prefix_name").unwrap_or(lago::prefix::workdir::CURRENT).to_owned()
    }

    /// `--workdir-path`, if given.
    pub(crate) fn workdir_arg(&self) -> Option<PathBuf> {
        self.workdir_path.as_deref().map(|p| self.cwd.join(p))
    }

    /// The workdir of `--workdir-path`, or the one found upwards from the current directory.
    pub(crate) fn workdir(&self) -> Result<Workdir, CliError> {
        Ok(match self.workdir_arg() {
            Some(p) => Workdir::load(&p)?,
            None => Workdir::resolve(&self.cwd)?,
        })
    }

    /// The prefix a verb works on, plus its workdir when it was found through one. Exports
    /// `LAGO_PREFIX_PATH` and `LAGO_WORKDIR_PATH` and starts logging to the prefix's log.
    pub(crate) fn prefix(&self) -> Result<(Prefix, Option<Workdir>), CliError> {
        let (path, workdir) = self.prefix_dir()?;
        let prefix = Prefix::open(&path)?;
        Ok(self.enter(prefix, workdir))
    }

    /// The directory of the prefix a verb works on, whether or not it is a sound prefix.
    pub(crate) fn prefix_dir(&self) -> Result<(PathBuf, Option<Workdir>), CliError> {
        Ok(if let Some(pp) = &self.prefix_path {
            tracing::warn!("The option --prefix-path is going to be deprecated, use --workdir and --prefix instead");
            (resolve_prefix_path(&self.cwd.join(pp))?, None)
        } else if self.workdir_path.is_none() && Prefix::is_prefix(&self.cwd) {
            (self.cwd.clone(), None)
        } else {
            let wd = self.workdir()?;
            (wd.prefix_path(&self.prefix_name())?, Some(wd))
        })
    }

    /// Sweeps what interrupted commands left beside the prefix, exports `LAGO_PREFIX_PATH` and
    /// `LAGO_WORKDIR_PATH`, and starts logging to the prefix's log.
    pub(crate) fn enter(&self, prefix: Prefix, workdir: Option<Workdir>) -> (Prefix, Option<Workdir>) {
        // What interrupted commands left beside this prefix (a half-built or half-removed prefix).
        if let Some(dir) = prefix.path.parent() {
            for repaired in lago::prefix::workdir::sweep_dir(dir) {
                lago::report::Reporter::warn(&self.reporter, &repaired);
            }
        }
        // SAFETY-free: single-threaded at this point; plugins and deploy scripts read these.
        set_env("LAGO_PREFIX_PATH", &prefix.path);
        if let Some(wd) = &workdir {
            set_env("LAGO_WORKDIR_PATH", &wd.path);
        }
        let log = prefix.join("logs/lago.log");
        if log.parent().is_some_and(Path::is_dir) {
            let _ = lago::host::logfile::attach(&log);
        }
        (prefix, workdir)
    }

    /// Provider settings from the configuration.
    pub(crate) fn env_options(&self) -> Result<lago::env::EnvOptions, CliError> {
        Ok(lago::env::EnvOptions::from_config(&self.config)?)
    }

    /// The environment of the prefix a verb works on.
    pub(crate) fn env(&self) -> Result<lago::env::Env, CliError> {
        let (prefix, _) = self.prefix()?;
        Ok(lago::env::Env::load(prefix, self.env_options()?)?)
    }

    /// Prints information in the chosen output format.
    pub(crate) fn print(&self, value: &impl serde::Serialize) {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        println!("{}", self.format.render(&value));
    }
}

fn set_env(key: &str, value: &Path) {
    // Only called from the main thread before any worker thread exists.
    #[allow(unsafe_code, reason = "std::env::set_var is unsafe in edition 2024; no other thread runs yet")]
    // SAFETY: lago's CLI is single-threaded when it resolves the prefix.
    unsafe {
        std::env::set_var(key, value);
    }
}

/// `--prefix-path`: a prefix, or a workdir (its current prefix).
fn resolve_prefix_path(p: &Path) -> Result<PathBuf, CliError> {
    if p.join("uuid").is_file() {
        return Ok(p.to_owned());
    }
    for wd in [p.to_owned(), p.join(lago::prefix::workdir::DEFAULT_WORKDIR)] {
        if let Ok(w) = Workdir::load(&wd) {
            return Ok(w.prefix_path(lago::prefix::workdir::CURRENT)?);
        }
    }
    Err(CliError::user(format!("Unable to find prefix for {}", p.display())))
}
