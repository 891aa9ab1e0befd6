//! VM providers: what runs an environment's VMs and networks (DESIGN §2).
//!
//! [`Provider`] carries every per-VM operation the environment needs: start, hard power-off,
//! ACPI shutdown, state, SSH reachability, live snapshots, console, guest agent, and each
//! provider's side of the networks. `env`, `snapshot`, `guest` and `status` call it only. The
//! providers are [`qemu::QemuProvider`] (`local-qemu`: one qemu per VM, no daemon),
//! [`ssh::SshProvider`] (`ssh`: machines lago did not create) and, with the `libvirt` feature,
//! `libvirt::LibvirtProvider` (`local-libvirt`: domains and networks of a libvirt daemon, local
//! or remote), and [`openstack::OpenstackProvider`] (`openstack`: servers, networks and ports of
//! an OpenStack cloud). The environment picks one per VM ([`Providers`]).

pub mod forwarder;
#[cfg(feature = "libvirt")]
pub mod libvirt;
pub mod openstack;
pub mod qemu;
pub mod ssh;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Accel, AccelSetting, LibvirtOptions};
use crate::host::ssh::Target;

/// Where lago reaches `local-qemu` VMs: their SSH port (and `lago forward`'s ports) forwarded
/// on the host's loopback through the uplink.
pub const LOOPBACK: &str = "127.0.0.1";

/// A VM's state, as its provider sees it; shown as the original showed it (`running`, `down`,
/// and libvirt's own words for the other states).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmState {
    /// It runs.
    Running,
    /// It does not run (no process, no domain, or shut off).
    Down,
    /// Its CPUs are paused.
    Paused,
    /// Another state of its provider (`crashed`, `suspended`, `blocked`...), in its words.
    Other(String),
}

impl VmState {
    /// Whether it runs.
    pub fn is_running(&self) -> bool {
        *self == VmState::Running
    }

    /// Its name in `lago status`.
    pub fn as_str(&self) -> &str {
        match self {
            VmState::Running => "running",
            VmState::Down => "down",
            VmState::Paused => "paused",
            VmState::Other(s) => s,
        }
    }
}

impl std::fmt::Display for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for VmState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for VmState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The acceleration a VM ran under, and the setting it came from (for messages and hints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelUse {
    /// KVM or TCG.
    pub resolved: Accel,
    /// `accel` and where it was set.
    pub setting: AccelSetting,
}

/// How a booting VM's hypervisor stopped it: its status and its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFailure {
    /// `internal-error`, `guest-panicked`, `io-error`, `shutdown`, libvirt's `paused`...
    pub status: String,
    /// What the hypervisor said (`KVM internal error. Suberror: 1`...).
    pub words: Vec<String>,
    /// Whether it looks like KVM's failure rather than the guest's (qemu's `internal-error`
    /// status, KVM named in its words): a VM that KVM chose by `accel = auto` then gets TCG.
    pub kvm: bool,
}

use crate::prefix::records::VmRecord;
pub use qemu::{QemuProvider, launch, qemu_argv, ssh_port_of, vm_paths};

/// Problems running VMs.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// qemu could not be started.
    #[error("Cannot start VM {vm}: `qemu-system-x86_64` could not be run")]
    Spawn {
        /// The VM.
        vm: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The prefix's runtime directory (where sockets live) could not be made.
    #[error("Cannot create the runtime directory {path} (where the VMs' sockets live)")]
    RuntimeDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The VM's SSH server answers and refuses every login lago can make.
    #[error("VM {vm} answers SSH and refuses lago's login ({ssh}), for {secs} s now")]
    LoginRefused {
        /// The VM.
        vm: String,
        /// How long it has refused.
        secs: u64,
        /// ssh's words.
        ssh: String,
        /// Whether a password was offered too.
        password: bool,
    },
    /// qemu exited during start-up.
    #[error("Cannot start VM {vm}: qemu exited ({status})\n{log}")]
    Exited {
        /// The VM.
        vm: String,
        /// Its exit status.
        status: String,
        /// The end of `logs/<vm>.qemu.log`.
        log: String,
    },
    /// qemu did not open its control socket.
    #[error("Cannot start VM {vm}: qemu did not answer on {qmp} within {secs} s")]
    NoQmp {
        /// The VM.
        vm: String,
        /// The socket.
        qmp: PathBuf,
        /// How long we waited.
        secs: u64,
    },
    /// The VM did not answer SSH in time.
    #[error("VM {vm} did not answer SSH within {secs} s (boot_time_sec); {detail}")]
    SshTimeout {
        /// The VM.
        vm: String,
        /// The limit.
        secs: u64,
        /// The end of its console log, or, when the console stayed empty, qemu's status and words.
        detail: String,
        /// The acceleration it ran under.
        accel: AccelUse,
    },
    /// The VM's process died while we waited for it.
    #[error("VM {vm} stopped while booting: {qemu}\n{console}")]
    Died {
        /// The VM.
        vm: String,
        /// How qemu ended and what it said (`logs/<vm>.qemu.log`).
        qemu: String,
        /// The end of its console log (`Last console lines:` ...), or that it stayed empty.
        console: String,
        /// The acceleration it ran under.
        accel: AccelUse,
    },
    /// The VM's hypervisor stopped it while it booted (a KVM internal error, a guest panic):
    /// it runs no more, although its process is there.
    #[error("VM {vm} cannot boot: its hypervisor stopped it (status {status}) under {}\nqemu said: {qemu}\n{console}", accel.resolved.name())]
    BootFailed {
        /// The VM.
        vm: String,
        /// The hypervisor's status (`internal-error`, `guest-panicked`...).
        status: String,
        /// What qemu said (`logs/<vm>.qemu.log`).
        qemu: String,
        /// The end of its console log (`Last console lines:` ...), or that it stayed empty.
        console: String,
        /// Whether it looks like KVM's failure rather than the guest's.
        kvm: bool,
        /// The acceleration it ran under.
        accel: AccelUse,
    },
    /// A log file could not be opened.
    #[error("Cannot open {path}")]
    Log {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A VM's QMP socket failed.
    #[error("VM {vm}: {source}")]
    Qmp {
        /// The VM.
        vm: String,
        /// Why.
        #[source]
        source: crate::host::qmp::QmpError,
    },
    /// A job of the VM's hypervisor (a snapshot) failed.
    #[error("VM {vm}: {job} failed: {message}")]
    Job {
        /// The VM.
        vm: String,
        /// The job.
        job: String,
        /// The hypervisor's message.
        message: String,
    },
    /// The operation is not one this provider has.
    #[error("VM {vm}: {what} is not supported by its provider {provider}")]
    Unsupported {
        /// The VM.
        vm: String,
        /// What was asked.
        what: String,
        /// The provider.
        provider: &'static str,
    },
    /// The hypervisor refused a port forward.
    #[error("VM {vm}: cannot forward 127.0.0.1:{host} to its port {guest}: {message}")]
    Forward {
        /// The VM.
        vm: String,
        /// The host port.
        host: u16,
        /// The VM's port.
        guest: u16,
        /// The hypervisor's words.
        message: String,
    },
    /// The provider cannot make this fault on a network.
    #[error("{what} of network {net} is not supported with {provider} VMs ({hint})")]
    NetUnsupported {
        /// The network.
        net: String,
        /// What was asked.
        what: String,
        /// The provider.
        provider: &'static str,
        /// What can be done.
        hint: String,
    },
    /// A network's switch failed.
    #[error(transparent)]
    Switch(#[from] crate::provider::qemu::switch::SwitchError),
    /// A libvirt host refused or failed an operation.
    #[error("{what} (libvirt host {url}): {message}")]
    Libvirt {
        /// What was being done.
        what: String,
        /// The host's URL.
        url: String,
        /// libvirt's message.
        message: String,
    },
    /// An OpenStack cloud refused or failed an operation.
    #[error(transparent)]
    Openstack(Arc<openstack::OpenstackError>),
    /// lago was interrupted.
    #[error(transparent)]
    Interrupted(#[from] crate::host::interrupt::Interrupted),
}

/// What a VM's qemu command line depends on besides the VM itself.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchContext {
    /// The prefix directory.
    pub prefix: PathBuf,
    /// Short identifier of the environment (first 8 characters of its uuid).
    pub env_id: String,
    /// KVM or TCG (already resolved).
    pub accel: Accel,
    /// Host port forwarded to the VM's SSH.
    pub ssh_port: u16,
    /// Whether the uplink may reach addresses outside the host.
    pub outbound: bool,
    /// Position of the VM in the environment (uplink MAC of VMs without an address).
    pub index: usize,
    /// Other ports of the VM forwarded from 127.0.0.1: `(host, guest)`.
    pub forwards: Vec<(u16, u16)>,
    /// The host legs the networks get when they start: `(net, leg)`.
    pub host_legs: Vec<(String, crate::provider::qemu::switch::HostLeg)>,
    /// Whether the VM starts with its CPUs paused before their first instruction (a live
    /// snapshot is loaded into it next).
    pub paused: bool,
    /// Where its memory is.
    pub memory: Memory,
    /// Whether it starts paused and waiting for the device state of a frozen VM
    /// ([`Provider::thaw`]), its memory mapped from that VM's frozen memory file.
    pub incoming: bool,
    /// A helper qemu beside the VM's own (one that copies a VM's memory into a file of its own
    /// to freeze it: [`Provider::freeze`]): its control files go to this directory, and it
    /// forwards no port.
    pub scratch: Option<PathBuf>,
    /// For a VM that goes on from a frozen state (`incoming`) and boots its kernel directly: the
    /// directory of a stub kernel and an empty initramfs, given to qemu instead of the real ones
    /// (see `provider/qemu/freeze.rs`); the VM then powers off when its guest reboots.
    pub kernel_stub: Option<PathBuf>,
}

#[cfg(test)]
impl LaunchContext {
    /// The context the tests start from: prefix `prefix`, TCG, SSH on port 2222, no forwards,
    /// legs or outbound access, ordinary memory, booting normally.
    pub(crate) fn for_test(prefix: impl Into<PathBuf>) -> Self {
        Self {
            prefix: prefix.into(),
            env_id: "0123abcd".into(),
            accel: Accel::Tcg,
            ssh_port: 2222,
            outbound: false,
            index: 0,
            forwards: Vec::new(),
            host_legs: Vec::new(),
            paused: false,
            memory: Memory::Ram,
            incoming: false,
            scratch: None,
            kernel_stub: None,
        }
    }
}

/// Where a VM's memory is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Memory {
    /// Ordinary memory of its hypervisor.
    #[default]
    Ram,
    /// A file on a tmpfs: the VM's own, mapped shared (`shared`), from which it can be frozen at
    /// any moment; or a frozen VM's, mapped privately, whose pages the VM shares with the
    /// other copies of that VM until it writes them.
    File {
        /// The file.
        path: PathBuf,
        /// Mapped shared (the VM's own file) rather than privately (a frozen one).
        shared: bool,
    },
}

/// The last `n` lines of a text file.
pub fn tail_file(path: &Path, n: usize) -> String {
    std::fs::read(path).map(|b| crate::host::process::tail(&b, n)).unwrap_or_default()
}

/// A live snapshot operation on a running VM (disks, memory and device state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotOp {
    /// Take snapshot `name`.
    Save,
    /// Go back to it: the VM continues from that running moment.
    Load,
    /// Delete it.
    Delete,
}

/// How to reach a VM's serial console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Console {
    /// A Unix socket carrying the console (qemu's chardev).
    Socket(PathBuf),
    /// A program that attaches the terminal to it (`virsh console`).
    Command(Vec<String>),
}

/// One network as a provider sees it: its record and the VMs of this provider on it.
#[derive(Debug, Clone)]
pub struct NetUse {
    /// The network's name in the environment.
    pub name: String,
    /// Its record (`virt/net-<name>`).
    pub spec: serde_json::Map<String, serde_json::Value>,
    /// The environment's VMs on it (their records).
    pub vms: Vec<VmRecord>,
}

/// What an environment needs from a VM provider (DESIGN §2). Tests drive the environment's
/// orchestration (parallel start, rollback) with fakes.
pub trait Provider: Send + Sync {
    /// Its name in init files (`local-qemu`).
    fn name(&self) -> &'static str;
    /// Brings up this provider's side of the networks its VMs use (before they start).
    fn start_nets(&self, _ctx: &LaunchContext, _nets: &[NetUse]) -> Result<(), ProviderError> {
        Ok(())
    }
    /// Takes them down (when the environment is stopped or destroyed).
    fn stop_nets(&self, _prefix: &Path, _env_id: &str, _nets: &[NetUse]) -> Result<(), ProviderError> {
        Ok(())
    }
    /// The networks among `nets` that are up on this provider's side; `None` when this provider
    /// has no view of networks (they are up when a VM on them runs).
    fn nets_up(&self, _prefix: &Path, _env_id: &str, _nets: &[NetUse]) -> Option<Vec<String>> {
        None
    }
    /// Starts the VM and returns once it runs (not yet booted).
    fn start(&self, vm: &VmRecord, ctx: &LaunchContext) -> Result<(), ProviderError>;
    /// Names of the environment's VMs (among `vms`) that run.
    fn running(&self, prefix: &Path, vms: &[VmRecord]) -> Vec<String>;
    /// The VM's state.
    fn state(&self, prefix: &Path, vm: &VmRecord) -> VmState {
        if self.running(prefix, std::slice::from_ref(vm)).contains(&vm.name) { VmState::Running } else { VmState::Down }
    }
    /// How to reach the VM over SSH (`ssh_port`: its forwarded port, for providers that forward).
    fn target(&self, prefix: &Path, vm: &VmRecord, ssh_port: Option<u16>) -> Target;
    /// One readiness check (about 400 ms): whether the VM answers a command over SSH. The SSH
    /// server's banner is awaited first on connections of `banner`'s own (see
    /// [`BannerProbe`](crate::host::ssh::BannerProbe)), which a caller that checks again and again
    /// keeps between checks.
    fn probe(&self, target: &Target, banner: &mut crate::host::ssh::BannerProbe) -> std::io::Result<bool> {
        match banner.greeted(target, std::time::Duration::from_millis(400)) {
            Some(waited) => banner.login(target, crate::host::ssh::BannerProbe::connect_timeout(waited)),
            None => Ok(false),
        }
    }
    /// One readiness check without awaiting the server's banner first (a VM a live snapshot
    /// was just loaded into, whose server most likely listens): whether `true` runs over SSH.
    fn login(&self, target: &Target, banner: &mut crate::host::ssh::BannerProbe) -> std::io::Result<bool> {
        banner.login(target, 2)
    }
    /// Powers the VM off at once and removes its runtime files.
    fn kill(&self, prefix: &Path, vm: &VmRecord);
    /// Asks the VM to power off (ACPI); returns at once.
    fn request_shutdown(&self, prefix: &Path, vm: &VmRecord) -> Result<(), ProviderError>;
    /// Whether a VM that is booting can no longer come up although its process runs: its
    /// hypervisor stopped it (a KVM internal error, a guest panic). Asked while lago waits for
    /// SSH, so such a VM fails at once instead of after `boot_time_sec`.
    fn boot_failure(&self, _prefix: &Path, _vm: &VmRecord) -> Option<BootFailure> {
        None
    }
    /// What the hypervisor of a running VM says about it (for a VM that did not boot and printed
    /// nothing): its status and its last words, in one line.
    fn hypervisor_report(&self, _prefix: &Path, _vm: &VmRecord) -> Option<String> {
        None
    }
    /// How a VM that stopped by itself ended: its exit status when known, and its last words.
    fn why_stopped(&self, _prefix: &Path, _vm: &str) -> String {
        "its process is gone".into()
    }
    /// A live snapshot operation on a running VM, over `disks` (index in the record, path, device).
    fn live_snapshot(
        &self,
        prefix: &Path,
        vm: &VmRecord,
        op: SnapshotOp,
        name: &str,
        disks: &[(usize, PathBuf, String)],
    ) -> Result<(), ProviderError>;
    /// How to attach to the VM's serial console.
    fn console(&self, prefix: &Path, vm: &VmRecord) -> Result<Console, ProviderError>;
    /// Puts in force the faults `state` holds for `net` (partitions, degraded links), on the
    /// provider's part of the network (`net.vms` are its VMs on it). Providers without a way to
    /// make them refuse a network that has any.
    fn apply_net_faults(
        &self,
        _prefix: &Path,
        net: &NetUse,
        state: &crate::prefix::state::State,
    ) -> Result<(), ProviderError> {
        let what = if state.partitions.contains_key(&net.name) {
            "Partitioning"
        } else if state.impairments.get(&net.name).is_some_and(|m| !m.is_empty()) {
            "Degrading a link"
        } else {
            return Ok(());
        };
        Err(ProviderError::NetUnsupported {
            net: net.name.clone(),
            what: what.into(),
            provider: self.name(),
            hint: "partitions and degraded links are made by lago's own switch, for local-qemu VMs; cut and restore links work for every provider".into(),
        })
    }
    /// Sets the carrier of the VM's `nic`-th NIC (index in its `nics`), as a cable plugged in
    /// or pulled out: the guest sees the link go up or down.
    fn set_link(&self, prefix: &Path, vm: &VmRecord, nic: usize, up: bool) -> Result<(), ProviderError>;
    /// Adds (`add`) or removes the forward of `127.0.0.1:host` to the running VM's TCP port
    /// `guest`.
    fn set_forward(
        &self,
        _prefix: &Path,
        vm: &VmRecord,
        _host: u16,
        _guest: u16,
        _add: bool,
    ) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported {
            vm: vm.name.clone(),
            what: "forwarding a port (lago forwards the ports of local-qemu and local-libvirt VMs)".into(),
            provider: self.name(),
        })
    }
    /// Runs a qemu-guest-agent command (`{"execute": ...}`) in the VM and returns its `return`;
    /// an agent that does not answer within `timeout` is an error.
    fn guest_agent(
        &self,
        prefix: &Path,
        vm: &VmRecord,
        command: &serde_json::Value,
        timeout: std::time::Duration,
    ) -> Result<serde_json::Value, ProviderError>;
    /// Pauses the VM's CPUs (its clock stops with them).
    /// The CPU model and vendor (`GenuineIntel`...) a running VM has, as its hypervisor says;
    /// `None` when it cannot say.
    fn cpu(&self, _prefix: &Path, _vm: &VmRecord) -> Option<(String, String)> {
        None
    }
    fn pause(&self, prefix: &Path, vm: &VmRecord) -> Result<(), ProviderError>;
    /// Deletes what the provider keeps of the environment beyond its VMs' runs (an OpenStack
    /// cloud's servers, ports, networks, snapshot images), when it is destroyed.
    fn remove_all(&self, _prefix: &Path) -> Result<(), ProviderError> {
        Ok(())
    }
    /// Resumes a paused VM.
    fn resume(&self, prefix: &Path, vm: &VmRecord) -> Result<(), ProviderError>;
    /// Saves the device state of a paused VM to `state`; its memory is its own memory file
    /// ([`Memory::File`], shared): the file and `state` then hold the VM as it is, and copies
    /// start from them ([`Provider::thaw`]). The memory of a VM that maps a frozen VM's file
    /// privately (a copy) is first moved, with its device state, into a helper started with
    /// `helper` (its memory a new file of its own, shared), which is frozen instead. The VM
    /// stays paused.
    fn freeze(
        &self,
        _prefix: &Path,
        vm: &VmRecord,
        _state: &Path,
        _helper: Option<&LaunchContext>,
    ) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported {
            vm: vm.name.clone(),
            what: "freezing it (`lago fork` copies local-qemu VMs)".into(),
            provider: self.name(),
        })
    }
    /// Loads the device state `state` of a frozen VM into a VM started with
    /// [`LaunchContext::incoming`], its memory mapped from the frozen memory file; the VM stays
    /// paused until [`Provider::resume`].
    fn thaw(&self, _prefix: &Path, vm: &VmRecord, _state: &Path) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported {
            vm: vm.name.clone(),
            what: "starting it from a frozen state (`lago fork` copies local-qemu VMs)".into(),
            provider: self.name(),
        })
    }
}

/// A libvirt host's provider, or why it could not be reached (what, libvirt's message).
type Connection = Result<Arc<dyn Provider>, (String, String)>;

/// The OpenStack cloud's provider, or why it could not be reached.
type CloudConnection = Result<Arc<dyn Provider>, Arc<openstack::OpenstackError>>;

/// The providers of one environment, one per kind (and per libvirt host), made when first
/// needed: an environment with no libvirt VM never connects to libvirt.
pub struct Providers {
    qemu: Arc<dyn Provider>,
    ssh: Arc<dyn Provider>,
    /// Each libvirt host once, connected or not (a host that does not answer is asked once).
    libvirt: std::sync::Mutex<std::collections::HashMap<String, Connection>>,
    /// How libvirt hosts are reached.
    pub libvirt_options: LibvirtOptions,
    /// The OpenStack cloud, connected on first use (or why it could not be).
    openstack: std::sync::Mutex<Option<CloudConnection>>,
    /// How the OpenStack cloud is reached (`[openstack]`).
    pub openstack_options: crate::config::openstack::OpenstackOptions,
}

impl Providers {
    /// The real providers, with `qemu` for `local-qemu` VMs (a fake in tests).
    pub fn new(qemu: Arc<dyn Provider>, libvirt_options: LibvirtOptions) -> Self {
        Self {
            qemu,
            ssh: Arc::new(ssh::SshProvider),
            libvirt: std::sync::Mutex::new(std::collections::HashMap::new()),
            libvirt_options,
            openstack: std::sync::Mutex::new(None),
            openstack_options: Default::default(),
        }
    }

    /// The provider of `local-qemu` VMs.
    pub fn qemu(&self) -> Arc<dyn Provider> {
        self.qemu.clone()
    }

    /// The libvirt host of `vm`: its own `libvirt_url`, else the default.
    pub fn libvirt_url_of(&self, vm: &VmRecord) -> String {
        vm.libvirt_url.clone().unwrap_or_else(|| self.libvirt_options.url.clone())
    }

    /// The provider of `vm`.
    pub fn of(&self, vm: &VmRecord) -> Result<Arc<dyn Provider>, ProviderError> {
        match vm.provider() {
            "ssh" => Ok(self.ssh.clone()),
            "local-libvirt" => self.libvirt(&self.libvirt_url_of(vm), vm),
            "openstack" => self.openstack(),
            _ => Ok(self.qemu.clone()),
        }
    }

    /// The OpenStack cloud's provider (authenticated on first use; a failure is kept, so the
    /// cloud is asked once).
    fn openstack(&self) -> Result<Arc<dyn Provider>, ProviderError> {
        let mut slot = self.openstack.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = slot.get_or_insert_with(|| {
            openstack::OpenstackProvider::connect(&self.openstack_options)
                .map(|p| Arc::new(p) as Arc<dyn Provider>)
                .map_err(Arc::new)
        });
        entry.clone().map_err(ProviderError::Openstack)
    }

    /// The libvirt provider of host `url` (connected on first use).
    #[cfg(feature = "libvirt")]
    fn libvirt(&self, url: &str, _vm: &VmRecord) -> Result<Arc<dyn Provider>, ProviderError> {
        let mut map = self.libvirt.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = map.entry(url.to_owned()).or_insert_with(|| {
            match libvirt::LibvirtProvider::connect(url, &self.libvirt_options) {
                Ok(p) => Ok(Arc::new(p) as Arc<dyn Provider>),
                Err(ProviderError::Libvirt { what, message, .. }) => Err((what, message)),
                Err(other) => Err(("Cannot connect".into(), other.to_string())),
            }
        });
        match entry {
            Ok(p) => Ok(p.clone()),
            Err((what, message)) => {
                Err(ProviderError::Libvirt { what: what.clone(), url: url.to_owned(), message: message.clone() })
            }
        }
    }

    #[cfg(not(feature = "libvirt"))]
    fn libvirt(&self, _url: &str, vm: &VmRecord) -> Result<Arc<dyn Provider>, ProviderError> {
        let _ = &self.libvirt;
        Err(ProviderError::Unsupported {
            vm: vm.name.clone(),
            what: "running it (this lago was built without the `libvirt` feature)".into(),
            provider: "local-libvirt",
        })
    }

    /// The providers `vms` need, each with its VMs (in order); a provider that cannot be
    /// reached is an error naming it.
    pub fn group<'a>(&self, vms: &[&'a VmRecord]) -> Result<Vec<Group<'a>>, ProviderError> {
        let mut groups: Vec<Group<'a>> = Vec::new();
        for vm in vms {
            let p = self.of(vm)?;
            match groups.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &p)) {
                Some((_, list)) => list.push(vm),
                None => groups.push((p, vec![vm])),
            }
        }
        Ok(groups)
    }
}

/// A provider and the VMs it runs.
pub type Group<'a> = (Arc<dyn Provider>, Vec<&'a VmRecord>);

/// A free TCP port on 127.0.0.1 (for the SSH forward and the VMs' other forwards).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Whether 127.0.0.1:`port` can be bound now (a forward's fixed host port).
pub fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A helper process of lago (`lago __switch ARGS`, or the Python SDK's `python -m lago._switch
/// ARGS`): a network's switch, or the relay of a forwarded port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Helper {
    /// `--config FILE --pidfile FILE`: [`qemu::switch::serve`].
    Switch {
        /// Its configuration.
        config: PathBuf,
        /// Its pid file.
        pid_file: PathBuf,
    },
    /// `--forward 127.0.0.1:PORT --to ADDRESS:PORT --pidfile FILE`: [`forwarder::serve`].
    Forward {
        /// Where it listens.
        listen: std::net::SocketAddr,
        /// Where it connects.
        to: std::net::SocketAddr,
        /// Its pid file.
        pid_file: PathBuf,
    },
}

/// Why a helper process ended in failure.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// The switch failed.
    #[error(transparent)]
    Switch(#[from] qemu::switch::SwitchError),
    /// The relay could not listen.
    #[error("Cannot forward {listen} to {to}")]
    Forward {
        /// Where it was to listen.
        listen: std::net::SocketAddr,
        /// Where it was to connect.
        to: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl Helper {
    /// The helper `args` (after the program and its `__switch`) describe.
    pub fn parse<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Option<Self> {
        let value = |flag: &str| {
            args.iter().position(|a| a.as_ref() == flag).and_then(|i| args.get(i + 1)).map(|v| v.as_ref().to_owned())
        };
        let pid_file = PathBuf::from(value("--pidfile")?);
        match (value("--config"), value("--forward"), value("--to")) {
            (Some(config), None, None) => Some(Self::Switch { config: config.into(), pid_file }),
            (None, Some(listen), Some(to)) => {
                Some(Self::Forward { listen: listen.to_str()?.parse().ok()?, to: to.to_str()?.parse().ok()?, pid_file })
            }
            _ => None,
        }
    }

    /// How it is called.
    pub const USAGE: &'static str =
        "--config FILE --pidfile FILE | --forward 127.0.0.1:PORT --to ADDRESS:PORT --pidfile FILE (lago starts it)";

    /// Runs it until it ends.
    pub fn run(&self) -> Result<(), HelperError> {
        match self {
            Self::Switch { config, pid_file } => Ok(qemu::switch::serve(config, pid_file)?),
            Self::Forward { listen, to, pid_file } => forwarder::serve(*listen, *to, pid_file)
                .map_err(|source| HelperError::Forward { listen: *listen, to: *to, source }),
        }
    }
}
