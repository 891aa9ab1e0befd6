//! Interrupted and concurrent commands on real VMs: `start` stopped by SIGINT and killed by
//! SIGKILL, `start` and `destroy` at once, `snapshot` and `revert` at once, an interrupted
//! `export`, an interrupted and a killed `template build`. Each ends with what the next command
//! finds, and with nothing left after `destroy`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::lab::Lab;
use crate::{shared_dir, tiny_repo};

const THREE_VMS: &str = "\
base: &base
  memory: 256
  disks: [{template_name: tiny, type: template, name: root, dev: vda}]
domains:
  vm01: {<<: *base, nics: [{net: lab}]}
  vm02: {<<: *base, nics: [{net: lab}]}
  vm03: {<<: *base, nics: [{net: lab}]}
nets:
  lab: {management: true}
";

/// `lago` of a lab, started in the background.
fn spawn(lab: &Lab, args: &[&str]) -> Child {
    spawn_in(lab.home.path(), args, &lab.env)
}

fn spawn_in(home: &Path, args: &[&str], env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lago"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("CI", "true")
        .env("LAGO__TEMPLATE__BUILD_CACHE", shared_dir().join("cache"))
        .env("LAGO__INIT__TEMPLATE_STORE", home.join("store"))
        .current_dir(home)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

fn kill(child: &Child, sig: Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
}

/// Waits for a child and returns (exit code, stderr).
fn finish(child: Child) -> (Option<i32>, String) {
    let out = child.wait_with_output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Polls `ready` every 100 ms for up to `secs` seconds.
fn wait_for(secs: u64, ready: impl Fn() -> bool) -> bool {
    let until = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < until {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ready()
}

/// Processes that own a pid file of the prefix (qemu's `-pidfile`).
fn owners(prefix: &Path) -> Vec<String> {
    processes_of(prefix).into_iter().filter(|p| !p.starts_with("switch-")).collect()
}

/// The pid files of every live process of the prefix: its qemus and its networks' switches.
fn processes_of(prefix: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(prefix.join("run")) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
        .filter(|e| lago::prefix::running_pid(&e.path()).is_some())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Whether any process's command line names `path`.
fn anything_names(path: &Path) -> bool {
    let needle = path.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .any(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle)))
}

#[test]
fn start_interrupted_then_killed_then_resumed() {
    let lab = Lab::new(THREE_VMS);
    lab.ok(&["init"]);
    let prefix = lab.home.path().join(".lago/default");

    // SIGINT while the VMs boot: what this start started is stopped again.
    let start = spawn(&lab, &["start"]);
    assert!(wait_for(60, || owners(&prefix).len() == 3), "the three VMs should be booting: {:?}", owners(&prefix));
    kill(&start, Signal::SIGINT);
    let (code, stderr) = finish(start);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("Interrupted by SIGINT"), "{stderr}");
    assert!(processes_of(&prefix).is_empty(), "left running: {:?}", processes_of(&prefix));
    for vm in ["vm01", "vm02", "vm03"] {
        assert_eq!(lab.status()["Prefix"]["VMs"][vm]["status"], "down");
    }

    // SIGKILL while they boot: they keep running; the next start finds their SSH ports (read
    // back from qemu when the killed start had not saved them yet) and waits for them.
    let start = spawn(&lab, &["start"]);
    assert!(wait_for(60, || owners(&prefix).len() == 3), "the three VMs should be booting again");
    kill(&start, Signal::SIGKILL);
    finish(start);
    assert_eq!(owners(&prefix).len(), 3, "the VMs of a killed start keep running");
    lab.ok(&["start"]);
    for vm in ["vm01", "vm02", "vm03"] {
        assert_eq!(lab.shell(vm, "hostname"), (0, vm.to_owned()));
    }
    lab.ok(&["destroy", "--yes"]);
    assert!(!lab.home.path().join(".lago").exists());
    assert!(!anything_names(&prefix), "a process still names the destroyed prefix");
}

#[test]
fn start_and_destroy_at_once() {
    let lab = Lab::new(THREE_VMS);
    lab.ok(&["init"]);
    let prefix = lab.home.path().join(".lago/default");
    let start = spawn(&lab, &["start"]);
    std::thread::sleep(Duration::from_secs(2));
    let destroy = spawn(&lab, &["destroy", "--yes"]);
    let (start_code, start_err) = finish(start);
    let (destroy_code, destroy_err) = finish(destroy);
    assert_eq!(start_code, Some(0), "{start_err}");
    assert_eq!(destroy_code, Some(0), "{destroy_err}");
    assert!(destroy_err.contains("Waiting for the lock of prefix"), "{destroy_err}");
    assert!(destroy_err.contains("(lago start)"), "{destroy_err}");
    assert!(!lab.home.path().join(".lago").exists());
    assert!(!anything_names(&prefix));
}

#[test]
fn two_starts_at_once() {
    let lab = Lab::new(THREE_VMS);
    lab.ok(&["init"]);
    let prefix = lab.home.path().join(".lago/default");
    let (a, b) = (spawn(&lab, &["start"]), spawn(&lab, &["start"]));
    let ((a_code, a_err), (b_code, b_err)) = (finish(a), finish(b));
    assert_eq!((a_code, b_code), (Some(0), Some(0)), "{a_err}\n{b_err}");
    // One started the VMs, the other waited for it and found them running: one qemu each, and
    // one switch for the network.
    assert_eq!(owners(&prefix).len(), 3);
    let with_pid_file = |kind: &str| {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                    let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                    let pid_file = args.iter().any(|a| {
                        a.starts_with(prefix.join("run").to_str().unwrap().as_bytes()) && a.ends_with(b".pid")
                    });
                    let switch = args.iter().any(|a| *a == b"__switch");
                    pid_file && (switch == (kind == "switch"))
                })
            })
            .count()
    };
    assert_eq!((with_pid_file("qemu"), with_pid_file("switch")), (3, 1));
    for vm in ["vm01", "vm02", "vm03"] {
        assert_eq!(lab.shell(vm, "hostname"), (0, vm.to_owned()));
    }
}

/// A workdir whose path is too long for the VMs' Unix sockets.
#[test]
fn deep_prefixes_keep_sockets_in_the_runtime_directory() {
    let lab = Lab::new(
        &THREE_VMS.replace("  vm02: {<<: *base, nics: [{net: lab}]}\n  vm03: {<<: *base, nics: [{net: lab}]}\n", ""),
    );
    let deep = lab
        .home
        .path()
        .join("a-directory-with-a-long-name/another-directory-with-a-long-name/and-a-third-one-for-good-measure");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::copy(lab.home.path().join("LagoInitFile"), deep.join("LagoInitFile")).unwrap();
    let prefix = deep.join(".lago/default");
    assert!(prefix.join("run/vm01.console").as_os_str().len() > 108);
    let run = |args: &[&str]| {
        let out = crate::lago(&deep, args, &lab.env);
        assert!(out.status.success(), "lago {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    run(&["init"]);
    run(&["start"]);
    assert_eq!(run(&["shell", "vm01", "hostname"]), "vm01");
    run(&["snapshot", "s1"]);
    let qmp = lago::prefix::socket_path(&prefix, "vm01.qmp");
    assert!(qmp.starts_with(runtime_base()), "{}", qmp.display());
    assert!(qmp.exists(), "{}", qmp.display());
    // A copy of the workdir meets no socket (the original's users `shutil.copytree` it).
    let copy = lab.home.path().join("copy");
    let cp = Command::new("cp").arg("-r").arg(deep.join(".lago")).arg(&copy).output().unwrap();
    assert!(cp.status.success(), "{}", String::from_utf8_lossy(&cp.stderr));
    run(&["destroy", "--yes"]);
    assert!(!qmp.parent().unwrap().exists(), "the runtime directory is removed with the prefix");
}

/// Where this user's runtime directories are.
fn runtime_base() -> std::path::PathBuf {
    if nix::unistd::geteuid().is_root() {
        "/run/lago".into()
    } else {
        std::env::var_os("XDG_RUNTIME_DIR")
            .map(|d| std::path::PathBuf::from(d).join("lago"))
            .unwrap_or_else(|| format!("/tmp/lago-{}", nix::unistd::geteuid()).into())
    }
}

#[test]
fn snapshot_and_revert_at_once() {
    let lab = Lab::new(
        &THREE_VMS.replace("  vm02: {<<: *base, nics: [{net: lab}]}\n  vm03: {<<: *base, nics: [{net: lab}]}\n", ""),
    );
    lab.ok(&["init"]);
    lab.ok(&["start"]);
    lab.shell("vm01", "echo one > /root/f");
    lab.ok(&["snapshot", "s1"]);
    lab.shell("vm01", "echo two > /root/f");
    let snap = spawn(&lab, &["snapshot", "s2"]);
    let revert = spawn(&lab, &["revert", "s1"]);
    let (snap_code, snap_err) = finish(snap);
    let (revert_code, revert_err) = finish(revert);
    assert_eq!(snap_code, Some(0), "{snap_err}");
    assert_eq!(revert_code, Some(0), "{revert_err}");
    let listed: serde_json::Value = serde_json::from_str(&lab.ok(&["-f", "json", "snapshot", "--list"])).unwrap();
    let names: Vec<&String> = listed["vm01"].as_object().unwrap().keys().collect();
    assert_eq!(names.len(), 2, "{listed}");
    // Whichever ran first, the file is one of the two states, whole.
    let f = lab.shell("vm01", "cat /root/f").1;
    assert!(f == "one" || f == "two", "{f}");
}

#[test]
fn export_interrupted_keeps_the_previous_export() {
    let lab = Lab::new(
        "domains:\n  vm01:\n    memory: 256\n    nics: [{net: lab}]\n    disks:\n      - {template_name: tiny, type: template, name: root, dev: vda}\n      - {type: empty, name: data, size: 2G, dev: vdb}\nnets:\n  lab: {management: true}\n",
    );
    lab.ok(&["init"]);
    lab.ok(&["start"]);
    // Data that does not compress, so that a compressed export takes a while.
    assert_eq!(lab.shell("vm01", "dd if=/dev/urandom of=/dev/vdb bs=1M count=192 2>/dev/null; sync").0, 0);
    lab.ok(&["stop"]);
    lab.ok(&["export", "--standalone", "--compress", "-d", "out"]);
    let out = lab.home.path().join("out");
    let before: Vec<(String, Vec<u8>)> = read_all(&out);
    let export = spawn(&lab, &["export", "--standalone", "--compress", "-d", "out"]);
    std::thread::sleep(Duration::from_millis(700));
    kill(&export, Signal::SIGINT);
    let (code, stderr) = finish(export);
    assert_eq!(code, Some(130), "the export finished before the signal: {stderr}");
    let after = read_all(&out);
    assert_eq!(
        before.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        after.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "no partial file is left"
    );
    assert!(before == after, "the previous export changed");
    // Its hash still matches its disk.
    let disk = out.join("vm01_data.qcow2");
    let hash = std::fs::read_to_string(out.join("vm01_data.qcow2.hash")).unwrap();
    assert_eq!(crate::run("sha1sum", &[disk.to_str().unwrap()]).split_whitespace().next(), Some(hash.trim()));
    // Killed: its temporary files stay beside the intact export, and the next export removes them.
    let export = spawn(&lab, &["export", "--standalone", "--compress", "-d", "out"]);
    std::thread::sleep(Duration::from_millis(700));
    kill(&export, Signal::SIGKILL);
    finish(export);
    let left: Vec<String> = read_all(&out).into_iter().map(|(n, _)| n).filter(|n| n.contains(".export-")).collect();
    assert!(!left.is_empty(), "the kill landed after the export");
    let again = lab.lago(&["export", "--standalone", "--compress", "-d", "out"]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(stderr.contains("left by an interrupted `lago export`"), "{stderr}");
    assert!(!read_all(&out).iter().any(|(n, _)| n.contains(".export-")));
}

fn read_all(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn template_build_interrupted_then_killed_then_swept() {
    let home = tempfile::tempdir().unwrap();
    let repo = home.path().join("repo");
    // A repository with one published version, and a package cache of its own seeded from the
    // shared one (no second download).
    let shared = tiny_repo();
    std::fs::create_dir_all(&repo).unwrap();
    for e in std::fs::read_dir(&shared).unwrap().flatten() {
        if e.file_type().unwrap().is_file() && !e.file_name().to_string_lossy().ends_with(".lock") {
            std::fs::copy(e.path(), repo.join(e.file_name())).unwrap();
        }
    }
    let cache = home.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    for e in std::fs::read_dir(shared_dir().join("cache")).unwrap().flatten() {
        if e.file_name().to_string_lossy().ends_with(".deb") {
            std::fs::hard_link(e.path(), cache.join(e.file_name())).unwrap();
        }
    }
    let env = [("LAGO__TEMPLATE__BUILD_CACHE", cache.display().to_string())];
    let metadata = std::fs::read(repo.join("repo.metadata")).unwrap();
    let build = |sig: Signal| {
        // Forced: the inputs are the shared build's, which would end the build at once.
        let child = spawn_in(
            home.path(),
            &["template", "build", "tiny", "--force", "--repo-dir", repo.to_str().unwrap()],
            &env,
        );
        std::thread::sleep(Duration::from_secs(2));
        kill(&child, sig);
        finish(child)
    };
    let (code, stderr) = build(Signal::SIGINT);
    assert_eq!(code, Some(130), "{stderr}");
    assert_eq!(std::fs::read(repo.join("repo.metadata")).unwrap(), metadata, "the repository changed");
    let stray = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".build-") || n.ends_with(".tmp"))
            .collect()
    };
    assert!(stray(&repo).is_empty() && stray(&cache).is_empty(), "{:?} {:?}", stray(&repo), stray(&cache));

    let (code, _) = build(Signal::SIGKILL);
    assert_eq!(code, None);
    assert!(!stray(&cache).is_empty(), "a killed build leaves its work directory");
    let out =
        crate::lago(home.path(), &["template", "build", "tiny", "--force", "--repo-dir", repo.to_str().unwrap()], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("left by an interrupted template build"), "{stderr}");
    // Built again with nothing changed, it publishes nothing, and says so.
    let out = crate::lago(
        home.path(),
        &["-f", "json", "template", "build", "tiny", "--repo-dir", repo.to_str().unwrap()],
        &env,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("nothing changed since v2") && stderr.contains("nothing was published"), "{stderr}");
    let built: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((built["version"].as_str(), built["published"].as_bool()), (Some("v2"), Some(false)), "{built}");
    assert!(stray(&repo).is_empty() && stray(&cache).is_empty(), "{:?} {:?}", stray(&repo), stray(&cache));
    let listed = crate::lago(
        home.path(),
        &["-f", "json", "template", "list"],
        &[("LAGO__INIT__TEMPLATE_REPO_PATH", repo.join("repo.metadata").display().to_string())],
    );
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed["templates"]["tiny"].as_object().unwrap().len(), 2, "{listed}");
}
