//! `start`, `stop`, `shell`: running VMs.

use std::io::IsTerminal;
use std::os::unix::process::CommandExt;

use crate::context::Context;
use crate::error::CliError;

/// Start the networks and VMs of the prefix, and wait until each VM answers SSH
#[derive(Debug, clap::Args)]
pub(crate) struct StartArgs {
    /// VMs to start (default: all); running VMs are left as they are
    vm_names: Vec<String>,
}

pub(crate) fn cmd_start(ctx: &mut Context, args: &StartArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    env.start(&args.vm_names, &ctx.reporter)?;
    Ok(())
}

/// Power off VMs at once (all by default)
#[derive(Debug, clap::Args)]
pub(crate) struct StopArgs {
    /// VMs to stop (default: all)
    vm_names: Vec<String>,
}

pub(crate) fn cmd_stop(ctx: &mut Context, args: &StopArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    env.stop(&args.vm_names, &ctx.reporter)?;
    Ok(())
}

/// Open a shell on a VM, or run a command there (`lago shell vm01 hostname -f`)
///
/// With one argument that is a local file, runs it as a script in the VM. A leading `-c` is
/// ignored. The exit code is the command's.
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub(crate) struct ShellArgs {
    /// The VM (exact name, or a unique suffix of one)
    host: String,
    /// Command to run instead of an interactive shell
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

pub(crate) fn cmd_shell(ctx: &mut Context, args: &ShellArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    let names: Vec<String> = env.vms.iter().map(|v| v.name.clone()).collect();
    let name = if names.contains(&args.host) {
        args.host.clone()
    } else {
        let matches: Vec<&String> = names.iter().filter(|n| n.ends_with(&args.host)).collect();
        match matches.as_slice() {
            [one] => (*one).clone(),
            _ => {
                return Err(CliError::user(format!("Unable to find VM {}", args.host))
                    .hint(format!("Available VMs: {}", names.join(", "))));
            }
        }
    };
    let target = env.ssh_target(&name)?;
    let mut rest: &[String] = &args.args;
    if rest.first().is_some_and(|a| a == "-c") {
        rest = &rest[1..];
    }
    // One argument naming a local file: run it as a script.
    if let [script] = rest
        && std::path::Path::new(script).is_file()
    {
        let data = std::fs::read(script).map_err(CliError::internal)?;
        let status = target.exec_line("sh -s", Some(&data), 10).map_err(CliError::internal)?;
        print!("{}", status.stdout());
        eprint!("{}", String::from_utf8_lossy(&status.err));
        std::process::exit(status.code);
    }
    let line = (!rest.is_empty()).then(|| rest.join(" "));
    let tty = std::io::stdin().is_terminal() && (line.is_none() || std::io::stdout().is_terminal());
    let argv = target.interactive_argv(line.as_deref(), tty);
    let err = std::process::Command::new(&argv[0]).args(&argv[1..]).exec();
    Err(CliError::internal(format!("Cannot run `ssh`: {err}")).hint("install the `openssh-client` package"))
}
