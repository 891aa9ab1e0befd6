//! `lago wait` on a running `tiny` VM (one boot): each kind of wait, ready and timed out, and
//! the time-out's message with what was seen last.

use std::process::{Child, Output, Stdio};

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

/// `lago wait vm01 ARGS` expected to time out: its standard error, checked for exit code 1.
#[track_caller]
fn times_out(lab: &Lab, args: &[&str]) -> String {
    let mut all = vec!["wait", "vm01", "--timeout", "2"];
    all.extend_from_slice(args);
    let out = lab.lago(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "lago {all:?}:\n{stderr}");
    stderr
}

/// `lago wait vm01 ARGS` started in the background.
fn started(lab: &Lab, args: &[&str]) -> Child {
    let mut all = vec!["wait", "vm01", "--timeout", "60"];
    all.extend_from_slice(args);
    lab.command(&all).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

#[track_caller]
fn ended_ok(child: Child) -> String {
    let out: Output = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "lago wait failed:\n{text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn each_wait_ends_when_ready_and_a_timeout_says_what_it_saw_last() {
    let lab = Lab::new(ONE_VM);
    lab.ok(&["init"]);
    lab.ok(&["start"]);

    // A port: dropbear's listens; nobody listens on 8080, and the error says who does.
    lab.ok(&["wait", "vm01", "--port", "22"]);
    let err = times_out(&lab, &["--port", "8080"]);
    assert!(
        err.contains("Error: VM vm01: nothing listened on TCP port 8080 within 2 s; last seen: connection refused: nothing listened on 8080 (listening: 22)"),
        "{err}"
    );
    assert!(err.contains("Hint: the port is checked in the VM"), "{err}");
    // A port that starts listening while lago waits (busybox's httpd, a daemon).
    let waiting = started(&lab, &["--port", "8080"]);
    lab.shell("vm01", "sleep 1; mkdir -p /tmp/www && httpd -p 8080 -h /tmp/www");
    ended_ok(waiting);

    // A service: tiny's init scripts (`/sbin/service`); one it lacks is `missing`.
    lab.ok(&["wait", "vm01", "--unit", "dropbear"]);
    let err = times_out(&lab, &["--unit", "nginx"]);
    assert!(err.contains("Error: VM vm01: service nginx was not active within 2 s; last seen: missing ("), "{err}");
    lab.shell("vm01", "/sbin/service acpid stop");
    let err = times_out(&lab, &["--unit", "acpid"]);
    assert!(err.contains("service acpid was not active within 2 s; last seen: inactive (acpid is stopped)"), "{err}");
    let waiting = started(&lab, &["--unit", "acpid"]);
    lab.shell("vm01", "/sbin/service acpid start");
    ended_ok(waiting);

    // A file, made while lago waits.
    lab.ok(&["wait", "vm01", "--file", "/etc/os-release"]);
    let err = times_out(&lab, &["--file", "/run/ready"]);
    assert!(err.contains("Error: VM vm01: /run/ready did not appear within 2 s; last seen: ls: "), "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
    let waiting = started(&lab, &["--file", "/run/ready"]);
    lab.shell("vm01", "sleep 1; touch /run/ready");
    ended_ok(waiting);

    // A command: its output once it succeeds; on timeout, its last exit code and output.
    let waiting = started(&lab, &["--", "cat", "/run/answer"]);
    lab.shell("vm01", "sleep 1; echo 42 > /run/answer");
    assert_eq!(ended_ok(waiting), "42\n");
    let err = times_out(&lab, &["--", "echo not yet; exit 3"]);
    assert!(
        err.contains(
            "Error: VM vm01: `echo not yet; exit 3` did not succeed within 2 s; its last try exited with 3:\nnot yet\n"
        ),
        "{err}"
    );
    // A try that hangs is stopped when the time is up.
    let err = times_out(&lab, &["--", "sleep 30"]);
    assert!(err.contains("`sleep 30` did not succeed within 2 s"), "{err}");

    // The console: a line printed before the wait, and one printed while it waits (the line
    // printed is the console's: getty's prompt may come before the words).
    lab.shell("vm01", "echo lago-wait-before > /dev/console");
    let line = lab.ok(&["wait", "vm01", "--console", "wait-bef.re$"]);
    assert!(line.ends_with("lago-wait-before\n"), "{line}");
    let waiting = started(&lab, &["--console", "lago-wait-(after|never)$"]);
    lab.shell("vm01", "sleep 1; echo lago-wait-after > /dev/ttyS0");
    let line = ended_ok(waiting);
    assert!(line.ends_with("lago-wait-after\n"), "{line}");
    let err = times_out(&lab, &["--console", "never printed"]);
    assert!(
        err.contains("Error: VM vm01: nothing on its console matched /never printed/ within 2 s; its last lines:\n"),
        "{err}"
    );
    assert!(err.contains("lago-wait-after\n"), "{err}");

    // The console's lines of an earlier run do not count.
    lab.ok(&["stop", "vm01"]);
    let out = lab.lago(&["wait", "vm01", "--console", "lago-wait-before"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    lab.ok(&["start", "vm01"]);
    let err = times_out(&lab, &["--console", "lago-wait-before"]);
    assert!(!err.contains("lago-wait-after"), "{err}");

    lab.ok(&["destroy", "--yes"]);
}
