//! What the checks ask of the host ([`Host`]), and the real host ([`SystemHost`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::report::BACKPORTS_SOURCES;
use crate::host::process::Found;
use crate::provider::qemu::accel::KvmProbe;

/// What the checks ask of the host. [`SystemHost`] asks the real one.
pub trait Host {
    /// A program lago can run: on `PATH`, or where Debian puts system tools.
    fn find(&self, program: &str) -> Option<Found>;
    /// The first line a program prints for `args` (`--version`), if it runs.
    fn first_line(&self, program: &Path, args: &[&str]) -> Option<String>;
    /// Whether `/boot` holds a kernel (libguestfs builds its appliance from it).
    fn host_kernel(&self) -> bool;
    /// Whether lago can write into `dir` (or create it): `Err` says why not.
    fn writable(&self, dir: &Path) -> Result<(), String>;
    /// Whether the loopback interface takes an SSH forward.
    fn loopback(&self) -> Result<(), String>;
    /// Whether lago may create network interfaces (a network's host leg): why not, if not.
    fn may_create_interfaces(&self) -> Result<(), String>;
    /// Whether KVM runs a Linux guest (the KVM probe, run now).
    fn kvm(&self) -> KvmProbe;
    /// Where VMs keep their memory under `setting` (a directory on a tmpfs) and that tmpfs's
    /// size and free space, or why VMs get ordinary memory.
    fn memory_dir(
        &self,
        setting: &crate::config::MemoryDirSetting,
    ) -> Result<(PathBuf, crate::host::memory::Space), String>;
    /// Facts about the package manager.
    fn apt(&self) -> AptFacts;
    /// Whether lago runs as root.
    fn is_root(&self) -> bool;
    /// The user name (for directory ownership fixes).
    fn user(&self) -> String;
    /// Writes apt's entry for bookworm-backports ([`BACKPORTS_SOURCES`]).
    fn add_apt_source(&self, entry: &str) -> std::io::Result<()>;
    /// Connects to the libvirt host at `url`: its version, or why not.
    fn libvirt(&self, url: &str) -> Result<String, String>;
}

/// What apt looks like on this host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AptFacts {
    /// `apt-get` exists.
    pub present: bool,
    /// The release's code name (`bookworm`), from `/etc/os-release`.
    pub codename: Option<String>,
    /// Days since apt's package lists were downloaded (`None`: never).
    pub lists_age_days: Option<u64>,
    /// Some source already names `bookworm-backports`.
    pub backports: bool,
    /// The Debian mirror and keyring of the existing sources.
    pub mirror: String,
    /// The keyring of the existing Debian source.
    pub keyring: String,
}

/// The real host, with `PATH` as given (the process's by default).
#[derive(Debug, Clone, Default)]
pub struct SystemHost {
    /// `PATH` to search programs in (`None`: the process's).
    pub path: Option<OsString>,
    /// Where the KVM probe's answer is cached (lago's state directory).
    pub cache_dir: PathBuf,
    /// The template store: the KVM probe boots a kernel of its templates.
    pub template_store: PathBuf,
}

/// The newest direct-boot kernel of a template store (`<template>.vmlinux`).
fn store_kernel(store: &Path) -> Option<PathBuf> {
    let mut kernels: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(store)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "vmlinux") && p.is_file())
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    kernels.sort();
    kernels.pop().map(|(_, p)| p)
}

impl Host for SystemHost {
    fn find(&self, program: &str) -> Option<Found> {
        match &self.path {
            Some(p) => crate::host::process::locate_in(program, Some(p)),
            None => crate::host::process::locate(program),
        }
    }

    fn first_line(&self, program: &Path, args: &[&str]) -> Option<String> {
        let inv = crate::host::process::Invocation::new(&program.display().to_string()).args(args);
        let out = crate::host::process::output(&inv).ok()?;
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().next().map(str::to_owned)
    }

    fn host_kernel(&self) -> bool {
        std::fs::read_dir("/boot")
            .is_ok_and(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-")))
    }

    fn writable(&self, dir: &Path) -> Result<(), String> {
        // The directory, or the nearest parent lago would create it in.
        let mut probe = dir;
        while !probe.exists() {
            match probe.parent() {
                Some(p) => probe = p,
                None => return Err(format!("{} cannot be created", dir.display())),
            }
        }
        if !probe.is_dir() {
            return Err(format!("{} is not a directory", probe.display()));
        }
        match nix::unistd::access(probe, nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK) {
            Ok(()) => Ok(()),
            Err(e) if probe == dir => Err(format!("{} is not writable ({e})", dir.display())),
            Err(e) => Err(format!("{} cannot be created: {} is not writable ({e})", dir.display(), probe.display())),
        }
    }

    fn loopback(&self) -> Result<(), String> {
        std::net::TcpListener::bind("127.0.0.1:0").map(drop).map_err(|e| format!("no TCP port on 127.0.0.1: {e}"))
    }

    fn memory_dir(
        &self,
        setting: &crate::config::MemoryDirSetting,
    ) -> Result<(PathBuf, crate::host::memory::Space), String> {
        let dir = crate::prefix::memory::base(setting)?;
        let probe = dir.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/")).to_owned();
        let space = crate::host::memory::space(&probe).map_err(|e| format!("cannot read {}: {e}", probe.display()))?;
        Ok((dir, space))
    }

    fn may_create_interfaces(&self) -> Result<(), String> {
        crate::host::netdev::may_create_interfaces()
    }

    fn kvm(&self) -> KvmProbe {
        let kernel = store_kernel(&self.template_store).or_else(crate::provider::qemu::accel::host_kernel);
        crate::provider::qemu::accel::KvmVerdicts::new(&self.cache_dir).fresh(kernel.as_deref())
    }

    #[cfg(feature = "libvirt")]
    fn libvirt(&self, url: &str) -> Result<String, String> {
        crate::provider::libvirt::version(url).map_err(|e| match e {
            crate::provider::ProviderError::Libvirt { message, .. } => message,
            other => other.to_string(),
        })
    }

    #[cfg(not(feature = "libvirt"))]
    fn libvirt(&self, _url: &str) -> Result<String, String> {
        Err("this lago was built without the `libvirt` feature".into())
    }

    fn apt(&self) -> AptFacts {
        let present = self.find("apt-get").is_some();
        let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let codename = os
            .lines()
            .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
            .map(|v| v.trim_matches('"').to_owned())
            .filter(|v| !v.is_empty());
        // The newest release file: Debian re-signs them at least daily, so their dates say when
        // the lists were last downloaded.
        let newest = std::fs::read_dir("/var/lib/apt/lists").ok().and_then(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with("Release"))
                .filter_map(|e| e.metadata().ok()?.modified().ok())
                .max()
        });
        let lists_age_days = newest.map(|t| t.elapsed().map(|e| e.as_secs() / 86_400).unwrap_or(0));
        let mut sources = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
        if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
            let mut files: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files {
                sources.push_str(&std::fs::read_to_string(&f).unwrap_or_default());
                sources.push('\n');
            }
        }
        let debian = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources").unwrap_or_default();
        let field = |name: &str| {
            debian
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .map(str::to_owned)
        };
        AptFacts {
            present,
            codename,
            lists_age_days,
            backports: sources.contains("bookworm-backports"),
            mirror: field("URIs:").unwrap_or_else(|| "http://deb.debian.org/debian".into()),
            keyring: field("Signed-By:").unwrap_or_else(|| "/usr/share/keyrings/debian-archive-keyring.gpg".into()),
        }
    }

    fn is_root(&self) -> bool {
        nix::unistd::geteuid().is_root()
    }

    fn add_apt_source(&self, entry: &str) -> std::io::Result<()> {
        std::fs::write(BACKPORTS_SOURCES, entry)
    }

    fn user(&self) -> String {
        nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| nix::unistd::geteuid().to_string())
    }
}
