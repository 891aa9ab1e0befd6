//! The init-file reader: text → spec → plan → persisted records → qemu's command line. No input
//! may panic; a file that passes must give records the provider reads back.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok((spec, issues)) = lago::spec::parse_partial(text, Path::new("LagoInitFile")) else { return };
    if !issues.is_empty() {
        return;
    }
    let Ok(plan) = lago::plan::plan(&spec, &lago::plan::PlanDefaults::default()) else { return };
    let _ = plan.env_json();
    for net in &plan.nets {
        let _ = net.to_json();
    }
    for vm in &plan.vms {
        let record: lago::prefix::records::VmRecord =
            serde_json::from_value(vm.to_json()).expect("a planned VM reads back as a record");
        let ctx = lago::provider::LaunchContext {
            prefix: "/w/.lago/default".into(),
            env_id: "0123abcd".into(),
            accel: lago::config::Accel::Tcg,
            ssh_port: 2222,
            outbound: false,
            index: 0,
            forwards: record.forwards.iter().map(|f| (f.host.unwrap_or(40000), f.guest)).collect(),
            host_legs: Vec::new(),
            paused: false,
            memory: lago::provider::Memory::File { path: "/dev/shm/lago-0/ab/vm.mem".into(), shared: true },
            incoming: false,
            scratch: None,
            kernel_stub: None,
        };
        let _ = lago::provider::qemu_argv(&record, &ctx);
    }
});
