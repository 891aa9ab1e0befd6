//! Progress events from the library to whoever shows them.
//!
//! The library never prints: it reports nested tasks (the original's `@ Start Prefix:` ...
//! `Success (in 0:00:03)` lines), download progress and warnings through a [`Reporter`]. The CLI
//! renders them; SDK users get [`NoopReporter`] unless they pass their own.

use std::time::{Duration, Instant};

/// Receives progress events.
pub trait Reporter: Send + Sync {
    /// A task started.
    fn task_started(&self, name: &str);
    /// The innermost running task finished.
    fn task_finished(&self, name: &str, ok: bool, elapsed: Duration);
    /// Bytes of a download so far (`total` when known).
    fn download(&self, _what: &str, _done: u64, _total: Option<u64>) {}
    /// A download finished.
    fn download_finished(&self, _what: &str) {}
    /// A progress line inside the current task (`vm01: powered off`).
    fn note(&self, _message: &str) {}
    /// A VM's way to answering SSH: `Booting` when lago starts waiting for it, then `Ready` or
    /// `Failed`, with the time since the wait began. By default only `Ready` is noted.
    fn vm_boot(&self, vm: &str, phase: BootPhase, elapsed: Duration) {
        if phase == BootPhase::Ready {
            self.note(&format!("{vm}: ssh ready ({:.1} s)", elapsed.as_secs_f64()));
        }
    }
    /// A wait in line for something (memory for VMs): `Some(why)` while it lasts, the words
    /// renewed every moment (a live line), `None` once it is over. By default nothing is shown.
    fn waiting(&self, _why: Option<&str>) {}
    /// Something the user should know about.
    fn warn(&self, message: &str) {
        tracing::warn!("{message}");
    }
}

/// How long a booting VM's console stays empty before [`BootPhase::Silent`] is reported.
pub const SILENT_AFTER: Duration = Duration::from_secs(10);

/// Where a VM is on its way to answering SSH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootPhase {
    /// Its qemu runs; SSH does not answer yet.
    Booting,
    /// Its console has stayed empty for [`SILENT_AFTER`] (a guest that hangs before it prints
    /// anything).
    Silent,
    /// It answers SSH.
    Ready,
    /// It died or did not answer in time.
    Failed,
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopReporter;

impl Reporter for NoopReporter {
    fn task_started(&self, _name: &str) {}
    fn task_finished(&self, _name: &str, _ok: bool, _elapsed: Duration) {}
}

/// Runs `f` as a task named `name`: reported and logged when it starts and ends.
pub fn task<T, E>(r: &dyn Reporter, name: &str, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    tracing::info!("start task: {name}");
    r.task_started(name);
    let t = Instant::now();
    let result = f();
    let elapsed = t.elapsed();
    r.task_finished(name, result.is_ok(), elapsed);
    match &result {
        Ok(_) => tracing::info!("end task: {name} (in {elapsed:.2?})"),
        Err(_) => tracing::info!("failed task: {name} (in {elapsed:.2?})"),
    }
    result
}

/// Formats a duration like Python's `timedelta` without fractions: `0:00:03`.
pub fn hms(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hms_like_timedelta() {
        assert_eq!(hms(Duration::from_millis(999)), "0:00:00");
        assert_eq!(hms(Duration::from_secs(3725)), "1:02:05");
    }
}
