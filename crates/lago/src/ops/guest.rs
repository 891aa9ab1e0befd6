//! Work inside running VMs: copying files, collecting artifacts, running deploy scripts,
//! graceful shutdown (reference §1.3, §3.8, §7.4).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::env::{Env, EnvError, for_each_parallel};
use crate::host::pathio::at;
use crate::host::ssh::{CommandStatus, quote};
use crate::report::{Reporter, task};

/// Failures of guest operations.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// The environment failed.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// A copy failed.
    #[error("Failed to copy {from} to {to} (VM {vm}): {stderr}")]
    Copy {
        /// VM.
        vm: String,
        /// Whether the copy went into the VM (else out of it).
        into_vm: bool,
        /// Source.
        from: String,
        /// Destination.
        to: String,
        /// scp's error.
        stderr: String,
    },
    /// A path to collect does not exist and `--no-skip` was given.
    #[error("Failed to extract files: {path} does not exist in VM {vm}")]
    NoPath {
        /// VM.
        vm: String,
        /// The path.
        path: String,
    },
    /// Collecting failed.
    #[error("Cannot collect artifacts of VM {vm}: {reason}")]
    Collect {
        /// VM.
        vm: String,
        /// Why.
        reason: String,
    },
    /// A deploy script failed.
    #[error("{script} failed with status {code} on {vm}\n{output}")]
    Deploy {
        /// The script.
        script: String,
        /// VM.
        vm: String,
        /// Exit code.
        code: i32,
        /// Its output (stdout then stderr).
        output: String,
    },
    /// A VM did not power off in time.
    #[error("Failed to shutdown vm: {vm} (still running after {secs} s)")]
    Shutdown {
        /// VM.
        vm: String,
        /// The limit.
        secs: u64,
    },
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] crate::host::pathio::PathError),
}

fn ssh_err(vm: &str) -> impl FnOnce(std::io::Error) -> GuestError {
    let vm = vm.to_owned();
    move |source| GuestError::Env(EnvError::Ssh { vm, source })
}

/// `lago copy-to-vm`.
pub fn copy_to(env: &Env, vm: &str, local: &Path, remote: &str) -> Result<(), GuestError> {
    let t = env.ssh_target(vm)?;
    let st = t.copy_to(local, remote).map_err(ssh_err(vm))?;
    if st.code != 0 {
        return Err(GuestError::Copy {
            vm: vm.into(),
            into_vm: true,
            from: local.display().to_string(),
            to: remote.into(),
            stderr: String::from_utf8_lossy(&st.err).trim().into(),
        });
    }
    Ok(())
}

/// `lago copy-from-vm`.
pub fn copy_from(env: &Env, vm: &str, remote: &str, local: &Path) -> Result<(), GuestError> {
    let t = env.ssh_target(vm)?;
    let st = t.copy_from(remote, local).map_err(ssh_err(vm))?;
    if st.code != 0 {
        let stderr = String::from_utf8_lossy(&st.err).trim().to_owned();
        if stderr.contains("No such file or directory") {
            return Err(GuestError::NoPath { vm: vm.into(), path: remote.into() });
        }
        return Err(GuestError::Copy {
            vm: vm.into(),
            into_vm: false,
            from: remote.into(),
            to: local.display().to_string(),
            stderr,
        });
    }
    Ok(())
}

/// `lago collect --output DIR [--no-skip]`: the `artifacts` of every VM, VMs in parallel, one
/// tar stream per VM. An existing `dir` is renamed `<dir>.<timestamp>` first.
pub fn collect(env: &Env, dir: &Path, no_skip: bool, reporter: &dyn Reporter) -> Result<(), GuestError> {
    if dir.exists() {
        let rotated = PathBuf::from(format!("{}.{}", dir.display(), chrono::Local::now().format("%Y-%m-%d_%H:%M:%S")));
        std::fs::rename(dir, &rotated).map_err(at("rotate", dir))?;
    }
    std::fs::create_dir_all(dir).map_err(at("create", dir))?;
    let artifacts: Vec<(String, Vec<String>)> =
        env.vms.iter().map(|vm| (vm.name.clone(), artifacts_of(env, &vm.name))).collect();
    task(reporter, "Collect artifacts", || {
        for_each_parallel(&artifacts, |(vm, paths)| collect_vm(env, vm, paths, &dir.join(vm), no_skip, reporter))
    })
}

/// The `artifacts` of a VM's record.
fn artifacts_of(env: &Env, vm: &str) -> Vec<String> {
    env.prefix
        .vm_document(vm)
        .ok()
        .and_then(|s| {
            s.get("artifacts")
                .and_then(|a| a.as_array())
                .map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_owned)).collect())
        })
        .unwrap_or_default()
}

/// One VM's `artifacts` into `dir` (`<dir>/<path with / replaced by _>`): the SDK's
/// `vm.collect_artifacts(host_path, ignore_nopath)`.
pub fn collect_vm_artifacts(
    env: &Env,
    vm: &str,
    dir: &Path,
    no_skip: bool,
    reporter: &dyn Reporter,
) -> Result<(), GuestError> {
    env.select(&[vm.to_owned()])?;
    collect_vm(env, vm, &artifacts_of(env, vm), dir, no_skip, reporter)
}

/// Copies `(guest path, host path)` pairs out of a VM; a missing guest path is an error unless
/// `ignore_nopath` (the SDK's `vm.extract_paths`).
pub fn extract_paths(env: &Env, vm: &str, paths: &[(String, PathBuf)], ignore_nopath: bool) -> Result<(), GuestError> {
    for (guest, host) in paths {
        match copy_from(env, vm, guest, host) {
            Err(GuestError::NoPath { .. }) if ignore_nopath => {}
            other => other?,
        }
    }
    Ok(())
}

/// Collects `paths` of `vm` into `vm_dir`, each as `<path with / replaced by _>`.
fn collect_vm(
    env: &Env,
    vm: &str,
    paths: &[String],
    vm_dir: &Path,
    no_skip: bool,
    reporter: &dyn Reporter,
) -> Result<(), GuestError> {
    std::fs::create_dir_all(vm_dir).map_err(at("create", vm_dir))?;
    if paths.is_empty() {
        return Ok(());
    }
    let record = env.select(&[vm.to_owned()])?[0];
    if !env.state(vm).is_running() && !record.is_ssh() {
        // As the original fell back to libguestfs: the files are read from the VM's disk.
        return collect_from_disk(env, record, paths, vm_dir, no_skip, reporter);
    }
    let t = env.ssh_target(vm)?;
    // Which paths exist, in one round trip.
    let probe =
        paths.iter().map(|p| format!("[ -e {} ] && echo {}", quote(p), quote(p))).collect::<Vec<_>>().join("; ");
    let found = t.exec_line(&format!("{probe}; true"), None, 10).map_err(ssh_err(vm))?;
    let present: Vec<&String> = paths.iter().filter(|p| found.stdout().lines().any(|l| l == p.as_str())).collect();
    for missing in paths.iter().filter(|p| !present.contains(p)) {
        if no_skip {
            return Err(GuestError::NoPath { vm: vm.into(), path: missing.clone() });
        }
        reporter.note(&format!("{vm}: {missing} does not exist, skipped"));
    }
    if present.is_empty() {
        return Ok(());
    }
    let list = present.iter().map(|p| quote(p)).collect::<Vec<_>>().join(" ");
    let scratch = tempfile::tempdir_in(vm_dir).map_err(at("create a directory in", vm_dir))?;
    stream_tar(&t, vm, &list, scratch.path())?;
    for p in present {
        let from = scratch.path().join(p.trim_start_matches('/'));
        let to = vm_dir.join(p.replace('/', "_"));
        std::fs::rename(&from, &to).map_err(at("move", &from))?;
    }
    Ok(())
}

/// Collects `paths` of a stopped VM into `vm_dir` from its disk (see [`copy_out_of_disk`]).
fn collect_from_disk(
    env: &Env,
    record: &crate::prefix::records::VmRecord,
    paths: &[String],
    vm_dir: &Path,
    no_skip: bool,
    reporter: &dyn Reporter,
) -> Result<(), GuestError> {
    let pairs: Vec<(String, PathBuf)> = paths.iter().map(|p| (p.clone(), vm_dir.join(p.replace('/', "_")))).collect();
    reporter.note(&format!("{} is not running: reading its artifacts from its disk", record.name));
    for missing in copy_out_of_disk(env, record, &pairs, vm_dir)? {
        if no_skip {
            return Err(GuestError::NoPath { vm: record.name.clone(), path: missing });
        }
        reporter.note(&format!("{}: {missing} does not exist, skipped", record.name));
    }
    Ok(())
}

/// Copies `(guest path, host path)` pairs out of a VM's disk, without its OS (the original's
/// `vm.extract_paths_dead`); a missing guest path is an error unless `ignore_nopath`.
pub fn extract_paths_dead(
    env: &Env,
    vm: &str,
    paths: &[(String, PathBuf)],
    ignore_nopath: bool,
) -> Result<(), GuestError> {
    let record = env.select(&[vm.to_owned()])?[0];
    let scratch_parent = paths.first().and_then(|(_, h)| h.parent()).filter(|p| !p.as_os_str().is_empty());
    let scratch_parent = scratch_parent.unwrap_or(Path::new("."));
    let missing = copy_out_of_disk(env, record, paths, scratch_parent)?;
    match missing.into_iter().next() {
        Some(path) if !ignore_nopath => Err(GuestError::NoPath { vm: vm.into(), path }),
        _ => Ok(()),
    }
}

/// Copies `(guest path, host path)` pairs out of a VM's first disk with `guestfish` (read-only,
/// libguestfs' `direct` backend unless `LIBGUESTFS_BACKEND` says otherwise), mounting the
/// template's `root-partition` (else what libguestfs' inspection finds): one appliance for all
/// the paths, a scratch directory under `scratch_in`. Returns the guest paths that do not exist.
fn copy_out_of_disk(
    env: &Env,
    record: &crate::prefix::records::VmRecord,
    pairs: &[(String, PathBuf)],
    scratch_in: &Path,
) -> Result<Vec<String>, GuestError> {
    let vm = record.name.as_str();
    let fail = |reason: String| GuestError::Collect { vm: vm.into(), reason };
    let Some(disk) = record.disks.first() else {
        return Err(fail("it is not running and has no disk to read its files from".into()));
    };
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let image = disk.path.replace("$LAGO_PREFIX_PATH", &env.prefix.path.display().to_string());
    std::fs::create_dir_all(scratch_in).map_err(at("create", scratch_in))?;
    let scratch = tempfile::tempdir_in(scratch_in).map_err(at("create a directory in", scratch_in))?;
    let quoted = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let root = disk.metadata.get("root-partition").and_then(|v| v.as_str()).map(appliance_device);
    // The disk and its root partition; without one, libguestfs' inspection mounts the guest.
    let (args, mut script) = match &root {
        Some(dev) => (
            vec!["--ro".to_owned()],
            format!("add {} readonly:true format:{}\nrun\nmount-ro {} /\n", quoted(&image), disk.format, quoted(dev)),
        ),
        None => (
            vec!["--ro".into(), "-i".into(), "--format".into(), disk.format.clone(), "-a".into(), image.clone()],
            String::new(),
        ),
    };
    for (i, (guest, _)) in pairs.iter().enumerate() {
        let into = scratch.path().join(i.to_string());
        std::fs::create_dir_all(&into).map_err(at("create", &into))?;
        // `-`: a path that is not there does not stop the others.
        script.push_str(&format!("-copy-out {} {}\n", quoted(guest), quoted(&into.display().to_string())));
    }
    let mut inv = crate::host::process::Invocation::new("guestfish").args(&args).input(script.into_bytes());
    if std::env::var_os("LIBGUESTFS_BACKEND").is_none() {
        inv = inv.env("LIBGUESTFS_BACKEND", "direct");
    }
    if env.libguestfs_force_tcg() {
        inv = inv.env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg");
    }
    let out = crate::host::process::output(&inv)
        .map_err(|e| fail(format!("cannot run `{inv}`: {e} (guestfish comes with the `guestfs-tools` package)")))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() && !stderr.contains("copy_out") {
        return Err(fail(format!("`guestfish` failed ({}) reading {image}: {}", out.status, stderr.trim())));
    }
    let mut missing = Vec::new();
    for (i, (guest, host)) in pairs.iter().enumerate() {
        let base = Path::new(guest).file_name().map(|b| b.to_os_string()).unwrap_or_default();
        let from = scratch.path().join(i.to_string()).join(&base);
        if std::fs::symlink_metadata(&from).is_err() {
            missing.push(guest.clone());
            continue;
        }
        if let Some(parent) = host.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(at("create", parent))?;
        }
        move_path(&from, host)?;
    }
    Ok(missing)
}

/// Moves `from` to `to`, copying (`cp -a`) where they are on different filesystems.
fn move_path(from: &Path, to: &Path) -> Result<(), GuestError> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
            let inv = crate::host::process::Invocation::new("cp").arg("-a").arg(from).arg(to);
            let out = crate::host::process::output(&inv).map_err(at("copy", from))?;
            if !out.status.success() {
                let words = String::from_utf8_lossy(&out.stderr);
                return Err(at("copy", from)(std::io::Error::other(format!("`{inv}`: {}", words.trim()))).into());
            }
            Ok(())
        }
        other => Ok(other.map_err(at("move", from))?),
    }
}

/// A guest's device name as libguestfs' appliance sees the first disk: `/dev/vda2` and
/// `/dev/hda2` are `/dev/sda2` there.
fn appliance_device(dev: &str) -> String {
    match dev.strip_prefix("/dev/vd").or_else(|| dev.strip_prefix("/dev/hd")).or_else(|| dev.strip_prefix("/dev/xvd")) {
        Some(rest) => format!("/dev/sd{rest}"),
        None => dev.to_owned(),
    }
}

/// Streams `tar -c` of `list` in the VM into `tar -x` on the host, in `into`: nothing is held in
/// memory, and both ends' exit statuses are checked (GNU tar's "file changed as we read it" is
/// only a warning: logs grow while they are collected).
fn stream_tar(t: &crate::host::ssh::Target, vm: &str, list: &str, into: &Path) -> Result<(), GuestError> {
    let remote = t.command(&format!("tar -chf - {list}"), 10);
    let local = crate::host::process::Invocation::new("tar").args(["-xf", "-", "-C"]).arg(into);
    let (remote_out, local_out) =
        crate::host::process::pipe(&remote, &local).map_err(|e| match crate::host::process::interrupted(&e) {
            Some(i) => GuestError::Collect { vm: vm.into(), reason: i.to_string() },
            None => GuestError::Collect { vm: vm.into(), reason: format!("cannot run `ssh ... | tar -x`: {e}") },
        })?;
    let remote_err = String::from_utf8_lossy(&remote_out.stderr);
    let changed_only = remote_out.status.code() == Some(1)
        && remote_err.lines().filter(|l| !l.trim().is_empty()).all(|l| l.contains("file changed as we read it"));
    if !remote_out.status.success() && !changed_only {
        return Err(GuestError::Collect {
            vm: vm.into(),
            reason: format!("tar in the VM failed ({}): {}", remote_out.status, remote_err.trim()),
        });
    }
    if !local_out.status.success() {
        return Err(GuestError::Collect {
            vm: vm.into(),
            reason: format!(
                "tar on the host failed ({}): {}",
                local_out.status,
                String::from_utf8_lossy(&local_out.stderr).trim()
            ),
        });
    }
    Ok(())
}

impl crate::env::Vm<'_> {
    /// Copies a local file or directory into the VM.
    pub fn copy_to(&self, local: &std::path::Path, remote: &str) -> Result<(), GuestError> {
        copy_to(self.env, &self.record.name, local, remote)
    }

    /// Copies a file or directory out of the VM.
    pub fn copy_from(&self, remote: &str, local: &std::path::Path) -> Result<(), GuestError> {
        copy_from(self.env, &self.record.name, remote, local)
    }
}

/// `lago deploy`: each VM's deploy scripts in order, VMs in parallel.
pub fn deploy(env: &Env, reporter: &dyn Reporter) -> Result<(), GuestError> {
    let scripts: Vec<(String, Vec<PathBuf>)> = env
        .vms
        .iter()
        .map(|vm| {
            let spec = env.prefix.vm_document(&vm.name).ok();
            let list = spec
                .and_then(|s| s.get("metadata")?.get("deploy-scripts")?.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|p| p.as_str())
                .map(|p| PathBuf::from(p.replace("$LAGO_PREFIX_PATH", &env.prefix.path.display().to_string())))
                .collect();
            (vm.name.clone(), list)
        })
        .collect();
    let with_scripts: Vec<&(String, Vec<PathBuf>)> = scripts.iter().filter(|(_, list)| !list.is_empty()).collect();
    task(reporter, "Deploy environment", || {
        for_each_parallel(&with_scripts, |(vm, list)| deploy_vm(env, vm, list, reporter))
    })
}

/// Runs one VM's deploy scripts in order, stopping at the first that fails.
fn deploy_vm(env: &Env, vm: &str, scripts: &[PathBuf], reporter: &dyn Reporter) -> Result<(), GuestError> {
    let t = env.ssh_target(vm)?;
    for script in scripts {
        let data = std::fs::read(script).map_err(at("read", script))?;
        let name = script.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // The original ran `bash -s`; guests without bash get `sh -s`.
        let shell = "if command -v bash >/dev/null 2>&1; then exec bash -s; else exec sh -s; fi";
        let st: CommandStatus = t.exec_line(shell, Some(&data), 10).map_err(ssh_err(vm))?;
        let output = format!("{}{}", st.stdout(), String::from_utf8_lossy(&st.err));
        tracing::debug!(vm, script = %name, code = st.code, "deploy script output:\n{output}");
        if st.code != 0 {
            return Err(GuestError::Deploy {
                script: name,
                vm: vm.to_owned(),
                code: st.code,
                output: output.trim_end().to_owned(),
            });
        }
        reporter.note(&format!("{vm}: {name} done"));
    }
    Ok(())
}

/// `lago shutdown [-r]`: ACPI power-off (waiting up to `timeout`), or a reboot from inside the
/// guest followed by a wait for SSH.
pub fn shutdown(
    env: &Env,
    names: &[String],
    reboot: bool,
    timeout: Duration,
    reporter: &dyn Reporter,
) -> Result<(), GuestError> {
    let targets: Vec<String> = env.select(names)?.iter().map(|v| v.name.clone()).collect();
    let _lock = env.lock(if reboot { "shutdown --reboot" } else { "shutdown" }, reporter)?;
    let running = env.running();
    let title = if reboot { "Reboot VMs" } else { "Shutdown VMs" };
    task(reporter, title, || {
        let mut rebooted = Vec::new();
        for vm in targets.iter().filter(|v| running.contains(v)) {
            if reboot {
                let t = env.ssh_target(vm)?;
                let boot_id =
                    t.exec_line("cat /proc/sys/kernel/random/boot_id", None, 10).map_err(ssh_err(vm))?.stdout();
                let _ = t.exec_line("reboot", None, 10);
                t.close();
                rebooted.push((vm.clone(), t, boot_id));
                continue;
            }
            let record = env.select(std::slice::from_ref(vm))?[0];
            let provider = env.provider_of(record).map_err(GuestError::Env)?;
            if let Err(e) = provider.request_shutdown(&env.prefix.path, record) {
                tracing::warn!("{e}");
            }
            let deadline = Instant::now() + timeout;
            while provider.running(&env.prefix.path, std::slice::from_ref(record)).contains(vm) {
                if Instant::now() > deadline {
                    return Err(GuestError::Shutdown { vm: vm.clone(), secs: timeout.as_secs() });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            // Its runtime files go, as after `stop`.
            provider.kill(&env.prefix.path, record);
            reporter.note(&format!("{vm}: powered off"));
        }
        if reboot {
            // Back when SSH answers from a new boot (the kernel's boot id changed).
            let names: Vec<String> = rebooted.iter().map(|(vm, _, _)| vm.clone()).collect();
            let deadline = Instant::now() + timeout;
            for (vm, t, old_id) in &rebooted {
                let mut t = t.clone();
                loop {
                    // A VM that goes on from a frozen state (`lago fork`) ends when its guest
                    // reboots (its qemu has no kernel to boot): it boots anew.
                    if !env.state(vm).is_running() {
                        env.start(std::slice::from_ref(vm), reporter)?;
                        t = env.ssh_target(vm)?;
                    } else if let Err(e) = env.wait_ready(std::slice::from_ref(vm), reporter) {
                        if env.state(vm).is_running() {
                            return Err(e.into());
                        }
                        continue;
                    }
                    if t.exec_line("cat /proc/sys/kernel/random/boot_id", None, 5)
                        .is_ok_and(|st| st.code == 0 && st.stdout() != *old_id)
                    {
                        break;
                    }
                    if Instant::now() > deadline {
                        return Err(GuestError::Shutdown { vm: vm.clone(), secs: timeout.as_secs() });
                    }
                    t.close();
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
            reporter.note(&format!("rebooted: {}", names.join(", ")));
        } else {
            env.stop(names, reporter)?;
        }
        Ok(())
    })
}
