use crate::context::Context;
use crate::error::CliError;

/// Show the status of the prefix: networks, VMs, addresses
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {}

pub(crate) fn cmd_status(ctx: &mut Context, _args: &StatusArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    let info = lago::ops::status::status(&env)?;
    ctx.print(&info)?;
    Ok(())
}
