//! `lago capture` and `lago replay` of a running `tiny` VM: the artefact, moved elsewhere and
//! replayed on another "host" (a lab of its own: another store, which fetches the template from
//! the repository) after the original is destroyed, brings the VM back with a file and a
//! background process (the same pid) made before the capture; the original goes on after the
//! capture; what is refused is refused before anything starts.

use crate::lab::Lab;

const ONE_VM: &str = "\
domains:
  vm01:
    memory: 256
    nics: [{net: lab}]
    disks: [{template_name: tiny, type: template, name: root, dev: vda}]
nets:
  lab: {management: true}
";

#[test]
fn a_captured_environment_comes_back_running_elsewhere() {
    let lab = Lab::new(ONE_VM);
    lab.ok(&["init"]);
    lab.ok(&["start"]);
    let pid = lab
        .shell("vm01", "echo before > /root/before; (sleep 10000 </dev/null >/dev/null 2>&1 &); sleep 0.3; pidof sleep")
        .1;
    assert!(!pid.is_empty());
    let out = lab.home.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let captured = lab.lago(&["capture", "failed", "--output", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&captured.stderr);
    assert!(captured.status.success(), "{stderr}");
    let artefact = out.join("failed.lago-capture");
    assert_eq!(String::from_utf8_lossy(&captured.stdout).trim(), artefact.to_str().unwrap());
    assert!(stderr.contains("Captured 1 VM into") && stderr.contains(" in "), "{stderr}");
    eprintln!("{stderr}");
    // The environment goes on from the capture.
    assert_eq!(lab.shell("vm01", "cat /root/before; pidof sleep").1, format!("before\n{pid}"));
    lab.shell("vm01", "echo after > /root/after");
    // The same name again is refused.
    let again = lab.lago(&["capture", "failed", "--output", out.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));

    // Moved away; the original destroyed.
    let other = Lab::new(ONE_VM);
    let moved = other.home.path().join("failed.lago-capture");
    std::fs::rename(&artefact, &moved).unwrap();
    lab.ok(&["destroy", "--yes"]);
    let listing = std::process::Command::new("tar").args(["-tf"]).arg(&moved).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for member in ["capture.json", "memory/vm01.mem", "state/vm01.state", "disks/vm01-vda.qcow2", "prefix/", "logs/"] {
        assert!(listing.contains(member), "{member} not in\n{listing}");
    }

    // A non-empty workdir is refused, and nothing is started.
    let busy = other.home.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("x"), "").unwrap();
    let refused = other.lago(&["replay", moved.to_str().unwrap(), busy.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is not empty"));

    // Replayed in the other lab's directory (default workdir: named after the artefact).
    let replayed = other.lago(&["replay", "failed.lago-capture"]);
    let stderr = String::from_utf8_lossy(&replayed.stderr);
    assert!(replayed.status.success(), "{stderr}");
    eprintln!("{stderr}");
    let workdir = other.home.path().join("failed");
    assert_eq!(String::from_utf8_lossy(&replayed.stdout).trim(), workdir.to_str().unwrap());
    let wd = workdir.to_str().unwrap();
    let (code, seen) = {
        let o = other.lago(&[
            "--workdir-path",
            wd,
            "shell",
            "vm01",
            "cat /root/before; pidof sleep; test -e /root/after; echo $?",
        ]);
        (o.status.code(), String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    assert_eq!((code, seen), (Some(0), format!("before\n{pid}\n1")));
    let status = other.ok(&["--workdir-path", wd, "status"]);
    assert!(status.contains("vm01"), "{status}");
    // What the capture kept: the logs and the init file.
    let kept = workdir.join("default/captured");
    assert!(kept.join("logs/vm01.console.log").is_file());
    assert_eq!(std::fs::read_to_string(kept.join("init/LagoInitFile")).unwrap(), ONE_VM);
    other.ok(&["--workdir-path", wd, "destroy", "--yes"]);
    assert!(!workdir.join("default").exists());
}
