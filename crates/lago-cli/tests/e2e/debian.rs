//! The Debian 12 templates (slow: mmdebstrap, then systemd under TCG), configured from one seed:
//! `debian12` by lago's own first-boot unit, `debian12-cloud` by the real cloud-init; IPv6
//! included (a dual-stack management network and an IPv6-only one).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use lago::ops::service::ServiceProvider;

use crate::built_repo;
use crate::lab::Lab;

const INIT: &str = "\
base: &base
  memory: 768
  disks: [{template_name: TEMPLATE, type: template, name: root, dev: vda}]
domains:
  d1: {<<: *base, nics: [{net: lab, ip: 192.168.200.10}, {net: six}]}
  d2: {<<: *base, ssh-user: tester, nics: [{net: lab}, {net: six}]}
nets:
  lab: {management: true, dns_domain_name: lab.test, ipv6: 'fd8f:1:2::/64'}
  six: {ipv6: 'fd8f:1:6::/64', ipv4: false}
";

/// Asks qemu-guest-agent for `guest-ping` through the VM's port on the host.
fn guest_agent_ping(socket: &std::path::Path) -> String {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(b"{\"execute\":\"guest-ping\"}\n").unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line.trim().to_owned()
}

#[test]
fn debian12_is_configured_by_lagos_first_boot_unit_from_the_seed() {
    let lab = environment_of("debian12");
    // lago's unit configured it; there is no cloud-init in the image.
    assert_eq!(lab.shell("d1", "systemctl is-active lago-seed").1, "active");
    assert_eq!(lab.shell("d1", "command -v cloud-init || echo none").1, "none");
    // It ran before sshd and the network, and nothing of it failed.
    let (code, out) = lab.shell("d1", "systemctl --failed --no-legend --plain | grep . || echo none");
    assert_eq!((code, out.as_str()), (0, "none"));
    assert_eq!(lab.shell("d1", "journalctl -b -t lago-seed -o cat | tail -n 1").1, "lago-seed: applied");
    // The host key is one ed25519 key, made at first boot.
    assert_eq!(lab.shell("d1", "ls /etc/ssh/ssh_host_*_key").1, "/etc/ssh/ssh_host_ed25519_key");
    checks_of_the_seed(&lab);
}

#[test]
fn debian12_cloud_is_configured_by_cloud_init_from_the_seed() {
    let lab = environment_of("debian12-cloud");
    // cloud-init ran to the end with the NoCloud seed and no error.
    let (code, out) = lab.shell("d1", "cloud-init status --wait --long");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("status: done") && out.contains("DataSourceNoCloud"), "{out}");
    checks_of_the_seed(&lab);
}

/// A cloud image a user brings, as `docs/templates.md` walks through it: `debian12-cloud`
/// exported from a VM that never started (flattened, as a distribution publishes its image),
/// imported under a name of its own, then an environment of it, booted from the image's boot
/// loader, configured by cloud-init from lago's NoCloud seed.
#[test]
fn a_cloud_image_brought_by_the_user_is_imported_and_configured_by_cloud_init() {
    let built = built_repo("debian12-cloud", "repo-debian12-cloud");
    let export = Lab::sharing_leases(
        "domains:\n  e1:\n    disks: [{template_name: debian12-cloud, type: template, name: root}]\n    nics: [{net: n}]\nnets:\n  n: {}\n",
        &built,
        None,
    );
    export.ok(&["init"]);
    let out = export.home.path().join("export");
    export.ok(&["export", "--standalone", "--dst-dir", out.to_str().unwrap()]);
    export.ok(&["destroy", "--yes"]);
    let image = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "qcow2"))
        .unwrap_or_else(|| panic!("no qcow2 exported into {}", out.display()));

    let lab = Lab::sharing_leases(
        "domains:\n  c1:\n    memory: 768\n    disks: [{template_name: mycloud, type: template, name: root, dev: vda}]\n    nics: [{net: lab, ip: 192.168.200.20}]\nnets:\n  lab: {management: true, dns_domain_name: lab.test}\n",
        &export.home.path().join("repo"),
        None,
    );
    let repo = export.home.path().join("repo");
    let imported = lab.ok(&[
        "-f",
        "json",
        "template",
        "import",
        image.to_str().unwrap(),
        "--name",
        "mycloud",
        "--distro",
        "debian12",
        "--repo-dir",
        repo.to_str().unwrap(),
    ]);
    let imported: serde_json::Value = serde_json::from_str(&imported).unwrap();
    assert_eq!(imported["version"], "v1", "{imported}");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo.join("mycloud-v1.qcow2.metadata")).unwrap()).unwrap();
    assert_eq!((meta["bootstrap"].as_str(), meta["partition-table"].as_str()), (Some("cloud-init"), Some("mbr")));
    assert!(meta.get("boot").is_none(), "an imported image boots from its own loader: {meta}");

    lab.ok(&["init"]);
    let t = Instant::now();
    lab.ok(&["start"]);
    eprintln!("imported cloud image: 1 VM answered SSH after {:.1} s", t.elapsed().as_secs_f64());
    assert!(!lab.booted_directly("c1"));
    let (code, out) = lab.shell("c1", "cloud-init status --wait --long");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("status: done") && out.contains("DataSourceNoCloud"), "{out}");
    // The host name, the address and the environment's key (this very shell) are the seed's.
    assert_eq!(lab.shell("c1", "hostname -f"), (0, "c1.lab.test".into()));
    assert_eq!(lab.shell("c1", "ip -4 -o addr show eth0 | awk '{print $4}'").1, "192.168.200.20/24");
    let key = std::fs::read_to_string(lab.home.path().join(".lago/default/id_rsa.pub")).unwrap();
    let key_body = key.split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(lab.shell("c1", &format!("grep -c {key_body} /root/.ssh/authorized_keys")).1, "1");
    let listed: serde_json::Value = serde_json::from_str(&lab.ok(&["-f", "json", "template", "list"])).unwrap();
    assert_eq!(
        listed["templates"]["mycloud"]["v1"]["used_by"][0],
        lab.home.path().join(".lago/default").display().to_string()
    );
    lab.ok(&["destroy", "--yes"]);
}

/// Two VMs of `template` (built once per recipe), started.
fn environment_of(template: &str) -> Lab {
    let repo = built_repo(template, &format!("repo-{template}"));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo.join(format!("{template}-v1.qcow2.metadata"))).unwrap())
            .unwrap();
    assert_eq!(meta["distro"], "debian12");
    // The kernel is published for direct boot, and the VMs boot it.
    assert!(repo.join(format!("{template}-v1.qcow2.vmlinux")).is_file(), "{meta}");
    let lab = Lab::sharing_leases(&INIT.replace("TEMPLATE", template), &repo, None);
    lab.ok(&["init"]);
    let t = Instant::now();
    lab.ok(&["start"]);
    eprintln!("{template}: 2 VMs answered SSH after {:.1} s", t.elapsed().as_secs_f64());
    lab
}

/// What the seed asks for, however it was applied.
fn checks_of_the_seed(lab: &Lab) {
    assert_eq!(lab.shell("d1", "hostname -f"), (0, "d1.lab.test".into()));
    assert_eq!(lab.shell("d1", "ip -4 -o addr show eth0 | awk '{print $4}'").1, "192.168.200.10/24");
    assert!(lab.shell("d1", "cat /etc/hosts").1.contains("d2.lab.test d2"));
    assert_eq!(lab.shell("d1", "ping -c 1 -W 5 d2.lab.test >/dev/null && echo ok").1, "ok");
    // IPv6: static, usable at once (no address left tentative), both names; nothing of IPv4 on
    // the IPv6-only network.
    assert_eq!(
        lab.shell("d1", "for d in eth0 eth1; do ip -6 -o addr show dev $d scope global | awk '{print $2, $4}'; done").1,
        "eth0 fd8f:1:2::a/64\neth1 fd8f:1:6::2/64"
    );
    assert_eq!(
        lab.shell("d1", "ip -6 addr show tentative; ip -6 addr show dadfailed; ip -4 addr show dev eth1"),
        (0, String::new())
    );
    for cmd in ["ping -6 -c 1 -W 5 d2.lab.test", "ping -4 -c 1 -W 5 d2.lab.test", "ping -6 -c 1 -W 5 d2-six"] {
        assert_eq!(lab.shell("d1", &format!("{cmd} >/dev/null && echo ok")).1, "ok", "{cmd}");
    }
    // The root password is set (not locked), and the key logs in as root.
    assert_eq!(lab.shell("d1", "passwd -S root | cut -d' ' -f2").1, "P");
    // The ssh-user exists, logs in with the environment's key and may use sudo.
    assert_eq!(lab.shell("d2", "id -un; sudo -n id -u").1, "tester\n0");
    assert_eq!(lab.shell("d2", "systemctl is-active qemu-guest-agent ssh").1, "active\nactive");
    let prefix = lab.home.path().join(".lago/default");
    assert_eq!(guest_agent_ping(&lago::prefix::socket_path(&prefix, "d1.qga")), "{\"return\": {}}");

    // Services through the systemd provider (detected).
    lab.cycle_service("d1", "qemu-guest-agent", ServiceProvider::Systemd);
    // Ansible's ping module (Python in the VM) through the inventory.
    let out = lab.ansible("ansible", &["all", "-m", "ping"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.matches("\"ping\": \"pong\"").count() == 2, "{stdout}");

    lab.ok(&["destroy", "--yes"]);
    assert!(!prefix.exists());
}
