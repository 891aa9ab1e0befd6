//! The disk of a template: MBR + FAT boot partition (syslinux, kernel, initramfs) + ext4 root,
//! written without root or loop devices, and the kernel cut out for direct boot.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::BuildError;
use crate::host::pathio::at as io;
use crate::host::process::{CommandRunner, Invocation};

/// Disk layout, bytes.
pub(super) const DISK_SIZE: u64 = 1 << 30;
const BOOT_START: u64 = 1 << 20;
const BOOT_SIZE: u64 = 48 << 20;
const ROOT_START: u64 = BOOT_START + BOOT_SIZE;
/// Fixed identifiers, so that rebuilds from the same packages give the same image where the
/// tools allow.
const ROOT_UUID: &str = "6c61676f-7469-6e79-0000-726f6f746673";
const FAKE_TIME: &str = "1700000000";
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
    /// The fingerprint of its inputs (see [`super::Gate`]).
    pub inputs: String,
    /// How the guest takes the seed `init` writes: `lago-seed` or `cloud-init`.
    pub bootstrap: &'static str,
    /// Whether qemu-guest-agent runs in it.
    pub guest_agent: bool,
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

pub(crate) fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    std::fs::write(path, content).map_err(io("write", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io("chmod", path))?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_table() {
        let s = mbr(&[0x33; 440], DISK_SIZE);
        assert_eq!(&s[510..], &[0x55, 0xaa]);
        assert_eq!(s[446], 0x80);
        assert_eq!(u32::from_le_bytes(s[454..458].try_into().unwrap()), 2048);
        assert_eq!(u32::from_le_bytes(s[470..474].try_into().unwrap()) as u64 * 512, ROOT_START);
    }
}
