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
    /// What a helper qemu beside `vm`'s own is started with to take its memory into `memory`, a
    /// new file of its own on a tmpfs, mapped shared (see [`Provider::freeze`]): `vm`'s devices,
    /// under `accel`, waiting for its state; its control files in a directory of the prefix's
    /// runtime directory, no port forwarded.
    ///
    /// [`Provider::freeze`]: crate::provider::Provider::freeze
    pub(crate) fn helper_context(
        &self,
        vm: &VmRecord,
        accel: Accel,
        memory: &Path,
        stub: &Path,
    ) -> Result<crate::provider::LaunchContext, EnvError> {
        let scratch = crate::prefix::runtime_dir(&self.prefix.path).join(format!("helper-{}", vm.name));
        Ok(crate::provider::LaunchContext {
            outbound: self.options.vm_outbound
                && vm.nics.iter().any(|n| self.nets.iter().any(|(name, kind)| *name == n.net && kind == "nat")),
            index: self.vms.iter().position(|v| v.name == vm.name).unwrap_or(0),
            memory: crate::provider::Memory::File { path: memory.to_owned(), shared: true },
            incoming: true,
            scratch: Some(scratch),
            kernel_stub: Some(stub.to_owned()),
            ..self.launch_context(&self.env_id()?, accel)
        })
    }

    /// Starts `vm` (its disks in place) as a copy of the frozen VM whose memory file is `memory`
    /// and device state `state` (a kernel it boots directly replaced by the stub of directory
    /// `stub`), under `accel` (the frozen VM's), with its SSH port `ssh_port` when free and its
    /// forwards `previous` (on their host ports when free); returns what it was started with,
    /// for the state file. It is stopped again if the state cannot be loaded.
    #[allow(clippy::too_many_arguments, reason = "what a copy of a frozen VM starts with")]
    pub(crate) fn thaw_vm(
        &self,
        vm: &VmRecord,
        env_id: &str,
        accel: Accel,
        (memory, state, stub): (&Path, &Path, &Path),
        ssh_port: Option<u16>,
        previous: &[Forward],
    ) -> Result<Launched, EnvError> {
        let launched = self.launch(vm, env_id, accel, previous, ssh_port, Boot::Thaw(memory, stub))?;
        let provider = self.provider_of(vm)?;
        if let Err(e) = provider.thaw(&self.prefix.path, vm, state) {
            provider.kill(&self.prefix.path, vm);
            return Err(e.into());
        }
        Ok(launched)
    }
}
