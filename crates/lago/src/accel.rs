//! Hardware acceleration choice: `accel = auto | kvm | tcg` (`[lago] accel`, `LAGO_ACCEL`).

use std::path::Path;

/// Acceleration setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// KVM when `/dev/kvm` is usable, else TCG.
    Auto,
    /// KVM, always.
    Kvm,
    /// Software emulation.
    Tcg,
}

impl Accel {
    /// Parses the config value.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Accel::Auto),
            "kvm" => Some(Accel::Kvm),
            "tcg" => Some(Accel::Tcg),
            _ => None,
        }
    }

    /// KVM or TCG, deciding `auto` by whether `/dev/kvm` can be opened for reading and writing.
    pub fn resolve(self) -> Accel {
        match self {
            Accel::Auto if kvm_usable(Path::new("/dev/kvm")) => Accel::Kvm,
            Accel::Auto => Accel::Tcg,
            other => other,
        }
    }
}

/// Whether the KVM device can be opened read-write.
pub fn kvm_usable(dev: &Path) -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open(dev).is_ok()
}
