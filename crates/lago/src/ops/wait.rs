//! Waiting for a VM to be ready for the next step of a test, instead of sleeping: until a
//! command succeeds in it ([`Vm::wait_for`]), a TCP port listens in it ([`Vm::wait_for_port`]), a
//! service is active ([`Vm::wait_for_unit`]), a path exists ([`Vm::wait_for_file`]), or its
//! serial console prints a line that matches a regular expression ([`Vm::wait_for_console`]).
//!
//! Each takes a timeout and, when it runs out, fails with what it saw last (the command's exit
//! code and output, the ports that listen, the service's state, the console's last lines).
//! The checks in the guest go through lago's control path (SSH over the VM's management
//! address or its forwarded port on the host's loopback), never through the test's networks.
//! They do not sleep a fixed time: a check that failed is tried again at once, and only a check
//! that came back at once (under [`INSTANT`]) is followed by a short pause, which doubles from
//! [`FIRST_PAUSE`] up to [`MAX_PAUSE`]. A command that does not end is stopped (the guest's
//! `timeout`, where it has one) when the wait's time is up. The console wait follows the log
//! file as qemu writes it (inotify), reading only what was added.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::env::{EnvError, Vm};
use crate::host::ssh::{CommandStatus, connection_failed, quote};
use crate::ops::service::{ServiceError, ServiceProvider, ServiceState};

/// How long a wait lasts when the caller does not say (the CLI's `--timeout`, the SDKs').
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// A check that came back faster than this is followed by a pause before the next one.
pub const INSTANT: Duration = Duration::from_millis(100);
/// The first pause after a check that came back at once.
pub const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// The longest pause between two checks.
pub const MAX_PAUSE: Duration = Duration::from_secs(1);
/// How many of the last lines of the console (and of a command's output) an error shows.
pub const LAST_LINES: usize = 10;

/// A wait that failed.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The VM is not there, not running, or SSH could not be run.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The VM's service manager could not be found.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The command never succeeded.
    #[error("VM {vm}: `{command}` did not succeed within {within}; its last try exited with {code}{}", shown(output))]
    Command {
        /// The VM.
        vm: String,
        /// The command line.
        command: String,
        /// The timeout.
        within: String,
        /// The last try's exit code (255: SSH did not connect).
        code: i32,
        /// The last try's output (its last lines, standard output then standard error).
        output: String,
    },
    /// Nothing listened on the port.
    #[error("VM {vm}: nothing listened on TCP port {port} within {within}; last seen: {last}")]
    Port {
        /// The VM.
        vm: String,
        /// The port.
        port: u16,
        /// The timeout.
        within: String,
        /// What the last check saw (the ports that listened, or why the check failed).
        last: String,
    },
    /// The service was never active.
    #[error("VM {vm}: service {unit} was not active within {within}; last seen: {last}")]
    Unit {
        /// The VM.
        vm: String,
        /// The service.
        unit: String,
        /// The timeout.
        within: String,
        /// Its last state, with the service manager's words.
        last: String,
        /// The command that asked the service manager.
        status: String,
    },
    /// The path never appeared.
    #[error("VM {vm}: {path} did not appear within {within}; last seen: {last}")]
    File {
        /// The VM.
        vm: String,
        /// The path in the VM.
        path: String,
        /// The timeout.
        within: String,
        /// What the last check said.
        last: String,
    },
    /// No line of the console matched.
    #[error("VM {vm}: nothing on its console matched /{regex}/ within {within}; {}", console_tail(lines))]
    Console {
        /// The VM.
        vm: String,
        /// The regular expression.
        regex: String,
        /// The timeout.
        within: String,
        /// The console's last lines since the VM started.
        lines: String,
    },
    /// The regular expression does not parse.
    #[error("Bad regular expression {regex:?} for the console")]
    BadRegex {
        /// The expression.
        regex: String,
        /// Why.
        #[source]
        source: regex::Error,
    },
    /// The VM's console is not a log lago can read (a machine of the `ssh` provider).
    #[error("VM {vm} has no console log to follow ({path} is not there)")]
    NoConsole {
        /// The VM.
        vm: String,
        /// Where the log would be.
        path: PathBuf,
    },
    /// The console log could not be read or watched.
    #[error("Cannot follow the console log {path} of VM {vm}")]
    Follow {
        /// The VM.
        vm: String,
        /// The log.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn shown(output: &str) -> String {
    if output.is_empty() { " and printed nothing".into() } else { format!(":\n{output}") }
}

fn console_tail(lines: &str) -> String {
    if lines.is_empty() {
        "it printed nothing since the VM started".into()
    } else {
        format!("its last lines:\n{lines}")
    }
}

/// A duration as people write it: `30 s`, `0.5 s`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs.fract() == 0.0 { format!("{secs:.0} s") } else { format!("{secs} s") }
}

/// What one check of a wait saw: done (with the value the wait returns), or not yet (with what
/// an error shows if the time runs out now).
#[derive(Debug)]
pub enum Check<T> {
    /// Ready.
    Done(T),
    /// Not ready; what was seen.
    NotYet(Seen),
}

/// What a check saw when it was not ready.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// An exit code, when the check ran a command.
    pub code: i32,
    /// The words.
    pub text: String,
}

/// Time as a wait sees it: the system's, or a test's.
pub trait Clock {
    /// Now.
    fn now(&self) -> Instant;
    /// Waits `d`.
    fn sleep(&self, d: Duration);
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// Runs `check` until it is done or `timeout` has passed since the first check (which always
/// runs): a check that failed is tried again at once, or after a pause (doubling from
/// [`FIRST_PAUSE`] to [`MAX_PAUSE`], never past the deadline) when it came back in under
/// [`INSTANT`]. `check` is told how much time is left. Returns what the last check saw when the
/// time ran out. An interrupt (Ctrl-C) ends the wait.
pub fn poll<T>(
    timeout: Duration,
    clock: &dyn Clock,
    mut check: impl FnMut(Duration) -> Result<Check<T>, WaitError>,
) -> Result<Result<T, Seen>, WaitError> {
    let start = clock.now();
    let deadline = start + timeout;
    let mut pause = FIRST_PAUSE;
    loop {
        let began = clock.now();
        let left = deadline.saturating_duration_since(began);
        let seen = match check(left)? {
            Check::Done(value) => return Ok(Ok(value)),
            Check::NotYet(seen) => seen,
        };
        crate::host::interrupt::check().map_err(EnvError::from)?;
        let now = clock.now();
        if now >= deadline {
            return Ok(Err(seen));
        }
        if now.duration_since(began) < INSTANT {
            clock.sleep(pause.min(deadline - now));
            pause = (pause * 2).min(MAX_PAUSE);
        } else {
            pause = FIRST_PAUSE;
        }
        crate::host::interrupt::check().map_err(EnvError::from)?;
        if clock.now() >= deadline {
            return Ok(Err(seen));
        }
    }
}

/// A machine commands run in: a VM, or a test's fake.
pub trait Guest {
    /// Its name.
    fn name(&self) -> &str;
    /// Runs command line `line` once (the guest's shell reads it), connecting within
    /// `connect_timeout` seconds.
    fn run(&self, line: &str, connect_timeout: u64) -> Result<CommandStatus, EnvError>;
}

impl Guest for Vm<'_> {
    fn name(&self) -> &str {
        &self.record.name
    }
    fn run(&self, line: &str, connect_timeout: u64) -> Result<CommandStatus, EnvError> {
        let target = self.env.ssh_target(&self.record.name)?;
        target
            .exec_line(line, None, connect_timeout)
            .map_err(|source| EnvError::Ssh { vm: self.record.name.clone(), source })
    }
}

/// Whole seconds, at least 1, for a guest's `timeout` and SSH's `ConnectTimeout`.
fn secs_up(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

fn connect_within(left: Duration) -> u64 {
    secs_up(left).min(10)
}

/// `line` run by `sh`, stopped after `left` by the guest's `timeout` where it has one.
fn bounded(line: &str, left: Duration) -> String {
    let sh = format!("sh -c {}", quote(line));
    format!("if command -v timeout >/dev/null 2>&1; then exec timeout {} {sh}; else exec {sh}; fi", secs_up(left))
}

/// The last [`LAST_LINES`] lines of a command's output, standard output then standard error.
fn output_of(st: &CommandStatus) -> String {
    let mut all = st.out.clone();
    if !all.is_empty() && !all.ends_with(b"\n") {
        all.push(b'\n');
    }
    all.extend_from_slice(&st.err);
    crate::host::process::tail(&all, LAST_LINES)
}

/// SSH's own words when it did not connect.
fn ssh_failure(st: &CommandStatus) -> Option<Seen> {
    connection_failed(st).then(|| Seen {
        code: st.code,
        text: format!("SSH did not connect: {}", String::from_utf8_lossy(&st.err).trim()),
    })
}

/// Waits until command line `line` exits with 0 in `guest` (the last run's status).
pub fn command_in(
    guest: &dyn Guest,
    line: &str,
    timeout: Duration,
    clock: &dyn Clock,
) -> Result<CommandStatus, WaitError> {
    let done = poll(timeout, clock, |left| {
        let st = guest.run(&bounded(line, left), connect_within(left))?;
        if st.code == 0 {
            return Ok(Check::Done(st));
        }
        Ok(Check::NotYet(Seen { code: st.code, text: output_of(&st) }))
    })?;
    done.map_err(|seen| WaitError::Command {
        vm: guest.name().to_owned(),
        command: line.to_owned(),
        within: human(timeout),
        code: seen.code,
        output: seen.text,
    })
}

/// The command that prints the VM's TCP sockets: the kernel's tables, read on the host.
pub const LISTEN_TABLES: &str = "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null";

/// The ports of the sockets in LISTEN state (`0A`) in the kernel's `/proc/net/tcp` and `tcp6`
/// tables, sorted and without repeats.
pub fn listening(tables: &str) -> Vec<u16> {
    let mut ports: Vec<u16> = tables
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, local, _, state) = (f.next()?, f.next()?, f.next()?, f.next()?);
            let port = local.rsplit_once(':')?.1;
            (state == "0A").then(|| u16::from_str_radix(port, 16).ok()).flatten()
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Waits until a TCP socket listens on `port` in `guest`, on any of its addresses, as the
/// guest's kernel says (`/proc/net/tcp`, `/proc/net/tcp6`).
pub fn port_in(guest: &dyn Guest, port: u16, timeout: Duration, clock: &dyn Clock) -> Result<(), WaitError> {
    let done = poll(timeout, clock, |left| {
        let st = guest.run(LISTEN_TABLES, connect_within(left))?;
        if let Some(seen) = ssh_failure(&st) {
            return Ok(Check::NotYet(seen));
        }
        let ports = listening(&st.stdout());
        if ports.contains(&port) {
            return Ok(Check::Done(()));
        }
        let text = if st.out.is_empty() {
            format!("the kernel's socket tables could not be read (exit {}): {}", st.code, output_of(&st))
        } else if ports.is_empty() {
            "no TCP port listened".to_owned()
        } else {
            let list = ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
            format!("connection refused: nothing listened on {port} (listening: {list})")
        };
        Ok(Check::NotYet(Seen { code: st.code, text }))
    })?;
    done.map_err(|seen| WaitError::Port { vm: guest.name().to_owned(), port, within: human(timeout), last: seen.text })
}

/// The words of a service manager's `status` that say the most: systemd's `Active:` line, else
/// the last line it printed.
fn status_words(provider: ServiceProvider, st: &CommandStatus) -> String {
    let out = output_of(st);
    let active = out.lines().map(str::trim).find(|l| l.starts_with("Active:"));
    match (provider, active) {
        (ServiceProvider::Systemd, Some(line)) => line.to_owned(),
        _ => out.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("").to_owned(),
    }
}

/// Waits until service `unit` is active in `guest` under `provider`.
pub fn unit_in(
    guest: &dyn Guest,
    unit: &str,
    provider: ServiceProvider,
    timeout: Duration,
    clock: &dyn Clock,
) -> Result<(), WaitError> {
    let line = provider.argv("status", unit).iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ");
    let done = poll(timeout, clock, |left| {
        let st = guest.run(&line, connect_within(left))?;
        if let Some(seen) = ssh_failure(&st) {
            return Ok(Check::NotYet(seen));
        }
        let state = provider.parse_state(st.code, &st.stdout());
        if state == ServiceState::Active {
            return Ok(Check::Done(()));
        }
        let name = format!("{state:?}").to_lowercase();
        let words = status_words(provider, &st);
        let text = if words.is_empty() { name } else { format!("{name} ({words})") };
        Ok(Check::NotYet(Seen { code: st.code, text }))
    })?;
    done.map_err(|seen| WaitError::Unit {
        vm: guest.name().to_owned(),
        unit: unit.to_owned(),
        within: human(timeout),
        last: seen.text,
        status: line.clone(),
    })
}

/// Waits until `path` exists in `guest` (a file, a directory, anything `ls -d` finds).
pub fn file_in(guest: &dyn Guest, path: &str, timeout: Duration, clock: &dyn Clock) -> Result<(), WaitError> {
    let line = format!("ls -d {}", quote(path));
    let done = poll(timeout, clock, |left| {
        let st = guest.run(&line, connect_within(left))?;
        if st.code == 0 {
            return Ok(Check::Done(()));
        }
        let text = ssh_failure(&st).map_or_else(|| output_of(&st), |s| s.text);
        Ok(Check::NotYet(Seen { code: st.code, text }))
    })?;
    done.map_err(|seen| WaitError::File {
        vm: guest.name().to_owned(),
        path: path.to_owned(),
        within: human(timeout),
        last: seen.text,
    })
}

/// The regular expression `regex`, or [`WaitError::BadRegex`].
pub fn console_regex(regex: &str) -> Result<regex::Regex, WaitError> {
    regex::Regex::new(regex).map_err(|source| WaitError::BadRegex { regex: regex.to_owned(), source })
}

/// A console log followed from an offset: complete lines are matched once, the line being
/// written (a prompt has no newline) each time it grows.
struct Follower {
    file: std::fs::File,
    /// Text not yet ended by a newline.
    partial: Vec<u8>,
    /// The last complete lines.
    last: std::collections::VecDeque<String>,
    /// How many times the file was read (for the tests: reads follow writes, not a timer).
    reads: usize,
}

impl Follower {
    fn open(path: &Path, from: u64) -> std::io::Result<Self> {
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        // A log that was cut (or replaced) since the offset was taken is read from its start.
        file.seek(SeekFrom::Start(if from <= len { from } else { 0 }))?;
        Ok(Self { file, partial: Vec::new(), last: std::collections::VecDeque::new(), reads: 0 })
    }

    /// Reads what was added and returns the first line that matches `re`.
    fn read(&mut self, re: &regex::Regex) -> std::io::Result<Option<String>> {
        self.reads += 1;
        let mut added = Vec::new();
        self.file.read_to_end(&mut added)?;
        self.partial.extend_from_slice(&added);
        while let Some(pos) = self.partial.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = self.partial.drain(..=pos).collect();
            let line = clean(&raw);
            if re.is_match(&line) {
                return Ok(Some(line));
            }
            if self.last.len() == LAST_LINES {
                self.last.pop_front();
            }
            self.last.push_back(line);
        }
        let line = clean(&self.partial);
        Ok(re.is_match(&line).then_some(line).filter(|_| !self.partial.is_empty()))
    }

    fn tail(&self) -> String {
        let mut lines: Vec<String> = self.last.iter().cloned().collect();
        let partial = clean(&self.partial);
        if !partial.is_empty() {
            lines.push(partial);
        }
        let skip = lines.len().saturating_sub(LAST_LINES);
        lines[skip..].join("\n")
    }
}

/// A console line as text, without its line end and the carriage returns of the serial line.
fn clean(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).trim_end_matches(['\n', '\r']).replace('\r', "")
}

/// Follows the console log `path` from byte `from` until a line matches `re` (returned) or
/// `timeout` passes: it is read once, then again each time inotify says it was written to
/// (and whenever it may have been replaced), never on a timer.
pub fn follow_console(
    vm: &str,
    path: &Path,
    from: u64,
    re: &regex::Regex,
    timeout: Duration,
) -> Result<String, WaitError> {
    follow(vm, path, from, re, timeout, &mut 0)
}

/// [`follow_console`], counting the reads of the file in `reads`.
fn follow(
    vm: &str,
    path: &Path,
    from: u64,
    re: &regex::Regex,
    timeout: Duration,
    reads: &mut usize,
) -> Result<String, WaitError> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let failed = |source: std::io::Error| WaitError::Follow { vm: vm.to_owned(), path: path.to_owned(), source };
    if !path.is_file() {
        return Err(WaitError::NoConsole { vm: vm.to_owned(), path: path.to_owned() });
    }
    let deadline = Instant::now() + timeout;
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).map_err(|e| failed(e.into()))?;
    // Watched before the first read: nothing written in between is missed.
    inotify
        .add_watch(path, AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_ATTRIB)
        .map_err(|e| failed(e.into()))?;
    let mut follower = Follower::open(path, from).map_err(failed)?;
    loop {
        let found = follower.read(re).map_err(failed)?;
        *reads = follower.reads;
        if let Some(line) = found {
            return Ok(line);
        }
        // Until something is written, the deadline passes, or lago is interrupted (looked at
        // every 200 ms; the file is not read then).
        loop {
            crate::host::interrupt::check().map_err(EnvError::from)?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(WaitError::Console {
                    vm: vm.to_owned(),
                    regex: re.as_str().to_owned(),
                    within: human(timeout),
                    lines: follower.tail(),
                });
            }
            let ms = left.min(Duration::from_millis(200)).as_millis().max(1) as u16;
            let mut fds = [nix::poll::PollFd::new(std::os::fd::AsFd::as_fd(&inotify), nix::poll::PollFlags::POLLIN)];
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms)) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {
                    // The events only say "written": their content does not matter.
                    while inotify.read_events().is_ok_and(|e| !e.is_empty()) {}
                    break;
                }
                Err(e) => return Err(failed(e.into())),
            }
        }
    }
}

impl Vm<'_> {
    /// Waits until command line `command` (read by the guest's `sh`) exits with 0 in the VM,
    /// trying it again as soon as a try fails; returns the successful try's status. On timeout,
    /// [`WaitError::Command`] with the last try's exit code and output.
    pub fn wait_for(&self, command: &str, timeout: Duration) -> Result<CommandStatus, WaitError> {
        self.running()?;
        command_in(self, command, timeout, &SystemClock)
    }

    /// Waits until a TCP socket listens on `port` in the VM (on any of its addresses: the
    /// service in the VM listens, as the VM's own kernel says; whether the test's networks let
    /// others reach it is another matter). On timeout, [`WaitError::Port`] with the ports that
    /// listened at the last check.
    pub fn wait_for_port(&self, port: u16, timeout: Duration) -> Result<(), WaitError> {
        self.running()?;
        port_in(self, port, timeout, &SystemClock)
    }

    /// Waits until service `name` is active, as the VM's service manager says (systemd's
    /// `systemctl status`, or `/sbin/service NAME status`: see [`Vm::service_provider`]). On
    /// timeout, [`WaitError::Unit`] with its last state (`missing`, `inactive`) and the
    /// manager's words.
    pub fn wait_for_unit(&self, name: &str, timeout: Duration) -> Result<(), WaitError> {
        self.running()?;
        let provider = self.service_provider()?;
        unit_in(self, name, provider, timeout, &SystemClock)
    }

    /// Waits until `path` exists in the VM. On timeout, [`WaitError::File`] with what `ls`
    /// said last.
    pub fn wait_for_file(&self, path: &str, timeout: Duration) -> Result<(), WaitError> {
        self.running()?;
        file_in(self, path, timeout, &SystemClock)
    }

    /// Waits until a line of the VM's serial console matches regular expression `regex`, and
    /// returns that line. The lines looked at are those of the VM's current run (since it was
    /// last started: those printed before the call count), then each line as the console
    /// prints it; the line being printed counts too (a prompt). On timeout,
    /// [`WaitError::Console`] with the console's last lines.
    pub fn wait_for_console(&self, regex: &str, timeout: Duration) -> Result<String, WaitError> {
        let re = console_regex(regex)?;
        self.running()?;
        let layout = crate::prefix::Layout::new(&self.env.prefix.path);
        let from = std::fs::read_to_string(layout.console_start(self.name()))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        follow_console(self.name(), &layout.console_log(self.name()), from, &re, timeout)
    }

    fn running(&self) -> Result<(), EnvError> {
        if self.state().is_running() { Ok(()) } else { Err(EnvError::NotRunning { vm: self.record.name.clone() }) }
    }
}

#[cfg(test)]
mod tests;
