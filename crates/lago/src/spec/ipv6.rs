//! The IPv6 keys of an init file (lago's own): a network's `ipv6` (a /64 prefix, or `auto`),
//! `gw6` and `ipv4: false` (IPv6-only), and a NIC's `ip6`.
//!
//! What can be checked on one mapping is checked here, each problem at its key path; what needs
//! the whole environment (an `ip6` on a network without `ipv6`, addresses outside their prefix or
//! given twice) is [`crate::plan`]'s.

use std::net::Ipv6Addr;

use serde_json::{Map, Value};

use super::Issue;
use super::model::{boolean, expected};

/// What lago says a network's `ipv6` may be.
const EXPECTED_PREFIX: &str = "`auto` or a /64 prefix such as fd8f:1:2::/64";

/// The IPv6 side of a network, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Spec {
    /// `ipv6: PREFIX/64`: the prefix (its host half zero).
    Prefix(Ipv6Addr),
    /// `ipv6: auto`: a unique local /64 of lago's choice, derived from the environment at `init`.
    Auto,
}

/// A network's IPv6 keys, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetIpv6 {
    /// `ipv6`.
    pub ipv6: Option<Ipv6Spec>,
    /// `gw6`: a whole address in the prefix, or a host part only (`::1`).
    pub gw6: Option<Ipv6Addr>,
    /// `ipv4` (`false`: the network is IPv6-only).
    pub ipv4: bool,
}

impl Default for NetIpv6 {
    fn default() -> Self {
        Self { ipv6: None, gw6: None, ipv4: true }
    }
}

/// The upper 64 bits of `a` (its network half).
pub fn network_half(a: Ipv6Addr) -> u64 {
    (u128::from(a) >> 64) as u64
}

/// The lower 64 bits of `a` (its host half, the interface identifier).
pub fn host_half(a: Ipv6Addr) -> u64 {
    u128::from(a) as u64
}

/// The address of host part `host` in the /64 `prefix`.
pub fn in_prefix(prefix: Ipv6Addr, host: u64) -> Ipv6Addr {
    Ipv6Addr::from((u128::from(prefix) & !u128::from(u64::MAX)) | u128::from(host))
}

/// Whether `a` is a host part only (`::5`): its network half is zero, so it takes its network's
/// prefix, whatever that is (the one way to name an address on an `ipv6: auto` network).
pub fn is_host_part(a: Ipv6Addr) -> bool {
    network_half(a) == 0
}

/// Why `prefix` cannot be a network's prefix, if it cannot.
fn unusable(prefix: Ipv6Addr) -> Option<&'static str> {
    let first = prefix.segments()[0];
    if network_half(prefix) == 0 {
        Some("it is in ::/64 (unspecified, loopback and IPv4-compatible addresses)")
    } else if first & 0xff00 == 0xff00 {
        Some("it is a multicast prefix (ff00::/8)")
    } else if first & 0xffc0 == 0xfe80 {
        Some("it is link-local (fe80::/10: every NIC has its own)")
    } else {
        None
    }
}

/// Reads `ipv6`, `gw6` and `ipv4` of the network mapping `map` at `path`.
pub(super) fn read_net(map: &Map<String, Value>, path: &str, issues: &mut Vec<Issue>) -> NetIpv6 {
    let ipv6 = map.get("ipv6").and_then(|v| read_prefix(&format!("{path}.ipv6"), v, issues));
    let gw6 = map.get("gw6").and_then(|v| address(&format!("{path}.gw6"), v, issues));
    let ipv4 = map.get("ipv4").and_then(|v| boolean(&format!("{path}.ipv4"), v, issues)).unwrap_or(true);
    let add = "add `ipv6: auto` or `ipv6: PREFIX/64`";
    match (ipv6, gw6) {
        (None, Some(_)) if !map.contains_key("ipv6") => {
            issues.push(Issue::new(&format!("{path}.gw6"), format!("the network has no `ipv6` ({add})")));
        }
        (Some(Ipv6Spec::Auto), Some(gw)) if !is_host_part(gw) => issues.push(Issue::new(
            &format!("{path}.gw6"),
            format!(
                "{gw} is a whole address, and with `ipv6: auto` the prefix is lago's choice (give a host part such as ::1)"
            ),
        )),
        (Some(Ipv6Spec::Prefix(p)), Some(gw)) => {
            if let Some(why) = outside(gw, p) {
                issues.push(Issue::new(&format!("{path}.gw6"), why));
            } else if host_half(gw) == 0 {
                issues.push(Issue::new(
                    &format!("{path}.gw6"),
                    format!("{} is the prefix's own address (expected a host part other than 0)", in_prefix(p, 0)),
                ));
            }
        }
        (Some(Ipv6Spec::Auto), Some(gw)) if host_half(gw) == 0 => {
            issues.push(Issue::new(&format!("{path}.gw6"), "host part 0 is the prefix's own address (expected ::1 or another)"));
        }
        _ => {}
    }
    if !ipv4 {
        if ipv6.is_none() && !map.contains_key("ipv6") {
            issues.push(Issue::new(&format!("{path}.ipv4"), format!("a network without IPv4 needs IPv6 ({add})")));
        }
        for key in ["gw", "dhcp"] {
            if map.contains_key(key) {
                issues.push(Issue::new(
                    &format!("{path}.{key}"),
                    format!("`ipv4: false` makes the network IPv6-only: it has no `{key}` (remove one of the two)"),
                ));
            }
        }
    }
    NetIpv6 { ipv6, gw6, ipv4 }
}

/// Reads a NIC's `ip6` at `path` (the NIC's key path).
pub(super) fn read_nic(map: &Map<String, Value>, path: &str, issues: &mut Vec<Issue>) -> Option<Ipv6Addr> {
    let key = format!("{path}.ip6");
    let ip6 = map.get("ip6").and_then(|v| address(&key, v, issues))?;
    if host_half(ip6) == 0 {
        issues.push(Issue::new(&key, format!("{ip6} is a prefix's own address (expected a host part other than 0)")));
        return None;
    }
    Some(ip6)
}

/// Why `a` (a whole address, or a host part only) is not in `prefix`, if it is not.
pub fn outside(a: Ipv6Addr, prefix: Ipv6Addr) -> Option<String> {
    (!is_host_part(a) && network_half(a) != network_half(prefix))
        .then(|| format!("{a} is outside the prefix {prefix}/64"))
}

/// An IPv6 address at `path`.
fn address(path: &str, v: &Value, issues: &mut Vec<Issue>) -> Option<Ipv6Addr> {
    match v.as_str().map(|s| s.trim().parse::<Ipv6Addr>()) {
        Some(Ok(a)) => Some(a),
        _ => {
            issues.push(expected(path, "an IPv6 address such as fd8f:1:2::5 (or a host part such as ::5)", v));
            None
        }
    }
}

/// `auto`, or a /64 prefix with its host half zero.
fn read_prefix(path: &str, v: &Value, issues: &mut Vec<Issue>) -> Option<Ipv6Spec> {
    let Some(text) = v.as_str().map(str::trim) else {
        issues.push(expected(path, EXPECTED_PREFIX, v));
        return None;
    };
    if text == "auto" {
        return Some(Ipv6Spec::Auto);
    }
    let (addr, len) = match text.split_once('/').map(|(a, l)| (a.parse::<Ipv6Addr>(), l.parse::<u8>())) {
        Some((Ok(a), Ok(l))) if l <= 128 => (a, l),
        Some((Ok(_), _)) => {
            issues.push(Issue::new(
                path,
                format!("{text:?}: the prefix length is not a number from 0 to 128 (expected {EXPECTED_PREFIX})"),
            ));
            return None;
        }
        None if text.parse::<Ipv6Addr>().is_ok() => {
            issues.push(Issue::new(path, format!("{text:?} has no prefix length (expected {text}/64)")));
            return None;
        }
        _ => {
            issues.push(expected(path, EXPECTED_PREFIX, v));
            return None;
        }
    };
    let problem = if len != 64 {
        Some(format!("{text} is a /{len}: lago's IPv6 networks are /64 (expected {EXPECTED_PREFIX})"))
    } else if host_half(addr) != 0 {
        Some(format!("{text} has host bits set (expected {}/64)", in_prefix(addr, 0)))
    } else {
        unusable(addr).map(|why| format!("{text} is not a prefix a network can use: {why}"))
    };
    match problem {
        Some(why) => {
            issues.push(Issue::new(path, why));
            None
        }
        None => Some(Ipv6Spec::Prefix(addr)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(net: Value) -> (NetIpv6, Vec<String>) {
        let mut issues = Vec::new();
        let got = read_net(net.as_object().unwrap(), "nets.n", &mut issues);
        (got, issues.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn prefixes_are_slash_64_or_auto() {
        let p = |s: &str| Ipv6Spec::Prefix(s.parse().unwrap());
        assert_eq!(read(json!({"ipv6": "fd8f:1:2::/64"})).0.ipv6, Some(p("fd8f:1:2::")));
        assert_eq!(read(json!({"ipv6": "auto"})).0.ipv6, Some(Ipv6Spec::Auto));
        let errors = |v: Value| read(json!({"ipv6": v})).1;
        assert_eq!(
            errors(json!("fd8f:1::/48")),
            [
                "nets.n.ipv6: fd8f:1::/48 is a /48: lago's IPv6 networks are /64 (expected `auto` or a /64 prefix such as fd8f:1:2::/64)"
            ]
        );
        assert_eq!(
            errors(json!("fd8f:1:2::5/64")),
            ["nets.n.ipv6: fd8f:1:2::5/64 has host bits set (expected fd8f:1:2::/64)"]
        );
        assert_eq!(
            errors(json!("fd8f:1:2::")),
            ["nets.n.ipv6: \"fd8f:1:2::\" has no prefix length (expected fd8f:1:2::/64)"]
        );
        assert!(errors(json!("fe80::/64"))[0].contains("link-local"));
        assert!(errors(json!("ff02::/64"))[0].contains("multicast"));
        assert!(errors(json!("::/64"))[0].contains("::/64"));
        assert!(errors(json!("fd8f::/x"))[0].contains("prefix length"));
        assert_eq!(
            errors(json!(6)),
            ["nets.n.ipv6: expected `auto` or a /64 prefix such as fd8f:1:2::/64, found the number 6"]
        );
    }

    #[test]
    fn gw6_is_in_the_prefix_and_ipv4_false_has_no_ipv4_keys() {
        assert_eq!(read(json!({"ipv6": "fd8f:1:2::/64", "gw6": "fd8f:1:2::fe"})).1, Vec::<String>::new());
        assert_eq!(read(json!({"ipv6": "auto", "gw6": "::fe"})).1, Vec::<String>::new());
        assert_eq!(
            read(json!({"ipv6": "fd8f:1:2::/64", "gw6": "fd8f:1:3::1"})).1,
            ["nets.n.gw6: fd8f:1:3::1 is outside the prefix fd8f:1:2::/64"]
        );
        assert!(read(json!({"ipv6": "auto", "gw6": "fd8f::1"})).1[0].contains("lago's choice"));
        assert_eq!(
            read(json!({"gw6": "fd8f::1"})).1,
            ["nets.n.gw6: the network has no `ipv6` (add `ipv6: auto` or `ipv6: PREFIX/64`)"]
        );
        assert_eq!(
            read(json!({"ipv4": false})).1,
            ["nets.n.ipv4: a network without IPv4 needs IPv6 (add `ipv6: auto` or `ipv6: PREFIX/64`)"]
        );
        let (got, errors) = read(json!({"ipv4": false, "ipv6": "auto", "gw": "192.168.200.1"}));
        assert!(!got.ipv4);
        assert_eq!(
            errors,
            ["nets.n.gw: `ipv4: false` makes the network IPv6-only: it has no `gw` (remove one of the two)"]
        );
    }
}
