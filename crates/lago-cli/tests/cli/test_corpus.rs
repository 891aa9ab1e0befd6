//! Init files written for the original Lago load as they are: the original's own test fixtures
//! and a dozen init files of oVirt's system tests (`tests/fixtures/init-corpus`, origins in its
//! `ORIGINS.md`), each initialized with `--skip-bootstrap` (no VM started) and destroyed.

use std::path::{Path, PathBuf};

use crate::common::TestEnv;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/init-corpus")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn every_init_file_of_the_corpus_initializes() {
    let env = TestEnv::with_repo();
    let copy = env.root().join("corpus");
    copy_tree(&corpus(), &copy);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&copy)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n != "common"))
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 18, "the corpus has {} init files", dirs.len());
    let mut failed = Vec::new();
    for dir in &dirs {
        let file = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("LagoInitFile")))
            .unwrap();
        let init = env.lago_in(dir, &["init", "--skip-bootstrap", &file.display().to_string()]);
        if init.code != 0 {
            failed.push(format!("{}:\n{}", dir.display(), init.stderr));
            continue;
        }
        // No unknown key of theirs is worth an error, and the VMs are all there.
        let status = env.lago_in(dir, &["--out-format", "json", "status"]).ok();
        let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
        assert!(status["Prefix"]["VMs"].as_object().is_some_and(|v| !v.is_empty()), "{}", dir.display());
        env.lago_in(dir, &["destroy", "--yes"]).ok();
    }
    assert!(failed.is_empty(), "init failed for:\n{}", failed.join("\n"));
}
