//! `lago template build tiny`: a bootable template built offline from Debian packages.
//!
//! `tiny` is Debian 12's kernel with a busybox + dropbear userland on an ext4 root, bootable
//! from the disk alone like any cloud image: MBR (syslinux's `mbr.bin`), a FAT boot partition
//! holding syslinux, the kernel and an initramfs, and the ext4 root partition. It is built
//! without root and without loop devices: packages come from `apt-get download` and
//! `dpkg-deb -x`; the partition table, the FAT filesystem and the initramfs are written here;
//! `syslinux --install --offset` (mtools) makes the FAT bootable; `mke2fs -d -E offset=` writes
//! the root filesystem in place. The result is converted to qcow2 and published into a local
//! `file` repository (`repo.metadata`, image, `.hash`, `.metadata`) as a new version.
//!
//! Inside, a first-boot script reads the NoCloud seed that `lago init` writes (the plain files
//! under `lago/` of the `CIDATA` filesystem; see [`crate::ops::init::seed`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::host::process::{CommandRunner, Invocation, ProcessError};
use crate::report::{Reporter, task};

/// Templates this build knows how to make.
pub const BUILDABLE: &[&str] = &["tiny", "debian12", "debian12-cloud"];

/// Packages of `tiny` besides the kernel (whose versioned name is resolved from
/// `linux-image-amd64`).
const TINY_PACKAGES: &[&str] = &[
    "busybox-static",
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

/// Disk layout, bytes.
const DISK_SIZE: u64 = 1 << 30;
const BOOT_START: u64 = 1 << 20;
const BOOT_SIZE: u64 = 48 << 20;
const ROOT_START: u64 = BOOT_START + BOOT_SIZE;
/// Fixed identifiers, so that rebuilds from the same packages give the same image where the
/// tools allow.
const ROOT_UUID: &str = "6c61676f-7469-6e79-0000-726f6f746673";
const FAKE_TIME: &str = "1700000000";
/// `cryptomgr.notests`: no self-tests of the kernel's crypto algorithms at boot (0.25 s of the
/// kernel's 1.45 s under TCG).
const KERNEL_CMDLINE: &str =
    "console=ttyS0,115200 root=LABEL=lago-root rw quiet loglevel=3 panic=10 random.trust_cpu=on cryptomgr.notests";

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No recipe for this template.
    #[error("Unknown template {name:?} (lago can build: {})", BUILDABLE.join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
    },
    /// A tool failed.
    #[error("Cannot {step}")]
    Tool {
        /// What was being done.
        step: String,
        /// The tool's failure (command and stderr).
        #[source]
        source: ProcessError,
    },
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] crate::host::pathio::PathError),
    /// Something expected in the packages is missing.
    #[error("{0}")]
    Missing(String),
    /// The repository's `repo.metadata` cannot be updated.
    #[error("{0}")]
    Repo(String),
    /// lago was interrupted; the repository is as it was.
    #[error("Template build stopped")]
    Interrupted(#[source] crate::host::interrupt::Interrupted),
}

use crate::host::pathio::at as io;

/// What to build and where.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Template name (`tiny`).
    pub name: String,
    /// Directory of the local `file` repository to publish into.
    pub repo_dir: PathBuf,
    /// Downloaded packages are kept here between builds.
    pub cache_dir: PathBuf,
}

/// A published template version.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    /// Template name.
    pub name: String,
    /// New version.
    pub version: String,
    /// The image in the repository.
    pub path: PathBuf,
    /// Its sha1.
    pub hash: String,
    /// Its size, bytes.
    pub size: u64,
}

/// Builds the template and publishes it as a new version of the local repository.
pub fn build(opts: &BuildOptions, runner: &dyn CommandRunner, reporter: &dyn Reporter) -> Result<Built, BuildError> {
    if !BUILDABLE.contains(&opts.name.as_str()) {
        return Err(BuildError::Unknown { name: opts.name.clone() });
    }
    for d in [&opts.repo_dir, &opts.cache_dir] {
        std::fs::create_dir_all(d).map_err(io("create", d))?;
    }
    // One build at a time per package cache: downloads and the debian12 package sync share it.
    let lock_path = opts.cache_dir.join(".build.lock");
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io("open", &lock_path))?;
    if lock.try_lock().is_err() {
        reporter.warn(&format!("Waiting for another template build to finish (lock {})", lock_path.display()));
        lock.lock().map_err(io("lock", &lock_path))?;
    }
    // Under the lock, any work directory left in the cache is an interrupted build's.
    if let Ok(entries) = std::fs::read_dir(&opts.cache_dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".build-") && e.file_type().is_ok_and(|t| t.is_dir()) {
                // A tool the killed build started (`tar` under `dpkg-deb`) may still be writing
                // into it for a moment: removal is retried until it stays empty.
                match remove_dir_retrying(&e.path(), std::time::Duration::from_secs(10)) {
                    Ok(()) => reporter.warn(&format!(
                        "Repaired: removed {} left by an interrupted template build",
                        e.path().display()
                    )),
                    Err(err) => reporter.warn(&format!(
                        "Cannot remove {}, left by an interrupted template build: {err}",
                        e.path().display()
                    )),
                }
            }
        }
    }
    let work = tempfile::Builder::new()
        .prefix(&format!(".build-{}.", opts.name))
        .tempdir_in(&opts.cache_dir)
        .map_err(io("create", &opts.cache_dir))?;
    let work = work.path();
    task(reporter, &format!("Build template {}", opts.name), || {
        let image = match opts.name.as_str() {
            "debian12" => {
                super::debian::build_image(work, &opts.cache_dir, super::debian::Flavour::Lago, runner, reporter)?
            }
            "debian12-cloud" => {
                super::debian::build_image(work, &opts.cache_dir, super::debian::Flavour::Cloud, runner, reporter)?
            }
            _ => build_tiny(work, &opts.cache_dir, runner, reporter)?,
        };
        task(reporter, "Publish into the local repository", || publish(opts, &image, runner))
    })
}

/// Removes `dir` and everything in it, again and again while something still writes into it,
/// for at most `within`.
fn remove_dir_retrying(dir: &Path, within: std::time::Duration) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + within;
    loop {
        match std::fs::remove_dir_all(dir) {
            Ok(()) if !dir.exists() => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if std::time::Instant::now() > deadline => return Err(e),
            _ => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

/// A raw disk image made by a recipe, before publication.
pub(crate) struct Image {
    /// The raw disk.
    pub raw: PathBuf,
    /// Kernel release inside.
    pub kernel: String,
    /// `distro` of the metadata.
    pub distro: &'static str,
    /// The kernel, initramfs and command line for a direct boot (the same as on the disk).
    pub boot: Option<BootFiles>,
}

/// What a template offers for direct kernel boot (`-kernel/-initrd/-append`).
pub(crate) struct BootFiles {
    /// Uncompressed kernel, an ELF qemu starts at its PVH entry.
    pub vmlinux: PathBuf,
    /// Initramfs.
    pub initrd: PathBuf,
    /// Kernel command line.
    pub cmdline: String,
}

/// The XZ stream magic.
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];

/// Extracts the uncompressed kernel (`vmlinux`) from a Debian `vmlinuz` (a bzImage whose payload
/// is one XZ stream) into `work/vmlinux`. qemu boots it directly through its PVH entry, which
/// skips the boot loader and the kernel's own decompression (seconds under TCG).
pub(crate) fn extract_vmlinux(vmlinuz: &Path, work: &Path, runner: &dyn CommandRunner) -> Result<PathBuf, BuildError> {
    let image = std::fs::read(vmlinuz).map_err(io("read", vmlinuz))?;
    let at = image.windows(XZ_MAGIC.len()).position(|w| w == XZ_MAGIC).ok_or_else(|| {
        BuildError::Missing(format!("{} holds no XZ-compressed kernel (Debian's kernels do)", vmlinuz.display()))
    })?;
    let xz = work.join("vmlinux.xz");
    write_file(&xz, &image[at..], 0o644)?;
    runner.run(&Invocation::new("xz").args(["--decompress", "--single-stream", "--force"]).arg(&xz)).map_err(
        |source| BuildError::Tool { step: format!("decompress the kernel of {}", vmlinuz.display()), source },
    )?;
    let vmlinux = work.join("vmlinux");
    let head = std::fs::read(&vmlinux).map_err(io("read", &vmlinux))?;
    if !head.starts_with(b"\x7fELF") {
        return Err(BuildError::Missing(format!("the kernel extracted from {} is not an ELF file", vmlinuz.display())));
    }
    Ok(vmlinux)
}

/// The boot files of a disk layout: its initramfs and command line, and its kernel uncompressed.
pub(crate) fn boot_files(
    layout: &DiskLayout,
    work: &Path,
    runner: &dyn CommandRunner,
) -> Result<BootFiles, BuildError> {
    Ok(BootFiles {
        vmlinux: extract_vmlinux(layout.vmlinuz, work, runner)?,
        initrd: layout.initrd.to_owned(),
        cmdline: layout.cmdline.to_owned(),
    })
}

fn build_tiny(
    work: &Path,
    cache_dir: &Path,
    runner: &dyn CommandRunner,
    reporter: &dyn Reporter,
) -> Result<Image, BuildError> {
    let debs = task(reporter, "Download packages", || download(cache_dir, runner))?;
    let pkgs = work.join("pkgs");
    task(reporter, "Extract packages", || {
        for deb in &debs {
            runner
                .run(&Invocation::new("dpkg-deb").arg("-x").arg(deb).arg(&pkgs))
                .map_err(|source| BuildError::Tool { step: format!("extract {}", deb.display()), source })?;
        }
        Ok::<(), BuildError>(())
    })?;
    let kernel = only_entry(&pkgs.join("lib/modules"))?;
    let initrd = work.join("initrd.img");
    let in_initrd = task(reporter, "Write initramfs", || write_initramfs(&pkgs, &kernel, &initrd))?;
    let rootfs = work.join("rootfs");
    task(reporter, "Assemble root filesystem", || {
        assemble_rootfs(&pkgs, &rootfs, runner)?;
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
    Ok(Image { raw, kernel, distro: "lago-tiny", boot: Some(boot) })
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
    ("etc/acpi/PWRF/00000080", "#!/bin/sh\nexec poweroff\n", 0o755),
    ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644),
    ("etc/shadow", "root:*:19000:0:99999:7:::\n", 0o600),
    ("etc/group", "root:x:0:\n", 0o644),
    ("etc/shells", "/bin/sh\n/bin/ash\n", 0o644),
    ("etc/hostname", "localhost\n", 0o644),
    ("etc/hosts", "127.0.0.1 localhost\n", 0o644),
    ("etc/fstab", "LABEL=lago-root / ext4 rw 0 1\n", 0o644),
    ("etc/profile", "export PATH=/sbin:/bin:/usr/sbin:/usr/bin\nexport PS1='\\u@\\h:\\w\\$ '\n", 0o644),
];

pub(crate) fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    std::fs::write(path, content).map_err(io("write", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io("chmod", path))?;
    Ok(())
}

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

fn assemble_rootfs(pkgs: &Path, root: &Path, runner: &dyn CommandRunner) -> Result<(), BuildError> {
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
    let applets = runner
        .run(&Invocation::new(&pkgs.join("bin/busybox").display().to_string()).arg("--list-full"))
        .map_err(|source| BuildError::Tool { step: "list busybox applets".into(), source })?;
    for applet in applets.stdout_text().lines().map(str::trim).filter(|a| !a.is_empty() && *a != "bin/busybox") {
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
    let mut loaded: Vec<String> = in_initrd.to_vec();
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

/// A byte range of a file, as a stream (a partition of a disk image).
struct Slice {
    file: File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for Slice {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min((self.len - self.pos.min(self.len)) as usize);
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        let got = self.file.read(&mut buf[..n])?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Write for Slice {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min((self.len - self.pos.min(self.len)) as usize);
        if n == 0 && !buf.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "end of partition"));
        }
        self.file.seek(SeekFrom::Start(self.start + self.pos))?;
        self.file.write_all(&buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Seek for Slice {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => p as i64,
            SeekFrom::End(d) => self.len as i64 + d,
            SeekFrom::Current(d) => self.pos as i64 + d,
        };
        if new < 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before start"));
        }
        self.pos = new as u64;
        Ok(self.pos)
    }
}

/// What goes on a template disk: MBR + FAT boot partition (syslinux, kernel, initramfs) + ext4
/// root labelled `lago-root`.
pub(crate) struct DiskLayout<'a> {
    /// Virtual size, bytes.
    pub size: u64,
    /// A tree holding syslinux (`usr/bin/syslinux`, `usr/lib/syslinux/mbr/mbr.bin`).
    pub tools: &'a Path,
    /// The kernel.
    pub vmlinuz: &'a Path,
    /// The initramfs.
    pub initrd: &'a Path,
    /// Kernel command line.
    pub cmdline: &'a str,
    /// The root filesystem's content.
    pub rootfs: &'a Path,
}

/// An MBR partition table entry (LBA only; CHS fields say "use LBA").
fn mbr_entry(bootable: bool, kind: u8, start: u64, size: u64) -> [u8; 16] {
    let mut e = [0u8; 16];
    e[0] = if bootable { 0x80 } else { 0 };
    e[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
    e[4] = kind;
    e[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    e[8..12].copy_from_slice(&((start / 512) as u32).to_le_bytes());
    e[12..16].copy_from_slice(&((size / 512) as u32).to_le_bytes());
    e
}

/// The first sector: syslinux's boot code, a disk signature and two partitions.
pub fn mbr(boot_code: &[u8], disk_size: u64) -> [u8; 512] {
    let mut s = [0u8; 512];
    let n = boot_code.len().min(440);
    s[..n].copy_from_slice(&boot_code[..n]);
    s[440..444].copy_from_slice(&0x6c61_676fu32.to_le_bytes());
    s[446..462].copy_from_slice(&mbr_entry(true, 0x0e, BOOT_START, BOOT_SIZE));
    s[462..478].copy_from_slice(&mbr_entry(false, 0x83, ROOT_START, disk_size - ROOT_START));
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

pub(crate) fn write_disk(layout: &DiskLayout, raw: &Path, runner: &dyn CommandRunner) -> Result<(), BuildError> {
    let pkgs = layout.tools;
    let mut file =
        File::options().read(true).write(true).create(true).truncate(true).open(raw).map_err(io("create", raw))?;
    file.set_len(layout.size).map_err(io("size", raw))?;
    let boot_code = std::fs::read(pkgs.join("usr/lib/syslinux/mbr/mbr.bin"))
        .map_err(io("read", &pkgs.join("usr/lib/syslinux/mbr/mbr.bin")))?;
    file.write_all(&mbr(&boot_code, layout.size)).map_err(io("write", raw))?;
    // Boot partition: FAT16 with the kernel, the initramfs and syslinux's configuration.
    {
        let mut part =
            Slice { file: file.try_clone().map_err(io("open", raw))?, start: BOOT_START, len: BOOT_SIZE, pos: 0 };
        let fat_err = |e| {
            BuildError::Io(crate::host::pathio::PathError {
                action: "write the boot partition of",
                path: raw.to_owned(),
                source: e,
            })
        };
        fatfs::format_volume(
            &mut part,
            fatfs::FormatVolumeOptions::new()
                .volume_label(*b"LAGOBOOT   ")
                .volume_id(0x6c61_676f)
                .fat_type(fatfs::FatType::Fat16)
                .bytes_per_cluster(32 * 1024),
        )
        .map_err(fat_err)?;
        part.seek(SeekFrom::Start(0)).map_err(fat_err)?;
        let fs = fatfs::FileSystem::new(&mut part, fatfs::FsOptions::new()).map_err(fat_err)?;
        let (vmlinuz, initrd) = (layout.vmlinuz, layout.initrd);
        let cfg = format!(
            "DEFAULT lago\nPROMPT 0\nTIMEOUT 0\nLABEL lago\n  KERNEL /vmlinuz\n  INITRD /initrd.img\n  APPEND {}\n",
            layout.cmdline
        );
        for (name, data) in [
            ("vmlinuz", std::fs::read(vmlinuz).map_err(io("read", vmlinuz))?),
            ("initrd.img", std::fs::read(initrd).map_err(io("read", initrd))?),
            ("syslinux.cfg", cfg.into_bytes()),
        ] {
            let root = fs.root_dir();
            let mut f = root.create_file(name).map_err(fat_err)?;
            f.write_all(&data).map_err(fat_err)?;
        }
        fs.unmount().map_err(fat_err)?;
    }
    drop(file);
    let syslinux = pkgs.join("usr/bin/syslinux");
    runner
        .run(
            &Invocation::new(&syslinux.display().to_string())
                .args(["--install", "--offset", &BOOT_START.to_string()])
                .arg(raw),
        )
        .map_err(|source| BuildError::Tool {
            step: "install syslinux on the boot partition (needs mtools)".into(),
            source,
        })?;
    let size_kib = (layout.size - ROOT_START) / 1024;
    let inv = Invocation::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-L", "lago-root", "-U", ROOT_UUID, "-E"])
        .arg(format!("offset={ROOT_START},root_owner=0:0,hash_seed={ROOT_UUID}"))
        .arg("-d")
        .arg(layout.rootfs)
        .arg(raw)
        .arg(format!("{size_kib}k"))
        .env("E2FSPROGS_FAKE_TIME", FAKE_TIME);
    runner
        .run(&inv)
        .map_err(|source| BuildError::Tool { step: "write the root filesystem with mke2fs".into(), source })?;
    Ok(())
}

/// Removes files on drop unless disarmed (a failed or interrupted publication leaves nothing).
struct Partial(Vec<PathBuf>);

impl Drop for Partial {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Reads a repository's `repo.metadata` for an update: a missing file is a new repository; a
/// file that cannot be read, is not JSON, or has the wrong shape is an error (it is never
/// replaced, so no published version is lost).
pub fn read_repo_for_update(meta_path: &Path, repo_dir: &Path) -> Result<Value, BuildError> {
    let text = match crate::template::repo::read_bounded(meta_path) {
        Ok(text) => text,
        Err(e) if e.source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(
                json!({"name": "local", "sources": {"local": {"type": "file", "args": {"root": repo_dir.display().to_string()}}}, "templates": {}}),
            );
        }
        Err(e) => return Err(e.into()),
    };
    let repo: Value = serde_json::from_str(&text).map_err(|e| {
        BuildError::Repo(format!(
            "{} is not valid JSON ({e}); fix or move it away, lago will not replace it",
            meta_path.display()
        ))
    })?;
    let shape_ok = repo.is_object()
        && repo.get("templates").is_none_or(Value::is_object)
        && repo
            .get("templates")
            .and_then(Value::as_object)
            .is_none_or(|t| t.values().all(|v| v.is_object() && v.get("versions").is_none_or(Value::is_object)));
    if !shape_ok {
        return Err(BuildError::Repo(format!(
            "{} is not a template repository (expected an object whose `templates` maps names to {{\"versions\": {{...}}}}); fix or move it away, lago will not replace it",
            meta_path.display()
        )));
    }
    Ok(repo)
}

fn publish(opts: &BuildOptions, image: &Image, runner: &dyn CommandRunner) -> Result<Built, BuildError> {
    let (raw, kernel) = (&image.raw, &image.kernel);
    let meta_path = opts.repo_dir.join("repo.metadata");
    // One publication at a time per repository: the version number is decided under the lock.
    let lock_path = opts.repo_dir.join(".repo.metadata.lock");
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io("open", &lock_path))?;
    lock.lock().map_err(io("lock", &lock_path))?;
    let mut repo = read_repo_for_update(&meta_path, &opts.repo_dir)?;
    let versions = repo["templates"][&opts.name]["versions"].as_object().cloned().unwrap_or_default();
    let next =
        versions.keys().filter_map(|v| v.strip_prefix('v').and_then(|n| n.parse::<u64>().ok())).max().unwrap_or(0) + 1;
    let version = format!("v{next}");
    let handle = format!("{}-{version}.qcow2", opts.name);
    let dest = opts.repo_dir.join(&handle);
    let tmp = opts.repo_dir.join(format!(".{handle}.{}.tmp", std::process::id()));
    let mut partial = Partial(vec![tmp.clone()]);
    runner
        .run(&Invocation::new("qemu-img").args(["convert", "-q", "-O", "qcow2"]).arg(raw).arg(&tmp))
        .map_err(|source| BuildError::Tool { step: "convert the image to qcow2".into(), source })?;
    crate::host::interrupt::check().map_err(BuildError::Interrupted)?;
    let hash = crate::template::store::sha1_file(&tmp).map_err(|e| BuildError::Missing(e.to_string()))?;
    let size = std::fs::metadata(&tmp).map_err(io("stat", &tmp))?.len();
    let mut metadata = json!({
        "name": opts.name, "version": version, "distro": image.distro, "arch": "x86_64",
        "root-partition": "/dev/vda2", "root-password": "123456", "kernel": kernel,
        "base": "debian:bookworm", "sha1": hash, "size": size,
    });
    if let Some(boot) = &image.boot {
        // Beside the image: `<handle>.vmlinux` and `<handle>.initrd`, named in `boot`.
        let mut entry = json!({"cmdline": boot.cmdline});
        for (key, from) in [("kernel", &boot.vmlinux), ("initrd", &boot.initrd)] {
            let name = format!("{handle}.{}", if key == "kernel" { "vmlinux" } else { "initrd" });
            let tmp = opts.repo_dir.join(format!(".{name}.{}.tmp", std::process::id()));
            partial.0.push(tmp.clone());
            std::fs::copy(from, &tmp).map_err(io("copy", from))?;
            let sha1 = crate::template::store::sha1_file(&tmp).map_err(|e| BuildError::Missing(e.to_string()))?;
            let dest = opts.repo_dir.join(&name);
            partial.0.push(dest.clone());
            std::fs::rename(&tmp, &dest).map_err(io("rename", &tmp))?;
            entry[key] = json!(name);
            entry[format!("{key}_sha1")] = json!(sha1);
        }
        metadata["boot"] = entry;
    }
    let text = serde_json::to_string_pretty(&metadata).unwrap_or_default();
    crate::host::pathio::write_atomic(&opts.repo_dir.join(format!("{handle}.metadata")), text.as_bytes())?;
    crate::host::pathio::write_atomic(&opts.repo_dir.join(format!("{handle}.hash")), hash.as_bytes())?;
    crate::host::interrupt::check().map_err(BuildError::Interrupted)?;
    std::fs::rename(&tmp, &dest).map_err(io("rename", &tmp))?;
    let timestamp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    repo["templates"][&opts.name]["versions"][&version] =
        json!({"source": "local", "handle": handle, "timestamp": timestamp});
    let text = serde_json::to_string_pretty(&repo).unwrap_or_default();
    crate::host::pathio::write_atomic(&meta_path, text.as_bytes())?;
    partial.0.clear();
    drop(partial);
    drop(lock);
    Ok(Built { name: opts.name.clone(), version, path: dest, hash, size })
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

    #[test]
    fn partition_table() {
        let s = mbr(&[0x33; 440], DISK_SIZE);
        assert_eq!(&s[510..], &[0x55, 0xaa]);
        assert_eq!(s[446], 0x80);
        assert_eq!(u32::from_le_bytes(s[454..458].try_into().unwrap()), 2048);
        assert_eq!(u32::from_le_bytes(s[470..474].try_into().unwrap()) as u64 * 512, ROOT_START);
    }
}
