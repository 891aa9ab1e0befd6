//! The records of a plan in the original's JSON shape: `virt/env`, `virt/net-<name>`,
//! `virt/vm-<name>` (what `init` writes and `prefix::records` reads back).

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value, json};

use super::model::{DEFAULT_MTU, DiskPlan, NetPlan, NicPlan, Plan, VmPlan};
use crate::spec::written::Written;

impl Plan {
    /// `virt/env`: the names of nets and VMs.
    pub fn env_json(&self) -> Value {
        json!({
            "nets": self.nets.iter().map(|n| n.name.clone()).collect::<Vec<_>>(),
            "vms": self.vms.iter().map(|v| v.name.clone()).collect::<Vec<_>>(),
        })
    }
}

fn ip_map(entries: &[(String, Ipv4Addr)]) -> Value {
    Value::Object(entries.iter().map(|(n, ip)| (n.clone(), Value::String(ip.to_string()))).collect())
}

fn ip6_map(entries: &[(String, Ipv6Addr)]) -> Value {
    Value::Object(entries.iter().map(|(n, ip)| (n.clone(), Value::String(ip.to_string()))).collect())
}

impl NetPlan {
    /// `virt/net-<name>`: the network as written (every key, `comment` included) with what the
    /// plan decided set on it, as the original's `_init_net_specs` and `_config_net_topology` did.
    pub fn to_json(&self) -> Value {
        let mut m = self.written.to_record();
        m.insert("name".into(), json!(self.name));
        m.insert("type".into(), json!(self.kind.as_str()));
        m.insert("management".into(), json!(self.management));
        if let Some(d) = &self.dns_domain_name {
            m.insert("dns_domain_name".into(), json!(d));
        }
        if let Some(d) = &self.main_dns {
            m.insert("main_dns".into(), json!(d));
        }
        if let Some(gw) = self.gw {
            m.insert("gw".into(), json!(gw.to_string()));
        }
        if let Some((start, end)) = self.dhcp {
            m.insert("dhcp".into(), json!({"start": start, "end": end}));
        }
        if self.mtu != DEFAULT_MTU {
            m.insert("mtu".into(), json!(self.mtu));
        }
        if let Some(b) = &self.bridge {
            m.insert("bridge".into(), json!(b));
        }
        m.insert("mapping".into(), ip_map(&self.mapping));
        if self.management {
            m.insert("dns_records".into(), ip_map(&self.dns_records));
        } else if let Some(f) = self.dns_forward {
            m.insert("dns_forward".into(), json!(f.to_string()));
        }
        // lago's own, only for networks with IPv6: the prefix, the gateway, the AAAA names.
        if let Some(v6) = &self.ipv6 {
            m.insert("ipv6".into(), json!(v6.prefix_str()));
            m.insert("gw6".into(), json!(v6.gw6.to_string()));
            m.insert("mapping6".into(), ip6_map(&self.mapping6));
        }
        if !self.dns_records6.is_empty() {
            m.insert("dns_records6".into(), ip6_map(&self.dns_records6));
        }
        Value::Object(m)
    }
}

impl DiskPlan {
    /// One entry of `disks` in `virt/vm-<name>`: the disk as written (every key, `comment` and
    /// tolerated unknown keys included) with `path` and `metadata` set, as the original's
    /// `_create_disks` made it (`metadata`: the written one updated with the template's published
    /// `.metadata`). lago adds only what a disk the original accepted always had: `name`, `dev`
    /// and `format`, when the init file left them to lago's defaults.
    pub fn to_json(&self) -> Value {
        let d = &self.spec;
        let mut m = d.written.to_record();
        if !m.contains_key("name") {
            m.insert("name".into(), json!(d.name));
        }
        if !m.contains_key("dev") {
            m.insert("dev".into(), json!(d.dev));
        }
        if !m.contains_key("format") {
            m.insert("format".into(), json!(self.format));
        }
        m.insert("path".into(), json!(self.path));
        m.insert("metadata".into(), Value::Object(self.metadata.clone()));
        Value::Object(m)
    }
}

impl NicPlan {
    /// One entry of `nics` in `virt/vm-<name>`: the NIC as written, with the address the plan
    /// gave it (`ip`) and the MTU of its network when not 1500 (`mtu`), as the original's
    /// `_allocate_ips_to_nics` and `_set_mtu_to_nics` did.
    fn to_json(&self, written: &Written) -> Value {
        let mut m = written.to_record();
        m.insert("net".into(), json!(self.net));
        if let Some(ip) = self.ip {
            m.insert("ip".into(), json!(ip.to_string()));
        }
        if let Some(ip6) = self.ip6 {
            m.insert("ip6".into(), json!(ip6.to_string()));
        }
        if let Some(mtu) = self.mtu {
            m.insert("mtu".into(), json!(mtu));
        }
        Value::Object(m)
    }
}

impl VmPlan {
    /// `virt/vm-<name>`: the domain as written (every key, `comment` and tolerated unknown keys
    /// included) with what the original added or changed (`name`, `disks`, `nics`, `mgmt_net`,
    /// `metadata`, `snapshots`, `ssh-user`, `ssh-password`, `vm-type`, `vm-provider`), and
    /// lago's own operational keys (`memory`, `vcpu`, `bootstrap`, `boot_time_sec`,
    /// `libvirt_url`, `forwards`) as lago reads them back.
    pub fn to_json(&self) -> Value {
        let s = &self.spec;
        let mut m = s.written.to_record();
        m.insert("name".into(), json!(self.name));
        m.insert("memory".into(), json!(self.memory));
        m.insert("vcpu".into(), json!(self.vcpu));
        let nics: Vec<Value> = self
            .nics
            .iter()
            .enumerate()
            .map(|(i, n)| n.to_json(&s.nics.get(i).map(|w| w.written.clone()).unwrap_or_default()))
            .collect();
        m.insert("nics".into(), Value::Array(nics));
        m.insert("disks".into(), Value::Array(self.disks.iter().map(DiskPlan::to_json).collect()));
        m.insert("metadata".into(), Value::Object(self.metadata()));
        if !s.forwards.is_empty() {
            m.insert("forwards".into(), json!(s.forwards));
        }
        m.insert("bootstrap".into(), json!(self.bootstrap));
        m.insert("ssh-user".into(), json!(self.ssh_user));
        if !m.contains_key("root-password") {
            m.insert("ssh-password".into(), json!(self.ssh_password));
        }
        m.insert("vm-type".into(), json!(self.vm_type));
        m.insert("vm-provider".into(), json!(self.vm_provider));
        if let Some(u) = &self.libvirt_url {
            m.insert("libvirt_url".into(), json!(u));
        }
        m.insert("boot_time_sec".into(), json!(self.boot_time_sec));
        m.insert("mgmt_net".into(), json!(self.mgmt_net));
        m.insert("snapshots".into(), json!({}));
        Value::Object(m)
    }

    /// The VM's `metadata` as the original kept it (`vm.metadata`): `{}` when the init file gave
    /// none; else the written one with `deploy-scripts` set to the copied scripts, even when
    /// there are none (`[]`), and `ovirt-scripts` left as written.
    fn metadata(&self) -> Map<String, Value> {
        match self.spec.written.get("metadata") {
            Some(Value::Object(written)) => {
                let mut metadata = written.clone();
                metadata.insert("deploy-scripts".into(), json!(self.spec.deploy_scripts));
                metadata
            }
            _ => Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::{Value, json};

    use crate::plan::{PlanDefaults, plan};

    fn records(text: &str) -> (Value, Value) {
        let spec = crate::spec::parse(text, Path::new("LagoInitFile")).unwrap();
        let p = plan(&spec, &PlanDefaults::default()).unwrap();
        (p.vms[0].to_json(), p.nets[0].to_json())
    }

    #[test]
    fn a_vm_record_is_the_domain_as_written_with_what_the_original_added() {
        let (vm, net) = records(
            "\
domains:
  vm01:
    comment: web
    root-password: 123456
    groups: web
    nics: [{net: lago, ip: 10.0.0.7, comment: first}]
    disks:
      - {template_name: tiny, type: template, name: root, comment: root disk, metadata: {owner: me}}
      - {type: empty, name: data, size: 1G, dev: vdc, format: raw}
nets:
  lago: {comment: only net, mtu: 9000}
",
        );
        assert_eq!(vm["comment"], "web");
        // As written: a number stays a number, a single group a string.
        assert_eq!((&vm["root-password"], &vm["groups"]), (&json!(123456), &json!("web")));
        // `root-password` given: no `ssh-password` added.
        assert!(vm.get("ssh-password").is_none(), "{vm}");
        // The address in the network's subnet (only its last octet kept), the network's MTU.
        assert_eq!(vm["nics"][0], json!({"net": "lago", "ip": "192.168.200.7", "comment": "first", "mtu": 9000}));
        // lago's defaults only where the init file left them out; no key of lago's otherwise.
        assert_eq!(
            vm["disks"][0],
            json!({"template_name": "tiny", "type": "template", "name": "root", "comment": "root disk",
                   "metadata": {"owner": "me"}, "dev": "vda", "format": "qcow2",
                   "path": "$LAGO_PREFIX_PATH/images/vm01_root.qcow2"})
        );
        assert_eq!(
            vm["disks"][1],
            json!({"type": "empty", "name": "data", "size": "1G", "dev": "vdc", "format": "raw",
                   "path": "$LAGO_PREFIX_PATH/images/vm01_data.raw", "metadata": {}})
        );
        assert_eq!((&vm["metadata"], &vm["snapshots"], &vm["mgmt_net"]), (&json!({}), &json!({}), &json!("lago")));
        assert_eq!(net["comment"], "only net");
        assert_eq!((&net["name"], &net["type"], &net["gw"]), (&json!("lago"), &json!("nat"), &json!("192.168.200.1")));
    }

    #[test]
    fn a_vm_metadata_gets_deploy_scripts_as_the_originals_did() {
        let (vm, _) = records("domains:\n  vm01:\n    metadata: {role: web}\n    nics: [{net: n}]\nnets:\n  n: {}\n");
        assert_eq!(vm["metadata"], json!({"role": "web", "deploy-scripts": []}));
        assert_eq!(vm["ssh-password"], "123456");
        let (vm, _) =
            records("domains:\n  vm01:\n    metadata: {ovirt-scripts: [a.sh]}\n    nics: [{net: n}]\nnets:\n  n: {}\n");
        // Before `init` copies them, the scripts as written.
        assert_eq!(vm["metadata"], json!({"ovirt-scripts": ["a.sh"], "deploy-scripts": ["a.sh"]}));
    }
}
