//! `lago ansible_hosts`: an Ansible INI inventory of the environment (reference §1.6).
//!
//! Groups come from spec keys (`<key>=<value>`, one group per item of a list) and from each VM's
//! `groups`. Unlike the original, whose entries named the VM's address on its isolated network
//! (unreachable from the host here), an entry reaches a running VM the way lago does: through
//! its forwarded SSH port on 127.0.0.1, with the environment's key, user and `known_hosts`;
//! the VM's address on its management network is the variable `lago_ip` (its IPv6 address where
//! it has no IPv4 one).

use serde_json::{Map, Value};

use crate::env::{Env, EnvError};
use crate::host::ssh::quote;

/// Keys grouped on by default.
pub const DEFAULT_KEYS: &[&str] = &["vm-type", "groups", "vm-provider"];

/// The value at `key` in `spec`: a `/`-separated path (a leading `/` is ignored), numbers index
/// lists (negative from the end); `/` or an empty key is the whole spec.
pub fn get_key<'a>(key: &str, spec: &'a Value) -> Option<&'a Value> {
    let mut cur = spec;
    for part in key.trim_start_matches('/').split('/').filter(|p| !p.is_empty()) {
        cur = match cur {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => {
                let i: i64 = part.parse().ok()?;
                let i = if i < 0 { a.len() as i64 + i } else { i };
                a.get(usize::try_from(i).ok()?)?
            }
            _ => return None,
        };
    }
    Some(cur)
}

/// A value as the original printed it (Python's `str`).
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// One inventory line of a VM.
fn entry(env: &Env, name: &str, spec: &Map<String, Value>, running: bool) -> String {
    let vm = env.vms.iter().find(|v| v.name == name);
    // Its IPv4 address, else (an IPv6-only management network) its IPv6 one.
    let ip = vm.and_then(|v| v.address()).map(|ip| ip.to_string());
    let key = env.prefix.layout().ssh_key().display().to_string();
    let user = spec.get("ssh-user").and_then(Value::as_str).unwrap_or("root");
    match env.ssh_target(name).ok().filter(|_| running) {
        Some(mut target) => {
            // Where the host has a leg on the VM's management network, the VM's own address,
            // as the original's inventory had it; else lago's forwarded port.
            if let Some(ip) = vm.and_then(|v| env.leg_address(v)) {
                target.host = ip.to_string();
                target.port = 22;
            }
            // The options lago's own ssh uses: known_hosts of the prefix, keyed by VM name.
            let opts: Vec<String> = target
                .options(10, false, true)
                .chunks(2)
                .take_while(|c| c[0] == "-o")
                .map(|c| format!("-o {}", c[1]))
                .collect();
            let key = target.key.display().to_string();
            let mut line = format!(
                "{name} ansible_host={} ansible_port={} ansible_user={} ansible_ssh_private_key_file={key} ansible_ssh_common_args={}",
                target.host,
                target.port,
                target.user,
                quote(&opts.join(" "))
            );
            if let Some(ip) = ip {
                line.push_str(&format!(" lago_ip={ip}"));
            }
            line
        }
        _ => format!(
            "{name} ansible_host={} ansible_user={user} ansible_ssh_private_key_file={key}",
            ip.unwrap_or_else(|| name.to_owned())
        ),
    }
}

impl Env {
    /// The INI inventory, grouped on `keys` (see [`DEFAULT_KEYS`]) and on each VM's `groups`.
    pub fn ansible_inventory(&self, keys: &[String]) -> Result<String, EnvError> {
        let virt = self.prefix.virt_env()?;
        let running = self.running();
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        let mut add = |group: String, line: &str| match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, lines)) => lines.push(line.to_owned()),
            None => groups.push((group, vec![line.to_owned()])),
        };
        for (name, spec) in &virt.vms {
            let line = entry(self, name, spec, running.contains(name));
            let whole = Value::Object(spec.clone());
            for key in keys {
                match get_key(key, &whole) {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(items)) => {
                        for item in items {
                            add(format!("{key}={}", py_str(item)), &line);
                        }
                    }
                    Some(v) => add(format!("{key}={}", py_str(v)), &line),
                }
            }
            // `groups` may be a string in old specs: one group, not one per character.
            match spec.get("groups") {
                Some(Value::Array(items)) => items.iter().for_each(|g| add(py_str(g), &line)),
                Some(Value::String(g)) => add(g.clone(), &line),
                _ => {}
            }
        }
        let mut out = Vec::new();
        for (group, mut lines) in groups {
            lines.sort();
            out.push(format!("[{group}]"));
            out.extend(lines);
        }
        Ok(out.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_paths() {
        let spec = json!({"vm-type": "default", "disks": [{"template_name": "a"}, {"template_name": "b"}]});
        assert_eq!(get_key("vm-type", &spec), Some(&json!("default")));
        assert_eq!(get_key("/disks/-1/template_name", &spec), Some(&json!("b")));
        assert_eq!(get_key("/disks/0/template_name", &spec), Some(&json!("a")));
        assert_eq!(get_key("/disks/5/template_name", &spec), None);
        assert_eq!(get_key("/", &spec), Some(&spec));
        assert_eq!(get_key("nope", &spec), None);
        assert_eq!(py_str(&json!(true)), "True");
    }
}
