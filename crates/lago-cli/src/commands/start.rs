//! `lago start`, `lago stop`: the environment's VMs and networks.

use crate::context::Context;
use crate::error::CliError;

/// Start the networks and VMs of the prefix, and wait until each VM answers SSH
#[derive(Debug, clap::Args)]
pub(crate) struct StartArgs {
    /// VMs to start (default: all); running VMs are left as they are
    vm_names: Vec<String>,
}

pub(crate) fn cmd_start(ctx: &mut Context, args: &StartArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    env.start(&args.vm_names, &ctx.reporter)?;
    Ok(())
}

/// Power off VMs at once (all by default)
#[derive(Debug, clap::Args)]
pub(crate) struct StopArgs {
    /// VMs to stop (default: all)
    vm_names: Vec<String>,
}

pub(crate) fn cmd_stop(ctx: &mut Context, args: &StopArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    env.stop(&args.vm_names, &ctx.reporter)?;
    Ok(())
}
