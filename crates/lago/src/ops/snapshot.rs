//! `lago snapshot` / `lago revert`: named snapshots of every VM of an environment.
//!
//! Snapshots are qcow2 **internal** snapshots, one tag per VM disk:
//! - a running VM gets a live snapshot through QMP `snapshot-save` (disks, memory and device
//!   state in one job), and `revert` loads it with `snapshot-load`: the VM continues from the
//!   snapshot's running moment, without a reboot;
//! - a stopped VM gets a disk snapshot with `qemu-img snapshot -c` (the original could not
//!   snapshot stopped VMs, its issue #716), reverted with `qemu-img snapshot -a`.
//!
//! Reverting a running VM to a disk-only snapshot powers it off, reverts the disks and starts it
//! again; reverting a stopped VM to a live snapshot reverts its disks (the memory is used only
//! by a running VM). Each snapshot is recorded in the VM's `virt/vm-<name>` under `snapshots`
//! (the original's place), so `status` and `snapshot --list` show it. Machines of the `ssh`
//! provider are not lago's and are left out, as in the original.

use std::path::PathBuf;

use serde_json::{Map, Value, json};

use crate::env::{Env, EnvError, for_each_parallel};
use crate::host::images::{ImageError, Images, SnapshotCommand};
use crate::host::pathio::PathError;
use crate::host::process::CommandRunner;
use crate::prefix::PrefixError;
use crate::prefix::records::VmRecord;
use crate::provider::SnapshotOp;
use crate::report::{Reporter, task};

/// Snapshot failures.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The name cannot be a snapshot name.
    #[error("Invalid snapshot name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The name is taken.
    #[error("Snapshot {name:?} already exists (delete it first with `lago snapshot --delete {name}`)")]
    Exists {
        /// The name.
        name: String,
    },
    /// A VM has no snapshot of that name.
    #[error("No snapshot {name:?} for VM {vm} (known: {})", if known.is_empty() { "none".to_owned() } else { known.join(", ") })]
    Unknown {
        /// The VM.
        vm: String,
        /// The name asked for.
        name: String,
        /// The VM's snapshots.
        known: Vec<String>,
    },
    /// A VM's disk cannot hold internal snapshots.
    #[error("VM {vm} cannot be snapshotted: its disk {dev} is {format}, snapshots need qcow2 disks")]
    Unsupported {
        /// The VM.
        vm: String,
        /// The disk.
        dev: String,
        /// Its format.
        format: String,
    },
    /// A VM has no disk that can hold a snapshot.
    #[error("VM {vm} cannot be snapshotted: it has no disk but CD-ROMs")]
    NoDisk {
        /// The VM.
        vm: String,
    },
    /// The VM's provider failed (a live snapshot job).
    #[error(transparent)]
    Provider(#[from] crate::provider::ProviderError),
    /// `qemu-img snapshot` failed.
    #[error("VM {vm}: cannot {action} snapshot {name:?}")]
    Tool {
        /// The VM.
        vm: String,
        /// What was done.
        action: &'static str,
        /// The snapshot.
        name: String,
        /// The tool's failure.
        #[source]
        source: ImageError,
    },
    /// The environment failed (start, stop, lock).
    #[error(transparent)]
    Env(#[from] EnvError),
    /// A VM's record could not be read.
    #[error(transparent)]
    Prefix(#[from] PrefixError),
    /// A VM's record could not be written.
    #[error(transparent)]
    Io(#[from] PathError),
    /// `start --from` of an environment whose VM runs.
    #[error(
        "VM {vm} runs: `lago start --from {name}` starts a stopped environment (`lago revert {name}` takes running VMs back)"
    )]
    Running {
        /// The VM.
        vm: String,
        /// The snapshot.
        name: String,
    },
}

/// Checks a snapshot name: letters, digits, `.`, `_`, `-`, at most 64, not only digits (qemu
/// would take a number for a snapshot id).
pub fn validate_name(name: &str) -> Result<(), SnapshotError> {
    let bad = |reason| Err(SnapshotError::InvalidName { name: name.to_owned(), reason });
    if name.is_empty() || name.len() > 64 {
        return bad("use 1 to 64 characters");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return bad("use only letters, digits, '.', '_' and '-'");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return bad("start with a letter or a digit");
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return bad("a name made only of digits would be read as a snapshot id");
    }
    Ok(())
}

fn read_record(env: &Env, vm: &str) -> Result<Map<String, Value>, SnapshotError> {
    Ok(env.prefix.vm_document(vm)?)
}

fn write_record(env: &Env, vm: &str, record: &Map<String, Value>) -> Result<(), SnapshotError> {
    Ok(env.prefix.save_vm_document(vm, record)?)
}

/// The snapshots of a VM, in creation order.
pub fn names_of(record: &Map<String, Value>) -> Vec<String> {
    let mut v: Vec<(i64, String)> = record
        .get("snapshots")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(_, disks)| !is_pending(disks))
                .map(|(k, disks)| {
                    let t = disks.get(0).and_then(|d| d.get("created")).and_then(Value::as_i64).unwrap_or(0);
                    (t, k.clone())
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.into_iter().map(|(_, k)| k).collect()
}

/// Whether a snapshot record is marked as not yet complete.
fn is_pending(disks: &Value) -> bool {
    disks.get(0).and_then(|d| d.get("pending")).and_then(Value::as_bool) == Some(true)
}

/// The disks a snapshot covers: every disk but CD-ROMs; all must be qcow2.
pub(super) fn snapshot_disks(env: &Env, vm: &VmRecord) -> Result<Vec<(usize, PathBuf, String)>, SnapshotError> {
    let mut out = Vec::new();
    for (i, d) in vm.disks.iter().enumerate() {
        if d.format == "iso" {
            continue;
        }
        if d.format != "qcow2" {
            return Err(SnapshotError::Unsupported {
                vm: vm.name.clone(),
                dev: d.dev.clone(),
                format: d.format.clone(),
            });
        }
        let path = PathBuf::from(d.path.replace("$LAGO_PREFIX_PATH", &env.prefix.path.display().to_string()));
        out.push((i, path, d.dev.clone()));
    }
    if out.is_empty() {
        return Err(SnapshotError::NoDisk { vm: vm.name.clone() });
    }
    Ok(out)
}

/// Deletes tags `name` that a stopped VM's disks hold although no record lists them (a rollback
/// that could not finish): `qemu-img snapshot -c` would otherwise add a second tag of that name.
fn drop_stray_tags(runner: &dyn CommandRunner, vm: &str, name: &str, disks: &[(usize, PathBuf, String)]) {
    let images = Images::new(runner);
    for (_, path, _) in disks {
        if images.snapshot_tags(path).is_ok_and(|tags| tags.iter().any(|t| t == name)) {
            tracing::warn!("VM {vm}: disk {} holds a stray snapshot tag {name}; deleting it", path.display());
            let _ = images.snapshot(path, SnapshotCommand::Delete, name);
        }
    }
}

pub(super) fn qemu_img(
    runner: &dyn CommandRunner,
    vm: &str,
    command: SnapshotCommand,
    name: &str,
    disks: &[(usize, PathBuf, String)],
) -> Result<(), SnapshotError> {
    let action = match command {
        SnapshotCommand::Create => "create",
        SnapshotCommand::Apply => "revert to",
        SnapshotCommand::Delete => "delete",
    };
    let images = Images::new(runner);
    for (_, path, _) in disks {
        images.snapshot(path, command, name).map_err(|source| SnapshotError::Tool {
            vm: vm.to_owned(),
            action,
            name: name.to_owned(),
            source,
        })?;
    }
    Ok(())
}

/// A live snapshot operation through the VM's provider.
pub(super) fn live_op(env: &Env, vm: &VmRecord, op: SnapshotOp, name: &str) -> Result<(), SnapshotError> {
    let disks = snapshot_disks(env, vm)?;
    env.provider_of(vm)?.live_snapshot(&env.prefix.path, vm, op, name, &disks)?;
    Ok(())
}

/// Pauses `vms` at one instant (their threads are released together) and returns the spread
/// between the first and the last pause. If one cannot be paused, those that were are resumed.
pub(super) fn pause_together(env: &Env, vms: &[&VmRecord]) -> Result<std::time::Duration, SnapshotError> {
    let with: Vec<(&VmRecord, std::sync::Arc<dyn crate::provider::Provider>)> =
        vms.iter().map(|vm| Ok((*vm, env.provider_of(vm)?))).collect::<Result<_, EnvError>>()?;
    if with.is_empty() {
        return Ok(std::time::Duration::ZERO);
    }
    let barrier = std::sync::Barrier::new(with.len());
    let paused = std::sync::Mutex::new(Vec::new());
    let result = for_each_parallel(&with, |(vm, provider)| {
        barrier.wait();
        provider.pause(&env.prefix.path, vm)?;
        paused.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((*vm, std::time::Instant::now()));
        Ok::<_, SnapshotError>(())
    });
    let paused = paused.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Err(e) = result {
        let again: Vec<&VmRecord> = paused.iter().map(|(vm, _)| *vm).collect();
        let _ = resume_together(env, &again);
        return Err(e);
    }
    let first = paused.iter().map(|(_, t)| *t).min();
    let last = paused.iter().map(|(_, t)| *t).max();
    Ok(match (first, last) {
        (Some(a), Some(b)) => b - a,
        _ => std::time::Duration::ZERO,
    })
}

/// Resumes `vms` together.
pub(super) fn resume_together(env: &Env, vms: &[&VmRecord]) -> Result<(), SnapshotError> {
    let with: Vec<(&VmRecord, std::sync::Arc<dyn crate::provider::Provider>)> =
        vms.iter().map(|vm| Ok((*vm, env.provider_of(vm)?))).collect::<Result<_, EnvError>>()?;
    if with.is_empty() {
        return Ok(());
    }
    let barrier = std::sync::Barrier::new(with.len());
    for_each_parallel(&with, |(vm, provider)| {
        barrier.wait();
        provider.resume(&env.prefix.path, vm)?;
        Ok::<_, SnapshotError>(())
    })
}

/// Sets the clocks of `vms` to the host's time through their guest agents; returns the VMs
/// whose clock could not be set, with why.
pub(super) fn set_clocks(env: &Env, vms: &[&VmRecord]) -> Vec<(String, String)> {
    let failed = std::sync::Mutex::new(Vec::new());
    let _ = for_each_parallel(vms, |vm| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let command = json!({"execute": "guest-set-time", "arguments": {"time": now as u64}});
        let outcome = env.provider_of(vm).map_err(|e| e.to_string()).and_then(|p| {
            p.guest_agent(&env.prefix.path, vm, &command, std::time::Duration::from_secs(2)).map_err(|e| match e {
                crate::provider::ProviderError::Job { message, .. } => message,
                other => other.to_string(),
            })
        });
        if let Err(why) = outcome {
            failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((vm.name.clone(), why));
        }
        Ok::<_, SnapshotError>(())
    });
    failed.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the record of one VM's snapshot says, on each of its disks.
struct Entry {
    /// It holds memory state.
    live: bool,
    /// When it was taken, ms since the epoch.
    created: i64,
    /// Being taken (an interrupted `lago snapshot` leaves it so).
    pending: bool,
    /// The spread between the first and the last pause of the VMs taken together.
    spread_ms: Option<f64>,
    /// The VM answered SSH when it was taken (`ssh_ready`).
    ssh_ready: bool,
}

/// Whether the VM's record says it answered SSH when its live snapshot `name` was taken.
fn ssh_ready(record: &Map<String, Value>, name: &str) -> bool {
    record["snapshots"][name].get(0).and_then(|d| d.get("ssh_ready")).and_then(Value::as_bool).unwrap_or(false)
}

/// Whether the VM's record says the snapshot holds memory state.
fn is_live(record: &Map<String, Value>, name: &str) -> bool {
    record["snapshots"][name].get(0).and_then(|d| d.get("live")).and_then(Value::as_bool).unwrap_or(false)
}

impl Env {
    /// The snapshots of every VM as `snapshot --list` prints them, in the original's shape:
    /// `{vm: {name: [disk, ...]}}`, each disk the VM's disk as its record has it (the init file's
    /// keys, `path` made absolute, `metadata`). With `extra`, lago's own fields follow the
    /// original's on each disk: whether the snapshot is `live` (memory and device state too)
    /// and, for a live snapshot of the whole environment, the spread of its pauses
    /// (`pause_spread_ms`).
    pub fn snapshots(&self, extra: bool) -> Result<Value, SnapshotError> {
        let prefix_dir = self.prefix.path.display().to_string();
        // Earlier versions of lago added keys of their own to the disks of their records.
        let legacy = !self.prefix.records_as_written();
        let mut out = Map::new();
        for vm in self.vms.iter().filter(|v| !v.is_ssh()) {
            let record = read_record(self, &vm.name)?;
            let disks: Vec<&Map<String, Value>> = record
                .get("disks")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_object)
                .collect();
            let mut snaps = Map::new();
            for (name, taken) in record.get("snapshots").and_then(Value::as_object).into_iter().flatten() {
                if is_pending(taken) {
                    continue;
                }
                let listed = taken
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        let dev = t.get("dev").and_then(Value::as_str);
                        let Some(disk) = disks.iter().find(|d| d.get("dev").and_then(Value::as_str) == dev) else {
                            return t.clone();
                        };
                        let mut d = (*disk).clone();
                        if legacy {
                            d.remove("template_version");
                            if d.get("template_type").and_then(Value::as_str) == Some("lago") {
                                d.remove("template_type");
                            }
                        }
                        if let Some(Value::String(p)) = d.get_mut("path") {
                            *p = p.replace("$LAGO_PREFIX_PATH", &prefix_dir);
                        }
                        if extra {
                            d.insert("live".into(), t.get("live").cloned().unwrap_or(Value::Bool(false)));
                            if let Some(spread) = t.get("pause_spread_ms") {
                                d.insert("pause_spread_ms".into(), spread.clone());
                            }
                        }
                        Value::Object(d)
                    })
                    .collect();
                snaps.insert(name.clone(), Value::Array(listed));
            }
            out.insert(vm.name.clone(), Value::Object(snaps));
        }
        Ok(Value::Object(out))
    }

    /// Takes snapshot `name` of every VM, in parallel: live for running VMs, of the disks for
    /// stopped ones.
    ///
    /// All or nothing, and safe against interrupts: each VM's record lists the snapshot as
    /// `pending` before its disks get the tag, and loses the mark once every VM has it. If a VM
    /// fails, the tags already taken and the records are removed; if lago dies meanwhile, the next
    /// snapshot command finds the pending records and removes what they list
    /// ([`Env::repair_snapshots`]).
    pub fn snapshot(
        &self,
        name: &str,
        runner: &dyn CommandRunner,
        reporter: &dyn Reporter,
    ) -> Result<(), SnapshotError> {
        self.snapshot_vms(&[], name, runner, reporter)
    }

    /// [`Env::snapshot`] of the named VMs only (all when `names` is empty): the SDK's
    /// `vm.create_snapshot(name)`.
    pub fn snapshot_vms(
        &self,
        names: &[String],
        name: &str,
        runner: &dyn CommandRunner,
        reporter: &dyn Reporter,
    ) -> Result<(), SnapshotError> {
        validate_name(name)?;
        let selected: Vec<&VmRecord> = self.select(names)?.into_iter().filter(|v| !v.is_ssh()).collect();
        let _lock = self.lock("snapshot", reporter)?;
        self.repair_snapshots(runner, reporter)?;
        for vm in selected.iter().copied() {
            snapshot_disks(self, vm)?;
            if names_of(&read_record(self, &vm.name)?).iter().any(|n| n == name) {
                return Err(SnapshotError::Exists { name: name.to_owned() });
            }
        }
        // An OpenStack server is imaged whether it runs or not (its disks only: the cloud keeps
        // no live memory).
        let mut running = self.running();
        running.extend(selected.iter().filter(|v| v.provider() == "openstack").map(|v| v.name.clone()));
        if selected.iter().any(|v| v.provider() == "openstack") {
            reporter.note("OpenStack keeps no live memory: the snapshot of openstack VMs holds their disks only (server images); a revert boots them from these");
        }
        task(reporter, "Create VMs snapshots", || {
            let vms: Vec<&VmRecord> = selected.clone();
            let created = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            // 1. The intent, in every record.
            let mut marked: Vec<&VmRecord> = Vec::new();
            for vm in &vms {
                let live = running.contains(&vm.name);
                let intent = Entry { live, created, pending: true, spread_ms: None, ssh_ready: false };
                if let Err(e) = self.set_entry(vm, name, Some(intent)) {
                    for done in &marked {
                        let _ = self.set_entry(done, name, None);
                    }
                    return Err(e);
                }
                marked.push(vm);
            }
            // 2. The tags. Running VMs are paused first, all at one instant, and resumed together
            // afterwards: the environment is captured as it was at that instant.
            let live_vms: Vec<&VmRecord> = vms.iter().copied().filter(|v| running.contains(&v.name)).collect();
            // Those whose master SSH connection runs answered SSH at that instant: a revert to
            // the snapshot need not wait for their SSH server (see `revert_vms`).
            let layout = crate::prefix::Layout::new(&self.prefix.path);
            let answered: Vec<String> = live_vms
                .iter()
                .filter(|v| layout.ssh_target(&v.name, "", "127.0.0.1", 0).master_alive())
                .map(|v| v.name.clone())
                .collect();
            let spread = match pause_together(self, &live_vms) {
                Ok(spread) => spread,
                Err(e) => {
                    for vm in &vms {
                        let _ = self.set_entry(vm, name, None);
                    }
                    return Err(e);
                }
            };
            let spread_ms = spread.as_secs_f64() * 1000.0;
            if live_vms.len() > 1 {
                reporter.note(&format!("Paused {} VMs within {spread_ms:.1} ms", live_vms.len()));
            }
            let taken = std::sync::Mutex::new(Vec::new());
            let mut result = for_each_parallel(&vms, |vm| {
                crate::host::interrupt::check().map_err(EnvError::from)?;
                let live = running.contains(&vm.name);
                if live {
                    live_op(self, vm, SnapshotOp::Save, name)?;
                } else {
                    let disks = snapshot_disks(self, vm)?;
                    drop_stray_tags(runner, &vm.name, name, &disks);
                    qemu_img(runner, &vm.name, SnapshotCommand::Create, name, &disks)?;
                }
                taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((*vm, live));
                Ok(())
            });
            let resumed = resume_together(self, &live_vms);
            if result.is_ok() {
                result = resumed;
            }
            // 3. The records say it is complete.
            if result.is_ok() {
                result = vms.iter().try_for_each(|vm| {
                    let live = running.contains(&vm.name);
                    let done = Entry {
                        live,
                        created,
                        pending: false,
                        spread_ms: live.then_some(spread_ms),
                        ssh_ready: answered.contains(&vm.name),
                    };
                    self.set_entry(vm, name, Some(done))
                });
            }
            if result.is_err() {
                // All or nothing: drop the tags that were taken, then the records.
                let taken = taken.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
                for (vm, live) in &taken {
                    let _ = self.delete_tags(vm, name, *live, runner);
                }
                for vm in &vms {
                    let _ = self.set_entry(vm, name, None);
                }
            }
            result
        })
    }

    /// Writes (or, with `None`, removes) the record of snapshot `name` of a VM.
    fn set_entry(&self, vm: &VmRecord, name: &str, entry: Option<Entry>) -> Result<(), SnapshotError> {
        let mut record = read_record(self, &vm.name)?;
        let snaps = record.entry("snapshots").or_insert_with(|| json!({}));
        if !snaps.is_object() {
            *snaps = json!({});
        }
        let Some(map) = snaps.as_object_mut() else { return Ok(()) };
        match entry {
            None => {
                map.remove(name);
            }
            Some(Entry { live, created, pending, spread_ms, ssh_ready }) => {
                let disks: Vec<Value> = snapshot_disks(self, vm)?
                    .iter()
                    .map(|(i, _, dev)| {
                        let mut d = json!({"dev": dev, "path": vm.disks[*i].path, "format": "qcow2",
                                           "type": "internal", "live": live, "created": created});
                        if pending {
                            d["pending"] = json!(true);
                        }
                        if let Some(ms) = spread_ms {
                            d["pause_spread_ms"] = json!((ms * 10.0).round() / 10.0);
                        }
                        if ssh_ready {
                            d["ssh_ready"] = json!(true);
                        }
                        d
                    })
                    .collect();
                map.insert(name.to_owned(), Value::Array(disks));
            }
        }
        write_record(self, &vm.name, &record)
    }

    /// Removes the snapshots an interrupted `lago snapshot` left half-taken (records marked
    /// `pending`): their tags, where the disks have them, and their records. Returns what was
    /// repaired, and reports it.
    pub fn repair_snapshots(
        &self,
        runner: &dyn CommandRunner,
        reporter: &dyn Reporter,
    ) -> Result<Vec<String>, SnapshotError> {
        let _lock = self.lock("snapshot", reporter)?;
        let running = self.running();
        let mut repaired = Vec::new();
        for vm in self.vms.iter().filter(|v| !v.is_ssh()) {
            let record = read_record(self, &vm.name)?;
            let pending: Vec<String> = record
                .get("snapshots")
                .and_then(Value::as_object)
                .map(|m| m.iter().filter(|(_, disks)| is_pending(disks)).map(|(k, _)| k.clone()).collect())
                .unwrap_or_default();
            for name in pending {
                // A tag that was never taken cannot be deleted: that is fine.
                let _ = self.delete_tags(vm, &name, running.contains(&vm.name), runner);
                self.set_entry(vm, &name, None)?;
                let line = format!(
                    "Repaired: removed snapshot {name} of VM {}, left incomplete by an interrupted `lago snapshot`",
                    vm.name
                );
                reporter.warn(&line);
                repaired.push(line);
            }
        }
        Ok(repaired)
    }

    /// Deletes the tag `name` from a VM's disks (through its qemu when it runs).
    fn delete_tags(
        &self,
        vm: &VmRecord,
        name: &str,
        running: bool,
        runner: &dyn CommandRunner,
    ) -> Result<(), SnapshotError> {
        if running || vm.provider() == "openstack" {
            live_op(self, vm, SnapshotOp::Delete, name)
        } else {
            qemu_img(runner, &vm.name, SnapshotCommand::Delete, name, &snapshot_disks(self, vm)?)
        }
    }

    /// Deletes snapshot `name` of one VM: through its qemu when it runs, else with qemu-img.
    fn delete_one(
        &self,
        vm: &VmRecord,
        name: &str,
        running: bool,
        runner: &dyn CommandRunner,
    ) -> Result<(), SnapshotError> {
        self.delete_tags(vm, name, running, runner)?;
        self.set_entry(vm, name, None)
    }

    /// After live snapshots were loaded into `vms` and they were resumed: waits until they answer
    /// (libvirt may give a reverted VM a new qemu and tap device: its address answers a moment
    /// later), and sets their clocks, which went back with them, to the host's time where an
    /// agent answers; the others are recorded for `status`.
    pub(super) fn settle_loaded(&self, vms: &[String]) -> Result<(), SnapshotError> {
        if vms.is_empty() {
            return Ok(());
        }
        self.wait_loaded(vms, &crate::report::NoopReporter)?;
        self.set_loaded_clocks(vms, None)
    }

    /// Sets the clocks of `vms`, which a live snapshot was loaded into, where an agent answers,
    /// and records the others for `status`.
    /// `after` says what loaded it, for `status` (`None`: a revert, said there).
    pub(super) fn set_loaded_clocks(&self, vms: &[String], after: Option<&str>) -> Result<(), SnapshotError> {
        if vms.is_empty() {
            return Ok(());
        }
        let records: Vec<&VmRecord> = self.select(vms)?;
        let failed = set_clocks(self, &records);
        let mut state = crate::prefix::state::State::load(&self.prefix.path).map_err(EnvError::from)?;
        for vm in vms {
            state.clock.remove(vm);
        }
        for (vm, why) in failed {
            tracing::info!("clock of VM {vm} not set after loading its snapshot: {why}");
            state.clock.insert(vm, after.map_or(why.clone(), |a| format!("not set since {a}: {why}")));
        }
        state.save(&self.prefix.path).map_err(EnvError::from)?;
        Ok(())
    }

    /// Every VM of lago's with whether its snapshot `name` is live; an error names the first VM
    /// without it.
    pub(super) fn check_known(&self, names: &[String], name: &str) -> Result<Vec<(&VmRecord, bool)>, SnapshotError> {
        let mut out = Vec::new();
        for vm in self.select(names)?.into_iter().filter(|v| !v.is_ssh()) {
            let record = read_record(self, &vm.name)?;
            let known = names_of(&record);
            if !known.iter().any(|n| n == name) {
                return Err(SnapshotError::Unknown { vm: vm.name.clone(), name: name.to_owned(), known });
            }
            out.push((vm, is_live(&record, name)));
        }
        Ok(out)
    }

    /// Deletes snapshot `name` of every VM.
    pub fn delete_snapshot(
        &self,
        name: &str,
        runner: &dyn CommandRunner,
        reporter: &dyn Reporter,
    ) -> Result<(), SnapshotError> {
        let _lock = self.lock("snapshot --delete", reporter)?;
        self.repair_snapshots(runner, reporter)?;
        let vms = self.check_known(&[], name)?;
        let running = self.running();
        task(reporter, &format!("Delete snapshot {name}"), || {
            for_each_parallel(&vms, |(vm, _)| self.delete_one(vm, name, running.contains(&vm.name), runner))
        })
    }

    /// Reverts every VM to snapshot `name`, in parallel.
    pub fn revert(&self, name: &str, runner: &dyn CommandRunner, reporter: &dyn Reporter) -> Result<(), SnapshotError> {
        self.revert_vms(&[], name, runner, reporter)
    }

    /// [`Env::revert`] of the named VMs only (all when `names` is empty): the SDK's
    /// `vm.revert_snapshot(name)`.
    pub fn revert_vms(
        &self,
        names: &[String],
        name: &str,
        runner: &dyn CommandRunner,
        reporter: &dyn Reporter,
    ) -> Result<(), SnapshotError> {
        let _lock = self.lock("revert", reporter)?;
        self.repair_snapshots(runner, reporter)?;
        let vms = self.check_known(names, name)?;
        let running = self.running();
        let restart = std::sync::Mutex::new(Vec::new());
        let reverted_live = std::sync::Mutex::new(Vec::new());
        // VMs that go back to a live snapshot are paused together, loaded, and resumed together.
        let live_vms: Vec<&VmRecord> =
            vms.iter().filter(|(vm, live)| *live && running.contains(&vm.name)).map(|(vm, _)| *vm).collect();
        pause_together(self, &live_vms)?;
        {
            let reverted = task(reporter, "Revert VMs snapshots", || {
                for_each_parallel(&vms, |(vm, live)| {
                    task(reporter, &format!("Reverting {} to snapshot {name}", vm.name), || {
                        let is_running = running.contains(&vm.name);
                        let cloud = vm.provider() == "openstack";
                        if (is_running || cloud) && *live {
                            // The guest's TCP state goes back in time: the master connection is
                            // closed (while the snapshot loads) and the next command reconnects.
                            std::thread::scope(|s| {
                                s.spawn(|| {
                                    crate::prefix::Layout::new(&self.prefix.path)
                                        .ssh_target(&vm.name, "", "127.0.0.1", 0)
                                        .close()
                                });
                                live_op(self, vm, SnapshotOp::Load, name)
                            })?;
                            if !is_running {
                                return Ok(());
                            }
                            reverted_live
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push(vm.name.clone());
                            return Ok(());
                        }
                        if is_running {
                            self.kill(&vm.name)?;
                            restart.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(vm.name.clone());
                        }
                        qemu_img(runner, &vm.name, SnapshotCommand::Apply, name, &snapshot_disks(self, vm)?)
                    })
                })
            });
            let resumed = resume_together(self, &live_vms);
            reverted?;
            resumed?;
        }
        let reverted_live = reverted_live.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        // A local-qemu VM that answered SSH when the snapshot was taken answers again as soon as
        // it runs (its server listens in the state just loaded; the next command connects):
        // no wait. libvirt may give a reverted VM a new qemu and tap device, and a VM snapshotted
        // while it booted may not listen yet: those are waited for.
        let (ready, waited): (Vec<String>, Vec<String>) = reverted_live.into_iter().partition(|vm| {
            vms.iter().any(|(r, _)| {
                r.name == *vm
                    && r.provider() == "local-qemu"
                    && read_record(self, vm).is_ok_and(|rec| ssh_ready(&rec, name))
            })
        });
        self.settle_loaded(&waited)?;
        self.set_loaded_clocks(&ready, None)?;
        let restart = restart.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !restart.is_empty() {
            self.start(&restart, reporter)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::env::fake::{Calls, Fake, env, qemu_img_runner};
    use crate::report::NoopReporter;

    fn snapshots_of(env: &Env, vm: &str) -> Value {
        read_record(env, vm).unwrap().get("snapshots").cloned().unwrap_or(Value::Null)
    }

    #[test]
    fn running_vms_are_paused_together_and_snapshotted_live_stopped_ones_on_their_disks() {
        let dir = tempfile::tempdir().unwrap();
        let calls = Arc::new(Calls::default());
        calls.running.lock().unwrap().extend(["vm00".to_owned(), "vm02".to_owned()]);
        let env = env(dir.path(), Fake { calls: calls.clone(), ..Fake::default() });
        let runner = qemu_img_runner();
        env.snapshot("clean", &runner, &NoopReporter).unwrap();
        let ops = calls.ops.lock().unwrap().clone();
        // Both paused before any snapshot, resumed after every one (each group at once).
        let sorted = |r: std::ops::Range<usize>| {
            let mut part = ops[r].to_vec();
            part.sort();
            part
        };
        assert_eq!(ops.len(), 6, "{ops:?}");
        assert_eq!(sorted(0..2), ["pause vm00", "pause vm02"]);
        assert_eq!(sorted(2..4), ["save vm00 clean", "save vm02 clean"]);
        assert_eq!(sorted(4..6), ["resume vm00", "resume vm02"]);
        let disk = env.prefix.path.join("images/vm01_root.qcow2").display().to_string();
        assert_eq!(
            runner.command_lines(),
            format!("qemu-img info --output=json -U {disk}\nqemu-img snapshot -c clean {disk}")
        );
        let live = snapshots_of(&env, "vm00")["clean"][0].clone();
        assert_eq!((live["live"].clone(), live.get("pending")), (json!(true), None));
        assert!(live["pause_spread_ms"].is_number(), "{live}");
        assert_eq!(snapshots_of(&env, "vm01")["clean"][0]["live"], json!(false));
        // The list: each disk as the record has it; with `extra`, then lago's own fields.
        let listed = env.snapshots(true).unwrap();
        assert_eq!(listed["vm00"]["clean"][0]["pause_spread_ms"], live["pause_spread_ms"], "{listed}");
        assert_eq!(listed["vm00"]["clean"][0]["live"], json!(true), "{listed}");
        assert_eq!(listed["vm00"]["clean"][0]["dev"], json!("vda"), "{listed}");
        let plain = env.snapshots(false).unwrap();
        let disk = plain["vm00"]["clean"][0].as_object().unwrap();
        assert!(!disk.contains_key("live") && !disk.contains_key("pause_spread_ms"), "{plain}");
        assert_eq!(disk["dev"], json!("vda"), "{plain}");
        assert!(matches!(env.snapshot("clean", &runner, &NoopReporter), Err(SnapshotError::Exists { .. })));
    }

    #[test]
    fn a_failed_snapshot_takes_back_every_tag_and_record() {
        let dir = tempfile::tempdir().unwrap();
        let calls = Arc::new(Calls::default());
        calls.running.lock().unwrap().push("vm00".into());
        let env = env(dir.path(), Fake { calls: calls.clone(), live_fails: "vm00", ..Fake::default() });
        let runner = qemu_img_runner();
        let err = env.snapshot("clean", &runner, &NoopReporter).unwrap_err();
        assert!(err.to_string().contains("no space"), "{err}");
        for vm in ["vm00", "vm01", "vm02"] {
            assert_eq!(snapshots_of(&env, vm).get("clean"), None, "{vm}");
        }
        // The stopped VMs' tags were taken and are deleted again; the paused VM runs again.
        let lines = runner.command_lines();
        for vm in ["vm01", "vm02"] {
            let disk = env.prefix.path.join(format!("images/{vm}_root.qcow2")).display().to_string();
            assert!(lines.contains(&format!("qemu-img snapshot -c clean {disk}")), "{lines}");
            assert!(lines.contains(&format!("qemu-img snapshot -d clean {disk}")), "{lines}");
        }
        assert_eq!(calls.ops.lock().unwrap().last().map(String::as_str), Some("resume vm00"));
    }

    #[test]
    fn revert_loads_live_snapshots_of_running_vms_and_applies_the_others_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let calls = Arc::new(Calls::default());
        calls.running.lock().unwrap().push("vm00".into());
        let env = env(dir.path(), Fake { calls: calls.clone(), ..Fake::default() });
        let runner = qemu_img_runner();
        env.snapshot("s1", &runner, &NoopReporter).unwrap();
        calls.ops.lock().unwrap().clear();
        let runner = qemu_img_runner();
        env.revert("s1", &runner, &NoopReporter).unwrap();
        assert_eq!(*calls.ops.lock().unwrap(), ["pause vm00", "load vm00 s1", "resume vm00"]);
        let lines = runner.command_lines();
        assert_eq!(lines.matches("qemu-img snapshot -a s1 ").count(), 2, "{lines}");
        // The fake has no guest agent: the clock is said not to be set.
        let state = crate::prefix::state::State::load(&env.prefix.path).unwrap();
        assert!(state.clock.contains_key("vm00"), "{state:?}");
        assert!(matches!(env.revert("nope", &runner, &NoopReporter), Err(SnapshotError::Unknown { .. })));
    }

    #[test]
    fn a_revert_waits_for_ssh_only_where_it_did_not_answer_when_the_snapshot_was_taken() {
        let dir = tempfile::tempdir().unwrap();
        let calls = Arc::new(Calls::default());
        calls.running.lock().unwrap().extend(["vm00".to_owned(), "vm02".to_owned()]);
        let env = env(dir.path(), Fake { calls: calls.clone(), ..Fake::default() });
        // vm00's master connection runs (its control socket accepts); vm02 has none.
        let layout = crate::prefix::Layout::new(&env.prefix.path);
        let control = layout.ssh_target("vm00", "", "127.0.0.1", 0).control.unwrap();
        std::fs::create_dir_all(control.parent().unwrap()).unwrap();
        let master = std::os::unix::net::UnixListener::bind(&control).unwrap();
        // It hangs up on whoever connects (the revert's `ssh -O exit` among them).
        std::thread::spawn(move || master.incoming().for_each(drop));
        env.snapshot("s1", &qemu_img_runner(), &NoopReporter).unwrap();
        assert_eq!(snapshots_of(&env, "vm00")["s1"][0]["ssh_ready"], json!(true));
        assert_eq!(snapshots_of(&env, "vm02")["s1"][0].get("ssh_ready"), None);
        calls.probed.lock().unwrap().clear();
        env.revert("s1", &qemu_img_runner(), &NoopReporter).unwrap();
        assert_eq!(*calls.probed.lock().unwrap(), ["vm02"], "vm00 listened when the snapshot was taken");
    }

    #[test]
    fn names() {
        for ok in ["base", "snap_1", "before-upgrade", "v1.2"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "12", "-x", "a b", "a/b", "x;rm", &"a".repeat(65)] {
            assert!(matches!(validate_name(bad), Err(SnapshotError::InvalidName { .. })), "{bad}");
        }
    }

    #[test]
    fn listed_in_creation_order() {
        let record: Map<String, Value> = serde_json::from_value(json!({"snapshots": {
            "zz": [{"created": 1}], "aa": [{"created": 3}], "mm": [{"created": 2}]}}))
        .unwrap();
        assert_eq!(names_of(&record), ["zz", "mm", "aa"]);
        assert!(names_of(&Map::new()).is_empty());
    }
}
