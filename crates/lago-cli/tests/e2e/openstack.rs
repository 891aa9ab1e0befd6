//! The `openstack` provider against the two-compute-node test cloud of
//! `scripts/openstack-cloud.sh` (which `scripts/test.sh` brings up before the tests, as root, and
//! takes down after): lago runs in the cloud's network namespace `lago-os`, where its APIs and
//! the VMs' management network `lago-mgmt` answer, with the `lago-test` entry of clouds.yaml.
//! What lago made is checked through the cloud's API (the openstack CLI in `lago-os`).
//! One test at a time (nextest group `openstack`): the servers run under TCG on the same cores.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

use crate::lab::Lab;

/// The controller's namespace.
const NS: &str = "lago-os";

/// Three VMs on two networks with static addresses: vm01 on cn1, vm02 and vm03 on cn2; vm01 and
/// vm02 share `lab` (across the nodes, over VXLAN), vm03 alone on `other`.
const INIT: &str = "\
base: &base
  memory: 256
  vcpu: 1
  disks: [{template_name: tiny, type: template, name: root, dev: vda}]
domains:
  vm01: {<<: *base, nics: [{net: lab, ip: 192.168.210.11}], metadata: {openstack-host: cn1}}
  vm02: {<<: *base, nics: [{net: lab, ip: 192.168.210.12}], metadata: {openstack-host: cn2}}
  vm03: {<<: *base, nics: [{net: other, ip: 192.168.211.13}], metadata: {openstack-host: cn2}}
nets:
  lab: {management: true, dns_domain_name: lab.test, gw: 192.168.210.1}
  other: {management: true, dns_domain_name: other.test, gw: 192.168.211.1}
";

/// The clouds.yaml `scripts/openstack-cloud.sh up` wrote (in the real HOME: the labs' HOME is a
/// temporary directory).
fn clouds_yaml() -> PathBuf {
    let path =
        PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".config/openstack/clouds.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        text.contains("lago-test:"),
        "no `lago-test` cloud in {}: bring the test cloud up first (`sudo scripts/openstack-cloud.sh up`)",
        path.display()
    );
    path
}

/// A lab whose VMs are openstack ones of the test cloud, lago run in `lago-os`.
fn lab(init: &str) -> Lab {
    let mut lab = Lab::new(init);
    lab.env.push(("LAGO_DEFAULT_VM_PROVIDER", "openstack".into()));
    lab.env.push(("OS_CLIENT_CONFIG_FILE", clouds_yaml().display().to_string()));
    lab.env.push(("LAGO__OPENSTACK__CLOUD", "lago-test".into()));
    lab.env.push(("LAGO__OPENSTACK__NETWORK", "lago-mgmt".into()));
    lab.netns = Some(NS.into());
    lab
}

/// The openstack CLI of the test cloud (user `lago`, which has the admin role); its JSON output.
fn api(args: &[&str]) -> Value {
    let out = Command::new("ip")
        .args(["netns", "exec", NS, "env", "OS_CLOUD=lago-test", "OS_COMPUTE_API_VERSION=2.60"])
        .arg(format!("OS_CLIENT_CONFIG_FILE={}", clouds_yaml().display()))
        .args(["openstack"])
        .args(args)
        .args(["-f", "json"])
        .output()
        .expect("the openstack CLI (python3-openstackclient, installed by scripts/openstack-cloud.sh)");
    assert!(out.status.success(), "openstack {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The environment's uuid (its resources carry the tag `lago-env-<uuid>`).
fn env_uuid(lab: &Lab) -> Option<String> {
    std::fs::read_to_string(lab.home.path().join(".lago/default/uuid")).ok().map(|u| u.trim().to_owned())
}

/// Everything of the cloud tagged with the environment's tag: servers, ports, subnets, networks,
/// and the images it made (snapshots carry the property `lago_env`).
fn resources_of(uuid: &str) -> Vec<String> {
    let tag = format!("lago-env-{uuid}");
    let mut found = Vec::new();
    for kind in ["server", "port", "subnet", "network"] {
        let list = if kind == "server" {
            api(&[kind, "list", "--all-projects", "--tags", &tag])
        } else {
            api(&[kind, "list", "--tags", &tag])
        };
        for item in list.as_array().unwrap() {
            found.push(format!("{kind} {}", item["Name"].as_str().unwrap_or_default()));
        }
    }
    let images = api(&["image", "list", "--property", &format!("lago_env={uuid}")]);
    for item in images.as_array().unwrap() {
        found.push(format!("image {}", item["Name"].as_str().unwrap_or_default()));
    }
    found
}

/// The compute node a VM's server runs on.
fn host_of(uuid: &str, vm: &str) -> String {
    let tag = format!("lago-env-{uuid}");
    let servers = api(&["server", "list", "--tags", &tag, "--long"]);
    let server = servers
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Name"].as_str().is_some_and(|n| n.ends_with(&format!("-{vm}"))))
        .unwrap_or_else(|| panic!("no server of {vm} among {servers}"));
    server["Host"].as_str().unwrap_or_default().to_owned()
}

fn reaches(lab: &Lab, from: &str, to: &str) -> bool {
    lab.shell(from, &format!("ping -c 1 -W 3 {to} >/dev/null && echo ok")).1 == "ok"
}

#[test]
fn openstack_three_vms_two_networks_on_two_nodes() {
    let lab = lab(INIT);
    let t = Instant::now();
    lab.ok(&["init"]);
    eprintln!("openstack: init {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    lab.ok(&["start"]);
    eprintln!("openstack: start of 3 VMs {:.1} s", t.elapsed().as_secs_f64());
    let uuid = env_uuid(&lab).unwrap();
    let st = lab.status();
    for vm in ["vm01", "vm02", "vm03"] {
        assert_eq!(st["Prefix"]["VMs"][vm]["status"], "running", "{st}");
    }
    // Pinned where the init file says.
    assert_eq!(host_of(&uuid, "vm01"), "cn1");
    assert_eq!(host_of(&uuid, "vm02"), "cn2");
    assert_eq!(host_of(&uuid, "vm03"), "cn2");

    // `lago shell`: the seed of the config drive applied (name, address), exit codes through.
    assert_eq!(lab.shell("vm01", "hostname -f"), (0, "vm01.lab.test".into()));
    assert_eq!(lab.shell("vm03", "hostname -f"), (0, "vm03.other.test".into()));
    assert_eq!(lab.shell("vm02", "ip -o -4 addr show eth0 | awk '{print $4}'"), (0, "192.168.210.12/24".into()));
    assert_eq!(lab.shell("vm02", "exit 7").0, 7);
    // Across the nodes on a shared network; not across networks.
    assert!(reaches(&lab, "vm01", "192.168.210.12"), "vm01 (cn1) does not reach vm02 (cn2) on lab");
    assert!(reaches(&lab, "vm02", "vm01"), "vm02 does not reach vm01 by name");
    assert!(!reaches(&lab, "vm01", "192.168.211.13"), "vm01 reaches vm03 of another network");
    assert!(!reaches(&lab, "vm03", "192.168.210.12"), "vm03 reaches vm02 of another network");

    // Snapshot, then revert brings the file back.
    assert_eq!(lab.shell("vm01", "echo before > /root/f; sync; echo ok"), (0, "ok".into()));
    let t = Instant::now();
    lab.ok(&["snapshot", "s1"]);
    eprintln!("openstack: snapshot {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(lab.shell("vm01", "echo after > /root/f; sync; cat /root/f"), (0, "after".into()));
    let t = Instant::now();
    lab.ok(&["revert", "s1"]);
    eprintln!("openstack: revert {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(lab.shell("vm01", "cat /root/f"), (0, "before".into()));
    assert!(reaches(&lab, "vm01", "vm02"), "after the revert, vm01 does not reach vm02");

    // A second environment of the same init file, beside the first: its own networks (the
    // same addresses), servers and names; each reaches its own VMs only.
    let second = self::lab(INIT);
    second.ok(&["init"]);
    second.ok(&["start"]);
    let uuid2 = env_uuid(&second).unwrap();
    assert_ne!(uuid, uuid2);
    assert_eq!(second.shell("vm01", "hostname -f"), (0, "vm01.lab.test".into()));
    assert_eq!(second.shell("vm01", "cat /root/f 2>/dev/null || echo none"), (0, "none".into()));
    assert!(reaches(&second, "vm01", "vm02"));
    second.ok(&["destroy", "--yes"]);
    assert_eq!(resources_of(&uuid2), Vec::<String>::new(), "destroy of the second environment left these");
    assert_eq!(lab.status()["Prefix"]["VMs"]["vm02"]["status"], "running", "the first lost a VM");
    assert_eq!(lab.shell("vm01", "cat /root/f"), (0, "before".into()));

    let t = Instant::now();
    lab.ok(&["destroy", "--yes"]);
    eprintln!("openstack: destroy {:.1} s", t.elapsed().as_secs_f64());
    assert_eq!(resources_of(&uuid), Vec::<String>::new(), "destroy left these");
}

/// `lago init` then `lago start` of `lab`: the first that fails, its exit code and stderr.
fn first_failure(lab: &Lab) -> (i32, String) {
    for verb in ["init", "start"] {
        let out = lab.lago(&[verb]);
        if !out.status.success() {
            return (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned());
        }
    }
    panic!("init and start succeeded");
}

/// What the cloud holds of `lab`'s environment, if it got as far as having one.
fn left_of(lab: &Lab) -> Vec<String> {
    env_uuid(lab).map(|u| resources_of(&u)).unwrap_or_default()
}

#[test]
fn openstack_bad_inputs_fail_before_anything_is_created() {
    let one_vm = "domains:\n  vm01: {memory: 256, nics: [{net: lab, ip: 192.168.212.11}], disks: [{template_name: tiny, type: template, name: root, dev: vda}]}\nnets:\n  lab: {gw: 192.168.212.1}\n";

    // A cloud that clouds.yaml does not have.
    let mut missing = lab(one_vm);
    missing.env.retain(|(k, _)| *k != "LAGO__OPENSTACK__CLOUD");
    missing.env.push(("LAGO__OPENSTACK__CLOUD", "no-such-cloud".into()));
    let (code, err) = first_failure(&missing);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no-such-cloud"), "{err}");
    assert_eq!(left_of(&missing), Vec::<String>::new());

    // Wrong credentials: the entry with another password.
    let wrong = lab(one_vm);
    let yaml = std::fs::read_to_string(clouds_yaml()).unwrap().replace("lago-test-secret", "not-the-password");
    let file = wrong.home.path().join("clouds.yaml");
    std::fs::write(&file, yaml).unwrap();
    let mut wrong = wrong;
    wrong.env.retain(|(k, _)| *k != "OS_CLIENT_CONFIG_FILE");
    wrong.env.push(("OS_CLIENT_CONFIG_FILE", file.display().to_string()));
    let (code, err) = first_failure(&wrong);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("lago") && err.to_lowercase().contains("refused"), "{err}");
    assert_eq!(left_of(&wrong), Vec::<String>::new());

    // A flavor the cloud does not have.
    let mut flavor = lab(one_vm);
    flavor.env.push(("LAGO__OPENSTACK__FLAVOR", "no.such.flavor".into()));
    let (code, err) = first_failure(&flavor);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no.such.flavor"), "{err}");
    assert_eq!(left_of(&flavor), Vec::<String>::new());

    // A project whose quota is too small (`lago-small`: one instance, one core, 512 MiB of the
    // test cloud) for two VMs.
    let small = lab(&one_vm.replace(
        "nets:",
        "  vm02: {memory: 256, nics: [{net: lab, ip: 192.168.212.12}], disks: [{template_name: tiny, type: template, name: root, dev: vda}]}\nnets:",
    ));
    let yaml = std::fs::read_to_string(clouds_yaml())
        .unwrap()
        .replace("username: lago\n", "username: lago-small\n")
        .replace("project_name: lago\n", "project_name: lago-small\n");
    assert!(yaml.contains("lago-small"), "{yaml}");
    let file = small.home.path().join("clouds.yaml");
    std::fs::write(&file, yaml).unwrap();
    let mut small = small;
    small.env.retain(|(k, _)| *k != "OS_CLIENT_CONFIG_FILE");
    small.env.push(("OS_CLIENT_CONFIG_FILE", file.display().to_string()));
    let (code, err) = first_failure(&small);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("quota"), "{err}");
    assert_eq!(left_of(&small), Vec::<String>::new());
}
