//! `lago console`.

use crate::context::Context;
use crate::error::CliError;

/// Attach to a VM's serial console (leave with Ctrl-])
#[derive(Debug, clap::Args)]
pub(crate) struct ConsoleArgs {
    /// The VM
    host: String,
}

pub(crate) fn cmd_console(ctx: &mut Context, args: &ConsoleArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    lago::ops::console::attach(&env, &args.host)?;
    Ok(())
}
