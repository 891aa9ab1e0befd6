//! Every path of a prefix, from one type ([`Layout`]): the original's files (`uuid`,
//! `initialized`, `id_rsa`, `virt/`, `images/`, `logs/lago.log`), lago's runtime files under
//! `run/`, and its sockets, which live in the prefix's runtime directory outside it
//! ([`runtime_dir`]: `/run/lago/<id>` for root, `$XDG_RUNTIME_DIR/lago/<id>` or
//! `/tmp/lago-<uid>/<id>` for other users), so that a copy of a workdir never meets a socket.
//!
//! ```text
//! <prefix>/
//!   initialized  uuid  metadata  id_rsa  id_rsa.pub  known_hosts
//!   virt/env  virt/net-<net>  virt/vm-<vm>  virt/snapshots/<vm>/<name>.xml
//!   images/<vm>_<disk>.<fmt>  images/<vm>-seed.img
//!   scripts/  logs/lago.log  logs/<vm>.console.log  logs/<vm>.qemu.log  logs/switch-<net>.log
//!   run/state.json  run/<vm>.pid  run/switch-<net>.json|.pid
//! <runtime dir>/
//!   <vm>.qmp  <vm>.console  <vm>.qga  <vm>.ssh  <vm>-<nic>.nic  sw-<net>.sock  sw-<net>.ctl
//! ```

use std::path::{Path, PathBuf};

use crate::host::ssh::Target;

/// The paths of the prefix at one directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout of the prefix at `root`.
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_owned() }
    }

    /// The prefix directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `uuid`: the environment's id, 32 hex digits.
    pub fn uuid(&self) -> PathBuf {
        self.root.join("uuid")
    }

    /// `initialized`: written last by `init`.
    pub fn initialized(&self) -> PathBuf {
        self.root.join("initialized")
    }

    /// `metadata`: `{"lago_version": ..., "records_as_written": true}`.
    pub fn metadata(&self) -> PathBuf {
        self.root.join("metadata")
    }

    /// `id_rsa`: the environment's private key.
    pub fn ssh_key(&self) -> PathBuf {
        self.root.join("id_rsa")
    }

    /// `id_rsa.pub`.
    pub fn ssh_public_key(&self) -> PathBuf {
        self.root.join("id_rsa.pub")
    }

    /// `known_hosts`, keyed by VM name.
    pub fn known_hosts(&self) -> PathBuf {
        self.root.join("known_hosts")
    }

    /// `virt/env`: the names of the nets and VMs.
    pub fn virt_env(&self) -> PathBuf {
        self.root.join("virt/env")
    }

    /// `virt/vm-<vm>`.
    pub fn vm_record(&self, vm: &str) -> PathBuf {
        self.root.join(format!("virt/vm-{vm}"))
    }

    /// `virt/net-<net>`.
    pub fn net_record(&self, net: &str) -> PathBuf {
        self.root.join(format!("virt/net-{net}"))
    }

    /// `virt/snapshots/<vm>/<name>.xml`: a libvirt snapshot's definition.
    pub fn libvirt_snapshot(&self, vm: &str, name: &str) -> PathBuf {
        self.root.join(format!("virt/snapshots/{vm}/{name}.xml"))
    }

    /// `images/`.
    pub fn images(&self) -> PathBuf {
        self.root.join("images")
    }

    /// `images/<vm>-seed.img`: the VM's NoCloud seed.
    pub fn seed(&self, vm: &str) -> PathBuf {
        self.root.join(format!("images/{vm}-seed.img"))
    }

    /// `scripts/`: copies of deploy scripts.
    pub fn scripts(&self) -> PathBuf {
        self.root.join("scripts")
    }

    /// `logs/`.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// `logs/lago.log`: every operation, at debug level.
    pub fn log(&self) -> PathBuf {
        self.root.join("logs/lago.log")
    }

    /// `logs/<vm>.console.log`: the VM's serial console.
    pub fn console_log(&self, vm: &str) -> PathBuf {
        self.root.join(format!("logs/{vm}.console.log"))
    }

    /// `logs/<vm>.qemu.log`: what qemu said.
    pub fn qemu_log(&self, vm: &str) -> PathBuf {
        self.root.join(format!("logs/{vm}.qemu.log"))
    }

    /// `logs/forward-<vm>.log`: the relays of a VM's forwarded ports.
    pub fn forward_log(&self, vm: &str) -> PathBuf {
        self.root.join(format!("logs/forward-{vm}.log"))
    }

    /// `logs/switch-<net>.log`.
    pub fn switch_log(&self, net: &str) -> PathBuf {
        self.root.join(format!("logs/switch-{net}.log"))
    }

    /// `run/`: runtime files.
    pub fn run(&self) -> PathBuf {
        self.root.join("run")
    }

    /// `run/<vm>.console-start`: the length of the VM's console log when it was last started;
    /// what follows is its current run's (`Vm::wait_for_console`).
    pub fn console_start(&self, vm: &str) -> PathBuf {
        self.root.join(format!("run/{vm}.console-start"))
    }

    /// `run/state.json`.
    pub fn state(&self) -> PathBuf {
        self.root.join("run/state.json")
    }

    /// `run/<what>.pid` (a VM's qemu, `switch-<net>`).
    pub fn pid(&self, what: &str) -> PathBuf {
        self.root.join(format!("run/{what}.pid"))
    }

    /// `run/switch-<net>.json`: a switch's configuration.
    pub fn switch_config(&self, net: &str) -> PathBuf {
        self.root.join(format!("run/switch-{net}.json"))
    }

    /// The Unix socket `<file>` of the prefix ([`socket_path`]).
    pub fn socket(&self, file: &str) -> PathBuf {
        socket_path(&self.root, file)
    }

    /// `<vm>.qmp` in the runtime directory: the VM's QMP socket.
    pub fn qmp(&self, vm: &str) -> PathBuf {
        self.socket(&format!("{vm}.qmp"))
    }

    /// `<vm>.console` in the runtime directory: the VM's console socket.
    pub fn console(&self, vm: &str) -> PathBuf {
        self.socket(&format!("{vm}.console"))
    }

    /// `<vm>.qga` in the runtime directory: the VM's guest-agent socket.
    pub fn guest_agent(&self, vm: &str) -> PathBuf {
        self.socket(&format!("{vm}.qga"))
    }

    /// `<vm>.ssh` in the runtime directory: the VM's SSH master connection; `None` when no
    /// private runtime directory can be had (or its path is too long), and
    /// connections are then not reused.
    pub fn ssh_control(&self, vm: &str) -> Option<PathBuf> {
        ensure_runtime_dir(&self.root).ok()?;
        Some(self.socket(&format!("{vm}.ssh"))).filter(|p| p.as_os_str().len() <= SOCKET_PATH_MAX)
    }

    /// `<vm>-<nic>.nic` in the runtime directory: qemu's end of NIC `nic`'s link to its switch.
    pub fn nic_socket(&self, vm: &str, nic: usize) -> PathBuf {
        self.socket(&format!("{vm}-{nic}.nic"))
    }

    /// How to reach VM `vm` over SSH at `host`:`port` with the environment's key and
    /// `known_hosts`, reusing its master connection.
    pub fn ssh_target(&self, vm: &str, user: &str, host: &str, port: u16) -> Target {
        Target {
            vm: vm.to_owned(),
            user: user.to_owned(),
            port,
            host: host.to_owned(),
            key: self.ssh_key(),
            known_hosts: self.known_hosts(),
            control: self.ssh_control(vm),
            password: None,
        }
    }
}

/// The longest socket path lago uses as it is: `sun_path` holds 108 bytes, and OpenSSH adds 17
/// characters to its control path while it creates it.
const SOCKET_PATH_MAX: usize = 90;

/// The path of the Unix socket `file` (`vm01.qmp`) of the prefix at `prefix`: in the prefix's
/// runtime directory ([`runtime_dir`]). Sockets stay out of the prefix so that a copy of a
/// workdir (`cp -r`, `shutil.copytree`, `tar`) never meets one, and their paths stay short however
/// deep the prefix is. Whoever creates a socket there first makes the directory
/// ([`ensure_runtime_dir`]).
pub fn socket_path(prefix: &Path, file: &str) -> PathBuf {
    runtime_dir(prefix).join(file)
}

/// Where runtime directories live: `/run/lago` for root, `$XDG_RUNTIME_DIR/lago` for other
/// users who have one, else `/tmp/lago-<uid>`.
pub(crate) fn runtime_base() -> PathBuf {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return PathBuf::from("/run/lago");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() && dir.is_dir() => dir.join("lago"),
        _ => PathBuf::from(format!("/tmp/lago-{uid}")),
    }
}

/// The prefix's runtime directory: `<base>/<16 hex digits of the sha1 of the prefix's path>`.
pub fn runtime_dir(prefix: &Path) -> PathBuf {
    runtime_base().join(runtime_id(prefix))
}

/// The prefix's id on the host: 16 hex digits of the sha1 of its path (its runtime directory's
/// and its memory files' directory's name).
pub fn runtime_id(prefix: &Path) -> String {
    use sha1::Digest;
    hex::encode(&sha1::Sha1::digest(prefix.as_os_str().as_encoded_bytes())[..8])
}

/// Makes the prefix's runtime directory (mode 0700) if it is missing, and checks that its base
/// is a private directory of this user (another user's `/tmp/lago-<uid>` is refused).
pub fn ensure_runtime_dir(prefix: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let dir = runtime_dir(prefix);
    let base = dir.parent().unwrap_or(Path::new("/"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(base);
    let meta = std::fs::symlink_metadata(base)?;
    if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("{} is not a private directory of this user", base.display()),
        ));
    }
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(dir),
    }
}

/// Removes the prefix's runtime directory, if it has one.
pub fn remove_runtime_dir(prefix: &Path) {
    let dir = runtime_dir(prefix);
    if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
        let _ = std::fs::remove_dir_all(dir);
    }
}
