use crate::common::TestEnv;

const ONE_VM: &str = "\
domains:
  vm01:
    memory: 512
    nics:
      - net: lago
    disks:
      - template_name: tiny
        type: template
        name: root
        dev: vda
        format: qcow2
    artifacts: [/var/log]
nets:
  lago:
    type: nat
    dhcp: {start: 100, end: 254}
    management: true
";

#[test]
fn one_vm_prefix_tree_virt_and_status() {
    let env = TestEnv::with_repo();
    env.write("LagoInitFile", ONE_VM);
    let init = env.lago(&["init"]).ok();
    insta::assert_snapshot!("one_vm_init_output", init.render());
    insta::assert_snapshot!("one_vm_tree", env.tree(".lago"));
    insta::assert_snapshot!("one_vm_virt_env", env.read(".lago/default/virt/env"));
    insta::assert_snapshot!("one_vm_virt_vm", env.read(".lago/default/virt/vm-vm01"));
    insta::assert_snapshot!("one_vm_virt_net", env.read(".lago/default/virt/net-lago"));
    for format in ["default", "flat", "json", "yaml"] {
        let status = env.lago(&["-f", format, "status"]).ok();
        insta::assert_snapshot!(format!("one_vm_status_{format}"), status.stdout);
    }
    let uuid = std::fs::read_to_string(env.work().join(".lago/default/uuid")).unwrap();
    assert_eq!(uuid.len(), 32);
    assert!(uuid.chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn overlay_is_small_and_names_its_backing_format() {
    let env = TestEnv::with_repo();
    env.write("LagoInitFile", ONE_VM);
    env.lago(&["init"]).ok();
    let disk = env.work().join(".lago/default/images/vm01_root.qcow2");
    assert!(std::fs::metadata(&disk).unwrap().len() < 1024 * 1024);
    let info = std::process::Command::new("qemu-img").args(["info", "--output=json"]).arg(&disk).output().unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["backing-filename"], env.root().join("store/local:tiny:v1").display().to_string());
    assert_eq!(info["backing-filename-format"], "qcow2");
    assert_eq!(info["virtual-size"], 64 * 1024 * 1024);
}

const MULTI_VM: &str = "\
base_disk: &base_disk
  template_name: tiny
  type: template
  name: root
  dev: vda
  format: qcow2

base_domain: &base_domain
  memory: 64
  nics:
    - net: lago_functional_tests
  disks:
    - *base_disk

domains:
  lago_functional_tests_vm01: *base_domain
  lago_functional_tests_vm02: *base_domain
  lago_functional_tests_vm03:
    <<: *base_domain
    memory: 128
    groups: web

nets:
  lago_functional_tests:
    type: nat
    dhcp:
      start: 100
      end: 254
    management: true
";

#[test]
fn several_vms_with_yaml_anchors_and_merges() {
    let env = TestEnv::with_repo();
    env.write("LagoInitFile", MULTI_VM);
    env.lago(&["init"]).ok();
    insta::assert_snapshot!("multi_vm_status", env.lago(&["status"]).ok().stdout);
    insta::assert_snapshot!("multi_vm_vm03", env.read(".lago/default/virt/vm-lago_functional_tests_vm03"));
}

const TWO_NETS: &str = "\
domains:
  vm01:
    nics:
      - {net: mgmt}
      - {net: storage, ip: 10.1.1.20}
    disks: [{template_name: tiny, type: template, name: root}]
  vm02:
    nics:
      - {net: mgmt, ip: 192.168.210.9}
      - {net: storage}
    disks: [{template_name: tiny, type: template, name: root}]
nets:
  storage: {mtu: 9000}
  mgmt:
    management: true
    dns_domain_name: test.lab
    gw: 192.168.210.1
    dns_records: {registry: 192.168.210.200}
";

#[test]
fn two_nets_static_ips_gateways_and_dns() {
    let env = TestEnv::with_repo();
    env.write("LagoInitFile", TWO_NETS);
    env.lago(&["init"]).ok();
    insta::assert_snapshot!("two_nets_status", env.lago(&["-f", "yaml", "status"]).ok().stdout);
    insta::assert_snapshot!("two_nets_net_mgmt", env.read(".lago/default/virt/net-mgmt"));
    insta::assert_snapshot!("two_nets_net_storage", env.read(".lago/default/virt/net-storage"));
    insta::assert_snapshot!("two_nets_vm01", env.read(".lago/default/virt/vm-vm01"));
}

/// The original's init files give VMs 64 MiB; a template that needs more (`min-memory`, which
/// lago's built templates publish) runs them with that, and `init` says so. The record keeps
/// what the init file wrote.
#[test]
fn a_vm_given_less_memory_than_its_template_needs_gets_it_with_a_note() {
    let env = TestEnv::new();
    env.add_template("tiny", "v1", 1, r#"{"distro": "lago-tiny", "min-memory": 128}"#);
    env.write(
        "LagoInitFile",
        "domains:\n  vm01:\n    memory: 64\n    nics: [{net: n}]\n    disks: [{template_name: tiny, type: template, name: root}]\nnets:\n  n: {}\n",
    );
    let run = env.lago(&["init"]).ok();
    assert!(
        run.stderr.contains(
            "VM vm01 asks for 64 MiB; template local:tiny:v1 needs at least 128 MiB to boot: it runs with 128 MiB"
        ),
        "{}",
        run.stderr
    );
    let vm: serde_json::Value = serde_json::from_str(&env.read(".lago/default/virt/vm-vm01")).unwrap();
    assert_eq!(vm["memory"], 64);
}

/// An exported image (a qcow2 template disk) brings its `.metadata`: what the init file's own
/// `metadata` does not say comes from there, `min-memory` included.
#[test]
fn a_qcow2_template_disk_takes_the_metadata_published_beside_it() {
    let env = TestEnv::new();
    let image = env.work().join("exported/vm01_root.qcow2");
    std::fs::create_dir_all(image.parent().unwrap()).unwrap();
    let st = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&image)
        .arg("64M")
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(
        env.work().join("exported/vm01_root.qcow2.metadata"),
        r#"{"distro": "lago-tiny", "min-memory": 128, "root-partition": "/dev/vda2"}"#,
    )
    .unwrap();
    env.write(
        "exported/LagoInitFile",
        "domains:\n  vm01:\n    memory: 64\n    nics: [{net: n}]\n    disks:\n      - {type: template, template_type: qcow2, format: qcow2, name: root, dev: vda, path: $LAGO_INITFILE_PATH/vm01_root.qcow2, metadata: {distro: mine}}\nnets:\n  n: {}\n",
    );
    let run = env.lago_in(&env.work().join("exported"), &["init"]).ok();
    assert!(run.stderr.contains("VM vm01 asks for 64 MiB;"), "{}", run.stderr);
    let vm: serde_json::Value = serde_json::from_str(&env.read("exported/.lago/default/virt/vm-vm01")).unwrap();
    let md = &vm["disks"][0]["metadata"];
    assert_eq!(md["distro"], "mine", "{md}");
    assert_eq!(md["min-memory"], 128, "{md}");
}

/// With host legs allowed, `nat` subnets are leased host-wide at `init`; a `gw` given stays the
/// gateway (the original's SDK test `test_custom_gateway`), its subnet is the one leased, and
/// nets without one get `.1` of a free subnet.
#[test]
fn a_gw_given_is_the_gateway_of_its_leased_subnet() {
    let mut env = TestEnv::with_repo();
    env.env.retain(|(k, _)| k != "LAGO_HOST_LEG");
    env.env.push(("LAGO_HOST_LEG".into(), "on".into()));
    env.write(
        "LagoInitFile",
        "domains:\n  vm01:\n    nics: [{net: net-02}, {net: net-01}]\n    disks: [{template_name: tiny, type: template, name: root}]\n\
         nets:\n  net-01: {type: nat, management: true}\n  net-02: {type: nat, gw: 192.168.210.4}\n",
    );
    env.lago(&["init"]).ok();
    let net = |n: &str| -> serde_json::Value {
        serde_json::from_str(&env.read(&format!(".lago/default/virt/net-{n}"))).unwrap()
    };
    assert_eq!(net("net-02")["gw"], "192.168.210.4");
    assert_eq!(net("net-01")["gw"], "192.168.200.1");
    let vm: serde_json::Value = serde_json::from_str(&env.read(".lago/default/virt/vm-vm01")).unwrap();
    assert_eq!(vm["nics"][0]["ip"], "192.168.210.2", "{vm:#}");
    let mut leases: Vec<String> = std::fs::read_dir(env.root().join("leases"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".lease"))
        .collect();
    leases.sort();
    assert_eq!(leases, ["200.lease", "210.lease"]);
}

#[test]
fn file_and_empty_disks_and_json_init_file() {
    let env = TestEnv::with_repo();
    let raw = env.work().join("data.raw");
    let st = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "raw"])
        .arg(&raw)
        .arg("8M")
        .status()
        .unwrap();
    assert!(st.success());
    env.write(
        "env.json",
        r#"{
    "domains": {
        "vm01": {
            "nics": [{"net": "n"}],
            "disks": [
                {"template_name": "tiny", "type": "template", "name": "root", "dev": "vda", "format": "qcow2"},
                {"type": "empty", "name": "scratch", "dev": "vdb", "size": "2G", "format": "qcow2"},
                {"type": "file", "name": "shared", "dev": "sdc", "path": "$LAGO_INITFILE_PATH/data.raw"},
                {"type": "file", "name": "copy", "dev": "vdd", "path": "data.raw", "make_a_copy": true},
                {"type": "file", "name": "fresh", "dev": "vde", "size": "1G", "format": "raw"}
            ]
        }
    },
    "nets": {"n": {}}
}"#,
    );
    env.lago(&["init", "env.json"]).ok();
    insta::assert_snapshot!("disks_tree", env.tree(".lago/default/images"));
    insta::assert_snapshot!("disks_vm", env.read(".lago/default/virt/vm-vm01"));
    let info = |rel: &str| {
        let out = std::process::Command::new("qemu-img")
            .args(["info", "--output=json"])
            .arg(env.work().join(rel))
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (v["format"].as_str().unwrap().to_owned(), v["virtual-size"].as_u64().unwrap())
    };
    assert_eq!(info(".lago/default/images/vm01_scratch.qcow2"), ("qcow2".into(), 2 << 30));
    assert_eq!(info(".lago/default/images/data.raw"), ("raw".into(), 8 << 20));
    assert_eq!(info(".lago/default/images/vm01_fresh.raw"), ("raw".into(), 1 << 30));
}

#[test]
fn seed_holds_what_the_vm_needs() {
    let env = TestEnv::with_repo();
    env.write("LagoInitFile", TWO_NETS);
    env.lago(&["init"]).ok();
    let seed = env.work().join(".lago/default/images/vm02-seed.img");
    let mtype = |file: &str| {
        let out = std::process::Command::new("mtype")
            .arg("-i")
            .arg(&seed)
            .arg(format!("::{file}"))
            .output()
            .expect("mtools is installed by .ci/run");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        env.normalize(&String::from_utf8_lossy(&out.stdout))
    };
    let label = std::process::Command::new("mlabel").arg("-s").arg("-i").arg(&seed).arg("::").output().unwrap();
    assert!(String::from_utf8_lossy(&label.stdout).contains("CIDATA"));
    insta::assert_snapshot!("seed_meta_data", mtype("meta-data"));
    insta::assert_snapshot!("seed_network_config", mtype("network-config"));
    insta::assert_snapshot!("seed_interfaces", mtype("lago/interfaces"));
    insta::assert_snapshot!("seed_hosts", mtype("lago/hosts"));
    let user_data = mtype("user-data");
    let key = std::fs::read_to_string(env.work().join(".lago/default/id_rsa.pub")).unwrap();
    assert!(user_data.contains(&format!("\"{}\"", env.normalize(key.trim()))), "{user_data}");
    assert!(user_data.contains("192.168.210.9 vm02.test.lab vm02 vm02-eth0"), "{user_data}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(env.work().join(".lago/default/id_rsa")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn skip_bootstrap_and_per_vm_bootstrap_false() {
    let env = TestEnv::with_repo();
    env.write("LagoInitFile", &MULTI_VM.replace("    groups: web", "    bootstrap: false"));
    env.lago(&["init"]).ok();
    let seeds =
        |prefix: &str| env.tree(&format!(".lago/{prefix}/images")).lines().filter(|l| l.contains("seed")).count();
    assert_eq!(seeds("default"), 2);
    env.lago(&["-P", "nos", "init", "--skip-bootstrap"]).ok();
    assert_eq!(seeds("nos"), 0);
}

#[test]
fn deploy_scripts_are_copied_and_paths_expanded() {
    let env = TestEnv::with_repo();
    env.write("scripts/setup.sh", "#!/bin/sh\ntouch /root/nicefile\n");
    env.write("sub/LagoInitFile", &ONE_VM.replace("    artifacts: [/var/log]", "    metadata:\n      deploy-scripts:\n        - $LAGO_INITFILE_PATH/../scripts/setup.sh\n        - scripts/setup.sh"));
    env.lago(&["init", "sub/LagoInitFile"]).ok();
    let tree = env.tree(".lago/default/scripts");
    assert_eq!(tree.lines().count(), 2, "{tree}");
    let vm: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.work().join(".lago/default/virt/vm-vm01")).unwrap()).unwrap();
    let work = env.work().display().to_string().replace('/', "_");
    assert_eq!(
        vm["metadata"]["deploy-scripts"],
        serde_json::json!([
            format!("$LAGO_PREFIX_PATH/scripts/{work}_sub_.._scripts_setup.sh"),
            "$LAGO_PREFIX_PATH/scripts/scripts_setup.sh".to_owned(),
        ])
    );
    let copied = std::fs::read_dir(env.work().join(".lago/default/scripts")).unwrap().next().unwrap().unwrap().path();
    assert_eq!(std::fs::read_to_string(copied).unwrap(), "#!/bin/sh\ntouch /root/nicefile\n");
}

#[test]
fn prefixes_side_by_side_current_and_workdir_flag() {
    let env = TestEnv::with_repo();
    env.write("LagoInitFile", ONE_VM);
    env.lago(&["init"]).ok();
    env.lago(&["--prefix-name", "prefix1", "init"]).ok();
    assert_eq!(std::fs::read_link(env.work().join(".lago/current")).unwrap().to_str(), Some("default"));
    env.lago(&["--prefix-name", "prefix2", "init", "--set-current"]).ok();
    assert_eq!(std::fs::read_link(env.work().join(".lago/current")).unwrap().to_str(), Some("prefix2"));
    insta::assert_snapshot!("list_default", env.lago(&["list"]).ok().render());
    insta::assert_snapshot!("list_json", env.lago(&["-f", "json", "list"]).ok().stdout);
    env.lago(&["set-current", "default"]).ok();
    assert_eq!(std::fs::read_link(env.work().join(".lago/current")).unwrap().to_str(), Some("default"));
    insta::assert_snapshot!("set_current_unknown", env.lago(&["set-current", "nope"]).render());
    // `--workdir-path` is honoured by init (the original ignored it, its issue #747).
    env.lago(&["--workdir-path", "elsewhere", "init"]).ok();
    assert!(env.work().join("elsewhere/default/initialized").is_file());
    assert!(env.work().join("elsewhere/current").is_symlink());
    // An existing prefix is refused and left alone.
    let again = env.lago(&["init"]);
    insta::assert_snapshot!("init_existing_prefix", again.render());
    assert!(env.work().join(".lago/default/initialized").is_file());
}

#[test]
fn failed_init_leaves_nothing_and_keeps_its_log() {
    let env = TestEnv::with_repo();
    // The repository publishes a wrong hash: the download fails after validation.
    std::fs::write(env.root().join("repo/tiny-v1.qcow2.hash"), "0000000000000000000000000000000000000000").unwrap();
    env.write("LagoInitFile", ONE_VM);
    let run = env.lago(&["init"]);
    assert_eq!(run.code, 2, "{}", run.render());
    insta::assert_snapshot!(
        "failed_init_hash_mismatch",
        run.stderr.lines().filter(|l| l.starts_with("Error") || l.starts_with("Caused")).collect::<Vec<_>>().join("\n")
    );
    assert!(!env.work().join(".lago").exists(), "{}", env.tree("."));
    let store: Vec<_> = std::fs::read_dir(env.root().join("store"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(store, ["local:tiny:v1.lock"]);
    let log = std::fs::read_dir(env.root().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("lago-init-default"))
        .expect("log kept");
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("does not match the expected hash"), "{text}");
}

#[test]
fn missing_repository_says_how_to_build_it() {
    let env = TestEnv::new();
    env.write("LagoInitFile", ONE_VM);
    let run = env.lago(&["init"]);
    insta::assert_snapshot!("missing_repo", run.render());
    assert!(!env.work().join(".lago").exists());
}

#[test]
fn keys_of_the_originals_init_files_are_read_and_typos_still_caught() {
    let env = TestEnv::with_repo();
    // `comment` anywhere, any `vm-type`, and `cpu` (which the original never read either).
    let carried = ONE_VM
        .replace("    memory: 512\n", "    memory: 512\n    vm-type: ovirt-host\n    cpu: 2\n    comment: the host\n")
        .replace("        format: qcow2\n", "        format: qcow2\n        comment: Main root device\n")
        .replace("    management: true\n", "    management: true\n    comment: management net\n");
    env.write("LagoInitFile", &carried);
    let run = env.lago(&["init"]).ok();
    assert!(run.stderr.contains("domains.vm01.cpu: not read (the original did not read it either)"), "{}", run.stderr);
    let vm: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.work().join(".lago/default/virt/vm-vm01")).unwrap()).unwrap();
    assert_eq!(vm["vm-type"], "ovirt-host");
    env.lago(&["destroy", "--yes"]).ok();

    // A typo is an error with its key path and a suggestion, or a warning when not strict.
    env.write("LagoInitFile", &ONE_VM.replace("    memory: 512\n", "    memroy: 512\n"));
    let run = env.lago(&["init"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("domains.vm01.memroy: unknown key (did you mean `memory`?)"), "{}", run.stderr);
    assert!(!env.work().join(".lago").exists());
    let mut lenient = TestEnv::with_repo();
    lenient.env.push(("LAGO__INIT__STRICT".into(), "false".into()));
    lenient.write("LagoInitFile", &ONE_VM.replace("    memory: 512\n", "    memroy: 512\n"));
    let run = lenient.lago(&["init"]).ok();
    assert!(run.stderr.contains("domains.vm01.memroy: unknown key (did you mean `memory`?)"), "{}", run.stderr);

    // The original's OVA domains are named for what they are.
    env.write("LagoInitFile", &ONE_VM.replace("    memory: 512\n", "    type: ova\n    url: file:///x.ova\n"));
    let run = env.lago(&["init"]);
    assert!(run.stderr.contains("domains.vm01.type: OVA domains are not supported"), "{}", run.stderr);
}

#[test]
fn deploy_script_paths_through_the_prefix_are_normalized_as_text() {
    // The original's deploy test: paths through directories `init` has not made yet.
    let env = TestEnv::with_repo();
    env.write("scripts/create_nicefile.sh", "#!/bin/sh\necho nice > /root/nicefile\n");
    env.write("scripts/create_uglyfile.sh", "#!/bin/sh\necho ugly > /root/uglyfile\n");
    env.write(
        "LagoInitFile",
        &ONE_VM.replace(
            "    artifacts: [/var/log]",
            "    metadata:\n      deploy-scripts:\n        - $LAGO_PREFIX_PATH/../../scripts/create_nicefile.sh\n        - $LAGO_WORKDIR_PATH/../scripts/create_uglyfile.sh",
        ),
    );
    env.lago(&["init"]).ok();
    assert_eq!(env.tree(".lago/default/scripts").lines().count(), 2);
}

#[test]
fn ssh_key_of_init_is_the_environments_key_pair() {
    let env = TestEnv::with_repo();
    let key = env.root().join("mykey");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    env.write("LagoInitFile", ONE_VM);
    let run = env.lago(&["init", "--ssh-key", &key.display().to_string()]).ok();
    assert!(run.stderr.contains("Copying ssh key"), "{}", run.stderr);
    let prefix = env.work().join(".lago/default");
    assert_eq!(std::fs::read(prefix.join("id_rsa")).unwrap(), std::fs::read(&key).unwrap());
    assert_eq!(std::fs::read(prefix.join("id_rsa.pub")).unwrap(), std::fs::read(key.with_extension("pub")).unwrap());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(prefix.join("id_rsa")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // A key without its `.pub` gets the public half derived.
    std::fs::remove_file(key.with_extension("pub")).unwrap();
    env.lago(&["destroy", "--yes"]).ok();
    env.lago(&["init", "--ssh-key", &key.display().to_string()]).ok();
    assert!(std::fs::read_to_string(prefix.join("id_rsa.pub")).unwrap().starts_with("ssh-ed25519 "));
}

#[test]
fn workdir_and_prefix_paths_come_from_the_configuration_too() {
    let mut env = TestEnv::with_repo();
    env.write("LagoInitFile", ONE_VM);
    env.lago(&["init"]).ok();
    let elsewhere = env.root().join("tmp");
    let workdir = env.work().join(".lago");
    // `LAGO_WORKDIR_PATH`, as the original's `--workdir-path` default.
    env.env.push(("LAGO_WORKDIR_PATH".into(), workdir.display().to_string()));
    let status = env.lago_in(&elsewhere, &["--out-format", "json", "status"]).ok();
    assert!(status.stdout.contains("\"vm01\""), "{}", status.stdout);
    env.env.retain(|(k, _)| k != "LAGO_WORKDIR_PATH");
    // `[lago] prefix_path` of a config file.
    std::fs::create_dir_all(env.root().join("xdg-config/lago")).unwrap();
    std::fs::write(
        env.root().join("xdg-config/lago/lago.conf"),
        format!("[lago]\nprefix_path = {}\n", workdir.join("default").display()),
    )
    .unwrap();
    let status = env.lago_in(&elsewhere, &["--out-format", "json", "status"]).ok();
    assert!(status.stdout.contains("\"vm01\""), "{}", status.stdout);
    assert!(!status.stderr.contains("deprecated"), "{}", status.stderr);
}
