//! `lago completion SHELL` and the man pages, both from the clap definitions.

use std::path::PathBuf;

use crate::context::Context;
use crate::error::CliError;

/// Print the shell completion script for bash, zsh or fish
///
/// bash: `lago completion bash > ~/.local/share/bash-completion/completions/lago`;
/// zsh: `lago completion zsh > "${fpath[1]}/_lago"`;
/// fish: `lago completion fish > ~/.config/fish/completions/lago.fish`.
/// The Debian package installs all three.
#[derive(Debug, clap::Args)]
pub(crate) struct CompletionArgs {
    /// The shell
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

pub(crate) fn cmd_completion(ctx: &mut Context, args: &CompletionArgs) -> Result<(), CliError> {
    let mut cmd = ctx.grammar.clone();
    clap_complete::generate(args.shell, &mut cmd, "lago", &mut std::io::stdout());
    Ok(())
}

/// Write the man pages (`lago.1`, one `lago-<verb>.1` per verb) into a directory
#[derive(Debug, clap::Args)]
pub(crate) struct ManpagesArgs {
    /// Output directory (created if missing)
    dir: PathBuf,
}

pub(crate) fn cmd_manpages(ctx: &mut Context, args: &ManpagesArgs) -> Result<(), CliError> {
    let dir = ctx.session.cwd.join(&args.dir);
    std::fs::create_dir_all(&dir).map_err(|e| CliError::failed(format!("Cannot create {}: {e}", dir.display())))?;
    let cmd = ctx.grammar.clone().version(env!("CARGO_PKG_VERSION"));
    clap_mangen::generate_to(cmd, &dir)
        .map_err(|e| CliError::failed(format!("Cannot write the man pages into {}: {e}", dir.display())))?;
    Ok(())
}
