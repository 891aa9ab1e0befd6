//! Where `local-qemu` VMs keep their memory: one file per VM on a tmpfs, mapped shared by its
//! qemu, so that a running environment can be frozen at any moment and forked (`lago fork`,
//! `docs/design.md` "Forks").
//!
//! ```text
//! <memory base>/              /dev/shm/lago-<uid> (`memory_dir = auto`), or `memory_dir`
//!   <id>/<vm>.mem             a running VM's memory (<id>: the prefix's runtime id)
//!   frozen-<freeze>/<vm>.mem  a frozen VM's memory, mapped privately by its copies
//! ```
//!
//! The base is a private directory of the user (mode 0700) on a tmpfs; [`base`] says why there
//! is none (`memory_dir = off`, no tmpfs), and VMs then run with ordinary memory.

use std::path::{Path, PathBuf};

use crate::config::{MemoryDir, MemoryDirSetting};

/// The directory memory files go to under `setting`, or why there is none.
pub fn base(setting: &MemoryDirSetting) -> Result<PathBuf, String> {
    let uid = nix::unistd::geteuid();
    match &setting.dir {
        MemoryDir::Off => Err(format!("`memory_dir = off` is set ({})", setting.origin)),
        MemoryDir::Path(dir) => {
            let probe = nearest_existing(dir);
            if crate::host::memory::is_tmpfs(&probe) {
                Ok(dir.clone())
            } else {
                Err(format!("{} is not on a tmpfs (`memory_dir`, {})", dir.display(), setting.origin))
            }
        }
        MemoryDir::Auto => {
            let shm = Path::new("/dev/shm");
            if crate::host::memory::is_tmpfs(shm) {
                return Ok(shm.join(format!("lago-{uid}")));
            }
            let runtime = crate::prefix::layout::runtime_base();
            if crate::host::memory::is_tmpfs(&nearest_existing(&runtime)) {
                return Ok(runtime.join("memory"));
            }
            Err(format!("neither /dev/shm nor lago's runtime directory {} is on a tmpfs", runtime.display()))
        }
    }
}

/// `path`, or its nearest ancestor that exists.
fn nearest_existing(path: &Path) -> PathBuf {
    path.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/")).to_owned()
}

/// The memory file of VM `vm` of the prefix at `prefix`, under `base`.
pub fn vm_file(base: &Path, prefix: &Path, vm: &str) -> PathBuf {
    prefix_dir(base, prefix).join(format!("{vm}.mem"))
}

/// The directory of the memory files of the prefix at `prefix`, under `base`.
pub fn prefix_dir(base: &Path, prefix: &Path) -> PathBuf {
    base.join(crate::prefix::layout::runtime_id(prefix))
}

/// The directory of the memory files of frozen state `id`, under `base`.
pub fn frozen_dir(base: &Path, id: &str) -> PathBuf {
    base.join(format!("frozen-{id}"))
}

/// Makes `dir` (and `base`, its parent) private directories of this user, mode 0700; another
/// user's directory is refused.
pub fn ensure_dir(base: &Path, dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    for d in [base, dir] {
        match std::fs::DirBuilder::new().mode(0o700).recursive(true).create(d) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    }
    let meta = std::fs::symlink_metadata(base)?;
    if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{} is not a private directory of this user", base.display()),
        ));
    }
    Ok(())
}

/// Removes the memory files of the prefix at `prefix` under `base` (its VMs no longer run).
pub fn remove_prefix_files(base: &Path, prefix: &Path) {
    let dir = prefix_dir(base, prefix);
    if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The memory file a running qemu maps shared (its own), from its command line.
pub fn own_memory_file(cmdline: &[u8]) -> Option<PathBuf> {
    cmdline.split(|b| *b == 0).find_map(|arg| {
        let arg = std::str::from_utf8(arg).ok()?;
        let rest = arg.strip_prefix("memory-backend-file,")?;
        let fields: Vec<&str> = rest.split(',').collect();
        fields.contains(&"share=on").then_some(())?;
        fields.iter().find_map(|f| f.strip_prefix("mem-path=")).map(PathBuf::from)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vms_own_memory_file_is_read_from_its_command_line() {
        let args = |mem: &str| format!("qemu\0-m\0256\0-object\0{mem}\0-machine\0memory-backend=pc.ram\0").into_bytes();
        let own = args("memory-backend-file,id=pc.ram,size=256M,mem-path=/dev/shm/lago-0/ab/vm01.mem,share=on");
        assert_eq!(own_memory_file(&own).unwrap(), Path::new("/dev/shm/lago-0/ab/vm01.mem"));
        // A frozen VM's file, mapped privately, is not the VM's to remove.
        let frozen =
            args("memory-backend-file,id=pc.ram,size=256M,mem-path=/dev/shm/lago-0/frozen-x/vm01.mem,share=off");
        assert_eq!(own_memory_file(&frozen), None);
        assert_eq!(own_memory_file(b"qemu\x00-m\x00256\x00"), None);
    }

    #[test]
    fn memory_files_go_to_a_tmpfs_or_nowhere() {
        let setting = |dir| MemoryDirSetting { dir, origin: "the test".into() };
        let off = base(&setting(MemoryDir::Off)).unwrap_err();
        assert_eq!(off, "`memory_dir = off` is set (the test)");
        let disk = tempfile::tempdir().unwrap();
        if !crate::host::memory::is_tmpfs(disk.path()) {
            let not = base(&setting(MemoryDir::Path(disk.path().join("mem")))).unwrap_err();
            assert!(not.ends_with("is not on a tmpfs (`memory_dir`, the test)"), "{not}");
        }
        if crate::host::memory::is_tmpfs(Path::new("/dev/shm")) {
            let auto = base(&setting(MemoryDir::Auto)).unwrap();
            assert_eq!(auto, Path::new("/dev/shm").join(format!("lago-{}", nix::unistd::geteuid())));
            // A directory that does not exist yet, on a tmpfs: the tmpfs decides.
            let on = Path::new("/dev/shm/lago-test-not-made/x");
            assert_eq!(base(&setting(MemoryDir::Path(on.into()))).unwrap(), on);
        }
        let file = vm_file(Path::new("/b"), Path::new("/w/.lago/default"), "vm01");
        assert_eq!(file.parent().unwrap().parent().unwrap(), Path::new("/b"));
        assert_eq!(file.file_name().unwrap(), "vm01.mem");
    }
}
