//! Workdirs: a directory holding prefixes (environments) and a `current` symlink.
//!
//! Layout and rules follow the original (reference §3.1–§3.2): `current` is a relative symlink to
//! the active prefix; every other directory is a prefix; a workdir is found upwards from the
//! current directory (`./`, `./.lago`, `../.lago`, ...). Directories whose name starts with `.`
//! are lago's own scratch space (an `init` in progress) and are not prefixes.

use std::io;
use std::path::{Path, PathBuf};

/// Name of the symlink to the active prefix.
pub const CURRENT: &str = "current";
/// Default workdir directory name.
pub const DEFAULT_WORKDIR: &str = ".lago";
/// Prefix name used when none is given.
pub const DEFAULT_PREFIX: &str = "default";

/// Problems with workdirs and prefix names.
#[derive(Debug, thiserror::Error)]
pub enum WorkdirError {
    /// No workdir was found upwards from a directory.
    #[error("Unable to find workdir in {start}{}", candidates_line(candidates))]
    NotFound {
        /// Where the search started.
        start: PathBuf,
        /// Subdirectories that look like workdirs.
        candidates: Vec<PathBuf>,
    },
    /// The directory is not a usable workdir.
    #[error("{path} is not a valid workdir: {reason}")]
    Malformed {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No prefix of that name.
    #[error("Prefix \"{name}\" does not exist in workdir {workdir} (known: {})", known.join(", "))]
    NoSuchPrefix {
        /// The name asked for.
        name: String,
        /// The workdir.
        workdir: PathBuf,
        /// Prefixes that exist.
        known: Vec<String>,
    },
    /// `current` names a prefix that is gone.
    #[error("The current prefix of workdir {workdir} is {target:?}, which does not exist (known: {})", known.join(", "))]
    DanglingCurrent {
        /// The workdir.
        workdir: PathBuf,
        /// Where `current` points.
        target: String,
        /// Prefixes that exist.
        known: Vec<String>,
    },
    /// `init` of a prefix that exists.
    #[error("Prefix with name {name} already exists in workdir {workdir}")]
    PrefixExists {
        /// The name.
        name: String,
        /// The workdir.
        workdir: PathBuf,
    },
    /// A prefix name that cannot be a directory of the workdir.
    #[error(
        "Invalid prefix name {name:?}: expected 1 to 63 letters, digits, `-`, `_` or `.`, starting with a letter or digit"
    )]
    BadPrefixName {
        /// The name.
        name: String,
    },
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] crate::host::pathio::PathError),
}

/// Checks a prefix name as VM names are checked: it becomes a directory of the workdir, so no
/// `/`, no `..`, nothing empty.
pub fn check_prefix_name(name: &str) -> Result<(), WorkdirError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !name.ends_with('.');
    if ok { Ok(()) } else { Err(WorkdirError::BadPrefixName { name: name.to_owned() }) }
}

fn candidates_line(c: &[PathBuf]) -> String {
    if c.is_empty() {
        String::new()
    } else {
        format!(
            "\nFound possible workdirs in: {}",
            c.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    }
}

/// Attaches a path to an I/O error.
pub(crate) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> WorkdirError {
    let f = crate::host::pathio::at(action, path);
    move |source| WorkdirError::Io(f(source))
}

/// A workdir on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workdir {
    /// Its absolute path.
    pub path: PathBuf,
}

impl Workdir {
    /// Opens the workdir at `path`, checking its shape.
    pub fn load(path: &Path) -> Result<Self, WorkdirError> {
        let path = std::path::absolute(path).map_err(io_err("resolve", path))?;
        let wd = Self { path };
        let current = wd.path.join(CURRENT);
        match std::fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {}
            Ok(_) => {
                return Err(WorkdirError::Malformed {
                    path: wd.path,
                    reason: format!("\"{}\" should be a soft link", current.display()),
                });
            }
            Err(_) => {
                return Err(WorkdirError::Malformed {
                    path: wd.path,
                    reason: format!("\"{}\" should exist and be a soft link", current.display()),
                });
            }
        }
        if wd.prefixes()?.is_empty() {
            return Err(WorkdirError::Malformed { path: wd.path, reason: "it holds no prefix".into() });
        }
        Ok(wd)
    }

    /// Whether `path` is a usable workdir.
    pub fn is_workdir(path: &Path) -> bool {
        Self::load(path).is_ok()
    }

    /// Finds the workdir from `start` upwards: `start` itself, then `start/.lago`,
    /// `start/../.lago`, ... up to the root.
    pub fn resolve(start: &Path) -> Result<Self, WorkdirError> {
        let start = std::path::absolute(start).map_err(io_err("resolve", start))?;
        if let Ok(wd) = Self::load(&start) {
            return Ok(wd);
        }
        let mut dir = Some(start.as_path());
        while let Some(d) = dir {
            if let Ok(wd) = Self::load(&d.join(DEFAULT_WORKDIR)) {
                return Ok(wd);
            }
            dir = d.parent();
        }
        let mut candidates = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&start) {
            for e in entries.flatten() {
                let p = e.path();
                let looks = p.join(CURRENT).join("uuid").exists()
                    || p.join(DEFAULT_WORKDIR).join(CURRENT).join("uuid").exists();
                if p.is_dir() && looks {
                    candidates.push(p);
                }
            }
        }
        candidates.sort();
        Err(WorkdirError::NotFound { start, candidates })
    }

    /// Names of the prefixes, sorted.
    pub fn prefixes(&self) -> Result<Vec<String>, WorkdirError> {
        let mut names = Vec::new();
        for e in std::fs::read_dir(&self.path).map_err(io_err("read", &self.path))? {
            let e = e.map_err(io_err("read", &self.path))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name == CURRENT || name.starts_with('.') {
                continue;
            }
            if e.file_type().map_err(io_err("read", &e.path()))?.is_dir() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// The prefix `current` points at, if it points at one.
    pub fn current(&self) -> Option<String> {
        let target = std::fs::read_link(self.path.join(CURRENT)).ok()?;
        let name = target.file_name()?.to_string_lossy().into_owned();
        self.path.join(&name).is_dir().then_some(name)
    }

    /// Makes `name` the current prefix.
    pub fn set_current(&self, name: &str) -> Result<(), WorkdirError> {
        check_prefix_name(name)?;
        let known = self.prefixes()?;
        if !known.iter().any(|k| k == name) {
            return Err(WorkdirError::NoSuchPrefix { name: name.into(), workdir: self.path.clone(), known });
        }
        self.point_current(name)
    }

    /// Re-points `current` (atomically, through a temporary link and a rename).
    pub(crate) fn point_current(&self, name: &str) -> Result<(), WorkdirError> {
        let tmp = self.path.join(format!(".{CURRENT}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(name, &tmp).map_err(io_err("create link", &tmp))?;
        std::fs::rename(&tmp, self.path.join(CURRENT)).map_err(io_err("update", &self.path.join(CURRENT)))
    }

    /// The directory of prefix `name` (`current` resolves to the current prefix).
    pub fn prefix_path(&self, name: &str) -> Result<PathBuf, WorkdirError> {
        check_prefix_name(name)?;
        let known = self.prefixes()?;
        let real = if name == CURRENT {
            match self.current() {
                Some(c) => c,
                None => {
                    let target = std::fs::read_link(self.path.join(CURRENT))
                        .map(|t| t.display().to_string())
                        .unwrap_or_default();
                    return Err(WorkdirError::DanglingCurrent { workdir: self.path.clone(), target, known });
                }
            }
        } else {
            name.to_owned()
        };
        if known.contains(&real) {
            Ok(self.path.join(real))
        } else {
            Err(WorkdirError::NoSuchPrefix { name: real, workdir: self.path.clone(), known })
        }
    }

    /// After a prefix was removed: keep `current` valid (prefer `default`, else the last name),
    /// or, when no prefix is left, remove the workdir if nothing else is in it (its `current`
    /// link and lock files nobody holds). An `init` in progress, or files that are not lago's,
    /// keep it. Returns whether the workdir remains.
    pub fn repair(&self) -> Result<bool, WorkdirError> {
        let names = self.prefixes()?;
        if names.is_empty() {
            let mut locks = Vec::new();
            for e in std::fs::read_dir(&self.path).map_err(io_err("read", &self.path))?.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name == CURRENT {
                    continue;
                }
                let Some(prefix) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".lock")) else {
                    return Ok(true);
                };
                match crate::host::lock::try_acquire(&self.path.join(prefix), "destroy") {
                    Ok(Some(lock)) => locks.push(lock),
                    _ => return Ok(true),
                }
            }
            for lock in &locks {
                lock.remove_file();
            }
            let _ = std::fs::remove_file(self.path.join(CURRENT));
            match std::fs::remove_dir(&self.path) {
                Ok(()) => return Ok(false),
                // Something appeared meanwhile (another `init`): it keeps the workdir.
                Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => return Ok(true),
                Err(e) => return Err(io_err("remove", &self.path)(e)),
            }
        }
        if self.current().is_none() {
            let pick = if names.iter().any(|n| n == DEFAULT_PREFIX) {
                DEFAULT_PREFIX.to_owned()
            } else {
                names[names.len() - 1].clone()
            };
            tracing::info!("Missing current link, setting it to {pick}");
            self.point_current(&pick)?;
        }
        Ok(true)
    }

    /// Removes what interrupted commands left in the workdir: staging directories of `init`
    /// (`.<name>.init-<pid>`) and prefixes half-removed by `destroy` (`.<name>.destroy-<pid>`),
    /// each only when no command holds the lock of that prefix. Returns what was removed, one
    /// sentence each.
    pub fn sweep(&self) -> Vec<String> {
        sweep_dir(&self.path)
    }
}

/// [`Workdir::sweep`] on any directory that holds prefixes.
pub fn sweep_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = leftovers(dir).into_iter().map(|(prefix, _, _)| prefix).collect();
    names.dedup();
    let mut repaired = Vec::new();
    for prefix in names {
        // Held: a command is working on that prefix, its directories are not leftovers.
        let Ok(Some(_lock)) = crate::host::lock::try_acquire(&dir.join(&prefix), "repair") else { continue };
        repaired.extend(sweep_prefix(dir, &prefix));
    }
    repaired
}

/// Removes the leftovers of prefix `name` in `dir`; the caller holds that prefix's lock.
pub fn sweep_prefix(dir: &Path, name: &str) -> Vec<String> {
    let mut repaired = Vec::new();
    for (prefix, path, what) in leftovers(dir) {
        if prefix == name && std::fs::remove_dir_all(&path).is_ok() {
            repaired.push(format!("Removed {} left by {what} of prefix {prefix}", path.display()));
        }
    }
    repaired
}

/// Staging directories of `init` and trash of `destroy` in `dir`: (prefix, path, what left it),
/// sorted.
fn leftovers(dir: &Path) -> Vec<(String, PathBuf, &'static str)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return found };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix('.') else { continue };
        let (prefix, what) = if let Some((p, _)) = rest.rsplit_once(".init-") {
            (p, "an interrupted `lago init`")
        } else if let Some((p, _)) = rest.rsplit_once(".destroy-") {
            (p, "an interrupted `lago destroy`")
        } else {
            continue;
        };
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            found.push((prefix.to_owned(), e.path(), what));
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(root: &Path, prefixes: &[&str], current: &str) -> PathBuf {
        let wd = root.join(DEFAULT_WORKDIR);
        for p in prefixes {
            std::fs::create_dir_all(wd.join(p)).unwrap();
            std::fs::write(wd.join(p).join("uuid"), "x").unwrap();
        }
        std::os::unix::fs::symlink(current, wd.join(CURRENT)).unwrap();
        wd
    }

    #[test]
    fn resolves_upwards_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        let wd = make(dir.path(), &["default", "b", "a"], "default");
        std::fs::create_dir_all(wd.join(".default.init-1")).unwrap();
        let deep = dir.path().join("x/y");
        std::fs::create_dir_all(&deep).unwrap();
        let found = Workdir::resolve(&deep).unwrap();
        assert_eq!(found.path, wd);
        assert_eq!(found.prefixes().unwrap(), ["a", "b", "default"]);
        assert_eq!(found.current().as_deref(), Some("default"));
        found.set_current("b").unwrap();
        assert_eq!(std::fs::read_link(wd.join(CURRENT)).unwrap(), Path::new("b"));
        assert!(matches!(found.set_current("zz"), Err(WorkdirError::NoSuchPrefix { .. })));
    }

    #[test]
    fn not_found_lists_candidates() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("envs");
        std::fs::create_dir_all(&sub).unwrap();
        make(&sub, &["default"], "default");
        let err = Workdir::resolve(dir.path()).unwrap_err().to_string();
        assert!(err.starts_with("Unable to find workdir in "), "{err}");
        assert!(err.contains("Found possible workdirs in: "), "{err}");
    }

    #[test]
    fn repair_moves_current_or_removes_workdir() {
        let dir = tempfile::tempdir().unwrap();
        let wd = make(dir.path(), &["default", "b"], "b");
        let w = Workdir::load(&wd).unwrap();
        std::fs::remove_dir_all(wd.join("b")).unwrap();
        assert!(w.repair().unwrap());
        assert_eq!(w.current().as_deref(), Some("default"));
        std::fs::remove_dir_all(wd.join("default")).unwrap();
        // An init in progress (its lock held) keeps the workdir.
        let busy = crate::host::lock::acquire(&wd.join("next"), "init", &crate::report::NoopReporter).unwrap();
        std::fs::create_dir(wd.join(".next.init-1")).unwrap();
        assert!(w.repair().unwrap());
        assert!(w.sweep().is_empty(), "the staging directory of a running init stays");
        drop(busy);
        assert_eq!(
            w.sweep(),
            [format!(
                "Removed {} left by an interrupted `lago init` of prefix next",
                wd.join(".next.init-1").display()
            )]
        );
        assert!(!w.repair().unwrap());
        assert!(!wd.exists());
    }
}
