//! `lago doctor --fix`: the package installations and directories that fix failed checks.

use std::path::PathBuf;

use super::host::Host;
use super::report::{BACKPORTS_SOURCES, Check, Fix, Group, Report};
use crate::host::process::{CommandRunner, Invocation, ProcessError};
use crate::report::{Reporter, task};

/// Why a fix could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// A package installation failed.
    #[error("Cannot install {packages}")]
    Install {
        /// The packages.
        packages: String,
        /// The failure of `apt-get`.
        #[source]
        source: ProcessError,
    },
    /// Writing apt's sources failed.
    #[error("Cannot write {path}")]
    Sources {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A directory could not be created.
    #[error(transparent)]
    Dir(#[from] crate::host::pathio::PathError),
    /// Installing needs root.
    #[error("Installing packages needs root: {commands}")]
    NotRoot {
        /// What would have run.
        commands: String,
    },
}

/// Carries out the fixes of the failed checks in `groups`: apt's lists, qemu from backports,
/// then the other packages, then directories. Returns one line per action, as it was announced.
pub fn fix(
    report: &Report,
    groups: &[Group],
    host: &dyn Host,
    runner: &dyn CommandRunner,
    reporter: &dyn Reporter,
) -> Result<Vec<String>, DoctorError> {
    let failed: Vec<&Check> = report.failed(groups).collect();
    let mut backports: Vec<String> = Vec::new();
    let mut source: Option<String> = None;
    let mut packages: Vec<(String, String)> = Vec::new(); // (package, why)
    let mut update = false;
    let mut dirs: Vec<PathBuf> = Vec::new();
    for c in &failed {
        match &c.fix {
            Some(Fix::Backports { packages: p, source: s, .. }) => {
                for pkg in p {
                    if !backports.contains(pkg) {
                        backports.push(pkg.clone());
                    }
                }
                source = source.or_else(|| s.clone());
            }
            Some(Fix::Install { packages: p, .. }) => {
                for pkg in p {
                    if !packages.iter().any(|(q, _)| q == pkg) {
                        packages.push((pkg.clone(), format!("{}: {}", c.name, c.purpose)));
                    }
                }
            }
            Some(Fix::AptUpdate { .. }) => update = true,
            Some(Fix::Directory { path, .. }) => dirs.push(path.clone()),
            Some(Fix::Advice(_)) | None => {}
        }
    }
    let installs = !backports.is_empty() || !packages.is_empty();
    if (installs || update) && !host.is_root() {
        let commands: Vec<String> = failed.iter().filter_map(|c| c.fix.as_ref()).map(Fix::command).collect();
        return Err(DoctorError::NotRoot { commands: commands.join("; ") });
    }
    let mut done = Vec::new();
    let apt = |args: Vec<String>, what: &str, why: &str, done: &mut Vec<String>| -> Result<(), DoctorError> {
        let line = format!("Installing {what}: {why}");
        reporter.note(&line);
        done.push(line);
        let inv = Invocation::new("apt-get").env("DEBIAN_FRONTEND", "noninteractive").args(args);
        task(reporter, &format!("apt-get install {what}"), || runner.run(&inv))
            .map(|_| ())
            .map_err(|source| DoctorError::Install { packages: what.to_owned(), source })
    };
    if let Some(entry) = &source {
        let line =
            format!("Adding bookworm-backports to apt's sources ({BACKPORTS_SOURCES}): qemu 10 comes from there");
        reporter.note(&line);
        done.push(line);
        host.add_apt_source(entry).map_err(|source| DoctorError::Sources { path: BACKPORTS_SOURCES.into(), source })?;
        update = true;
    }
    if update || (installs && host.apt().lists_age_days.is_none()) {
        let line = "Updating apt's package lists: packages are installed and templates built from them".to_owned();
        reporter.note(&line);
        done.push(line);
        task(reporter, "apt-get update", || runner.run(&Invocation::new("apt-get").args(["update", "-qq"])))
            .map_err(|source| DoctorError::Install { packages: "apt's package lists".into(), source })?;
    }
    let install_args = |pkgs: Vec<String>| -> Vec<String> {
        let mut a: Vec<String> = ["install", "-y", "-qq", "--no-install-recommends"].map(String::from).to_vec();
        a.extend(pkgs);
        a
    };
    if !backports.is_empty() {
        let pinned = backports.iter().map(|p| format!("{p}/bookworm-backports")).collect();
        let why = "the VMs' qemu, from bookworm-backports (Debian 12's own qemu 7.2 would remove qemu-img 10)";
        apt(install_args(pinned), &backports.join(" "), why, &mut done)?;
    }
    // One line per package says why; one apt-get run installs them all.
    if !packages.is_empty() {
        for (pkg, why) in &packages {
            let line = format!("Installing {pkg}: {why}");
            reporter.note(&line);
            done.push(line);
        }
        let names: Vec<String> = packages.iter().map(|(p, _)| p.clone()).collect();
        let what = names.join(" ");
        let inv = Invocation::new("apt-get").env("DEBIAN_FRONTEND", "noninteractive").args(install_args(names));
        task(reporter, &format!("apt-get install {what}"), || runner.run(&inv))
            .map_err(|source| DoctorError::Install { packages: what.clone(), source })?;
    }
    for dir in dirs {
        let line = format!("Creating {}", dir.display());
        reporter.note(&line);
        done.push(line);
        std::fs::create_dir_all(&dir).map_err(crate::host::pathio::at("create", &dir))?;
    }
    Ok(done)
}
