//! The host's memory as lago sees it: how much the kernel says is available (`MemAvailable`),
//! whether a directory is on a tmpfs (where VMs' memory files live, so that a running VM can be
//! forked), how much such a file system holds and has free, and how much of a process's memory is
//! its own share (PSS, for the benchmarks and `lago fork`'s report).

use std::path::Path;

/// Whether `path` is on a tmpfs.
pub fn is_tmpfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
}

/// The size of a file system and what is free in it, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Its size.
    pub total: u64,
    /// What an unprivileged user may still write there.
    pub free: u64,
}

/// The size and free space of the file system of `path`.
pub fn space(path: &Path) -> std::io::Result<Space> {
    let s = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    let unit = s.fragment_size().max(1);
    Ok(Space { total: s.blocks() * unit, free: s.blocks_available() * unit })
}

/// `MemAvailable` of `/proc/meminfo`, in bytes: what the kernel can give new work without
/// swapping.
pub fn available() -> std::io::Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    parse_meminfo(&text, "MemAvailable").ok_or_else(|| std::io::Error::other("/proc/meminfo has no MemAvailable"))
}

/// A `kB` field of `/proc/meminfo` (or of `/proc/<pid>/smaps_rollup`), in bytes.
pub fn parse_meminfo(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    })
}

/// The proportional set size of process `pid`, in bytes: its own pages, and its share of the
/// pages it maps with others.
pub fn pss(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    parse_meminfo(&text, "Pss")
}

/// Bytes as people read them: `512 MiB`, `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let mib = bytes as f64 / MIB;
    if mib >= 1024.0 { format!("{:.1} GiB", mib / 1024.0) } else { format!("{mib:.0} MiB") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_fields_in_bytes() {
        let text = "MemTotal:       24684584 kB\nMemFree:        13971020 kB\nMemAvailable:   22631532 kB\n";
        assert_eq!(parse_meminfo(text, "MemAvailable"), Some(22_631_532 * 1024));
        assert_eq!(parse_meminfo(text, "Mem"), None);
        assert_eq!(parse_meminfo("Pss:  288974 kB\nPss_Dirty: 1 kB\n", "Pss"), Some(288_974 * 1024));
        assert!(available().unwrap() > 0);
    }

    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(human(512 << 20), "512 MiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }

    #[test]
    fn dev_shm_is_a_tmpfs_and_a_disk_is_not() {
        if Path::new("/dev/shm").is_dir() {
            assert!(is_tmpfs(Path::new("/dev/shm")));
            assert!(space(Path::new("/dev/shm")).unwrap().total > 0);
        }
        assert!(!is_tmpfs(Path::new("/proc")));
    }
}
