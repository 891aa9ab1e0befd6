//! `lago console`.

use std::io::IsTerminal;

use crate::context::Context;
use crate::error::CliError;

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
            return Err(CliError::internal(lago::host::process::exec(
                &lago::host::process::Invocation::new(&argv[0]).args(&argv[1..]),
            )));
        }
    };
    let stream = std::os::unix::net::UnixStream::connect(&path)
        .map_err(|e| CliError::failed(format!("Cannot connect to the console socket {}: {e}", path.display())))?;
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
