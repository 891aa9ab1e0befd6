//! A prefix: one environment on disk (reference §3.1, DESIGN §4).
//!
//! ```text
//! <prefix>/
//!   initialized  uuid  metadata  id_rsa  id_rsa.pub
//!   images/  virt/{env,net-<n>,vm-<n>}  scripts/  logs/lago.log  run/
//! ```
//! This module knows the paths, reads the persisted plan (`virt/`, in the original's JSON shape,
//! so prefixes written by the original Lago can be read), and stops, cleans up and destroys.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::report::{Reporter, task};
use crate::workdir::{Workdir, WorkdirError, io_err};

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

/// An environment on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    /// Its absolute path.
    pub path: PathBuf,
}

/// The persisted plan of a prefix, as JSON documents in the original's shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VirtEnv {
    /// `virt/net-<name>` documents, in `virt/env` order.
    pub nets: Vec<(String, Map<String, Value>)>,
    /// `virt/vm-<name>` documents, in `virt/env` order.
    pub vms: Vec<(String, Map<String, Value>)>,
}

impl Prefix {
    /// Opens the prefix at `path`.
    pub fn open(path: &Path) -> Result<Self, PrefixError> {
        let path = std::path::absolute(path).map_err(io_err("resolve", path))?;
        if !path.join("uuid").is_file() {
            return Err(PrefixError::NotAPrefix { path });
        }
        Ok(Self { path })
    }

    /// Whether `path` looks like a prefix (has `initialized`).
    pub fn is_prefix(path: &Path) -> bool {
        path.join("initialized").is_file()
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
        self.join("id_rsa")
    }

    /// The environment's UUID.
    pub fn uuid(&self) -> Result<String, PrefixError> {
        let p = self.join("uuid");
        std::fs::read_to_string(&p).map(|s| s.trim().to_owned()).map_err(|source| PrefixError::Read { path: p, source })
    }

    /// Reads `virt/env` and the documents it names.
    pub fn virt_env(&self) -> Result<VirtEnv, PrefixError> {
        let env = read_json(&self.join("virt/env"))?;
        let names = |key: &str| -> Vec<String> {
            env.get(key)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        };
        let load = |kind: &str, name: String| -> Result<(String, Map<String, Value>), PrefixError> {
            let p = self.join(&format!("virt/{kind}-{name}"));
            match read_json(&p)? {
                Value::Object(m) => Ok((name, m)),
                _ => Err(PrefixError::Corrupt { path: p, reason: "expected a JSON object".into() }),
            }
        };
        Ok(VirtEnv {
            nets: names("nets").into_iter().map(|n| load("net", n)).collect::<Result<_, _>>()?,
            vms: names("vms").into_iter().map(|n| load("vm", n)).collect::<Result<_, _>>()?,
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
            if let Some(pid) = std::fs::read_to_string(&p).ok().and_then(|s| s.trim().parse::<i32>().ok())
                && process_names(pid, &self.path)
            {
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
                while process_names(*pid, &self.path) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                if process_names(*pid, &self.path) {
                    tracing::warn!("{what} (pid {pid}) ignored SIGTERM, killing it");
                    let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
                }
            }
            crate::ssh::close_all(&self.path);
            // Runtime files of processes; `state.json` (segment leases) stays until destroy.
            if let Ok(entries) = std::fs::read_dir(self.join("run")) {
                for e in entries.flatten() {
                    let p = e.path();
                    if p.extension().is_some_and(|x| x == "pid" || x == "qmp" || x == "console" || x == "ssh") {
                        let _ = std::fs::remove_file(p);
                    }
                }
            }
            Ok(())
        })
    }

    /// `lago cleanup`: stops everything and marks the prefix uninitialized.
    pub fn cleanup(&self, reporter: &dyn Reporter) -> Result<(), PrefixError> {
        task(reporter, "Cleanup prefix", || {
            self.stop_all(reporter)?;
            task(reporter, "Tag prefix as uninitialized", || {
                let marker = self.join("initialized");
                match std::fs::remove_file(&marker) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(io_err("remove", &marker)(e).into()),
                }
            })
        })
    }

    /// `lago destroy`: stops everything and removes the prefix; in a workdir, keeps `current`
    /// valid (or removes the workdir when this was its last prefix).
    pub fn destroy(&self, reporter: &dyn Reporter) -> Result<(), PrefixError> {
        self.stop_all(reporter)?;
        self.remove(reporter)
    }

    /// Removes the prefix directory (its processes must be stopped already) and keeps the
    /// workdir's `current` valid.
    pub fn remove(&self, reporter: &dyn Reporter) -> Result<(), PrefixError> {
        task(reporter, &format!("Remove prefix {}", self.path.display()), || {
            std::fs::remove_dir_all(&self.path).map_err(io_err("remove", &self.path))?;
            if let Some(parent) = self.path.parent()
                && parent.join(crate::workdir::CURRENT).is_symlink()
            {
                Workdir { path: parent.to_owned() }.repair()?;
            }
            Ok(())
        })
    }
}

/// Whether `pid` is alive and its command line names `prefix`.
pub fn process_names(pid: i32, prefix: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    if std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')))
    {
        return false; // a zombie is gone for our purposes
    }
    let needle = prefix.as_os_str().as_encoded_bytes();
    cmdline.windows(needle.len()).any(|w| w == needle)
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> Result<Value, PrefixError> {
    let text = std::fs::read_to_string(path).map_err(|source| PrefixError::Read { path: path.to_owned(), source })?;
    serde_json::from_str(&text).map_err(|e| PrefixError::Corrupt { path: path.to_owned(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::NoopReporter;

    #[test]
    fn stop_all_kills_only_processes_naming_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("p");
        std::fs::create_dir_all(prefix.join("run")).unwrap();
        std::fs::write(prefix.join("uuid"), "u").unwrap();
        // A single process whose command line names the prefix (as qemu's does).
        let mut child = std::process::Command::new("tail")
            .args(["-f", "/dev/null"])
            .arg(prefix.join("uuid"))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // After a vfork-style spawn, the kernel sets the new command line a moment later.
        for _ in 0..200 {
            if std::fs::read(format!("/proc/{}/cmdline", child.id())).is_ok_and(|c| !c.is_empty()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::fs::write(prefix.join("run/vm0.pid"), child.id().to_string()).unwrap();
        // A pid that does not name the prefix (ours) must be left alone.
        std::fs::write(prefix.join("run/other.pid"), std::process::id().to_string()).unwrap();
        let p = Prefix::open(&prefix).unwrap();
        assert_eq!(p.processes(), [("vm0".to_owned(), child.id() as i32)]);
        p.stop_all(&NoopReporter).unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert!(std::fs::read_dir(prefix.join("run")).unwrap().next().is_none());
        // `stop_all` of nothing is fine.
        p.stop_all(&NoopReporter).unwrap();
    }
}
