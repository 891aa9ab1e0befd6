//! `lago status` on a prefix written by the original Lago (only `virt/` files, JSON with the
//! trailing spaces of Python 2, no `run/` state: everything shows as down).

use crate::common::{Stand, TestEnv};

fn original_prefix(env: &TestEnv) -> std::path::PathBuf {
    let p = env.work().join("prefix_skel");
    std::fs::create_dir_all(p.join("virt")).unwrap();
    std::fs::create_dir_all(p.join("images")).unwrap();
    std::fs::write(p.join("uuid"), "fe689d3c39d011e5b22b54ee755a00ca").unwrap();
    std::fs::write(p.join("initialized"), "").unwrap();
    std::fs::write(p.join("virt/env"), "{\n    \"nets\": [\n        \"n0\", \n        \"n1\"\n    ], \n    \"vms\": [\n        \"vm0\", \n        \"vm1\"\n    ]\n}").unwrap();
    std::fs::write(
        p.join("virt/net-n0"),
        "{\n    \"gw\": \"192.168.201.1\", \n    \"management\": true, \n    \"name\": \"n0\", \n    \"mapping\": {\n        \"vm1\": \"192.168.201.3\", \n        \"vm0\": \"192.168.201.2\"\n    }, \n    \"dhcp\": {\n        \"start\": 100, \n        \"end\": 254\n    }, \n    \"type\": \"nat\"\n}",
    )
    .unwrap();
    std::fs::write(
        p.join("virt/net-n1"),
        "{\n    \"gw\": \"192.168.202.1\", \n    \"dhcp\": {\"start\": 100, \"end\": 254}, \n    \"type\": \"nat\", \n    \"name\": \"n1\", \n    \"mapping\": {\"vm0-eth1\": \"192.168.202.2\", \"vm1-eth1\": \"192.168.202.3\"}\n}",
    )
    .unwrap();
    for (name, pw, mem, last) in [("vm0", "123456", 2048, 2), ("vm1", "cubswin:)", 1024, 3)] {
        std::fs::write(
            p.join(format!("virt/vm-{name}")),
            format!(
                "{{\n    \"root-password\": \"{pw}\", \n    \"name\": \"{name}\", \n    \"memory\": {mem}, \n    \"service_provider\": \"systemd\", \n    \"nics\": [\n        {{\"ip\": \"192.168.201.{last}\", \"net\": \"n0\"}}, \n        {{\"ip\": \"192.168.202.{last}\", \"net\": \"n1\"}}\n    ], \n    \"disks\": [\n        {{\"path\": \"/home/dcaro/testenv/02_exercise/images/{name}_root.qcow2\", \"format\": \"qcow2\", \"dev\": \"vda\", \"metadata\": {{\"root-password\": \"cubswin:)\", \"distro\": \"cirros\"}}}}\n    ], \n    \"guest-agent\": \"qemu-guest-agent\", \n    \"snapshots\": {{}}, \n    \"metadata\": {{}}\n}}"
            ),
        )
        .unwrap();
    }
    p
}

const EXPECTED_DEFAULT: &str = "\
[Prefix]:
    Base directory: $TEST/work/prefix_skel
    [Networks]:
        [n0]:
            gateway: 192.168.201.1
            management: True
            status: down
        [n1]:
            gateway: 192.168.202.1
            management: False
            status: down
    UUID: fe689d3c39d011e5b22b54ee755a00ca
    [VMs]:
        [vm0]:
            [NICs]:
                [eth0]:
                    ip: 192.168.201.2
                    network: n0
                [eth1]:
                    ip: 192.168.202.2
                    network: n1
            distro: cirros
            root password: 123456
            status: down
        [vm1]:
            [NICs]:
                [eth0]:
                    ip: 192.168.201.3
                    network: n0
                [eth1]:
                    ip: 192.168.202.3
                    network: n1
            distro: cirros
            root password: cubswin:)
            status: down
";

// The original's `expected.json` and `expected.yaml` of that prefix. Its suite compared them
// with `diff --ignore-trailing-space`: the fixture's JSON has the trailing spaces of Python 2's
// `json.dumps`, which Python 3 (and lago) do not print.
const EXPECTED_JSON: &str = r#"{
    "Prefix": {
        "Base directory": "$TEST/work/prefix_skel",
        "Networks": {
            "n0": {
                "gateway": "192.168.201.1",
                "management": true,
                "status": "down"
            },
            "n1": {
                "gateway": "192.168.202.1",
                "management": false,
                "status": "down"
            }
        },
        "UUID": "fe689d3c39d011e5b22b54ee755a00ca",
        "VMs": {
            "vm0": {
                "NICs": {
                    "eth0": {
                        "ip": "192.168.201.2",
                        "network": "n0"
                    },
                    "eth1": {
                        "ip": "192.168.202.2",
                        "network": "n1"
                    }
                },
                "distro": "cirros",
                "metadata": {},
                "root password": "123456",
                "snapshots": "",
                "status": "down"
            },
            "vm1": {
                "NICs": {
                    "eth0": {
                        "ip": "192.168.201.3",
                        "network": "n0"
                    },
                    "eth1": {
                        "ip": "192.168.202.3",
                        "network": "n1"
                    }
                },
                "distro": "cirros",
                "metadata": {},
                "root password": "cubswin:)",
                "snapshots": "",
                "status": "down"
            }
        }
    }
}
"#;

const EXPECTED_YAML: &str = "\
Prefix:
  Base directory: $TEST/work/prefix_skel
  Networks:
    n0:
      gateway: 192.168.201.1
      management: true
      status: down
    n1:
      gateway: 192.168.202.1
      management: false
      status: down
  UUID: fe689d3c39d011e5b22b54ee755a00ca
  VMs:
    vm0:
      NICs:
        eth0:
          ip: 192.168.201.2
          network: n0
        eth1:
          ip: 192.168.202.2
          network: n1
      distro: cirros
      metadata: {}
      root password: '123456'
      snapshots: ''
      status: down
    vm1:
      NICs:
        eth0:
          ip: 192.168.201.3
          network: n0
        eth1:
          ip: 192.168.202.3
          network: n1
      distro: cirros
      metadata: {}
      root password: cubswin:)
      snapshots: ''
      status: down
";

// No fixture of the original has it: what its `FlatOutFormatPlugin` prints for that prefix.
const EXPECTED_FLAT: &str = "\
Base directory: $TEST/work/prefix_skel
Networks/n0/gateway: 192.168.201.1
Networks/n0/management: True
Networks/n0/status: down
Networks/n1/gateway: 192.168.202.1
Networks/n1/management: False
Networks/n1/status: down
UUID: fe689d3c39d011e5b22b54ee755a00ca
VMs/vm0/NICs/eth0/ip: 192.168.201.2
VMs/vm0/NICs/eth0/network: n0
VMs/vm0/NICs/eth1/ip: 192.168.202.2
VMs/vm0/NICs/eth1/network: n1
VMs/vm0/distro: cirros
VMs/vm0/root password: 123456
VMs/vm0/snapshots: 
VMs/vm0/status: down
VMs/vm1/NICs/eth0/ip: 192.168.201.3
VMs/vm1/NICs/eth0/network: n0
VMs/vm1/NICs/eth1/ip: 192.168.202.3
VMs/vm1/NICs/eth1/network: n1
VMs/vm1/distro: cirros
VMs/vm1/root password: cubswin:)
VMs/vm1/snapshots: 
VMs/vm1/status: down
";

#[test]
fn status_of_a_prefix_written_by_the_original() {
    let env = TestEnv::new();
    let prefix = original_prefix(&env);
    // The UUID is not normalised here: it is the fixture's.
    let fixture_uuid = |run: crate::common::Run| run.stdout.replace("[UUID]", "fe689d3c39d011e5b22b54ee755a00ca");
    // From inside the prefix (prefix mode) and with --prefix-path.
    assert_eq!(fixture_uuid(env.lago_in(&prefix, &["status"]).ok()), EXPECTED_DEFAULT);
    let run = env.lago(&["--prefix-path", "prefix_skel", "status"]).ok();
    // The original's warning was a Python `DeprecationWarning`, not shown by default: scripts
    // compare this output. It is said at debug level.
    assert!(!run.stderr.contains("deprecated"), "{}", run.stderr);
    assert_eq!(fixture_uuid(run), EXPECTED_DEFAULT);
    let debug = env.lago(&["--loglevel", "debug", "--prefix-path", "prefix_skel", "status"]).ok();
    assert!(debug.stderr.contains("--prefix-path is going to be deprecated"), "{}", debug.stderr);
    for (format, expected) in [("json", EXPECTED_JSON), ("yaml", EXPECTED_YAML), ("flat", EXPECTED_FLAT)] {
        let out = fixture_uuid(env.lago_in(&prefix, &["-f", format, "status"]).ok());
        assert_eq!(out, expected, "-f {format}");
        // With nothing of lago's own to say, `--extra` adds nothing.
        let extra = fixture_uuid(env.lago_in(&prefix, &["-f", format, "status", "--extra"]).ok());
        assert_eq!(extra, expected, "-f {format} status --extra");
    }
}

/// The original's `tests/functional/fixtures/basic/suite.json`.
const BASIC_SUITE: &str = r#"{
    "domains": {
        "lago_functional_tests_vm01": {
            "memory": 64,
            "nics": [
                {
                    "net": "lago_functional_tests"
                }
            ],
            "disks": [
                {
                    "template_name": "lago_functional_tests",
                    "type": "template",
                    "name": "root",
                    "dev": "vda",
                    "format": "qcow2"
                }
            ]
        }
    },
    "nets": {
        "lago_functional_tests": {
            "type": "nat",
            "dhcp": {
                "start": 100,
                "end": 254
            },
            "management": true
        }
    }
}
"#;

/// The original's `suite_multi_vm.yaml`: two VMs of one YAML anchor.
const BASIC_MULTI_VM: &str = "\
base_disk: &base_disk
  template_name: lago_functional_tests
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

nets:
  lago_functional_tests:
    type: nat
    dhcp:
      start: 100
      end: 254
    management: true
";

/// The original's `expected_up_status` and `expected_down_status` (they differ in `status`),
/// with their placeholders.
fn expected_basic_status(up: bool) -> String {
    let (net, vm) = if up { ("up", "running") } else { ("down", "down") };
    format!(
        "\
[Prefix]:
    Base directory: @@PREFIX_PATH@@
    [Networks]:
        [lago_functional_tests]:
            gateway: @@GATEWAY@@
            management: True
            status: {net}
    UUID: @@UUID@@
    [VMs]:
        [lago_functional_tests_vm01]:
            [NICs]:
                [eth0]:
                    ip: @@IP@@
                    network: lago_functional_tests
            distro: cirros
            root password: 123456
            status: {vm}
"
    )
}

/// The original's `expected2_*` fixtures: the two VMs of `suite_multi_vm.yaml` in states `vm01`
/// and `vm02`, their network in state `net`.
fn expected_multi_vm_status(net: &str, vm01: &str, vm02: &str) -> String {
    let vm = |name: &str, state: &str| {
        format!(
            "        [{name}]:
            [NICs]:
                [eth0]:
                    ip: @@IP@@
                    network: lago_functional_tests
            distro: cirros
            root password: 123456
            status: {state}
"
        )
    };
    format!(
        "\
[Prefix]:
    Base directory: @@PREFIX_PATH@@
    [Networks]:
        [lago_functional_tests]:
            gateway: @@GATEWAY@@
            management: True
            status: {net}
    UUID: @@UUID@@
    [VMs]:
{}{}",
        vm("lago_functional_tests_vm01", vm01),
        vm("lago_functional_tests_vm02", vm02)
    )
}

/// A fixture with its placeholders replaced as the original's suite did (`@@IP@@` one after the
/// other by the VMs' addresses).
fn realize(fixture: &str, prefix: &str, uuid: &str, gateway: &str, ips: &[&str]) -> String {
    let mut text = fixture.replace("@@PREFIX_PATH@@", prefix).replace("@@UUID@@", uuid).replace("@@GATEWAY@@", gateway);
    for ip in ips {
        text = text.replacen("@@IP@@", ip, 1);
    }
    text
}

/// `lago status` as printed, not normalised.
fn raw_status(env: &TestEnv, args: &[&str]) -> String {
    let out = env.command(&env.work(), args).output().unwrap();
    assert!(out.status.success(), "lago {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A `TestEnv` whose repository holds the original's functional-test template (its store's
/// `.metadata`) and an initialized prefix of `init_file`; returns it with the prefix's
/// directory and uuid.
fn basic_env(init_file: &str) -> (TestEnv, std::path::PathBuf, String) {
    let env = TestEnv::new();
    env.add_template(
        "lago_functional_tests",
        "v1",
        1428328144,
        r#"{"root-password": "cowswin:)", "distro": "cirros", "root-partition": "/dev/sda1"}"#,
    );
    env.write("LagoInitFile", init_file);
    env.lago(&["init"]).ok();
    let status: serde_json::Value = serde_json::from_str(&raw_status(&env, &["-f", "json", "status"])).unwrap();
    let prefix = std::path::PathBuf::from(status["Prefix"]["Base directory"].as_str().unwrap());
    let uuid = status["Prefix"]["UUID"].as_str().unwrap().to_owned();
    (env, prefix, uuid)
}

#[test]
fn status_of_a_running_environment_as_the_original_printed_it() {
    let (env, prefix, uuid) = basic_env(BASIC_SUITE);
    let p = prefix.display().to_string();
    let realize = |fixture: &str| realize(fixture, &p, &uuid, "192.168.200.1", &["192.168.200.2"]);
    assert_eq!(raw_status(&env, &["status"]), realize(&expected_basic_status(false)));
    let mut stand = Stand::new();
    stand.run(&prefix, "lago_functional_tests_vm01");
    stand.run(&prefix, "switch-lago_functional_tests");
    assert_eq!(raw_status(&env, &["status"]), realize(&expected_basic_status(true)));
    assert_eq!(raw_status(&env, &["--workdir", ".lago", "status"]), realize(&expected_basic_status(true)));
    // The other formats print the same keys, in the original's shapes (its output plugins).
    let formats = ["json", "yaml", "flat"];
    let printed: Vec<String> = formats.iter().map(|f| raw_status(&env, &["-f", f, "status"])).collect();
    for (format, out) in formats.iter().zip(&printed) {
        insta::assert_snapshot!(format!("running_status_{format}"), env.normalize(out));
    }

    // lago's own additions (a cut link, a degraded one, a partition, a forwarded port, a clock
    // left behind by a revert) show only with `--extra`.
    let state = serde_json::json!({
        "version": 1,
        "ssh_ports": {"lago_functional_tests_vm01": 40022},
        "partitions": {"lago_functional_tests": [["lago_functional_tests_vm01"]]},
        "impairments": {"lago_functional_tests": {"lago_functional_tests_vm01": {"delay_ms": 200}}},
        "cut": {"lago_functional_tests_vm01": [0]},
        "forwards": {"lago_functional_tests_vm01": [{"guest": 8080, "host": 40123, "live": true}]},
        "clock": {"lago_functional_tests_vm01": "no guest agent answered"}
    });
    std::fs::write(prefix.join("run/state.json"), state.to_string()).unwrap();
    assert_eq!(raw_status(&env, &["status"]), realize(&expected_basic_status(true)));
    for (format, out) in formats.iter().zip(&printed) {
        assert_eq!(&raw_status(&env, &["-f", format, "status"]), out, "-f {format}");
    }
    insta::assert_snapshot!("running_status_extra", env.lago(&["status", "--extra"]).ok().stdout);
    insta::assert_snapshot!("running_status_extra_json", env.lago(&["-f", "json", "status", "--extra"]).ok().stdout);
    drop(stand);
    assert_eq!(raw_status(&env, &["status"]), realize(&expected_basic_status(false)));
}

#[test]
fn status_of_vms_started_and_stopped_one_by_one_as_the_original_printed_it() {
    let (env, prefix, uuid) = basic_env(BASIC_MULTI_VM);
    let p = prefix.display().to_string();
    let ips = ["192.168.200.2", "192.168.200.3"];
    let expected =
        |net, vm01, vm02| realize(&expected_multi_vm_status(net, vm01, vm02), &p, &uuid, "192.168.200.1", &ips);
    let mut stand = Stand::new();
    // expected2_down_status_vm01: vm02 started.
    stand.run(&prefix, "switch-lago_functional_tests");
    stand.run(&prefix, "lago_functional_tests_vm02");
    assert_eq!(raw_status(&env, &["status"]), expected("up", "down", "running"));
    // expected2_up_status_all: vm01 started too.
    stand.run(&prefix, "lago_functional_tests_vm01");
    assert_eq!(raw_status(&env, &["status"]), expected("up", "running", "running"));
    // expected2_up_status_vm01: vm02 stopped, the network stays up.
    stand.stop(&prefix, "lago_functional_tests_vm02");
    assert_eq!(raw_status(&env, &["status"]), expected("up", "running", "down"));
    // expected2_down_status_all: vm01 stopped, and the network with it.
    stand.stop(&prefix, "lago_functional_tests_vm01");
    stand.stop(&prefix, "switch-lago_functional_tests");
    assert_eq!(raw_status(&env, &["status"]), expected("down", "down", "down"));
}

#[test]
fn status_outside_any_workdir() {
    let env = TestEnv::new();
    insta::assert_snapshot!("status_no_workdir", env.lago(&["status"]).render());
}
