//! `lago wait`'s wrong requests: none or two of the things to wait for, a bad regular
//! expression or timeout, an unknown VM, a VM that does not run (waiting itself is tested on
//! real VMs, in the e2e tests).

use crate::common::TestEnv;

const INIT: &str = "\
domains:
  vm01:
    nics: [{net: lago}]
    disks: [{template_name: tiny, type: template, name: root, dev: vda}]
nets:
  lago: {management: true}
";

#[test]
fn wrong_wait_requests_are_usage_errors() {
    let env = TestEnv::initialized(INIT);
    let runs = [
        env.lago(&["wait", "vm01"]),
        env.lago(&["wait", "vm01", "--port", "22", "--unit", "dropbear"]),
        env.lago(&["wait", "vm01", "--file", "/x", "--", "true"]),
        env.lago(&["wait", "vm01", "--"]),
        env.lago(&["wait", "vm01", "--console", "login: (ready"]),
        env.lago(&["wait", "vm01", "--port", "70000"]),
        env.lago(&["wait", "vm01", "--port", "22", "--timeout", "soon"]),
        env.lago(&["wait", "vm09", "--port", "22"]),
        env.lago(&["wait", "vm01", "--port", "22"]),
    ];
    for run in &runs {
        assert_eq!(run.code, 2, "{}", run.render());
    }
    insta::assert_snapshot!("wait_errors", runs.iter().map(|r| r.render()).collect::<Vec<_>>().join("\n"));
}
