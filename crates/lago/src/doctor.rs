//! `lago doctor`: what this host has of what lago needs, and the exact commands that fix the rest.
//!
//! [`examine`] runs every check through a [`Host`] (the real one is [`SystemHost`]; unit tests use
//! a fake) and returns a [`Report`]: one [`Check`] per need, grouped by what needs it, each with a
//! [`Fix`] when it fails. [`fix`] carries out the fixes that are package installations, in an order
//! that works on Debian 12: qemu from bookworm-backports first (Debian 12's own qemu 7.2 would
//! remove the qemu-img 10 these hosts come with), then everything that depends on it
//! (libguestfs). The same report drives the CLI's lines, its JSON and the set-up script.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::host::process::{CommandRunner, Found, Invocation, ProcessError};
use crate::provider::qemu::accel::KvmProbe;
use crate::report::{Reporter, task};

/// What needs a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// `lago init` and `lago start` (the exit code depends on these).
    Core,
    /// `lago template build tiny`: what a first environment needs.
    Templates,
    /// debian12 templates, `build` steps, Ansible: only some users and the tests need them.
    Extras,
    /// The `local-libvirt` provider: only its users and the tests need it.
    Libvirt,
}

impl Group {
    /// Heading of the group in `lago doctor`'s output.
    pub fn title(self) -> &'static str {
        match self {
            Group::Core => "lago init and lago start",
            Group::Templates => "lago template build tiny",
            Group::Extras => "extras: debian12 template, build steps, Ansible",
            Group::Libvirt => "local-libvirt: VMs on libvirt hosts",
        }
    }
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// What needs it.
    pub group: Group,
    /// The tool or resource (`qemu-system-x86_64`, `lease directory`).
    pub name: String,
    /// Whether it is there and works.
    pub ok: bool,
    /// Whether `init`/`start` fail without it (the exit code of `lago doctor`).
    pub required: bool,
    /// What was found, or what is wrong.
    pub detail: String,
    /// Why lago needs it.
    pub purpose: &'static str,
    /// How to fix it, when it failed.
    #[serde(serialize_with = "fix_as_command")]
    pub fix: Option<Fix>,
    /// What the verdict rests on (the KVM probe's: the host's KVM module, qemu's words).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

fn fix_as_command<S: serde::Serializer>(fix: &Option<Fix>, s: S) -> Result<S::Ok, S::Error> {
    match fix {
        Some(f) => s.serialize_some(&f.command()),
        None => s.serialize_none(),
    }
}

/// A fix: packages to install (the way that works on this host), or advice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Install packages of the distribution.
    Install {
        /// Debian packages.
        packages: Vec<String>,
        /// Whether the command needs `sudo` (not root).
        sudo: bool,
    },
    /// Install packages pinned to bookworm-backports, adding that suite to apt's sources first
    /// when `source` is given (the deb822 entry to write).
    Backports {
        /// Debian packages (without the `/bookworm-backports` suffix).
        packages: Vec<String>,
        /// The `.sources` entry to write, when the suite is not configured yet.
        source: Option<String>,
        /// Whether the command needs `sudo`.
        sudo: bool,
    },
    /// Download apt's package lists.
    AptUpdate {
        /// Whether the command needs `sudo`.
        sudo: bool,
    },
    /// Create a directory owned by the user.
    Directory {
        /// The directory.
        path: PathBuf,
        /// The user who must own it, when `sudo` is needed.
        owner: Option<String>,
    },
    /// Something to do by hand.
    Advice(String),
}

/// Package lists older than this are refreshed by `--fix`.
const MAX_LISTS_AGE_DAYS: u64 = 7;

/// Where the backports suite's entry goes.
pub const BACKPORTS_SOURCES: &str = "/etc/apt/sources.list.d/lago-backports.sources";
const APT_INSTALL: &str = "apt-get install -y --no-install-recommends";

impl Fix {
    /// The exact shell command (or advice) that fixes the check.
    pub fn command(&self) -> String {
        let sudo = |s: bool| if s { "sudo " } else { "" };
        match self {
            Fix::Install { packages, sudo: s } => format!("{}{APT_INSTALL} {}", sudo(*s), packages.join(" ")),
            Fix::Backports { packages, source, sudo: s } => {
                let pinned: Vec<String> = packages.iter().map(|p| format!("{p}/bookworm-backports")).collect();
                let install = format!("{}{APT_INSTALL} {}", sudo(*s), pinned.join(" "));
                match source {
                    None => install,
                    Some(entry) => format!(
                        "printf '{}' | {}tee {BACKPORTS_SOURCES} >/dev/null && {}apt-get update && {install}",
                        entry.replace('\n', "\\n"),
                        sudo(*s),
                        sudo(*s)
                    ),
                }
            }
            Fix::AptUpdate { sudo: s } => format!("{}apt-get update", sudo(*s)),
            Fix::Directory { path, owner: Some(owner) } => {
                format!("sudo install -d -o {owner} {}", shell_word(&path.display().to_string()))
            }
            Fix::Directory { path, owner: None } => format!("mkdir -p {}", shell_word(&path.display().to_string())),
            Fix::Advice(text) => text.clone(),
        }
    }

    /// The packages this fix installs.
    pub fn packages(&self) -> &[String] {
        match self {
            Fix::Install { packages, .. } | Fix::Backports { packages, .. } => packages,
            _ => &[],
        }
    }
}

fn shell_word(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

impl fmt::Display for Fix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.command())
    }
}

/// Every check of a host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Whether everything `init` and `start` need is there.
    pub ready: bool,
    /// The checks, in the order shown.
    pub checks: Vec<Check>,
}

impl Report {
    fn new(checks: Vec<Check>) -> Self {
        Self { ready: checks.iter().all(|c| c.ok || !c.required), checks }
    }

    /// The failed checks in `groups`.
    pub fn failed(&self, groups: &[Group]) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(move |c| !c.ok && groups.contains(&c.group))
    }
}

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
    /// Whether KVM runs a Linux guest (the KVM probe, run now).
    fn kvm(&self) -> KvmProbe;
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

/// Paths the checks look at.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `[init] template_store`.
    pub template_store: PathBuf,
    /// `[init] template_repo_path` (a local file or a URL).
    pub template_repo: String,
    /// `[lago] lease_dir`.
    pub lease_dir: PathBuf,
    /// `[lago] libvirt_url`: the default libvirt host.
    pub libvirt_url: String,
}

/// Runs every check.
pub fn examine(host: &dyn Host, paths: &Paths) -> Report {
    let apt = host.apt();
    let sudo = !host.is_root();
    let install = |pkgs: &[&str]| -> Fix {
        if apt.present {
            Fix::Install { packages: pkgs.iter().map(|s| (*s).to_owned()).collect(), sudo }
        } else {
            Fix::Advice(format!("install {} with your distribution's package manager", pkgs.join(", ")))
        }
    };
    let bookworm = apt.present && apt.codename.as_deref() == Some("bookworm");
    // qemu on Debian 12: from bookworm-backports, the same qemu as the qemu-img these hosts have.
    let qemu_fix = |pkgs: &[&str]| -> Fix {
        if bookworm {
            let source = (!apt.backports).then(|| {
                format!(
                    "Types: deb\nURIs: {}\nSuites: bookworm-backports\nComponents: main\nSigned-By: {}\n",
                    apt.mirror, apt.keyring
                )
            });
            Fix::Backports { packages: pkgs.iter().map(|s| (*s).to_owned()).collect(), source, sudo }
        } else {
            install(pkgs)
        }
    };
    const QEMU_PACKAGES: &[&str] = &["qemu-system-x86", "qemu-system-common", "qemu-system-data", "seabios"];
    let mut checks = Vec::new();
    let mut push = |group, name: &str, required, purpose, outcome: Result<String, (String, Fix)>| {
        let (ok, detail, fix) = match outcome {
            Ok(d) => (true, d, None),
            Err((d, f)) => (false, d, Some(f)),
        };
        checks.push(Check { group, name: name.to_owned(), ok, required, detail, purpose, fix, evidence: Vec::new() });
    };
    let tool = |name: &str, fix: Fix| -> Result<String, (String, Fix)> {
        host.find(name).map(|f| found_detail(&f)).ok_or_else(|| (NOT_FOUND.to_owned(), fix))
    };

    // lago init / lago start.
    let qemu = host.find("qemu-system-x86_64").map(|f| f.path);
    let qemu_version = qemu.as_deref().and_then(|q| host.first_line(q, &["--version"])).map(|l| version_of(&l));
    push(
        Group::Core,
        "qemu-system-x86_64",
        true,
        "runs the VMs (one qemu per VM)",
        match (&qemu, &qemu_version) {
            (Some(p), Some(v)) => Ok(format!("QEMU {v} ({})", p.display())),
            (Some(p), None) => Err((format!("{} does not run", p.display()), qemu_fix(QEMU_PACKAGES))),
            (None, _) => Err((NOT_FOUND.into(), qemu_fix(QEMU_PACKAGES))),
        },
    );
    let img = host.find("qemu-img").map(|f| f.path);
    let img_version = img.as_deref().and_then(|q| host.first_line(q, &["--version"])).map(|l| version_of(&l));
    push(
        Group::Core,
        "qemu-img",
        true,
        "creates the VMs' disks on their templates",
        match (&img, &img_version, &qemu_version) {
            (None, _, _) => Err((NOT_FOUND.into(), qemu_fix(&["qemu-utils"]))),
            (Some(p), None, _) => Err((format!("{} does not run", p.display()), qemu_fix(&["qemu-utils"]))),
            (Some(_), Some(i), Some(q)) if i != q => Err((
                format!("version {i}, but qemu-system-x86_64 is {q}: install both from the same qemu"),
                qemu_fix(&[&["qemu-utils"], QEMU_PACKAGES].concat()),
            )),
            (Some(_), Some(i), Some(_)) => Ok(format!("{i}, the same qemu as qemu-system-x86_64")),
            (Some(_), Some(i), None) => Ok(i.clone()),
        },
    );
    for (name, purpose) in
        [("ssh", "runs commands in the VMs, `lago shell`"), ("ssh-keygen", "makes each environment's key pair")]
    {
        push(Group::Core, name, true, purpose, tool(name, install(&["openssh-client"])));
    }
    let store = &paths.template_store;
    push(
        Group::Core,
        "template store",
        true,
        "holds each template version once (`template_store`)",
        host.writable(store)
            .map(|()| format!("{} is writable", store.display()))
            .map_err(|why| (why, dir_fix(store, sudo, host))),
    );
    push(
        Group::Core,
        "lease directory",
        true,
        "keeps two environments off one network segment (`lease_dir`)",
        host.writable(&paths.lease_dir)
            .map(|()| format!("{} is writable", paths.lease_dir.display()))
            .map_err(|why| (why, dir_fix(&paths.lease_dir, sudo, host))),
    );
    push(
        Group::Core,
        "loopback",
        true,
        "SSH reaches lago's VMs through forwards on 127.0.0.1",
        host.loopback()
            .map(|()| "a free TCP port on 127.0.0.1".to_owned())
            .map_err(|why| (why, Fix::Advice("bring the loopback interface up: `ip link set lo up`".into()))),
    );
    let kvm = if qemu_version.is_some() {
        host.kvm()
    } else {
        KvmProbe { usable: false, reason: "not probed: qemu-system-x86_64 is missing".into(), evidence: Vec::new() }
    };
    let kvm_evidence = kvm.evidence.clone();
    push(
        Group::Core,
        "KVM",
        false,
        "hardware acceleration (`accel = auto` uses it where a Linux guest comes up under KVM)",
        if kvm.usable {
            Ok(format!("{}; VMs run under KVM", kvm.reason))
        } else {
            Err((
                format!("{}; VMs run under TCG (software emulation, slower)", kvm.reason),
                Fix::Advice(if kvm.reason.contains("missing") {
                    "enable virtualization in the firmware and load `kvm_intel` or `kvm_amd`, or keep TCG (`accel = tcg` skips the probe)".into()
                } else if kvm.reason.contains("cannot be opened") {
                    crate::provider::qemu::accel::device_access_advice(std::path::Path::new(
                        crate::provider::qemu::accel::KVM_DEVICE,
                    ))
                } else {
                    "nothing to do: `accel = auto` uses TCG here (`accel = tcg` skips the probe)".into()
                }),
            ))
        },
    );

    // lago template build tiny.
    push(
        Group::Templates,
        "apt package lists",
        false,
        "`lago template build` downloads Debian packages with apt",
        if !apt.present {
            Err((
                "apt-get not found: templates are built from Debian packages".into(),
                Fix::Advice("build templates on a Debian or Ubuntu host".into()),
            ))
        } else {
            match apt.lists_age_days {
                None => Err(("no package lists (apt-get update never ran)".into(), Fix::AptUpdate { sudo })),
                // Debian's mirrors keep only current versions: old lists name files that are gone.
                Some(days) if days > MAX_LISTS_AGE_DAYS => Err((
                    format!(
                        "the package lists are {days} days old: the packages they name may be gone from the mirror"
                    ),
                    Fix::AptUpdate { sudo },
                )),
                Some(0) => Ok("updated today".into()),
                Some(days) => Ok(format!("updated {days} day{} ago", if days == 1 { "" } else { "s" })),
            }
        },
    );
    push(
        Group::Templates,
        "mcopy",
        false,
        "syslinux installs the boot loader through mtools",
        tool("mcopy", install(&["mtools"])),
    );
    push(
        Group::Templates,
        "mke2fs",
        false,
        "writes the templates' root file systems",
        tool("mke2fs", install(&["e2fsprogs"])),
    );
    push(
        Group::Templates,
        "xz",
        false,
        "extracts the kernel of templates for direct boot, unpacks compressed templates",
        tool("xz", install(&["xz-utils"])),
    );
    let repo_dir = repo_dir(&paths.template_repo);
    push(
        Group::Templates,
        "template repository",
        false,
        "`lago template build` publishes into the repository of `template_repo_path`",
        match &repo_dir {
            None => Ok(format!("{} is not local (build with `--repo-dir DIR`)", paths.template_repo)),
            Some(dir) => host
                .writable(dir)
                .map(|()| format!("{} is writable", dir.display()))
                .map_err(|why| (why, dir_fix(dir, sudo, host))),
        },
    );

    // Extras.
    push(
        Group::Extras,
        "mmdebstrap",
        false,
        "builds the debian12 template (`lago template build debian12`, as root)",
        tool("mmdebstrap", install(&["mmdebstrap"])),
    );
    let guestfs = install(&["guestfs-tools", "linux-image-amd64"]);
    push(
        Group::Extras,
        "virt-customize",
        false,
        "runs the `build` steps of init files",
        match host.find("virt-customize") {
            None => Err((NOT_FOUND.into(), guestfs)),
            Some(f) if !host.host_kernel() => Err((
                format!("{} is there, but /boot has no kernel for libguestfs's appliance", f.path.display()),
                install(&["linux-image-amd64"]),
            )),
            Some(f) => Ok(format!("{} with a host kernel in /boot", found_detail(&f))),
        },
    );
    push(
        Group::Extras,
        "ansible",
        false,
        "optional: drives VMs through `lago ansible_hosts` (the tests check it)",
        tool("ansible", install(&["ansible-core"])),
    );

    // local-libvirt.
    const LIBVIRT_PACKAGES: &[&str] = &["libvirt-daemon-system", "libvirt-clients", "dnsmasq-base", "iptables"];
    let libvirtd = host.find("libvirtd");
    push(
        Group::Libvirt,
        "libvirtd",
        false,
        "runs local-libvirt VMs (a host's libvirt daemon)",
        libvirtd.as_ref().map(found_detail).ok_or_else(|| (NOT_FOUND.to_owned(), install(LIBVIRT_PACKAGES))),
    );
    push(
        Group::Libvirt,
        "dnsmasq",
        false,
        "serves DHCP and DNS on libvirt's nat networks",
        tool("dnsmasq", install(&["dnsmasq-base"])),
    );
    push(
        Group::Libvirt,
        "virsh",
        false,
        "attaches `lago console` to libvirt VMs",
        tool("virsh", install(&["libvirt-clients"])),
    );
    push(
        Group::Libvirt,
        "libvirt host",
        false,
        "the default host of local-libvirt VMs (`libvirt_url`)",
        host.libvirt(&paths.libvirt_url).map_err(|why| {
            let advice = if libvirtd.is_some() {
                "start libvirtd (`systemctl start libvirtd`), or point `libvirt_url` at a running host"
            } else {
                "install libvirt (above), then start libvirtd, or point `libvirt_url` at a running host"
            };
            (format!("{} does not answer: {why}", paths.libvirt_url), Fix::Advice(advice.into()))
        }),
    );
    if let Some(check) = checks.iter_mut().find(|c| c.name == "KVM") {
        check.evidence = kvm_evidence;
    }
    Report::new(checks)
}

/// What a check of a program says when it is nowhere lago looks.
const NOT_FOUND: &str = "not installed: not on PATH, nor in /usr/local/sbin, /usr/sbin or /sbin";

/// A program found: its path, and whether the user's shell finds it too.
fn found_detail(found: &Found) -> String {
    if found.on_path {
        found.path.display().to_string()
    } else {
        let dir = found.path.parent().map(|d| d.display().to_string()).unwrap_or_default();
        format!(
            "{} (installed, not on your PATH: lago looks in {dir} too; add it to PATH to run it yourself)",
            found.path.display()
        )
    }
}

fn dir_fix(dir: &Path, sudo: bool, host: &dyn Host) -> Fix {
    Fix::Directory { path: dir.to_owned(), owner: sudo.then(|| host.user()) }
}

/// The directory of a local repository (`/x/repo.metadata`, `file:///x/repo.metadata`).
fn repo_dir(location: &str) -> Option<PathBuf> {
    if location.contains("://") && !location.starts_with("file://") {
        return None;
    }
    let path = Path::new(location.strip_prefix("file://").unwrap_or(location));
    Some(path.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// `QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)` → `10.0.2 (Debian 1:10.0.2+ds-2)`.
fn version_of(line: &str) -> String {
    line.split_once("version ").map(|(_, v)| v.trim().to_owned()).unwrap_or_else(|| line.trim().to_owned())
}

/// Why a fix could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// A package installation failed.
    #[error("Cannot install {packages}")]
    Install {
        /// The packages.
        packages: String,
        /// The failure of `apt-get`.
        #[source]
        source: ProcessError,
    },
    /// Writing apt's sources failed.
    #[error("Cannot write {path}")]
    Sources {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A directory could not be created.
    #[error(transparent)]
    Dir(#[from] crate::host::pathio::PathError),
    /// Installing needs root.
    #[error("Installing packages needs root: {commands}")]
    NotRoot {
        /// What would have run.
        commands: String,
    },
}

/// Carries out the fixes of the failed checks in `groups`: apt's lists, qemu from backports,
/// then the other packages, then directories. Returns one line per action, as it was announced.
pub fn fix(
    report: &Report,
    groups: &[Group],
    host: &dyn Host,
    runner: &dyn CommandRunner,
    reporter: &dyn Reporter,
) -> Result<Vec<String>, DoctorError> {
    let failed: Vec<&Check> = report.failed(groups).collect();
    let mut backports: Vec<String> = Vec::new();
    let mut source: Option<String> = None;
    let mut packages: Vec<(String, String)> = Vec::new(); // (package, why)
    let mut update = false;
    let mut dirs: Vec<PathBuf> = Vec::new();
    for c in &failed {
        match &c.fix {
            Some(Fix::Backports { packages: p, source: s, .. }) => {
                for pkg in p {
                    if !backports.contains(pkg) {
                        backports.push(pkg.clone());
                    }
                }
                source = source.or_else(|| s.clone());
            }
            Some(Fix::Install { packages: p, .. }) => {
                for pkg in p {
                    if !packages.iter().any(|(q, _)| q == pkg) {
                        packages.push((pkg.clone(), format!("{}: {}", c.name, c.purpose)));
                    }
                }
            }
            Some(Fix::AptUpdate { .. }) => update = true,
            Some(Fix::Directory { path, .. }) => dirs.push(path.clone()),
            Some(Fix::Advice(_)) | None => {}
        }
    }
    let installs = !backports.is_empty() || !packages.is_empty();
    if (installs || update) && !host.is_root() {
        let commands: Vec<String> = failed.iter().filter_map(|c| c.fix.as_ref()).map(Fix::command).collect();
        return Err(DoctorError::NotRoot { commands: commands.join("; ") });
    }
    let mut done = Vec::new();
    let apt = |args: Vec<String>, what: &str, why: &str, done: &mut Vec<String>| -> Result<(), DoctorError> {
        let line = format!("Installing {what}: {why}");
        reporter.note(&line);
        done.push(line);
        let inv = Invocation::new("apt-get").env("DEBIAN_FRONTEND", "noninteractive").args(args);
        task(reporter, &format!("apt-get install {what}"), || runner.run(&inv))
            .map(|_| ())
            .map_err(|source| DoctorError::Install { packages: what.to_owned(), source })
    };
    if let Some(entry) = &source {
        let line =
            format!("Adding bookworm-backports to apt's sources ({BACKPORTS_SOURCES}): qemu 10 comes from there");
        reporter.note(&line);
        done.push(line);
        host.add_apt_source(entry).map_err(|source| DoctorError::Sources { path: BACKPORTS_SOURCES.into(), source })?;
        update = true;
    }
    if update || (installs && host.apt().lists_age_days.is_none()) {
        let line = "Updating apt's package lists: packages are installed and templates built from them".to_owned();
        reporter.note(&line);
        done.push(line);
        task(reporter, "apt-get update", || runner.run(&Invocation::new("apt-get").args(["update", "-qq"])))
            .map_err(|source| DoctorError::Install { packages: "apt's package lists".into(), source })?;
    }
    let install_args = |pkgs: Vec<String>| -> Vec<String> {
        let mut a: Vec<String> = ["install", "-y", "-qq", "--no-install-recommends"].map(String::from).to_vec();
        a.extend(pkgs);
        a
    };
    if !backports.is_empty() {
        let pinned = backports.iter().map(|p| format!("{p}/bookworm-backports")).collect();
        let why = "the VMs' qemu, from bookworm-backports (Debian 12's own qemu 7.2 would remove qemu-img 10)";
        apt(install_args(pinned), &backports.join(" "), why, &mut done)?;
    }
    // One line per package says why; one apt-get run installs them all.
    if !packages.is_empty() {
        for (pkg, why) in &packages {
            let line = format!("Installing {pkg}: {why}");
            reporter.note(&line);
            done.push(line);
        }
        let names: Vec<String> = packages.iter().map(|(p, _)| p.clone()).collect();
        let what = names.join(" ");
        let inv = Invocation::new("apt-get").env("DEBIAN_FRONTEND", "noninteractive").args(install_args(names));
        task(reporter, &format!("apt-get install {what}"), || runner.run(&inv))
            .map_err(|source| DoctorError::Install { packages: what.clone(), source })?;
    }
    for dir in dirs {
        let line = format!("Creating {}", dir.display());
        reporter.note(&line);
        done.push(line);
        std::fs::create_dir_all(&dir).map_err(crate::host::pathio::at("create", &dir))?;
    }
    Ok(done)
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::*;
    use crate::host::process::{FakeRunner, Output};
    use crate::report::NoopReporter;

    /// A host with the programs of `tools` (name → `--version` line) and nothing else wrong.
    struct FakeHost {
        tools: BTreeMap<&'static str, &'static str>,
        root: bool,
        apt: AptFacts,
        kvm: bool,
        sources: RefCell<Vec<String>>,
    }

    impl FakeHost {
        fn complete() -> Self {
            let tools = [
                ("qemu-system-x86_64", "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)"),
                ("qemu-img", "qemu-img version 10.0.2 (Debian 1:10.0.2+ds-2)"),
                ("ssh", ""),
                ("ssh-keygen", ""),
                ("apt-get", ""),
                ("mcopy", ""),
                ("mke2fs", ""),
                ("xz", ""),
                ("mmdebstrap", ""),
                ("virt-customize", ""),
                ("ansible", ""),
                ("libvirtd", ""),
                ("dnsmasq", ""),
                ("virsh", ""),
            ];
            let apt = AptFacts {
                present: true,
                codename: Some("bookworm".into()),
                lists_age_days: Some(1),
                backports: false,
                mirror: "http://mirror/debian".into(),
                keyring: "/k.gpg".into(),
            };
            Self { tools: tools.into_iter().collect(), root: true, apt, kvm: false, sources: RefCell::default() }
        }

        fn without(mut self, names: &[&'static str]) -> Self {
            for n in names {
                self.tools.remove(n);
            }
            self
        }
    }

    impl Host for FakeHost {
        fn find(&self, program: &str) -> Option<Found> {
            self.tools.contains_key(program).then(|| Found {
                path: PathBuf::from(if program == "mke2fs" {
                    "/usr/sbin/mke2fs".into()
                } else {
                    format!("/usr/bin/{program}")
                }),
                on_path: program != "mke2fs",
            })
        }
        fn first_line(&self, program: &Path, _args: &[&str]) -> Option<String> {
            let name = program.file_name()?.to_str()?;
            self.tools.get(name).map(|l| (*l).to_owned())
        }
        fn host_kernel(&self) -> bool {
            true
        }
        fn writable(&self, dir: &Path) -> Result<(), String> {
            if dir.starts_with("/ro") { Err(format!("{} is not writable", dir.display())) } else { Ok(()) }
        }
        fn loopback(&self) -> Result<(), String> {
            Ok(())
        }
        fn kvm(&self) -> KvmProbe {
            KvmProbe {
                usable: self.kvm,
                reason: if self.kvm {
                    "a Linux guest reached user space under KVM in 0.6 s"
                } else {
                    "a Linux guest did not come up under KVM: no sign of life within 8 s (the guest hangs)"
                }
                .into(),
                evidence: vec!["host KVM module: kvm_pvm".into()],
            }
        }
        fn apt(&self) -> AptFacts {
            self.apt.clone()
        }
        fn is_root(&self) -> bool {
            self.root
        }
        fn user(&self) -> String {
            "alice".into()
        }
        fn add_apt_source(&self, entry: &str) -> std::io::Result<()> {
            self.sources.borrow_mut().push(entry.to_owned());
            Ok(())
        }
        fn libvirt(&self, url: &str) -> Result<String, String> {
            if self.tools.contains_key("libvirtd") {
                Ok(format!("libvirt 9.0.0 (QEMU 10.0.2) at {url}"))
            } else {
                Err("Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory".into())
            }
        }
    }

    fn paths() -> Paths {
        Paths {
            template_store: "/var/lib/lago/store".into(),
            template_repo: "/var/lib/lago/repos/local/repo.metadata".into(),
            lease_dir: "/var/lib/lago/subnets".into(),
            libvirt_url: "qemu:///system".into(),
        }
    }

    fn fixes(r: &Report) -> Vec<String> {
        r.checks.iter().filter_map(|c| c.fix.as_ref().map(|f| format!("{}: {}", c.name, f.command()))).collect()
    }

    #[test]
    fn a_complete_host_is_ready_and_kvm_only_informs() {
        let r = examine(&FakeHost::complete(), &paths());
        assert!(r.ready);
        let failed: Vec<&str> = r.checks.iter().filter(|c| !c.ok).map(|c| c.name.as_str()).collect();
        assert_eq!(failed, ["KVM"]);
        let kvm = r.checks.iter().find(|c| c.name == "KVM").unwrap();
        assert_eq!(
            kvm.detail,
            "a Linux guest did not come up under KVM: no sign of life within 8 s (the guest hangs); VMs run under TCG (software emulation, slower)"
        );
        assert_eq!(kvm.evidence, ["host KVM module: kvm_pvm"]);
        let qemu = &r.checks[1];
        assert_eq!(qemu.detail, "10.0.2 (Debian 1:10.0.2+ds-2), the same qemu as qemu-system-x86_64");
        // Installed where Debian puts system tools, not on the user's PATH: lago runs it anyway.
        let mke2fs = r.checks.iter().find(|c| c.name == "mke2fs").unwrap();
        assert!(mke2fs.ok);
        assert_eq!(
            mke2fs.detail,
            "/usr/sbin/mke2fs (installed, not on your PATH: lago looks in /usr/sbin too; add it to PATH to run it yourself)"
        );
        let missing = examine(&FakeHost::complete().without(&["mke2fs"]), &paths());
        let mke2fs = missing.checks.iter().find(|c| c.name == "mke2fs").unwrap();
        assert_eq!(
            (mke2fs.ok, mke2fs.detail.as_str()),
            (false, "not installed: not on PATH, nor in /usr/local/sbin, /usr/sbin or /sbin")
        );
        assert_eq!(mke2fs.fix.as_ref().unwrap().command(), "apt-get install -y --no-install-recommends e2fsprogs");
    }

    #[test]
    fn missing_qemu_on_debian_12_comes_from_backports() {
        let mut host = FakeHost::complete().without(&["qemu-system-x86_64"]);
        host.root = false;
        let r = examine(&host, &paths());
        assert!(!r.ready);
        assert_eq!(
            fixes(&r)[0],
            "qemu-system-x86_64: printf 'Types: deb\\nURIs: http://mirror/debian\\nSuites: bookworm-backports\\nComponents: main\\nSigned-By: /k.gpg\\n' \
             | sudo tee /etc/apt/sources.list.d/lago-backports.sources >/dev/null && sudo apt-get update && \
             sudo apt-get install -y --no-install-recommends qemu-system-x86/bookworm-backports \
             qemu-system-common/bookworm-backports qemu-system-data/bookworm-backports seabios/bookworm-backports"
        );
        host.apt.backports = true;
        host.root = true;
        let r = examine(&host, &paths());
        assert_eq!(
            fixes(&r)[0],
            "qemu-system-x86_64: apt-get install -y --no-install-recommends qemu-system-x86/bookworm-backports \
             qemu-system-common/bookworm-backports qemu-system-data/bookworm-backports seabios/bookworm-backports"
        );
        assert!(r.checks.iter().find(|c| c.name == "KVM").unwrap().detail.starts_with("not probed"));
    }

    #[test]
    fn qemu_img_of_another_qemu_is_named() {
        let mut host = FakeHost::complete();
        host.tools.insert("qemu-system-x86_64", "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7)");
        host.apt.codename = Some("trixie".into());
        let r = examine(&host, &paths());
        let img = r.checks.iter().find(|c| c.name == "qemu-img").unwrap();
        assert!(!img.ok);
        assert_eq!(
            img.detail,
            "version 10.0.2 (Debian 1:10.0.2+ds-2), but qemu-system-x86_64 is 7.2.19 (Debian 1:7.2+dfsg-7): install both from the same qemu"
        );
        assert_eq!(
            img.fix.as_ref().unwrap().command(),
            "apt-get install -y --no-install-recommends qemu-utils qemu-system-x86 qemu-system-common qemu-system-data seabios"
        );
    }

    #[test]
    fn unwritable_directories_get_an_owned_directory() {
        let mut host = FakeHost::complete();
        host.root = false;
        let r = examine(&host, &Paths { lease_dir: "/ro/subnets".into(), ..paths() });
        assert!(!r.ready);
        let lease = r.checks.iter().find(|c| c.name == "lease directory").unwrap();
        assert_eq!(lease.fix.as_ref().unwrap().command(), "sudo install -d -o alice /ro/subnets");
        let http = examine(&host, &Paths { template_repo: "http://templates/repo.metadata".into(), ..paths() });
        let repo = http.checks.iter().find(|c| c.name == "template repository").unwrap();
        assert!(repo.ok, "{}", repo.detail);
    }

    #[test]
    fn json_has_the_fix_as_a_command() {
        let r = examine(&FakeHost::complete().without(&["ansible"]), &paths());
        let json = serde_json::to_value(&r).unwrap();
        let ansible = json["checks"].as_array().unwrap().iter().find(|c| c["name"] == "ansible").unwrap();
        assert_eq!(ansible["fix"], "apt-get install -y --no-install-recommends ansible-core");
        assert_eq!(ansible["group"], "extras");
        assert_eq!(json["ready"], true);
    }

    #[test]
    fn fixes_install_qemu_before_what_depends_on_it() {
        let host = FakeHost::complete().without(&["qemu-system-x86_64", "virt-customize", "mcopy", "ansible"]);
        let r = examine(&host, &paths());
        let runner = FakeRunner::new(|_| Ok(Output::default()));
        let done = fix(&r, &[Group::Core, Group::Templates], &host, &runner, &NoopReporter).unwrap();
        assert_eq!(
            runner.command_lines(),
            "apt-get update -qq\n\
             apt-get install -y -qq --no-install-recommends qemu-system-x86/bookworm-backports \
             qemu-system-common/bookworm-backports qemu-system-data/bookworm-backports seabios/bookworm-backports\n\
             apt-get install -y -qq --no-install-recommends mtools"
        );
        assert_eq!(host.sources.borrow().len(), 1);
        assert_eq!(done.len(), 4, "{done:#?}");
        assert!(done[3].starts_with("Installing mtools: mcopy: syslinux installs"), "{done:#?}");
        // Extras only when asked for; guestfs comes after qemu.
        let runner = FakeRunner::new(|_| Ok(Output::default()));
        fix(&r, &[Group::Core, Group::Templates, Group::Extras], &host, &runner, &NoopReporter).unwrap();
        let lines = runner.command_lines();
        assert!(
            lines.ends_with("--no-install-recommends mtools guestfs-tools linux-image-amd64 ansible-core"),
            "{lines}"
        );
        // libvirt too with --all; its host only gets advice.
        let host = host.without(&["libvirtd", "dnsmasq"]);
        let r = examine(&host, &paths());
        let runner = FakeRunner::new(|_| Ok(Output::default()));
        fix(&r, &[Group::Core, Group::Templates, Group::Extras, Group::Libvirt], &host, &runner, &NoopReporter)
            .unwrap();
        let lines = runner.command_lines();
        assert!(lines.ends_with("ansible-core libvirt-daemon-system libvirt-clients dnsmasq-base iptables"), "{lines}");
        let libvirt = r.checks.iter().find(|c| c.name == "libvirt host").unwrap();
        assert!(
            !libvirt.ok
                && !libvirt.required
                && libvirt.detail.starts_with("qemu:///system does not answer: Failed to connect"),
            "{libvirt:?}"
        );
    }

    #[test]
    fn installing_needs_root() {
        let mut host = FakeHost::complete().without(&["mcopy"]);
        host.root = false;
        let r = examine(&host, &paths());
        let runner = FakeRunner::new(|_| Ok(Output::default()));
        let err = fix(&r, &[Group::Templates], &host, &runner, &NoopReporter).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Installing packages needs root: sudo apt-get install -y --no-install-recommends mtools"
        );
        assert_eq!(runner.command_lines(), "");
    }
}
