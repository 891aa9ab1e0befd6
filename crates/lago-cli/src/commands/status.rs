use crate::context::Context;
use crate::error::CliError;

/// Show the status of the prefix: networks, VMs, addresses
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {}

pub(crate) fn cmd_status(ctx: &mut Context, _args: &StatusArgs) -> Result<(), CliError> {
    let (prefix, _) = ctx.prefix()?;
    let info = lago::status::status(&prefix)?;
    ctx.print(&info);
    Ok(())
}
