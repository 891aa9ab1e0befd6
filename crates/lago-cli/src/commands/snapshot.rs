//! `lago snapshot` and `lago revert`.

use lago::host::process::SystemRunner;

use crate::context::Context;
use crate::error::CliError;

/// Snapshot every VM of the environment (live when running), list or delete snapshots
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["snapshot_name", "list", "delete"])))]
pub(crate) struct SnapshotArgs {
    /// List the snapshots of every VM
    #[arg(short, long, conflicts_with_all = ["snapshot_name", "delete"])]
    list: bool,
    /// With --list: also show lago's own fields on each disk, whether the snapshot is `live`
    /// (memory and device state) and the spread of its VMs' pauses (`pause_spread_ms`)
    #[arg(long, requires = "list")]
    extra: bool,
    /// Delete the snapshot NAME of every VM
    #[arg(short, long, value_name = "NAME", conflicts_with = "snapshot_name")]
    delete: Option<String>,
    /// Name of the snapshot to take
    snapshot_name: Option<String>,
}

pub(crate) fn cmd_snapshot(ctx: &mut Context, args: &SnapshotArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    if args.list {
        let list = env.snapshots(args.extra)?;
        ctx.print(&list)?;
    } else if let Some(name) = &args.delete {
        env.delete_snapshot(name, &SystemRunner, &ctx.reporter)?;
    } else if let Some(name) = &args.snapshot_name {
        env.snapshot(name, &SystemRunner, &ctx.reporter)?;
    }
    Ok(())
}

/// Revert every VM of the environment to a snapshot
#[derive(Debug, clap::Args)]
pub(crate) struct RevertArgs {
    /// Name of the snapshot
    snapshot_name: String,
}

pub(crate) fn cmd_revert(ctx: &mut Context, args: &RevertArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    env.revert(&args.snapshot_name, &SystemRunner, &ctx.reporter)?;
    Ok(())
}
