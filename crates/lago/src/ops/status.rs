//! `lago status`: the original's information structure (reference §1.5), reconciled with what is
//! actually running, as each VM's provider reports it; lago's own additions (faults, host legs,
//! forwards, clocks) only when asked for (`lago status --extra`).

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::env::{Env, EnvError};
use crate::provider::VmState;

/// The status of an environment, shaped like the original's `info_dict` (its keys, their
/// order and their spelling): each VM's state as its provider sees it, each network up when its
/// provider keeps it up (or, for providers without networks of their own, when a VM on it runs).
/// The fields marked lago's own are `None` unless [`status`] was asked for them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// The prefix.
    #[serde(rename = "Prefix")]
    pub prefix: PrefixStatus,
}

/// The prefix part of [`Status`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrefixStatus {
    /// The prefix directory.
    #[serde(rename = "Base directory")]
    pub base_directory: String,
    /// Its uuid.
    #[serde(rename = "UUID")]
    pub uuid: String,
    /// Its networks, in `virt/env` order.
    #[serde(rename = "Networks", serialize_with = "in_order")]
    pub networks: Vec<(String, NetStatus)>,
    /// Its VMs, in `virt/env` order.
    #[serde(rename = "VMs", serialize_with = "in_order")]
    pub vms: Vec<(String, VmStatus)>,
    /// lago's own: the frozen state the prefix is a copy of, or was last frozen into (`lago
    /// fork`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fork: Option<String>,
}

/// One network of [`Status`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetStatus {
    /// Its gateway (`null` for bridge networks).
    pub gateway: Value,
    /// `up` or `down`.
    pub status: &'static str,
    /// Whether it is a management network.
    pub management: bool,
    /// lago's own, for networks with IPv6 (in every format, as the original had none): the
    /// IPv6 prefix (`fd8f:1:2::/64`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Value>,
    /// lago's own, for networks with IPv6: the IPv6 gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Value>,
    /// lago's own: its partition in force, shown `vm01 | vm02,vm03`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<Partition>,
    /// lago's own: the network's name in libvirt, for the networks of `local-libvirt` VMs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub libvirt_name: Option<String>,
    /// lago's own, for `nat` networks of `local-qemu` VMs: the host leg's interface and address
    /// while the network is up (`3f2a-lago 192.168.200.1/24`), or why there is none (`off: ...`).
    #[serde(rename = "host leg", skip_serializing_if = "Option::is_none")]
    pub host_leg: Option<String>,
}

/// One VM of [`Status`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmStatus {
    /// Its distribution (its own `distro`, else its first disk's template's).
    pub distro: Value,
    /// Its root password.
    #[serde(rename = "root password")]
    pub root_password: Value,
    /// Its state.
    pub status: VmState,
    /// Its snapshots, `, `-separated, oldest first.
    pub snapshots: String,
    /// Its `metadata`.
    pub metadata: Value,
    /// Its NICs, `eth<i>` in `nics` order.
    #[serde(rename = "NICs", serialize_with = "in_order")]
    pub nics: Vec<(String, NicStatus)>,
    /// lago's own: why its clock is off (not set after a revert).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
    /// lago's own: its forwarded ports while it runs, shown `127.0.0.1:40123 -> 8080`,
    /// `, `-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwards: Option<Forwards>,
    /// lago's own: where its memory is while it runs (its file on a tmpfs, a frozen VM's, or
    /// ordinary memory and why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// lago's own: where lago reaches a cloud's VM over SSH (its address on the cloud's
    /// management network), while it runs.
    #[serde(rename = "reached at", skip_serializing_if = "Option::is_none")]
    pub reached_at: Option<String>,
}

/// A partition of a network: groups of VMs that cannot exchange a frame with one another (VMs
/// of the network in no group form one more group). Shown as its groups, `vm01 | vm02,vm03`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition(pub Vec<Vec<String>>);

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.iter().map(|g| g.join(",")).collect::<Vec<_>>().join(" | "))
    }
}

impl Serialize for Partition {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The ports of a VM forwarded to the host's loopback ([`crate::ops::forward::FORWARD_ADDRESS`]),
/// as `(host port, guest port)`. Shown `127.0.0.1:40123 -> 8080, 127.0.0.1:40124 -> 5432`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwards(pub Vec<(u16, u16)>);

impl std::fmt::Display for Forwards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let address = crate::ops::forward::FORWARD_ADDRESS;
        let shown: Vec<String> = self.0.iter().map(|(host, guest)| format!("{address}:{host} -> {guest}")).collect();
        f.write_str(&shown.join(", "))
    }
}

impl Serialize for Forwards {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One NIC of [`VmStatus`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NicStatus {
    /// Its network.
    pub network: String,
    /// Its address (`N/A` when it has none).
    pub ip: Value,
    /// lago's own, for NICs with IPv6 (in every format): the IPv6 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Value>,
    /// lago's own: `cut` when its link is cut.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<&'static str>,
    /// lago's own: how its link is degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
}

/// Named entries as a mapping, in their order.
fn in_order<S: serde::Serializer, T: Serialize>(entries: &[(String, T)], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(entries.len()))?;
    for (k, v) in entries {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// The status of `env` (see [`Status`]): the original's keys and values only (and, for networks
/// and NICs with IPv6, which the original could not make, their prefix, gateway and addresses),
/// or with `extra` lago's own additions too (`partition`, `libvirt_name` and `host leg` of networks, `clock` and
/// `forwards` of VMs, `link` and `degraded` of NICs), each where it has something to say.
pub fn status(env: &Env, extra: bool) -> Result<Status, EnvError> {
    let prefix = &env.prefix;
    let virt = prefix.virt_env()?;
    let states: std::collections::HashMap<String, VmState> =
        env.vms.iter().map(|v| (v.name.clone(), env.state(&v.name))).collect();
    let nets_up = env.nets_up();
    let faults = crate::prefix::state::State::load(&prefix.path).unwrap_or_default();
    let vm_running = |name: &str| states.get(name).is_some_and(VmState::is_running);
    let networks = virt
        .nets
        .iter()
        .map(|(name, spec)| {
            let a_vm_runs_on_it = virt.vms.iter().any(|(vm, vs)| vm_running(vm) && nic_nets(vs).any(|n| n == name));
            let up = nets_up.as_ref().is_some_and(|up| up.contains(name)) || a_vm_runs_on_it;
            let status = NetStatus {
                gateway: spec.get("gw").cloned().unwrap_or(Value::Null),
                status: if up { "up" } else { "down" },
                management: spec.get("management").and_then(Value::as_bool).unwrap_or(false),
                ipv6: spec.get("ipv6").filter(|v| v.is_string()).cloned(),
                gateway6: spec.get("gw6").filter(|v| v.is_string()).cloned(),
                partition: faults.partitions.get(name).filter(|_| extra).map(|groups| Partition(groups.clone())),
                libvirt_name: libvirt_name(env, name).filter(|_| extra),
                host_leg: if extra { env.host_leg_words(name) } else { None },
            };
            (name.clone(), status)
        })
        .collect();
    let vms = virt
        .vms
        .iter()
        .map(|(name, spec)| {
            let nics = spec
                .get("nics")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(i, nic)| {
                    let net = nic.get("net").and_then(Value::as_str).unwrap_or_default();
                    let status = NicStatus {
                        network: net.to_owned(),
                        ip: nic.get("ip").cloned().unwrap_or_else(|| json!("N/A")),
                        ip6: nic.get("ip6").filter(|v| v.is_string()).cloned(),
                        link: (extra && faults.cut.get(name).is_some_and(|c| c.contains(&i))).then_some("cut"),
                        degraded: faults
                            .impairments
                            .get(net)
                            .and_then(|m| m.get(name))
                            .filter(|_| extra)
                            .map(|how| how.describe()),
                    };
                    (format!("eth{i}"), status)
                })
                .collect();
            let distro = spec
                .get("distro")
                .filter(|d| !d.is_null())
                .or_else(|| {
                    spec.get("disks")
                        .and_then(|d| d.get(0))
                        .and_then(|d| d.get("metadata"))
                        .and_then(|m| m.get("distro"))
                })
                .cloned()
                .unwrap_or(Value::Null);
            let root_password = spec
                .get("root-password")
                .filter(|p| !p.is_null())
                .or_else(|| spec.get("ssh-password"))
                .cloned()
                .unwrap_or_else(|| json!(""));
            let status = VmStatus {
                distro,
                root_password,
                status: states.get(name).cloned().unwrap_or(VmState::Down),
                snapshots: crate::ops::snapshot::names_of(spec).join(", "),
                metadata: spec.get("metadata").cloned().unwrap_or_else(|| json!({})),
                nics,
                clock: faults.clock.get(name).filter(|_| extra).map(|why| {
                    if why.starts_with("not set ") {
                        why.clone()
                    } else {
                        format!("not set after the last revert: {why}")
                    }
                }),
                forwards: faults
                    .forwards
                    .get(name)
                    .filter(|_| extra && vm_running(name))
                    .map(|fs| Forwards(fs.iter().map(|f| (f.host, f.guest)).collect())),
                memory: faults.memory.get(name).filter(|_| extra && vm_running(name)).map(|m| m.describe()),
                reached_at: env
                    .vms
                    .iter()
                    .find(|v| v.name == *name && v.provider() == "openstack" && extra && vm_running(name))
                    .and_then(|v| env.provider_of(v).ok().map(|p| p.target(&prefix.path, v, None)))
                    .map(|t| format!("{}:{}", t.host, t.port)),
            };
            (name.clone(), status)
        })
        .collect();
    let fork = extra.then(|| fork_words(&prefix.path)).flatten();
    Ok(Status {
        prefix: PrefixStatus {
            base_directory: prefix.path.display().to_string(),
            uuid: prefix.uuid()?,
            networks,
            vms,
            fork,
        },
    })
}

/// What `status --extra` says of the prefix's forks: the frozen state it is a copy of, or the
/// one it was last frozen into.
fn fork_words(prefix: &std::path::Path) -> Option<String> {
    let record = crate::prefix::frozen::ForkRecord::load(prefix).ok()?;
    let origin = |dir: &std::path::Path| {
        crate::prefix::frozen::Frozen::load(dir).map(|f| f.manifest.origin).unwrap_or_else(|_| "?".into())
    };
    match (&record.copy_of, &record.last) {
        (Some(of), _) => Some(format!("copy of prefix {} as frozen in {}", origin(of), of.display())),
        (None, Some(last)) => Some(format!("forked: frozen in {}", last.display())),
        (None, None) => None,
    }
}

fn nic_nets(spec: &Map<String, Value>) -> impl Iterator<Item = &str> {
    spec.get("nics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|n| n.get("net").and_then(Value::as_str))
}

/// The libvirt name of network `net` when `local-libvirt` VMs are on it.
fn libvirt_name(env: &Env, net: &str) -> Option<String> {
    let on_libvirt = env
        .vms
        .iter()
        .any(|v| v.vm_provider.as_deref() == Some("local-libvirt") && v.nics.iter().any(|n| n.net == net));
    if !on_libvirt {
        return None;
    }
    #[cfg(feature = "libvirt")]
    {
        env.env_id().ok().map(|id| crate::provider::libvirt::xml::network_name(&id, net))
    }
    #[cfg(not(feature = "libvirt"))]
    {
        None
    }
}
