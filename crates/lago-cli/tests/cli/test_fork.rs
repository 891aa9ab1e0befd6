//! `lago fork` and the memory line without VMs that run: what is refused, and how.

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
fn what_fork_refuses_and_the_memory_line_with_no_wait() {
    let env = TestEnv::initialized(INIT);
    insta::assert_snapshot!(
        "fork_errors",
        [
            env.lago(&["fork"]).render(),
            env.lago(&["fork", "--count", "2", "one"]).render(),
            env.lago(&["fork", "--count", "0"]).render(),
            env.lago(&["fork", "twice", "twice"]).render(),
            env.lago(&["fork", "default"]).render(),
            env.lago(&["fork", "--from-frozen"]).render(),
            env.lago(&["fork", "--renew"]).render(),
            env.lago(&["fork", "--renew", "name"]).render(),
        ]
        .join("\n")
    );
    // A start that does not fit the host's memory fails at once with `--no-wait`, naming the
    // shortfall; nothing started.
    let out = env
        .command(&env.work(), &["start", "--no-wait"])
        .env("LAGO_MEMORY_RESERVE", "100000000")
        .env("LAGO_MEMORY_DIR", "off")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("Error: Not enough memory: 1 VM need"), "{said}");
    assert!(said.contains("MiB short") || said.contains("GiB short"), "{said}");
    assert!(said.contains("Hint: without `--no-wait` the command waits in line"), "{said}");
    assert!(!env.work().join(".lago/default/run/vm01.pid").exists());
}
