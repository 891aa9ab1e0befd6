//! `lago template import IMAGE|URL --name NAME`: an image users bring (a distribution's cloud
//! image, an image their team prepared) published into the local repository as a new version.
//!
//! The image may be qcow2, raw or anything else `qemu-img` reads, compressed with `xz` or not,
//! a file or an `http(s)` URL. It is refused, with the reason, when `qemu-img` cannot read it or
//! when its disk has no partition table (MBR boot signature or GPT header) — lago boots an
//! imported template through the boot loader on its disk, as a cloud does; no kernel is
//! extracted for direct boot. Its metadata says how it takes the seed `init` writes
//! (`bootstrap`: `cloud-init` reads the NoCloud files of that seed, `lago-seed` lago's own,
//! `none`: no seed, the image must already take the environment's key or password).

use std::path::PathBuf;

use serde_json::json;

use crate::host::fetch::Fetcher;
use crate::host::images::Images;
use crate::host::pathio::at as io;
use crate::host::process::CommandRunner;
use crate::template::build::{BuildError, Built, publish_into};

/// How an imported image takes the environment's seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrap {
    /// cloud-init (NoCloud).
    CloudInit,
    /// lago's first-boot script, as `tiny` and `debian12` have it.
    LagoSeed,
    /// No seed at all.
    None,
}

impl Bootstrap {
    /// Its name in the metadata and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CloudInit => "cloud-init",
            Self::LagoSeed => "lago-seed",
            Self::None => "none",
        }
    }
}

/// What to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// A file or an `http(s)` URL.
    pub image: String,
    /// Template name.
    pub name: String,
    /// Version (`None`: the next `vN`).
    pub version: Option<String>,
    /// `distro` of the metadata.
    pub distro: Option<String>,
    /// The root password the image has, when it has one.
    pub root_password: Option<String>,
    /// How it takes the seed.
    pub bootstrap: Bootstrap,
    /// The local repository's directory.
    pub repo_dir: PathBuf,
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A name or version lago cannot use in a store name.
    #[error("{what} {value:?} is not usable: letters, digits, `.`, `_` and `-` only")]
    BadName {
        /// `--name` or `--version`.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// The image does not exist.
    #[error("{0} does not exist")]
    Missing(PathBuf),
    /// `qemu-img` cannot read it.
    #[error("{image} is not an image qemu-img can read")]
    Unreadable {
        /// The image.
        image: String,
        /// qemu-img's failure.
        #[source]
        source: crate::host::images::ImageError,
    },
    /// Its disk has no partition table.
    #[error("{image} has no partition lago can boot: {why}")]
    NotBootable {
        /// The image.
        image: String,
        /// What its first sectors hold.
        why: String,
    },
    /// Downloading it failed.
    #[error("Cannot download {url}")]
    Fetch {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: crate::host::fetch::FetchError,
    },
    /// `xz` failed.
    #[error("Cannot decompress {image}")]
    Decompress {
        /// The image.
        image: String,
        /// The `xz` failure.
        #[source]
        source: crate::host::process::ProcessError,
    },
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] crate::host::pathio::PathError),
    /// Publishing into the repository failed.
    #[error(transparent)]
    Publish(#[from] BuildError),
}

impl ImportError {
    /// Whether the user's input is at fault (the CLI exits 2), not the host.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::BadName { .. }
                | Self::Missing(_)
                | Self::Unreadable { .. }
                | Self::NotBootable { .. }
                | Self::Publish(BuildError::Repo(_))
        )
    }
}

fn check_name(what: &'static str, value: &str) -> Result<(), ImportError> {
    let ok = !value.is_empty()
        && !value.starts_with('.')
        && value.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok { Ok(()) } else { Err(ImportError::BadName { what, value: value.to_owned() }) }
}

/// What the first sectors of a disk say about its partitions: `Ok("gpt"|"mbr")`, else why not.
pub fn partition_table(head: &[u8]) -> Result<&'static str, String> {
    if head.len() >= 520 && &head[512..520] == b"EFI PART" {
        return Ok("gpt");
    }
    if head.len() < 512 {
        return Err(format!("the disk is only {} bytes long", head.len()));
    }
    if head[510..512] != [0x55, 0xAA] {
        return Err(
            "its first sector has no boot signature (no MBR, no GPT): a bare filesystem or an empty disk".into()
        );
    }
    // A protective MBR without the GPT header at sector 1 is no table either.
    let types: Vec<u8> = (0..4).map(|i| head[446 + 16 * i + 4]).collect();
    if types.iter().all(|t| *t == 0) {
        return Err("its MBR lists no partition".into());
    }
    if types.contains(&0xEE) {
        return Err("its MBR is GPT's protective one, but the GPT header is missing".into());
    }
    Ok("mbr")
}

/// Imports the image (see the module).
pub fn import(opts: &ImportOptions, fetcher: &dyn Fetcher, runner: &dyn CommandRunner) -> Result<Built, ImportError> {
    check_name("--name", &opts.name)?;
    if let Some(v) = &opts.version {
        check_name("--version", v)?;
    }
    std::fs::create_dir_all(&opts.repo_dir).map_err(io("create", &opts.repo_dir))?;
    let work =
        tempfile::Builder::new().prefix(".import-").tempdir_in(&opts.repo_dir).map_err(io("create", &opts.repo_dir))?;
    let is_url = opts.image.starts_with("http://") || opts.image.starts_with("https://");
    let base_name = opts.image.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("image").to_owned();
    let mut path = if is_url {
        let dest = work.path().join(&base_name);
        let body =
            fetcher.open(&opts.image).map_err(|source| ImportError::Fetch { url: opts.image.clone(), source })?;
        let mut file = std::fs::File::create(&dest).map_err(io("create", &dest))?;
        let mut reader = body.reader;
        std::io::copy(&mut reader, &mut file).map_err(io("write", &dest))?;
        dest
    } else {
        let p = PathBuf::from(&opts.image);
        if !p.is_file() {
            return Err(ImportError::Missing(p));
        }
        p
    };
    if base_name.ends_with(".xz") {
        // Decompressed beside a copy in the work directory: the user's file stays as it is.
        let copy = work.path().join(&base_name);
        if path != copy {
            std::fs::copy(&path, &copy).map_err(io("copy", &path))?;
        }
        crate::template::store::unxz(runner, &copy)
            .map_err(|source| ImportError::Decompress { image: opts.image.clone(), source })?;
        path = copy.with_extension("");
    }
    let images = Images::new(runner);
    let info = images.info(&path).map_err(|source| ImportError::Unreadable { image: opts.image.clone(), source })?;
    let head_file = work.path().join("head");
    images
        .head(&path, &info.format, 34, &head_file)
        .map_err(|source| ImportError::Unreadable { image: opts.image.clone(), source })?;
    let head = std::fs::read(&head_file).map_err(io("read", &head_file))?;
    let table = partition_table(&head).map_err(|why| ImportError::NotBootable { image: opts.image.clone(), why })?;
    let mut metadata = json!({
        "distro": opts.distro.clone().unwrap_or_else(|| "unknown".into()),
        "arch": "x86_64",
        "bootstrap": opts.bootstrap.as_str(),
        // Not known from outside: whether an agent runs is read from qemu when the VM runs.
        "guest-agent": null,
        "imported-from": opts.image,
        "source-format": info.format,
        "partition-table": table,
    });
    if let Some(p) = &opts.root_password {
        metadata["root-password"] = json!(p);
    }
    Ok(publish_into(&opts.repo_dir, &opts.name, opts.version.as_deref(), &path, metadata, None, runner)?)
}

/// The first 34 sectors of a disk whose MBR lists partitions of `types`.
#[cfg(test)]
fn mbr_head(types: [u8; 4]) -> Vec<u8> {
    let mut head = vec![0u8; 512 * 34];
    for (i, t) in types.iter().enumerate() {
        head[446 + 16 * i + 4] = *t;
    }
    head[510] = 0x55;
    head[511] = 0xAA;
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_tables_are_told_from_what_cannot_boot() {
        assert_eq!(partition_table(&mbr_head([0x83, 0, 0, 0])), Ok("mbr"));
        let mut gpt = mbr_head([0xEE, 0, 0, 0]);
        gpt[512..520].copy_from_slice(b"EFI PART");
        assert_eq!(partition_table(&gpt), Ok("gpt"));
        assert!(partition_table(&mbr_head([0xEE, 0, 0, 0])).unwrap_err().contains("GPT header is missing"));
        assert!(partition_table(&mbr_head([0; 4])).unwrap_err().contains("no partition"));
        assert!(partition_table(&vec![0u8; 512 * 34]).unwrap_err().contains("no boot signature"));
        assert!(partition_table(b"short").unwrap_err().contains("5 bytes"));
    }

    #[test]
    fn names_that_cannot_be_store_names_are_refused() {
        for bad in ["", "a:b", "a/b", ".hidden", "x y"] {
            assert!(matches!(check_name("--name", bad), Err(ImportError::BadName { .. })), "{bad}");
        }
        check_name("--name", "f40-cloud_1.2").unwrap();
    }

    #[test]
    fn a_missing_file_is_the_user_s_fault() {
        let dir = tempfile::tempdir().unwrap();
        let opts = ImportOptions {
            image: dir.path().join("nope.qcow2").display().to_string(),
            name: "mine".into(),
            version: None,
            distro: None,
            root_password: None,
            bootstrap: Bootstrap::CloudInit,
            repo_dir: dir.path().join("repo"),
        };
        let runner = crate::host::process::FakeRunner::new(|_| unreachable!("nothing runs"));
        let e = import(&opts, &crate::host::fetch::HttpFetcher::default(), &runner).unwrap_err();
        assert!(e.is_bad_input() && matches!(e, ImportError::Missing(_)), "{e}");
    }
}
