//! CLI plugins: an executable `lago-<verb>` on `PATH` becomes `lago <verb>` (the git and cargo
//! convention); else a `lago.plugins.cli` entry point of the original's plugin system, run by
//! the Python that has the `lago` package (`python3 -m lago.cmd`, with the whole command line,
//! global options included, as the original parsed it). Both run with `LAGO_PREFIX_PATH` /
//! `LAGO_WORKDIR_PATH` set when a prefix is found.

use std::ffi::OsString;
use std::process::ExitCode;

use lago::host::process::Invocation;
use lago::session::Session;

use crate::context::Context;
use crate::error::CliError;

pub(crate) fn cmd_plugin(ctx: &mut Context, args: &[OsString]) -> Result<ExitCode, CliError> {
    let verb = args.first().map(|v| v.to_string_lossy().into_owned()).unwrap_or_default();
    let program = format!("lago-{verb}");
    let found = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|d| d.join(&program)).find(|p| p.is_file()));
    let mut inv = match found {
        Some(found) => Invocation::new(&found.display().to_string()).args(&args[1..]),
        None if crate::python::cli_plugins().contains_key(&verb) => {
            // The original's parser takes the global options itself: the whole command line.
            crate::python::runner().args(std::env::args_os().skip(1))
        }
        None => {
            return Err(CliError::user(format!("Unknown command `{verb}`")).hint(
                "run `lago --help` for the list of commands; plugins are executables named `lago-<command>` on PATH, or `lago.plugins.cli` entry points of the Python that has the `lago` package",
            ));
        }
    };
    // A plugin may run outside any prefix.
    if let Ok((prefix, workdir)) = ctx.session.prefix(&ctx.reporter) {
        for (k, v) in Session::prefix_vars(&prefix, workdir.as_ref()) {
            inv = inv.env(k, v);
        }
    }
    Err(CliError::internal(lago::host::process::exec(&inv)))
}

/// The plugins `lago --help` lists: `lago-*` programs on `PATH` and the Python's CLI plugins,
/// `(verb, help)`.
pub(crate) fn listing() -> Vec<(String, String)> {
    let mut found: std::collections::BTreeMap<String, String> = crate::python::cli_plugins();
    for dir in std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(verb) = name.strip_prefix("lago-").filter(|v| !v.is_empty()) {
                found.entry(verb.to_owned()).or_insert_with(|| format!("(the program {})", e.path().display()));
            }
        }
    }
    found.into_iter().collect()
}
