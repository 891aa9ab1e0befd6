//! The template store: each template version cached once, as `<repo>:<tpl>:<ver>` with its
//! `.hash` (sha1) and `.metadata` beside it (the original's layout, reference §4.3).
//!
//! Downloads go to a temporary file in the store and are renamed into place only after the
//! hash matched, under an exclusive lock per template, so concurrent `init`s download once and
//! a failed or interrupted download leaves nothing behind. Unlike the original, a cached
//! template whose hash in the repository changed is fetched again (its issue #61).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

use super::repo::{ResolvedTemplate, Source};
use crate::host::fetch::{FetchError, Fetcher};
use crate::host::lock::{FileLock, LockError};
use crate::host::process::{CommandRunner, Invocation, ProcessError};
use crate::report::Reporter;

/// Problems of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] crate::host::pathio::PathError),
    /// The template's lock could not be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Reading from the template's source failed.
    #[error("Cannot download template {name}")]
    Fetch {
        /// Store name.
        name: String,
        /// Why.
        #[source]
        source: FetchError,
    },
    /// The downloaded image does not have the published hash.
    #[error("Image {name} does not match the expected hash {expected} (got {actual}); nothing was stored")]
    HashMismatch {
        /// Store name.
        name: String,
        /// Hash from the repository.
        expected: String,
        /// Hash of what was downloaded.
        actual: String,
    },
    /// The source publishes no hash for the template.
    #[error("Template {name} has no hash file at {location}")]
    NoHash {
        /// Store name.
        name: String,
        /// Where it was looked for.
        location: String,
    },
    /// Decompressing an `.xz` image failed.
    #[error("Cannot decompress template {name}")]
    Decompress {
        /// Store name.
        name: String,
        /// The `xz` failure.
        #[source]
        source: ProcessError,
    },
}

/// A template version present in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTemplate {
    /// The image.
    pub path: PathBuf,
    /// Its sha1.
    pub hash: String,
    /// Its metadata (`distro`, `root-partition`, ...).
    pub metadata: Map<String, Value>,
}

/// The local template cache.
#[derive(Debug, Clone)]
pub struct Store {
    /// Its directory.
    pub root: PathBuf,
}

use crate::host::pathio::at as io;

/// sha1 of a file, hex.
pub fn sha1_file(path: &Path) -> Result<String, StoreError> {
    let mut f = File::open(path).map_err(io("read", path))?;
    let mut h = Sha1::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io("read", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Size and modification time of a file, as `.stamp` records them.
fn stamp_of(path: &Path) -> Result<String, StoreError> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).map_err(io("stat", path))?;
    Ok(format!("{} {}.{:09}", m.len(), m.mtime(), m.mtime_nsec()))
}

/// The first word of a hash file (`sha1sum` writes `<hash>  <name>`).
fn parse_hash(text: &str) -> String {
    text.split_whitespace().next().unwrap_or("").to_ascii_lowercase()
}

/// How one file of a template is read from its source.
enum Opened {
    Found(Box<dyn Read + Send>, Option<u64>),
    Absent(String),
}

fn open_in_source(source: &Source, rel: &str, fetcher: &dyn Fetcher) -> Result<Opened, FetchError> {
    match source {
        Source::File { root } => {
            let p = root.join(rel);
            match File::open(&p) {
                Ok(f) => {
                    let len = f.metadata().ok().map(|m| m.len());
                    Ok(Opened::Found(Box::new(f), len))
                }
                Err(_) => Ok(Opened::Absent(p.display().to_string())),
            }
        }
        Source::Http { baseurl } => {
            let url = format!("{}/{}", baseurl.trim_end_matches('/'), rel);
            match fetcher.open(&url) {
                Ok(body) => Ok(Opened::Found(body.reader, body.length)),
                Err(e) if e.is_not_found() => Ok(Opened::Absent(url)),
                Err(e) => Err(e),
            }
        }
    }
}

/// For http sources the original tries `<handle>.xz<suffix>` first, then `<handle><suffix>`.
fn open_variant(t: &ResolvedTemplate, suffix: &str, fetcher: &dyn Fetcher) -> Result<Opened, FetchError> {
    if matches!(t.source, Source::Http { .. })
        && !t.handle.ends_with(".xz")
        && let Opened::Found(r, l) = open_in_source(&t.source, &format!("{}.xz{suffix}", t.handle), fetcher)?
    {
        return Ok(Opened::Found(r, l));
    }
    open_in_source(&t.source, &format!("{}{suffix}", t.handle), fetcher)
}

fn read_small(t: &ResolvedTemplate, suffix: &str, fetcher: &dyn Fetcher) -> Result<Option<String>, StoreError> {
    let fetch_err = |source| StoreError::Fetch { name: t.store_name(), source };
    match open_variant(t, suffix, fetcher).map_err(fetch_err)? {
        Opened::Found(mut r, _) => {
            let mut s = String::new();
            r.by_ref()
                .take(1 << 20)
                .read_to_string(&mut s)
                .map_err(io("read", Path::new(&format!("{}{suffix}", t.handle))))?;
            Ok(Some(s))
        }
        Opened::Absent(_) => Ok(None),
    }
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    Ok(crate::host::pathio::write_atomic(path, data)?)
}

/// Removes a file on drop unless disarmed.
struct Cleanup(Option<PathBuf>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The prefixes recorded as using the store image at `image` (its `.users` file, one path a
/// line), those that no longer exist left out.
pub fn users(image: &Path) -> Vec<PathBuf> {
    read_users(image).into_iter().filter(|p| p.join("uuid").is_file()).collect()
}

/// The sidecar `<image>.<ext>` of a store image (`.hash`, `.users`, `.lock`...).
pub(crate) use crate::host::pathio::beside;

/// Decompresses `path` (`<name>.xz`) into `<name>` with `xz`, in place.
pub(crate) fn unxz(runner: &dyn CommandRunner, path: &Path) -> Result<(), ProcessError> {
    runner.run(&Invocation::new("xz").args(["--decompress", "--threads=0", "--force"]).arg(path)).map(drop)
}

fn read_users(image: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string(beside(image, "users"))
        .map(|t| t.lines().filter(|l| !l.trim().is_empty()).map(PathBuf::from).collect())
        .unwrap_or_default()
}

/// Records (`add`) or forgets prefix `prefix` as a user of the store image at `image`, under the
/// image's lock; prefixes that no longer exist are dropped on the way.
pub fn set_user(image: &Path, prefix: &Path, add: bool) -> Result<(), StoreError> {
    let _lock = FileLock::acquire(
        &beside(image, "lock"),
        &crate::report::NoopReporter,
        "Waiting for another lago to update the users of a template",
        None,
    )?;
    let mut all: Vec<PathBuf> = users(image).into_iter().filter(|p| p != prefix).collect();
    if add {
        all.push(prefix.to_owned());
    }
    let file = beside(image, "users");
    if all.is_empty() {
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("remove", &file)(e).into()),
            _ => return Ok(()),
        }
    }
    let text: String = all.iter().map(|p| format!("{}\n", p.display())).collect();
    write_atomic(&file, text.as_bytes())
}

impl Store {
    /// A store rooted at `root` (created on first use).
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_owned() }
    }

    /// Where a template version lives in the store.
    pub fn path_of(&self, t: &ResolvedTemplate) -> PathBuf {
        self.root.join(t.store_name())
    }

    fn sidecar(&self, t: &ResolvedTemplate, ext: &str) -> PathBuf {
        beside(&self.path_of(t), ext)
    }

    /// Whether the version is cached.
    pub fn contains(&self, t: &ResolvedTemplate) -> bool {
        self.path_of(t).is_file()
    }

    /// Returns the cached template, downloading it first when it is missing or when the
    /// repository now publishes a different hash for it.
    pub fn ensure(
        &self,
        t: &ResolvedTemplate,
        fetcher: &dyn Fetcher,
        runner: &dyn CommandRunner,
        reporter: &dyn Reporter,
    ) -> Result<StoredTemplate, StoreError> {
        let name = t.store_name();
        std::fs::create_dir_all(&self.root).map_err(io("create", &self.root))?;
        let lock = FileLock::acquire(
            &self.sidecar(t, "lock"),
            reporter,
            &format!("Waiting for another lago to finish downloading {name}"),
            None,
        )?;
        let dest = self.path_of(t);
        let remote_hash = read_small(t, ".hash", fetcher);
        let local_hash = std::fs::read_to_string(self.sidecar(t, "hash")).ok().map(|h| parse_hash(&h));
        let intact = match &local_hash {
            Some(local) if dest.is_file() => self.intact(t, local)?,
            _ => false,
        };
        if dest.is_file() && !intact {
            reporter.warn(&format!(
                "Template {name} in the store was changed since it was stored (size, date or content); fetching it again"
            ));
        }
        if intact {
            match (&remote_hash, &local_hash) {
                (Ok(Some(remote)), Some(local)) if parse_hash(remote) == *local => {
                    return self.stored(t, local.clone());
                }
                (Ok(Some(remote)), _) => {
                    reporter.warn(&format!(
                        "Template {name} changed in its repository (hash {} now), downloading it again",
                        parse_hash(remote)
                    ));
                }
                (Ok(None), Some(local)) | (Err(_), Some(local)) => {
                    tracing::warn!("cannot check template {name} against its repository, using the cached copy");
                    return self.stored(t, local.clone());
                }
                _ => {}
            }
        }
        let expected = match remote_hash? {
            Some(h) => parse_hash(&h),
            None => return Err(StoreError::NoHash { name, location: format!("{}.hash", t.handle) }),
        };
        self.download(t, &expected, fetcher, runner, reporter)?;
        drop(lock);
        self.stored(t, expected)
    }

    /// Whether the stored image is what was stored: the same size and modification time as its
    /// `.stamp` records (cheap), else the same sha1 as its `.hash` (then the stamp is renewed).
    fn intact(&self, t: &ResolvedTemplate, hash: &str) -> Result<bool, StoreError> {
        let dest = self.path_of(t);
        let now = stamp_of(&dest)?;
        let stamp = self.sidecar(t, "stamp");
        if std::fs::read_to_string(&stamp).is_ok_and(|s| s == now) {
            return Ok(true);
        }
        if sha1_file(&dest)? != hash {
            return Ok(false);
        }
        write_atomic(&stamp, now.as_bytes())?;
        Ok(true)
    }

    /// The stored template, with its metadata as the repository published it (`.metadata`): a
    /// disk's record carries it unchanged, `boot` included, as the original's did. Whether the
    /// direct-boot files it names could be had is said by the store's `<name>.vmlinux` and
    /// `<name>.initrd`, which the qemu and libvirt providers look for beside the image.
    fn stored(&self, t: &ResolvedTemplate, hash: String) -> Result<StoredTemplate, StoreError> {
        let metadata = std::fs::read_to_string(self.sidecar(t, "metadata"))
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        Ok(StoredTemplate { path: self.path_of(t), hash, metadata })
    }

    /// Fetches the direct-boot files a template's metadata names (`boot.kernel`, `boot.initrd`,
    /// beside its image, with their sha1s) into the store as `<name>.vmlinux` and `<name>.initrd`.
    /// When one cannot be fetched or does not match its hash, neither is kept, with a warning:
    /// its VMs then boot from their disk, only slower. The metadata stays as published.
    fn fetch_boot_files(&self, t: &ResolvedTemplate, metadata: &Value, fetcher: &dyn Fetcher, reporter: &dyn Reporter) {
        let Some(boot) = metadata.get("boot") else { return };
        let name = t.store_name();
        let mut fetched = Vec::new();
        for (key, ext) in [("kernel", "vmlinux"), ("initrd", "initrd")] {
            let dest = self.sidecar(t, ext);
            let result = (|| -> Result<(), String> {
                let expected = boot.get(format!("{key}_sha1")).and_then(Value::as_str).ok_or("no sha1 published")?;
                let rel = format!("{}.{ext}", t.handle);
                let mut reader = match open_in_source(&t.source, &rel, fetcher).map_err(|e| e.to_string())? {
                    Opened::Found(r, _) => r,
                    Opened::Absent(loc) => return Err(format!("{loc} is missing")),
                };
                let tmp = self.sidecar(t, &format!("{ext}.tmp"));
                let guard = Cleanup(Some(tmp.clone()));
                let mut out = File::create(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
                std::io::copy(&mut reader, &mut out).map_err(|e| format!("cannot download {rel}: {e}"))?;
                drop(out);
                let actual = sha1_file(&tmp).map_err(|e| e.to_string())?;
                if actual != expected.to_ascii_lowercase() {
                    return Err(format!("sha1 {actual}, expected {expected}"));
                }
                std::fs::rename(&tmp, &dest).map_err(|e| format!("cannot rename {}: {e}", tmp.display()))?;
                std::mem::forget(guard);
                Ok(())
            })();
            match result {
                Ok(()) => fetched.push(dest),
                Err(why) => {
                    reporter.warn(&format!(
                        "Template {name}: its {key} for direct boot cannot be used ({why}); its VMs boot from their disk"
                    ));
                    for f in fetched.iter().chain([&dest]) {
                        let _ = std::fs::remove_file(f);
                    }
                    return;
                }
            }
        }
    }

    fn download(
        &self,
        t: &ResolvedTemplate,
        expected: &str,
        fetcher: &dyn Fetcher,
        runner: &dyn CommandRunner,
        reporter: &dyn Reporter,
    ) -> Result<(), StoreError> {
        let name = t.store_name();
        let tmp = self.sidecar(t, "tmp");
        let guard = Cleanup(Some(tmp.clone()));
        let xz_guard = Cleanup(Some(self.sidecar(t, "tmp.xz")));
        let fetch_err = |source| StoreError::Fetch { name: name.clone(), source };
        let (mut reader, length) = match open_variant(t, "", fetcher).map_err(fetch_err)? {
            Opened::Found(r, l) => (r, l),
            Opened::Absent(loc) => {
                return Err(StoreError::Fetch {
                    name: name.clone(),
                    source: FetchError::Status { url: loc, status: 404 },
                });
            }
        };
        let mut out = File::create(&tmp).map_err(io("create", &tmp))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut done = 0u64;
        let mut head = Vec::new();
        loop {
            if crate::host::interrupt::check().is_err() {
                return Err(StoreError::Io(crate::host::pathio::PathError {
                    action: "download",
                    path: tmp.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::Interrupted, "lago was interrupted"),
                }));
            }
            let n = reader.read(&mut buf).map_err(io("download", &tmp))?;
            if n == 0 {
                break;
            }
            if head.len() < 6 {
                head.extend_from_slice(&buf[..n.min(6)]);
            }
            out.write_all(&buf[..n]).map_err(io("write", &tmp))?;
            done += n as u64;
            reporter.download(&name, done, length);
        }
        out.sync_all().map_err(io("write", &tmp))?;
        drop(out);
        reporter.download_finished(&name);
        if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            let xz = self.sidecar(t, "tmp.xz");
            std::fs::rename(&tmp, &xz).map_err(io("rename", &tmp))?;
            unxz(runner, &xz).map_err(|source| StoreError::Decompress { name: name.clone(), source })?;
        }
        let actual = sha1_file(&tmp)?;
        if actual != expected {
            return Err(StoreError::HashMismatch { name, expected: expected.to_owned(), actual });
        }
        let metadata = read_small(t, ".metadata", fetcher)?.unwrap_or_else(|| "{}".into());
        let metadata: Value = serde_json::from_str(&metadata).unwrap_or_else(|e| {
            tracing::warn!("metadata of template {name} is not valid JSON ({e}), ignoring it");
            Value::Object(Map::new())
        });
        self.fetch_boot_files(t, &metadata, fetcher, reporter);
        write_atomic(&self.sidecar(t, "metadata"), metadata.to_string().as_bytes())?;
        write_atomic(&self.sidecar(t, "hash"), expected.as_bytes())?;
        std::fs::rename(&tmp, self.path_of(t)).map_err(io("rename", &tmp))?;
        write_atomic(&self.sidecar(t, "stamp"), stamp_of(&self.path_of(t))?.as_bytes())?;
        std::mem::forget(guard);
        drop(xz_guard);
        tracing::info!("stored template {name} ({done} bytes downloaded)");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fetch::HttpFetcher;
    use crate::host::process::SystemRunner;
    use crate::report::NoopReporter;
    use crate::template::Repository;

    fn repo(dir: &Path, content: &[u8], hash: &str) -> Repository {
        let root = dir.join("src");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("img"), content).unwrap();
        std::fs::write(root.join("img.hash"), format!("{hash}  img\n")).unwrap();
        std::fs::write(root.join("img.metadata"), r#"{"distro": "tiny"}"#).unwrap();
        let text = format!(
            r#"{{"name": "r", "sources": {{"s": {{"type": "file", "args": {{"root": "{}"}}}}}}, "templates": {{"t": {{"versions": {{"v1": {{"source": "s", "handle": "img", "timestamp": 1}}}}}}}}}}"#,
            root.display()
        );
        Repository::parse(&text, "test").unwrap()
    }

    fn sha1(b: &[u8]) -> String {
        hex::encode(Sha1::digest(b))
    }

    #[test]
    fn stores_once_and_refetches_on_new_hash() {
        let dir = tempfile::tempdir().unwrap();
        let r = repo(dir.path(), b"one", &sha1(b"one"));
        let t = r.resolve("t", None).unwrap();
        let store = Store::new(&dir.path().join("store"));
        let got = store.ensure(&t, &HttpFetcher::default(), &SystemRunner, &NoopReporter).unwrap();
        assert_eq!(std::fs::read(&got.path).unwrap(), b"one");
        assert_eq!(got.metadata["distro"], "tiny");
        assert_eq!(std::fs::read_to_string(dir.path().join("store/r:t:v1.hash")).unwrap(), sha1(b"one"));
        // The repository publishes a new image under the same version: fetched again.
        let r = repo(dir.path(), b"two", &sha1(b"two"));
        let got = store
            .ensure(&r.resolve("t", None).unwrap(), &HttpFetcher::default(), &SystemRunner, &NoopReporter)
            .unwrap();
        assert_eq!(std::fs::read(&got.path).unwrap(), b"two");
    }

    #[test]
    fn a_damaged_copy_in_the_store_is_fetched_again() {
        let dir = tempfile::tempdir().unwrap();
        let r = repo(dir.path(), b"original", &sha1(b"original"));
        let t = r.resolve("t", None).unwrap();
        let store = Store::new(&dir.path().join("store"));
        let fetcher = HttpFetcher::default();
        let path = store.ensure(&t, &fetcher, &SystemRunner, &NoopReporter).unwrap().path;
        // Truncated, then overwritten with the same size: both are noticed.
        std::fs::write(&path, b"orig").unwrap();
        assert_eq!(
            std::fs::read(store.ensure(&t, &fetcher, &SystemRunner, &NoopReporter).unwrap().path).unwrap(),
            b"original"
        );
        std::fs::write(&path, b"ORIGINAL").unwrap();
        assert_eq!(
            std::fs::read(store.ensure(&t, &fetcher, &SystemRunner, &NoopReporter).unwrap().path).unwrap(),
            b"original"
        );
        // A store written before stamps existed is checked once by hash, then stamped.
        std::fs::remove_file(dir.path().join("store/r:t:v1.stamp")).unwrap();
        store.ensure(&t, &fetcher, &SystemRunner, &NoopReporter).unwrap();
        assert!(dir.path().join("store/r:t:v1.stamp").is_file());
    }

    #[test]
    fn hash_mismatch_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let r = repo(dir.path(), b"data", &sha1(b"other"));
        let store = Store::new(&dir.path().join("store"));
        let err = store
            .ensure(&r.resolve("t", None).unwrap(), &HttpFetcher::default(), &SystemRunner, &NoopReporter)
            .unwrap_err();
        assert!(matches!(err, StoreError::HashMismatch { .. }), "{err}");
        let left: Vec<String> = std::fs::read_dir(dir.path().join("store"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["r:t:v1.lock"]);
    }

    #[test]
    fn xz_images_are_decompressed() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"compressed content").unwrap();
        SystemRunner.run(&Invocation::new("xz").args(["--keep"]).arg(&plain)).unwrap();
        let xz = std::fs::read(dir.path().join("plain.xz")).unwrap();
        let r = repo(dir.path(), &xz, &sha1(b"compressed content"));
        let store = Store::new(&dir.path().join("store"));
        let got = store
            .ensure(&r.resolve("t", None).unwrap(), &HttpFetcher::default(), &SystemRunner, &NoopReporter)
            .unwrap();
        assert_eq!(std::fs::read(&got.path).unwrap(), b"compressed content");
    }

    /// A repository whose image `img` names `img.vmlinux` and `img.initrd` for direct boot.
    fn repo_with_boot(root: &Path, kernel_sha1: &str) -> Repository {
        std::fs::write(root.join("img"), b"disk").unwrap();
        std::fs::write(root.join("img.hash"), sha1(b"disk")).unwrap();
        std::fs::write(root.join("img.vmlinux"), b"kernel").unwrap();
        std::fs::write(root.join("img.initrd"), b"initrd").unwrap();
        let meta = serde_json::json!({"distro": "tiny", "boot": {
            "kernel": "img.vmlinux", "kernel_sha1": kernel_sha1,
            "initrd": "img.initrd", "initrd_sha1": sha1(b"initrd"), "cmdline": "root=LABEL=lago-root"}});
        std::fs::write(root.join("img.metadata"), meta.to_string()).unwrap();
        let text = format!(
            r#"{{"name": "r", "sources": {{"s": {{"type": "file", "args": {{"root": "{}"}}}}}}, "templates": {{"t": {{"versions": {{"v1": {{"source": "s", "handle": "img", "timestamp": 1}}}}}}}}}}"#,
            root.display()
        );
        Repository::parse(&text, "test").unwrap()
    }

    #[test]
    fn direct_boot_files_are_stored_beside_the_image_and_the_metadata_as_published() {
        let dir = tempfile::tempdir().unwrap();
        let t = repo_with_boot(dir.path(), &sha1(b"kernel")).resolve("t", None).unwrap();
        let store = Store::new(&dir.path().join("store"));
        let got = store.ensure(&t, &HttpFetcher::default(), &SystemRunner, &NoopReporter).unwrap();
        let published: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("img.metadata")).unwrap()).unwrap();
        assert_eq!(Value::Object(got.metadata.clone()), published);
        assert_eq!(got.metadata["boot"]["kernel"], "img.vmlinux");
        let kernel = dir.path().join("store/r:t:v1.vmlinux");
        assert_eq!(std::fs::read(&kernel).unwrap(), b"kernel");
        assert_eq!(std::fs::read(dir.path().join("store/r:t:v1.initrd")).unwrap(), b"initrd");
        // A boot file gone from the store: the template is still usable (its VMs boot from
        // their disk), its metadata still the published one.
        std::fs::remove_file(&kernel).unwrap();
        let got = store.ensure(&t, &HttpFetcher::default(), &SystemRunner, &NoopReporter).unwrap();
        assert_eq!(Value::Object(got.metadata), published);
    }

    #[test]
    fn a_boot_file_with_the_wrong_hash_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let t = repo_with_boot(dir.path(), &sha1(b"another kernel")).resolve("t", None).unwrap();
        let store = Store::new(&dir.path().join("store"));
        let got = store.ensure(&t, &HttpFetcher::default(), &SystemRunner, &NoopReporter).unwrap();
        assert_eq!(got.metadata["boot"]["kernel_sha1"], sha1(b"another kernel"));
        assert_eq!(std::fs::read(&got.path).unwrap(), b"disk");
        let mut left: Vec<String> = std::fs::read_dir(dir.path().join("store"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["r:t:v1", "r:t:v1.hash", "r:t:v1.lock", "r:t:v1.metadata", "r:t:v1.stamp"]);
    }
}
