//! Commands in VMs over SSH with the system OpenSSH client (DESIGN §7): the environment's key, a
//! per-prefix `known_hosts` keyed by VM name, the forwarded port on 127.0.0.1, and one master
//! connection per VM reused by later commands (`run/<vm>.ssh`, closed when the VM stops).

use std::path::{Path, PathBuf};

use crate::host::process::Invocation;

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

/// Waits for an SSH server's banner (`SSH-`) on plain TCP connections of its own, before `ssh`
/// is run: a forwarded port (qemu's user network) accepts before the guest listens, and a
/// connection made while the guest's network is not up yet stalls for seconds in
/// retransmissions.
///
/// A new connection is opened every 500 ms (100 ms after one was refused or closed), and a
/// connection that has not been greeted yet stays open: in a guest slowed down by emulation,
/// sshd takes seconds to answer each new connection (it forks and executes itself again), and
/// closing connections early would make it start over and over. At most [`MAX_PENDING`]
/// connections are open (below sshd's `MaxStartups`, where it starts dropping them); when
/// that many wait, the oldest is closed once it is older than the linger time, which then
/// grows by half, up to 20 s, once the guest has shown it is on the network.
///
/// Before that (no connection was closed by the far end yet), the connections wait in qemu's
/// user network for a guest that has no address yet: none reached a server, so closing the
/// oldest takes nothing from anyone, and the linger time stays at its base. A fresh connection
/// then goes out every 500 ms, whatever the guest's boot time, instead of at the growing
/// intervals a slow server needs (which could leave a guest ready for seconds before the next
/// connection). After [`QUIET_CLOSES`] such closes without a sign of the guest, the probe
/// treats it as a slow server anyway.
#[derive(Debug)]
pub struct BannerProbe {
    pending: Vec<Pending>,
    next_open: std::time::Instant,
    linger: std::time::Duration,
    /// Whether the guest answered on the network (a connection closed by the far end).
    answered: bool,
    /// Connections closed for their age before the guest answered.
    quiet_closes: usize,
    /// Since when, and in what words, the server has refused every login (see [`Self::refused`]).
    refused: Option<(std::time::Instant, String)>,
}

#[derive(Debug)]
struct Pending {
    stream: std::net::TcpStream,
    opened: std::time::Instant,
    got: Vec<u8>,
}

/// The most connections a [`BannerProbe`] keeps waiting at once.
pub const MAX_PENDING: usize = 6;
const CADENCE: std::time::Duration = std::time::Duration::from_millis(500);
const AFTER_REFUSAL: std::time::Duration = std::time::Duration::from_millis(100);
const BASE_LINGER: std::time::Duration = std::time::Duration::from_secs(3);
const MAX_LINGER: std::time::Duration = std::time::Duration::from_secs(20);
/// How many connections are closed for their age, at the base linger time, before the guest
/// answered at all, until the probe lets the linger time grow anyway.
pub const QUIET_CLOSES: usize = 4 * MAX_PENDING;

enum Heard {
    Greeted,
    Closed,
    Nothing,
}

impl Pending {
    fn listen(&mut self) -> Heard {
        use std::io::Read;
        let mut buf = [0u8; 64];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Heard::Closed,
                Ok(n) => {
                    self.got.extend_from_slice(&buf[..n]);
                    if self.got.len() >= 4 {
                        return if self.got.starts_with(b"SSH-") { Heard::Greeted } else { Heard::Closed };
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Heard::Nothing,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Heard::Closed,
            }
        }
    }
}

impl Default for BannerProbe {
    fn default() -> Self {
        Self {
            pending: Vec::new(),
            next_open: std::time::Instant::now(),
            linger: BASE_LINGER,
            answered: false,
            quiet_closes: 0,
            refused: None,
        }
    }
}

impl BannerProbe {
    /// A probe with no connection yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// One readiness check of `target` once its server greeted: whether `true` ran. A server
    /// that answers and refuses the login is remembered (see [`Self::refused`]).
    pub fn login(&mut self, target: &Target, connect_timeout: u64) -> std::io::Result<bool> {
        let st = target.exec_line("true", None, connect_timeout)?;
        if st.code == 0 {
            self.refused = None;
            return Ok(true);
        }
        match login_refused(&st) {
            Some(words) => {
                let since = self.refused.take().map_or_else(std::time::Instant::now, |(t, _)| t);
                self.refused = Some((since, words));
            }
            None => self.refused = None,
        }
        Ok(false)
    }

    /// For how long the server has answered and refused every login since, and its words:
    /// the image does not take the environment's key (nor the password offered).
    pub fn refused(&self) -> Option<(std::time::Duration, &str)> {
        self.refused.as_ref().map(|(since, words)| (since.elapsed(), words.as_str()))
    }

    /// Watches for up to `within`: returns how long the connection that was greeted waited for
    /// it, or `None`.
    pub fn greeted(&mut self, target: &Target, within: std::time::Duration) -> Option<std::time::Duration> {
        use std::net::ToSocketAddrs;
        use std::time::Instant;
        let addr = (target.host.as_str(), target.port).to_socket_addrs().ok().and_then(|mut a| a.next())?;
        let deadline = Instant::now() + within;
        loop {
            let now = Instant::now();
            let mut i = 0;
            while i < self.pending.len() {
                match self.pending[i].listen() {
                    Heard::Greeted => return Some(self.pending.swap_remove(i).opened.elapsed()),
                    Heard::Closed => {
                        self.pending.swap_remove(i);
                        self.next_open = self.next_open.min(now + AFTER_REFUSAL);
                        self.linger = BASE_LINGER;
                        self.answered = true;
                    }
                    Heard::Nothing => i += 1,
                }
            }
            if now >= self.next_open {
                self.pending.sort_by_key(|p| p.opened);
                if self.pending.len() >= MAX_PENDING && self.pending[0].opened.elapsed() >= self.linger {
                    self.pending.remove(0);
                    if self.answered || self.quiet_closes >= QUIET_CLOSES {
                        self.linger = (self.linger * 3 / 2).min(MAX_LINGER);
                    } else {
                        self.quiet_closes += 1;
                    }
                }
                if self.pending.len() < MAX_PENDING {
                    let opened = Instant::now();
                    let connect = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(400));
                    if let Ok(stream) = connect.and_then(|s| s.set_nonblocking(true).map(|()| s)) {
                        self.pending.push(Pending { stream, opened, got: Vec::new() });
                    }
                    self.next_open = opened + CADENCE;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            std::thread::sleep((deadline - now).min(std::time::Duration::from_millis(20)));
        }
    }

    /// How long `ssh` may wait for the server's greeting once a probe connection was greeted
    /// after `waited`: twice that, at least 2 s and at most 30 s.
    pub fn connect_timeout(waited: std::time::Duration) -> u64 {
        (waited.as_secs_f64() * 2.0).ceil().clamp(2.0, 30.0) as u64
    }
}

/// How to reach one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// VM name (host key alias).
    pub vm: String,
    /// User.
    pub user: String,
    /// Forwarded port on 127.0.0.1 (or the SSH port of `host`).
    pub port: u16,
    /// Host to connect to: 127.0.0.1 for lago's VMs, the machine's address for the `ssh` provider.
    pub host: String,
    /// Private key.
    pub key: PathBuf,
    /// `known_hosts` file (host keys under `HostKeyAlias` = the VM's name).
    pub known_hosts: PathBuf,
    /// Control socket of the master connection later commands reuse; `None`: no reuse.
    pub control: Option<PathBuf>,
    /// A password to offer when the key is refused (through `SSH_ASKPASS`: `ssh` never reads
    /// it from a terminal here); `None`: keys only, and no prompt at all.
    pub password: Option<String>,
}

/// Quotes one argument for a POSIX shell.
pub fn quote(arg: &str) -> String {
    let safe = !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if safe { arg.to_owned() } else { format!("'{}'", arg.replace('\'', r"'\''")) }
}

impl Target {
    /// OpenSSH options (before the destination). `batch` forbids prompts (programmatic use);
    /// `reuse` shares one master connection per VM.
    pub fn options(&self, connect_timeout: u64, reuse: bool, batch: bool) -> Vec<String> {
        let mut o: Vec<String> = Vec::new();
        let mut opt = |v: String| {
            o.push("-o".into());
            o.push(v);
        };
        if self.password.is_some() {
            // The password comes from `SSH_ASKPASS` (see `with_password`), never a terminal.
            opt("PreferredAuthentications=publickey,password,keyboard-interactive".into());
            opt("NumberOfPasswordPrompts=1".into());
        } else if batch {
            opt("BatchMode=yes".into());
        }
        // Machines that are not lago's have no host key lago knows (`known_hosts` /dev/null),
        // as paramiko's AutoAddPolicy in the original.
        if self.known_hosts == Path::new("/dev/null") {
            opt("StrictHostKeyChecking=no".into());
        } else {
            opt("StrictHostKeyChecking=accept-new".into());
        }
        opt("LogLevel=ERROR".into());
        if !self.key.as_os_str().is_empty() {
            opt("IdentitiesOnly=yes".into());
        }
        // A connection that stops answering ends within seconds: a VM reached on one of the
        // environment's networks (libvirt, `ssh`) may lose it to a test's fault or a firewall,
        // and a command must then fail, not hang. Loopback forwards end with their qemu.
        if self.host == "127.0.0.1" {
            opt("ServerAliveInterval=15".into());
        } else {
            opt("ServerAliveInterval=2".into());
            opt("ServerAliveCountMax=4".into());
        }
        opt(format!("ConnectTimeout={connect_timeout}"));
        opt(format!("UserKnownHostsFile={}", self.known_hosts.display()));
        opt(format!("HostKeyAlias={}", self.vm));
        if let (true, Some(cp)) = (reuse, &self.control) {
            opt("ControlMaster=auto".into());
            opt(format!("ControlPath={}", cp.display()));
            opt("ControlPersist=120".into());
        }
        if !self.key.as_os_str().is_empty() {
            o.extend(["-i".into(), self.key.display().to_string()]);
        }
        o.extend(["-p".into(), self.port.to_string()]);
        o
    }

    /// `inv` with what `ssh` needs to answer a password prompt by itself: a private
    /// `SSH_ASKPASS` program that prints the password from its environment.
    fn with_password(&self, inv: Invocation) -> Invocation {
        let Some(password) = &self.password else { return inv };
        match askpass_program() {
            Ok(program) => inv
                .env("SSH_ASKPASS", program)
                .env("SSH_ASKPASS_REQUIRE", "force")
                .env("LAGO_ASKPASS_PASSWORD", password.as_str()),
            Err(e) => {
                tracing::warn!("cannot write the SSH_ASKPASS program: {e}; password authentication is off");
                inv
            }
        }
    }

    fn destination(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// Whether a command (`true`) runs over SSH, the server greeting within `connect_timeout`
    /// seconds.
    pub fn answers(&self, connect_timeout: u64) -> std::io::Result<bool> {
        Ok(self.exec_line("true", None, connect_timeout)?.code == 0)
    }

    /// Runs `argv` in the VM (each argument quoted for the guest's shell) and collects its output.
    pub fn exec(&self, argv: &[&str], stdin: Option<&[u8]>) -> std::io::Result<CommandStatus> {
        let remote = argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ");
        self.exec_line(&remote, stdin, 10)
    }

    /// Runs a command line (interpreted by the guest's shell): through this process's session to the VM when the SDK keeps one (see
    /// [`crate::host::ssh_session`]).
    pub fn exec_line(&self, line: &str, stdin: Option<&[u8]>, connect_timeout: u64) -> std::io::Result<CommandStatus> {
        if stdin.is_none()
            && let Some(done) = crate::host::ssh_session::run(self, line)
        {
            return done;
        }
        let mut inv = self.command(line, connect_timeout);
        if let Some(data) = stdin {
            inv = inv.input(data.to_vec());
        }
        Ok(status_of(crate::host::process::output(&inv)?))
    }

    /// Runs a command line as [`Self::exec_line`], trying a connection that fails again a
    /// second later, `tries` times in all (the original's `ssh_tries`). Returns the status and
    /// whether it connected at all (when not, the status is ssh's own failure).
    pub fn exec_line_tries(
        &self,
        line: &str,
        stdin: Option<&[u8]>,
        tries: u32,
    ) -> std::io::Result<(CommandStatus, bool)> {
        let tries = tries.max(1);
        for attempt in 1.. {
            let st = self.exec_line(line, stdin, 10)?;
            if !connection_failed(&st) {
                return Ok((st, true));
            }
            if attempt >= tries || crate::host::interrupt::received().is_some() {
                return Ok((st, false));
            }
            tracing::debug!(vm = %self.vm, "ssh did not connect ({attempt} of {tries}), trying again");
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        unreachable!("the loop returns")
    }

    /// The `ssh` command that runs `line` in the VM (batch mode, reusing the master connection),
    /// for callers that stream its output.
    pub fn command(&self, line: &str, connect_timeout: u64) -> Invocation {
        tracing::debug!(vm = %self.vm, "ssh: {line}");
        self.with_password(
            Invocation::new("ssh")
                .args(self.options(connect_timeout, true, true))
                .arg(self.destination())
                .arg("--")
                .arg(line),
        )
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
        // scp spells the port -P; everything else is ssh's.
        let opts: Vec<String> =
            self.options(10, true, true).into_iter().map(|o| if o == "-p" { "-P".into() } else { o }).collect();
        tracing::debug!(vm = %self.vm, "scp {}", ends.join(" "));
        let inv = self.with_password(Invocation::new("scp").arg("-r").arg("-q").args(opts).args(ends));
        Ok(status_of(crate::host::process::output(&inv)?))
    }

    /// An interactive `ssh` (a shell, or `line`) on this process's terminal, a TTY when `tty`.
    pub fn interactive(&self, line: Option<&str>, tty: bool) -> Invocation {
        let argv = self.interactive_argv(line, tty);
        self.with_password(Invocation::new(&argv[0]).args(&argv[1..]))
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

    /// Whether the master connection runs (its control socket accepts): the VM answered SSH
    /// when it was opened and it has not failed since. No process is started.
    pub fn master_alive(&self) -> bool {
        self.control.as_ref().is_some_and(|cp| std::os::unix::net::UnixStream::connect(cp).is_ok())
    }

    /// Closes the reused master connection, if any.
    pub fn close(&self) {
        crate::host::ssh_session::forget(self);
        if let Some(cp) = self.control.as_ref().filter(|p| p.exists()) {
            close_master(cp);
        }
    }
}

/// The `SSH_ASKPASS` program of this user: `/tmp/lago-askpass-<uid>/askpass`, in a directory
/// only the user can enter, printing `$LAGO_ASKPASS_PASSWORD` (the password never is in a file).
fn askpass_program() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
    let uid = nix::unistd::geteuid();
    let dir = std::env::temp_dir().join(format!("lago-askpass-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let meta = std::fs::symlink_metadata(&dir)?;
    if !meta.is_dir() || meta.uid() != uid.as_raw() || meta.mode() & 0o077 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{} is not a private directory of this user", dir.display()),
        ));
    }
    let program = dir.join("askpass");
    const SCRIPT: &str = "#!/bin/sh\nprintf '%s\\n' \"$LAGO_ASKPASS_PASSWORD\"\n";
    if std::fs::read_to_string(&program).ok().as_deref() != Some(SCRIPT) {
        let tmp = dir.join(format!("askpass.{}", std::process::id()));
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o700).open(&tmp)?;
            f.write_all(SCRIPT.as_bytes())?;
        }
        std::fs::rename(&tmp, &program)?;
    }
    Ok(program)
}

/// OpenSSH's words when the server answered and refused the login (`Permission denied
/// (publickey,password).`), or `None`.
pub fn login_refused(status: &CommandStatus) -> Option<String> {
    let err = String::from_utf8_lossy(&status.err);
    (status.code == 255)
        .then(|| {
            err.lines().find(|l| l.contains("Permission denied") || l.contains("Too many authentication failures"))
        })
        .flatten()
        .map(|l| l.trim().to_owned())
}

/// Whether a failed `ssh` run (exit code 255) failed to connect, rather than running a command
/// that exited with 255: OpenSSH's own words for a connection that did not come about.
pub fn connection_failed(status: &CommandStatus) -> bool {
    const WORDS: [&str; 8] = [
        "ssh: connect to host",
        "Connection refused",
        "Connection timed out",
        "Connection closed by",
        "Connection reset by",
        "kex_exchange_identification",
        "No route to host",
        "Could not resolve hostname",
    ];
    status.code == 255 && {
        let err = String::from_utf8_lossy(&status.err);
        WORDS.iter().any(|w| err.contains(w))
    }
}

/// Whether a line of `ssh`'s standard error is its multiplexing client's words about a master
/// connection that died under it (it then connects on its own).
pub fn is_mux_noise(line: &[u8]) -> bool {
    [&b"mux_client_"[..], b"muxclient: ", b"Control socket connect("].iter().any(|p| line.starts_with(p))
}

/// The outcome of an `ssh` or `scp` run as a [`CommandStatus`] (255 when ssh itself died),
/// without what `ssh` said of lago's master connection (see [`without_mux_noise`]).
fn status_of(out: std::process::Output) -> CommandStatus {
    CommandStatus { code: out.status.code().unwrap_or(255), out: out.stdout, err: without_mux_noise(out.stderr) }
}

/// `stderr` of `ssh` without the lines its multiplexing client writes first when the master
/// connection it found died under it (`mux_client_request_session: read from master failed:
/// Broken pipe`): `ssh` then connects on its own, and those words are lago's plumbing, not the
/// command's. Only leading lines are dropped: the command's own output is never touched.
fn without_mux_noise(stderr: Vec<u8>) -> Vec<u8> {
    let mut start = 0;
    while start < stderr.len() {
        let end = stderr[start..].iter().position(|&b| b == b'\n').map_or(stderr.len(), |i| start + i + 1);
        if !is_mux_noise(&stderr[start..end]) {
            break;
        }
        start = end;
    }
    if start == 0 { stderr } else { stderr[start..].to_vec() }
}

/// Ends the master connection on control socket `control` and removes the socket.
fn close_master(control: &Path) {
    let inv =
        Invocation::new("ssh").arg("-o").arg(format!("ControlPath={}", control.display())).args(["-O", "exit", "lago"]);
    let _ = crate::host::process::output(&inv);
    let _ = std::fs::remove_file(control);
}

/// Closes every master connection whose control socket (`*.ssh`) is in `dir`.
pub fn close_masters(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "ssh") {
            close_master(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn target(vm: &str, port: u16) -> Target {
        Target {
            vm: vm.into(),
            user: "root".into(),
            port,
            host: "127.0.0.1".into(),
            key: "/p/id_rsa".into(),
            known_hosts: "/p/known_hosts".into(),
            control: Some("/p/run/vm01.ssh".into()),
            password: None,
        }
    }

    #[test]
    fn what_ssh_says_of_a_dead_master_is_not_the_commands() {
        let err = b"mux_client_request_session: read from master failed: Broken pipe\nmy error\n".to_vec();
        assert_eq!(without_mux_noise(err), b"my error\n");
        let err = b"Control socket connect(/run/x.ssh): Connection refused\n".to_vec();
        assert_eq!(without_mux_noise(err), b"");
        // The command's own lines are kept, whatever they say.
        let err = b"first\nmux_client_request_session: kept\n".to_vec();
        assert_eq!(without_mux_noise(err.clone()), err);
    }

    #[test]
    fn a_vm_reached_off_loopback_loses_a_dead_connection_within_seconds() {
        let mut t = target("vm01", 22);
        assert!(t.options(10, true, true).contains(&"ServerAliveInterval=15".to_owned()));
        t.host = "192.168.200.2".into();
        let o = t.options(10, true, true);
        assert!(
            o.contains(&"ServerAliveInterval=2".to_owned()) && o.contains(&"ServerAliveCountMax=4".to_owned()),
            "{o:?}"
        );
    }

    #[test]
    fn quoting_keeps_argv() {
        assert_eq!(quote("hostname"), "hostname");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    /// A server like sshd in a slow guest: it accepts at once and greets `delay` later on every
    /// connection that is still open then. Returns its address and the most connections it had
    /// open at once.
    fn slow_sshd(delay: Duration) -> (u16, Arc<AtomicUsize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (open, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let seen = most.clone();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let (open, most) = (open.clone(), most.clone());
                most.fetch_max(open.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    let _ = std::io::Write::write_all(&mut conn, b"SSH-2.0-slow\r\n");
                    std::thread::sleep(Duration::from_millis(50));
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        (port, seen)
    }

    #[test]
    fn a_server_that_greets_late_is_waited_for_on_few_connections() {
        // Each check lasts 400 ms, and the server needs 2.5 s per connection: connections
        // closed after one check would never be greeted.
        let (port, most) = slow_sshd(Duration::from_millis(2500));
        let target = target("vm01", port);
        let mut probe = BannerProbe::new();
        let waited = (0..40).find_map(|_| probe.greeted(&target, Duration::from_millis(400)));
        let waited = waited.expect("greeted");
        assert!(waited >= Duration::from_millis(2500), "{waited:?}");
        assert!(most.load(Ordering::SeqCst) <= MAX_PENDING, "{} connections at once", most.load(Ordering::SeqCst));
        assert_eq!(BannerProbe::connect_timeout(waited), 6);
    }

    /// A guest with no address yet: qemu's user network accepts each connection and nothing
    /// ever answers it. Closing the oldest of them costs nothing, so the probe keeps sending
    /// fresh ones at its cadence (the linger time does not grow), within its limit of open ones.
    #[test]
    fn connections_to_a_guest_that_never_answered_are_renewed_at_the_base_linger() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = held.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                keep.lock().unwrap().push(conn);
            }
        });
        let mut probe = BannerProbe::new();
        assert_eq!(probe.greeted(&target("vm01", port), Duration::from_secs(5)), None);
        assert!(probe.pending.len() <= MAX_PENDING);
        assert!(probe.quiet_closes >= 1, "no connection was renewed");
        assert_eq!(probe.linger, BASE_LINGER);
        // Once the guest answered (a connection closed by the far end), a server that is slow to
        // greet gets more and more time per connection, as before.
        probe.answered = true;
        probe.pending.sort_by_key(|p| p.opened);
        let _ = probe.greeted(&target("vm01", port), Duration::from_secs(2));
        assert!(probe.linger > BASE_LINGER, "{:?}", probe.linger);
    }

    #[test]
    fn a_port_nobody_listens_on_is_not_greeted() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let target = target("vm01", port);
        assert_eq!(BannerProbe::new().greeted(&target, Duration::from_millis(300)), None);
        assert_eq!(BannerProbe::connect_timeout(Duration::from_millis(100)), 2);
    }

    #[test]
    fn interactive_argv_has_no_batch_mode() {
        let t = target("vm01", 2222);
        let a = t.interactive_argv(Some("hostname -f"), true);
        assert!(!a.iter().any(|x| x == "BatchMode=yes"), "{a:?}");
        assert_eq!(&a[a.len() - 4..], ["-t", "root@127.0.0.1", "--", "hostname -f"]);
        assert!(a.windows(2).any(|w| w[0] == "-o" && w[1] == "HostKeyAlias=vm01"));
    }
}
