//! `lago doctor`, global options after the verb, completions and man pages.

use std::path::Path;

use crate::common::TestEnv;

/// A directory of links to the host's tools, without `qemu-system-x86_64`.
fn path_without_qemu(env: &TestEnv) -> String {
    let bin = env.root().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let host_path = std::env::var("PATH").unwrap();
    for tool in ["qemu-img", "ssh", "ssh-keygen", "apt-get", "mcopy", "mke2fs", "xz"] {
        let found = std::env::split_paths(&host_path).map(|d| d.join(tool)).find(|p| p.is_file());
        if let Some(p) = found {
            std::os::unix::fs::symlink(p, bin.join(tool)).unwrap();
        }
    }
    bin.display().to_string()
}

fn bookworm() -> bool {
    std::fs::read_to_string("/etc/os-release").is_ok_and(|t| t.contains("VERSION_CODENAME=bookworm"))
}

#[test]
fn doctor_names_missing_qemu_with_its_fix_and_fails() {
    let mut env = TestEnv::new();
    let path = path_without_qemu(&env);
    env.env.retain(|(k, _)| k != "PATH");
    env.env.push(("PATH".into(), path));
    let run = env.lago(&["doctor"]);
    assert_eq!(run.code, 1, "{}", run.render());
    let lines: Vec<&str> = run.stdout.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("  ✗ qemu-system-x86_64")).expect(&run.stdout);
    assert!(
        lines[at].ends_with("not installed: not on PATH, nor in /usr/local/sbin, /usr/sbin or /sbin"),
        "{}",
        lines[at]
    );
    assert!(lines[at + 1].trim_start().starts_with("why: runs the VMs"), "{}", lines[at + 1]);
    let fix = lines[at + 2].trim_start();
    assert!(fix.starts_with("fix: "), "{fix}");
    if bookworm() {
        assert!(fix.contains("qemu-system-x86/bookworm-backports qemu-system-common/bookworm-backports"), "{fix}");
    } else {
        assert!(fix.contains("qemu-system-x86"), "{fix}");
    }
    // KVM is not probed without qemu, and does not decide the exit code.
    assert!(run.stdout.contains("✗ KVM"), "{}", run.stdout);
    assert!(run.stdout.contains("not probed: qemu-system-x86_64 is missing"), "{}", run.stdout);
    assert!(run.stdout.ends_with("failed; run the fix lines above, or `sudo lago doctor --fix`\n"), "{}", run.stdout);
    // The same as JSON, for scripts, with the flag after the verb.
    let json: serde_json::Value = serde_json::from_str(&env.lago(&["doctor", "-f", "json"]).stdout).unwrap();
    assert_eq!(json["ready"], false);
    let qemu = json["checks"].as_array().unwrap().iter().find(|c| c["name"] == "qemu-system-x86_64").unwrap();
    assert_eq!((&qemu["ok"], &qemu["required"], &qemu["group"]), (&false.into(), &true.into(), &"core".into()));
    assert!(qemu["fix"].as_str().unwrap().contains("qemu-system-x86"), "{qemu}");
}

/// The test command sets the host up first, so everything `init` and `start` need is here.
#[test]
fn doctor_on_a_set_up_host_is_ready() {
    let env = TestEnv::new();
    let run = env.lago(&["doctor"]);
    assert_eq!(run.code, 0, "{}", run.render());
    for name in ["qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen", "template store", "lease directory", "loopback"]
    {
        assert!(run.stdout.contains(&format!("✓ {name} ")), "{name}:\n{}", run.stdout);
    }
    assert!(run.stdout.contains("the same qemu as qemu-system-x86_64"), "{}", run.stdout);
    assert!(run.stdout.contains("Ready: this host has what `lago init` and `lago start` need"), "{}", run.stdout);
    assert!(!run.stdout.contains('\x1b'), "no escapes when stdout is not a terminal");
    let json: serde_json::Value = serde_json::from_str(&env.lago(&["-f", "json", "doctor"]).ok().stdout).unwrap();
    assert_eq!(json["ready"], true);
    let kvm = json["checks"].as_array().unwrap().iter().find(|c| c["name"] == "KVM").unwrap();
    assert_eq!(kvm["required"], false);
    // `--all` only goes with `--fix`.
    assert_eq!(env.lago(&["doctor", "--all"]).code, 2);
}

#[test]
fn global_options_after_the_verb() {
    let env = TestEnv::initialized(
        "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks: [{template_name: tiny, type: template, name: root}]\nnets:\n  lago: {}\n",
    );
    let status: serde_json::Value = serde_json::from_str(&env.lago(&["status", "-f", "json"]).ok().stdout).unwrap();
    assert_eq!(status["Prefix"]["VMs"]["vm01"]["status"], "down", "{status}");
    let list: serde_json::Value =
        serde_json::from_str(&env.lago(&["template", "list", "-f", "json"]).ok().stdout).unwrap();
    assert_eq!(list["templates"]["tiny"]["v1"]["cached"], true);
    let yaml = env.lago(&["status", "--out-format=yaml", "--prefix-name", "default"]).ok().stdout;
    assert!(yaml.starts_with("Prefix:\n"), "{yaml}");
    // The verb's own `-l` (`snapshot --list`) is not `--loglevel`.
    let snaps = env.lago(&["snapshot", "-l", "-f", "json"]).ok().stdout;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&snaps).unwrap(), serde_json::json!({"vm01": {}}));
}

#[test]
fn bash_completion_parses_and_completes_verbs() {
    let env = TestEnv::new();
    let script = env.lago(&["completion", "bash"]).ok().stdout;
    let file = env.root().join("lago.bash");
    std::fs::write(&file, &script).unwrap();
    let syntax = std::process::Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
    // What bash does on `lago sta<TAB>`.
    let complete = format!(
        "source {}; COMP_WORDS=(lago sta); COMP_CWORD=1; COMP_LINE='lago sta'; COMP_POINT=8; _lago lago sta lago; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = std::process::Command::new("bash").arg("-c").arg(&complete).output().unwrap();
    let words: Vec<String> = String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect();
    assert_eq!(words, ["start", "status"], "{}", String::from_utf8_lossy(&out.stderr));
    for shell in ["zsh", "fish"] {
        let text = env.lago(&["completion", shell]).ok().stdout;
        assert!(text.contains("snapshot") && text.contains("doctor"), "{shell}");
    }
    assert_eq!(env.lago(&["completion", "tcsh"]).code, 2);
}

#[test]
fn man_pages_render() {
    let env = TestEnv::new();
    env.lago(&["manpages", "man"]).ok();
    let dir = env.work().join("man");
    for page in ["lago.1", "lago-start.1", "lago-doctor.1", "lago-template-build.1"] {
        assert!(dir.join(page).is_file(), "{page}");
    }
    let out = std::process::Command::new("man")
        .arg("-l")
        .arg(Path::new(&dir).join("lago-start.1"))
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .output()
        .expect("`man` (man-db) renders the generated pages");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    let name = ["lago-start", "-", "Start", "the", "networks", "and", "VMs"];
    assert!(words.windows(name.len()).any(|w| w == name), "{text}");
    assert!(text.contains("lago start [--from] [--boot] [--no-wait] [-h|--help] [VM_NAMES]"), "{text}");
}

#[test]
fn a_tool_that_could_not_be_run_sends_the_user_to_doctor() {
    let mut env = TestEnv::initialized(
        "domains:\n  vm01:\n    nics: [{net: lago}]\n    disks: [{template_name: tiny, type: template, name: root}]\nnets:\n  lago: {}\n",
    );
    let path = path_without_qemu(&env);
    env.env.retain(|(k, _)| k != "PATH");
    env.env.push(("PATH".into(), path));
    let run = env.lago(&["start"]);
    assert_eq!(run.code, 1, "{}", run.render());
    assert!(run.stderr.contains("Cannot start VM vm01: `qemu-system-x86_64` could not be run"), "{}", run.stderr);
    assert!(
        run.stderr.ends_with(
            "Hint: run `lago doctor`: it checks the host and prints the command that installs what is missing\n"
        ),
        "{}",
        run.stderr
    );
    let status: serde_json::Value = serde_json::from_str(&env.lago(&["status", "-f", "json"]).ok().stdout).unwrap();
    assert_eq!(status["Prefix"]["VMs"]["vm01"]["status"], "down");
}
