//! An environment on disk and running: the SDK's `Env` (DESIGN §10).
//!
//! `Env::start` leases a segment per network (once, until destroy), starts qemu for each VM
//! that is not running, then waits in parallel until every started VM answers SSH; if any VM
//! fails, the VMs this call started are stopped again. `stop` is a hard power-off through QMP.
//! Commands that change the environment hold the prefix lock (`run/lock`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::accel::{Accel, AccelSetting, KvmVerdicts};
use crate::prefix::{Prefix, PrefixError};
use std::sync::Arc;

use crate::provider::{
    AccelUse, BootFailure, LaunchContext, LibvirtOptions, NetUse, Provider, ProviderError, Providers, QemuProvider,
    VmRecord, free_port, vm_paths,
};
use crate::report::{BootPhase, Reporter, task};
use crate::runtime::{RuntimeError, State};
use crate::ssh::{CommandStatus, Target};

/// Problems with a running environment.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The prefix cannot be read.
    #[error(transparent)]
    Prefix(#[from] PrefixError),
    /// A `virt/vm-*` file is not usable.
    #[error("{path} is not a VM this lago can run: {reason}")]
    BadVm {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Names that are not VMs of the environment.
    #[error("The following vms do not exist: {} (known: {})", names.join(", "), known.join(", "))]
    UnknownVms {
        /// The names given.
        names: Vec<String>,
        /// The VMs of the environment.
        known: Vec<String>,
    },
    /// A VM is managed by a provider this build cannot run.
    #[error("VM {vm} uses vm-provider {provider:?}, which this lago cannot run (known: local-qemu, ssh)")]
    Provider {
        /// The VM.
        vm: String,
        /// Its provider.
        provider: String,
    },
    /// A VM is not running.
    #[error("VM {vm} is not running (start it with `lago start {vm}`)")]
    NotRunning {
        /// The VM.
        vm: String,
    },
    /// Runtime state or leases failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// qemu failed.
    #[error(transparent)]
    Qemu(#[from] ProviderError),
    /// SSH could not be run.
    #[error("`ssh` could not be run for VM {vm} (install the `openssh-client` package)")]
    Ssh {
        /// The VM.
        vm: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The prefix lock could not be taken.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    /// lago was interrupted.
    #[error(transparent)]
    Interrupted(#[from] crate::interrupt::Interrupted),
    /// A file could not be read.
    #[error(transparent)]
    Io(#[from] crate::pathio::PathError),
}

/// Settings from the configuration.
#[derive(Debug, Clone)]
pub struct EnvOptions {
    /// Acceleration: `accel` and where it was set.
    pub accel: AccelSetting,
    /// The KVM probe's verdicts (decide `accel = auto`), cached in lago's state directory.
    pub kvm: KvmVerdicts,
    /// Whether VMs on `nat` networks may reach addresses outside the host.
    pub vm_outbound: bool,
    /// Directory of the host-wide leases (`lease_dir`).
    pub lease_dir: PathBuf,
    /// How libvirt hosts are reached.
    pub libvirt: LibvirtOptions,
}

/// Whether a VM's end, as `why_stopped` tells it, is qemu itself crashing on a signal (an
/// assertion or a fault in the emulator: qemu 10.0's multi-threaded TCG aborts now and then in
/// `iotlb_to_section` while a guest boots), rather than the guest powering off or qemu being
/// killed.
fn emulator_crashed(why: &str) -> bool {
    ["(signal: 6 ", "(signal: 7 ", "(signal: 11 "].iter().any(|s| why.starts_with("qemu exited ") && why.contains(s))
}

/// A VM being waited for: the acceleration it was started under, and where its console log
/// stood before it started.
#[derive(Debug, Clone)]
struct Booting<'a> {
    vm: &'a VmRecord,
    accel: AccelUse,
    console_from: u64,
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
    crate::process::tail(bytes.get(from as usize..).unwrap_or_default(), n)
}

/// Runs `f` for every item, each on its own thread (one per VM), waits for all of them and
/// returns the first error; a panic in a thread is raised again in the caller.
pub(crate) fn for_each_parallel<T: Sync, E: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<(), E> + Sync,
) -> Result<(), E> {
    let results: Vec<Result<(), E>> = std::thread::scope(|s| {
        let handles: Vec<_> = items.iter().map(|item| s.spawn(|| f(item))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    });
    results.into_iter().collect()
}

impl EnvOptions {
    /// The settings `config` gives (`accel`, `vm_outbound`, `lease_dir`, `libvirt_*`).
    pub fn from_config(config: &crate::config::Config) -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            accel: config.accel_setting()?,
            kvm: KvmVerdicts::new(config.state_dir()),
            vm_outbound: config.lago_bool("vm_outbound")?.unwrap_or(true),
            lease_dir: config.lease_dir(),
            libvirt: config.libvirt_options(),
        })
    }
}

/// An environment.
pub struct Env {
    /// Its prefix.
    pub prefix: Prefix,
    /// Its VMs, in `virt/env` order.
    pub vms: Vec<VmRecord>,
    /// Its networks: name and type.
    pub nets: Vec<(String, String)>,
    options: EnvOptions,
    pub(crate) providers: Providers,
}

impl Env {
    /// Loads the environment of `prefix`, run by the real providers.
    pub fn load(prefix: Prefix, options: EnvOptions) -> Result<Self, EnvError> {
        Self::with_provider(prefix, options, Arc::new(QemuProvider::default()))
    }

    /// Loads the environment of `prefix`, its `local-qemu` VMs run by `provider` (a fake in tests).
    pub fn with_provider(prefix: Prefix, options: EnvOptions, provider: Arc<dyn Provider>) -> Result<Self, EnvError> {
        let virt = prefix.virt_env()?;
        let mut vms = Vec::new();
        for (name, spec) in &virt.vms {
            let path = prefix.join(&format!("virt/vm-{name}"));
            let vm: VmRecord = serde_json::from_value(serde_json::Value::Object(spec.clone()))
                .map_err(|e| EnvError::BadVm { path, reason: e.to_string() })?;
            vms.push(vm);
        }
        let nets = virt
            .nets
            .iter()
            .map(|(n, s)| (n.clone(), s.get("type").and_then(|t| t.as_str()).unwrap_or("nat").to_owned()))
            .collect();
        let providers = Providers::new(provider, options.libvirt.clone());
        Ok(Self { prefix, vms, nets, options, providers })
    }

    /// The provider of a VM of this environment.
    pub fn provider_of(&self, vm: &VmRecord) -> Result<Arc<dyn Provider>, EnvError> {
        Ok(self.providers.of(vm)?)
    }

    /// The short identifier of the environment: the first 8 characters of its uuid (domain and
    /// process names carry it).
    pub fn env_id(&self) -> Result<String, EnvError> {
        Ok(self.prefix.uuid()?.chars().take(8).collect())
    }

    /// Takes the prefix lock for `verb` (see [`crate::lock`]).
    pub fn lock(&self, verb: &str, reporter: &dyn Reporter) -> Result<crate::lock::PrefixLock, EnvError> {
        Ok(crate::lock::acquire(&self.prefix.path, verb, reporter)?)
    }

    /// The VMs named (all of them when `names` is empty).
    pub fn select(&self, names: &[String]) -> Result<Vec<&VmRecord>, EnvError> {
        if names.is_empty() {
            return Ok(self.vms.iter().collect());
        }
        let unknown: Vec<String> = names.iter().filter(|n| !self.vms.iter().any(|v| &v.name == *n)).cloned().collect();
        if !unknown.is_empty() {
            return Err(EnvError::UnknownVms {
                names: unknown,
                known: self.vms.iter().map(|v| v.name.clone()).collect(),
            });
        }
        Ok(self.vms.iter().filter(|v| names.contains(&v.name)).collect())
    }

    /// Names of the VMs that run, as each VM's provider sees it. A provider that cannot be
    /// reached (a libvirt host that is down) is said once, and its VMs count as not running.
    pub fn running(&self) -> Vec<String> {
        let all: Vec<&VmRecord> = self.vms.iter().collect();
        let mut names = Vec::new();
        for vm in &all {
            if let Err(e) = self.providers.of(vm) {
                tracing::warn!("{e}");
            }
        }
        let reachable: Vec<&VmRecord> = all.into_iter().filter(|v| self.providers.of(v).is_ok()).collect();
        if let Ok(groups) = self.providers.group(&reachable) {
            for (provider, vms) in groups {
                let records: Vec<VmRecord> = vms.into_iter().cloned().collect();
                names.extend(provider.running(&self.prefix.path, &records));
            }
        }
        names
    }

    /// `running`, `down`, or what the VM's provider says (`paused`, `shut off`...).
    pub fn state(&self, vm: &str) -> String {
        let Some(record) = self.vms.iter().find(|v| v.name == vm) else { return "down".into() };
        match self.providers.of(record) {
            Ok(p) => p.state(&self.prefix.path, record),
            Err(e) => {
                tracing::warn!("{e}");
                "unknown state".into()
            }
        }
    }

    /// The networks that providers with networks of their own (libvirt) keep up; `None` when no
    /// VM uses such a provider.
    pub fn nets_up(&self) -> Option<Vec<String>> {
        let all: Vec<&VmRecord> = self.vms.iter().filter(|v| self.providers.of(v).is_ok()).collect();
        let groups = self.providers.group(&all).ok()?;
        let env_id = self.env_id().ok()?;
        let mut up: Option<Vec<String>> = None;
        for (provider, _) in groups {
            if let Some(list) = provider.nets_up(&self.prefix.path, &env_id, &self.nets_of(&provider).ok()?) {
                up.get_or_insert_with(Vec::new).extend(list);
            }
        }
        up
    }

    /// The environment's networks with their records and the VMs (records) on each.
    pub fn net_uses(&self) -> Result<Vec<NetUse>, EnvError> {
        Ok(self
            .prefix
            .virt_env()?
            .nets
            .into_iter()
            .map(|(name, spec)| {
                let vms = self.vms.iter().filter(|v| v.nics.iter().any(|n| n.net == name)).cloned().collect();
                NetUse { name, spec, vms }
            })
            .collect())
    }

    /// The networks each provider of `vms` needs: those its VMs are on.
    fn nets_of(&self, provider: &Arc<dyn Provider>) -> Result<Vec<NetUse>, EnvError> {
        let uses = self.net_uses()?;
        Ok(uses
            .into_iter()
            .filter(|u| u.vms.iter().any(|v| self.providers.of(v).is_ok_and(|p| Arc::ptr_eq(&p, provider))))
            .map(|mut u| {
                u.vms.retain(|v| self.providers.of(v).is_ok_and(|p| Arc::ptr_eq(&p, provider)));
                u
            })
            .collect())
    }

    /// What a provider needs to start this environment's VMs and networks.
    fn launch_context(&self, env_id: &str, accel: Accel) -> LaunchContext {
        LaunchContext {
            prefix: self.prefix.path.clone(),
            env_id: env_id.to_owned(),
            accel,
            ssh_port: 0,
            outbound: self.options.vm_outbound,
            index: 0,
        }
    }

    /// Starts the named VMs (all when empty) and waits until each answers SSH.
    pub fn start(&self, names: &[String], reporter: &dyn Reporter) -> Result<(), EnvError> {
        let targets = self.select(names)?;
        for vm in &targets {
            if let Some(p) = vm.vm_provider.as_deref().filter(|p| !crate::plan::VM_PROVIDERS.contains(p)) {
                return Err(EnvError::Provider { vm: vm.name.clone(), provider: p.to_owned() });
            }
        }
        let groups = self.providers.group(&targets)?;
        let _lock = self.lock("start", reporter)?;
        let title = if names.is_empty() { "Start Prefix" } else { "Start specified VMs" };
        task(reporter, title, || {
            let mut state = State::load(&self.prefix.path)?;
            let env_id = self.env_id()?;
            let before = self.running();
            let launching: Vec<&VmRecord> =
                targets.iter().copied().filter(|v| !before.contains(&v.name) && !v.is_ssh()).collect();
            let accel = self.accel_for(&launching, reporter);
            let nets = task(reporter, "Start nets", || {
                let ctx = self.launch_context(&env_id, accel.resolved);
                for (provider, _) in &groups {
                    provider.start_nets(&ctx, &self.nets_of(provider)?)?;
                }
                Ok::<_, EnvError>(())
            });
            if let Err(e) = nets {
                // Networks this start made on the other hosts do not stay behind.
                let _ = self.stop_unused_nets(&crate::report::NoopReporter);
                return Err(e);
            }
            let running = self.running();
            self.recover_ports(&mut state, &running, reporter)?;
            let (up, to_start): (Vec<&VmRecord>, Vec<&VmRecord>) =
                targets.iter().copied().partition(|v| running.contains(&v.name) || v.is_ssh());
            let mut started: Vec<Booting<'_>> = Vec::new();
            let launched = task(reporter, "Start vms", || {
                for vm in &to_start {
                    task(reporter, &format!("Starting VM {}", vm.name), || {
                        let console_from = self.console_len(vm);
                        let port = self.launch(vm, &env_id, accel.resolved)?;
                        self.reapply_cuts(vm)?;
                        // Saved before waiting: an interrupted start leaves VMs `shell` reaches.
                        // A fresh boot: its clock is the host's again.
                        let clock = state.clock.remove(&vm.name).is_some();
                        if let Some(port) = port {
                            state.ssh_ports.insert(vm.name.clone(), port);
                        }
                        if port.is_some() || clock {
                            state.save(&self.prefix.path)?;
                        }
                        started.push(Booting { vm, accel: accel.clone(), console_from });
                        Ok::<_, EnvError>(())
                    })?;
                }
                Ok::<_, EnvError>(())
            });
            // VMs that were running already are waited for too: a `start` that was interrupted
            // may have left them booting. Machines of the `ssh` provider only have to answer.
            let ready = launched.and_then(|()| {
                let mut waiting: Vec<Booting<'_>> = started.clone();
                waiting.extend(up.iter().map(|vm| Booting {
                    vm,
                    accel: accel.clone(),
                    console_from: self.console_len(vm),
                }));
                task(reporter, "Wait for ssh connectivity", || self.wait_ssh(&waiting, &state, reporter))
            });
            if let Err(e) = ready {
                for b in &started {
                    let _ = self.kill(&b.vm.name);
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
                let kernel = self.options.kvm.kernel_for(vms.iter().find_map(|v| v.direct_boot()).map(|b| b.kernel));
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

    /// Starts one VM through its provider; for `local-qemu`, with a free SSH port (another if
    /// qemu finds it taken), which is returned.
    fn launch(&self, vm: &VmRecord, env_id: &str, accel: Accel) -> Result<Option<u16>, EnvError> {
        let provider = self.providers.of(vm)?;
        let outbound = self.options.vm_outbound
            && vm.nics.iter().any(|n| self.nets.iter().any(|(name, kind)| *name == n.net && kind == "nat"));
        let forwards = provider.name() == "local-qemu";
        let mut attempts = 0;
        loop {
            crate::interrupt::check()?;
            let ctx = LaunchContext {
                ssh_port: if forwards {
                    free_port().map_err(|source| EnvError::Ssh { vm: vm.name.clone(), source })?
                } else {
                    0
                },
                outbound,
                index: self.vms.iter().position(|v| v.name == vm.name).unwrap_or(0),
                ..self.launch_context(env_id, accel)
            };
            match provider.start(vm, &ctx) {
                Ok(()) => return Ok(forwards.then_some(ctx.ssh_port)),
                // The port was free when picked and taken before qemu bound it.
                Err(ProviderError::Exited { log, .. }) if log.contains("host forwarding") && attempts < 3 => {
                    attempts += 1;
                    tracing::info!(vm = %vm.name, "SSH port {} was taken meanwhile; trying another", ctx.ssh_port);
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
            if state.ssh_ports.contains_key(&vm.name) {
                continue;
            }
            if let Some(port) = crate::provider::ssh_port_of(&self.prefix.path, &vm.name) {
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

    fn target(&self, vm: &VmRecord, state: &State) -> Result<Target, EnvError> {
        Ok(self.providers.of(vm)?.target(&self.prefix.path, vm, state.ssh_ports.get(&vm.name).copied()))
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
        let port = self.launch(vm, &self.env_id()?, accel)?;
        self.reapply_cuts(vm)?;
        let _saving = saving.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut state = State::load(&self.prefix.path)?;
        if let Some(port) = port {
            state.ssh_ports.insert(vm.name.clone(), port);
            state.save(&self.prefix.path)?;
        }
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
        let mut banner = crate::ssh::BannerProbe::new();
        loop {
            crate::interrupt::check()?;
            match provider.probe(target, &mut banner) {
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
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the named running VMs answer SSH (each within its `boot_time_sec`).
    pub fn wait_ready(&self, names: &[String], reporter: &dyn Reporter) -> Result<(), EnvError> {
        let targets = self.select(names)?;
        let state = State::load(&self.prefix.path)?;
        // They run already, under what an earlier start chose: no KVM fallback here.
        let accel = AccelUse { resolved: Accel::Tcg, setting: self.options.accel.clone() };
        let waiting: Vec<Booting<'_>> =
            targets.iter().map(|vm| Booting { vm, accel: accel.clone(), console_from: self.console_len(vm) }).collect();
        task(reporter, "Wait for ssh connectivity", || self.wait_ssh(&waiting, &state, reporter))
    }

    /// Powers off a VM at once and removes its runtime files (a machine of the `ssh` provider
    /// only loses its connection).
    pub(crate) fn kill(&self, vm: &str) -> Result<(), EnvError> {
        if let Some(record) = self.vms.iter().find(|v| v.name == vm) {
            self.providers.of(record)?.kill(&self.prefix.path, record);
        }
        Ok(())
    }

    /// Hard power-off of the named VMs (all when empty). Networks no running VM uses any more
    /// are taken down on the providers that keep them (libvirt).
    pub fn stop(&self, names: &[String], reporter: &dyn Reporter) -> Result<(), EnvError> {
        let targets = self.select(names)?;
        let _lock = self.lock("stop", reporter)?;
        let title = if names.is_empty() { "Stop prefix" } else { "Stop specified VMs" };
        task(reporter, title, || {
            let running = self.running();
            let stopping: Vec<&&VmRecord> = targets.iter().filter(|v| running.contains(&v.name)).collect();
            task(reporter, "Stop vms", || {
                for_each_parallel(&stopping, |vm| {
                    task(reporter, &format!("Destroying VM {}", vm.name), || self.kill(&vm.name))
                })
            })?;
            self.stop_unused_nets(reporter)?;
            // What the other hosts had is stopped; a host that did not answer is the error.
            self.reachable(&targets)
        })
    }

    /// An error naming the first host of `vms` that cannot be reached.
    fn reachable(&self, vms: &[&VmRecord]) -> Result<(), EnvError> {
        for vm in vms {
            self.providers.of(vm)?;
        }
        Ok(())
    }

    /// Takes down, on each provider, the networks no running VM of theirs uses.
    fn stop_unused_nets(&self, reporter: &dyn Reporter) -> Result<(), EnvError> {
        let all: Vec<&VmRecord> = self.vms.iter().filter(|v| !v.is_ssh() && self.providers.of(v).is_ok()).collect();
        let Ok(groups) = self.providers.group(&all) else { return Ok(()) };
        let running = self.running();
        // A prefix that lost its uuid still has its switches stopped (libvirt names need the uuid).
        let env_id = self.env_id().unwrap_or_default();
        // Only networks that are up and that no running VM uses any more.
        let mut work = Vec::new();
        for (provider, _) in &groups {
            let unused: Vec<NetUse> = self
                .nets_of(provider)?
                .into_iter()
                .filter(|u| !u.vms.iter().any(|v| running.contains(&v.name)))
                .collect();
            let up = provider.nets_up(&self.prefix.path, &env_id, &unused).unwrap_or_default();
            let unused: Vec<NetUse> = unused.into_iter().filter(|u| up.contains(&u.name)).collect();
            if !unused.is_empty() {
                work.push((provider, unused));
            }
        }
        if work.is_empty() {
            return Ok(());
        }
        task(reporter, "Stop nets", || {
            for (provider, unused) in &work {
                provider.stop_nets(&self.prefix.path, &env_id, unused)?;
            }
            Ok(())
        })
    }

    /// Runs `argv` in a running VM.
    pub fn ssh(&self, vm: &str, argv: &[&str]) -> Result<CommandStatus, EnvError> {
        let target = self.ssh_target(vm)?;
        target.exec(argv, None).map_err(|source| EnvError::Ssh { vm: vm.to_owned(), source })
    }

    /// How to reach a running VM over SSH.
    pub fn ssh_target(&self, vm: &str) -> Result<Target, EnvError> {
        let record = self.select(&[vm.to_owned()])?[0];
        if self.state(vm) != "running" {
            return Err(EnvError::NotRunning { vm: vm.to_owned() });
        }
        self.target(record, &State::load(&self.prefix.path)?)
    }

    /// Whether `vm` answers SSH now (one try).
    pub(crate) fn probe(&self, vm: &VmRecord) -> bool {
        let Ok(provider) = self.providers.of(vm) else { return false };
        State::load(&self.prefix.path)
            .ok()
            .and_then(|s| self.target(vm, &s).ok())
            .is_some_and(|t| provider.probe(&t, &mut crate::ssh::BannerProbe::new()).unwrap_or(false))
    }

    /// Stops everything, takes the networks down, releases the leases and removes the prefix,
    /// under its lock.
    pub fn destroy(&self, reporter: &dyn Reporter) -> Result<(), EnvError> {
        let lock = self.lock("destroy", reporter)?;
        self.stop(&[], reporter)?;
        crate::ssh::close_all(&self.prefix.path);
        release_leases(&self.prefix, &self.options.lease_dir)?;
        self.prefix.remove(reporter)?;
        lock.remove_file();
        drop(lock);
        self.prefix.repair_workdir()?;
        Ok(())
    }
}

/// Releases the network leases of a prefix (segment ports, libvirt subnets) without loading it
/// as an environment (also for prefixes whose `virt/` cannot be read).
pub fn release_leases(prefix: &Prefix, lease_dir: &std::path::Path) -> Result<(), EnvError> {
    // Leases name their holder by its uuid file: those of a prefix that lost it are stale and
    // taken back by the next lease.
    let Ok(uuid) = prefix.uuid() else { return Ok(()) };
    crate::runtime::SubnetLeases::new(lease_dir).release_all(&prefix.join("uuid"), &uuid)?;
    Ok(())
}

/// One VM of an environment (the SDK's `Vm`).
pub struct Vm<'a> {
    pub(crate) env: &'a Env,
    /// The VM as persisted.
    pub record: &'a VmRecord,
}

impl Env {
    /// The VM called `name`.
    pub fn vm(&self, name: &str) -> Result<Vm<'_>, EnvError> {
        Ok(Vm { env: self, record: self.select(&[name.to_owned()])?[0] })
    }

    /// The networks' records (`virt/net-<name>`), in `virt/env` order.
    pub fn net_specs(&self) -> Result<Vec<crate::prefix::Record>, EnvError> {
        Ok(self.prefix.virt_env()?.nets)
    }

    /// Every VM, in `virt/env` order.
    pub fn all_vms(&self) -> Vec<Vm<'_>> {
        self.vms.iter().map(|record| Vm { env: self, record }).collect()
    }
}

impl Vm<'_> {
    /// Name.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// Address on the management network.
    pub fn ip(&self) -> Option<std::net::Ipv4Addr> {
        self.record.ip()
    }

    /// `running`, `down`, or what its provider says.
    pub fn state(&self) -> String {
        self.env.state(&self.record.name)
    }

    /// Starts this VM (and waits for SSH).
    pub fn start(&self, reporter: &dyn Reporter) -> Result<(), EnvError> {
        self.env.start(std::slice::from_ref(&self.record.name), reporter)
    }

    /// Powers this VM off.
    pub fn stop(&self, reporter: &dyn Reporter) -> Result<(), EnvError> {
        self.env.stop(std::slice::from_ref(&self.record.name), reporter)
    }

    /// Runs `argv` in the VM (arguments are passed as they are, quoted for the guest's shell).
    pub fn ssh(&self, argv: &[&str]) -> Result<CommandStatus, EnvError> {
        self.env.ssh(&self.record.name, argv)
    }

    /// Runs a local script in the VM (`sh -s`, the script on its standard input).
    pub fn ssh_script(&self, path: &std::path::Path) -> Result<CommandStatus, EnvError> {
        let data = std::fs::read(path).map_err(crate::pathio::at("read", path))?;
        let target = self.env.ssh_target(&self.record.name)?;
        target
            .exec_line("sh -s", Some(&data), 10)
            .map_err(|source| EnvError::Ssh { vm: self.record.name.clone(), source })
    }

    /// An interactive SSH session (a shell, or `command`) on this process's terminal; returns
    /// its exit code.
    pub fn interactive_ssh(&self, command: Option<&str>) -> Result<i32, EnvError> {
        use std::io::IsTerminal;
        let target = self.env.ssh_target(&self.record.name)?;
        let tty = std::io::stdin().is_terminal();
        let argv = target.interactive_argv(command, tty);
        let status = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .status()
            .map_err(|source| EnvError::Ssh { vm: self.record.name.clone(), source })?;
        Ok(status.code().unwrap_or(255))
    }

    /// Waits until the VM answers SSH (within its `boot_time_sec`).
    pub fn wait_for_ssh(&self, reporter: &dyn Reporter) -> Result<(), EnvError> {
        if self.state() != "running" {
            return Err(EnvError::NotRunning { vm: self.record.name.clone() });
        }
        self.env.wait_ready(std::slice::from_ref(&self.record.name), reporter)
    }

    /// Whether the VM answers SSH now (one try).
    pub fn ssh_reachable(&self) -> bool {
        self.env.state(&self.record.name) == "running" && self.env.probe(self.record)
    }

    /// The VM's record (`virt/vm-<name>`), as the original wrote it.
    pub fn spec(&self) -> Result<serde_json::Map<String, serde_json::Value>, EnvError> {
        let virt = self.env.prefix.virt_env()?;
        Ok(virt.vms.into_iter().find(|(n, _)| *n == self.record.name).map(|(_, m)| m).unwrap_or_default())
    }

    /// Copies a local file or directory into the VM.
    pub fn copy_to(&self, local: &std::path::Path, remote: &str) -> Result<(), crate::guest::GuestError> {
        crate::guest::copy_to(self.env, &self.record.name, local, remote)
    }

    /// Copies a file or directory out of the VM.
    pub fn copy_from(&self, remote: &str, local: &std::path::Path) -> Result<(), crate::guest::GuestError> {
        crate::guest::copy_from(self.env, &self.record.name, remote, local)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::report::NoopReporter;

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
            Target::local(_prefix, &vm.name, "root", 22)
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
        fn probe(&self, target: &Target, _banner: &mut crate::ssh::BannerProbe) -> std::io::Result<bool> {
            let stopped_by_kvm = target.vm == self.kvm_fails && self.accel_of(&target.vm) == Some(Accel::Kvm);
            Ok(target.vm != self.never_ready
                && !stopped_by_kvm
                && self.calls.running.lock().unwrap().contains(&target.vm))
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
        assert!(
            matches!(err, EnvError::Qemu(ProviderError::SshTimeout { ref vm, secs: 1, .. }) if vm == "vm02"),
            "{err}"
        );
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
        let usable = crate::accel::KvmProbe { usable: true, reason: "probe passed".into(), evidence: vec![] };
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
            err.to_string()
                .starts_with("VM vm01 cannot boot: its hypervisor stopped it (status internal-error) under kvm"),
            "{err}"
        );
        let hint = crate::diagnose::Diagnose::diagnose(&err).hint.unwrap();
        assert!(hint.starts_with("`accel = kvm` is set (environment variable LAGO_ACCEL)"), "{hint}");
        assert_eq!(calls.started.lock().unwrap().iter().filter(|n| *n == "vm01").count(), 1, "no second start");
        assert!(env.options.kvm.cached(None).is_none(), "the user's choice says nothing about the probe");
    }
}
