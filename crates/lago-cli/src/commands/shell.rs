//! `lago shell`.

use std::process::ExitCode;

use crate::context::Context;
use crate::error::CliError;

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

pub(crate) fn cmd_shell(ctx: &mut Context, args: &ShellArgs) -> Result<ExitCode, CliError> {
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
    let vm = env.vm(&name)?;
    let mut rest: &[String] = &args.args;
    if rest.first().is_some_and(|a| a == "-c") {
        rest = &rest[1..];
    }
    // One argument naming a local file: run it as a script.
    if let [script] = rest
        && std::path::Path::new(script).is_file()
    {
        let status = vm.ssh_script(&ctx.session.cwd.join(script))?;
        print!("{}", status.stdout());
        eprint!("{}", String::from_utf8_lossy(&status.err));
        return Ok(exit_code(status.code));
    }
    // The original's joining: the words make one command line for the guest's shell.
    let line = (!rest.is_empty()).then(|| rest.join(" "));
    Ok(exit_code(vm.interactive_ssh(line.as_deref())?))
}

/// A command's exit code as lago's (255 for what does not fit, as ssh reports its own failures).
fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(255))
}
