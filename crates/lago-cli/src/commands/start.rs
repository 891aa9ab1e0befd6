//! `lago start`, `lago stop`: the environment's VMs and networks.

use crate::context::Context;
use crate::error::CliError;

/// Start the networks and VMs of the prefix, and wait until each VM answers SSH
#[derive(Debug, clap::Args)]
pub(crate) struct StartArgs {
    /// VMs to start (default: all); running VMs are left as they are
    vm_names: Vec<String>,
    /// Bring the stopped environment up in the state of this live snapshot (disks, memory,
    /// devices) instead of booting it
    #[arg(long = "from", value_name = "SNAPSHOT", conflicts_with_all = ["boot", "vm_names"])]
    from: Option<String>,
    /// Boot, even when `[start] resume` names a snapshot
    #[arg(long)]
    boot: bool,
    /// When the VMs would not fit the host's memory, fail at once naming the shortfall
    /// (default: wait in line until they fit)
    #[arg(long)]
    no_wait: bool,
}

pub(crate) fn cmd_start(ctx: &mut Context, args: &StartArgs) -> Result<(), CliError> {
    use lago::ops::resume::StartMode;
    let mut env = ctx.env()?;
    env.set_memory_wait(!args.no_wait);
    let mode = match (&args.from, args.boot) {
        (Some(name), _) => StartMode::From(name.clone()),
        (None, true) => StartMode::Boot,
        (None, false) => StartMode::Configured,
    };
    env.start_as(&args.vm_names, &mode, &lago::host::process::SystemRunner, &ctx.reporter)?;
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
