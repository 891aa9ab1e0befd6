//! `lago export`: the disks of stopped VMs, and an init file that brings them back
//! (reference §6.7).
//!
//! Each disk becomes `<dst>/<file name>` with `.hash` (sha1) and `.metadata` beside it:
//! - **standalone**: the whole backing chain flattened into one qcow2 (`qemu-img convert`,
//!   which also leaves unused clusters out, as the original's `virt-sparsify` did);
//! - **layered** (template disks): only what differs from the template, as a qcow2 whose
//!   backing file is `./<template>:<version>`; `lago init` of the exported init file fetches that
//!   version from the repository into the store and links it beside the disk;
//! - `--compress` writes qcow2 compressed clusters (the original wrote `.xz` files, which its
//!   own `init` could not read back).
//!
//! The init file holds the exported VMs and their networks, each disk at
//! `$LAGO_INITFILE_PATH/<file name>`, so that `cd <dst> && lago init && lago start` works.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::env::{Env, EnvError, for_each_parallel};
use crate::host::pathio::{PathError, at as io};
use crate::host::process::{CommandRunner, Invocation, ProcessError};
use crate::report::{Reporter, task};

/// Export failures.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// VMs are running.
    #[error("The following vms must be off:\n{}", .0.join("\n"))]
    Running(Vec<String>),
    /// A layered export of a disk that is not a repository template's overlay.
    #[error("VM {vm}: disk {disk} is not an overlay of a repository template; export it with --standalone")]
    NotLayered {
        /// The VM.
        vm: String,
        /// The disk.
        disk: String,
    },
    /// A disk type that cannot be exported.
    #[error("VM {vm}: export is not supported for disk {disk} of type {kind}")]
    Unsupported {
        /// The VM.
        vm: String,
        /// The disk.
        disk: String,
        /// Its type.
        kind: String,
    },
    /// Two disks would be written to the same file.
    #[error("Two exported disks would both be {0}")]
    Clash(PathBuf),
    /// `qemu-img` failed.
    #[error("VM {vm}: cannot export disk {disk}")]
    Tool {
        /// The VM.
        vm: String,
        /// The disk.
        disk: String,
        /// The tool's failure.
        #[source]
        source: ProcessError,
    },
    /// A source disk could not be inspected.
    #[error("VM {vm}: cannot export a disk")]
    Image {
        /// The VM.
        vm: String,
        /// Why.
        #[source]
        source: crate::host::images::ImageError,
    },
    /// An exported disk could not be hashed.
    #[error(transparent)]
    Hash(#[from] crate::template::StoreError),
    /// The environment failed.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The prefix could not be read.
    #[error(transparent)]
    Prefix(#[from] crate::prefix::PrefixError),
    /// A file could not be written.
    #[error(transparent)]
    Io(#[from] PathError),
    /// lago was interrupted; the disk's previous export, if any, is untouched.
    #[error("VM {vm}: export stopped")]
    Interrupted {
        /// The VM.
        vm: String,
        /// The signal.
        #[source]
        source: crate::host::interrupt::Interrupted,
    },
}

/// What to export and how.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// VMs to export (all when empty).
    pub vm_names: Vec<String>,
    /// Flatten every disk.
    pub standalone: bool,
    /// Compressed qcow2 clusters.
    pub compress: bool,
    /// Destination directory.
    pub dst_dir: PathBuf,
    /// Name of the init file written there; empty: disks only (the SDK's `vm.export_disks()`).
    pub init_file_name: String,
    /// Only say which files would be written.
    pub collect_only: bool,
    /// Write the init file as JSON instead of YAML.
    pub json: bool,
}

/// One disk to export.
struct Job {
    vm: String,
    disk: Map<String, Value>,
    src: PathBuf,
    dst: PathBuf,
    /// `<template>:<version>` for a layered export.
    base: Option<String>,
}

fn s<'a>(m: &'a Map<String, Value>, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

/// `skip-export` of a VM or disk record, as written (`true`, or `yes`/`true` in words).
fn skip_export(m: &Map<String, Value>) -> bool {
    match m.get("skip-export") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(w)) => matches!(w.to_ascii_lowercase().as_str(), "true" | "yes"),
        _ => false,
    }
}

impl Env {
    /// Exports the disks of the named VMs (all when empty) and writes the init file; returns
    /// `{vm: [exported file, ...]}`.
    pub fn export(
        &self,
        opts: &ExportOptions,
        runner: &dyn CommandRunner,
        reporter: &dyn Reporter,
    ) -> Result<Value, ExportError> {
        let _lock = if opts.collect_only { None } else { Some(self.lock("export", reporter)?) };
        // Machines of the `ssh` provider have no disks of lago's.
        let selected: Vec<_> = self.select(&opts.vm_names)?.into_iter().filter(|v| !v.is_ssh()).collect();
        let running = self.running();
        let on: Vec<String> = selected.iter().filter(|v| running.contains(&v.name)).map(|v| v.name.clone()).collect();
        if !on.is_empty() && !opts.collect_only {
            return Err(ExportError::Running(on));
        }
        let virt = self.prefix.virt_env()?;
        let prefix_dir = self.prefix.path.display().to_string();
        let mut jobs = Vec::new();
        let mut domains = Map::new();
        let mut used_nets = Vec::new();
        let mut listing = Map::new();
        for vm in &selected {
            let Some((_, record)) = virt.vms.iter().find(|(n, _)| *n == vm.name) else { continue };
            if skip_export(record) {
                continue;
            }
            let mut spec = record.clone();
            for k in ["name", "snapshots", "mgmt_net"] {
                spec.remove(k);
            }
            if let Some(Value::Object(md)) = spec.get_mut("metadata") {
                md.remove("deploy-scripts");
                md.remove("ovirt-scripts");
            }
            let mut disks_out = Vec::new();
            let mut files = Vec::new();
            for disk in record.get("disks").and_then(Value::as_array).into_iter().flatten() {
                let Some(disk) = disk.as_object() else { continue };
                if skip_export(disk) {
                    continue;
                }
                let src = PathBuf::from(s(disk, "path").replace("$LAGO_PREFIX_PATH", &prefix_dir));
                let file_name = src.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let dst = opts.dst_dir.join(&file_name);
                if jobs.iter().any(|j: &Job| j.dst == dst) {
                    return Err(ExportError::Clash(dst));
                }
                let kind = s(disk, "type");
                let mut out = disk.clone();
                for k in ["metadata", "template_name", "template_version"] {
                    out.remove(k);
                }
                out.insert("path".into(), json!(format!("$LAGO_INITFILE_PATH/{file_name}")));
                let mut base = None;
                match kind {
                    "template" => {
                        out.insert("template_type".into(), json!("qcow2"));
                        out.insert("format".into(), json!("qcow2"));
                        if !opts.standalone {
                            // Layered on the template it is an overlay of, named as the
                            // original did: its store image's name without the repository
                            // (`<repo>:<template>:<version>` → `<template>:<version>`).
                            let layered_on = (s(disk, "template_type") != "qcow2")
                                .then(|| crate::host::images::qcow2_backing(&src).ok().flatten())
                                .flatten()
                                .and_then(|b| Some(b.file_name()?.to_string_lossy().split_once(':')?.1.to_owned()))
                                .filter(|t| t.contains(':'));
                            let Some(template) = layered_on else {
                                return Err(ExportError::NotLayered {
                                    vm: vm.name.clone(),
                                    disk: s(disk, "name").to_owned(),
                                });
                            };
                            base = Some(template);
                        }
                    }
                    "empty" => {
                        out.insert("type".into(), json!("file"));
                        out.insert("make_a_copy".into(), json!("True"));
                    }
                    "file" => {}
                    other => {
                        return Err(ExportError::Unsupported {
                            vm: vm.name.clone(),
                            disk: s(disk, "name").to_owned(),
                            kind: other.to_owned(),
                        });
                    }
                }
                if kind != "template" {
                    out.insert("make_a_copy".into(), json!("True"));
                }
                files.push(json!(dst.display().to_string()));
                disks_out.push(Value::Object(out));
                jobs.push(Job { vm: vm.name.clone(), disk: disk.clone(), src, dst, base });
            }
            spec.insert("disks".into(), Value::Array(disks_out));
            for nic in spec.get("nics").and_then(Value::as_array).into_iter().flatten() {
                let net = nic.get("net").and_then(Value::as_str).unwrap_or("").to_owned();
                if !used_nets.contains(&net) {
                    used_nets.push(net);
                }
            }
            domains.insert(vm.name.clone(), Value::Object(spec));
            listing.insert(vm.name.clone(), Value::Array(files));
        }
        if opts.collect_only {
            return Ok(Value::Object(listing));
        }
        let mut nets = Map::new();
        for (name, net) in &virt.nets {
            if used_nets.contains(name) {
                let mut net = net.clone();
                for k in ["name", "mapping", "dns_records"] {
                    net.remove(k);
                }
                nets.insert(name.clone(), Value::Object(net));
            }
        }
        std::fs::create_dir_all(&opts.dst_dir).map_err(io("create", &opts.dst_dir))?;
        task(reporter, &format!("Exporting disks to: {}", opts.dst_dir.display()), || {
            for_each_parallel(&jobs, |job| {
                task(reporter, &format!("Export disk {} of VM {}", s(&job.disk, "name"), job.vm), || {
                    export_disk(job, opts, runner, reporter)
                })
            })
        })?;
        if opts.init_file_name.is_empty() {
            return Ok(Value::Object(listing));
        }
        let init_path = opts.dst_dir.join(&opts.init_file_name);
        task(reporter, &format!("Exporting init file to: {}", init_path.display()), || {
            let init = json!({"domains": domains, "nets": nets});
            let text = if opts.json {
                crate::output::python_json(&init, true)
            } else {
                format!("{}\n", crate::output::Format::Yaml.render(&init))
            };
            crate::host::pathio::write_atomic(&init_path, text.as_bytes()).map_err(ExportError::from)
        })?;
        Ok(Value::Object(listing))
    }
}

fn sidecar(dst: &Path, ext: &str) -> PathBuf {
    let mut name = dst.as_os_str().to_owned();
    name.push(format!(".{ext}"));
    PathBuf::from(name)
}

/// Temporary files of one disk's export, removed unless the export completes.
struct Partial(Vec<PathBuf>);

impl Drop for Partial {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Exports one disk: the image, its `.hash` and its `.metadata` are written under temporary names
/// beside their destinations and renamed into place together at the end, so an interrupted or
/// failed export leaves the previous export as it was (and no partial file).
/// Removes `.<name>.export-<pid>` files of `path` that a killed export left (their pid is gone).
fn remove_stale_temps(path: &Path, reporter: &dyn Reporter) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return };
    let prefix = format!(".{}.export-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = file.strip_prefix(&prefix).and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
            && std::fs::remove_file(e.path()).is_ok()
        {
            reporter.warn(&format!("Repaired: removed {} left by an interrupted `lago export`", e.path().display()));
        }
    }
}

fn export_disk(
    job: &Job,
    opts: &ExportOptions,
    runner: &dyn CommandRunner,
    reporter: &dyn Reporter,
) -> Result<(), ExportError> {
    let terr = |source| ExportError::Tool { vm: job.vm.clone(), disk: s(&job.disk, "name").to_owned(), source };
    let format = match s(&job.disk, "format") {
        "" => "qcow2",
        f => f,
    };
    let temp = |path: &Path| {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        path.with_file_name(format!(".{name}.export-{}", std::process::id()))
    };
    let (hash_path, meta_path) = (sidecar(&job.dst, "hash"), sidecar(&job.dst, "metadata"));
    for path in [&job.dst, &hash_path, &meta_path] {
        remove_stale_temps(path, reporter);
    }
    let (tmp, tmp_hash, tmp_meta) = (temp(&job.dst), temp(&hash_path), temp(&meta_path));
    let partial = Partial(vec![tmp.clone(), tmp_hash.clone(), tmp_meta.clone()]);
    let _ = std::fs::remove_file(&tmp);
    if format == "iso" {
        runner.run(&Invocation::new("cp").args(["--sparse=always", "--"]).arg(&job.src).arg(&tmp)).map_err(terr)?;
    } else {
        let out_format = if s(&job.disk, "type") == "template" { "qcow2" } else { format };
        let images = crate::host::images::Images::new(runner);
        let ierr = |source| ExportError::Image { vm: job.vm.clone(), source };
        match &job.base {
            // Layered: only the clusters that differ from the template, then the backing file is
            // renamed to `./<name>:<version>`.
            Some(base) => {
                let info = images.info(&job.src).map_err(ierr)?;
                let backing_format = info.backing_format.unwrap_or_else(|| "qcow2".into());
                let backing = info.backing.unwrap_or_default();
                images
                    .convert(&job.src, &tmp, out_format, opts.compress, Some((&backing, &backing_format)))
                    .map_err(ierr)?;
                images.rebase_unsafe(&tmp, &format!("./{base}"), &backing_format).map_err(ierr)?;
            }
            None => images.convert(&job.src, &tmp, out_format, opts.compress, None).map_err(ierr)?,
        }
    }
    crate::host::interrupt::check().map_err(|i| ExportError::Interrupted { vm: job.vm.clone(), source: i })?;
    let hash = crate::template::store::sha1_file(&tmp)?;
    let size = std::fs::metadata(&tmp).map_err(io("stat", &tmp))?.len();
    let mut metadata = job.disk.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
    // The direct-boot files stay in the template store: an export boots from its own disk.
    metadata.remove("boot");
    let name = job.dst.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    metadata.insert("sha1".into(), json!(hash));
    metadata.insert("size".into(), json!(size));
    metadata.insert("name".into(), json!(name));
    metadata.insert("version".into(), json!(format!("{}.0", chrono::Utc::now().format("%Y%m%d"))));
    metadata.insert("base".into(), json!(job.base.clone().unwrap_or_else(|| "None".into())));
    // Written in place: they are temporary names already (a helper's own temporary file would
    // carry a name the next export's sweep does not know).
    std::fs::write(&tmp_hash, hash.as_bytes()).map_err(io("write", &tmp_hash))?;
    std::fs::write(&tmp_meta, Value::Object(metadata).to_string().as_bytes()).map_err(io("write", &tmp_meta))?;
    crate::host::interrupt::check().map_err(|i| ExportError::Interrupted { vm: job.vm.clone(), source: i })?;
    for (from, to) in [(&tmp, &job.dst), (&tmp_hash, &hash_path), (&tmp_meta, &meta_path)] {
        std::fs::rename(from, to).map_err(io("write", to))?;
    }
    drop(partial);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::env::fake::{Calls, Fake, env};
    use crate::host::process::{FakeRunner, Output};
    use crate::report::NoopReporter;

    /// `qemu-img` whose `convert` writes its destination (the last argument).
    fn converting_runner() -> FakeRunner {
        FakeRunner::new(|inv| {
            if inv.args.first().is_some_and(|a| a == "convert") {
                std::fs::write(inv.args.last().unwrap(), b"image").unwrap();
            }
            Ok(Output::default())
        })
    }

    #[test]
    fn stopped_vms_disks_are_converted_and_an_init_file_brings_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let calls = Arc::new(Calls::default());
        calls.running.lock().unwrap().push("vm01".into());
        let env = env(dir.path(), Fake { calls: calls.clone(), ..Fake::default() });
        let out = dir.path().join("out");
        let opts = ExportOptions {
            vm_names: vec![],
            standalone: false,
            compress: true,
            dst_dir: out.clone(),
            init_file_name: "LagoInitFile".into(),
            collect_only: false,
            json: false,
        };
        let runner = converting_runner();
        let err = env.export(&opts, &runner, &NoopReporter).unwrap_err();
        assert!(matches!(&err, ExportError::Running(vms) if vms == &["vm01".to_owned()]), "{err}");
        assert_eq!(runner.command_lines(), "", "nothing is exported while a VM runs");

        calls.running.lock().unwrap().clear();
        let listing = env.export(&opts, &runner, &NoopReporter).unwrap();
        assert_eq!(listing["vm02"], json!([out.join("vm02_root.qcow2").display().to_string()]));
        let lines = runner.command_lines();
        for vm in ["vm00", "vm01", "vm02"] {
            let src = env.prefix.path.join(format!("images/{vm}_root.qcow2")).display().to_string();
            assert!(lines.contains(&format!("qemu-img convert -q -O qcow2 -c {src} ")), "{lines}");
            let dst = out.join(format!("{vm}_root.qcow2"));
            assert_eq!(std::fs::read(&dst).unwrap(), b"image");
            assert_eq!(
                std::fs::read_to_string(sidecar(&dst, "hash")).unwrap().trim(),
                crate::template::store::sha1_file(&dst).unwrap()
            );
        }
        // No temporary file stays beside the export.
        let names: Vec<String> =
            std::fs::read_dir(&out).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        assert!(!names.iter().any(|n| n.starts_with('.')), "{names:?}");
        let init: Value =
            crate::spec::tree::parse(&std::fs::read_to_string(out.join("LagoInitFile")).unwrap(), false).unwrap();
        assert_eq!(init["domains"]["vm00"]["disks"][0]["path"], "$LAGO_INITFILE_PATH/vm00_root.qcow2");
        assert_eq!(init["domains"]["vm00"]["disks"][0]["make_a_copy"], "True");
        assert_eq!(init["nets"]["n"]["type"], "nat");
    }

    #[test]
    fn sidecars() {
        assert_eq!(sidecar(Path::new("/x/vm_root.qcow2"), "hash"), Path::new("/x/vm_root.qcow2.hash"));
    }
}
