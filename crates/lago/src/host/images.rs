//! Disk images through `qemu-img`: overlays on templates, new empty images, inspection.
//!
//! The backing format of an overlay is always given explicitly (`-F`), never probed by qemu.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::host::process::{CommandRunner, Invocation, ProcessError};

/// Problems with images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// `qemu-img` failed.
    #[error("Cannot {action} {path}")]
    Tool {
        /// What was being done.
        action: &'static str,
        /// The image.
        path: PathBuf,
        /// The `qemu-img` failure (command and stderr).
        #[source]
        source: ProcessError,
    },
    /// `qemu-img info` printed something unexpected.
    #[error("Cannot understand `qemu-img info` of {path}: {reason}")]
    Parse {
        /// The image.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// What `qemu-img info` says about an image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ImageInfo {
    /// Format (`qcow2`, `raw`, ...).
    pub format: String,
    /// Size seen by the guest, bytes.
    #[serde(rename = "virtual-size")]
    pub virtual_size: u64,
    /// Backing file, if any.
    #[serde(rename = "backing-filename", default)]
    pub backing: Option<String>,
    /// Backing format, if recorded.
    #[serde(rename = "backing-filename-format", default)]
    pub backing_format: Option<String>,
}

/// Parses `qemu-img info --output=json`.
pub fn parse_info(json: &[u8], path: &Path) -> Result<ImageInfo, ImageError> {
    serde_json::from_slice(json).map_err(|e| ImageError::Parse { path: path.to_owned(), reason: e.to_string() })
}

/// The backing file a qcow2 image names in its header (the file itself is not opened, nor is
/// qemu-img run): `None` for an image of another format, or without a backing file, or whose
/// backing is not a plain file name (a `json:` or protocol specification). A relative name is
/// relative to the image's directory, as qemu reads it.
pub fn qcow2_backing(path: &Path) -> std::io::Result<Option<PathBuf>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let mut header = [0u8; 20];
    if f.read_exact(&mut header).is_err() || header[..4] != *b"QFI\xfb" {
        return Ok(None);
    }
    let offset = u64::from_be_bytes(header[8..16].try_into().unwrap_or_default());
    let size = u32::from_be_bytes(header[16..20].try_into().unwrap_or_default());
    // The name is at most 1023 bytes (qcow2's specification).
    if offset == 0 || size == 0 || size > 1023 {
        return Ok(None);
    }
    let mut name = vec![0u8; size as usize];
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(&mut name)?;
    let Ok(name) = String::from_utf8(name) else { return Ok(None) };
    let name = name.strip_prefix("file:").unwrap_or(&name);
    if name.starts_with("json:") || name.contains("://") {
        return Ok(None);
    }
    let named = Path::new(name);
    Ok(Some(if named.is_absolute() { named.to_owned() } else { path.parent().unwrap_or(Path::new(".")).join(named) }))
}

/// Writes at `path` the header of a qcow2 image naming `backing` (an empty name: none), for
/// tests that need an overlay without running qemu-img.
#[cfg(test)]
pub(crate) fn write_qcow2_header(path: &Path, backing: &str) {
    let mut data = vec![0u8; 1024];
    data[..4].copy_from_slice(b"QFI\xfb");
    data[4..8].copy_from_slice(&3u32.to_be_bytes());
    if !backing.is_empty() {
        data[8..16].copy_from_slice(&512u64.to_be_bytes());
        data[16..20].copy_from_slice(&u32::try_from(backing.len()).unwrap_or(0).to_be_bytes());
        data[512..512 + backing.len()].copy_from_slice(backing.as_bytes());
    }
    std::fs::write(path, data).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// `qemu-img` operations.
pub struct Images<'a> {
    runner: &'a dyn CommandRunner,
}

impl<'a> Images<'a> {
    /// Operations run through `runner`.
    pub fn new(runner: &'a dyn CommandRunner) -> Self {
        Self { runner }
    }

    /// Inspects an image (without taking its lock, so running VMs' disks can be read).
    pub fn info(&self, path: &Path) -> Result<ImageInfo, ImageError> {
        let out = self
            .runner
            .run(&Invocation::new("qemu-img").args(["info", "--output=json", "-U"]).arg(path))
            .map_err(|source| ImageError::Tool { action: "inspect image", path: path.to_owned(), source })?;
        parse_info(&out.stdout, path)
    }

    /// `qemu-img info` as qemu-img prints it (a mapping; with `backing_chain`, a list of them,
    /// the image first), for callers that want every field (the original's `get_qemu_info`).
    pub fn info_document(&self, path: &Path, backing_chain: bool) -> Result<serde_json::Value, ImageError> {
        let mut inv = Invocation::new("qemu-img").args(["info", "--output=json", "-U"]);
        if backing_chain {
            inv = inv.arg("--backing-chain");
        }
        let out = self.runner.run(&inv.arg(path)).map_err(|source| ImageError::Tool {
            action: "inspect image",
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_slice(&out.stdout)
            .map_err(|e| ImageError::Parse { path: path.to_owned(), reason: e.to_string() })
    }

    /// Creates a qcow2 overlay at `dest` on `base` (of format `base_format`).
    pub fn create_overlay(&self, base: &Path, base_format: &str, dest: &Path) -> Result<(), ImageError> {
        let inv = Invocation::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", "-F", base_format, "-b"])
            .arg(base)
            .arg(dest);
        self.runner.run(&inv).map_err(|source| ImageError::Tool {
            action: "create overlay",
            path: dest.to_owned(),
            source,
        })?;
        Ok(())
    }

    /// Creates an empty image of `size` (thin; qcow2 metadata preallocated, as the original did).
    pub fn create(&self, dest: &Path, format: &str, size: &str) -> Result<(), ImageError> {
        let mut inv = Invocation::new("qemu-img").args(["create", "-q", "-f", format]);
        if format == "qcow2" {
            inv = inv.args(["-o", "preallocation=metadata"]);
        }
        let inv = inv.arg(dest).arg(size);
        self.runner.run(&inv).map_err(|source| ImageError::Tool {
            action: "create image",
            path: dest.to_owned(),
            source,
        })?;
        Ok(())
    }
}

/// What `qemu-img snapshot` does with a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotCommand {
    /// `-c`: take it.
    Create,
    /// `-a`: go back to it.
    Apply,
    /// `-d`: delete it.
    Delete,
}

impl<'a> Images<'a> {
    fn run(&self, inv: Invocation, action: &'static str, path: &Path) -> Result<(), ImageError> {
        self.runner.run(&inv).map(drop).map_err(|source| ImageError::Tool { action, path: path.to_owned(), source })
    }

    /// The internal snapshot tags of a qcow2 image (without taking its lock).
    pub fn snapshot_tags(&self, path: &Path) -> Result<Vec<String>, ImageError> {
        let out = self
            .runner
            .run(&Invocation::new("qemu-img").args(["info", "--output=json", "-U"]).arg(path))
            .map_err(|source| ImageError::Tool { action: "inspect image", path: path.to_owned(), source })?;
        let info: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| ImageError::Parse { path: path.to_owned(), reason: e.to_string() })?;
        Ok(info
            .get("snapshots")
            .and_then(serde_json::Value::as_array)
            .map(|a| a.iter().filter_map(|s| s.get("name")?.as_str().map(str::to_owned)).collect())
            .unwrap_or_default())
    }

    /// `qemu-img snapshot`: takes, applies or deletes internal snapshot `tag` of a stopped VM's disk.
    pub fn snapshot(&self, path: &Path, command: SnapshotCommand, tag: &str) -> Result<(), ImageError> {
        let (flag, action) = match command {
            SnapshotCommand::Create => ("-c", "take a snapshot of"),
            SnapshotCommand::Apply => ("-a", "revert to a snapshot"),
            SnapshotCommand::Delete => ("-d", "delete a snapshot of"),
        };
        self.run(Invocation::new("qemu-img").args(["snapshot", flag, tag]).arg(path), action, path)
    }

    /// Converts `src` to `format` at `dest`; `compress` compresses qcow2 clusters; with
    /// `backing` (file, format) only the clusters that differ from that backing file are written.
    pub fn convert(
        &self,
        src: &Path,
        dest: &Path,
        format: &str,
        compress: bool,
        backing: Option<(&str, &str)>,
    ) -> Result<(), ImageError> {
        let mut inv = Invocation::new("qemu-img").args(["convert", "-q", "-O", format]);
        if compress && format == "qcow2" {
            inv = inv.arg("-c");
        }
        if let Some((file, fmt)) = backing {
            inv = inv.arg("-B").arg(file).args(["-F", fmt]);
        }
        self.run(inv.arg(src).arg(dest), "convert image", src)
    }

    /// The first `sectors` 512-byte sectors of the disk `src` (of `format`) as the guest sees
    /// them, written raw to `dest` (`qemu-img dd`): its partition table.
    pub fn head(&self, src: &Path, format: &str, sectors: u32, dest: &Path) -> Result<(), ImageError> {
        let inv = Invocation::new("qemu-img")
            .args(["dd", "-f", format, "-O", "raw", "bs=512"])
            .arg(format!("count={sectors}"))
            .arg(format!("if={}", src.display()))
            .arg(format!("of={}", dest.display()));
        self.run(inv, "read the partition table of", src)
    }

    /// Points `path`'s backing file at `backing` (of `format`) without touching the data
    /// (`rebase -u`: the new file holds the same clusters).
    pub fn rebase_unsafe(&self, path: &Path, backing: &str, format: &str) -> Result<(), ImageError> {
        let inv = Invocation::new("qemu-img").args(["rebase", "-u", "-F", format, "-b"]).arg(backing).arg(path);
        self.run(inv, "rebase image", path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::process::{FakeRunner, Output};

    #[test]
    fn the_backing_file_named_in_a_qcow2_header() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("vm_root.qcow2");
        write_qcow2_header(&image, "/store/local:tiny:v1");
        assert_eq!(qcow2_backing(&image).unwrap(), Some(PathBuf::from("/store/local:tiny:v1")));
        // Relative to the image's directory, as qemu reads it.
        write_qcow2_header(&image, "./tiny:v1");
        assert_eq!(qcow2_backing(&image).unwrap(), Some(dir.path().join("./tiny:v1")));
        write_qcow2_header(&image, "file:/store/x");
        assert_eq!(qcow2_backing(&image).unwrap(), Some(PathBuf::from("/store/x")));
        for none in ["", "json:{\"driver\": \"qcow2\"}", "nbd://host/export"] {
            write_qcow2_header(&image, none);
            assert_eq!(qcow2_backing(&image).unwrap(), None, "{none}");
        }
        std::fs::write(&image, b"a raw image, no header").unwrap();
        assert_eq!(qcow2_backing(&image).unwrap(), None);
        assert!(qcow2_backing(&dir.path().join("gone")).is_err());
    }

    #[test]
    fn overlay_names_backing_format() {
        let runner = FakeRunner::new(|_| Ok(Output::default()));
        Images::new(&runner)
            .create_overlay(Path::new("/store/r:t:v1"), "raw", Path::new("/p/images/vm_root.qcow2"))
            .unwrap();
        assert_eq!(
            runner.command_lines(),
            "qemu-img create -q -f qcow2 -o lazy_refcounts=on -F raw -b /store/r:t:v1 /p/images/vm_root.qcow2"
        );
    }

    #[test]
    fn every_operation_spells_its_arguments_for_qemu_img() {
        let runner = FakeRunner::new(|_| {
            Ok(Output { stdout: br#"{"snapshots": [{"name": "a"}, {"name": "b"}]}"#.to_vec(), stderr: vec![] })
        });
        let images = Images::new(&runner);
        let disk = Path::new("/p/images/vm_root.qcow2");
        assert_eq!(images.snapshot_tags(disk).unwrap(), ["a", "b"]);
        images.snapshot(disk, SnapshotCommand::Create, "clean").unwrap();
        images.snapshot(disk, SnapshotCommand::Apply, "clean").unwrap();
        images.snapshot(disk, SnapshotCommand::Delete, "clean").unwrap();
        images.convert(disk, Path::new("/out/vm.qcow2"), "qcow2", true, Some(("/store/t:v1", "qcow2"))).unwrap();
        images.convert(disk, Path::new("/out/vm.raw"), "raw", true, None).unwrap();
        images.rebase_unsafe(Path::new("/out/vm.qcow2"), "./t:v1", "qcow2").unwrap();
        insta::assert_snapshot!(runner.command_lines(), @r"
        qemu-img info --output=json -U /p/images/vm_root.qcow2
        qemu-img snapshot -c clean /p/images/vm_root.qcow2
        qemu-img snapshot -a clean /p/images/vm_root.qcow2
        qemu-img snapshot -d clean /p/images/vm_root.qcow2
        qemu-img convert -q -O qcow2 -c -B /store/t:v1 -F qcow2 /p/images/vm_root.qcow2 /out/vm.qcow2
        qemu-img convert -q -O raw /p/images/vm_root.qcow2 /out/vm.raw
        qemu-img rebase -u -F qcow2 -b ./t:v1 /out/vm.qcow2
        ");
    }

    #[test]
    fn parses_info() {
        let info = parse_info(br#"{"virtual-size": 1073741824, "filename": "x", "format": "qcow2", "backing-filename": "/b", "backing-filename-format": "raw"}"#, Path::new("x")).unwrap();
        assert_eq!(
            info,
            ImageInfo {
                format: "qcow2".into(),
                virtual_size: 1 << 30,
                backing: Some("/b".into()),
                backing_format: Some("raw".into())
            }
        );
    }
}
