//! The state readers: `run/state.json`, a VM record, and a prefix whose `virt/env` and every
//! `virt/vm-*`/`virt/net-*` it names hold the input. No input may panic or read outside the
//! prefix.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn prefix() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("p/virt")).unwrap();
        std::fs::write(dir.path().join("p/uuid"), "0123456789abcdef0123456789abcdef").unwrap();
        dir
    })
    .path()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = lago::prefix::state::State::parse(text, Path::new("run/state.json"));
    let value = serde_json::from_str::<serde_json::Value>(text).ok();
    if let Some(v) = &value {
        let _ = serde_json::from_value::<lago::prefix::records::VmRecord>(v.clone());
        if let Some(m) = v.as_object() {
            let _ = lago::ops::snapshot::names_of(m);
        }
    }
    let p = prefix().join("p");
    let virt = p.join("virt");
    for e in std::fs::read_dir(&virt).unwrap().flatten() {
        let _ = std::fs::remove_file(e.path());
    }
    std::fs::write(virt.join("env"), text).unwrap();
    // Every sound name the input lists gets the input as its document too.
    if let Some(v) = &value {
        for (key, kind) in [("vms", "vm"), ("nets", "net")] {
            for name in v.get(key).and_then(|l| l.as_array()).into_iter().flatten().filter_map(|n| n.as_str()) {
                if !name.is_empty() && name.len() < 200 && !name.contains('/') && !name.contains('\0') {
                    let _ = std::fs::write(virt.join(format!("{kind}-{name}")), text);
                }
            }
        }
    }
    let prefix = lago::prefix::Prefix { path: p };
    let options = lago::env::EnvOptions {
        accel: lago::config::AccelSetting { accel: lago::config::Accel::Tcg, origin: "the fuzzer".into() },
        kvm: lago::provider::qemu::accel::KvmVerdicts::with(&prefix.path.join("state"), None, Path::new("/nonexistent")),
        vm_outbound: false,
        host_leg: lago::config::HostLegSetting { leg: lago::config::HostLeg::Off, origin: "the fuzzer".into() },
        lease_dir: prefix.path.join("leases"),
        libvirt: lago::config::LibvirtOptions::default(),
        openstack: lago::config::openstack::OpenstackOptions::default(),
        ssh_tries: 1,
        resume: None,
        memory_base: Err("the fuzzer".into()),
        memory_reserve: 0,
        memory_wait: false,
        memory_line: prefix.path.join("memory-line"),
        register: lago::prefix::register::Register::in_state_dir(&prefix.path.join("state")),
    };
    if let Ok(env) = lago::env::Env::load(prefix, options) {
        let _ = env.snapshots(false);
        let _ = env.snapshots(true);
    }
});
