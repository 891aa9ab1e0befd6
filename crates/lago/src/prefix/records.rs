//! The records of a prefix's VMs (`virt/vm-<name>`, in the original's JSON shape), typed: the
//! fields lago's providers and operations read.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::Deserialize;

/// A VM as persisted in `virt/vm-<name>` (the fields the provider needs).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct VmRecord {
    /// Name.
    pub name: String,
    /// Memory, MiB.
    #[serde(default = "default_memory")]
    pub memory: u64,
    /// Virtual CPUs.
    #[serde(default = "default_vcpu", deserialize_with = "number_or_string")]
    pub vcpu: u64,
    /// `cpu_model`.
    #[serde(default)]
    pub cpu_model: Option<String>,
    /// `cpu_custom` (libvirt's `<cpu>` element as a mapping).
    #[serde(default)]
    pub cpu_custom: Option<serde_json::Value>,
    /// NICs.
    #[serde(default)]
    pub nics: Vec<NicRecord>,
    /// Disks.
    #[serde(default)]
    pub disks: Vec<DiskRecord>,
    /// Management network.
    #[serde(default)]
    pub mgmt_net: String,
    /// SSH user.
    #[serde(rename = "ssh-user", default = "default_user")]
    pub ssh_user: String,
    /// SSH password (the original's `ssh-password`), offered by the `ssh` provider and
    /// `lago.ssh` when a key is refused.
    #[serde(rename = "ssh-password", default)]
    pub ssh_password: Option<String>,
    /// `root-password` of the domain.
    #[serde(rename = "root-password", default)]
    pub root_password: Option<String>,
    /// Seconds to wait for SSH.
    #[serde(default = "default_boot_time")]
    pub boot_time_sec: u64,
    /// Provider.
    #[serde(rename = "vm-provider", default)]
    pub vm_provider: Option<String>,
    /// `metadata` (the `ssh` provider reads `ssh-host`, `ssh-port`, `ssh-key` here).
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Service manager in the guest (`systemd`, `sysvinit`), detected when absent.
    #[serde(default)]
    pub service_provider: Option<String>,
    /// The libvirt host of a `local-libvirt` VM (the configuration's `libvirt_url` when absent).
    #[serde(default)]
    pub libvirt_url: Option<String>,
    /// Ports forwarded to the host's loopback at each start (the init file's `forwards`).
    #[serde(default)]
    pub forwards: Vec<crate::spec::model::ForwardSpec>,
}

fn default_memory() -> u64 {
    crate::spec::model::DEFAULT_MEMORY
}
fn default_vcpu() -> u64 {
    u64::from(crate::spec::model::DEFAULT_VCPU)
}
fn default_user() -> String {
    "root".into()
}
fn default_boot_time() -> u64 {
    crate::plan::DEFAULT_BOOT_TIME_SEC
}

fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    match &v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| serde::de::Error::custom(format!("expected a number, found {v}")))
}

/// A NIC as persisted.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct NicRecord {
    /// Network.
    pub net: String,
    /// Address.
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// MTU, when not 1500.
    #[serde(default)]
    pub mtu: Option<u32>,
}

/// A disk as persisted.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct DiskRecord {
    /// Image path (`$LAGO_PREFIX_PATH/...` or absolute).
    pub path: String,
    /// Guest device.
    #[serde(default)]
    pub dev: String,
    /// Image format.
    #[serde(default = "default_format")]
    pub format: String,
    /// Metadata (a template disk's carries the template's, `boot` included).
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// A kernel to boot directly, with its initramfs and command line: what a template disk's
/// metadata names under `boot` (absolute paths in the template store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectBoot {
    /// Uncompressed kernel (an ELF with a PVH entry).
    pub kernel: PathBuf,
    /// Initramfs.
    pub initrd: PathBuf,
    /// Kernel command line.
    pub cmdline: String,
}

impl VmRecord {
    /// The password SSH offers where no key is accepted (images that bring their own access):
    /// `ssh-password` of the VM's metadata, else its `root-password`, else the template's
    /// (`root-password` of the first disk's metadata), else its `ssh-password` (the
    /// configuration's, `123456` by default), as the original logged in.
    pub fn password(&self) -> Option<String> {
        let text =
            |v: &serde_json::Value| v.as_str().map(str::to_owned).or_else(|| v.as_number().map(|n| n.to_string()));
        self.metadata
            .get("ssh-password")
            .and_then(text)
            .or_else(|| self.root_password.clone())
            .or_else(|| self.disks.first().and_then(|d| d.metadata.get("root-password")).and_then(text))
            .or_else(|| self.ssh_password.clone())
    }

    /// The kernel to boot directly: the one its first disk (unless a CD-ROM) offers.
    pub fn direct_boot(&self) -> Option<DirectBoot> {
        self.disks.first().filter(|d| d.format != "iso").and_then(DiskRecord::direct_boot)
    }
}

impl DiskRecord {
    /// The direct boot this disk offers, when its metadata names one whose files exist.
    pub fn direct_boot(&self) -> Option<DirectBoot> {
        let boot = self.metadata.get("boot")?;
        let path = |k: &str| boot.get(k).and_then(serde_json::Value::as_str).map(PathBuf::from).filter(|p| p.is_file());
        Some(DirectBoot {
            kernel: path("kernel")?,
            initrd: path("initrd")?,
            cmdline: boot.get("cmdline").and_then(serde_json::Value::as_str)?.to_owned(),
        })
    }
}

fn default_format() -> String {
    "qcow2".into()
}

impl VmRecord {
    /// Whether the VM is an existing machine driven over SSH (`vm-provider: ssh`).
    pub fn is_ssh(&self) -> bool {
        self.vm_provider.as_deref() == Some("ssh")
    }

    /// Its provider's name (`local-qemu` unless the record names another).
    pub fn provider(&self) -> &str {
        self.vm_provider.as_deref().unwrap_or("local-qemu")
    }

    /// The management address.
    pub fn ip(&self) -> Option<Ipv4Addr> {
        self.nics.iter().find(|n| n.net == self.mgmt_net).and_then(|n| n.ip)
    }
}
