//! How a failure reaches a person: whether it is a problem with their input (the CLI's exit
//! code 2, the Python SDK's `LagoUserError`) or with the host or lago itself, and what to do
//! about it. One place decides, for the CLI and the SDKs alike.

use crate::config::Accel;
use crate::config::ConfigError;
use crate::doctor::DoctorError;
use crate::env::EnvError;
use crate::ops::export::ExportError;
use crate::ops::faults::FaultError;
use crate::ops::guest::GuestError;
use crate::ops::init::InitError;
use crate::ops::snapshot::SnapshotError;
use crate::prefix::PrefixError;
use crate::prefix::workdir::WorkdirError;
use crate::provider::{AccelUse, ProviderError};
use crate::sdk::SdkError;
use crate::template::build::BuildError;
use crate::template::import::ImportError;
use crate::template::prune::PruneError;

/// What a person should know about an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnosis {
    /// The input or the request is wrong (not the host, not lago).
    pub user: bool,
    /// What to do about it.
    pub hint: Option<String>,
    /// Which of the original's failures it is, for front ends that raise the original's
    /// exception classes (the Python SDK).
    pub kind: Option<Kind>,
}

/// Failures the original told apart by exception class, which suites catch by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A prefix of that name exists (`lago.workdir.PrefixAlreadyExists`).
    PrefixExists,
    /// No prefix of that name (`lago.workdir.PrefixNotFound`).
    PrefixNotFound,
    /// Not a workdir, or a broken one (`lago.workdir.MalformedWorkdir`).
    MalformedWorkdir,
    /// The VM does not run (`lago.plugins.vm.LagoVMNotRunningError`).
    VmNotRunning,
    /// A path to extract is not in the VM (`lago.plugins.vm.ExtractPathNoPathError`).
    NoPath,
    /// A copy into a VM failed (`lago.plugins.vm.LagoCopyFilesToVMError`).
    CopyToVm,
    /// A copy out of a VM failed (`lago.plugins.vm.LagoCopyFilesFromVMError`).
    CopyFromVm,
    /// SSH never connected (`lago.ssh.LagoSSHTimeoutException`).
    SshTimeout,
    /// A wait helper's time ran out (lago's own: `lago.plugins.vm.LagoWaitTimeoutError`).
    WaitTimeout,
}

impl Kind {
    /// Its stable name (`prefix-exists`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::PrefixExists => "prefix-exists",
            Kind::PrefixNotFound => "prefix-not-found",
            Kind::MalformedWorkdir => "malformed-workdir",
            Kind::VmNotRunning => "vm-not-running",
            Kind::NoPath => "no-path",
            Kind::CopyToVm => "copy-to-vm",
            Kind::CopyFromVm => "copy-from-vm",
            Kind::SshTimeout => "ssh-timeout",
            Kind::WaitTimeout => "wait-timeout",
        }
    }
}

impl Diagnosis {
    fn user() -> Self {
        Self { user: true, hint: None, kind: None }
    }

    fn host() -> Self {
        Self { user: false, hint: None, kind: None }
    }

    fn of_kind(mut self, kind: Kind) -> Self {
        self.kind = Some(kind);
        self
    }

    fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// An error as a person reads it: what failed, each cause, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The error.
    pub message: String,
    /// Its causes, outermost first.
    pub causes: Vec<String>,
    /// What to do about it.
    pub hints: Vec<String>,
    /// Whether the input or the request is wrong (not the host, not lago).
    pub user: bool,
    /// Which of the original's failures it is.
    pub kind: Option<Kind>,
}

impl Rendered {
    /// A message of the front end's own (a wrong argument), with no cause.
    pub fn message(message: impl Into<String>, user: bool) -> Self {
        Self { message: message.into(), causes: Vec::new(), hints: Vec::new(), user, kind: None }
    }

    /// The lines: the error, `Caused by:` each cause, `Hint:` each hint.
    pub fn text(&self) -> String {
        let mut text = self.message.clone();
        for cause in &self.causes {
            text.push_str(&format!("\nCaused by: {cause}"));
        }
        for hint in &self.hints {
            text.push_str(&format!("\nHint: {hint}"));
        }
        text
    }
}

/// How `e` reaches a person: its diagnosis, its cause chain, and, for a tool that could not be
/// run, `lago doctor` (which checks the host and prints the command that installs it).
pub fn render<E: Diagnose + std::error::Error + ?Sized>(e: &E) -> Rendered {
    let diagnosis = e.diagnose();
    let mut causes = Vec::new();
    let mut source = e.source();
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    let mut rendered = Rendered {
        message: e.to_string(),
        causes,
        hints: diagnosis.hint.into_iter().collect(),
        user: diagnosis.user,
        kind: diagnosis.kind,
    };
    if rendered.text().contains("could not be run") {
        rendered
            .hints
            .push("run `lago doctor`: it checks the host and prints the command that installs what is missing".into());
    }
    rendered
}

/// Errors that know how they reach a person.
pub trait Diagnose {
    /// The diagnosis.
    fn diagnose(&self) -> Diagnosis;
}

impl Diagnose for InitError {
    fn diagnose(&self) -> Diagnosis {
        match self {
            InitError::Workdir(w) => w.diagnose(),
            InitError::Failed { source, .. } => source.diagnose(),
            other => Diagnosis { user: other.is_user_error(), hint: other.hint(), kind: None },
        }
    }
}

impl Diagnose for WorkdirError {
    fn diagnose(&self) -> Diagnosis {
        match self {
            WorkdirError::Io(_) => Diagnosis::host(),
            WorkdirError::NotFound { .. } => Diagnosis::user()
                .of_kind(Kind::MalformedWorkdir)
                .with_hint("run `lago init` first, or point `--workdir-path` at a workdir"),
            WorkdirError::DanglingCurrent { .. } => Diagnosis::user().of_kind(Kind::MalformedWorkdir).with_hint(
                "`lago set-current NAME` makes another prefix current; `lago --prefix-name NAME destroy` or `lago destroy --all-prefixes` removes prefixes",
            ),
            WorkdirError::PrefixExists { .. } => Diagnosis::user()
                .of_kind(Kind::PrefixExists)
                .with_hint("specify a different prefix name (`--prefix-name`) or remove it (`lago destroy`)"),
            WorkdirError::Malformed { .. } => Diagnosis::user().of_kind(Kind::MalformedWorkdir),
            WorkdirError::NoSuchPrefix { .. } => Diagnosis::user().of_kind(Kind::PrefixNotFound),
            _ => Diagnosis::user(),
        }
    }
}

impl Diagnose for PrefixError {
    fn diagnose(&self) -> Diagnosis {
        match self {
            PrefixError::Workdir(w) => w.diagnose(),
            PrefixError::NotAPrefix { .. } | PrefixError::Corrupt { .. } => Diagnosis::user().with_hint(
                "the prefix's state is damaged: `lago destroy` stops what its pid files name and removes it",
            ),
            _ => Diagnosis::host(),
        }
    }
}

impl Diagnose for crate::prefix::register::RegisterError {
    fn diagnose(&self) -> Diagnosis {
        match self {
            crate::prefix::register::RegisterError::Corrupt { path, .. } => Diagnosis::user().with_hint(format!(
                "remove {}: lago starts a new register (the environments themselves are not touched)",
                path.display()
            )),
            _ => Diagnosis::host(),
        }
    }
}

impl Diagnose for ConfigError {
    fn diagnose(&self) -> Diagnosis {
        match self {
            ConfigError::Read { .. } => Diagnosis::host(),
            _ => Diagnosis::user(),
        }
    }
}

impl Diagnose for EnvError {
    fn diagnose(&self) -> Diagnosis {
        match self {
            EnvError::Prefix(p) => p.diagnose(),
            EnvError::NotRunning { .. } => Diagnosis::user().of_kind(Kind::VmNotRunning),
            EnvError::SshUnreachable { .. } => Diagnosis::host().of_kind(Kind::SshTimeout),
            EnvError::UnknownVms { .. } | EnvError::UnknownNet { .. } | EnvError::Provider { .. } | EnvError::BadVm { .. } => {
                Diagnosis::user()
            }
            EnvError::HostLeg { .. } => Diagnosis::host().with_hint(
                "run lago as root (or give it CAP_NET_ADMIN), or set `host_leg = auto` (a host leg where lago may make one) or `off` (VMs reached through ports forwarded on 127.0.0.1)",
            ),
            EnvError::ControlCut { vm, net, .. } => Diagnosis::user().of_kind(Kind::SshTimeout).with_hint(format!(
                "`lago net restore {vm} {net}` puts the link back (libvirt and `ssh` VMs are reached on their management network; `local-qemu` VMs through an uplink of lago's that no fault touches)"
            )),
            EnvError::NoRoom { .. } => Diagnosis::host().with_hint(
                "without `--no-wait` the command waits in line until the host has room; `memory_reserve` is the memory lago leaves to the host (`lago fork` shows its copy-on-write estimate)",
            ),
            EnvError::ForwardTaken { .. } => Diagnosis::user().with_hint(
                "free that port, or change `host` of the VM's `forwards` in the init file (without `host`, a free port is chosen at each start)",
            ),
            EnvError::Qemu(ProviderError::SshTimeout { accel, .. }) => Diagnosis::host().with_hint(match accel.resolved {
                Accel::Tcg => format!("raise `boot_time_sec` of the VM: {}", accel_words(accel)),
                Accel::Kvm | Accel::Auto => accel_words(accel),
            }),
            EnvError::Qemu(ProviderError::LoginRefused { password, .. }) => Diagnosis::user().with_hint(format!(
                "the image does not trust the environment's key{}: it was initialized with `--skip-bootstrap`, or it is an image that brings its own access; give `lago init --ssh-key FILE` the key it trusts, or set the password it takes (`root-password` in the template's metadata or the domain, `ssh-password` in the VM's metadata)",
                if *password { " nor take the password lago offered" } else { "" }
            )),
            EnvError::Qemu(ProviderError::BootFailed { accel, .. } | ProviderError::Died { accel, .. }) => {
                Diagnosis::host().with_hint(accel_words(accel))
            }
            EnvError::Qemu(ProviderError::Openstack(e)) => {
                let d = if e.is_user_error() { Diagnosis::user() } else { Diagnosis::host() };
                match e.hint() {
                    Some(h) => d.with_hint(h),
                    None => d,
                }
            }
            EnvError::Qemu(ProviderError::Libvirt { what, .. }) if what == "Cannot connect" => Diagnosis::host().with_hint(
                "start libvirtd on that host (or correct `libvirt_url`), then run the command again (a `destroy` that failed so has cleaned the other hosts and kept the prefix for that)",
            ),
            _ => Diagnosis::host(),
        }
    }
}

/// What to do about a VM that did not boot, by the acceleration it ran under and where that
/// was set.
fn accel_words(accel: &AccelUse) -> String {
    let origin = &accel.setting.origin;
    match (accel.setting.accel, accel.resolved) {
        (Accel::Kvm, _) => format!(
            "`accel = kvm` is set ({origin}): KVM does not run such guests on some hosts; `--accel auto` falls back to TCG where KVM fails, `--accel tcg` never uses KVM"
        ),
        (_, Accel::Kvm) => format!(
            "`accel = auto` ({origin}) chose KVM, since the KVM probe passed on this host; if guests hang under KVM here, set `accel = tcg` (`LAGO_ACCEL=tcg`, or `--accel tcg`)"
        ),
        (Accel::Auto, _) => format!(
            "the VM ran under TCG (software emulation), as `accel = auto` ({origin}) chose on this host; `lago doctor` shows why"
        ),
        (Accel::Tcg, _) => format!("the VM ran under TCG (software emulation), as `accel = tcg` ({origin}) asks"),
    }
}

impl Diagnose for crate::ops::fork::ForkError {
    fn diagnose(&self) -> Diagnosis {
        use crate::ops::fork::ForkError;
        match self {
            ForkError::Env(e) => e.diagnose(),
            ForkError::Snapshot(e) => e.diagnose(),
            ForkError::Workdir(e) => e.diagnose(),
            ForkError::Prefix(e) => e.diagnose(),
            ForkError::Refused { reason, .. } if reason.contains("memory_dir") || reason.contains("tmpfs") => {
                Diagnosis::user().with_hint(
                    "`lago doctor` shows where VMs' memory files go; set `memory_dir` to a directory on a tmpfs and start the VMs again",
                )
            }
            ForkError::Exists { .. } => Diagnosis::user().of_kind(Kind::PrefixExists),
            ForkError::Refused { .. }
            | ForkError::Count { .. }
            | ForkError::NoCopy
            | ForkError::Twice { .. }
            | ForkError::NotACopy { .. }
            | ForkError::NeverForked { .. } => Diagnosis::user(),
            ForkError::OriginDown { prefix, .. } => Diagnosis::host().with_hint(format!(
                "`lago --prefix-name {prefix} start` boots them from their disks as they were frozen"
            )),
            _ => Diagnosis::host(),
        }
    }
}

impl Diagnose for crate::ops::capture::CaptureError {
    fn diagnose(&self) -> Diagnosis {
        use crate::ops::capture::CaptureError;
        match self {
            CaptureError::Fork(e) => e.diagnose(),
            CaptureError::Qemu { need, .. } => Diagnosis::user().with_hint(format!(
                "replay it on a host whose qemu is {} (any {} with the machine type {})",
                need.version,
                need.version.rsplit_once('.').map_or(need.version.as_str(), |(major_minor, _)| major_minor),
                need.machine
            )),
            CaptureError::Templates { .. } => Diagnosis::user().with_hint(
                "put the templates in the store (`lago template`), or configure the repository they come from (`template_repo_path`)",
            ),
            CaptureError::Refused { reason, .. } if reason.contains("memory_dir") || reason.contains("tmpfs") => {
                Diagnosis::user().with_hint(
                    "`lago doctor` shows where VMs' memory files go; set `memory_dir` to a directory on a tmpfs and start the VMs again",
                )
            }
            CaptureError::NoKvm { .. } => {
                Diagnosis::user().with_hint("replay it on a host where KVM works (`lago doctor` checks it)")
            }
            CaptureError::NoMemoryDir { .. } => Diagnosis::user()
                .with_hint("`lago doctor` shows where VMs' memory files go; set `memory_dir` to a directory on a tmpfs"),
            CaptureError::BadName { .. }
            | CaptureError::Refused { .. }
            | CaptureError::NoOutputDir { .. }
            | CaptureError::Exists { .. }
            | CaptureError::Missing { .. }
            | CaptureError::NoArtefact { .. }
            | CaptureError::Corrupt { .. }
            | CaptureError::WorkdirInUse { .. } => Diagnosis::user(),
            _ => Diagnosis::host(),
        }
    }
}

impl Diagnose for FaultError {
    fn diagnose(&self) -> Diagnosis {
        match self {
            FaultError::Env(e) => e.diagnose(),
            e if e.is_user_error() => Diagnosis::user(),
            _ => Diagnosis::host(),
        }
    }
}

impl Diagnose for crate::ops::forward::ForwardError {
    fn diagnose(&self) -> Diagnosis {
        use crate::ops::forward::ForwardError;
        match self {
            ForwardError::Env(e) => e.diagnose(),
            ForwardError::Provider(ProviderError::Unsupported { .. }) => Diagnosis::user().with_hint(
                "libvirt VMs are reached at their own address on the network, where libvirt gives the host its gateway address",
            ),
            ForwardError::Provider(_) => Diagnosis::host(),
            ForwardError::HostPortTaken { .. } | ForwardError::HostPortForwarded { .. } | ForwardError::NotForwarded { .. } => {
                Diagnosis::user()
            }
        }
    }
}

impl Diagnose for crate::ops::graph::GraphError {
    fn diagnose(&self) -> Diagnosis {
        use crate::ops::graph::GraphError;
        match self {
            GraphError::DotMissing => Diagnosis::user().with_hint(
                "install Graphviz: `sudo lago doctor --fix --all` (its `graphviz` check), or `apt-get install graphviz`; `lago status -f dot` prints the picture's text without it",
            ),
            GraphError::Format { .. } => Diagnosis::user(),
            GraphError::Dot { .. } => Diagnosis::host(),
        }
    }
}

impl Diagnose for GuestError {
    fn diagnose(&self) -> Diagnosis {
        match self {
            GuestError::Env(e) => e.diagnose(),
            GuestError::NoPath { .. } => Diagnosis::user().of_kind(Kind::NoPath),
            GuestError::Copy { into_vm: true, .. } => Diagnosis::user().of_kind(Kind::CopyToVm),
            GuestError::Copy { into_vm: false, .. } => Diagnosis::user().of_kind(Kind::CopyFromVm),
            GuestError::Deploy { .. } | GuestError::Shutdown { .. } => Diagnosis::user(),
            _ => Diagnosis::host(),
        }
    }
}

impl Diagnose for SnapshotError {
    fn diagnose(&self) -> Diagnosis {
        match self {
            SnapshotError::Env(e) => e.diagnose(),
            SnapshotError::Prefix(p) => p.diagnose(),
            SnapshotError::InvalidName { .. }
            | SnapshotError::Exists { .. }
            | SnapshotError::Unknown { .. }
            | SnapshotError::Unsupported { .. }
            | SnapshotError::NoDisk { .. }
            | SnapshotError::Running { .. } => Diagnosis::user(),
            _ => Diagnosis::host(),
        }
    }
}

impl Diagnose for ExportError {
    fn diagnose(&self) -> Diagnosis {
        match self {
            ExportError::Env(e) => e.diagnose(),
            ExportError::Prefix(p) => p.diagnose(),
            ExportError::Running(_) => Diagnosis::user().with_hint("stop them first with `lago stop`"),
            ExportError::NotLayered { .. } | ExportError::Unsupported { .. } | ExportError::Clash(_) => {
                Diagnosis::user()
            }
            _ => Diagnosis::host(),
        }
    }
}

impl Diagnose for BuildError {
    fn diagnose(&self) -> Diagnosis {
        match self {
            BuildError::Unknown { .. } | BuildError::Repo(_) => Diagnosis::user(),
            _ => Diagnosis::host(),
        }
    }
}

impl Diagnose for ImportError {
    fn diagnose(&self) -> Diagnosis {
        match self {
            ImportError::NotBootable { .. } => Diagnosis::user().with_hint(
                "import the whole disk of a VM (a distribution's cloud image is one), not one of its partitions",
            ),
            ImportError::Publish(e) => e.diagnose(),
            e if e.is_bad_input() => Diagnosis::user(),
            _ => Diagnosis::host(),
        }
    }
}

impl Diagnose for PruneError {
    fn diagnose(&self) -> Diagnosis {
        match self {
            PruneError::Repo(e) => e.diagnose(),
            _ => Diagnosis::host(),
        }
    }
}

impl Diagnose for DoctorError {
    fn diagnose(&self) -> Diagnosis {
        match self {
            DoctorError::NotRoot { .. } => Diagnosis::user().with_hint("run it as root: `sudo lago doctor --fix`"),
            _ => Diagnosis::host(),
        }
    }
}

impl Diagnose for SdkError {
    fn diagnose(&self) -> Diagnosis {
        match self {
            SdkError::Config(e) => e.diagnose(),
            SdkError::Init(e) => e.diagnose(),
            SdkError::Workdir(e) => e.diagnose(),
            SdkError::Env(e) => e.diagnose(),
            SdkError::Session(e) => e.diagnose(),
            SdkError::UnknownOption { .. } | SdkError::BadOption { .. } => Diagnosis::user(),
        }
    }
}

impl Diagnose for crate::session::SessionError {
    fn diagnose(&self) -> Diagnosis {
        use crate::session::SessionError as E;
        match self {
            E::Config(e) => e.diagnose(),
            E::Workdir(e) => e.diagnose(),
            E::Prefix(e) => e.diagnose(),
            E::Env(e) => e.diagnose(),
            E::Init(e) => e.diagnose(),
            E::NoPrefix { .. } => Diagnosis::user(),
            E::Io(_) => Diagnosis::host(),
        }
    }
}

impl Diagnose for crate::template::RepoError {
    fn diagnose(&self) -> Diagnosis {
        match self {
            crate::template::RepoError::Missing { .. } => {
                Diagnosis::user().with_hint("build the local repository with `lago template build tiny`")
            }
            _ => Diagnosis::user(),
        }
    }
}

impl Diagnose for crate::ops::service::ServiceError {
    fn diagnose(&self) -> Diagnosis {
        match self {
            crate::ops::service::ServiceError::Env(e) => e.diagnose(),
            _ => Diagnosis::user(),
        }
    }
}

impl Diagnose for crate::ops::console::ConsoleError {
    fn diagnose(&self) -> Diagnosis {
        match self {
            crate::ops::console::ConsoleError::Env(e) => e.diagnose(),
            _ => Diagnosis::host(),
        }
    }
}

impl Diagnose for crate::ops::wait::WaitError {
    fn diagnose(&self) -> Diagnosis {
        use crate::ops::wait::WaitError;
        let timeout = |hint: String| Diagnosis::host().of_kind(Kind::WaitTimeout).with_hint(hint);
        match self {
            WaitError::Env(e) => e.diagnose(),
            WaitError::Service(e) => e.diagnose(),
            WaitError::Command { vm, .. } => timeout(format!(
                "the output above is the last try's; `lago shell {vm}` runs the command by hand, a longer `--timeout` waits longer"
            )),
            WaitError::Port { vm, .. } => timeout(format!(
                "the port is checked in the VM (a TCP socket in LISTEN state, on any address): is the service started (`lago wait {vm} --unit NAME`)? `lago shell {vm} -c 'netstat -ltn || ss -ltn'` lists what listens"
            )),
            WaitError::Unit { vm, status, .. } => timeout(format!(
                "`lago shell {vm} -c {}` shows its state; its log is in the VM (the journal, /var/log)",
                crate::host::ssh::quote(status)
            )),
            WaitError::File { vm, .. } => {
                timeout(format!("the path is looked for as root in the VM; `lago shell {vm}` looks around by hand"))
            }
            WaitError::Console { vm, .. } => timeout(format!(
                "the whole console log is the prefix's logs/{vm}.console.log; `lago console {vm}` attaches to the console"
            )),
            WaitError::BadRegex { .. } => Diagnosis::user().with_hint(
                "the console is matched line by line with Rust's `regex` syntax (https://docs.rs/regex/#syntax)",
            ),
            WaitError::NoConsole { .. } => Diagnosis::user().with_hint(
                "a machine of the `ssh` provider has no console lago logs; wait for a command or a file instead",
            ),
            WaitError::Follow { .. } => Diagnosis::host(),
        }
    }
}

impl Diagnose for crate::host::images::ImageError {
    fn diagnose(&self) -> Diagnosis {
        Diagnosis::host()
    }
}

impl Diagnose for crate::provider::HelperError {
    fn diagnose(&self) -> Diagnosis {
        Diagnosis::host()
    }
}

impl Diagnose for crate::provider::qemu::switch::SwitchError {
    fn diagnose(&self) -> Diagnosis {
        Diagnosis::host()
    }
}

impl Diagnose for crate::host::process::ProcessError {
    fn diagnose(&self) -> Diagnosis {
        Diagnosis::host()
    }
}
