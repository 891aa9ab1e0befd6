//! `lago fork`: copies of the running environment (lago's own verb).

use lago::host::process::SystemRunner;
use lago::ops::fork::ForkOptions;

use crate::context::Context;
use crate::error::CliError;

/// Fork the running environment: copies that go on from one instant, their memory shared until
/// written (lago's own verb)
///
/// The environment's VMs are paused together and frozen; the copies (new prefixes of the same
/// workdir, each with its own networks, ports and forwards: every verb works on them with
/// `--prefix-name`) and the environment itself go on from that instant, its VMs in new qemu
/// processes. Prints the copies' names on stdout, one per line.
#[derive(Debug, clap::Args)]
pub(crate) struct ForkArgs {
    /// Names of the copies (default: <prefix>-1, <prefix>-2, ...)
    names: Vec<String>,
    /// How many copies (default: one per name, else one)
    #[arg(long, value_name = "N")]
    count: Option<usize>,
    /// Copies of the frozen state of the prefix's last fork (of a copy: the state it was made
    /// from), without freezing the environment again
    #[arg(long)]
    from_frozen: bool,
    /// Put this copy back in place to the frozen state it was made from (its VMs start again
    /// from that state, on the same networks and ports)
    #[arg(long, conflicts_with_all = ["names", "count", "from_frozen"])]
    renew: bool,
    /// When the copies would not fit the host's memory, fail at once naming the shortfall
    /// (default: wait in line until they fit)
    #[arg(long, conflicts_with = "renew")]
    no_wait: bool,
}

pub(crate) fn cmd_fork(ctx: &mut Context, args: &ForkArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    if args.renew {
        env.renew(&SystemRunner, &ctx.reporter)?;
        return Ok(());
    }
    let opts = ForkOptions {
        names: args.names.clone(),
        count: args.count,
        from_frozen: args.from_frozen,
        no_wait: args.no_wait,
    };
    let copies = env.fork_with(&opts, &SystemRunner, &ctx.reporter)?;
    let names: Vec<String> = copies.iter().map(|c| c.prefix.name()).collect();
    if ctx.is_default_format() {
        for name in &names {
            println!("{name}");
        }
    } else {
        ctx.print(&names)?;
    }
    Ok(())
}
