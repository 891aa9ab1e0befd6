//! The `lago` command line: parses arguments, calls the library, prints.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "the CLI is where lago prints")]

mod cli;
mod commands;
mod context;
mod error;
mod logging;
mod progress;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    if let Err(e) = lago::interrupt::install() {
        eprintln!("Warning: cannot handle interrupts ({e}); Ctrl-C will end lago without cleaning up");
    }
    let cli = cli::Cli::parse_from(cli::hoist_globals(std::env::args_os().collect()));
    let result = context::Context::new(&cli).and_then(|mut ctx| commands::run(&mut ctx, &cli));
    match result {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}
