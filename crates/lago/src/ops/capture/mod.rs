//! `lago capture` and `lago replay` (`docs/design.md`, "Captures"): the whole running
//! environment at one instant as one artefact, which comes back running on this host or another
//! with a compatible qemu.
//!
//! A capture is a fork with no copy ([`Env::freeze_in_place`]): the VMs are paused together,
//! their device states saved and their memory files and disks' top layers moved into a frozen
//! state, and the environment goes on from it at once in new qemu processes (as after `lago
//! fork`). The frozen state is then packed ([`archive`]): the manifest, the device states, the
//! memory files, the disks (layered on the templates of the store they use, named by store name
//! and hash, or standalone), the prefix's records as they were frozen, the init file, the logs
//! and collected artifacts. A replay unpacks it into a new workdir as a frozen state of its own,
//! the templates found in the store (or fetched from the configured repository), and starts the
//! prefix as a copy of it ([`crate::ops::fork::start_copy`]).

mod archive;
pub mod manifest;
mod replay;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::env::Env;
use crate::host::images::{ImageError, Images};
use crate::host::pathio::{PathError, at};
use crate::host::process::{CommandRunner, ProcessError};
use crate::ops::fork::ForkError;
use crate::prefix::frozen::{Frozen, FrozenError};
use crate::report::{Reporter, task};
use manifest::{CapturedDisk, CapturedVm, EXTENSION, FORMAT, MANIFEST, Manifest, Qemu, TemplateRef};

pub use replay::{ReplayOptions, Replayed, replay};

/// Capture and replay failures.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The capture's name cannot be a file name.
    #[error(
        "Invalid capture name {name:?}: expected letters, digits, `-`, `_` or `.`, starting with a letter or digit"
    )]
    BadName {
        /// The name.
        name: String,
    },
    /// The output directory is not one.
    #[error("--output {}: not a directory", dir.display())]
    NoOutputDir {
        /// The directory.
        dir: PathBuf,
    },
    /// The artefact exists.
    #[error("{} exists already: choose another name or --output directory, or remove it", path.display())]
    Exists {
        /// The artefact.
        path: PathBuf,
    },
    /// A file given does not exist.
    #[error("{what} {}: no such {kind}", path.display())]
    Missing {
        /// Which option.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// File or directory.
        kind: &'static str,
    },
    /// A VM cannot be frozen.
    #[error("VM {vm} cannot be captured: {reason}")]
    Refused {
        /// The VM.
        vm: String,
        /// Why (a capture freezes VMs as `lago fork` does, and refuses what it refuses).
        reason: String,
    },
    /// The artefact given to replay is not there.
    #[error("{}: no such artefact", path.display())]
    NoArtefact {
        /// The path.
        path: PathBuf,
    },
    /// The artefact cannot be read.
    #[error("{} is not a capture lago can replay: {reason}", artefact.display())]
    Corrupt {
        /// The artefact.
        artefact: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The workdir of a replay is in use.
    #[error("{} exists and is not empty: a replay makes a workdir of its own", path.display())]
    WorkdirInUse {
        /// The directory.
        path: PathBuf,
    },
    /// This host's qemu cannot load the captured state.
    #[error(
        "The capture needs qemu {} (machine type {}, which its VMs' state was saved under); this host's {} is {} (machine type {})",
        need.version, need.machine, manifest::QEMU, have.version, have.machine
    )]
    Qemu {
        /// What the capture needs.
        need: Qemu,
        /// What the host has.
        have: Qemu,
    },
    /// The VMs ran under KVM, which this host cannot give.
    #[error("The capture's VMs ran under KVM ({}), and /dev/kvm cannot be opened here: their state loads only under KVM", vms.join(", "))]
    NoKvm {
        /// The VMs.
        vms: Vec<String>,
    },
    /// Templates the disks are layered on are neither in the store nor in the repository.
    #[error("Templates missing: {} (in neither the store {} nor the configured repository: {why})", names.join(", "), store.display())]
    Templates {
        /// Their store names.
        names: Vec<String>,
        /// The store.
        store: PathBuf,
        /// Why the repository did not give them.
        why: String,
    },
    /// No tmpfs for the VMs' memory.
    #[error("The replayed VMs' memory files need a tmpfs: {why}")]
    NoMemoryDir {
        /// Why there is none.
        why: String,
    },
    /// An external tool failed.
    #[error("Cannot {action}")]
    Tool {
        /// What was being done.
        action: &'static str,
        /// The tool's failure.
        #[source]
        source: ProcessError,
    },
    /// A disk could not be prepared.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The freeze or the start from the frozen state failed.
    #[error(transparent)]
    Fork(#[from] ForkError),
    /// A frozen state could not be used.
    #[error(transparent)]
    Frozen(#[from] FrozenError),
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] PathError),
}

/// What a capture writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureOptions {
    /// The capture's name (the artefact is `<output>/<name>.lago-capture`).
    pub name: String,
    /// The directory the artefact goes to.
    pub output: PathBuf,
    /// Flattened disks that need no template (else top layers naming the templates they use).
    pub standalone: bool,
    /// The init file to include (else the one the prefix's log names, when it still exists).
    pub init_file: Option<PathBuf>,
    /// A directory of collected artifacts to include.
    pub artifacts: Option<PathBuf>,
}

/// A capture written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// The artefact.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// How long the capture took.
    pub elapsed: Duration,
    /// How many VMs it holds.
    pub vms: usize,
}

/// Bytes as people read them (`1.2 MiB`).
pub fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", b / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", b / 1_048_576.0),
        _ => format!("{:.2} GiB", b / 1_073_741_824.0),
    }
}

/// The init file the prefix was made from, as its log names it (`init of P from FILE (staging
/// in ...)`).
pub fn init_file_of(log: &str) -> Option<PathBuf> {
    log.lines().find_map(|l| {
        let rest = l.split("init of ").nth(1)?;
        let from = rest.split(" from ").nth(1)?;
        let file = from.rsplit_once(" (staging in ").map_or(from, |(f, _)| f);
        Some(PathBuf::from(file.trim()))
    })
}

/// The store image a disk is layered on, and how many layers down: the first image of its
/// chain that has a `.hash` beside it.
fn store_template(disk: &Path) -> Option<(PathBuf, TemplateRef, usize)> {
    let mut image = disk.to_owned();
    for depth in 1..=32 {
        let backing = crate::host::images::qcow2_backing(&image).ok().flatten()?;
        let backing = if backing.is_relative() { image.parent()?.join(backing) } else { backing };
        let hash = crate::host::pathio::beside(&backing, "hash");
        if let Ok(text) = std::fs::read_to_string(&hash) {
            let store_name = backing.file_name()?.to_string_lossy().into_owned();
            let hash = text.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
            return Some((backing, TemplateRef { store_name, hash }, depth));
        }
        image = backing;
    }
    None
}

/// Puts the frozen disk `disk` into the staging directory as `dst`: itself when it is a layer
/// right on a template (a link, followed when packed), else rewritten as one layer on its
/// template, or flattened (`standalone`, or no template under it). Returns its template, and
/// the direct-boot files beside the template (a standalone disk takes them along).
fn stage_disk(
    disk: &Path,
    dst: &Path,
    standalone: bool,
    images: &Images<'_>,
) -> Result<(Option<TemplateRef>, Vec<PathBuf>), CaptureError> {
    let found = store_template(disk);
    match found {
        Some((_, t, 1)) if !standalone => {
            std::os::unix::fs::symlink(disk, dst).map_err(at("link", dst))?;
            Ok((Some(t), Vec::new()))
        }
        Some((base, t, _)) if !standalone => {
            images.convert(disk, dst, "qcow2", false, Some((&base.display().to_string(), "qcow2")))?;
            Ok((Some(t), Vec::new()))
        }
        found => {
            images.convert(disk, dst, "qcow2", false, None)?;
            let boot = found
                .map(|(base, _, _)| {
                    ["vmlinux", "initrd"]
                        .map(|x| crate::host::pathio::beside(&base, x))
                        .into_iter()
                        .filter(|p| p.is_file())
                        .collect()
                })
                .unwrap_or_default();
            Ok((None, boot))
        }
    }
}

impl Env {
    /// Captures the running environment into one artefact (see the module): its VMs paused
    /// together, frozen, going on at once; the frozen state packed with the records, init file,
    /// logs and artifacts. Returns the artefact, its size and the time taken.
    pub fn capture(
        &self,
        opts: &CaptureOptions,
        runner: &dyn CommandRunner,
        reporter: &dyn Reporter,
    ) -> Result<Captured, CaptureError> {
        let started = Instant::now();
        if crate::prefix::workdir::check_prefix_name(&opts.name).is_err() {
            return Err(CaptureError::BadName { name: opts.name.clone() });
        }
        if !opts.output.is_dir() {
            return Err(CaptureError::NoOutputDir { dir: opts.output.clone() });
        }
        let path = opts.output.join(format!("{}.{EXTENSION}", opts.name));
        if path.exists() {
            return Err(CaptureError::Exists { path });
        }
        if let Some(f) = opts.init_file.as_ref().filter(|f| !f.is_file()) {
            return Err(CaptureError::Missing { what: "--init-file", path: f.clone(), kind: "file" });
        }
        if let Some(d) = opts.artifacts.as_ref().filter(|d| !d.is_dir()) {
            return Err(CaptureError::Missing { what: "--artifacts", path: d.clone(), kind: "directory" });
        }
        let qemu =
            Qemu::of_host(runner).map_err(|source| CaptureError::Tool { action: "ask qemu its version", source })?;
        let frozen = self.freeze_in_place(runner, reporter).map_err(|e| match e {
            ForkError::Refused { vm, reason } => CaptureError::Refused { vm, reason },
            e => e.into(),
        })?;
        // The environment uses it from now on; held all the same while it is read.
        let _hold = frozen.hold()?;
        let staging = opts.output.join(format!(".{}.{EXTENSION}.{}", opts.name, std::process::id()));
        let partial = crate::host::pathio::beside(&path, "partial");
        let _ = std::fs::remove_dir_all(&staging);
        let written = (|| {
            std::fs::create_dir_all(&staging).map_err(at("create", &staging))?;
            let manifest =
                task(reporter, "Gather the frozen state", || self.stage(&frozen, &staging, opts, qemu, runner))?;
            let text = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
            std::fs::write(staging.join(MANIFEST), text).map_err(at("write", &staging))?;
            task(reporter, "Write artefact", || {
                archive::pack(&staging, &partial, runner)
                    .map_err(|source| CaptureError::Tool { action: "write the artefact", source })
            })?;
            std::fs::rename(&partial, &path).map_err(at("rename", &partial))?;
            Ok::<_, CaptureError>(manifest.vms.len())
        })();
        let _ = std::fs::remove_dir_all(&staging);
        let vms = match written {
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        };
        let size = std::fs::metadata(&path).map_err(at("stat", &path))?.len();
        let captured = Captured { path, size, elapsed: started.elapsed(), vms };
        reporter.note(&format!(
            "Captured {} VM{} into {}: {} in {:.1} s",
            captured.vms,
            if captured.vms == 1 { "" } else { "s" },
            captured.path.display(),
            human_size(captured.size),
            captured.elapsed.as_secs_f64()
        ));
        Ok(captured)
    }

    /// Fills `staging` with what the artefact holds (links to the frozen state's big files,
    /// followed when packed) and returns the manifest.
    fn stage(
        &self,
        frozen: &Frozen,
        staging: &Path,
        opts: &CaptureOptions,
        qemu: Qemu,
        runner: &dyn CommandRunner,
    ) -> Result<Manifest, CaptureError> {
        let link = |from: &Path, to: &Path| std::os::unix::fs::symlink(from, to).map_err(at("link", to));
        for sub in ["disks", "state", archive::MEMORY] {
            std::fs::create_dir_all(staging.join(sub)).map_err(at("create", staging))?;
        }
        let images = Images::new(runner);
        let mut vms = std::collections::BTreeMap::new();
        for (name, vm) in &frozen.manifest.vms {
            link(&frozen.dir.join(&vm.state), &staging.join("state").join(format!("{name}.state")))?;
            link(&vm.memory, &staging.join(archive::MEMORY).join(format!("{name}.mem")))?;
            let mut disks = std::collections::BTreeMap::new();
            for (index, rel) in &vm.disks {
                let file = rel.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                let member = format!("disks/{file}");
                let (template, boot) =
                    stage_disk(&frozen.dir.join(rel), &staging.join(&member), opts.standalone, &images)?;
                for b in boot {
                    let ext = b.extension().map(|x| x.to_string_lossy().into_owned()).unwrap_or_default();
                    link(&b, &crate::host::pathio::beside(&staging.join(&member), &ext))?;
                }
                disks.insert(*index, CapturedDisk { file: member, template });
            }
            vms.insert(name.clone(), CapturedVm { memory_mib: vm.memory_mib, accel: vm.accel.clone(), disks });
        }
        link(&frozen.skel(), &staging.join("prefix"))?;
        let logs = self.prefix.layout().logs();
        if logs.is_dir() {
            crate::ops::fork::copy_tree(&logs, &staging.join("logs"), &|_| false)?;
        }
        if let Some(dir) = &opts.artifacts {
            link(&std::path::absolute(dir).map_err(at("resolve", dir))?, &staging.join("artifacts"))?;
        }
        let init = opts.init_file.clone().or_else(|| {
            let log = std::fs::read_to_string(self.prefix.layout().log()).ok()?;
            init_file_of(&log).filter(|f| f.is_file())
        });
        let init_file = match init {
            Some(file) => {
                let name = file.file_name().map_or("LagoInitFile".into(), |n| n.to_string_lossy().into_owned());
                std::fs::create_dir_all(staging.join("init")).map_err(at("create", staging))?;
                std::fs::copy(&file, staging.join("init").join(&name)).map_err(at("copy", &file))?;
                Some(format!("init/{name}"))
            }
            None => None,
        };
        Ok(Manifest {
            format: FORMAT,
            lago: env!("CARGO_PKG_VERSION").to_owned(),
            name: opts.name.clone(),
            prefix: self.prefix.name(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            qemu,
            standalone: opts.standalone,
            pause_spread_ms: frozen.manifest.pause_spread_ms,
            init_file,
            vms,
        })
    }
}

#[cfg(test)]
mod tests;
