use std::path::PathBuf;

use lago::host::process::SystemRunner;
use lago::session::InitRequest;

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
    /// If passed, will be used for ssh access to VMs and no keys will be generated
    #[arg(long)]
    ssh_key: Option<PathBuf>,
}

pub(crate) fn cmd_init(ctx: &mut Context, args: &InitArgs) -> Result<(), CliError> {
    let (workdir, init_file) = match (&args.workdir, &args.virt_config) {
        (Some(w), Some(f)) => (Some(w.clone()), f.clone()),
        (Some(f), None) => (None, f.clone()),
        (None, _) => (None, PathBuf::from("LagoInitFile")),
    };
    let request = InitRequest {
        init_file,
        workdir,
        set_current: args.set_current,
        skip_bootstrap: args.skip_bootstrap,
        skip_build: args.skip_build,
        template_repo_path: args.template_repo_path.clone(),
        template_repo_name: args.template_repo_name.clone(),
        template_store: args.template_store.clone(),
        template_repos: args.template_repos.clone(),
        ssh_key: args.ssh_key.clone(),
    };
    ctx.session.init(&request, &SystemRunner, &ctx.reporter)?;
    Ok(())
}
