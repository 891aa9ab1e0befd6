//! The records of a plan in the original's JSON shape: `virt/env`, `virt/net-<name>`,
//! `virt/vm-<name>` (what `init` writes and `prefix::records` reads back).

use std::net::Ipv4Addr;

use serde_json::{Map, Value, json};

use super::model::{DEFAULT_MTU, DiskPlan, NetPlan, Plan, VmPlan};
use crate::spec::DiskType;

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

impl NetPlan {
    /// `virt/net-<name>` in the original's shape.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
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
        Value::Object(m)
    }
}

impl DiskPlan {
    /// One entry of `disks` in `virt/vm-<name>`.
    pub fn to_json(&self) -> Value {
        let d = &self.spec;
        let mut m = Map::new();
        m.insert("type".into(), json!(d.kind.as_str()));
        m.insert("name".into(), json!(d.name));
        m.insert("dev".into(), json!(d.dev));
        m.insert("format".into(), json!(self.format));
        if let Some(s) = &d.size {
            m.insert("size".into(), json!(s));
        }
        if let Some(t) = &d.template_name {
            m.insert("template_name".into(), json!(t));
        }
        if let Some(v) = &self.template_version {
            m.insert("template_version".into(), json!(v));
        }
        if d.kind == DiskType::Template {
            let t = match d.template_type {
                crate::spec::TemplateType::Lago => "lago",
                crate::spec::TemplateType::Qcow2 => "qcow2",
            };
            m.insert("template_type".into(), json!(t));
        }
        m.insert("path".into(), json!(self.path));
        if d.make_a_copy {
            m.insert("make_a_copy".into(), json!(true));
        }
        if !d.build.is_empty() {
            let steps: Vec<Value> = d
                .build
                .iter()
                .map(|s| {
                    let opts: Map<String, Value> = s
                        .options
                        .iter()
                        .map(|(k, args)| {
                            let v = match args.len() {
                                0 => json!(""),
                                1 => json!(args[0]),
                                _ => json!(args),
                            };
                            (k.clone(), v)
                        })
                        .collect();
                    json!({ s.builder.clone(): opts })
                })
                .collect();
            m.insert("build".into(), Value::Array(steps));
        }
        if d.skip_export {
            m.insert("skip-export".into(), json!(true));
        }
        m.insert("metadata".into(), Value::Object(self.metadata.clone()));
        Value::Object(m)
    }
}

impl VmPlan {
    /// `virt/vm-<name>` in the original's shape (the domain as written plus what lago added).
    pub fn to_json(&self) -> Value {
        let s = &self.spec;
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("memory".into(), json!(self.memory));
        m.insert("vcpu".into(), json!(self.vcpu));
        if let Some(c) = &s.cpu_model {
            m.insert("cpu_model".into(), json!(c));
        }
        if let Some(c) = &s.cpu_custom {
            m.insert("cpu_custom".into(), c.clone());
        }
        let nics: Vec<Value> = self
            .nics
            .iter()
            .map(|n| {
                let mut nm = Map::new();
                nm.insert("net".into(), json!(n.net));
                if let Some(ip) = n.ip {
                    nm.insert("ip".into(), json!(ip.to_string()));
                }
                if let Some(mtu) = n.mtu {
                    nm.insert("mtu".into(), json!(mtu));
                }
                Value::Object(nm)
            })
            .collect();
        m.insert("nics".into(), Value::Array(nics));
        m.insert("disks".into(), Value::Array(self.disks.iter().map(DiskPlan::to_json).collect()));
        let mut metadata = s.metadata.clone();
        if !s.deploy_scripts.is_empty() {
            metadata.remove("ovirt-scripts");
            metadata.insert("deploy-scripts".into(), json!(s.deploy_scripts));
        }
        m.insert("metadata".into(), Value::Object(metadata));
        if !s.artifacts.is_empty() {
            m.insert("artifacts".into(), json!(s.artifacts));
        }
        if !s.groups.is_empty() {
            m.insert("groups".into(), json!(s.groups));
        }
        if !s.forwards.is_empty() {
            m.insert("forwards".into(), json!(s.forwards));
        }
        m.insert("bootstrap".into(), json!(self.bootstrap));
        m.insert("ssh-user".into(), json!(self.ssh_user));
        match &s.root_password {
            Some(p) => m.insert("root-password".into(), json!(p)),
            None => m.insert("ssh-password".into(), json!(self.ssh_password)),
        };
        if let Some(d) = &s.distro {
            m.insert("distro".into(), json!(d));
        }
        m.insert("vm-type".into(), json!(self.vm_type));
        m.insert("vm-provider".into(), json!(self.vm_provider));
        if let Some(u) = &self.libvirt_url {
            m.insert("libvirt_url".into(), json!(u));
        }
        if let Some(p) = &s.service_provider {
            m.insert("service_provider".into(), json!(p));
        }
        if let Some(g) = &s.guest_agent {
            m.insert("guest-agent".into(), json!(g));
        }
        m.insert("boot_time_sec".into(), json!(self.boot_time_sec));
        if s.skip_export {
            m.insert("skip-export".into(), json!(true));
        }
        m.insert("mgmt_net".into(), json!(self.mgmt_net));
        m.insert("snapshots".into(), json!({}));
        Value::Object(m)
    }
}
