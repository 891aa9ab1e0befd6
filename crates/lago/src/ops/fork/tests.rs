//! The fork's orchestration on the fake provider: what is refused, the order of the freeze and
//! the starts, the files it moves and makes, copies of a frozen state, renewal, and the frozen
//! state's life.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::env::fake::{Calls, Fake, env};
use crate::host::process::{FakeRunner, Output};
use crate::prefix::state::MemoryUse;
use crate::report::NoopReporter;

/// `qemu-img` that writes an overlay's header naming its backing file.
fn images() -> FakeRunner {
    FakeRunner::new(|inv| {
        let args: Vec<String> = inv.args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        if args.first().is_some_and(|a| a == "create") {
            let backing = args.iter().position(|a| a == "-b").map(|i| args[i + 1].clone()).unwrap_or_default();
            crate::host::images::write_qcow2_header(Path::new(args.last().unwrap()), &backing);
        }
        Ok(Output { stdout: Vec::new(), stderr: Vec::new() })
    })
}

/// The environment of three running VMs of the fake, each with its memory file in `shm` and
/// its disk.
fn running(dir: &Path, shm: &Path) -> (Env, Arc<Calls>) {
    running_with(dir, shm, "")
}

/// [`running`], loading a frozen state failing for `thaw_fails`.
fn running_with(dir: &Path, shm: &Path, thaw_fails: &'static str) -> (Env, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    calls.running.lock().unwrap().extend(["vm00", "vm01", "vm02"].map(String::from));
    let env = env(dir, Fake { calls: calls.clone(), thaw_fails, ..Fake::default() });
    let mut state = State::load(&env.prefix.path).unwrap();
    std::fs::create_dir_all(env.prefix.join("images")).unwrap();
    for vm in ["vm00", "vm01", "vm02"] {
        let file = crate::prefix::memory::vm_file(shm, &env.prefix.path, vm);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, format!("memory of {vm}")).unwrap();
        state.memory.insert(vm.into(), MemoryUse { file: Some(file), shared: true, why_not: None });
        crate::host::images::write_qcow2_header(&env.prefix.join(&format!("images/{vm}_root.qcow2")), "/store/tiny");
    }
    state.ssh_ports.insert("vm00".into(), 40022);
    state.save(&env.prefix.path).unwrap();
    (env, calls)
}

fn ops(calls: &Calls) -> Vec<String> {
    std::mem::take(&mut *calls.ops.lock().unwrap())
}

/// The operations `ops` holds on `who`'s VMs, in order, without the VM names (`freeze`...).
fn steps(ops: &[String], who: &str) -> Vec<String> {
    ops.iter()
        .filter_map(|o| {
            let (verb, vm) = o.rsplit_once(' ')?;
            let owner = vm.rsplit_once('/').map_or("p", |(p, _)| p);
            (owner == who).then(|| verb.to_owned())
        })
        .collect()
}

#[test]
fn a_fork_freezes_the_vms_together_and_starts_the_origin_and_each_copy_from_the_frozen_state() {
    let dir = tempfile::tempdir().unwrap();
    let shm = tempfile::tempdir().unwrap();
    let (origin, calls) = running(dir.path(), shm.path());
    let runner = images();
    let copies =
        origin.fork_with(&ForkOptions { count: Some(2), ..ForkOptions::default() }, &runner, &NoopReporter).unwrap();
    let names: Vec<String> = copies.iter().map(|c| c.prefix.name()).collect();
    assert_eq!(names, ["p-1", "p-2"]);
    let ops = ops(&calls);
    // The origin: paused together, frozen, ended, started again from the frozen state, resumed.
    let origin_steps = steps(&ops, "p");
    assert_eq!(
        origin_steps[..6],
        ["pause"; 3].iter().chain(["freeze"; 3].iter()).map(|s| s.to_string()).collect::<Vec<_>>()
    );
    let mut middle = origin_steps[6..origin_steps.len() - 3].to_vec();
    middle.sort();
    assert_eq!(middle, ["start incoming", "start incoming", "start incoming", "thaw", "thaw", "thaw"]);
    assert!(origin_steps[origin_steps.len() - 3..].iter().all(|s| s == "resume"), "{origin_steps:?}");
    let mut killed = calls.killed.lock().unwrap().clone();
    killed.sort();
    assert_eq!(killed, ["vm00", "vm01", "vm02"]);
    for copy in ["p-1", "p-2"] {
        let s = steps(&ops, copy);
        assert_eq!(s.iter().filter(|x| *x == "thaw").count(), 3, "{copy}: {s:?}");
        assert!(s[s.len() - 3..].iter().all(|x| x == "resume"), "{copy}: {s:?}");
        assert!(!s.contains(&"pause".to_owned()) && !s.contains(&"freeze".to_owned()));
    }
    // Every VM of the three environments runs.
    for env in std::iter::once(&origin).chain(&copies) {
        let mut running = env.running();
        running.sort();
        assert_eq!(running, ["vm00", "vm01", "vm02"], "{}", env.prefix.name());
    }

    // The frozen state: the memory files and the disks moved there, the device states saved.
    let record = ForkRecord::load(&origin.prefix.path).unwrap();
    let frozen = Frozen::load(record.last.as_ref().unwrap()).unwrap();
    assert_eq!(record.uses, std::slice::from_ref(&frozen.dir));
    assert_eq!(frozen.manifest.vms.len(), 3);
    assert_eq!(frozen.manifest.origin, "p");
    for vm in ["vm00", "vm01", "vm02"] {
        assert_eq!(std::fs::read_to_string(frozen.memory_file(vm)).unwrap(), format!("memory of {vm}"));
        assert!(!crate::prefix::memory::vm_file(shm.path(), &origin.prefix.path, vm).exists());
        let frozen_disk = frozen.disk_file(vm, "vda");
        assert_eq!(crate::host::images::qcow2_backing(&frozen_disk).unwrap().unwrap(), Path::new("/store/tiny"));
        // Each environment's disk: an overlay on the frozen one, at the disk's path.
        for env in std::iter::once(&origin).chain(&copies) {
            let disk = env.prefix.join(&format!("images/{vm}_root.qcow2"));
            assert_eq!(crate::host::images::qcow2_backing(&disk).unwrap().unwrap(), frozen_disk, "{}", disk.display());
        }
        let memory = State::load(&origin.prefix.path).unwrap().memory[vm].clone();
        assert_eq!(memory, MemoryUse { file: Some(frozen.memory_file(vm)), shared: false, why_not: None });
    }
    // The origin keeps its ports; the copies' are their own.
    assert_eq!(State::load(&origin.prefix.path).unwrap().ssh_ports.get("vm00"), Some(&40022));
    for copy in &copies {
        assert_eq!(ForkRecord::load(&copy.prefix.path).unwrap().copy_of.as_deref(), Some(frozen.dir.as_path()));
        assert_ne!(State::load(&copy.prefix.path).unwrap().ssh_ports.get("vm00"), Some(&40022));
    }

    // More copies of the frozen state, the origin left alone.
    let more = origin
        .fork_with(
            &ForkOptions { names: vec!["extra".into()], from_frozen: true, ..ForkOptions::default() },
            &runner,
            &NoopReporter,
        )
        .unwrap();
    let extra_ops = std::mem::take(&mut *calls.ops.lock().unwrap());
    assert!(steps(&extra_ops, "p").is_empty(), "the origin is left alone: {extra_ops:?}");
    assert_eq!(steps(&extra_ops, "extra").iter().filter(|s| *s == "thaw").count(), 3);
    // A copy goes back to its frozen state in place; the origin has none to go back to.
    copies[0].renew(&runner, &NoopReporter).unwrap();
    let renew_ops = std::mem::take(&mut *calls.ops.lock().unwrap());
    assert_eq!(steps(&renew_ops, "p-1").iter().filter(|s| *s == "thaw").count(), 3);
    assert!(calls.killed.lock().unwrap().contains(&"p-1/vm00".to_owned()));
    assert!(matches!(origin.renew(&runner, &NoopReporter), Err(ForkError::NotACopy { .. })));

    // A copy forks again: its VMs map the frozen memory privately, a helper takes each VM's
    // memory into a file of the new frozen state, which builds on the first.
    let grand = copies[1].fork_with(&ForkOptions::default(), &runner, &NoopReporter).unwrap();
    assert_eq!(grand[0].prefix.name(), "p-2-1");
    let again = std::mem::take(&mut *calls.ops.lock().unwrap());
    assert_eq!(steps(&again, "p-2").iter().filter(|s| *s == "freeze through a helper").count(), 3, "{again:?}");
    let second = Frozen::load(ForkRecord::load(&copies[1].prefix.path).unwrap().last.as_ref().unwrap()).unwrap();
    assert_ne!(second.dir, frozen.dir);
    assert_eq!(second.manifest.parents, std::slice::from_ref(&frozen.dir));
    assert_eq!(
        crate::host::images::qcow2_backing(&second.disk_file("vm00", "vda")).unwrap().unwrap(),
        frozen.disk_file("vm00", "vda"),
        "the second frozen disk is an overlay on the first"
    );

    // A frozen state lives as long as a prefix, or a frozen state built on it, uses it.
    for env in copies.iter().chain(&more) {
        env.destroy(&NoopReporter).unwrap();
        assert!(frozen.dir.is_dir());
    }
    origin.destroy(&NoopReporter).unwrap();
    assert!(frozen.dir.is_dir(), "the second frozen state builds on it");
    grand[0].destroy(&NoopReporter).unwrap();
    assert!(!second.dir.exists() && !frozen.dir.exists(), "gone with the last prefix that used them");
    assert!(!frozen.manifest.memory_dir.exists() && !second.manifest.memory_dir.exists());
}

#[test]
fn what_cannot_be_forked_is_refused_before_anything_changes() {
    let dir = tempfile::tempdir().unwrap();
    let shm = tempfile::tempdir().unwrap();
    let (origin, calls) = running(dir.path(), shm.path());
    let runner = images();
    let fork = |opts: ForkOptions| origin.fork_with(&opts, &runner, &NoopReporter).err().unwrap().to_string();
    assert_eq!(
        fork(ForkOptions { names: vec!["a".into()], count: Some(2), ..ForkOptions::default() }),
        "1 name and `--count 2` given: give as many names as the count, or only one of the two"
    );
    assert_eq!(
        fork(ForkOptions { count: Some(0), ..ForkOptions::default() }),
        "`--count 0`: a fork makes at least one copy"
    );
    assert_eq!(
        fork(ForkOptions { names: vec!["a".into(), "a".into()], ..ForkOptions::default() }),
        "Copy name a is given twice"
    );
    assert!(
        fork(ForkOptions { names: vec!["p".into()], ..ForkOptions::default() }).starts_with("Prefix p exists already")
    );
    assert!(fork(ForkOptions { names: vec!["../x".into()], ..ForkOptions::default() }).contains("../x"));
    assert_eq!(
        fork(ForkOptions { from_frozen: true, ..ForkOptions::default() }),
        "Prefix p has no frozen state: it was never forked, nor made by a fork"
    );
    // A VM with snapshots: its disks become the frozen ones.
    let mut record = origin.prefix.vm_document("vm01").unwrap();
    record.insert("snapshots".into(), serde_json::json!({"clean": [{"dev": "vda", "created": 1}]}));
    origin.prefix.save_vm_document("vm01", &record).unwrap();
    assert!(fork(ForkOptions::default()).starts_with("VM vm01 cannot be forked: it has snapshots (clean)"));
    record.insert("snapshots".into(), serde_json::json!({}));
    origin.prefix.save_vm_document("vm01", &record).unwrap();
    // A VM with ordinary memory says why it has no file.
    let mut state = State::load(&origin.prefix.path).unwrap();
    state.memory.insert(
        "vm02".into(),
        MemoryUse { file: None, shared: false, why_not: Some("`memory_dir = off` is set".into()) },
    );
    state.save(&origin.prefix.path).unwrap();
    assert_eq!(
        fork(ForkOptions::default()),
        "VM vm02 cannot be forked: it runs with ordinary memory: `memory_dir = off` is set"
    );
    state.memory.remove("vm02");
    state.save(&origin.prefix.path).unwrap();
    assert!(fork(ForkOptions::default()).contains("it was started without a memory file"));
    // A VM that does not run.
    origin.kill("vm00").unwrap();
    assert!(fork(ForkOptions::default()).starts_with("VM vm00 cannot be forked: it does not run"));
    // Nothing was paused, nothing frozen, no copy made.
    assert!(calls.ops.lock().unwrap().is_empty(), "{:?}", calls.ops.lock().unwrap());
    assert!(crate::prefix::frozen::list(dir.path()).is_empty());
    assert!(!dir.path().join("p-1").exists());
}

#[test]
fn copies_of_a_libvirt_or_ssh_vm_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let shm = tempfile::tempdir().unwrap();
    let (origin, _) = running(dir.path(), shm.path());
    let mut vm: VmRecord = origin.vms[1].clone();
    vm.vm_provider = Some("local-libvirt".into());
    let err = origin.check_freezable(&vm, &State::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "VM vm01 cannot be forked: it is a local-libvirt VM; `lago fork` copies local-qemu VMs, whose memory lago keeps in a file"
    );
    vm.vm_provider = Some("ssh".into());
    assert!(origin.check_freezable(&vm, &State::default()).unwrap_err().to_string().contains("it is a ssh VM"));
}

#[test]
fn a_copy_that_fails_goes_and_the_origin_goes_on_from_its_frozen_state() {
    let dir = tempfile::tempdir().unwrap();
    let shm = tempfile::tempdir().unwrap();
    let (origin, calls) = running_with(dir.path(), shm.path(), "p-1/vm01");
    let err = origin.fork_with(&ForkOptions::default(), &images(), &NoopReporter).err().unwrap();
    assert!(err.to_string().contains("vm01: loading the frozen device state failed"), "{err}");
    assert!(!dir.path().join("p-1").exists(), "the copy went");
    // The origin's VMs were frozen: they go on from the frozen state, which they use.
    let mut running = origin.running();
    running.sort();
    assert_eq!(running, ["vm00", "vm01", "vm02"]);
    assert!(steps(&ops(&calls), "p").ends_with(&["resume".to_owned(), "resume".into(), "resume".into()]));
    let record = ForkRecord::load(&origin.prefix.path).unwrap();
    let frozen = Frozen::load(record.last.as_ref().unwrap()).unwrap();
    assert_eq!(frozen.manifest.vms.len(), 3);
    assert_eq!(record.uses, std::slice::from_ref(&frozen.dir));
    origin.destroy(&NoopReporter).unwrap();
    assert!(!frozen.dir.exists());
}
