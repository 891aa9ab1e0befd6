//! Where a `local-qemu` VM's memory goes when it boots: its own file on a tmpfs, mapped shared,
//! so that the running environment can be forked at any moment (`lago fork`); ordinary memory
//! where no tmpfs can hold it, with the reason kept for `status --extra` and `lago fork`.

use super::Env;
use super::admission::{Need, qemu_overhead};
use crate::prefix::records::VmRecord;
use crate::prefix::state::MemoryUse;
use crate::provider::Memory;

impl Env {
    /// The memory a `local-qemu` VM boots with, and what the state says of it.
    pub(crate) fn own_memory(&self, vm: &VmRecord) -> (Memory, MemoryUse) {
        let ordinary = |why: String| (Memory::Ram, MemoryUse { file: None, shared: false, why_not: Some(why) });
        let base = match &self.options.memory_base {
            Ok(base) => base,
            Err(why) => return ordinary(why.clone()),
        };
        if has_numa_cells(vm) {
            return ordinary("its NUMA cells (`cpu_custom`) have memory of their own".into());
        }
        let dir = crate::prefix::memory::prefix_dir(base, &self.prefix.path);
        if let Err(e) = crate::prefix::memory::ensure_dir(base, &dir) {
            return ordinary(format!("cannot make {}: {e}", dir.display()));
        }
        let file = crate::prefix::memory::vm_file(base, &self.prefix.path, &vm.name);
        // A file left by a qemu that ended without lago: its pages are not this boot's.
        let _ = std::fs::remove_file(&file);
        let bytes = vm.run_memory() << 20;
        match crate::host::memory::space(&dir) {
            Ok(space) if space.total < bytes => ordinary(format!(
                "the tmpfs of {} holds {}, less than its {}",
                dir.display(),
                crate::host::memory::human(space.total),
                crate::host::memory::human(bytes)
            )),
            Ok(_) => (
                Memory::File { path: file.clone(), shared: true },
                MemoryUse { file: Some(file), shared: true, why_not: None },
            ),
            Err(e) => ordinary(format!("cannot read the free space of {}: {e}", dir.display())),
        }
    }

    /// What booting `vms` asks of the host: each `local-qemu` VM's memory and its qemu's own,
    /// and room for its memory file.
    pub(crate) fn boot_need(&self, vms: &[&VmRecord], kvm: bool) -> Need {
        let local: Vec<&&VmRecord> = vms.iter().filter(|v| v.provider() == "local-qemu").collect();
        let memory = local.iter().map(|v| (v.run_memory() << 20) + qemu_overhead(kvm)).sum();
        let tmpfs = match &self.options.memory_base {
            Ok(base) => {
                let files: u64 = local.iter().filter(|v| !has_numa_cells(v)).map(|v| v.run_memory() << 20).sum();
                (files > 0).then(|| (files, base.clone()))
            }
            Err(_) => None,
        };
        let what = match local.len() {
            1 => "1 VM".to_owned(),
            n => format!("{n} VMs"),
        };
        Need { what, memory, tmpfs }
    }
}

/// Whether the VM's CPU has NUMA cells (`cpu_custom`): their memory backends are qemu's own.
pub(crate) fn has_numa_cells(vm: &VmRecord) -> bool {
    vm.cpu_custom.as_ref().is_some_and(|c| c.get("numa").is_some())
}
