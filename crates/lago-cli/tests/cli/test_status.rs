//! `lago status` on a prefix written by the original Lago (only `virt/` files, JSON with the
//! trailing spaces of Python 2, no `run/` state: everything shows as down).

use crate::common::TestEnv;

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

#[test]
fn status_of_a_prefix_written_by_the_original() {
    let env = TestEnv::new();
    let prefix = original_prefix(&env);
    // From inside the prefix (prefix mode) and with --prefix-path.
    let run = env.lago_in(&prefix, &["status"]).ok();
    // The UUID is not normalised here: it is the fixture's.
    assert_eq!(run.stdout.replace("[UUID]", "fe689d3c39d011e5b22b54ee755a00ca"), EXPECTED_DEFAULT);
    let run = env.lago(&["--prefix-path", "prefix_skel", "status"]).ok();
    assert_eq!(run.stdout.replace("[UUID]", "fe689d3c39d011e5b22b54ee755a00ca"), EXPECTED_DEFAULT);
    // The original's warning was a Python `DeprecationWarning`, not shown by default: scripts
    // compare this output. It is said at debug level.
    assert!(!run.stderr.contains("deprecated"), "{}", run.stderr);
    let debug = env.lago(&["--loglevel", "debug", "--prefix-path", "prefix_skel", "status"]).ok();
    assert!(debug.stderr.contains("--prefix-path is going to be deprecated"), "{}", debug.stderr);
    for format in ["json", "yaml", "flat"] {
        insta::assert_snapshot!(
            format!("original_prefix_status_{format}"),
            env.lago_in(&prefix, &["-f", format, "status"]).ok().stdout
        );
    }
}

#[test]
fn status_outside_any_workdir() {
    let env = TestEnv::new();
    insta::assert_snapshot!("status_no_workdir", env.lago(&["status"]).render());
}
