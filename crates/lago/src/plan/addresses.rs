//! Addresses: static ones first (only the last octet counts on the original's subnets), then the
//! lowest free `.2`-`.254` for the others, VMs in file order and NICs in list order; then the
//! names of each address and the NICs' MACs and MTUs.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::model::{DEFAULT_MTU, NetPlan, SUBNET_OCTETS, VmPlan, mac_of};
use crate::spec::Issue;

/// Gives every NIC of `vms` on a network with a subnet its address, or says why it cannot have one.
pub(super) fn assign(vms: &mut [VmPlan], nets: &[NetPlan], issues: &mut Vec<Issue>) {
    let mut used: BTreeMap<String, BTreeMap<u8, String>> = BTreeMap::new();
    for vm in vms.iter_mut() {
        for (i, nic) in vm.nics.iter_mut().enumerate() {
            let Some(ip) = vm.spec.nics[i].ip else { continue };
            let key = format!("domains.{}.nics[{i}].ip", vm.name);
            let net = &nets[net_index(nets, &nic.net).unwrap_or_default()];
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
    for vm in vms.iter_mut() {
        for (i, nic) in vm.nics.iter_mut().enumerate() {
            let net = &nets[net_index(nets, &nic.net).unwrap_or_default()];
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
}

/// The names of every address (`vm`, `vm-eth0`, `vm-net`, `vm-net-0`), the NICs' MACs and MTUs.
pub(super) fn name_nics(vms: &mut [VmPlan], nets: &mut [NetPlan]) {
    for vm in vms.iter_mut() {
        let mut per_net: BTreeMap<String, usize> = BTreeMap::new();
        for (idx, nic) in vm.nics.iter_mut().enumerate() {
            let ni = net_index(nets, &nic.net).unwrap_or_default();
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

pub(super) fn upsert(map: &mut Vec<(String, Ipv4Addr)>, name: String, ip: Ipv4Addr) {
    match map.iter_mut().find(|(n, _)| *n == name) {
        Some(entry) => entry.1 = ip,
        None => map.push((name, ip)),
    }
}

pub(super) fn net_index(nets: &[NetPlan], name: &str) -> Option<usize> {
    nets.iter().position(|n| n.name == name)
}

pub(super) fn subnet_str(gw: Ipv4Addr) -> String {
    let o = gw.octets();
    format!("{}.{}.{}", o[0], o[1], o[2])
}
