//! The init file as written, checked key by key.
//!
//! [`read_spec`] walks the generic tree and builds typed [`Spec`] values, recording every problem
//! (unknown key with a "did you mean", wrong type, bad value) as an [`Issue`] with its key path,
//! so that a user sees all mistakes of a file at once.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

use super::Issue;
use super::ipv6::Ipv6Spec;
use super::keys::{self, Origin, Section};
use super::written::Written;
use crate::suggest::did_you_mean;

/// Default memory of a VM, MiB (the original's).
pub const DEFAULT_MEMORY: u64 = 1024;
/// Default number of virtual CPUs (the original's).
pub const DEFAULT_VCPU: u32 = 2;

/// Disk formats lago knows how to attach.
pub const DISK_FORMATS: &[&str] = &["qcow2", "raw", "iso", "vmdk", "vdi", "vhdx", "qed"];
/// Builders usable in `disks[].build`.
pub const BUILDERS: &[&str] = &["virt-customize"];
/// Service providers usable in `service_provider`.
pub const SERVICE_PROVIDERS: &[&str] = &["systemd", "sysvinit", "systemdcontainer"];

/// The whole init file.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// VMs, in file order.
    pub domains: Vec<DomainSpec>,
    /// Networks, in file order.
    pub nets: Vec<NetSpec>,
}

/// One entry of `domains`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DomainSpec {
    /// The VM name (the key).
    pub name: String,
    /// Memory in MiB.
    pub memory: Option<u64>,
    /// Number of virtual CPUs.
    pub vcpu: Option<u32>,
    /// `cpu_model`.
    pub cpu_model: Option<String>,
    /// `cpu_custom`, kept as written.
    pub cpu_custom: Option<Value>,
    /// Network interfaces, in order.
    pub nics: Vec<NicSpec>,
    /// Disks, in order.
    pub disks: Vec<DiskSpec>,
    /// Free-form metadata (`deploy-scripts` is read by lago).
    pub metadata: Map<String, Value>,
    /// Paths collected by `lago collect`.
    pub artifacts: Vec<String>,
    /// Groups (Ansible).
    pub groups: Vec<String>,
    /// Whether to write a bootstrap seed.
    pub bootstrap: Option<bool>,
    /// `ssh-user`.
    pub ssh_user: Option<String>,
    /// `ssh-password`.
    pub ssh_password: Option<String>,
    /// `root-password`.
    pub root_password: Option<String>,
    /// `distro` (overrides the template's).
    pub distro: Option<String>,
    /// `vm-type`.
    pub vm_type: Option<String>,
    /// `vm-provider`.
    pub vm_provider: Option<String>,
    /// `service_provider`.
    pub service_provider: Option<String>,
    /// `guest-agent`.
    pub guest_agent: Option<String>,
    /// `boot_time_sec`.
    pub boot_time_sec: Option<u64>,
    /// `skip-export`.
    pub skip_export: bool,
    /// Where deploy scripts were declared (`deploy-scripts` or the deprecated `ovirt-scripts`).
    pub deploy_scripts: Vec<String>,
    /// The libvirt host of a `local-libvirt` VM (`libvirt_url`, under the VM or its `metadata`).
    pub libvirt_url: Option<String>,
    /// `forwards`: TCP ports of the VM reachable on the host's loopback (lago's own key).
    pub forwards: Vec<ForwardSpec>,
    /// The domain as written (its `based-on` keys merged), every key kept for its record.
    pub written: Written,
}

/// One entry of a domain's `forwards`: a TCP port of the VM forwarded from `127.0.0.1:host` (a
/// free port chosen at each start when `host` is not given).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ForwardSpec {
    /// The port in the VM.
    pub guest: u16,
    /// The port on the host's loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<u16>,
}

/// One entry of `nics`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NicSpec {
    /// Network name.
    pub net: String,
    /// Static address, as written.
    pub ip: Option<Ipv4Addr>,
    /// Static IPv6 address (lago's own), as written: a whole address, or a host part (`::5`).
    pub ip6: Option<Ipv6Addr>,
    /// The NIC as written.
    pub written: Written,
}

/// Kind of disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskType {
    /// From a template of the repository (or a qcow2 file with `template_type: qcow2`).
    Template,
    /// A new empty image of `size`.
    Empty,
    /// An existing image (or a new thin one when no `path` is given).
    File,
}

impl DiskType {
    /// The init-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskType::Template => "template",
            DiskType::Empty => "empty",
            DiskType::File => "file",
        }
    }
}

/// One entry of `disks`.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskSpec {
    /// Disk type.
    pub kind: DiskType,
    /// Disk name (part of the image file name).
    pub name: String,
    /// Guest device (`vda`, `sdb`, ...).
    pub dev: String,
    /// Image format.
    pub format: Option<String>,
    /// Size for new images, as given to `qemu-img`.
    pub size: Option<String>,
    /// Metadata given in the init file.
    pub metadata: Map<String, Value>,
    /// Template name.
    pub template_name: Option<String>,
    /// Template version.
    pub template_version: Option<String>,
    /// `lago` (repository template) or `qcow2` (a qcow2 file at `path`).
    pub template_type: TemplateType,
    /// `path`, with environment variables not yet expanded.
    pub path: Option<String>,
    /// `url` of a file disk: where `init` downloads it from (`file://`, `http(s)://`), to `path`
    /// when given, else into the prefix's `images/`.
    pub url: Option<String>,
    /// `make_a_copy`.
    pub make_a_copy: bool,
    /// Build steps, in order.
    pub build: Vec<BuildStep>,
    /// `skip-export`.
    pub skip_export: bool,
    /// The disk as written.
    pub written: Written,
}

/// Where a template disk comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateType {
    /// A template of the configured repository.
    Lago,
    /// A qcow2 image at `path` (for example an exported disk).
    Qcow2,
}

/// One builder invocation: `{virt-customize: {option: argument}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildStep {
    /// Builder name.
    pub builder: String,
    /// Options in order; each value is zero or more arguments.
    pub options: Vec<(String, Vec<String>)>,
}

/// Kind of network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetType {
    /// Routed segment with addresses planned by lago.
    Nat,
    /// A host bridge (no addresses planned).
    Bridge,
}

impl NetType {
    /// The init-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NetType::Nat => "nat",
            NetType::Bridge => "bridge",
        }
    }
}

/// One entry of `nets`.
#[derive(Debug, Clone, PartialEq)]
pub struct NetSpec {
    /// Network name (the key).
    pub name: String,
    /// `type`.
    pub kind: NetType,
    /// `management` as written (`None` when absent).
    pub management: Option<bool>,
    /// `dns_domain_name`.
    pub dns_domain_name: Option<String>,
    /// Extra DNS records.
    pub dns_records: Vec<(String, Ipv4Addr)>,
    /// `main_dns`.
    pub main_dns: Option<String>,
    /// Gateway (`gw`).
    pub gw: Option<Ipv4Addr>,
    /// DHCP range (last octets).
    pub dhcp: Option<(u8, u8)>,
    /// MTU.
    pub mtu: Option<u32>,
    /// An existing host bridge a `bridge` network joins (`bridge`), shared by the hosts it spans.
    pub bridge: Option<String>,
    /// `ipv6` (lago's own): the network's /64, or `auto`.
    pub ipv6: Option<Ipv6Spec>,
    /// `gw6` (lago's own): a whole address, or a host part (`::1`).
    pub gw6: Option<Ipv6Addr>,
    /// `ipv4` (lago's own; `false`: the network is IPv6-only).
    pub ipv4: bool,
    /// Extra DNS records of IPv6 addresses (AAAA).
    pub dns_records6: Vec<(String, Ipv6Addr)>,
    /// The network as written.
    pub written: Written,
}

/// Reads a typed [`Spec`] from the tree, recording problems in `issues`.
pub fn read_spec(root: &Value, issues: &mut Vec<Issue>) -> Spec {
    let mut spec = Spec { domains: Vec::new(), nets: Vec::new() };
    let Some(top) = root.as_object() else {
        issues.push(Issue::new("", format!("expected a mapping with `domains` and `nets`, found {}", kind(root))));
        return spec;
    };
    let sections = keys::TOP.names();
    for key in top.keys() {
        if !sections.contains(&key.as_str()) {
            // Other top-level keys hold YAML anchors (`base_domain: &base ...`) and are ignored,
            // unless they look like a misspelt section.
            if let Some(close) = did_you_mean(key, &sections)
                && strsim::levenshtein(key, close) <= 2
            {
                issues.push(Issue::new(key, format!("unknown section (did you mean `{close}`?)")));
            }
        }
    }
    match top.get("domains") {
        None => issues.push(Issue::new("domains", "missing (expected a mapping of VM names to VM definitions)")),
        Some(Value::Object(doms)) => {
            if doms.is_empty() {
                issues.push(Issue::new("domains", "no VMs defined (expected at least one)"));
            }
            for (name, dom) in doms {
                let path = format!("domains.{name}");
                check_name(&path, name, "VM", issues);
                if let Some(d) = read_domain(&path, name, dom, issues) {
                    spec.domains.push(d);
                }
            }
        }
        Some(other) => issues.push(expected("domains", "a mapping of VM names to VM definitions", other)),
    }
    match top.get("nets") {
        None => issues.push(Issue::new(
            "nets",
            "missing: no networks configured (expected a mapping of network names to network definitions)",
        )),
        Some(Value::Object(nets)) => {
            if nets.is_empty() {
                issues.push(Issue::new("nets", "No networks configured."));
            }
            for (name, net) in nets {
                let path = format!("nets.{name}");
                check_name(&path, name, "network", issues);
                if let Some(n) = read_net(&path, name, net, issues) {
                    spec.nets.push(n);
                }
            }
        }
        Some(other) => issues.push(expected("nets", "a mapping of network names to network definitions", other)),
    }
    spec
}

/// Names become host names and file names: keep them to a safe alphabet.
fn check_name(path: &str, name: &str, what: &str, issues: &mut Vec<Issue>) {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && !name.ends_with('.');
    if !ok {
        issues.push(Issue::new(
            path,
            format!(
                "invalid {what} name {name:?} (expected 1 to 63 letters, digits, `-`, `_` or `.`, starting with a letter or digit)"
            ),
        ));
    }
}

/// Whether `name` is a DNS name (RFC 1035 with RFC 1123's leading digits): dot-separated labels
/// of 1 to 63 letters, digits and hyphens, none starting or ending with a hyphen, 253
/// characters at most. Reports the first problem found.
fn dns_name(path: &str, name: &str, what: &str, issues: &mut Vec<Issue>) -> bool {
    let problem = if name.is_empty() {
        Some("it is empty".to_owned())
    } else if name.len() > 253 {
        Some(format!("it has {} characters (at most 253)", name.len()))
    } else {
        name.split('.').find_map(|label| {
            if label.is_empty() {
                Some("it has an empty label (two dots in a row, or a dot at an end)".to_owned())
            } else if label.len() > 63 {
                Some(format!("label {label:?} has {} characters (at most 63)", label.len()))
            } else if let Some(c) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
                Some(format!("label {label:?} holds {c:?} (only letters, digits and `-`)"))
            } else if label.starts_with('-') || label.ends_with('-') {
                Some(format!("label {label:?} starts or ends with `-`"))
            } else {
                None
            }
        })
    };
    match problem {
        Some(why) => {
            issues.push(Issue::new(
                path,
                format!(
                    "{name:?} is not {what}: {why} (expected labels of 1 to 63 letters, digits and `-`, joined by dots)"
                ),
            ));
            false
        }
        None => true,
    }
}

fn kind(v: &Value) -> String {
    match v {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

pub(super) fn expected(path: &str, what: &str, found: &Value) -> Issue {
    Issue::new(path, format!("expected {what}, found {}", kind(found)))
}

/// A mapping at `path` of the kind `section` describes, with the keys that are not its own
/// reported.
fn object<'v>(path: &str, v: &'v Value, section: &Section, issues: &mut Vec<Issue>) -> Option<&'v Map<String, Value>> {
    let Some(map) = v.as_object() else {
        issues.push(expected(path, "a mapping", v));
        return None;
    };
    for key in map.keys() {
        if !section.knows(key) {
            let known = section.names();
            let hint = match did_you_mean(key, &known) {
                Some(k) => format!(" (did you mean `{k}`?)"),
                None => format!(" (known keys: {})", known.join(", ")),
            };
            issues.push(Issue::unknown_key(&format!("{path}.{key}"), format!("unknown key{hint}")));
        }
    }
    Some(map)
}

/// A string value; numbers are accepted and kept as written (`ssh-password: 123456`).
fn string(path: &str, v: &Value, issues: &mut Vec<Issue>) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        other => {
            issues.push(expected(path, "a string", other));
            None
        }
    }
}

fn opt_string(map: &Map<String, Value>, path: &str, key: &str, issues: &mut Vec<Issue>) -> Option<String> {
    map.get(key).and_then(|v| string(&format!("{path}.{key}"), v, issues))
}

/// A boolean; the strings `true`/`false`/`yes`/`no` (any case) are accepted, as exported files
/// write `make_a_copy: 'True'`.
pub(super) fn boolean(path: &str, v: &Value, issues: &mut Vec<Issue>) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" => Some(true),
            "false" | "no" => Some(false),
            _ => {
                issues.push(expected(path, "true or false", v));
                None
            }
        },
        other => {
            issues.push(expected(path, "true or false", other));
            None
        }
    }
}

fn opt_bool(map: &Map<String, Value>, path: &str, key: &str, issues: &mut Vec<Issue>) -> Option<bool> {
    map.get(key).and_then(|v| boolean(&format!("{path}.{key}"), v, issues))
}

/// A whole number in `min..=max`; numeric strings are accepted (`vcpu: '2'`).
fn integer(path: &str, v: &Value, min: u64, max: u64, what: &str, issues: &mut Vec<Issue>) -> Option<u64> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Some(n),
        _ => {
            issues.push(expected(path, &format!("{what} (a whole number from {min} to {max})"), v));
            None
        }
    }
}

fn ipv4(path: &str, v: &Value, issues: &mut Vec<Issue>) -> Option<Ipv4Addr> {
    match v.as_str().map(|s| s.trim().parse::<Ipv4Addr>()) {
        Some(Ok(ip)) => Some(ip),
        _ => {
            issues.push(expected(path, "an IPv4 address such as 192.168.200.10", v));
            None
        }
    }
}

fn string_list(path: &str, v: &Value, issues: &mut Vec<Issue>) -> Vec<String> {
    match v {
        Value::Array(items) => {
            items.iter().enumerate().filter_map(|(i, item)| string(&format!("{path}[{i}]"), item, issues)).collect()
        }
        other => {
            issues.push(expected(path, "a list of strings", other));
            Vec::new()
        }
    }
}

fn read_domain(path: &str, name: &str, v: &Value, issues: &mut Vec<Issue>) -> Option<DomainSpec> {
    let merged = with_base(path, v, issues);
    let map = object(path, merged.as_ref().unwrap_or(v), &keys::DOMAIN, issues)?;
    let mut d = DomainSpec { name: name.to_owned(), written: Written::new(map), ..DomainSpec::default() };
    for ignored in keys::DOMAIN.keys.iter().filter(|k| k.origin == Origin::Ignored) {
        if map.contains_key(ignored.name) {
            issues.push(Issue::note(
                &format!("{path}.{}", ignored.name),
                format!("not read (the original did not read it either): {}", ignored.doc),
            ));
        }
    }
    match map.get("type") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t == "ova" => issues.push(Issue::new(
            &format!("{path}.type"),
            "OVA domains are not supported: lago does not import OVA files (use a template, or a disk of type file with the appliance's image)",
        )),
        Some(other) => issues.push(expected(&format!("{path}.type"), "ova (the only domain type the original had)", other)),
    }
    if map.contains_key("url") && map.get("type").and_then(Value::as_str) != Some("ova") {
        issues.push(Issue::new(&format!("{path}.url"), "only OVA domains (type: ova) have a url"));
    }
    if let Some(n) = opt_string(map, path, "name", issues)
        && n != name
    {
        issues.push(Issue::new(&format!("{path}.name"), format!("{n:?} differs from the VM's key {name:?}")));
    }
    d.memory = map
        .get("memory")
        .and_then(|v| integer(&format!("{path}.memory"), v, 16, 16 * 1024 * 1024, "memory in MiB", issues));
    d.vcpu = map
        .get("vcpu")
        .and_then(|v| integer(&format!("{path}.vcpu"), v, 1, 255, "a number of virtual CPUs", issues))
        .map(|n| n as u32);
    read_cpu(&mut d, map, path, issues);
    d.nics = read_nics(map, path, issues);
    d.disks = read_disks(map, path, issues);
    read_metadata(&mut d, map, path, issues);
    d.artifacts = read_artifacts(map, path, issues);
    d.groups = match map.get("groups") {
        // A single string is one group (the original split it into characters).
        Some(Value::String(s)) => vec![s.clone()],
        Some(g) => string_list(&format!("{path}.groups"), g, issues),
        None => Vec::new(),
    };
    d.bootstrap = opt_bool(map, path, "bootstrap", issues);
    d.ssh_user = opt_string(map, path, "ssh-user", issues);
    d.ssh_password = opt_string(map, path, "ssh-password", issues);
    d.root_password = opt_string(map, path, "root-password", issues);
    d.distro = opt_string(map, path, "distro", issues);
    d.vm_type = opt_string(map, path, "vm-type", issues);
    d.vm_provider = opt_string(map, path, "vm-provider", issues);
    d.service_provider = read_service_provider(map, path, issues);
    d.guest_agent = opt_string(map, path, "guest-agent", issues);
    d.boot_time_sec = map
        .get("boot_time_sec")
        .and_then(|v| integer(&format!("{path}.boot_time_sec"), v, 1, 86_400, "seconds", issues));
    d.skip_export = opt_bool(map, path, "skip-export", issues).unwrap_or(false);
    d.libvirt_url = read_libvirt_url(&d, map, path, issues);
    d.forwards = read_forwards(map, path, issues);
    Some(d)
}

/// A domain with the keys of its `based-on` mapping that it does not set (`None`: it has no
/// `based-on`, or a wrong one, which is said).
fn with_base(path: &str, v: &Value, issues: &mut Vec<Issue>) -> Option<Value> {
    match v.get("based-on") {
        Some(Value::Object(base)) => {
            let mut m = v.as_object().cloned().unwrap_or_default();
            for (k, bv) in base {
                m.entry(k.clone()).or_insert_with(|| bv.clone());
            }
            m.remove("based-on");
            Some(Value::Object(m))
        }
        Some(other) if v.is_object() => {
            issues.push(expected(&format!("{path}.based-on"), "a mapping of VM keys", other));
            None
        }
        _ => None,
    }
}

/// `cpu_model` (a model name) or `cpu_custom` (refused here, with its key, when qemu cannot
/// express it, rather than at start).
fn read_cpu(d: &mut DomainSpec, map: &Map<String, Value>, path: &str, issues: &mut Vec<Issue>) {
    d.cpu_model = opt_string(map, path, "cpu_model", issues);
    if let Some(m) = d.cpu_model.as_deref().filter(|m| !crate::spec::cpu::is_word(m)) {
        issues.push(Issue::new(
            &format!("{path}.cpu_model"),
            format!("{m:?} is not a CPU model name (expected letters, digits, `.`, `_` and `-`, e.g. Westmere)"),
        ));
    }
    if let Some(c) = map.get("cpu_custom") {
        if d.cpu_model.is_some() {
            issues.push(Issue::new(
                &format!("{path}.cpu_custom"),
                "Defining both cpu_model and cpu_custom is not supported (keep one of them)",
            ));
        } else if c.is_object() {
            let vcpu = d.vcpu.unwrap_or(DEFAULT_VCPU).into();
            let memory = d.memory.unwrap_or(DEFAULT_MEMORY);
            match crate::spec::cpu::qemu_cpu(None, Some(c), vcpu, memory, crate::config::Accel::Tcg) {
                Ok(_) => d.cpu_custom = Some(c.clone()),
                Err(found) => issues.extend(found.into_iter().map(|i| {
                    let key = if i.path.is_empty() { String::new() } else { format!(".{}", i.path) };
                    Issue::new(&format!("{path}.cpu_custom{key}"), i.reason)
                })),
            }
        } else {
            issues.push(expected(&format!("{path}.cpu_custom"), "a mapping describing the <cpu> element", c));
        }
    }
}

/// `nics`: a list of `{net, ip}`.
fn read_nics(map: &Map<String, Value>, path: &str, issues: &mut Vec<Issue>) -> Vec<NicSpec> {
    let mut found = Vec::new();
    match map.get("nics") {
        None => {
            issues.push(Issue::new(&format!("{path}.nics"), "missing (expected a list of NICs, each with a `net`)"))
        }
        Some(Value::Array(nics)) => {
            for (i, nic) in nics.iter().enumerate() {
                let p = format!("{path}.nics[{i}]");
                let Some(m) = object(&p, nic, &keys::NIC, issues) else { continue };
                let net = match m.get("net") {
                    Some(n) => string(&format!("{p}.net"), n, issues).unwrap_or_default(),
                    None => {
                        issues.push(Issue::new(
                            &format!("{p}.net"),
                            "missing (expected the name of a network from `nets`)",
                        ));
                        String::new()
                    }
                };
                let ip = m.get("ip").and_then(|v| ipv4(&format!("{p}.ip"), v, issues));
                let ip6 = super::ipv6::read_nic(m, &p, issues);
                found.push(NicSpec { net, ip, ip6, written: Written::new(m) });
            }
        }
        Some(other) => issues.push(expected(&format!("{path}.nics"), "a list of NICs", other)),
    }
    found
}

/// `disks`.
fn read_disks(map: &Map<String, Value>, path: &str, issues: &mut Vec<Issue>) -> Vec<DiskSpec> {
    let mut found = Vec::new();
    match map.get("disks") {
        None => {}
        Some(Value::Array(disks)) => {
            for (i, disk) in disks.iter().enumerate() {
                if let Some(disk) = read_disk(&format!("{path}.disks[{i}]"), i, disk, issues) {
                    found.push(disk);
                }
            }
        }
        Some(other) => issues.push(expected(&format!("{path}.disks"), "a list of disks", other)),
    }
    found
}

/// `metadata`, and the deploy scripts it names (`deploy-scripts`, or the deprecated
/// `ovirt-scripts`).
fn read_metadata(d: &mut DomainSpec, map: &Map<String, Value>, path: &str, issues: &mut Vec<Issue>) {
    if let Some(m) = map.get("metadata") {
        match m {
            Value::Object(meta) => {
                d.metadata = meta.clone();
                let mp = format!("{path}.metadata");
                if let Some(s) = meta.get("deploy-scripts") {
                    d.deploy_scripts = string_list(&format!("{mp}.deploy-scripts"), s, issues);
                } else if let Some(s) = meta.get("ovirt-scripts") {
                    tracing::warn!(
                        "Deprecated entry \"ovirt-scripts\" will not be supported in the future, replace with \"deploy-scripts\""
                    );
                    d.deploy_scripts = string_list(&format!("{mp}.ovirt-scripts"), s, issues);
                }
            }
            Value::Null => {}
            other => issues.push(expected(&format!("{path}.metadata"), "a mapping", other)),
        }
    }
}

/// `artifacts`: absolute paths in the VM.
fn read_artifacts(map: &Map<String, Value>, path: &str, issues: &mut Vec<Issue>) -> Vec<String> {
    let Some(a) = map.get("artifacts") else { return Vec::new() };
    let artifacts = string_list(&format!("{path}.artifacts"), a, issues);
    for (i, a) in artifacts.iter().enumerate() {
        if !a.starts_with('/') {
            issues.push(Issue::new(
                &format!("{path}.artifacts[{i}]"),
                format!("{a:?} is not an absolute path (expected a path in the VM such as /var/log)"),
            ));
        }
    }
    artifacts
}

/// `forwards`: `[{guest: 8080}, {guest: 5432, host: 15432}]`, each guest and host port once.
fn read_forwards(map: &Map<String, Value>, path: &str, issues: &mut Vec<Issue>) -> Vec<ForwardSpec> {
    let Some(v) = map.get("forwards") else { return Vec::new() };
    let Some(items) = v.as_array() else {
        issues.push(expected(&format!("{path}.forwards"), "a list of {guest: PORT, host: PORT}", v));
        return Vec::new();
    };
    let mut forwards: Vec<ForwardSpec> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}.forwards[{i}]");
        let Some(m) = object(&at, item, &keys::FORWARD, issues) else { continue };
        let port = |key: &str, issues: &mut Vec<Issue>| {
            m.get(key)
                .and_then(|v| integer(&format!("{at}.{key}"), v, 1, 65_535, "a TCP port", issues))
                .map(|n| n as u16)
        };
        let host = port("host", issues);
        let Some(guest) = port("guest", issues) else {
            if !m.contains_key("guest") {
                issues.push(Issue::new(&format!("{at}.guest"), "missing: the port in the VM to forward"));
            }
            continue;
        };
        if forwards.iter().any(|f| f.guest == guest) {
            issues.push(Issue::new(&format!("{at}.guest"), format!("port {guest} is forwarded twice")));
        } else if host.is_some() && forwards.iter().any(|f| f.host == host) {
            issues.push(Issue::new(&format!("{at}.host"), format!("host port {} is used twice", host.unwrap_or(0))));
        } else {
            forwards.push(ForwardSpec { guest, host });
        }
    }
    forwards
}

/// `service_provider`, or the deprecated `service_class`.
fn read_service_provider(map: &Map<String, Value>, path: &str, issues: &mut Vec<Issue>) -> Option<String> {
    let mut provider = opt_string(map, path, "service_provider", issues);
    if let Some(sc) = opt_string(map, path, "service_class", issues) {
        tracing::warn!("{path}.service_class is deprecated, use service_provider");
        if provider.is_none() {
            provider = Some(sc.to_lowercase().replace("service", ""));
        }
    }
    if let Some(sp) = &provider
        && !SERVICE_PROVIDERS.contains(&sp.as_str())
    {
        issues.push(Issue::new(
            &format!("{path}.service_provider"),
            format!("unknown service provider {sp:?} (known: {})", SERVICE_PROVIDERS.join(", ")),
        ));
    }
    provider
}

/// `libvirt_url`, under the VM or its `metadata`: a libvirt URI.
fn read_libvirt_url(d: &DomainSpec, map: &Map<String, Value>, path: &str, issues: &mut Vec<Issue>) -> Option<String> {
    let url = opt_string(map, path, "libvirt_url", issues).or_else(|| match d.metadata.get("libvirt_url") {
        Some(Value::String(u)) => Some(u.clone()),
        Some(other) => {
            issues.push(expected(&format!("{path}.metadata.libvirt_url"), "a libvirt URI (a string)", other));
            None
        }
        None => None,
    });
    if let Some(u) = &url
        && !u.contains(":/")
    {
        issues.push(Issue::new(
            &format!("{path}.libvirt_url"),
            format!("{u:?} is not a libvirt URI (expected e.g. qemu:///system or qemu+ssh://root@host2/system)"),
        ));
    }
    url
}

/// Valid guest device names: `vd*` (virtio-blk), `sd*` (virtio-scsi), `hd*` (IDE).
pub fn valid_dev(dev: &str) -> bool {
    let Some(rest) = dev.strip_prefix("vd").or_else(|| dev.strip_prefix("sd")).or_else(|| dev.strip_prefix("hd"))
    else {
        return false;
    };
    (1..=2).contains(&rest.len()) && rest.chars().all(|c| c.is_ascii_lowercase())
}

/// The `index`-th virtio device name: vda, vdb, ..., vdz, vdaa, ...
fn default_dev(index: usize) -> String {
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    if index < 26 {
        format!("vd{}", letters[index] as char)
    } else {
        format!("vd{}{}", letters[index / 26 - 1] as char, letters[index % 26] as char)
    }
}

/// Sizes as `qemu-img` takes them: a number with an optional K/M/G/T/P/E suffix.
pub fn valid_size(size: &str) -> bool {
    let s = size.trim();
    let digits = s.trim_end_matches(|c: char| "kKmMgGtTpPeE".contains(c) || c == 'b' || c == 'B');
    let suffix = &s[digits.len()..];
    let number_ok = !digits.is_empty() && digits.parse::<f64>().is_ok_and(|n| n > 0.0) && !digits.starts_with('-');
    let suffix_ok =
        matches!(suffix.len(), 0) || (suffix.len() <= 2 && suffix.chars().next().is_some_and(|c| c != 'b' && c != 'B'));
    number_ok && suffix_ok && (!suffix.is_empty() || digits.parse::<u64>().is_ok_and(|n| n >= 1024 * 1024))
}

fn read_disk(path: &str, index: usize, v: &Value, issues: &mut Vec<Issue>) -> Option<DiskSpec> {
    let map = object(path, v, &keys::DISK, issues)?;
    let kind = match map.get("type").map(|t| (t, t.as_str())) {
        Some((_, Some("template"))) => DiskType::Template,
        Some((_, Some("empty"))) => DiskType::Empty,
        Some((_, Some("file"))) => DiskType::File,
        Some((t, _)) => {
            issues.push(expected(&format!("{path}.type"), "one of template, empty, file", t));
            return None;
        }
        None => {
            issues.push(Issue::new(&format!("{path}.type"), "missing (expected one of template, empty, file)"));
            return None;
        }
    };
    let name = opt_string(map, path, "name", issues);
    let p = opt_string(map, path, "path", issues);
    let name = match (name, &p) {
        (Some(n), _) => n,
        // A file disk used in place is named after its file.
        (None, Some(file)) if kind == DiskType::File => {
            std::path::Path::new(file).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
        }
        (None, _) => {
            issues.push(Issue::new(&format!("{path}.name"), "missing (expected a disk name such as root)"));
            String::new()
        }
    };
    if !name.is_empty() && !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        issues.push(Issue::new(
            &format!("{path}.name"),
            format!("invalid disk name {name:?} (expected letters, digits, `-`, `_` or `.`)"),
        ));
    }
    let dev = opt_string(map, path, "dev", issues).unwrap_or_else(|| default_dev(index));
    if !valid_dev(&dev) {
        issues.push(Issue::new(
            &format!("{path}.dev"),
            format!(
                "invalid device {dev:?} (expected vdX for virtio-blk, sdX for virtio-scsi or hdX for IDE, e.g. vda)"
            ),
        ));
    }
    let format = opt_string(map, path, "format", issues);
    if let Some(f) = &format
        && !DISK_FORMATS.contains(&f.as_str())
    {
        issues.push(Issue::new(
            &format!("{path}.format"),
            format!("unknown format {f:?} (known: {})", DISK_FORMATS.join(", ")),
        ));
    }
    let size = match map.get("size") {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => string(&format!("{path}.size"), other, issues),
        None => None,
    };
    if let Some(s) = &size
        && !valid_size(s)
    {
        issues.push(Issue::new(
            &format!("{path}.size"),
            format!("invalid size {s:?} (expected a size such as 10G, 512M or a number of bytes of at least 1M)"),
        ));
    }
    let template_type = match opt_string(map, path, "template_type", issues).as_deref() {
        None | Some("lago") => TemplateType::Lago,
        Some("qcow2") => TemplateType::Qcow2,
        Some(other) => {
            issues.push(Issue::new(
                &format!("{path}.template_type"),
                format!("unknown template type {other:?} (known: lago, qcow2)"),
            ));
            TemplateType::Lago
        }
    };
    let template_name = opt_string(map, path, "template_name", issues);
    let template_version = opt_string(map, path, "template_version", issues);
    let url = opt_string(map, path, "url", issues);
    if url.is_some() && kind != DiskType::File {
        issues.push(Issue::new(&format!("{path}.url"), "only disks of type file are downloaded from a url"));
    }
    match kind {
        DiskType::Template if template_type == TemplateType::Lago && template_name.is_none() => {
            issues.push(Issue::new(
                &format!("{path}.template_name"),
                "missing (a disk of type template needs the name of a template from the repository)",
            ));
        }
        DiskType::Template if template_type == TemplateType::Qcow2 && p.is_none() => {
            issues.push(Issue::new(
                &format!("{path}.path"),
                "missing (a disk with template_type qcow2 needs the path of its qcow2 image)",
            ));
        }
        DiskType::Empty if size.is_none() => {
            issues.push(Issue::new(&format!("{path}.size"), "missing (an empty disk needs a size such as 10G)"));
        }
        DiskType::File if p.is_none() && size.is_none() && url.is_none() => {
            issues.push(Issue::new(
                &format!("{path}.path"),
                "missing (a file disk needs the path of an existing image, or a size for a new one)",
            ));
        }
        _ => {}
    }
    let metadata = match map.get("metadata") {
        Some(Value::Object(m)) => m.clone(),
        Some(Value::Null) | None => Map::new(),
        Some(other) => {
            issues.push(expected(&format!("{path}.metadata"), "a mapping", other));
            Map::new()
        }
    };
    let build = match map.get("build") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(steps)) => steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| read_build_step(&format!("{path}.build[{i}]"), s, issues))
            .collect(),
        Some(other) => {
            issues.push(expected(
                &format!("{path}.build"),
                "a list of builders such as `- virt-customize: {...}`",
                other,
            ));
            Vec::new()
        }
    };
    Some(DiskSpec {
        kind,
        name,
        dev,
        format,
        size,
        metadata,
        template_name,
        template_version,
        template_type,
        path: p,
        url,
        make_a_copy: opt_bool(map, path, "make_a_copy", issues).unwrap_or(false),
        build,
        skip_export: opt_bool(map, path, "skip-export", issues).unwrap_or(false),
        written: Written::new(map),
    })
}

fn read_build_step(path: &str, v: &Value, issues: &mut Vec<Issue>) -> Option<BuildStep> {
    let Some(map) = v.as_object().filter(|m| m.len() == 1) else {
        issues.push(expected(path, "a mapping with exactly one builder, such as `virt-customize: {...}`", v));
        return None;
    };
    let (builder, opts) = map.iter().next()?;
    if !BUILDERS.contains(&builder.as_str()) {
        issues.push(Issue::new(
            &format!("{path}.{builder}"),
            format!("unknown builder (known: {})", BUILDERS.join(", ")),
        ));
        return None;
    }
    let p = format!("{path}.{builder}");
    let Some(opts) = opts.as_object() else {
        issues.push(expected(&p, "a mapping of options to arguments", opts));
        return None;
    };
    let mut options = Vec::new();
    for (opt, arg) in opts {
        let op = format!("{p}.{opt}");
        let args = match arg {
            Value::Null => Vec::new(),
            Value::String(s) if s.is_empty() => Vec::new(),
            Value::Array(items) if items.is_empty() => Vec::new(),
            Value::Array(_) => string_list(&op, arg, issues),
            other => string(&op, other, issues).into_iter().collect(),
        };
        options.push((opt.clone(), args));
    }
    Some(BuildStep { builder: builder.clone(), options })
}

fn read_net(path: &str, name: &str, v: &Value, issues: &mut Vec<Issue>) -> Option<NetSpec> {
    let map = object(path, v, &keys::NET, issues)?;
    let kind = match opt_string(map, path, "type", issues).as_deref() {
        None | Some("nat") => NetType::Nat,
        Some("bridge") => NetType::Bridge,
        Some(other) => {
            issues.push(Issue::new(
                &format!("{path}.type"),
                format!("unknown network type {other:?} (known: nat, bridge)"),
            ));
            NetType::Nat
        }
    };
    let gw = map.get("gw").and_then(|v| ipv4(&format!("{path}.gw"), v, issues));
    if let Some(gw) = gw {
        let last = gw.octets()[3];
        if last == 0 || last == 255 {
            issues.push(Issue::new(
                &format!("{path}.gw"),
                format!(
                    "{gw} is the network or broadcast address of its /24 (expected an address ending in .1 to .254)"
                ),
            ));
        }
    }
    let dhcp = match map.get("dhcp") {
        None | Some(Value::Null) => None,
        Some(d) => {
            let dp = format!("{path}.dhcp");
            object(&dp, d, &keys::DHCP, issues).and_then(|m| {
                let start = m.get("start").map_or(Some(100), |v| {
                    integer(&format!("{dp}.start"), v, 2, 254, "the last octet of the first DHCP address", issues)
                });
                let end = m.get("end").map_or(Some(254), |v| {
                    integer(&format!("{dp}.end"), v, 2, 254, "the last octet of the last DHCP address", issues)
                });
                match (start, end) {
                    (Some(s), Some(e)) if s > e => {
                        issues.push(Issue::new(&dp, format!("start {s} is after end {e} (expected start <= end)")));
                        None
                    }
                    (Some(s), Some(e)) => Some((s as u8, e as u8)),
                    _ => None,
                }
            })
        }
    };
    let v6 = super::ipv6::read_net(map, path, issues);
    let mut dns_records = Vec::new();
    let mut dns_records6 = Vec::new();
    if let Some(r) = map.get("dns_records") {
        let rp = format!("{path}.dns_records");
        match r {
            Value::Object(recs) => {
                for (host, ip) in recs {
                    if !dns_name(&format!("{rp}.{host}"), host, "a host name", issues) {
                        continue;
                    }
                    // An IPv6 address is an AAAA record (lago's own).
                    if let Some(ip6) = ip.as_str().and_then(|s| s.trim().parse::<Ipv6Addr>().ok()) {
                        dns_records6.push((host.clone(), ip6));
                    } else if let Some(ip) = ipv4(&format!("{rp}.{host}"), ip, issues) {
                        dns_records.push((host.clone(), ip));
                    }
                }
            }
            other => issues.push(expected(&rp, "a mapping of host names to IPv4 addresses", other)),
        }
    }
    Some(NetSpec {
        name: name.to_owned(),
        kind,
        management: opt_bool(map, path, "management", issues),
        dns_domain_name: opt_string(map, path, "dns_domain_name", issues)
            .filter(|d| dns_name(&format!("{path}.dns_domain_name"), d, "a domain name", issues)),
        dns_records,
        main_dns: opt_string(map, path, "main_dns", issues),
        gw,
        dhcp,
        mtu: map
            .get("mtu")
            .and_then(|v| integer(&format!("{path}.mtu"), v, 68, 65_535, "an MTU", issues))
            .map(|m| m as u32),
        bridge: opt_string(map, path, "bridge", issues).filter(|b| {
            let bp = format!("{path}.bridge");
            if kind != NetType::Bridge {
                issues.push(Issue::new(&bp, "only a `type: bridge` network joins a host bridge (add `type: bridge`)"));
                false
            } else if b.is_empty() || b.len() > 15 || b.chars().any(|c| c == '/' || c.is_whitespace()) {
                issues.push(Issue::new(
                    &bp,
                    format!("{b:?} is not a network interface name (expected 1 to 15 characters, no '/' or spaces)"),
                ));
                false
            } else {
                true
            }
        }),
        ipv6: v6.ipv6,
        gw6: v6.gw6,
        ipv4: v6.ipv4,
        dns_records6,
        written: Written::new(map),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices() {
        for ok in ["vda", "vdb", "sdc", "hda", "vdaa"] {
            assert!(valid_dev(ok), "{ok}");
        }
        for bad in ["", "vd", "xda", "vd1", "VDA", "vdabc", "sda1", "vé", "é", "vdé"] {
            assert!(!valid_dev(bad), "{bad}");
        }
        assert_eq!(default_dev(0), "vda");
        assert_eq!(default_dev(27), "vdab");
    }

    #[test]
    fn sizes() {
        for ok in ["10G", "1.5G", "512M", "1048576", "2T", "100k", "10GB"] {
            assert!(valid_size(ok), "{ok}");
        }
        for bad in ["", "G", "-1G", "10X", "10", "abc", "0G", "1 0G"] {
            assert!(!valid_size(bad), "{bad}");
        }
    }

    #[test]
    fn forwards_are_ports_each_once() {
        let read = |forwards: Value| {
            let mut issues = Vec::new();
            let spec = read_spec(
                &serde_json::json!({"domains": {"vm01": {"nics": [{"net": "n"}], "forwards": forwards}}, "nets": {"n": {}}}),
                &mut issues,
            );
            let got = spec.domains.first().map(|d| d.forwards.clone()).unwrap_or_default();
            (got, issues.into_iter().map(|i| format!("{}: {}", i.key, i.message)).collect::<Vec<_>>())
        };
        let (ok, issues) = read(serde_json::json!([{"guest": 8080}, {"guest": 5432, "host": 15432}]));
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(ok, vec![ForwardSpec { guest: 8080, host: None }, ForwardSpec { guest: 5432, host: Some(15432) }]);
        let (_, issues) = read(serde_json::json!([
            {"guest": 8080}, {"guest": 8080}, {"host": 1}, {"guest": 70000}, {"guest": 1, "host": 9}, {"guest": 2, "host": 9},
            {"guest": 3, "hots": 4}
        ]));
        let expected = [
            "domains.vm01.forwards[1].guest: port 8080 is forwarded twice",
            "domains.vm01.forwards[2].guest: missing: the port in the VM to forward",
            "domains.vm01.forwards[3].guest: expected a TCP port",
            "domains.vm01.forwards[5].host: host port 9 is used twice",
            "domains.vm01.forwards[6].hots: unknown key",
        ];
        for (want, got) in expected.iter().zip(&issues) {
            assert!(got.starts_with(want), "{got:?} should start with {want:?} (all: {issues:?})");
        }
        assert_eq!(issues.len(), expected.len(), "{issues:?}");
        let (_, issues) = read(serde_json::json!({"guest": 1}));
        assert_eq!(
            issues,
            vec!["domains.vm01.forwards: expected a list of {guest: PORT, host: PORT}, found a mapping"]
        );
    }

    #[test]
    fn did_you_mean_finds_typos() {
        assert_eq!(did_you_mean("memroy", &keys::DOMAIN.names()), Some("memory"));
        assert_eq!(did_you_mean("zzzz", &keys::DOMAIN.names()), None);
    }
}
