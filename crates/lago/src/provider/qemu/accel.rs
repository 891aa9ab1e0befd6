//! The KVM probe that decides `accel = auto` ([`crate::config::Accel`]).
//!
//! `auto` means KVM only where a KVM guest of the kind lago runs actually comes up. On some hosts
//! `/dev/kvm` opens and simple guests run, but real ones do not: nested virtualisation on cloud
//! VMs and CI runners (a `kvm-pvm` host runs the firmware, then hangs a 64-bit Linux kernel or
//! stops it with `KVM internal error`), or hosts where qemu aborts setting an MSR. [`probe_kvm`]
//! finds out in two steps: qemu's firmware under KVM must print its banner on the debug port (a
//! cheap first filter), then a Linux kernel (a template's direct-boot kernel, else the host's)
//! must reach user space under KVM with the CPU model VMs get (`-cpu host`): the kernel boots an
//! initramfs lago writes, whose `/init` prints [`MARKER`] on the serial console and exits.
//!
//! Verdicts are cached in lago's state directory ([`KvmVerdicts`], `kvm-probe.json`) per boot
//! of the host, qemu binary and kernel, so only the first `auto` start after a reboot, a qemu
//! upgrade or a new kernel pays for the probe (well under a second where KVM works, its timeout
//! where guests hang). A VM whose KVM boot fails anyway turns the verdict to unusable for the
//! rest of the host's boot ([`KvmVerdicts::demote`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::elf::{self, Segment};
use crate::config::Accel;
use crate::host::process::Invocation;

/// The outcome of a KVM probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvmProbe {
    /// Whether a KVM guest came up.
    pub usable: bool,
    /// What was seen, in one line: `a Linux guest reached user space under KVM in 0.6 s`,
    /// `/dev/kvm is missing`, ...
    pub reason: String,
    /// What it was seen on: the host's KVM module, qemu's own words, the guest's last console
    /// line, qemu's status.
    #[serde(default)]
    pub evidence: Vec<String>,
}

impl KvmProbe {
    fn no(reason: impl Into<String>, evidence: Vec<String>) -> Self {
        Self { usable: false, reason: reason.into(), evidence }
    }
}

/// The device lago opens for KVM.
pub const KVM_DEVICE: &str = "/dev/kvm";
/// What the probe's `/init` prints once the kernel reached user space.
pub const MARKER: &str = "LAGO-KVM-PROBE: user space reached";
const FIRMWARE_BANNER: &[u8] = b"SeaBIOS";
const FIRMWARE_TIMEOUT: Duration = Duration::from_secs(4);
/// How long a Linux guest may take to reach user space under KVM: well under a second where KVM
/// works; longer means the guest hangs (or the host is too slow for KVM to be worth it).
pub const LINUX_TIMEOUT: Duration = Duration::from_secs(8);

/// What a probe runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSubject {
    /// qemu-system-x86_64.
    pub qemu: PathBuf,
    /// The kernel to boot (an uncompressed `vmlinux` with a PVH entry, or a bzImage); `None`:
    /// the firmware only.
    pub kernel: Option<PathBuf>,
    /// The KVM device.
    pub device: PathBuf,
}

/// The host's KVM modules (`kvm_intel`, `kvm_amd`, `kvm_pvm`...), from `/sys/module`.
pub fn kvm_modules() -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir("/sys/module")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("kvm_"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// What lets this user open `device` (a KVM device that opens for root only, or for a group).
pub fn device_access_advice(device: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(device) else {
        return "enable virtualization in the firmware and load `kvm_intel` or `kvm_amd`, or keep TCG".into();
    };
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(meta.gid())).ok().flatten().map(|g| g.name);
    match group {
        Some(g) if meta.mode() & 0o060 == 0o060 && g != "root" => {
            format!("add your user to the `{g}` group (`sudo adduser $USER {g}`, then log in again), or keep TCG")
        }
        _ => format!(
            "{} is for root only here (mode {:04o}): a udev rule giving it to group `kvm` (mode 0660) opens it to that group's users; or keep TCG",
            device.display(),
            meta.mode() & 0o7777
        ),
    }
}

/// Probes KVM: the device, the firmware, then (when a kernel is given) Linux to user space.
pub fn probe_kvm(subject: &ProbeSubject) -> KvmProbe {
    let dev = subject.device.display();
    if !subject.device.exists() {
        return KvmProbe::no(format!("{dev} is missing"), Vec::new());
    }
    let mut evidence = Vec::new();
    let modules = kvm_modules();
    if !modules.is_empty() {
        evidence.push(format!("host KVM module: {}", modules.join(", ")));
    }
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(&subject.device) {
        return KvmProbe::no(format!("{dev} cannot be opened for reading and writing ({e})"), evidence);
    }
    if let Err(why) = firmware_runs(&subject.qemu, "kvm", "host") {
        evidence.extend(why.evidence);
        return KvmProbe::no(format!("a KVM guest's firmware did not start: {}", why.reason), evidence);
    }
    let Some(kernel) = &subject.kernel else {
        return KvmProbe {
            usable: true,
            reason: "a KVM guest's firmware started (no Linux kernel was found to try: build a template, or install linux-image-amd64)".into(),
            evidence,
        };
    };
    evidence.push(format!("kernel tried: {}", kernel.display()));
    match linux_runs(&subject.qemu, Accel::Kvm, kernel, LINUX_TIMEOUT) {
        Ok(took) => KvmProbe {
            usable: true,
            reason: format!("a Linux guest reached user space under KVM in {:.1} s", took.as_secs_f64()),
            evidence,
        },
        Err(why) => {
            evidence.extend(why.evidence);
            KvmProbe::no(format!("a Linux guest did not come up under KVM: {}", why.reason), evidence)
        }
    }
}

/// Why a probe guest did not come up, and what it was seen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeFailure {
    /// One line.
    pub reason: String,
    /// qemu's words, its status, the guest's console.
    pub evidence: Vec<String>,
}

impl ProbeFailure {
    fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), evidence: Vec::new() }
    }
}

/// The accelerator argument of qemu for `accel` (TCG on one thread, see `provider::qemu`).
fn accel_arg(accel: Accel) -> &'static str {
    if accel == Accel::Kvm { "kvm" } else { "tcg,thread=single" }
}

/// Runs qemu's firmware under `accel` with no disk and waits for its banner on the debug port
/// (SeaBIOS writes its log to I/O port 0x402). The guest is killed either way.
pub fn firmware_runs(qemu: &Path, accel: &str, cpu: &str) -> Result<(), ProbeFailure> {
    let dir =
        tempfile::tempdir().map_err(|e| ProbeFailure::new(format!("cannot create a temporary directory: {e}")))?;
    let log = dir.path().join("debugcon");
    let inv = Invocation::new(&qemu.display().to_string())
        .args(["-accel", accel, "-cpu", cpu, "-nodefaults", "-no-user-config", "-display", "none", "-m", "32"])
        .args(["-serial", "none", "-monitor", "none", "-chardev"])
        .arg(format!("file,id=dbg,path={}", log.display()))
        .args(["-device", "isa-debugcon,iobase=0x402,chardev=dbg"]);
    let seen = |_: &mut Watch| std::fs::read(&log).is_ok_and(|b| contains(&b, FIRMWARE_BANNER));
    watch_guest(&inv, dir.path(), FIRMWARE_TIMEOUT, seen).map(|_| ())
}

/// Boots `kernel` under `accel` (`-cpu host` under KVM, as lago's VMs) on the probe's
/// initramfs and waits up to `timeout` for [`MARKER`] on the serial console; returns how long
/// it took. qemu stopping the guest (`internal-error`, `guest-panicked`, seen through QMP) or
/// exiting ends the wait at once.
pub fn linux_runs(qemu: &Path, accel: Accel, kernel: &Path, timeout: Duration) -> Result<Duration, ProbeFailure> {
    let dir =
        tempfile::tempdir().map_err(|e| ProbeFailure::new(format!("cannot create a temporary directory: {e}")))?;
    let initrd = dir.path().join("probe.cpio");
    std::fs::write(&initrd, probe_initramfs())
        .map_err(|e| ProbeFailure::new(format!("cannot write {}: {e}", initrd.display())))?;
    let console = dir.path().join("console");
    let qmp = dir.path().join("qmp");
    let cpu = if accel == Accel::Kvm { "host" } else { "max" };
    let inv = Invocation::new(&qemu.display().to_string())
        .args(["-accel", accel_arg(accel), "-cpu", cpu, "-m", "256", "-smp", "1"])
        .args(["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", qmp.display()))
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1 rdinit=/init"]);
    let seen = |w: &mut Watch| {
        let text = std::fs::read(&console).unwrap_or_default();
        w.console = last_line(&text);
        contains(&text, MARKER.as_bytes())
    };
    let started = Instant::now();
    let mut watch = Watch { qmp: Some(qmp.clone()), ..Watch::default() };
    watch_with(&inv, dir.path(), timeout, seen, &mut watch).map(|()| started.elapsed())
}

/// What a probe watches besides its own sign of life.
#[derive(Debug, Default)]
struct Watch {
    /// The guest's QMP socket, asked for its status.
    qmp: Option<PathBuf>,
    /// The guest's last console line.
    console: Option<String>,
}

fn watch_guest(
    inv: &Invocation,
    dir: &Path,
    timeout: Duration,
    seen: impl FnMut(&mut Watch) -> bool,
) -> Result<(), ProbeFailure> {
    watch_with(inv, dir, timeout, seen, &mut Watch::default())
}

/// Starts `inv` (its output to `dir/qemu.log`) and waits until `seen`, qemu exits, QMP reports a
/// stopped guest or `timeout` passes; the guest is killed either way, and a failure carries
/// qemu's words, its last status and the guest's last console line.
fn watch_with(
    inv: &Invocation,
    dir: &Path,
    timeout: Duration,
    mut seen: impl FnMut(&mut Watch) -> bool,
    watch: &mut Watch,
) -> Result<(), ProbeFailure> {
    let log = dir.join("qemu.log");
    let mut child = crate::host::process::spawn_watched(inv, &log).map_err(|e| ProbeFailure::new(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    let mut status: Option<String> = None;
    let mut next_status = Instant::now() + Duration::from_millis(200);
    let outcome = loop {
        if seen(watch) {
            break Ok(());
        }
        if let Ok(Some(exit)) = child.try_wait() {
            // What it wrote before it ended counts.
            break if seen(watch) { Ok(()) } else { Err(format!("qemu exited ({exit})")) };
        }
        if let Some(qmp) = &watch.qmp
            && Instant::now() >= next_status
        {
            next_status = Instant::now() + Duration::from_millis(200);
            if let Some(s) = query_status(qmp) {
                if STOPPED.contains(&s.as_str()) {
                    status = Some(s.clone());
                    break Err(format!("qemu stopped the guest (status {s})"));
                }
                status = Some(s);
            }
        }
        if Instant::now() > deadline {
            break Err(format!("no sign of life within {} s (the guest hangs)", timeout.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    outcome.map_err(|reason| {
        let mut failure = ProbeFailure::new(reason);
        let said = qemu_words(&std::fs::read(&log).unwrap_or_default(), 3);
        if !said.is_empty() {
            failure.evidence.push(format!("qemu said: {}", said.join(" / ")));
        }
        if let Some(s) = &status {
            failure.evidence.push(format!("qemu's status: {s}"));
        }
        failure.evidence.push(match watch.console.take() {
            Some(line) => format!("guest's last console line: {line}"),
            None if watch.qmp.is_some() => "the guest's console stayed empty (its kernel runs with `quiet`)".into(),
            None => return failure,
        });
        failure
    })
}

/// QMP statuses of a guest that no longer runs although qemu does.
pub const STOPPED: &[&str] = &["internal-error", "guest-panicked", "io-error", "shutdown"];

/// A guest's QMP status (`running`, `internal-error`...), if its socket answers within a second.
pub fn query_status(qmp: &Path) -> Option<String> {
    let mut q = crate::host::qmp::Qmp::connect(qmp, Duration::from_secs(1)).ok()?;
    q.execute("query-status", None).ok()?.get("status")?.as_str().map(str::to_owned)
}

/// What qemu said, in up to `lines` lines: from the first line that names KVM or an error (or
/// its first line), leaving out its notice of the signal that ended it and the register dump and
/// extra data it prints after a KVM internal error.
pub fn qemu_words(log: &[u8], lines: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(log);
    // `RAX=...`, `CS =0010 ...`, `Code=24 5b ...`, `extra data[0]: 0x...`.
    let dump = |l: &str| {
        l.starts_with("extra data")
            || l.split_once('=').is_some_and(|(name, _)| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == ' ')
                    || name == "Code"
            })
    };
    let words: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("terminating on signal") && !dump(l))
        .map(|l| l.trim_start_matches("qemu-system-x86_64: ").to_owned())
        .collect();
    // The first lines name the failure (`KVM internal error. Suberror: 1`); register dumps follow.
    let first_words = words.iter().position(|l| l.contains("KVM") || l.contains("error")).unwrap_or(0);
    words.into_iter().skip(first_words).take(lines).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn last_line(text: &[u8]) -> Option<String> {
    String::from_utf8_lossy(text).lines().map(str::trim).rfind(|l| !l.is_empty()).map(str::to_owned)
}

/// The probe's initramfs: `/dev/console` and an `/init` that prints [`MARKER`] there.
pub fn probe_initramfs() -> Vec<u8> {
    let mut cpio = crate::host::cpio::Cpio::default();
    cpio.dir("dev");
    cpio.char_device("dev/console", 0o600, 5, 1);
    cpio.file("init", 0o755, &marker_elf(MARKER));
    cpio.finish()
}

/// A static x86-64 Linux program that writes `message` and a newline to standard output, waits
/// 200 ms (so the serial line carries it out before the kernel panics at the end of init) and
/// exits. Written by hand: no tool or libc is needed to make it, and it runs on any x86-64 Linux.
pub fn marker_elf(message: &str) -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const CODE: usize = elf::HEADER + elf::PROGRAM_HEADER; // after the ELF header and the one program header
    let msg = format!("{message}\n");
    // write(1, msg, len); nanosleep(&ts, NULL); exit_group(0)
    let mut code: Vec<u8> = Vec::new();
    code.extend([0xb8, 1, 0, 0, 0]); // mov eax, 1 (write)
    code.extend([0xbf, 1, 0, 0, 0]); // mov edi, 1
    let msg_disp = code.len() + 3; // lea rsi, [rip + msg]
    code.extend([0x48, 0x8d, 0x35, 0, 0, 0, 0]);
    code.push(0xba); // mov edx, len
    code.extend((msg.len() as u32).to_le_bytes());
    code.extend([0x0f, 0x05]); // syscall
    code.extend([0xb8, 35, 0, 0, 0]); // mov eax, 35 (nanosleep)
    let ts_disp = code.len() + 3; // lea rdi, [rip + ts]
    code.extend([0x48, 0x8d, 0x3d, 0, 0, 0, 0]);
    code.extend([0x31, 0xf6]); // xor esi, esi
    code.extend([0x0f, 0x05]); // syscall
    code.extend([0xb8, 231, 0, 0, 0]); // mov eax, 231 (exit_group)
    code.extend([0x31, 0xff]); // xor edi, edi
    code.extend([0x0f, 0x05]); // syscall
    code.extend([0xeb, 0xfe]); // jmp . (never reached)
    while !code.len().is_multiple_of(8) {
        code.push(0);
    }
    let ts_at = code.len();
    code.extend(0u64.to_le_bytes()); // tv_sec
    code.extend(200_000_000u64.to_le_bytes()); // tv_nsec
    let msg_at = code.len();
    code.extend(msg.as_bytes());
    let patch = |code: &mut Vec<u8>, at: usize, target: usize| {
        let disp = (target as i64 - (at as i64 + 4)) as i32;
        code[at..at + 4].copy_from_slice(&disp.to_le_bytes());
    };
    patch(&mut code, msg_disp, msg_at);
    patch(&mut code, ts_disp, ts_at);

    let load = Segment { kind: 1, flags: 5, offset: 0, addr: BASE, size: CODE + code.len(), align: 0x1000 }; // PT_LOAD, R + X, the whole file
    elf::executable(BASE + CODE as u64, &[load], &code)
}

/// The kernel the KVM probe boots when the VMs offer none: the host's newest `/boot/vmlinuz-*`.
pub fn host_kernel() -> Option<PathBuf> {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")) && p.is_file())
        .collect();
    kernels.sort();
    kernels.pop()
}

/// What a cached verdict is valid for: this boot of the host and this qemu binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ProbeKey {
    boot_id: String,
    qemu: String,
}

/// `kvm-probe.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cache {
    key: Option<ProbeKey>,
    /// Probes of this boot, by kernel (`None`: the firmware only).
    #[serde(default)]
    probes: Vec<CachedProbe>,
    /// Set when a VM's KVM boot failed in this boot of the host: KVM is unusable, whatever a
    /// probe said.
    #[serde(default)]
    demoted: Option<KvmProbe>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CachedProbe {
    kernel: Option<String>,
    probe: KvmProbe,
}

/// A file's identity for the cache: its path, size and modification time.
fn stamp(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => format!("{}:{}:{}", path.display(), m.len(), m.mtime()),
        Err(_) => path.display().to_string(),
    }
}

/// The KVM verdicts of this host, cached in a directory (lago's state directory).
#[derive(Debug, Clone)]
pub struct KvmVerdicts {
    dir: PathBuf,
    qemu: Option<PathBuf>,
    device: PathBuf,
    boot_id: String,
    /// The host's kernel, booted by the probe when the VMs offer none.
    host_kernel: Option<PathBuf>,
}

impl KvmVerdicts {
    /// Verdicts kept in `dir`, about the qemu found on this host and `/dev/kvm`.
    pub fn new(dir: &Path) -> Self {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim().to_owned();
        Self {
            dir: dir.to_owned(),
            qemu: crate::host::process::find_program("qemu-system-x86_64"),
            device: KVM_DEVICE.into(),
            boot_id,
            host_kernel: host_kernel(),
        }
    }

    /// Verdicts about `qemu` and `device` (a stand-in qemu in tests), with no host kernel.
    pub fn with(dir: &Path, qemu: Option<PathBuf>, device: &Path) -> Self {
        Self { qemu, device: device.to_owned(), host_kernel: None, ..Self::new(dir) }
    }

    /// The kernel the probe boots for VMs whose template offers `direct` (a direct-boot
    /// kernel): that one, else the host's.
    pub fn kernel_for(&self, direct: Option<PathBuf>) -> Option<PathBuf> {
        direct.or_else(|| self.host_kernel.clone())
    }

    fn file(&self) -> PathBuf {
        self.dir.join("kvm-probe.json")
    }

    fn key(&self, qemu: &Path) -> ProbeKey {
        ProbeKey { boot_id: self.boot_id.clone(), qemu: stamp(qemu) }
    }

    /// The cache, if it is about this boot and qemu.
    fn load(&self, key: &ProbeKey) -> Cache {
        let cache: Option<Cache> = std::fs::read(self.file()).ok().and_then(|b| serde_json::from_slice(&b).ok());
        cache.filter(|c| c.key.as_ref() == Some(key)).unwrap_or_default()
    }

    fn store(&self, cache: &Cache) {
        // A cache that cannot be written only costs the next start another probe.
        let Ok(text) = serde_json::to_vec_pretty(cache) else { return };
        if std::fs::create_dir_all(&self.dir).is_ok() {
            let _ = crate::host::pathio::write_atomic(&self.file(), &text);
        }
    }

    /// KVM's verdict for a guest of `kernel` (the firmware only when `None`): the cached one, or
    /// a probe now (cached). A failed probe or a demotion of this boot is final, whatever the
    /// kernel.
    pub fn verdict(&self, kernel: Option<&Path>) -> KvmProbe {
        self.decide(kernel, false)
    }

    /// The cached verdict for a guest of `kernel`, if there is one (no probe runs).
    pub fn cached(&self, kernel: Option<&Path>) -> Option<KvmProbe> {
        let qemu = self.qemu.as_ref()?;
        let cache = self.load(&self.key(qemu));
        let kernel_stamp = kernel.map(stamp);
        cache
            .demoted
            .clone()
            .or_else(|| cache.probes.iter().find(|p| !p.probe.usable).map(|p| p.probe.clone()))
            .or_else(|| cache.probes.iter().find(|p| p.kernel == kernel_stamp).map(|p| p.probe.clone()))
    }

    /// Probes KVM now (`lago doctor`), replacing the cached probes of this boot; a VM's failure
    /// (a demotion) is kept.
    pub fn fresh(&self, kernel: Option<&Path>) -> KvmProbe {
        self.decide(kernel, true)
    }

    fn decide(&self, kernel: Option<&Path>, fresh: bool) -> KvmProbe {
        let Some(qemu) = &self.qemu else {
            return KvmProbe::no("`qemu-system-x86_64` is not installed", Vec::new());
        };
        if !fresh && let Some(known) = self.cached(kernel) {
            return known;
        }
        let key = self.key(qemu);
        let mut cache = self.load(&key);
        let kernel_stamp = kernel.map(stamp);
        let probe = probe_kvm(&ProbeSubject {
            qemu: qemu.clone(),
            kernel: kernel.map(Path::to_path_buf),
            device: self.device.clone(),
        });
        tracing::info!(usable = probe.usable, reason = %probe.reason, evidence = ?probe.evidence, "KVM probe");
        if fresh {
            cache.probes.clear();
        }
        cache.key = Some(key);
        cache.probes.retain(|p| p.kernel != kernel_stamp);
        cache.probes.push(CachedProbe { kernel: kernel_stamp, probe: probe.clone() });
        self.store(&cache);
        match (&cache.demoted, fresh) {
            // The probe passed, but a VM failed under KVM in this boot: that decides.
            (Some(demoted), true) if probe.usable => {
                let mut d = demoted.clone();
                d.evidence.push(format!("the probe itself passed: {}", probe.reason));
                d
            }
            _ => probe,
        }
    }

    /// A VM's KVM boot failed (`reason`, with qemu's words): KVM is unusable for the rest of
    /// this boot of the host.
    pub fn demote(&self, reason: &str, evidence: Vec<String>) {
        let Some(qemu) = &self.qemu else { return };
        let key = self.key(qemu);
        let mut cache = self.load(&key);
        cache.key = Some(key);
        cache.demoted = Some(KvmProbe::no(format!("a VM's KVM boot failed: {reason}"), evidence));
        self.store(&cache);
    }

    /// Records `probe` as the verdict for `kernel`, as a probe would (tests of what uses it).
    #[cfg(test)]
    pub(crate) fn seed_for_tests(&self, kernel: Option<&Path>, probe: KvmProbe) {
        let qemu = self.qemu.as_ref().expect("a qemu to key the verdict on");
        let mut cache = self.load(&self.key(qemu));
        cache.key = Some(self.key(qemu));
        cache.probes.push(CachedProbe { kernel: kernel.map(stamp), probe });
        self.store(&cache);
    }

    /// Whether libguestfs' appliance, which boots on the host's kernel, must be told to run
    /// under TCG (`LIBGUESTFS_BACKEND_SETTINGS=force_tcg`): its own `kvm:tcg` hangs on a host
    /// whose KVM does not run Linux guests.
    pub fn libguestfs_force_tcg(&self, setting: Accel) -> bool {
        self.resolve(setting, self.kernel_for(None).as_deref()) == Accel::Tcg
    }

    /// KVM or TCG for `setting`; `auto` asks [`Self::verdict`] about `kernel`.
    pub fn resolve(&self, setting: Accel, kernel: Option<&Path>) -> Accel {
        match setting {
            Accel::Auto if self.verdict(kernel).usable => Accel::Kvm,
            Accel::Auto => Accel::Tcg,
            other => other,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A stand-in for qemu-system-x86_64 (Python): it writes `-pidfile`, serves QMP on `-qmp`
    /// and behaves as `behaviour` says: `internal-error` (qemu's words of a KVM failure, and the
    /// status `internal-error`), `marker` (prints [`MARKER`] on `-serial file:` and exits),
    /// `banner` (SeaBIOS's banner on the debug port of the firmware probe, then as
    /// `internal-error`), `hang` (runs, says nothing).
    pub(crate) fn stand_in_qemu(dir: &Path, behaviour: &str) -> PathBuf {
        let path = dir.join("qemu-system-x86_64");
        let script = format!(
            r#"#!/usr/bin/env python3
import json, os, socket, sys, time
argv = sys.argv[1:]
def opt(name):
    return argv[argv.index(name) + 1] if name in argv else None
behaviour = {behaviour:?}
if opt("-pidfile"):
    open(opt("-pidfile"), "w").write(str(os.getpid()))
chardev = opt("-chardev") or ""
if "path=" in chardev and behaviour == "banner":
    open(chardev.split("path=")[1].split(",")[0], "w").write("SeaBIOS (version 1.16)\n")
serial = opt("-serial") or ""
if serial.startswith("file:") and behaviour == "marker":
    open(serial[5:], "w").write("[    0.1] booting\n{MARKER}\n")
    sys.exit(0)
if behaviour in ("internal-error", "banner") and "-kernel" in argv or behaviour == "internal-error":
    sys.stderr.write("KVM internal error. Suberror: 1\nextra data[0]: 0x0000000000000000\nemulation failure\nRAX=0000000000000000 RBX=0000000000000000\n")
    sys.stderr.flush()
status = "internal-error" if behaviour in ("internal-error", "banner") else "running"
qmp = opt("-qmp")
if not qmp:
    time.sleep(60)
    sys.exit(0)
path = qmp[len("unix:"):].split(",")[0]
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen(4)
while True:
    conn, _ = server.accept()
    f = conn.makefile("rw")
    f.write(json.dumps({{"QMP": {{"version": {{}}, "capabilities": []}}}}) + "\n")
    f.flush()
    for line in f:
        cmd = json.loads(line).get("execute")
        reply = {{"status": status, "running": status == "running"}} if cmd == "query-status" else {{}}
        f.write(json.dumps({{"return": reply}}) + "\n")
        f.flush()
        if cmd == "quit":
            sys.exit(0)
    conn.close()
"#
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn the_marker_program_runs_and_says_its_line() {
        // The probe's /init is an ordinary x86-64 Linux program: it runs here too.
        let dir = tempfile::tempdir().unwrap();
        let init = dir.path().join("init");
        std::fs::write(&init, marker_elf(MARKER)).unwrap();
        std::fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let out = std::process::Command::new(&init).output().unwrap();
        assert!(out.status.success(), "{:?}", out.status);
        assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{MARKER}\n"));
    }

    #[test]
    fn a_guest_stopped_by_kvm_fails_the_probe_at_once_with_qemus_words() {
        let dir = tempfile::tempdir().unwrap();
        let qemu = stand_in_qemu(dir.path(), "banner");
        let device = dir.path().join("kvm");
        std::fs::write(&device, "").unwrap();
        let kernel = dir.path().join("vmlinux");
        std::fs::write(&kernel, "").unwrap();
        let t = Instant::now();
        let probe = probe_kvm(&ProbeSubject { qemu, kernel: Some(kernel), device });
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(!probe.usable);
        assert_eq!(
            probe.reason,
            "a Linux guest did not come up under KVM: qemu stopped the guest (status internal-error)"
        );
        assert!(
            probe.evidence.iter().any(|e| e == "qemu said: KVM internal error. Suberror: 1 / emulation failure"),
            "{:?}",
            probe.evidence
        );
        assert!(
            probe.evidence.iter().any(|e| e.starts_with("the guest's console stayed empty")),
            "{:?}",
            probe.evidence
        );
    }

    #[test]
    fn a_guest_that_reaches_user_space_passes_and_the_firmware_alone_is_said_so() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("kvm");
        std::fs::write(&device, "").unwrap();
        let kernel = dir.path().join("vmlinux");
        std::fs::write(&kernel, "").unwrap();
        let took = linux_runs(&stand_in_qemu(dir.path(), "marker"), Accel::Kvm, &kernel, LINUX_TIMEOUT).unwrap();
        assert!(took < LINUX_TIMEOUT);
        let firmware = probe_kvm(&ProbeSubject {
            qemu: stand_in_qemu(dir.path(), "banner"),
            kernel: None,
            device: device.clone(),
        });
        assert!(firmware.usable && firmware.reason.contains("no Linux kernel was found"), "{firmware:?}");
        let missing =
            probe_kvm(&ProbeSubject { qemu: "/bin/false".into(), kernel: None, device: dir.path().join("nope") });
        assert_eq!(missing.reason, format!("{} is missing", dir.path().join("nope").display()));
    }

    #[test]
    fn verdicts_are_cached_per_kernel_and_a_demotion_is_final() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("kvm");
        std::fs::write(&device, "").unwrap();
        let kernel = dir.path().join("vmlinux");
        std::fs::write(&kernel, "").unwrap();
        let good = KvmVerdicts::with(dir.path(), Some(stand_in_qemu(dir.path(), "marker")), &device);
        // The firmware check of the stand-in in `marker` mode prints no banner: seed the cache
        // the way a passing probe leaves it.
        good.seed_for_tests(
            Some(&kernel),
            KvmProbe { usable: true, reason: "a Linux guest reached user space".into(), evidence: vec![] },
        );
        assert_eq!(good.resolve(Accel::Auto, Some(&kernel)), Accel::Kvm);
        assert_eq!(good.resolve(Accel::Tcg, Some(&kernel)), Accel::Tcg);
        good.demote("KVM internal error", vec!["qemu said: KVM internal error. Suberror: 1".into()]);
        assert_eq!(good.resolve(Accel::Auto, Some(&kernel)), Accel::Tcg);
        assert_eq!(good.resolve(Accel::Kvm, Some(&kernel)), Accel::Kvm, "kvm is the user's choice");
        let verdict = good.verdict(None);
        assert_eq!(verdict.reason, "a VM's KVM boot failed: KVM internal error");
        // Another boot of the host forgets it.
        let other_boot = KvmVerdicts { boot_id: "another".into(), ..good.clone() };
        assert!(other_boot.load(&other_boot.key(other_boot.qemu.as_ref().unwrap())).demoted.is_none());
    }

    #[test]
    fn qemus_words_skip_its_termination_notice() {
        let log = b"qemu-system-x86_64: terminating on signal 15 from pid 9\n";
        assert!(qemu_words(log, 3).is_empty());
        let log = b"warning: host doesn't support requested feature\nKVM internal error. Suberror: 1\nextra data[0]: 0x01\nemulation failure\nRAX=ffff888004840040 RBX=0000000000000000\nR8 =ffffea0000121008\nCS =0010 0000000000000000 ffffffff 00a09b00 DPL=0 CS64 [-RA]\nCode=24 5b 80 41\n";
        assert_eq!(qemu_words(log, 3), ["KVM internal error. Suberror: 1", "emulation failure"]);
    }
}
