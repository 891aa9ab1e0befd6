//! The `ssh` provider: machines lago did not create, driven over SSH (`vm-provider: ssh`).
//!
//! A machine is reached at `metadata.ssh-host` (default: its management address),
//! `metadata.ssh-port` (22) with `metadata.ssh-key` (the environment's key). `start` only
//! waits for it to answer and `stop` leaves it alone: it runs when it answers SSH.

use std::path::{Path, PathBuf};

use super::{Console, LaunchContext, Provider, ProviderError, SnapshotOp, VmRecord};
use crate::host::ssh::Target;

/// The `ssh` provider.
#[derive(Debug, Default, Clone, Copy)]
pub struct SshProvider;

impl SshProvider {
    fn unsupported(vm: &VmRecord, what: &str) -> ProviderError {
        ProviderError::Unsupported { vm: vm.name.clone(), what: what.into(), provider: "ssh" }
    }
}

impl Provider for SshProvider {
    /// A machine of its own may be reached through the user's SSH configuration (a jump host, a
    /// proxy): only `ssh` itself tells whether it answers.
    fn probe(&self, target: &Target, banner: &mut crate::host::ssh::BannerProbe) -> std::io::Result<bool> {
        banner.login(target, 2)
    }

    fn name(&self) -> &'static str {
        "ssh"
    }

    fn start(&self, _vm: &VmRecord, _ctx: &LaunchContext) -> Result<(), ProviderError> {
        Ok(())
    }

    fn running(&self, prefix: &Path, vms: &[VmRecord]) -> Vec<String> {
        vms.iter()
            .filter(|v| {
                self.probe(&self.target(prefix, v, None), &mut crate::host::ssh::BannerProbe::new()).unwrap_or(false)
            })
            .map(|v| v.name.clone())
            .collect()
    }

    fn target(&self, prefix: &Path, vm: &VmRecord, _ssh_port: Option<u16>) -> Target {
        let meta = |k: &str| vm.metadata.get(k).map(|v| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()));
        let host =
            meta("ssh-host").or_else(|| vm.address().map(|ip| ip.to_string())).unwrap_or_else(|| vm.name.clone());
        let port = meta("ssh-port").and_then(|p| p.parse().ok()).unwrap_or(22);
        let mut target = crate::prefix::Layout::new(prefix).ssh_target(&vm.name, &vm.ssh_user, &host, port);
        if let Some(key) = meta("ssh-key") {
            target.key = PathBuf::from(key);
        }
        // A machine of its own may take its password only (the original's ssh provider).
        target.password = vm.password();
        target
    }

    /// Not lago's machine: only the connection is closed.
    fn kill(&self, prefix: &Path, vm: &VmRecord) {
        self.target(prefix, vm, None).close();
    }

    fn request_shutdown(&self, prefix: &Path, vm: &VmRecord) -> Result<(), ProviderError> {
        let _ = self.target(prefix, vm, None).exec_line("poweroff", None, 10);
        Ok(())
    }

    fn live_snapshot(
        &self,
        _prefix: &Path,
        vm: &VmRecord,
        _op: SnapshotOp,
        _name: &str,
        _disks: &[(usize, PathBuf, String)],
    ) -> Result<(), ProviderError> {
        Err(Self::unsupported(vm, "a snapshot"))
    }

    fn console(&self, _prefix: &Path, vm: &VmRecord) -> Result<Console, ProviderError> {
        Err(Self::unsupported(vm, "a serial console"))
    }

    fn set_link(&self, _prefix: &Path, vm: &VmRecord, _nic: usize, _up: bool) -> Result<(), ProviderError> {
        Err(Self::unsupported(vm, "link state"))
    }

    fn guest_agent(
        &self,
        _prefix: &Path,
        vm: &VmRecord,
        _command: &serde_json::Value,
        _timeout: std::time::Duration,
    ) -> Result<serde_json::Value, ProviderError> {
        Err(Self::unsupported(vm, "the guest agent"))
    }

    fn pause(&self, _prefix: &Path, vm: &VmRecord) -> Result<(), ProviderError> {
        Err(Self::unsupported(vm, "pausing"))
    }

    fn resume(&self, _prefix: &Path, vm: &VmRecord) -> Result<(), ProviderError> {
        Err(Self::unsupported(vm, "resuming"))
    }
}
