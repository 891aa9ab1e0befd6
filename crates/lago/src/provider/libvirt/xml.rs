//! The XML of libvirt domains and networks, as the original wrote it (reference §6.2–§6.5), from
//! a VM's or a network's record. Pure: snapshot-tested.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

use serde_json::{Map, Value};

use crate::config::Accel;
use crate::prefix::records::VmRecord;
use crate::provider::NetUse;

/// Escapes text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A domain's name: `<first 8 characters of the environment's uuid>-<vm>`.
pub fn domain_name(env_id: &str, vm: &str) -> String {
    format!("{}-{vm}", &env_id[..env_id.len().min(8)])
}

/// A network's name (the original's `prefixed_name(net, 15)`): `<first 4 of the uuid>-<net>`,
/// the net's name replaced by the first 10 hex digits of its sha1 when longer than 10.
pub fn network_name(env_id: &str, net: &str) -> String {
    use sha1::Digest;
    let short =
        if net.len() > 10 { hex::encode(sha1::Sha1::digest(net.as_bytes()))[..10].to_owned() } else { net.to_owned() };
    format!("{}-{short}", &env_id[..env_id.len().min(4)])
}

/// The Linux bridge of a network lago creates: `<network name>-nic`, cut to 12 characters.
pub fn bridge_name(network: &str) -> String {
    format!("{network}-nic").chars().take(12).collect()
}

/// What a domain's XML depends on besides the VM.
#[derive(Debug, Clone)]
pub struct DomainContext<'a> {
    /// The prefix (disk paths, console log).
    pub prefix: &'a Path,
    /// The environment's short id.
    pub env_id: &'a str,
    /// KVM (`<domain type='kvm'>`) or TCG (`type='qemu'`).
    pub accel: Accel,
    /// Whether the VM boots with a seed (`images/<vm>-seed.img`).
    pub seed: bool,
}

/// The domain of a VM: disks by bus (virtio, virtio-scsi, IDE, CD-ROM), NICs on the
/// environment's libvirt networks with the plan's MACs, the serial console logged to
/// `logs/<vm>.console.log`, a guest-agent channel, a virtio RNG, and the CPU of
/// `cpu_model`/`cpu_custom`.
pub fn domain_xml(vm: &VmRecord, spec: &Map<String, Value>, ctx: &DomainContext<'_>) -> String {
    let kvm = ctx.accel == Accel::Kvm;
    let mut x = String::new();
    let _ = writeln!(x, "<domain type='{}'>", if kvm { "kvm" } else { "qemu" });
    let _ = writeln!(x, "  <name>{}</name>", escape(&domain_name(ctx.env_id, &vm.name)));
    let _ = writeln!(x, "  <memory unit='MiB'>{}</memory>", vm.run_memory());
    let _ = writeln!(x, "  <vcpu>{}</vcpu>", vm.vcpu);
    x.push_str(&cpu_xml(vm, spec, kvm));
    x.push_str("  <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n");
    // The template's own kernel, booted directly, when it carries one (as the qemu provider does).
    if let Some(boot) = vm.direct_boot(ctx.prefix) {
        let _ = writeln!(x, "    <kernel>{}</kernel>", escape(&boot.kernel.display().to_string()));
        let _ = writeln!(x, "    <initrd>{}</initrd>", escape(&boot.initrd.display().to_string()));
        let _ = writeln!(x, "    <cmdline>{}</cmdline>", escape(&boot.cmdline));
    }
    x.push_str("    <bootmenu enable='no'/>\n    <bios useserial='no'/>\n  </os>\n");
    x.push_str("  <features>\n    <acpi/>\n    <apic/>\n    <pae/>\n  </features>\n");
    x.push_str("  <clock offset='utc'/>\n  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n");
    x.push_str("  <pm>\n    <suspend-to-mem enabled='no'/>\n    <suspend-to-disk enabled='no'/>\n  </pm>\n");
    x.push_str("  <devices>\n");
    let mut scsi = false;
    for (i, d) in vm.disks.iter().enumerate() {
        let file = d.path.replace("$LAGO_PREFIX_PATH", &ctx.prefix.display().to_string());
        let iso = d.format == "iso";
        let (bus, driver) = if iso {
            ("ide", "<driver name='qemu' type='raw'/>".to_owned())
        } else if d.dev.starts_with("sd") {
            scsi = true;
            ("scsi", format!("<driver name='qemu' type='{}' discard='unmap' cache='writeback'/>", escape(&d.format)))
        } else if d.dev.starts_with("hd") {
            ("ide", format!("<driver name='qemu' type='{}' cache='writeback'/>", escape(&d.format)))
        } else {
            ("virtio", format!("<driver name='qemu' type='{}' discard='unmap' cache='writeback'/>", escape(&d.format)))
        };
        let device = if iso { "cdrom" } else { "disk" };
        let _ = writeln!(x, "    <disk type='file' device='{device}'>");
        let _ = writeln!(x, "      {driver}");
        let _ = writeln!(x, "      <source file='{}'/>", escape(&file));
        let _ = writeln!(x, "      <target dev='{}' bus='{bus}'/>", escape(&d.dev));
        if iso {
            x.push_str("      <readonly/>\n");
        } else {
            let _ = writeln!(x, "      <serial>{}</serial>", i + 1);
        }
        if i == 0 {
            x.push_str("      <boot order='1'/>\n");
        }
        x.push_str("    </disk>\n");
    }
    if ctx.seed {
        let seed = crate::prefix::Layout::new(ctx.prefix).seed(&vm.name);
        // The last virtio disk: `vdz` is never a spec's own.
        let _ = writeln!(
            x,
            "    <disk type='file' device='disk'>\n      <driver name='qemu' type='raw'/>\n      <source file='{}'/>\n      <target dev='vdz' bus='virtio'/>\n      <readonly/>\n    </disk>",
            escape(&seed.display().to_string())
        );
    }
    if scsi {
        let _ = writeln!(
            x,
            "    <controller type='scsi' index='0' model='virtio-scsi'>\n      <driver queues='{}'/>\n    </controller>",
            vm.vcpu.max(1)
        );
    }
    for nic in &vm.nics {
        x.push_str("    <interface type='network'>\n");
        let _ = writeln!(x, "      <source network='{}'/>", escape(&network_name(ctx.env_id, &nic.net)));
        if let Some(mac) = nic.mac() {
            let _ = writeln!(x, "      <mac address='{mac}'/>");
        }
        x.push_str("      <model type='virtio'/>\n");
        if let Some(mtu) = nic.mtu.filter(|m| *m != crate::plan::DEFAULT_MTU) {
            let _ = writeln!(x, "      <mtu size='{mtu}'/>");
        }
        x.push_str("    </interface>\n");
    }
    let log = crate::prefix::Layout::new(ctx.prefix).console_log(&vm.name);
    let _ = writeln!(
        x,
        "    <serial type='pty'>\n      <log file='{}' append='on'/>\n      <target port='0'/>\n    </serial>",
        escape(&log.display().to_string())
    );
    x.push_str("    <console type='pty'>\n      <target type='serial' port='0'/>\n    </console>\n");
    x.push_str(
        "    <channel type='unix'>\n      <target type='virtio' name='org.qemu.guest_agent.0'/>\n    </channel>\n",
    );
    x.push_str("    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n    </rng>\n");
    x.push_str("    <memballoon model='none'/>\n");
    x.push_str("  </devices>\n</domain>\n");
    x
}

/// The `<cpu>` of a VM (reference §6.3): `cpu_custom` as written (`@attr`, `#text`) with a
/// topology when it has none, `cpu_model` as an exact model, else the host's CPU under KVM and
/// every feature TCG emulates otherwise; one socket per vCPU.
fn cpu_xml(vm: &VmRecord, spec: &Map<String, Value>, kvm: bool) -> String {
    let topology = format!("<topology sockets='{}' cores='1' threads='1'/>", vm.vcpu.max(1));
    if let Some(Value::Object(custom)) = spec.get("cpu_custom") {
        let mut inner = String::new();
        for (k, v) in custom.iter().filter(|(k, _)| !k.starts_with('@') && k.as_str() != "#text") {
            element(&mut inner, k, v, 2);
        }
        if !custom.contains_key("topology") {
            let _ = writeln!(inner, "    {topology}");
        }
        let attrs: String = custom
            .iter()
            .filter(|(k, _)| k.starts_with('@'))
            .map(|(k, v)| format!(" {}='{}'", &k[1..], escape(&scalar(v))))
            .collect();
        return format!("  <cpu{attrs}>\n{inner}  </cpu>\n");
    }
    if let Some(model) = &vm.cpu_model {
        return format!("  <cpu match='exact'>\n    <model>{}</model>\n    {topology}\n  </cpu>\n", escape(model));
    }
    let mode = if kvm { "host-passthrough" } else { "maximum" };
    format!("  <cpu mode='{mode}'>\n    {topology}\n  </cpu>\n")
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A mapping as an XML element the way xmltodict writes it: `@key` attributes, `#text` text, a
/// list as repeated elements.
fn element(out: &mut String, name: &str, v: &Value, depth: usize) {
    let pad = "  ".repeat(depth);
    match v {
        Value::Array(items) => {
            for item in items {
                element(out, name, item, depth);
            }
        }
        Value::Object(m) => {
            let attrs: String = m
                .iter()
                .filter(|(k, _)| k.starts_with('@'))
                .map(|(k, v)| format!(" {}='{}'", &k[1..], escape(&scalar(v))))
                .collect();
            let text = m.get("#text").map(|t| escape(&scalar(t)));
            let children: Vec<(&String, &Value)> =
                m.iter().filter(|(k, _)| !k.starts_with('@') && k.as_str() != "#text").collect();
            if children.is_empty() {
                match text {
                    Some(t) => {
                        let _ = writeln!(out, "{pad}<{name}{attrs}>{t}</{name}>");
                    }
                    None => {
                        let _ = writeln!(out, "{pad}<{name}{attrs}/>");
                    }
                }
            } else {
                let _ = writeln!(out, "{pad}<{name}{attrs}>{}", text.unwrap_or_default());
                for (k, child) in children {
                    element(out, k, child, depth + 1);
                }
                let _ = writeln!(out, "{pad}</{name}>");
            }
        }
        Value::Null => {
            let _ = writeln!(out, "{pad}<{name}/>");
        }
        other => {
            let _ = writeln!(out, "{pad}<{name}>{}</{name}>", escape(&scalar(other)));
        }
    }
}

/// What a network's XML depends on besides the network.
#[derive(Debug, Clone)]
pub struct NetContext<'a> {
    /// The environment's short id.
    pub env_id: &'a str,
    /// Whether `nat` networks forward to the outside (`vm_outbound`).
    pub outbound: bool,
}

/// The libvirt network of a lago network (reference §6.5): `nat` nets get a bridge with the
/// gateway address, DHCP host entries for the plan's addresses (and a range when the net has
/// `dhcp`), and on management nets the environment's names in libvirt's DNS; NAT forwarding
/// only when `outbound`. `bridge` nets attach to the existing bridge `bridge:` names, or get an
/// isolated bridge of their own.
pub fn network_xml(net: &NetUse, ctx: &NetContext<'_>) -> String {
    let name = network_name(ctx.env_id, &net.name);
    let spec = &net.spec;
    let kind = spec.get("type").and_then(Value::as_str).unwrap_or("nat");
    let mut x = String::from("<network>\n");
    let _ = writeln!(x, "  <name>{}</name>", escape(&name));
    if kind == "bridge" {
        match spec.get("bridge").and_then(Value::as_str) {
            Some(br) => {
                let _ = writeln!(x, "  <forward mode='bridge'/>\n  <bridge name='{}'/>", escape(br));
            }
            None => {
                let _ = writeln!(x, "  <bridge name='{}' stp='off' delay='0'/>", escape(&bridge_name(&name)));
            }
        }
        x.push_str("</network>\n");
        return x;
    }
    if ctx.outbound {
        x.push_str(
            "  <forward mode='nat'>\n    <nat>\n      <port start='1024' end='65535'/>\n    </nat>\n  </forward>\n",
        );
    }
    let _ = writeln!(x, "  <bridge name='{}' stp='off' delay='0'/>", escape(&bridge_name(&name)));
    if let Some(mtu) = spec.get("mtu").and_then(Value::as_u64).filter(|m| *m != u64::from(crate::plan::DEFAULT_MTU)) {
        let _ = writeln!(x, "  <mtu size='{mtu}'/>");
    }
    let management = spec.get("management").and_then(Value::as_bool).unwrap_or(false);
    let ip_map = |key: &str| -> Vec<(String, Ipv4Addr)> {
        spec.get(key)
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.parse().ok()?))).collect())
            .unwrap_or_default()
    };
    if management {
        if let Some(domain) = spec.get("dns_domain_name").and_then(Value::as_str) {
            let _ = writeln!(x, "  <domain name='{}' localOnly='yes'/>", escape(domain));
        }
        x.push_str("  <dns forwardPlainNames='no'>\n");
        let mut by_ip: Vec<(Ipv4Addr, Vec<String>)> = Vec::new();
        for (host, ip) in ip_map("dns_records") {
            match by_ip.iter_mut().find(|(i, _)| *i == ip) {
                Some((_, names)) => names.push(host),
                None => by_ip.push((ip, vec![host])),
            }
        }
        for (ip, names) in by_ip {
            let _ = writeln!(x, "    <host ip='{ip}'>");
            for n in names {
                let _ = writeln!(x, "      <hostname>{}</hostname>", escape(&n));
            }
            x.push_str("    </host>\n");
        }
        x.push_str("  </dns>\n");
    } else {
        x.push_str("  <dns enable='no'/>\n");
    }
    if let Some(gw) = spec.get("gw").and_then(Value::as_str).and_then(|g| g.parse::<Ipv4Addr>().ok()) {
        let _ = writeln!(x, "  <ip address='{gw}' netmask='255.255.255.0'>");
        let o = gw.octets();
        x.push_str("    <dhcp>\n");
        if let Some(d) = spec.get("dhcp").and_then(Value::as_object) {
            let start = d.get("start").and_then(Value::as_u64).unwrap_or(100);
            let end = d.get("end").and_then(Value::as_u64).unwrap_or(254);
            let _ = writeln!(
                x,
                "      <range start='{}.{}.{}.{start}' end='{}.{}.{}.{end}'/>",
                o[0], o[1], o[2], o[0], o[1], o[2]
            );
        }
        // One entry per address (its first name in sorted order), as the original.
        let mut hosts: Vec<(String, Ipv4Addr)> = ip_map("mapping");
        hosts.sort();
        let mut seen: Vec<Ipv4Addr> = Vec::new();
        for (host, ip) in hosts {
            if seen.contains(&ip) {
                continue;
            }
            seen.push(ip);
            let _ = writeln!(x, "      <host mac='{}' ip='{ip}' name='{}'/>", crate::plan::mac_of(ip), escape(&host));
        }
        x.push_str("    </dhcp>\n  </ip>\n");
    }
    x.push_str("</network>\n");
    x
}

/// A live snapshot of every disk but CD-ROMs, memory included (internal, in the qcow2 files).
pub fn snapshot_xml(name: &str, devices: &[String]) -> String {
    let mut x =
        format!("<domainsnapshot>\n  <name>{}</name>\n  <memory snapshot='internal'/>\n  <disks>\n", escape(name));
    for d in devices {
        let _ = writeln!(x, "    <disk name='{}' snapshot='internal'/>", escape(d));
    }
    x.push_str("  </disks>\n</domainsnapshot>\n");
    x
}

/// The `<interface>` elements of a domain's XML, in order.
pub fn interfaces(domain: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = domain;
    while let Some(start) = rest.find("<interface ") {
        let Some(len) = rest[start..].find("</interface>") else { break };
        let end = start + len + "</interface>".len();
        out.push(rest[start..end].to_owned());
        rest = &rest[end..];
    }
    out
}

/// An `<interface>` element with its `<link state=...>` set to `state`.
pub fn with_link_state(interface: &str, state: &str) -> String {
    let link = format!("<link state='{state}'/>");
    match interface.find("<link ") {
        Some(start) => {
            let end = interface[start..].find("/>").map_or(interface.len(), |e| start + e + 2);
            format!("{}{link}{}", &interface[..start], &interface[end..])
        }
        None => interface.replacen("</interface>", &format!("  {link}\n</interface>"), 1),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn vm(record: Value) -> (VmRecord, Map<String, Value>) {
        (serde_json::from_value(record.clone()).unwrap(), record.as_object().unwrap().clone())
    }

    #[test]
    fn names_as_the_original() {
        assert_eq!(domain_name("0123abcd4567", "vm01"), "0123abcd-vm01");
        assert_eq!(network_name("0123abcd", "lago"), "0123-lago");
        assert_eq!(
            network_name("0123abcd", "a-long-network"),
            format!("0123-{}", &hex::encode(<sha1::Sha1 as sha1::Digest>::digest(b"a-long-network"))[..10])
        );
        assert_eq!(bridge_name("0123-lago"), "0123-lago-ni");
        assert!(bridge_name(&network_name("0123abcd", "a-long-network")).len() <= 15);
    }

    #[test]
    fn a_template_that_carries_its_kernel_is_booted_directly() {
        let dir = tempfile::tempdir().unwrap();
        let (kernel, initrd) = (dir.path().join("t.vmlinux"), dir.path().join("t.initrd"));
        std::fs::write(&kernel, b"").unwrap();
        std::fs::write(&initrd, b"").unwrap();
        let (v, spec) = vm(json!({"name": "vm01", "nics": [], "disks": [
            {"path": "/w/root.qcow2", "dev": "vda", "format": "qcow2",
             "metadata": {"boot": {"kernel": kernel, "initrd": initrd, "cmdline": "root=LABEL=lago-root rw"}}}]}));
        let ctx =
            DomainContext { prefix: Path::new("/w/.lago/default"), env_id: "0123abcd", accel: Accel::Tcg, seed: false };
        let xml = domain_xml(&v, &spec, &ctx);
        let os = &xml[xml.find("<os>").unwrap()..xml.find("</os>").unwrap()];
        assert!(os.contains(&format!("<kernel>{}</kernel>", kernel.display())), "{os}");
        assert!(os.contains(&format!("<initrd>{}</initrd>", initrd.display())), "{os}");
        assert!(os.contains("<cmdline>root=LABEL=lago-root rw</cmdline>"), "{os}");
        // Without the files, the disk's own boot loader.
        std::fs::remove_file(&kernel).unwrap();
        assert!(!domain_xml(&v, &spec, &ctx).contains("<kernel>"));
    }

    #[test]
    fn domain_of_a_vm_with_every_kind_of_disk() {
        let (v, spec) = vm(json!({"name": "vm01", "memory": 512, "vcpu": 2, "mgmt_net": "lago",
            "nics": [{"net": "lago", "ip": "192.168.200.2"}, {"net": "storage", "mtu": 9000}],
            "disks": [{"path": "$LAGO_PREFIX_PATH/images/vm01_root.qcow2", "dev": "vda", "format": "qcow2"},
                      {"path": "/data/x.raw", "dev": "sdb", "format": "raw"},
                      {"path": "/isos/boot.iso", "dev": "hdc", "format": "iso"}]}));
        let ctx =
            DomainContext { prefix: Path::new("/w/.lago/default"), env_id: "0123abcd", accel: Accel::Tcg, seed: true };
        insta::assert_snapshot!(domain_xml(&v, &spec, &ctx));
    }

    #[test]
    fn cpu_of_the_documentation() {
        let (v, spec) = vm(json!({"name": "vm-el73", "vcpu": 2, "memory": 4096, "cpu_custom": {
            "@mode": "custom", "@match": "exact",
            "model": {"@fallback": "allow", "#text": "Westmere"},
            "feature": {"@policy": "optional", "@name": "vmx"},
            "numa": {"cell": [{"@id": 0, "@cpus": 0, "@memory": 2048, "@unit": "MiB"},
                              {"@id": 1, "@cpus": 1, "@memory": 2048, "@unit": "MiB"}]}}}));
        insta::assert_snapshot!(cpu_xml(&v, &spec, true), @r"
          <cpu mode='custom' match='exact'>
            <model fallback='allow'>Westmere</model>
            <feature policy='optional' name='vmx'/>
            <numa>
              <cell id='0' cpus='0' memory='2048' unit='MiB'/>
              <cell id='1' cpus='1' memory='2048' unit='MiB'/>
            </numa>
            <topology sockets='2' cores='1' threads='1'/>
          </cpu>
        ");
        let (v, spec) = vm(json!({"name": "v", "vcpu": 1, "cpu_model": "Haswell"}));
        assert!(cpu_xml(&v, &spec, true).contains("<model>Haswell</model>"));
        let (v, spec) = vm(json!({"name": "v", "vcpu": 4}));
        assert!(cpu_xml(&v, &spec, true).starts_with("  <cpu mode='host-passthrough'>"));
        assert!(cpu_xml(&v, &spec, false).starts_with("  <cpu mode='maximum'>"));
    }

    #[test]
    fn networks_nat_isolated_and_bridged() {
        let nat = NetUse {
            name: "lago".into(),
            spec: json!({"name": "lago", "type": "nat", "management": true, "dns_domain_name": "lab.test",
                         "gw": "192.168.200.1", "dhcp": {"start": 100, "end": 254},
                         "mapping": {"vm01": "192.168.200.2", "vm01-eth0": "192.168.200.2", "vm02": "192.168.200.3"},
                         "dns_records": {"vm01": "192.168.200.2", "vm01.lab.test": "192.168.200.2", "vm02": "192.168.200.3"}})
            .as_object()
            .unwrap()
            .clone(),
            vms: Vec::new(),
        };
        insta::assert_snapshot!(network_xml(&nat, &NetContext { env_id: "0123abcd", outbound: true }));
        let isolated = network_xml(&nat, &NetContext { env_id: "0123abcd", outbound: false });
        assert!(!isolated.contains("<forward"), "{isolated}");
        let mut bridged = nat.clone();
        bridged.spec = json!({"type": "bridge", "bridge": "lagobr0"}).as_object().unwrap().clone();
        assert_eq!(
            network_xml(&bridged, &NetContext { env_id: "0123abcd", outbound: true }),
            "<network>\n  <name>0123-lago</name>\n  <forward mode='bridge'/>\n  <bridge name='lagobr0'/>\n</network>\n"
        );
        bridged.spec = json!({"type": "bridge"}).as_object().unwrap().clone();
        assert!(
            network_xml(&bridged, &NetContext { env_id: "0123abcd", outbound: true })
                .contains("<bridge name='0123-lago-ni' stp='off' delay='0'/>")
        );
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("a<b&'c'\""), "a&lt;b&amp;&apos;c&apos;&quot;");
        assert_eq!(
            snapshot_xml("s1", &["vda".into()]),
            "<domainsnapshot>\n  <name>s1</name>\n  <memory snapshot='internal'/>\n  <disks>\n    <disk name='vda' snapshot='internal'/>\n  </disks>\n</domainsnapshot>\n"
        );
    }

    #[test]
    fn link_state_of_a_live_interface() {
        let live = "<domain>\n<devices>\n<interface type='network'>\n  <mac address='54:52:c0:a8:c8:02'/>\n</interface>\n<interface type='network'>\n  <mac address='52:54:00:aa:bb:cc'/>\n  <link state='down'/>\n</interface>\n</devices>\n</domain>";
        let found = interfaces(live);
        assert_eq!(found.len(), 2);
        assert_eq!(
            with_link_state(&found[0], "down"),
            "<interface type='network'>\n  <mac address='54:52:c0:a8:c8:02'/>\n  <link state='down'/>\n</interface>"
        );
        assert_eq!(
            with_link_state(&found[1], "up"),
            "<interface type='network'>\n  <mac address='52:54:00:aa:bb:cc'/>\n  <link state='up'/>\n</interface>"
        );
    }
}
