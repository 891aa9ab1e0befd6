//! `lago status`: the original's information structure (reference §1.5), reconciled with what is
//! actually running, as each VM's provider reports it.

use serde_json::{Map, Value, json};

use crate::env::{Env, EnvError};

/// The status of an environment, shaped like the original's `info_dict`: each VM's state as its
/// provider sees it, each network up when its provider keeps it up (or, for providers without
/// networks of their own, when a VM on it runs).
pub fn status(env: &Env) -> Result<Value, EnvError> {
    let prefix = &env.prefix;
    let virt = prefix.virt_env()?;
    let states: std::collections::HashMap<String, String> =
        env.vms.iter().map(|v| (v.name.clone(), env.state(&v.name))).collect();
    let running: Vec<String> = states.iter().filter(|(_, s)| *s == "running").map(|(n, _)| n.clone()).collect();
    let nets_up = env.nets_up();
    let faults = crate::prefix::state::State::load(&prefix.path).unwrap_or_default();
    let env = virt;
    let vm_running = |name: &str| running.iter().any(|r| r == name);
    let nets: Map<String, Value> = env
        .nets
        .iter()
        .map(|(name, spec)| {
            let up = nets_up.as_ref().map_or_else(
                || env.vms.iter().any(|(vm, vs)| vm_running(vm) && nic_nets(vs).any(|n| n == name)),
                |up| {
                    up.contains(name)
                        || env.vms.iter().any(|(vm, vs)| vm_running(vm) && nic_nets(vs).any(|n| n == name))
                },
            );
            let mut info = json!({
                "gateway": spec.get("gw").cloned().unwrap_or(Value::Null),
                "status": if up { "up" } else { "down" },
                "management": spec.get("management").and_then(Value::as_bool).unwrap_or(false),
            });
            if let Some(groups) = faults.partitions.get(name) {
                let groups: Vec<String> = groups.iter().map(|g| g.join(",")).collect();
                info["partition"] = json!(groups.join(" | "));
            }
            (name.clone(), info)
        })
        .collect();
    let vms: Map<String, Value> = env
        .vms
        .iter()
        .map(|(name, spec)| {
            let nics: Map<String, Value> = spec
                .get("nics")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(i, nic)| {
                    let net = nic.get("net").and_then(Value::as_str).unwrap_or_default();
                    let mut info =
                        json!({"network": net, "ip": nic.get("ip").cloned().unwrap_or_else(|| json!("N/A"))});
                    if faults.cut.get(name).is_some_and(|c| c.contains(&i)) {
                        info["link"] = json!("cut");
                    }
                    if let Some(how) = faults.impairments.get(net).and_then(|m| m.get(name)) {
                        info["degraded"] = json!(how.describe());
                    }
                    (format!("eth{i}"), info)
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
            let snapshots = crate::ops::snapshot::names_of(spec);
            let mut info = json!({
                "distro": distro,
                "root password": root_password,
                "status": states.get(name).cloned().unwrap_or_else(|| "down".into()),
                "snapshots": snapshots.join(", "),
                "metadata": spec.get("metadata").cloned().unwrap_or_else(|| json!({})),
                "NICs": nics,
            });
            if let Some(why) = faults.clock.get(name) {
                info["clock"] = json!(format!("not set after the last revert: {why}"));
            }
            (name.clone(), info)
        })
        .collect();
    Ok(json!({
        "Prefix": {
            "Base directory": prefix.path.display().to_string(),
            "UUID": prefix.uuid()?,
            "Networks": nets,
            "VMs": vms,
        }
    }))
}

fn nic_nets(spec: &Map<String, Value>) -> impl Iterator<Item = &str> {
    spec.get("nics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|n| n.get("net").and_then(Value::as_str))
}
