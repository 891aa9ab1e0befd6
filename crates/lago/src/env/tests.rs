//! The environment's orchestration on a fake provider: parallel start, rollback, the boot
//! watch and the KVM fallback.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fake::{Calls, Fake, env, env_with};
use super::start::emulator_crashed;
use super::*;
use crate::report::NoopReporter;

#[test]
fn failed_start_rolls_back_only_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(Calls::default());
    calls.running.lock().unwrap().push("vm00".into());
    let env = env(dir.path(), Fake { calls: calls.clone(), never_ready: "vm02", ..Fake::default() });
    let err = env.start(&[], &NoopReporter).unwrap_err();
    assert!(matches!(err, EnvError::Qemu(ProviderError::SshTimeout { ref vm, secs: 1, .. }) if vm == "vm02"), "{err}");
    // Launched in parallel: in any order.
    let mut started = calls.started.lock().unwrap().clone();
    started.sort();
    assert_eq!(started, ["vm01", "vm02"], "vm00 was running already");
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
