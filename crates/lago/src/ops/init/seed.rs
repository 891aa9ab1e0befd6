//! Bootstrap: the NoCloud seed each VM boots with (DESIGN §6), and the environment's SSH keys.
//!
//! The seed is a small FAT image labelled `CIDATA`, written natively (no `mkfs`, no mount), with
//! the three files cloud-init reads (`meta-data`, `user-data`, `network-config` version 2) and,
//! under `lago/`, the same facts as plain files (`hostname`, `authorized_keys`, `hosts`,
//! `interfaces`, `root-password`, `ssh-user`, `modules`, and `interfaces6` for VMs with IPv6) for
//! templates without cloud-init, whose first-boot script only needs a POSIX shell to read them.

use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::host::process::{CommandRunner, Invocation, ProcessError};
use crate::plan::{Plan, UPLINK_NAME, uplink_mac};

/// Size of a seed image.
const SEED_SIZE: usize = 1024 * 1024;

/// Problems writing bootstrap material.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// Building the FAT image failed.
    #[error("Cannot build the bootstrap seed of VM {vm}")]
    Fat {
        /// The VM.
        vm: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading a file failed (the key of `--ssh-key`).
    #[error("Cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing a file failed.
    #[error("Cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `ssh-keygen` failed.
    #[error("Cannot create the SSH key pair {path}")]
    Keygen {
        /// The private key path.
        path: PathBuf,
        /// The failure.
        #[source]
        source: ProcessError,
    },
}

/// Creates the environment's key pair `<dir>/id_rsa{,.pub}` (ed25519: instant to create, and
/// accepted by OpenSSH and dropbear alike; the file name is the original's).
pub fn create_ssh_keys(dir: &Path, comment: &str, runner: &dyn CommandRunner) -> Result<PathBuf, BootstrapError> {
    let key = crate::prefix::Layout::new(dir).ssh_key();
    let inv = Invocation::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"]).arg(&key);
    runner.run(&inv).map_err(|source| BootstrapError::Keygen { path: key.clone(), source })?;
    Ok(key)
}

/// Makes `key` (a private key, its public half in `<key>.pub`, else derived with `ssh-keygen -y`)
/// the environment's key pair `<dir>/id_rsa{,.pub}`: `init --ssh-key`, for images that already
/// trust it.
pub fn copy_ssh_keys(key: &Path, dir: &Path, runner: &dyn CommandRunner) -> Result<(), BootstrapError> {
    use std::os::unix::fs::OpenOptionsExt;
    let layout = crate::prefix::Layout::new(dir);
    let (private, public) = (layout.ssh_key(), layout.ssh_public_key());
    let read = |p: &Path| std::fs::read(p).map_err(|source| BootstrapError::Read { path: p.to_owned(), source });
    let write = |p: &Path, data: &[u8], mode: u32| {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(p)
            .and_then(|mut f| std::io::Write::write_all(&mut f, data))
            .map_err(|source| BootstrapError::Write { path: p.to_owned(), source })
    };
    write(&private, &read(key)?, 0o600)?;
    let pub_file = PathBuf::from(format!("{}.pub", key.display()));
    let public_key = if pub_file.is_file() {
        read(&pub_file)?
    } else {
        let inv = Invocation::new("ssh-keygen").args(["-y", "-f"]).arg(&private);
        runner.run(&inv).map_err(|source| BootstrapError::Keygen { path: key.to_owned(), source })?.stdout
    };
    write(&public, &public_key, 0o644)
}

/// `/etc/hosts` lines for every VM of the environment: `<ip> <vm>.<domain> <vm> ...`, the IPv4
/// addresses first, then the IPv6 ones (AAAA: every name that has one).
pub fn hosts_lines(plan: &Plan) -> Vec<String> {
    let mut lines: Vec<(IpAddr, Vec<String>)> = Vec::new();
    let mut add = |ip: IpAddr, name: String| match lines.iter_mut().find(|(i, _)| *i == ip) {
        Some((_, names)) if !names.contains(&name) => names.push(name),
        Some(_) => {}
        None => lines.push((ip, vec![name])),
    };
    for vm in &plan.vms {
        let domain = plan.nets.iter().find(|n| n.name == vm.mgmt_net).and_then(|n| n.dns_domain_name.clone());
        if let Some(ip) = vm.ip() {
            if let Some(d) = &domain {
                add(ip.into(), format!("{}.{d}", vm.name));
            }
            add(ip.into(), vm.name.clone());
        }
    }
    for net in &plan.nets {
        for (name, ip) in net.mapping.iter().chain(net.dns_records.iter()) {
            add((*ip).into(), name.clone());
        }
    }
    for vm in &plan.vms {
        let domain = plan.nets.iter().find(|n| n.name == vm.mgmt_net).and_then(|n| n.dns_domain_name.clone());
        if let Some(ip6) = vm.ip6() {
            if let Some(d) = &domain {
                add(ip6.into(), format!("{}.{d}", vm.name));
            }
            add(ip6.into(), vm.name.clone());
        }
    }
    for net in &plan.nets {
        for (name, ip6) in net.mapping6.iter().chain(net.dns_records6.iter()) {
            add((*ip6).into(), name.clone());
        }
    }
    lines.into_iter().map(|(ip, names)| format!("{ip} {}", names.join(" "))).collect()
}

fn yaml_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The files of one VM's seed, as (name, content).
pub fn seed_files(plan: &Plan, vm_index: usize, env_uuid: &str, public_key: &str) -> Vec<(String, String)> {
    let vm = &plan.vms[vm_index];
    let domain = plan
        .nets
        .iter()
        .find(|n| n.name == vm.mgmt_net)
        .and_then(|n| n.dns_domain_name.clone())
        .unwrap_or_else(|| "lago.local".into());
    let fqdn = format!("{}.{domain}", vm.name);
    let key = public_key.trim();
    let hosts = hosts_lines(plan);
    let mut etc_hosts = String::from("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n");
    for l in &hosts {
        etc_hosts.push_str(l);
        etc_hosts.push('\n');
    }
    let meta = format!("instance-id: {env_uuid}-{}\nlocal-hostname: {}\n", vm.name, vm.name);

    let mut user = String::from("#cloud-config\n");
    user.push_str(&format!(
        "hostname: {}\nfqdn: {fqdn}\nprefer_fqdn_over_hostname: false\nmanage_etc_hosts: false\n",
        vm.name
    ));
    user.push_str("disable_root: false\nssh_pwauth: true\n");
    user.push_str(&format!(
        "chpasswd:\n  expire: false\n  users:\n    - name: root\n      password: {}\n      type: text\n",
        yaml_quote(&vm.ssh_password)
    ));
    user.push_str(&format!(
        "users:\n  - name: root\n    lock_passwd: false\n    ssh_authorized_keys:\n      - {}\n",
        yaml_quote(key)
    ));
    if vm.ssh_user != "root" {
        user.push_str(&format!(
            "  - name: {}\n    shell: /bin/sh\n    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n    lock_passwd: true\n    ssh_authorized_keys:\n      - {}\n",
            yaml_quote(&vm.ssh_user),
            yaml_quote(key)
        ));
    }
    user.push_str("write_files:\n  - path: /etc/hosts\n    permissions: \"0644\"\n    content: |\n");
    for l in etc_hosts.lines() {
        user.push_str(&format!("      {l}\n"));
    }

    // lago's own VMs leave through their uplink (DHCP from qemu); libvirt's VMs through their
    // management network's gateway, which also answers DNS; OpenStack's have no uplink either
    // (lago reaches them on a port of the cloud's management network, added at start).
    let libvirt = vm.vm_provider == "local-libvirt" || vm.vm_provider == "openstack";
    let mut net = String::from("version: 2\nethernets:\n");
    let mut interfaces = String::new();
    let mut interfaces6 = String::new();
    for (i, nic) in vm.nics.iter().enumerate() {
        let Some(mac) = &nic.mac else { continue };
        let name = format!("eth{i}");
        net.push_str(&format!(
            "  {name}:\n    match:\n      macaddress: \"{mac}\"\n    set-name: {name}\n    dhcp4: false\n"
        ));
        if nic.ip6.is_some() {
            net.push_str("    dhcp6: false\n");
        }
        net.push_str("    addresses:\n");
        if let Some(ip) = nic.ip {
            net.push_str(&format!("      - {ip}/24\n"));
        }
        if let Some(ip6) = nic.ip6 {
            // Static, so no DHCPv6 nor router advertisement is waited for; the prefix's route
            // comes with the address.
            net.push_str(&format!("      - \"{ip6}/64\"\n"));
            interfaces6.push_str(&format!("{name} {ip6}/64\n"));
        }
        let Some(ip) = nic.ip else {
            // IPv6 only: the NIC is named and brought up, with no IPv4 address.
            let mtu = nic.mtu.unwrap_or(crate::plan::DEFAULT_MTU);
            interfaces.push_str(&format!("{mac} {name} none {mtu}\n"));
            if let Some(mtu) = nic.mtu {
                net.push_str(&format!("    mtu: {mtu}\n"));
            }
            continue;
        };
        if let Some(mtu) = nic.mtu {
            net.push_str(&format!("    mtu: {mtu}\n"));
        }
        let gateway = plan
            .nets
            .iter()
            .find(|n| n.name == nic.net)
            .and_then(|n| n.gw)
            .filter(|_| libvirt && nic.net == vm.mgmt_net);
        let mtu = nic.mtu.unwrap_or(crate::plan::DEFAULT_MTU);
        match gateway {
            Some(gw) => {
                net.push_str(&format!(
                    "    routes:\n      - to: default\n        via: {gw}\n    nameservers:\n      addresses: [{gw}]\n"
                ));
                interfaces.push_str(&format!("{mac} {name} {ip}/24 {mtu} {gw}\n"));
            }
            None => interfaces.push_str(&format!("{mac} {name} {ip}/24 {mtu}\n")),
        }
    }
    if !libvirt {
        let uplink = uplink_mac(vm.ip(), vm_index);
        net.push_str(&format!(
            "  {UPLINK_NAME}:\n    match:\n      macaddress: \"{uplink}\"\n    set-name: {UPLINK_NAME}\n    dhcp4: true\n"
        ));
        interfaces.push_str(&format!("{uplink} {UPLINK_NAME} dhcp 1500\n"));
    }

    // Templates without cloud-init load IDE and CD-ROM drivers only when asked to.
    let needs_ide = vm.disks.iter().any(|d| d.spec.dev.starts_with("hd") || d.format == "iso");
    let modules = if needs_ide { "ata_piix sr_mod isofs\n" } else { "" };
    let mut files = vec![
        ("meta-data".into(), meta),
        ("user-data".into(), user),
        ("network-config".into(), net),
        ("lago/hostname".into(), format!("{fqdn}\n")),
        ("lago/authorized_keys".into(), format!("{key}\n")),
        ("lago/hosts".into(), etc_hosts),
        ("lago/interfaces".into(), interfaces),
        ("lago/root-password".into(), format!("{}\n", vm.ssh_password)),
        ("lago/ssh-user".into(), format!("{}\n", vm.ssh_user)),
        ("lago/modules".into(), modules.into()),
    ];
    // lago's own, for VMs with IPv6: `<name> <address>/64` per NIC.
    if !interfaces6.is_empty() {
        files.push(("lago/interfaces6".into(), interfaces6));
    }
    files
}

/// Builds a FAT image labelled `CIDATA` holding `files`.
pub fn fat_image(files: &[(String, String)]) -> std::io::Result<Vec<u8>> {
    let mut disk = Cursor::new(vec![0u8; SEED_SIZE]);
    fatfs::format_volume(
        &mut disk,
        fatfs::FormatVolumeOptions::new().volume_label(*b"CIDATA     ").fat_type(fatfs::FatType::Fat12),
    )?;
    disk.seek(SeekFrom::Start(0))?;
    {
        let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new())?;
        for (name, content) in files {
            let root = fs.root_dir();
            if let Some((dir, _)) = name.rsplit_once('/')
                && root.open_dir(dir).is_err()
            {
                root.create_dir(dir)?;
            }
            let mut f = root.create_file(name)?;
            f.truncate()?;
            f.write_all(content.as_bytes())?;
        }
        fs.unmount()?;
    }
    Ok(disk.into_inner())
}

/// Writes a seed to `path`, leaving the zero blocks as holes.
pub fn write_seed(path: &Path, vm: &str, files: &[(String, String)]) -> Result<(), BootstrapError> {
    let image = fat_image(files).map_err(|source| BootstrapError::Fat { vm: vm.to_owned(), source })?;
    let werr = |source| BootstrapError::Write { path: path.to_owned(), source };
    let mut f = std::fs::File::create(path).map_err(werr)?;
    for (i, block) in image.chunks(4096).enumerate() {
        if block.iter().any(|b| *b != 0) {
            f.seek(SeekFrom::Start((i * 4096) as u64)).map_err(werr)?;
            f.write_all(block).map_err(werr)?;
        }
    }
    f.set_len(image.len() as u64).map_err(werr)?;
    Ok(())
}

/// Reads one file back from a seed image (for tests and `lago` diagnostics).
pub fn read_seed_file(image: &[u8], name: &str) -> std::io::Result<String> {
    let mut disk = Cursor::new(image.to_vec());
    let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new())?;
    let mut s = String::new();
    fs.root_dir().open_file(name)?.read_to_string(&mut s)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanDefaults, plan};

    #[test]
    fn seed_roundtrip_and_content() {
        let spec = crate::spec::parse("domains:\n  vm0: {nics: [{net: a}, {net: b}], ssh-user: tester}\n  vm1: {nics: [{net: a}]}\nnets:\n  a: {management: true, dns_domain_name: ex.test}\n  b: {mtu: 9000}\n", Path::new("x.yaml")).unwrap();
        let p = plan(&spec, &PlanDefaults::default()).unwrap();
        let files = seed_files(&p, 0, "u", "ssh-ed25519 AAAA lago");
        let image = fat_image(&files).unwrap();
        assert_eq!(read_seed_file(&image, "lago/hostname").unwrap(), "vm0.ex.test\n");
        assert_eq!(
            read_seed_file(&image, "lago/interfaces").unwrap(),
            "54:52:c0:a8:c8:02 eth0 192.168.200.2/24 1500\n54:52:c0:a8:c9:02 eth1 192.168.201.2/24 9000\n52:54:c0:a8:c8:02 lago-uplink dhcp 1500\n"
        );
        let hosts = read_seed_file(&image, "lago/hosts").unwrap();
        assert!(hosts.contains("192.168.200.3 vm1.ex.test vm1 vm1-eth0"), "{hosts}");
        let user = read_seed_file(&image, "user-data").unwrap();
        assert!(user.starts_with("#cloud-config\n") && user.contains("- name: \"tester\""), "{user}");
        let net = read_seed_file(&image, "network-config").unwrap();
        assert!(net.contains("    mtu: 9000\n"), "{net}");
    }

    #[test]
    fn ipv6_addresses_are_static_and_named_and_an_ipv6_only_nic_has_no_ipv4() {
        let spec = crate::spec::parse(
            "domains:\n  vm0: {nics: [{net: a}, {net: b}]}\n  vm1: {nics: [{net: a}, {net: b}]}\nnets:\n  a: {management: true, ipv6: 'fd8f:1:2::/64'}\n  b: {ipv6: 'fd8f:1:3::/64', ipv4: false, mtu: 9000}\n",
            Path::new("x.yaml"),
        )
        .unwrap();
        let p = plan(&spec, &PlanDefaults::default()).unwrap();
        let files = seed_files(&p, 0, "u", "ssh-ed25519 AAAA lago");
        let get = |name: &str| files.iter().find(|(n, _)| n == name).map(|f| f.1.clone()).unwrap_or_default();
        assert_eq!(
            get("lago/interfaces"),
            "54:52:c0:a8:c8:02 eth0 192.168.200.2/24 1500\n54:52:00:70:00:02 eth1 none 9000\n52:54:c0:a8:c8:02 lago-uplink dhcp 1500\n"
        );
        assert_eq!(get("lago/interfaces6"), "eth0 fd8f:1:2::2/64\neth1 fd8f:1:3::2/64\n");
        let hosts = get("lago/hosts");
        assert!(hosts.contains("\n192.168.200.3 vm1.lago.local vm1 vm1-eth0 vm1-a vm1-a-0\n"), "{hosts}");
        assert!(hosts.contains("\nfd8f:1:2::3 vm1.lago.local vm1 vm1-eth0 vm1-a vm1-a-0\n"), "{hosts}");
        assert!(hosts.contains("\nfd8f:1:3::3 vm1-eth1 vm1-b vm1-b-0\n"), "{hosts}");
        let net = get("network-config");
        assert!(
            net.contains("    set-name: eth0\n    dhcp4: false\n    dhcp6: false\n    addresses:\n      - 192.168.200.2/24\n      - \"fd8f:1:2::2/64\"\n"),
            "{net}"
        );
        assert!(
            net.contains("    set-name: eth1\n    dhcp4: false\n    dhcp6: false\n    addresses:\n      - \"fd8f:1:3::2/64\"\n    mtu: 9000\n"),
            "{net}"
        );
        // Without IPv6, no such file.
        let spec =
            crate::spec::parse("domains:\n  vm0: {nics: [{net: a}]}\nnets:\n  a: {}\n", Path::new("x.yaml")).unwrap();
        let files = seed_files(&plan(&spec, &PlanDefaults::default()).unwrap(), 0, "u", "k");
        assert!(files.iter().all(|(n, c)| n != "lago/interfaces6" && !c.contains("dhcp6")));
    }

    #[test]
    fn libvirt_vms_have_no_uplink_and_route_through_their_gateway() {
        let spec = crate::spec::parse("domains:\n  vm0: {vm-provider: local-libvirt, nics: [{net: a}, {net: b}]}\nnets:\n  a: {}\n  b: {type: bridge}\n", Path::new("x.yaml")).unwrap();
        let p = plan(&spec, &PlanDefaults::default()).unwrap();
        let files = seed_files(&p, 0, "u", "ssh-ed25519 AAAA lago");
        let get = |name: &str| files.iter().find(|(n, _)| n == name).unwrap().1.clone();
        assert_eq!(get("lago/interfaces"), "54:52:c0:a8:c8:02 eth0 192.168.200.2/24 1500 192.168.200.1\n");
        let net = get("network-config");
        assert!(
            net.contains("      - to: default\n        via: 192.168.200.1\n") && !net.contains(UPLINK_NAME),
            "{net}"
        );
    }
}
