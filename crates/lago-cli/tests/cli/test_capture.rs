//! `lago capture` and `lago replay` without VMs that run: what is refused, and how; an artefact
//! that is not one, or needs another qemu, is refused before anything is made.

use crate::common::TestEnv;

const INIT: &str = "\
domains:
  vm01:
    nics: [{net: lago}]
    disks: [{template_name: tiny, type: template, name: root, dev: vda}]
nets:
  lago: {management: true}
";

/// A tar compressed with zstd holding `capture.json` = `manifest`, at `path`.
fn artefact(env: &TestEnv, path: &std::path::Path, manifest: &str) {
    let dir = env.root().join("artefact-src");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("capture.json"), manifest).unwrap();
    let ok = std::process::Command::new("tar")
        .arg("--use-compress-program=zstd")
        .arg("-cf")
        .arg(path)
        .arg("-C")
        .arg(&dir)
        .arg("capture.json")
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn what_capture_and_replay_refuse() {
    let env = TestEnv::initialized(INIT);
    let work = env.work();
    std::fs::write(work.join("taken.lago-capture"), "").unwrap();
    std::fs::write(work.join("garbage.lago-capture"), "not a tar").unwrap();
    std::fs::create_dir_all(work.join("busy")).unwrap();
    std::fs::write(work.join("busy/file"), "").unwrap();
    let manifest = |machine: &str| {
        format!(
            r#"{{"format": 1, "lago": "0.1.0", "name": "old", "prefix": "default", "created": "2026-01-01T00:00:00Z",
               "qemu": {{"version": "2.12.0", "machine": "{machine}"}}, "standalone": false, "pause_spread_ms": 0.1, "vms": {{}}}}"#
        )
    };
    artefact(&env, &work.join("old.lago-capture"), &manifest("pc-i440fx-2.12"));
    artefact(&env, &work.join("newer.lago-capture"), r#"{"format": 7}"#);
    insta::assert_snapshot!(
        "capture_errors",
        [
            env.lago(&["capture"]).render(),
            env.lago(&["capture", "../up"]).render(),
            env.lago(&["capture", "c", "--output", "nowhere"]).render(),
            env.lago(&["capture", "taken"]).render(),
            env.lago(&["capture", "c", "--init-file", "missing.yaml"]).render(),
            env.lago(&["--workdir-path", "nowhere", "capture", "c"]).render(),
            // Nothing runs: the freeze refuses, as `lago fork` does.
            env.lago(&["capture", "c"]).render(),
            env.lago(&["replay"]).render(),
            env.lago(&["replay", "absent.lago-capture"]).render(),
            env.lago(&["replay", "garbage.lago-capture"]).render(),
            env.lago(&["replay", "newer.lago-capture"]).render(),
            env.lago(&["replay", "old.lago-capture", "busy"]).render(),
        ]
        .join("\n")
    );
    // Nothing half-made: no artefact, no workdir of a refused replay.
    assert!(!work.join("c.lago-capture").exists());
    assert!(!work.join("garbage").exists() && !work.join("newer").exists());
    // An artefact whose machine type this qemu lacks names the qemu it needs; nothing is made.
    let out = env.lago(&["replay", "old.lago-capture"]);
    let rendered = out.render();
    assert!(
        rendered.contains("The capture needs qemu 2.12.0 (machine type pc-i440fx-2.12, which its VMs' state was saved under); this host's qemu-system-x86_64 is"),
        "{rendered}"
    );
    assert!(
        rendered
            .contains("Hint: replay it on a host whose qemu is 2.12.0 (any 2.12 with the machine type pc-i440fx-2.12)"),
        "{rendered}"
    );
    assert!(rendered.ends_with("[exit code: 2]"), "{rendered}");
    assert!(!work.join("old").exists());
}
