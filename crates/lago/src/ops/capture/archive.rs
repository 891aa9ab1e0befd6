//! The artefact as a file: a tar (GNU tar, through `host/process.rs`) compressed with zstd.
//!
//! Why this format: a tar opens anywhere (`tar -tf`, `tar -xf`), GNU tar keeps the memory
//! files' holes (`--sparse`: a guest's untouched and zeroed pages take no room, and are holes
//! again on the tmpfs they are unpacked to), and zstd packs what remains at disk speed on every
//! core. The manifest is the first member, so that a replay reads it (and refuses an unfit host)
//! without unpacking anything else.

use std::path::Path;

use super::manifest::MANIFEST;
use crate::host::process::{CommandRunner, Invocation, ProcessError};

/// The members of the artefact's memory files (`memory/<vm>.mem`).
pub const MEMORY: &str = "memory";

fn tar() -> Invocation {
    Invocation::new("tar").arg("--use-compress-program=zstd -T0")
}

/// Packs the directory `staging` (its symbolic links followed) into `out`, the manifest first.
pub fn pack(staging: &Path, out: &Path, runner: &dyn CommandRunner) -> Result<(), ProcessError> {
    let mut rest: Vec<String> = std::fs::read_dir(staging)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    rest.retain(|n| n != MANIFEST);
    rest.sort();
    let inv = tar()
        .args(["--create", "--sparse", "--hole-detection=raw", "--dereference", "--file"])
        .arg(out)
        .arg("-C")
        .arg(staging)
        .arg(MANIFEST)
        .args(rest);
    runner.run(&inv).map(|_| ())
}

/// The manifest of `artefact`, as text.
pub fn read_manifest(artefact: &Path, runner: &dyn CommandRunner) -> Result<String, ProcessError> {
    let inv = tar().args(["--extract", "--to-stdout", "--occurrence=1", "--file"]).arg(artefact).arg(MANIFEST);
    runner.run(&inv).map(|o| o.stdout_text())
}

/// Unpacks `artefact` into `dest`: everything but the memory files (`memory: false`), or only
/// the memory files, directly in `dest` (`memory: true`; holes kept).
pub fn unpack(artefact: &Path, dest: &Path, memory: bool, runner: &dyn CommandRunner) -> Result<(), ProcessError> {
    let inv = tar().args(["--extract", "--no-same-owner", "--file"]).arg(artefact).arg("-C").arg(dest);
    let inv = if memory { inv.args(["--strip-components=1", MEMORY]) } else { inv.arg(format!("--exclude={MEMORY}")) };
    runner.run(&inv).map(|_| ())
}
