//! A prefix: one environment on disk (reference §3.1, DESIGN §4).
//!
//! ```text
//! <prefix>/
//!   initialized  uuid  metadata  id_rsa  id_rsa.pub
//!   images/  virt/{env,net-<n>,vm-<n>}  scripts/  logs/lago.log  run/
//! ```
//! This module knows the paths, reads the persisted plan (`virt/`, in the original's JSON shape,
//! so prefixes written by the original Lago can be read), and stops, cleans up and destroys.

pub mod frozen;
pub mod layout;
pub mod leases;
pub mod memory;
pub mod records;
pub mod register;
pub mod state;
pub mod workdir;

pub use layout::{Layout, ensure_runtime_dir, remove_runtime_dir, runtime_dir, socket_path};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::prefix::workdir::{Workdir, WorkdirError, io_err};
use crate::report::{Reporter, task};

/// Problems with a prefix.
#[derive(Debug, thiserror::Error)]
pub enum PrefixError {
    /// The directory is not a prefix.
    #[error("{path} is not a lago prefix (no `uuid` file)")]
    NotAPrefix {
        /// The directory.
        path: PathBuf,
    },
    /// A persisted file cannot be read.
    #[error("Cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A persisted file is not the JSON expected.
    #[error("{path} is not valid lago state: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Workdir or filesystem failure.
    #[error(transparent)]
    Workdir(#[from] WorkdirError),
    /// The prefix lock could not be taken.
    #[error(transparent)]
    Lock(#[from] crate::host::lock::LockError),
    /// A process of the environment could not be stopped.
    #[error("Cannot stop process {pid} ({what}) of prefix {prefix}")]
    Stop {
        /// The pid.
        pid: i32,
        /// What it is.
        what: String,
        /// The prefix.
        prefix: PathBuf,
        /// Why.
        #[source]
        source: nix::Error,
    },
}

/// The key of a prefix's `metadata` saying that its records keep every key of the init file
/// and add none of lago's to disks (see [`Prefix::records_as_written`]).
pub const RECORDS_AS_WRITTEN: &str = "records_as_written";

/// An environment on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    /// Its absolute path.
    pub path: PathBuf,
}

/// A persisted document (`virt/vm-*`, `virt/net-*`) and its name.
pub type Record = (String, Map<String, Value>);

/// The persisted plan of a prefix, as JSON documents in the original's shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VirtEnv {
    /// `virt/net-<name>` documents, in `virt/env` order.
    pub nets: Vec<Record>,
    /// `virt/vm-<name>` documents, in `virt/env` order.
    pub vms: Vec<Record>,
}

impl Prefix {
    /// Opens the prefix at `path`.
    pub fn open(path: &Path) -> Result<Self, PrefixError> {
        let path = std::path::absolute(path).map_err(io_err("resolve", path))?;
        if !Layout::new(&path).uuid().is_file() {
            return Err(PrefixError::NotAPrefix { path });
        }
        Ok(Self { path })
    }

    /// Whether `path` looks like a prefix (has `initialized`).
    pub fn is_prefix(path: &Path) -> bool {
        Layout::new(path).initialized().is_file()
    }

    /// Its paths.
    pub fn layout(&self) -> Layout {
        Layout::new(&self.path)
    }

    /// The prefix's name (its directory name).
    pub fn name(&self) -> String {
        self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    }

    /// `<prefix>/<rel>`.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// The private key of the environment.
    pub fn ssh_key(&self) -> PathBuf {
        self.layout().ssh_key()
    }

    /// The environment's UUID.
    pub fn uuid(&self) -> Result<String, PrefixError> {
        let p = self.layout().uuid();
        std::fs::read_to_string(&p).map(|s| s.trim().to_owned()).map_err(|source| PrefixError::Read { path: p, source })
    }

    /// Whether its records keep the init file as written (`records_as_written` in its
    /// `metadata`, from this version of lago on). Earlier versions of lago added keys of their
    /// own to the disks (`template_version`, `template_type`), which their readers leave out
    /// where the original's shapes are shown; prefixes of the original have no such keys.
    pub fn records_as_written(&self) -> bool {
        crate::host::pathio::read_text(&self.layout().metadata(), 64 * 1024)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|m| m.get(RECORDS_AS_WRITTEN).and_then(Value::as_bool))
            .unwrap_or(false)
    }

    /// Reads `virt/env` and the documents it names.
    pub fn virt_env(&self) -> Result<VirtEnv, PrefixError> {
        let env_path = self.layout().virt_env();
        let env = read_json(&env_path)?;
        // The original's shape, strictly: a state that lost its VMs must not look like an
        // environment without VMs (`destroy` would then leave them running).
        let names = |key: &str| -> Result<Vec<String>, PrefixError> {
            let corrupt = || PrefixError::Corrupt {
                path: env_path.clone(),
                reason: format!(
                    "expected {{\"nets\": [names], \"vms\": [names]}}, `{key}` is missing or not a list of names"
                ),
            };
            let list = env.get(key).and_then(Value::as_array).ok_or_else(corrupt)?;
            // Names become file names (`virt/vm-<name>`): nothing that leaves `virt/`.
            let sound = |n: &str| {
                !n.is_empty() && n.len() <= 255 && !n.contains('/') && !n.contains('\0') && n != "." && n != ".."
            };
            list.iter().map(|v| v.as_str().filter(|n| sound(n)).map(str::to_owned).ok_or_else(corrupt)).collect()
        };
        let (net_names, vm_names) = (names("nets")?, names("vms")?);
        let layout = self.layout();
        let load = |path: PathBuf, name: String| -> Result<Record, PrefixError> { Ok((name, read_document(&path)?)) };
        Ok(VirtEnv {
            nets: net_names.into_iter().map(|n| load(layout.net_record(&n), n)).collect::<Result<_, _>>()?,
            vms: vm_names.into_iter().map(|n| load(layout.vm_record(&n), n)).collect::<Result<_, _>>()?,
        })
    }

    /// Processes the environment left running, from `run/*.pid` (only those whose command line
    /// names this prefix, so a reused pid is never touched).
    pub fn processes(&self) -> Vec<(String, i32)> {
        let mut found = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.join("run")) else { return found };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "pid") {
                continue;
            }
            let what = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            if let Some(pid) = running_pid(&p) {
                found.push((what, pid));
            }
        }
        found.sort();
        found
    }

    /// Stops every process of the environment: SIGTERM, then SIGKILL after a grace period.
    pub fn stop_all(&self, reporter: &dyn Reporter) -> Result<(), PrefixError> {
        task(reporter, "Stop prefix", || {
            use nix::sys::signal::{Signal, kill};
            use nix::unistd::Pid;
            let procs = self.processes();
            // Their own memory files go with them.
            let memory: Vec<PathBuf> = procs
                .iter()
                .filter_map(|(_, pid)| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
                .filter_map(|c| crate::prefix::memory::own_memory_file(&c))
                .collect();
            for (what, pid) in &procs {
                tracing::info!("stopping {what} (pid {pid})");
                match kill(Pid::from_raw(*pid), Signal::SIGTERM) {
                    Ok(()) | Err(nix::Error::ESRCH) => {}
                    Err(source) => {
                        return Err(PrefixError::Stop {
                            pid: *pid,
                            what: what.clone(),
                            prefix: self.path.clone(),
                            source,
                        });
                    }
                }
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            for (what, pid) in &procs {
                let pid_file = self.layout().pid(what);
                while owns(*pid, &pid_file) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                if owns(*pid, &pid_file) {
                    tracing::warn!("{what} (pid {pid}) ignored SIGTERM, killing it");
                    let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
                }
            }
            for file in &memory {
                let _ = std::fs::remove_file(file);
            }
            crate::host::ssh::close_masters(&runtime_dir(&self.path));
            // Runtime files of processes; `state.json` (faults in force) stays until destroy.
            if let Ok(entries) = std::fs::read_dir(self.join("run")) {
                for e in entries.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "pid")) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
            remove_runtime_dir(&self.path);
            Ok(())
        })
    }

    /// `lago cleanup`: stops everything and marks the prefix uninitialized.
    pub fn cleanup(&self, reporter: &dyn Reporter) -> Result<(), PrefixError> {
        let _lock = crate::host::lock::acquire(&self.path, "cleanup", reporter)?;
        task(reporter, "Cleanup prefix", || {
            self.stop_all(reporter)?;
            task(reporter, "Tag prefix as uninitialized", || {
                let marker = self.layout().initialized();
                match std::fs::remove_file(&marker) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(io_err("remove", &marker)(e).into()),
                }
            })
        })
    }

    /// `lago destroy` of a prefix whose environment cannot be read: stops its processes and
    /// removes it, under its lock; in a workdir, keeps `current` valid (or removes the workdir
    /// when this was its last prefix).
    pub fn destroy(&self, reporter: &dyn Reporter) -> Result<(), PrefixError> {
        let lock = crate::host::lock::acquire(&self.path, "destroy", reporter)?;
        self.stop_all(reporter)?;
        self.remove(reporter)?;
        lock.remove_file();
        drop(lock);
        self.repair_workdir()
    }

    /// Removes the prefix directory (its processes must be stopped and its lock held). It is
    /// first renamed to `.<name>.destroy-<pid>` beside it, so an interrupted removal leaves
    /// nothing that looks like a prefix, and the next command sweeps the rest.
    pub fn remove(&self, reporter: &dyn Reporter) -> Result<(), PrefixError> {
        task(reporter, &format!("Remove prefix {}", self.path.display()), || {
            let parent = self.path.parent().unwrap_or(Path::new("/"));
            let trash = parent.join(format!(".{}.destroy-{}", self.name(), std::process::id()));
            let target = match std::fs::rename(&self.path, &trash) {
                Ok(()) => trash,
                Err(_) => self.path.clone(),
            };
            std::fs::remove_dir_all(&target).map_err(io_err("remove", &self.path))?;
            remove_runtime_dir(&self.path);
            Ok(())
        })
    }

    /// After the prefix was removed: keeps its workdir's `current` valid, or removes the workdir
    /// when nothing is left in it.
    pub fn repair_workdir(&self) -> Result<(), PrefixError> {
        if let Some(parent) = self.path.parent()
            && parent.join(crate::prefix::workdir::CURRENT).is_symlink()
        {
            Workdir { path: parent.to_owned() }.repair()?;
        }
        Ok(())
    }
}

/// The prefix's file naming the store images its disks are backed by, one a line (written by
/// `init`, read by `destroy` to take the prefix off their users).
pub const STORE_USES: &str = "store-uses";

/// Whether `pid` is alive and is the process whose pid file is `pid_file`: one of its
/// arguments is exactly that path (qemu's `-pidfile`), so neither a reused pid nor a process of
/// another prefix whose path merely starts the same (`default` and `default2`) is taken.
pub fn owns(pid: i32, pid_file: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    if std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')))
    {
        return false; // a zombie is gone for our purposes
    }
    let needle = pid_file.as_os_str().as_encoded_bytes();
    cmdline.split(|b| *b == 0).any(|arg| arg == needle)
}

/// The pid in `pid_file` if that process runs and owns the file (see [`owns`]).
pub fn running_pid(pid_file: &Path) -> Option<i32> {
    let pid = std::fs::read_to_string(pid_file).ok()?.trim().parse::<i32>().ok()?;
    owns(pid, pid_file).then_some(pid)
}

/// Ends the process `pid_file` names, if it runs: SIGTERM, then SIGKILL when it still runs
/// after `grace`. Returns once it is gone (a zombie is gone), or a second after the SIGKILL.
/// It waits on the process, not on its pid file: lago's helpers (switches, relays) remove their
/// own pid file as they end, and a Python interpreter (the SDK runs them through it) still runs
/// for a while after that.
pub fn terminate(pid_file: &Path, grace: Duration) {
    use nix::sys::signal::{Signal, kill};
    let Some(pid) = running_pid(pid_file) else { return };
    let wait = |until: Instant| {
        while owns(pid, pid_file) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM);
    wait(Instant::now() + grace);
    if owns(pid, pid_file) {
        let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        wait(Instant::now() + Duration::from_secs(1));
    }
}

/// Reads a record (`virt/vm-*`, `virt/net-*`): a JSON object.
pub fn read_document(path: &Path) -> Result<Map<String, Value>, PrefixError> {
    match read_json(path)? {
        Value::Object(m) => Ok(m),
        _ => Err(PrefixError::Corrupt { path: path.to_owned(), reason: "expected a JSON object".into() }),
    }
}

impl Prefix {
    /// The record of VM `vm` (`virt/vm-<vm>`) as the original wrote it: every key, lago's and
    /// others'.
    pub fn vm_document(&self, vm: &str) -> Result<Map<String, Value>, PrefixError> {
        read_document(&self.layout().vm_record(vm))
    }

    /// Writes the record of VM `vm` (atomically, in the original's JSON layout).
    pub fn save_vm_document(
        &self,
        vm: &str,
        document: &Map<String, Value>,
    ) -> Result<(), crate::host::pathio::PathError> {
        let text = crate::output::python_json(&Value::Object(document.clone()), false);
        crate::host::pathio::write_atomic(&self.layout().vm_record(vm), text.as_bytes())
    }
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> Result<Value, PrefixError> {
    let text = crate::host::pathio::read_text(path, crate::host::pathio::MAX_STATE)
        .map_err(|e| PrefixError::Read { path: path.to_owned(), source: e.source })?;
    serde_json::from_str(&text).map_err(|e| PrefixError::Corrupt { path: path.to_owned(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::NoopReporter;

    /// A helper that removes its own pid file when told to end and still runs a while after
    /// (a Python interpreter winding down): `terminate` returns only once it is gone.
    #[test]
    fn terminate_waits_for_the_process_not_its_pid_file() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("switch-n.pid");
        let script = "trap 'rm -f \"$0\"; sleep 0.3; : > \"$0.done\"; exit 0' TERM; : > \"$0.trapped\"; while :; do sleep 0.05; done";
        let mut child = std::process::Command::new("sh")
            .args(["-c", script])
            .arg(&pid_file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::fs::write(&pid_file, child.id().to_string()).unwrap();
        // Once its trap is set (a SIGTERM before would end it at once).
        let trapped = dir.path().join("switch-n.pid.trapped");
        while running_pid(&pid_file).is_none() || !trapped.exists() {
            std::thread::sleep(Duration::from_millis(5));
        }
        terminate(&pid_file, Duration::from_secs(5));
        // It had done its last work (a process that is exiting reads as gone a moment before
        // it can be reaped).
        assert!(dir.path().join("switch-n.pid.done").exists(), "terminate returned while the process still ran");
        let ended = child.wait().unwrap();
        assert!(ended.success(), "it was killed, not ended by its SIGTERM: {ended:?}");
    }

    /// A process whose arguments name `pid_file`, as qemu's `-pidfile` does.
    fn process_with(pid_file: &Path) -> std::process::Child {
        let child = std::process::Command::new("tail")
            .args(["-f", "/dev/null"])
            .arg(pid_file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // After a vfork-style spawn, the kernel sets the new command line a moment later.
        for _ in 0..200 {
            if std::fs::read(format!("/proc/{}/cmdline", child.id())).is_ok_and(|c| !c.is_empty()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::fs::write(pid_file, child.id().to_string()).unwrap();
        child
    }

    #[test]
    fn stop_all_kills_only_the_prefixs_own_processes() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("default");
        let other = dir.path().join("default2");
        for p in [&prefix, &other] {
            std::fs::create_dir_all(p.join("run")).unwrap();
            std::fs::write(p.join("uuid"), "u").unwrap();
        }
        let mut child = process_with(&prefix.join("run/vm0.pid"));
        // `default2`'s VM of the same name: its path starts with `default`'s, it is not ours.
        let mut neighbour = process_with(&other.join("run/vm0.pid"));
        // A pid that does not own the pid file (ours) must be left alone.
        std::fs::write(prefix.join("run/other.pid"), std::process::id().to_string()).unwrap();
        let p = Prefix::open(&prefix).unwrap();
        assert_eq!(p.processes(), [("vm0".to_owned(), child.id() as i32)]);
        p.stop_all(&NoopReporter).unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert!(std::fs::read_dir(prefix.join("run")).unwrap().next().is_none());
        assert!(owns(neighbour.id() as i32, &other.join("run/vm0.pid")), "default2 keeps running");
        // `stop_all` of nothing is fine.
        p.stop_all(&NoopReporter).unwrap();
        neighbour.kill().unwrap();
        neighbour.wait().unwrap();
    }
}
