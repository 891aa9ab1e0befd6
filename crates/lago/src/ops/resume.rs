//! Environments that come up from a live snapshot instead of booting: `lago start --from NAME`,
//! and `[start] resume = NAME` for a plain `lago start` (`docs/design.md` §7, "Resume instead of boot").
//!
//! Every VM with a live snapshot `NAME` is started with its CPUs paused before their first
//! instruction, the snapshot (disks, memory, devices) is loaded into it, and all of them are
//! resumed together, as `revert` does for running VMs; guest clocks are then set where an agent
//! runs, and SSH is checked. VMs whose snapshot holds only their disks get their disks reverted
//! and boot from them.

use crate::env::{Env, for_each_parallel};
use crate::host::images::SnapshotCommand;
use crate::host::process::CommandRunner;
use crate::prefix::records::VmRecord;
use crate::provider::SnapshotOp;
use crate::report::{Reporter, task};

use super::snapshot::{SnapshotError, live_op, qemu_img, resume_together, snapshot_disks};

/// How a `start` brings the environment up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartMode {
    /// From this live snapshot (`--from`).
    From(String),
    /// Boot (`--boot`): `[start] resume` does not apply.
    Boot,
    /// As configured: from `[start] resume` when the environment is stopped and has that
    /// snapshot, else boot.
    Configured,
}

impl Env {
    /// Starts the named VMs (all when empty) as `mode` says; returns the snapshot the
    /// environment came up from, if it did.
    pub fn start_as(
        &self,
        names: &[String],
        mode: &StartMode,
        runner: &dyn CommandRunner,
        reporter: &dyn Reporter,
    ) -> Result<Option<String>, SnapshotError> {
        let from = match mode {
            StartMode::From(name) => Some(name.clone()),
            StartMode::Boot => None,
            StartMode::Configured => self.configured_resume(names),
        };
        match from {
            Some(name) => {
                if *mode == StartMode::Configured {
                    reporter.note(&format!(
                        "Starting from snapshot {name} (`[start] resume`); `lago start --boot` boots instead"
                    ));
                }
                self.start_from(&name, runner, reporter)?;
                Ok(Some(name))
            }
            None => {
                self.start(names, reporter)?;
                Ok(None)
            }
        }
    }

    /// The snapshot `[start] resume` names, when a start of `names` may use it: the whole
    /// environment, stopped, every VM having it.
    fn configured_resume(&self, names: &[String]) -> Option<String> {
        let name = self.options.resume.clone()?;
        let whole = names.is_empty() || self.vms.iter().all(|v| v.is_ssh() || names.contains(&v.name));
        let stopped = self.running().iter().all(|n| self.vms.iter().any(|v| v.name == *n && v.is_ssh()));
        (whole && stopped && self.check_known(&[], &name).is_ok()).then_some(name)
    }

    /// Brings the stopped environment up in the state of snapshot `name` (see the module).
    pub fn start_from(
        &self,
        name: &str,
        runner: &dyn CommandRunner,
        reporter: &dyn Reporter,
    ) -> Result<(), SnapshotError> {
        let _lock = self.lock("start --from", reporter)?;
        self.repair_snapshots(runner, reporter)?;
        let vms = self.check_known(&[], name)?;
        let running = self.running();
        if let Some((vm, _)) = vms.iter().find(|(v, _)| running.contains(&v.name)) {
            return Err(SnapshotError::Running { vm: vm.name.clone(), name: name.to_owned() });
        }
        task(reporter, &format!("Start prefix from snapshot {name}"), || {
            // Disk-only snapshots: the disks go back, the VM boots from them.
            for (vm, live) in &vms {
                if !*live {
                    qemu_img(runner, &vm.name, SnapshotCommand::Apply, name, &snapshot_disks(self, vm)?)?;
                }
            }
            let live: Vec<&VmRecord> = vms.iter().filter(|(_, l)| *l).map(|(v, _)| *v).collect();
            let live_names: Vec<String> = live.iter().map(|v| v.name.clone()).collect();
            self.start_locked(&[], &live_names, reporter)?;
            let loaded = task(reporter, &format!("Load snapshot {name}"), || {
                for_each_parallel(&live, |vm| {
                    task(reporter, &format!("Loading {} at snapshot {name}", vm.name), || {
                        live_op(self, vm, SnapshotOp::Load, name)
                    })
                })
            })
            .and_then(|()| resume_together(self, &live));
            if let Err(e) = loaded {
                for vm in &live {
                    let _ = self.kill(&vm.name);
                }
                return Err(e);
            }
            task(reporter, "Wait for ssh connectivity", || self.settle_loaded(&live_names))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::env::fake::{Calls, Fake, env, qemu_img_runner};
    use crate::report::NoopReporter;

    /// An environment whose `vm00` has the live snapshot `s1` (the others its disk-only one),
    /// all stopped again.
    fn stopped_with_snapshot(dir: &std::path::Path) -> (Env, Arc<Calls>) {
        let calls = Arc::new(Calls::default());
        calls.running.lock().unwrap().push("vm00".into());
        let env = env(dir, Fake { calls: calls.clone(), ..Fake::default() });
        env.snapshot("s1", &qemu_img_runner(), &NoopReporter).unwrap();
        calls.running.lock().unwrap().clear();
        calls.ops.lock().unwrap().clear();
        (env, calls)
    }

    #[test]
    fn live_snapshots_are_loaded_into_paused_vms_and_disk_only_ones_boot_from_their_disks() {
        let dir = tempfile::tempdir().unwrap();
        let (env, calls) = stopped_with_snapshot(dir.path());
        let runner = qemu_img_runner();
        let from = env.start_as(&[], &StartMode::From("s1".into()), &runner, &NoopReporter).unwrap();
        assert_eq!(from.as_deref(), Some("s1"));
        assert_eq!(*calls.ops.lock().unwrap(), ["start paused vm00", "load vm00 s1", "resume vm00"]);
        let mut running = calls.running.lock().unwrap().clone();
        running.sort();
        assert_eq!(running, ["vm00", "vm01", "vm02"]);
        // The disk-only snapshots went back on disk before those VMs booted.
        let lines = runner.command_lines();
        for vm in ["vm01", "vm02"] {
            let disk = env.prefix.path.join(format!("images/{vm}_root.qcow2")).display().to_string();
            assert!(lines.contains(&format!("qemu-img snapshot -a s1 {disk}")), "{lines}");
        }
        assert!(!lines.contains("vm00_root"), "{lines}");
        // Running VMs are not started from a snapshot: `revert` is for them.
        let err = env.start_from("s1", &runner, &NoopReporter).unwrap_err();
        assert!(matches!(&err, SnapshotError::Running { vm, .. } if vm == "vm00"), "{err}");
    }

    #[test]
    fn a_failed_load_stops_the_vms_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let calls = Arc::new(Calls::default());
        calls.running.lock().unwrap().push("vm00".into());
        let env = env(dir.path(), Fake { calls: calls.clone(), ..Fake::default() });
        env.snapshot("s1", &qemu_img_runner(), &NoopReporter).unwrap();
        calls.running.lock().unwrap().clear();
        let prefix = crate::prefix::Prefix::open(&env.prefix.path).unwrap();
        let fake = Fake { calls: calls.clone(), live_fails: "vm00", ..Fake::default() };
        let failing = Env::with_provider(prefix, env.options.clone(), Arc::new(fake)).unwrap();
        let err = failing.start_from("s1", &qemu_img_runner(), &NoopReporter).unwrap_err();
        assert!(err.to_string().contains("no space"), "{err}");
        assert!(!calls.running.lock().unwrap().contains(&"vm00".to_owned()));
        assert!(calls.killed.lock().unwrap().contains(&"vm00".to_owned()));
    }

    #[test]
    fn configured_resume_applies_to_a_stopped_environment_that_has_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (mut env, calls) = stopped_with_snapshot(dir.path());
        let runner = qemu_img_runner();
        env.options.resume = Some("nope".into());
        assert_eq!(env.start_as(&[], &StartMode::Configured, &runner, &NoopReporter).unwrap(), None);
        assert!(!calls.ops.lock().unwrap().iter().any(|o| o.starts_with("load")));
        for vm in ["vm00", "vm01", "vm02"] {
            env.kill(vm).unwrap();
        }
        env.options.resume = Some("s1".into());
        // `--boot` boots.
        assert_eq!(env.start_as(&[], &StartMode::Boot, &runner, &NoopReporter).unwrap(), None);
        assert!(!calls.ops.lock().unwrap().iter().any(|o| o.starts_with("load")));
        // A running environment boots what is stopped.
        env.kill("vm01").unwrap();
        assert_eq!(env.start_as(&["vm01".into()], &StartMode::Configured, &runner, &NoopReporter).unwrap(), None);
        for vm in ["vm00", "vm01", "vm02"] {
            env.kill(vm).unwrap();
        }
        calls.ops.lock().unwrap().clear();
        assert_eq!(env.start_as(&[], &StartMode::Configured, &runner, &NoopReporter).unwrap().as_deref(), Some("s1"));
        assert_eq!(*calls.ops.lock().unwrap(), ["start paused vm00", "load vm00 s1", "resume vm00"]);
    }
}
