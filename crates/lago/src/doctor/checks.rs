//! The checks of `lago doctor`, one function per group of needs.

use std::path::{Path, PathBuf};

use super::host::{AptFacts, Host};
use super::report::{Check, Fix, Group, Paths, Report};
use crate::host::process::Found;
use crate::provider::qemu::accel::KvmProbe;

/// Package lists older than this are refreshed by `--fix`.
const MAX_LISTS_AGE_DAYS: u64 = 7;
/// The qemu packages, from bookworm-backports on Debian 12.
const QEMU_PACKAGES: &[&str] = &["qemu-system-x86", "qemu-system-common", "qemu-system-data", "seabios"];

/// The checks made so far, and what the fixes depend on (apt, root).
struct Checks<'a> {
    host: &'a dyn Host,
    apt: AptFacts,
    sudo: bool,
    checks: Vec<Check>,
}

impl Checks<'_> {
    /// Records one check: `Ok(what was found)` or `Err((what is wrong, its fix))`.
    fn push(
        &mut self,
        group: Group,
        name: &str,
        required: bool,
        purpose: &'static str,
        outcome: Result<String, (String, Fix)>,
    ) {
        let (ok, detail, fix) = match outcome {
            Ok(d) => (true, d, None),
            Err((d, f)) => (false, d, Some(f)),
        };
        self.checks.push(Check {
            group,
            name: name.to_owned(),
            ok,
            required,
            detail,
            purpose,
            fix,
            evidence: Vec::new(),
        });
    }

    /// Whether program `name` is there (`fix` installs it).
    fn tool(&self, name: &str, fix: Fix) -> Result<String, (String, Fix)> {
        self.host.find(name).map(|f| found_detail(&f)).ok_or_else(|| (NOT_FOUND.to_owned(), fix))
    }

    /// Installing packages, the way this host does it.
    fn install(&self, pkgs: &[&str]) -> Fix {
        if self.apt.present {
            Fix::Install { packages: pkgs.iter().map(|s| (*s).to_owned()).collect(), sudo: self.sudo }
        } else {
            Fix::Advice(format!("install {} with your distribution's package manager", pkgs.join(", ")))
        }
    }

    /// Installing qemu's packages: on Debian 12 from bookworm-backports, the same qemu as the
    /// qemu-img these hosts have.
    fn qemu_fix(&self, pkgs: &[&str]) -> Fix {
        let apt = &self.apt;
        if apt.present && apt.codename.as_deref() == Some("bookworm") {
            let source = (!apt.backports).then(|| {
                format!(
                    "Types: deb\nURIs: {}\nSuites: bookworm-backports\nComponents: main\nSigned-By: {}\n",
                    apt.mirror, apt.keyring
                )
            });
            Fix::Backports { packages: pkgs.iter().map(|s| (*s).to_owned()).collect(), source, sudo: self.sudo }
        } else {
            self.install(pkgs)
        }
    }
}

/// Runs every check.
pub fn examine(host: &dyn Host, paths: &Paths) -> Report {
    let mut c = Checks { host, apt: host.apt(), sudo: !host.is_root(), checks: Vec::new() };
    core(&mut c, paths);
    templates(&mut c, paths);
    extras(&mut c);
    libvirt(&mut c, paths);
    Report::new(c.checks)
}

/// What `lago init` and `lago start` need (they decide the exit code), and KVM.
fn core(c: &mut Checks<'_>, paths: &Paths) {
    // lago init / lago start.
    let qemu = c.host.find("qemu-system-x86_64").map(|f| f.path);
    let qemu_version = qemu.as_deref().and_then(|q| c.host.first_line(q, &["--version"])).map(|l| version_of(&l));
    c.push(
        Group::Core,
        "qemu-system-x86_64",
        true,
        "runs the VMs (one qemu per VM)",
        match (&qemu, &qemu_version) {
            (Some(p), Some(v)) => Ok(format!("QEMU {v} ({})", p.display())),
            (Some(p), None) => Err((format!("{} does not run", p.display()), c.qemu_fix(QEMU_PACKAGES))),
            (None, _) => Err((NOT_FOUND.into(), c.qemu_fix(QEMU_PACKAGES))),
        },
    );
    let img = c.host.find("qemu-img").map(|f| f.path);
    let img_version = img.as_deref().and_then(|q| c.host.first_line(q, &["--version"])).map(|l| version_of(&l));
    c.push(
        Group::Core,
        "qemu-img",
        true,
        "creates the VMs' disks on their templates",
        match (&img, &img_version, &qemu_version) {
            (None, _, _) => Err((NOT_FOUND.into(), c.qemu_fix(&["qemu-utils"]))),
            (Some(p), None, _) => Err((format!("{} does not run", p.display()), c.qemu_fix(&["qemu-utils"]))),
            (Some(_), Some(i), Some(q)) if i != q => Err((
                format!("version {i}, but qemu-system-x86_64 is {q}: install both from the same qemu"),
                c.qemu_fix(&[&["qemu-utils"], QEMU_PACKAGES].concat()),
            )),
            (Some(_), Some(i), Some(_)) => Ok(format!("{i}, the same qemu as qemu-system-x86_64")),
            (Some(_), Some(i), None) => Ok(i.clone()),
        },
    );
    for (name, purpose) in
        [("ssh", "runs commands in the VMs, `lago shell`"), ("ssh-keygen", "makes each environment's key pair")]
    {
        let outcome = c.tool(name, c.install(&["openssh-client"]));
        c.push(Group::Core, name, true, purpose, outcome);
    }
    let store = &paths.template_store;
    c.push(
        Group::Core,
        "template store",
        true,
        "holds each template version once (`template_store`)",
        c.host
            .writable(store)
            .map(|()| format!("{} is writable", store.display()))
            .map_err(|why| (why, dir_fix(store, c.sudo, c.host))),
    );
    if paths.store_warn_bytes > 0 {
        let bytes = crate::template::prune::dir_bytes(store);
        let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
        c.push(
            Group::Core,
            "template store size",
            false,
            "old template versions are removed by `lago template prune` (`store_warn_gib`)",
            if bytes <= paths.store_warn_bytes {
                Ok(format!("{:.1} GiB", gib(bytes)))
            } else {
                Err((
                    format!(
                        "{:.1} GiB, more than {:.0} GiB (`store_warn_gib`)",
                        gib(bytes),
                        gib(paths.store_warn_bytes)
                    ),
                    Fix::Advice(
                        "run `lago template prune` (it keeps what environments use), or raise `store_warn_gib`".into(),
                    ),
                ))
            },
        );
    }
    c.push(
        Group::Core,
        "lease directory",
        true,
        "keeps two environments off one network segment (`lease_dir`)",
        c.host
            .writable(&paths.lease_dir)
            .map(|()| format!("{} is writable", paths.lease_dir.display()))
            .map_err(|why| (why, dir_fix(&paths.lease_dir, c.sudo, c.host))),
    );
    c.push(
        Group::Core,
        "loopback",
        true,
        "SSH reaches lago's VMs through forwards on 127.0.0.1",
        c.host
            .loopback()
            .map(|()| "a free TCP port on 127.0.0.1".to_owned())
            .map_err(|why| (why, Fix::Advice("bring the loopback interface up: `ip link set lo up`".into()))),
    );
    host_leg(c, paths);
    memory_files(c, paths);
    let kvm = if qemu_version.is_some() {
        c.host.kvm()
    } else {
        KvmProbe { usable: false, reason: "not probed: qemu-system-x86_64 is missing".into(), evidence: Vec::new() }
    };
    let kvm_evidence = kvm.evidence.clone();
    c.push(
        Group::Core,
        "KVM",
        false,
        "hardware acceleration (`accel = auto` uses it where a Linux guest comes up under KVM)",
        if kvm.usable {
            Ok(format!("{}; VMs run under KVM", kvm.reason))
        } else {
            Err((
                format!("{}; VMs run under TCG (software emulation, slower)", kvm.reason),
                Fix::Advice(if kvm.reason.contains("missing") {
                    "enable virtualization in the firmware and load `kvm_intel` or `kvm_amd`, or keep TCG (`accel = tcg` skips the probe)".into()
                } else if kvm.reason.contains("cannot be opened") {
                    crate::provider::qemu::accel::device_access_advice(std::path::Path::new(
                        crate::provider::qemu::accel::KVM_DEVICE,
                    ))
                } else {
                    "nothing to do: `accel = auto` uses TCG here (`accel = tcg` skips the probe)".into()
                }),
            ))
        },
    );

    if let Some(check) = c.checks.last_mut() {
        check.evidence = kvm_evidence;
    }
}

/// What `lago template build tiny` needs.
fn templates(c: &mut Checks<'_>, paths: &Paths) {
    // lago template build tiny.
    c.push(
        Group::Templates,
        "apt package lists",
        false,
        "`lago template build` downloads Debian packages with apt",
        if !c.apt.present {
            Err((
                "apt-get not found: templates are built from Debian packages".into(),
                Fix::Advice("build templates on a Debian or Ubuntu host".into()),
            ))
        } else {
            match c.apt.lists_age_days {
                None => Err(("no package lists (apt-get update never ran)".into(), Fix::AptUpdate { sudo: c.sudo })),
                // Debian's mirrors keep only current versions: old lists name files that are gone.
                Some(days) if days > MAX_LISTS_AGE_DAYS => Err((
                    format!(
                        "the package lists are {days} days old: the packages they name may be gone from the mirror"
                    ),
                    Fix::AptUpdate { sudo: c.sudo },
                )),
                Some(0) => Ok("updated today".into()),
                Some(days) => Ok(format!("updated {days} day{} ago", if days == 1 { "" } else { "s" })),
            }
        },
    );
    c.push(
        Group::Templates,
        "mcopy",
        false,
        "syslinux installs the boot loader through mtools",
        c.tool("mcopy", c.install(&["mtools"])),
    );
    c.push(
        Group::Templates,
        "mke2fs",
        false,
        "writes the templates' root file systems",
        c.tool("mke2fs", c.install(&["e2fsprogs"])),
    );
    c.push(
        Group::Templates,
        "xz",
        false,
        "extracts the kernel of templates for direct boot, unpacks compressed templates",
        c.tool("xz", c.install(&["xz-utils"])),
    );
    c.push(
        Group::Templates,
        "zstd",
        false,
        "compresses and unpacks the artefacts of `lago capture` and `lago replay`",
        c.tool("zstd", c.install(&["zstd"])),
    );
    let repo_dir = repo_dir(&paths.template_repo);
    c.push(
        Group::Templates,
        "template repository",
        false,
        "`lago template build` publishes into the repository of `template_repo_path`",
        match &repo_dir {
            None => Ok(format!("{} is not local (build with `--repo-dir DIR`)", paths.template_repo)),
            Some(dir) => c
                .host
                .writable(dir)
                .map(|()| format!("{} is writable", dir.display()))
                .map_err(|why| (why, dir_fix(dir, c.sudo, c.host))),
        },
    );
}

/// What the debian12 templates, `build` steps, Ansible and pictures need.
fn extras(c: &mut Checks<'_>) {
    // Extras.
    c.push(
        Group::Extras,
        "mmdebstrap",
        false,
        "builds the debian12 template (`lago template build debian12`, as root)",
        c.tool("mmdebstrap", c.install(&["mmdebstrap"])),
    );
    let guestfs = c.install(&["guestfs-tools", "linux-image-amd64"]);
    c.push(
        Group::Extras,
        "virt-customize",
        false,
        "runs the `build` steps of init files",
        match c.host.find("virt-customize") {
            None => Err((NOT_FOUND.into(), guestfs)),
            Some(f) if !c.host.host_kernel() => Err((
                format!("{} is there, but /boot has no kernel for libguestfs's appliance", f.path.display()),
                c.install(&["linux-image-amd64"]),
            )),
            Some(f) => Ok(format!("{} with a host kernel in /boot", found_detail(&f))),
        },
    );
    c.push(
        Group::Extras,
        "guestfish",
        false,
        "reads the artifacts of stopped VMs from their disks (`lago collect`)",
        c.tool("guestfish", c.install(&["guestfish", "linux-image-amd64"])),
    );
    c.push(
        Group::Extras,
        "ansible",
        false,
        "optional: drives VMs through `lago ansible_hosts` (the tests check it)",
        c.tool("ansible", c.install(&["ansible-core"])),
    );
    c.push(
        Group::Extras,
        "graphviz",
        false,
        "renders the picture of an environment (`lago graph`; `lago status -f dot` prints its text)",
        c.tool(crate::ops::graph::DOT, c.install(&["graphviz"])),
    );
}

/// Whether `nat` networks of `local-qemu` VMs get their host leg (the host reaches VMs at their
/// addresses, VMs reach the host at the gateway); without it, ports forwarded on 127.0.0.1.
fn host_leg(c: &mut Checks<'_>, paths: &Paths) {
    use crate::config::HostLeg;
    let setting = &paths.host_leg;
    let outcome = match (setting.leg, c.host.may_create_interfaces(), c.host.find("ip")) {
        (HostLeg::Off, _, _) => Ok(format!(
            "off: `host_leg = off` ({}); the host reaches VMs through ports forwarded on 127.0.0.1",
            setting.origin
        )),
        (_, Err(why), _) => Err((
            format!("off: {why}; the host reaches VMs through ports forwarded on 127.0.0.1 only"),
            Fix::Advice(
                "run lago as root, or give it CAP_NET_ADMIN: `sudo setcap cap_net_admin+ep \"$(command -v lago)\"`"
                    .into(),
            ),
        )),
        (_, Ok(()), None) => Err(("off: `ip` (iproute2) is missing".into(), c.install(&["iproute2"]))),
        (_, Ok(()), Some(_)) => Ok(
            "on: nat networks get a TAP interface holding their gateway (copies made by `lago fork` share their origin's subnets: a copy's network gets one only where no other prefix holds that subnet)"
                .into(),
        ),
    };
    let required = setting.leg == HostLeg::On;
    c.push(
        Group::Core,
        "host leg",
        required,
        "the host at VMs' addresses and VMs at the gateway (nat networks)",
        outcome,
    );
}

/// Less free than this on the tmpfs of memory files is said: VMs whose memory does not fit run
/// with ordinary memory.
const MEMORY_FILES_LOW: u64 = 1 << 30;

/// Where VMs keep their memory: a directory on a tmpfs, so that `lago fork` copies a running
/// environment (its memory shared with the copies until written); or ordinary memory, and why.
fn memory_files(c: &mut Checks<'_>, paths: &Paths) {
    use crate::host::memory::human;
    let advice = || {
        Fix::Advice(
            "set `memory_dir` to a directory on a tmpfs (`/dev/shm` is one on most hosts), then start the VMs again"
                .into(),
        )
    };
    let outcome = match c.host.memory_dir(&paths.memory_dir) {
        Ok((dir, space)) if space.free < MEMORY_FILES_LOW => Err((
            format!(
                "{}: its tmpfs has {} free of {}; VMs whose memory does not fit run with ordinary memory (`lago fork` refuses them), and starts wait in line",
                dir.display(),
                human(space.free),
                human(space.total)
            ),
            Fix::Advice("free some of that tmpfs, or give `memory_dir` a larger one".into()),
        )),
        Ok((dir, space)) => Ok(format!(
            "{}: a tmpfs with {} free of {}; running environments can be forked",
            dir.display(),
            human(space.free),
            human(space.total)
        )),
        Err(why) => Err((format!("{why}: VMs run with ordinary memory, and `lago fork` is refused"), advice())),
    };
    c.push(
        Group::Core,
        "memory files",
        false,
        "VMs keep their memory in a file, so that `lago fork` copies a running environment",
        outcome,
    );
}

/// What `local-libvirt` VMs need.
fn libvirt(c: &mut Checks<'_>, paths: &Paths) {
    // local-libvirt.
    const LIBVIRT_PACKAGES: &[&str] = &["libvirt-daemon-system", "libvirt-clients", "dnsmasq-base", "iptables"];
    let libvirtd = c.host.find("libvirtd");
    c.push(
        Group::Libvirt,
        "libvirtd",
        false,
        "runs local-libvirt VMs (a host's libvirt daemon)",
        libvirtd.as_ref().map(found_detail).ok_or_else(|| (NOT_FOUND.to_owned(), c.install(LIBVIRT_PACKAGES))),
    );
    c.push(
        Group::Libvirt,
        "dnsmasq",
        false,
        "serves DHCP and DNS on libvirt's nat networks",
        c.tool("dnsmasq", c.install(&["dnsmasq-base"])),
    );
    c.push(
        Group::Libvirt,
        "virsh",
        false,
        "attaches `lago console` to libvirt VMs",
        c.tool("virsh", c.install(&["libvirt-clients"])),
    );
    c.push(
        Group::Libvirt,
        "libvirt host",
        false,
        "the default host of local-libvirt VMs (`libvirt_url`)",
        c.host.libvirt(&paths.libvirt_url).map_err(|why| {
            let advice = if libvirtd.is_some() {
                "start libvirtd (`systemctl start libvirtd`), or point `libvirt_url` at a running host"
            } else {
                "install libvirt (above), then start libvirtd, or point `libvirt_url` at a running host"
            };
            (format!("{} does not answer: {why}", paths.libvirt_url), Fix::Advice(advice.into()))
        }),
    );
}

/// What a check of a program says when it is nowhere lago looks.
const NOT_FOUND: &str = "not installed: not on PATH, nor in /usr/local/sbin, /usr/sbin or /sbin";

/// A program found: its path, and whether the user's shell finds it too.
fn found_detail(found: &Found) -> String {
    if found.on_path {
        found.path.display().to_string()
    } else {
        let dir = found.path.parent().map(|d| d.display().to_string()).unwrap_or_default();
        format!(
            "{} (installed, not on your PATH: lago looks in {dir} too; add it to PATH to run it yourself)",
            found.path.display()
        )
    }
}

fn dir_fix(dir: &Path, sudo: bool, host: &dyn Host) -> Fix {
    Fix::Directory { path: dir.to_owned(), owner: sudo.then(|| host.user()) }
}

/// The directory of a local repository (`/x/repo.metadata`, `file:///x/repo.metadata`).
fn repo_dir(location: &str) -> Option<PathBuf> {
    if location.contains("://") && !location.starts_with("file://") {
        return None;
    }
    let path = Path::new(location.strip_prefix("file://").unwrap_or(location));
    Some(path.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// `QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)` → `10.0.2 (Debian 1:10.0.2+ds-2)`.
fn version_of(line: &str) -> String {
    line.split_once("version ").map(|(_, v)| v.trim().to_owned()).unwrap_or_else(|| line.trim().to_owned())
}
