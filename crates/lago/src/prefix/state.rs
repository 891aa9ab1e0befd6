//! Runtime state of a prefix (`run/state.json`, versioned, written atomically): forwarded SSH
//! ports, the VMs' other forwarded ports and the faults put on its networks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Version of `run/state.json` this build writes.
pub const STATE_VERSION: u32 = 1;

/// Problems with runtime state or leases.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] crate::host::pathio::PathError),
    /// The state file is from a newer lago.
    #[error(
        "{path} was written by a newer lago (state version {found}, this lago knows {STATE_VERSION}); upgrade lago"
    )]
    NewerState {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
    },
    /// The state file is not valid.
    #[error("{path} is not valid runtime state: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The lease lock could not be taken in time.
    #[error("Timed out waiting for the lease lock {path} (held by another lago)")]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
    },
}

use crate::host::pathio::at as io;

/// How a VM's link to a network is degraded (all zero: not at all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Impairment {
    /// What a round trip through this VM's link grows by, milliseconds (half each way).
    #[serde(default)]
    pub delay_ms: u32,
    /// Random variation of each way's delay, ± milliseconds.
    #[serde(default)]
    pub jitter_ms: u32,
    /// Share of frames lost each way, percent.
    #[serde(default)]
    pub loss_pct: f64,
    /// Rate each way, kbit/s (0: unlimited).
    #[serde(default)]
    pub rate_kbit: u32,
}

impl Impairment {
    /// Whether it changes anything.
    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }
}

/// A port of a VM forwarded from the host's loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {
    /// The port in the VM.
    pub guest: u16,
    /// The port on 127.0.0.1.
    pub host: u16,
    /// Added by `lago forward` (not by the init file's `forwards`).
    #[serde(default)]
    pub live: bool,
}

/// What runs, per VM and per network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Format version.
    pub version: u32,
    /// Forwarded SSH port of each VM, as of its last start.
    #[serde(default)]
    pub ssh_ports: BTreeMap<String, u16>,
    /// Partitions, by network: groups of VMs (`lago net partition`), until healed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partitions: BTreeMap<String, Vec<Vec<String>>>,
    /// Degraded links, by network and VM (`lago net degrade`), until restored.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub impairments: BTreeMap<String, BTreeMap<String, Impairment>>,
    /// Cut links, by VM: the indices of its NICs (`lago net cut`), until restored.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cut: BTreeMap<String, Vec<usize>>,
    /// Ports of VMs forwarded to the host's loopback, by VM: those of `lago forward` until the
    /// VM stops, the init file's also after (their host ports are taken again at the next start).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub forwards: BTreeMap<String, Vec<Forward>>,
    /// VMs whose clock could not be set after a revert, with why (until they start again).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clock: BTreeMap<String, String>,
    /// Where each `local-qemu` VM's memory is, as of its last start.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub memory: BTreeMap<String, MemoryUse>,
}

/// Where a VM's memory is, as of its last start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryUse {
    /// Its memory file on a tmpfs, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// The file is the VM's own, mapped shared (it can be frozen: `lago fork`); otherwise it is
    /// a frozen VM's, mapped privately (the VM is a copy).
    #[serde(default)]
    pub shared: bool,
    /// Why it has ordinary memory (no file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why_not: Option<String>,
}

impl MemoryUse {
    /// What `status --extra` says of it.
    pub fn describe(&self) -> String {
        match (&self.file, self.shared, &self.why_not) {
            (Some(f), true, _) => format!("file {}", f.display()),
            (Some(f), false, _) => format!("copy-on-write of the frozen {}", f.display()),
            (None, _, Some(why)) => format!("ordinary (cannot be forked: {why})"),
            (None, _, None) => "ordinary".into(),
        }
    }
}

impl State {
    /// Reads `run/state.json` (an absent file is an empty state).
    pub fn load(prefix: &Path) -> Result<Self, RuntimeError> {
        let path = crate::prefix::Layout::new(prefix).state();
        let text = match crate::host::pathio::read_text(&path, crate::host::pathio::MAX_STATE) {
            Ok(t) => t,
            Err(e) if e.source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State { version: STATE_VERSION, ..State::default() });
            }
            Err(e) => return Err(e.into()),
        };
        Self::parse(&text, &path)
    }

    /// Parses the text of `run/state.json` (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, RuntimeError> {
        let state: State = serde_json::from_str(text)
            .map_err(|e| RuntimeError::Corrupt { path: path.to_owned(), reason: e.to_string() })?;
        if state.version > STATE_VERSION {
            return Err(RuntimeError::NewerState { path: path.to_owned(), found: state.version });
        }
        Ok(state)
    }

    /// Writes `run/state.json` atomically.
    pub fn save(&self, prefix: &Path) -> Result<(), RuntimeError> {
        let dir = prefix.join("run");
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let path = dir.join("state.json");
        let state = State { version: STATE_VERSION, ..self.clone() };
        let text = serde_json::to_vec_pretty(&state).map_err(|e| io("write", &path)(e.into()))?;
        crate::host::pathio::write_atomic(&path, &text)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_roundtrip_and_version_check() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::load(dir.path()).unwrap();
        s.ssh_ports.insert("vm01".into(), 2222);
        s.partitions.insert("lago".into(), vec![vec!["vm01".into()], vec!["vm02".into()]]);
        s.save(dir.path()).unwrap();
        assert_eq!(State::load(dir.path()).unwrap(), State { version: STATE_VERSION, ..s });
        // A state written before faults existed (with the segment ports it had then) still reads.
        std::fs::write(
            dir.path().join("run/state.json"),
            r#"{"version": 1, "nets": {"lago": 40000}, "ssh_ports": {}}"#,
        )
        .unwrap();
        assert!(State::load(dir.path()).unwrap().partitions.is_empty());
        std::fs::write(dir.path().join("run/state.json"), r#"{"version": 99}"#).unwrap();
        assert!(matches!(State::load(dir.path()), Err(RuntimeError::NewerState { .. })));
    }
}
