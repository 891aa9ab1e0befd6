//! The records of a prefix's VMs (`virt/vm-<name>`, in the original's JSON shape), typed: the
//! fields lago's providers and operations read.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::host::pathio::beside;

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
    #[serde(default, deserialize_with = "text")]
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
    #[serde(rename = "ssh-password", default, deserialize_with = "text")]
    pub ssh_password: Option<String>,
    /// `root-password` of the domain (kept as written: `root-password: 123456` is a number).
    #[serde(rename = "root-password", default, deserialize_with = "text")]
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

/// A text the init file may have written as a number (`root-password: 123456`), kept so in the
/// record as the original kept it.
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(if b { "True" } else { "False" }.to_owned()),
        _ => None,
    })
}

/// A NIC's `mtu` as written: a number, or what the init file wrote (the original set it only
/// when its network's MTU was not 1500, and left one written on the NIC as it was).
fn mtu<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match &v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .and_then(|n| u32::try_from(n).ok()))
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
    /// IPv6 address (lago's own; networks with `ipv6`).
    #[serde(default)]
    pub ip6: Option<Ipv6Addr>,
    /// MTU, when not 1500.
    #[serde(default, deserialize_with = "mtu")]
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
/// metadata offers under `boot`, found in the template store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectBoot {
    /// Uncompressed kernel (an ELF with a PVH entry).
    pub kernel: PathBuf,
    /// Initramfs.
    pub initrd: PathBuf,
    /// Kernel command line.
    pub cmdline: String,
}

/// The key of a template's metadata (lago's own) naming the least memory, in MiB, its VMs boot
/// in.
pub const MIN_MEMORY: &str = "min-memory";

impl VmRecord {
    /// The memory the VM runs with, in MiB: its `memory`, or the `min-memory` its first disk's
    /// template needs when that is more (the original's init files give their VMs 64 MiB, which
    /// its CirrOS images took and a Debian kernel does not: it panics before its console is
    /// up). `init` says so when it happens. A VM with NUMA cells of its own keeps its `memory`
    /// (the cells must add up to it).
    pub fn run_memory(&self) -> u64 {
        let numa = self.cpu_custom.as_ref().is_some_and(|c| c.get("numa").is_some());
        let floor = self.disks.first().and_then(|d| d.metadata.get(MIN_MEMORY)).and_then(serde_json::Value::as_u64);
        match floor {
            Some(min) if !numa && min > self.memory => min,
            _ => self.memory,
        }
    }

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

    /// The kernel to boot directly: the one its first disk (unless a CD-ROM) offers. `prefix`
    /// is the prefix's directory (the disks' `$LAGO_PREFIX_PATH`).
    pub fn direct_boot(&self, prefix: &Path) -> Option<DirectBoot> {
        self.disks.first().filter(|d| d.format != "iso").and_then(|d| d.direct_boot(prefix))
    }
}

impl DiskRecord {
    /// The direct boot this disk offers: its metadata (the template's, as published) has `boot`
    /// with a command line, and the store holds the kernel and initramfs beside the image the
    /// disk is an overlay on (`<store image>.vmlinux`, `<store image>.initrd`; the store fetches
    /// them with the image and keeps neither when one cannot be had). Records of earlier lago
    /// versions name the two files by their absolute place in the store: these are used as
    /// named.
    pub fn direct_boot(&self, prefix: &Path) -> Option<DirectBoot> {
        let boot = self.metadata.get("boot")?;
        let cmdline = boot.get("cmdline").and_then(serde_json::Value::as_str)?.to_owned();
        let named = |k: &str| boot.get(k).and_then(serde_json::Value::as_str).map(PathBuf::from);
        if let (Some(kernel), Some(initrd)) = (named("kernel"), named("initrd"))
            && kernel.is_absolute()
            && initrd.is_absolute()
            && kernel.is_file()
            && initrd.is_file()
        {
            return Some(DirectBoot { kernel, initrd, cmdline });
        }
        // The store image is the disk's backing file, or further down its chain (a disk forked
        // by `lago fork` is an overlay on the frozen disk, itself an overlay on the store image).
        let mut image = PathBuf::from(self.path.replace("$LAGO_PREFIX_PATH", &prefix.display().to_string()));
        for _ in 0..16 {
            image = crate::host::images::qcow2_backing(&image).ok().flatten()?;
            let (kernel, initrd) = (beside(&image, "vmlinux"), beside(&image, "initrd"));
            if kernel.is_file() && initrd.is_file() {
                return Some(DirectBoot { kernel, initrd, cmdline });
            }
        }
        None
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

    /// The IPv6 address on the management network.
    pub fn ip6(&self) -> Option<Ipv6Addr> {
        self.nics.iter().find(|n| n.net == self.mgmt_net).and_then(|n| n.ip6)
    }

    /// The address the host's tests reach the VM at on its management network: the IPv4 one,
    /// else (an IPv6-only management network) the IPv6 one.
    pub fn address(&self) -> Option<std::net::IpAddr> {
        self.ip().map(std::net::IpAddr::V4).or_else(|| self.ip6().map(std::net::IpAddr::V6))
    }
}

impl NicRecord {
    /// Its MAC address (see [`crate::plan::nic_mac`]).
    pub fn mac(&self) -> Option<String> {
        crate::plan::nic_mac(self.ip, self.ip6)
    }
}

/// The IPv6 side of a network's record (`virt/net-<name>`): its prefix (a /64) and gateway.
pub fn net_ipv6(record: &serde_json::Map<String, serde_json::Value>) -> Option<(Ipv6Addr, Ipv6Addr)> {
    let addr = |k: &str| record.get(k).and_then(serde_json::Value::as_str);
    let prefix = addr("ipv6")?.split_once('/')?.0.parse().ok()?;
    let gw6 = addr("gw6")?.parse().ok()?;
    Some((prefix, gw6))
}

/// The IPv4 gateway of a network's record (`None`: a `bridge` or IPv6-only network).
pub fn net_gw(record: &serde_json::Map<String, serde_json::Value>) -> Option<Ipv4Addr> {
    record.get("gw").and_then(serde_json::Value::as_str).and_then(|g| g.parse().ok())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn a_vm_runs_with_at_least_the_memory_its_template_needs() {
        let vm = |memory: u64, cpu_custom: Value| -> VmRecord {
            serde_json::from_value(json!({
                "name": "vm01", "memory": memory, "cpu_custom": cpu_custom,
                "disks": [{"path": "/x.qcow2", "metadata": {"distro": "lago-tiny", "min-memory": 128}}]
            }))
            .unwrap()
        };
        assert_eq!(vm(64, Value::Null).run_memory(), 128);
        assert_eq!(vm(512, Value::Null).run_memory(), 512);
        // NUMA cells must add up to the memory given: it stays.
        assert_eq!(vm(64, json!({"numa": {"cell": []}})).run_memory(), 64);
        // Templates that say nothing: the memory given.
        let plain: VmRecord =
            serde_json::from_value(json!({"name": "vm01", "memory": 64, "disks": [{"path": "/x"}]})).unwrap();
        assert_eq!(plain.run_memory(), 64);
    }

    #[test]
    fn values_written_as_the_init_file_had_them_are_read() {
        let vm: VmRecord = serde_json::from_value(json!({
            "name": "vm01", "root-password": 123456, "cpu_model": "Westmere",
            "nics": [{"net": "n", "ip": "192.168.200.2", "mtu": "9000", "comment": "first"}],
            "disks": [{"path": "/x.qcow2", "comment": "root", "owner": "web"}]
        }))
        .unwrap();
        assert_eq!(vm.root_password.as_deref(), Some("123456"));
        assert_eq!(vm.password().as_deref(), Some("123456"));
        assert_eq!(vm.nics[0].mtu, Some(9000));
        assert_eq!(vm.disks[0].format, "qcow2");
    }

    #[test]
    fn direct_boot_files_are_found_beside_the_store_image_of_the_overlay() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store/local:tiny:v1");
        std::fs::create_dir_all(dir.path().join("store")).unwrap();
        std::fs::create_dir_all(dir.path().join("images")).unwrap();
        crate::host::images::write_qcow2_header(
            &dir.path().join("images/vm01_root.qcow2"),
            &store.display().to_string(),
        );
        let disk = |boot: Value| -> DiskRecord {
            serde_json::from_value(
                json!({"path": "$LAGO_PREFIX_PATH/images/vm01_root.qcow2", "metadata": {"boot": boot}}),
            )
            .unwrap()
        };
        let published =
            disk(json!({"kernel": "tiny-v1.qcow2.vmlinux", "initrd": "tiny-v1.qcow2.initrd", "cmdline": "rw"}));
        assert_eq!(published.direct_boot(dir.path()), None, "not in the store");
        let (kernel, initrd) = (beside(&store, "vmlinux"), beside(&store, "initrd"));
        std::fs::write(&kernel, b"").unwrap();
        assert_eq!(published.direct_boot(dir.path()), None, "one of the two only");
        std::fs::write(&initrd, b"").unwrap();
        let found = DirectBoot { kernel: kernel.clone(), initrd: initrd.clone(), cmdline: "rw".into() };
        assert_eq!(published.direct_boot(dir.path()), Some(found.clone()));
        // A forked disk: an overlay on the frozen disk, an overlay on the store image.
        std::fs::create_dir_all(dir.path().join("frozen")).unwrap();
        std::fs::rename(dir.path().join("images/vm01_root.qcow2"), dir.path().join("frozen/vm01-vda.qcow2")).unwrap();
        crate::host::images::write_qcow2_header(
            &dir.path().join("images/vm01_root.qcow2"),
            &dir.path().join("frozen/vm01-vda.qcow2").display().to_string(),
        );
        assert_eq!(published.direct_boot(dir.path()), Some(found.clone()));
        // Without a command line, no direct boot.
        assert_eq!(disk(json!({"kernel": "k", "initrd": "i"})).direct_boot(dir.path()), None);
        // A record of an earlier lago: the files at their absolute place in the store.
        let elsewhere = tempfile::tempdir().unwrap();
        let old = disk(json!({"kernel": kernel, "initrd": initrd, "cmdline": "rw"}));
        assert_eq!(old.direct_boot(elsewhere.path()), Some(found));
    }
}
