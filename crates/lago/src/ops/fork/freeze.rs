//! The freeze of a running environment (see the module above): its VMs paused together,
//! their device states saved, their qemu ended, their memory files and disks moved into the
//! frozen state.

use std::path::{Path, PathBuf};

use super::{ForkError, own_memory, skel};
use crate::config::Accel;
use crate::env::{Env, for_each_parallel};
use crate::prefix::frozen::{ForkRecord, Frozen, FrozenVm};
use crate::prefix::records::VmRecord;
use crate::prefix::state::State;
use crate::report::Reporter;

use super::super::snapshot::{pause_together, resume_together};

impl Env {
    /// Freezes the running environment into `frozen`: its VMs paused together, their device
    /// states saved, their qemu ended, their memory files and disks moved into the frozen state
    /// (see the module). If a state cannot be saved, the VMs are resumed and nothing changed.
    pub(super) fn freeze_into(
        &self,
        frozen: &mut Frozen,
        state: &State,
        reporter: &dyn Reporter,
    ) -> Result<(), ForkError> {
        let vms: Vec<&VmRecord> = self.vms.iter().collect();
        let spread = pause_together(self, &vms)?;
        if vms.len() > 1 {
            reporter.note(&format!("Paused {} VMs within {:.1} ms", vms.len(), spread.as_secs_f64() * 1000.0));
        }
        // What the frozen VMs ran under: their copies run under the same.
        let accel: Vec<(String, Accel)> = vms
            .iter()
            .map(|v| {
                let pid = crate::prefix::running_pid(&self.prefix.layout().pid(&v.name));
                let cmdline = pid.and_then(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok()).unwrap_or_default();
                (v.name.clone(), crate::provider::qemu::freeze::accel_of(&cmdline))
            })
            .collect();
        let saved = for_each_parallel(&vms, |vm| {
            let provider = self.provider_of(vm)?;
            let accel = accel.iter().find(|(n, _)| *n == vm.name).map_or(Accel::Tcg, |(_, a)| *a);
            // A copy's memory is a frozen VM's file, which must not change: a helper takes it
            // into a file of its own (the whole memory, once).
            let helper = (!own_memory(state, &vm.name))
                .then(|| self.helper_context(vm, accel, &frozen.memory_file(&vm.name), &frozen.dir))
                .transpose()?;
            provider
                .freeze(&self.prefix.path, vm, &frozen.state_file(&vm.name), helper.as_ref())
                .map_err(ForkError::from)
        });
        if let Err(e) = saved {
            let _ = resume_together(self, &vms);
            return Err(e);
        }
        // From here on the origin's VMs end: what they were is in the frozen state.
        let moved = std::sync::Mutex::new(Vec::new());
        let _ = for_each_parallel(&vms, |vm| {
            let own = state.memory.get(&vm.name).filter(|m| m.shared).and_then(|m| m.file.clone());
            let memory = frozen.memory_file(&vm.name);
            if let Some(own) = &own {
                // Before qemu ends: it takes its own memory file with it.
                if let Err(e) = std::fs::rename(own, &memory) {
                    tracing::warn!("cannot move {} to {}: {e}", own.display(), memory.display());
                }
            }
            let _ = self.kill(&vm.name);
            let mut disks = std::collections::BTreeMap::new();
            for (index, dev, path) in skel::freezable_disks(&self.prefix.path, vm).unwrap_or_default() {
                let to = frozen.disk_file(&vm.name, &dev);
                match std::fs::rename(&path, &to) {
                    Ok(()) => {
                        disks.insert(index, to.strip_prefix(&frozen.dir).map(Path::to_path_buf).unwrap_or(to));
                    }
                    Err(e) => tracing::warn!("cannot move {} to {}: {e}", path.display(), to.display()),
                }
            }
            let accel = accel.iter().find(|(n, _)| *n == vm.name).map_or(Accel::Tcg, |(_, a)| *a);
            let entry = FrozenVm {
                memory,
                memory_mib: vm.run_memory(),
                state: PathBuf::from(format!("{}.state", vm.name)),
                disks,
                accel: accel.name().to_owned(),
            };
            moved.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((vm.name.clone(), entry));
            Ok::<_, ForkError>(())
        });
        for (name, entry) in moved.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
            frozen.manifest.vms.insert(name, entry);
        }
        frozen.manifest.pause_spread_ms = (spread.as_secs_f64() * 10_000.0).round() / 10.0;
        frozen.manifest.parents =
            ForkRecord::load(&self.prefix.path)?.uses.into_iter().filter(|u| *u != frozen.dir).collect();
        frozen.save()?;
        Ok(())
    }
}
