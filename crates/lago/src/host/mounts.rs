//! Filesystems mounted under a directory: found in `/proc/self/mountinfo` and detached before
//! the directory is removed. A tool killed in the middle of its work (mmdebstrap's root mode
//! mounts `proc`, `sys` and the host's `dev` inside the tree it builds) can leave them behind,
//! and removing such a tree recursively would walk into them: into the host's own `/dev`.

use std::path::{Path, PathBuf};

/// A mount that could not be detached.
#[derive(Debug, thiserror::Error)]
#[error("cannot unmount {}: {source}", path.display())]
pub struct MountError {
    /// The mount point.
    pub path: PathBuf,
    /// What `umount2` said.
    #[source]
    pub source: nix::Error,
}

/// The mount points in `mountinfo` (the text of `/proc/self/mountinfo`) that are `dir` or lie
/// under it, deepest first (the order to detach them in).
pub fn mount_points_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// `mountinfo` writes a space, tab, newline and backslash in a path as `\040`, `\011`, `\012`
/// and `\134`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal =
            bytes.get(i + 1..i + 4).filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |n, c| n.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detaches every filesystem mounted under `dir` (lazily, deepest first), so that removing
/// `dir` afterwards touches only its own files. Returns the mount points detached.
pub fn detach_all_under(dir: &Path) -> Result<Vec<PathBuf>, MountError> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let points = mount_points_under(&text, &dir);
    for p in &points {
        nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|source| MountError { path: p.clone(), source })?;
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:5 / /work/cache/.build-debian12.x/dev rw shared:2 - devtmpfs udev rw
31 30 0:25 / /work/cache/.build-debian12.x/dev/pts rw - devpts devpts rw
32 22 0:21 / /work/cache/.build-debian12.x/proc rw - proc proc rw
33 22 0:40 / /work/cache/.build-other/proc rw - proc proc rw
34 22 0:41 / /work/cache/.build-debian12.x/with\\040space rw - tmpfs tmpfs rw
";

    #[test]
    fn finds_the_mounts_under_a_directory_deepest_first() {
        let found = mount_points_under(MOUNTINFO, Path::new("/work/cache/.build-debian12.x"));
        assert_eq!(found[0], Path::new("/work/cache/.build-debian12.x/dev/pts"));
        let mut rest = found[1..].to_vec();
        rest.sort();
        assert_eq!(
            rest,
            [
                PathBuf::from("/work/cache/.build-debian12.x/dev"),
                PathBuf::from("/work/cache/.build-debian12.x/proc"),
                PathBuf::from("/work/cache/.build-debian12.x/with space"),
            ]
        );
        assert!(mount_points_under(MOUNTINFO, Path::new("/elsewhere")).is_empty());
    }

    #[test]
    fn a_sibling_with_a_longer_name_is_not_under() {
        let found = mount_points_under(MOUNTINFO, Path::new("/work/cache/.build-other"));
        assert_eq!(found, [PathBuf::from("/work/cache/.build-other/proc")]);
        assert!(mount_points_under(MOUNTINFO, Path::new("/work/cache/.build-debian12")).is_empty());
    }

    #[test]
    fn unescapes_octal_and_keeps_other_backslashes() {
        assert_eq!(unescape("a\\040b\\011c\\134d"), "a b\tc\\d");
        assert_eq!(unescape("a\\x\\04"), "a\\x\\04");
    }
}
