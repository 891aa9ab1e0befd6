//! Locks: the prefix lock ([`acquire`]), and plain file locks ([`FileLock`]) for what several
//! lago processes share (the template store, repositories, package caches, leases).
//!
//! The prefix lock: one per prefix, taken by every command that reads the environment and then
//! changes it (init, start, stop, shutdown, snapshot, revert, export, cleanup, destroy).
//!
//! The lock is a file beside the prefix, `<workdir>/.<prefix>.lock`, outside the directory
//! `destroy` removes, so a command waiting for it is never left holding a lock on a deleted file
//! while another takes a new one: after `flock` succeeds, the holder checks that the path still
//! names the file it locked, and starts over if not. The holder writes its pid and verb into the
//! file; a command that waits more than a second says who it waits for. Within one process the
//! lock is re-entrant (`destroy` stops the VMs under the lock it already holds).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::report::Reporter;

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock file could not be opened or locked.
    #[error("Cannot lock {path}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The lock did not come in time.
    #[error("Timed out waiting for the lock {path} (held by another lago)")]
    Timeout {
        /// The lock file.
        path: PathBuf,
    },
    /// lago was interrupted while waiting.
    #[error("Stopped waiting for the lock {path} (held by {holder})")]
    Interrupted {
        /// The lock file.
        path: PathBuf,
        /// Who held it.
        holder: String,
        /// The signal.
        #[source]
        source: crate::host::interrupt::Interrupted,
    },
}

/// An exclusive lock on a file of its own (a template being stored, a repository being published
/// into, a package cache being built from, the store of subnet leases), held until dropped. Other
/// processes wait for it; this process does not take it twice.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Takes the lock of `path` (the file is created), waiting while another process holds it:
    /// `waiting` is said once through `reporter` if it does not come at once. Waits at most
    /// `timeout` (`None`: as long as it takes), and stops when lago is interrupted.
    pub fn acquire(
        path: &Path,
        reporter: &dyn Reporter,
        waiting: &str,
        timeout: Option<Duration>,
    ) -> Result<Self, LockError> {
        let io = |source| LockError::Io { path: path.to_owned(), source };
        let file = File::options().create(true).truncate(false).write(true).open(path).map_err(io)?;
        let started = Instant::now();
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
            if let Err(source) = crate::host::interrupt::check() {
                return Err(LockError::Interrupted { path: path.to_owned(), holder: "another lago".into(), source });
            }
            if timeout.is_some_and(|t| started.elapsed() > t) {
                return Err(LockError::Timeout { path: path.to_owned() });
            }
            if !told {
                told = true;
                reporter.warn(&format!("{waiting} (lock {})", path.display()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// How long a command waits silently before saying whom it waits for.
const QUIET_WAIT: Duration = Duration::from_secs(1);

/// The lock file of the prefix at `prefix`: `.<name>.lock` in the directory holding it.
pub fn lock_path(prefix: &Path) -> PathBuf {
    let name = prefix.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    prefix.parent().unwrap_or(Path::new("/")).join(format!(".{name}.lock"))
}

/// Locks held by this process: path → (file, nesting depth).
fn held() -> &'static Mutex<HashMap<PathBuf, (File, usize)>> {
    static HELD: OnceLock<Mutex<HashMap<PathBuf, (File, usize)>>> = OnceLock::new();
    HELD.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A held prefix lock; released when dropped.
#[derive(Debug)]
pub struct PrefixLock {
    path: PathBuf,
}

impl PrefixLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes the lock file (the prefix is gone). Safe while held: a command that waits for it
    /// notices that the path no longer names the file it locked and starts over.
    pub fn remove_file(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for PrefixLock {
    fn drop(&mut self) {
        let mut map = held().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = map.get_mut(&self.path) {
            entry.1 -= 1;
            if entry.1 == 0 {
                // Closing the file releases the flock.
                map.remove(&self.path);
            }
        }
    }
}

/// Who holds the lock, as its file says (`pid 1234 (lago start)`).
pub fn holder(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines();
    match (lines.next(), lines.next()) {
        (Some(pid), Some(verb)) if !pid.is_empty() => format!("pid {pid} ({verb})"),
        _ => "another lago".into(),
    }
}

/// Takes the lock of the prefix at `prefix` for `verb`, waiting as long as another command
/// holds it (saying so after a second), until lago is interrupted.
pub fn acquire(prefix: &Path, verb: &str, reporter: &dyn Reporter) -> Result<PrefixLock, LockError> {
    let path = lock_path(prefix);
    {
        let mut map = held().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = map.get_mut(&path) {
            entry.1 += 1;
            return Ok(PrefixLock { path });
        }
    }
    let io = |source| LockError::Io { path: path.clone(), source };
    let started = Instant::now();
    let mut told = false;
    loop {
        let mut file = File::options().create(true).truncate(false).read(true).write(true).open(&path).map_err(io)?;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if let Err(source) = crate::host::interrupt::check() {
                        return Err(LockError::Interrupted { path: path.clone(), holder: holder(&path), source });
                    }
                    if !told && started.elapsed() >= QUIET_WAIT {
                        told = true;
                        reporter.warn(&format!(
                            "Waiting for the lock of prefix {}, held by {}",
                            prefix.display(),
                            holder(&path)
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        // The file may have been deleted (and recreated) by the holder we waited for.
        let same = match (file.metadata(), std::fs::metadata(&path)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if !same {
            continue;
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}\nlago {verb}\n", std::process::id()).map_err(io)?;
        held().lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(path.clone(), (file, 1));
        return Ok(PrefixLock { path });
    }
}

/// Takes the lock only if nobody holds it, this process included (for sweeping leftovers):
/// `None` when it is held.
pub fn try_acquire(prefix: &Path, verb: &str) -> Result<Option<PrefixLock>, LockError> {
    let path = lock_path(prefix);
    if held().lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(&path) {
        return Ok(None);
    }
    let io = |source| LockError::Io { path: path.clone(), source };
    let mut file = File::options().create(true).truncate(false).read(true).write(true).open(&path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    let same = matches!((file.metadata(), std::fs::metadata(&path)), (Ok(a), Ok(b)) if a.ino() == b.ino());
    if !same {
        return Ok(None);
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    write!(file, "{}\nlago {verb}\n", std::process::id()).map_err(io)?;
    held().lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(path.clone(), (file, 1));
    Ok(Some(PrefixLock { path }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::NoopReporter;

    #[test]
    fn reentrant_in_one_process_and_exclusive_across_processes() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("default");
        let outer = acquire(&prefix, "destroy", &NoopReporter).unwrap();
        let inner = acquire(&prefix, "stop", &NoopReporter).unwrap();
        assert_eq!(outer.path(), dir.path().join(".default.lock"));
        assert_eq!(holder(outer.path()), format!("pid {} (lago destroy)", std::process::id()));
        // Another process cannot take it: `flock -n` fails while we hold it.
        let path = outer.path().to_owned();
        let other = || std::process::Command::new("flock").arg("-n").arg(&path).arg("true").status().unwrap().success();
        assert!(!other());
        drop(inner);
        assert!(!other(), "still held by the outer guard");
        drop(outer);
        assert!(other());
    }

    #[test]
    fn a_file_lock_is_exclusive_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.lock");
        let held = FileLock::acquire(&path, &NoopReporter, "waiting", None).unwrap();
        let other = || std::process::Command::new("flock").arg("-n").arg(&path).arg("true").status().unwrap().success();
        assert!(!other());
        // A second open file description of this process waits like another process would.
        let err = FileLock::acquire(&path, &NoopReporter, "waiting", Some(Duration::from_millis(100))).unwrap_err();
        assert!(matches!(err, LockError::Timeout { .. }), "{err}");
        drop(held);
        assert!(other());
    }

    #[test]
    fn a_deleted_lock_file_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("p");
        let first = acquire(&prefix, "destroy", &NoopReporter).unwrap();
        first.remove_file();
        drop(first);
        let second = acquire(&prefix, "start", &NoopReporter).unwrap();
        assert!(second.path().exists());
        assert_eq!(holder(second.path()), format!("pid {} (lago start)", std::process::id()));
    }
}
