//! The `tiny` recipe: Debian 12's kernel with a busybox + dropbear userland on ext4, from
//! packages `apt-get download`s and `dpkg-deb -x` unpacks, with an initramfs written here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::disk::{DISK_SIZE, DiskLayout, Image, boot_files, write_disk, write_file};
use super::{BuildError, Gate, fingerprint};
use crate::host::pathio::at as io;
use crate::host::process::{CommandRunner, Invocation};
use crate::report::{Reporter, task};

/// Packages of `tiny` besides the kernel (whose versioned name is resolved from
/// `linux-image-amd64`).
const TINY_PACKAGES: &[&str] = &[
    "busybox-static",
    SHELL_BUSYBOX,
    "dropbear-bin",
    "openssh-sftp-server",
    "libc6",
    "libcrypt1",
    "libtomcrypt1",
    "libtommath1",
    "libgmp10",
    "zlib1g",
    "syslinux",
    "syslinux-common",
];

/// The package of `/bin/sh`: Debian's dynamic busybox, whose shell looks commands up in `PATH`.
/// busybox-static's shell runs its own applets before any program of `PATH`
/// (`FEATURE_SH_STANDALONE`): neither lago's `wget` nor a user's own tools could stand in for
/// one. Everything else is busybox-static's: the applets, the initramfs, and the shell of lago's
/// boot scripts (`#!/bin/busybox sh`), where an applet forks without an exec (and without the
/// dynamic loader): about 0.5 s of CPU less per boot under TCG.
const SHELL_BUSYBOX: &str = "busybox";
/// That shell's names in busybox-static's applet list: `bin/sh` is the dynamic busybox itself
/// (it needs libc6's libc and libresolv, in the image for dropbear), `bin/ash` a link to it.
const SHELL_LINKS: &[&str] = &["bin/sh", "bin/ash"];

/// Drivers the initramfs loads to mount the root filesystem (with their dependencies). The
/// virtio-scsi ones are loaded only when the VM has a virtio-scsi controller.
const INITRD_MODULES: &[&str] = &["virtio_pci", "virtio_blk", "ext4", "crc32c_generic"];
const INITRD_SCSI_MODULES: &[&str] = &["virtio_scsi", "sd_mod"];
/// Drivers the root filesystem loads at boot: entropy first (so that nothing waits for the
/// kernel's random pool), then network, the seed's filesystem, the ACPI power button.
const BOOT_MODULES: &[&str] = &[
    "virtio_rng",
    "virtio_net",
    "vfat",
    "nls_cp437",
    "nls_iso8859_1",
    "nls_ascii",
    "button",
    "evdev",
    "virtio_console",
];
/// Drivers loaded only when the seed's `lago/modules` asks for them (IDE disks, CD-ROMs).
const OPTIONAL_MODULES: &[&str] = &["ata_piix", "sr_mod", "isofs"];

/// `cryptomgr.notests`: no self-tests of the kernel's crypto algorithms at boot (0.25 s of the
/// kernel's 1.45 s under TCG).
const KERNEL_CMDLINE: &str =
    "console=ttyS0,115200 root=LABEL=lago-root rw quiet loglevel=3 panic=10 random.trust_cpu=on cryptomgr.notests";

/// Builds `tiny`'s raw disk in `work`; `None` when the gate finds it unchanged.
pub(super) fn build_image(
    work: &Path,
    cache_dir: &Path,
    gate: &Gate,
    runner: &dyn CommandRunner,
    reporter: &dyn Reporter,
) -> Result<Option<Image>, BuildError> {
    let debs = task(reporter, "Download packages", || download(cache_dir, runner))?;
    let inputs = recipe_inputs(&debs);
    if gate.unchanged(&inputs) {
        return Ok(None);
    }
    let pkgs = work.join("pkgs");
    // Both busybox packages have a bin/busybox: the shell's is unpacked apart.
    let shell = work.join(SHELL_BUSYBOX);
    task(reporter, "Extract packages", || {
        for deb in &debs {
            let into = if package_of(deb) == SHELL_BUSYBOX { &shell } else { &pkgs };
            runner
                .run(&Invocation::new("dpkg-deb").arg("-x").arg(deb).arg(into))
                .map_err(|source| BuildError::Tool { step: format!("extract {}", deb.display()), source })?;
        }
        Ok::<(), BuildError>(())
    })?;
    let kernel = only_entry(&pkgs.join("lib/modules"))?;
    let initrd = work.join("initrd.img");
    let in_initrd = task(reporter, "Write initramfs", || write_initramfs(&pkgs, &kernel, &initrd))?;
    let rootfs = work.join("rootfs");
    task(reporter, "Assemble root filesystem", || {
        assemble_rootfs(&pkgs, &shell.join("bin/busybox"), &rootfs, runner)?;
        install_root_modules(&pkgs, &kernel, &in_initrd, &rootfs)
    })?;
    let raw = work.join("disk.raw");
    let layout = DiskLayout {
        size: DISK_SIZE,
        tools: &pkgs,
        vmlinuz: &pkgs.join(format!("boot/vmlinuz-{kernel}")),
        initrd: &initrd,
        cmdline: KERNEL_CMDLINE,
        rootfs: &rootfs,
    };
    task(reporter, "Write disk image", || write_disk(&layout, &raw, runner))?;
    let boot = task(reporter, "Extract the kernel for direct boot", || boot_files(&layout, work, runner))?;
    Ok(Some(Image {
        raw,
        kernel,
        distro: "lago-tiny",
        boot: Some(boot),
        inputs,
        bootstrap: "lago-seed",
        guest_agent: false,
    }))
}

/// The fingerprint of a `tiny` image: this recipe and the disk's (their source), the guest
/// files, and the packages (a `.deb`'s name holds its exact version).
fn recipe_inputs(debs: &[PathBuf]) -> String {
    let mut names: Vec<String> =
        debs.iter().filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned())).collect();
    names.sort();
    let mut parts: Vec<&[u8]> = vec![
        b"tiny",
        include_str!("tiny.rs").as_bytes(),
        include_str!("disk.rs").as_bytes(),
        include_str!("tiny/init").as_bytes(),
    ];
    for (path, content, _) in GUEST_FILES {
        parts.extend([path.as_bytes(), content.as_bytes()]);
    }
    parts.extend(names.iter().map(|n| n.as_bytes()));
    fingerprint(parts)
}

/// `apt-get download`s what is missing from the cache; returns every `.deb` to extract.
fn download(cache: &Path, runner: &dyn CommandRunner) -> Result<Vec<PathBuf>, BuildError> {
    let deps = runner
        .run(&Invocation::new("apt-cache").args(["depends", "linux-image-amd64"]))
        .map_err(|source| BuildError::Tool { step: "resolve the kernel package".into(), source })?;
    let kernel = deps
        .stdout_text()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .map(str::to_owned)
        .ok_or_else(|| {
            BuildError::Missing(
                "`apt-cache depends linux-image-amd64` names no linux-image package (run `apt-get update`)".into(),
            )
        })?;
    let mut wanted: Vec<String> = vec![kernel];
    wanted.extend(TINY_PACKAGES.iter().map(|s| (*s).to_owned()));
    let cached = |pkg: &str| -> Option<PathBuf> {
        let prefix = format!("{pkg}_");
        std::fs::read_dir(cache).ok()?.flatten().map(|e| e.path()).find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
    };
    let missing: Vec<&String> = wanted.iter().filter(|p| cached(p).is_none()).collect();
    if !missing.is_empty() {
        let inv =
            Invocation::new("apt-get").args(["download", "-q"]).args(missing.iter().map(|s| s.as_str())).cwd(cache);
        runner
            .run(&inv)
            .map_err(|source| BuildError::Tool { step: "download packages with apt-get".into(), source })?;
    }
    wanted
        .iter()
        .map(|p| {
            cached(p)
                .ok_or_else(|| BuildError::Missing(format!("package {p} was not downloaded into {}", cache.display())))
        })
        .collect()
}

/// The package a `.deb` holds: its name up to the version (`busybox_1%3a1.35.0-4_amd64.deb`).
fn package_of(deb: &Path) -> &str {
    let name = deb.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    name.split('_').next().unwrap_or(name)
}

fn only_entry(dir: &Path) -> Result<String, BuildError> {
    let names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io("read", dir))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(BuildError::Missing(format!("expected exactly one kernel in {}, found {names:?}", dir.display()))),
    }
}

/// Guest files, embedded at build time.
const GUEST_FILES: &[(&str, &str, u32)] = &[
    ("etc/inittab", include_str!("tiny/inittab"), 0o644),
    ("etc/init.d/rcS", include_str!("tiny/rcS"), 0o755),
    ("etc/init.d/rcK", include_str!("tiny/rcK"), 0o755),
    ("etc/init.d/functions", include_str!("tiny/functions"), 0o644),
    ("etc/init.d/dropbear", include_str!("tiny/dropbear.init"), 0o755),
    ("etc/init.d/syslogd", include_str!("tiny/syslogd.init"), 0o755),
    ("etc/init.d/acpid", include_str!("tiny/acpid.init"), 0o755),
    ("etc/os-release", include_str!("tiny/os-release"), 0o644),
    ("usr/libexec/lago/apply-seed", include_str!("tiny/apply-seed"), 0o755),
    ("usr/share/udhcpc/default.script", include_str!("tiny/udhcpc.script"), 0o755),
    ("sbin/service", include_str!("tiny/service"), 0o755),
    // In place of busybox's applet link: Debian's busybox crashes on `wget -T SEC` (see the file).
    ("usr/bin/wget", include_str!("tiny/wget"), 0o755),
    ("etc/acpi/PWRF/00000080", "#!/bin/busybox sh\nexec poweroff\n", 0o755),
    ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644),
    // root's password is the `root-password` of the template's metadata (`123456`, the
    // original's), so the image brings its own access without a seed (`init --skip-bootstrap`),
    // as the original's templates did: `openssl passwd -6 -salt lagotiny 123456`.
    (
        "etc/shadow",
        "root:$6$lagotiny$g4rdAbl/Zf6PwNZJqbpR3whEKCwAnfZFdmABMH6vsFbQ.kW70siFWuwA9mIFGVEsPjbWadNu16tT1GpgAa6xi/:19000:0:99999:7:::\n",
        0o600,
    ),
    ("etc/group", "root:x:0:\n", 0o644),
    ("etc/shells", "/bin/sh\n/bin/ash\n", 0o644),
    ("etc/hostname", "localhost\n", 0o644),
    ("etc/hosts", "127.0.0.1 localhost\n", 0o644),
    ("etc/fstab", "LABEL=lago-root / ext4 rw 0 1\n", 0o644),
    ("etc/profile", "export PATH=/sbin:/bin:/usr/sbin:/usr/bin\nexport PS1='\\u@\\h:\\w\\$ '\n", 0o644),
];

fn copy_tree(from: &Path, to: &Path) -> Result<(), BuildError> {
    let inv_err =
        |e| BuildError::Io(crate::host::pathio::PathError { action: "copy", path: from.to_owned(), source: e });
    for entry in std::fs::read_dir(from).map_err(io("read", from))? {
        let entry = entry.map_err(inv_err)?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let ft = entry.file_type().map_err(io("read", &src))?;
        if ft.is_dir() {
            std::fs::create_dir_all(&dst).map_err(io("create", &dst))?;
            copy_tree(&src, &dst)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&src).map_err(io("read", &src))?;
            let _ = std::fs::remove_file(&dst);
            std::os::unix::fs::symlink(target, &dst).map_err(io("link", &dst))?;
        } else {
            std::fs::copy(&src, &dst).map_err(io("copy", &src))?;
        }
    }
    Ok(())
}

fn symlink(target: &str, link: &Path) -> Result<(), BuildError> {
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    if link.symlink_metadata().is_ok() {
        return Ok(());
    }
    std::os::unix::fs::symlink(target, link).map_err(io("link", link))?;
    Ok(())
}

fn assemble_rootfs(pkgs: &Path, shell: &Path, root: &Path, runner: &dyn CommandRunner) -> Result<(), BuildError> {
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "lib",
        "etc/dropbear",
        "etc/lago",
        "root",
        "home",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "var/log",
        "mnt",
    ] {
        std::fs::create_dir_all(root.join(d)).map_err(io("create", &root.join(d)))?;
    }
    // Shared libraries of dropbear and sftp-server, and the dynamic loader.
    for d in ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64"] {
        if pkgs.join(d).is_dir() {
            std::fs::create_dir_all(root.join(d)).map_err(io("create", &root.join(d)))?;
            copy_tree(&pkgs.join(d), &root.join(d))?;
        }
    }
    let _ = std::fs::remove_dir_all(root.join("usr/lib/x86_64-linux-gnu/gconv"));
    std::fs::copy(pkgs.join("bin/busybox"), root.join("bin/busybox")).map_err(io("copy", &pkgs.join("bin/busybox")))?;
    std::fs::copy(shell, root.join("bin/sh")).map_err(io("copy", shell))?;
    let applets = runner
        .run(&Invocation::new(&pkgs.join("bin/busybox").display().to_string()).arg("--list-full"))
        .map_err(|source| BuildError::Tool { step: "list busybox applets".into(), source })?;
    // No link for the shell, nor for applets that a guest file replaces (writing the file would
    // follow the link onto busybox).
    let replaced = |applet: &str| SHELL_LINKS.contains(&applet) || GUEST_FILES.iter().any(|(path, ..)| *path == applet);
    for applet in
        applets.stdout_text().lines().map(str::trim).filter(|a| !a.is_empty() && *a != "bin/busybox" && !replaced(a))
    {
        let depth = applet.matches('/').count();
        symlink(&format!("{}bin/busybox", "../".repeat(depth)), &root.join(applet))?;
    }
    for (from, to) in [
        ("usr/sbin/dropbear", "usr/sbin/dropbear"),
        ("usr/bin/dropbearkey", "usr/bin/dropbearkey"),
        ("usr/bin/dbclient", "usr/bin/dbclient"),
        ("usr/lib/openssh/sftp-server", "usr/lib/openssh/sftp-server"),
    ] {
        let (src, dst) = (pkgs.join(from), root.join(to));
        std::fs::create_dir_all(dst.parent().unwrap_or(root)).map_err(io("create", &dst))?;
        std::fs::copy(&src, &dst).map_err(io("copy", &src))?;
    }
    symlink("sh", &root.join("bin/ash"))?;
    // dropbear looks for the SFTP server here.
    symlink("openssh/sftp-server", &root.join("usr/lib/sftp-server"))?;
    for (path, content, mode) in GUEST_FILES {
        write_file(&root.join(path), content.as_bytes(), *mode)?;
    }
    if nix::unistd::geteuid().is_root() {
        // Built as root: files already belong to root, no first-boot chown needed.
        write_file(&root.join("etc/lago/owned"), b"", 0o644)?;
    }
    let mut perms = std::fs::metadata(root.join("root")).map_err(io("stat", root))?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o700);
    std::fs::set_permissions(root.join("root"), perms).map_err(io("chmod", &root.join("root")))?;
    Ok(())
}

/// `depends=` of a kernel module, read from its `.modinfo` strings.
pub fn module_depends(ko: &[u8]) -> Vec<String> {
    let needle = b"depends=";
    ko.windows(needle.len())
        .enumerate()
        .filter(|(i, w)| *w == needle && (*i == 0 || ko[i - 1] == 0))
        .map(|(i, _)| {
            let rest = &ko[i + needle.len()..];
            let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            String::from_utf8_lossy(&rest[..end]).into_owned()
        })
        .next()
        .map(|d| d.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Every `.ko` under `dir`, by module name (`-` and `_` are the same in module names).
fn index_modules(dir: &Path, out: &mut BTreeMap<String, PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            index_modules(&p, out);
        } else if let Some(name) = p.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".ko")) {
            out.insert(name.replace('-', "_"), p);
        }
    }
}

/// The modules to load, dependencies first.
pub fn module_order(wanted: &[&str], deps_of: &dyn Fn(&str) -> Option<Vec<String>>) -> Result<Vec<String>, BuildError> {
    fn visit(
        m: &str,
        deps_of: &dyn Fn(&str) -> Option<Vec<String>>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) -> Result<(), BuildError> {
        let m = m.replace('-', "_");
        if !seen.insert(m.clone()) {
            return Ok(());
        }
        let deps = deps_of(&m)
            .ok_or_else(|| BuildError::Missing(format!("kernel module {m} not found in the kernel package")))?;
        for d in deps {
            visit(&d, deps_of, seen, order)?;
        }
        order.push(m);
        Ok(())
    }
    let (mut seen, mut order) = (BTreeSet::new(), Vec::new());
    for m in wanted {
        visit(m, deps_of, &mut seen, &mut order)?;
    }
    Ok(order)
}

/// Modules of the kernel package, indexed by name, with a dependency lookup.
struct Modules {
    index: BTreeMap<String, PathBuf>,
}

impl Modules {
    fn load(pkgs: &Path, kernel: &str) -> Self {
        let mut index = BTreeMap::new();
        index_modules(&pkgs.join(format!("lib/modules/{kernel}")), &mut index);
        Self { index }
    }

    /// `wanted` and their dependencies, dependencies first, leaving out `already`.
    fn order(&self, wanted: &[&str], already: &[String]) -> Result<Vec<String>, BuildError> {
        let deps_of =
            |m: &str| self.index.get(m).and_then(|p| std::fs::read(p).ok()).map(|bytes| module_depends(&bytes));
        Ok(module_order(wanted, &deps_of)?.into_iter().filter(|m| !already.contains(m)).collect())
    }

    fn read(&self, m: &str) -> Result<Vec<u8>, BuildError> {
        let p = &self.index[m];
        Ok(std::fs::read(p).map_err(io("read", p))?)
    }
}

fn write_initramfs(pkgs: &Path, kernel: &str, dest: &Path) -> Result<Vec<String>, BuildError> {
    let modules = Modules::load(pkgs, kernel);
    let base = modules.order(INITRD_MODULES, &[])?;
    let scsi = modules.order(INITRD_SCSI_MODULES, &base)?;
    let mut cpio = crate::host::cpio::Cpio::default();
    for d in ["bin", "dev", "proc", "sys", "newroot", "lib", "lib/modules"] {
        cpio.dir(d);
    }
    let busybox = std::fs::read(pkgs.join("bin/busybox")).map_err(io("read", &pkgs.join("bin/busybox")))?;
    cpio.file("bin/busybox", 0o755, &busybox);
    cpio.file("init", 0o755, include_str!("tiny/init").as_bytes());
    for m in base.iter().chain(&scsi) {
        cpio.file(&format!("lib/modules/{m}.ko"), 0o644, &modules.read(m)?);
    }
    cpio.file("modules.base", 0o644, format!("{}\n", base.join("\n")).as_bytes());
    cpio.file("modules.scsi", 0o644, format!("{}\n", scsi.join("\n")).as_bytes());
    std::fs::write(dest, cpio.finish()).map_err(io("write", dest))?;
    Ok(base.into_iter().chain(scsi).collect())
}

/// Puts the other drivers in the root filesystem, with the lists rcS loads them from.
fn install_root_modules(pkgs: &Path, kernel: &str, in_initrd: &[String], root: &Path) -> Result<(), BuildError> {
    let modules = Modules::load(pkgs, kernel);
    let boot = modules.order(BOOT_MODULES, in_initrd)?;
    // The initramfs loads its SCSI drivers only for a virtio-scsi controller: the optional
    // drivers bring their own scsi_mod (an insmod of a loaded module fails harmlessly).
    let mut loaded: Vec<String> = modules.order(INITRD_MODULES, &[])?;
    loaded.extend(boot.iter().cloned());
    let optional = modules.order(OPTIONAL_MODULES, &loaded)?;
    let dir = root.join("lib/modules/lago");
    for m in boot.iter().chain(&optional) {
        write_file(&dir.join(format!("{m}.ko")), &modules.read(m)?, 0o644)?;
    }
    write_file(&dir.join("boot.order"), format!("{}\n", boot.join("\n")).as_bytes(), 0o644)?;
    write_file(&dir.join("optional.order"), format!("{}\n", optional.join("\n")).as_bytes(), 0o644)?;
    write_file(&root.join("etc/lago/kernel"), format!("{kernel}\n").as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modinfo_depends() {
        let ko = b"\x7fELF....\0license=GPL\0depends=virtio,virtio_ring\0retpoline=Y\0";
        assert_eq!(module_depends(ko), ["virtio", "virtio_ring"]);
        assert!(module_depends(b"\0depends=\0").is_empty());
    }

    /// Runs the guest's `wget` with `/bin/sh`, on a stand-in for busybox that prints its
    /// arguments as `[arg]` (and kills itself as `timeout` would when `$TIMES_OUT` is set):
    /// status, stdout, stderr.
    fn guest_wget(args: &[&str], times_out: bool) -> (i32, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("busybox");
        let stand_in = "#!/bin/sh\n\
            [ \"$1\" = sh ] && { shift; exec /bin/sh \"$@\"; }\n\
            [ \"$1\" = timeout ] && [ -n \"$TIMES_OUT\" ] && kill -TERM $$\n\
            printf '[%s]' \"$@\"\n";
        write_file(&fake, stand_in.as_bytes(), 0o755).unwrap();
        let script = include_str!("tiny/wget").replace("bb=/bin/busybox", &format!("bb={}", fake.display()));
        let wget = dir.path().join("wget");
        write_file(&wget, script.as_bytes(), 0o755).unwrap();
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.arg(&wget).args(args);
        if times_out {
            cmd.env("TIMES_OUT", "1");
        }
        let out = cmd.output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).replace(&fake.display().to_string(), "BB");
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    #[test]
    fn guest_wget_runs_busybox_wget_under_timeout_for_t() {
        let ok = |args: &[&str], expected: &str| {
            assert_eq!(guest_wget(args, false), (0, expected.to_owned(), String::new()), "{args:?}");
        };
        ok(&["-T", "5", "-q", "-O-", "http://h/"], "[timeout][5][BB][wget][-q][-O-][http://h/]");
        ok(&["-qT5", "-O-", "u"], "[timeout][5][BB][wget][-q][-O-][u]");
        ok(&["-qT", "5", "u"], "[timeout][5][BB][wget][-q][u]");
        ok(&["-qO-", "-T5", "u"], "[timeout][5][BB][wget][-qO-][u]");
        ok(&["u", "--timeout=7", "--header", "A: b"], "[timeout][7][BB][wget][u][--header][A: b]");
        ok(&["--timeout", "7", "u"], "[timeout][7][BB][wget][u]");
        // Values of other options and arguments after `--` are not options.
        ok(&["-q", "-O", "-T", "u"], "[wget][-q][-O][-T][u]");
        ok(&["--header", "-T", "u"], "[wget][--header][-T][u]");
        ok(&["-nv", "u", "--", "-T", "3"], "[wget][-nv][u][--][-T][3]");
        // No timeout: busybox's wget alone.
        ok(&["-q", "u"], "[wget][-q][u]");
        ok(&["-T", "0", "u"], "[wget][u]");

        let (status, _, err) = guest_wget(&["-T", "x", "u"], false);
        assert_eq!((status, err.as_str()), (1, "wget: invalid number 'x'\n"));
        // Out of time: busybox's message and status, and no "Terminated" of the shell's.
        let (status, out, err) = guest_wget(&["-T", "1", "-q", "u"], true);
        assert_eq!((status, out.as_str(), err.as_str()), (1, "", "wget: download timed out\n"));
    }

    #[test]
    fn dependencies_come_first() {
        let deps = |m: &str| match m {
            "ext4" => Some(vec!["jbd2".into(), "mbcache".into(), "crc16".into()]),
            "jbd2" => Some(vec!["crc16".into()]),
            "mbcache" | "crc16" | "vfat" => Some(vec![]),
            _ => None,
        };
        assert_eq!(module_order(&["ext4", "vfat"], &deps).unwrap(), ["crc16", "jbd2", "mbcache", "ext4", "vfat"]);
        assert!(matches!(module_order(&["nope"], &deps), Err(BuildError::Missing(_))));
    }
}
