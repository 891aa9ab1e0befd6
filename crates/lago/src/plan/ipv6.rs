//! IPv6 (lago's own): each network's /64 and gateway, each NIC's address (static ones first; a
//! NIC with an IPv4 address gets the same host part, one without the lowest free from `::2`),
//! the MACs of NICs that have no IPv4 address, and the AAAA names of every address.
//!
//! An `ipv6: auto` network is planned on a stand-in prefix until `init` derives the environment's
//! own ([`super::ula_prefix`]) and plans again: nothing but host parts can be written for it, so
//! no check depends on the prefix.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use super::addresses::net_index;
use super::model::{Net6, NetPlan, VmPlan, mac_of6, ula_prefix};
use crate::spec::ipv6::{host_half, in_prefix, outside};
use crate::spec::{Ipv6Spec, Issue, Spec};

/// The environment uuid of the stand-in prefixes of `ipv6: auto` networks before `init`.
const STAND_IN: &str = "";

/// The IPv6 side of every network of `spec` (in the same order as `nets`), and prefixes given
/// twice.
pub(super) fn expand_nets(spec: &Spec, nets: &mut [NetPlan], issues: &mut Vec<Issue>) {
    let mut taken: BTreeMap<Ipv6Addr, String> = BTreeMap::new();
    let mut autos: u16 = 0;
    for (net, written) in nets.iter_mut().zip(&spec.nets) {
        let prefix = match written.ipv6 {
            None => continue,
            Some(Ipv6Spec::Prefix(p)) => {
                if let Some(other) = taken.insert(p, net.name.clone()) {
                    issues.push(Issue::new(
                        &format!("nets.{}.ipv6", net.name),
                        format!("prefix {p}/64 is already used by network {other:?}"),
                    ));
                }
                p
            }
            Some(Ipv6Spec::Auto) => {
                autos += 1;
                ula_prefix(STAND_IN, autos - 1)
            }
        };
        let gw6 = in_prefix(prefix, written.gw6.map_or(1, host_half));
        net.ipv6 = Some(Net6 { prefix, gw6 });
    }
}

/// What IPv4 keys say of IPv6-only networks, and where IPv6 networks cannot be: a static `ip`
/// on an IPv6-only network, an IPv6 network of `local-libvirt` VMs (libvirt's networks are the
/// original's, IPv4 only).
pub(super) fn check(nets: &[NetPlan], vms: &[VmPlan], issues: &mut Vec<Issue>) {
    for vm in vms {
        for (i, nic) in vm.spec.nics.iter().enumerate() {
            let Some(net) = net_index(nets, &nic.net).map(|n| &nets[n]) else { continue };
            if nic.ip.is_some() && !net.ipv4 {
                issues.push(Issue::new(
                    &format!("domains.{}.nics[{i}].ip", vm.name),
                    format!("network {:?} is IPv6-only (`ipv4: false`): give the NIC `ip6`, not `ip`", net.name),
                ));
            }
        }
    }
    for net in nets.iter().filter(|n| n.ipv6.is_some() || !n.ipv4) {
        let libvirt: Vec<&str> = vms
            .iter()
            .filter(|v| v.vm_provider == "local-libvirt" && v.nics.iter().any(|n| n.net == net.name))
            .map(|v| v.name.as_str())
            .collect();
        if !libvirt.is_empty() {
            let key = if net.ipv6.is_some() { "ipv6" } else { "ipv4" };
            issues.push(Issue::new(
                &format!("nets.{}.{key}", net.name),
                format!(
                    "IPv6 networks are lago's own switches (local-qemu VMs); network {:?} has local-libvirt VMs ({})",
                    net.name,
                    libvirt.join(", ")
                ),
            ));
        }
    }
}

/// Gives every NIC on a network with IPv6 its address, or says why it cannot have one.
pub(super) fn assign(vms: &mut [VmPlan], nets: &[NetPlan], issues: &mut Vec<Issue>) {
    // Per network: host part → who has it (the gateway first).
    let mut used: BTreeMap<String, BTreeMap<u64, String>> = nets
        .iter()
        .filter_map(|n| n.ipv6.map(|v6| (n.name.clone(), BTreeMap::from([(host_half(v6.gw6), String::new())]))))
        .collect();
    for vm in vms.iter_mut() {
        for (i, nic) in vm.nics.iter_mut().enumerate() {
            let Some(ip6) = vm.spec.nics[i].ip6 else { continue };
            let key = format!("domains.{}.nics[{i}].ip6", vm.name);
            let Some(net) = net_index(nets, &nic.net).map(|n| &nets[n]) else { continue };
            let Some(v6) = net.ipv6 else {
                issues.push(Issue::new(
                    &key,
                    format!(
                        "network {:?} has no IPv6 (add `ipv6: auto` or `ipv6: PREFIX/64` to nets.{})",
                        net.name, net.name
                    ),
                ));
                continue;
            };
            if let Some(why) = outside(ip6, v6.prefix) {
                issues.push(Issue::new(&key, format!("{why} of network {:?}", net.name)));
                continue;
            }
            let addr = in_prefix(v6.prefix, host_half(ip6));
            let owners = used.entry(net.name.clone()).or_default();
            match owners.get(&host_half(addr)) {
                Some(other) if other.is_empty() => {
                    issues.push(Issue::new(&key, format!("{addr} is the gateway (gw6) of network {:?}", net.name)));
                }
                Some(other) => issues.push(Issue::new(&key, format!("{addr} is already assigned to {other}"))),
                None => {
                    owners.insert(host_half(addr), format!("domains.{}.nics[{i}]", vm.name));
                    nic.ip6 = Some(addr);
                }
            }
        }
    }
    for vm in vms.iter_mut() {
        for (i, nic) in vm.nics.iter_mut().enumerate() {
            let Some(v6) = net_index(nets, &nic.net).and_then(|n| nets[n].ipv6) else { continue };
            if nic.ip6.is_some() || vm.spec.nics[i].ip6.is_some() {
                continue;
            }
            let owners = used.entry(nic.net.clone()).or_default();
            // The IPv4 address's host part, when it is free; else the lowest free from ::2.
            let mirrored = nic.ip.map(|ip| u64::from(ip.octets()[3])).filter(|h| *h != 0 && !owners.contains_key(h));
            let Some(host) = mirrored.or_else(|| (2..=u64::from(u16::MAX)).find(|h| !owners.contains_key(h))) else {
                issues.push(Issue::new(
                    &format!("domains.{}.nics[{i}]", vm.name),
                    format!("network {:?} has no free IPv6 address left", nic.net),
                ));
                continue;
            };
            owners.insert(host, format!("domains.{}.nics[{i}]", vm.name));
            nic.ip6 = Some(in_prefix(v6.prefix, host));
        }
    }
}

/// The MACs of NICs with an IPv6 address and no IPv4 one ([`mac_of6`]), which must differ within
/// a VM and within a network; the AAAA names of every IPv6 address (`vm`, `vm-eth0`, `vm-net`,
/// `vm-net-0`, as the IPv4 ones).
pub(super) fn name_nics(vms: &mut [VmPlan], nets: &mut [NetPlan], issues: &mut Vec<Issue>) {
    let mut by_net: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for vm in vms.iter_mut() {
        let mut in_vm: BTreeMap<String, String> = BTreeMap::new();
        let mut per_net: BTreeMap<String, usize> = BTreeMap::new();
        for (idx, nic) in vm.nics.iter_mut().enumerate() {
            let who = format!("domains.{}.nics[{idx}]", vm.name);
            if let (None, Some(ip6)) = (&nic.mac, nic.ip6) {
                let mac = mac_of6(ip6);
                let clash = in_vm.get(&mac).or_else(|| by_net.get(&nic.net).and_then(|m| m.get(&mac)));
                if let Some(other) = clash {
                    issues.push(Issue::new(
                        &format!("{who}.ip6"),
                        format!(
                            "{ip6} gives the NIC MAC address {mac}, which {other} has (MACs come from the address's prefix and last two bytes: choose another ip6)"
                        ),
                    ));
                }
                nic.mac = Some(mac);
            }
            if let Some(mac) = &nic.mac {
                in_vm.insert(mac.clone(), who.clone());
                by_net.entry(nic.net.clone()).or_default().insert(mac.clone(), who);
            }
            let Some(ip6) = nic.ip6 else { continue };
            let Some(net) = net_index(nets, &nic.net).map(|n| &mut nets[n]) else { continue };
            upsert(&mut net.mapping6, format!("{}-eth{idx}", vm.name), ip6);
            if nic.net == vm.mgmt_net {
                upsert(&mut net.mapping6, vm.name.clone(), ip6);
            }
            let by_name = format!("{}-{}", vm.name, nic.net);
            let n = per_net.entry(nic.net.clone()).or_insert(0);
            if *n == 0 {
                upsert(&mut net.mapping6, by_name.clone(), ip6);
            }
            upsert(&mut net.mapping6, format!("{by_name}-{n}"), ip6);
            *n += 1;
        }
    }
}

/// AAAA records: management networks know every IPv6 name of every network.
pub(super) fn resolve_dns(nets: &mut [NetPlan]) {
    let mut all = Vec::new();
    for net in nets.iter() {
        for (name, ip) in &net.mapping6 {
            upsert(&mut all, name.clone(), *ip);
        }
    }
    for net in nets.iter_mut().filter(|n| n.management) {
        for (name, ip) in &all {
            upsert(&mut net.dns_records6, name.clone(), *ip);
        }
    }
}

fn upsert(map: &mut Vec<(String, Ipv6Addr)>, name: String, ip: Ipv6Addr) {
    match map.iter_mut().find(|(n, _)| *n == name) {
        Some(entry) => entry.1 = ip,
        None => map.push((name, ip)),
    }
}
