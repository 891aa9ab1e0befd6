//! `lago fork` of a running environment of two `tiny` VMs, checked many ways on one boot: what
//! the copies keep (a file, a background process and its pid, the guests' uptime), what they do
//! not share (files written after, their networks, their forwards), the origin going on, the
//! life of the frozen state, copies of it and renewal, what is refused, and the memory line.

use std::path::{Path, PathBuf};

use crate::lab::Lab;

const TWO_VMS: &str = "\
base: &base
  memory: 256
  disks: [{template_name: tiny, type: template, name: root, dev: vda}]
domains:
  vm01: {<<: *base, nics: [{net: lab}], forwards: [{guest: 8080}]}
  vm02: {<<: *base, nics: [{net: lab}]}
nets:
  lab: {management: true}
";

/// `GET /` from 127.0.0.1:`port`.
fn http_get(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: vm\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The lab's prefixes, each destroyed when dropped (a fork makes more than the lab's own).
struct AllPrefixes<'a>(&'a Lab);

impl Drop for AllPrefixes<'_> {
    fn drop(&mut self) {
        let _ = self.0.lago(&["destroy", "--yes", "--all-prefixes"]);
    }
}

impl Lab {
    /// `lago --prefix-name PREFIX ARGS...`, which must succeed.
    #[track_caller]
    pub(crate) fn ok_in(&self, prefix: &str, args: &[&str]) -> String {
        let mut all = vec!["--prefix-name", prefix];
        all.extend_from_slice(args);
        self.ok(&all)
    }

    /// A command in `vm` of `prefix`: its exit code and output.
    pub(crate) fn shell_in(&self, prefix: &str, vm: &str, cmd: &str) -> (i32, String) {
        let out = self.lago(&["--prefix-name", prefix, "shell", vm, cmd]);
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn uptime_in(&self, prefix: &str) -> f64 {
        self.shell_in(prefix, "vm01", "cut -d' ' -f1 /proc/uptime").1.parse().unwrap()
    }
}

/// The frozen states of the lab's workdir.
fn frozen_states(workdir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(workdir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".frozen-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_running_environment_forks_into_copies_of_its_own() {
    let lab = Lab::new(TWO_VMS);
    let _all = AllPrefixes(&lab);
    lab.ok(&["init"]);
    lab.ok(&["start"]);
    let workdir = lab.home.path().join(".lago");
    // Before the fork: a file, a background process, web servers (vm01's behind the init
    // file's forward, vm02's on the lab network).
    let pid = lab
        .shell(
            "vm01",
            "echo before > /root/before; mkdir -p /root/www; echo origin > /root/www/index.html; httpd -p 8080 -h /root/www; (sleep 100000 </dev/null >/dev/null 2>&1 &); sleep 0.3; pidof sleep",
        )
        .1;
    assert!(!pid.is_empty());
    lab.shell("vm02", "mkdir -p /root/www; echo origin > /root/www/index.html; httpd -p 8000 -h /root/www");
    let uptime = lab.uptime_in("default");

    let names = lab.ok(&["fork", "--count", "2"]);
    assert_eq!(names, "default-1\ndefault-2\n");
    for copy in ["default-1", "default-2"] {
        assert_eq!(lab.shell_in(copy, "vm01", "cat /root/before; pidof sleep"), (0, format!("before\n{pid}")));
        // A new VM generation id: the guest was told it is a copy.
        assert_eq!(lab.shell_in(copy, "vm01", "ls /sys/bus/acpi/devices/ | grep -c QEMUVGID").1, "1");
        // Each copy's network is its own: vm01 reaches its own copy's vm02.
        lab.shell_in(copy, "vm02", &format!("echo {copy} > /root/www/index.html"));
        lab.shell_in(copy, "vm01", &format!("echo {copy} > /root/www/index.html"));
    }
    for copy in ["default-1", "default-2"] {
        let (code, page) = lab.shell_in(copy, "vm01", "wget -q -O - -T 10 http://vm02:8000/");
        assert_eq!((code, page.as_str()), (0, copy), "vm01 of {copy} reached another copy's vm02");
        // Its forward reaches its own service.
        let list: serde_json::Value =
            serde_json::from_str(&lab.ok_in(copy, &["-f", "json", "forward", "--list"])).unwrap();
        let port: u16 = list[0]["host"].as_str().unwrap().strip_prefix("127.0.0.1:").unwrap().parse().unwrap();
        assert!(http_get(port).contains(copy), "the forward of {copy} on port {port}");
    }
    // What one copy writes, no one else sees; the origin goes on from where it was.
    lab.shell_in("default-1", "vm01", "echo mine > /root/mine");
    for other in ["default", "default-2"] {
        assert_eq!(lab.shell_in(other, "vm01", "test -e /root/mine").0, 1, "{other}");
    }
    assert_eq!(
        lab.shell("vm01", "cat /root/before; pidof sleep; cat /root/www/index.html").1,
        format!("before\n{pid}\norigin")
    );
    assert!(lab.uptime_in("default") >= uptime, "the origin's uptime went back");
    let status: serde_json::Value =
        serde_json::from_str(&lab.ok_in("default-2", &["-f", "json", "status", "--extra"])).unwrap();
    assert!(status["Prefix"]["fork"].as_str().unwrap().starts_with("copy of prefix default as frozen in"), "{status}");
    assert!(status["Prefix"]["VMs"]["vm01"]["memory"].as_str().unwrap().starts_with("copy-on-write of the frozen"));

    // More copies of the frozen state, and a copy back to it in place.
    assert_eq!(lab.ok(&["fork", "--from-frozen", "again"]), "again\n");
    assert_eq!(lab.shell_in("again", "vm01", "cat /root/www/index.html").1, "origin");
    lab.ok_in("default-1", &["fork", "--renew"]);
    assert_eq!(lab.shell_in("default-1", "vm01", "test -e /root/mine").0, 1, "renewed, yet its file is there");
    // A copy's VM that reboots boots anew (its qemu came from the frozen state, with no kernel
    // to boot), with memory of its own.
    let boot_id = lab.shell_in("default-1", "vm02", "cat /proc/sys/kernel/random/boot_id").1;
    lab.ok_in("default-1", &["shutdown", "-r", "vm02"]);
    assert_ne!(lab.shell_in("default-1", "vm02", "cat /proc/sys/kernel/random/boot_id").1, boot_id);
    let status: serde_json::Value =
        serde_json::from_str(&lab.ok_in("default-1", &["-f", "json", "status", "--extra"])).unwrap();
    assert!(status["Prefix"]["VMs"]["vm02"]["memory"].as_str().unwrap().starts_with("file "), "{status}");
    // A copy forks too (its memory is moved into a frozen state of its own first).
    assert_eq!(lab.ok_in("default-2", &["fork"]), "default-2-1\n");
    assert_eq!(
        lab.shell_in("default-2-1", "vm01", "cat /root/www/index.html; pidof sleep").1,
        format!("default-2\n{pid}")
    );

    // The frozen states go with the last prefix that uses them.
    let frozen = frozen_states(&workdir);
    assert_eq!(frozen.len(), 2, "{frozen:?}");
    for copy in ["default-1", "again", "default-2"] {
        lab.ok_in(copy, &["destroy", "--yes"]);
        assert_eq!(lab.shell("vm01", "cat /root/before").1, "before", "the origin runs on");
        assert_eq!(lab.shell_in("default-2-1", "vm01", "cat /root/before").1, "before");
    }
    assert_eq!(frozen_states(&workdir).len(), 2, "the copy of the copy uses both");
    lab.ok_in("default-2-1", &["destroy", "--yes"]);
    assert_eq!(frozen_states(&workdir).len(), 1, "the origin uses the first");

    // What a fork refuses, and the memory line.
    lab.ok(&["stop", "vm02"]);
    let out = lab.lago(&["fork"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("VM vm02 cannot be forked: it does not run"));
    lab.ok(&["start", "vm02"]);
    let huge = [("LAGO_MEMORY_RESERVE", "100000000".to_owned())];
    let out = lab.command(&["fork", "--no-wait"]).envs(huge.iter().cloned()).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("Not enough memory: 1 copy of 2 VMs need"), "{said}");
    assert!(said.contains("short"), "{said}");
    let mut waiting = lab
        .command(&["fork", "in-line"])
        .envs(huge.iter().cloned())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(waiting.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0, "it ended without waiting");
        if line.starts_with("Waiting for memory") {
            break;
        }
    }
    assert!(line.contains("1 copy of 2 VMs need"), "{line}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(waiting.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    assert_eq!(waiting.wait().unwrap().code(), Some(130));
    assert!(!workdir.join("in-line").exists());
    assert_eq!(frozen_states(&workdir).len(), 1);

    let memory_dirs = |frozen: &Path| -> Option<PathBuf> {
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(frozen.join("frozen.json")).ok()?).ok()?;
        Some(PathBuf::from(manifest["memory_dir"].as_str()?))
    };
    let memory = memory_dirs(&frozen_states(&workdir)[0]).unwrap();
    assert!(memory.is_dir());
    lab.ok(&["destroy", "--yes"]);
    assert!(!workdir.exists() || frozen_states(&workdir).is_empty());
    assert!(!memory.exists(), "the frozen memory went with the last prefix");
    assert!(crate::env::processes_naming(lab.home.path()).is_empty());
}
