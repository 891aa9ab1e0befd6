//! The `tiny` template: its image, and a boot with plain qemu under TCG with a seed from
//! `lago init` (the qemu provider of lago itself is tested elsewhere).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{lago, run, tiny_repo};

/// Image layout written by the builder.
const BOOT_START: u64 = 1 << 20;
const ROOT_START: u64 = 49 << 20;

#[test]
fn tiny_image_layout_files_and_metadata() {
    let repo = tiny_repo();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo.join("repo.metadata")).unwrap()).unwrap();
    let v1 = &meta["templates"]["tiny"]["versions"]["v1"];
    assert_eq!(v1["source"], "local");
    let handle = v1["handle"].as_str().unwrap();
    let image = repo.join(handle);
    let hash = std::fs::read_to_string(repo.join(format!("{handle}.hash"))).unwrap();
    assert_eq!(hash.trim(), lago::template::store::sha1_file(&image).unwrap());
    let tmeta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo.join(format!("{handle}.metadata"))).unwrap()).unwrap();
    assert_eq!(tmeta["distro"], "lago-tiny");
    assert_eq!(tmeta["root-partition"], "/dev/vda2");
    assert!(tmeta["kernel"].as_str().unwrap().ends_with("-amd64"));

    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    run("qemu-img", &["convert", "-O", "raw", image.to_str().unwrap(), raw.to_str().unwrap()]);
    let mbr = std::fs::read(&raw).unwrap()[..512].to_vec();
    assert_eq!(&mbr[510..], &[0x55, 0xaa], "MBR signature");
    let part = |i: usize| &mbr[446 + 16 * i..462 + 16 * i];
    let lba = |p: &[u8], at: usize| u32::from_le_bytes(p[at..at + 4].try_into().unwrap()) as u64 * 512;
    assert_eq!((part(0)[0], part(0)[4], lba(part(0), 8)), (0x80, 0x0e, BOOT_START), "bootable FAT16 boot partition");
    assert_eq!((part(1)[0], part(1)[4], lba(part(1), 8)), (0x00, 0x83, ROOT_START), "Linux root partition");
    assert!(mbr[..440].iter().any(|b| *b != 0), "syslinux boot code");

    let fat = format!("{}@@{BOOT_START}", raw.display());
    let listing = run("mdir", &["-a", "-b", "-i", &fat, "::"]);
    for f in ["::/vmlinuz", "::/initrd.img", "::/syslinux.cfg", "::/ldlinux.sys", "::/ldlinux.c32"] {
        assert!(listing.lines().any(|l| l.trim() == f), "{f} missing from the boot partition:\n{listing}");
    }
    let cfg = run("mtype", &["-i", &fat, "::syslinux.cfg"]);
    assert!(cfg.contains("root=LABEL=lago-root") && cfg.contains("console=ttyS0"), "{cfg}");

    let ext4 = format!("{}?offset={ROOT_START}", raw.display());
    let label = run("dumpe2fs", &["-h", &ext4]);
    assert!(label.contains("Filesystem volume name:   lago-root"), "{label}");
    for path in [
        "/sbin/init",
        "/usr/sbin/dropbear",
        "/usr/lib/openssh/sftp-server",
        "/sbin/service",
        "/etc/os-release",
        "/etc/init.d/rcS",
        "/usr/libexec/lago/apply-seed",
        "/lib/modules/lago/boot.order",
        "/etc/acpi/PWRF/00000080",
    ] {
        let out = Command::new("debugfs").args(["-R", &format!("stat {path}"), &ext4]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(!text.contains("File not found"), "{path} missing from the root filesystem: {text}");
    }
    // lago's wget and Debian's dynamic busybox as /bin/sh (which looks wget up in PATH) are files,
    // not links to busybox-static.
    for path in ["/usr/bin/wget", "/bin/sh"] {
        let stat = run("debugfs", &["-R", &format!("stat {path}"), &ext4]);
        assert!(stat.contains("Type: regular"), "{path}: {stat}");
    }
    let os_release = run("debugfs", &["-R", "cat /etc/os-release", &ext4]);
    assert!(os_release.contains("ID=lago-tiny"), "{os_release}");
    // No SSH host key in the template: every clone makes its own.
    let keys = run("debugfs", &["-R", "ls /etc/dropbear", &ext4]);
    assert!(!keys.contains("host_key"), "{keys}");
}

/// A qemu process killed when dropped.
struct Vm(Child);

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// OpenSSH client options for a throwaway guest.
const CLIENT_OPTIONS: [&str; 9] = [
    "-q",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "ConnectTimeout=2",
];

fn ssh(key: &Path, port: u16, cmd: &str) -> std::process::Output {
    Command::new("ssh")
        .args(CLIENT_OPTIONS)
        .args(["-i"])
        .arg(key)
        .args(["-p", &port.to_string(), "root@127.0.0.1", cmd])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn qmp(sock: &Path, command: &str) -> String {
    let s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    writeln!(w, r#"{{"execute": "qmp_capabilities"}}"#).unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    writeln!(w, r#"{{"execute": "{command}"}}"#).unwrap();
    // Asynchronous events may come before the reply.
    loop {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "QMP closed");
        if line.contains("\"return\"") || line.contains("\"error\"") {
            return line;
        }
    }
}

/// Boots `vm01` of `prefix` (made by `lago init` from [`one_nic_init`]`(net)`) with plain qemu
/// under TCG: its root disk, the seed drive `seed` (a `-drive` value), its NIC on a socket network
/// and the uplink with SSH forwarded from 127.0.0.1:`port`.
fn boot_tiny(prefix: &Path, net: u8, port: u16, seed: &str) -> Vm {
    let child = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-m",
            "256",
            "-smp",
            "1",
            "-display",
            "none",
            "-monitor",
            "none",
            "-nodefaults",
        ])
        .arg("-serial")
        .arg(format!("file:{}", prefix.join("logs/vm01.console.log").display()))
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", prefix.join("run/vm01.qmp").display()))
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=qcow2", prefix.join("images/vm01_root.qcow2").display()))
        .args(["-drive", seed])
        .args(["-device", "virtio-rng-pci"])
        .args(["-netdev", "socket,id=lab,mcast=230.0.0.1:31337,localaddr=127.0.0.1", "-device"])
        .arg(format!("virtio-net-pci,netdev=lab,mac=54:52:c0:a8:{net:02x}:07,romfile="))
        .arg("-netdev")
        .arg(format!("user,id=uplink,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22"))
        .arg("-device")
        .arg(format!("virtio-net-pci,netdev=uplink,mac=52:54:c0:a8:{net:02x}:07,romfile="))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu-system-x86_64 is installed by .ci/run");
    Vm(child)
}

/// Waits until the guest answers SSH with the environment's key (at most 240 s).
fn wait_for_ssh(vm: &mut Vm, prefix: &Path, key: &Path, port: u16) {
    let console = || std::fs::read_to_string(prefix.join("logs/vm01.console.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        if ssh(key, port, "true").status.success() {
            return;
        }
        if let Ok(Some(status)) = vm.0.try_wait() {
            panic!("qemu exited ({status}): {}", console());
        }
        assert!(Instant::now() < deadline, "no SSH after 240 s; console:\n{}", console());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The init file of the boots here: one VM whose NIC has the static address 192.168.`net`.7 (a
/// subnet per test: they run side by side).
fn one_nic_init(net: u8) -> String {
    format!(
        "domains:\n  vm01:\n    memory: 256\n    nics:\n      - {{net: lab, ip: 192.168.{net}.7}}\n    disks: [{{template_name: tiny, type: template, name: root, dev: vda}}]\nnets:\n  lab: {{dns_domain_name: e2e.test, gw: 192.168.{net}.1}}\n"
    )
}

#[test]
fn tiny_boots_from_disk_and_applies_the_seed() {
    const NET: u8 = 203;
    let repo = tiny_repo();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("LagoInitFile"), one_nic_init(NET)).unwrap();
    let repo_env = [("LAGO__INIT__TEMPLATE_REPO_PATH", repo.join("repo.metadata").display().to_string())];
    let out = lago(home.path(), &["init"], &repo_env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let prefix = home.path().join(".lago/default");
    let port = free_port();
    let qmp_sock = prefix.join("run/vm01.qmp");
    let started = Instant::now();
    let seed = format!("file={},if=virtio,format=raw,readonly=on", prefix.join("images/vm01-seed.img").display());
    let mut vm = boot_tiny(&prefix, NET, port, &seed);
    let key = prefix.join("id_rsa");
    wait_for_ssh(&mut vm, &prefix, &key, port);
    eprintln!("tiny: qemu start to SSH under TCG: {:.1} s", started.elapsed().as_secs_f64());
    let text = |cmd: &str| {
        let o = ssh(&key, port, cmd);
        assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    assert_eq!(text("hostname -f"), "vm01.e2e.test");
    assert_eq!(text("hostname"), "vm01");
    let addrs = text("ip -o -4 addr show");
    assert!(addrs.lines().any(|l| l.contains(" eth0 ") && l.contains("192.168.203.7/24")), "{addrs}");
    assert!(addrs.lines().any(|l| l.contains(" lago-uplink ")), "{addrs}");
    assert_eq!(text("cat /sys/class/net/eth0/address"), "54:52:c0:a8:cb:07");
    assert!(text("cat /etc/hosts").contains("192.168.203.7 vm01.e2e.test vm01"));
    assert_eq!(text("service dropbear status"), "dropbear is running");
    assert_eq!(ssh(&key, port, "service nothing status").status.code(), Some(1));
    assert!(text("grep ^ID= /etc/os-release").contains("lago-tiny"));
    // Password from the seed; key from the seed; tools for artifact collection.
    assert!(text("grep ^root: /etc/shadow").starts_with("root:$"));
    assert_eq!(
        text("echo hi | gzip | gzip -d; tar --version >/dev/null 2>&1 || tar --help >/dev/null 2>&1; echo ok"),
        "hi\nok"
    );
    // File transfer as OpenSSH 9's scp (SFTP protocol) does it.
    let local = home.path().join("payload");
    std::fs::write(&local, "payload\n").unwrap();
    let scp = Command::new("scp")
        .args(CLIENT_OPTIONS)
        .arg("-i")
        .arg(&key)
        .args(["-P", &port.to_string()])
        .arg(&local)
        .arg("root@127.0.0.1:/root/payload")
        .status()
        .unwrap();
    assert!(scp.success());
    assert_eq!(text("cat /root/payload"), "payload");
    // Graceful power-off through ACPI.
    assert!(qmp(&qmp_sock, "system_powerdown").contains("return"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = vm.0.try_wait().unwrap() {
            assert!(status.success(), "qemu exit status after ACPI power-off: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "guest ignored ACPI power-off");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn template_list_shows_tiny() {
    let repo = tiny_repo();
    let home = tempfile::tempdir().unwrap();
    let out = lago(
        home.path(),
        &["-f", "json", "template", "list"],
        &[("LAGO__INIT__TEMPLATE_REPO_PATH", repo.join("repo.metadata").display().to_string())],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["repository"], "local");
    let version = &v["templates"]["tiny"]["v1"];
    assert_eq!(version["cached"], false);
    assert!(version["size"].as_u64().unwrap() > 1 << 20);
}

/// The KVM probe's guest, booted for real: the template's kernel on the initramfs lago writes
/// for the probe reaches user space, whose hand-written `/init` prints the marker. Under TCG, so
/// that it passes on every host; KVM itself is only what the probe adds to the same boot.
#[test]
fn the_kvm_probes_guest_reaches_user_space_on_the_tiny_kernel() {
    let repo = tiny_repo();
    let kernel = std::fs::read_dir(&repo)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "vmlinux"))
        .expect("tiny publishes its kernel for direct boot");
    let qemu =
        lago::host::process::find_program("qemu-system-x86_64").expect("qemu-system-x86_64 is installed by .ci/run");
    let took =
        lago::provider::qemu::accel::linux_runs(&qemu, lago::config::Accel::Tcg, &kernel, Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("the probe's guest did not come up: {} {:?}", e.reason, e.evidence));
    eprintln!("the probe's guest reached user space under TCG in {took:.1?}");
}

/// OpenStack's form of the seed: no CIDATA disk, but a config drive (iso9660 labelled
/// `config-2` on an IDE CD-ROM, as nova attaches it to an i440fx machine) whose
/// `openstack/latest/user_data` is the seed's files as a newc cpio archive. `tiny` unpacks it and
/// applies it as it applies a CIDATA disk. The ISO is made with genisoimage, as nova makes it
/// (`scripts/openstack-cloud.sh install` installs it; `scripts/test.sh` runs that first, as root).
#[test]
fn tiny_applies_the_seed_of_an_openstack_config_drive() {
    const NET: u8 = 204;
    let repo = tiny_repo();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("LagoInitFile"), one_nic_init(NET)).unwrap();
    let repo_env = [("LAGO__INIT__TEMPLATE_REPO_PATH", repo.join("repo.metadata").display().to_string())];
    let out = lago(home.path(), &["init"], &repo_env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let prefix = home.path().join(".lago/default");
    // The seed's files, out of its FAT image.
    let files = home.path().join("seed-files");
    std::fs::create_dir(&files).unwrap();
    let seed_img = prefix.join("images/vm01-seed.img");
    run("mcopy", &["-s", "-n", "-i", seed_img.to_str().unwrap(), "::/", files.to_str().unwrap()]);
    let mut cpio = lago::host::cpio::Cpio::default();
    let mut dirs = vec![files.clone()];
    let mut count = 0;
    while let Some(dir) = dirs.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            let name = path.strip_prefix(&files).unwrap().to_str().unwrap().to_owned();
            if path.is_dir() {
                cpio.dir(&name);
                dirs.push(path);
            } else {
                cpio.file(&name, 0o644, &std::fs::read(&path).unwrap());
                count += 1;
            }
        }
    }
    assert!(files.join("lago/interfaces").is_file(), "the seed holds lago/interfaces");
    assert!(count >= 8, "{count} files in the seed");
    let drive = home.path().join("config-drive");
    std::fs::create_dir_all(drive.join("openstack/latest")).unwrap();
    std::fs::write(drive.join("openstack/latest/user_data"), cpio.finish()).unwrap();
    std::fs::write(drive.join("openstack/latest/meta_data.json"), r#"{"uuid": "e2e", "name": "vm01"}"#).unwrap();
    let iso = home.path().join("config-drive.iso");
    // The options nova's config drive builder gives genisoimage.
    let nova_options = ["-quiet", "-J", "-r", "-l", "-ldots", "-allow-lowercase", "-allow-multidot", "-V", "config-2"];
    let paths = ["-o", iso.to_str().unwrap(), drive.to_str().unwrap()];
    run("genisoimage", &[&nova_options[..], &paths[..]].concat());
    let port = free_port();
    let cdrom = format!("file={},if=ide,media=cdrom,readonly=on,format=raw", iso.display());
    let mut vm = boot_tiny(&prefix, NET, port, &cdrom);
    let key = prefix.join("id_rsa");
    wait_for_ssh(&mut vm, &prefix, &key, port);
    let text = |cmd: &str| {
        let o = ssh(&key, port, cmd);
        assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    assert_eq!(text("hostname -f"), "vm01.e2e.test");
    let addrs = text("ip -o -4 addr show");
    assert!(addrs.lines().any(|l| l.contains(" eth0 ") && l.contains("192.168.204.7/24")), "{addrs}");
    assert!(text("cat /etc/hosts").contains("192.168.204.7 vm01.e2e.test vm01"));
    // Nothing of the seed is left mounted or unpacked.
    assert_eq!(text("grep -c config-drive /proc/mounts || true; ls /run/seed 2>/dev/null | wc -l"), "0\n0");
}
