//! File-system errors that name their path: one type shared by every module's error enum
//! (`#[error(transparent)] Io(#[from] PathError)`), so no I/O error reaches the user without the
//! file it was about.

use std::path::{Path, PathBuf};

/// An I/O error with what was being done and on which path.
#[derive(Debug, thiserror::Error)]
#[error("Cannot {action} {path}")]
pub struct PathError {
    /// What was being done (`read`, `create`, ...).
    pub action: &'static str,
    /// On what.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// The sidecar `<path>.<ext>` of a file: the store's `.hash`, `.users`, `.lock`, and the
/// direct-boot files `.vmlinux` and `.initrd` of a stored image.
pub fn beside(path: &Path, ext: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

/// For `map_err`: `std::fs::read(p).map_err(at("read", p))?`.
pub fn at(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PathError {
    let path = path.to_owned();
    move |source| PathError { action, path, source }
}

/// Writes `data` to `path` atomically: a temporary file in the same directory, flushed to disk,
/// then renamed over `path`. A crash or an interrupt leaves the old file or the new one, and a
/// failure removes the temporary file.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), PathError> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // Created as an ordinary file would be (0666 less the umask), not 0600.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(at("write", path))?;
    tmp.write_all(data).map_err(at("write", path))?;
    tmp.as_file().sync_data().map_err(at("write", path))?;
    tmp.persist(path).map_err(|e| PathError { action: "write", path: path.to_owned(), source: e.error })?;
    Ok(())
}

/// The most lago reads of one of its own state files (`virt/*`, `run/state.json`, records).
pub const MAX_STATE: u64 = 16 << 20;

/// Reads a small text file lago owns: a regular file of at most `limit` bytes, as UTF-8. A FIFO
/// or a device is refused before it is opened (nothing blocks), a huge file is refused after
/// `limit` bytes (nothing fills the memory).
pub fn read_text(path: &Path, limit: u64) -> Result<String, PathError> {
    use std::io::Read;
    let err = |source| PathError { action: "read", path: path.to_owned(), source };
    let meta = std::fs::metadata(path).map_err(err)?;
    if !meta.is_file() {
        return Err(err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file")));
    }
    let mut text = String::new();
    std::fs::File::open(path).map_err(err)?.take(limit + 1).read_to_string(&mut text).map_err(err)?;
    if text.len() as u64 > limit {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} KiB: not a file lago wrote", limit >> 10),
        )));
    }
    Ok(text)
}
