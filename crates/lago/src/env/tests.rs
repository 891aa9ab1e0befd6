//! The environment's orchestration on a fake provider: parallel start, rollback, the boot
//! watch and the KVM fallback.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::start::emulator_crashed;
use super::*;
use crate::provider::BootFailure;
use crate::report::NoopReporter;
use std::time::{Duration, Instant};

/// A provider whose VMs "run" in memory; `never_ready` never answers SSH.
#[derive(Default)]
struct Calls {
    running: Mutex<Vec<String>>,
    started: Mutex<Vec<String>>,
    killed: Mutex<Vec<String>>,
    /// The acceleration each start asked for.
    accel: Mutex<Vec<(String, Accel)>>,
}

#[derive(Default)]
struct Fake {
    calls: Arc<Calls>,
    never_ready: &'static str,
    /// This VM's emulator crashes at its first starts, this many times.
    crashes: (&'static str, usize),
    /// This VM is stopped by KVM (`internal-error`) whenever it runs under KVM.
    kvm_fails: &'static str,
}

impl Fake {
    fn accel_of(&self, vm: &str) -> Option<Accel> {
        self.calls.accel.lock().unwrap().iter().rev().find(|(n, _)| n == vm).map(|(_, a)| *a)
    }
}

impl Provider for Fake {
    fn start(&self, vm: &VmRecord, ctx: &LaunchContext) -> Result<(), ProviderError> {
        let mut started = self.calls.started.lock().unwrap();
        let before = started.iter().filter(|s| **s == vm.name).count();
        started.push(vm.name.clone());
        self.calls.accel.lock().unwrap().push((vm.name.clone(), ctx.accel));
        if !(vm.name == self.crashes.0 && before < self.crashes.1) {
            self.calls.running.lock().unwrap().push(vm.name.clone());
        }
        Ok(())
    }
    fn boot_failure(&self, _prefix: &Path, vm: &VmRecord) -> Option<BootFailure> {
        (vm.name == self.kvm_fails && self.accel_of(&vm.name) == Some(Accel::Kvm)).then(|| BootFailure {
            status: "internal-error".into(),
            words: vec!["KVM internal error. Suberror: 1".into()],
            kvm: true,
        })
    }
    fn why_stopped(&self, _prefix: &Path, _vm: &str) -> String {
        "qemu exited (signal: 6 (SIGABRT)); qemu said:\nqemu-system-x86_64: system/physmem.c:2678: iotlb_to_section: Assertion failed.".into()
    }
    fn name(&self) -> &'static str {
        "fake"
    }
    fn running(&self, _prefix: &Path, _vms: &[VmRecord]) -> Vec<String> {
        self.calls.running.lock().unwrap().clone()
    }
    fn target(&self, _prefix: &Path, vm: &VmRecord, _ssh_port: Option<u16>) -> Target {
        crate::prefix::Layout::new(_prefix).ssh_target(&vm.name, "root", "127.0.0.1", 22)
    }
    fn request_shutdown(&self, prefix: &Path, vm: &VmRecord) -> Result<(), ProviderError> {
        self.kill(prefix, vm);
        Ok(())
    }
    fn live_snapshot(
        &self,
        _prefix: &Path,
        vm: &VmRecord,
        _op: crate::provider::SnapshotOp,
        _name: &str,
        _disks: &[(usize, std::path::PathBuf, String)],
    ) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported { vm: vm.name.clone(), what: "snapshots".into(), provider: "fake" })
    }
    fn set_link(&self, _prefix: &Path, vm: &VmRecord, _nic: usize, _up: bool) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported { vm: vm.name.clone(), what: "links".into(), provider: "fake" })
    }
    fn console(&self, _prefix: &Path, vm: &VmRecord) -> Result<crate::provider::Console, ProviderError> {
        Err(ProviderError::Unsupported { vm: vm.name.clone(), what: "console".into(), provider: "fake" })
    }
    fn guest_agent(
        &self,
        _prefix: &Path,
        vm: &VmRecord,
        _command: &serde_json::Value,
        _timeout: std::time::Duration,
    ) -> Result<serde_json::Value, ProviderError> {
        Err(ProviderError::Unsupported { vm: vm.name.clone(), what: "guest agent".into(), provider: "fake" })
    }
    fn pause(&self, _prefix: &Path, _vm: &VmRecord) -> Result<(), ProviderError> {
        Ok(())
    }
    fn resume(&self, _prefix: &Path, _vm: &VmRecord) -> Result<(), ProviderError> {
        Ok(())
    }
    fn probe(&self, target: &Target, _banner: &mut crate::host::ssh::BannerProbe) -> std::io::Result<bool> {
        let stopped_by_kvm = target.vm == self.kvm_fails && self.accel_of(&target.vm) == Some(Accel::Kvm);
        Ok(target.vm != self.never_ready && !stopped_by_kvm && self.calls.running.lock().unwrap().contains(&target.vm))
    }
    fn kill(&self, _prefix: &Path, vm: &VmRecord) {
        self.calls.killed.lock().unwrap().push(vm.name.clone());
        self.calls.running.lock().unwrap().retain(|r| *r != vm.name);
    }
}

fn prefix_with_vms(dir: &Path, vms: &[&str]) -> Prefix {
    let p = dir.join("p");
    std::fs::create_dir_all(p.join("virt")).unwrap();
    std::fs::write(p.join("uuid"), "0123456789abcdef0123456789abcdef").unwrap();
    std::fs::write(p.join("virt/env"), serde_json::json!({"nets": ["n"], "vms": vms}).to_string()).unwrap();
    std::fs::write(p.join("virt/net-n"), r#"{"name": "n", "type": "nat"}"#).unwrap();
    for vm in vms {
        let spec = serde_json::json!({"name": vm, "nics": [{"net": "n"}], "mgmt_net": "n", "boot_time_sec": 1});
        std::fs::write(p.join(format!("virt/vm-{vm}")), spec.to_string()).unwrap();
    }
    Prefix::open(&p).unwrap()
}

fn env(dir: &Path, fake: Fake) -> Env {
    env_with(dir, fake, AccelSetting { accel: Accel::Tcg, origin: "the test".into() })
}

/// KVM verdicts about a qemu and a KVM device that are plain files of `dir`.
fn verdicts(dir: &Path) -> KvmVerdicts {
    let (qemu, device) = (dir.join("qemu"), dir.join("kvm"));
    std::fs::write(&qemu, "").unwrap();
    std::fs::write(&device, "").unwrap();
    KvmVerdicts::with(&dir.join("state"), Some(qemu), &device)
}

fn env_with(dir: &Path, fake: Fake, accel: AccelSetting) -> Env {
    let options = EnvOptions {
        accel,
        kvm: verdicts(dir),
        vm_outbound: false,
        lease_dir: dir.join("leases"),
        libvirt: Default::default(),
    };
    Env::with_provider(prefix_with_vms(dir, &["vm00", "vm01", "vm02"]), options, Arc::new(fake)).unwrap()
}

#[test]
fn failed_start_rolls_back_only_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(Calls::default());
    calls.running.lock().unwrap().push("vm00".into());
    let env = env(dir.path(), Fake { calls: calls.clone(), never_ready: "vm02", ..Fake::default() });
    let err = env.start(&[], &NoopReporter).unwrap_err();
    assert!(matches!(err, EnvError::Qemu(ProviderError::SshTimeout { ref vm, secs: 1, .. }) if vm == "vm02"), "{err}");
    assert_eq!(*calls.started.lock().unwrap(), ["vm01", "vm02"], "vm00 was running already");
    let mut killed = calls.killed.lock().unwrap().clone();
    killed.sort();
    assert_eq!(killed, ["vm01", "vm02"]);
    assert_eq!(*calls.running.lock().unwrap(), ["vm00"]);
}

#[test]
fn unknown_names_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let env = env(dir.path(), Fake::default());
    let err = env.start(&["vm01".into(), "nope".into()], &NoopReporter).unwrap_err();
    assert_eq!(err.to_string(), "The following vms do not exist: nope (known: vm00, vm01, vm02)");
    env.start(&["vm01".into()], &NoopReporter).unwrap();
    assert_eq!(env.state("vm01"), "running");
    assert_eq!(env.state("vm02"), "down");
    env.stop(&[], &NoopReporter).unwrap();
    assert_eq!(env.state("vm01"), "down");
}

#[test]
fn a_vm_whose_emulator_crashed_while_booting_is_started_once_more() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(Calls::default());
    let once = env(dir.path(), Fake { calls: calls.clone(), crashes: ("vm01", 1), ..Fake::default() });
    once.start(&[], &NoopReporter).unwrap();
    let mut started = calls.started.lock().unwrap().clone();
    started.sort();
    assert_eq!(started, ["vm00", "vm01", "vm01", "vm02"]);
    assert_eq!(once.state("vm01"), "running");
    once.stop(&[], &NoopReporter).unwrap();

    // Once only: an emulator that crashes again fails the start, with qemu's words.
    let dir = tempfile::tempdir().unwrap();
    let again = env(dir.path(), Fake { crashes: ("vm01", 2), ..Fake::default() });
    let err = again.start(&[], &NoopReporter).unwrap_err();
    assert!(
        matches!(err, EnvError::Qemu(ProviderError::Died { ref vm, ref qemu, .. }) if vm == "vm01" && qemu.contains("iotlb_to_section")),
        "{err}"
    );
    // Only a crash of qemu itself: not a guest that powered off, not a kill.
    assert!(!emulator_crashed("qemu exited (exit status: 0); logs/vm01.qemu.log is empty"));
    assert!(!emulator_crashed("qemu exited (signal: 9 (SIGKILL)); logs/vm01.qemu.log is empty"));
}

#[test]
fn a_vm_that_kvm_stops_under_auto_is_started_again_under_tcg_and_kvm_is_marked_unusable() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(Calls::default());
    let fake = Fake { calls: calls.clone(), kvm_fails: "vm01", ..Fake::default() };
    let env = env_with(dir.path(), fake, AccelSetting { accel: Accel::Auto, origin: "the default".into() });
    // A KVM probe that passed (a host whose KVM runs the firmware and then fails VMs).
    let usable =
        crate::provider::qemu::accel::KvmProbe { usable: true, reason: "probe passed".into(), evidence: vec![] };
    env.options.kvm.seed_for_tests(None, usable);
    let t = Instant::now();
    env.start(&[], &NoopReporter).unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "the failure is seen at once: {:?}", t.elapsed());
    let accel = calls.accel.lock().unwrap().clone();
    let of = |vm: &str| accel.iter().filter(|(n, _)| n == vm).map(|(_, a)| *a).collect::<Vec<_>>();
    assert_eq!(of("vm00"), [Accel::Kvm]);
    assert_eq!(of("vm01"), [Accel::Kvm, Accel::Tcg], "once more, under TCG");
    assert_eq!(env.state("vm01"), "running");
    let verdict = env.options.kvm.cached(None).unwrap();
    assert!(!verdict.usable);
    assert_eq!(verdict.reason, "a VM's KVM boot failed: VM vm01 was stopped (status internal-error)");
    assert_eq!(verdict.evidence, ["qemu said: KVM internal error. Suberror: 1"]);
    env.stop(&[], &NoopReporter).unwrap();
    // The next start of this boot of the host uses TCG directly.
    calls.accel.lock().unwrap().clear();
    env.start(&["vm02".into()], &NoopReporter).unwrap();
    assert_eq!(*calls.accel.lock().unwrap(), [("vm02".to_owned(), Accel::Tcg)]);
}

#[test]
fn a_vm_that_kvm_stops_under_accel_kvm_fails_at_once_with_qemus_words() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(Calls::default());
    let fake = Fake { calls: calls.clone(), kvm_fails: "vm01", ..Fake::default() };
    let env = env_with(
        dir.path(),
        fake,
        AccelSetting { accel: Accel::Kvm, origin: "environment variable LAGO_ACCEL".into() },
    );
    let t = Instant::now();
    let err = env.start(&[], &NoopReporter).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(
        matches!(&err, EnvError::Qemu(ProviderError::BootFailed { vm, status, qemu, .. })
            if vm == "vm01" && status == "internal-error" && qemu == "KVM internal error. Suberror: 1"),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("VM vm01 cannot boot: its hypervisor stopped it (status internal-error) under kvm"),
        "{err}"
    );
    let hint = crate::diagnose::Diagnose::diagnose(&err).hint.unwrap();
    assert!(hint.starts_with("`accel = kvm` is set (environment variable LAGO_ACCEL)"), "{hint}");
    assert_eq!(calls.started.lock().unwrap().iter().filter(|n| *n == "vm01").count(), 1, "no second start");
    assert!(env.options.kvm.cached(None).is_none(), "the user's choice says nothing about the probe");
}
