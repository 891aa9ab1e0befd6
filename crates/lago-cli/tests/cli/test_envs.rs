//! `lago envs`: the host's register of environments, listed and swept (no VM booted: prefixes
//! made by `init` only).

use std::path::PathBuf;

use crate::common::TestEnv;

const INIT: &str = "domains:\n  vm01:\n    nics: [{net: n}]\n    disks: [{template_name: tiny, type: template, name: root}]\nnets:\n  n: {}\n";

fn register(env: &TestEnv) -> PathBuf {
    env.root().join("home/.local/state/lago/environments.json")
}

/// Makes the register's entries `ages` seconds old, in the register's order, so that ages print
/// the same in every run.
fn age_entries(env: &TestEnv, ages: &[u64]) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut entries: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(register(env)).unwrap()).unwrap();
    assert_eq!(entries.len(), ages.len(), "{entries:?}");
    for (e, age) in entries.iter_mut().zip(ages) {
        e["created"] = serde_json::json!(now - age);
    }
    std::fs::write(register(env), serde_json::to_string(&entries).unwrap()).unwrap();
}

/// The output with the user's name (who made the environments) replaced.
fn normalized(text: &str) -> String {
    let user = nix::unistd::User::from_uid(nix::unistd::getuid()).unwrap().unwrap().name;
    text.replace(&format!("{user}: "), "[USER]: ")
}

/// `lago envs`'s table, its columns checked to be aligned, then normalized with each run of
/// spaces between columns made two (the temporary directory's length sets the first's width).
fn table(env: &TestEnv) -> String {
    let out = env.command(&env.work(), &["envs"]).output().unwrap();
    assert!(out.status.success());
    let raw = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = raw.lines().collect();
    let starts = |line: &str| -> Vec<usize> {
        let b = line.as_bytes();
        (0..b.len()).filter(|&i| b[i] != b' ' && i >= 2 && &b[i - 2..i] == b"  ").collect()
    };
    let heading = starts(lines[0]);
    assert_eq!(heading.len(), 5, "{raw}");
    for line in &lines[1..] {
        let cols = starts(line);
        assert!(heading.iter().all(|h| cols.contains(h)), "not aligned:\n{raw}");
    }
    let mut out = String::new();
    for line in normalized(&env.normalize(&raw)).lines() {
        let words: Vec<&str> = line.split("  ").filter(|w| !w.is_empty()).map(str::trim).collect();
        out.push_str(&words.join("  "));
        out.push('\n');
    }
    out
}

#[test]
fn lists_the_environments_of_init_and_prunes_those_removed_by_hand() {
    let env = TestEnv::with_repo();
    env.write("LagoInitFile", INIT);
    assert_eq!(env.lago(&["envs"]).ok().render(), "[exit code: 0]", "no register yet: nothing");
    env.lago(&["init"]).ok();
    env.lago(&["-P", "other", "init"]).ok();
    let elsewhere = env.root().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    env.write("elsewhere.yaml", INIT);
    env.lago(&["init", "--workdir", "../elsewhere/wd", "elsewhere.yaml"]).ok();
    age_entries(&env, &[90_000, 7_200, 300]);
    insta::assert_snapshot!("envs_table", table(&env));
    let json = env.lago(&["-f", "json", "envs"]).ok();
    let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 3);
    let first = &rows[0];
    assert_eq!(first["path"], "$TEST/work/.lago/default");
    assert_eq!(first["workdir"], "$TEST/work/.lago");
    assert_eq!(first["prefix"], "default");
    assert_eq!(first["provider"], "local-qemu");
    assert_eq!(first["state"], "stopped");
    assert_eq!(first["age"], "1d01h");
    assert!(first["age_seconds"].as_u64().unwrap() >= 90_000);
    assert!(first["created"].as_str().unwrap().ends_with('Z'), "{first}");
    assert!(normalized(first["kept_by"].as_str().unwrap()) == "[USER]: lago init", "{first}");
    let yaml = env.lago(&["-f", "yaml", "envs"]).ok();
    assert!(yaml.stdout.contains("prefix: other"), "{}", yaml.stdout);
    // A prefix removed without lago: listed once as gone, then taken off the register.
    std::fs::remove_dir_all(env.work().join(".lago/other")).unwrap();
    insta::assert_snapshot!("envs_gone", table(&env));
    let run = env.lago(&["envs"]).ok();
    assert!(!run.stdout.contains("other"), "{}", run.stdout);
    // `lago destroy` takes its environment off the register.
    env.lago(&["destroy", "--yes"]).ok();
    let left: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(register(&env)).unwrap()).unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["prefix"], format!("{}/wd/default", elsewhere.display()));
    // So does `lago destroy --all-prefixes`, for each prefix of the workdir.
    env.lago(&["--workdir", "../elsewhere/wd", "destroy", "--yes", "--all-prefixes"]).ok();
    assert_eq!(std::fs::read_to_string(register(&env)).unwrap().trim(), "[]");
}

#[test]
fn destroys_those_older_than_a_duration() {
    let env = TestEnv::with_repo();
    env.write("LagoInitFile", INIT);
    env.lago(&["init"]).ok();
    env.lago(&["-P", "young", "init"]).ok();
    env.lago(&["-P", "gone", "init"]).ok();
    age_entries(&env, &[7_200, 60, 10_000]);
    std::fs::remove_dir_all(env.work().join(".lago/gone")).unwrap();
    let run = env.lago(&["envs", "--destroy-older-than", "1h"]).ok();
    insta::assert_snapshot!("envs_destroy_older", normalized(&run.render()));
    assert!(!env.work().join(".lago/default").exists());
    assert!(env.work().join(".lago/young").is_dir());
    // `current` followed the prefix left, as after `lago destroy`.
    assert_eq!(std::fs::read_link(env.work().join(".lago/current")).unwrap().to_str(), Some("young"));
    let run = env.lago(&["-f", "json", "envs", "--destroy-older-than", "0s"]).ok();
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(rows[0]["prefix"], "young");
    assert_eq!(rows[0]["action"], "destroyed");
    assert!(!env.work().join(".lago").exists(), "its last prefix took the workdir with it");
    assert_eq!(env.lago(&["envs"]).ok().render(), "[exit code: 0]");
}

#[test]
fn a_bad_duration_and_a_damaged_register() {
    let env = TestEnv::new();
    let run = env.lago(&["envs", "--destroy-older-than", "2 hours"]);
    insta::assert_snapshot!("envs_bad_duration", run.render());
    std::fs::create_dir_all(register(&env).parent().unwrap()).unwrap();
    std::fs::write(register(&env), "[{\"prefix\": 1}]").unwrap();
    let run = env.lago(&["envs"]);
    insta::assert_snapshot!("envs_damaged_register", run.render());
}
