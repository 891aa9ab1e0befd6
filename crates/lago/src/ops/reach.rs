//! How a person reaches an environment lago left running (the pytest plugin's `--lago-keep`): its
//! workdir on a line of its own, then for each VM the `lago shell` command line, the plain `ssh`
//! command line, and its forwarded ports.
//!
//! ```text
//! lago workdir: /tmp/pytest-of-u/pytest-3/lago0/.lago
//! lago prefix: default (lago envs lists it; lago --workdir W --prefix-name default destroy ends it)
//! vm01: lago --workdir /tmp/.../.lago --prefix-name default shell vm01
//! vm01: ssh -o UserKnownHostsFile=... -o HostKeyAlias=vm01 -o IdentitiesOnly=yes -i .../id_rsa -p 40123 root@127.0.0.1
//! vm01: forward 127.0.0.1:40123 -> 22 (init file)
//! ```

use std::path::Path;

use crate::env::Env;
use crate::host::ssh::{Target, quote};

/// The lines that say how to reach `env`, whose workdir is `workdir` (`None`: a prefix given by
/// its path, reached with `--prefix-path`).
pub fn reach_lines(env: &Env, workdir: Option<&Path>) -> Vec<String> {
    let name = env.prefix.name();
    let place = match workdir {
        Some(w) => format!("--workdir {} --prefix-name {}", quote(&w.display().to_string()), quote(&name)),
        None => format!("--prefix-path {}", quote(&env.prefix.path.display().to_string())),
    };
    let mut lines = Vec::new();
    if let Some(w) = workdir {
        lines.push(format!("lago workdir: {}", w.display()));
    }
    lines.push(format!("lago prefix: {name} (lago envs lists it; lago {place} destroy ends it)"));
    let forwards = env.forwards().unwrap_or_default();
    for vm in &env.vms {
        let vm = &vm.name;
        lines.push(format!("{vm}: lago {place} shell {}", quote(vm)));
        match env.ssh_target(vm) {
            Ok(target) => lines.push(format!("{vm}: {}", ssh_command(&target))),
            Err(e) => lines.push(format!("{vm}: no ssh: {e}")),
        }
        for (_, fs) in forwards.iter().filter(|(v, _)| v == vm) {
            for f in fs {
                let origin = if f.live { "lago forward" } else { "init file" };
                lines.push(format!(
                    "{vm}: forward {}:{} -> {} ({origin})",
                    crate::ops::forward::FORWARD_ADDRESS,
                    f.host,
                    f.guest
                ));
            }
        }
    }
    lines
}

/// The plain `ssh` command line that reaches `target` from a shell (no master connection, the
/// environment's known hosts and key).
pub fn ssh_command(target: &Target) -> String {
    let mut a: Vec<String> = vec!["ssh".into()];
    let mut opt = |v: String| a.extend(["-o".into(), v]);
    if target.known_hosts == Path::new("/dev/null") {
        opt("StrictHostKeyChecking=no".into());
        opt("UserKnownHostsFile=/dev/null".into());
    } else {
        opt(format!("UserKnownHostsFile={}", target.known_hosts.display()));
        opt(format!("HostKeyAlias={}", target.vm));
    }
    if !target.key.as_os_str().is_empty() {
        opt("IdentitiesOnly=yes".into());
        a.extend(["-i".into(), target.key.display().to_string()]);
    }
    a.extend(["-p".into(), target.port.to_string(), format!("{}@{}", target.user, target.host)]);
    a.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_ssh_command_line() {
        let target = Target {
            vm: "vm01".into(),
            user: "root".into(),
            port: 40123,
            host: "127.0.0.1".into(),
            key: "/w/.lago/default/id_rsa".into(),
            known_hosts: "/w/.lago/default/run/known hosts".into(),
            control: Some("/run/x".into()),
            password: None,
        };
        assert_eq!(
            ssh_command(&target),
            "ssh -o 'UserKnownHostsFile=/w/.lago/default/run/known hosts' -o HostKeyAlias=vm01 -o IdentitiesOnly=yes -i /w/.lago/default/id_rsa -p 40123 root@127.0.0.1"
        );
        let other =
            Target { known_hosts: "/dev/null".into(), key: "".into(), host: "10.0.0.5".into(), port: 22, ..target };
        assert_eq!(
            ssh_command(&other),
            "ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p 22 root@10.0.0.5"
        );
    }

    #[test]
    fn lines_of_a_stopped_environment() {
        let dir = tempfile::tempdir().unwrap();
        let env = crate::env::fake::env(dir.path(), crate::env::fake::Fake::default());
        let wd = dir.path().join(".lago");
        let lines = reach_lines(&env, Some(&wd));
        assert_eq!(lines[0], format!("lago workdir: {}", wd.display()));
        let name = env.prefix.name();
        assert!(
            lines[1].starts_with(&format!("lago prefix: {name} (lago envs lists it; lago --workdir ")),
            "{lines:?}"
        );
        assert_eq!(lines[2], format!("vm00: lago --workdir {} --prefix-name {name} shell vm00", wd.display()));
        assert!(lines[3].starts_with("vm00: no ssh: "), "{lines:?}");
        assert_eq!(lines.len(), 2 + 3 * 2, "{lines:?}");
    }
}
