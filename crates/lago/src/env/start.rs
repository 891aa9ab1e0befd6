//! Starting an environment: its networks, then each VM that does not run, then the wait until
//! every VM answers SSH, with the boot watch (a VM its hypervisor stopped fails at once), the
//! acceleration choice and its fallback, and the rollback of what this start began when a VM
//! fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Env, EnvError, for_each_parallel};
use crate::config::Accel;
use crate::host::ssh::Target;
use crate::prefix::records::VmRecord;
use crate::prefix::state::{Forward, MemoryUse, State};
use crate::provider::{
    AccelUse, BootFailure, LaunchContext, Memory, Provider, ProviderError, free_port, port_is_free, vm_paths,
};
use crate::report::{BootPhase, Reporter, task};

/// Whether a VM's end, as `why_stopped` tells it, is qemu itself crashing on a signal (an
/// assertion or a fault in the emulator: qemu 10.0's multi-threaded TCG aborts now and then in
/// `iotlb_to_section` while a guest boots), rather than the guest powering off or qemu being
/// killed.
pub(super) fn emulator_crashed(why: &str) -> bool {
    ["(signal: 6 ", "(signal: 7 ", "(signal: 11 "].iter().any(|s| why.starts_with("qemu exited ") && why.contains(s))
}

/// A VM being waited for: the acceleration it was started under, and where its console log
/// stood before it started.
#[derive(Debug, Clone)]
struct Booting<'a> {
    vm: &'a VmRecord,
    accel: AccelUse,
    console_from: u64,
    /// A live snapshot was just loaded into it: its SSH server most likely listened when the
    /// snapshot was taken, so `ssh` is tried at once (no banner wait), then checked every 20 ms.
    loaded: bool,
}

/// Whether a VM that failed to boot is started once more, under which acceleration, and why:
/// under TCG when KVM failed it (its hypervisor stopped it, or qemu crashed saying KVM) and
/// `accel = auto` chose KVM; as it was when its emulator crashed on a signal.
fn retry_after(e: &ProviderError, accel: &AccelUse) -> Option<(Accel, String)> {
    let auto_kvm = accel.setting.accel == Accel::Auto && accel.resolved == Accel::Kvm;
    match e {
        ProviderError::BootFailed { status, qemu, kvm: true, .. } if auto_kvm => {
            Some((Accel::Tcg, format!("status {status}; qemu said: {qemu}")))
        }
        ProviderError::Died { qemu, .. } if emulator_crashed(qemu) => {
            let first = qemu.lines().next().unwrap_or_default().to_owned();
            if auto_kvm && (qemu.contains("kvm") || qemu.contains("KVM")) {
                Some((Accel::Tcg, first))
            } else {
                Some((accel.resolved, first))
            }
        }
        _ => None,
    }
}

/// The last `n` lines written to `path` after its first `from` bytes.
fn tail_since(path: &std::path::Path, from: u64, n: usize) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    crate::host::process::tail(bytes.get(from as usize..).unwrap_or_default(), n)
}

/// How long a VM's SSH server may refuse the login while it boots (a guest's first boot may
/// install the environment's key after its server starts) before the start fails.
const LOGIN_GRACE: Duration = Duration::from_secs(20);

impl Env {
    /// Starts the named VMs (all when empty) and waits until each answers SSH.
    pub fn start(&self, names: &[String], reporter: &dyn Reporter) -> Result<(), EnvError> {
        self.select(names)?;
        let _lock = self.lock("start", reporter)?;
        self.start_locked(names, &[], reporter)
    }

    /// [`Env::start`], the prefix lock held by the caller. The VMs named in `paused` are started
    /// with their CPUs paused before their first instruction (to load a live snapshot into them,
    /// `ops/resume.rs`), and are not waited for; if the start fails, they are stopped too.
    pub(crate) fn start_locked(
        &self,
        names: &[String],
        paused: &[String],
        reporter: &dyn Reporter,
    ) -> Result<(), EnvError> {
        let targets = self.select(names)?;
        for vm in &targets {
            if let Some(p) = vm.vm_provider.as_deref().filter(|p| !crate::plan::VM_PROVIDERS.contains(p)) {
                return Err(EnvError::Provider { vm: vm.name.clone(), provider: p.to_owned() });
            }
        }
        let groups = self.providers.group(&targets)?;
        let title = if names.is_empty() { "Start Prefix" } else { "Start specified VMs" };
        task(reporter, title, || {
            let mut state = State::load(&self.prefix.path)?;
            let env_id = self.env_id()?;
            let before = self.running();
            let launching: Vec<&VmRecord> =
                targets.iter().copied().filter(|v| !before.contains(&v.name) && !v.is_ssh()).collect();
            // A cloud's servers run under its hypervisors: no KVM probe here for them.
            let local: Vec<&VmRecord> = launching.iter().copied().filter(|v| v.provider() != "openstack").collect();
            let accel = self.accel_for(&local, reporter);
            // Held until the VMs run: the next command in line counts them then.
            let _ticket = self.admit(&self.boot_need(&launching, accel.resolved == Accel::Kvm), true, reporter)?;
            let nets = task(reporter, "Start nets", || self.bring_up_nets(&groups, &env_id, reporter));
            if let Err(e) = nets {
                // Networks this start made on the other hosts do not stay behind.
                let _ = self.stop_unused_nets(&crate::report::NoopReporter);
                return Err(e);
            }
            let running = self.running();
            self.recover_ports(&mut state, &running, reporter)?;
            let (up, to_start): (Vec<&VmRecord>, Vec<&VmRecord>) =
                targets.iter().copied().partition(|v| running.contains(&v.name) || v.is_ssh());
            // Launched in parallel (each qemu takes a few hundred ms to answer QMP), and the
            // state saved by one at a time.
            let shared = std::sync::Mutex::new((&mut state, Vec::<Booting<'_>>::new(), Vec::<String>::new()));
            let lock = || shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let launched = task(reporter, "Start vms", || {
                super::for_each_parallel(&to_start, |vm| {
                    task(reporter, &format!("Starting VM {}", vm.name), || {
                        let console_from = self.console_len(vm);
                        let previous = lock().0.forwards.get(&vm.name).cloned().unwrap_or_default();
                        let pause = paused.contains(&vm.name);
                        let mode = if pause { Boot::Paused } else { Boot::Fresh };
                        let launched = self.launch(vm, &env_id, accel.resolved, &previous, None, mode);
                        let mut guard = lock();
                        let (state, started, held) = &mut *guard;
                        let launched = launched?;
                        // Stopped again if anything fails from here on.
                        if pause {
                            held.push(vm.name.clone());
                        } else {
                            started.push(Booting { vm, accel: accel.clone(), console_from, loaded: false });
                        }
                        self.reapply_cuts(vm)?;
                        // Saved before waiting: an interrupted start leaves VMs `shell` reaches.
                        // A fresh boot: its clock is the host's again.
                        state.clock.remove(&vm.name);
                        launched.record(&vm.name, state);
                        state.save(&self.prefix.path)?;
                        Ok::<_, EnvError>(())
                    })
                })
            });
            let (_, mut started, held) = shared.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
            // In the order of the init file, as before.
            started.sort_by_key(|b| to_start.iter().position(|v| v.name == b.vm.name));
            // VMs that were running already are waited for too: a `start` that was interrupted
            // may have left them booting. Machines of the `ssh` provider only have to answer.
            let ready = launched.and_then(|()| {
                let mut waiting: Vec<Booting<'_>> = started.clone();
                waiting.extend(up.iter().map(|vm| Booting {
                    vm,
                    accel: accel.clone(),
                    console_from: self.console_len(vm),
                    loaded: false,
                }));
                task(reporter, "Wait for ssh connectivity", || self.wait_ssh(&waiting, &state, reporter))
            });
            if let Err(e) = ready {
                for vm in started.iter().map(|b| &b.vm.name).chain(&held) {
                    let _ = self.kill(vm);
                }
                let _ = self.stop_unused_nets(&crate::report::NoopReporter);
                return Err(e);
            }
            Ok(())
        })
    }

    /// The acceleration for starting `vms`: `accel` as set, `auto` decided by the KVM probe on
    /// the kernel the VMs boot (a template's direct-boot kernel, else the host's). A probe that
    /// runs now (the first `auto` start of this boot of the host) is a task of its own, and its
    /// verdict is said.
    fn accel_for(&self, vms: &[&VmRecord], reporter: &dyn Reporter) -> AccelUse {
        let setting = self.options.accel.clone();
        let resolved = match setting.accel {
            Accel::Auto if vms.is_empty() => Accel::Tcg,
            Accel::Auto => {
                let kernel = self
                    .options
                    .kvm
                    .kernel_for(vms.iter().find_map(|v| v.direct_boot(&self.prefix.path)).map(|b| b.kernel));
                let verdict = match self.options.kvm.cached(kernel.as_deref()) {
                    Some(v) => v,
                    None => {
                        let v = task(reporter, "Check whether KVM runs guests on this host", || {
                            Ok::<_, std::convert::Infallible>(self.options.kvm.verdict(kernel.as_deref()))
                        })
                        .unwrap_or_else(|never| match never {});
                        let then =
                            if v.usable { "VMs run under KVM" } else { "VMs run under TCG (software emulation)" };
                        reporter.note(&format!("KVM: {}; {then}", v.reason));
                        v
                    }
                };
                if verdict.usable { Accel::Kvm } else { Accel::Tcg }
            }
            other => other,
        };
        AccelUse { resolved, setting }
    }

    /// The size of a VM's console log now: what it prints from here on is this boot's.
    fn console_len(&self, vm: &VmRecord) -> u64 {
        std::fs::metadata(vm_paths(&self.prefix.path, &vm.name).2).map_or(0, |m| m.len())
    }

    /// Starts one VM through its provider; for `local-qemu`, with a free SSH port (`ssh_port`
    /// when it is free; another if qemu finds it taken), which is returned, and the VM's other
    /// forwarded ports: the init file's `forwards` and those `previous` holds (the VM's forwards
    /// before it was started again), on the host ports they had or were given, else on free
    /// ones. `mode` says how it starts: booting (its own memory file when a tmpfs holds it),
    /// paused, or as a copy of a frozen VM.
    pub(crate) fn launch(
        &self,
        vm: &VmRecord,
        env_id: &str,
        accel: Accel,
        previous: &[Forward],
        ssh_port: Option<u16>,
        mode: Boot<'_>,
    ) -> Result<Launched, EnvError> {
        let provider = self.providers.of(vm)?;
        let outbound = self.options.vm_outbound
            && vm.nics.iter().any(|n| self.nets.iter().any(|(name, kind)| *name == n.net && kind == "nat"));
        // qemu forwards through the uplink given at launch; libvirt VMs get relays once started.
        let uplink = provider.name() == "local-qemu";
        let relays = provider.name() == "local-libvirt";
        let mut wanted = if uplink || relays { wanted_forwards(vm, previous)? } else { Vec::new() };
        let (memory, memory_use) = match mode {
            Boot::Thaw(file, _) => (
                Memory::File { path: file.to_owned(), shared: false },
                Some(MemoryUse { file: Some(file.to_owned()), shared: false, why_not: None }),
            ),
            _ if uplink => {
                let (memory, use_) = self.own_memory(vm);
                (memory, Some(use_))
            }
            _ => (Memory::Ram, None),
        };
        let mut ssh_port = ssh_port.filter(|p| port_is_free(*p));
        let console_start =
            (crate::prefix::Layout::new(&self.prefix.path).console_start(&vm.name), self.console_len(vm));
        let mut attempts = 0;
        loop {
            crate::host::interrupt::check()?;
            let port_err = |source| EnvError::Ssh { vm: vm.name.clone(), source };
            let mut chosen = Vec::new();
            for w in &wanted {
                let host = match w.host {
                    Some(h) => h,
                    None => free_port().map_err(port_err)?,
                };
                chosen.push(Forward { guest: w.guest, host, live: w.live });
            }
            let ctx = LaunchContext {
                ssh_port: match (uplink, ssh_port) {
                    (true, Some(p)) => p,
                    (true, None) => free_port().map_err(port_err)?,
                    (false, _) => 0,
                },
                outbound,
                index: self.vms.iter().position(|v| v.name == vm.name).unwrap_or(0),
                forwards: if uplink { chosen.iter().map(|f| (f.host, f.guest)).collect() } else { Vec::new() },
                paused: matches!(mode, Boot::Paused),
                memory: memory.clone(),
                incoming: matches!(mode, Boot::Thaw(..)),
                kernel_stub: match mode {
                    Boot::Thaw(_, stub) => Some(stub.to_owned()),
                    _ => None,
                },
                ..self.launch_context(env_id, accel)
            };
            match provider.start(vm, &ctx) {
                Ok(()) => {
                    let _ = std::fs::write(&console_start.0, console_start.1.to_string());
                    if relays {
                        for f in &chosen {
                            if let Err(e) = provider.set_forward(&self.prefix.path, vm, f.host, f.guest, true) {
                                // Nothing half-started stays: the VM and its other relays go.
                                provider.kill(&self.prefix.path, vm);
                                return Err(e.into());
                            }
                        }
                    }
                    return Ok(Launched {
                        ssh_port: uplink.then_some(ctx.ssh_port),
                        forwards: chosen,
                        memory: memory_use,
                    });
                }
                // A port was free when picked and taken before qemu bound it.
                Err(ProviderError::Exited { log, .. }) if log.contains("host forwarding") && attempts < 3 => {
                    attempts += 1;
                    // The ports of before are given up: free ones are chosen.
                    ssh_port = None;
                    for w in wanted.iter_mut().filter(|w| !w.fixed) {
                        w.host = None;
                    }
                    tracing::info!(vm = %vm.name, "a forwarded port was taken meanwhile; trying others");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Running `local-qemu` VMs whose SSH port the state does not hold (lago was killed between
    /// starting their qemu and saving it): the port is read back from qemu's command line.
    fn recover_ports(&self, state: &mut State, running: &[String], reporter: &dyn Reporter) -> Result<(), EnvError> {
        let mut changed = false;
        for vm in self.vms.iter().filter(|v| v.provider() == "local-qemu" && running.contains(&v.name)) {
            // The running qemu is the truth: a start killed between launching a VM and saving
            // its port leaves no port, or the port of an earlier run of the VM.
            let Some(port) = crate::provider::ssh_port_of(&self.prefix.path, &vm.name) else { continue };
            if state.ssh_ports.get(&vm.name) != Some(&port) {
                reporter.warn(&format!("Repaired: VM {} runs, its SSH port {port} was read back from qemu", vm.name));
                state.ssh_ports.insert(vm.name.clone(), port);
                changed = true;
            }
        }
        if changed {
            state.save(&self.prefix.path)?;
        }
        Ok(())
    }

    fn wait_ssh(&self, vms: &[Booting<'_>], state: &State, reporter: &dyn Reporter) -> Result<(), EnvError> {
        let t0 = Instant::now();
        let saving = std::sync::Mutex::new(());
        for_each_parallel(vms, |b| self.wait_one(b, state, t0, &saving, reporter))
    }

    /// Waits until one VM answers SSH, its process dies, its hypervisor stops it, or its
    /// `boot_time_sec` is over. A VM is started once more when that may help: under TCG when
    /// KVM failed it and `accel = auto` (KVM is then marked unusable on this host until it
    /// reboots), or as it was when its emulator crashed on a signal.
    fn wait_one(
        &self,
        booting: &Booting<'_>,
        state: &State,
        t0: Instant,
        saving: &std::sync::Mutex<()>,
        reporter: &dyn Reporter,
    ) -> Result<(), EnvError> {
        let vm = booting.vm;
        let provider = self.providers.of(vm)?;
        let mut target = self.target(vm, state)?;
        super::control_fault(vm, &target, state)?;
        let deadline = t0 + Duration::from_secs(vm.boot_time_sec);
        reporter.vm_boot(&vm.name, BootPhase::Booting, t0.elapsed());
        let mut result = self.wait_loop(&provider, booting, &target, deadline, t0, reporter);
        if let Err(EnvError::Qemu(e)) = &result
            && let Some((accel, why)) = retry_after(e, &booting.accel)
        {
            if accel != booting.accel.resolved {
                if let ProviderError::BootFailed { status, qemu, .. } = e {
                    self.options.kvm.demote(
                        &format!("VM {} was stopped (status {status})", vm.name),
                        vec![format!("qemu said: {qemu}")],
                    );
                } else {
                    self.options.kvm.demote(&format!("qemu of VM {} crashed", vm.name), vec![why.clone()]);
                }
                reporter.warn(&format!(
                    "VM {}: KVM failed while it booted ({why}); starting it again under TCG (`accel = auto`): KVM counts as unusable on this host until it reboots",
                    vm.name
                ));
            } else {
                reporter.warn(&format!("VM {}: qemu crashed while it booted ({why}); starting it once more", vm.name));
            }
            let again = Booting {
                vm,
                accel: AccelUse { resolved: accel, ..booting.accel.clone() },
                console_from: self.console_len(vm),
                loaded: false,
            };
            result = self.relaunch(vm, accel, saving).and_then(|t| {
                target = t;
                self.wait_loop(&provider, &again, &target, deadline, t0, reporter)
            });
        }
        let phase = if result.is_ok() { BootPhase::Ready } else { BootPhase::Failed };
        reporter.vm_boot(&vm.name, phase, t0.elapsed());
        result
    }

    /// Starts a VM whose qemu died again, under `accel`, records its new SSH port, and returns
    /// how to reach it.
    fn relaunch(&self, vm: &VmRecord, accel: Accel, saving: &std::sync::Mutex<()>) -> Result<Target, EnvError> {
        self.kill(&vm.name)?;
        let _saving = saving.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut state = State::load(&self.prefix.path)?;
        let previous = state.forwards.get(&vm.name).cloned().unwrap_or_default();
        let launched = self.launch(vm, &self.env_id()?, accel, &previous, None, Boot::Fresh)?;
        self.reapply_cuts(vm)?;
        launched.record(&vm.name, &mut state);
        state.save(&self.prefix.path)?;
        self.target(vm, &state)
    }

    fn wait_loop(
        &self,
        provider: &Arc<dyn Provider>,
        booting: &Booting<'_>,
        target: &Target,
        deadline: Instant,
        t0: Instant,
        reporter: &dyn Reporter,
    ) -> Result<(), EnvError> {
        let vm = booting.vm;
        let console = vm_paths(&self.prefix.path, &vm.name).2;
        let console_tail = || tail_since(&console, booting.console_from, 20);
        let console_lines = || match console_tail() {
            t if t.is_empty() => format!("Its console stayed empty (logs/{}.console.log)", vm.name),
            t => format!("Last console lines:\n{t}"),
        };
        let began = Instant::now();
        let mut said_silent = false;
        let mut banner = crate::host::ssh::BannerProbe::new();
        // After a load, `ssh` straight away (which opens the master connection the next command
        // reuses); the banner wait of a boot only once that failed.
        let mut direct = booting.loaded;
        loop {
            crate::host::interrupt::check()?;
            let probed = if direct {
                direct = false;
                provider.login(target, &mut banner)
            } else {
                provider.probe(target, &mut banner)
            };
            match probed {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(source) => return Err(EnvError::Ssh { vm: vm.name.clone(), source }),
            }
            let alive = vm.is_ssh() || provider.running(&self.prefix.path, std::slice::from_ref(vm)).contains(&vm.name);
            if !alive {
                return Err(ProviderError::Died {
                    vm: vm.name.clone(),
                    qemu: provider.why_stopped(&self.prefix.path, &vm.name),
                    console: console_lines(),
                    accel: booting.accel.clone(),
                }
                .into());
            }
            // An image that does not take the environment's key (`--skip-bootstrap`, an image
            // of its own) is said within seconds of its SSH server answering, not after
            // `boot_time_sec`; a guest that installs the key at boot has that long to do it.
            if let Some((for_how_long, words)) = banner.refused()
                && for_how_long >= LOGIN_GRACE
            {
                return Err(ProviderError::LoginRefused {
                    vm: vm.name.clone(),
                    secs: for_how_long.as_secs(),
                    ssh: words.to_owned(),
                    password: target.password.is_some(),
                }
                .into());
            }
            if let Some(BootFailure { status, words, kvm }) = provider.boot_failure(&self.prefix.path, vm) {
                return Err(ProviderError::BootFailed {
                    vm: vm.name.clone(),
                    status,
                    qemu: if words.is_empty() { "nothing".into() } else { words.join(" / ") },
                    console: console_lines(),
                    kvm,
                    accel: booting.accel.clone(),
                }
                .into());
            }
            if !said_silent
                && !vm.is_ssh()
                && provider.name() != "openstack"
                && began.elapsed() >= crate::report::SILENT_AFTER
                && self.console_len(vm) <= booting.console_from
            {
                said_silent = true;
                reporter.vm_boot(&vm.name, BootPhase::Silent, t0.elapsed());
            }
            if Instant::now() > deadline {
                let tail = console_tail();
                let detail = if tail.is_empty() {
                    let hypervisor = provider.hypervisor_report(&self.prefix.path, vm);
                    format!("its console stayed empty{}", hypervisor.map(|h| format!("; {h}")).unwrap_or_default())
                } else {
                    format!("last console lines:\n{tail}")
                };
                return Err(ProviderError::SshTimeout {
                    vm: vm.name.clone(),
                    secs: vm.boot_time_sec,
                    detail,
                    accel: booting.accel.clone(),
                }
                .into());
            }
            std::thread::sleep(Duration::from_millis(if booting.loaded { 20 } else { 100 }));
        }
    }

    /// Waits until the named running VMs answer SSH (each within its `boot_time_sec`).
    pub fn wait_ready(&self, names: &[String], reporter: &dyn Reporter) -> Result<(), EnvError> {
        self.wait_running(names, false, reporter)
    }

    /// [`Env::wait_ready`] of VMs a live snapshot was just loaded into.
    pub(crate) fn wait_loaded(&self, names: &[String], reporter: &dyn Reporter) -> Result<(), EnvError> {
        self.wait_running(names, true, reporter)
    }

    fn wait_running(&self, names: &[String], loaded: bool, reporter: &dyn Reporter) -> Result<(), EnvError> {
        let targets = self.select(names)?;
        let state = State::load(&self.prefix.path)?;
        // They run already, under what an earlier start chose: no KVM fallback here.
        let accel = AccelUse { resolved: Accel::Tcg, setting: self.options.accel.clone() };
        let waiting: Vec<Booting<'_>> = targets
            .iter()
            .map(|vm| Booting { vm, accel: accel.clone(), console_from: self.console_len(vm), loaded })
            .collect();
        task(reporter, "Wait for ssh connectivity", || self.wait_ssh(&waiting, &state, reporter))
    }
}

/// How [`Env::launch`] starts a VM.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Boot<'a> {
    /// It boots.
    Fresh,
    /// Its CPUs are paused before their first instruction (a live snapshot is loaded next).
    Paused,
    /// As a copy of a frozen VM whose memory is this file: paused, waiting for its device state;
    /// a kernel it boots directly replaced by the stub of the directory (see `LaunchContext`).
    Thaw(&'a std::path::Path, &'a std::path::Path),
}

/// What [`Env::launch`] started a VM with.
pub(crate) struct Launched {
    /// The SSH forward's host port (`local-qemu`).
    ssh_port: Option<u16>,
    /// The VM's other forwarded ports.
    forwards: Vec<Forward>,
    /// Where its memory is (`local-qemu`).
    memory: Option<MemoryUse>,
}

impl Launched {
    /// Puts the VM's ports and memory into `state`.
    pub(crate) fn record(&self, vm: &str, state: &mut State) {
        if let Some(port) = self.ssh_port {
            state.ssh_ports.insert(vm.to_owned(), port);
        }
        match &self.memory {
            Some(m) => state.memory.insert(vm.to_owned(), m.clone()),
            None => state.memory.remove(vm),
        };
        if self.forwards.is_empty() {
            state.forwards.remove(vm);
        } else {
            state.forwards.insert(vm.to_owned(), self.forwards.clone());
        }
    }
}

/// A port to forward at launch: its host port when it is fixed (the init file's `host`, or the
/// port it had before the VM started again).
struct Wanted {
    guest: u16,
    host: Option<u16>,
    live: bool,
    /// The init file fixes the host port (else it is the port of before, given up when taken).
    fixed: bool,
}

/// The init file's `forwards` of `vm` and the live ones of `previous`; a host port the init file
/// fixes must be free.
fn wanted_forwards(vm: &VmRecord, previous: &[Forward]) -> Result<Vec<Wanted>, EnvError> {
    let mut wanted = Vec::new();
    for f in &vm.forwards {
        let before = previous.iter().find(|p| p.guest == f.guest).map(|p| p.host);
        let host = match f.host {
            Some(h) => {
                if !port_is_free(h) {
                    return Err(EnvError::ForwardTaken { vm: vm.name.clone(), host: h, guest: f.guest });
                }
                Some(h)
            }
            // The port it had (0: none, a copy's), if nothing took it meanwhile.
            None => before.filter(|h| *h != 0 && port_is_free(*h)),
        };
        wanted.push(Wanted { guest: f.guest, host, live: false, fixed: f.host.is_some() });
    }
    for p in previous.iter().filter(|p| p.live && !vm.forwards.iter().any(|f| f.guest == p.guest)) {
        let host = Some(p.host).filter(|h| *h != 0 && port_is_free(*h));
        wanted.push(Wanted { guest: p.guest, host, live: true, fixed: false });
    }
    Ok(wanted)
}

#[cfg(test)]
mod forward_tests {
    use super::*;

    fn vm(forwards: serde_json::Value) -> VmRecord {
        serde_json::from_value(serde_json::json!({"name": "vm01", "forwards": forwards})).unwrap()
    }

    #[test]
    fn init_file_forwards_keep_their_port_and_live_ones_stay() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = taken.local_addr().unwrap().port();
        let free = free_port().unwrap();
        // A fixed host port another program holds: said at once, naming it.
        let err = wanted_forwards(&vm(serde_json::json!([{"guest": 80, "host": busy}])), &[]).err().unwrap();
        assert!(matches!(err, EnvError::ForwardTaken { host, guest: 80, .. } if host == busy), "{err}");
        // The port a forward had before is kept when free, a new one chosen when not; live
        // forwards of before come back; the init file's own stay init-file ones.
        let previous = [
            Forward { guest: 80, host: free, live: false },
            Forward { guest: 81, host: busy, live: false },
            Forward { guest: 9000, host: free, live: true },
        ];
        let wanted = wanted_forwards(&vm(serde_json::json!([{"guest": 80}, {"guest": 81}])), &previous).unwrap();
        let got: Vec<(u16, Option<u16>, bool)> = wanted.iter().map(|w| (w.guest, w.host, w.live)).collect();
        // A copy's forwards (host 0) get free ports.
        let copy = [Forward { guest: 80, host: 0, live: false }, Forward { guest: 9000, host: 0, live: true }];
        let fresh = wanted_forwards(&vm(serde_json::json!([{"guest": 80}])), &copy).unwrap();
        assert!(fresh.iter().all(|w| w.host.is_none()));
        assert_eq!(got, vec![(80, Some(free), false), (81, None, false), (9000, Some(free), true)]);
        drop(taken);
    }
}
