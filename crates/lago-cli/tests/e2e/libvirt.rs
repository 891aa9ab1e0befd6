//! The `local-libvirt` provider, against libvirt daemons the tests start themselves, each in a
//! network namespace of its own (`scripts/libvirt-netns.sh`): libvirt's bridges, dnsmasq and
//! NAT rules never touch the machine's interfaces, and lago runs inside the namespace. Two such
//! "hosts" joined by a veth pair make the several-hosts test.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::env::{Via, libvirt_init, lifecycle};
use crate::lab::Lab;

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/libvirt-netns.sh")
}

/// A libvirt host: libvirtd and virtlogd in a network namespace, state in a temporary directory.
pub struct LibvirtHost {
    /// The namespace.
    pub ns: String,
    /// Its address on the shared bridge `lagobr`, when it has one.
    pub address: Option<String>,
    _dir: tempfile::TempDir,
}

impl LibvirtHost {
    /// A host of its own.
    pub fn up() -> Self {
        Self::joined(None, None)
    }

    /// A host with a bridge `lagobr` holding `address` (`10.77.0.1/24`), joined to the bridge
    /// of `peer` by a veth pair.
    pub fn joined(address: Option<&str>, peer: Option<&LibvirtHost>) -> Self {
        let ns = format!("lt{}x{}", std::process::id() % 100_000, NEXT.fetch_add(1, Ordering::SeqCst));
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let mut cmd = Command::new(script());
        cmd.arg("up").arg(&ns).arg(dir.path());
        if let Some(a) = address {
            cmd.arg(a);
        }
        if let Some(p) = peer {
            cmd.arg(&p.ns);
        }
        let out = cmd.output().unwrap();
        let host = Self { ns, address: address.map(|a| a.split('/').next().unwrap_or(a).to_owned()), _dir: dir };
        assert!(out.status.success(), "libvirt-netns.sh up failed:\n{}", String::from_utf8_lossy(&out.stderr));
        host
    }

    /// The URL lago uses inside the namespace.
    pub fn url(&self) -> String {
        "qemu+tcp://127.0.0.1/system".into()
    }

    /// The URL of this host from another host on the shared bridge.
    pub fn remote_url(&self) -> String {
        format!("qemu+tcp://{}/system", self.address.as_deref().expect("a host on the shared bridge"))
    }

    /// `virsh` on this host; its stdout.
    pub fn virsh(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "virsh", "-q", "-c", &self.url()])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "virsh {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Names of the domains and networks libvirt has on this host (active or not).
    pub fn leftovers(&self) -> Vec<String> {
        let mut names: Vec<String> = self.virsh(&["list", "--all", "--name"]).lines().map(str::to_owned).collect();
        names.extend(self.virsh(&["net-list", "--all", "--name"]).lines().map(|n| format!("network {n}")));
        names.retain(|n| !n.trim().is_empty());
        names
    }

    /// Kills this host's libvirtd (its VMs keep running, as when a daemon dies).
    pub fn kill_daemon(&self) {
        let pids = crate::run("ip", &["netns", "pids", &self.ns]);
        for pid in pids.split_whitespace() {
            if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "libvirtd") {
                crate::run("kill", &["-9", pid]);
            }
        }
    }
}

impl Drop for LibvirtHost {
    fn drop(&mut self) {
        let _ = Command::new(script()).args(["down", &self.ns]).status();
    }
}

#[test]
fn libvirt_three_vms_two_networks_lifecycle() {
    let host = LibvirtHost::up();
    let lab = Lab::on_libvirt(&libvirt_init(), &host);
    lifecycle(&lab, Via::Libvirt(&host));
    assert_eq!(host.leftovers(), Vec::<String>::new());
}

fn boot_id(lab: &Lab) -> String {
    lab.shell("vm01", "cat /proc/sys/kernel/random/boot_id").1
}

#[test]
fn libvirt_snapshot_revert_export_and_reimport() {
    let host = LibvirtHost::up();
    let lab = Lab::on_libvirt(crate::ops::TWO_DISKS, &host);
    lab.ok(&["init"]);
    lab.ok(&["start"]);
    // The subnet is leased host-wide, in the original's lease files.
    let leases = lab.home.path().join("leases");
    assert!(leases.join("200.lease").is_file());

    // A forwarded port: a relay on 127.0.0.1 (of the host's namespace) to the VM's address.
    let forward = lab.ok(&["forward", "vm01", "22"]);
    let port: u16 = forward.trim().strip_prefix("127.0.0.1:").unwrap().parse().unwrap();
    let banner = |port: u16| {
        let code = format!(
            "import socket; s = socket.create_connection(('127.0.0.1', {port}), 5); s.settimeout(10); print(s.recv(64).split(b'\\r\\n')[0].decode())"
        );
        let out = Command::new("ip").args(["netns", "exec", &host.ns, "python3", "-c", &code]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let got = banner(port);
    let log = std::fs::read_to_string(lab.home.path().join(".lago/default/logs/forward-vm01.log")).unwrap_or_default();
    assert!(got.starts_with("SSH-2.0-"), "no SSH banner through 127.0.0.1:{port}: {got}\nthe relay's log: {log}");
    assert!(lab.ok(&["forward", "--list"]).contains(&format!("127.0.0.1:{port}")));
    lab.ok(&["forward", "--remove", "vm01", "22"]);
    assert!(banner(port).contains("Connection refused"), "the relay outlived its removal");

    // Live snapshot through libvirt: revert brings back the file, without a reboot.
    lab.shell("vm01", "echo before > /root/f");
    let boot = boot_id(&lab);
    lab.ok(&["snapshot", "s1"]);
    let dom = format!("{}-vm01", &std::fs::read_to_string(lab.home.path().join(".lago/default/uuid")).unwrap()[..8]);
    assert_eq!(host.virsh(&["snapshot-list", &dom, "--name"]), "s1");
    lab.shell("vm01", "echo after > /root/f");
    lab.ok(&["revert", "s1"]);
    assert_eq!(lab.shell("vm01", "cat /root/f"), (0, "before".into()));
    assert_eq!(boot_id(&lab), boot, "the VM rebooted");

    // A domain destroyed behind lago's back is down; start brings it back, and the live
    // snapshot still reverts (its definition is given back to the new domain).
    host.virsh(&["destroy", &dom]);
    assert_eq!(lab.status()["Prefix"]["VMs"]["vm01"]["status"], "down");
    lab.ok(&["start"]);
    lab.shell("vm01", "echo again > /root/f");
    lab.ok(&["revert", "s1"]);
    assert_eq!(lab.shell("vm01", "cat /root/f"), (0, "before".into()));

    // Stopped, then started from the live snapshot: in its moment, without a boot.
    lab.shell("vm01", "echo again > /root/f; sync");
    lab.ok(&["stop"]);
    lab.ok(&["start", "--from", "s1"]);
    assert_eq!(lab.shell("vm01", "cat /root/f"), (0, "before".into()));
    assert_eq!(boot_id(&lab), boot, "started from the snapshot, yet the VM booted");

    // A stopped VM gets a disk snapshot; reverting the running VM to it restarts it.
    lab.shell("vm01", "echo stopped > /root/f; echo exported > /root/data; sync");
    lab.ok(&["stop"]);
    assert_eq!(host.leftovers(), Vec::<String>::new(), "stop leaves no domain or network");
    lab.ok(&["snapshot", "s2"]);
    lab.ok(&["start"]);
    lab.shell("vm01", "echo changed > /root/f; sync");
    lab.ok(&["revert", "s2"]);
    assert_eq!(lab.shell("vm01", "cat /root/f"), (0, "stopped".into()));
    lab.ok(&["snapshot", "--delete", "s1"]);
    assert_eq!(lab.status()["Prefix"]["VMs"]["vm01"]["snapshots"], "s2");

    // Export, then the export comes back on libvirt with its data and addresses.
    lab.ok(&["stop"]);
    let imported = Lab::on_libvirt("", &host);
    lab.ok(&["export", "-d", &imported.home.path().display().to_string()]);
    lab.ok(&["destroy", "--yes"]);
    assert!(!leases.join("200.lease").exists(), "destroy releases the subnet");
    imported.ok(&["init"]);
    imported.ok(&["start"]);
    assert_eq!(imported.shell("vm01", "cat /root/data"), (0, "exported".into()));
    assert_eq!(imported.shell("vm01", "ip -o -4 addr show eth0 | awk '{print $4}'").1, "192.168.200.10/24");
    imported.ok(&["destroy", "--yes"]);
    assert_eq!(host.leftovers(), Vec::<String>::new());
}

#[test]
fn qemu_and_libvirt_vms_side_by_side() {
    let host = LibvirtHost::up();
    let lab = Lab::on_libvirt(
        "\
domains:
  q: {memory: 256, vcpu: 1, vm-provider: local-qemu, nics: [{net: a}], disks: [{template_name: tiny, type: template, name: root}]}
  l: {memory: 256, vcpu: 1, nics: [{net: b}], disks: [{template_name: tiny, type: template, name: root}]}
nets:
  a: {management: true}
  b: {management: true}
",
        &host,
    );
    lab.ok(&["init"]);
    lab.ok(&["start"]);
    let st = lab.status();
    assert_eq!(st["Prefix"]["VMs"]["q"]["status"], "running", "{st}");
    assert_eq!(st["Prefix"]["VMs"]["l"]["status"], "running", "{st}");
    assert_eq!(st["Prefix"]["Networks"]["b"]["status"], "up", "{st}");
    assert_eq!(lab.shell("q", "hostname"), (0, "q".into()));
    assert_eq!(lab.shell("l", "hostname"), (0, "l".into()));
    lab.ok(&["destroy", "--yes"]);
    assert_eq!(host.leftovers(), Vec::<String>::new());
}

const TWO_HOSTS: &str = "\
domains:
  vma: {memory: 256, vcpu: 1, nics: [{net: shared, ip: 10.77.0.11}], disks: [{template_name: tiny, type: template, name: root}]}
  vmb:
    memory: 256
    vcpu: 1
    libvirt_url: URL_B
    nics: [{net: shared, ip: 10.77.0.12}]
    disks: [{template_name: tiny, type: template, name: root}]
nets:
  shared: {type: bridge, bridge: BRIDGE, management: true, dns_domain_name: lab.test}
";

#[test]
fn two_hosts_on_a_shared_bridge() {
    let a = LibvirtHost::joined(Some("10.77.0.1/24"), None);
    let b = LibvirtHost::joined(Some("10.77.0.2/24"), Some(&a));
    let init = TWO_HOSTS.replace("URL_B", &b.remote_url());

    // A bridge one host lacks is named with that host, and nothing is left on the others.
    let lab = Lab::on_libvirt(&init.replace("BRIDGE", "nosuchbr"), &a);
    lab.ok(&["init"]);
    let out = lab.lago(&["start"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("has no bridge nosuchbr"), "{stderr}");
    assert_eq!((a.leftovers(), b.leftovers()), (vec![], vec![]));
    lab.ok(&["destroy", "--yes"]);

    let lab = Lab::on_libvirt(&init.replace("BRIDGE", "lagobr"), &a);
    lab.ok(&["init"]);
    lab.ok(&["start"]);
    let st = lab.status();
    assert_eq!(st["Prefix"]["VMs"]["vma"]["status"], "running", "{st}");
    assert_eq!(st["Prefix"]["VMs"]["vmb"]["status"], "running", "{st}");
    assert_eq!(a.virsh(&["list", "--name"]).lines().count(), 1);
    assert_eq!(b.virsh(&["list", "--name"]).lines().count(), 1);
    // Across the hosts, by name.
    assert_eq!(lab.shell("vma", "ping -c 1 -W 5 vmb >/dev/null && echo ok").1, "ok");
    assert_eq!(lab.shell("vmb", "ping -c 1 -W 5 vma.lab.test >/dev/null && echo ok").1, "ok");
    lab.ok(&["destroy", "--yes"]);
    assert_eq!((a.leftovers(), b.leftovers()), (vec![], vec![]));

    // A host whose daemon died is named; what lago made on the other host is still removed,
    // and the prefix stays for a later destroy.
    lab.ok(&["init"]);
    lab.ok(&["start"]);
    b.kill_daemon();
    let out = lab.lago(&["destroy", "--yes"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("Cannot connect (libvirt host {})", b.remote_url())), "{stderr}");
    assert_eq!(a.leftovers(), Vec::<String>::new());
    assert!(lab.home.path().join(".lago/default").is_dir());
}

#[test]
fn libvirt_cut_restore_and_whole_environment_snapshot() {
    use crate::faults::{THREE, pings, pings_again, snapshot_at_one_instant};
    let host = LibvirtHost::up();
    let lab = Lab::on_libvirt(THREE, &host);
    lab.ok(&["init"]);
    lab.ok(&["start"]);
    // Links are cut through libvirt's link state.
    lab.ok(&["net", "cut", "vm03"]);
    assert!(!pings(&lab, "vm01", "vm03"));
    assert!(pings_again(&lab, "vm01", "vm02"));
    assert_eq!(lab.status()["Prefix"]["VMs"]["vm03"]["NICs"]["eth0"]["link"], "cut");
    // libvirt VMs are reached on their management network: with it cut, a command fails at
    // once, naming the VM, the address tried and the fault (it never hangs).
    let t0 = std::time::Instant::now();
    let out = lab.lago(&["shell", "vm03", "true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("lago shell of a libvirt VM whose link is cut: {:.2} s", t0.elapsed().as_secs_f64());
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let ip = lab.status()["Prefix"]["VMs"]["vm03"]["NICs"]["eth0"]["ip"].as_str().unwrap().to_owned();
    assert!(
        stderr.contains(&format!(
            "VM vm03 cannot be reached: lago connects to it at {ip}, on network lago, and its NIC eth0 is cut"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("lago net restore vm03 lago"), "{stderr}");
    lab.ok(&["net", "restore", "vm03"]);
    assert!(pings_again(&lab, "vm01", "vm03"));
    // Partitions need lago's own switch: refused, with what works instead.
    let out = lab.lago(&["net", "partition", "lago", "vm01,vm02", "vm03"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("Partitioning of network lago is not supported with local-libvirt VMs"), "{stderr}");
    lab.ok(&["net", "heal", "lago"]);
    // Paused together through libvirt, reverted, resumed together.
    snapshot_at_one_instant(&lab);
    lab.ok(&["destroy", "--yes"]);
    assert_eq!(host.leftovers(), Vec::<String>::new());
}
