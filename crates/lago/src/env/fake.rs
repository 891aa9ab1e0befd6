//! A provider whose VMs "run" in memory, and environments on it: the orchestration of starts,
//! snapshots and exports is tested on it (`env`, `ops::snapshot`, `ops::export`).

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::*;
use crate::provider::BootFailure;

/// A provider whose VMs "run" in memory; `never_ready` never answers SSH.
#[derive(Default)]
pub(crate) struct Calls {
    pub(crate) running: Mutex<Vec<String>>,
    pub(crate) started: Mutex<Vec<String>>,
    pub(crate) killed: Mutex<Vec<String>>,
    /// The acceleration each start asked for.
    pub(crate) accel: Mutex<Vec<(String, Accel)>>,
    /// Live snapshot operations, pauses and resumes, in order: `save vm00 clean`, `pause vm00`.
    pub(crate) ops: Mutex<Vec<String>>,
    /// The VMs whose SSH was checked, once per check.
    pub(crate) probed: Mutex<Vec<String>>,
}

#[derive(Default)]
pub(crate) struct Fake {
    pub(crate) calls: Arc<Calls>,
    pub(crate) never_ready: &'static str,
    /// This VM's emulator crashes at its first starts, this many times.
    pub(crate) crashes: (&'static str, usize),
    /// This VM is stopped by KVM (`internal-error`) whenever it runs under KVM.
    pub(crate) kvm_fails: &'static str,
    /// Live snapshot operations of this VM fail.
    pub(crate) live_fails: &'static str,
    /// Loading a frozen state fails for this VM (`<prefix>/<vm>` for a copy's).
    pub(crate) thaw_fails: &'static str,
}

/// The name the fake keeps a running VM under: its own for the prefix `p` of
/// [`prefix_with_vms`], `<prefix>/<vm>` for others (the copies of a fork).
fn key(prefix: &Path, vm: &str) -> String {
    match prefix.file_name().and_then(|n| n.to_str()) {
        Some("p") | None => vm.to_owned(),
        Some(other) => format!("{other}/{vm}"),
    }
}

impl Fake {
    pub(crate) fn accel_of(&self, vm: &str) -> Option<Accel> {
        self.calls.accel.lock().unwrap().iter().rev().find(|(n, _)| n == vm).map(|(_, a)| *a)
    }
}

impl Provider for Fake {
    fn start(&self, vm: &VmRecord, ctx: &LaunchContext) -> Result<(), ProviderError> {
        let mut started = self.calls.started.lock().unwrap();
        let before = started.iter().filter(|s| **s == vm.name).count();
        started.push(vm.name.clone());
        self.calls.accel.lock().unwrap().push((vm.name.clone(), ctx.accel));
        if ctx.paused {
            self.calls.ops.lock().unwrap().push(format!("start paused {}", vm.name));
        }
        if ctx.incoming {
            self.calls.ops.lock().unwrap().push(format!("start incoming {}", key(&ctx.prefix, &vm.name)));
        }
        if !(vm.name == self.crashes.0 && before < self.crashes.1) {
            self.calls.running.lock().unwrap().push(key(&ctx.prefix, &vm.name));
        }
        Ok(())
    }
    fn freeze(
        &self,
        prefix: &Path,
        vm: &VmRecord,
        state: &Path,
        helper: Option<&LaunchContext>,
    ) -> Result<(), ProviderError> {
        std::fs::write(state, b"device state").unwrap();
        let how = if helper.is_some() { "freeze through a helper" } else { "freeze" };
        self.calls.ops.lock().unwrap().push(format!("{how} {}", key(prefix, &vm.name)));
        Ok(())
    }
    fn thaw(&self, prefix: &Path, vm: &VmRecord, state: &Path) -> Result<(), ProviderError> {
        assert_eq!(std::fs::read(state).unwrap(), b"device state");
        if key(prefix, &vm.name) == self.thaw_fails {
            return Err(ProviderError::Job {
                vm: vm.name.clone(),
                job: "loading the frozen device state".into(),
                message: "the stream ended".into(),
            });
        }
        self.calls.ops.lock().unwrap().push(format!("thaw {}", key(prefix, &vm.name)));
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
    fn running(&self, prefix: &Path, _vms: &[VmRecord]) -> Vec<String> {
        let mine = key(prefix, "");
        self.calls
            .running
            .lock()
            .unwrap()
            .iter()
            .filter_map(|r| {
                if mine.is_empty() {
                    (!r.contains('/')).then(|| r.clone())
                } else {
                    r.strip_prefix(&mine).map(str::to_owned)
                }
            })
            .collect()
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
        op: crate::provider::SnapshotOp,
        name: &str,
        _disks: &[(usize, std::path::PathBuf, String)],
    ) -> Result<(), ProviderError> {
        if vm.name == self.live_fails {
            return Err(ProviderError::Job {
                vm: vm.name.clone(),
                job: "snapshot-save".into(),
                message: "no space".into(),
            });
        }
        let op = format!("{op:?}").to_lowercase();
        self.calls.ops.lock().unwrap().push(format!("{op} {} {name}", vm.name));
        Ok(())
    }
    fn set_link(&self, _prefix: &Path, vm: &VmRecord, _nic: usize, _up: bool) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported { vm: vm.name.clone(), what: "links".into(), provider: "fake" })
    }
    fn set_forward(
        &self,
        _prefix: &Path,
        vm: &VmRecord,
        host: u16,
        guest: u16,
        add: bool,
    ) -> Result<(), ProviderError> {
        let what = if add { "add" } else { "remove" };
        self.calls.ops.lock().unwrap().push(format!("forward {what} {} {host} {guest}", vm.name));
        Ok(())
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
    fn pause(&self, prefix: &Path, vm: &VmRecord) -> Result<(), ProviderError> {
        self.calls.ops.lock().unwrap().push(format!("pause {}", key(prefix, &vm.name)));
        Ok(())
    }
    fn resume(&self, prefix: &Path, vm: &VmRecord) -> Result<(), ProviderError> {
        self.calls.ops.lock().unwrap().push(format!("resume {}", key(prefix, &vm.name)));
        Ok(())
    }
    fn probe(&self, target: &Target, _banner: &mut crate::host::ssh::BannerProbe) -> std::io::Result<bool> {
        self.calls.probed.lock().unwrap().push(target.vm.clone());
        let stopped_by_kvm = target.vm == self.kvm_fails && self.accel_of(&target.vm) == Some(Accel::Kvm);
        let prefix = target.known_hosts.parent().unwrap_or(Path::new("p"));
        let running = self.calls.running.lock().unwrap().contains(&key(prefix, &target.vm));
        Ok(target.vm != self.never_ready && !stopped_by_kvm && running)
    }
    fn login(&self, target: &Target, banner: &mut crate::host::ssh::BannerProbe) -> std::io::Result<bool> {
        self.probe(target, banner)
    }
    fn kill(&self, prefix: &Path, vm: &VmRecord) {
        let key = key(prefix, &vm.name);
        self.calls.killed.lock().unwrap().push(key.clone());
        self.calls.running.lock().unwrap().retain(|r| *r != key);
    }
}

/// A prefix at `dir/p` whose VMs are on network `n`, each with a qcow2 disk
/// `images/<vm>_root.qcow2` (not created).
pub(crate) fn prefix_with_vms(dir: &Path, vms: &[&str]) -> Prefix {
    let p = dir.join("p");
    std::fs::create_dir_all(p.join("virt")).unwrap();
    std::fs::write(p.join("uuid"), "0123456789abcdef0123456789abcdef").unwrap();
    std::fs::write(p.join("virt/env"), serde_json::json!({"nets": ["n"], "vms": vms}).to_string()).unwrap();
    std::fs::write(p.join("virt/net-n"), r#"{"name": "n", "type": "nat"}"#).unwrap();
    for vm in vms {
        let spec = serde_json::json!({"name": vm, "nics": [{"net": "n"}], "mgmt_net": "n", "boot_time_sec": 1,
            "disks": [{"name": "root", "dev": "vda", "format": "qcow2", "type": "file",
                       "path": format!("$LAGO_PREFIX_PATH/images/{vm}_root.qcow2")}]});
        std::fs::write(p.join(format!("virt/vm-{vm}")), spec.to_string()).unwrap();
    }
    Prefix::open(&p).unwrap()
}

/// The environment of [`prefix_with_vms`] (`vm00`, `vm01`, `vm02`) on `fake`, under TCG.
pub(crate) fn env(dir: &Path, fake: Fake) -> Env {
    env_with(dir, fake, AccelSetting { accel: Accel::Tcg, origin: "the test".into() })
}

/// KVM verdicts about a qemu and a KVM device that are plain files of `dir`.
pub(crate) fn verdicts(dir: &Path) -> KvmVerdicts {
    let (qemu, device) = (dir.join("qemu"), dir.join("kvm"));
    std::fs::write(&qemu, "").unwrap();
    std::fs::write(&device, "").unwrap();
    KvmVerdicts::with(&dir.join("state"), Some(qemu), &device)
}

/// [`env`] under `accel`.
pub(crate) fn env_with(dir: &Path, fake: Fake, accel: AccelSetting) -> Env {
    let options = EnvOptions {
        accel,
        kvm: verdicts(dir),
        vm_outbound: false,
        host_leg: crate::config::HostLegSetting { leg: crate::config::HostLeg::Off, origin: "the test".into() },
        lease_dir: dir.join("leases"),
        libvirt: Default::default(),
        openstack: Default::default(),
        ssh_tries: 3,
        resume: None,
        memory_base: Err("the test".into()),
        memory_reserve: 0,
        memory_wait: false,
        memory_line: dir.join("memory-line"),
        register: crate::prefix::register::Register::in_state_dir(dir),
    };
    Env::with_provider(prefix_with_vms(dir, &["vm00", "vm01", "vm02"]), options, Arc::new(fake)).unwrap()
}

/// `qemu-img` that answers every command, with no snapshot tag on any disk.
pub(crate) fn qemu_img_runner() -> crate::host::process::FakeRunner {
    crate::host::process::FakeRunner::new(|inv| {
        let info = inv.args.first().is_some_and(|a| a == "info");
        Ok(crate::host::process::Output { stdout: if info { b"{}".to_vec() } else { Vec::new() }, stderr: Vec::new() })
    })
}
