//! Spec → Plan: every default filled in, every address, MAC, name and file decided.
//!
//! This is the expansion of the original's `_config_net_topology` (reference §3.6) and
//! `_normalize_spec` (§3.7), done as a pure, deterministic function: the same spec and defaults
//! always give the same plan, and nothing on the host is touched. The cross-checks that need the
//! expanded networks (management rules, unknown networks, duplicate or out-of-subnet addresses)
//! are reported here, all at once, as [`Issue`]s.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde_json::{Map, Value, json};

use crate::spec::{DiskSpec, DiskType, DomainSpec, Issue, NetType, Spec};

/// VM providers this build can run.
#[cfg(feature = "libvirt")]
pub const VM_PROVIDERS: &[&str] = &["local-qemu", "local-libvirt", "ssh"];
/// VM providers this build can run.
#[cfg(not(feature = "libvirt"))]
pub const VM_PROVIDERS: &[&str] = &["local-qemu", "ssh"];
/// VM types this build knows.
pub const VM_TYPES: &[&str] = &["default"];
/// The third octets the original leased subnets from (192.168.200.0/24 – 192.168.255.0/24).
pub const SUBNET_OCTETS: std::ops::RangeInclusive<u8> = 200..=255;
use crate::spec::model::{DEFAULT_MEMORY, DEFAULT_VCPU};
/// Default time a VM may take to answer SSH (the original's `boot_time_sec`).
pub const DEFAULT_BOOT_TIME_SEC: u64 = 600;
/// Default MTU.
pub const DEFAULT_MTU: u32 = 1500;

/// Name of the uplink NIC inside guests (the NIC that carries SSH from the host and outbound
/// access of `local-qemu` VMs).
pub const UPLINK_NAME: &str = "lago-uplink";

/// The uplink MAC of a VM: `52:54` followed by its management address (the NICs on lago's networks use
/// `54:52`), or by its position in the environment when it has no address.
pub fn uplink_mac(mgmt_ip: Option<Ipv4Addr>, index: usize) -> String {
    match mgmt_ip {
        Some(ip) => {
            let o = ip.octets();
            format!("52:54:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
        }
        None => format!("52:54:00:00:{:02x}:{:02x}", (index >> 8) & 0xff, index & 0xff),
    }
}

/// Values that come from the configuration rather than the init file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanDefaults {
    /// `ssh_user`.
    pub ssh_user: String,
    /// `ssh_password`.
    pub ssh_password: String,
    /// `root_password`, when configured.
    pub root_password: Option<String>,
    /// `default_vm_type`.
    pub vm_type: String,
    /// `default_vm_provider`.
    pub vm_provider: String,
    /// `libvirt_url`: the host of `local-libvirt` VMs that name none.
    pub libvirt_url: String,
}

impl Default for PlanDefaults {
    fn default() -> Self {
        Self {
            ssh_user: "root".into(),
            ssh_password: "123456".into(),
            root_password: None,
            vm_type: "default".into(),
            vm_provider: "local-qemu".into(),
            libvirt_url: "qemu:///system".into(),
        }
    }
}

impl PlanDefaults {
    /// The defaults `config` gives.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let d = Self::default();
        Self {
            ssh_user: config.lago("ssh_user").map_or(d.ssh_user, str::to_owned),
            ssh_password: config.lago("ssh_password").map_or(d.ssh_password, str::to_owned),
            root_password: config.lago("default_root_password").or(config.lago("root_password")).map(str::to_owned),
            vm_type: config.lago("default_vm_type").map_or(d.vm_type, str::to_owned),
            vm_provider: config.lago("default_vm_provider").map_or(d.vm_provider, str::to_owned),
            libvirt_url: config.libvirt_options().url,
        }
    }
}

/// The expanded environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Networks in file order.
    pub nets: Vec<NetPlan>,
    /// VMs in file order.
    pub vms: Vec<VmPlan>,
}

/// One expanded network.
#[derive(Debug, Clone, PartialEq)]
pub struct NetPlan {
    /// Name.
    pub name: String,
    /// Type.
    pub kind: NetType,
    /// Whether this is a management network.
    pub management: bool,
    /// DNS domain (management networks).
    pub dns_domain_name: Option<String>,
    /// DNS records: every name of every net (management networks), plus user records.
    pub dns_records: Vec<(String, Ipv4Addr)>,
    /// DNS forwarder (non-management networks).
    pub dns_forward: Option<Ipv4Addr>,
    /// `main_dns` as given.
    pub main_dns: Option<String>,
    /// Gateway; its /24 is the network's subnet. `None` for bridge networks.
    pub gw: Option<Ipv4Addr>,
    /// DHCP range as given.
    pub dhcp: Option<(u8, u8)>,
    /// MTU.
    pub mtu: u32,
    /// Names → addresses on this network (`vm`, `vm-eth0`, `vm-net`, `vm-net-0`).
    pub mapping: Vec<(String, Ipv4Addr)>,
    /// The host bridge a `bridge` network joins (libvirt hosts).
    pub bridge: Option<String>,
}

impl NetPlan {
    /// The address of `name` on this network.
    pub fn resolve(&self, name: &str) -> Option<Ipv4Addr> {
        self.mapping.iter().find(|(n, _)| n == name).map(|(_, ip)| *ip)
    }
}

/// One expanded NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicPlan {
    /// Network name.
    pub net: String,
    /// Address (nat networks).
    pub ip: Option<Ipv4Addr>,
    /// MAC address `54:52:<ip bytes>` (when the NIC has an address).
    pub mac: Option<String>,
    /// MTU when it differs from 1500.
    pub mtu: Option<u32>,
}

/// One expanded disk.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskPlan {
    /// The disk as written.
    pub spec: DiskSpec,
    /// Image format.
    pub format: String,
    /// Where the image lives: `$LAGO_PREFIX_PATH/images/<vm>_<disk>.<format>` for images lago
    /// creates, else the given path (not yet expanded).
    pub path: String,
    /// Metadata: the init file's, completed with the template's at init.
    pub metadata: Map<String, Value>,
    /// Resolved template version (filled in at init).
    pub template_version: Option<String>,
}

/// One expanded VM.
#[derive(Debug, Clone, PartialEq)]
pub struct VmPlan {
    /// The VM as written.
    pub spec: DomainSpec,
    /// Name.
    pub name: String,
    /// Memory, MiB.
    pub memory: u64,
    /// Virtual CPUs.
    pub vcpu: u32,
    /// NICs in order.
    pub nics: Vec<NicPlan>,
    /// Disks in order.
    pub disks: Vec<DiskPlan>,
    /// The management network.
    pub mgmt_net: String,
    /// `vm-type`.
    pub vm_type: String,
    /// `vm-provider`.
    pub vm_provider: String,
    /// `ssh-user`.
    pub ssh_user: String,
    /// Password for SSH: `root-password` when given, else `ssh-password`.
    pub ssh_password: String,
    /// Whether a bootstrap seed is written.
    pub bootstrap: bool,
    /// Seconds to wait for SSH at start.
    pub boot_time_sec: u64,
    /// The libvirt host of a `local-libvirt` VM, when it names one.
    pub libvirt_url: Option<String>,
}

impl VmPlan {
    /// The VM's address on its management network.
    pub fn ip(&self) -> Option<Ipv4Addr> {
        self.nics.iter().find(|n| n.net == self.mgmt_net).and_then(|n| n.ip)
    }
}

/// MAC of a NIC with address `ip`: `54:52` followed by the address bytes.
pub fn mac_of(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("54:52:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

fn same_subnet(a: Ipv4Addr, b: Ipv4Addr) -> bool {
    a.octets()[..3] == b.octets()[..3]
}

fn with_last_octet(gw: Ipv4Addr, last: u8) -> Ipv4Addr {
    let o = gw.octets();
    Ipv4Addr::new(o[0], o[1], o[2], last)
}

fn is_leasable(gw: Ipv4Addr) -> bool {
    let o = gw.octets();
    o[0] == 192 && o[1] == 168 && SUBNET_OCTETS.contains(&o[2])
}

fn upsert(map: &mut Vec<(String, Ipv4Addr)>, name: String, ip: Ipv4Addr) {
    match map.iter_mut().find(|(n, _)| *n == name) {
        Some(entry) => entry.1 = ip,
        None => map.push((name, ip)),
    }
}

/// Expands `spec` into a plan, or returns every problem found.
pub fn plan(spec: &Spec, defaults: &PlanDefaults) -> Result<Plan, Vec<Issue>> {
    let mut issues = Vec::new();
    let mut nets: Vec<NetPlan> = spec
        .nets
        .iter()
        .map(|n| NetPlan {
            name: n.name.clone(),
            kind: n.kind,
            management: n.management == Some(true),
            dns_domain_name: n.dns_domain_name.clone(),
            dns_records: n.dns_records.clone(),
            dns_forward: None,
            main_dns: n.main_dns.clone(),
            gw: n.gw,
            dhcp: n.dhcp,
            mtu: n.mtu.unwrap_or(DEFAULT_MTU),
            mapping: Vec::new(),
            bridge: n.bridge.clone(),
        })
        .collect();

    // Management networks: those marked, else the first by name.
    let mut mgmts: Vec<String> = nets.iter().filter(|n| n.management).map(|n| n.name.clone()).collect();
    mgmts.sort();
    if mgmts.is_empty()
        && let Some(first) = nets.iter_mut().min_by(|a, b| a.name.cmp(&b.name))
    {
        first.management = true;
        mgmts.push(first.name.clone());
    }
    for net in nets.iter_mut().filter(|n| n.management) {
        net.dns_domain_name.get_or_insert_with(|| "lago.local".to_owned());
    }
    if spec.nets.len() > 1 {
        let misconfigured: Vec<&str> = spec
            .nets
            .iter()
            .filter(|n| {
                n.management.is_none()
                    && !mgmts.contains(&n.name)
                    && (n.dns_domain_name.is_some() || n.main_dns.is_some())
            })
            .map(|n| n.name.as_str())
            .collect();
        if !misconfigured.is_empty() {
            issues.push(Issue::new(
                "nets",
                format!(
                    "Networks: {}, misconfigured, they are not marked as management, but have DNS attributes. DNS is supported only in management networks.",
                    misconfigured.join(", ")
                ),
            ));
        }
    }

    // Subnets: `gw` honoured, others get the lowest free /24 from 192.168.200.0 upwards.
    let mut taken: BTreeMap<[u8; 3], String> = BTreeMap::new();
    for net in nets.iter().filter(|n| n.kind == NetType::Nat) {
        if let Some(gw) = net.gw {
            let key = [gw.octets()[0], gw.octets()[1], gw.octets()[2]];
            if let Some(other) = taken.get(&key) {
                issues.push(Issue::new(
                    &format!("nets.{}.gw", net.name),
                    format!("subnet {}.{}.{}.0/24 is already used by network {other:?}", key[0], key[1], key[2]),
                ));
            } else {
                taken.insert(key, net.name.clone());
            }
        }
    }
    for net in nets.iter_mut().filter(|n| n.kind == NetType::Nat && n.gw.is_none()) {
        match SUBNET_OCTETS.clone().find(|o| !taken.contains_key(&[192, 168, *o])) {
            Some(o) => {
                taken.insert([192, 168, o], net.name.clone());
                net.gw = Some(Ipv4Addr::new(192, 168, o, 1));
            }
            None => issues.push(Issue::new(
                &format!("nets.{}", net.name),
                "no free subnet left in 192.168.200.0/24 - 192.168.255.0/24 (set `gw` to choose one)",
            )),
        }
    }

    let known_nets = || spec.nets.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ");

    // Per-VM checks and management network.
    let mut vms = Vec::new();
    for dom in &spec.domains {
        let path = format!("domains.{}", dom.name);
        let mut mgmt_of_vm = BTreeSet::new();
        let mut mgmt_net = String::new();
        for (i, nic) in dom.nics.iter().enumerate() {
            if nic.net.is_empty() {
                continue;
            }
            match net_index(&nets, &nic.net) {
                None => issues.push(Issue::new(
                    &format!("{path}.nics[{i}].net"),
                    format!("unknown network {:?} (known: {})", nic.net, known_nets()),
                )),
                Some(idx) if nets[idx].management => {
                    mgmt_of_vm.insert(nic.net.clone());
                    mgmt_net = nic.net.clone();
                }
                Some(_) => {}
            }
        }
        let all_nets_known = dom.nics.iter().all(|n| net_index(&nets, &n.net).is_some());
        if mgmt_of_vm.is_empty() && all_nets_known {
            issues.push(Issue::new(
                &format!("{path}.nics"),
                format!(
                    "VM {} has no management network, please connect it to one (management: {}).",
                    dom.name,
                    mgmts.join(", ")
                ),
            ));
        } else if mgmt_of_vm.len() > 1 {
            issues.push(Issue::new(
                &format!("{path}.nics"),
                format!(
                    "VM {} has more than one management network: {}. It should have exactly one.",
                    dom.name,
                    mgmt_of_vm.into_iter().collect::<Vec<_>>().join(",")
                ),
            ));
        }
        let vm_provider = dom.vm_provider.clone().unwrap_or_else(|| defaults.vm_provider.clone());
        if !VM_PROVIDERS.contains(&vm_provider.as_str()) {
            let key = if dom.vm_provider.is_some() {
                format!("{path}.vm-provider")
            } else {
                format!("{path}.vm-provider (from config default_vm_provider)")
            };
            issues.push(Issue::new(
                &key,
                format!("unknown VM provider {vm_provider:?} (known: {})", VM_PROVIDERS.join(", ")),
            ));
        }
        let vm_type = dom.vm_type.clone().unwrap_or_else(|| defaults.vm_type.clone());
        if !VM_TYPES.contains(&vm_type.as_str()) {
            issues.push(Issue::new(
                &format!("{path}.vm-type"),
                format!("Unknown VM type: {vm_type:?} (known: {})", VM_TYPES.join(", ")),
            ));
        }
        let mut seen_names: BTreeMap<&str, usize> = BTreeMap::new();
        let mut seen_devs: BTreeMap<&str, usize> = BTreeMap::new();
        let mut disks = Vec::new();
        for (i, d) in dom.disks.iter().enumerate() {
            if let Some(first) = seen_names.insert(&d.name, i) {
                issues.push(Issue::new(
                    &format!("{path}.disks[{i}].name"),
                    format!("disk name {:?} is already used by disks[{first}]", d.name),
                ));
            }
            if let Some(first) = seen_devs.insert(&d.dev, i) {
                issues.push(Issue::new(
                    &format!("{path}.disks[{i}].dev"),
                    format!("device {:?} is already used by disks[{first}]", d.dev),
                ));
            }
            disks.push(plan_disk(&dom.name, d));
        }
        vms.push(VmPlan {
            spec: dom.clone(),
            name: dom.name.clone(),
            memory: dom.memory.unwrap_or(DEFAULT_MEMORY),
            vcpu: dom.vcpu.unwrap_or(DEFAULT_VCPU),
            nics: dom.nics.iter().map(|n| NicPlan { net: n.net.clone(), ip: None, mac: None, mtu: None }).collect(),
            disks,
            mgmt_net,
            vm_type,
            vm_provider,
            ssh_user: dom.ssh_user.clone().unwrap_or_else(|| defaults.ssh_user.clone()),
            ssh_password: dom
                .root_password
                .clone()
                .or_else(|| dom.ssh_password.clone())
                .or_else(|| defaults.root_password.clone())
                .unwrap_or_else(|| defaults.ssh_password.clone()),
            bootstrap: dom.bootstrap.unwrap_or(true),
            boot_time_sec: dom.boot_time_sec.unwrap_or(DEFAULT_BOOT_TIME_SEC),
            libvirt_url: dom.libvirt_url.clone(),
        });
    }
    check_placement(&nets, &vms, defaults, &mut issues);
    if !issues.is_empty() {
        return Err(issues);
    }

    // Static addresses first (only the last octet counts on the original's subnets), then the
    // lowest free .2-.254 for the others, VMs in file order and NICs in list order.
    let mut used: BTreeMap<String, BTreeMap<u8, String>> = BTreeMap::new();
    for vm in &mut vms {
        for (i, nic) in vm.nics.iter_mut().enumerate() {
            let Some(ip) = vm.spec.nics[i].ip else { continue };
            let key = format!("domains.{}.nics[{i}].ip", vm.name);
            let net = &nets[net_index(&nets, &nic.net).unwrap_or_default()];
            let Some(gw) = net.gw else {
                nic.ip = Some(ip);
                continue;
            };
            let ip = if is_leasable(gw) { with_last_octet(gw, ip.octets()[3]) } else { ip };
            if !same_subnet(ip, gw) {
                issues.push(Issue::new(
                    &key,
                    format!("{ip} is outside the subnet of network {:?} ({}.0/24)", net.name, subnet_str(gw)),
                ));
                continue;
            }
            let last = ip.octets()[3];
            if ip == gw {
                issues.push(Issue::new(
                    &key,
                    format!(
                        "{ip} is the gateway of network {:?} (expected another address of {}.0/24)",
                        net.name,
                        subnet_str(gw)
                    ),
                ));
                continue;
            }
            if last == 0 || last == 255 {
                issues
                    .push(Issue::new(&key, format!("{ip} is the network or broadcast address (expected .2 to .254)")));
                continue;
            }
            let owners = used.entry(net.name.clone()).or_default();
            if let Some(other) = owners.get(&last) {
                issues.push(Issue::new(&key, format!("{ip} is already assigned to {other}")));
                continue;
            }
            owners.insert(last, format!("domains.{}.nics[{i}]", vm.name));
            nic.ip = Some(ip);
        }
    }
    for vm in &mut vms {
        for (i, nic) in vm.nics.iter_mut().enumerate() {
            let net = &nets[net_index(&nets, &nic.net).unwrap_or_default()];
            let (Some(gw), None, None) = (net.gw, nic.ip, vm.spec.nics[i].ip) else { continue };
            let owners = used.entry(net.name.clone()).or_default();
            match (2..=254u8).find(|o| !owners.contains_key(o) && *o != gw.octets()[3]) {
                Some(last) => {
                    owners.insert(last, format!("domains.{}.nics[{i}]", vm.name));
                    nic.ip = Some(with_last_octet(gw, last));
                }
                None => issues.push(Issue::new(
                    &format!("domains.{}.nics[{i}]", vm.name),
                    format!("network {:?} has no free address left", net.name),
                )),
            }
        }
    }
    if !issues.is_empty() {
        return Err(issues);
    }

    // Names, MACs, MTUs.
    for vm in &mut vms {
        let mut per_net: BTreeMap<String, usize> = BTreeMap::new();
        for (idx, nic) in vm.nics.iter_mut().enumerate() {
            let ni = net_index(&nets, &nic.net).unwrap_or_default();
            let net = &mut nets[ni];
            if net.mtu != DEFAULT_MTU {
                nic.mtu = Some(net.mtu);
            }
            let Some(ip) = nic.ip else { continue };
            nic.mac = Some(mac_of(ip));
            upsert(&mut net.mapping, format!("{}-eth{idx}", vm.name), ip);
            if nic.net == vm.mgmt_net {
                upsert(&mut net.mapping, vm.name.clone(), ip);
            }
            let by_net = format!("{}-{}", vm.name, nic.net);
            let n = per_net.entry(nic.net.clone()).or_insert(0);
            if *n == 0 {
                upsert(&mut net.mapping, by_net.clone(), ip);
            }
            upsert(&mut net.mapping, format!("{by_net}-{n}"), ip);
            *n += 1;
        }
    }

    // DNS: management networks know every name; the others forward to the last management net.
    let forward = mgmts.last().and_then(|m| nets.iter().find(|n| &n.name == m)).and_then(|n| n.gw);
    let mut all_records = Vec::new();
    for net in &nets {
        for (name, ip) in &net.mapping {
            upsert(&mut all_records, name.clone(), *ip);
        }
    }
    for net in &mut nets {
        if net.management {
            for (name, ip) in &all_records {
                upsert(&mut net.dns_records, name.clone(), *ip);
            }
        } else {
            net.dns_forward = forward;
        }
    }
    Ok(Plan { nets, vms })
}

/// Where a VM runs, as far as its networks are concerned: lago's own switches, or one libvirt host.
fn placement(vm: &VmPlan, defaults: &PlanDefaults) -> Option<String> {
    match vm.vm_provider.as_str() {
        "local-libvirt" => Some(format!("libvirt host {}", vm.libvirt_url.as_deref().unwrap_or(&defaults.libvirt_url))),
        "local-qemu" => Some("local-qemu".into()),
        _ => None,
    }
}

/// A network lives on one provider (lago's switches, or libvirt), and spans libvirt hosts only
/// as a `bridge` network over a bridge the hosts share.
fn check_placement(nets: &[NetPlan], vms: &[VmPlan], defaults: &PlanDefaults, issues: &mut Vec<Issue>) {
    for vm in vms {
        if vm.libvirt_url.is_some() && vm.vm_provider != "local-libvirt" {
            issues.push(Issue::new(
                &format!("domains.{}.libvirt_url", vm.name),
                format!(
                    "only a local-libvirt VM has a libvirt host (this one is {}; set `vm-provider: local-libvirt`)",
                    vm.vm_provider
                ),
            ));
        }
    }
    for net in nets {
        let mut places: Vec<(String, Vec<&str>)> = Vec::new();
        for vm in vms.iter().filter(|v| v.nics.iter().any(|n| n.net == net.name)) {
            let Some(place) = placement(vm, defaults) else { continue };
            match places.iter_mut().find(|(p, _)| *p == place) {
                Some((_, names)) => names.push(&vm.name),
                None => places.push((place, vec![&vm.name])),
            }
        }
        let describe = || places.iter().map(|(p, v)| format!("{p}: {}", v.join(", "))).collect::<Vec<_>>().join("; ");
        let qemu = places.iter().any(|(p, _)| p == "local-qemu");
        if qemu && places.len() > 1 {
            issues.push(Issue::new(
                &format!("nets.{}", net.name),
                format!(
                    "network {:?} joins VMs of different providers ({}); a network belongs to one provider (give each provider's VMs their own network)",
                    net.name,
                    describe()
                ),
            ));
        } else if places.len() > 1 && net.bridge.is_none() {
            issues.push(Issue::new(
                &format!("nets.{}", net.name),
                format!(
                    "network {:?} spans libvirt hosts ({}); a network that spans hosts is `type: bridge` with `bridge: NAME`, a bridge the hosts share",
                    net.name,
                    describe()
                ),
            ));
        }
        if qemu && net.bridge.is_some() {
            issues.push(Issue::new(
                &format!("nets.{}.bridge", net.name),
                "only local-libvirt VMs join a host bridge (local-qemu VMs are on lago's own segments)",
            ));
        }
    }
}

fn net_index(nets: &[NetPlan], name: &str) -> Option<usize> {
    nets.iter().position(|n| n.name == name)
}

fn subnet_str(gw: Ipv4Addr) -> String {
    let o = gw.octets();
    format!("{}.{}.{}", o[0], o[1], o[2])
}

fn plan_disk(vm: &str, d: &DiskSpec) -> DiskPlan {
    let format = d.format.clone().unwrap_or_else(|| match d.kind {
        DiskType::File => d
            .path
            .as_deref()
            .and_then(|p| std::path::Path::new(p).extension())
            .and_then(|e| e.to_str())
            .filter(|e| crate::spec::model::DISK_FORMATS.contains(e))
            .unwrap_or("raw")
            .to_owned(),
        _ => "qcow2".to_owned(),
    });
    let in_prefix = format!("$LAGO_PREFIX_PATH/images/{vm}_{}.{format}", d.name);
    let path = match (d.kind, &d.path) {
        (DiskType::File, Some(p)) if !d.make_a_copy => p.clone(),
        (DiskType::File, Some(p)) => {
            let base =
                std::path::Path::new(p).file_name().map(|b| b.to_string_lossy().into_owned()).unwrap_or_default();
            format!("$LAGO_PREFIX_PATH/images/{base}")
        }
        _ => in_prefix,
    };
    DiskPlan {
        spec: d.clone(),
        format,
        path,
        metadata: d.metadata.clone(),
        template_version: d.template_version.clone(),
    }
}

impl Plan {
    /// `virt/env`: the names of nets and VMs.
    pub fn env_json(&self) -> Value {
        json!({
            "nets": self.nets.iter().map(|n| n.name.clone()).collect::<Vec<_>>(),
            "vms": self.vms.iter().map(|v| v.name.clone()).collect::<Vec<_>>(),
        })
    }
}

fn ip_map(entries: &[(String, Ipv4Addr)]) -> Value {
    Value::Object(entries.iter().map(|(n, ip)| (n.clone(), Value::String(ip.to_string()))).collect())
}

impl NetPlan {
    /// `virt/net-<name>` in the original's shape.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("type".into(), json!(self.kind.as_str()));
        m.insert("management".into(), json!(self.management));
        if let Some(d) = &self.dns_domain_name {
            m.insert("dns_domain_name".into(), json!(d));
        }
        if let Some(d) = &self.main_dns {
            m.insert("main_dns".into(), json!(d));
        }
        if let Some(gw) = self.gw {
            m.insert("gw".into(), json!(gw.to_string()));
        }
        if let Some((start, end)) = self.dhcp {
            m.insert("dhcp".into(), json!({"start": start, "end": end}));
        }
        if self.mtu != DEFAULT_MTU {
            m.insert("mtu".into(), json!(self.mtu));
        }
        if let Some(b) = &self.bridge {
            m.insert("bridge".into(), json!(b));
        }
        m.insert("mapping".into(), ip_map(&self.mapping));
        if self.management {
            m.insert("dns_records".into(), ip_map(&self.dns_records));
        } else if let Some(f) = self.dns_forward {
            m.insert("dns_forward".into(), json!(f.to_string()));
        }
        Value::Object(m)
    }
}

impl DiskPlan {
    /// One entry of `disks` in `virt/vm-<name>`.
    pub fn to_json(&self) -> Value {
        let d = &self.spec;
        let mut m = Map::new();
        m.insert("type".into(), json!(d.kind.as_str()));
        m.insert("name".into(), json!(d.name));
        m.insert("dev".into(), json!(d.dev));
        m.insert("format".into(), json!(self.format));
        if let Some(s) = &d.size {
            m.insert("size".into(), json!(s));
        }
        if let Some(t) = &d.template_name {
            m.insert("template_name".into(), json!(t));
        }
        if let Some(v) = &self.template_version {
            m.insert("template_version".into(), json!(v));
        }
        if d.kind == DiskType::Template {
            let t = match d.template_type {
                crate::spec::TemplateType::Lago => "lago",
                crate::spec::TemplateType::Qcow2 => "qcow2",
            };
            m.insert("template_type".into(), json!(t));
        }
        m.insert("path".into(), json!(self.path));
        if d.make_a_copy {
            m.insert("make_a_copy".into(), json!(true));
        }
        if !d.build.is_empty() {
            let steps: Vec<Value> = d
                .build
                .iter()
                .map(|s| {
                    let opts: Map<String, Value> = s
                        .options
                        .iter()
                        .map(|(k, args)| {
                            let v = match args.len() {
                                0 => json!(""),
                                1 => json!(args[0]),
                                _ => json!(args),
                            };
                            (k.clone(), v)
                        })
                        .collect();
                    json!({ s.builder.clone(): opts })
                })
                .collect();
            m.insert("build".into(), Value::Array(steps));
        }
        if d.skip_export {
            m.insert("skip-export".into(), json!(true));
        }
        m.insert("metadata".into(), Value::Object(self.metadata.clone()));
        Value::Object(m)
    }
}

impl VmPlan {
    /// `virt/vm-<name>` in the original's shape (the domain as written plus what lago added).
    pub fn to_json(&self) -> Value {
        let s = &self.spec;
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("memory".into(), json!(self.memory));
        m.insert("vcpu".into(), json!(self.vcpu));
        if let Some(c) = &s.cpu_model {
            m.insert("cpu_model".into(), json!(c));
        }
        if let Some(c) = &s.cpu_custom {
            m.insert("cpu_custom".into(), c.clone());
        }
        let nics: Vec<Value> = self
            .nics
            .iter()
            .map(|n| {
                let mut nm = Map::new();
                nm.insert("net".into(), json!(n.net));
                if let Some(ip) = n.ip {
                    nm.insert("ip".into(), json!(ip.to_string()));
                }
                if let Some(mtu) = n.mtu {
                    nm.insert("mtu".into(), json!(mtu));
                }
                Value::Object(nm)
            })
            .collect();
        m.insert("nics".into(), Value::Array(nics));
        m.insert("disks".into(), Value::Array(self.disks.iter().map(DiskPlan::to_json).collect()));
        let mut metadata = s.metadata.clone();
        if !s.deploy_scripts.is_empty() {
            metadata.remove("ovirt-scripts");
            metadata.insert("deploy-scripts".into(), json!(s.deploy_scripts));
        }
        m.insert("metadata".into(), Value::Object(metadata));
        if !s.artifacts.is_empty() {
            m.insert("artifacts".into(), json!(s.artifacts));
        }
        if !s.groups.is_empty() {
            m.insert("groups".into(), json!(s.groups));
        }
        m.insert("bootstrap".into(), json!(self.bootstrap));
        m.insert("ssh-user".into(), json!(self.ssh_user));
        match &s.root_password {
            Some(p) => m.insert("root-password".into(), json!(p)),
            None => m.insert("ssh-password".into(), json!(self.ssh_password)),
        };
        if let Some(d) = &s.distro {
            m.insert("distro".into(), json!(d));
        }
        m.insert("vm-type".into(), json!(self.vm_type));
        m.insert("vm-provider".into(), json!(self.vm_provider));
        if let Some(u) = &self.libvirt_url {
            m.insert("libvirt_url".into(), json!(u));
        }
        if let Some(p) = &s.service_provider {
            m.insert("service_provider".into(), json!(p));
        }
        if let Some(g) = &s.guest_agent {
            m.insert("guest-agent".into(), json!(g));
        }
        m.insert("boot_time_sec".into(), json!(self.boot_time_sec));
        if s.skip_export {
            m.insert("skip-export".into(), json!(true));
        }
        m.insert("mgmt_net".into(), json!(self.mgmt_net));
        m.insert("snapshots".into(), json!({}));
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn plan_of(text: &str) -> Result<Plan, Vec<String>> {
        let spec = crate::spec::parse(text, Path::new("t.yaml")).map_err(|e| vec![e.to_string()])?;
        plan(&spec, &PlanDefaults::default()).map_err(|is| is.iter().map(ToString::to_string).collect())
    }

    const TWO_NETS: &str = "
domains:
  vm0:
    nics: [{net: n0}, {net: n1}]
  vm1:
    nics: [{net: n0}, {net: n1, ip: 10.0.0.7}]
nets:
  n1: {}
  n0: {}
";

    #[test]
    fn management_addresses_and_names() {
        let p = plan_of(TWO_NETS).unwrap();
        let n0 = p.nets.iter().find(|n| n.name == "n0").unwrap();
        let n1 = p.nets.iter().find(|n| n.name == "n1").unwrap();
        assert!(n0.management && !n1.management);
        assert_eq!(n0.dns_domain_name.as_deref(), Some("lago.local"));
        // n1 comes first in the file, so it gets the first subnet.
        assert_eq!(n1.gw, Some(Ipv4Addr::new(192, 168, 200, 1)));
        assert_eq!(n0.gw, Some(Ipv4Addr::new(192, 168, 201, 1)));
        // Static IP: only the last octet counts on the original's subnets; it is reserved first.
        assert_eq!(p.vms[1].nics[1].ip, Some(Ipv4Addr::new(192, 168, 200, 7)));
        assert_eq!(p.vms[0].nics[1].ip, Some(Ipv4Addr::new(192, 168, 200, 2)));
        assert_eq!(p.vms[0].nics[0].mac.as_deref(), Some("54:52:c0:a8:c9:02"));
        assert_eq!(p.vms[1].ip(), Some(Ipv4Addr::new(192, 168, 201, 3)));
        let names: Vec<&str> = n0.mapping.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["vm0-eth0", "vm0", "vm0-n0", "vm0-n0-0", "vm1-eth0", "vm1", "vm1-n0", "vm1-n0-0"]);
        assert_eq!(n1.dns_forward, n0.gw);
        assert_eq!(n0.resolve("vm1-eth1"), None);
        assert_eq!(
            n0.dns_records.iter().find(|(n, _)| n == "vm1-eth1").map(|r| r.1),
            Some(Ipv4Addr::new(192, 168, 200, 7))
        );
    }

    #[test]
    fn deterministic() {
        assert_eq!(plan_of(TWO_NETS).unwrap(), plan_of(TWO_NETS).unwrap());
    }

    #[test]
    fn honours_gw_and_skips_its_subnet() {
        let p = plan_of(
            "domains:\n  a: {nics: [{net: x}, {net: y}]}\nnets:\n  x: {gw: 192.168.200.4, management: true}\n  y: {}\n",
        )
        .unwrap();
        assert_eq!(p.nets[0].gw, Some(Ipv4Addr::new(192, 168, 200, 4)));
        assert_eq!(p.nets[1].gw, Some(Ipv4Addr::new(192, 168, 201, 1)));
        assert_eq!(p.vms[0].nics[0].ip, Some(Ipv4Addr::new(192, 168, 200, 2)));
    }

    #[test]
    fn errors_are_all_reported() {
        let errs = plan_of(
            "domains:\n  a: {nics: [{net: lgo}]}\n  b: {nics: [{net: l, ip: 192.168.200.5}]}\n  c: {nics: [{net: l, ip: 192.168.200.5}]}\nnets:\n  l: {}\n",
        )
        .unwrap_err();
        assert_eq!(errs, ["domains.a.nics[0].net: unknown network \"lgo\" (known: l)"]);
        let errs = plan_of("domains:\n  b: {nics: [{net: l, ip: 192.168.200.5}]}\n  c: {nics: [{net: l, ip: 192.168.200.5}]}\nnets:\n  l: {}\n").unwrap_err();
        assert_eq!(errs, ["domains.c.nics[0].ip: 192.168.200.5 is already assigned to domains.b.nics[0]"]);
    }

    #[cfg(feature = "libvirt")]
    #[test]
    fn a_network_belongs_to_one_provider_and_spans_hosts_as_a_shared_bridge() {
        let errs = plan_of(
            "domains:\n  q: {nics: [{net: l}]}\n  v: {vm-provider: local-libvirt, nics: [{net: l}]}\nnets:\n  l: {}\n",
        )
        .unwrap_err();
        assert_eq!(
            errs,
            [
                "nets.l: network \"l\" joins VMs of different providers (local-qemu: q; libvirt host qemu:///system: v); a network belongs to one provider (give each provider's VMs their own network)"
            ]
        );
        let two_hosts = "domains:\n  a: {vm-provider: local-libvirt, nics: [{net: s, ip: 10.0.0.2}]}\n  b: {vm-provider: local-libvirt, libvirt_url: 'qemu+tcp://h2/system', nics: [{net: s, ip: 10.0.0.3}]}\nnets:\n  s: {type: bridge, management: true}\n";
        let errs = plan_of(two_hosts).unwrap_err();
        assert_eq!(
            errs,
            [
                "nets.s: network \"s\" spans libvirt hosts (libvirt host qemu:///system: a; libvirt host qemu+tcp://h2/system: b); a network that spans hosts is `type: bridge` with `bridge: NAME`, a bridge the hosts share"
            ]
        );
        let p = plan_of(&two_hosts.replace("type: bridge,", "type: bridge, bridge: lagobr,")).unwrap();
        assert_eq!(p.nets[0].to_json()["bridge"], "lagobr");
        assert_eq!(p.vms[1].to_json()["libvirt_url"], "qemu+tcp://h2/system");
        assert_eq!(p.vms[1].ip(), Some(Ipv4Addr::new(10, 0, 0, 3)));
        let errs = plan_of(
            "domains:\n  q: {libvirt_url: 'qemu:///system', nics: [{net: l}]}\nnets:\n  l: {type: nat, bridge: br0}\n",
        )
        .unwrap_err();
        assert!(
            errs[0]
                .ends_with("\n  nets.l.bridge: only a `type: bridge` network joins a host bridge (add `type: bridge`)"),
            "{errs:?}"
        );
        let errs =
            plan_of("domains:\n  q: {libvirt_url: 'qemu:///system', nics: [{net: l}]}\nnets:\n  l: {}\n").unwrap_err();
        assert_eq!(
            errs,
            [
                "domains.q.libvirt_url: only a local-libvirt VM has a libvirt host (this one is local-qemu; set `vm-provider: local-libvirt`)"
            ]
        );
    }
}
