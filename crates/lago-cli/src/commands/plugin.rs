//! CLI plugins: an executable `lago-<verb>` on `PATH` becomes `lago <verb>` (the git and cargo
//! convention), run with `LAGO_PREFIX_PATH` / `LAGO_WORKDIR_PATH` set when a prefix is found.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use crate::context::Context;
use crate::error::CliError;

pub(crate) fn cmd_plugin(ctx: &mut Context, args: &[OsString]) -> Result<(), CliError> {
    let verb = args.first().map(|v| v.to_string_lossy().into_owned()).unwrap_or_default();
    let program = format!("lago-{verb}");
    let found =
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(&program).is_file()));
    if !found {
        return Err(CliError::user(format!("Unknown command `{verb}`")).hint(
            "run `lago --help` for the list of commands; plugins are executables named `lago-<command>` on PATH",
        ));
    }
    // A plugin may run outside any prefix.
    let _ = ctx.prefix();
    let err = std::process::Command::new(&program).args(&args[1..]).exec();
    Err(CliError::internal(format!("Cannot run plugin `{program}`: {err}")))
}
