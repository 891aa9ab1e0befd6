//! Commands in VMs over SSH with the system OpenSSH client (DESIGN §7): the environment's key, a
//! per-prefix `known_hosts` keyed by VM name, the forwarded port on 127.0.0.1, and one master
//! connection per VM reused by later commands (`run/<vm>.ssh`, closed when the VM stops).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The result of a command in a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandStatus {
    /// Exit code (255 when SSH itself failed).
    pub code: i32,
    /// Standard output.
    pub out: Vec<u8>,
    /// Standard error.
    pub err: Vec<u8>,
}

impl CommandStatus {
    /// Standard output as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }
}

/// How to reach one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The prefix (key, known_hosts, control sockets).
    pub prefix: PathBuf,
    /// VM name (host key alias).
    pub vm: String,
    /// User.
    pub user: String,
    /// Forwarded port on 127.0.0.1 (or the SSH port of `host`).
    pub port: u16,
    /// Host to connect to: 127.0.0.1 for lago's VMs, the machine's address for the `ssh` provider.
    pub host: String,
    /// Private key; the prefix's `id_rsa` when `None`.
    pub identity: Option<PathBuf>,
}

/// Quotes one argument for a POSIX shell.
pub fn quote(arg: &str) -> String {
    let safe = !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if safe { arg.to_owned() } else { format!("'{}'", arg.replace('\'', r"'\''")) }
}

impl Target {
    /// A VM of lago's own, through its forwarded port on 127.0.0.1 with the prefix's key.
    pub fn local(prefix: &Path, vm: &str, user: &str, port: u16) -> Self {
        Self {
            prefix: prefix.to_owned(),
            vm: vm.to_owned(),
            user: user.to_owned(),
            port,
            host: "127.0.0.1".into(),
            identity: None,
        }
    }

    fn control_path(&self) -> Option<PathBuf> {
        let p = crate::prefix::socket_path(&self.prefix, &format!("{}.ssh", self.vm));
        // Without a short link (another user owns /tmp/lago-<uid>), no connection reuse.
        (p.as_os_str().len() <= 90).then_some(p)
    }

    /// OpenSSH options (before the destination). `batch` forbids prompts (programmatic use);
    /// `reuse` shares one master connection per VM.
    pub fn options(&self, connect_timeout: u64, reuse: bool, batch: bool) -> Vec<String> {
        let mut o: Vec<String> = Vec::new();
        let mut opt = |v: String| {
            o.push("-o".into());
            o.push(v);
        };
        if batch {
            opt("BatchMode=yes".into());
        }
        opt("StrictHostKeyChecking=accept-new".into());
        opt("LogLevel=ERROR".into());
        opt("IdentitiesOnly=yes".into());
        opt("ServerAliveInterval=15".into());
        opt(format!("ConnectTimeout={connect_timeout}"));
        opt(format!("UserKnownHostsFile={}", self.prefix.join("known_hosts").display()));
        opt(format!("HostKeyAlias={}", self.vm));
        if let (true, Some(cp)) = (reuse, self.control_path()) {
            opt("ControlMaster=auto".into());
            opt(format!("ControlPath={}", cp.display()));
            opt("ControlPersist=120".into());
        }
        let key = self.identity.clone().unwrap_or_else(|| self.prefix.join("id_rsa"));
        o.extend(["-i".into(), key.display().to_string(), "-p".into(), self.port.to_string()]);
        o
    }

    fn destination(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// Whether a command (`true`) runs over SSH, connecting within 2 s.
    pub fn answers(&self) -> std::io::Result<bool> {
        Ok(self.exec_line("true", None, 2)?.code == 0)
    }

    /// Whether an SSH server greets (sends its `SSH-` banner) on a new TCP connection to the
    /// target within `within`.
    pub fn greets(&self, within: std::time::Duration) -> bool {
        use std::io::Read;
        use std::net::ToSocketAddrs;
        let deadline = std::time::Instant::now() + within;
        let Some(addr) = (self.host.as_str(), self.port).to_socket_addrs().ok().and_then(|mut a| a.next()) else {
            return false;
        };
        let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, within) else { return false };
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < 4 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
                return false;
            }
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        got.starts_with(b"SSH-")
    }

    /// Runs `argv` in the VM (each argument quoted for the guest's shell) and collects its output.
    pub fn exec(&self, argv: &[&str], stdin: Option<&[u8]>) -> std::io::Result<CommandStatus> {
        let remote = argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ");
        self.exec_line(&remote, stdin, 10)
    }

    /// Runs a command line (interpreted by the guest's shell).
    pub fn exec_line(&self, line: &str, stdin: Option<&[u8]>, connect_timeout: u64) -> std::io::Result<CommandStatus> {
        let mut cmd = self.command(line, connect_timeout);
        let out = crate::process::run_child(&mut cmd, stdin)?;
        Ok(CommandStatus { code: out.status.code().unwrap_or(255), out: out.stdout, err: out.stderr })
    }

    /// The `ssh` command that runs `line` in the VM (batch mode, reusing the master connection),
    /// for callers that stream its output.
    pub fn command(&self, line: &str, connect_timeout: u64) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(self.options(connect_timeout, true, true)).arg(self.destination()).arg("--").arg(line);
        tracing::debug!(vm = %self.vm, "ssh: {line}");
        cmd
    }

    /// Copies a local file or directory to `remote` in the VM (recursively).
    pub fn copy_to(&self, local: &Path, remote: &str) -> std::io::Result<CommandStatus> {
        self.scp(&[local.display().to_string(), format!("{}:{remote}", self.destination())])
    }

    /// Copies `remote` (file or directory) from the VM to `local`.
    pub fn copy_from(&self, remote: &str, local: &Path) -> std::io::Result<CommandStatus> {
        self.scp(&[format!("{}:{remote}", self.destination()), local.display().to_string()])
    }

    fn scp(&self, ends: &[String]) -> std::io::Result<CommandStatus> {
        let mut cmd = Command::new("scp");
        // scp spells the port -P; everything else is ssh's.
        let opts: Vec<String> =
            self.options(10, true, true).into_iter().map(|o| if o == "-p" { "-P".into() } else { o }).collect();
        cmd.arg("-r").arg("-q").args(opts).args(ends);
        tracing::debug!(vm = %self.vm, "scp {}", ends.join(" "));
        let out = crate::process::run_child(&mut cmd, None)?;
        Ok(CommandStatus { code: out.status.code().unwrap_or(255), out: out.stdout, err: out.stderr })
    }

    /// The argv of an interactive `ssh` (for `exec`): a TTY when `tty`, `line` run by the shell.
    pub fn interactive_argv(&self, line: Option<&str>, tty: bool) -> Vec<String> {
        let mut a = vec!["ssh".to_owned()];
        a.extend(self.options(10, true, false));
        if tty {
            a.push("-t".into());
        }
        a.push(self.destination());
        if let Some(l) = line {
            a.push("--".into());
            a.push(l.to_owned());
        }
        a
    }

    /// Closes the reused master connection, if any.
    pub fn close(&self) {
        if let Some(cp) = self.control_path().filter(|p| p.exists()) {
            let _ = Command::new("ssh")
                .args(["-o", &format!("ControlPath={}", cp.display()), "-O", "exit", "lago"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = std::fs::remove_file(cp);
        }
    }
}

/// Closes every master connection of a prefix.
pub fn close_all(prefix: &Path) {
    let Ok(entries) = std::fs::read_dir(prefix.join("run")) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "ssh") {
            let vm = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            Target::local(prefix, &vm, "root", 0).close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_argv() {
        assert_eq!(quote("hostname"), "hostname");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn interactive_argv_has_no_batch_mode() {
        let t = Target::local(Path::new("/p"), "vm01", "root", 2222);
        let a = t.interactive_argv(Some("hostname -f"), true);
        assert!(!a.iter().any(|x| x == "BatchMode=yes"), "{a:?}");
        assert_eq!(&a[a.len() - 4..], ["-t", "root@127.0.0.1", "--", "hostname -f"]);
        assert!(a.windows(2).any(|w| w[0] == "-o" && w[1] == "HostKeyAlias=vm01"));
    }
}
