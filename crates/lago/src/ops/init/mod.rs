//! `lago init`: init file → plan → a complete prefix on disk.
//!
//! Everything that can be checked is checked before anything is written: the init file, the
//! plan, the files it names and the templates it uses. The prefix is then built in a hidden
//! staging directory of the workdir and renamed into place at the end, so a failed `init` leaves
//! no prefix (and no workdir it created); its log is kept in the temporary directory and the
//! error says where (the original lost it, its issue #588).
//!
//! `check` reads and checks everything first, [`templates`] finds the repository and the
//! templates, [`build`] builds the prefix in its staging directory, [`seed`] writes the NoCloud
//! seeds; [`init`] orders them and moves the prefix into place, or leaves nothing.

mod build;
mod check;
mod error;
mod options;
pub mod seed;
mod templates;

use std::path::PathBuf;

pub use build::build_args;
pub use error::InitError;
pub use options::{Host, InitOptions};

use crate::prefix::Layout;
use crate::prefix::leases::SubnetLeases;
use crate::prefix::workdir::{Workdir, WorkdirError, io_err};
use build::{Build, lease_subnets, write};
use check::{Checked, check};
pub(crate) use templates::load_repo;
use templates::resolve_templates;

/// Creates the prefix described by `opts.init_file`.
pub fn init(opts: &InitOptions, host: &Host<'_>) -> Result<PathBuf, InitError> {
    let Checked { spec, mut plan, init_file, workdir, name, prefix, scripts, paths, warnings } = check(opts)?;
    for w in &warnings {
        host.reporter.warn(w);
    }
    let uses = resolve_templates(opts, &plan, &init_file, host.fetcher)?;

    // Nothing was written so far. From here on, work happens in a staging directory, under the
    // prefix's lock: a second `init` of the same prefix waits, then finds the prefix and stops.
    let created_workdir = !workdir.exists();
    std::fs::create_dir_all(&workdir).map_err(io_err("create", &workdir))?;
    let wd = Workdir { path: workdir.clone() };
    let lock = match crate::host::lock::acquire(&prefix, "init", host.reporter) {
        Ok(lock) => lock,
        Err(e) => {
            if created_workdir {
                let _ = wd.repair();
            }
            return Err(e.into());
        }
    };
    let leave = |lock: crate::host::lock::PrefixLock| {
        // Nothing of this init stays: its lock file, and the workdir if it made it.
        if !prefix.exists() {
            lock.remove_file();
        }
        drop(lock);
        if created_workdir || wd.prefixes().is_ok_and(|p| p.is_empty()) {
            let _ = wd.repair();
        }
    };
    if prefix.exists() {
        leave(lock);
        return Err(WorkdirError::PrefixExists { name, workdir }.into());
    }
    // Staging directories of this prefix left by an interrupted init (we hold its lock now).
    for repaired in crate::prefix::workdir::sweep_prefix(&workdir, &name) {
        host.reporter.warn(&repaired);
    }
    let staging = workdir.join(format!(".{name}.init-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    let leases = SubnetLeases::new(&opts.lease_dir);
    let result = std::fs::create_dir_all(&staging)
        .map_err(|e| io_err("create", &staging)(e).into())
        .and_then(|()| write(&Layout::new(&staging).uuid(), &uuid))
        .and_then(|()| {
            lease_subnets(
                &init_file,
                &spec,
                &mut plan,
                &opts.defaults,
                &leases,
                opts.lease_local_nets,
                &Layout::new(&staging).uuid(),
                &uuid,
                host.reporter,
            )
        })
        .and_then(|()| {
            Build {
                opts,
                host,
                uses: &uses,
                scripts: &scripts,
                staging: &staging,
                prefix: &prefix,
                uuid: &uuid,
                paths: &paths,
            }
            .run(&mut plan)
        })
        .and_then(|()| {
            // Moved into place with the subnet store locked: its leases never look stale.
            leases.rehome(&Layout::new(&staging).uuid(), &Layout::new(&prefix).uuid(), &uuid, || {
                std::fs::rename(&staging, &prefix).map_err(|e| io_err("create", &prefix)(e).into())
            })
        });
    match result {
        Ok(()) => {
            let _ = crate::host::logfile::attach(&Layout::new(&prefix).log());
            if opts.set_current || wd.current().is_none() {
                wd.point_current(&name)?;
            }
            drop(lock);
            tracing::info!("prefix {} initialized", prefix.display());
            Ok(prefix)
        }
        Err(e) => {
            tracing::error!("init failed: {e}");
            let log = std::env::temp_dir().join(format!("lago-init-{name}-{}.log", std::process::id()));
            let kept = std::fs::copy(Layout::new(&staging).log(), &log).is_ok();
            crate::host::logfile::detach();
            let _ = leases.release_all(&Layout::new(&staging).uuid(), &uuid);
            let _ = std::fs::remove_dir_all(&staging);
            leave(lock);
            if kept { Err(InitError::Failed { prefix, log, source: Box::new(e) }) } else { Err(e) }
        }
    }
}
