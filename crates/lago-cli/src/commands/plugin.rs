//! CLI plugins: an executable `lago-<verb>` on `PATH` becomes `lago <verb>` (the git and cargo
//! convention), run with `LAGO_PREFIX_PATH` / `LAGO_WORKDIR_PATH` set when a prefix is found.

use std::ffi::OsString;
use std::process::ExitCode;

use lago::host::process::Invocation;
use lago::session::Session;

use crate::context::Context;
use crate::error::CliError;

pub(crate) fn cmd_plugin(ctx: &mut Context, args: &[OsString]) -> Result<ExitCode, CliError> {
    let verb = args.first().map(|v| v.to_string_lossy().into_owned()).unwrap_or_default();
    let program = format!("lago-{verb}");
    let Some(found) = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|d| d.join(&program)).find(|p| p.is_file()))
    else {
        return Err(CliError::user(format!("Unknown command `{verb}`")).hint(
            "run `lago --help` for the list of commands; plugins are executables named `lago-<command>` on PATH",
        ));
    };
    let mut inv = Invocation::new(&found.display().to_string()).args(&args[1..]);
    // A plugin may run outside any prefix.
    if let Ok((prefix, workdir)) = ctx.session.prefix(&ctx.reporter) {
        for (k, v) in Session::prefix_vars(&prefix, workdir.as_ref()) {
            inv = inv.env(k, v);
        }
    }
    Err(CliError::internal(lago::host::process::exec(&inv)))
}
