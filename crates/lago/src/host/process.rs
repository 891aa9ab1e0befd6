//! The only place that builds `std::process::Command`, and the only place that finds programs.
//!
//! Every external tool (`qemu-img`, `ssh-keygen`, `xz`, ...) runs through a [`CommandRunner`], so
//! orchestration logic can be unit-tested with [`FakeRunner`] and the real path is exercised by the
//! CLI and end-to-end tests. Children get a null stdin and `LC_ALL=C`; their full argv is logged at
//! debug level before spawning, and a failure keeps the command line and the tail of stderr.
//! Long-lived children (qemu, the network switches) are started by [`spawn_detached`], and the
//! CLI's hand-over to an interactive program (`ssh`, `virsh console`, a plugin) by [`exec`].
//!
//! Programs are found by [`locate`]: on `PATH`, then where Debian puts system tools
//! (`/usr/local/sbin`, `/usr/sbin`, `/sbin`), which are not on a normal user's `PATH` although
//! tools lago runs live there (`mke2fs`, `libvirtd`, `dnsmasq`).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;

/// One external command: program, arguments and extra environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Program name or path.
    pub program: String,
    /// Arguments, passed as argv (never through a shell).
    pub args: Vec<OsString>,
    /// Extra environment variables.
    pub env: Vec<(String, OsString)>,
    /// Whether the child gets only `env` (nothing of lago's environment, no `LC_ALL=C`): a
    /// user's own command (the SDK's `run_command`).
    pub env_clear: bool,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Bytes written to the child's standard input (on a thread of its own, so a child that
    /// writes a lot before reading cannot deadlock with lago); `None`: no input.
    pub input: Option<Vec<u8>>,
}

impl Invocation {
    /// Starts an invocation of `program`.
    pub fn new(program: &str) -> Self {
        Self {
            program: program.to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            env_clear: false,
            cwd: None,
            input: None,
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Gives the child only the variables set with [`Self::env`].
    pub fn clear_env(mut self) -> Self {
        self.env_clear = true;
        self
    }

    /// Sets the working directory of the child.
    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_owned());
        self
    }

    /// Feeds `data` to the child's standard input.
    pub fn input(mut self, data: Vec<u8>) -> Self {
        self.input = Some(data);
        self
    }
}

impl fmt::Display for Invocation {
    /// Renders the command line with shell-style quoting, so it can be copied and run by hand.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&shell_quote(&self.program))?;
        for arg in &self.args {
            write!(f, " {}", shell_quote(&arg.to_string_lossy()))?;
        }
        Ok(())
    }
}

fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if safe { s.to_owned() } else { format!("'{}'", s.replace('\'', r"'\''")) }
}

/// What a finished command produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// Standard output as (lossy) text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Why an external command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started at all.
    #[error("`{program}` could not be run{hint}")]
    Spawn {
        /// The program.
        program: String,
        /// What to install, when known.
        hint: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// lago was interrupted while the program ran; the program was killed.
    #[error("`{command}` was stopped")]
    Interrupted {
        /// The full command line.
        command: String,
        /// The signal lago received.
        #[source]
        source: crate::host::interrupt::Interrupted,
    },
    /// The log file of a long-lived program could not be opened.
    #[error("Cannot open {path}, the log of `{command}`")]
    Log {
        /// The full command line.
        command: String,
        /// The log file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The program exited with a non-zero status.
    #[error("`{command}` failed ({status})\n{stderr}")]
    Failed {
        /// The full command line.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// The last lines of its standard error.
        stderr: String,
    },
}

/// Where Debian installs system tools: searched after `PATH`.
pub const SYSTEM_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// A program found on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its absolute path.
    pub path: PathBuf,
    /// Whether it is on `PATH` (else it was found in one of [`SYSTEM_DIRS`]).
    pub on_path: bool,
}

/// `program` as a shell of this process would run it (on `PATH`), else in [`SYSTEM_DIRS`]; a name
/// with a slash is taken as it is.
pub fn locate(program: &str) -> Option<Found> {
    locate_in(program, std::env::var_os("PATH").as_deref())
}

/// [`locate`] with the colon-separated `path` instead of the process's `PATH`.
pub fn locate_in(program: &str, path: Option<&std::ffi::OsStr>) -> Option<Found> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(Found { path: p, on_path: true });
    }
    if let Some(found) =
        path.into_iter().flat_map(std::env::split_paths).map(|d| d.join(program)).find(|p| executable(p))
    {
        return Some(Found { path: std::path::absolute(&found).unwrap_or(found), on_path: true });
    }
    SYSTEM_DIRS
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| executable(p))
        .map(|path| Found { path, on_path: false })
}

/// The absolute path of `program` (see [`locate`]).
pub fn find_program(program: &str) -> Option<PathBuf> {
    locate(program).map(|f| f.path)
}

/// What to run for `program`: its path when it is found, else its name (so the error of the
/// spawn names what was missing).
pub fn program_path(program: &str) -> PathBuf {
    find_program(program).unwrap_or_else(|| PathBuf::from(program))
}

/// The `Command` of an invocation: the program found by [`locate`], `LC_ALL=C`, its environment
/// and working directory.
fn command_of(inv: &Invocation) -> Command {
    let mut cmd = Command::new(program_path(&inv.program));
    cmd.args(&inv.args);
    if inv.env_clear {
        cmd.env_clear();
    } else {
        cmd.env("LC_ALL", "C");
    }
    for (k, v) in &inv.env {
        cmd.env(k, v);
    }
    if let Some(dir) = &inv.cwd {
        cmd.current_dir(dir);
    }
    cmd
}

/// Starts a long-lived child (a VM's qemu, a network's switch) in its own process group, so it
/// outlives lago and a Ctrl-C at the terminal does not reach it; its standard output and error
/// are appended to `log`, its standard input is null.
pub fn spawn_detached(inv: &Invocation, log: &Path) -> Result<std::process::Child, ProcessError> {
    spawn_logged(inv, log, true)
}

/// Starts a child that lago watches and ends itself (the KVM probe's qemu): output appended to
/// `log`, and killed by the kernel if the thread that started it dies.
pub fn spawn_watched(inv: &Invocation, log: &Path) -> Result<std::process::Child, ProcessError> {
    spawn_logged(inv, log, false)
}

fn spawn_logged(inv: &Invocation, log: &Path, detached: bool) -> Result<std::process::Child, ProcessError> {
    use std::os::unix::process::CommandExt;
    let spawn_err = |source| ProcessError::Spawn {
        program: inv.program.clone(),
        hint: package_hint(&inv.program).to_owned(),
        source,
    };
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|source| ProcessError::Log {
        command: inv.to_string(),
        path: log.to_owned(),
        source,
    })?;
    let err = out.try_clone().map_err(spawn_err)?;
    let mut cmd = command_of(inv);
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    if detached {
        cmd.process_group(0);
    } else {
        die_with_parent(&mut cmd);
    }
    tracing::debug!(command = %inv, "starting");
    cmd.spawn().map_err(spawn_err)
}

/// Starts a child whose standard input, output and error are pipes of the caller's (an SSH
/// session the SDK keeps open). It ends when its input is closed or it is killed.
pub fn spawn_piped(inv: &Invocation) -> Result<std::process::Child, ProcessError> {
    tracing::debug!(command = %inv, "starting");
    command_of(inv).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|source| {
        ProcessError::Spawn { program: inv.program.clone(), hint: package_hint(&inv.program).to_owned(), source }
    })
}

/// Runs an interactive program on this process's terminal (standard input, output and error
/// inherited) and returns its exit status.
pub fn run_interactive(inv: &Invocation) -> Result<ExitStatus, ProcessError> {
    tracing::debug!(command = %inv, "running interactively");
    command_of(inv).status().map_err(|source| ProcessError::Spawn {
        program: inv.program.clone(),
        hint: package_hint(&inv.program).to_owned(),
        source,
    })
}

/// [`run_interactive`], with the program's standard error passed on as it comes except its
/// first lines while `noise` says they are noise (a tool's words about its own plumbing).
pub fn run_interactive_without(inv: &Invocation, noise: fn(&[u8]) -> bool) -> Result<ExitStatus, ProcessError> {
    use std::io::{BufRead, Write};
    tracing::debug!(command = %inv, "running interactively");
    let spawn_error = |source| ProcessError::Spawn {
        program: inv.program.clone(),
        hint: package_hint(&inv.program).to_owned(),
        source,
    };
    let mut child = command_of(inv).stderr(Stdio::piped()).spawn().map_err(spawn_error)?;
    let stderr = child.stderr.take().map(std::io::BufReader::new);
    let relay = std::thread::spawn(move || {
        let Some(mut stderr) = stderr else { return };
        let mut out = std::io::stderr();
        let mut line = Vec::new();
        // Line by line while the lines are noise, then everything as it comes.
        loop {
            line.clear();
            match stderr.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if noise(&line) => {}
                Ok(_) => break,
            }
        }
        let _ = out.write_all(&line);
        let _ = out.flush();
        let _ = std::io::copy(&mut stderr, &mut out);
    });
    let status = child.wait().map_err(spawn_error);
    let _ = relay.join();
    status
}

/// Replaces this process by the program (the CLI's hand-over to `ssh`, `virsh console` or a
/// plugin, which then own the terminal); returns only if it could not be run.
pub fn exec(inv: &Invocation) -> ProcessError {
    use std::os::unix::process::CommandExt;
    tracing::debug!(command = %inv, "exec");
    let source = command_of(inv).exec();
    ProcessError::Spawn { program: inv.program.clone(), hint: package_hint(&inv.program).to_owned(), source }
}

/// Runs external commands. The real implementation is [`SystemRunner`].
pub trait CommandRunner: Send + Sync {
    /// Runs the command to completion; a non-zero exit is an error carrying its stderr.
    fn run(&self, inv: &Invocation) -> Result<Output, ProcessError>;
}

/// Runs commands on the host.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

/// The Debian package that provides a tool, for error hints.
fn package_hint(program: &str) -> &'static str {
    match Path::new(program).file_name().and_then(|n| n.to_str()).unwrap_or(program) {
        "qemu-img" => " (install the `qemu-utils` package)",
        "ssh-keygen" | "ssh" | "scp" => " (install the `openssh-client` package)",
        "xz" => " (install the `xz-utils` package)",
        "virt-customize" => " (install the `guestfs-tools` package)",
        "guestfish" => " (install the `guestfish` package)",
        _ => "",
    }
}

/// The last `lines` lines of `bytes`, as text.
pub fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs `cmd` to completion with piped output: `input` is written on a thread of its own, both
/// outputs are read on threads of their own, and the child is killed when lago is interrupted
/// (the error is then of kind `Interrupted`, wrapping [`crate::host::interrupt::Interrupted`]).
pub fn run_child(cmd: &mut Command, input: Option<&[u8]>) -> std::io::Result<std::process::Output> {
    use std::io::{Read, Write};
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::host::interrupt::check().map_err(|i| std::io::Error::new(std::io::ErrorKind::Interrupted, i))?;
    die_with_parent(cmd);
    let mut child = cmd.spawn()?;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    std::thread::scope(|s| {
        if let (Some(data), Some(mut pipe)) = (input, stdin) {
            // A child that stops reading (or exits) ends the write with EPIPE: not our error.
            s.spawn(move || {
                let _ = pipe.write_all(data);
            });
        }
        let read = |pipe: Option<std::process::ChildStdout>| {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        };
        let out = s.spawn(move || read(stdout));
        let err = s.spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = stderr {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        });
        let (tx, rx) = std::sync::mpsc::channel();
        s.spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = loop {
            match rx.recv_timeout(std::time::Duration::from_millis(50)) {
                Ok(status) => break status?,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(signal) = crate::host::interrupt::received() {
                        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                        let _ = rx.recv();
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::Interrupted,
                            crate::host::interrupt::Interrupted { signal },
                        ));
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(std::io::Error::other("the child's waiter thread ended"));
                }
            }
        };
        Ok(std::process::Output {
            status,
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
        })
    })
}

/// Runs `inv` to completion (see [`run_child`]) and returns its status and output, whatever
/// the status: for programs whose exit code is the caller's answer (`ssh`, `scp`).
pub fn output(inv: &Invocation) -> std::io::Result<std::process::Output> {
    tracing::debug!(command = %inv, "running");
    run_child(&mut command_of(inv), inv.input.as_deref())
}

/// Runs `first | second`: the standard output of `first` flows into `second` (nothing is held
/// in memory), and the status and standard error of both are returned (their stdout: only
/// `second`'s). Both are killed when lago is interrupted (an error of kind `Interrupted`).
pub fn pipe(first: &Invocation, second: &Invocation) -> std::io::Result<(std::process::Output, std::process::Output)> {
    use std::io::Read;
    crate::host::interrupt::check().map_err(|i| std::io::Error::new(std::io::ErrorKind::Interrupted, i))?;
    tracing::debug!(command = %format!("{first} | {second}"), "running");
    let mut a = command_of(first);
    a.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    die_with_parent(&mut a);
    let mut a = a.spawn()?;
    let stream = a.stdout.take().ok_or_else(|| std::io::Error::other("no output pipe"))?;
    let mut b = command_of(second);
    b.stdin(Stdio::from(stream)).stdout(Stdio::piped()).stderr(Stdio::piped());
    die_with_parent(&mut b);
    let b = match b.spawn() {
        Ok(b) => b,
        Err(e) => {
            let _ = a.kill();
            let _ = a.wait();
            return Err(e);
        }
    };
    let a_err = std::thread::spawn({
        let mut err = a.stderr.take();
        move || {
            let mut buf = Vec::new();
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_end(&mut buf);
            }
            buf
        }
    });
    let pids = [a.id() as i32, b.id() as i32];
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if crate::host::interrupt::received().is_some() {
                    for pid in pids {
                        let _ =
                            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                    }
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        })
    };
    let b_out = b.wait_with_output();
    let a_status = a.wait();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = watcher.join();
    let a_out =
        std::process::Output { status: a_status?, stdout: Vec::new(), stderr: a_err.join().unwrap_or_default() };
    let b_out = b_out?;
    if let Some(signal) = crate::host::interrupt::received() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Interrupted,
            crate::host::interrupt::Interrupted { signal },
        ));
    }
    Ok((a_out, b_out))
}

/// Makes the kernel kill the child when the thread that starts it dies, so a `kill -9` of lago
/// does not leave its tools (`apt-get`, `dpkg-deb`, `qemu-img`) writing into directories the
/// next command sweeps. [`run_child`] waits on the thread that spawned the child.
#[allow(unsafe_code, reason = "pre_exec: one async-signal-safe prctl in the forked child")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only makes the prctl system call,
    // which is async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}

/// The signal inside an error of [`run_child`], if it was an interrupt.
pub fn interrupted(e: &std::io::Error) -> Option<crate::host::interrupt::Interrupted> {
    e.get_ref().and_then(|i| i.downcast_ref::<crate::host::interrupt::Interrupted>()).copied()
}

impl CommandRunner for SystemRunner {
    fn run(&self, inv: &Invocation) -> Result<Output, ProcessError> {
        let mut cmd = command_of(inv);
        tracing::debug!(command = %inv, "running");
        let out = run_child(&mut cmd, inv.input.as_deref()).map_err(|source| match interrupted(&source) {
            Some(i) => ProcessError::Interrupted { command: inv.to_string(), source: i },
            None => ProcessError::Spawn {
                program: inv.program.clone(),
                hint: package_hint(&inv.program).to_owned(),
                source,
            },
        })?;
        if out.status.success() {
            Ok(Output { stdout: out.stdout, stderr: out.stderr })
        } else {
            Err(ProcessError::Failed { command: inv.to_string(), status: out.status, stderr: tail(&out.stderr, 40) })
        }
    }
}

/// How a [`FakeRunner`] answers a command.
pub type Reply = dyn Fn(&Invocation) -> Result<Output, ProcessError> + Send + Sync;

/// A scripted runner for tests: records every invocation and answers from a closure.
pub struct FakeRunner {
    calls: Mutex<Vec<Invocation>>,
    reply: Box<Reply>,
}

impl FakeRunner {
    /// A fake that answers every command with `reply`.
    pub fn new(reply: impl Fn(&Invocation) -> Result<Output, ProcessError> + Send + Sync + 'static) -> Self {
        Self { calls: Mutex::new(Vec::new()), reply: Box::new(reply) }
    }

    /// The command lines run so far, one per line.
    pub fn command_lines(&self) -> String {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
    }
}

impl CommandRunner for FakeRunner {
    fn run(&self, inv: &Invocation) -> Result<Output, ProcessError> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).push(inv.clone());
        (self.reply)(inv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let inv = Invocation::new("qemu-img").args(["create", "-b", "/a b/c", "it's"]);
        assert_eq!(inv.to_string(), r#"qemu-img create -b '/a b/c' 'it'\''s'"#);
    }

    #[test]
    fn failure_keeps_command_and_stderr() {
        let inv = Invocation::new("sh").args(["-c", "echo boom >&2; exit 3"]);
        let err = SystemRunner.run(&inv).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`sh -c 'echo boom >&2; exit 3'` failed"), "{text}");
        assert!(text.contains("exit status: 3"), "{text}");
        assert!(text.ends_with("boom"), "{text}");
    }

    #[test]
    fn input_is_fed_while_output_is_read() {
        // `cat` echoes 4 MiB: more than a pipe holds, so writing it all before reading would hang.
        let data = vec![b'x'; 4 << 20];
        let out = SystemRunner.run(&Invocation::new("cat").input(data.clone())).unwrap();
        assert_eq!(out.stdout.len(), data.len());
    }

    #[test]
    fn programs_are_found_on_the_given_path_then_in_the_system_directories() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        assert_eq!(locate_in("tool", Some(dir.path().as_os_str())), None, "not executable");
        std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let path = std::env::join_paths(["/nonexistent".as_ref(), dir.path()]).unwrap();
        assert_eq!(locate_in("tool", Some(&path)), Some(Found { path: tool.clone(), on_path: true }));
        assert_eq!(locate_in("tool", None), None);
        assert_eq!(locate_in(&tool.display().to_string(), None).map(|f| f.path), Some(tool));
        // Debian's system tools, for a user whose PATH has no sbin.
        if Path::new("/usr/sbin/mke2fs").is_file() {
            assert_eq!(
                locate_in("mke2fs", Some("/usr/bin:/bin".as_ref())),
                Some(Found { path: "/usr/sbin/mke2fs".into(), on_path: false })
            );
        }
    }

    #[test]
    fn a_pipe_streams_and_keeps_both_ends_words() {
        let first = Invocation::new("sh").args(["-c", "echo one; echo two; echo oops >&2; exit 1"]);
        let (a, b) = pipe(&first, &Invocation::new("wc").arg("-l")).unwrap();
        assert_eq!((a.status.code(), String::from_utf8_lossy(&a.stderr).trim()), (Some(1), "oops"));
        assert_eq!((b.status.code(), String::from_utf8_lossy(&b.stdout).trim()), (Some(0), "2"));
    }

    #[test]
    fn missing_program_names_package() {
        let err = SystemRunner.run(&Invocation::new("/nonexistent/qemu-img")).unwrap_err();
        assert!(err.to_string().contains("qemu-utils"), "{err}");
    }
}
