//! Frozen states of environments, on disk (`lago fork`, `docs/design.md` "Forks"): what a fork
//! keeps of the environment at the instant it froze it, from which copies start, and which
//! prefixes use it; it goes with the last of them.
//!
//! ```text
//! <directory of the prefixes>/.frozen-<id>/
//!   frozen.json               the manifest: the VMs, their files, the frozen states it builds on
//!   <vm>.state                a VM's device state (qemu's migration stream, no memory)
//!   disks/<vm>-<dev>.qcow2    a VM's disks as they were (the former top layers: read-only now)
//!   skel/                     the prefix as it was: virt/, keys, known_hosts, metadata, scripts/,
//!                             store-uses, images/<vm>-seed.img, run/state.json (faults, forwards)
//! <memory base>/frozen-<id>/<vm>.mem   a VM's memory as it was (on a tmpfs)
//! <prefix>/fork               the frozen states the prefix uses (its disks are overlays on them,
//!                             its VMs map their memory), and the one it is a copy of
//! ```
//!
//! A frozen state is used by the prefix it was frozen from (its disks are overlays on the
//! frozen disks from then on) and by each copy; [`collect`] removes those no prefix of their
//! directory uses, nor another frozen state builds on. A command making copies of a frozen
//! state holds a shared lock on its manifest ([`Frozen::hold`]), which [`collect`] respects.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::host::pathio::{PathError, at};

/// Version of `frozen.json` and of a prefix's `fork` this build writes.
pub const VERSION: u32 = 1;

/// The name of a prefix's record of the frozen states it uses.
pub const FORK_RECORD: &str = "fork";

/// Problems with frozen states.
#[derive(Debug, thiserror::Error)]
pub enum FrozenError {
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] PathError),
    /// A manifest or record is not what lago writes.
    #[error("{path} is not a frozen state's record lago can read: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The frozen state is gone (its last user was destroyed meanwhile).
    #[error("The frozen state {path} is gone")]
    Gone {
        /// Its directory.
        path: PathBuf,
    },
}

/// A frozen VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrozenVm {
    /// Its memory file (absolute).
    pub memory: PathBuf,
    /// Its memory, in MiB.
    pub memory_mib: u64,
    /// Its device state (relative to the frozen state's directory).
    pub state: PathBuf,
    /// Its frozen disks, by index in the VM's `disks` (relative to the directory).
    pub disks: BTreeMap<usize, PathBuf>,
    /// What it ran under (`tcg`, `kvm`): its copies run under the same.
    #[serde(default = "tcg")]
    pub accel: String,
}

fn tcg() -> String {
    "tcg".into()
}

/// `frozen.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub version: u32,
    /// The name of the prefix it was frozen from.
    pub origin: String,
    /// When, in ms since the epoch.
    pub created: i64,
    /// How long the VMs' pauses were apart, ms.
    #[serde(default)]
    pub pause_spread_ms: f64,
    /// The directory of its memory files (on a tmpfs).
    pub memory_dir: PathBuf,
    /// The frozen states its disks build on (an environment forked before).
    #[serde(default)]
    pub parents: Vec<PathBuf>,
    /// Its VMs.
    pub vms: BTreeMap<String, FrozenVm>,
}

/// A frozen state on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Frozen {
    /// Its directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

/// A prefix's `fork`: the frozen states it uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkRecord {
    /// Format version.
    pub version: u32,
    /// The frozen state the prefix is a copy of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_of: Option<PathBuf>,
    /// The frozen state of its last fork (the prefix it was made from, for a copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<PathBuf>,
    /// Every frozen state its disks or VMs use.
    #[serde(default)]
    pub uses: Vec<PathBuf>,
}

impl ForkRecord {
    /// The record of the prefix at `prefix` (an empty one when it has none).
    pub fn load(prefix: &Path) -> Result<Self, FrozenError> {
        let path = prefix.join(FORK_RECORD);
        match crate::host::pathio::read_text(&path, 1 << 20) {
            Ok(text) => {
                let record: Self = serde_json::from_str(&text)
                    .map_err(|e| FrozenError::Corrupt { path: path.clone(), reason: e.to_string() })?;
                if record.version > VERSION {
                    return Err(FrozenError::Corrupt {
                        path,
                        reason: format!("written by a newer lago (version {})", record.version),
                    });
                }
                Ok(record)
            }
            Err(e) if e.source.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes it into the prefix at `prefix`.
    pub fn save(&self, prefix: &Path) -> Result<(), FrozenError> {
        let record = Self { version: VERSION, ..self.clone() };
        let text = serde_json::to_vec_pretty(&record).unwrap_or_default();
        Ok(crate::host::pathio::write_atomic(&prefix.join(FORK_RECORD), &text)?)
    }

    /// Adds `frozen` to what the prefix uses.
    pub fn with(mut self, frozen: &Path) -> Self {
        if !self.uses.iter().any(|u| u == frozen) {
            self.uses.push(frozen.to_owned());
        }
        self
    }
}

/// The manifest's name in a frozen state's directory.
const MANIFEST: &str = "frozen.json";

impl Frozen {
    /// A new frozen state of prefix `origin` in `dir` (the directory of the prefixes), its memory
    /// files under `memory_base`: its directories are made, nothing else.
    pub fn create(dir: &Path, origin: &str, memory_base: &Path) -> Result<Self, FrozenError> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let path = dir.join(format!(".frozen-{id}"));
        let memory_dir = crate::prefix::memory::frozen_dir(memory_base, &id);
        std::fs::create_dir_all(path.join("disks")).map_err(at("create", &path))?;
        std::fs::create_dir_all(path.join("skel")).map_err(at("create", &path))?;
        crate::prefix::memory::ensure_dir(memory_base, &memory_dir).map_err(at("create", &memory_dir))?;
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Ok(Self {
            dir: path,
            manifest: Manifest {
                version: VERSION,
                origin: origin.to_owned(),
                created,
                pause_spread_ms: 0.0,
                memory_dir,
                parents: Vec::new(),
                vms: BTreeMap::new(),
            },
        })
    }

    /// The frozen state at `dir`.
    pub fn load(dir: &Path) -> Result<Self, FrozenError> {
        let path = dir.join(MANIFEST);
        let text = match crate::host::pathio::read_text(&path, 1 << 20) {
            Ok(t) => t,
            Err(e) if e.source.kind() == std::io::ErrorKind::NotFound => {
                return Err(FrozenError::Gone { path: dir.to_owned() });
            }
            Err(e) => return Err(e.into()),
        };
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| FrozenError::Corrupt { path: path.clone(), reason: e.to_string() })?;
        if manifest.version > VERSION {
            return Err(FrozenError::Corrupt {
                path,
                reason: format!("written by a newer lago (version {})", manifest.version),
            });
        }
        Ok(Self { dir: dir.to_owned(), manifest })
    }

    /// Writes its manifest.
    pub fn save(&self) -> Result<(), FrozenError> {
        let text = serde_json::to_vec_pretty(&self.manifest).unwrap_or_default();
        Ok(crate::host::pathio::write_atomic(&self.dir.join(MANIFEST), &text)?)
    }

    /// The prefix as it was frozen (`skel/`), which copies are made from.
    pub fn skel(&self) -> PathBuf {
        self.dir.join("skel")
    }

    /// Where VM `vm`'s device state is kept.
    pub fn state_file(&self, vm: &str) -> PathBuf {
        self.dir.join(format!("{vm}.state"))
    }

    /// Where disk `index` (device `dev`) of VM `vm` is kept.
    pub fn disk_file(&self, vm: &str, dev: &str) -> PathBuf {
        self.dir.join("disks").join(format!("{vm}-{dev}.qcow2"))
    }

    /// Where VM `vm`'s memory is kept.
    pub fn memory_file(&self, vm: &str) -> PathBuf {
        self.manifest.memory_dir.join(format!("{vm}.mem"))
    }

    /// A shared lock on the frozen state while copies are made of it: [`collect`] leaves it.
    pub fn hold(&self) -> Result<std::fs::File, FrozenError> {
        let path = self.dir.join(MANIFEST);
        let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => FrozenError::Gone { path: self.dir.clone() },
            _ => at("open", &path)(e).into(),
        })?;
        file.lock_shared().map_err(at("lock", &path))?;
        // Removed between the open and the lock.
        if !path.exists() {
            return Err(FrozenError::Gone { path: self.dir.clone() });
        }
        Ok(file)
    }

    /// Its size in memory files (what their pages take on the tmpfs), bytes.
    pub fn memory_bytes(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        self.manifest.vms.values().filter_map(|v| std::fs::metadata(&v.memory).ok()).map(|m| m.blocks() * 512).sum()
    }

    /// Removes it: its directory and its memory files.
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.manifest.memory_dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The frozen states in `dir` (a directory of prefixes).
pub fn list(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".frozen-"))
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    found
}

/// The frozen states the prefixes of `dir` use (staging directories of copies included, not
/// the trash of a `destroy`), and those they build on.
pub fn used(dir: &Path) -> BTreeSet<PathBuf> {
    let mut used = BTreeSet::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains(".destroy-") || name.starts_with(".frozen-") || !e.path().is_dir() {
            continue;
        }
        if let Ok(record) = ForkRecord::load(&e.path()) {
            used.extend(record.uses);
        }
    }
    // What the used ones build on, transitively.
    let mut todo: Vec<PathBuf> = used.iter().cloned().collect();
    while let Some(f) = todo.pop() {
        if let Ok(frozen) = Frozen::load(&f) {
            for p in frozen.manifest.parents {
                if used.insert(p.clone()) {
                    todo.push(p);
                }
            }
        }
    }
    used
}

/// Removes the frozen states of `dir` that nothing uses any more (see the module); returns what
/// was removed.
pub fn collect(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for candidate in list(dir) {
        if used(dir).contains(&candidate) {
            continue;
        }
        let manifest = candidate.join(MANIFEST);
        let Ok(file) = std::fs::File::open(&manifest) else {
            // A frozen state whose making was cut short before its manifest: nothing uses it.
            let _ = std::fs::remove_dir_all(&candidate);
            removed.push(candidate);
            continue;
        };
        // Copies are being made of it.
        if file.try_lock().is_err() {
            continue;
        }
        if used(dir).contains(&candidate) {
            continue;
        }
        match Frozen::load(&candidate) {
            Ok(frozen) => frozen.remove(),
            Err(_) => {
                let _ = std::fs::remove_dir_all(&candidate);
            }
        }
        removed.push(candidate);
    }
    removed
}

/// Removes every frozen state of `dir` (the whole directory goes: `destroy --all-prefixes`),
/// memory files included.
pub fn remove_all(dir: &Path) {
    for f in list(dir) {
        match Frozen::load(&f) {
            Ok(frozen) => frozen.remove(),
            Err(_) => {
                let _ = std::fs::remove_dir_all(&f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frozen_state_lives_while_a_prefix_or_a_later_frozen_state_uses_it() {
        let dir = tempfile::tempdir().unwrap();
        let shm = tempfile::tempdir().unwrap();
        let mut first = Frozen::create(dir.path(), "default", shm.path()).unwrap();
        first.manifest.vms.insert(
            "vm01".into(),
            FrozenVm {
                memory: first.memory_file("vm01"),
                memory_mib: 256,
                state: "vm01.state".into(),
                disks: BTreeMap::new(),
                accel: tcg(),
            },
        );
        first.save().unwrap();
        std::fs::write(first.memory_file("vm01"), b"pages").unwrap();
        let mut second = Frozen::create(dir.path(), "default-1", shm.path()).unwrap();
        second.manifest.parents.push(first.dir.clone());
        second.save().unwrap();
        for (p, uses) in [("default", vec![first.dir.clone()]), ("default-1", vec![second.dir.clone()])] {
            std::fs::create_dir_all(dir.path().join(p)).unwrap();
            ForkRecord { version: VERSION, copy_of: None, last: None, uses }.save(&dir.path().join(p)).unwrap();
        }
        assert!(collect(dir.path()).is_empty());
        // The origin goes: the copy's frozen state builds on the first, which stays.
        std::fs::remove_dir_all(dir.path().join("default")).unwrap();
        assert!(collect(dir.path()).is_empty());
        // A half-made frozen state (no manifest) is nobody's.
        let half = dir.path().join(".frozen-half");
        std::fs::create_dir_all(&half).unwrap();
        assert_eq!(collect(dir.path()), [half]);
        // Copies being made of one keep it.
        std::fs::remove_dir_all(dir.path().join("default-1")).unwrap();
        let held = second.hold().unwrap();
        assert_eq!(collect(dir.path()), [first.dir.clone()], "the first is nobody's; the second is held");
        assert!(!first.manifest.memory_dir.exists(), "its memory files went with it");
        drop(held);
        assert_eq!(collect(dir.path()), [second.dir.clone()]);
        assert!(list(dir.path()).is_empty());
        assert!(matches!(second.hold(), Err(FrozenError::Gone { .. })));
    }

    #[test]
    fn a_prefix_without_a_record_uses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ForkRecord::load(dir.path()).unwrap(), ForkRecord::default());
        let r = ForkRecord::default().with(Path::new("/a")).with(Path::new("/a")).with(Path::new("/b"));
        assert_eq!(r.uses, [Path::new("/a"), Path::new("/b")]);
    }
}
