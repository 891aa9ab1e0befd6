//! Workdir resolution, cleanup, destroy, plugins.

use crate::common::TestEnv;

const INIT: &str = "domains:\n  vm01:\n    nics: [{net: n}]\n    disks: [{template_name: tiny, type: template, name: root}]\nnets:\n  n: {}\n";

#[test]
fn found_upwards_from_a_subdirectory_and_by_abbreviated_flag() {
    let env = TestEnv::initialized(INIT);
    let deep = env.work().join("x/y");
    std::fs::create_dir_all(&deep).unwrap();
    assert!(env.lago_in(&deep, &["status"]).ok().stdout.contains("[vm01]:"));
    // argparse-style abbreviation, as the original's tests use it.
    assert!(env.lago_in(env.root(), &["--workdir", "work/.lago", "status"]).ok().stdout.contains("[vm01]:"));
}

#[test]
fn cleanup_keeps_uuid_and_removes_initialized() {
    let env = TestEnv::initialized(INIT);
    let run = env.lago(&["cleanup"]).ok();
    insta::assert_snapshot!("cleanup", run.render());
    assert!(env.work().join(".lago/default/uuid").is_file());
    assert!(!env.work().join(".lago/default/initialized").exists());
}

#[test]
fn destroy_prefix_then_workdir() {
    let env = TestEnv::initialized(INIT);
    env.lago(&["-P", "other", "init"]).ok();
    let run = env.lago(&["destroy", "--yes"]).ok();
    insta::assert_snapshot!("destroy_current", run.render());
    assert!(!env.work().join(".lago/default").exists());
    // `current` moved to the remaining prefix.
    assert_eq!(std::fs::read_link(env.work().join(".lago/current")).unwrap().to_str(), Some("other"));
    // From inside a prefix (prefix mode), destroy removes that prefix; the last one takes the
    // workdir with it.
    env.lago_in(&env.work().join(".lago/other"), &["--loglevel", "debug", "--logdepth", "-1", "destroy", "--yes"]).ok();
    assert!(!env.work().join(".lago").exists());
}

#[test]
fn destroy_all_prefixes_and_symlinked_workdir() {
    let env = TestEnv::initialized(INIT);
    env.lago(&["-P", "p2", "init"]).ok();
    std::os::unix::fs::symlink(env.work().join(".lago"), env.work().join("link")).unwrap();
    env.lago(&["--workdir", "link", "destroy", "--yes", "--all-prefixes"]).ok();
    assert!(!env.work().join("link").exists());
    assert!(env.work().join(".lago/p2").is_dir(), "only the symlink goes");
    env.lago(&["destroy", "--yes", "--all-prefixes"]).ok();
    assert!(!env.work().join(".lago").exists());
}

#[test]
fn destroy_asks_and_refuses_without_an_answer() {
    let env = TestEnv::initialized(INIT);
    let out = env.command(&env.work(), &["destroy"]).stdin(std::process::Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(env.work().join(".lago/default").exists());
    // Answers the prompt with `input`.
    let answer = |input: &[u8]| {
        let mut child = env
            .command(&env.work(), &["destroy"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), input).unwrap();
        child.wait().unwrap()
    };
    assert!(answer(b"n\n").success());
    assert!(env.work().join(".lago/default").exists());
    assert!(answer(b"\n").success());
    assert!(!env.work().join(".lago").exists());
}

#[test]
fn destroy_stops_processes_of_the_prefix() {
    let env = TestEnv::initialized(INIT);
    let prefix = env.work().join(".lago/default");
    // A process that owns the VM's pid file, as qemu's `-pidfile` does.
    let mut child = std::process::Command::new("tail")
        .args(["-f", "/dev/null"])
        .arg(prefix.join("run/vm01.pid"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // After a vfork-style spawn, the kernel sets the new command line a moment later.
    for _ in 0..200 {
        if std::fs::read(format!("/proc/{}/cmdline", child.id())).is_ok_and(|c| !c.is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::fs::write(prefix.join("run/vm01.pid"), child.id().to_string()).unwrap();
    let status = env.lago(&["-f", "flat", "status"]).ok().stdout;
    assert!(status.contains("VMs/vm01/status: running"), "{status}");
    assert!(status.contains("Networks/n/status: up"), "{status}");
    env.lago(&["destroy", "--yes"]).ok();
    assert!(!child.wait().unwrap().success());
    assert!(!prefix.exists());
}

#[test]
fn unknown_verb_and_plugins() {
    let mut env = TestEnv::new();
    insta::assert_snapshot!("unknown_verb", env.lago(&["frobnicate"]).render());
    let bin = env.root().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let plugin = bin.join("lago-hello");
    std::fs::write(&plugin, "#!/bin/sh\necho \"hello $*\"\n").unwrap();
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    env.env.retain(|(k, _)| k != "PATH");
    env.env.push(("PATH".into(), path));
    assert_eq!(env.lago(&["hello", "a", "--b"]).ok().stdout, "hello a --b\n");
    // A verb of the original's Python plugins, from the Python that `LAGO_PYTHON` names: it gets
    // the whole command line (global options included), and `lago --help` lists it.
    let python = bin.join("fake-python");
    std::fs::write(
        &python,
        "#!/bin/sh\n[ \"$1 $2\" = \"-m lago.cmd\" ] || exit 9\nshift 2\ncase \"$1\" in\n  --lago-list-plugins) echo '{\"greet\": \"say hello\"}' ;;\n  *) echo \"python plugin: $*\" ;;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&python, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    env.env.push(("LAGO_PYTHON".into(), python.display().to_string()));
    assert_eq!(env.lago(&["-l", "debug", "greet", "x", "--y"]).ok().stdout, "python plugin: -l debug greet x --y\n");
    let help = env.lago(&["--help"]).ok().stdout;
    assert!(help.contains("Plugins:") && help.contains("greet  say hello") && help.contains("hello"), "{help}");
    let unknown = env.lago(&["frobnicate"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
}

#[test]
fn help_and_version() {
    let env = TestEnv::new();
    // The original's argparse help, which scripts grep for.
    let help = env.lago(&["-h"]).ok().stdout;
    assert!(help.contains("usage: lago"), "{help}");
    for verb in ["init", "status", "list", "set-current", "cleanup", "destroy", "generate-config", "snapshot"] {
        let run = env.lago(&[verb, "-h"]).ok();
        assert!(run.stdout.contains("usage: lago"), "{verb}: {}", run.stdout);
    }
    assert!(env.lago(&["--version"]).ok().stdout.starts_with("lago "));
    // No verb: the help and exit 1, as the original.
    let none = env.lago(&[]);
    assert_eq!(none.code, 1);
    assert!(none.stdout.contains("usage: lago"), "{}", none.stdout);
    // The original read `-wrongoption` as `-w rongoption`, then found no verb: exit 1 with the
    // usage; lago also names the option.
    let wrong = env.lago(&["-wrongoption"]);
    assert_eq!(wrong.code, 1, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("'-wrongoption'") && wrong.stderr.contains("usage: lago"), "{}", wrong.stderr);
    // Any other mistake: the error and the usage, exit 2 (argparse's).
    let bad = env.lago(&["status", "--no-such-flag"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("--no-such-flag") && bad.stderr.contains("usage: lago"), "{}", bad.stderr);
    // `lagocli` is `lago`.
    let lagocli = std::process::Command::new(env!("CARGO_BIN_EXE_lagocli")).arg("-h").output().unwrap();
    assert!(String::from_utf8_lossy(&lagocli.stdout).contains("usage: lagocli"), "{lagocli:?}");
}
