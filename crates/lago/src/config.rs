//! Configuration: built-in defaults < `/etc/lago/lago.conf` < XDG `lago/lago.conf` files <
//! `LAGO_*` environment variables < command-line flags (reference §2).
//!
//! [`SCHEMA`] is the single list of known options with their defaults and help; it feeds both
//! the lookups and `lago generate-config`. Loading is split into gathering the sources
//! ([`Sources::from_host`]) and merging them ([`Config::load`]), so precedence is unit-tested
//! without touching the host.

pub mod openstack;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Acceleration setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// KVM when a KVM guest comes up on this host, else TCG.
    Auto,
    /// KVM, always.
    Kvm,
    /// Software emulation.
    Tcg,
}

impl Accel {
    /// Parses the config value.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Accel::Auto),
            "kvm" => Some(Accel::Kvm),
            "tcg" => Some(Accel::Tcg),
            _ => None,
        }
    }

    /// Its name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Auto => "auto",
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Whether `local-qemu` networks of type `nat` get a host leg (`[lago] host_leg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostLeg {
    /// When lago may create interfaces (root or `CAP_NET_ADMIN`).
    Auto,
    /// Always: a start without the privilege fails.
    On,
    /// Never: the host reaches VMs through forwarded ports on 127.0.0.1 only.
    Off,
}

/// The `host_leg` in effect and where it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLegSetting {
    /// The value.
    pub leg: HostLeg,
    /// Where it was set (`the default`, a file, an environment variable).
    pub origin: String,
}

/// Where `local-qemu` VMs keep their memory (`[lago] memory_dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryDir {
    /// `/dev/shm`, else the runtime directory when it is a tmpfs.
    Auto,
    /// Ordinary memory: VMs cannot be forked.
    Off,
    /// This directory (it must be on a tmpfs).
    Path(PathBuf),
}

/// The `memory_dir` in effect and where it was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryDirSetting {
    /// The value.
    pub dir: MemoryDir,
    /// Where it was set.
    pub origin: String,
}

/// The setting in effect and where it was set, for the messages that depend on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelSetting {
    /// The setting.
    pub accel: Accel,
    /// Where it came from: `the default`, a config file, `environment variable LAGO_ACCEL`,
    /// `the command line`.
    pub origin: String,
}

impl std::default::Default for AccelSetting {
    fn default() -> Self {
        Self { accel: Accel::Auto, origin: "the default".into() }
    }
}

/// How to reach libvirt hosts: `[lago] libvirt_url` (the default host), `libvirt_user`,
/// `libvirt_password`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibvirtOptions {
    /// The default host's URL (`qemu:///system` as root, `qemu:///session` otherwise).
    pub url: String,
    /// User name for hosts that ask for one.
    pub username: Option<String>,
    /// Password for hosts that ask for one.
    pub password: Option<String>,
}

impl std::default::Default for LibvirtOptions {
    fn default() -> Self {
        let url = if nix::unistd::geteuid().is_root() { "qemu:///system" } else { "qemu:///session" };
        Self { url: url.into(), username: None, password: None }
    }
}

/// One known option.
#[derive(Debug, Clone, Copy)]
pub struct OptionDef {
    /// Section (`lago` for global options, else the verb).
    pub section: &'static str,
    /// Key.
    pub key: &'static str,
    /// Help text (written as a comment by `generate-config`).
    pub help: &'static str,
    /// How the default is computed.
    pub default: Default,
    /// What values are valid.
    pub kind: Kind,
}

/// The values an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any text.
    Text,
    /// `true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`.
    Bool,
    /// A whole number in a range.
    Int {
        /// Smallest value.
        min: i64,
        /// Largest value.
        max: i64,
    },
    /// One of a list (case-insensitive).
    Choice(&'static [&'static str]),
}

impl Kind {
    /// Whether `value` is valid; `Err` says what was expected.
    pub fn check(self, value: &str) -> Result<(), String> {
        let v = value.trim();
        match self {
            Kind::Text => Ok(()),
            Kind::Bool => parse_bool(v).map(|_| ()).ok_or_else(|| "true or false".to_owned()),
            Kind::Int { min, max } => match v.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(()),
                _ => Err(format!("a whole number from {min} to {max}")),
            },
            Kind::Choice(choices) => {
                if choices.iter().any(|c| c.eq_ignore_ascii_case(v)) {
                    Ok(())
                } else {
                    Err(format!("one of {}", choices.join(", ")))
                }
            }
        }
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Where a default comes from.
#[derive(Debug, Clone, Copy)]
pub enum Default {
    /// A fixed value.
    Value(&'static str),
    /// No default (shown as `#key = None` by `generate-config --verbose`).
    Unset,
    /// Under lago's data directory (`/var/lib/lago` for root, XDG data home otherwise).
    Data(&'static str),
    /// Under lago's state directory (`/var/lib/lago` for root, XDG state home otherwise).
    State(&'static str),
}

/// Every option lago knows, in `generate-config` order.
pub const SCHEMA: &[OptionDef] = &[
    OptionDef {
        section: "lago",
        key: "loglevel",
        help: "Log level to use",
        default: Default::Value("info"),
        kind: Kind::Choice(&["info", "debug", "error", "warning"]),
    },
    OptionDef {
        section: "lago",
        key: "logdepth",
        help: "How many task levels to show",
        default: Default::Value("3"),
        kind: Kind::Int { min: -1_000_000, max: 1_000_000 },
    },
    OptionDef {
        section: "lago",
        key: "out_format",
        help: "",
        default: Default::Value("default"),
        kind: Kind::Choice(&["default", "flat", "json", "yaml"]),
    },
    OptionDef {
        section: "lago",
        key: "prefix_path",
        help: "Path to the prefix to use, will be deprecated, use --workdir-path instead",
        default: Default::Unset,
        kind: Kind::Text,
    },
    OptionDef {
        section: "lago",
        key: "workdir_path",
        help: "Path to the workdir to use.",
        default: Default::Unset,
        kind: Kind::Text,
    },
    OptionDef {
        section: "lago",
        key: "prefix_name",
        help: "Name of the prefix to use.",
        default: Default::Value("current"),
        kind: Kind::Text,
    },
    OptionDef {
        section: "lago",
        key: "ssh_user",
        help: "User for SSH provider.",
        default: Default::Value("root"),
        kind: Kind::Text,
    },
    OptionDef {
        section: "lago",
        key: "ssh_password",
        help: "Password for SSH provider.",
        default: Default::Value("123456"),
        kind: Kind::Text,
    },
    OptionDef {
        section: "lago",
        key: "ssh_tries",
        help: "Number of ssh time outs to wait before failing.",
        default: Default::Value("100"),
        kind: Kind::Int { min: 1, max: 1_000_000 },
    },
    OptionDef {
        section: "lago",
        key: "ssh_timeout",
        help: "Seconds to wait before marking SSH connection as failed.",
        default: Default::Value("10"),
        kind: Kind::Int { min: 1, max: 86_400 },
    },
    OptionDef {
        section: "lago",
        key: "libvirt_url",
        help: "libvirt URI, currently only system is supported.",
        default: Default::Value("qemu:///system"),
        kind: Kind::Text,
    },
    OptionDef { section: "lago", key: "libvirt_user", help: "libvirt user", default: Default::Unset, kind: Kind::Text },
    OptionDef {
        section: "lago",
        key: "libvirt_password",
        help: "libvirt password",
        default: Default::Unset,
        kind: Kind::Text,
    },
    OptionDef {
        section: "lago",
        key: "default_vm_type",
        help: "Default vm type",
        default: Default::Value("default"),
        kind: Kind::Text,
    },
    OptionDef {
        section: "lago",
        key: "default_vm_provider",
        help: "Default vm provider",
        default: Default::Value("local-qemu"),
        kind: Kind::Text,
    },
    OptionDef {
        section: "lago",
        key: "default_root_password",
        help: "Default root password",
        default: Default::Unset,
        kind: Kind::Text,
    },
    OptionDef {
        section: "lago",
        key: "lease_dir",
        help: "Path to store created subnets configurations",
        default: Default::State("subnets"),
        kind: Kind::Text,
    },
    OptionDef {
        section: "lago",
        key: "reposync_dir",
        help: "Reposync dir if used",
        default: Default::Data(""),
        kind: Kind::Text,
    },
    OptionDef {
        section: "lago",
        key: "accel",
        help: "Hardware acceleration for VMs: auto, kvm or tcg",
        default: Default::Value("auto"),
        kind: Kind::Choice(&["auto", "kvm", "tcg"]),
    },
    OptionDef {
        section: "lago",
        key: "host_leg",
        help: "Whether nat networks of local-qemu VMs get a host interface holding their gateway: auto (when lago runs as root or with CAP_NET_ADMIN), on or off",
        default: Default::Value("auto"),
        kind: Kind::Choice(&["auto", "on", "off"]),
    },
    OptionDef {
        section: "lago",
        key: "vm_outbound",
        help: "Whether VMs on nat networks may reach addresses outside the host",
        default: Default::Value("true"),
        kind: Kind::Bool,
    },
    OptionDef {
        section: "lago",
        key: "memory_dir",
        help: "Where local-qemu VMs keep their memory, as a file on a tmpfs, so that a running environment can be forked (`lago fork`): auto (/dev/shm, else the runtime directory when it is a tmpfs), a directory on a tmpfs, or off (ordinary memory; `lago fork` is refused)",
        default: Default::Value("auto"),
        kind: Kind::Text,
    },
    OptionDef {
        section: "lago",
        key: "memory_reserve",
        help: "Memory, in MiB, that `lago start` and `lago fork` leave to the host: one that would take more waits in line until there is room (`--no-wait`: fails at once)",
        default: Default::Value("512"),
        kind: Kind::Int { min: 0, max: 1_000_000_000 },
    },
    OptionDef {
        section: "start",
        key: "resume",
        help: "A live snapshot that a plain `lago start` of a stopped environment comes up from, when the environment has it (`lago start --boot` boots anyway)",
        default: Default::Value(""),
        kind: Kind::Text,
    },
    OptionDef {
        section: "init",
        key: "template_repo_path",
        help: "Repo file describing the templates",
        default: Default::Data("repos/local/repo.metadata"),
        kind: Kind::Text,
    },
    OptionDef {
        section: "init",
        key: "template_repo_name",
        help: "Name of the repo from the template repos dir",
        default: Default::Unset,
        kind: Kind::Text,
    },
    OptionDef {
        section: "init",
        key: "template_store",
        help: "Location to store templates at",
        default: Default::Data("store"),
        kind: Kind::Text,
    },
    OptionDef {
        section: "init",
        key: "template_repos",
        help: "Location to store repos",
        default: Default::Data("repos"),
        kind: Kind::Text,
    },
    OptionDef {
        section: "init",
        key: "strict",
        help: "Whether a key lago does not know in an init file is an error (false: a warning)",
        default: Default::Value("true"),
        kind: Kind::Bool,
    },
    OptionDef {
        section: "init",
        key: "store_warn_gib",
        help: "Size of the template store, in GiB, above which `lago doctor` warns (0: never; `lago template prune` frees it)",
        default: Default::Value("20"),
        kind: Kind::Int { min: 0, max: 1_000_000 },
    },
    OptionDef {
        section: "init",
        key: "download_timeout",
        help: "Seconds a template download may take in all (0: no limit)",
        default: Default::Value("3600"),
        kind: Kind::Int { min: 0, max: 604_800 },
    },
    OptionDef {
        section: "init",
        key: "download_idle_timeout",
        help: "Seconds a template download may go without receiving a byte",
        default: Default::Value("60"),
        kind: Kind::Int { min: 1, max: 86_400 },
    },
    OptionDef {
        section: "ansible_hosts",
        key: "keys",
        help: "Path to the keys that should be used as groups",
        default: Default::Value("vm-type groups vm-provider"),
        kind: Kind::Text,
    },
    OptionDef {
        section: "export",
        key: "dst_dir",
        help: "Dir to place the exported images in",
        default: Default::Value("."),
        kind: Kind::Text,
    },
    OptionDef {
        section: "export",
        key: "init_file_name",
        help: "The name of the exported init file",
        default: Default::Value("LagoInitFile"),
        kind: Kind::Text,
    },
];

/// Where the configuration comes from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Config files in increasing precedence (missing ones are skipped).
    pub files: Vec<PathBuf>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// lago's data directory (store, repositories).
    pub data_dir: PathBuf,
    /// lago's state directory (leases).
    pub state_dir: PathBuf,
}

impl Sources {
    /// The host's sources: `/etc/lago/lago.conf`, the XDG config files, the process environment
    /// and the root/XDG data and state directories.
    pub fn from_host() -> Self {
        // Variables whose name or value is not UTF-8 are not lago's (a `LAGO_*` one is ignored
        // with a warning rather than taken half-decoded).
        let env = std::env::vars_os()
            .filter_map(|(k, v)| match (k.into_string(), v.into_string()) {
                (Ok(k), Ok(v)) => Some((k, v)),
                (Ok(k), Err(_)) if k.starts_with("LAGO_") => {
                    tracing::warn!("environment variable {k} is not valid UTF-8, ignoring it");
                    None
                }
                _ => None,
            })
            .collect();
        Self::from_env(env, nix::unistd::geteuid().is_root())
    }

    /// The sources for an environment and user: root keeps the original's `/var/lib/lago`,
    /// other users get the XDG data and state directories.
    pub fn from_env(env: Vec<(String, String)>, is_root: bool) -> Self {
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
        let home = get("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
        let mut files = vec![PathBuf::from("/etc/lago/lago.conf")];
        let config_dirs = get("XDG_CONFIG_DIRS").unwrap_or_else(|| "/etc/xdg".into());
        let mut dirs: Vec<&str> = config_dirs.split(':').filter(|d| !d.is_empty()).collect();
        dirs.reverse(); // least important first
        files.extend(dirs.iter().map(|d| Path::new(d).join("lago/lago.conf")));
        let config_home = get("XDG_CONFIG_HOME").map(PathBuf::from).unwrap_or_else(|| home.join(".config"));
        files.push(config_home.join("lago/lago.conf"));
        let (data_dir, state_dir) = if is_root {
            (PathBuf::from("/var/lib/lago"), PathBuf::from("/var/lib/lago"))
        } else {
            (
                get("XDG_DATA_HOME").map(PathBuf::from).unwrap_or_else(|| home.join(".local/share")).join("lago"),
                get("XDG_STATE_HOME").map(PathBuf::from).unwrap_or_else(|| home.join(".local/state")).join("lago"),
            )
        };
        Self { files, env, data_dir, state_dir }
    }
}

/// Why the configuration cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A config file exists but is not valid INI.
    #[error("Cannot parse config file {path}: line {line}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
        /// What is wrong there.
        reason: String,
    },
    /// A config file cannot be read.
    #[error("Cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A value has the wrong type.
    #[error("Config option `{key}` in section [{section}] is {value:?}, expected {expected}{}", origin_note(origin))]
    BadValue {
        /// Section.
        section: String,
        /// Key.
        key: String,
        /// The value found.
        value: String,
        /// What was expected.
        expected: String,
        /// Where the value was set (a file, an environment variable, the command line).
        origin: Option<String>,
    },
}

fn origin_note(origin: &Option<String>) -> String {
    origin.as_ref().map(|o| format!(" (from {o})")).unwrap_or_default()
}

/// Checks the INI syntax of a config file line by line, so an error names the line it is on:
/// `[section]` headers, `key = value` / `key: value` pairs, comments, indented continuations.
fn check_ini(text: &str) -> Result<(), (usize, String)> {
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            match line.find(']') {
                Some(end) if line[1..end].trim().is_empty() => {
                    return Err((i + 1, format!("`{line}` is a section header without a name")));
                }
                Some(_) => {}
                None => return Err((i + 1, format!("`{line}` is a section header without its closing `]`"))),
            }
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            continue; // continuation of the previous value
        }
        match line.find(['=', ':']) {
            Some(0) => return Err((i + 1, format!("`{line}` has no option name before its `=`"))),
            Some(_) => {}
            None => return Err((i + 1, format!("`{line}` is neither a `[section]` nor an `option = value` line"))),
        }
    }
    Ok(())
}

/// The merged configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    values: BTreeMap<String, BTreeMap<String, String>>,
    /// Where each value was set, for error messages.
    origins: BTreeMap<(String, String), String>,
    /// Warnings produced while loading (ignored empty variables, unknown options of files...).
    pub warnings: Vec<String>,
    /// What is only worth saying at debug level: `LAGO_*` variables that are no option (the
    /// original ignored them silently, and CI systems set many).
    pub notes: Vec<String>,
    /// lago's state directory (leases, the KVM probe's verdicts).
    state_dir: PathBuf,
}

impl Config {
    /// Merges defaults, files and environment variables (later wins), then checks every value
    /// of a known option against its kind.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let mut cfg = Config { state_dir: sources.state_dir.clone(), ..Config::default() };
        for opt in SCHEMA {
            let value = match opt.default {
                Default::Value(v) => Some(v.to_owned()),
                Default::Unset => None,
                Default::Data(sub) => Some(join(&sources.data_dir, sub)),
                Default::State(sub) => Some(join(&sources.state_dir, sub)),
            };
            if let Some(v) = value {
                cfg.set_from(opt.section, opt.key, &v, "the default");
            }
        }
        for file in &sources.files {
            if !file.is_file() {
                continue;
            }
            let text = crate::host::pathio::read_text(file, 1 << 20)
                .map_err(|e| ConfigError::Read { path: file.clone(), source: e.source })?;
            cfg.merge_text(&text, file)?;
            tracing::debug!(file = %file.display(), "loaded config file");
        }
        for (name, value) in &sources.env {
            let Some((section, key)) = parse_env_name(name) else { continue };
            if value.is_empty() {
                cfg.warnings.push(format!("empty environment variable definition:{name}, ignoring."));
                continue;
            }
            let origin = format!("environment variable {name}");
            let before = cfg.warnings.len();
            cfg.warn_unknown(&section, &key, &origin);
            let unknown: Vec<String> = cfg.warnings.drain(before..).collect();
            cfg.notes.extend(unknown);
            cfg.set_from(&section, &key, value, &origin);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Merges the INI text of config file `file` (later values win).
    pub fn merge_text(&mut self, text: &str, file: &Path) -> Result<(), ConfigError> {
        check_ini(text).map_err(|(line, reason)| ConfigError::Parse { path: file.to_owned(), line, reason })?;
        let ini = ini::Ini::load_from_str(text).map_err(|e| ConfigError::Parse {
            path: file.to_owned(),
            line: e.line.max(1),
            reason: e.msg.replace("[Some(']')]", "]"),
        })?;
        for (section, props) in ini.iter() {
            let section = section.unwrap_or("lago").to_lowercase();
            for (k, v) in props.iter() {
                let key = k.to_lowercase();
                self.warn_unknown(&section, &key, &file.display().to_string());
                self.set_from(&section, &key, v, &file.display().to_string());
            }
        }
        Ok(())
    }

    /// A warning for an option of `[lago]` or `[init]` lago does not know (other sections feed
    /// verbs and plugins, as in the original).
    fn warn_unknown(&mut self, section: &str, key: &str, origin: &str) {
        if !matches!(section, "lago" | "init") || SCHEMA.iter().any(|o| o.section == section && o.key == key) {
            return;
        }
        let known: Vec<&str> = SCHEMA.iter().filter(|o| o.section == section).map(|o| o.key).collect();
        let hint =
            crate::suggest::did_you_mean(key, &known).map(|k| format!(" (did you mean `{k}`?)")).unwrap_or_default();
        self.warnings.push(format!("unknown option `{key}` in section [{section}] of {origin}{hint}, ignoring it"));
    }

    /// Checks every value of a known option against its kind.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for opt in SCHEMA {
            let Some(value) = self.get(opt.section, opt.key) else { continue };
            if let Err(expected) = opt.kind.check(value) {
                return Err(ConfigError::BadValue {
                    section: opt.section.into(),
                    key: opt.key.into(),
                    value: value.into(),
                    expected,
                    origin: self.origins.get(&(opt.section.to_owned(), opt.key.to_owned())).cloned(),
                });
            }
        }
        Ok(())
    }

    /// Sets a value (used for command-line overrides).
    pub fn set(&mut self, section: &str, key: &str, value: &str) {
        self.set_from(section, key, value, "the command line");
    }

    /// Sets a value and records where it came from.
    pub fn set_from(&mut self, section: &str, key: &str, value: &str, origin: &str) {
        self.values.entry(section.to_owned()).or_default().insert(key.to_owned(), value.to_owned());
        self.origins.insert((section.to_owned(), key.to_owned()), origin.to_owned());
    }

    /// A value, if set.
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.values.get(section).and_then(|s| s.get(key)).map(String::as_str)
    }

    /// A `[lago]` value, if set.
    pub fn lago(&self, key: &str) -> Option<&str> {
        self.get("lago", key)
    }

    /// A whole-number `[lago]` value.
    pub fn lago_u64(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        self.lago(key)
            .map(|v| {
                v.trim().parse().map_err(|_| ConfigError::BadValue {
                    section: "lago".into(),
                    key: key.into(),
                    value: v.into(),
                    expected: "a whole number".into(),
                    origin: self.origins.get(&("lago".to_owned(), key.to_owned())).cloned(),
                })
            })
            .transpose()
    }

    /// A boolean `[lago]` value (`true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`).
    pub fn lago_bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.bool_in("lago", key)
    }

    /// A boolean value of `section`, if set.
    pub fn bool_in(&self, section: &str, key: &str) -> Result<Option<bool>, ConfigError> {
        self.get(section, key)
            .map(|v| {
                parse_bool(v).ok_or_else(|| ConfigError::BadValue {
                    section: section.into(),
                    key: key.into(),
                    value: v.into(),
                    expected: "true or false".into(),
                    origin: self.origins.get(&(section.to_owned(), key.to_owned())).cloned(),
                })
            })
            .transpose()
    }

    /// Where a value was set: `the default`, a config file's path, `environment variable
    /// LAGO_...`, `the command line`.
    pub fn origin(&self, section: &str, key: &str) -> String {
        self.origins.get(&(section.to_owned(), key.to_owned())).cloned().unwrap_or_else(|| "the default".into())
    }

    /// lago's state directory (`/var/lib/lago` for root, the XDG state home otherwise).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// `[lago] accel` and where it was set.
    pub fn accel_setting(&self) -> Result<AccelSetting, ConfigError> {
        Ok(AccelSetting { accel: self.accel()?, origin: self.origin("lago", "accel") })
    }

    /// `[lago] host_leg` (`auto` when unset) and where it was set.
    pub fn host_leg(&self) -> Result<HostLegSetting, ConfigError> {
        let value = self.lago("host_leg").unwrap_or("auto");
        let leg = match value.trim().to_ascii_lowercase().as_str() {
            "auto" => HostLeg::Auto,
            "on" => HostLeg::On,
            "off" => HostLeg::Off,
            _ => {
                return Err(ConfigError::BadValue {
                    section: "lago".into(),
                    key: "host_leg".into(),
                    value: value.into(),
                    expected: "auto, on or off".into(),
                    origin: self.origins.get(&("lago".to_owned(), "host_leg".to_owned())).cloned(),
                });
            }
        };
        Ok(HostLegSetting { leg, origin: self.origin("lago", "host_leg") })
    }

    /// `[lago] memory_dir` (`auto` when unset) and where it was set.
    pub fn memory_dir(&self) -> MemoryDirSetting {
        let value = self.lago("memory_dir").map(str::trim).unwrap_or("auto");
        let dir = match value.to_ascii_lowercase().as_str() {
            "" | "auto" => MemoryDir::Auto,
            "off" | "false" | "no" | "none" => MemoryDir::Off,
            _ => MemoryDir::Path(expand_home(value)),
        };
        MemoryDirSetting { dir, origin: self.origin("lago", "memory_dir") }
    }

    /// `[lago] memory_reserve`, in bytes (512 MiB when unset).
    pub fn memory_reserve(&self) -> Result<u64, ConfigError> {
        Ok(self.lago_u64("memory_reserve")?.unwrap_or(512).saturating_mul(1024 * 1024))
    }

    /// `[lago] accel` (`auto` when unset).
    pub fn accel(&self) -> Result<Accel, ConfigError> {
        let value = self.lago("accel").unwrap_or("auto");
        Accel::parse(value).ok_or_else(|| ConfigError::BadValue {
            section: "lago".into(),
            key: "accel".into(),
            value: value.into(),
            expected: "auto, kvm or tcg".into(),
            origin: self.origins.get(&("lago".to_owned(), "accel".to_owned())).cloned(),
        })
    }

    /// A path-valued option, with `~` expanded.
    pub fn path(&self, section: &str, key: &str) -> Option<PathBuf> {
        self.get(section, key).map(expand_home)
    }

    /// The template downloader with the timeouts `[init] download_idle_timeout` and
    /// `download_timeout` set (0: no limit in all).
    pub fn fetcher(&self) -> crate::host::fetch::HttpFetcher {
        let secs = |key: &str| self.get("init", key).and_then(|v| v.trim().parse::<u64>().ok());
        let d = crate::host::fetch::HttpFetcher::default();
        crate::host::fetch::HttpFetcher {
            idle: secs("download_idle_timeout").map_or(d.idle, std::time::Duration::from_secs),
            overall: match secs("download_timeout") {
                Some(0) => None,
                Some(n) => Some(std::time::Duration::from_secs(n)),
                None => d.overall,
            },
        }
    }

    /// `lease_dir`: where host-wide leases (segments, subnets) are kept.
    pub fn lease_dir(&self) -> PathBuf {
        self.path("lago", "lease_dir").unwrap_or_else(|| std::env::temp_dir().join("lago-leases"))
    }

    /// How to reach libvirt hosts: `libvirt_url` (the original's default `qemu:///system` stands
    /// for "the default", `qemu:///session`, for users other than root), `libvirt_user`,
    /// `libvirt_password` (the original's code read `libvirt_username`, never set: its bug).
    pub fn libvirt_options(&self) -> LibvirtOptions {
        let mut libvirt = LibvirtOptions::default();
        if let Some(url) =
            self.lago("libvirt_url").filter(|u| *u != "qemu:///system" || nix::unistd::geteuid().is_root())
        {
            libvirt.url = url.to_owned();
        }
        libvirt.username = self.lago("libvirt_user").map(str::to_owned);
        libvirt.password = self.lago("libvirt_password").map(str::to_owned);
        libvirt
    }

    /// `lago generate-config`: every option with its current value, as an INI file.
    pub fn to_ini(&self, verbose: bool, generated_at: &str) -> String {
        let mut out = format!("# Lago configuration file, generated: {generated_at}\n");
        let mut sections: Vec<&str> = Vec::new();
        for opt in SCHEMA {
            if !sections.contains(&opt.section) {
                sections.push(opt.section);
            }
        }
        for section in sections {
            let mut body = String::new();
            for opt in SCHEMA.iter().filter(|o| o.section == section) {
                let value = self.get(section, opt.key).filter(|v| !v.is_empty());
                if value.is_none() && !verbose {
                    continue;
                }
                for line in wrap(opt.help, 70) {
                    body.push_str(&format!("# {}\n", line.to_lowercase()));
                }
                match value {
                    Some(v) => body.push_str(&format!("{} = {v}\n", opt.key)),
                    None => body.push_str(&format!("#{} = None\n", opt.key)),
                }
            }
            if !body.is_empty() {
                out.push_str(&format!("[{section}]\n{body}\n"));
            }
        }
        out
    }
}

fn join(base: &Path, sub: &str) -> String {
    if sub.is_empty() { base.display().to_string() } else { base.join(sub).display().to_string() }
}

fn expand_home(v: &str) -> PathBuf {
    match (v.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(v),
    }
}

/// Environment variables of lago's that are not options, and what they do: the log filter, the
/// progress switch, `LAGO_INITFILE_PATH` (of deploy scripts) and what the Python package's `lago`
/// script passes on (`LAGO_PYTHON`...). (`LAGO_PREFIX_PATH` and `LAGO_WORKDIR_PATH` are options:
/// the defaults of `--prefix-path` and `--workdir-path`, as in the original.)
pub const NOT_OPTIONS: &[(&str, &str)] = &[
    (
        "LAGO_LOG",
        "What lago logs on standard error, as a `tracing` filter (`lago=debug`); the prefix's `logs/lago.log` always has everything",
    ),
    (
        "LAGO_NO_PROGRESS",
        "When set, progress is plain lines on standard error (no bars, no live lines), as when `CI` is set or standard error is not a terminal",
    ),
    (
        "LAGO_INITFILE_PATH",
        "The init file's directory: set for `$LAGO_INITFILE_PATH` in the init file's paths and for deploy scripts",
    ),
    (
        "LAGO_PYTHON",
        "The Python that has the `lago` package, which runs Python CLI plugins and output plugins (the package's `lago` script sets it; else `python3`)",
    ),
    (
        "LAGO_PROG",
        "The name lago was run as (`lagocli` makes it say so in its help), set by the Python package's scripts and `lagocli`",
    ),
    (
        "LAGO_BIN",
        "The `lago` program the Python package's scripts run (else the one in the package, else `lago` on `PATH`)",
    ),
    (
        "LAGO_ASKPASS_PASSWORD",
        "Internal: the password lago's `SSH_ASKPASS` helper gives `ssh`, in that helper's environment only",
    ),
];

/// `LAGO_FOO` → (`lago`, `foo`); `LAGO__INIT__TEMPLATE_STORE` → (`init`, `template_store`).
pub fn parse_env_name(name: &str) -> Option<(String, String)> {
    if NOT_OPTIONS.iter().any(|(n, _)| *n == name) {
        return None;
    }
    if let Some(rest) = name.strip_prefix("LAGO__") {
        let (section, key) = rest.split_once("__")?;
        if section.is_empty() || key.is_empty() {
            return None;
        }
        Some((section.to_lowercase(), key.to_lowercase()))
    } else {
        let key = name.strip_prefix("LAGO_")?;
        if key.is_empty() || key.starts_with('_') {
            return None;
        }
        Some(("lago".into(), key.to_lowercase()))
    }
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        assert_eq!(parse_env_name("LAGO_SSH_USER"), Some(("lago".into(), "ssh_user".into())));
        assert_eq!(parse_env_name("LAGO__INIT__TEMPLATE_STORE"), Some(("init".into(), "template_store".into())));
        for ignored in ["LAGO_", "LAGO__", "LAGO__NO_END", "LAGOX", "PATH"] {
            assert_eq!(parse_env_name(ignored), None, "{ignored}");
        }
    }

    #[test]
    fn precedence_defaults_files_env() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc.conf");
        let user = dir.path().join("user.conf");
        std::fs::write(&etc, "[lago]\nssh_user = etc\nloglevel = debug\n[init]\ntemplate_store = /etc-store\n")
            .unwrap();
        std::fs::write(&user, "[lago]\nssh_user = user\n").unwrap();
        let sources = Sources {
            files: vec![etc, dir.path().join("missing.conf"), user],
            env: vec![("LAGO__INIT__TEMPLATE_STORE".into(), "/env-store".into()), ("LAGO_SSH_TRIES".into(), "".into())],
            data_dir: "/data".into(),
            state_dir: "/state".into(),
        };
        let cfg = Config::load(&sources).unwrap();
        assert_eq!(cfg.lago("ssh_user"), Some("user")); // last file wins
        assert_eq!(cfg.lago("loglevel"), Some("debug")); // file shadows default
        assert_eq!(cfg.get("init", "template_store"), Some("/env-store")); // env shadows file
        assert_eq!(cfg.lago("ssh_tries"), Some("100")); // empty env ignored
        assert_eq!(cfg.warnings, ["empty environment variable definition:LAGO_SSH_TRIES, ignoring."]);
        assert_eq!(cfg.lago("lease_dir"), Some("/state/subnets"));
        assert_eq!(cfg.get("init", "template_repo_path"), Some("/data/repos/local/repo.metadata"));
    }

    #[test]
    fn root_and_user_directories() {
        let env =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>();
        let root = Sources::from_env(env(&[("HOME", "/root")]), true);
        let cfg = Config::load(&Sources { files: vec![], ..root.clone() }).unwrap();
        assert_eq!(cfg.get("init", "template_store"), Some("/var/lib/lago/store"));
        assert_eq!(cfg.lago("lease_dir"), Some("/var/lib/lago/subnets"));
        assert_eq!(
            root.files,
            [
                PathBuf::from("/etc/lago/lago.conf"),
                "/etc/xdg/lago/lago.conf".into(),
                "/root/.config/lago/lago.conf".into()
            ]
        );
        let user = Sources::from_env(
            env(&[("HOME", "/home/u"), ("XDG_STATE_HOME", "/st"), ("XDG_CONFIG_DIRS", "/a:/b")]),
            false,
        );
        let cfg = Config::load(&Sources { files: vec![], ..user.clone() }).unwrap();
        assert_eq!(cfg.get("init", "template_store"), Some("/home/u/.local/share/lago/store"));
        assert_eq!(cfg.get("init", "template_repo_path"), Some("/home/u/.local/share/lago/repos/local/repo.metadata"));
        assert_eq!(cfg.lago("lease_dir"), Some("/st/lago/subnets"));
        // XDG_CONFIG_DIRS is in decreasing importance: /b is read before /a.
        assert_eq!(user.files[1..3], [PathBuf::from("/b/lago/lago.conf"), "/a/lago/lago.conf".into()]);
    }

    #[test]
    fn accel_is_checked() {
        let mut cfg = Config::load(&Sources::default()).unwrap();
        assert_eq!(cfg.accel().unwrap(), Accel::Auto);
        cfg.set("lago", "accel", "TCG");
        assert_eq!(cfg.accel().unwrap(), Accel::Tcg);
        cfg.set("lago", "accel", "hvf");
        assert_eq!(
            cfg.accel().unwrap_err().to_string(),
            "Config option `accel` in section [lago] is \"hvf\", expected auto, kvm or tcg (from the command line)"
        );
    }

    #[test]
    fn bad_file_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.conf");
        let load = |text: &str| {
            std::fs::write(&f, text).unwrap();
            Config::load(&Sources { files: vec![f.clone()], ..Sources::default() }).unwrap_err().to_string()
        };
        let name = f.display();
        assert_eq!(
            load("[lago]\nssh_user = a\n[lago\nx=1\n"),
            format!("Cannot parse config file {name}: line 3: `[lago` is a section header without its closing `]`")
        );
        assert_eq!(
            load("[lago]\njust words\n"),
            format!(
                "Cannot parse config file {name}: line 2: `just words` is neither a `[section]` nor an `option = value` line"
            )
        );
    }

    #[test]
    fn values_are_checked_wherever_they_come_from() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("lago.conf");
        std::fs::write(&f, "[lago]\nloglevel = shouty\n").unwrap();
        let err = Config::load(&Sources { files: vec![f.clone()], ..Sources::default() }).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Config option `loglevel` in section [lago] is \"shouty\", expected one of info, debug, error, warning (from {})",
                f.display()
            )
        );
        let env = |k: &str, v: &str| Sources { env: vec![(k.into(), v.into())], ..Sources::default() };
        assert_eq!(
            Config::load(&env("LAGO_VM_OUTBOUND", "maybe")).unwrap_err().to_string(),
            "Config option `vm_outbound` in section [lago] is \"maybe\", expected true or false (from environment variable LAGO_VM_OUTBOUND)"
        );
        assert_eq!(
            Config::load(&env("LAGO_SSH_TIMEOUT", "abc")).unwrap_err().to_string(),
            "Config option `ssh_timeout` in section [lago] is \"abc\", expected a whole number from 1 to 86400 (from environment variable LAGO_SSH_TIMEOUT)"
        );
        assert!(Config::load(&env("LAGO__INIT__DOWNLOAD_IDLE_TIMEOUT", "0")).is_err());
        // A typo is not an error, and it is said at debug level (the environment of a CI job has
        // many LAGO_ variables of its own).
        let cfg = Config::load(&env("LAGO_SSH_TIMEOTU", "5")).unwrap();
        assert!(cfg.warnings.is_empty());
        assert_eq!(
            cfg.notes,
            [
                "unknown option `ssh_timeotu` in section [lago] of environment variable LAGO_SSH_TIMEOTU (did you mean `ssh_timeout`?), ignoring it"
            ]
        );
    }

    #[test]
    fn generate_config_shape() {
        let cfg =
            Config::load(&Sources { data_dir: "/d".into(), state_dir: "/s".into(), ..Sources::default() }).unwrap();
        let ini = cfg.to_ini(false, "now");
        assert!(
            ini.starts_with("# Lago configuration file, generated: now\n[lago]\n# log level to use\nloglevel = info\n"),
            "{ini}"
        );
        assert!(!ini.contains("prefix_path"));
        assert!(cfg.to_ini(true, "now").contains("# path to the workdir to use.\n#workdir_path = None\n"));
    }
}
