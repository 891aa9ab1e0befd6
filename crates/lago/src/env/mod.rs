//! An environment on disk and running: the SDK's `Env` (DESIGN §10).
//!
//! `Env::start` leases a segment per network (once, until destroy), starts qemu for each VM
//! that is not running, then waits in parallel until every started VM answers SSH; if any VM
//! fails, the VMs this call started are stopped again. `stop` is a hard power-off through QMP.
//! Commands that change the environment hold the prefix lock (`run/lock`). [`start`] holds the
//! start and the wait for SSH, [`vm`] the handle of one VM.

pub mod admission;
#[cfg(test)]
pub(crate) mod fake;
mod memory;
mod net;
mod start;
#[cfg(test)]
mod tests;
mod thaw;
mod vm;

pub use vm::Vm;

use std::path::PathBuf;

use crate::config::{Accel, AccelSetting};
use crate::prefix::{Prefix, PrefixError};
use crate::provider::qemu::accel::KvmVerdicts;
use std::sync::Arc;

use crate::config::LibvirtOptions;
use crate::host::ssh::{CommandStatus, Target};
use crate::prefix::records::VmRecord;
use crate::prefix::state::{RuntimeError, State};
use crate::provider::{LaunchContext, NetUse, Provider, ProviderError, Providers, QemuProvider, VmState};
use crate::report::{Reporter, task};

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
    /// A name that is not a network of the environment.
    #[error("Network {net} does not exist (known: {})", known.join(", "))]
    UnknownNet {
        /// The name given.
        net: String,
        /// The networks of the environment.
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
    /// SSH did not connect to a running VM, however many times it was tried.
    #[error("Timed out (in {secs} s, {tries} tries) trying to ssh to {vm}: {stderr}")]
    SshUnreachable {
        /// The VM.
        vm: String,
        /// Connection attempts made.
        tries: u32,
        /// Seconds they took.
        secs: u64,
        /// `ssh`'s words on the last one.
        stderr: String,
    },
    /// lago's connection to a VM rides on one of the environment's networks (libvirt and `ssh`
    /// VMs have no uplink of lago's), and a fault in force there takes it away.
    #[error("VM {vm} cannot be reached: lago connects to it at {address}, on network {net}, and {fault}")]
    ControlCut {
        /// The VM.
        vm: String,
        /// The address lago connects to.
        address: String,
        /// The network that carries the connection.
        net: String,
        /// The fault in force (`its NIC eth0 is cut (lago net cut)`).
        fault: String,
    },
    /// `host_leg = on` and a network cannot have its host leg.
    #[error("Network {net} cannot have its host leg ({reason}), and `host_leg = on` is set ({origin})")]
    HostLeg {
        /// The network.
        net: String,
        /// Why.
        reason: String,
        /// Where `host_leg` was set.
        origin: String,
    },
    /// A host port an init file's `forwards` fixes is taken.
    #[error("VM {vm}: host port {host} (forwarded to its port {guest}) is in use by another program")]
    ForwardTaken {
        /// The VM.
        vm: String,
        /// The host port.
        host: u16,
        /// The VM's port.
        guest: u16,
    },
    /// A start or fork does not fit the host's memory, and `--no-wait` says not to wait.
    #[error("Not enough memory: {why}")]
    NoRoom {
        /// What is asked for, what the host has, and the shortfall.
        why: String,
    },
    /// The prefix lock could not be taken.
    #[error(transparent)]
    Lock(#[from] crate::host::lock::LockError),
    /// lago was interrupted.
    #[error(transparent)]
    Interrupted(#[from] crate::host::interrupt::Interrupted),
    /// A file could not be read.
    #[error(transparent)]
    Io(#[from] crate::host::pathio::PathError),
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
    /// Whether `nat` networks of `local-qemu` VMs get a host leg (`host_leg`).
    pub host_leg: crate::config::HostLegSetting,
    /// Directory of the host-wide leases (`lease_dir`).
    pub lease_dir: PathBuf,
    /// How libvirt hosts are reached.
    pub libvirt: LibvirtOptions,
    /// How the OpenStack cloud is reached (`[openstack]`).
    pub openstack: crate::config::openstack::OpenstackOptions,
    /// Connection attempts of a command in a VM when the caller does not say (`ssh_tries`).
    pub ssh_tries: u32,
    /// `[start] resume`: the live snapshot a plain `start` of the stopped environment comes up
    /// from, when it has it.
    pub resume: Option<String>,
    /// Where `local-qemu` VMs' memory files go (`memory_dir`), or why VMs get ordinary memory.
    pub memory_base: Result<PathBuf, String>,
    /// Memory that starts and forks leave to the host, in bytes (`memory_reserve`).
    pub memory_reserve: u64,
    /// Whether a start or fork that does not fit the host waits in line until it does (else it
    /// fails at once: `--no-wait`).
    pub memory_wait: bool,
    /// Where the line of starts and forks waiting for memory is kept (in lago's state directory).
    pub memory_line: PathBuf,
    /// The host's register of environments (in lago's state directory), which `destroy` takes
    /// the environment off.
    pub register: crate::prefix::register::Register,
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
            host_leg: config.host_leg()?,
            lease_dir: config.lease_dir(),
            libvirt: config.libvirt_options(),
            openstack: crate::config::openstack::OpenstackOptions::from_config(config),
            ssh_tries: config.lago_u64("ssh_tries")?.map_or(100, |n| n.clamp(1, u64::from(u32::MAX)) as u32),
            resume: config.get("start", "resume").map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned),
            memory_base: crate::prefix::memory::base(&config.memory_dir()),
            memory_reserve: config.memory_reserve()?,
            memory_wait: true,
            memory_line: config.state_dir().join("memory-line"),
            register: crate::prefix::register::Register::of_user(config.state_dir()),
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
    pub(crate) options: EnvOptions,
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
        let mut providers = Providers::new(provider, options.libvirt.clone());
        providers.openstack_options = options.openstack.clone();
        Ok(Self { prefix, vms, nets, options, providers })
    }

    /// The environment of `prefix` (a copy of this one), with this one's options and providers'
    /// kind.
    pub(crate) fn sibling(&self, prefix: Prefix) -> Result<Self, EnvError> {
        Self::with_provider(prefix, self.options.clone(), self.providers.qemu())
    }

    /// Whether a start or fork that does not fit the host's memory waits in line until it does
    /// (the default), or fails at once naming the shortfall (`--no-wait`).
    pub fn set_memory_wait(&mut self, wait: bool) {
        self.options.memory_wait = wait;
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

    /// Takes the prefix lock for `verb` (see [`crate::host::lock`]).
    pub fn lock(&self, verb: &str, reporter: &dyn Reporter) -> Result<crate::host::lock::PrefixLock, EnvError> {
        Ok(crate::host::lock::acquire(&self.prefix.path, verb, reporter)?)
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

    /// The VM's state, as its provider says it.
    pub fn state(&self, vm: &str) -> VmState {
        let Some(record) = self.vms.iter().find(|v| v.name == vm) else { return VmState::Down };
        match self.providers.of(record) {
            Ok(p) => p.state(&self.prefix.path, record),
            Err(e) => {
                tracing::warn!("{e}");
                VmState::Other("unknown state".into())
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
            forwards: Vec::new(),
            host_legs: Vec::new(),
            paused: false,
            memory: crate::provider::Memory::Ram,
            incoming: false,
            scratch: None,
            kernel_stub: None,
        }
    }
}

impl Env {
    /// How to reach a VM over SSH, with the ports `state` holds.
    fn target(&self, vm: &VmRecord, state: &State) -> Result<Target, EnvError> {
        Ok(self.providers.of(vm)?.target(&self.prefix.path, vm, state.ssh_ports.get(&vm.name).copied()))
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
            // Forwarded ports go with the VMs; the init file's come back at the next start, on
            // the same host ports when they are still free (kept here for that).
            let mut state = State::load(&self.prefix.path)?;
            let before = state.forwards.clone();
            for (vm, fs) in state.forwards.iter_mut() {
                if targets.iter().any(|t| t.name == *vm) {
                    fs.retain(|f| !f.live);
                }
            }
            state.forwards.retain(|_, fs| !fs.is_empty());
            if state.forwards != before {
                state.save(&self.prefix.path)?;
            }
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

    /// Whether libguestfs' appliance (which boots on the host's kernel) must run under TCG: the
    /// acceleration setting, and the KVM probe's verdict for the host's kernel under `auto`
    /// (on a host whose KVM hangs Linux guests, libguestfs' own `kvm:tcg` would hang).
    pub fn libguestfs_force_tcg(&self) -> bool {
        self.options.kvm.libguestfs_force_tcg(self.options.accel.accel)
    }

    /// Runs `argv` in a running VM.
    pub fn ssh(&self, vm: &str, argv: &[&str]) -> Result<CommandStatus, EnvError> {
        let target = self.ssh_target(vm)?;
        target.exec(argv, None).map_err(|source| EnvError::Ssh { vm: vm.to_owned(), source })
    }

    /// How to reach a running VM over SSH.
    pub fn ssh_target(&self, vm: &str) -> Result<Target, EnvError> {
        let record = self.select(&[vm.to_owned()])?[0];
        if !self.state(vm).is_running() {
            return Err(EnvError::NotRunning { vm: vm.to_owned() });
        }
        let state = State::load(&self.prefix.path)?;
        let target = self.target(record, &state)?;
        control_fault(record, &target, &state)?;
        Ok(target)
    }

    /// Whether `vm` answers SSH now (one try).
    pub(crate) fn probe(&self, vm: &VmRecord) -> bool {
        let Ok(provider) = self.providers.of(vm) else { return false };
        State::load(&self.prefix.path)
            .ok()
            .and_then(|s| self.target(vm, &s).ok())
            .is_some_and(|t| provider.probe(&t, &mut crate::host::ssh::BannerProbe::new()).unwrap_or(false))
    }

    /// Stops everything, takes the networks down, releases the leases and removes the prefix,
    /// under its lock.
    pub fn destroy(&self, reporter: &dyn Reporter) -> Result<(), EnvError> {
        let lock = self.lock("destroy", reporter)?;
        // What a cloud keeps of the environment goes first (its servers with it).
        if let Some(vm) = self.vms.iter().find(|v| v.provider() == "openstack") {
            task(reporter, "Remove the environment's cloud resources", || -> Result<(), EnvError> {
                Ok(self.providers.of(vm)?.remove_all(&self.prefix.path)?)
            })?;
        }
        self.stop(&[], reporter)?;
        crate::host::ssh::close_masters(&self.prefix.join("run"));
        release_leases(&self.prefix, &self.options.lease_dir)?;
        let used = std::fs::read_to_string(self.prefix.join(crate::prefix::STORE_USES)).unwrap_or_default();
        self.prefix.remove(reporter)?;
        if let Ok(base) = &self.options.memory_base {
            crate::prefix::memory::remove_prefix_files(base, &self.prefix.path);
        }
        // The frozen states only it used go with it (`lago fork`).
        if let Some(dir) = self.prefix.path.parent() {
            for gone in crate::prefix::frozen::collect(dir) {
                tracing::info!("removed the frozen state {}, which nothing uses any more", gone.display());
            }
        }
        for image in used.lines().filter(|l| !l.is_empty()) {
            if let Err(e) = crate::template::store::set_user(std::path::Path::new(image), &self.prefix.path, false) {
                tracing::warn!("cannot take {} off the users of {image}: {e}", self.prefix.path.display());
            }
        }
        crate::prefix::register::forget(&self.options.register, &self.prefix.path);
        lock.remove_file();
        drop(lock);
        self.prefix.repair_workdir()?;
        Ok(())
    }
}

/// An error when lago's connection to `vm` (`target`) goes over one of the environment's
/// networks and a fault in force there cuts it: lago then says so at once instead of waiting
/// for a connection that cannot come. VMs reached through their uplink (`local-qemu`, on
/// 127.0.0.1) are never concerned: no fault of `lago net` touches the uplink.
pub(crate) fn control_fault(vm: &VmRecord, target: &Target, state: &State) -> Result<(), EnvError> {
    if target.host == crate::provider::LOOPBACK {
        return Ok(());
    }
    let Some(nic) = vm.nics.iter().position(|n| n.net == vm.mgmt_net) else { return Ok(()) };
    if state.cut.get(&vm.name).is_some_and(|c| c.contains(&nic)) {
        return Err(EnvError::ControlCut {
            vm: vm.name.clone(),
            address: target.host.clone(),
            net: vm.mgmt_net.clone(),
            fault: format!("its NIC eth{nic} is cut (`lago net cut`)"),
        });
    }
    Ok(())
}

/// Releases the network leases of a prefix (segment ports, libvirt subnets) without loading it
/// as an environment (also for prefixes whose `virt/` cannot be read).
pub fn release_leases(prefix: &Prefix, lease_dir: &std::path::Path) -> Result<(), EnvError> {
    // Leases name their holder by its uuid file: those of a prefix that lost it are stale and
    // taken back by the next lease.
    let Ok(uuid) = prefix.uuid() else { return Ok(()) };
    crate::prefix::leases::SubnetLeases::new(lease_dir).release_all(&prefix.join("uuid"), &uuid)?;
    Ok(())
}
