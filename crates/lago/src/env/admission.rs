//! Many environments on one host without running out of memory: a `start` or a `fork` that
//! would not fit the host's available memory (`MemAvailable`, less `memory_reserve`), or the
//! tmpfs its VMs' memory files go to, waits in line until it fits, saying so on a live line, or
//! fails at once naming the shortfall (`--no-wait`).
//!
//! The line is a directory of tickets in lago's state directory (`memory-line/`), one file per
//! waiting command, `<nanoseconds>-<pid>`: the oldest ticket whose process lives goes first.
//! What a command was let in with stays reserved for [`HELD_FOR`] after it (a booting guest
//! takes its memory over seconds, which `MemAvailable` does not show yet), so that commands
//! let in one after the other do not each count the same free memory.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Env, EnvError};
use crate::host::memory::human;
use crate::report::Reporter;

/// How long what a command was let in with counts as taken, after it was let in.
pub(crate) const HELD_FOR: Duration = Duration::from_secs(30);

/// Memory a `local-qemu` VM's qemu takes besides its guest's memory: under TCG its code cache
/// (about 110 MiB once a `tiny` guest has booted), less under KVM.
pub(crate) fn qemu_overhead(kvm: bool) -> u64 {
    if kvm { 48 << 20 } else { 128 << 20 }
}

/// What a start or fork asks of the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Need {
    /// What is asked for, for the messages (`3 VMs`, `8 copies of 3 VMs`).
    pub what: String,
    /// Memory, in bytes.
    pub memory: u64,
    /// Room on the tmpfs of memory files, in bytes, and that tmpfs.
    pub tmpfs: Option<(u64, PathBuf)>,
}

/// What the host has for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// `MemAvailable`, in bytes.
    pub available: u64,
    /// `memory_reserve`, in bytes.
    pub reserve: u64,
    /// What commands let in within [`HELD_FOR`] hold, in bytes.
    pub held: u64,
    /// What the tmpfs of memory files has free, in bytes.
    pub tmpfs_free: Option<u64>,
}

/// Why `need` does not fit `room`, in words naming the shortfall; `None` when it fits.
pub fn shortfall(need: &Need, room: &Room) -> Option<String> {
    let usable = room.available.saturating_sub(room.reserve).saturating_sub(room.held);
    if need.memory > usable {
        let held = if room.held > 0 {
            format!(", less {} that commands just let in are taking", human(room.held))
        } else {
            String::new()
        };
        return Some(format!(
            "{} need {} of memory; the host has {} available ({} MemAvailable, less `memory_reserve` {}{held}): {} short",
            need.what,
            human(need.memory),
            human(usable),
            human(room.available),
            human(room.reserve),
            human(need.memory - usable),
        ));
    }
    if let (Some((bytes, dir)), Some(free)) = (&need.tmpfs, room.tmpfs_free)
        && *bytes > free
    {
        return Some(format!(
            "{} need {} for memory files in {}; its tmpfs has {} free: {} short",
            need.what,
            human(*bytes),
            dir.display(),
            human(free),
            human(bytes - free),
        ));
    }
    None
}

/// A place in the line: removed when dropped; the command was let in with `reserved` bytes.
#[derive(Debug)]
pub(crate) struct Ticket {
    path: PathBuf,
    reserved: u64,
}

impl Drop for Ticket {
    /// Leaves the line, keeping what the command was let in with reserved for a while.
    fn drop(&mut self) {
        if self.reserved > 0 {
            let held = self.path.with_file_name(format!("held-{}", ticket_name()));
            if std::fs::write(&held, self.reserved.to_string()).is_ok() {
                let _ = std::fs::remove_file(&self.path);
                return;
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `<nanoseconds since the epoch, 20 digits>-<pid>-<n>`: tickets sort by age.
fn ticket_name() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{nanos:020}-{}-{n}", std::process::id())
}

/// The pid of a ticket's name.
fn pid_of(name: &str) -> Option<i32> {
    name.trim_start_matches("held-").split('-').nth(1)?.parse().ok()
}

/// The tickets of `dir` ahead of `mine` whose process lives (those of ended processes are
/// removed), and the bytes held by commands let in within [`HELD_FOR`].
fn line(dir: &Path, mine: &str) -> (usize, u64) {
    let mut ahead = 0;
    let mut held = 0;
    let now = SystemTime::now();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("held-") {
            let fresh = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() < HELD_FOR);
            if fresh {
                held +=
                    std::fs::read_to_string(entry.path()).ok().and_then(|t| t.trim().parse::<u64>().ok()).unwrap_or(0);
            } else {
                let _ = std::fs::remove_file(entry.path());
            }
            continue;
        }
        let alive = pid_of(&name).is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = std::fs::remove_file(entry.path());
        } else if name.as_str() < mine {
            ahead += 1;
        }
    }
    (ahead, held)
}

impl Env {
    /// The host's room for `need` now, with `held` bytes held by commands just let in.
    fn room(&self, need: &Need, held: u64) -> Room {
        Room {
            available: crate::host::memory::available().unwrap_or(u64::MAX),
            reserve: self.options.memory_reserve,
            held,
            tmpfs_free: need.tmpfs.as_ref().and_then(|(_, dir)| {
                let probe = dir.ancestors().find(|p| p.exists())?;
                crate::host::memory::space(probe).ok().map(|s| s.free)
            }),
        }
    }

    /// Waits in line until `need` fits the host (see the module), or, without `wait` (or
    /// `memory_wait`), fails at once when it does not fit. The returned ticket keeps the place
    /// until the caller's VMs run.
    pub(crate) fn admit(&self, need: &Need, wait: bool, reporter: &dyn Reporter) -> Result<Option<Ticket>, EnvError> {
        let wait = wait && self.options.memory_wait;
        if need.memory == 0 && need.tmpfs.is_none() {
            return Ok(None);
        }
        let dir = &self.options.memory_line;
        let _ = std::fs::create_dir_all(dir);
        let name = ticket_name();
        let path = dir.join(&name);
        let ticket = std::fs::write(&path, need.memory.to_string())
            .ok()
            .map(|()| Ticket { path: path.clone(), reserved: need.memory });
        let began = std::time::Instant::now();
        let mut waited = false;
        let result = loop {
            if let Err(e) = crate::host::interrupt::check() {
                break Err(e.into());
            }
            let (ahead, held) = line(dir, &name);
            let room = self.room(need, held);
            let short = shortfall(need, &room);
            match (&short, ahead) {
                (None, 0) => break Ok(()),
                // Without waiting, the line does not matter: it fits now or it fails.
                (None, _) if !wait => break Ok(()),
                (Some(why), _) if !wait => {
                    break Err(EnvError::NoRoom { why: why.clone() });
                }
                _ => {}
            }
            waited = true;
            let secs = began.elapsed().as_secs();
            let why = match (short, ahead) {
                (Some(why), 0) => format!("Waiting for memory ({secs} s): {why}"),
                (Some(why), n) => format!("Waiting for memory ({secs} s, {n} ahead in line): {why}"),
                (None, n) => format!("Waiting in line for memory ({secs} s): {n} ahead of {}", need.what),
            };
            reporter.waiting(Some(&why));
            std::thread::sleep(Duration::from_millis(250));
        };
        if waited {
            reporter.waiting(None);
        }
        result.map(|()| ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(memory_mib: u64) -> Need {
        Need { what: "3 VMs".into(), memory: memory_mib << 20, tmpfs: None }
    }

    #[test]
    fn a_need_fits_what_is_available_less_the_reserve_and_what_others_hold() {
        let room = Room { available: 4 << 30, reserve: 512 << 20, held: 0, tmpfs_free: None };
        assert_eq!(shortfall(&need(1024), &room), None);
        let short = shortfall(&need(4096), &room).unwrap();
        assert_eq!(
            short,
            "3 VMs need 4.0 GiB of memory; the host has 3.5 GiB available (4.0 GiB MemAvailable, less `memory_reserve` 512 MiB): 512 MiB short"
        );
        let busy = Room { held: 3 << 30, ..room };
        let short = shortfall(&need(1024), &busy).unwrap();
        assert!(short.contains("less 3.0 GiB that commands just let in are taking"), "{short}");
        assert!(short.ends_with("512 MiB short"), "{short}");
        let tmpfs = Need { tmpfs: Some((1 << 30, "/dev/shm/lago-0".into())), ..need(10) };
        let full = Room { tmpfs_free: Some(256 << 20), ..room };
        assert_eq!(
            shortfall(&tmpfs, &full).unwrap(),
            "3 VMs need 1.0 GiB for memory files in /dev/shm/lago-0; its tmpfs has 256 MiB free: 768 MiB short"
        );
    }

    #[test]
    fn the_oldest_living_ticket_goes_first_and_dead_ones_leave_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let first = ticket_name();
        let mine = ticket_name();
        assert!(first < mine);
        std::fs::write(dir.path().join(&first), "1").unwrap();
        // A ticket of a process that ended is no longer in the line.
        std::fs::write(dir.path().join(format!("{:020}-{}-0", 1, i32::MAX)), "1").unwrap();
        std::fs::write(dir.path().join(format!("held-{}", ticket_name())), (5u64 << 20).to_string()).unwrap();
        assert_eq!(line(dir.path(), &mine), (1, 5 << 20));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "the dead ticket was removed");
        // Dropping a ticket leaves what it was let in with held for a while.
        let t = Ticket { path: dir.path().join(&first), reserved: 7 };
        drop(t);
        assert_eq!(line(dir.path(), &mine), (0, (5 << 20) + 7));
    }
}
