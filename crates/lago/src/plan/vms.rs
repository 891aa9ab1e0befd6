//! The VMs of a plan: their defaults, their management network, their disks, and where they run.

use std::collections::{BTreeMap, BTreeSet};

use super::addresses::net_index;
use super::model::{DEFAULT_BOOT_TIME_SEC, DiskPlan, NetPlan, NicPlan, PlanDefaults, VM_PROVIDERS, VmPlan};
use crate::spec::model::{DEFAULT_MEMORY, DEFAULT_VCPU};
use crate::spec::{DiskSpec, DiskType, Issue, Spec};

/// The VMs of `spec` on `nets` (whose management networks are `mgmts`), with every problem of
/// theirs in `issues`.
pub(super) fn expand(
    spec: &Spec,
    nets: &[NetPlan],
    mgmts: &[String],
    defaults: &PlanDefaults,
    issues: &mut Vec<Issue>,
) -> Vec<VmPlan> {
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
            match net_index(nets, &nic.net) {
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
        let all_nets_known = dom.nics.iter().all(|n| net_index(nets, &n.net).is_some());
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
        // Any name: a VM class of a plugin (`lago.plugins.vm`) when one is installed, the
        // default VM otherwise; the name stays in the record either way.
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
            nics: dom
                .nics
                .iter()
                .map(|n| NicPlan { net: n.net.clone(), ip: None, ip6: None, mac: None, mtu: None })
                .collect(),
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
    check_placement(nets, &vms, defaults, issues);
    vms
}

/// Where a VM runs, as far as its networks are concerned: lago's own switches, or one libvirt host.
fn placement(vm: &VmPlan, defaults: &PlanDefaults) -> Option<String> {
    match vm.vm_provider.as_str() {
        "local-libvirt" => Some(format!("libvirt host {}", vm.libvirt_url.as_deref().unwrap_or(&defaults.libvirt_url))),
        "local-qemu" => Some("local-qemu".into()),
        "openstack" => Some("the OpenStack cloud".into()),
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

fn plan_disk(vm: &str, d: &DiskSpec) -> DiskPlan {
    let format = d.format.clone().unwrap_or_else(|| match d.kind {
        DiskType::File => d
            .path
            .as_deref()
            .or(d.url.as_deref())
            .and_then(|p| std::path::Path::new(p).extension())
            .and_then(|e| e.to_str())
            .filter(|e| crate::spec::model::DISK_FORMATS.contains(e))
            .unwrap_or("raw")
            .to_owned(),
        _ => "qcow2".to_owned(),
    });
    let in_prefix = format!("$LAGO_PREFIX_PATH/images/{vm}_{}.{format}", d.name);
    let path = match (d.kind, &d.path) {
        // Downloaded (the original's `url`): to `path`, else into the prefix.
        (DiskType::File, None) if d.url.is_some() => {
            let url = d.url.as_deref().unwrap_or_default();
            let base = url.rsplit('/').next().filter(|b| !b.is_empty()).unwrap_or(&d.name);
            format!("$LAGO_PREFIX_PATH/images/{base}")
        }
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
