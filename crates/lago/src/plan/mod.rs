//! Spec → Plan: every default filled in, every address, MAC, name and file decided.
//!
//! This is the expansion of the original's `_config_net_topology` (reference §3.6) and
//! `_normalize_spec` (§3.7), done as a pure, deterministic function: the same spec and defaults
//! always give the same plan, and nothing on the host is touched. The cross-checks that need the
//! expanded networks (management rules, unknown networks, duplicate or out-of-subnet addresses)
//! are reported here, all at once, as [`Issue`]s.
//!
//! The steps: [`networks`] (management, DNS, subnets), [`vms`] (defaults, checks, placement),
//! [`addresses`] (static and free addresses, names, MACs); [`model`] holds the types and
//! [`records`] their JSON.

mod addresses;
mod ipv6;
mod model;
mod networks;
mod records;
mod vms;

pub use model::{
    DEFAULT_BOOT_TIME_SEC, DEFAULT_MTU, DiskPlan, Net6, NetPlan, NicPlan, Plan, PlanDefaults, SUBNET_OCTETS,
    UPLINK_NAME, VM_PROVIDERS, VmPlan, mac_of, mac_of6, nic_mac, ula_prefix, uplink_mac,
};

use crate::spec::{Issue, Spec};

/// Expands `spec` into a plan, or returns every problem found.
pub fn plan(spec: &Spec, defaults: &PlanDefaults) -> Result<Plan, Vec<Issue>> {
    let mut issues = Vec::new();
    let (mut nets, mgmts) = networks::expand(spec, &mut issues);
    ipv6::expand_nets(spec, &mut nets, &mut issues);
    let mut vms = vms::expand(spec, &nets, &mgmts, defaults, &mut issues);
    ipv6::check(&nets, &vms, &mut issues);
    if !issues.is_empty() {
        return Err(issues);
    }
    addresses::assign(&mut vms, &nets, &mut issues);
    ipv6::assign(&mut vms, &nets, &mut issues);
    if !issues.is_empty() {
        return Err(issues);
    }
    addresses::name_nics(&mut vms, &mut nets);
    ipv6::name_nics(&mut vms, &mut nets, &mut issues);
    if !issues.is_empty() {
        return Err(issues);
    }
    networks::resolve_dns(&mut nets, &mgmts);
    ipv6::resolve_dns(&mut nets);
    Ok(Plan { nets, vms })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use serde_json::json;
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

    const DUAL_STACK: &str = "
domains:
  vm0:
    nics: [{net: lan}, {net: v6}]
  vm1:
    nics: [{net: lan, ip6: '::9'}, {net: v6, ip6: 'fd8f:1:3::20'}]
nets:
  lan: {management: true, ipv6: 'fd8f:1:2::/64'}
  v6: {ipv6: 'fd8f:1:3::/64', ipv4: false, gw6: '::fe'}
";

    #[test]
    fn ipv6_addresses_mirror_ipv4_or_count_from_2_and_have_names() {
        let p = plan_of(DUAL_STACK).unwrap();
        let a = |s: &str| s.parse::<std::net::Ipv6Addr>().unwrap();
        let (lan, v6) = (&p.nets[0], &p.nets[1]);
        assert_eq!(lan.ipv6, Some(Net6 { prefix: a("fd8f:1:2::"), gw6: a("fd8f:1:2::1") }));
        assert_eq!(v6.ipv6, Some(Net6 { prefix: a("fd8f:1:3::"), gw6: a("fd8f:1:3::fe") }));
        // IPv6-only: no subnet, no IPv4 address.
        assert_eq!((v6.gw, p.vms[0].nics[1].ip), (None, None));
        // Dual-stack: the IPv4 address's host part; a static one as written (a host part here).
        assert_eq!(p.vms[0].nics[0].ip6, Some(a("fd8f:1:2::2")));
        assert_eq!(p.vms[1].nics[0].ip6, Some(a("fd8f:1:2::9")));
        assert_eq!(p.vms[1].ip6(), Some(a("fd8f:1:2::9")));
        // IPv6-only: the lowest free from ::2 (statics first).
        assert_eq!(p.vms[0].nics[1].ip6, Some(a("fd8f:1:3::2")));
        assert_eq!(p.vms[1].nics[1].ip6, Some(a("fd8f:1:3::20")));
        // MACs: the IPv4 one where there is one; else from the IPv6 address.
        assert_eq!(p.vms[0].nics[0].mac.as_deref(), Some("54:52:c0:a8:c8:02"));
        assert_eq!(p.vms[0].nics[1].mac.as_deref(), Some("54:52:00:70:00:02"));
        assert_eq!(p.vms[1].nics[1].mac.as_deref(), Some("54:52:00:70:00:20"));
        // Names: the IPv4 ones, AAAA; management networks know them all.
        assert_eq!(lan.resolve6("vm1"), Some(a("fd8f:1:2::9")));
        assert_eq!(v6.resolve6("vm0-v6"), Some(a("fd8f:1:3::2")));
        assert_eq!(v6.resolve("vm0-v6"), None);
        assert!(lan.dns_records6.contains(&("vm1-eth1".into(), a("fd8f:1:3::20"))));
        assert!(v6.dns_records6.is_empty());
        // Records: lago's keys only where there is IPv6.
        let net = lan.to_json();
        assert_eq!(
            (&net["ipv6"], &net["gw6"], &net["gw"]),
            (&json!("fd8f:1:2::/64"), &json!("fd8f:1:2::1"), &json!("192.168.200.1"))
        );
        assert_eq!(net["mapping6"]["vm0"], "fd8f:1:2::2");
        let net = v6.to_json();
        assert!(net.get("gw").is_none() && net["ipv4"] == json!(false), "{net}");
        let vm = p.vms[0].to_json();
        assert_eq!(vm["nics"][1], json!({"net": "v6", "ip6": "fd8f:1:3::2"}));
        assert_eq!(vm["nics"][0], json!({"net": "lan", "ip": "192.168.200.2", "ip6": "fd8f:1:2::2"}));
        let plain = plan_of(TWO_NETS).unwrap();
        for n in &plain.nets {
            let rec = n.to_json();
            assert!(["ipv6", "gw6", "mapping6", "dns_records6"].iter().all(|k| rec.get(*k).is_none()), "{rec}");
        }
        assert!(plain.vms[0].to_json()["nics"][0].get("ip6").is_none());
    }

    #[test]
    fn auto_prefixes_stand_in_until_init_and_ipv6_errors_have_key_paths() {
        let p = plan_of("domains:\n  a: {nics: [{net: x}, {net: y}]}\nnets:\n  x: {ipv6: auto, management: true}\n  y: {ipv6: auto, ipv4: false}\n").unwrap();
        let (x, y) = (p.nets[0].ipv6.unwrap(), p.nets[1].ipv6.unwrap());
        assert_ne!(x.prefix, y.prefix);
        assert_eq!(x.prefix, ula_prefix("", 0));
        assert_eq!(crate::spec::ipv6::host_half(x.gw6), 1);
        let errs = |text: &str| plan_of(text).unwrap_err();
        assert_eq!(
            errs("domains:\n  a: {nics: [{net: n, ip6: '::5'}]}\nnets:\n  n: {}\n"),
            ["domains.a.nics[0].ip6: network \"n\" has no IPv6 (add `ipv6: auto` or `ipv6: PREFIX/64` to nets.n)"]
        );
        assert_eq!(
            errs("domains:\n  a: {nics: [{net: n, ip6: 'fd8f:1:3::5'}]}\nnets:\n  n: {ipv6: 'fd8f:1:2::/64'}\n"),
            ["domains.a.nics[0].ip6: fd8f:1:3::5 is outside the prefix fd8f:1:2::/64 of network \"n\""]
        );
        assert_eq!(
            errs(
                "domains:\n  a: {nics: [{net: n, ip6: '::5'}]}\n  b: {nics: [{net: n, ip6: 'fd8f:1:2::5'}]}\nnets:\n  n: {ipv6: 'fd8f:1:2::/64'}\n"
            ),
            ["domains.b.nics[0].ip6: fd8f:1:2::5 is already assigned to domains.a.nics[0]"]
        );
        assert_eq!(
            errs("domains:\n  a: {nics: [{net: n, ip6: '::1'}]}\nnets:\n  n: {ipv6: auto}\n")[0],
            format!(
                "domains.a.nics[0].ip6: {} is the gateway (gw6) of network \"n\"",
                crate::spec::ipv6::in_prefix(ula_prefix("", 0), 1)
            )
        );
        assert_eq!(
            errs("domains:\n  a: {nics: [{net: n, ip: 192.168.200.5}]}\nnets:\n  n: {ipv6: auto, ipv4: false}\n"),
            ["domains.a.nics[0].ip: network \"n\" is IPv6-only (`ipv4: false`): give the NIC `ip6`, not `ip`"]
        );
        assert_eq!(
            errs(
                "domains:\n  a: {nics: [{net: n}, {net: m}]}\nnets:\n  n: {ipv6: 'fd8f::/64', management: true}\n  m: {ipv6: 'fd8f::/64'}\n"
            ),
            ["nets.m.ipv6: prefix fd8f::/64 is already used by network \"n\""]
        );
        // Two IPv6-only NICs of one VM whose MACs would be one.
        assert_eq!(
            errs(
                "domains:\n  a: {nics: [{net: n, ip6: '::1:5'}, {net: n, ip6: '::2:5'}]}\nnets:\n  n: {ipv6: 'fd8f::/64', ipv4: false}\n"
            ),
            [
                "domains.a.nics[1].ip6: fd8f::2:5 gives the NIC MAC address 54:52:00:72:00:05, which domains.a.nics[0] has (MACs come from the address's prefix and last two bytes: choose another ip6)"
            ]
        );
    }

    #[cfg(feature = "libvirt")]
    #[test]
    fn ipv6_networks_are_lagos_switches_only() {
        assert_eq!(
            plan_of("domains:\n  v: {vm-provider: local-libvirt, nics: [{net: l}]}\nnets:\n  l: {ipv6: auto}\n")
                .unwrap_err(),
            [
                "nets.l.ipv6: IPv6 networks are lago's own switches (local-qemu VMs); network \"l\" has local-libvirt VMs (v)"
            ]
        );
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
