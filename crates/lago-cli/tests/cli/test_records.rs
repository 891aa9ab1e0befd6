//! The records of a prefix (`virt/vm-<name>`, the SDK's `vm.spec`) keep what the init file
//! wrote, and `snapshot --list` shows the original's disks: the keys written, `path` and the
//! template's metadata as published.

use serde_json::{Value, json};

use crate::common::{Stand, TestEnv, sha1_hex};

fn record(env: &TestEnv, name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(env.work().join(".lago/default/virt").join(name)).unwrap()).unwrap()
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

#[test]
fn records_keep_every_key_the_init_file_wrote() {
    let mut env = TestEnv::with_repo();
    env.env.push(("LAGO__INIT__STRICT".into(), "false".into()));
    env.write(
        "LagoInitFile",
        "\
domains:
  vm01:
    comment: the web server
    nics:
      - {net: lago, comment: management NIC}
    disks:
      - template_name: tiny
        type: template
        name: root
        dev: vda
        format: qcow2
        comment: Main root device
        owner: web team
nets:
  lago: {management: true, comment: the only network}
",
    );
    let run = env.lago(&["init"]).ok();
    // The unknown key is said, and kept.
    assert!(run.stderr.contains("domains.vm01.disks[0].owner: unknown key"), "{}", run.stderr);
    let vm = record(&env, "vm-vm01");
    let disk = &vm["disks"][0];
    assert_eq!(keys(disk), ["template_name", "type", "name", "dev", "format", "comment", "owner", "path", "metadata"]);
    assert_eq!((&disk["comment"], &disk["owner"]), (&json!("Main root device"), &json!("web team")));
    assert_eq!(disk["path"], "$LAGO_PREFIX_PATH/images/vm01_root.qcow2");
    // The template's metadata as published, nothing of lago's.
    assert_eq!(disk["metadata"], json!({"distro": "tiny", "root-partition": "/dev/sda2"}));
    assert_eq!(vm["comment"], "the web server");
    assert_eq!(vm["nics"][0], json!({"net": "lago", "comment": "management NIC", "ip": "192.168.200.2"}));
    // As the original: no metadata written, `{}`.
    assert_eq!(vm["metadata"], json!({}));
    assert_eq!(record(&env, "net-lago")["comment"], "the only network");
    // What status shows is the original's, whatever the records carry.
    let status: Value = serde_json::from_str(&env.lago(&["-f", "json", "status"]).ok().stdout).unwrap();
    assert_eq!(
        keys(&status["Prefix"]["VMs"]["vm01"]),
        ["NICs", "distro", "metadata", "root password", "snapshots", "status"]
    );
    assert_eq!(status["Prefix"]["VMs"]["vm01"]["metadata"], json!({}));
}

#[test]
fn a_vm_metadata_is_the_originals() {
    let env = TestEnv::with_repo();
    env.write("scripts/setup.sh", "#!/bin/sh\ntrue\n");
    env.write(
        "LagoInitFile",
        "\
domains:
  vm01:
    metadata: {role: web}
    nics: [{net: lago}]
    disks: [{template_name: tiny, type: template, name: root, dev: vda, format: qcow2}]
  vm02:
    metadata: {ovirt-scripts: [scripts/setup.sh]}
    nics: [{net: lago}]
  vm03:
    distro: el8
    nics: [{net: lago}]
    disks: [{template_name: tiny, type: template, name: root, dev: vda, format: qcow2}]
nets:
  lago: {}
",
    );
    env.lago(&["init"]).ok();
    // The original set `deploy-scripts` (the copies of the scripts) on every metadata written,
    // and left the deprecated `ovirt-scripts` as written.
    assert_eq!(record(&env, "vm-vm01")["metadata"], json!({"role": "web", "deploy-scripts": []}));
    assert_eq!(
        record(&env, "vm-vm02")["metadata"],
        json!({"ovirt-scripts": ["scripts/setup.sh"], "deploy-scripts": ["$LAGO_PREFIX_PATH/scripts/scripts_setup.sh"]})
    );
    let status: Value = serde_json::from_str(&env.lago(&["-f", "json", "status"]).ok().stdout).unwrap();
    let vms = &status["Prefix"]["VMs"];
    assert_eq!(vms["vm01"]["metadata"], json!({"deploy-scripts": [], "role": "web"}));
    // `distro`: the VM's own, else its first disk's template's, else none.
    assert_eq!(
        (&vms["vm01"]["distro"], &vms["vm02"]["distro"], &vms["vm03"]["distro"]),
        (&json!("tiny"), &Value::Null, &json!("el8"))
    );
    // The default format prints an empty list as the original did (`key: `).
    let default = env.lago(&["status"]).ok().stdout;
    assert!(
        default.contains("            [metadata]:\n                deploy-scripts: \n                role: web\n"),
        "{default}"
    );
}

/// The original's `tests/functional/fixtures/snapshot/suite_1host_1disk.yaml`.
const SUITE_1HOST_1DISK: &str = "\
domains:
  lago_functional_tests_vm01:
      memory: 512
      nics:
        - net: lago_functional_tests
      disks:
        - template_name: el7.7-base-2
          type: template
          name: root
          dev: vda
          format: qcow2

nets:
  lago_functional_tests:
    type: nat
    dhcp:
      start: 100
      end: 254
    management: true
";

/// The `.metadata` lago-images published for `el7.7-base-2`, as the fixture below shows it.
const EL77_METADATA: &str = r#"{"arch": "x86_64", "base": "libguestfs:centos-7.7", "checksum": "45d10f00f03b7162f79bdd2fe82dd00cc08878533557452a76a0053c47e5636322f878606535f653bf89179f1d7ffd04c8ba0e37eae94477e07ea6a401a30fb0", "compressed_sha1": "5f2e08a005ad5823896f63df0af98f55ae658ed0", "compressed_size": 407353960, "distro": "el7", "expand": "/dev/sda4", "id": "el7.7-base-2", "name": "el7.7-base-2", "osinfo": "centos7.7", "root-partition": "/dev/sda4", "sha1": "0dac7ad62d455b38fa4e1ccf1cd97f954eb03f54", "size": 1894383616, "timestamp": 1580278439.5182588, "uncompressed_checksum": "43bca7a2929ffb1d4a903b4b5b54bbe051d15677ad63945fa27e377e23bf9284f9c3063fe47bc13f8e72db86b7fdeb5f44e23423c673a0d32f840c00540e0dbf", "version": "v1"}"#;

/// The original's `1host_1disk_list`: `--out-format json snapshot --list` after
/// `snapshot snapshot_number_1`.
const LIST_1HOST_1DISK: &str = r#"{
    "lago_functional_tests_vm01": {
        "snapshot_number_1": [
            {
                "dev": "vda",
                "format": "qcow2",
                "metadata": {
                    "arch": "x86_64",
                    "base": "libguestfs:centos-7.7",
                    "checksum": "45d10f00f03b7162f79bdd2fe82dd00cc08878533557452a76a0053c47e5636322f878606535f653bf89179f1d7ffd04c8ba0e37eae94477e07ea6a401a30fb0",
                    "compressed_sha1": "5f2e08a005ad5823896f63df0af98f55ae658ed0",
                    "compressed_size": 407353960,
                    "distro": "el7",
                    "expand": "/dev/sda4",
                    "id": "el7.7-base-2",
                    "name": "el7.7-base-2",
                    "osinfo": "centos7.7",
                    "root-partition": "/dev/sda4",
                    "sha1": "0dac7ad62d455b38fa4e1ccf1cd97f954eb03f54",
                    "size": 1894383616,
                    "timestamp": 1580278439.5182588,
                    "uncompressed_checksum": "43bca7a2929ffb1d4a903b4b5b54bbe051d15677ad63945fa27e377e23bf9284f9c3063fe47bc13f8e72db86b7fdeb5f44e23423c673a0d32f840c00540e0dbf",
                    "version": "v1"
                },
                "name": "root",
                "path": "@@PREFIX_PATH@@/images/lago_functional_tests_vm01_root.qcow2",
                "template_name": "el7.7-base-2",
                "type": "template"
            }
        ]
    }
}
"#;

/// The original's `1host_1disk_status`: `status` of the running VM after the snapshot.
const STATUS_1HOST_1DISK: &str = "\
[Prefix]:
    Base directory: @@PREFIX@@
    [Networks]:
        [lago_functional_tests]:
            gateway: @@GATEWAY@@
            management: True
            status: up
    UUID: @@UUID@@
    [VMs]:
        [lago_functional_tests_vm01]:
            [NICs]:
                [eth0]:
                    ip: @@IP@@
                    network: lago_functional_tests
            distro: el7
            root password: 123456
            snapshots: snapshot_number_1
            status: running
";

fn raw(env: &TestEnv, args: &[&str]) -> String {
    let out = env.command(&env.work(), args).output().unwrap();
    assert!(out.status.success(), "lago {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn snapshot_list_and_status_as_the_originals_snapshot_suite_compared_them() {
    let env = TestEnv::new();
    env.add_template("el7.7-base-2", "v1", 1580278439, EL77_METADATA);
    env.write("LagoInitFile", SUITE_1HOST_1DISK);
    env.lago(&["init"]).ok();
    env.lago(&["snapshot", "snapshot_number_1"]).ok();
    let status: Value = serde_json::from_str(&raw(&env, &["-f", "json", "status"])).unwrap();
    let prefix = status["Prefix"]["Base directory"].as_str().unwrap().to_owned();
    let uuid = status["Prefix"]["UUID"].as_str().unwrap().to_owned();
    assert_eq!(
        raw(&env, &["--out-format", "json", "snapshot", "--list"]),
        LIST_1HOST_1DISK.replace("@@PREFIX_PATH@@", &prefix)
    );
    // lago's own fields only when asked for.
    let extra: Value = serde_json::from_str(&raw(&env, &["-f", "json", "snapshot", "--list", "--extra"])).unwrap();
    let disk = &extra["lago_functional_tests_vm01"]["snapshot_number_1"][0];
    assert_eq!(disk["live"], json!(false), "{extra}");
    assert_eq!(keys(disk), ["dev", "format", "live", "metadata", "name", "path", "template_name", "type"]);
    // The VM running (a process owning its pid file stands in for its qemu, another for its
    // network's switch): the original's status after the snapshot.
    let mut stand = Stand::new();
    stand.run(std::path::Path::new(&prefix), "lago_functional_tests_vm01");
    stand.run(std::path::Path::new(&prefix), "switch-lago_functional_tests");
    let printed = raw(&env, &["status"]);
    drop(stand);
    let expected = STATUS_1HOST_1DISK
        .replace("@@PREFIX@@", &prefix)
        .replace("@@UUID@@", &uuid)
        .replace("@@GATEWAY@@", "192.168.200.1")
        .replace("@@IP@@", "192.168.200.2");
    assert_eq!(printed, expected);
}

#[test]
fn a_template_that_carries_its_kernel_keeps_its_metadata_as_published() {
    let env = TestEnv::new();
    let repo = env.root().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let (kernel, initrd) = (b"an uncompressed kernel".as_slice(), b"an initramfs".as_slice());
    std::fs::write(repo.join("tiny-v1.qcow2.vmlinux"), kernel).unwrap();
    std::fs::write(repo.join("tiny-v1.qcow2.initrd"), initrd).unwrap();
    // What `lago template build tiny` publishes.
    let metadata = json!({
        "distro": "lago-tiny", "arch": "x86_64", "root-partition": "/dev/vda2", "root-password": "123456",
        "kernel": "6.1.0-40-amd64", "base": "debian:bookworm", "inputs": {"recipe": "0123"},
        "bootstrap": "lago-seed", "guest-agent": null, "name": "tiny", "version": "v1",
        "boot": {"cmdline": "root=LABEL=lago-root rw console=ttyS0",
                 "kernel": "tiny-v1.qcow2.vmlinux", "kernel_sha1": sha1_hex(kernel),
                 "initrd": "tiny-v1.qcow2.initrd", "initrd_sha1": sha1_hex(initrd)}
    });
    env.add_template("tiny", "v1", 1, &serde_json::to_string_pretty(&metadata).unwrap());
    let published: Value =
        serde_json::from_str(&std::fs::read_to_string(repo.join("tiny-v1.qcow2.metadata")).unwrap()).unwrap();
    env.write(
        "LagoInitFile",
        "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks: [{template_name: tiny, type: template, name: root, dev: vda, format: qcow2}]\nnets:\n  lago: {}\n",
    );
    env.lago(&["init"]).ok();
    // The record carries the template's metadata unchanged: the direct-boot files by their
    // published names. The store holds them beside the image, where the providers find them.
    let disk = &record(&env, "vm-vm01")["disks"][0];
    assert_eq!(disk["metadata"], published);
    assert_eq!(std::fs::read(env.root().join("store/local:tiny:v1.vmlinux")).unwrap(), kernel);
    assert_eq!(std::fs::read(env.root().join("store/local:tiny:v1.initrd")).unwrap(), initrd);
    env.lago(&["snapshot", "clean"]).ok();
    let list: Value = serde_json::from_str(&raw(&env, &["-f", "json", "snapshot", "--list"])).unwrap();
    let listed = &list["vm01"]["clean"][0];
    assert_eq!(keys(listed), ["dev", "format", "metadata", "name", "path", "template_name", "type"]);
    assert_eq!(listed["metadata"], published);
}
