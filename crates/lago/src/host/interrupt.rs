//! Interrupts: SIGINT, SIGTERM and SIGHUP become a flag that lago's long operations check, so an
//! interrupted command unwinds through its normal error path and leaves either the old state or
//! the new one (staging directories removed, VMs this call started stopped, temporary files gone).
//!
//! [`install`] registers the handlers (the CLI does; an SDK caller may). A second signal of the
//! same kind while the first is being handled ends the process at once with the shell's code
//! (128 + signal), for users who really mean it. Child processes lago waits for are killed when
//! the flag is raised ([`crate::host::process`]); qemu runs in its own process group and is not.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The signal received (0: none).
fn flag() -> &'static Arc<AtomicUsize> {
    static SIGNAL: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    SIGNAL.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

/// The signals lago turns into an orderly stop.
pub const SIGNALS: [i32; 3] = [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP];

/// An operation stopped because lago received a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Interrupted by {}", signal_name(*signal))]
pub struct Interrupted {
    /// The signal number.
    pub signal: i32,
}

impl Interrupted {
    /// The exit code a shell gives a process killed by this signal.
    pub fn exit_code(&self) -> u8 {
        u8::try_from(128 + self.signal).unwrap_or(130)
    }
}

/// `SIGINT`, `SIGTERM`, ...
pub fn signal_name(signal: i32) -> String {
    match signal {
        signal_hook::consts::SIGINT => "SIGINT".into(),
        signal_hook::consts::SIGTERM => "SIGTERM".into(),
        signal_hook::consts::SIGHUP => "SIGHUP".into(),
        other => format!("signal {other}"),
    }
}

/// Registers the handlers: the first signal raises the flag, a second one exits.
pub fn install() -> std::io::Result<()> {
    let up = Arc::clone(up());
    for sig in SIGNALS {
        // Handlers run in registration order: on the second signal `up` is already set and the
        // process ends; on the first, `up` and the flag are raised.
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&up))?;
        signal_hook::flag::register(sig, Arc::clone(&up))?;
        signal_hook::flag::register_usize(sig, Arc::clone(flag()), sig as usize)?;
    }
    Ok(())
}

/// Whether a signal is being handled (for the second-signal exit).
fn up() -> &'static Arc<AtomicBool> {
    static UP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    UP.get_or_init(|| Arc::new(AtomicBool::new(false)))
}

/// How many [`shield`]s are up.
fn shields() -> &'static AtomicUsize {
    static SHIELDS: AtomicUsize = AtomicUsize::new(0);
    &SHIELDS
}

/// Runs `f` shielded from interrupts: a signal received meanwhile is not seen ([`check`] and
/// [`received`] say nothing) until `f` returns, so that what must not stop half-way runs to its
/// end (a fork starting the VMs it froze again). A second signal still ends the process.
pub fn shield<T>(f: impl FnOnce() -> T) -> T {
    struct Up;
    impl Drop for Up {
        fn drop(&mut self) {
            shields().fetch_sub(1, Ordering::SeqCst);
        }
    }
    shields().fetch_add(1, Ordering::SeqCst);
    let _up = Up;
    f()
}

/// The signal received, if any (none while a [`shield`] is up).
pub fn received() -> Option<i32> {
    if shields().load(Ordering::SeqCst) > 0 {
        return None;
    }
    match flag().load(Ordering::SeqCst) {
        0 => None,
        s => i32::try_from(s).ok(),
    }
}

/// `Err` once a signal was received.
pub fn check() -> Result<(), Interrupted> {
    match received() {
        Some(signal) => Err(Interrupted { signal }),
        None => Ok(()),
    }
}

/// Raises the flag as if `signal` had been received (tests, and SDK callers that learn of an
/// interrupt their own way, such as Python's `KeyboardInterrupt`).
pub fn raise(signal: i32) {
    flag().store(signal as usize, Ordering::SeqCst);
}

/// Lowers the flag (after an SDK caller handled the interrupt).
pub fn reset() {
    flag().store(0, Ordering::SeqCst);
    up().store(false, Ordering::SeqCst);
}
