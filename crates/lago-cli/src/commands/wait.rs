//! `lago wait`: until a VM is ready for a test's next step (lago's own verb).

use std::time::Duration;

use crate::context::Context;
use crate::error::CliError;

/// Wait until a VM is ready: a command succeeds in it, a port listens, a service is active, a
/// file exists, or its console prints a line (lago's own verb)
///
/// Checks again as soon as a check fails (with a short pause, at most 1 s, after a check that
/// came back at once); the console is followed as it is written. Exits with 0 once ready; when
/// the timeout runs out, with 1 and what the last check saw (the command's exit code and output,
/// the ports that listened, the service's state, the console's last lines).
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "lago wait [--timeout S] VM (--port N | --unit NAME | --file PATH | --console REGEX | -- COMMAND...)"
)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(false)
    .args(["port", "unit", "file", "console", "command"])))]
pub(crate) struct WaitArgs {
    /// The VM
    vm: String,
    /// Until a TCP socket listens on port N in the VM, on any of its addresses (as its kernel
    /// says, /proc/net/tcp and tcp6)
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// Until service NAME is active (systemd, or `/sbin/service NAME status`: the VM's
    /// service_provider)
    #[arg(long, value_name = "NAME")]
    unit: Option<String>,
    /// Until PATH exists in the VM
    #[arg(long, value_name = "PATH")]
    file: Option<String>,
    /// Until a line the console printed since the VM started matches REGEX (prints that line)
    #[arg(long, value_name = "REGEX")]
    console: Option<String>,
    /// How long to wait, in seconds
    #[arg(long, value_name = "S", default_value = "120", value_parser = seconds)]
    timeout: Duration,
    /// Until COMMAND (after `--`, read by the VM's `sh`) exits with 0 (prints its output)
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

fn seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("expected a number of seconds, 0 or more (like 30 or 0.5), got {text:?}"))
}

pub(crate) fn cmd_wait(ctx: &mut Context, args: &WaitArgs) -> Result<(), CliError> {
    // Checked before the environment is loaded: a typo is told at once.
    if let Some(regex) = &args.console {
        lago::ops::wait::console_regex(regex)?;
    }
    let env = ctx.env()?;
    let vm = env.vm(&args.vm)?;
    let timeout = args.timeout;
    if let Some(port) = args.port {
        vm.wait_for_port(port, timeout)?;
    } else if let Some(unit) = &args.unit {
        vm.wait_for_unit(unit, timeout)?;
    } else if let Some(path) = &args.file {
        vm.wait_for_file(path, timeout)?;
    } else if let Some(regex) = &args.console {
        println!("{}", vm.wait_for_console(regex, timeout)?);
    } else {
        let st = vm.wait_for(&args.command.join(" "), timeout)?;
        print!("{}", st.stdout());
        eprint!("{}", String::from_utf8_lossy(&st.err));
    }
    Ok(())
}
