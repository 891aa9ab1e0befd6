//! Interrupts, concurrent commands, damaged state and hostile input, as a user hits them: every
//! case ends with a clear error (exit code 2 for the user's input) and nothing half-made.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::TestEnv;

const ONE_VM: &str = "domains:\n  vm01:\n    nics: [{net: n}]\n    disks: [{template_name: tiny, type: template, name: root}]\nnets:\n  n: {}\n";

/// An init file whose `init` takes a while: many VMs, each with a template disk and two big
/// empty disks (lago preallocates their metadata, as the original did: about 0.8 s per 200G).
fn many_vms(count: usize, size: &str) -> String {
    let mut text = String::from("domains:\n");
    for i in 0..count {
        text.push_str(&format!(
            "  vm{i:02}:\n    nics: [{{net: n}}]\n    disks:\n      - {{template_name: tiny, type: template, name: root}}\n      - {{type: empty, name: a, size: {size}}}\n      - {{type: empty, name: b, size: {size}}}\n"
        ));
    }
    text.push_str("nets:\n  n: {}\n");
    text
}

/// Every entry under `dir`, recursively, sorted (lock files included).
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

fn signal(child: &std::process::Child, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig);
}

#[test]
fn init_interrupted_at_any_point_leaves_the_old_state_or_the_new_one() {
    let env = TestEnv::with_repo();
    env.write("LagoInitFile", &many_vms(12, "200G"));
    let lago_dir = env.work().join(".lago");
    let mut outcomes = Vec::new();
    for (i, delay) in [5u64, 40, 120, 250, 500, 1000].into_iter().enumerate() {
        let sig = if i % 2 == 0 { nix::sys::signal::Signal::SIGINT } else { nix::sys::signal::Signal::SIGTERM };
        let child = env.command(&env.work(), &["init"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        signal(&child, sig);
        let out = child.wait_with_output().unwrap();
        let code = out.status.code();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if code == Some(0) {
            // It finished first: a whole prefix.
            assert!(lago_dir.join("default/initialized").is_file(), "{stderr}");
            outcomes.push("complete");
            env.lago(&["destroy", "--yes"]).ok();
        } else {
            // Either lago caught the signal, or it came before lago could install its handler
            // (while the dynamic loader was still at work) and killed it outright.
            use std::os::unix::process::ExitStatusExt;
            if out.status.signal() != Some(sig as i32) {
                assert_eq!(code, Some(128 + sig as i32), "after {delay} ms: {stderr}");
                assert!(stderr.contains("Interrupted by SIG"), "{stderr}");
            }
            // Nothing: no prefix, no staging directory, no workdir (this init made it).
            assert!(!lago_dir.exists(), "after {delay} ms: {:?}", listing(&lago_dir));
            outcomes.push("nothing");
        }
        let store: Vec<String> = listing(&env.root().join("store"));
        assert!(!store.iter().any(|n| n.contains("tmp")), "{store:?}");
    }
    assert!(outcomes.contains(&"nothing"), "no init was interrupted: {outcomes:?}");
}

#[test]
fn init_killed_is_swept_by_the_next_command() {
    let env = TestEnv::with_repo();
    env.write("LagoInitFile", &many_vms(6, "100G"));
    let lago_dir = env.work().join(".lago");
    let mut swept = false;
    for delay in [60u64, 150, 300] {
        let mut child =
            env.command(&env.work(), &["init"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        signal(&child, nix::sys::signal::Signal::SIGKILL);
        child.wait().unwrap();
        let staging: Vec<String> = listing(&lago_dir).into_iter().filter(|n| n.starts_with(".default.init-")).collect();
        // The next init removes what the killed one left, says so, and succeeds.
        let run = env.lago(&["init"]);
        if lago_dir.join("default/initialized").is_file() && run.code == 2 {
            // The killed init had finished: its prefix is whole and the new init refuses.
            assert!(run.stderr.contains("already exists"), "{}", run.render());
        } else {
            assert_eq!(run.code, 0, "{}", run.render());
            if !staging.is_empty() {
                swept = true;
                assert!(
                    run.stderr.contains("left by an interrupted `lago init` of prefix default"),
                    "{}",
                    run.render()
                );
            }
        }
        assert!(!listing(&lago_dir).iter().any(|n| n.contains(".init-")), "{:?}", listing(&lago_dir));
        env.lago(&["status"]).ok();
        env.lago(&["destroy", "--yes"]).ok();
        assert!(!lago_dir.exists(), "{:?}", listing(&lago_dir));
    }
    assert!(swept, "no kill landed while the staging directory existed");
}

#[test]
fn two_inits_of_one_prefix_at_once() {
    let env = TestEnv::with_repo();
    env.write("LagoInitFile", &many_vms(4, "1G"));
    let spawn = || env.command(&env.work(), &["init"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut codes = [a.status.code().unwrap(), b.status.code().unwrap()];
    codes.sort();
    assert_eq!(codes, [0, 2], "{}\n{}", String::from_utf8_lossy(&a.stderr), String::from_utf8_lossy(&b.stderr));
    let loser = if a.status.success() { &b } else { &a };
    assert!(String::from_utf8_lossy(&loser.stderr).contains("Prefix with name default already exists"));
    let top: Vec<String> = listing(&env.work().join(".lago")).into_iter().filter(|n| !n.contains('/')).collect();
    assert_eq!(top, [".default.lock", "current", "default"]);
}

#[test]
fn prefix_names_that_are_not_names_are_refused() {
    let env = TestEnv::with_repo();
    env.write("LagoInitFile", ONE_VM);
    for name in ["../escape", "a/b", "", ".hidden", "x".repeat(64).as_str()] {
        let run = env.lago(&["-P", name, "init"]);
        assert_eq!(run.code, 2, "{name:?}: {}", run.render());
        assert!(run.stderr.contains("Invalid prefix name"), "{name:?}: {}", run.render());
    }
    assert!(!env.work().join(".lago").exists());
    assert!(!env.work().join("escape").exists());
}

#[test]
fn hostile_environment_and_repository_paths() {
    let env = TestEnv::with_repo();
    env.write("LagoInitFile", ONE_VM);
    // A variable that is not UTF-8 is not lago's business.
    let out = env.command(&env.work(), &["status"]).env("FOO", std::ffi::OsStr::from_bytes(b"\xff")).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unable to find workdir"));
    // /dev/zero is refused at once instead of read forever; a FIFO does not block.
    let fifo = env.root().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for repo in ["/dev/zero", fifo.to_str().unwrap()] {
        let started = std::time::Instant::now();
        let run = env.lago(&["init", "--template-repo-path", repo]);
        assert_eq!(run.code, 2, "{repo}: {}", run.render());
        assert!(run.stderr.contains("not a regular file"), "{repo}: {}", run.render());
        assert!(started.elapsed() < Duration::from_secs(20), "{repo}");
    }
    // A repository file that cannot be read is an error, never an empty repository.
    std::fs::create_dir_all(env.root().join("dir/repo.metadata")).unwrap();
    let run = env.lago(&["init", "--template-repo-path", env.root().join("dir/repo.metadata").to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.render());
    // `templates` of the wrong shape.
    let bad = env.root().join("bad.json");
    std::fs::write(&bad, r#"{"name": "r", "sources": {}, "templates": ["tiny"]}"#).unwrap();
    let run = env.lago(&["init", "--template-repo-path", bad.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.render());
    assert!(run.stderr.contains("is not a valid repo.metadata"), "{}", run.render());
    assert!(!env.work().join(".lago").exists());
    // Bad configuration values, wherever they come from.
    let mut bad_env = TestEnv::with_repo();
    bad_env.env.push(("LAGO_LOGLEVEL".into(), "shouty".into()));
    let run = bad_env.lago(&["status"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("expected one of info, debug, error, warning (from environment variable LAGO_LOGLEVEL)"),
        "{}",
        run.render()
    );
}

use std::os::unix::ffi::OsStrExt;

#[test]
fn damaged_state_names_the_file_and_the_way_out() {
    let env = TestEnv::initialized(ONE_VM);
    let prefix = env.work().join(".lago/default");
    // A state of the right syntax but the wrong shape is not taken for an empty environment.
    std::fs::write(prefix.join("virt/env"), "{}").unwrap();
    let run = env.lago(&["status"]);
    assert_eq!(run.code, 2, "{}", run.render());
    assert!(
        run.stderr.contains("virt/env is not valid lago state: expected {\"nets\": [names], \"vms\": [names]}"),
        "{}",
        run.render()
    );
    assert!(run.stderr.contains("Hint: the prefix's state is damaged: `lago destroy`"), "{}", run.render());
    env.lago(&["destroy", "--yes"]).ok();
    assert!(!env.work().join(".lago").exists());

    // A prefix that lost its uuid: destroy still removes it.
    let env = TestEnv::initialized(ONE_VM);
    std::fs::remove_file(env.work().join(".lago/default/uuid")).unwrap();
    assert_eq!(env.lago(&["status"]).code, 2);
    env.lago(&["destroy", "--yes"]).ok();
    assert!(!env.work().join(".lago").exists());

    // A `current` link to nothing: the error says how to get out.
    let env = TestEnv::initialized(ONE_VM);
    env.lago(&["-P", "other", "init"]).ok();
    std::fs::rename(env.work().join(".lago/default"), env.root().join("moved")).unwrap();
    let run = env.lago(&["status"]);
    assert_eq!(run.code, 2, "{}", run.render());
    assert!(run.stderr.contains("is \"default\", which does not exist (known: other)"), "{}", run.render());
    assert!(run.stderr.contains("`lago set-current NAME`"), "{}", run.render());
    env.lago(&["set-current", "other"]).ok();
    env.lago(&["status"]).ok();
}

#[test]
fn a_vm_with_only_a_cdrom_cannot_be_snapshotted() {
    let env = TestEnv::with_repo();
    let iso = env.root().join("boot.iso");
    std::fs::write(&iso, vec![0u8; 1 << 20]).unwrap();
    env.write(
        "LagoInitFile",
        &format!(
            "domains:\n  vm01:\n    nics: [{{net: n}}]\n    disks: [{{type: file, name: cd, path: {}, format: iso, dev: hdc}}]\nnets:\n  n: {{}}\n",
            iso.display()
        ),
    );
    env.lago(&["init"]).ok();
    let run = env.lago(&["snapshot", "s1"]);
    assert_eq!(run.code, 2, "{}", run.render());
    assert!(run.stderr.contains("VM vm01 cannot be snapshotted: it has no disk but CD-ROMs"), "{}", run.render());
}

#[test]
fn a_command_waiting_for_the_lock_names_its_holder() {
    let env = TestEnv::initialized(ONE_VM);
    let lock_file = env.work().join(".lago/.default.lock");
    // Another "lago" holds the lock for two seconds.
    std::fs::write(&lock_file, "4242\nlago start\n").unwrap();
    let mut holder = Command::new("flock").arg(&lock_file).args(["sleep", "2"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let run = env.lago(&["stop"]);
    holder.wait().unwrap();
    assert_eq!(run.code, 0, "{}", run.render());
    assert!(started.elapsed() >= Duration::from_millis(1500), "stop did not wait");
    assert!(run.stderr.contains("Waiting for the lock of prefix"), "{}", run.render());
    assert!(run.stderr.contains("held by pid 4242 (lago start)"), "{}", run.render());
}

#[test]
fn neighbouring_prefixes_do_not_share_processes() {
    let env = TestEnv::initialized(ONE_VM);
    env.lago(&["-P", "default2", "init"]).ok();
    let spawn_owner = |pid_file: &Path| {
        let child = Command::new("tail")
            .args(["-f", "/dev/null"])
            .arg(pid_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if std::fs::read(format!("/proc/{}/cmdline", child.id())).is_ok_and(|c| !c.is_empty()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::fs::write(pid_file, child.id().to_string()).unwrap();
        child
    };
    let lago = env.work().join(".lago");
    let mut one = spawn_owner(&lago.join("default/run/vm01.pid"));
    let mut two = spawn_owner(&lago.join("default2/run/vm01.pid"));
    let status = env.lago(&["-P", "default", "-f", "flat", "status"]).ok().stdout;
    assert!(status.contains("VMs/vm01/status: running"), "{status}");
    env.lago(&["-P", "default", "destroy", "--yes"]).ok();
    assert!(!one.wait().unwrap().success());
    assert!(two.try_wait().unwrap().is_none(), "default2's process was killed by destroying default");
    let status = env.lago(&["-P", "default2", "-f", "flat", "status"]).ok().stdout;
    assert!(status.contains("VMs/vm01/status: running"), "{status}");
    two.kill().unwrap();
    two.wait().unwrap();
}
