//! Starting environments from a frozen state (see the module above): the VMs loaded paused,
//! resumed together, settled; and a copy renewed in place.

use std::path::PathBuf;

use super::{ForkError, skel};
use crate::config::Accel;
use crate::env::{Env, EnvError, for_each_parallel};
use crate::host::images::Images;
use crate::host::process::CommandRunner;
use crate::prefix::Prefix;
use crate::prefix::frozen::{ForkRecord, Frozen};
use crate::prefix::records::VmRecord;
use crate::prefix::state::State;
use crate::report::{Reporter, task};

impl Env {
    /// Puts a copy back to the frozen state it was made from, in place: its VMs end and start
    /// again as new copies of the frozen ones (same prefix, networks and ports), its records,
    /// faults and forwards as they were frozen (the pytest plugin's `lago_env_reset = fork`).
    pub fn renew(&self, runner: &dyn CommandRunner, reporter: &dyn Reporter) -> Result<(), ForkError> {
        let copy_of = ForkRecord::load(&self.prefix.path)?
            .copy_of
            .ok_or_else(|| ForkError::NotACopy { prefix: self.prefix.name() })?;
        let frozen = Frozen::load(&copy_of)?;
        let _hold = frozen.hold()?;
        let _lock = self.lock("fork --renew", reporter)?;
        crate::host::interrupt::check().map_err(EnvError::from)?;
        // Once its VMs end, an interrupt waits until new ones run.
        crate::host::interrupt::shield(|| {
            task(reporter, "Renew prefix from its frozen state", || {
                let running = self.running();
                for_each_parallel(&self.vms, |vm| {
                    if running.contains(&vm.name) {
                        self.kill(&vm.name)?;
                    }
                    Ok::<_, ForkError>(())
                })?;
                // The records, faults and forwards as frozen; the ports kept where they can be.
                let skel = Prefix { path: frozen.skel() };
                for vm in &self.vms {
                    self.prefix.save_vm_document(&vm.name, &skel::for_copies(skel.vm_document(&vm.name)?))?;
                }
                let was = State::load(&self.prefix.path)?;
                let frozen_state = skel::frozen_state(&frozen)?;
                let mut forwards = frozen_state.forwards.clone();
                for (vm, list) in forwards.iter_mut() {
                    for f in list.iter_mut() {
                        if let Some(before) = was.forwards.get(vm).and_then(|l| l.iter().find(|b| b.guest == f.guest)) {
                            f.host = before.host;
                        }
                    }
                }
                let state =
                    State { ssh_ports: was.ssh_ports.clone(), memory: was.memory.clone(), forwards, ..frozen_state };
                state.save(&self.prefix.path)?;
                let all: Vec<&VmRecord> = self.vms.iter().collect();
                let groups = self.providers.group(&all).map_err(EnvError::from)?;
                self.bring_up_nets(&groups, &self.env_id()?, reporter)?;
                load_env(self, &frozen, true, runner)?;
                resume_all(&[self])?;
                settle(self)
            })
        })
    }
}

/// Makes prefix `name` in `dir` a copy of `frozen` and starts it, with `options` (`lago replay`:
/// a frozen state unpacked from an artefact, with no environment it was frozen from on this
/// host): its files from the frozen prefix, its networks up, its VMs thawed and resumed
/// together. Returns it running; when it cannot start, nothing of it is left.
pub fn start_copy(
    frozen: &Frozen,
    dir: &std::path::Path,
    name: &str,
    options: crate::env::EnvOptions,
    runner: &dyn CommandRunner,
    reporter: &dyn Reporter,
) -> Result<Env, ForkError> {
    let lock = crate::host::lock::acquire(&dir.join(name), "replay", reporter).map_err(EnvError::from)?;
    if dir.join(name).exists() {
        return Err(ForkError::Exists { name: name.to_owned(), dir: dir.to_owned() });
    }
    let prefix = skel::make_copy(frozen, dir, name)?;
    let env = match Env::load(prefix.clone(), options) {
        Ok(env) => env,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&prefix.path);
            return Err(e.into());
        }
    };
    let started = (|| {
        let all: Vec<&VmRecord> = env.vms.iter().collect();
        let groups = env.providers.group(&all).map_err(EnvError::from)?;
        env.bring_up_nets(&groups, &env.env_id()?, reporter)?;
        task(reporter, "Start the frozen VMs", || load_env(&env, frozen, false, runner))?;
        resume_all(&[&env])?;
        settle(&env)
    })();
    drop(lock);
    if let Err(e) = started {
        let _ = env.destroy(&crate::report::NoopReporter);
        return Err(e);
    }
    // `lago envs` lists it, as every prefix lago makes.
    crate::prefix::register::record(&env.options.register, &env.prefix.path);
    Ok(env)
}

/// Starts the VMs of `env` (a copy of `frozen`, or the prefix it was frozen from) as copies of
/// the frozen VMs, paused: a fresh overlay on each frozen disk, at the disk's path; each VM
/// thawed (on its SSH and forwarded ports of before when `keep_ports` and they are free). If
/// one fails, those started are stopped. The caller resumes them ([`resume_all`]) and settles
/// them ([`settle`]).
pub(super) fn load_env(
    env: &Env,
    frozen: &Frozen,
    keep_ports: bool,
    runner: &dyn CommandRunner,
) -> Result<(), ForkError> {
    let env_id = env.env_id()?;
    let state = std::sync::Mutex::new(State::load(&env.prefix.path)?);
    let lock = || state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let started = std::sync::Mutex::new(Vec::new());
    let vms: Vec<&VmRecord> = env.vms.iter().collect();
    let result = for_each_parallel(&vms, |vm| {
        let entry = frozen
            .manifest
            .vms
            .get(&vm.name)
            .ok_or_else(|| ForkError::NotFrozen { vm: vm.name.clone(), frozen: frozen.dir.clone() })?;
        for (index, rel) in &entry.disks {
            let Some(disk) = vm.disks.get(*index) else { continue };
            let path = PathBuf::from(disk.path.replace("$LAGO_PREFIX_PATH", &env.prefix.path.display().to_string()));
            let _ = std::fs::remove_file(&path);
            Images::new(runner)
                .create_overlay(&frozen.dir.join(rel), "qcow2", &path)
                .map_err(|source| ForkError::Disk { vm: vm.name.clone(), source })?;
        }
        let (ssh_port, previous) = {
            let st = lock();
            (
                st.ssh_ports.get(&vm.name).copied().filter(|_| keep_ports),
                st.forwards.get(&vm.name).cloned().unwrap_or_default(),
            )
        };
        let accel = Accel::parse(&entry.accel).unwrap_or(Accel::Tcg);
        let state_file = frozen.dir.join(&entry.state);
        let launched =
            env.thaw_vm(vm, &env_id, accel, (&entry.memory, &state_file, &frozen.dir), ssh_port, &previous)?;
        started.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(vm.name.clone());
        let mut st = lock();
        st.clock.remove(&vm.name);
        launched.record(&vm.name, &mut st);
        Ok::<_, ForkError>(())
    });
    let state = state.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    let result = result.and(state.save(&env.prefix.path).map_err(ForkError::from));
    if result.is_err() {
        for vm in started.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
            let _ = env.kill(&vm);
        }
    }
    result
}

/// Resumes every VM of `envs` at one instant (their threads released together): no guest takes
/// the CPU from the starts of the others before every one is ready.
pub(super) fn resume_all(envs: &[&Env]) -> Result<(), ForkError> {
    let mut all = Vec::new();
    for env in envs {
        for vm in &env.vms {
            all.push((*env, vm, env.provider_of(vm)?));
        }
    }
    let barrier = std::sync::Barrier::new(all.len());
    for_each_parallel(&all, |(env, vm, provider)| {
        barrier.wait();
        provider.resume(&env.prefix.path, vm).map_err(ForkError::from)
    })
}

/// After its VMs were resumed: their cut links cut again, their clocks set where an agent runs
/// (they went back to the frozen instant), the others said in the state.
pub(super) fn settle(env: &Env) -> Result<(), ForkError> {
    for vm in &env.vms {
        env.reapply_cuts(vm)?;
    }
    let names: Vec<String> = env.vms.iter().map(|v| v.name.clone()).collect();
    env.set_loaded_clocks(&names, Some("it was forked (it goes on from the instant it was frozen)"))?;
    Ok(())
}
