//! `lago console VM` and the SDK's `vm.interactive_console()`: this process's terminal joined
//! to a VM's serial console until the user types Ctrl-] (or standard input ends).

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use crate::env::{Env, EnvError};
use crate::provider::Console;

/// Problems attaching to a console.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The VM is not there or not running.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The console socket did not take the connection.
    #[error("Cannot connect to the console socket {path} of VM {vm}")]
    Connect {
        /// The VM.
        vm: String,
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The terminal could not be put in raw mode (or back).
    #[error("Cannot set up the terminal for the console of VM {vm}")]
    Terminal {
        /// The VM.
        vm: String,
        /// Why.
        #[source]
        source: nix::Error,
    },
    /// The provider's console program (`virsh console`) could not be run.
    #[error(transparent)]
    Program(#[from] crate::host::process::ProcessError),
}

/// The byte that leaves the console (Ctrl-]).
pub const ESCAPE: u8 = 0x1d;

/// Joins this process's standard input and output to VM `vm`'s serial console until Ctrl-] or
/// the end of standard input; a terminal is in raw mode meanwhile. A provider whose console is
/// a program of its own (`virsh console`) runs it on this terminal.
pub fn attach(env: &Env, vm: &str) -> Result<(), ConsoleError> {
    let record = env.select(&[vm.to_owned()])?[0];
    if !env.state(vm).is_running() {
        return Err(EnvError::NotRunning { vm: vm.to_owned() }.into());
    }
    let path = match env.provider_of(record)?.console(&env.prefix.path, record).map_err(EnvError::from)? {
        Console::Socket(path) => path,
        Console::Command(argv) => {
            crate::host::process::run_interactive(&crate::host::process::Invocation::new(&argv[0]).args(&argv[1..]))?;
            return Ok(());
        }
    };
    let stream = std::os::unix::net::UnixStream::connect(&path).map_err(|source| ConsoleError::Connect {
        vm: vm.to_owned(),
        path: path.clone(),
        source,
    })?;
    let terminal = |source| ConsoleError::Terminal { vm: vm.to_owned(), source };
    let tty = std::io::stdin().is_terminal();
    if tty {
        // The terminal is the console's: what lago says goes straight to it.
        let _ = writeln!(std::io::stderr(), "Connected to the console of {vm} (Ctrl-] leaves)\r");
    }
    // Raw terminal while attached; restored on the way out.
    let saved = if tty {
        let stdin = std::io::stdin();
        let saved = nix::sys::termios::tcgetattr(&stdin).map_err(terminal)?;
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &raw).map_err(terminal)?;
        Some(saved)
    } else {
        None
    };
    let copy_out = stream.try_clone().map(|mut from_vm| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut out = std::io::stdout();
            while let Ok(n) = from_vm.read(&mut buf) {
                if n == 0 || out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                    break;
                }
            }
        })
    });
    if copy_out.is_ok() {
        let mut to_vm = stream;
        let mut buf = [0u8; 1024];
        let mut stdin = std::io::stdin();
        loop {
            let n = stdin.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            if let Some(pos) = buf[..n].iter().position(|b| *b == ESCAPE) {
                let _ = to_vm.write_all(&buf[..pos]);
                break;
            }
            if to_vm.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    }
    if let Some(saved) = saved {
        let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, &saved);
        let _ = writeln!(std::io::stderr());
    }
    copy_out.map(|_| ()).map_err(|source| ConsoleError::Connect { vm: vm.to_owned(), path, source })
}
