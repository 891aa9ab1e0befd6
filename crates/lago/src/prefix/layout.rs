//! Every path of a prefix, from one type ([`Layout`]): the original's files (`uuid`,
//! `initialized`, `id_rsa`, `virt/`, `images/`, `logs/lago.log`) and lago's runtime files under
//! `run/` (sockets through a short link when their path is too long for a socket).
//!
//! ```text
//! <prefix>/
//!   initialized  uuid  metadata  id_rsa  id_rsa.pub  known_hosts
//!   virt/env  virt/net-<net>  virt/vm-<vm>  virt/snapshots/<vm>/<name>.xml
//!   images/<vm>_<disk>.<fmt>  images/<vm>-seed.img
//!   scripts/  logs/lago.log  logs/<vm>.console.log  logs/<vm>.qemu.log  logs/switch-<net>.log
//!   run/state.json  run/<vm>.pid  run/<vm>.qmp  run/<vm>.console  run/<vm>.qga  run/<vm>.ssh
//!   run/<vm>-<nic>.nic  run/sw-<net>.sock  run/sw-<net>.ctl  run/switch-<net>.json|.pid
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

    /// `metadata`: `{"lago_version": ...}`.
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

    /// `logs/switch-<net>.log`.
    pub fn switch_log(&self, net: &str) -> PathBuf {
        self.root.join(format!("logs/switch-{net}.log"))
    }

    /// `run/`: runtime files.
    pub fn run(&self) -> PathBuf {
        self.root.join("run")
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

    /// The Unix socket `run/<file>`, through the short link when its path is too long.
    pub fn socket(&self, file: &str) -> PathBuf {
        socket_path(&self.root, file)
    }

    /// `run/<vm>.qmp`: the VM's QMP socket.
    pub fn qmp(&self, vm: &str) -> PathBuf {
        self.socket(&format!("{vm}.qmp"))
    }

    /// `run/<vm>.console`: the VM's console socket.
    pub fn console(&self, vm: &str) -> PathBuf {
        self.socket(&format!("{vm}.console"))
    }

    /// `run/<vm>.qga`: the VM's guest-agent socket.
    pub fn guest_agent(&self, vm: &str) -> PathBuf {
        self.socket(&format!("{vm}.qga"))
    }

    /// `run/<vm>.ssh`: the VM's SSH master connection; `None` when no short enough path exists
    /// (another user owns `/tmp/lago-<uid>`), and connections are then not reused.
    pub fn ssh_control(&self, vm: &str) -> Option<PathBuf> {
        Some(self.socket(&format!("{vm}.ssh"))).filter(|p| p.as_os_str().len() <= SOCKET_PATH_MAX)
    }

    /// `run/<vm>-<nic>.nic`: qemu's end of NIC `nic`'s link to its switch.
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
        }
    }
}

/// The longest socket path lago uses as it is: `sun_path` holds 108 bytes, and OpenSSH adds 17
/// characters to its control path while it creates it.
const SOCKET_PATH_MAX: usize = 90;

/// The path of the Unix socket `file` (`vm01.qmp`) of the prefix at `prefix`: `<prefix>/run/<file>`,
/// or, when that is too long for a socket, the same file reached through a short link
/// `/tmp/lago-<uid>/<id>` → `<prefix>/run` (made on demand, removed by `destroy`).
pub fn socket_path(prefix: &Path, file: &str) -> PathBuf {
    let direct = prefix.join("run").join(file);
    if direct.as_os_str().len() <= SOCKET_PATH_MAX {
        return direct;
    }
    match short_run_dir(prefix) {
        Some(dir) => dir.join(file),
        None => direct,
    }
}

/// The short link to `<prefix>/run`, made if missing; `None` when `/tmp/lago-<uid>` is not ours.
fn short_run_dir(prefix: &Path) -> Option<PathBuf> {
    use sha1::Digest;
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let uid = nix::unistd::geteuid();
    let base = PathBuf::from(format!("/tmp/lago-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&base);
    let meta = std::fs::symlink_metadata(&base).ok()?;
    if !meta.is_dir() || meta.uid() != uid.as_raw() || meta.mode() & 0o022 != 0 {
        tracing::warn!("{} is not a private directory of this user: socket paths stay long", base.display());
        return None;
    }
    let id = hex::encode(&sha1::Sha1::digest(prefix.as_os_str().as_encoded_bytes())[..8]);
    let link = base.join(id);
    let target = prefix.join("run");
    if std::fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link).ok()?;
    }
    Some(link)
}

/// Removes the short link of [`socket_path`], if the prefix had one.
pub fn remove_socket_link(prefix: &Path) {
    use sha1::Digest;
    let id = hex::encode(&sha1::Sha1::digest(prefix.as_os_str().as_encoded_bytes())[..8]);
    let link = PathBuf::from(format!("/tmp/lago-{}", nix::unistd::geteuid())).join(id);
    if std::fs::read_link(&link).ok().as_deref() == Some(prefix.join("run").as_path()) {
        let _ = std::fs::remove_file(link);
    }
}
