//! `lago template prune`: older versions out of the local repository and their copies out of the
//! store, never a version an environment uses.
//!
//! For each template of the local `file` repository the `keep` newest versions stay (by their
//! number `vN`, else their timestamp); each older one goes, with its files beside it (`.hash`,
//! `.metadata`, direct-boot files) and its copy in the store (`<repo>:<tpl>:<ver>` and its
//! sidecars), unless a prefix that still exists is recorded as using that copy (see
//! [`crate::template::store::users`]): such a version stays, and the answer says which prefixes
//! keep it. `repo.metadata` is rewritten under the repository's lock.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::host::lock::FileLock;
use crate::host::pathio::at as io;

/// Why a prune failed.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// The repository cannot be read or updated.
    #[error(transparent)]
    Repo(#[from] crate::template::build::BuildError),
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] crate::host::pathio::PathError),
    /// The repository's lock could not be taken.
    #[error(transparent)]
    Lock(#[from] crate::host::lock::LockError),
}

/// What to prune.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// The local repository's directory (holding `repo.metadata`).
    pub repo_dir: PathBuf,
    /// The store.
    pub store: PathBuf,
    /// Versions kept per template (at least 1).
    pub keep: usize,
    /// Say what would go, remove nothing.
    pub dry_run: bool,
}

/// One version a prune removed (or, dry, would remove), or kept because it is in use.
#[derive(Debug, Clone, PartialEq)]
pub struct PrunedVersion {
    /// Template.
    pub name: String,
    /// Version.
    pub version: String,
    /// Bytes its files took (repository and store).
    pub bytes: u64,
    /// The prefixes that use it (empty for a removed version).
    pub users: Vec<PathBuf>,
}

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pruned {
    /// Versions removed (or that would be, dry).
    pub removed: Vec<PrunedVersion>,
    /// Older versions kept because environments use them.
    pub in_use: Vec<PrunedVersion>,
    /// Bytes in the store before and after.
    pub store_bytes: (u64, u64),
}

/// Bytes of the files directly in `dir` (the store's size).
pub fn dir_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .map(|entries| {
            entries.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.blocks() * 512).sum()
        })
        .unwrap_or(0)
}

/// The files of version `handle` in the repository directory.
fn repo_files(repo_dir: &Path, handle: &str) -> Vec<PathBuf> {
    ["", ".hash", ".metadata", ".vmlinux", ".initrd"]
        .iter()
        .map(|ext| repo_dir.join(format!("{handle}{ext}")))
        .collect()
}

/// The files of one store entry.
fn store_files(image: &Path) -> Vec<PathBuf> {
    let sidecars = ["hash", "metadata", "stamp", "vmlinux", "initrd", "users", "lock"];
    std::iter::once(image.to_owned())
        .chain(sidecars.iter().map(|ext| crate::template::store::beside(image, ext)))
        .collect()
}

fn bytes_of(files: &[PathBuf]) -> u64 {
    use std::os::unix::fs::MetadataExt;
    files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.blocks() * 512).sum()
}

/// Prunes the local repository and the store (see the module).
pub fn prune(opts: &PruneOptions) -> Result<Pruned, PruneError> {
    let meta_path = opts.repo_dir.join("repo.metadata");
    let _lock = FileLock::acquire(
        &opts.repo_dir.join(".repo.metadata.lock"),
        &crate::report::NoopReporter,
        "Waiting for another publication into the repository",
        None,
    )?;
    let mut repo = crate::template::build::read_repo_for_update(&meta_path, &opts.repo_dir)?;
    let repo_name = repo["name"].as_str().unwrap_or("local").to_owned();
    let mut out = Pruned { store_bytes: (dir_bytes(&opts.store), 0), ..Pruned::default() };
    let mut freed_in_store = 0;
    let names: Vec<String> = repo["templates"].as_object().map(|t| t.keys().cloned().collect()).unwrap_or_default();
    for name in names {
        let Some(versions) = repo["templates"][&name]["versions"].as_object().cloned() else { continue };
        let mut ordered: Vec<(String, Value)> = versions.into_iter().collect();
        // Newest first: by number, else by timestamp.
        let number = |v: &str| v.strip_prefix('v').and_then(|n| n.parse::<u64>().ok());
        ordered.sort_by(|(a, ea), (b, eb)| match (number(a), number(b)) {
            (Some(x), Some(y)) => y.cmp(&x),
            _ => eb["timestamp"].as_f64().unwrap_or(0.0).total_cmp(&ea["timestamp"].as_f64().unwrap_or(0.0)),
        });
        for (version, entry) in ordered.into_iter().skip(opts.keep.max(1)) {
            let image = opts.store.join(format!("{repo_name}:{name}:{version}"));
            let users = crate::template::store::users(&image);
            let mut files = store_files(&image);
            let in_store = bytes_of(&files);
            if entry["source"].as_str().is_none_or(|s| s == "local")
                && let Some(handle) = entry["handle"].as_str()
            {
                files.extend(repo_files(&opts.repo_dir, handle));
            }
            let one = PrunedVersion { name: name.clone(), version: version.clone(), bytes: bytes_of(&files), users };
            if !one.users.is_empty() {
                out.in_use.push(one);
                continue;
            }
            if !opts.dry_run {
                if let Some(v) = repo["templates"][&name]["versions"].as_object_mut() {
                    v.remove(&version);
                }
                // The entry goes first: a repository never names a file that is gone.
                let text = serde_json::to_string_pretty(&repo).unwrap_or_default();
                crate::host::pathio::write_atomic(&meta_path, text.as_bytes())?;
                for f in &files {
                    match std::fs::remove_file(f) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("remove", f)(e).into()),
                        _ => {}
                    }
                }
            }
            freed_in_store += in_store;
            out.removed.push(one);
        }
    }
    out.store_bytes.1 =
        if opts.dry_run { out.store_bytes.0.saturating_sub(freed_in_store) } else { dir_bytes(&opts.store) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository with versions v1..=n of `tiny`, each with its store copy.
    fn layout(dir: &Path, n: u64) -> (PathBuf, PathBuf) {
        let (repo, store) = (dir.join("repo"), dir.join("store"));
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::create_dir_all(&store).unwrap();
        let mut versions = serde_json::Map::new();
        for v in 1..=n {
            let handle = format!("tiny-v{v}.qcow2");
            std::fs::write(repo.join(&handle), vec![0u8; 8192]).unwrap();
            std::fs::write(repo.join(format!("{handle}.hash")), "x").unwrap();
            std::fs::write(store.join(format!("local:tiny:v{v}")), vec![0u8; 8192]).unwrap();
            std::fs::write(store.join(format!("local:tiny:v{v}.hash")), "x").unwrap();
            versions.insert(format!("v{v}"), serde_json::json!({"source": "local", "handle": handle, "timestamp": v}));
        }
        let meta = serde_json::json!({"name": "local", "sources": {"local": {"type": "file", "args": {"root": repo}}},
                                      "templates": {"tiny": {"versions": versions}}});
        std::fs::write(repo.join("repo.metadata"), meta.to_string()).unwrap();
        (repo, store)
    }

    #[test]
    fn older_versions_go_with_their_store_copies_but_not_one_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, store) = layout(dir.path(), 3);
        let prefix = dir.path().join("env/.lago/default");
        std::fs::create_dir_all(&prefix).unwrap();
        std::fs::write(prefix.join("uuid"), "u").unwrap();
        crate::template::store::set_user(&store.join("local:tiny:v1"), &prefix, true).unwrap();
        let opts = PruneOptions { repo_dir: repo.clone(), store: store.clone(), keep: 1, dry_run: true };
        let dry = prune(&opts).unwrap();
        assert_eq!(dry.removed.iter().map(|r| r.version.as_str()).collect::<Vec<_>>(), ["v2"]);
        assert!(store.join("local:tiny:v2").exists(), "a dry run removes nothing");
        let done = prune(&PruneOptions { dry_run: false, ..opts }).unwrap();
        assert_eq!(done.removed, dry.removed);
        assert_eq!(done.in_use.len(), 1);
        assert_eq!((done.in_use[0].version.as_str(), done.in_use[0].users.clone()), ("v1", vec![prefix.clone()]));
        assert!(!store.join("local:tiny:v2").exists() && !repo.join("tiny-v2.qcow2").exists());
        assert!(store.join("local:tiny:v1").exists() && repo.join("tiny-v3.qcow2").exists());
        assert!(done.store_bytes.1 < done.store_bytes.0);
        let meta: Value = serde_json::from_str(&std::fs::read_to_string(repo.join("repo.metadata")).unwrap()).unwrap();
        let left: Vec<&String> = meta["templates"]["tiny"]["versions"].as_object().unwrap().keys().collect();
        assert_eq!(left, ["v1", "v3"]);
        // Once the environment is gone (its prefix removed), v1 goes too.
        std::fs::remove_dir_all(dir.path().join("env")).unwrap();
        let later = prune(&PruneOptions { repo_dir: repo, store: store.clone(), keep: 1, dry_run: false }).unwrap();
        assert_eq!(later.removed.iter().map(|r| r.version.as_str()).collect::<Vec<_>>(), ["v1"]);
        assert!(!store.join("local:tiny:v1.users").exists());
    }
}
