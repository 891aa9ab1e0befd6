//! What `lago doctor` reports: checks grouped by what needs them, and the fix of each failed one.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// What needs a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// `lago init` and `lago start` (the exit code depends on these).
    Core,
    /// `lago template build tiny`: what a first environment needs.
    Templates,
    /// debian12 templates, `build` steps, Ansible, pictures: only some users and the tests need
    /// them.
    Extras,
    /// The `local-libvirt` provider: only its users and the tests need it.
    Libvirt,
    /// The `openstack` provider: checked when the configuration or the environment uses it.
    Openstack,
}

impl Group {
    /// Heading of the group in `lago doctor`'s output.
    pub fn title(self) -> &'static str {
        match self {
            Group::Core => "lago init and lago start",
            Group::Templates => "lago template build tiny",
            Group::Extras => "extras: debian12 template, build steps, Ansible, pictures",
            Group::Libvirt => "local-libvirt: VMs on libvirt hosts",
            Group::Openstack => "openstack: VMs on an OpenStack cloud",
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
    pub(super) fn new(checks: Vec<Check>) -> Self {
        Self { ready: checks.iter().all(|c| c.ok || !c.required), checks }
    }

    /// The report with `checks` added (the verdict counts them).
    pub fn with(mut self, checks: Vec<Check>) -> Self {
        self.checks.extend(checks);
        Self::new(self.checks)
    }

    /// The failed checks in `groups`.
    pub fn failed(&self, groups: &[Group]) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(move |c| !c.ok && groups.contains(&c.group))
    }
}

/// Paths the checks look at.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `[init] template_store`.
    pub template_store: PathBuf,
    /// `[init] store_warn_gib` in bytes: a store holding more is warned about (0: never).
    pub store_warn_bytes: u64,
    /// `[init] template_repo_path` (a local file or a URL).
    pub template_repo: String,
    /// `[lago] lease_dir`.
    pub lease_dir: PathBuf,
    /// `[lago] libvirt_url`: the default libvirt host.
    pub libvirt_url: String,
    /// `[lago] host_leg`: `auto`, `on` or `off`, and where it was set.
    pub host_leg: crate::config::HostLegSetting,
    /// `[lago] memory_dir`: where VMs keep their memory, and where it was set.
    pub memory_dir: crate::config::MemoryDirSetting,
}
