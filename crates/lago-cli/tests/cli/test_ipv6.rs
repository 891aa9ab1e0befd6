//! IPv6 networks (lago's own keys): the init file's errors, each with its key path, exit code 2
//! and nothing created; and what `init` makes of a dual-stack and an IPv6-only network: records,
//! seed, `status` in every format, the inventory.

use serde_json::{Value, json};

use crate::common::TestEnv;

const DISK: &str = "disks: [{template_name: tiny, type: template, name: root}]";

fn cases() -> Vec<(&'static str, String)> {
    let one = |nic: &str, net: &str| {
        format!("domains:\n  vm01:\n    nics: [{{net: lan{nic}}}]\n    {DISK}\nnets:\n  lan: {{{net}}}\n")
    };
    vec![
        ("not a prefix", one("", "ipv6: somewhere")),
        ("prefix not a /64", one("", "ipv6: 'fd8f:1::/48'")),
        ("prefix with host bits", one("", "ipv6: 'fd8f:1:2::5/64'")),
        ("prefix without a length", one("", "ipv6: 'fd8f:1:2::'")),
        ("link-local prefix", one("", "ipv6: 'fe80::/64'")),
        ("unknown ipv6 key", one("", "ipv6: auto, gw_6: '::1'")),
        ("ip6 typo", one(", ipp6: '::5'", "ipv6: auto")),
        ("gw6 outside the prefix", one("", "ipv6: 'fd8f:1:2::/64', gw6: 'fd8f:1:3::1'")),
        ("gw6 without ipv6", one("", "gw6: 'fd8f:1:2::1'")),
        ("whole gw6 on an auto net", one("", "ipv6: auto, gw6: 'fd8f:1:2::1'")),
        ("ipv4 false with gw", one("", "ipv6: auto, ipv4: false, gw: 192.168.200.1")),
        ("ipv4 false without ipv6", one("", "ipv4: false")),
        ("ipv4 not a boolean", one("", "ipv6: auto, ipv4: sometimes")),
        ("ip6 on a net without ipv6", one(", ip6: '::5'", "")),
        ("ip6 not an address", one(", ip6: '::g'", "ipv6: auto")),
        ("ip6 outside the prefix", one(", ip6: 'fd8f:1:3::5'", "ipv6: 'fd8f:1:2::/64'")),
        ("ip6 is the gateway", one(", ip6: 'fd8f:1:2::1'", "ipv6: 'fd8f:1:2::/64'")),
        ("ip on an IPv6-only net", one(", ip: 192.168.200.5", "ipv6: auto, ipv4: false")),
        (
            "two NICs with one ip6",
            format!(
                "domains:\n  vm01:\n    nics: [{{net: lan, ip6: '::5'}}]\n    {DISK}\n  vm02:\n    nics: [{{net: lan, ip6: 'fd8f:1:2::5'}}]\n    {DISK}\nnets:\n  lan: {{ipv6: 'fd8f:1:2::/64'}}\n"
            ),
        ),
        (
            "two nets with one prefix",
            format!(
                "domains:\n  vm01:\n    nics: [{{net: a}}, {{net: b}}]\n    {DISK}\nnets:\n  a: {{management: true, ipv6: 'fd8f::/64'}}\n  b: {{ipv6: 'fd8f::/64'}}\n"
            ),
        ),
    ]
}

#[test]
fn ipv6_keys_are_checked_with_their_key_paths() {
    let env = TestEnv::with_repo();
    let mut report = String::new();
    for (i, (name, text)) in cases().iter().enumerate() {
        let dir = env.work().join(format!("case{i:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("LagoInitFile"), text).unwrap();
        let run = env.lago_in(&dir, &["init"]);
        assert_eq!(run.code, 2, "{name}: {}", run.render());
        let left: Vec<_> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(left, ["LagoInitFile"], "{name}: init left files behind");
        report.push_str(&format!("### {name}\n{}\n", run.stderr.replace(&format!("$TEST/work/case{i:02}/"), "")));
    }
    let leases = env.root().join("leases");
    assert!(!leases.exists() || std::fs::read_dir(&leases).unwrap().count() == 0, "leases left");
    insta::assert_snapshot!("ipv6_errors", report);
}

const DUAL: &str = "\
domains:
  vm01:
    nics: [{net: lan}, {net: v6}]
    disks: [{template_name: tiny, type: template, name: root}]
  vm02:
    nics: [{net: lan, ip: 192.168.200.7}, {net: v6, ip6: '::20'}]
    disks: [{template_name: tiny, type: template, name: root}]
  vm03:
    nics: [{net: v6only}]
    disks: [{template_name: tiny, type: template, name: root}]
nets:
  lan: {management: true, ipv6: 'fd8f:1:2::/64'}
  v6: {ipv6: 'fd8f:1:3::/64', ipv4: false, gw6: '::fe'}
  v6only: {management: true, ipv6: auto, ipv4: false, dns_domain_name: six.test}
";

fn record(env: &TestEnv, name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(env.work().join(".lago/default/virt").join(name)).unwrap()).unwrap()
}

/// `status` with the derived prefix of the `auto` network replaced by `[ULA]`.
fn status(env: &TestEnv, format: &str, auto: &str) -> String {
    env.lago(&["-f", format, "status"]).ok().stdout.replace(auto, "[ULA]")
}

#[test]
fn dual_stack_and_ipv6_only_networks_are_planned_recorded_and_shown() {
    let env = TestEnv::initialized(DUAL);
    // Records: lago's keys where there is IPv6, none of IPv4 on the IPv6-only networks.
    let lan = record(&env, "net-lan");
    assert_eq!(
        (&lan["ipv6"], &lan["gw6"], &lan["gw"]),
        (&json!("fd8f:1:2::/64"), &json!("fd8f:1:2::1"), &json!("192.168.200.1"))
    );
    assert_eq!(lan["mapping6"]["vm02"], "fd8f:1:2::7");
    assert_eq!(lan["dns_records6"]["vm01-v6"], "fd8f:1:3::2");
    let v6 = record(&env, "net-v6");
    assert!(v6.get("gw").is_none() && v6.get("dhcp").is_none(), "{v6}");
    assert_eq!((&v6["gw6"], &v6["ipv4"]), (&json!("fd8f:1:3::fe"), &json!(false)));
    let vm01 = record(&env, "vm-vm01");
    assert_eq!(
        vm01["nics"],
        json!([{"net": "lan", "ip": "192.168.200.2", "ip6": "fd8f:1:2::2"}, {"net": "v6", "ip6": "fd8f:1:3::2"}])
    );
    assert_eq!(record(&env, "vm-vm02")["nics"][1], json!({"net": "v6", "ip6": "fd8f:1:3::20"}));
    // `ipv6: auto`: a unique local /64 derived from the environment's uuid.
    let uuid = std::fs::read_to_string(env.work().join(".lago/default/uuid")).unwrap();
    let auto = lago::plan::ula_prefix(uuid.trim(), 0);
    let v6only = record(&env, "net-v6only");
    assert_eq!(v6only["ipv6"], format!("{auto}/64"));
    assert!(auto.segments()[0] & 0xff00 == 0xfd00, "{auto}");
    let vm03 = record(&env, "vm-vm03");
    assert_eq!(vm03["nics"][0]["ip6"], lago::spec::ipv6::in_prefix(auto, 2).to_string());
    assert!(vm03["nics"][0].get("ip").is_none());
    let auto = auto.to_string().trim_end_matches(':').to_owned();

    // Status: the IPv6 prefixes, gateways and addresses, in every format.
    for format in ["default", "flat", "json", "yaml"] {
        insta::assert_snapshot!(format!("dual_stack_status_{format}"), status(&env, format, &auto));
    }

    // Seed: the addresses, without IPv4 on the IPv6-only network; names resolve to both.
    let seed = env.work().join(".lago/default/images/vm01-seed.img");
    let mtype = |file: &str| {
        let out = std::process::Command::new("mtype").arg("-i").arg(&seed).arg(format!("::{file}")).output().unwrap();
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).replace(&auto, "[ULA]")
    };
    insta::assert_snapshot!("dual_stack_seed_interfaces", mtype("lago/interfaces") + &mtype("lago/interfaces6"));
    insta::assert_snapshot!("dual_stack_seed_hosts", mtype("lago/hosts"));
    insta::assert_snapshot!("dual_stack_seed_network_config", mtype("network-config"));

    // The inventory (VMs down): the IPv6 address where a VM has no IPv4 one.
    let inventory = env.lago(&["ansible_hosts"]).ok().stdout.replace(&auto, "[ULA]");
    assert!(inventory.contains("vm01 ansible_host=192.168.200.2 "), "{inventory}");
    assert!(inventory.contains("vm03 ansible_host=[ULA]::2 "), "{inventory}");
}

#[test]
fn environments_without_ipv6_keys_show_nothing_of_it() {
    let env = TestEnv::initialized(
        "domains:\n  vm01:\n    nics: [{net: lan}]\n    disks: [{template_name: tiny, type: template, name: root}]\nnets:\n  lan: {}\n",
    );
    for format in ["default", "flat", "json", "yaml"] {
        let out = env.lago(&["-f", format, "status"]).ok().stdout;
        assert!(!out.contains("ip6") && !out.contains("ipv6") && !out.contains("gateway6"), "{out}");
    }
    let text = std::fs::read_to_string(env.work().join(".lago/default/virt/net-lan")).unwrap();
    assert!(!text.contains("ipv6") && !text.contains("mapping6"), "{text}");
}
