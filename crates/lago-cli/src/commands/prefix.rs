use std::io::{BufRead, IsTerminal, Write};

use crate::context::Context;
use crate::error::CliError;

/// Stop all the VMs and mark the prefix as uninitialized
#[derive(Debug, clap::Args)]
pub(crate) struct CleanupArgs {}

pub(crate) fn cmd_cleanup(ctx: &mut Context, _args: &CleanupArgs) -> Result<(), CliError> {
    let (prefix, _) = ctx.session.prefix(&ctx.reporter)?;
    prefix.cleanup(&ctx.reporter)?;
    Ok(())
}

/// Stop everything and remove the prefix
#[derive(Debug, clap::Args)]
pub(crate) struct DestroyArgs {
    /// Do not ask for confirmation
    #[arg(short, long)]
    yes: bool,
    /// Destroy every prefix of the workdir, and the workdir
    #[arg(long)]
    all_prefixes: bool,
}

fn confirm(path: &std::path::Path) -> Result<bool, CliError> {
    eprint!("Do you really want to destroy {}? [Yn] ", path.display());
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let n = std::io::stdin().lock().read_line(&mut answer).map_err(CliError::internal)?;
    if n == 0 {
        let what = if std::io::stdin().is_terminal() { "no answer" } else { "no answer on standard input" };
        return Err(CliError::user(format!("Not destroying {}: {what}", path.display()))
            .hint("pass `--yes` to destroy without asking"));
    }
    Ok(answer.trim().is_empty() || answer.trim_start().starts_with(['y', 'Y']))
}

pub(crate) fn cmd_destroy(ctx: &mut Context, args: &DestroyArgs) -> Result<(), CliError> {
    if args.all_prefixes {
        let wd_arg = ctx.session.workdir_arg();
        let wd = ctx.session.workdir()?;
        let target = wd_arg.filter(|p| p.is_symlink()).unwrap_or_else(|| wd.path.clone());
        if !args.yes && !confirm(&target)? {
            tracing::info!("Aborting on user input");
            return Ok(());
        }
        // A workdir reached through a link: the link goes, the workdir stays.
        if target.is_symlink() {
            std::fs::remove_file(&target).map_err(CliError::internal)?;
            return Ok(());
        }
        ctx.session.destroy_workdir(&wd, &ctx.reporter)?;
        return Ok(());
    }
    if !args.yes {
        let (path, _) = ctx.session.prefix_dir()?;
        if !confirm(&path)? {
            tracing::info!("Aborting on user input");
            return Ok(());
        }
    }
    ctx.session.destroy_prefix(&ctx.reporter)?;
    Ok(())
}
