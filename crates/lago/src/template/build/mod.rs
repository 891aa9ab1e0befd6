//! `lago template build tiny`: a bootable template built offline from Debian packages.
//!
//! `tiny` is Debian 12's kernel with a busybox + dropbear userland on an ext4 root, bootable
//! from the disk alone like any cloud image: MBR (syslinux's `mbr.bin`), a FAT boot partition
//! holding syslinux, the kernel and an initramfs, and the ext4 root partition. It is built
//! without root and without loop devices: packages come from `apt-get download` and
//! `dpkg-deb -x`; the partition table, the FAT filesystem and the initramfs are written here;
//! `syslinux --install --offset` (mtools) makes the FAT bootable; `mke2fs -d -E offset=` writes
//! the root filesystem in place. The result is converted to qcow2 and published into a local
//! `file` repository (`repo.metadata`, image, `.hash`, `.metadata`) as a new version.
//!
//! Inside, a first-boot script reads the NoCloud seed that `lago init` writes (the plain files
//! under `lago/` of the `CIDATA` filesystem; see [`crate::ops::init::seed`]).
//!
//! This module runs a build (one at a time per package cache) and publishes its image; the
//! recipes are [`tiny`] and [`debian`], the disk they write is [`disk`]'s.

mod debian;
mod disk;
mod error;
mod tiny;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

pub use disk::mbr;
pub use error::{BUILDABLE, BuildError};
pub use tiny::{module_depends, module_order};

use crate::host::lock::FileLock;
use crate::host::pathio::at as io;
use crate::host::process::CommandRunner;
use crate::report::{Reporter, task};
use disk::Image;

/// What to build and where.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Template name (`tiny`).
    pub name: String,
    /// Directory of the local `file` repository to publish into.
    pub repo_dir: PathBuf,
    /// Downloaded packages are kept here between builds.
    pub cache_dir: PathBuf,
    /// Publish even when the inputs are the latest version's (`--force`).
    pub force: bool,
}

/// A published template version.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    /// Template name.
    pub name: String,
    /// New version.
    pub version: String,
    /// The image in the repository.
    pub path: PathBuf,
    /// Its sha1.
    pub hash: String,
    /// Its size, bytes.
    pub size: u64,
    /// Whether this build published it; `false`: its inputs were those of this version, which
    /// was there already, and nothing was published.
    pub published: bool,
}

/// The fingerprint of what goes into an image, as a build of `name` says it once it knows it:
/// the recipe (its source and lago's files that go into the image) and the exact packages.
/// A fingerprint equal to the latest version's (its metadata's `inputs`) ends the build: the
/// image would be that version again.
pub(crate) struct Gate {
    latest_inputs: Option<String>,
    force: bool,
}

impl Gate {
    fn of(opts: &BuildOptions, latest: Option<&Built>) -> Self {
        let latest_inputs = latest.and_then(|b| {
            let text = std::fs::read_to_string(format!("{}.metadata", b.path.display())).ok()?;
            serde_json::from_str::<Value>(&text).ok()?.get("inputs")?.as_str().map(str::to_owned)
        });
        Self { latest_inputs, force: opts.force }
    }

    /// Whether `inputs` are the latest version's (and the build is not forced): the recipe then
    /// ends, building nothing more.
    pub(crate) fn unchanged(&self, inputs: &str) -> bool {
        !self.force && self.latest_inputs.as_deref() == Some(inputs)
    }
}

/// The sha1 of `parts`, each length-prefixed (a recipe's inputs).
pub(crate) fn fingerprint<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    for part in parts {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// The latest version of template `name` in the local repository at `repo_dir`, if its image is
/// there.
pub fn latest_version(repo_dir: &Path, name: &str) -> Option<Built> {
    let text = std::fs::read_to_string(repo_dir.join("repo.metadata")).ok()?;
    let repo: Value = serde_json::from_str(&text).ok()?;
    let versions = repo["templates"][name]["versions"].as_object()?;
    let (version, entry) = versions
        .iter()
        .filter_map(|(v, e)| Some((v.strip_prefix('v')?.parse::<u64>().ok()?, v, e)))
        .max_by_key(|(n, _, _)| *n)
        .map(|(_, v, e)| (v.clone(), e))?;
    let path = repo_dir.join(entry["handle"].as_str()?);
    let size = std::fs::metadata(&path).ok()?.len();
    let hash =
        std::fs::read_to_string(format!("{}.hash", path.display())).map(|h| h.trim().to_owned()).unwrap_or_default();
    Some(Built { name: name.to_owned(), version, path, hash, size, published: false })
}

/// Builds the template and publishes it as a new version of the local repository.
pub fn build(opts: &BuildOptions, runner: &dyn CommandRunner, reporter: &dyn Reporter) -> Result<Built, BuildError> {
    if !BUILDABLE.contains(&opts.name.as_str()) {
        return Err(BuildError::Unknown { name: opts.name.clone() });
    }
    for d in [&opts.repo_dir, &opts.cache_dir] {
        std::fs::create_dir_all(d).map_err(io("create", d))?;
    }
    // One build at a time per package cache: downloads and the debian12 package sync share it.
    let _lock = FileLock::acquire(
        &opts.cache_dir.join(".build.lock"),
        reporter,
        "Waiting for another template build to finish",
        None,
    )?;
    // Under the lock, any work directory left in the cache is an interrupted build's.
    if let Ok(entries) = std::fs::read_dir(&opts.cache_dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".build-") && e.file_type().is_ok_and(|t| t.is_dir()) {
                match sweep_work_dir(&e.path()) {
                    Ok(()) => reporter.warn(&format!(
                        "Repaired: removed {} left by an interrupted template build",
                        e.path().display()
                    )),
                    Err(err) => reporter.warn(&format!(
                        "Cannot remove {}, left by an interrupted template build: {err}",
                        e.path().display()
                    )),
                }
            }
        }
    }
    let work = tempfile::Builder::new()
        .prefix(&format!(".build-{}.", opts.name))
        .tempdir_in(&opts.cache_dir)
        .map_err(io("create", &opts.cache_dir))?;
    let work = work.path();
    let latest = latest_version(&opts.repo_dir, &opts.name);
    let gate = Gate::of(opts, latest.as_ref());
    task(reporter, &format!("Build template {}", opts.name), || {
        let image = match opts.name.as_str() {
            "debian12" => debian::build_image(work, &opts.cache_dir, debian::Flavour::Lago, &gate, runner, reporter)?,
            "debian12-cloud" => {
                debian::build_image(work, &opts.cache_dir, debian::Flavour::Cloud, &gate, runner, reporter)?
            }
            _ => tiny::build_image(work, &opts.cache_dir, &gate, runner, reporter)?,
        };
        match (image, latest) {
            (Some(image), _) => task(reporter, "Publish into the local repository", || publish(opts, &image, runner)),
            // The gate saw the latest version's inputs, so there is one.
            (None, Some(latest)) => Ok(latest),
            (None, None) => Err(BuildError::Repo(format!("the latest version of {} went away", opts.name))),
        }
    })
}

/// Removes an interrupted build's work directory: first the filesystems a killed tool left
/// mounted in it (mmdebstrap's `proc`, `sys` and the host's `dev`), so that the removal never
/// walks into them; then its files. A tool the killed build started (`tar` under `dpkg-deb`)
/// may still be writing into it for a moment: removal is retried until it stays empty.
fn sweep_work_dir(dir: &Path) -> std::io::Result<()> {
    crate::host::mounts::detach_all_under(dir).map_err(std::io::Error::other)?;
    remove_dir_retrying(dir, std::time::Duration::from_secs(10))
}

/// Removes `dir` and everything in it, again and again while something still writes into it,
/// for at most `within`.
fn remove_dir_retrying(dir: &Path, within: std::time::Duration) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + within;
    loop {
        match std::fs::remove_dir_all(dir) {
            Ok(()) if !dir.exists() => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if std::time::Instant::now() > deadline => return Err(e),
            _ => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

/// Removes files on drop unless disarmed (a failed or interrupted publication leaves nothing).
struct Partial(Vec<PathBuf>);

impl Drop for Partial {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Reads a repository's `repo.metadata` for an update: a missing file is a new repository; a
/// file that cannot be read, is not JSON, or has the wrong shape is an error (it is never
/// replaced, so no published version is lost).
pub fn read_repo_for_update(meta_path: &Path, repo_dir: &Path) -> Result<Value, BuildError> {
    let text = match crate::template::repo::read_bounded(meta_path) {
        Ok(text) => text,
        Err(e) if e.source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(
                json!({"name": "local", "sources": {"local": {"type": "file", "args": {"root": repo_dir.display().to_string()}}}, "templates": {}}),
            );
        }
        Err(e) => return Err(e.into()),
    };
    let repo: Value = serde_json::from_str(&text).map_err(|e| {
        BuildError::Repo(format!(
            "{} is not valid JSON ({e}); fix or move it away, lago will not replace it",
            meta_path.display()
        ))
    })?;
    let shape_ok = repo.is_object()
        && repo.get("templates").is_none_or(Value::is_object)
        && repo
            .get("templates")
            .and_then(Value::as_object)
            .is_none_or(|t| t.values().all(|v| v.is_object() && v.get("versions").is_none_or(Value::is_object)));
    if !shape_ok {
        return Err(BuildError::Repo(format!(
            "{} is not a template repository (expected an object whose `templates` maps names to {{\"versions\": {{...}}}}); fix or move it away, lago will not replace it",
            meta_path.display()
        )));
    }
    Ok(repo)
}

/// The key of a template's metadata (lago's own) naming the least memory, in MiB, its VMs boot
/// in: a VM given less runs with that much (see [`crate::prefix::records::VmRecord::run_memory`]).
pub const MIN_MEMORY: &str = crate::prefix::records::MIN_MEMORY;

/// What lago's built templates need: Debian's kernel spans 74 MiB of physical memory once
/// loaded (it boots in 96 MiB, not in 80), and its VMs get some room to work.
const BUILT_MIN_MEMORY: u64 = 128;

fn publish(opts: &BuildOptions, image: &Image, runner: &dyn CommandRunner) -> Result<Built, BuildError> {
    let metadata = json!({
        "distro": image.distro, "arch": "x86_64",
        "root-partition": "/dev/vda2", "root-password": "123456", "kernel": image.kernel,
        "base": "debian:bookworm", "inputs": image.inputs,
        "bootstrap": image.bootstrap, "guest-agent": image.guest_agent,
        MIN_MEMORY: BUILT_MIN_MEMORY,
    });
    let boot = image.boot.as_ref().map(|b| (b.vmlinux.as_path(), b.initrd.as_path(), b.cmdline.as_str()));
    publish_into(&opts.repo_dir, &opts.name, None, &image.raw, metadata, boot, runner)
}

/// Publishes image `source` (any format qemu-img reads) as version `version` (`None`: the next
/// `vN`) of template `name` in the local repository at `repo_dir`, under the repository's lock:
/// the image converted to qcow2, its `.hash`, its `.metadata` (`metadata` with `name`, `version`,
/// `sha1` and `size` added), its direct-boot files (`boot`: kernel, initrd, command line) and
/// its `repo.metadata` entry. A failed or interrupted publication leaves nothing.
pub(crate) fn publish_into(
    repo_dir: &Path,
    name: &str,
    version: Option<&str>,
    source: &Path,
    mut metadata: Value,
    boot: Option<(&Path, &Path, &str)>,
    runner: &dyn CommandRunner,
) -> Result<Built, BuildError> {
    std::fs::create_dir_all(repo_dir).map_err(io("create", repo_dir))?;
    let meta_path = repo_dir.join("repo.metadata");
    // One publication at a time per repository: the version number is decided under the lock.
    let lock = FileLock::acquire(
        &repo_dir.join(".repo.metadata.lock"),
        &crate::report::NoopReporter,
        "Waiting for another publication into the repository",
        None,
    )?;
    let mut repo = read_repo_for_update(&meta_path, repo_dir)?;
    let versions = repo["templates"][name]["versions"].as_object().cloned().unwrap_or_default();
    let version = match version {
        Some(v) if versions.contains_key(v) => {
            return Err(BuildError::Repo(format!(
                "template {name} has a version {v} already in {}; choose another `--version`",
                meta_path.display()
            )));
        }
        Some(v) => v.to_owned(),
        None => {
            let next = versions
                .keys()
                .filter_map(|v| v.strip_prefix('v').and_then(|n| n.parse::<u64>().ok()))
                .max()
                .unwrap_or(0)
                + 1;
            format!("v{next}")
        }
    };
    let handle = format!("{name}-{version}.qcow2");
    let dest = repo_dir.join(&handle);
    let tmp = repo_dir.join(format!(".{handle}.{}.tmp", std::process::id()));
    let mut partial = Partial(vec![tmp.clone()]);
    crate::host::images::Images::new(runner).convert(source, &tmp, "qcow2", false, None)?;
    crate::host::interrupt::check().map_err(BuildError::Interrupted)?;
    let hash = crate::template::store::sha1_file(&tmp).map_err(|e| BuildError::Missing(e.to_string()))?;
    let size = std::fs::metadata(&tmp).map_err(io("stat", &tmp))?.len();
    for (key, value) in
        [("name", json!(name)), ("version", json!(version)), ("sha1", json!(hash)), ("size", json!(size))]
    {
        metadata[key] = value;
    }
    if let Some((vmlinux, initrd, cmdline)) = boot {
        // Beside the image: `<handle>.vmlinux` and `<handle>.initrd`, named in `boot`.
        let mut entry = json!({"cmdline": cmdline});
        for (key, from) in [("kernel", vmlinux), ("initrd", initrd)] {
            let file = format!("{handle}.{}", if key == "kernel" { "vmlinux" } else { "initrd" });
            let tmp = repo_dir.join(format!(".{file}.{}.tmp", std::process::id()));
            partial.0.push(tmp.clone());
            std::fs::copy(from, &tmp).map_err(io("copy", from))?;
            let sha1 = crate::template::store::sha1_file(&tmp).map_err(|e| BuildError::Missing(e.to_string()))?;
            let dest = repo_dir.join(&file);
            partial.0.push(dest.clone());
            std::fs::rename(&tmp, &dest).map_err(io("rename", &tmp))?;
            entry[key] = json!(file);
            entry[format!("{key}_sha1")] = json!(sha1);
        }
        metadata["boot"] = entry;
    }
    let (meta_file, hash_file) = (repo_dir.join(format!("{handle}.metadata")), repo_dir.join(format!("{handle}.hash")));
    partial.0.extend([meta_file.clone(), hash_file.clone()]);
    let text = serde_json::to_string_pretty(&metadata).unwrap_or_default();
    crate::host::pathio::write_atomic(&meta_file, text.as_bytes())?;
    crate::host::pathio::write_atomic(&hash_file, hash.as_bytes())?;
    crate::host::interrupt::check().map_err(BuildError::Interrupted)?;
    partial.0.push(dest.clone());
    std::fs::rename(&tmp, &dest).map_err(io("rename", &tmp))?;
    let timestamp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    repo["templates"][name]["versions"][&version] =
        json!({"source": "local", "handle": handle, "timestamp": timestamp});
    let text = serde_json::to_string_pretty(&repo).unwrap_or_default();
    crate::host::pathio::write_atomic(&meta_path, text.as_bytes())?;
    partial.0.clear();
    drop(partial);
    drop(lock);
    Ok(Built { name: name.to_owned(), version, path: dest, hash, size, published: true })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An interrupted build's work directory with a directory of the host bind-mounted into it
    /// (as mmdebstrap's root mode leaves `dev`): the sweep detaches the mount and removes the
    /// work directory without touching what the mount showed. Mounting needs root.
    #[test]
    fn sweeping_a_work_dir_detaches_what_is_mounted_in_it_first() {
        if !nix::unistd::Uid::effective().is_root() {
            return; // mounting needs root (the tests run as root in CI)
        }
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("canary"), "host file").unwrap();
        let cache = tempfile::tempdir().unwrap();
        let work = cache.path().join(".build-debian12.x");
        let dev = work.join("dev");
        std::fs::create_dir_all(&dev).unwrap();
        nix::mount::mount(Some(host.path()), &dev, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>).unwrap();
        assert!(dev.join("canary").exists());

        sweep_work_dir(&work).unwrap();

        assert!(!work.exists());
        assert_eq!(std::fs::read_to_string(host.path().join("canary")).unwrap(), "host file");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(crate::host::mounts::mount_points_under(&mounts, cache.path()).is_empty());
    }
}
