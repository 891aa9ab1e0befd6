//! `lago status`: the original's information structure (reference §1.5), reconciled with what is
//! actually running.

use serde_json::{Map, Value, json};

use crate::prefix::{Prefix, PrefixError};

/// The status of a prefix, shaped like the original's `info_dict`.
pub fn status(prefix: &Prefix) -> Result<Value, PrefixError> {
    let env = prefix.virt_env()?;
    let mut running: Vec<String> = prefix.processes().into_iter().map(|(what, _)| what).collect();
    // Machines of the `ssh` provider run when they answer.
    for (name, spec) in env.vms.iter().filter(|(_, s)| s.get("vm-provider").and_then(Value::as_str) == Some("ssh")) {
        let Ok(vm) = serde_json::from_value::<crate::provider::VmRecord>(Value::Object(spec.clone())) else { continue };
        let target = crate::env::ssh_provider_target(&prefix.path, &vm);
        if crate::provider::Provider::probe(&crate::provider::QemuProvider::default(), &target).unwrap_or(false) {
            running.push(name.clone());
        }
    }
    let vm_running = |name: &str| running.iter().any(|r| r == name);
    let nets: Map<String, Value> = env
        .nets
        .iter()
        .map(|(name, spec)| {
            let up = env.vms.iter().any(|(vm, vs)| vm_running(vm) && nic_nets(vs).any(|n| n == name));
            let info = json!({
                "gateway": spec.get("gw").cloned().unwrap_or(Value::Null),
                "status": if up { "up" } else { "down" },
                "management": spec.get("management").and_then(Value::as_bool).unwrap_or(false),
            });
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
                    (format!("eth{i}"), json!({"network": nic.get("net").cloned().unwrap_or(Value::Null), "ip": nic.get("ip").cloned().unwrap_or_else(|| json!("N/A"))}))
                })
                .collect();
            let distro = spec
                .get("distro")
                .filter(|d| !d.is_null())
                .or_else(|| spec.get("disks").and_then(|d| d.get(0)).and_then(|d| d.get("metadata")).and_then(|m| m.get("distro")))
                .cloned()
                .unwrap_or(Value::Null);
            let root_password = spec
                .get("root-password")
                .filter(|p| !p.is_null())
                .or_else(|| spec.get("ssh-password"))
                .cloned()
                .unwrap_or_else(|| json!(""));
            let snapshots = crate::snapshot::names_of(spec);
            let info = json!({
                "distro": distro,
                "root password": root_password,
                "status": if vm_running(name) { "running" } else { "down" },
                "snapshots": snapshots.join(", "),
                "metadata": spec.get("metadata").cloned().unwrap_or_else(|| json!({})),
                "NICs": nics,
            });
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
