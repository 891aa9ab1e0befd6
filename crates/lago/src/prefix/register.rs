//! The host's register of environments (`lago envs`): every prefix lago made for this user,
//! whichever front end made it (the CLI's `init`, the SDK's, the pytest plugin's), so that
//! environments left behind (a kept failed test, a forgotten `lago init`) can be found and ended.
//!
//! One JSON file per user, `environments.json` in the user's state directory:
//! `$XDG_STATE_HOME/lago` when `XDG_STATE_HOME` is set (for root too), else lago's state
//! directory (`~/.local/state/lago`; root's is `/var/lib/lago`). So `sudo lago envs` (whose
//! environment has no `XDG_STATE_HOME`) lists root's environments, not the user's: each user
//! sees and ends the environments they made, which are the ones they may destroy. An entry is written when `init` made a prefix and removed when
//! the prefix is destroyed. Every change is a read-modify-write under the file lock
//! `environments.lock` beside it ([`crate::host::lock::FileLock`]) and the file is replaced
//! atomically, so concurrent writers (parallel tests, several shells) lose nothing. An entry whose
//! prefix was removed by hand is *gone*: [`Register::list`] reports it once and prunes it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::host::lock::{FileLock, LockError};
use crate::host::pathio::PathError;
use crate::prefix::Prefix;
use crate::report::NoopReporter;

/// The register's file in lago's state directory.
pub const FILE: &str = "environments.json";

/// Why the register cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// Its lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Its file (or its directory) could not be read or written.
    #[error(transparent)]
    Io(#[from] PathError),
    /// Its file is not the register lago writes.
    #[error("{path} is not lago's register of environments: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// One environment of the register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The prefix's absolute path.
    pub prefix: PathBuf,
    /// Its workdir, when it is in one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<PathBuf>,
    /// When it was made (seconds since the epoch).
    pub created: u64,
    /// The user who made it.
    pub user: String,
    /// The command that made it (`lago init suite.yaml`, `python3 -m pytest`).
    pub command: String,
    /// Who keeps it past its use (`pytest tests/test_a.py::test_b`), if anyone said so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_by: Option<String>,
}

impl Entry {
    /// The entry of `prefix` made now by this process.
    pub fn new(prefix: &Path) -> Self {
        let prefix = clean(prefix);
        let prefix = prefix.as_path();
        let workdir =
            prefix.parent().filter(|d| d.join(crate::prefix::workdir::CURRENT).is_symlink()).map(Path::to_path_buf);
        Self { prefix: prefix.to_owned(), workdir, created: now(), user: user(), command: command(), kept_by: None }
    }

    /// Who keeps it: whoever said so, else its maker and the command (`alice: lago init a.yaml`).
    pub fn keeper(&self) -> String {
        self.kept_by.clone().unwrap_or_else(|| format!("{}: {}", self.user, self.command))
    }
}

/// An entry as [`Register::list`] finds it on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The register's entry.
    pub entry: Entry,
    /// Its providers (those of its VMs, `local-qemu` when it has none), `-` when it is gone.
    pub provider: String,
    /// Its state: `running`, `running N/M` (of its `local-qemu` VMs), `stopped`, `uninitialized`
    /// (after `lago cleanup`), `not local` (no `local-qemu` VM: its VMs' state is their
    /// provider's), or `gone` (the prefix was removed without lago: the entry is pruned).
    pub state: String,
    /// How long ago it was made.
    pub age: Duration,
}

impl Listed {
    /// Whether its prefix is gone.
    pub fn gone(&self) -> bool {
        self.state == GONE
    }
}

/// The state of an entry whose prefix is gone.
pub const GONE: &str = "gone";

/// The register of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    file: PathBuf,
}

impl Register {
    /// The register in lago's state directory `state_dir`.
    pub fn in_state_dir(state_dir: &Path) -> Self {
        Self { file: state_dir.join(FILE) }
    }

    /// The register of this process's user, whose lago state directory is `state_dir`: in
    /// `$XDG_STATE_HOME/lago` when that is set to an absolute path (root's state directory
    /// ignores it otherwise), else in `state_dir`.
    pub fn of_user(state_dir: &Path) -> Self {
        match std::env::var_os("XDG_STATE_HOME").map(PathBuf::from) {
            Some(xdg) if xdg.is_absolute() => Self::in_state_dir(&xdg.join("lago")),
            _ => Self::in_state_dir(state_dir),
        }
    }

    /// The register kept in `file`.
    pub fn at(file: &Path) -> Self {
        Self { file: file.to_owned() }
    }

    /// Its file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Runs `change` on the entries under the register's lock and writes them back when it says
    /// so (returns `true`). A missing register is empty.
    fn update<T>(&self, change: impl FnOnce(&mut Vec<Entry>) -> (bool, T)) -> Result<T, RegisterError> {
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).map_err(crate::host::pathio::at("create", dir))?;
        }
        let lock = crate::host::pathio::beside(&self.file, "lock");
        let _held = FileLock::acquire(&lock, &NoopReporter, "Waiting for the register of environments", None)?;
        let mut entries = self.read()?;
        let (write, out) = change(&mut entries);
        if write {
            let text = serde_json::to_string_pretty(&entries).unwrap_or_default();
            crate::host::pathio::write_atomic(&self.file, format!("{text}\n").as_bytes())?;
        }
        Ok(out)
    }

    /// The entries as written (none when there is no register yet).
    pub fn read(&self) -> Result<Vec<Entry>, RegisterError> {
        let text = match crate::host::pathio::read_text(&self.file, crate::host::pathio::MAX_STATE) {
            Ok(t) => t,
            Err(e) if e.source.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_str(&text)
            .map_err(|e| RegisterError::Corrupt { path: self.file.clone(), reason: e.to_string() })
    }

    /// Adds `entry`, replacing an earlier one of the same prefix (a prefix made again).
    pub fn add(&self, entry: Entry) -> Result<(), RegisterError> {
        self.update(|entries| {
            entries.retain(|e| e.prefix != entry.prefix);
            entries.push(entry);
            (true, ())
        })
    }

    /// Removes the entry of `prefix`: whether there was one.
    pub fn remove(&self, prefix: &Path) -> Result<bool, RegisterError> {
        if !self.file.exists() {
            return Ok(false);
        }
        let prefix = clean(prefix);
        let prefix = prefix.as_path();
        self.update(|entries| {
            let before = entries.len();
            entries.retain(|e| e.prefix.as_path() != prefix);
            let removed = entries.len() != before;
            (removed, removed)
        })
    }

    /// Says who keeps the environment of `prefix` (a test that failed): registers it first when
    /// the register did not know it. Returns its entry.
    pub fn keep(&self, prefix: &Path, who: &str) -> Result<Entry, RegisterError> {
        let prefix = clean(prefix);
        let prefix = prefix.as_path();
        self.update(|entries| {
            if !entries.iter().any(|e| e.prefix.as_path() == prefix) {
                entries.push(Entry::new(prefix));
            }
            let entry = entries.iter_mut().find(|e| e.prefix.as_path() == prefix).expect("just added");
            entry.kept_by = Some(who.to_owned());
            (true, entry.clone())
        })
    }

    /// The environments of the register as they are on the host, oldest first. Those whose
    /// prefix is gone are listed (state `gone`) and pruned from the register.
    pub fn list(&self) -> Result<Vec<Listed>, RegisterError> {
        if !self.file.exists() {
            return Ok(Vec::new());
        }
        let now = now();
        self.update(|entries| {
            let mut listed: Vec<Listed> = entries.iter().map(|e| look(e, now)).collect();
            listed.sort_by(|a, b| (a.entry.created, &a.entry.prefix).cmp(&(b.entry.created, &b.entry.prefix)));
            let before = entries.len();
            entries.retain(|e| !is_gone(&e.prefix));
            (entries.len() != before, listed)
        })
    }
}

/// Registers the prefix at `prefix`, just made by this process. The register is bookkeeping: a
/// register that cannot be written is a warning in the log, never a failure of `init`.
pub fn record(register: &Register, prefix: &Path) {
    if let Err(e) = register.add(Entry::new(prefix)) {
        tracing::warn!("cannot add {} to the register of environments: {e}", prefix.display());
    }
}

/// Takes the prefix at `prefix`, just destroyed, off the register (a warning in the log when the
/// register cannot be written: `lago envs` lists it as gone then, and prunes it).
pub fn forget(register: &Register, prefix: &Path) {
    if let Err(e) = register.remove(prefix) {
        tracing::warn!("cannot take {} off the register of environments: {e}", prefix.display());
    }
}

/// `path` made absolute with its `.` and `..` resolved by their names (`/w/a/../b` is `/w/b`),
/// so that the path `init` was given and the one `destroy` is given name one entry.
fn clean(path: &Path) -> PathBuf {
    use std::path::Component;
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Whether the prefix at `path` is gone (it has no `uuid`, the mark of a prefix).
fn is_gone(path: &Path) -> bool {
    !crate::prefix::Layout::new(path).uuid().is_file()
}

/// What `entry`'s prefix is now.
fn look(entry: &Entry, now: u64) -> Listed {
    let age = Duration::from_secs(now.saturating_sub(entry.created));
    if is_gone(&entry.prefix) {
        return Listed { entry: entry.clone(), provider: "-".into(), state: GONE.into(), age };
    }
    let prefix = Prefix { path: entry.prefix.clone() };
    let layout = prefix.layout();
    let vms: Vec<(String, String)> = prefix
        .virt_env()
        .map(|v| {
            v.vms
                .iter()
                .map(|(name, doc)| {
                    let provider = doc.get("vm-provider").and_then(|p| p.as_str()).unwrap_or("local-qemu");
                    (name.clone(), provider.to_owned())
                })
                .collect()
        })
        .unwrap_or_default();
    let mut providers: Vec<&str> = vms.iter().map(|(_, p)| p.as_str()).collect();
    providers.sort_unstable();
    providers.dedup();
    let provider = if providers.is_empty() { "local-qemu".to_owned() } else { providers.join(",") };
    let local: Vec<&String> = vms.iter().filter(|(_, p)| p == "local-qemu").map(|(n, _)| n).collect();
    let running = local.iter().filter(|vm| crate::prefix::running_pid(&layout.pid(vm)).is_some()).count();
    let state = if !layout.initialized().is_file() {
        "uninitialized".to_owned()
    } else if local.is_empty() {
        if vms.is_empty() { "stopped".to_owned() } else { "not local".to_owned() }
    } else if running == 0 {
        "stopped".to_owned()
    } else if running == local.len() {
        "running".to_owned()
    } else {
        format!("running {running}/{}", local.len())
    };
    Listed { entry: entry.clone(), provider, state, age }
}

/// Seconds since the epoch.
fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// This process's user's name (its uid when it has none).
fn user() -> String {
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid).ok().flatten().map(|u| u.name).unwrap_or_else(|| uid.to_string())
}

/// This process's command line, its program by its file name, cut at 200 characters.
fn command() -> String {
    let raw = std::fs::read("/proc/self/cmdline").unwrap_or_default();
    let mut words: Vec<String> =
        raw.split(|b| *b == 0).filter(|w| !w.is_empty()).map(|w| String::from_utf8_lossy(w).into_owned()).collect();
    if let Some(first) = words.first_mut()
        && let Some(name) = Path::new(first.as_str()).file_name()
    {
        *first = name.to_string_lossy().into_owned();
    }
    let line = words.iter().map(|w| crate::host::ssh::quote(w)).collect::<Vec<_>>().join(" ");
    if line.chars().count() > 200 { format!("{}...", line.chars().take(197).collect::<String>()) } else { line }
}

/// Why a duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not a duration: expected a number and a unit (s, m, h, d), e.g. 0s, 90m, 2h, 1d, 1h30m")]
pub struct DurationError {
    /// What was given.
    pub given: String,
}

/// Reads a duration of `lago envs --destroy-older-than`: numbers with units `s`, `m`, `h`, `d`
/// (`0s`, `90m`, `2h`, `1d`, `1h30m`).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let err = || DurationError { given: text.to_owned() };
    let text = text.trim();
    if text.is_empty() {
        return Err(err());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(err()),
        };
        let n: u64 = digits.parse().map_err(|_| err())?;
        total = n.checked_mul(unit).and_then(|s| total.checked_add(s)).ok_or_else(err)?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(err());
    }
    Ok(Duration::from_secs(total))
}

/// An age as `lago envs` shows it: its largest unit or two (`45s`, `12m`, `3h05m`, `2d04h`).
pub fn format_age(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix_in(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.join("virt")).unwrap();
        std::fs::write(p.join("uuid"), "u").unwrap();
        std::fs::write(p.join("initialized"), "").unwrap();
        std::fs::write(p.join("virt/env"), r#"{"nets": [], "vms": []}"#).unwrap();
        p
    }

    #[test]
    fn add_keep_remove_and_a_prefix_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Register::in_state_dir(&dir.path().join("state"));
        assert_eq!(reg.list().unwrap(), []);
        assert!(!reg.remove(Path::new("/nowhere")).unwrap());
        assert!(!reg.file().exists(), "removing from no register writes none");
        let p = prefix_in(dir.path(), "a");
        reg.add(Entry::new(&p)).unwrap();
        reg.add(Entry::new(&p)).unwrap();
        let entries = reg.read().unwrap();
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert!(entries[0].keeper().starts_with(&format!("{}: ", user())), "{}", entries[0].keeper());
        let kept = reg.keep(&p, "pytest t.py::test_x").unwrap();
        assert_eq!(kept.keeper(), "pytest t.py::test_x");
        let listed = reg.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].state.as_str(), listed[0].provider.as_str()), ("stopped", "local-qemu"));
        assert!(reg.remove(&p).unwrap());
        assert_eq!(reg.read().unwrap(), []);
        // Keeping an environment the register did not know registers it.
        reg.keep(&p, "someone").unwrap();
        assert_eq!(reg.read().unwrap().len(), 1);
    }

    #[test]
    fn a_prefix_removed_by_hand_is_listed_gone_once_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Register::in_state_dir(dir.path());
        let (a, b) = (prefix_in(dir.path(), "a"), prefix_in(dir.path(), "b"));
        reg.add(Entry::new(&a)).unwrap();
        reg.add(Entry::new(&b)).unwrap();
        std::fs::remove_dir_all(&a).unwrap();
        let listed = reg.list().unwrap();
        let states: Vec<(&Path, &str)> = listed.iter().map(|l| (l.entry.prefix.as_path(), l.state.as_str())).collect();
        assert_eq!(states, [(a.as_path(), GONE), (b.as_path(), "stopped")]);
        assert!(listed[0].gone());
        let left: Vec<PathBuf> = reg.read().unwrap().into_iter().map(|e| e.prefix).collect();
        assert_eq!(left, [b]);
        assert_eq!(reg.list().unwrap().len(), 1);
    }

    #[test]
    fn states_of_a_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Register::in_state_dir(dir.path());
        let p = prefix_in(dir.path(), "p");
        std::fs::write(p.join("virt/env"), r#"{"nets": [], "vms": ["vm01", "vm02"]}"#).unwrap();
        std::fs::write(p.join("virt/vm-vm01"), r#"{"name": "vm01"}"#).unwrap();
        std::fs::write(p.join("virt/vm-vm02"), r#"{"name": "vm02", "vm-provider": "ssh"}"#).unwrap();
        reg.add(Entry::new(&p)).unwrap();
        let one = |reg: &Register| {
            let l = reg.list().unwrap().remove(0);
            (l.provider, l.state)
        };
        assert_eq!(one(&reg), ("local-qemu,ssh".to_owned(), "stopped".to_owned()));
        // A process owning `run/vm01.pid`, as qemu's `-pidfile` does.
        std::fs::create_dir_all(p.join("run")).unwrap();
        let pid_file = p.join("run/vm01.pid");
        let mut child = std::process::Command::new("tail").args(["-f", "/dev/null"]).arg(&pid_file).spawn().unwrap();
        std::fs::write(&pid_file, child.id().to_string()).unwrap();
        while crate::prefix::running_pid(&pid_file).is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(one(&reg).1, "running");
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(one(&reg).1, "stopped");
        std::fs::remove_file(p.join("initialized")).unwrap();
        assert_eq!(one(&reg).1, "uninitialized");
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Register::in_state_dir(dir.path());
        std::thread::scope(|s| {
            for t in 0..8 {
                let reg = &reg;
                s.spawn(move || {
                    for i in 0..10 {
                        reg.add(Entry::new(&PathBuf::from(format!("/p/{t}/{i}")))).unwrap();
                    }
                });
            }
        });
        assert_eq!(reg.read().unwrap().len(), 80);
        std::thread::scope(|s| {
            for t in 0..8 {
                let reg = &reg;
                s.spawn(move || {
                    for i in (0..10).step_by(2) {
                        assert!(reg.remove(&PathBuf::from(format!("/p/{t}/{i}"))).unwrap());
                    }
                });
            }
        });
        assert_eq!(reg.read().unwrap().len(), 40);
    }

    #[test]
    fn a_corrupt_register_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Register::in_state_dir(dir.path());
        std::fs::write(reg.file(), "{not json").unwrap();
        let err = reg.list().unwrap_err().to_string();
        assert!(err.contains("environments.json is not lago's register of environments"), "{err}");
    }

    #[test]
    fn one_entry_whatever_the_spelling_of_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Register::in_state_dir(dir.path());
        let p = prefix_in(dir.path(), "a");
        let spelled = dir.path().join("x/../a/.");
        reg.add(Entry::new(&spelled)).unwrap();
        assert_eq!(reg.read().unwrap()[0].prefix, p);
        assert!(reg.remove(&p).unwrap());
    }

    #[test]
    fn durations() {
        let secs = |t: &str| parse_duration(t).map(|d| d.as_secs());
        assert_eq!(secs("0s"), Ok(0));
        assert_eq!(secs("90m"), Ok(5400));
        assert_eq!(secs("2h"), Ok(7200));
        assert_eq!(secs("1d"), Ok(86400));
        assert_eq!(secs("1h30m"), Ok(5400));
        for bad in ["", "5", "m", "1x", "-1h", "1.5h", "99999999999999999999d", "1h 2m"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.to_string().contains("is not a duration"), "{bad}: {e}");
        }
        let age = |s| format_age(Duration::from_secs(s));
        assert_eq!(
            [age(0), age(59), age(60), age(3599), age(3600 + 5 * 60), age(2 * 86400 + 4 * 3600)],
            ["0s", "59s", "1m", "59m", "1h05m", "2d04h"]
        );
    }
}
