//! The host leg of `nat` networks (`host_leg = on`), in a network namespace of the test's own so
//! that no interface of the machine is touched: the host reaches VMs at their addresses, VMs
//! reach the host at the gateway, a `bridge` network and a second environment stay apart, and
//! the TAP goes with the switch (`kill -9`), `stop` and `destroy`. The same environments carry
//! IPv6: a dual-stack management network, an IPv6-only one, and (the second environment) an
//! IPv6-only management network.

use std::process::Command;

use crate::lab::Lab;

/// A network namespace with its loopback up, deleted when dropped.
struct Netns(String);

/// A process of the test ([`Netns::serve`]), killed and reaped when dropped.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Netns {
    fn new() -> Self {
        let name = format!("lago-leg-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let ok = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        ok(&["netns", "add", &name]);
        ok(&["-n", &name, "link", "set", "lo", "up"]);
        Self(name)
    }

    /// `argv` run in the namespace: (success, stdout + stderr).
    fn run(&self, argv: &[&str]) -> (bool, String) {
        let out = Command::new("ip").args(["netns", "exec", &self.0]).args(argv).output().unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }

    /// A web server of the test in the namespace, bound to `bind` on `port`, serving a
    /// directory `dir` (made here) whose `f.txt` holds `body`; it ends when dropped.
    fn serve(&self, dir: &std::path::Path, body: &str, port: u16, bind: &str) -> Server {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("f.txt"), body).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.0, "python3", "-m", "http.server", &port.to_string(), "--bind", bind])
            .arg("--directory")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Server(child)
    }

    fn has_link(&self, name: &str) -> bool {
        self.run(&["ip", "link", "show", name]).0
    }

    /// ICMP echo from the namespace to `addr` (IPv4 or IPv6), `count` times, 200 ms apart, with
    /// Python's raw sockets (the hosts have no `ping`): `round-trip min/avg/max = ... ms` when
    /// every echo came back, else why not.
    fn ping(&self, addr: &str, count: u32) -> Result<String, String> {
        const PING: &str = r#"
import socket, struct, sys, time
addr, count = sys.argv[1], int(sys.argv[2])
v6 = ":" in addr
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW,
                  socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
s.settimeout(2)
def checksum(b):
    b += b"\0" * (len(b) % 2)
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff)
    return ~(t + (t >> 16)) & 0xffff
rtts = []
for seq in range(count):
    body = struct.pack("!HH", 0x1a90, seq) + b"lago" * 14
    kind = 128 if v6 else 8
    head = struct.pack("!BBH", kind, 0, 0)
    packet = head + body if v6 else struct.pack("!BBH", kind, 0, checksum(head + body)) + body
    t0 = time.monotonic()
    s.sendto(packet, (addr, 0))
    while True:
        data = s.recv(2048)
        icmp = data if v6 else data[(data[0] & 15) * 4:]
        if icmp[0] == (129 if v6 else 0) and icmp[4:8] == body[:4]:
            break
    rtts.append((time.monotonic() - t0) * 1000)
    time.sleep(0.2)
print("round-trip min/avg/max = %.3f/%.3f/%.3f ms" % (min(rtts), sum(rtts) / len(rtts), max(rtts)))
"#;
        match self.run(&["python3", "-c", PING, addr, &count.to_string()]) {
            (true, out) => Ok(out.trim().to_owned()),
            (false, why) => Err(why),
        }
    }

    /// `GET url` from the namespace (Python's urllib, 5 s timeout): the body, or why not.
    fn get(&self, url: &str) -> Result<String, String> {
        let code = format!("import urllib.request; print(urllib.request.urlopen({url:?}, timeout=5).read().decode())");
        match self.run(&["python3", "-c", &code]) {
            (true, out) => Ok(out.trim().to_owned()),
            (false, why) => Err(why),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

const WITH_ISOLATED: &str = "\
domains:
  vm01:
    memory: 256
    nics: [{net: lan}, {net: iso, ip: 192.168.210.5}, {net: v6}]
    disks: [{template_name: tiny, type: template, name: root, dev: vda}]
  vm02:
    memory: 256
    nics: [{net: lan}, {net: v6}]
    disks: [{template_name: tiny, type: template, name: root, dev: vda}]
nets:
  lan: {management: true, ipv6: auto}
  iso: {type: bridge}
  v6: {ipv6: 'fd8f:1:6::/64', ipv4: false}
";

/// The second environment: its VM's management network is IPv6-only, its other one IPv4.
const OTHER_V6: &str = "\
domains:
  vm01:
    memory: 256
    nics: [{net: lan}, {net: v6m}]
    disks: [{template_name: tiny, type: template, name: root, dev: vda}]
nets:
  lan: {}
  v6m: {management: true, ipv6: auto, ipv4: false}
";

const OTHER: &str = "\
domains:
  vm01:
    memory: 256
    nics: [{net: lan}]
    disks: [{template_name: tiny, type: template, name: root, dev: vda}]
nets:
  lan: {management: true}
";

/// `lago shell VM CMD`, ended after 10 s: its exit code (`None` when it had to be ended) and
/// how long it took.
fn shell_timed(lab: &Lab, vm: &str, cmd: &str) -> (Option<i32>, f64) {
    let t0 = std::time::Instant::now();
    let mut child = lab
        .command(&["shell", vm, cmd])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), t0.elapsed().as_secs_f64());
        }
        if t0.elapsed() > std::time::Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            return (None, t0.elapsed().as_secs_f64());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn in_netns(lab: &mut Lab, ns: &Netns) {
    lab.netns = Some(ns.0.clone());
    lab.env.retain(|(k, _)| *k != "LAGO_HOST_LEG");
    lab.env.push(("LAGO_HOST_LEG", "on".into()));
}

/// The host leg of network `lan` that `status` shows: (interface, its IPv4 address).
fn leg_of(lab: &Lab) -> (String, String) {
    let (iface, addrs) = leg_of_net(lab, "lan");
    (iface, addrs.split(' ').next().unwrap_or_default().to_owned())
}

/// The host leg of network `net` that `status` shows: (interface, its addresses).
fn leg_of_net(lab: &Lab, net: &str) -> (String, String) {
    let status = lab.status();
    let words = status["Prefix"]["Networks"][net]["host leg"].as_str().unwrap_or_default().to_owned();
    let (iface, addr) = words.split_once(' ').unwrap_or_else(|| panic!("no host leg of {net} in {status:#}"));
    (iface.to_owned(), addr.to_owned())
}

#[test]
fn host_leg_reaches_vms_by_address_and_the_host_at_the_gateway() {
    let ns = Netns::new();
    let mut a = Lab::new(WITH_ISOLATED);
    in_netns(&mut a, &ns);
    let leases = a.home.path().join("leases");
    let mut b = Lab::sharing_leases(OTHER_V6, &crate::tiny_repo(), Some(&leases));
    in_netns(&mut b, &ns);
    a.ok(&["init"]);
    b.ok(&["init"]);
    a.ok(&["start"]);
    b.ok(&["start"]);

    let (tap_a, addr_a) = leg_of(&a);
    let (tap_b, addr_b) = leg_of(&b);
    assert_eq!(addr_a, "192.168.200.1/24");
    // Subnets are leased host-wide: the second environment got another one.
    assert_eq!(addr_b, "192.168.201.1/24");
    assert!(ns.has_link(&tap_a) && ns.has_link(&tap_b));
    assert!(ns.run(&["ip", "-br", "addr", "show", &tap_a]).1.contains("192.168.200.1/24"));

    // Host -> VM at its address: busybox httpd in vm01.
    let (rc, out) =
        a.shell("vm01", "mkdir -p /tmp/www && echo from-vm01 > /tmp/www/index.html && httpd -p 8080 -h /tmp/www");
    assert_eq!(rc, 0, "{out}");
    assert_eq!(ns.get("http://192.168.200.2:8080/").unwrap(), "from-vm01");
    // The inventory uses the address, as the original's did.
    let inventory = a.ok(&["ansible_hosts"]);
    assert!(inventory.contains("vm01 ansible_host=192.168.200.2 ansible_port=22"), "{inventory}");

    // lago's own connections do not ride on the test's networks: with every network of vm01
    // cut, or lan partitioned, `lago shell` still answers at once (through the uplink).
    a.ok(&["net", "cut", "vm01"]);
    let (rc, secs) = shell_timed(&a, "vm01", "true");
    eprintln!("lago shell vm01 true, every link cut: {secs:.2} s");
    assert_eq!(rc, Some(0), "lago shell after `net cut` of every network: {secs:.1} s");
    assert!(ns.get("http://192.168.200.2:8080/").is_err(), "the cut link still carried the host's request");
    a.ok(&["net", "restore", "vm01"]);
    a.ok(&["net", "partition", "lan", "vm01", "vm02"]);
    let (rc, secs) = shell_timed(&a, "vm01", "true");
    eprintln!("lago shell vm01 true, lan partitioned: {secs:.2} s");
    assert_eq!(rc, Some(0), "lago shell after `net partition`: {secs:.1} s");
    let (rc, out) = a.shell("vm01", "ping -4 -c 1 -W 1 vm02");
    assert!(rc != 0, "vm01 reached vm02 across the partition: {out}");
    a.ok(&["net", "heal", "lan"]);
    assert_eq!(ns.get("http://192.168.200.2:8080/").unwrap(), "from-vm01");

    ipv6_through_the_legs_and_the_switches(&a, &b, &ns);

    // VM -> host at the gateway: a server of the test bound to it.
    let server = ns.serve(&a.home.path().join("www"), "from-the-host\n", 8000, "192.168.200.1");
    let mut fetched = (1, String::new());
    for _ in 0..50 {
        fetched = a.shell("vm01", "wget -q -O- http://192.168.200.1:8000/f.txt");
        if fetched.0 == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(server);
    assert_eq!(fetched, (0, "from-the-host".into()));

    // A copy made by `lago fork` shares its origin's subnet: no leg for it while the origin has
    // one, whatever `host_leg` says, and status says why; its VMs answer through their uplinks.
    assert_eq!(a.ok(&["fork", "copy"]), "copy\n");
    let status: serde_json::Value =
        serde_json::from_str(&a.ok_in("copy", &["-f", "json", "status", "--extra"])).unwrap();
    let words = status["Prefix"]["Networks"]["lan"]["host leg"].as_str().unwrap_or_default().to_owned();
    assert!(words.starts_with("off: subnet 192.168.200.0/24 is in use on the host's interface"), "{words}");
    assert!(words.ends_with("(a copy made by `lago fork` shares its origin's subnets)"), "{words}");
    assert_eq!(a.shell_in("copy", "vm01", "cat /etc/hostname"), (0, "vm01".into()));
    assert_eq!(ns.get("http://192.168.200.2:8080/").unwrap(), "from-vm01", "the origin's leg still reaches it");
    a.ok_in("copy", &["destroy", "--yes"]);

    // A bridge network has no host leg: its VMs' addresses are not reachable from the host.
    assert!(a.status()["Prefix"]["Networks"]["iso"].get("host leg").is_none());
    assert!(!ns.run(&["ip", "-br", "addr"]).1.contains("192.168.210."));
    let isolated = ns.get("http://192.168.210.5:8080/");
    assert!(isolated.is_err(), "the bridge network answered the host: {isolated:?}");
    // Nor does one environment reach the other's VMs through the host, even routing through it.
    let (rc, out) = a.shell("vm01", "ip route add 192.168.201.0/24 via 192.168.200.1 && ping -c 2 -W 2 192.168.201.2");
    assert!(rc != 0 && out.contains("100% packet loss"), "vm01 of one environment reached the other's: {out}");

    // The TAP goes with its switch, however the switch ends; the next command says so.
    let pid = std::fs::read_to_string(b.home.path().join(".lago/default/run/switch-lan.pid")).unwrap();
    assert!(Command::new("kill").args(["-9", pid.trim()]).status().unwrap().success());
    let mut gone = false;
    for _ in 0..50 {
        gone = !ns.has_link(&tap_b);
        if gone {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(gone, "{tap_b} outlived its switch");
    let words = b.status()["Prefix"]["Networks"]["lan"]["host leg"].as_str().unwrap_or_default().to_owned();
    assert!(words.starts_with(&format!("down: {tap_b} is gone")), "{words}");
    assert!(!ns.has_link(&tap_b));
    b.ok(&["destroy", "--yes"]);

    // A VM without a seed and with the original's 64 MiB (`init --skip-bootstrap`, as the
    // original's basic.bats does) only asks DHCP, which lago's networks do not serve: it is
    // still reached through its uplink, and comes up in its normal time, not after
    // `boot_time_sec`; it runs with the 128 MiB its template needs.
    let mut c = Lab::sharing_leases(
        &OTHER.replace("memory: 256", "memory: 64\n    boot_time_sec: 60"),
        &crate::tiny_repo(),
        Some(&leases),
    );
    in_netns(&mut c, &ns);
    c.ok(&["init", "--skip-bootstrap"]);
    let t0 = std::time::Instant::now();
    c.ok(&["start"]);
    eprintln!("lago start of a VM without a seed: {:.2} s", t0.elapsed().as_secs_f64());
    let (rc, mem) = c.shell("vm01", "grep MemTotal /proc/meminfo");
    assert_eq!(rc, 0, "{mem}");
    let kib: u64 = mem.split_whitespace().nth(1).and_then(|k| k.parse().ok()).unwrap_or(0);
    assert!(kib > 64 * 1024, "the VM runs with {kib} KiB");
    c.ok(&["destroy", "--yes"]);

    // `stop` takes the leg down, `start` brings it back, `destroy` removes it and its lease.
    a.ok(&["stop"]);
    assert!(!ns.has_link(&tap_a));
    a.ok(&["start"]);
    assert!(ns.has_link(&tap_a));
    a.ok(&["destroy", "--yes"]);
    assert!(!ns.has_link(&tap_a));
    let left: Vec<_> = std::fs::read_dir(&leases)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".lease"))
        .collect();
    assert!(left.is_empty(), "leases left: {left:?}");
}

/// The round-trip line of `ping -c N` (`round-trip min/avg/max = ...`), for the report.
fn round_trip(out: &str) -> String {
    out.lines().find(|l| l.contains("min/avg/max")).unwrap_or(out).trim().to_owned()
}

/// `cmd` in `vm`, again every half second until it succeeds (at most 20 times): its last result.
fn eventually(lab: &Lab, vm: &str, cmd: &str) -> (i32, String) {
    let mut last = (1, String::new());
    for _ in 0..20 {
        last = lab.shell(vm, cmd);
        if last.0 == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    last
}

/// IPv6, in environment `a` (`lan` dual-stack with an `auto` prefix, `v6` IPv6-only) and `b`
/// (its management network IPv6-only): names, the host leg both ways, the switch's faults,
/// forwards and the inventory.
fn ipv6_through_the_legs_and_the_switches(a: &Lab, b: &Lab, ns: &Netns) {
    let status = a.status();
    let net = |n: &str, k: &str| status["Prefix"]["Networks"][n][k].as_str().unwrap_or_default().to_owned();
    let nic = |vm: &str, i: usize| {
        status["Prefix"]["VMs"][vm]["NICs"][format!("eth{i}")]["ip6"].as_str().unwrap_or_default().to_owned()
    };
    let (prefix, gw6) = (net("lan", "ipv6"), net("lan", "gateway6"));
    assert!(prefix.starts_with("fd") && prefix.ends_with("::/64"), "{status:#}");
    let (vm01, vm02) = (nic("vm01", 0), nic("vm02", 0));
    assert_eq!(vm01, format!("{}2", prefix.trim_end_matches("/64")), "the IPv4 address's host part");
    // The SDK says what status says.
    let env = lago::sdk::load_env(&a.home.path().join(".lago")).unwrap();
    assert_eq!(env.vm("vm01").unwrap().ip6().map(|a| a.to_string()), Some(vm01.clone()));
    assert_eq!(env.net("lan").unwrap().gw6().map(|a| a.to_string()), Some(gw6.clone()));
    let (p, len) = env.net("lan").unwrap().ipv6_prefix().unwrap();
    assert_eq!(format!("{p}/{len}"), prefix);
    assert_eq!(env.net("v6").unwrap().gw(), None);
    // Both legs: the dual-stack one holds both gateways, the IPv6-only one gw6 alone.
    let (tap, addrs) = leg_of_net(a, "lan");
    assert_eq!(addrs, format!("192.168.200.1/24 {gw6}/64"));
    assert!(ns.run(&["ip", "-6", "addr", "show", "dev", &tap]).1.contains(&format!("{gw6}/64")));
    assert_eq!(leg_of_net(a, "v6").1, "fd8f:1:6::1/64");

    // VM <-> VM on the dual-stack network, by name, over IPv6 and IPv4.
    let (rc, out) = eventually(a, "vm01", "ping -6 -c 5 -i 0.2 -W 2 vm02");
    assert_eq!(rc, 0, "ping -6 vm02: {out}");
    assert!(out.contains(&vm02), "vm02 did not resolve to {vm02}: {out}");
    eprintln!("IPv6 vm01 -> vm02: {}", round_trip(&out));
    let (rc, out) = a.shell("vm01", "ping -4 -c 5 -i 0.2 -W 2 vm02");
    assert!(rc == 0 && out.contains("192.168.200.3"), "ping -4 vm02: {out}");
    eprintln!("IPv4 vm01 -> vm02: {}", round_trip(&out));
    // Host -> VM at its IPv6 address, through the leg.
    eprintln!("IPv6 host -> vm01: {}", ns.ping(&vm01, 5).unwrap());
    eprintln!("IPv4 host -> vm01: {}", ns.ping("192.168.200.2", 5).unwrap());
    assert_eq!(ns.get(&format!("http://[{vm01}]:8080/")).unwrap(), "from-vm01");

    // VM -> host at gw6: a server of the test bound to it.
    let server = ns.serve(&a.home.path().join("www6"), "from-the-host-over-ipv6\n", 8001, &gw6);
    let fetched = eventually(a, "vm01", &format!("wget -q -O- 'http://[{gw6}]:8001/f.txt'"));
    drop(server);
    assert_eq!(fetched, (0, "from-the-host-over-ipv6".into()));

    // The IPv6-only network: no IPv4 address on it in the guest, and the peer by name.
    let (rc, out) = a.shell("vm01", "ip -4 addr show dev eth2; ip -6 addr show dev eth2");
    assert_eq!(rc, 0, "{out}");
    assert!(!out.contains("inet ") && out.contains("inet6 fd8f:1:6::2/64"), "{out}");
    assert!(!out.contains("tentative"), "duplicate address detection was on: {out}");
    let (rc, out) = eventually(a, "vm01", "ping -6 -c 3 -W 2 vm02-v6");
    assert!(rc == 0 && out.contains("fd8f:1:6::3"), "ping -6 vm02-v6: {out}");

    // Faults: a partition stops IPv6 (neighbour discovery included: the neighbours are
    // forgotten first), and healing brings it back.
    a.ok(&["net", "partition", "lan", "vm01", "vm02"]);
    a.ok(&["net", "partition", "v6", "vm01", "vm02"]);
    let (rc, out) = a.shell("vm01", "ip -6 neigh flush all; ping -6 -c 2 -W 1 vm02; ping -6 -c 2 -W 1 vm02-v6");
    assert!(rc != 0 && !out.contains(" 0% packet loss"), "vm01 reached vm02 over IPv6 across the partition: {out}");
    let (rc, out) = a.shell("vm01", "ip -6 neigh show dev eth2");
    assert!(rc == 0 && !out.contains("REACHABLE"), "neighbour discovery crossed the partition: {out}");
    a.ok(&["net", "heal", "lan"]);
    a.ok(&["net", "heal", "v6"]);
    let (rc, out) = eventually(a, "vm01", "ping -6 -c 1 -W 2 vm02 && ping -6 -c 1 -W 2 vm02-v6");
    assert_eq!(rc, 0, "IPv6 did not come back with heal: {out}");
    // A cut link carries no IPv6 either, nor does a link that loses every frame.
    a.ok(&["net", "cut", "vm02", "v6"]);
    let (rc, out) = a.shell("vm01", "ping -6 -c 2 -W 1 vm02-v6");
    assert!(rc != 0, "the cut link carried IPv6: {out}");
    a.ok(&["net", "restore", "vm02", "v6"]);
    a.ok(&["net", "degrade", "vm02", "v6", "--loss", "100"]);
    let (rc, out) = a.shell("vm01", "ping -6 -c 2 -W 1 vm02-v6");
    assert!(rc != 0, "the link that loses everything carried IPv6: {out}");
    a.ok(&["net", "restore", "vm02", "v6"]);
    let (rc, out) = eventually(a, "vm01", "ping -6 -c 1 -W 2 vm02-v6");
    assert_eq!(rc, 0, "IPv6 did not come back with restore: {out}");

    // `b`: its VM's management network is IPv6-only. The host reaches its SSH server at its
    // IPv6 address through the leg, which is what the inventory names; `lago forward` works
    // (through the uplink, lago's own path).
    let status = b.status();
    let ip6 = status["Prefix"]["VMs"]["vm01"]["NICs"]["eth1"]["ip6"].as_str().unwrap_or_default().to_owned();
    assert_eq!(status["Prefix"]["VMs"]["vm01"]["NICs"]["eth1"]["ip"], "N/A");
    let inventory = b.ok(&["ansible_hosts"]);
    assert!(inventory.contains(&format!("vm01 ansible_host={ip6} ansible_port=22")), "{inventory}");
    let banner = format!(
        "import socket; s = socket.create_connection(({ip6:?}, 22), timeout=5); print(s.recv(256).split(b'\\n')[0].decode().strip())"
    );
    let (ok, out) = ns.run(&["python3", "-c", &banner]);
    assert!(ok && out.starts_with("SSH-2.0-"), "{out}");
    let (rc, out) =
        b.shell("vm01", "mkdir -p /tmp/www && echo from-b > /tmp/www/index.html && httpd -p 8080 -h /tmp/www");
    assert_eq!(rc, 0, "{out}");
    let forwarded = b.ok(&["forward", "vm01", "8080"]);
    let port = forwarded.trim().rsplit(':').next().unwrap_or_default().to_owned();
    assert_eq!(ns.get(&format!("http://127.0.0.1:{port}/")).unwrap(), "from-b");
    assert_eq!(ns.get(&format!("http://[{ip6}]:8080/")).unwrap(), "from-b");
}
