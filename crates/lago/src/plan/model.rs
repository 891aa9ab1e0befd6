//! The plan's types: the environment with every default filled in and every address, MAC, name
//! and file decided, and the rules of names and MACs.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use crate::spec::written::Written;
use crate::spec::{DiskSpec, DomainSpec, NetType};

/// VM providers this build can run.
#[cfg(feature = "libvirt")]
pub const VM_PROVIDERS: &[&str] = &["local-qemu", "local-libvirt", "ssh", "openstack"];
/// VM providers this build can run.
#[cfg(not(feature = "libvirt"))]
pub const VM_PROVIDERS: &[&str] = &["local-qemu", "ssh", "openstack"];
/// The third octets the original leased subnets from (192.168.200.0/24 – 192.168.255.0/24).
pub const SUBNET_OCTETS: std::ops::RangeInclusive<u8> = 200..=255;
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
    /// Whether it has IPv4 (`ipv4: false` makes it IPv6-only: no `gw`, no IPv4 address).
    pub ipv4: bool,
    /// Its IPv6 side (lago's own), when it has one.
    pub ipv6: Option<Net6>,
    /// Names → IPv6 addresses on this network (the names of `mapping`, AAAA).
    pub mapping6: Vec<(String, Ipv6Addr)>,
    /// IPv6 DNS records (AAAA): every name of every net (management networks), plus user records.
    pub dns_records6: Vec<(String, Ipv6Addr)>,
    /// The network as written in the init file.
    pub written: Written,
}

/// The IPv6 side of a network: its /64 and its gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net6 {
    /// The prefix (host half zero); always a /64.
    pub prefix: Ipv6Addr,
    /// The gateway: the host leg's address (the prefix's `::1` unless `gw6` says).
    pub gw6: Ipv6Addr,
}

impl Net6 {
    /// `fd8f:1:2::/64`.
    pub fn prefix_str(&self) -> String {
        format!("{}/64", self.prefix)
    }
}

impl NetPlan {
    /// The address of `name` on this network.
    pub fn resolve(&self, name: &str) -> Option<Ipv4Addr> {
        self.mapping.iter().find(|(n, _)| n == name).map(|(_, ip)| *ip)
    }

    /// The IPv6 address of `name` on this network.
    pub fn resolve6(&self, name: &str) -> Option<Ipv6Addr> {
        self.mapping6.iter().find(|(n, _)| n == name).map(|(_, ip)| *ip)
    }
}

/// One expanded NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicPlan {
    /// Network name.
    pub net: String,
    /// Address (nat networks).
    pub ip: Option<Ipv4Addr>,
    /// IPv6 address (networks with `ipv6`).
    pub ip6: Option<Ipv6Addr>,
    /// MAC address `54:52:<ip bytes>` (when the NIC has an address; see [`nic_mac`]).
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
    /// The template version asked for (the repository's latest when `None`).
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

    /// The VM's IPv6 address on its management network.
    pub fn ip6(&self) -> Option<Ipv6Addr> {
        self.nics.iter().find(|n| n.net == self.mgmt_net).and_then(|n| n.ip6)
    }
}

/// MAC of a NIC with address `ip`: `54:52` followed by the address bytes.
pub fn mac_of(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("54:52:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// MAC of a NIC with IPv6 address `ip6` and no IPv4 one: `54:52:00`, a byte of its prefix (the
/// XOR of the prefix's eight bytes, so that prefixes one byte apart differ), and the last two
/// bytes of the address. An IPv4 MAC never starts `54:52:00` (no address starts with 0).
pub fn mac_of6(ip6: Ipv6Addr) -> String {
    let o = ip6.octets();
    let net = o[..8].iter().fold(0u8, |acc, b| acc ^ b);
    format!("54:52:00:{net:02x}:{:02x}:{:02x}", o[14], o[15])
}

/// The MAC of a NIC: from its IPv4 address when it has one (the original's), else from its
/// IPv6 one; `None` for a NIC with neither.
pub fn nic_mac(ip: Option<Ipv4Addr>, ip6: Option<Ipv6Addr>) -> Option<String> {
    ip.map(mac_of).or_else(|| ip6.map(mac_of6))
}

/// The unique local /64 number `subnet` of the environment whose uuid is `env_uuid`
/// (`ipv6: auto`): `fd`, a 40-bit global ID from the uuid's SHA-1 (RFC 4193's pseudo-random
/// one), the 16-bit subnet.
pub fn ula_prefix(env_uuid: &str, subnet: u16) -> Ipv6Addr {
    use sha1::Digest;
    let digest = sha1::Sha1::digest(format!("lago-ula:{env_uuid}").as_bytes());
    let mut o = [0u8; 16];
    o[0] = 0xfd;
    o[1..6].copy_from_slice(&digest[..5]);
    o[6..8].copy_from_slice(&subnet.to_be_bytes());
    Ipv6Addr::from(o)
}
