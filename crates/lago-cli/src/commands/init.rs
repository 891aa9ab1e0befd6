use std::path::PathBuf;

use lago::host::process::SystemRunner;
use lago::ops::init::{Host, InitOptions, init};

use crate::context::Context;
use crate::error::CliError;

/// Initialize a directory for running tests
///
/// Reads the init file (default `./LagoInitFile`), checks it, and creates a prefix: disks,
/// bootstrap seeds, SSH keys and the expanded environment under `virt/`. With one positional
/// argument, it is the init file.
#[derive(Debug, clap::Args)]
pub(crate) struct InitArgs {
    /// Workdir to create the prefix in (default `./.lago`), or the init file when alone
    workdir: Option<PathBuf>,
    /// The init file (YAML or JSON)
    virt_config: Option<PathBuf>,
    /// Repo file describing the templates
    #[arg(long)]
    template_repo_path: Option<String>,
    /// Name of the repo from the template repos dir
    #[arg(long)]
    template_repo_name: Option<String>,
    /// Location to store templates at
    #[arg(long)]
    template_store: Option<PathBuf>,
    /// Location to store repos
    #[arg(long)]
    template_repos: Option<PathBuf>,
    /// Make the new prefix the current one
    #[arg(long)]
    set_current: bool,
    /// Write no bootstrap seed for the VMs
    #[arg(long)]
    skip_bootstrap: bool,
    /// Skip the `build` steps of the disks
    #[arg(long)]
    skip_build: bool,
}

pub(crate) fn cmd_init(ctx: &mut Context, args: &InitArgs) -> Result<(), CliError> {
    let (workdir, init_file) = match (&args.workdir, &args.virt_config) {
        (Some(w), Some(f)) => (Some(w.clone()), f.clone()),
        (Some(f), None) => (None, f.clone()),
        (None, _) => (None, PathBuf::from("LagoInitFile")),
    };
    let workdir = workdir
        .map(|w| ctx.cwd.join(w))
        .or_else(|| ctx.workdir_arg())
        .unwrap_or_else(|| ctx.cwd.join(lago::prefix::workdir::DEFAULT_WORKDIR));
    let cfg = &ctx.config;
    let accel = cfg.accel()?;
    let path_or = |flag: &Option<PathBuf>, key: &str| {
        flag.clone().map(|p| ctx.cwd.join(p)).or_else(|| cfg.path("init", key)).unwrap_or_default()
    };
    let opts = InitOptions {
        init_file: ctx.cwd.join(init_file),
        workdir,
        prefix_name: ctx.prefix_name(),
        set_current: args.set_current,
        skip_bootstrap: args.skip_bootstrap,
        skip_build: args.skip_build,
        template_repo_path: match (&args.template_repo_path, &args.template_repo_name) {
            (Some(p), _) => Some(p.clone()),
            (None, Some(_)) => None,
            (None, None) => cfg.get("init", "template_repo_path").map(str::to_owned),
        },
        template_repo_name: args
            .template_repo_name
            .clone()
            .or_else(|| cfg.get("init", "template_repo_name").map(str::to_owned)),
        template_store: path_or(&args.template_store, "template_store"),
        template_repos: path_or(&args.template_repos, "template_repos"),
        defaults: lago::plan::PlanDefaults::from_config(cfg),
        accel,
        state_dir: cfg.state_dir().to_owned(),
        cwd: ctx.cwd.clone(),
        lease_dir: cfg.lease_dir(),
    };
    let fetcher = ctx.config.fetcher();
    let host = Host { runner: &SystemRunner, fetcher: &fetcher, reporter: &ctx.reporter };
    init(&opts, &host)?;
    Ok(())
}
