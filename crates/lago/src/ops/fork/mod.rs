//! `lago fork`: copies of a running environment, running in about a second, their memory
//! shared with the frozen environment until they write it (`docs/design.md`, "Forks").
//!
//! A fork freezes the environment at one instant: its VMs are paused together, each VM's device
//! state is saved (its memory is already a file of its own on a tmpfs, `env/memory.rs`), its
//! qemu ends, and its memory file and the top layers of its disks move into a frozen state
//! (`prefix/frozen.rs`). Then, all in parallel, the origin's VMs start again as copies of the
//! frozen ones (same prefix, ports and networks; the guests go on from the instant they were
//! frozen: their qemu processes are new), and each copy, a new prefix of the same directory
//! with its own networks, ports and uplinks, starts the same way: a qcow2 overlay on each frozen
//! disk, the frozen memory file mapped privately (its pages stay shared until written), the
//! frozen device state loaded, a new VM generation id; the VMs of each environment are resumed
//! together. Nothing is copied.
//!
//! Why the origin's qemu processes are replaced: a frozen VM's memory file is what every copy
//! maps, so it must never change again, and the origin's qemu maps it shared (every write goes
//! into it). Keeping the origin's process would mean copying its whole memory into a file of the
//! copies' at each fork, with the origin paused meanwhile (about 60 ms per 100 MiB the guest
//! touched, measured here) and that much more memory for good; instead the origin becomes one
//! more copy of the frozen state, sharing its pages too. Its guests notice nothing but their new
//! VM generation id and the end of TCP connections that ran through their uplinks (lago's SSH
//! connection, connections through forwarded ports): the next command connects anew.
//!
//! More copies of a frozen state are made without freezing again (`--from-frozen`), and a copy
//! goes back to its frozen state in place ([`Env::renew`]: the pytest plugin's
//! `lago_env_reset = fork`).

mod freeze;
mod skel;
pub(crate) use skel::copy_tree;
mod thaw;

use std::path::{Path, PathBuf};

use crate::env::admission::Need;
use crate::env::{Env, EnvError, for_each_parallel};
use crate::host::images::ImageError;
use crate::host::pathio::PathError;
use crate::host::process::CommandRunner;
use crate::prefix::PrefixError;
use crate::prefix::frozen::{ForkRecord, Frozen, FrozenError};
use crate::prefix::records::VmRecord;
use crate::prefix::state::State;
use crate::prefix::workdir::WorkdirError;
use crate::provider::ProviderError;
use crate::report::{Reporter, task};

use super::snapshot::SnapshotError;
pub use thaw::start_copy;
use thaw::{load_env, resume_all, settle};

/// What a fork makes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForkOptions {
    /// The copies' prefix names (else names `<prefix>-<n>` are chosen).
    pub names: Vec<String>,
    /// How many copies (default: one per name, else one).
    pub count: Option<usize>,
    /// Copies of the frozen state of the prefix's last fork (for a copy: the one it was made
    /// from), instead of freezing the environment now.
    pub from_frozen: bool,
    /// When the copies would not fit the host's memory, fail at once naming the shortfall
    /// (else wait in line until they fit).
    pub no_wait: bool,
}

/// Fork failures.
#[derive(Debug, thiserror::Error)]
pub enum ForkError {
    /// A VM cannot be frozen.
    #[error("VM {vm} cannot be forked: {reason}")]
    Refused {
        /// The VM.
        vm: String,
        /// Why.
        reason: String,
    },
    /// The count and the names disagree.
    #[error(
        "{names} name{} and `--count {count}` given: give as many names as the count, or only one of the two",
        if *names == 1 { "" } else { "s" }
    )]
    Count {
        /// The count.
        count: usize,
        /// How many names.
        names: usize,
    },
    /// No copy asked for.
    #[error("`--count 0`: a fork makes at least one copy")]
    NoCopy,
    /// A name is given twice.
    #[error("Copy name {name} is given twice")]
    Twice {
        /// The name.
        name: String,
    },
    /// A copy's name is taken.
    #[error("Prefix {name} exists already in {}", dir.display())]
    Exists {
        /// The name.
        name: String,
        /// The directory of the prefixes.
        dir: PathBuf,
    },
    /// `renew` of a prefix that is not a copy.
    #[error("Prefix {prefix} is not a copy made by `lago fork`: it has no frozen state to go back to")]
    NotACopy {
        /// The prefix.
        prefix: String,
    },
    /// `--from-frozen` of a prefix never forked.
    #[error("Prefix {prefix} has no frozen state: it was never forked, nor made by a fork")]
    NeverForked {
        /// The prefix.
        prefix: String,
    },
    /// A frozen state lacks a VM of the environment.
    #[error("The frozen state {} has no VM {vm}", frozen.display())]
    NotFrozen {
        /// The VM.
        vm: String,
        /// The frozen state.
        frozen: PathBuf,
    },
    /// A disk of a copy could not be made.
    #[error("VM {vm}: cannot make its disk on the frozen one")]
    Disk {
        /// The VM.
        vm: String,
        /// Why.
        #[source]
        source: ImageError,
    },
    /// The origin's VMs could not start again from the frozen state.
    #[error(
        "The VMs of prefix {prefix} were frozen in {}, and could not start again from there",
        frozen.display()
    )]
    OriginDown {
        /// The origin.
        prefix: String,
        /// The frozen state.
        frozen: PathBuf,
        /// Why.
        #[source]
        source: Box<ForkError>,
    },
    /// The name of a copy is not a prefix name.
    #[error(transparent)]
    Workdir(#[from] WorkdirError),
    /// The environment failed.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// A frozen state could not be used.
    #[error(transparent)]
    Frozen(#[from] FrozenError),
    /// A VM's provider failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Pausing or resuming the VMs failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A record could not be read.
    #[error(transparent)]
    Prefix(#[from] PrefixError),
    /// A file could not be written.
    #[error(transparent)]
    Io(#[from] PathError),
}

impl From<crate::prefix::state::RuntimeError> for ForkError {
    fn from(e: crate::prefix::state::RuntimeError) -> Self {
        ForkError::Env(e.into())
    }
}

/// The memory a copy of a VM of `mib` MiB is expected to take of its own at first: its qemu's
/// (its code cache starts empty) and the pages its guest writes early (a sixteenth of them).
pub fn cow_estimate(mib: u64) -> u64 {
    (32 << 20) + ((mib << 20) / 16)
}

/// Whether VM `vm`'s memory is its own file (rather than a frozen VM's, mapped privately).
fn own_memory(state: &State, vm: &str) -> bool {
    state.memory.get(vm).is_some_and(|m| m.shared)
}

/// The names of `count` copies of `origin` in `dir`: `<origin>-<n>`, the lowest free numbers.
fn chosen_names(dir: &Path, origin: &str, count: usize) -> Vec<String> {
    (1..).map(|n| format!("{origin}-{n}")).filter(|n| !dir.join(n).exists()).take(count).collect()
}

impl Env {
    /// The directory of the prefixes (the workdir, or the directory of a bare prefix).
    fn prefixes_dir(&self) -> PathBuf {
        self.prefix.path.parent().unwrap_or(Path::new("/")).to_owned()
    }

    /// The names the copies get, checked.
    fn copy_names(&self, opts: &ForkOptions) -> Result<Vec<String>, ForkError> {
        let dir = self.prefixes_dir();
        let names = if opts.names.is_empty() {
            let count = opts.count.unwrap_or(1);
            if count == 0 {
                return Err(ForkError::NoCopy);
            }
            chosen_names(&dir, &self.prefix.name(), count)
        } else {
            if let Some(count) = opts.count.filter(|c| *c != opts.names.len()) {
                return Err(ForkError::Count { count, names: opts.names.len() });
            }
            opts.names.clone()
        };
        for (i, name) in names.iter().enumerate() {
            crate::prefix::workdir::check_prefix_name(name)?;
            if names[..i].contains(name) {
                return Err(ForkError::Twice { name: name.clone() });
            }
            if dir.join(name).exists() {
                return Err(ForkError::Exists { name: name.clone(), dir });
            }
        }
        Ok(names)
    }

    /// Why a VM cannot be frozen now, if it cannot.
    fn check_freezable(&self, vm: &VmRecord, state: &State) -> Result<(), ForkError> {
        let refuse = |reason: String| Err(ForkError::Refused { vm: vm.name.clone(), reason });
        if vm.provider() != "local-qemu" {
            return refuse(format!(
                "it is a {} VM; `lago fork` copies local-qemu VMs, whose memory lago keeps in a file",
                vm.provider()
            ));
        }
        if !self.state(&vm.name).is_running() {
            return refuse("it does not run (`lago fork` copies a running environment: `lago start` it first)".into());
        }
        match state.memory.get(&vm.name) {
            None => {
                return refuse(format!(
                    "it was started without a memory file (by an earlier lago); `lago stop {0}` and `lago start {0}` give it one",
                    vm.name
                ));
            }
            Some(m) if m.file.is_none() => {
                return refuse(format!(
                    "it runs with ordinary memory: {}",
                    m.why_not.as_deref().unwrap_or("no tmpfs could hold its memory file")
                ));
            }
            Some(_) => {}
        }
        let snapshots = crate::ops::snapshot::names_of(&self.prefix.vm_document(&vm.name)?);
        if !snapshots.is_empty() {
            return refuse(format!(
                "it has snapshots ({}): its disks become the frozen disks of the copies, where they could not be reverted to; delete them first (`lago snapshot --delete NAME`)",
                snapshots.join(", ")
            ));
        }
        skel::freezable_disks(&self.prefix.path, vm).map(|_| ()).or_else(refuse)
    }

    /// Makes `n` copies of the running environment, frozen now (see the module); its VMs go on
    /// as copies of the frozen state too. Returns the copies, running. [`Env::fork_with`] takes
    /// names, `--from-frozen`, the memory line's choice, a runner and a reporter.
    pub fn fork(&self, n: usize) -> Result<Vec<Env>, ForkError> {
        let opts = ForkOptions { count: Some(n), ..ForkOptions::default() };
        self.fork_with(&opts, &crate::host::process::SystemRunner, &crate::report::NoopReporter)
    }

    /// Makes copies of the environment (see the module): with `opts.from_frozen`, of the frozen
    /// state of its last fork; else it is frozen now, and its VMs go on as copies of that state.
    /// Returns the copies, running.
    pub fn fork_with(
        &self,
        opts: &ForkOptions,
        runner: &dyn CommandRunner,
        reporter: &dyn Reporter,
    ) -> Result<Vec<Env>, ForkError> {
        let names = self.copy_names(opts)?;
        self.fork_named(&names, opts, runner, reporter).map(|(copies, _)| copies)
    }

    /// Freezes the running environment into a new frozen state and lets its VMs go on from it
    /// at once, as a fork does, with no copy (`lago capture`, which writes the frozen state into
    /// an artefact). Returns the frozen state, which the environment uses from then on.
    pub fn freeze_in_place(&self, runner: &dyn CommandRunner, reporter: &dyn Reporter) -> Result<Frozen, ForkError> {
        self.fork_named(&[], &ForkOptions::default(), runner, reporter).map(|(_, frozen)| frozen)
    }

    /// [`Env::fork_with`] once the copies' names are known (none: the environment is only
    /// frozen and goes on); returns the copies and the frozen state they were made of.
    fn fork_named(
        &self,
        names: &[String],
        opts: &ForkOptions,
        runner: &dyn CommandRunner,
        reporter: &dyn Reporter,
    ) -> Result<(Vec<Env>, Frozen), ForkError> {
        let _lock = self.lock("fork", reporter)?;
        let dir = self.prefixes_dir();
        for gone in crate::prefix::frozen::collect(&dir) {
            tracing::info!("removed the frozen state {}, which nothing used any more", gone.display());
        }
        let state = State::load(&self.prefix.path)?;
        let earlier = if opts.from_frozen {
            let last = ForkRecord::load(&self.prefix.path)?
                .last
                .ok_or_else(|| ForkError::NeverForked { prefix: self.prefix.name() })?;
            Some(Frozen::load(&last)?)
        } else {
            for vm in &self.vms {
                self.check_freezable(vm, &state)?;
            }
            None
        };
        // Copies are being made of it: it stays while they are.
        let _hold = earlier.as_ref().map(Frozen::hold).transpose()?;
        let vms: Vec<(String, u64)> = match &earlier {
            None => self.vms.iter().map(|v| (v.name.clone(), v.run_memory())).collect(),
            Some(f) => f.manifest.vms.iter().map(|(n, v)| (n.clone(), v.memory_mib)).collect(),
        };
        let per_copy: u64 = vms.iter().map(|(_, mib)| cow_estimate(*mib)).sum();
        let need = Need {
            what: format!(
                "{} cop{} of {} VM{}",
                names.len(),
                if names.len() == 1 { "y" } else { "ies" },
                vms.len(),
                if vms.len() == 1 { "" } else { "s" }
            ),
            memory: per_copy * names.len() as u64,
            tmpfs: None,
        };
        // No copy (a capture): the environment's VMs take what they took before.
        let ticket = if names.is_empty() {
            None
        } else {
            reporter.note(&format!(
                "Copy-on-write estimate: {} for {} ({} a copy: each VM's qemu and the pages its guest writes first; the rest stays shared)",
                crate::host::memory::human(need.memory),
                need.what,
                crate::host::memory::human(per_copy),
            ));
            Some(self.admit(&need, !opts.no_wait, reporter)?)
        };
        let (frozen, fresh) = match earlier {
            Some(f) => (f, false),
            None => {
                // Frozen memory goes beside the VMs' own files (one tmpfs: a rename moves it).
                let own = self.vms.iter().find_map(|v| state.memory.get(&v.name)?.file.clone());
                let base = own.as_deref().and_then(Path::parent).and_then(Path::parent).map(Path::to_path_buf);
                let base = base.ok_or_else(|| ForkError::Refused {
                    vm: self.vms.first().map(|v| v.name.clone()).unwrap_or_default(),
                    reason: "it has no memory file".into(),
                })?;
                let frozen = Frozen::create(&dir, &self.prefix.name(), &base)?;
                crate::provider::qemu::freeze::write_stub(&frozen.dir)
                    .map_err(crate::host::pathio::at("write", &frozen.dir))?;
                (frozen, true)
            }
        };
        let result = self.fork_locked(&frozen, fresh, names, &state, runner, reporter);
        drop(ticket);
        if result.is_err() && fresh {
            // The origin does not use a frozen state that was never complete (its VMs were not
            // frozen: they run on as they were); one its VMs were frozen into, it does.
            let record = ForkRecord::load(&self.prefix.path).unwrap_or_default();
            let complete =
                Frozen::load(&frozen.dir).is_ok_and(|f| self.vms.iter().all(|v| f.manifest.vms.contains_key(&v.name)));
            if !complete {
                let mut record = record;
                record.uses.retain(|u| *u != frozen.dir);
                if record.last.as_ref() == Some(&frozen.dir) {
                    record.last = None;
                }
                let _ = record.save(&self.prefix.path);
                crate::prefix::frozen::collect(&dir);
            }
        }
        result
    }

    /// [`Env::fork`] once the frozen state is chosen (`fresh`: made now, to freeze into) and
    /// the host let the copies in.
    fn fork_locked(
        &self,
        frozen: &Frozen,
        fresh: bool,
        names: &[String],
        state: &State,
        runner: &dyn CommandRunner,
        reporter: &dyn Reporter,
    ) -> Result<(Vec<Env>, Frozen), ForkError> {
        let dir = self.prefixes_dir();
        if fresh {
            let record = ForkRecord::load(&self.prefix.path)?.with(&frozen.dir);
            ForkRecord { last: Some(frozen.dir.clone()), ..record }.save(&self.prefix.path)?;
            frozen.save()?;
            skel::write_skel(&self.prefix, frozen)?;
        }
        // The copies exist, their networks up, before anything is paused.
        let copies = if names.is_empty() {
            Vec::new()
        } else {
            task(reporter, "Create copies", || self.make_copies(frozen, &dir, names, reporter))?
        };
        let undo = |copies: &[Env]| {
            for c in copies {
                let _ = c.destroy(&crate::report::NoopReporter);
            }
        };
        crate::host::interrupt::check().map_err(EnvError::from)?;
        // From the freeze until every VM runs again, an interrupt waits: the origin's VMs must
        // not be left frozen.
        let mut frozen = frozen.clone();
        let outcome = crate::host::interrupt::shield(|| {
            if fresh {
                task(reporter, "Freeze VMs", || self.freeze_into(&mut frozen, state, reporter))?;
            }
            // The origin and every copy start from the frozen state at once.
            let origin: Option<&Env> = fresh.then_some(self);
            let all: Vec<(&Env, bool)> =
                origin.into_iter().map(|e| (e, true)).chain(copies.iter().map(|c| (c, false))).collect();
            let outcome = std::sync::Mutex::new(Vec::new());
            task(reporter, "Start copies of the frozen VMs", || {
                let _ = for_each_parallel(&all, |(env, keep_ports)| {
                    let result = load_env(env, &frozen, *keep_ports, runner);
                    outcome.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((env.prefix.name(), result));
                    Ok::<_, ForkError>(())
                });
                Ok::<_, ForkError>(())
            })?;
            let outcome = outcome.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
            // All of them go on at one instant; if one failed, the copies go, the origin goes on.
            let failed = outcome.iter().any(|(_, r)| r.is_err());
            let going: Vec<&Env> = all
                .iter()
                .map(|(e, _)| *e)
                .filter(|e| !failed || (fresh && e.prefix.path == self.prefix.path))
                .filter(|e| outcome.iter().any(|(n, r)| *n == e.prefix.name() && r.is_ok()))
                .collect();
            let resumed = resume_all(&going);
            for env in &going {
                settle(env)?;
            }
            resumed?;
            Ok::<_, ForkError>(outcome)
        });
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                undo(&copies);
                return Err(e);
            }
        };
        let mut failure = None;
        for (name, result) in outcome {
            if let Err(e) = result {
                let e = if fresh && name == self.prefix.name() {
                    ForkError::OriginDown { prefix: name, frozen: frozen.dir.clone(), source: Box::new(e) }
                } else {
                    e
                };
                failure.get_or_insert(e);
            }
        }
        if let Some(e) = failure {
            undo(&copies);
            return Err(e);
        }
        Ok((copies, frozen))
    }

    /// Makes the copies `names` of `frozen` in `dir`, their networks up.
    fn make_copies(
        &self,
        frozen: &Frozen,
        dir: &Path,
        names: &[String],
        reporter: &dyn Reporter,
    ) -> Result<Vec<Env>, ForkError> {
        let made = std::sync::Mutex::new(Vec::new());
        let result = for_each_parallel(names, |name| {
            let _lock = crate::host::lock::acquire(&dir.join(name), "fork", reporter).map_err(EnvError::from)?;
            if dir.join(name).exists() {
                return Err(ForkError::Exists { name: name.clone(), dir: dir.to_owned() });
            }
            let prefix = skel::make_copy(frozen, dir, name)?;
            let env = self.sibling(prefix)?;
            let all: Vec<&VmRecord> = env.vms.iter().collect();
            let groups = env.providers.group(&all).map_err(EnvError::from)?;
            let nets = env.bring_up_nets(&groups, &env.env_id()?, reporter);
            made.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(env);
            Ok(nets?)
        });
        let mut made = made.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        made.sort_by_key(|e| names.iter().position(|n| *n == e.prefix.name()));
        // The copies use the origin's templates: `template prune` keeps them.
        for env in &made {
            crate::prefix::register::record(&env.options.register, &env.prefix.path);
            let uses = std::fs::read_to_string(env.prefix.join(crate::prefix::STORE_USES)).unwrap_or_default();
            for image in uses.lines().filter(|l| !l.is_empty()) {
                if let Err(e) = crate::template::store::set_user(Path::new(image), &env.prefix.path, true) {
                    tracing::warn!("cannot add {} to the users of {image}: {e}", env.prefix.path.display());
                }
            }
        }
        if let Err(e) = result {
            for env in &made {
                let _ = env.destroy(&crate::report::NoopReporter);
            }
            return Err(e);
        }
        Ok(made)
    }
}

#[cfg(test)]
mod tests;
