//! Arguments: the original's global options and verbs.
//!
//! The original took global options only before the verb; users type them after it too
//! (`lago status -f json`). [`hoist_globals`] moves global options found after the verb to before
//! it, unless the verb has an option of that name itself (`lago snapshot -l` is `--list`), so clap
//! sees the original's grammar. Everything after `lago shell VM` and after a plugin's name
//! belongs to the command, as in the original.

use std::ffi::OsString;

use clap::{CommandFactory, Parser};

use crate::args::GlobalArgs;
use crate::commands::Verb;

/// Command line interface to Lago
#[derive(Debug, Parser)]
#[command(
    name = "lago",
    version,
    infer_long_args = true,
    arg_required_else_help = true,
    max_term_width = 100,
    after_help = "Global options may also follow the verb: `lago status -f json`. `lago doctor` checks the host."
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) globals: GlobalArgs,
    #[command(subcommand)]
    pub(crate) verb: Verb,
}

/// The command line's grammar; when the top-level help will be shown (`lago`, `lago --help`),
/// with the plugins found on this host listed after the verbs.
pub(crate) fn grammar(args: &[OsString]) -> clap::Command {
    let mut cmd = argparse_style(Cli::command());
    // `lagocli` (the original's second name) says its own name.
    if std::env::var_os("LAGO_PROG").is_some_and(|p| p == "lagocli") {
        cmd = cmd.name("lagocli").bin_name("lagocli");
    }
    let top_help = args.len() == 1 || (args.len() == 2 && (args[1] == "--help" || args[1] == "-h"));
    if !top_help {
        return cmd;
    }
    let plugins = crate::commands::plugin::listing();
    if plugins.is_empty() {
        return cmd;
    }
    let width = plugins.iter().map(|(v, _)| v.len()).max().unwrap_or(0);
    let mut text = String::from("Plugins:\n");
    for (verb, help) in &plugins {
        text.push_str(&format!("  {verb:width$}  {help}\n"));
    }
    let after = cmd.get_after_help().map(|h| h.to_string()).unwrap_or_default();
    cmd.after_help(format!("{text}\n{after}"))
}

/// Help as the original's `argparse` printed it where scripts read it: `usage: lago ...`.
const HELP_TEMPLATE: &str = "{before-help}{about-with-newline}\nusage: {usage}\n\n{all-args}{after-help}";

/// `cmd` and its verbs with the original's `usage:` line.
fn argparse_style(cmd: clap::Command) -> clap::Command {
    cmd.help_template(HELP_TEMPLATE).mut_subcommands(argparse_style)
}

/// What a command line clap refused ends in, as the original's `argparse` parser ended: help
/// and version on standard output (exit 0); no verb: the help and exit 1; an option the
/// original would have read as a short option with its value stuck to it, and then no verb
/// (`lago -wrongoption` is `-w rongoption`): an error naming it, the usage, exit 1; any other
/// mistake: the error and the usage on standard error, exit 2.
pub(crate) fn refused(e: clap::Error, args: &[OsString]) -> std::process::ExitCode {
    use clap::error::ErrorKind;
    use std::process::ExitCode;
    let text = e.render().to_string().replace("Usage: ", "usage: ");
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            match stuck_short_option(args) {
                Some(token) => {
                    let usage = Cli::command().render_usage().to_string().replace("Usage: ", "usage: ");
                    eprintln!(
                        "error: unknown option '{token}' (read as `{} {}`), and no command\n\n{usage}\n\nFor more information, try '--help'.",
                        &token[..2],
                        &token[2..]
                    );
                }
                None => print!("{text}"),
            }
            ExitCode::from(1)
        }
        _ => {
            eprint!("{text}");
            ExitCode::from(2)
        }
    }
}

/// A token such as `-wrongoption`: one dash, a global short option that takes a value (`-w`) and
/// letters stuck to it; with no verb after it, it was meant as an option lago does not have.
fn stuck_short_option(args: &[OsString]) -> Option<String> {
    let cmd = Cli::command();
    args.iter().skip(1).filter_map(|a| a.to_str()).find_map(|t| {
        let rest = t.strip_prefix('-').filter(|r| !r.starts_with('-') && r.len() > 2)?;
        let short = rest.chars().next()?;
        let arg = cmd.get_arguments().find(|a| a.get_short() == Some(short))?;
        (arg.get_action().takes_values() && rest[1..].chars().all(|c| c.is_ascii_alphabetic() || c == '-'))
            .then(|| t.to_owned())
    })
}

/// Verbs whose arguments after the first positional one are not lago's: `shell VM CMD...`.
const VERBATIM_AFTER_FIRST: &[&str] = &["shell"];

/// Moves global options written after the verb to before it (see the module's documentation).
pub(crate) fn hoist_globals(args: Vec<OsString>) -> Vec<OsString> {
    let cmd = Cli::command();
    let globals: Vec<&clap::Arg> = cmd.get_arguments().filter(|a| !a.is_positional()).collect();
    let takes_value = |a: &clap::Arg| a.get_action().takes_values();
    // Finds the option `token` names among `opts`: (arg, whether its value is in the token).
    fn find<'a>(opts: &[&'a clap::Arg], token: &str) -> Option<(&'a clap::Arg, bool)> {
        if let Some(long) = token.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, _)) => (n, true),
                None => (long, false),
            };
            let exact = opts.iter().find(|a| a.get_long() == Some(name));
            // `infer_long_args`: a unique prefix names the option.
            let mut prefixed = opts.iter().filter(|a| a.get_long().is_some_and(|l| l.starts_with(name)));
            let arg = exact.copied().or_else(|| match (prefixed.next(), prefixed.next()) {
                (Some(one), None) if !name.is_empty() => Some(*one),
                _ => None,
            })?;
            return Some((arg, inline));
        }
        let short = token.strip_prefix('-')?.chars().next()?;
        let arg = opts.iter().find(|a| a.get_short() == Some(short))?;
        Some((arg, token.len() > 2))
    }
    let mut out: Vec<OsString> = args.iter().take(1).cloned().collect();
    let mut i = 1;
    // Global options before the verb stay where they are.
    while i < args.len() {
        let Some(token) = args[i].to_str() else { break };
        if !token.starts_with('-') || token == "-" || token == "--" {
            break;
        }
        out.push(args[i].clone());
        if let Some((arg, inline)) = find(&globals, token)
            && takes_value(arg)
            && !inline
            && i + 1 < args.len()
        {
            out.push(args[i + 1].clone());
            i += 1;
        }
        i += 1;
    }
    // The verb and its sub-verbs (`template list`).
    let mut sub = &cmd;
    let mut path: Vec<OsString> = Vec::new();
    while i < args.len() {
        let Some(name) = args[i].to_str() else { break };
        match sub.find_subcommand(name) {
            Some(next) => {
                path.push(args[i].clone());
                sub = next;
                i += 1;
            }
            None => break,
        }
    }
    if path.is_empty() {
        // No verb of lago's (a plugin, or no verb at all): nothing to move.
        out.extend(args[i..].iter().cloned());
        return out;
    }
    let own: Vec<&clap::Arg> = sub.get_arguments().filter(|a| !a.is_positional()).collect();
    let verbatim = VERBATIM_AFTER_FIRST.contains(&sub.get_name());
    let mut hoisted: Vec<OsString> = Vec::new();
    let mut rest: Vec<OsString> = Vec::new();
    while i < args.len() {
        let token = args[i].to_str().unwrap_or("");
        if token == "--" {
            rest.extend(args[i..].iter().cloned());
            break;
        }
        if token.starts_with('-')
            && token != "-"
            && find(&own, token).is_none()
            && let Some((arg, inline)) = find(&globals, token)
        {
            hoisted.push(args[i].clone());
            if takes_value(arg) && !inline && i + 1 < args.len() {
                hoisted.push(args[i + 1].clone());
                i += 1;
            }
            i += 1;
            continue;
        }
        if let Some((arg, inline)) = find(&own, token)
            && takes_value(arg)
            && !inline
            && i + 1 < args.len()
        {
            rest.push(args[i].clone());
            i += 1;
        } else if verbatim && !token.starts_with('-') {
            // `lago shell VM ...`: the rest is the command.
            rest.extend(args[i..].iter().cloned());
            break;
        }
        rest.push(args[i].clone());
        i += 1;
    }
    out.extend(hoisted);
    out.extend(path);
    out.extend(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hoist(line: &str) -> String {
        let args: Vec<OsString> = line.split(' ').map(OsString::from).collect();
        hoist_globals(args).iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn globals_after_the_verb_move_before_it() {
        assert_eq!(hoist("lago status -f json"), "lago -f json status");
        assert_eq!(hoist("lago template list -f json"), "lago -f json template list");
        assert_eq!(hoist("lago template list --out-format=yaml"), "lago --out-format=yaml template list");
        assert_eq!(
            hoist("lago -l debug start vm01 --workdir-path /w vm02"),
            "lago -l debug --workdir-path /w start vm01 vm02"
        );
        assert_eq!(hoist("lago start --workdir /w"), "lago --workdir /w start", "unique prefixes, as clap takes them");
        assert_eq!(
            hoist("lago init --template-repo-path r --accel tcg"),
            "lago --accel tcg init --template-repo-path r"
        );
    }

    #[test]
    fn the_verbs_own_options_and_commands_stay() {
        assert_eq!(hoist("lago snapshot -l -f json"), "lago -f json snapshot -l", "-l of snapshot is --list");
        assert_eq!(hoist("lago export -n vm01 -d out -f json"), "lago -f json export -n vm01 -d out");
        assert_eq!(hoist("lago shell vm01 ls -l -f x"), "lago shell vm01 ls -l -f x");
        assert_eq!(hoist("lago shell -f json vm01 -l"), "lago -f json shell vm01 -l");
        assert_eq!(hoist("lago myplugin -f json"), "lago myplugin -f json");
        assert_eq!(hoist("lago ansible_hosts -- -f"), "lago ansible_hosts -- -f");
    }

    #[test]
    fn every_verb_parses_with_globals_after_it() {
        for line in ["lago status -f json", "lago template list -f json --loglevel debug", "lago doctor -f json"] {
            let args: Vec<OsString> = line.split(' ').map(OsString::from).collect();
            let cli = Cli::try_parse_from(hoist_globals(args)).unwrap();
            assert_eq!(
                cli.globals.out_format,
                Some(crate::args::OutFormatChoice::Lago(crate::args::OutFormat::Json)),
                "{line}"
            );
        }
        Cli::command().debug_assert();
    }
}
