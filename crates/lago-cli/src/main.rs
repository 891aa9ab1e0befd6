//! The `lago` command line: parses arguments, calls the library, prints.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "the CLI is where lago prints")]

mod args;
mod cli;
mod commands;
mod context;
mod error;
mod logging;
mod progress;
mod python;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "__switch") {
        return switch(&args[2..]);
    }
    // Networks' switches run as `<this program> __switch ...`, whatever it is called.
    if let Ok(exe) = std::env::current_exe() {
        lago::provider::qemu::switch::set_launcher(vec![exe.display().to_string(), "__switch".into()]);
    }
    if let Err(e) = lago::host::interrupt::install() {
        eprintln!("Warning: cannot handle interrupts ({e}); Ctrl-C will end lago without cleaning up");
    }
    let grammar = cli::grammar(&args);
    let matches = match grammar.clone().try_get_matches_from(cli::hoist_globals(args.clone())) {
        Ok(matches) => matches,
        Err(e) => return cli::refused(e, &args),
    };
    let cli = match <cli::Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return cli::refused(e, &args),
    };
    let result = context::Context::new(&cli.globals, grammar).and_then(|mut ctx| commands::run(&mut ctx, &cli.verb));
    match result {
        Ok(code) => code,
        Err(err) => err.report(),
    }
}

/// `lago __switch ARGS`: a helper process started by lago itself (a network's switch, the relay
/// of a forwarded port).
fn switch(args: &[std::ffi::OsString]) -> ExitCode {
    let Some(helper) = lago::provider::Helper::parse(args) else {
        eprintln!("usage: lago __switch {}", lago::provider::Helper::USAGE);
        return ExitCode::from(2);
    };
    logging::init_plain();
    match helper.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", lago::diagnose::render(&e).text().replace('\n', ": "));
            ExitCode::from(1)
        }
    }
}
