//! `lago template build debian12` and `debian12-cloud`: a real Debian 12 (systemd, OpenSSH,
//! qemu-guest-agent) made by `mmdebstrap`, on the same disk layout as `tiny` (MBR, FAT boot
//! partition with syslinux, ext4 root labelled `lago-root`), with its kernel and initramfs also
//! published for direct boot.
//!
//! - `debian12` is configured at boot by a small unit of lago's own (`lago-seed.service`, a shell
//!   script) from the plain-file half of the NoCloud seed, before the network and sshd start:
//!   cloud-init's Python start-up under emulation cost more than half of the boot.
//! - `debian12-cloud` is configured by the real cloud-init from the same seed, as a
//!   distribution's cloud image would be: it keeps lago's seed proven against cloud-init.
//!
//! `mmdebstrap` runs in its `root` mode, so this build needs root (the root filesystem must
//! hold files owned by other users, and `mke2fs -d` copies ownership as it finds it). Downloaded
//! packages are kept in the build cache, so a rebuild only refreshes the package lists.

use std::path::Path;

use super::disk::{DiskLayout, Image, boot_files, write_disk, write_file};
use super::{BuildError, Gate, fingerprint};
use crate::host::pathio::at as io;
use crate::host::process::{CommandRunner, Invocation};
use crate::report::{Reporter, task};

/// How a Debian 12 template is configured at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// By lago's own first-boot unit (`debian12`).
    Lago,
    /// By cloud-init (`debian12-cloud`).
    Cloud,
}

/// Packages on top of mmdebstrap's `apt` variant (essential packages and apt), for both flavours
/// (`debian12-cloud` adds cloud-init).
pub const PACKAGES: &[&str] = &[
    "linux-image-amd64",
    "initramfs-tools",
    "systemd-sysv",
    "udev",
    "dbus",
    "openssh-server",
    "qemu-guest-agent",
    // Ansible's modules run on the VM's Python (cloud-init brings it to debian12-cloud anyway).
    "python3",
    "ifupdown",
    "isc-dhcp-client",
    "iproute2",
    "iputils-ping",
    "netbase",
    "sudo",
    "procps",
    "less",
    "syslinux",
    "syslinux-common",
    "e2fsprogs",
    "tar",
    "gzip",
];

/// Virtual disk size: the root filesystem holds about 750 MiB.
const DISK_SIZE: u64 = 4 << 30;
/// `net.ifnames=0`: NICs keep the kernel's names until the seed renames them by MAC (udev's
/// predictable names would race with that rename); `cryptomgr.notests`: no self-tests of the
/// kernel's crypto algorithms at boot.
const KERNEL_CMDLINE: &str =
    "console=ttyS0,115200 root=LABEL=lago-root rw quiet random.trust_cpu=on net.ifnames=0 cryptomgr.notests";

/// Files put in place before any package is installed: the initramfs holds only the drivers
/// that mount the root (a smaller initramfs boots faster under emulation).
const EARLY_FILES: &[(&str, &str)] = &[
    ("etc/initramfs-tools/conf.d/lago.conf", "MODULES=list\n"),
    ("etc/initramfs-tools/modules", "virtio_pci\nvirtio_blk\nvirtio_scsi\nsd_mod\next4\ncrc32c_generic\n"),
];

/// Files written into the finished root filesystem of both flavours.
const FILES: &[(&str, &str)] =
    &[("etc/fstab", "LABEL=lago-root / ext4 rw,errors=remount-ro 0 1\n"), ("etc/hostname", "localhost\n")];

/// Files of `debian12`: lago's first-boot unit, enabled.
const LAGO_FILES: &[(&str, &str, u32)] = &[
    ("usr/libexec/lago/lago-seed", include_str!("debian12/lago-seed"), 0o755),
    ("etc/systemd/system/lago-seed.service", include_str!("debian12/lago-seed.service"), 0o644),
];

/// Files of `debian12-cloud`.
const CLOUD_FILES: &[(&str, &str)] = &[
    // Only the seed: probing cloud metadata services would wait on network timeouts.
    ("etc/cloud/cloud.cfg.d/90-lago.cfg", "datasource_list: [ NoCloud, None ]\nlocale: C.UTF-8\n"),
    // Host keys are made at first boot (cloud-init does it too; this covers a boot without it).
    ("etc/systemd/system/ssh.service.d/lago-host-keys.conf", "[Service]\nExecStartPre=/usr/bin/ssh-keygen -A\n"),
    ("etc/hostname", "localhost\n"),
    ("etc/resolv.conf", ""),
    // Static IPv6 addresses are lago's plan: no duplicate address detection, which ifupdown
    // (cloud-init's renderer here) would wait for before sshd starts. The pattern reaches each
    // NIC as it appears (systemd's udev rule runs systemd-sysctl for it).
    ("etc/sysctl.d/90-lago-ipv6.conf", "net.ipv6.conf.default.accept_dad = 0\nnet.ipv6.conf.*.accept_dad = 0\n"),
];

/// Units a test VM does not need at boot.
const MASKED: &[&str] = &[
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "systemd-timesyncd.service",
];

/// Builds the raw disk of `debian12` in `work`; `None` when the gate finds it unchanged.
pub(crate) fn build_image(
    work: &Path,
    cache_dir: &Path,
    flavour: Flavour,
    gate: &Gate,
    runner: &dyn CommandRunner,
    reporter: &dyn Reporter,
) -> Result<Option<Image>, BuildError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(BuildError::Missing(
            "building debian12 needs root: mmdebstrap runs in its root mode and the image keeps file ownership".into(),
        ));
    }
    let rootfs = work.join("rootfs");
    let debs = cache_dir.join("debian12-debs");
    let early = work.join("early");
    for d in [&debs, &early] {
        std::fs::create_dir_all(d).map_err(io("create", d))?;
    }
    for (path, content) in EARLY_FILES {
        write_file(&early.join(path), content.as_bytes(), 0o644)?;
    }
    let mut packages = PACKAGES.to_vec();
    if flavour == Flavour::Cloud {
        packages.push("cloud-init");
    }
    task(reporter, "Install Debian 12 with mmdebstrap", || {
        let inv = Invocation::new("mmdebstrap")
            .args(["--mode=root", "--variant=apt", "--format=directory", "--quiet"])
            .arg(format!("--include={}", packages.join(",")))
            .args([
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
                "--dpkgopt=path-include=/usr/share/locale/locale.alias",
                "--aptopt=Acquire::Languages \"none\"",
                "--skip=download/empty",
                "--skip=essential/unlink",
                "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/",
            ])
            .arg(format!("--setup-hook=sync-in {} /var/cache/apt/archives/", debs.display()))
            .arg(format!("--setup-hook=sync-in {} /", early.display()))
            .arg(format!("--customize-hook=sync-out /var/cache/apt/archives {}", debs.display()))
            .arg("bookworm")
            .arg(&rootfs);
        runner.run(&inv).map_err(|source| BuildError::Tool { step: "install Debian 12 with mmdebstrap".into(), source })
    })?;
    let inputs = recipe_inputs(&rootfs, flavour)?;
    if gate.unchanged(&inputs) {
        return Ok(None);
    }
    task(reporter, "Configure for lago", || configure(&rootfs, flavour, runner))?;
    let boot = rootfs.join("boot");
    let kernel = std::fs::read_dir(&boot)
        .map_err(io("read", &boot))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix("vmlinuz-")).map(str::to_owned))
        .max()
        .ok_or_else(|| BuildError::Missing(format!("no kernel in {}", boot.display())))?;
    let raw = work.join("disk.raw");
    let layout = DiskLayout {
        size: DISK_SIZE,
        tools: &rootfs,
        vmlinuz: &boot.join(format!("vmlinuz-{kernel}")),
        initrd: &boot.join(format!("initrd.img-{kernel}")),
        cmdline: KERNEL_CMDLINE,
        rootfs: &rootfs,
    };
    task(reporter, "Write disk image", || write_disk(&layout, &raw, runner))?;
    let boot = task(reporter, "Extract the kernel for direct boot", || boot_files(&layout, work, runner))?;
    let bootstrap = if flavour == Flavour::Cloud { "cloud-init" } else { "lago-seed" };
    Ok(Some(Image { raw, kernel, distro: "debian12", boot: Some(boot), inputs, bootstrap, guest_agent: true }))
}

/// The fingerprint of a Debian 12 image: the flavour, this recipe and the disk's (their source),
/// lago's files, and every installed package with its exact version (dpkg's status database of
/// the freshly installed root filesystem).
fn recipe_inputs(rootfs: &Path, flavour: Flavour) -> Result<String, BuildError> {
    let status_path = rootfs.join("var/lib/dpkg/status");
    let status = std::fs::read_to_string(&status_path).map_err(io("read", &status_path))?;
    let mut installed: Vec<String> = Vec::new();
    for stanza in status.split("\n\n") {
        let field = |name: &str| stanza.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
        if let (Some(package), Some(version)) = (field("Package:"), field("Version:")) {
            let arch = field("Architecture:").unwrap_or("");
            installed.push(format!("{package}:{arch}={version}"));
        }
    }
    installed.sort();
    let flavour_name: &[u8] = if flavour == Flavour::Cloud { b"debian12-cloud" } else { b"debian12" };
    let mut parts: Vec<&[u8]> =
        vec![flavour_name, include_str!("debian.rs").as_bytes(), include_str!("disk.rs").as_bytes()];
    for (path, content) in EARLY_FILES.iter().chain(FILES).chain(CLOUD_FILES) {
        parts.extend([path.as_bytes(), content.as_bytes()]);
    }
    for (path, content, _) in LAGO_FILES {
        parts.extend([path.as_bytes(), content.as_bytes()]);
    }
    parts.extend(installed.iter().map(|p| p.as_bytes()));
    Ok(fingerprint(parts))
}

fn configure(rootfs: &Path, flavour: Flavour, runner: &dyn CommandRunner) -> Result<(), BuildError> {
    // The template carries no identity: no host keys, no machine id, no cached packages.
    for dir in ["etc/ssh", "var/cache/apt/archives"] {
        let dir = rootfs.join(dir);
        for e in std::fs::read_dir(&dir).map_err(io("read", &dir))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("ssh_host_") || name.ends_with(".deb") {
                std::fs::remove_file(e.path()).map_err(io("remove", &e.path()))?;
            }
        }
    }
    write_file(&rootfs.join("etc/machine-id"), b"", 0o444)?;
    let _ = std::fs::remove_file(rootfs.join("var/lib/dbus/machine-id"));
    let mut files: Vec<(&str, &str, u32)> = FILES.iter().map(|(p, c)| (*p, *c, 0o644)).collect();
    match flavour {
        Flavour::Lago => files.extend_from_slice(LAGO_FILES),
        Flavour::Cloud => files.extend(CLOUD_FILES.iter().map(|(p, c)| (*p, *c, 0o644))),
    }
    for (path, content, mode) in files {
        let p = rootfs.join(path);
        let _ = std::fs::remove_file(&p);
        write_file(&p, content.as_bytes(), mode)?;
    }
    if flavour == Flavour::Lago {
        runner
            .run(
                &Invocation::new("systemctl")
                    .arg(format!("--root={}", rootfs.display()))
                    .args(["enable", "lago-seed.service"]),
            )
            .map_err(|source| BuildError::Tool { step: "enable lago-seed.service".into(), source })?;
    }
    runner
        .run(&Invocation::new("systemctl").arg(format!("--root={}", rootfs.display())).arg("mask").args(MASKED))
        .map_err(|source| BuildError::Tool { step: "mask boot-time units".into(), source })?;
    Ok(())
}
