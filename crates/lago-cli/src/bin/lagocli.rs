//! `lagocli`: the original's second name of `lago` (the documentation's plugin examples run
//! `lagocli noop`). It runs the `lago` installed beside it (else the one on `PATH`) with the same
//! arguments.
#![allow(clippy::print_stderr, reason = "the only thing it can say is why lago did not run")]

use std::process::ExitCode;

fn main() -> ExitCode {
    let beside = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join("lago"))).filter(|p| p.is_file());
    let program = beside.map_or_else(|| "lago".to_owned(), |p| p.display().to_string());
    let mut inv = lago::host::process::Invocation::new(&program).args(std::env::args_os().skip(1));
    if std::env::var_os("LAGO_PROG").is_none() {
        inv = inv.env("LAGO_PROG", "lagocli");
    }
    let e = lago::host::process::exec(&inv);
    eprintln!("lagocli: {e}");
    ExitCode::from(127)
}
