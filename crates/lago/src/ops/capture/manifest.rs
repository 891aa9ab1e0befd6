//! The manifest of a capture (`capture.json`, the artefact's first member): what it holds and
//! what a host needs to bring it back (the qemu whose machine type its VMs' device states were
//! saved under, the templates its disks are layered on).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::host::process::{CommandRunner, Invocation, ProcessError};

/// Version of the artefact's layout this build writes and reads.
pub const FORMAT: u32 = 1;
/// The manifest's name in the artefact.
pub const MANIFEST: &str = "capture.json";
/// The artefact's extension (`NAME.lago-capture`).
pub const EXTENSION: &str = "lago-capture";
/// The program that runs `local-qemu` VMs.
pub const QEMU: &str = "qemu-system-x86_64";

/// The qemu a capture was taken under, or this host's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Qemu {
    /// Its version (`10.0.2`).
    pub version: String,
    /// Its default machine type (`pc-i440fx-10.0`), which VMs run as: a device state loads only
    /// into the machine type it was saved under.
    pub machine: String,
}

impl Qemu {
    /// This host's qemu (`qemu-system-x86_64 --version` and `-machine help`).
    pub fn of_host(runner: &dyn CommandRunner) -> Result<Self, ProcessError> {
        let version = runner.run(&Invocation::new(QEMU).arg("--version"))?.stdout_text();
        let machines = runner.run(&Invocation::new(QEMU).args(["-machine", "help"]))?.stdout_text();
        Ok(Self::parse(&version, &machines))
    }

    /// From the texts of `--version` and `-machine help` (unknown parts are `?`).
    pub fn parse(version: &str, machines: &str) -> Self {
        let version = version
            .lines()
            .find_map(|l| l.split("version ").nth(1))
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or("?")
            .to_owned();
        let machine = machines
            .lines()
            .find(|l| l.trim_end().ends_with("(default)"))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or("?")
            .to_owned();
        Self { version, machine }
    }

    /// Whether a capture taken under `self` can be brought back under `host`: the same default
    /// machine type (the device states name it; a qemu of another version has another).
    pub fn replays_on(&self, host: &Qemu) -> bool {
        self.machine == host.machine && self.machine != "?"
    }
}

/// A template a disk is layered on, as the store names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TemplateRef {
    /// Its name in the store (`<repo>:<template>:<version>`).
    pub store_name: String,
    /// Its sha1.
    pub hash: String,
}

impl TemplateRef {
    /// The repository, template and version of its store name.
    pub fn parts(&self) -> Option<(&str, &str, &str)> {
        let mut it = self.store_name.splitn(3, ':');
        Some((it.next()?, it.next()?, it.next()?))
    }
}

/// A captured disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedDisk {
    /// Its member in the artefact (`disks/<vm>-<dev>.qcow2`).
    pub file: String,
    /// The template it is layered on (none: standalone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateRef>,
}

/// A captured VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapturedVm {
    /// Its memory, MiB.
    pub memory_mib: u64,
    /// What it ran under (`tcg`, `kvm`): it goes on under the same.
    pub accel: String,
    /// Its disks, by index in its record.
    pub disks: BTreeMap<usize, CapturedDisk>,
}

/// `capture.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// The lago that wrote it.
    pub lago: String,
    /// The capture's name.
    pub name: String,
    /// The prefix it was taken of (the replayed prefix's name).
    pub prefix: String,
    /// When (RFC 3339).
    pub created: String,
    /// The qemu it needs.
    pub qemu: Qemu,
    /// Whether its disks are standalone (else layered on templates).
    pub standalone: bool,
    /// How far apart the VMs were paused, ms.
    pub pause_spread_ms: f64,
    /// The init file's member, when it holds one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_file: Option<String>,
    /// Its VMs.
    pub vms: BTreeMap<String, CapturedVm>,
}

impl Manifest {
    /// The templates its disks are layered on, each once.
    pub fn templates(&self) -> Vec<TemplateRef> {
        let mut all: Vec<TemplateRef> =
            self.vms.values().flat_map(|v| v.disks.values()).filter_map(|d| d.template.clone()).collect();
        all.sort();
        all.dedup();
        all
    }

    /// Reads it from `text` (the manifest of `artefact`), with what is wrong when it cannot.
    pub fn parse(text: &str, artefact: &Path) -> Result<Self, super::CaptureError> {
        let corrupt = |reason: String| super::CaptureError::Corrupt { artefact: artefact.to_owned(), reason };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| corrupt(format!("its {MANIFEST} is not JSON: {e}")))?;
        let format = value.get("format").and_then(serde_json::Value::as_u64);
        match format {
            Some(f) if f > u64::from(FORMAT) => {
                return Err(corrupt(format!(
                    "it was written by a newer lago (format {f}; this lago reads format {FORMAT})"
                )));
            }
            None => return Err(corrupt(format!("its {MANIFEST} has no `format`"))),
            Some(_) => {}
        }
        let manifest: Self =
            serde_json::from_value(value).map_err(|e| corrupt(format!("its {MANIFEST} is not lago's: {e}")))?;
        for (vm, v) in &manifest.vms {
            crate::prefix::workdir::check_prefix_name(vm)
                .map_err(|_| corrupt(format!("its {MANIFEST} names a VM {vm:?}")))?;
            for d in v.disks.values() {
                if !safe_member(&d.file) {
                    return Err(corrupt(format!("VM {vm}'s disk is {:?}, outside the artefact", d.file)));
                }
            }
        }
        crate::prefix::workdir::check_prefix_name(&manifest.prefix)
            .map_err(|_| corrupt(format!("its {MANIFEST} names a prefix {:?}", manifest.prefix)))?;
        Ok(manifest)
    }
}

/// Whether `member` is a relative path inside the artefact (no `..`, not absolute).
pub fn safe_member(member: &str) -> bool {
    let p = Path::new(member);
    !member.is_empty() && p.components().all(|c| matches!(c, std::path::Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MACHINES: &str = "Supported machines are:\n\
        pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-10.0)\n\
        pc-i440fx-10.0       Standard PC (i440FX + PIIX, 1996) (default)\n\
        q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-10.0)\n";

    #[test]
    fn the_host_qemu_is_its_version_and_default_machine() {
        let q = Qemu::parse("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)\nCopyright ...\n", MACHINES);
        assert_eq!(q, Qemu { version: "10.0.2".into(), machine: "pc-i440fx-10.0".into() });
        assert_eq!(Qemu::parse("", ""), Qemu { version: "?".into(), machine: "?".into() });
    }

    #[test]
    fn a_capture_replays_under_the_same_machine_type_only() {
        let at = |v: &str, m: &str| Qemu { version: v.into(), machine: m.into() };
        let need = at("10.0.2", "pc-i440fx-10.0");
        assert!(need.replays_on(&at("10.0.2", "pc-i440fx-10.0")));
        assert!(need.replays_on(&at("10.0.7", "pc-i440fx-10.0")));
        assert!(!need.replays_on(&at("9.2.0", "pc-i440fx-9.2")));
        assert!(!at("?", "?").replays_on(&at("?", "?")));
    }

    fn manifest() -> Manifest {
        let disk = |f: &str, t: Option<&str>| CapturedDisk {
            file: f.into(),
            template: t.map(|n| TemplateRef { store_name: n.into(), hash: "ab".into() }),
        };
        let vm = |disks: Vec<(usize, CapturedDisk)>| CapturedVm {
            memory_mib: 256,
            accel: "tcg".into(),
            disks: disks.into_iter().collect(),
        };
        Manifest {
            format: FORMAT,
            lago: "0.1.0".into(),
            name: "c".into(),
            prefix: "default".into(),
            created: "2026-12-07T21:00:00Z".into(),
            qemu: Qemu { version: "10.0.2".into(), machine: "pc-i440fx-10.0".into() },
            standalone: false,
            pause_spread_ms: 0.4,
            init_file: Some("init/LagoInitFile".into()),
            vms: [
                ("vm01".to_owned(), vm(vec![(0, disk("disks/vm01-vda.qcow2", Some("local:tiny:v1")))])),
                (
                    "vm02".to_owned(),
                    vm(vec![
                        (0, disk("disks/vm02-vda.qcow2", Some("local:tiny:v1"))),
                        (1, disk("disks/vm02-vdb.qcow2", None)),
                    ]),
                ),
            ]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn the_manifest_reads_back_and_names_each_template_once() {
        let m = manifest();
        let text = serde_json::to_string_pretty(&m).unwrap();
        assert_eq!(Manifest::parse(&text, Path::new("a")).unwrap(), m);
        let t = m.templates();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].parts(), Some(("local", "tiny", "v1")));
    }

    #[test]
    fn a_bad_manifest_says_what_is_wrong() {
        let err = |text: &str| Manifest::parse(text, Path::new("/x/a.lago-capture")).unwrap_err().to_string();
        assert!(err("{").contains("is not JSON"), "{}", err("{"));
        assert!(err("{}").contains("has no `format`"));
        assert!(err(r#"{"format": 99}"#).contains("newer lago (format 99"));
        assert!(err(r#"{"format": 1}"#).contains("is not lago's"));
        let mut m = manifest();
        m.vms.get_mut("vm01").unwrap().disks.get_mut(&0).unwrap().file = "../../etc/passwd".into();
        let e = err(&serde_json::to_string(&m).unwrap());
        assert!(e.contains("outside the artefact") && e.contains("/x/a.lago-capture"), "{e}");
    }
}
