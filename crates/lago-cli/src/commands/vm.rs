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
    Err(CliError::internal(format!("`ssh` could not be run: {err}")))
}

/// Shut down VMs gracefully (ACPI), or reboot them
#[derive(Debug, clap::Args)]
pub(crate) struct ShutdownArgs {
    /// Reboot instead of powering off
    #[arg(short, long)]
    reboot: bool,
    /// VMs (default: all)
    vm_names: Vec<String>,
}

pub(crate) fn cmd_shutdown(ctx: &mut Context, args: &ShutdownArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    lago::ops::guest::shutdown(&env, &args.vm_names, args.reboot, std::time::Duration::from_secs(300), &ctx.reporter)?;
    Ok(())
}

/// Copy a file or directory to a VM
#[derive(Debug, clap::Args)]
pub(crate) struct CopyToArgs {
    /// The VM
    host: String,
    /// Local file or directory
    local_path: std::path::PathBuf,
    /// Destination in the VM
    remote_path: String,
}

pub(crate) fn cmd_copy_to(ctx: &mut Context, args: &CopyToArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    lago::ops::guest::copy_to(&env, &args.host, &ctx.cwd.join(&args.local_path), &args.remote_path)?;
    Ok(())
}

/// Copy a file or directory from a VM
#[derive(Debug, clap::Args)]
pub(crate) struct CopyFromArgs {
    /// The VM
    host: String,
    /// Path in the VM
    remote_path: String,
    /// Local destination
    local_path: std::path::PathBuf,
}

pub(crate) fn cmd_copy_from(ctx: &mut Context, args: &CopyFromArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    lago::ops::guest::copy_from(&env, &args.host, &args.remote_path, &ctx.cwd.join(&args.local_path))?;
    Ok(())
}

/// Collect the artifacts of every VM into a directory
#[derive(Debug, clap::Args)]
pub(crate) struct CollectArgs {
    /// Output directory (an existing one is renamed with a timestamp)
    #[arg(long, required = true)]
    output: std::path::PathBuf,
    /// Fail when an artifact does not exist
    #[arg(long)]
    no_skip: bool,
}

pub(crate) fn cmd_collect(ctx: &mut Context, args: &CollectArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    lago::ops::guest::collect(&env, &ctx.cwd.join(&args.output), args.no_skip, &ctx.reporter)?;
    Ok(())
}

/// Run the deploy scripts of every VM (metadata.deploy-scripts)
#[derive(Debug, clap::Args)]
pub(crate) struct DeployArgs {}

pub(crate) fn cmd_deploy(ctx: &mut Context, _args: &DeployArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    lago::ops::guest::deploy(&env, &ctx.reporter)?;
    Ok(())
}

/// Attach to a VM's serial console (leave with Ctrl-])
#[derive(Debug, clap::Args)]
pub(crate) struct ConsoleArgs {
    /// The VM
    host: String,
}

pub(crate) fn cmd_console(ctx: &mut Context, args: &ConsoleArgs) -> Result<(), CliError> {
    use std::io::{Read, Write};
    let env = ctx.env()?;
    let record = env.select(std::slice::from_ref(&args.host))?[0];
    if !env.state(&args.host).is_running() {
        return Err(lago::env::EnvError::NotRunning { vm: args.host.clone() }.into());
    }
    let path = match env.provider_of(record)?.console(&env.prefix.path, record).map_err(lago::env::EnvError::from)? {
        lago::provider::Console::Socket(path) => path,
        // `virsh console` and the like: they own the terminal until the user leaves.
        lago::provider::Console::Command(argv) => {
            let err = std::process::Command::new(&argv[0]).args(&argv[1..]).exec();
            return Err(CliError::internal(format!("`{}` could not be run: {err}", argv[0])));
        }
    };
    let stream = std::os::unix::net::UnixStream::connect(&path)
        .map_err(|e| CliError::internal(format!("Cannot connect to the console socket {}: {e}", path.display())))?;
    let tty = std::io::stdin().is_terminal();
    if tty {
        eprintln!("Connected to the console of {} (Ctrl-] leaves)\r", args.host);
    }
    // Raw terminal while attached; restored on the way out.
    let saved = if tty {
        let stdin = std::io::stdin();
        let saved = nix::sys::termios::tcgetattr(&stdin).map_err(CliError::internal)?;
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &raw).map_err(CliError::internal)?;
        Some(saved)
    } else {
        None
    };
    let mut from_vm = stream.try_clone().map_err(CliError::internal)?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut out = std::io::stdout();
        while let Ok(n) = from_vm.read(&mut buf) {
            if n == 0 || out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                break;
            }
        }
    });
    let mut to_vm = stream;
    let mut buf = [0u8; 1024];
    let mut stdin = std::io::stdin();
    loop {
        let n = stdin.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        if let Some(pos) = buf[..n].iter().position(|b| *b == 0x1d) {
            let _ = to_vm.write_all(&buf[..pos]);
            break;
        }
        if to_vm.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    if let Some(saved) = saved {
        let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, &saved);
        eprintln!();
    }
    Ok(())
}
