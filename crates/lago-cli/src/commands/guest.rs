//! `lago shutdown`, `copy-to-vm`, `copy-from-vm`, `collect`, `deploy`: work in the guests.

use crate::context::Context;
use crate::error::CliError;

/// Shut down VMs gracefully (ACPI), or reboot them
#[derive(Debug, clap::Args)]
pub(crate) struct ShutdownArgs {
    /// Reboot instead of powering off
    #[arg(short, long)]
    reboot: bool,
    /// VMs (default: all)
    vm_names: Vec<String>,
}

pub(crate) fn cmd_shutdown(ctx: &mut Context, args: &ShutdownArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    lago::ops::guest::shutdown(&env, &args.vm_names, args.reboot, std::time::Duration::from_secs(300), &ctx.reporter)?;
    Ok(())
}

/// Copy a file or directory to a VM
#[derive(Debug, clap::Args)]
pub(crate) struct CopyToArgs {
    /// The VM
    host: String,
    /// Local file or directory
    local_path: std::path::PathBuf,
    /// Destination in the VM
    remote_path: String,
}

pub(crate) fn cmd_copy_to(ctx: &mut Context, args: &CopyToArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    lago::ops::guest::copy_to(&env, &args.host, &ctx.session.cwd.join(&args.local_path), &args.remote_path)?;
    Ok(())
}

/// Copy a file or directory from a VM
#[derive(Debug, clap::Args)]
pub(crate) struct CopyFromArgs {
    /// The VM
    host: String,
    /// Path in the VM
    remote_path: String,
    /// Local destination
    local_path: std::path::PathBuf,
}

pub(crate) fn cmd_copy_from(ctx: &mut Context, args: &CopyFromArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    lago::ops::guest::copy_from(&env, &args.host, &args.remote_path, &ctx.session.cwd.join(&args.local_path))?;
    Ok(())
}

/// Collect the artifacts of every VM into a directory
#[derive(Debug, clap::Args)]
pub(crate) struct CollectArgs {
    /// Output directory (an existing one is renamed with a timestamp)
    #[arg(long, required = true)]
    output: std::path::PathBuf,
    /// Fail when an artifact does not exist
    #[arg(long)]
    no_skip: bool,
}

pub(crate) fn cmd_collect(ctx: &mut Context, args: &CollectArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    lago::ops::guest::collect(&env, &ctx.session.cwd.join(&args.output), args.no_skip, &ctx.reporter)?;
    Ok(())
}

/// Run the deploy scripts of every VM (metadata.deploy-scripts)
#[derive(Debug, clap::Args)]
pub(crate) struct DeployArgs {}

pub(crate) fn cmd_deploy(ctx: &mut Context, _args: &DeployArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    lago::ops::guest::deploy(&env, &ctx.reporter)?;
    Ok(())
}
