use crate::context::Context;
use crate::error::CliError;

/// Show the status of the prefix: networks, VMs, addresses
///
/// Prints the original Lago's status (its keys, order and values) in every output format of
/// the original's. `-f dot` (lago's own) prints the environment as a Graphviz graph instead:
/// networks, VMs coloured by state, each NIC with its address, host legs, forwarded ports and the
/// faults in force (`lago graph` renders it).
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// Also show lago's own additions: a network's partition (`partition`), libvirt name
    /// (`libvirt_name`) and host leg (`host leg`), a VM's forwarded ports (`forwards`) and clock
    /// not set after a revert (`clock`), a NIC's cut link (`link`) and degradation (`degraded`)
    #[arg(long)]
    extra: bool,
}

pub(crate) fn cmd_status(ctx: &mut Context, args: &StatusArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    if ctx.dot {
        // The picture shows lago's additions whatever `--extra` says.
        print!("{}", lago::ops::graph::dot(&lago::ops::status::status(&env, true)?));
        return Ok(());
    }
    let info = lago::ops::status::status(&env, args.extra)?;
    ctx.print(&info)?;
    Ok(())
}
