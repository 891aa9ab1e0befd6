//! `lago template` without building anything: errors and listing of a repository.

use crate::common::TestEnv;

#[test]
fn unknown_template_and_missing_repository() {
    let env = TestEnv::new();
    insta::assert_snapshot!("template_build_unknown", env.lago(&["template", "build", "centos"]).render());
    insta::assert_snapshot!("template_list_missing_repo", env.lago(&["template", "list"]).render());
}

#[test]
fn list_shows_versions_sizes_and_cache_state() {
    let env = TestEnv::with_repo();
    env.add_template("tiny", "v2", 2, "{}");
    env.add_template("other", "1", 5, "{}");
    env.write("LagoInitFile", "domains:\n  vm01:\n    nics: [{net: n}]\n    disks: [{template_name: tiny, template_version: v1, type: template, name: root}]\nnets:\n  n: {}\n");
    env.lago(&["init"]).ok();
    // The store's size depends on the filesystem's blocks.
    let listed: String =
        env.lago(&["template", "list"])
            .ok()
            .render()
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("bytes: ") { "    bytes: [BYTES]\n".to_owned() } else { format!("{l}\n") }
            })
            .collect();
    insta::assert_snapshot!("template_list", listed.trim_end());
    let json: serde_json::Value =
        serde_json::from_str(&env.lago(&["-f", "json", "template", "list"]).ok().stdout).unwrap();
    assert_eq!(json["templates"]["tiny"]["v1"]["cached"], true);
    assert_eq!(json["templates"]["tiny"]["v2"]["cached"], false);
}

#[test]
fn prune_keeps_the_newest_and_what_an_environment_uses_and_says_why() {
    let env = TestEnv::with_repo();
    for (v, t) in [("v2", 2), ("v3", 3), ("v4", 4)] {
        env.add_template("tiny", v, t, "{}");
    }
    env.write("LagoInitFile", "domains:\n  vm01:\n    nics: [{net: n}]\n    disks: [{template_name: tiny, template_version: v1, type: template, name: root}]\nnets:\n  n: {}\n");
    env.lago(&["init"]).ok();
    let listed: serde_json::Value =
        serde_json::from_str(&env.lago(&["-f", "json", "template", "list"]).ok().stdout).unwrap();
    assert_eq!(listed["templates"]["tiny"]["v1"]["used_by"], serde_json::json!(["$TEST/work/.lago/default"]));
    assert!(listed["store"]["bytes"].as_u64().unwrap() > 0, "{listed}");
    let dry = env.lago(&["-f", "json", "template", "prune", "--keep", "1", "--dry-run"]).ok();
    assert!(dry.stdout.contains("would_remove"), "{}", dry.stdout);
    assert!(env.root().join("repo/tiny-v2.qcow2").exists(), "a dry run removes nothing");
    let pruned = env.lago(&["-f", "json", "template", "prune", "--keep", "1"]).ok();
    let json: serde_json::Value = serde_json::from_str(&pruned.stdout).unwrap();
    let removed: Vec<&str> =
        json["removed"].as_array().unwrap().iter().map(|r| r["version"].as_str().unwrap()).collect();
    assert_eq!(removed, ["v3", "v2"]);
    assert_eq!(json["kept_in_use"][0]["version"], "v1");
    insta::assert_snapshot!("template_prune_in_use", pruned.stderr);
    let left: Vec<String> = {
        let listed: serde_json::Value =
            serde_json::from_str(&env.lago(&["-f", "json", "template", "list"]).ok().stdout).unwrap();
        listed["templates"]["tiny"].as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(left, ["v1", "v4"]);
    assert!(!env.root().join("repo/tiny-v2.qcow2").exists() && env.root().join("store/local:tiny:v1").exists());
    // Once the environment is destroyed, nothing holds v1 any more.
    env.lago(&["destroy", "-y"]).ok();
    let again: serde_json::Value =
        serde_json::from_str(&env.lago(&["-f", "json", "template", "prune", "--keep", "1"]).ok().stdout).unwrap();
    assert_eq!(again["removed"][0]["version"], "v1", "{again}");
    assert!(!env.root().join("store/local:tiny:v1").exists());
}

/// A 1 MiB raw disk whose MBR lists one Linux partition.
fn mbr_disk() -> Vec<u8> {
    let mut disk = vec![0u8; 1 << 20];
    disk[446 + 4] = 0x83;
    disk[446 + 8] = 1;
    disk[446 + 12] = 0x07;
    disk[510] = 0x55;
    disk[511] = 0xAA;
    disk
}

#[test]
fn import_publishes_an_image_and_refuses_what_cannot_boot() {
    let env = TestEnv::new();
    let disk = env.work().join("mine.raw");
    std::fs::write(&disk, mbr_disk()).unwrap();
    let run =
        env.lago(&["-f", "json", "template", "import", "mine.raw", "--name", "mine", "--distro", "fedora40"]).ok();
    let out: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!((out["name"].as_str(), out["version"].as_str()), (Some("mine"), Some("v1")), "{out}");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(env.root().join("repo/mine-v1.qcow2.metadata")).unwrap())
            .unwrap();
    assert_eq!((meta["bootstrap"].as_str(), meta["distro"].as_str()), (Some("cloud-init"), Some("fedora40")));
    assert_eq!((meta["partition-table"].as_str(), meta["source-format"].as_str()), (Some("mbr"), Some("raw")));
    let info = std::process::Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(env.root().join("repo/mine-v1.qcow2"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&info.stdout).contains("\"format\": \"qcow2\""));
    let second = env.lago(&["-f", "json", "template", "import", "mine.raw", "--name", "mine"]).ok();
    assert!(second.stdout.contains("\"v2\""), "{}", second.stdout);
    insta::assert_snapshot!(
        "template_import_existing_version",
        env.lago(&["template", "import", "mine.raw", "--name", "mine", "--version", "v1"]).render()
    );

    std::fs::write(env.work().join("corrupt.qcow2"), b"QFI\xfb\0\0\0\x03garbage that is no qcow2 header").unwrap();
    let corrupt = env.lago(&["template", "import", "corrupt.qcow2", "--name", "bad"]);
    assert_eq!(corrupt.code, 2, "{}", corrupt.stderr);
    assert!(
        corrupt.stderr.contains("is not an image qemu-img can read") && corrupt.stderr.contains("qemu-img"),
        "{}",
        corrupt.stderr
    );
    std::fs::write(env.work().join("blank.raw"), vec![0u8; 1 << 20]).unwrap();
    insta::assert_snapshot!(
        "template_import_not_bootable",
        env.lago(&["template", "import", "blank.raw", "--name", "blank"]).render()
    );
    insta::assert_snapshot!(
        "template_import_bad_name",
        env.lago(&["template", "import", "mine.raw", "--name", "a:b"]).render()
    );
    let leftovers: Vec<String> = std::fs::read_dir(env.root().join("repo"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && !n.ends_with(".lock"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let listed: serde_json::Value =
        serde_json::from_str(&env.lago(&["-f", "json", "template", "list"]).ok().stdout).unwrap();
    assert_eq!(listed["templates"].as_object().unwrap().keys().collect::<Vec<_>>(), ["mine"]);
}
