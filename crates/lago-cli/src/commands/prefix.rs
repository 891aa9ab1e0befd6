use std::io::{BufRead, IsTerminal, Write};

use lago::prefix::workdir::Workdir;

use crate::context::Context;
use crate::error::CliError;

/// Stop all the VMs and mark the prefix as uninitialized
#[derive(Debug, clap::Args)]
pub(crate) struct CleanupArgs {}

pub(crate) fn cmd_cleanup(ctx: &mut Context, _args: &CleanupArgs) -> Result<(), CliError> {
    let (prefix, _) = ctx.prefix()?;
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
        let wd_arg = ctx.workdir_arg();
        let wd = ctx.workdir()?;
        let target = wd_arg.filter(|p| p.is_symlink()).unwrap_or_else(|| wd.path.clone());
        if !args.yes && !confirm(&target)? {
            tracing::info!("Aborting on user input");
            return Ok(());
        }
        if target.is_symlink() {
            std::fs::remove_file(&target).map_err(CliError::internal)?;
            return Ok(());
        }
        let lease_dir = ctx.env_options()?.lease_dir;
        let mut locks = Vec::new();
        for name in wd.prefixes()? {
            let p = lago::prefix::Prefix { path: wd.path.join(&name) };
            locks.push(
                lago::host::lock::acquire(&p.path, "destroy --all-prefixes", &ctx.reporter)
                    .map_err(CliError::internal)?,
            );
            p.stop_all(&ctx.reporter)?;
            let _ = lago::env::release_leases(&p, &lease_dir);
            lago::prefix::remove_socket_link(&p.path);
        }
        std::fs::remove_dir_all(&wd.path)
            .map_err(|e| CliError::internal(format!("Cannot remove {}: {e}", wd.path.display())))?;
        drop(locks);
        return Ok(());
    }
    let (prefix, workdir) = match ctx.prefix() {
        Ok(found) => found,
        // A prefix that lost its `uuid` is still a directory of the workdir: destroy removes it
        // (stopping what its pid files name) rather than leaving the user in a dead end.
        Err(e) => match ctx.prefix_dir() {
            Ok((path, wd)) if path.is_dir() => {
                tracing::warn!("{} is not a sound prefix, destroying what is there", path.display());
                ctx.enter(lago::prefix::Prefix { path: std::path::absolute(&path).map_err(CliError::internal)? }, wd)
            }
            _ => return Err(e),
        },
    };
    if !args.yes && !confirm(&prefix.path)? {
        tracing::info!("Aborting on user input");
        return Ok(());
    }
    lago::host::logfile::detach();
    match lago::env::Env::load(prefix.clone(), ctx.env_options()?) {
        Ok(env) => env.destroy(&ctx.reporter)?,
        // A prefix whose VMs cannot be read is still removed, with its leases.
        Err(_) => {
            let _ = lago::env::release_leases(&prefix, &ctx.env_options()?.lease_dir);
            prefix.destroy(&ctx.reporter)?;
        }
    }
    if let Some(wd) = workdir
        && wd.path.exists()
    {
        Workdir::repair(&wd)?;
    }
    Ok(())
}
