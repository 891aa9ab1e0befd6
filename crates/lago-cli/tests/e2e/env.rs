//! A 3-VM environment on two networks, under TCG: with lago's own qemu provider here, with
//! libvirt's in `libvirt.rs` (the same checks).

use std::path::Path;

use crate::lab::Lab;
use crate::libvirt::LibvirtHost;
use crate::tiny_repo;

/// The provider the VMs of a lifecycle run on.
pub enum Via<'a> {
    /// lago's own.
    Qemu,
    /// libvirt's, on this host.
    Libvirt(&'a LibvirtHost),
}

pub const INIT: &str = "\
base: &base
  memory: 256
  vcpu: 1
  disks: [{template_name: tiny, type: template, name: root, dev: vda}]
domains:
  vm01: {<<: *base, nics: [{net: lab}], artifacts: [/etc/hostname, /var/log, /nonexistent]}
  vm02:
    <<: *base
    nics: [{net: lab, ip: 192.168.200.20}]
    metadata: {deploy-scripts: [$LAGO_INITFILE_PATH/scripts/ok.sh]}
    vcpu: 2
    cpu_custom:
      '@mode': custom
      model: {'#text': qemu64, '@fallback': forbid}
      feature: [{'@name': pdpe1gb, '@policy': require}, {'@name': sse4a, '@policy': disable}]
      topology: {'@sockets': 1, '@cores': 2, '@threads': 1}
  vm03:
    <<: *base
    nics: [{net: other}]
    metadata: {deploy-scripts: [$LAGO_INITFILE_PATH/scripts/fail.sh]}
    artifacts: [/etc/hostname]
nets:
  lab: {management: true, dns_domain_name: lab.test}
  other: {management: true, dns_domain_name: other.test}
";

/// [`INIT`] with one vCPU in vm02 too: libvirt runs its domains under multi-threaded TCG, where
/// 2-vCPU guests now and then hang at boot (lago's own VMs run TCG on one thread).
pub fn libvirt_init() -> String {
    INIT.replace("    vcpu: 2\n", "    vcpu: 1\n").replace("'@cores': 2", "'@cores': 1")
}

/// Processes whose command line names `path`.
pub fn processes_naming(path: &Path) -> Vec<String> {
    let needle = path.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle))
        .collect()
}

#[test]
fn three_vms_two_networks_lifecycle() {
    lifecycle(&Lab::new(INIT), Via::Qemu);
}

/// Lab, on `via`: the life of [`INIT`] from init to destroy, checked as a user would.
pub fn lifecycle(lab: &Lab, via: Via<'_>) {
    lab.ok(&["init"]);
    lab.ok(&["start"]);
    let st = lab.status();
    for vm in ["vm01", "vm02", "vm03"] {
        assert_eq!(st["Prefix"]["VMs"][vm]["status"], "running", "{st}");
    }
    assert_eq!(st["Prefix"]["Networks"]["lab"]["status"], "up");
    assert_eq!(lab.shell("vm01", "hostname -f"), (0, "vm01.lab.test".into()));
    assert_eq!(lab.shell("vm03", "hostname -f"), (0, "vm03.other.test".into()));
    // cpu_custom: the model, its features and the topology, as the guest sees them.
    let cpus = lab.shell("vm02", "grep -c ^processor /proc/cpuinfo; grep -m1 '^model name' /proc/cpuinfo; grep -m1 '^cpu cores' /proc/cpuinfo; grep -m1 -o -w -e pdpe1gb -e sse4a /proc/cpuinfo | sort -u").1;
    let cpus: Vec<&str> = cpus.lines().collect();
    // libvirt's VMs get one vCPU (`libvirt_init`).
    let vcpus = if matches!(via, Via::Qemu) { "2" } else { "1" };
    assert_eq!(cpus[0], vcpus, "{cpus:?}");
    assert!(cpus[1].contains("QEMU Virtual CPU"), "{cpus:?}");
    assert!(cpus[2].ends_with(&format!(": {vcpus}")), "{cpus:?}");
    assert_eq!(&cpus[3..], ["pdpe1gb"], "{cpus:?}");
    // Same network: by name and by address; the other network: unreachable.
    assert_eq!(lab.shell("vm01", "ping -c 1 -W 5 vm02 >/dev/null && echo ok").1, "ok");
    assert_eq!(lab.shell("vm02", "ping -c 1 -W 5 192.168.200.2 >/dev/null && echo ok").1, "ok");
    assert_eq!(lab.shell("vm01", "ping -c 1 -W 5 vm02.lab.test >/dev/null && echo ok").1, "ok");
    assert_ne!(lab.shell("vm01", "ping -c 1 -W 2 vm03").0, 0);
    // A service in a VM, reached as tests reach one: busybox's httpd, fetched with `wget -T`
    // (Debian's busybox crashes on -T; tiny's wget runs it under `timeout`) from the VM itself and
    // from its peer. A server that never answers (nc) runs out of time instead of hanging.
    let serve = "mkdir -p /tmp/www && echo served-by-vm02 > /tmp/www/index.html && httpd -p 8080 -h /tmp/www && \
                 (setsid sh -c 'sleep 120 | nc -l -p 8081' </dev/null >/dev/null 2>&1 &) && echo ok";
    assert_eq!(lab.shell("vm02", serve), (0, "ok".into()));
    assert_eq!(lab.shell("vm02", "wget -T 5 -q -O- http://127.0.0.1:8080/"), (0, "served-by-vm02".into()));
    assert_eq!(lab.shell("vm01", "wget -T 5 -q -O- http://vm02:8080/"), (0, "served-by-vm02".into()));
    let (_, late) =
        lab.shell("vm01", "s=$(date +%s); wget -T 2 -q -O- http://vm02:8081/ 2>&1; echo $? $(($(date +%s) - s))");
    let (message, took) = late.rsplit_once('\n').unwrap_or_else(|| panic!("{late:?}"));
    assert_eq!(message, "wget: download timed out", "{late:?}");
    let (status, secs) = took.split_once(' ').unwrap_or_else(|| panic!("{late:?}"));
    assert!(status == "1" && (2..=8).contains(&secs.parse::<u32>().unwrap()), "status and seconds: {late:?}");
    // The other tools tests bound in time: nc -w (a connection's timeout) and timeout.
    let bounded = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 vm02 8080 | tail -n 1; timeout 1 sleep 10; echo $?";
    assert_eq!(lab.shell("vm01", bounded), (0, "served-by-vm02\n143".into()));
    // Exit codes come back; a local script file runs in the VM.
    assert_eq!(lab.shell("vm02", "exit 7").0, 7);
    std::fs::write(lab.home.path().join("probe.sh"), "echo from-script $(hostname)\nexit 4\n").unwrap();
    assert_eq!(lab.shell("vm02", "probe.sh"), (4, "from-script vm02".into()));

    // Stop and start one VM.
    lab.ok(&["stop", "vm02"]);
    assert_eq!(lab.status()["Prefix"]["VMs"]["vm02"]["status"], "down");
    assert_eq!(lab.status()["Prefix"]["VMs"]["vm01"]["status"], "running");
    lab.ok(&["start", "vm02"]);
    assert_eq!(lab.shell("vm02", "hostname").1, "vm02");

    // A VM killed behind lago's back shows as down, and start brings it back.
    let prefix = lab.home.path().join(".lago/default");
    match via {
        Via::Qemu => {
            let pid: i32 = std::fs::read_to_string(prefix.join("run/vm03.pid")).unwrap().trim().parse().unwrap();
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        Via::Libvirt(host) => {
            let uuid = std::fs::read_to_string(prefix.join("uuid")).unwrap();
            host.virsh(&["destroy", &format!("{}-vm03", &uuid[..8])]);
        }
    }
    assert_eq!(lab.status()["Prefix"]["VMs"]["vm03"]["status"], "down");
    lab.ok(&["start"]);
    assert_eq!(lab.shell("vm03", "hostname").1, "vm03");

    // Unknown VM names are refused.
    let out = lab.lago(&["stop", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("The following vms do not exist: nope"));

    // Copy both ways, files and directories.
    let data = lab.home.path().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("sub/file"), "content\n").unwrap();
    lab.ok(&["copy-to-vm", "vm01", "data", "/root/data"]);
    assert_eq!(lab.shell("vm01", "cat /root/data/sub/file").1, "content");
    lab.ok(&["copy-from-vm", "vm01", "/root/data", "back"]);
    assert_eq!(std::fs::read_to_string(lab.home.path().join("back/sub/file")).unwrap(), "content\n");
    let out = lab.lago(&["copy-from-vm", "vm01", "/nonexistent", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Failed to extract files"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Collect: missing artifacts are skipped, or fail with --no-skip; an old output is rotated.
    lab.ok(&["collect", "--output", "out"]);
    assert_eq!(std::fs::read_to_string(lab.home.path().join("out/vm01/_etc_hostname")).unwrap(), "vm01\n");
    assert!(lab.home.path().join("out/vm01/_var_log").is_dir());
    assert!(!lab.home.path().join("out/vm01/_nonexistent").exists());
    assert!(lab.home.path().join("out/vm02").is_dir());
    let out = lab.lago(&["collect", "--output", "out", "--no-skip"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent does not exist in VM vm01"));
    let rotated = std::fs::read_dir(lab.home.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("out."))
        .count();
    assert_eq!(rotated, 1);

    // Deploy: scripts run in each VM; a failing one names script, VM, status and output.
    let out = lab.lago(&["deploy"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("fail.sh failed with status 3 on vm03") && stderr.contains("I'm going to fail"),
        "{stderr}"
    );
    assert_eq!(lab.shell("vm02", "cat /root/deployed").1, "deployed");

    // Graceful shutdown through ACPI; reboot comes back with a new boot.
    lab.ok(&["shutdown", "vm03"]);
    assert_eq!(lab.status()["Prefix"]["VMs"]["vm03"]["status"], "down");

    // A stopped VM's artifacts are read from its disk (libguestfs, as the original fell back
    // to); the running ones' over SSH.
    let out = lab.lago(&["collect", "--output", "stopped"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(lab.home.path().join("stopped/vm03/_etc_hostname")).unwrap(), "vm03\n");
    assert_eq!(std::fs::read_to_string(lab.home.path().join("stopped/vm01/_etc_hostname")).unwrap(), "vm01\n");
    let before = lab.shell("vm02", "cat /proc/sys/kernel/random/boot_id").1;
    lab.ok(&["shutdown", "-r", "vm02"]);
    assert_ne!(lab.shell("vm02", "cat /proc/sys/kernel/random/boot_id").1, before);

    // The serial console, on a terminal: a getty answers on it; Ctrl-] leaves.
    assert!(lab.console_shows("vm01", "login:"));

    // Destroy leaves no process, socket, lease or directory.
    lab.ok(&["destroy", "--yes"]);
    assert!(!prefix.exists());
    assert!(!lab.home.path().join(".lago").exists());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(processes_naming(&prefix), Vec::<String>::new());
    let leases: Vec<String> =
        walkdir(&lab.home.path().join("leases")).into_iter().filter(|n| n.ends_with(".lease")).collect();
    assert_eq!(leases, Vec::<String>::new());
    if let Via::Libvirt(host) = via {
        assert_eq!(host.leftovers(), Vec::<String>::new());
    }
}

/// Every file under `dir`.
fn walkdir(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walkdir(&e.path()));
        } else {
            out.push(e.path().display().to_string());
        }
    }
    out
}

#[test]
fn two_environments_side_by_side_do_not_see_each_other() {
    let a = Lab::new(INIT);
    let b = Lab::sharing_leases(INIT, &tiny_repo(), Some(&a.home.path().join("leases")));
    // Both use 192.168.200.0/24; each network has its own switch.
    std::fs::write(a.home.path().join("LagoInitFile"), "domains:\n  vm01: {memory: 256, nics: [{net: lab}], disks: [{template_name: tiny, type: template, name: root}]}\nnets:\n  lab: {}\n").unwrap();
    std::fs::write(b.home.path().join("LagoInitFile"), "domains:\n  other: {memory: 256, nics: [{net: lab, ip: 192.168.200.3}], disks: [{template_name: tiny, type: template, name: root}]}\nnets:\n  lab: {}\n").unwrap();
    a.ok(&["init"]);
    b.ok(&["init"]);
    a.ok(&["start"]);
    b.ok(&["start"]);
    assert_eq!(a.shell("vm01", "ping -c 2 -W 2 192.168.200.3 >/dev/null; echo $?").1, "1");
    assert_eq!(b.shell("other", "ping -c 2 -W 2 192.168.200.2 >/dev/null; echo $?").1, "1");
}
