//! The `local-libvirt` provider: VMs as domains and networks as libvirt networks of a libvirt
//! daemon, through libvirt's C API (the `virt` crate), on the default host (`[lago]
//! libvirt_url`) or on the host a VM names (`libvirt_url`), local or remote (`qemu+ssh://`,
//! `qemu+tcp://`).
//!
//! As the original (reference §6): domains are transient and named `<uuid8>-<vm>`; networks are
//! named `<uuid4>-<net>`, with a bridge `<name>-nic`; a VM's NICs carry the plan's MACs, its
//! serial console is logged to `logs/<vm>.console.log`, its guest agent has a channel.
//! Snapshots are libvirt's internal snapshots with memory; their definitions are kept in
//! `virt/snapshots/<vm>/<name>.xml`, and the domain has a stable UUID, so a VM restarted later
//! can still be reverted (the definition is given back to libvirt first).

pub mod xml;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;
use virt::connect::{Connect, ConnectAuth, ConnectCredential};
use virt::domain::Domain;
use virt::domain_snapshot::DomainSnapshot;
use virt::network::Network;

use super::{Console, LaunchContext, LibvirtOptions, NetUse, Provider, ProviderError, SnapshotOp, VmRecord};
use crate::host::ssh::Target;

/// Credentials for hosts that ask (libvirt's callback takes no closure).
static CREDENTIALS: Mutex<(Option<String>, Option<String>)> = Mutex::new((None, None));

#[allow(clippy::ptr_arg)] // the signature of the `virt` crate's callback
fn answer_credentials(creds: &mut Vec<ConnectCredential>) {
    let (user, pass) = CREDENTIALS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    for c in creds.iter_mut() {
        c.result = match c.typed as u32 {
            virt::sys::VIR_CRED_AUTHNAME => user.clone(),
            virt::sys::VIR_CRED_PASSPHRASE => pass.clone(),
            _ => None,
        };
    }
}

/// One libvirt host.
pub struct LibvirtProvider {
    url: String,
    conn: Connect,
}

impl Drop for LibvirtProvider {
    fn drop(&mut self) {
        let _ = self.conn.close();
    }
}

/// The first 8 characters of the uuid of the prefix at `prefix`.
fn env_id_of(prefix: &Path) -> String {
    std::fs::read_to_string(crate::prefix::Layout::new(prefix).uuid())
        .unwrap_or_default()
        .trim()
        .chars()
        .take(8)
        .collect()
}

/// A stable UUID for a VM's domain (from the environment's uuid and the VM's name), so that
/// snapshot definitions stay valid when the domain is created again.
pub fn domain_uuid(prefix: &Path, vm: &str) -> String {
    use sha1::Digest;
    let env = std::fs::read_to_string(crate::prefix::Layout::new(prefix).uuid()).unwrap_or_default();
    let h = sha1::Sha1::digest(format!("lago:{}:{vm}", env.trim()).as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// `libvirt <version> (<hypervisor> <version>) at <url>` of the host at `url`, as the default
/// options reach it.
pub fn version(url: &str) -> Result<String, ProviderError> {
    let p = LibvirtProvider::connect(url, &LibvirtOptions { url: url.to_owned(), ..LibvirtOptions::default() })?;
    let dotted = |v: u32| format!("{}.{}.{}", v / 1_000_000, (v / 1000) % 1000, v % 1000);
    let lib = p.conn.get_lib_version().map_err(|e| p.err("Cannot read its version", &e))?;
    let hv = p.conn.get_hyp_version().map(dotted).unwrap_or_else(|_| "?".into());
    let kind = p.conn.get_type().unwrap_or_else(|_| "?".into());
    Ok(format!("libvirt {} ({kind} {hv}) at {url}", dotted(lib)))
}

impl LibvirtProvider {
    /// Connects to the host at `url` (with the configured credentials when it asks for them).
    pub fn connect(url: &str, opts: &LibvirtOptions) -> Result<Self, ProviderError> {
        // libvirt's default error handler prints every error on stdout.
        virt::error::clear_error_callback();
        let conn = if opts.username.is_some() || opts.password.is_some() {
            *CREDENTIALS.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                (opts.username.clone(), opts.password.clone());
            let mut auth = ConnectAuth::new(
                vec![virt::sys::VIR_CRED_AUTHNAME, virt::sys::VIR_CRED_PASSPHRASE],
                answer_credentials,
            );
            Connect::open_auth(Some(url), &mut auth, 0)
        } else {
            Connect::open(Some(url))
        };
        let conn = conn.map_err(|e| ProviderError::Libvirt {
            what: "Cannot connect".into(),
            url: url.to_owned(),
            message: e.message().to_owned(),
        })?;
        Ok(Self { url: url.to_owned(), conn })
    }

    fn err(&self, what: impl Into<String>, e: &virt::error::Error) -> ProviderError {
        let mut message = e.message().to_owned();
        if message.contains("Permission denied") || message.contains("Cannot access storage file") {
            message.push_str(
                "; libvirt's qemu user must reach the VM's disks: give every directory above the prefix's images `o+x` (`chmod o+x DIR`), or run the daemon's VMs as another user (`user` in qemu.conf)",
            );
        }
        ProviderError::Libvirt { what: what.into(), url: self.url.clone(), message }
    }

    fn domain(&self, prefix: &Path, vm: &str) -> Option<Domain> {
        Domain::lookup_by_name(&self.conn, &xml::domain_name(&env_id_of(prefix), vm)).ok()
    }

    fn active(&self, prefix: &Path, vm: &str) -> Option<Domain> {
        self.domain(prefix, vm).filter(|d| d.is_active().unwrap_or(false))
    }

    fn running_domain(&self, prefix: &Path, vm: &VmRecord) -> Result<Domain, ProviderError> {
        self.active(prefix, &vm.name).ok_or_else(|| ProviderError::Libvirt {
            what: format!("VM {}", vm.name),
            url: self.url.clone(),
            message: "its domain is not running".into(),
        })
    }

    fn snapshot_file(prefix: &Path, vm: &str, name: &str) -> PathBuf {
        crate::prefix::Layout::new(prefix).libvirt_snapshot(vm, name)
    }

    /// The snapshot `name` of a running domain, its definition given back to libvirt from
    /// `virt/snapshots/` when the domain was created after it.
    fn snapshot_of(
        &self,
        prefix: &Path,
        vm: &VmRecord,
        dom: &Domain,
        name: &str,
    ) -> Result<DomainSnapshot, ProviderError> {
        if let Ok(s) = DomainSnapshot::lookup_by_name(dom, name, 0) {
            return Ok(s);
        }
        let file = Self::snapshot_file(prefix, &vm.name, name);
        let definition = std::fs::read_to_string(&file).map_err(|e| ProviderError::Libvirt {
            what: format!("Snapshot {name} of VM {}", vm.name),
            url: self.url.clone(),
            message: format!("its definition {} cannot be read: {e}", file.display()),
        })?;
        DomainSnapshot::create_xml(dom, &definition, virt::sys::VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE)
            .map_err(|e| self.err(format!("Cannot restore the definition of snapshot {name} of VM {}", vm.name), &e))
    }

    fn network(&self, env_id: &str, net: &str) -> Option<Network> {
        Network::lookup_by_name(&self.conn, &xml::network_name(env_id, net)).ok()
    }

    /// Whether a bridge exists on this host (for `bridge` nets on a bridge the hosts share).
    fn has_bridge(&self, bridge: &str) -> Result<bool, ProviderError> {
        let names = self.conn.list_interfaces().map_err(|e| self.err("Cannot list interfaces", &e))?;
        Ok(names.iter().any(|n| n == bridge))
    }
}

impl Provider for LibvirtProvider {
    fn name(&self) -> &'static str {
        "local-libvirt"
    }

    fn start_nets(&self, ctx: &LaunchContext, nets: &[NetUse]) -> Result<(), ProviderError> {
        let xml_ctx = xml::NetContext { env_id: &ctx.env_id, outbound: ctx.outbound };
        for net in nets {
            if self.network(&ctx.env_id, &net.name).is_some_and(|n| n.is_active().unwrap_or(false)) {
                continue;
            }
            if let Some(bridge) = net.spec.get("bridge").and_then(Value::as_str)
                && !self.has_bridge(bridge)?
            {
                return Err(ProviderError::Libvirt {
                    what: format!("Network {}", net.name),
                    url: self.url.clone(),
                    message: format!(
                        "this host has no bridge {bridge} (the net's `bridge`): create it on every host first"
                    ),
                });
            }
            let definition = xml::network_xml(net, &xml_ctx);
            tracing::debug!(url = %self.url, "network XML:\n{definition}");
            Network::create_xml(&self.conn, &definition)
                .map_err(|e| self.err(format!("Cannot create network {}", net.name), &e))?;
        }
        Ok(())
    }

    fn stop_nets(&self, _prefix: &Path, env_id: &str, nets: &[NetUse]) -> Result<(), ProviderError> {
        for net in nets {
            if let Some(n) = self.network(env_id, &net.name).filter(|n| n.is_active().unwrap_or(false)) {
                n.destroy().map_err(|e| self.err(format!("Cannot stop network {}", net.name), &e))?;
            }
        }
        Ok(())
    }

    fn nets_up(&self, _prefix: &Path, env_id: &str, nets: &[NetUse]) -> Option<Vec<String>> {
        Some(
            nets.iter()
                .filter(|n| self.network(env_id, &n.name).is_some_and(|x| x.is_active().unwrap_or(false)))
                .map(|n| n.name.clone())
                .collect(),
        )
    }

    fn start(&self, vm: &VmRecord, ctx: &LaunchContext) -> Result<(), ProviderError> {
        let spec = crate::prefix::read_document(&crate::prefix::Layout::new(&ctx.prefix).vm_record(&vm.name))
            .unwrap_or_default();
        let dctx = xml::DomainContext {
            prefix: &ctx.prefix,
            env_id: &ctx.env_id,
            accel: ctx.accel,
            seed: crate::prefix::Layout::new(&ctx.prefix).seed(&vm.name).is_file(),
        };
        let mut definition = xml::domain_xml(vm, &spec, &dctx);
        let uuid = domain_uuid(&ctx.prefix, &vm.name);
        definition = definition.replacen("</name>\n", &format!("</name>\n  <uuid>{uuid}</uuid>\n"), 1);
        tracing::debug!(url = %self.url, vm = %vm.name, "domain XML:\n{definition}");
        // A domain of that name left from before (a crashed start) would make creation fail.
        if let Some(old) = self.domain(&ctx.prefix, &vm.name) {
            let _ = old.destroy();
        }
        let flags = if ctx.paused { virt::sys::VIR_DOMAIN_START_PAUSED } else { 0 };
        Domain::create_xml(&self.conn, &definition, flags)
            .map_err(|e| self.err(format!("Cannot start VM {}", vm.name), &e))?;
        Ok(())
    }

    fn running(&self, prefix: &Path, vms: &[VmRecord]) -> Vec<String> {
        let env_id = env_id_of(prefix);
        let active: Vec<String> = self
            .conn
            .list_all_domains(virt::sys::VIR_CONNECT_LIST_DOMAINS_ACTIVE)
            .map(|doms| doms.iter().filter_map(|d| d.get_name().ok()).collect())
            .unwrap_or_default();
        vms.iter().filter(|v| active.contains(&xml::domain_name(&env_id, &v.name))).map(|v| v.name.clone()).collect()
    }

    fn state(&self, prefix: &Path, vm: &VmRecord) -> super::VmState {
        use super::VmState;
        let Some(dom) = self.domain(prefix, &vm.name) else { return VmState::Down };
        match dom.get_state() {
            Ok((state, _)) => match state {
                virt::sys::VIR_DOMAIN_RUNNING => VmState::Running,
                virt::sys::VIR_DOMAIN_PAUSED => VmState::Paused,
                virt::sys::VIR_DOMAIN_BLOCKED => VmState::Other("blocked".into()),
                virt::sys::VIR_DOMAIN_SHUTDOWN => VmState::Other("begin shut down".into()),
                virt::sys::VIR_DOMAIN_SHUTOFF => VmState::Other("shut off".into()),
                virt::sys::VIR_DOMAIN_CRASHED => VmState::Other("crashed".into()),
                virt::sys::VIR_DOMAIN_PMSUSPENDED => VmState::Other("suspended".into()),
                virt::sys::VIR_DOMAIN_NOSTATE => VmState::Other("no state".into()),
                _ => VmState::Other("unknown state".into()),
            },
            Err(_) => VmState::Other("failed to get state".into()),
        }
    }

    /// A domain that libvirt shows paused or crashed while it boots (lago pauses none then):
    /// qemu stopped it (a KVM internal error leaves it paused for an unknown reason, an I/O
    /// error or a panic for theirs).
    fn boot_failure(&self, prefix: &Path, vm: &VmRecord) -> Option<super::BootFailure> {
        use virt::sys as v;
        let dom = self.domain(prefix, &vm.name)?;
        let (state, reason) = dom.get_state().ok()?;
        let (status, kvm) = match (state, reason as u32) {
            (v::VIR_DOMAIN_CRASHED, r) if r == v::VIR_DOMAIN_CRASHED_PANICKED => ("crashed (guest panicked)", false),
            (v::VIR_DOMAIN_CRASHED, _) => ("crashed", false),
            (v::VIR_DOMAIN_PAUSED, r) if r == v::VIR_DOMAIN_PAUSED_UNKNOWN => {
                ("paused (unknown reason: qemu stops a guest so on a KVM internal error)", true)
            }
            (v::VIR_DOMAIN_PAUSED, r) if r == v::VIR_DOMAIN_PAUSED_IOERROR => ("paused (I/O error)", false),
            (v::VIR_DOMAIN_PAUSED, r) if r == v::VIR_DOMAIN_PAUSED_CRASHED => ("paused (guest crashed)", false),
            (v::VIR_DOMAIN_PAUSED, r) if r == v::VIR_DOMAIN_PAUSED_WATCHDOG => ("paused (watchdog)", false),
            _ => return None,
        };
        let name = xml::domain_name(&env_id_of(prefix), &vm.name);
        let words = vec![format!("libvirt's log of it: /var/log/libvirt/qemu/{name}.log on {}", self.url)];
        Some(super::BootFailure { status: status.into(), words, kvm })
    }

    /// The VM at its management address, port 22, with the environment's key.
    fn target(&self, prefix: &Path, vm: &VmRecord, _ssh_port: Option<u16>) -> Target {
        let host = vm.ip().map(|ip| ip.to_string()).unwrap_or_else(|| vm.name.clone());
        let mut target = crate::prefix::Layout::new(prefix).ssh_target(&vm.name, &vm.ssh_user, &host, 22);
        target.password = vm.password();
        target
    }

    /// `virDomainDestroy`. libvirt then takes about 1.5 s to tear the domain down after its qemu
    /// has exited (measured: qemu is gone 40 ms after a QMP `quit`, the domain 1.6 s later), so
    /// `stop` destroys the VMs in parallel.
    fn kill(&self, prefix: &Path, vm: &VmRecord) {
        if let Some(dom) = self.domain(prefix, &vm.name) {
            let _ = dom.destroy();
        }
        self.target(prefix, vm, None).close();
        crate::provider::forwarder::stop_all(prefix, &vm.name);
    }

    /// A relay process from `127.0.0.1:host` to the VM's address (`forwarder.rs`): the host
    /// reaches it on the VM's network, where libvirt gives the host the gateway.
    fn set_forward(&self, prefix: &Path, vm: &VmRecord, host: u16, guest: u16, add: bool) -> Result<(), ProviderError> {
        if !add {
            crate::provider::forwarder::stop(prefix, &vm.name, host);
            return Ok(());
        }
        let Some(ip) = vm.ip() else {
            return Err(ProviderError::Forward {
                vm: vm.name.clone(),
                host,
                guest,
                message: "it has no address on its management network".into(),
            });
        };
        crate::provider::forwarder::start(prefix, &vm.name, host, std::net::SocketAddr::from((ip, guest)))
    }

    fn request_shutdown(&self, prefix: &Path, vm: &VmRecord) -> Result<(), ProviderError> {
        let dom = self.running_domain(prefix, vm)?;
        dom.shutdown().map_err(|e| self.err(format!("Cannot shut VM {} down", vm.name), &e))?;
        Ok(())
    }

    fn why_stopped(&self, prefix: &Path, vm: &str) -> String {
        let name = xml::domain_name(&env_id_of(prefix), vm);
        format!(
            "its domain {name} is no longer running (libvirt's log of it: /var/log/libvirt/qemu/{name}.log on {})",
            self.url
        )
    }

    fn live_snapshot(
        &self,
        prefix: &Path,
        vm: &VmRecord,
        op: SnapshotOp,
        name: &str,
        disks: &[(usize, PathBuf, String)],
    ) -> Result<(), ProviderError> {
        let dom = self.running_domain(prefix, vm)?;
        let file = Self::snapshot_file(prefix, &vm.name, name);
        match op {
            SnapshotOp::Save => {
                let devices: Vec<String> = disks.iter().map(|(_, _, dev)| dev.clone()).collect();
                let snap = DomainSnapshot::create_xml(&dom, &xml::snapshot_xml(name, &devices), 0)
                    .map_err(|e| self.err(format!("Cannot snapshot VM {}", vm.name), &e))?;
                let definition =
                    snap.get_xml_desc(0).map_err(|e| self.err("Cannot read a snapshot's definition", &e))?;
                if let Some(dir) = file.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| self.err_io(&file, &e))?;
                }
                crate::host::pathio::write_atomic(&file, definition.as_bytes())
                    .map_err(|e| self.err_io(&file, &e.source))?;
            }
            SnapshotOp::Load => {
                let snap = self.snapshot_of(prefix, vm, &dom, name)?;
                snap.revert(0).map_err(|e| self.err(format!("Cannot revert VM {} to snapshot {name}", vm.name), &e))?;
            }
            SnapshotOp::Delete => {
                let snap = self.snapshot_of(prefix, vm, &dom, name)?;
                snap.delete(0).map_err(|e| self.err(format!("Cannot delete snapshot {name} of VM {}", vm.name), &e))?;
                let _ = std::fs::remove_file(&file);
            }
        }
        Ok(())
    }

    fn console(&self, prefix: &Path, vm: &VmRecord) -> Result<Console, ProviderError> {
        Ok(Console::Command(vec![
            "virsh".into(),
            "-c".into(),
            self.url.clone(),
            "console".into(),
            xml::domain_name(&env_id_of(prefix), &vm.name),
        ]))
    }

    /// The interface's link state, changed live (libvirt finds the interface by its MAC).
    fn set_link(&self, prefix: &Path, vm: &VmRecord, nic: usize, up: bool) -> Result<(), ProviderError> {
        let dom = self.running_domain(prefix, vm)?;
        let live =
            dom.get_xml_desc(0).map_err(|e| self.err(format!("Cannot read the definition of VM {}", vm.name), &e))?;
        let interface = xml::interfaces(&live).into_iter().nth(nic).ok_or_else(|| ProviderError::Libvirt {
            what: format!("VM {}", vm.name),
            url: self.url.clone(),
            message: format!("its domain has no NIC #{nic}"),
        })?;
        let state = if up { "up" } else { "down" };
        let update = xml::with_link_state(&interface, state);
        dom.update_device_flags(&update, virt::sys::VIR_DOMAIN_AFFECT_LIVE)
            .map_err(|e| self.err(format!("Cannot set the link of NIC #{nic} of VM {} {state}", vm.name), &e))?;
        Ok(())
    }

    fn pause(&self, prefix: &Path, vm: &VmRecord) -> Result<(), ProviderError> {
        let dom = self.running_domain(prefix, vm)?;
        dom.suspend().map_err(|e| self.err(format!("Cannot pause VM {}", vm.name), &e))?;
        Ok(())
    }

    fn resume(&self, prefix: &Path, vm: &VmRecord) -> Result<(), ProviderError> {
        let dom = self.running_domain(prefix, vm)?;
        if matches!(dom.get_state(), Ok((virt::sys::VIR_DOMAIN_RUNNING, _))) {
            return Ok(());
        }
        dom.resume().map_err(|e| self.err(format!("Cannot resume VM {}", vm.name), &e))?;
        Ok(())
    }

    fn guest_agent(
        &self,
        prefix: &Path,
        vm: &VmRecord,
        command: &Value,
        timeout: std::time::Duration,
    ) -> Result<Value, ProviderError> {
        let dom = self.running_domain(prefix, vm)?;
        let secs = i32::try_from(timeout.as_secs().max(1)).unwrap_or(i32::MAX);
        let reply = dom
            .qemu_agent_command(&command.to_string(), secs, 0)
            .map_err(|e| self.err(format!("Guest agent of VM {}", vm.name), &e))?;
        let v: Value = serde_json::from_str(&reply).unwrap_or(Value::String(reply));
        Ok(v.get("return").cloned().unwrap_or(v))
    }
}

impl LibvirtProvider {
    fn err_io(&self, path: &Path, e: &std::io::Error) -> ProviderError {
        ProviderError::Libvirt {
            what: format!("Cannot write {}", path.display()),
            url: self.url.clone(),
            message: e.to_string(),
        }
    }
}
