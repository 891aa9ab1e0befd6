use std::path::PathBuf;

use lago::prefix::workdir::Workdir;
use serde_json::Value;

use crate::context::Context;
use crate::error::CliError;

/// List the prefixes (envs) in a Workdir
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Path to the Workdir. If not provided Lago will try to find a Workdir relative to the current directory.
    workdir_path: Option<PathBuf>,
}

pub(crate) fn cmd_list(ctx: &mut Context, args: &ListArgs) -> Result<(), CliError> {
    let wd = match &args.workdir_path {
        Some(p) => Workdir::resolve(&ctx.session.cwd.join(p))?,
        None => ctx.session.workdir()?,
    };
    let names: Vec<Value> = wd.prefixes()?.into_iter().map(Value::String).collect();
    ctx.print(&Value::Array(names))?;
    Ok(())
}

/// Change the current prefix of the workdir
#[derive(Debug, clap::Args)]
pub(crate) struct SetCurrentArgs {
    /// The prefix to make current
    prefix_name: String,
}

pub(crate) fn cmd_set_current(ctx: &mut Context, args: &SetCurrentArgs) -> Result<(), CliError> {
    ctx.session.workdir()?.set_current(&args.prefix_name)?;
    Ok(())
}
