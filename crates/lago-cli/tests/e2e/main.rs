//! End-to-end tests: the `tiny` template built from Debian packages, checked, and booted with
//! qemu under TCG. They need `apt-get` (with package lists), `qemu-system-x86_64`, `qemu-img`,
//! mtools and e2fsprogs, which `scripts/setup.sh --tests` installs; a missing tool fails the test.

#![allow(clippy::print_stderr, reason = "tests report measured boot times on stderr")]

mod capture;
#[cfg(feature = "slow")]
mod debian;
mod env;
mod faults;
mod fork;
mod hostleg;
mod interrupts;
mod lab;
mod libvirt;
#[cfg(feature = "openstack-cloud")]
mod openstack;
mod ops;
mod tiny;
mod wait;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The directory shared by every e2e test of this build (package cache, built template).
pub fn shared_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("lago-e2e");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Builds `tiny` once per target directory and recipe (under a lock, so parallel tests wait for
/// one build) and returns the repository directory.
pub fn tiny_repo() -> PathBuf {
    built_repo("tiny", "repo")
}

/// A fingerprint of the templates' recipes (lago's `template` sources): a changed recipe gets a
/// repository of its own rather than an old build.
fn recipe_fingerprint() -> String {
    use std::hash::{Hash, Hasher};
    let mut files = Vec::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../lago/src/template")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() { dirs.push(path) } else { files.push(path) }
        }
    }
    files.sort();
    let mut h = std::hash::DefaultHasher::new();
    for f in files {
        f.file_name().hash(&mut h);
        std::fs::read(&f).unwrap().hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

/// Builds `template` once per target directory and recipe into the repository `shared/<dir>-<fingerprint>`.
pub fn built_repo(template: &str, dir: &str) -> PathBuf {
    let shared = shared_dir();
    let dir = &format!("{dir}-{}", &recipe_fingerprint()[..8]);
    let repo = shared.join(dir);
    let lock = std::fs::File::create(shared.join(format!("{dir}.lock"))).unwrap();
    lock.lock().unwrap();
    if !repo.join("repo.metadata").is_file() {
        let out = lago(&shared, &["template", "build", template, "--repo-dir", repo.to_str().unwrap()], &[]);
        assert!(out.status.success(), "template build failed:\n{}", String::from_utf8_lossy(&out.stderr));
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    repo
}

/// Runs the `lago` binary with a clean environment whose store and caches are under `home`.
pub fn lago(home: &Path, args: &[&str], extra_env: &[(&str, String)]) -> Output {
    lago_command(home, args, extra_env, None).output().unwrap()
}

/// The `lago` command of [`lago`], run in the network namespace `netns` when given.
pub fn lago_command(home: &Path, args: &[&str], extra_env: &[(&str, String)], netns: Option<&str>) -> Command {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_lago")]);
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_lago")),
    };
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("CI", "true")
        .env("LAGO__TEMPLATE__BUILD_CACHE", shared_dir().join("cache"))
        .env("LAGO__INIT__TEMPLATE_STORE", home.join("store"))
        .current_dir(home)
        .args(args);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd
}

/// Quotes one word for `sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs a host tool and returns its stdout; failure shows its stderr.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(out.status.success(), "{program} {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
