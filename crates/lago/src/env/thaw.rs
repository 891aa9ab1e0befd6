//! Starting a VM as a copy of a frozen one (`lago fork`): paused, its memory the frozen VM's
//! memory file mapped privately, the frozen device state loaded into it. The caller resumes the
//! VMs of one environment together, as a snapshot's revert does.

use std::path::Path;

use super::start::{Boot, Launched};
use super::{Env, EnvError};
use crate::config::Accel;
use crate::prefix::records::VmRecord;
use crate::prefix::state::Forward;

impl Env {
    /// Starts `vm` (its disks in place) as a copy of the frozen VM whose memory file is `memory`
    /// and device state `state`, under `accel` (the frozen VM's), with its SSH port `ssh_port`
    /// when free and its forwards `previous` (on their host ports when free); returns what it
    /// was started with, for the state file. It is stopped again if the state cannot be loaded.
    #[allow(clippy::too_many_arguments, reason = "what a copy of a frozen VM starts with")]
    pub(crate) fn thaw_vm(
        &self,
        vm: &VmRecord,
        env_id: &str,
        accel: Accel,
        memory: &Path,
        state: &Path,
        ssh_port: Option<u16>,
        previous: &[Forward],
    ) -> Result<Launched, EnvError> {
        let launched = self.launch(vm, env_id, accel, previous, ssh_port, Boot::Thaw(memory))?;
        let provider = self.provider_of(vm)?;
        if let Err(e) = provider.thaw(&self.prefix.path, vm, state) {
            provider.kill(&self.prefix.path, vm);
            return Err(e.into());
        }
        Ok(launched)
    }
}
