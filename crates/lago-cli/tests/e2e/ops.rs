//! Operations on a running `tiny` environment: snapshot and revert, forwarded ports, services,
//! the Ansible inventory, the `ssh` provider, export and re-import, and `virt-customize` builds.

use lago::ops::service::ServiceProvider;

use crate::lab::Lab;

const ONE_VM: &str = "\
domains:
  vm01:
    memory: 256
    groups: web
    nics: [{net: lab}]
    disks: [{template_name: tiny, type: template, name: root, dev: vda}]
    forwards: [{guest: 8080}]
nets:
  lab: {management: true, dns_domain_name: lab.test}
";

/// `GET /` from 127.0.0.1:`port`: the response, or why not.
fn http_get(port: u16) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: vm\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The forwards `lago forward --list -f json` lists: (vm, guest, host port, origin).
fn forward_list(lab: &Lab) -> Vec<(String, u64, u16, String)> {
    let list: serde_json::Value = serde_json::from_str(&lab.ok(&["-f", "json", "forward", "--list"])).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let host = r["host"].as_str().unwrap().strip_prefix("127.0.0.1:").unwrap().parse().unwrap();
            (r["vm"].as_str().unwrap().into(), r["guest"].as_u64().unwrap(), host, r["origin"].as_str().unwrap().into())
        })
        .collect()
}

/// A forwarded port, with a guest HTTP server: reached from the host.
fn check_forwards(lab: &Lab) -> (u16, u16) {
    let listed = forward_list(lab);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let (_, _, from_init, origin) = listed[0].clone();
    assert_eq!((listed[0].0.as_str(), listed[0].1, origin.as_str()), ("vm01", 8080, "init file"));
    lab.shell(
        "vm01",
        "mkdir -p /root/www && echo hello-from-vm01 > /root/www/index.html && httpd -p 8080 -h /root/www && httpd -p 8081 -h /root/www",
    );
    let page = http_get(from_init).unwrap();
    assert!(page.contains("hello-from-vm01"), "{page}");
    // Added live, on a port of its own choosing, then on one asked for.
    let live: u16 = lab.ok(&["forward", "vm01", "8081"]).trim().strip_prefix("127.0.0.1:").unwrap().parse().unwrap();
    assert!(http_get(live).unwrap().contains("hello-from-vm01"));
    assert_eq!(lab.ok(&["forward", "vm01", "8081"]).trim(), format!("127.0.0.1:{live}"), "asked twice: the same");
    let status = lab.status();
    let shown = status["Prefix"]["VMs"]["vm01"]["forwards"].as_str().unwrap_or_default().to_owned();
    assert!(shown.contains(&format!("127.0.0.1:{from_init} -> 8080")) && shown.contains("-> 8081"), "{status}");
    fails_with(
        lab,
        &["forward", "vm01", "8082", "--host-port", &from_init.to_string()],
        "already forwards to port 8080",
    );
    lab.ok(&["forward", "--remove", "vm01", "8081"]);
    assert!(http_get(live).is_err(), "removed, yet 127.0.0.1:{live} answers");
    fails_with(lab, &["forward", "--remove", "vm01", "8081"], "No port of the host forwards to port 8081");
    let live = lab.ok(&["forward", "vm01", "8081"]).trim().strip_prefix("127.0.0.1:").unwrap().parse().unwrap();
    (from_init, live)
}

/// Seconds the guest has run, from `/proc/uptime`.
fn uptime(lab: &Lab) -> f64 {
    lab.shell("vm01", "cut -d' ' -f1 /proc/uptime").1.parse().unwrap()
}

/// `start --from`: the stopped VM comes back in the snapshot's running moment — its file, its
/// process (same pid), its uptime, the guest HTTP server behind the init file's forward — and
/// takes further snapshots and reverts; `[start] resume` does the same for a plain `start`,
/// `--boot` boots.
fn check_start_from(lab: &Lab, forwarded: u16) {
    let pid = lab
        .shell("vm01", "mkdir -p /root/www && echo hello-from-vm01 > /root/www/index.html && httpd -p 8080 -h /root/www; echo resumed > /root/r; (sleep 100000 </dev/null >/dev/null 2>&1 &); sleep 0.3; pidof sleep")
        .1;
    assert!(!pid.is_empty());
    let boot = boot_id(lab);
    lab.ok(&["snapshot", "live"]);
    let at_snapshot = uptime(lab);
    lab.ok(&["stop"]);
    fails_with(lab, &["start", "--from", "nope"], "No snapshot \"nope\" for VM vm01");
    lab.ok(&["start", "--from", "live"]);
    assert_eq!(lab.shell("vm01", "cat /root/r; pidof sleep"), (0, format!("resumed\n{pid}")));
    assert_eq!(boot_id(lab), boot, "started from the snapshot, yet the VM booted");
    let after = uptime(lab);
    assert!(
        after >= at_snapshot - 1.0 && after < at_snapshot + 60.0,
        "uptime {after} s, {at_snapshot} s at the snapshot"
    );
    assert!(http_get(forwarded).unwrap().contains("hello-from-vm01"), "the guest's httpd behind the forward");
    fails_with(lab, &["start", "--from", "live"], "VM vm01 runs");
    // Further snapshots and reverts of the resumed VM.
    lab.ok(&["snapshot", "after"]);
    lab.shell("vm01", "rm /root/r");
    lab.ok(&["revert", "after"]);
    assert_eq!(lab.shell("vm01", "cat /root/r"), (0, "resumed".into()));
    // `[start] resume`: a plain start comes up from the snapshot and says so; `--boot` boots.
    lab.ok(&["stop"]);
    let out = lab.command(&["start"]).env("LAGO__START__RESUME", "live").output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("Starting from snapshot live (`[start] resume`)"), "{said}");
    assert_eq!(boot_id(lab), boot);
    lab.ok(&["stop"]);
    let out = lab.command(&["start", "--boot"]).env("LAGO__START__RESUME", "live").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_ne!(boot_id(lab), boot, "--boot boots");
    for name in ["live", "after"] {
        lab.ok(&["snapshot", "--delete", name]);
    }
}

fn boot_id(lab: &Lab) -> String {
    lab.shell("vm01", "cat /proc/sys/kernel/random/boot_id").1
}

#[track_caller]
fn fails_with(lab: &Lab, args: &[&str], message: &str) {
    let out = lab.lago(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "lago {args:?}: {stderr}");
    assert!(stderr.contains(message), "lago {args:?}: expected {message:?} in:\n{stderr}");
}

#[test]
fn snapshot_revert_services_inventory_and_the_ssh_provider() {
    let lab = Lab::new(ONE_VM);
    lab.ok(&["init"]);
    lab.ok(&["start"]);

    // Live snapshot: revert brings back the file and the running moment, without a reboot.
    lab.shell("vm01", "echo before > /root/f");
    let boot = boot_id(&lab);
    lab.ok(&["snapshot", "s1"]);
    assert_eq!(lab.status()["Prefix"]["VMs"]["vm01"]["snapshots"], "s1");
    lab.shell("vm01", "echo after > /root/f; rm -f /bin/vi");
    lab.ok(&["revert", "s1"]);
    assert_eq!(lab.shell("vm01", "cat /root/f; test -e /bin/vi && echo vi"), (0, "before\nvi".into()));
    assert_eq!(boot_id(&lab), boot, "the VM rebooted");
    let list: serde_json::Value =
        serde_json::from_str(&lab.ok(&["-f", "json", "snapshot", "--list", "--extra"])).unwrap();
    assert_eq!(list["vm01"]["s1"][0]["live"], true, "{list}");
    assert_eq!(list["vm01"]["s1"][0]["dev"], "vda", "{list}");
    fails_with(&lab, &["snapshot", "s1"], "already exists");
    fails_with(&lab, &["snapshot", "a/b"], "Invalid snapshot name");
    fails_with(&lab, &["revert", "nope"], "No snapshot \"nope\" for VM vm01 (known: s1)");

    // Forwarded ports: the init file's and one added live; a revert keeps them.
    let (from_init, live) = check_forwards(&lab);
    lab.ok(&["revert", "s1"]);
    assert_eq!(forward_list(&lab).len(), 2);

    // Services through the sysvinit provider (detected).
    lab.cycle_service("vm01", "syslogd", ServiceProvider::Sysvinit);

    // The inventory, read by the real Ansible; `raw` needs no Python in the VM.
    let out = lab.ansible("ansible-inventory", &["--list"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let vars = &parsed["_meta"]["hostvars"]["vm01"];
    assert_eq!(vars["ansible_host"], "127.0.0.1", "{parsed}");
    assert_eq!(vars["lago_ip"], "192.168.200.2", "{parsed}");
    assert_eq!(parsed["web"]["hosts"], serde_json::json!(["vm01"]), "{parsed}");
    let out = lab.ansible("ansible", &["all", "-m", "raw", "-a", "hostname -f"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("vm01.lab.test"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Another environment drives this VM through the `ssh` provider: start and stop are no-ops.
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(lab.home.path().join(".lago/default/run/state.json")).unwrap())
            .unwrap();
    let port = state["ssh_ports"]["vm01"].as_u64().unwrap();
    let key = lab.home.path().join(".lago/default/id_rsa");
    let external = Lab::new(&format!(
        "domains:\n  ext:\n    vm-provider: ssh\n    bootstrap: false\n    nics: [{{net: lab}}]\n    \
         metadata: {{ssh-host: 127.0.0.1, ssh-port: {port}, ssh-key: {}}}\nnets:\n  lab: {{management: true}}\n",
        key.display()
    ));
    external.ok(&["init"]);
    external.ok(&["start"]);
    assert_eq!(external.status()["Prefix"]["VMs"]["ext"]["status"], "running");
    assert_eq!(external.shell("ext", "hostname"), (0, "vm01".into()));
    external.ok(&["stop"]);
    external.ok(&["destroy", "--yes"]);
    assert_eq!(lab.shell("vm01", "hostname"), (0, "vm01".into()), "the ssh provider stopped a VM it does not own");

    // A machine that takes a password only (the original's `ssh-password`, no key): reached with
    // it; a wrong one is said within seconds of the server answering, not after boot_time_sec.
    let by_password = |password: &str| {
        Lab::new(&format!(
            "domains:\n  ext:\n    vm-provider: ssh\n    bootstrap: false\n    nics: [{{net: lab}}]\n    \
             metadata: {{ssh-host: 127.0.0.1, ssh-port: {port}, ssh-password: '{password}'}}\n\
             nets:\n  lab: {{management: true}}\n"
        ))
    };
    let good = by_password("123456");
    good.ok(&["init"]);
    good.ok(&["start"]);
    assert_eq!(good.shell("ext", "hostname"), (0, "vm01".into()));
    good.ok(&["destroy", "--yes"]);
    let bad = by_password("not-the-password");
    bad.ok(&["init"]);
    let out = bad.lago(&["start"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("VM ext answers SSH and refuses lago's login"), "{stderr}");
    assert!(stderr.contains("ssh-password"), "the hint names the key to set:\n{stderr}");
    bad.ok(&["destroy", "--yes"]);

    check_start_from(&lab, from_init);

    // A stopped VM gets a disk snapshot; reverting the running VM to it restarts the VM.
    lab.shell("vm01", "echo stopped > /root/f; sync");
    lab.ok(&["stop"]);
    // Forwards go with the VM.
    for port in [from_init, live] {
        assert!(http_get(port).is_err(), "the VM is stopped, yet 127.0.0.1:{port} answers");
    }
    assert!(forward_list(&lab).is_empty());
    fails_with(&lab, &["forward", "vm01", "8081"], "VM vm01 is not running");
    lab.ok(&["snapshot", "s2"]);
    lab.ok(&["start"]);
    // The init file's forward is back (on its port of before, still free); the live one is not.
    let listed = forward_list(&lab);
    assert_eq!(listed.iter().map(|f| (f.1, f.2)).collect::<Vec<_>>(), vec![(8080, from_init)], "{listed:?}");
    lab.shell("vm01", "echo changed > /root/f; sync");
    lab.ok(&["revert", "s2"]);
    assert_eq!(lab.shell("vm01", "cat /root/f"), (0, "stopped".into()));
    assert_eq!(lab.status()["Prefix"]["VMs"]["vm01"]["snapshots"], "s1, s2");
    lab.ok(&["snapshot", "--delete", "s1"]);
    assert_eq!(lab.status()["Prefix"]["VMs"]["vm01"]["snapshots"], "s2");
    lab.ok(&["destroy", "--yes"]);
}

/// One VM with a template disk and an empty one (also run through libvirt).
pub(crate) const TWO_DISKS: &str = "\
domains:
  vm01:
    memory: 256
    vcpu: 1
    nics: [{net: lab, ip: 192.168.200.10}]
    disks:
      - {template_name: tiny, type: template, name: root, dev: vda}
      - {type: empty, name: data, dev: vdb, size: 64M, format: qcow2}
nets:
  lab: {management: true, dns_domain_name: lab.test}
";

#[test]
fn export_standalone_and_layered_then_import() {
    let lab = Lab::new(TWO_DISKS);
    lab.ok(&["init"]);
    lab.ok(&["start"]);
    // tiny carries its kernel: booted directly.
    assert!(lab.booted_directly("vm01"));
    lab.shell("vm01", "echo exported > /root/data; sync");
    let layered = Lab::new("");
    let standalone = Lab::new("");
    let dst = |l: &Lab| l.home.path().display().to_string();
    fails_with(&lab, &["export", "-d", &dst(&layered)], "The following vms must be off:\nvm01");
    lab.ok(&["stop"]);

    let listing: serde_json::Value =
        serde_json::from_str(&lab.ok(&["-f", "json", "export", "--collect-only", "-d", "/x"])).unwrap();
    assert_eq!(listing, serde_json::json!({"vm01": ["/x/vm01_root.qcow2", "/x/vm01_data.qcow2"]}));
    lab.ok(&["export", "-d", &dst(&layered)]);
    lab.ok(&["export", "--standalone", "--compress", "-d", &dst(&standalone)]);

    let info = |l: &Lab| crate::run("qemu-img", &["info", &format!("{}/vm01_root.qcow2", dst(l))]);
    assert!(info(&layered).contains("backing file: ./tiny:v"), "{}", info(&layered));
    assert!(!info(&standalone).contains("backing file"), "{}", info(&standalone));
    let size = |l: &Lab, f: &str| std::fs::metadata(l.home.path().join(f)).unwrap().len();
    assert!(size(&layered, "vm01_root.qcow2") < size(&standalone, "vm01_root.qcow2"));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(layered.home.path().join("vm01_root.qcow2.metadata")).unwrap())
            .unwrap();
    assert!(meta["base"].as_str().unwrap().starts_with("tiny:v"), "{meta}");
    let hash = std::fs::read_to_string(layered.home.path().join("vm01_root.qcow2.hash")).unwrap();
    assert_eq!(meta["sha1"], hash.as_str());
    let init = std::fs::read_to_string(layered.home.path().join("LagoInitFile")).unwrap();
    assert!(init.contains("path: $LAGO_INITFILE_PATH/vm01_data.qcow2"), "{init}");
    lab.ok(&["destroy", "--yes"]);

    // Each export comes back with its data, the original's addresses and its second disk.
    for imported in [&layered, &standalone] {
        imported.ok(&["init"]);
        imported.ok(&["start"]);
        // An exported image names no kernel: it boots from its own disk.
        assert!(!imported.booted_directly("vm01"));
        assert_eq!(imported.shell("vm01", "cat /root/data"), (0, "exported".into()));
        assert_eq!(imported.shell("vm01", "ip -o -4 addr show eth0 | awk '{print $4}'").1, "192.168.200.10/24");
        assert_eq!(imported.shell("vm01", "test -b /dev/vdb && echo disk").1, "disk");
        imported.ok(&["destroy", "--yes"]);
    }
}

#[test]
fn virt_customize_build_steps_run_at_init() {
    let lab = Lab::new(
        "\
domains:
  vm01:
    memory: 256
    nics: [{net: lab}]
    disks:
      - template_name: tiny
        type: template
        name: root
        dev: vda
        build:
          - virt-customize:
              touch: [/root/built]
              write: '/etc/motd:built by lago'
nets:
  lab: {management: true}
",
    );
    lab.ok(&["init"]);
    lab.ok(&["start"]);
    assert_eq!(lab.shell("vm01", "ls /root/built; cat /etc/motd"), (0, "/root/built\nbuilt by lago".into()));
    lab.ok(&["destroy", "--yes"]);
}
