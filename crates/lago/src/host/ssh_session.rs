//! Warm commands: one `ssh` per VM kept open in this process, running a shell in the guest that
//! reads command lines, so that a command costs a line written and its output read instead of
//! an `ssh` process started (DESIGN §7). The SDKs switch it on ([`keep_sessions`]); the CLI,
//! whose processes run one command each, does not.
//!
//! A session rides on the VM's master connection: it is opened only where the master's control
//! socket exists (so connecting, refused logins and their words stay `ssh`'s own, on the path
//! that starts the master), and it ends when the master does (a revert, a stop). A session that
//! ended is noticed before a command is written to it, and the command then runs through a new
//! `ssh` as without sessions. Each command runs as `ssh` would run it: by the user's login shell
//! (`$SHELL -c LINE`), standard input empty, in a process of its own; its end is told by a
//! marker of this process's own on both outputs, after which its exit code follows. One
//! difference remains: a command that leaves a process in the background writing to its outputs
//! returns when the command itself ends (a plain `ssh` waits until that process closes them),
//! and what that process writes later is dropped.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::ssh::{CommandStatus, Target, quote};

static KEEP: AtomicBool = AtomicBool::new(false);
static SESSIONS: Mutex<Option<HashMap<Key, Slot>>> = Mutex::new(None);
static SERIAL: AtomicU64 = AtomicU64::new(0);

/// How long a new session may take to say it is ready before `ssh` is used instead.
const READY_WITHIN: Duration = Duration::from_secs(5);

/// Keeps a session per VM open in this process from now on (`true`), or no longer.
pub fn keep_sessions(on: bool) {
    KEEP.store(on, Ordering::SeqCst);
    if !on {
        sessions(|map| map.clear());
    }
}

/// Whether this process keeps sessions.
pub fn keeping() -> bool {
    KEEP.load(Ordering::SeqCst)
}

/// What a session is to: the master's control socket, the user and the port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    control: PathBuf,
    user: String,
    port: u16,
}

impl Key {
    fn of(target: &Target) -> Option<Self> {
        let control = target.control.clone()?;
        Some(Self { control, user: target.user.clone(), port: target.port })
    }
}

enum Chunk {
    Out(Vec<u8>),
    Err(Vec<u8>),
    Ended,
}

struct Session {
    /// `None` once dropped.
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    chunks: Receiver<Chunk>,
}

/// A VM's session: there to be taken, or taken by a thread running a command in it.
enum Slot {
    Idle(Session),
    Busy,
}

impl Drop for Session {
    /// Ends it gently: the end of its input ends the guest's shell, the channel closes and `ssh`
    /// exits. Killed only if it has not within 2 s (a mux client killed while the master serves
    /// it can make the master drop a channel another command is opening); a thread of its own
    /// waits, so nothing blocks here.
    fn drop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            std::thread::spawn(move || {
                let deadline = std::time::Instant::now() + Duration::from_secs(2);
                while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
            });
        }
    }
}

fn sessions<T>(f: impl FnOnce(&mut HashMap<Key, Slot>) -> T) -> T {
    let mut guard = SESSIONS.lock().unwrap_or_else(PoisonError::into_inner);
    f(guard.get_or_insert_with(HashMap::new))
}

/// Ends the session to `target`, if this process has one (its master is being closed).
pub fn forget(target: &Target) {
    if let Some(key) = Key::of(target) {
        let gone = sessions(|map| map.remove(&key));
        drop(gone);
    }
}

/// Runs `line` through this process's session to `target` (opened if need be): `None` when
/// sessions are off, there is no master connection to ride on, another thread uses the session,
/// or it could not be opened or had ended — the caller then runs `ssh` itself.
pub fn run(target: &Target, line: &str) -> Option<std::io::Result<CommandStatus>> {
    if !keeping() {
        return None;
    }
    let key = Key::of(target)?;
    if !key.control.exists() {
        return None;
    }
    // Marked busy while in use: a second thread meanwhile runs its command through `ssh`.
    let taken = sessions(|map| match map.insert(key.clone(), Slot::Busy) {
        Some(Slot::Busy) => Err(()),
        Some(Slot::Idle(s)) => Ok(Some(s)),
        None => Ok(None),
    });
    let kept = taken.ok()?;
    let release = |session: Option<Session>| {
        let gone = sessions(|map| match session {
            Some(s) => map.insert(key.clone(), Slot::Idle(s)),
            None => map.remove(&key),
        });
        drop(gone);
    };
    let mut session = match kept.and_then(|mut s| s.alive().then_some(s)) {
        Some(s) => s,
        None => match Session::open(target) {
            Some(s) => s,
            None => {
                release(None);
                return None;
            }
        },
    };
    let result = session.run(line);
    release(session.alive().then_some(session));
    match result {
        Ok(Some(st)) => Some(Ok(st)),
        // Written to a session that had ended: nothing ran; `ssh` runs it.
        Ok(None) => None,
        Err(e) => Some(Err(e)),
    }
}

fn marker() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("__lago_end_{}_{}_{:x}__", std::process::id(), SERIAL.fetch_add(1, Ordering::Relaxed), now)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Session {
    fn open(target: &Target) -> Option<Self> {
        // The guest's `sh` reads command lines; `exec` so that it is the session's only process.
        let inv = target.command("exec sh", 10);
        let mut child = match crate::host::process::spawn_piped(&inv) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(vm = %target.vm, "no ssh session: {e}");
                return None;
            }
        };
        let stdin = child.stdin.take();
        let (tx, chunks) = std::sync::mpsc::channel();
        if let Some(out) = child.stdout.take() {
            pump(out, tx.clone(), Chunk::Out);
        }
        if let Some(err) = child.stderr.take() {
            pump(err, tx, Chunk::Err);
        }
        let mut session = Self { child: Some(child), stdin, chunks };
        match session.run_within("true", Some(READY_WITHIN)) {
            Ok(Some(st)) if st.code == 0 => Some(session),
            other => {
                tracing::debug!(vm = %target.vm, "ssh session not ready: {:?}", other.map(|s| s.map(|s| s.code)));
                None
            }
        }
    }

    fn alive(&mut self) -> bool {
        if !self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None))) {
            return false;
        }
        // Output between commands is that of a process an earlier command left running in the
        // background with its outputs open (where a plain `ssh` would have waited for it): it
        // belongs to no command and is dropped.
        loop {
            match self.chunks.try_recv() {
                Ok(Chunk::Out(_) | Chunk::Err(_)) => {}
                Ok(Chunk::Ended) | Err(std::sync::mpsc::TryRecvError::Disconnected) => return false,
                Err(std::sync::mpsc::TryRecvError::Empty) => return true,
            }
        }
    }

    fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
        }
    }

    fn run(&mut self, line: &str) -> std::io::Result<Option<CommandStatus>> {
        self.run_within(line, None)
    }

    /// `Ok(None)`: the session had ended before the command was written.
    fn run_within(&mut self, line: &str, within: Option<Duration>) -> std::io::Result<Option<CommandStatus>> {
        let end = marker();
        let script = format!(
            "\"${{SHELL:-/bin/sh}}\" -c {} </dev/null; printf '{end} %s\\n' \"$?\"; printf '{end}' >&2\n",
            quote(line)
        );
        let Some(stdin) = self.stdin.as_mut() else { return Ok(None) };
        if stdin.write_all(script.as_bytes()).and_then(|()| stdin.flush()).is_err() {
            return Ok(None);
        }
        let deadline = within.map(|d| std::time::Instant::now() + d);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (mut code, mut err_done) = (None::<i32>, false);
        let needle = end.as_bytes();
        while code.is_none() || !err_done {
            if let Some(signal) = crate::host::interrupt::received() {
                self.kill();
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    crate::host::interrupt::Interrupted { signal },
                ));
            }
            if deadline.is_some_and(|d| std::time::Instant::now() > d) {
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the ssh session did not answer"));
            }
            match self.chunks.recv_timeout(Duration::from_millis(50)) {
                Ok(Chunk::Out(bytes)) => {
                    out.extend_from_slice(&bytes);
                    if code.is_none()
                        && let Some(at) = find(&out, needle)
                        && let Some(nl) = out[at..].iter().position(|b| *b == b'\n')
                    {
                        let tail = String::from_utf8_lossy(&out[at + needle.len()..at + nl]).trim().to_owned();
                        code = Some(tail.parse().unwrap_or(255));
                        out.truncate(at);
                    }
                }
                Ok(Chunk::Err(bytes)) => {
                    err.extend_from_slice(&bytes);
                    if !err_done && let Some(at) = find(&err, needle) {
                        err.truncate(at);
                        err_done = true;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Ok(Chunk::Ended) | Err(RecvTimeoutError::Disconnected) => {
                    // The connection ended while the command ran (it powered the VM off, or the
                    // master was closed): as `ssh` says it, exit code 255.
                    self.kill();
                    err.extend_from_slice(b"lago: the ssh session ended while the command ran\n");
                    return Ok(Some(CommandStatus { code: 255, out, err }));
                }
            }
        }
        Ok(Some(CommandStatus { code: code.unwrap_or(255), out, err }))
    }
}

/// Reads `pipe` on a thread of its own into `tx`, then says it ended.
fn pump<R: Read + Send + 'static>(mut pipe: R, tx: Sender<Chunk>, wrap: fn(Vec<u8>) -> Chunk) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(wrap(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Chunk::Ended);
    });
}

#[cfg(test)]
mod tests {
    use std::process::Stdio;

    use super::*;

    /// A session to a "guest" that is this machine's `sh`: the protocol end to end without ssh.
    fn local_session() -> Session {
        let mut child = std::process::Command::new("sh")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let (tx, chunks) = std::sync::mpsc::channel();
        pump(child.stdout.take().unwrap(), tx.clone(), Chunk::Out);
        pump(child.stderr.take().unwrap(), tx, Chunk::Err);
        Session { child: Some(child), stdin, chunks }
    }

    #[test]
    fn a_command_gives_its_code_and_both_outputs_as_they_were() {
        let mut s = local_session();
        let st = s.run("printf 'no newline'; printf 'oops' >&2; exit 3").unwrap().unwrap();
        assert_eq!((st.code, st.out.as_slice(), st.err.as_slice()), (3, &b"no newline"[..], &b"oops"[..]));
        let st = s.run("echo 'it'\\''s'; cat").unwrap().unwrap();
        assert_eq!((st.code, st.stdout()), (0, "it's\n".to_owned()), "quotes kept, stdin empty");
        // What a process left in the background writes later belongs to no command.
        let st = s.run("(sleep 0.2; echo late) &").unwrap().unwrap();
        assert_eq!((st.code, st.stdout()), (0, String::new()));
        std::thread::sleep(Duration::from_millis(400));
        assert!(s.alive());
        assert_eq!(s.run("echo next").unwrap().unwrap().stdout(), "next\n");
        let st = s.run("X=1; export X").unwrap().unwrap();
        assert_eq!(st.code, 0);
        let st = s.run("echo \"${X:-unset}\"").unwrap().unwrap();
        assert_eq!(st.stdout(), "unset\n", "each command in a process of its own");
        assert!(s.alive());
    }

    #[test]
    fn a_dropped_session_ends_by_the_end_of_its_input_not_a_kill() {
        let s = local_session();
        let pid = s.child.as_ref().unwrap().id();
        drop(s);
        let gone = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        });
        assert!(gone, "the shell did not end within 1 s of its input's end (the kill comes after 2 s)");
    }

    #[test]
    fn an_ended_session_is_noticed_before_a_command_and_during_one() {
        let mut s = local_session();
        let st = s.run("kill -9 $PPID").unwrap().unwrap();
        assert_eq!(st.code, 255);
        assert!(String::from_utf8_lossy(&st.err).contains("ended while the command ran"));
        std::thread::sleep(Duration::from_millis(100));
        assert!(!s.alive());
        assert!(s.run("true").unwrap().is_none(), "nothing is written to an ended session");
    }

    #[test]
    fn without_sessions_switched_on_or_a_master_the_caller_runs_ssh() {
        let target = Target {
            vm: "vm01".into(),
            user: "root".into(),
            port: 22,
            host: "127.0.0.1".into(),
            key: PathBuf::new(),
            known_hosts: "/dev/null".into(),
            control: Some("/nonexistent/vm01.ssh".into()),
            password: None,
        };
        assert!(run(&target, "true").is_none(), "off by default");
        keep_sessions(true);
        assert!(run(&target, "true").is_none(), "no control socket");
        keep_sessions(false);
    }
}
