//! The networks of a plan: management networks, DNS, and subnets (`gw` honoured, else the lowest
//! free /24 from 192.168.200.0 upwards).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::addresses::upsert;
use super::model::{DEFAULT_MTU, NetPlan, SUBNET_OCTETS};
use crate::spec::{Issue, NetType, Spec};

/// The networks of `spec`, expanded, and the names of the management networks (sorted).
pub(super) fn expand(spec: &Spec, issues: &mut Vec<Issue>) -> (Vec<NetPlan>, Vec<String>) {
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
            ipv4: n.ipv4,
            ipv6: None,
            mapping6: Vec::new(),
            dns_records6: n.dns_records6.clone(),
            written: n.written.clone(),
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
    // IPv6-only networks (`ipv4: false`) have none.
    for net in nets.iter_mut().filter(|n| n.kind == NetType::Nat && n.gw.is_none() && n.ipv4) {
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
    (nets, mgmts)
}

/// DNS: management networks know every name; the others forward to the last management net.
pub(super) fn resolve_dns(nets: &mut [NetPlan], mgmts: &[String]) {
    let forward = mgmts.last().and_then(|m| nets.iter().find(|n| &n.name == m)).and_then(|n| n.gw);
    let mut all_records = Vec::new();
    for net in nets.iter() {
        for (name, ip) in &net.mapping {
            upsert(&mut all_records, name.clone(), *ip);
        }
    }
    for net in nets.iter_mut() {
        if net.management {
            for (name, ip) in &all_records {
                upsert(&mut net.dns_records, name.clone(), *ip);
            }
        } else {
            net.dns_forward = forward;
        }
    }
}
