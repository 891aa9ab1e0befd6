//! Malformed init files: every one is refused with the file, the key path and what was
//! expected, exit code 2, and nothing left on disk.

use crate::common::TestEnv;

const DISK: &str = "{template_name: tiny, type: template, name: root}";

fn vm(extra: &str) -> String {
    format!("domains:\n  vm01:\n    nics: [{{net: lago}}]\n    disks: [{DISK}]\n{extra}nets:\n  lago: {{}}\n")
}

fn cases() -> Vec<(&'static str, String)> {
    vec![
        ("empty file", String::new()),
        ("only a comment", "# nothing here\n".into()),
        ("yaml syntax error", "domains:\n  vm01: [1, 2\nnets: {}\n".into()),
        ("bad indentation", "domains:\n  vm01:\n    memory: 1\n   nics: []\n".into()),
        ("json syntax error", "{\"domains\": {\"vm01\": }}".into()),
        ("top level is a list", "- a\n- b\n".into()),
        ("top level is a scalar", "hello\n".into()),
        ("missing domains", "nets:\n  lago: {}\n".into()),
        ("missing nets", format!("domains:\n  vm01:\n    nics: [{{net: lago}}]\n    disks: [{DISK}]\n")),
        ("empty nets", format!("domains:\n  vm01:\n    nics: [{{net: lago}}]\n    disks: [{DISK}]\nnets: {{}}\n")),
        ("no domains", "domains: {}\nnets:\n  lago: {}\n".into()),
        ("misspelt section", format!("domain:\n  vm01: {{nics: [{{net: lago}}]}}\nnets:\n  lago: {{}}\ndomains:\n  vm01:\n    nics: [{{net: lago}}]\n    disks: [{DISK}]\n")),
        ("unknown domain key", vm("    memroy: 512\n")),
        ("unknown disk key", "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks: [{template_name: tiny, type: template, name: root, devce: vda}]\nnets:\n  lago: {}\n".into()),
        ("unknown nic key", "domains:\n  vm01:\n    nics: [{net: lago, addr: 1.2.3.4}]\nnets:\n  lago: {}\n".into()),
        ("unknown net key", "domains:\n  vm01:\n    nics: [{net: lago}]\nnets:\n  lago: {dhpc: {start: 2}}\n".into()),
        ("unknown network", "domains:\n  vm01:\n    nics: [{net: lgo}]\nnets:\n  lago: {}\n".into()),
        ("nic without net", "domains:\n  vm01:\n    nics: [{ip: 192.168.200.4}]\nnets:\n  lago: {}\n".into()),
        ("nics not a list", "domains:\n  vm01:\n    nics: lago\nnets:\n  lago: {}\n".into()),
        ("no nics", "domains:\n  vm01:\n    memory: 512\nnets:\n  lago: {}\n".into()),
        ("memory not a number", vm("    memory: lots\n")),
        ("memory zero", vm("    memory: 0\n")),
        ("vcpu too many", vm("    vcpu: 1000\n")),
        ("bootstrap not a bool", vm("    bootstrap: maybe\n")),
        ("domain is a list", "domains:\n  vm01: [1]\nnets:\n  lago: {}\n".into()),
        ("bad vm name", "domains:\n  'vm 01/x':\n    nics: [{net: lago}]\nnets:\n  lago: {}\n".into()),
        ("bad net name", "domains:\n  vm01:\n    nics: [{net: ../lago}]\nnets:\n  ../lago: {}\n".into()),
        ("invalid ip", "domains:\n  vm01:\n    nics: [{net: lago, ip: 192.168.300.1}]\nnets:\n  lago: {}\n".into()),
        ("duplicate static ip", "domains:\n  vm01:\n    nics: [{net: lago, ip: 192.168.200.5}]\n  vm02:\n    nics: [{net: lago, ip: 192.168.200.5}]\nnets:\n  lago: {}\n".into()),
        ("ip outside the net", "domains:\n  vm01:\n    nics: [{net: lago, ip: 10.0.0.5}]\nnets:\n  lago: {gw: 10.1.0.1}\n".into()),
        ("ip equal to gateway", "domains:\n  vm01:\n    nics: [{net: lago, ip: 192.168.200.1}]\nnets:\n  lago: {}\n".into()),
        ("broadcast ip", "domains:\n  vm01:\n    nics: [{net: lago, ip: 192.168.200.255}]\nnets:\n  lago: {}\n".into()),
        ("gateway is network address", "domains:\n  vm01:\n    nics: [{net: lago}]\nnets:\n  lago: {gw: 192.168.200.0}\n".into()),
        ("two nets same subnet", "domains:\n  vm01:\n    nics: [{net: a}, {net: b}]\nnets:\n  a: {gw: 192.168.201.1, management: true}\n  b: {gw: 192.168.201.7}\n".into()),
        ("dhcp start after end", "domains:\n  vm01:\n    nics: [{net: lago}]\nnets:\n  lago: {dhcp: {start: 200, end: 100}}\n".into()),
        ("dhcp start too low", "domains:\n  vm01:\n    nics: [{net: lago}]\nnets:\n  lago: {dhcp: {start: 1, end: 100}}\n".into()),
        ("dhcp end too high", "domains:\n  vm01:\n    nics: [{net: lago}]\nnets:\n  lago: {dhcp: {start: 10, end: 255}}\n".into()),
        ("mtu too small", "domains:\n  vm01:\n    nics: [{net: lago}]\nnets:\n  lago: {mtu: 10}\n".into()),
        ("unknown net type", "domains:\n  vm01:\n    nics: [{net: lago}]\nnets:\n  lago: {type: vxlan}\n".into()),
        ("vm without management net", "domains:\n  vm01:\n    nics: [{net: b}]\n  vm02:\n    nics: [{net: a}]\nnets:\n  a: {management: true}\n  b: {}\n".into()),
        ("vm with two management nets", "domains:\n  vm01:\n    nics: [{net: a}, {net: b}]\nnets:\n  a: {management: true}\n  b: {management: true}\n".into()),
        ("dns on a non-management net", "domains:\n  vm01:\n    nics: [{net: a}]\nnets:\n  a: {management: true}\n  b: {dns_domain_name: x.local}\n".into()),
        ("duplicate disk names", "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks:\n      - {template_name: tiny, type: template, name: root}\n      - {type: empty, name: root, size: 1G}\nnets:\n  lago: {}\n".into()),
        ("duplicate devices", "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks:\n      - {template_name: tiny, type: template, name: root, dev: vda}\n      - {type: empty, name: data, size: 1G, dev: vda}\nnets:\n  lago: {}\n".into()),
        ("device name with a non-ASCII letter", "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks: [{template_name: tiny, type: template, name: root, dev: vé}]\nnets:\n  lago: {}\n".into()),
        ("bad device name", "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks: [{template_name: tiny, type: template, name: root, dev: xvda}]\nnets:\n  lago: {}\n".into()),
        ("unknown disk type", "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks: [{type: cloud, name: root}]\nnets:\n  lago: {}\n".into()),
        ("disk without type", "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks: [{name: root}]\nnets:\n  lago: {}\n".into()),
        ("unknown format", "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks: [{type: empty, name: d, size: 1G, format: qcow3}]\nnets:\n  lago: {}\n".into()),
        ("bad size", "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks: [{type: empty, name: d, size: 10X}]\nnets:\n  lago: {}\n".into()),
        ("tiny size in bytes", "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks: [{type: empty, name: d, size: 10}]\nnets:\n  lago: {}\n".into()),
        ("empty disk without size", "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks: [{type: empty, name: d}]\nnets:\n  lago: {}\n".into()),
        ("template disk without template", "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks: [{type: template, name: root}]\nnets:\n  lago: {}\n".into()),
        ("qcow2 template without path", "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks: [{type: template, name: root, template_type: qcow2}]\nnets:\n  lago: {}\n".into()),
        ("file disk that does not exist", "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks: [{type: file, name: d, path: /nonexistent/disk.raw}]\nnets:\n  lago: {}\n".into()),
        ("template disk not qcow2", "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks: [{template_name: tiny, type: template, name: root, format: raw}]\nnets:\n  lago: {}\n".into()),
        ("cpu_model and cpu_custom", vm("    cpu_model: Westmere\n    cpu_custom: {'@mode': custom}\n")),
        ("dns domain with an empty label", "domains:\n  vm01:\n    nics: [{net: lago}]\nnets:\n  lago: {dns_domain_name: lago..local}\n".into()),
        ("dns domain label with a leading hyphen", "domains:\n  vm01:\n    nics: [{net: lago}]\nnets:\n  lago: {dns_domain_name: -lab.local}\n".into()),
        ("dns domain label too long", format!("domains:\n  vm01:\n    nics: [{{net: lago}}]\nnets:\n  lago: {{dns_domain_name: {}.local}}\n", "a".repeat(64))),
        ("dns domain with an underscore", "domains:\n  vm01:\n    nics: [{net: lago}]\nnets:\n  lago: {dns_domain_name: my_lab.local}\n".into()),
        ("dns record that is not a host name", "domains:\n  vm01:\n    nics: [{net: lago}]\nnets:\n  lago: {dns_records: {'web server': 192.168.200.9}}\n".into()),
        ("cpu_model with qemu options", vm("    cpu_model: 'Westmere,+vmx'\n")),
        ("cpu_custom that qemu cannot express", vm("    vcpu: 2\n    cpu_custom:\n      model: {'#text': Westmere, '@fallback': sometimes}\n      cache: {'@mode': passthrough}\n      feature: [{'@name': vmx, '@policy': perhaps}]\n      topology: {'@sockets': 1, '@cores': 4, '@threads': 1}\n")),
        ("unknown builder", "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks: [{template_name: tiny, type: template, name: root, build: [{virt-builder: {x: y}}]}]\nnets:\n  lago: {}\n".into()),
        ("build step with two builders", "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks: [{template_name: tiny, type: template, name: root, build: [{virt-customize: {}, other: {}}]}]\nnets:\n  lago: {}\n".into()),
        ("unknown service provider", vm("    service_provider: upstart\n")),
        ("unknown vm provider", vm("    vm-provider: local-libvirtt\n")),
        ("ova domain", vm("    type: ova\n    url: file:///appliance.ova\n")),
        ("unknown template", "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks: [{template_name: el7.3-base, type: template, name: root}]\nnets:\n  lago: {}\n".into()),
        ("unknown template version", "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks: [{template_name: tiny, template_version: v9, type: template, name: root}]\nnets:\n  lago: {}\n".into()),
        ("missing deploy script", vm("    metadata:\n      deploy-scripts: [$LAGO_INITFILE_PATH/nope.sh]\n")),
        ("relative artifact", vm("    artifacts: [var/log]\n")),
        ("yaml tag", "domains: !vm {}\nnets: {}\n".into()),
        ("several problems at once", "domains:\n  vm01:\n    memory: x\n    vcpu: 0\n    nics: [{net: nope}]\n    disks: [{type: empty, name: d}]\nnets:\n  lago: {mtu: 1}\n".into()),
    ]
}

#[test]
fn malformed_init_files_are_refused_with_their_key_paths() {
    let env = TestEnv::with_repo();
    let mut report = String::new();
    let cases = cases();
    assert!(cases.len() >= 40);
    for (i, (name, text)) in cases.iter().enumerate() {
        let dir = env.work().join(format!("case{i:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = if name.starts_with("json") { "LagoInitFile.json" } else { "LagoInitFile" };
        std::fs::write(dir.join(file), text).unwrap();
        let run = env.lago_in(&dir, &["init", file]);
        assert_eq!(run.code, 2, "{name}: {}", run.render());
        assert!(run.stdout.is_empty(), "{name}");
        let left: Vec<_> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(left, [file], "{name}: init left files behind");
        report.push_str(&format!("### {name}\n{}\n", run.stderr.replace(&format!("$TEST/work/case{i:02}/"), "")));
    }
    assert!(
        !env.root().join("store").read_dir().is_ok_and(|mut d| d.any(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".lock")))
    );
    insta::assert_snapshot!("malformed_init_files", report);
}

#[test]
fn unreadable_and_missing_init_files() {
    let env = TestEnv::with_repo();
    insta::assert_snapshot!("missing_init_file", env.lago(&["init"]).render());
    std::fs::create_dir_all(env.work().join("adir")).unwrap();
    insta::assert_snapshot!("init_file_is_a_directory", env.lago(&["init", "adir"]).render());
    std::fs::write(env.work().join("bin"), [0xff, 0xfe, 0x00, 0x41]).unwrap();
    insta::assert_snapshot!("init_file_not_utf8", env.lago(&["init", "bin"]).render());
    assert!(!env.work().join(".lago").exists());
}

#[test]
fn alias_bomb_fails_fast() {
    let env = TestEnv::with_repo();
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..14 {
        let p = i - 1;
        text.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    text.push_str("domains: {}\nnets: {}\n");
    env.write("LagoInitFile", &text);
    let run = env.lago(&["init"]);
    assert_eq!(run.code, 2);
    insta::assert_snapshot!("alias_bomb", run.stderr);
}
