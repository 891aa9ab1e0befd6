//! `lago net`: faults on demand (cut and restore links, partition and heal networks, degrade
//! links).

use lago::prefix::state::Impairment;

use crate::context::Context;
use crate::error::CliError;

/// Break the environment's networks on purpose, and put them back
#[derive(Debug, clap::Args)]
pub(crate) struct NetArgs {
    #[command(subcommand)]
    action: NetAction,
}

#[derive(Debug, clap::Subcommand)]
enum NetAction {
    /// Cut a VM's links (on the networks given, or all of them): the guest sees no carrier
    Cut {
        /// The VM
        vm: String,
        /// Its networks whose links are cut (default: all)
        nets: Vec<String>,
    },
    /// Restore a VM's links (on the networks given, or all): cut links come up, degraded ones are whole again
    Restore {
        /// The VM
        vm: String,
        /// Its networks whose links are restored (default: all)
        nets: Vec<String>,
    },
    /// Split a network into groups of VMs that cannot exchange a frame (`lago net partition lago vm01,vm02 vm03`)
    Partition {
        /// The network
        net: String,
        /// Groups: comma-separated VM names (VMs of the network in no group form one more group)
        #[arg(required = true, num_args = 2..)]
        groups: Vec<String>,
    },
    /// Undo the partition of a network
    Heal {
        /// The network
        net: String,
    },
    /// Degrade a VM's link to a network (undone by `lago net restore`)
    Degrade {
        /// The VM
        vm: String,
        /// The network
        net: String,
        /// What a round trip to the VM grows by, in milliseconds (half each way)
        #[arg(long, value_name = "MS", default_value_t = 0)]
        delay: u32,
        /// Random variation of each way's delay, ± milliseconds
        #[arg(long, value_name = "MS", default_value_t = 0)]
        jitter: u32,
        /// Share of frames lost each way, percent
        #[arg(long, value_name = "PCT", default_value_t = 0.0)]
        loss: f64,
        /// Rate each way, kbit/s
        #[arg(long, value_name = "KBIT", default_value_t = 0)]
        rate: u32,
    },
}

pub(crate) fn cmd_net(ctx: &mut Context, args: &NetArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    let r = &ctx.reporter;
    match &args.action {
        NetAction::Cut { vm, nets } => env.cut(vm, nets, r)?,
        NetAction::Restore { vm, nets } => env.restore(vm, nets, r)?,
        NetAction::Partition { net, groups } => {
            let groups: Vec<Vec<String>> =
                groups.iter().map(|g| g.split(',').filter(|v| !v.is_empty()).map(str::to_owned).collect()).collect();
            env.partition(net, &groups, r)?;
        }
        NetAction::Heal { net } => env.heal(net, r)?,
        NetAction::Degrade { vm, net, delay, jitter, loss, rate } => {
            let how = Impairment { delay_ms: *delay, jitter_ms: *jitter, loss_pct: *loss, rate_kbit: *rate };
            env.degrade(vm, net, how, r)?;
        }
    }
    Ok(())
}
