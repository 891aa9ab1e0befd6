//! `snapshot`, `revert`, `export` and `ansible_hosts` on a stopped environment (no VM runs:
//! snapshots of stopped VMs are disk snapshots, export needs stopped VMs).

use crate::common::TestEnv;

const INIT: &str = "\
domains:
  vm01:
    groups: web
    nics: [{net: lago, ip: 192.168.200.10}]
    disks:
      - {template_name: tiny, type: template, name: root, dev: vda}
      - {type: empty, name: data, dev: vdb, size: 8M, format: qcow2}
  vm02:
    groups: [web, db]
    nics: [{net: lago}]
    disks: [{template_name: tiny, type: template, name: root, dev: vda}]
nets:
  lago: {management: true, dns_domain_name: lab.test}
";

fn qemu_img_snapshots(env: &TestEnv, image: &str) -> String {
    let path = env.work().join(".lago/default/images").join(image);
    let out = std::process::Command::new("qemu-img").args(["snapshot", "-l"]).arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn snapshots_of_stopped_vms() {
    let env = TestEnv::initialized(INIT);
    env.lago(&["snapshot", "base"]).ok();
    for image in ["vm01_root.qcow2", "vm01_data.qcow2", "vm02_root.qcow2"] {
        assert!(qemu_img_snapshots(&env, image).contains(" base "), "{image}");
    }
    env.lago(&["snapshot", "second"]).ok();
    let status = env.lago(&["-f", "flat", "status"]).ok();
    assert!(status.stdout.contains("VMs/vm01/snapshots: base, second\n"), "{}", status.stdout);
    // The original's shape: each snapshot lists the VM's disks as its record has them, the path
    // absolute (and lago's `live`).
    let list = env.lago(&["--out-format", "json", "snapshot", "--list"]).ok();
    assert!(!list.stdout.contains("$LAGO_PREFIX_PATH"), "{}", list.stdout);
    insta::assert_snapshot!("snapshot_list", list.stdout);
    insta::assert_snapshot!(
        "snapshot_errors",
        [
            env.lago(&["snapshot", "base"]).render(),
            env.lago(&["snapshot", "123"]).render(),
            env.lago(&["snapshot", "bad name"]).render(),
            env.lago(&["revert", "nope"]).render(),
            env.lago(&["snapshot", "--delete", "nope"]).render(),
            env.lago(&["snapshot"]).render(),
        ]
        .join("\n")
    );
    env.lago(&["revert", "base"]).ok();
    env.lago(&["snapshot", "--delete", "base"]).ok();
    assert!(!qemu_img_snapshots(&env, "vm01_root.qcow2").contains(" base "));
    let status = env.lago(&["-f", "flat", "status"]).ok();
    assert!(status.stdout.contains("VMs/vm02/snapshots: second\n"), "{}", status.stdout);
}

#[test]
fn export_then_init_from_the_export() {
    let env = TestEnv::initialized(INIT);
    let listing = env.lago(&["-f", "json", "export", "--collect-only", "-n", "vm01", "-d", "out"]).ok();
    insta::assert_snapshot!("export_collect_only", listing.stdout);
    env.lago(&["export", "-d", "layered"]).ok();
    insta::assert_snapshot!("export_tree", env.tree("layered"));
    insta::assert_snapshot!("export_init_file", env.read("layered/LagoInitFile"));
    let meta: serde_json::Value = serde_json::from_str(&env.read("layered/vm01_root.qcow2.metadata")).unwrap();
    assert_eq!(meta["base"], "tiny:v1");
    assert_eq!(meta["sha1"], env.read("layered/vm01_root.qcow2.hash").as_str());
    // A new environment from the export: the layered disk's base is fetched and linked.
    let dir = env.work().join("layered");
    env.lago_in(&dir, &["init"]).ok();
    let link = std::fs::read_link(dir.join("tiny:v1")).unwrap();
    assert!(link.ends_with("local:tiny:v1"), "{}", link.display());
    let status = env.lago_in(&dir, &["-f", "flat", "status"]).ok();
    assert!(status.stdout.contains("VMs/vm01/NICs/eth0/ip: 192.168.200.10\n"), "{}", status.stdout);

    env.lago(&["export", "--standalone", "-n", "vm02", "-d", "flat"]).ok();
    let info = std::process::Command::new("qemu-img")
        .args(["info"])
        .arg(env.work().join("flat/vm02_root.qcow2"))
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&info.stdout).contains("backing file"));
    assert!(!env.read("flat/LagoInitFile").contains("vm01"));
}

#[test]
fn ansible_inventory_of_stopped_vms() {
    let env = TestEnv::initialized(INIT);
    let out = env.lago(&["ansible_hosts"]).ok();
    insta::assert_snapshot!("ansible_hosts", out.stdout);
    let out = env.lago(&["ansible_hosts", "-k", "/disks/0/template_name", "memory"]).ok();
    insta::assert_snapshot!("ansible_hosts_keys", out.stdout);
}

#[test]
fn forwards_of_stopped_vms_and_wrong_forward_commands() {
    let env = TestEnv::initialized(INIT);
    let list = env.lago(&["forward", "--list"]).ok();
    assert_eq!(list.stdout, "", "nothing runs, nothing is forwarded");
    assert_eq!(env.lago(&["-f", "json", "forward", "--list"]).ok().stdout.trim(), "[]");
    insta::assert_snapshot!(
        "forward_errors",
        [
            env.lago(&["forward", "vm01", "8080"]).render(),
            env.lago(&["forward", "vm09", "8080"]).render(),
            env.lago(&["forward", "--remove", "vm01", "8080"]).render(),
            env.lago(&["forward", "vm01"]).render(),
            env.lago(&["forward", "vm01", "99999"]).render(),
            env.lago(&["forward"]).render(),
        ]
        .join("\n")
    );
}
