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
}

pub(crate) fn cmd_init(ctx: &mut Context, args: &InitArgs) -> Result<(), CliError> {
    let (workdir, init_file) = match (&args.workdir, &args.virt_config) {
        (Some(w), Some(f)) => (Some(w.clone()), f.clone()),
        (Some(f), None) => (None, f.clone()),
        (None, _) => (None, PathBuf::from("LagoInitFile")),
    };
    let init_file_for_types = init_file.clone();
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
        vm_types: plugin_vm_types(&ctx.session.cwd.join(&init_file_for_types)),
    };
    ctx.session.init(&request, &SystemRunner, &ctx.reporter)?;
    Ok(())
}

/// The VM types of Python plugins, asked for only when the init file names a VM type at all.
fn plugin_vm_types(init_file: &std::path::Path) -> Vec<String> {
    match std::fs::read_to_string(init_file) {
        Ok(text) if text.contains("vm-type") => crate::python::vm_types(),
        _ => Vec::new(),
    }
}
