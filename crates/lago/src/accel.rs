//! Hardware acceleration choice: `accel = auto | kvm | tcg` (`[lago] accel`, `LAGO_ACCEL`).
//!
//! `auto` means KVM only where a KVM guest actually runs: on some hosts `/dev/kvm` opens but
//! every guest hangs or aborts (`failed to set MSR 0x10a`). [`probe_kvm`] finds out by starting a
//! tiny guest (qemu's own firmware, no disk) under KVM and waiting for the firmware's first line on
//! its debug port. The answer is cached per boot of the host and per qemu binary
//! ([`cached_probe`]), so only the first `auto` start after a reboot or a qemu upgrade pays for it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Acceleration setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// KVM when a KVM guest starts on this host, else TCG.
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

    /// KVM or TCG; `auto` is decided by the (cached) KVM probe.
    pub fn resolve(self) -> Accel {
        match self {
            Accel::Auto if cached_probe(&default_cache_dir()).usable => Accel::Kvm,
            Accel::Auto => Accel::Tcg,
            other => other,
        }
    }
}

/// The outcome of a KVM probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvmProbe {
    /// Whether a KVM guest ran.
    pub usable: bool,
    /// What was seen: `a KVM guest started`, `/dev/kvm is missing`, qemu's last message...
    pub reason: String,
}

/// The device, the firmware's first words, and how long a guest may take to say them.
const KVM_DEVICE: &str = "/dev/kvm";
const FIRMWARE_BANNER: &[u8] = b"SeaBIOS";
const PROBE_TIMEOUT: Duration = Duration::from_secs(4);

/// Whether the KVM device can be opened read-write.
pub fn kvm_usable(dev: &Path) -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open(dev).is_ok()
}

/// Starts a guest under KVM (`-cpu host`, as lago's VMs) and reports whether its firmware ran.
pub fn probe_kvm(qemu: &str) -> KvmProbe {
    let dev = Path::new(KVM_DEVICE);
    if !dev.exists() {
        return KvmProbe { usable: false, reason: format!("{KVM_DEVICE} is missing") };
    }
    if !kvm_usable(dev) {
        return KvmProbe { usable: false, reason: format!("{KVM_DEVICE} cannot be opened for reading and writing") };
    }
    match firmware_runs(qemu, "kvm", "host") {
        Ok(()) => KvmProbe { usable: true, reason: "a KVM guest started".into() },
        Err(why) => KvmProbe { usable: false, reason: format!("a KVM guest did not start: {why}") },
    }
}

/// Runs qemu's firmware under `accel` with no disk and waits for its banner on the debug port
/// (SeaBIOS writes its log to I/O port 0x402). The guest is killed either way.
pub fn firmware_runs(qemu: &str, accel: &str, cpu: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let log = dir.path().join("debugcon");
    let mut child = Command::new(qemu)
        .args(["-accel", accel, "-cpu", cpu, "-nodefaults", "-no-user-config", "-display", "none", "-m", "32"])
        .args(["-serial", "none", "-monitor", "none", "-chardev"])
        .arg(format!("file,id=dbg,path={}", log.display()))
        .args(["-device", "isa-debugcon,iobase=0x402,chardev=dbg"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{qemu}`: {e}"))?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let outcome = loop {
        if std::fs::read(&log).is_ok_and(|b| b.windows(FIRMWARE_BANNER.len()).any(|w| w == FIRMWARE_BANNER)) {
            break Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("qemu exited ({status})"));
        }
        if Instant::now() > deadline {
            break Err(format!("no firmware output within {} s (the guest hangs)", PROBE_TIMEOUT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    outcome.map_err(|why| {
        // qemu's own words (`failed to set MSR 0x10a`), without its termination notice.
        let said = stderr.lines().rfind(|l| !l.contains("terminating on signal")).unwrap_or("").trim();
        if said.is_empty() {
            why
        } else {
            format!("{why}; qemu said: {}", said.trim_start_matches("qemu-system-x86_64: "))
        }
    })
}

/// Where the probe's answer is kept: lago's state directory.
pub fn default_cache_dir() -> PathBuf {
    crate::config::Sources::from_host().state_dir
}

/// What the cached answer is valid for: this boot of the host and this qemu binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ProbeKey {
    boot_id: String,
    qemu: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedProbe {
    key: ProbeKey,
    probe: KvmProbe,
}

fn probe_key(qemu: &Path) -> ProbeKey {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim().to_owned();
    let stamp = std::fs::metadata(qemu)
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            format!("{}:{}:{}", qemu.display(), m.len(), m.mtime())
        })
        .unwrap_or_else(|_| qemu.display().to_string());
    ProbeKey { boot_id, qemu: stamp }
}

/// The KVM probe's answer for this host: from `cache_dir/kvm-probe.json` when it was taken
/// since the last boot with the same qemu, else probed now (and cached).
pub fn cached_probe(cache_dir: &Path) -> KvmProbe {
    let Some(qemu) = find_program("qemu-system-x86_64") else {
        return KvmProbe { usable: false, reason: "`qemu-system-x86_64` is not installed".into() };
    };
    let key = probe_key(&qemu);
    let file = cache_dir.join("kvm-probe.json");
    if let Some(cached) = std::fs::read(&file).ok().and_then(|b| serde_json::from_slice::<CachedProbe>(&b).ok())
        && cached.key == key
    {
        return cached.probe;
    }
    let probe = probe_kvm(&qemu.display().to_string());
    tracing::info!(usable = probe.usable, reason = %probe.reason, "KVM probe");
    store_probe(cache_dir, key, &probe);
    probe
}

/// Probes KVM now, ignoring and replacing the cached answer (`lago doctor`).
pub fn fresh_probe(cache_dir: &Path) -> KvmProbe {
    let Some(qemu) = find_program("qemu-system-x86_64") else {
        return KvmProbe { usable: false, reason: "`qemu-system-x86_64` is not installed".into() };
    };
    let probe = probe_kvm(&qemu.display().to_string());
    store_probe(cache_dir, probe_key(&qemu), &probe);
    probe
}

fn store_probe(cache_dir: &Path, key: ProbeKey, probe: &KvmProbe) {
    // A cache that cannot be written only costs the next start another probe.
    let Ok(text) = serde_json::to_vec(&CachedProbe { key, probe: probe.clone() }) else { return };
    let _ = std::fs::create_dir_all(cache_dir).and_then(|()| tempfile::NamedTempFile::new_in(cache_dir)).and_then(
        |mut tmp| {
            std::io::Write::write_all(&mut tmp, &text)?;
            tmp.persist(cache_dir.join("kvm-probe.json")).map(|_| ()).map_err(|e| e.error)
        },
    );
}

/// The absolute path of `program` found on `PATH`, as a shell would run it.
pub fn find_program(program: &str) -> Option<PathBuf> {
    find_in_path(program, std::env::var_os("PATH").as_deref())
}

/// `program` looked up in the colon-separated `path` (a name with a slash is taken as it is).
pub fn find_in_path(program: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    std::env::split_paths(path?).map(|dir| dir.join(program)).find(|p| executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_the_given_path_only() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        assert_eq!(find_in_path("tool", Some(dir.path().as_os_str())), None, "not executable");
        std::fs::set_permissions(&tool, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let path = std::env::join_paths(["/nonexistent".as_ref(), dir.path()]).unwrap();
        assert_eq!(find_in_path("tool", Some(&path)), Some(tool.clone()));
        assert_eq!(find_in_path("tool", None), None);
        assert_eq!(find_in_path(&tool.display().to_string(), None), Some(tool));
    }

    #[test]
    fn a_cached_answer_is_used_only_for_the_same_boot_and_qemu() {
        let dir = tempfile::tempdir().unwrap();
        let key = ProbeKey { boot_id: "b1".into(), qemu: "/usr/bin/qemu:1:2".into() };
        let probe = KvmProbe { usable: true, reason: "a KVM guest started".into() };
        store_probe(dir.path(), key.clone(), &probe);
        let cached: CachedProbe =
            serde_json::from_slice(&std::fs::read(dir.path().join("kvm-probe.json")).unwrap()).unwrap();
        assert_eq!(cached.key, key);
        assert_eq!(cached.probe, probe);
        assert_ne!(cached.key, ProbeKey { boot_id: "b2".into(), ..key });
    }
}
