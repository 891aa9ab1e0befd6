//! The `local-qemu` provider: one `qemu-system-x86_64` per VM, outliving the CLI (DESIGN §2–§3).
//!
//! Each VM runs in its own process group with a QMP socket (`run/<vm>.qmp`), a pid file
//! (`run/<vm>.pid`), its serial console logged to `logs/<vm>.console.log` and served on
//! `run/<vm>.console`, a qemu-guest-agent port on `run/<vm>.qga`, and qemu's own messages in
//! `logs/<vm>.qemu.log`. NICs are datagram links to their network's switch (`switch.rs`), in
//! spec order; a last NIC on qemu's user-mode stack, the uplink, carries the SSH forward
//! (127.0.0.1 only) and, for VMs on `nat` networks when `vm_outbound` is on, outbound access.
//! [`qemu_argv`] is pure and snapshot-tested; [`launch`] is the only place that starts qemu.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Console, LaunchContext, NetUse, Provider, ProviderError, SnapshotOp, VmRecord, tail_file};
use crate::accel::Accel;
use crate::qmp::Qmp;
use crate::ssh::Target;

/// Files of one VM in the prefix.
pub fn vm_paths(prefix: &Path, vm: &str) -> (PathBuf, PathBuf, PathBuf) {
    (
        crate::prefix::socket_path(prefix, &format!("{vm}.qmp")),
        prefix.join(format!("run/{vm}.pid")),
        prefix.join(format!("logs/{vm}.console.log")),
    )
}

fn mac_of(ip: Ipv4Addr) -> String {
    crate::plan::mac_of(ip)
}

/// The qemu command line of a VM.
pub fn qemu_argv(vm: &VmRecord, ctx: &LaunchContext) -> Vec<String> {
    let (qmp, pid, console_log) = vm_paths(&ctx.prefix, &vm.name);
    let mut a: Vec<String> =
        vec!["-name".into(), format!("guest=lago-{}-{},process=lago-{}", ctx.env_id, vm.name, vm.name)];
    a.extend(["-nodefaults".into(), "-no-user-config".into(), "-display".into(), "none".into()]);
    // TCG runs all vCPUs of a VM on one thread: qemu 10.0's multi-threaded TCG loses a
    // timer interrupt's end now and then in a 2-vCPU guest (the vCPU halts with the
    // interrupt still in service and the guest hangs at boot) and aborts in
    // `iotlb_to_section`; one thread per VM costs a multi-vCPU guest about a tenth of its boot
    // time under TCG (a single-vCPU guest nothing), and VMs still run in parallel.
    let accel = if ctx.accel == Accel::Kvm { "kvm" } else { "tcg,thread=single" };
    // `init` refused what qemu cannot express; a hand-edited record falls back to the default CPU.
    let cpu = crate::cpu::qemu_cpu(vm.cpu_model.as_deref(), vm.cpu_custom.as_ref(), vm.vcpu, vm.memory, ctx.accel)
        .unwrap_or_else(|_| crate::cpu::plain(None, vm.vcpu, ctx.accel));
    a.extend(["-accel".into(), accel.into(), "-cpu".into(), cpu.cpu]);
    a.extend(["-m".into(), vm.memory.to_string(), "-smp".into(), cpu.smp]);
    a.extend(cpu.extra);
    a.extend([
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", qmp.display()),
        "-pidfile".into(),
        pid.display().to_string(),
    ]);
    a.extend([
        "-chardev".into(),
        format!(
            "socket,id=console,path={},server=on,wait=off,logfile={},logappend=on",
            crate::prefix::socket_path(&ctx.prefix, &format!("{}.console", vm.name)).display(),
            console_log.display()
        ),
        "-serial".into(),
        "chardev:console".into(),
    ]);
    a.extend(["-device".into(), "virtio-rng-pci".into()]);
    // The port qemu-guest-agent listens on, when the guest has one.
    a.extend([
        "-device".into(),
        "virtio-serial-pci,id=vser0".into(),
        "-chardev".into(),
        format!(
            "socket,id=qga,path={},server=on,wait=off",
            crate::prefix::socket_path(&ctx.prefix, &format!("{}.qga", vm.name)).display()
        ),
        "-device".into(),
        "virtserialport,bus=vser0.0,chardev=qga,name=org.qemu.guest_agent.0".into(),
    ]);
    // A template that carries its kernel boots it directly (no firmware boot loader, no
    // decompression: seconds under TCG); any other first disk boots through its own loader.
    if let Some(boot) = vm.direct_boot() {
        a.extend([
            "-kernel".into(),
            boot.kernel.display().to_string(),
            "-initrd".into(),
            boot.initrd.display().to_string(),
            "-append".into(),
            boot.cmdline,
        ]);
    }
    let mut scsi = false;
    for (i, d) in vm.disks.iter().enumerate() {
        let file = d.path.replace("$LAGO_PREFIX_PATH", &ctx.prefix.display().to_string());
        let iso = d.format == "iso";
        let format = if iso { "raw" } else { d.format.as_str() };
        let mut drive = format!("file={file},if=none,id=disk{i},format={format}");
        if iso {
            drive.push_str(",readonly=on,media=cdrom");
        } else {
            drive.push_str(",cache=writeback,discard=unmap");
        }
        a.extend(["-drive".into(), drive]);
        let boot = if i == 0 { ",bootindex=1" } else { "" };
        let device = if iso {
            format!("ide-cd,drive=disk{i}{boot}")
        } else if d.dev.starts_with("sd") {
            if !scsi {
                a.extend(["-device".into(), "virtio-scsi-pci,id=scsi0".into()]);
                scsi = true;
            }
            format!("scsi-hd,drive=disk{i},bus=scsi0.0,serial={}{boot}", i + 1)
        } else if d.dev.starts_with("hd") {
            format!("ide-hd,drive=disk{i}{boot}")
        } else {
            format!("virtio-blk-pci,drive=disk{i},serial={}{boot}", i + 1)
        };
        a.extend(["-device".into(), device]);
    }
    let seed = ctx.prefix.join(format!("images/{}-seed.img", vm.name));
    if seed.is_file() {
        a.extend(["-drive".into(), format!("file={},if=none,id=seed,format=raw,readonly=on", seed.display())]);
        a.extend(["-device".into(), "virtio-blk-pci,drive=seed".into()]);
    }
    for (i, nic) in vm.nics.iter().enumerate() {
        // A datagram link to the network's switch (lago's own, see `switch.rs`).
        let switch = crate::switch::paths(&ctx.prefix, &nic.net);
        a.extend([
            "-netdev".into(),
            format!(
                "dgram,id=net{i},local.type=unix,local.path={},remote.type=unix,remote.path={}",
                crate::switch::nic_socket(&ctx.prefix, &vm.name, i).display(),
                switch.socket.display()
            ),
        ]);
        let mut dev = format!("virtio-net-pci,netdev=net{i},romfile=");
        if let Some(ip) = nic.ip {
            dev.push_str(&format!(",mac={}", mac_of(ip)));
        }
        if let Some(mtu) = nic.mtu {
            dev.push_str(&format!(",host_mtu={mtu}"));
        }
        a.extend(["-device".into(), dev]);
    }
    let restrict = if ctx.outbound { "off" } else { "on" };
    a.extend([
        "-netdev".into(),
        format!("user,id=uplink,restrict={restrict},hostfwd=tcp:127.0.0.1:{}-:22", ctx.ssh_port),
    ]);
    a.extend([
        "-device".into(),
        format!("virtio-net-pci,netdev=uplink,mac={},romfile=", crate::bootstrap::uplink_mac(vm.ip(), ctx.index)),
    ]);
    a
}

/// Starts `program` (qemu-system-x86_64) for a VM and waits until its QMP socket answers. The
/// process runs in its own process group and outlives the caller; the returned handle tells how
/// it ended, if it ends while the caller still runs.
pub fn launch(program: &Path, vm: &VmRecord, ctx: &LaunchContext) -> Result<std::process::Child, ProviderError> {
    let (qmp, pid_file, _) = vm_paths(&ctx.prefix, &vm.name);
    let _ = std::fs::remove_file(&qmp);
    let _ = std::fs::remove_file(&pid_file);
    let log_path = ctx.prefix.join(format!("logs/{}.qemu.log", vm.name));
    let inv = crate::process::Invocation::new(&program.display().to_string()).args(qemu_argv(vm, ctx));
    let mut child = crate::process::spawn_detached(&inv, &log_path).map_err(|e| match e {
        crate::process::ProcessError::Log { path, source, .. } => ProviderError::Log { path, source },
        crate::process::ProcessError::Spawn { source, .. } => ProviderError::Spawn { vm: vm.name.clone(), source },
        other => ProviderError::Spawn { vm: vm.name.clone(), source: std::io::Error::other(other.to_string()) },
    })?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ProviderError::Exited {
                vm: vm.name.clone(),
                status: status.to_string(),
                log: tail_file(&log_path, 20),
            });
        }
        if qmp.exists() && Qmp::connect(&qmp, Duration::from_secs(5)).is_ok() {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ProviderError::NoQmp { vm: vm.name.clone(), qmp, secs: 30 });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A qemu this provider started: its process, and where its log stood before it started.
#[derive(Debug)]
struct Launched {
    child: std::process::Child,
    log_from: u64,
}

/// The `local-qemu` provider. It keeps the qemu processes it started, so that one that dies
/// while `start` waits for it is reported with its exit status, and what it says while it
/// boots is told from what earlier runs said.
#[derive(Debug)]
pub struct QemuProvider {
    program: PathBuf,
    children: std::sync::Mutex<std::collections::HashMap<String, Launched>>,
}

impl Default for QemuProvider {
    fn default() -> Self {
        Self::with_program(&crate::process::program_path("qemu-system-x86_64"))
    }
}

/// How long a qemu that has left the process list may take to become reapable: a
/// multi-threaded qemu that aborted (and dumps core) is gone from `/proc/<pid>/cmdline` before
/// its exit status can be collected.
const EXIT_STATUS_WAIT: Duration = Duration::from_secs(10);

impl QemuProvider {
    /// A provider that runs `program` as qemu-system-x86_64 (a stand-in in tests).
    pub fn with_program(program: &Path) -> Self {
        Self { program: program.to_owned(), children: std::sync::Mutex::default() }
    }

    /// The exit status of a qemu this provider started (`None` if another process started it;
    /// `Some(None)` if it has not ended within [`EXIT_STATUS_WAIT`]).
    fn exit_status(&self, vm: &str) -> Option<Option<std::process::ExitStatus>> {
        let deadline = std::time::Instant::now() + EXIT_STATUS_WAIT;
        loop {
            let status = {
                let mut children = self.children.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                children.get_mut(vm)?.child.try_wait().ok().flatten()
            };
            if status.is_some() || std::time::Instant::now() >= deadline {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What qemu wrote to the VM's log since this provider started it (the whole log otherwise).
    fn log_since_launch(&self, prefix: &Path, vm: &str) -> Vec<u8> {
        let from = {
            let children = self.children.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            children.get(vm).map_or(0, |l| l.log_from)
        };
        let log = std::fs::read(prefix.join(format!("logs/{vm}.qemu.log"))).unwrap_or_default();
        log.get(from as usize..).unwrap_or_default().to_vec()
    }

    /// One QMP command without arguments.
    fn qmp_simple(&self, prefix: &Path, vm: &VmRecord, command: &str) -> Result<(), ProviderError> {
        let (qmp, _, _) = vm_paths(prefix, &vm.name);
        let qerr = |source| ProviderError::Qmp { vm: vm.name.clone(), source };
        Qmp::connect(&qmp, Duration::from_secs(5)).map_err(qerr)?.execute(command, None).map_err(qerr)?;
        Ok(())
    }
}

impl Provider for QemuProvider {
    fn name(&self) -> &'static str {
        "local-qemu"
    }

    /// One switch per network (`switch.rs`), started or brought up to date.
    fn start_nets(&self, ctx: &LaunchContext, nets: &[NetUse]) -> Result<(), ProviderError> {
        let state = crate::runtime::State::load(&ctx.prefix).unwrap_or_default();
        for net in nets {
            crate::switch::ensure(&ctx.prefix, &crate::switch::config_for(&ctx.prefix, &net.name, &net.vms, &state))?;
        }
        Ok(())
    }

    fn stop_nets(&self, prefix: &Path, _env_id: &str, nets: &[NetUse]) -> Result<(), ProviderError> {
        for net in nets {
            crate::switch::stop(prefix, &net.name);
        }
        Ok(())
    }

    /// The switch of the network takes the new configuration (when it runs; it reads it at its
    /// next start otherwise).
    fn apply_net_faults(
        &self,
        prefix: &Path,
        net: &NetUse,
        state: &crate::runtime::State,
    ) -> Result<(), ProviderError> {
        let paths = crate::switch::paths(prefix, &net.name);
        if crate::switch::alive(&net.name, &paths.control) {
            crate::switch::ensure(prefix, &crate::switch::config_for(prefix, &net.name, &net.vms, state))?;
        }
        Ok(())
    }

    fn nets_up(&self, prefix: &Path, _env_id: &str, nets: &[NetUse]) -> Option<Vec<String>> {
        Some(
            nets.iter()
                .filter(|n| crate::switch::alive(&n.name, &crate::switch::paths(prefix, &n.name).control))
                .map(|n| n.name.clone())
                .collect(),
        )
    }

    fn start(&self, vm: &VmRecord, ctx: &LaunchContext) -> Result<(), ProviderError> {
        // qemu binds its ends of the links: none may be left from a qemu that was killed.
        for i in 0..vm.nics.len() {
            let _ = std::fs::remove_file(crate::switch::nic_socket(&ctx.prefix, &vm.name, i));
        }
        let log_from = std::fs::metadata(ctx.prefix.join(format!("logs/{}.qemu.log", vm.name))).map_or(0, |m| m.len());
        let child = launch(&self.program, vm, ctx)?;
        self.children
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(vm.name.clone(), Launched { child, log_from });
        Ok(())
    }

    /// QMP's `query-status`: a guest that KVM or qemu stopped (`internal-error`,
    /// `guest-panicked`, `io-error`, `shutdown`) cannot boot any more.
    fn boot_failure(&self, prefix: &Path, vm: &VmRecord) -> Option<super::BootFailure> {
        let (qmp, _, _) = vm_paths(prefix, &vm.name);
        let status = crate::accel::query_status(&qmp)?;
        if !crate::accel::STOPPED.contains(&status.as_str()) {
            return None;
        }
        let words = crate::accel::qemu_words(&self.log_since_launch(prefix, &vm.name), 3);
        let kvm = status == "internal-error" || words.iter().any(|w| w.contains("KVM"));
        Some(super::BootFailure { status, words, kvm })
    }

    fn hypervisor_report(&self, prefix: &Path, vm: &VmRecord) -> Option<String> {
        let (qmp, _, _) = vm_paths(prefix, &vm.name);
        let status = crate::accel::query_status(&qmp).unwrap_or_else(|| "unknown (QMP does not answer)".into());
        let log = crate::process::tail(&self.log_since_launch(prefix, &vm.name), 5);
        let said = if log.is_empty() { "nothing".into() } else { log.replace('\n', " / ") };
        Some(format!("qemu's status: {status}; qemu said: {said} (logs/{}.qemu.log)", vm.name))
    }

    fn why_stopped(&self, prefix: &Path, vm: &str) -> String {
        let how = match self.exit_status(vm) {
            Some(Some(s)) => format!("qemu exited ({s})"),
            Some(None) => format!("qemu is gone (its exit status did not come within {EXIT_STATUS_WAIT:?})"),
            None => "qemu is gone (its exit status is unknown: another process started it)".into(),
        };
        let log = crate::process::tail(&self.log_since_launch(prefix, vm), 10);
        if log.is_empty() { format!("{how}; logs/{vm}.qemu.log is empty") } else { format!("{how}; qemu said:\n{log}") }
    }

    fn running(&self, prefix: &Path, vms: &[VmRecord]) -> Vec<String> {
        crate::prefix::Prefix { path: prefix.to_owned() }
            .processes()
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| vms.iter().any(|v| v.name == *n))
            .collect()
    }

    fn target(&self, prefix: &Path, vm: &VmRecord, ssh_port: Option<u16>) -> Target {
        Target::local(prefix, &vm.name, &vm.ssh_user, ssh_port.unwrap_or(0))
    }

    /// QMP `quit`, then SIGKILL if qemu is still there after 5 s.
    fn kill(&self, prefix: &Path, vm: &VmRecord) {
        let vm = vm.name.as_str();
        let (qmp, pid_file, _) = vm_paths(prefix, vm);
        let pid: Option<i32> = std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse().ok());
        let quit = Qmp::connect(&qmp, Duration::from_secs(2)).is_ok_and(|mut q| q.execute("quit", None).is_ok());
        if let Some(pid) = pid {
            // Without its control socket, qemu is asked to end by SIGTERM instead.
            if !quit && crate::prefix::owns(pid, &pid_file) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while crate::prefix::owns(pid, &pid_file) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if crate::prefix::owns(pid, &pid_file) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
        Target::local(prefix, vm, "", 0).close();
        for f in [qmp, pid_file, prefix.join(format!("run/{vm}.console")), prefix.join(format!("run/{vm}.qga"))] {
            // (Through the short link or not, these are the same files in `run/`.)
            let _ = std::fs::remove_file(f);
        }
    }

    fn request_shutdown(&self, prefix: &Path, vm: &VmRecord) -> Result<(), ProviderError> {
        let (qmp, _, _) = vm_paths(prefix, &vm.name);
        let qerr = |source| ProviderError::Qmp { vm: vm.name.clone(), source };
        Qmp::connect(&qmp, Duration::from_secs(5)).map_err(qerr)?.execute("system_powerdown", None).map_err(qerr)?;
        Ok(())
    }

    /// QMP `set_link` on the NIC's netdev (`net<i>`).
    fn set_link(&self, prefix: &Path, vm: &VmRecord, nic: usize, up: bool) -> Result<(), ProviderError> {
        let (qmp, _, _) = vm_paths(prefix, &vm.name);
        let qerr = |source| ProviderError::Qmp { vm: vm.name.clone(), source };
        Qmp::connect(&qmp, Duration::from_secs(5))
            .map_err(qerr)?
            .execute("set_link", Some(serde_json::json!({"name": format!("net{nic}"), "up": up})))
            .map_err(qerr)?;
        Ok(())
    }

    /// A QMP job (`snapshot-save`, `snapshot-load`, `snapshot-delete`) on the VM's disks, memory
    /// and device state on the first disk, waited for.
    fn live_snapshot(
        &self,
        prefix: &Path,
        vm: &VmRecord,
        op: SnapshotOp,
        name: &str,
        disks: &[(usize, PathBuf, String)],
    ) -> Result<(), ProviderError> {
        let (command, with_state) = match op {
            SnapshotOp::Save => ("snapshot-save", true),
            SnapshotOp::Load => ("snapshot-load", true),
            SnapshotOp::Delete => ("snapshot-delete", false),
        };
        let job_err = |message: String| ProviderError::Job { vm: vm.name.clone(), job: command.to_owned(), message };
        let qerr = |source| ProviderError::Qmp { vm: vm.name.clone(), source };
        let (qmp_path, _, _) = vm_paths(prefix, &vm.name);
        let mut qmp = Qmp::connect(&qmp_path, Duration::from_secs(30)).map_err(qerr)?;
        let blocks = qmp.execute("query-block", None).map_err(qerr)?;
        let node_of = |i: usize| -> Option<String> {
            blocks.as_array()?.iter().find(|b| b["device"] == format!("disk{i}"))?["inserted"]["node-name"]
                .as_str()
                .map(str::to_owned)
        };
        let nodes: Vec<String> = disks.iter().filter_map(|(i, _, _)| node_of(*i)).collect();
        if nodes.len() != disks.len() || nodes.is_empty() {
            return Err(job_err(format!("qemu does not show every disk of the VM: {blocks}")));
        }
        let job_id = format!("lago-{command}-{name}");
        let mut args = json!({"job-id": job_id, "tag": name, "devices": nodes});
        if with_state {
            args["vmstate"] = json!(nodes[0]);
        }
        qmp.execute(command, Some(args)).map_err(qerr)?;
        let deadline = Instant::now() + JOB_TIMEOUT;
        loop {
            let jobs = qmp.execute("query-jobs", None).map_err(qerr)?;
            let job = jobs.as_array().and_then(|a| a.iter().find(|j| j["id"] == job_id)).cloned();
            match job {
                Some(j) if j["status"] == "concluded" => {
                    let _ = qmp.execute("job-dismiss", Some(json!({"id": job_id})));
                    return match j.get("error").and_then(Value::as_str) {
                        Some(message) => Err(job_err(message.to_owned())),
                        None => Ok(()),
                    };
                }
                Some(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                Some(_) => {
                    let _ = qmp.execute("job-cancel", Some(json!({"id": job_id})));
                    return Err(job_err(format!("not done after {} s", JOB_TIMEOUT.as_secs())));
                }
                None => return Err(job_err("the job disappeared".into())),
            }
        }
    }

    fn console(&self, prefix: &Path, vm: &VmRecord) -> Result<Console, ProviderError> {
        Ok(Console::Socket(crate::prefix::socket_path(prefix, &format!("{}.console", vm.name))))
    }

    fn pause(&self, prefix: &Path, vm: &VmRecord) -> Result<(), ProviderError> {
        self.qmp_simple(prefix, vm, "stop")
    }

    fn resume(&self, prefix: &Path, vm: &VmRecord) -> Result<(), ProviderError> {
        self.qmp_simple(prefix, vm, "cont")
    }

    fn guest_agent(
        &self,
        prefix: &Path,
        vm: &VmRecord,
        command: &Value,
        timeout: Duration,
    ) -> Result<Value, ProviderError> {
        let path = crate::prefix::socket_path(prefix, &format!("{}.qga", vm.name));
        let err = |e: std::io::Error| ProviderError::Qmp {
            vm: vm.name.clone(),
            source: crate::qmp::QmpError::Io { path: path.clone(), source: e },
        };
        // The agent opens its port when it runs: a closed port is an answer at once.
        let (qmp, _, _) = vm_paths(prefix, &vm.name);
        if let Ok(chardevs) =
            Qmp::connect(&qmp, Duration::from_secs(5)).and_then(|mut q| q.execute("query-chardev", None))
            && chardevs.as_array().is_some_and(|c| c.iter().any(|d| d["label"] == "qga" && d["frontend-open"] == false))
        {
            return Err(ProviderError::Job {
                vm: vm.name.clone(),
                job: "guest agent command".into(),
                message: "no guest agent runs in the VM".into(),
            });
        }
        guest_agent_request(&path, command, timeout).map_err(err)?.ok_or_else(|| ProviderError::Job {
            vm: vm.name.clone(),
            job: "guest agent command".into(),
            message: "no answer (is qemu-guest-agent running in the VM?)".into(),
        })
    }
}

/// Longest a snapshot job may take.
const JOB_TIMEOUT: Duration = Duration::from_secs(600);

/// Sends one command to a qemu-guest-agent socket and returns the reply's `return` (`None` when
/// the agent does not answer within `timeout`). A `guest-sync` first discards any stale reply.
fn guest_agent_request(path: &Path, command: &Value, timeout: Duration) -> std::io::Result<Option<Value>> {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(path)?;
    stream.set_read_timeout(Some(timeout))?;
    let id = u32::from(std::process::id() as u16) * 1000 + 7;
    writeln!(stream, "{}", json!({"execute": "guest-sync", "arguments": {"id": id}}))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if serde_json::from_str::<Value>(line.trim()).is_ok_and(|v| v["return"] == json!(id)) {
            break;
        }
    }
    writeln!(stream, "{command}")?;
    line.clear();
    match reader.read_line(&mut line) {
        Ok(0) | Err(_) => Ok(None),
        Ok(_) => Ok(serde_json::from_str::<Value>(line.trim()).ok().map(|v| v.get("return").cloned().unwrap_or(v))),
    }
}

/// The SSH port of a running VM, read from its qemu's command line (`hostfwd=tcp:127.0.0.1:PORT-:22`).
pub fn ssh_port_of(prefix: &Path, vm: &str) -> Option<u16> {
    let pid_file = prefix.join(format!("run/{vm}.pid"));
    let pid = crate::prefix::running_pid(&pid_file)?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    cmdline.split(|b| *b == 0).find_map(|arg| {
        let arg = std::str::from_utf8(arg).ok()?;
        let rest = &arg[arg.find("hostfwd=tcp:127.0.0.1:")? + "hostfwd=tcp:127.0.0.1:".len()..];
        rest.split('-').next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_status_of_a_qemu_that_is_still_ending_is_waited_for() {
        let provider = QemuProvider::default();
        assert_eq!(provider.exit_status("vm01"), None, "not started by this provider");
        let child = std::process::Command::new("sh").args(["-c", "sleep 0.3; kill -ABRT $$"]).spawn().unwrap();
        provider.children.lock().unwrap().insert("vm01".into(), Launched { child, log_from: 0 });
        let status = provider.exit_status("vm01").flatten().expect("an exit status");
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(6), "{status}");
    }

    #[test]
    fn a_guest_that_kvm_stopped_is_seen_at_once_with_qemus_words() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("p");
        for d in ["run", "logs"] {
            std::fs::create_dir_all(prefix.join(d)).unwrap();
        }
        // What an earlier run of the VM said is not this run's.
        std::fs::write(prefix.join("logs/vm01.qemu.log"), "qemu-system-x86_64: an old complaint\n").unwrap();
        let provider = QemuProvider::with_program(&crate::accel::tests::stand_in_qemu(dir.path(), "internal-error"));
        let vm: VmRecord = serde_json::from_value(json!({"name": "vm01", "nics": [], "disks": []})).unwrap();
        let ctx = LaunchContext {
            prefix: prefix.clone(),
            env_id: "0123abcd".into(),
            accel: Accel::Kvm,
            ssh_port: 2222,
            outbound: false,
            index: 0,
        };
        let t = Instant::now();
        provider.start(&vm, &ctx).unwrap();
        let failure = loop {
            if let Some(f) = provider.boot_failure(&prefix, &vm) {
                break f;
            }
            assert!(t.elapsed() < Duration::from_secs(5), "not seen within 5 s");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(failure.status, "internal-error");
        assert!(failure.kvm);
        assert_eq!(failure.words, ["KVM internal error. Suberror: 1", "emulation failure"]);
        let report = provider.hypervisor_report(&prefix, &vm).unwrap();
        assert!(report.starts_with("qemu's status: internal-error; qemu said: KVM internal error."), "{report}");
        assert!(!report.contains("old complaint"), "{report}");
        provider.kill(&prefix, &vm);
        assert!(provider.running(&prefix, std::slice::from_ref(&vm)).is_empty());
    }

    #[test]
    fn a_template_that_carries_its_kernel_is_booted_directly() {
        let dir = tempfile::tempdir().unwrap();
        let (kernel, initrd) = (dir.path().join("t.vmlinux"), dir.path().join("t.initrd"));
        let record = |root: &str| -> VmRecord {
            serde_json::from_value(json!({"name": "vm01", "nics": [], "disks": [
                {"path": root, "dev": "vda", "format": "qcow2", "metadata": {"distro": "lago-tiny",
                 "boot": {"kernel": kernel, "initrd": initrd, "cmdline": "root=LABEL=lago-root rw"}}}]}))
            .unwrap()
        };
        let ctx = LaunchContext {
            prefix: dir.path().to_owned(),
            env_id: "0123abcd".into(),
            accel: Accel::Tcg,
            ssh_port: 2222,
            outbound: false,
            index: 0,
        };
        // Files gone from the store: the disk's own boot loader.
        let argv = qemu_argv(&record("/w/root.qcow2"), &ctx);
        assert!(!argv.contains(&"-kernel".to_owned()), "{argv:?}");
        std::fs::write(&kernel, b"").unwrap();
        std::fs::write(&initrd, b"").unwrap();
        let argv = qemu_argv(&record("/w/root.qcow2"), &ctx);
        let at = argv.iter().position(|a| a == "-kernel").expect("direct boot");
        assert_eq!(
            argv[at..at + 6],
            [
                "-kernel".to_owned(),
                kernel.display().to_string(),
                "-initrd".into(),
                initrd.display().to_string(),
                "-append".into(),
                "root=LABEL=lago-root rw".into()
            ]
        );
        // The disk stays first in the boot order, for a guest that reboots through firmware.
        assert!(argv.iter().any(|a| a.ends_with("bootindex=1")), "{argv:?}");
    }

    #[test]
    fn argv_of_a_vm_with_two_nics_and_three_disks() {
        let vm: VmRecord = serde_json::from_str(
            r#"{"name": "vm01", "memory": 256, "vcpu": "2", "mgmt_net": "lago", "ssh-user": "root",
                "nics": [{"net": "lago", "ip": "192.168.200.2"}, {"net": "storage", "ip": "192.168.201.2", "mtu": 9000}],
                "disks": [{"path": "$LAGO_PREFIX_PATH/images/vm01_root.qcow2", "dev": "vda", "format": "qcow2"},
                          {"path": "/data/extra.raw", "dev": "sdb", "format": "raw"},
                          {"path": "/isos/x.iso", "dev": "hdc", "format": "iso"}]}"#,
        )
        .unwrap();
        let ctx = LaunchContext {
            prefix: "/w/.lago/default".into(),
            env_id: "0123abcd".into(),
            accel: Accel::Tcg,
            ssh_port: 2222,
            outbound: false,
            index: 0,
        };
        insta::assert_snapshot!(qemu_argv(&vm, &ctx).join("\n"));
    }

    /// `cpu_custom` as the documentation writes it (reference §6.3) on a KVM host.
    #[test]
    fn argv_of_a_vm_with_cpu_custom() {
        let vm: VmRecord = serde_json::from_str(
            r##"{"name": "vm-el73", "memory": 4096, "vcpu": 2, "mgmt_net": "lago",
                "cpu_custom": {"@mode": "custom", "@match": "exact",
                    "model": {"@fallback": "allow", "#text": "Westmere"},
                    "feature": {"@policy": "optional", "@name": "vmx"},
                    "numa": {"cell": [{"@id": 0, "@cpus": 0, "@memory": 2048, "@unit": "MiB"},
                                      {"@id": 1, "@cpus": 1, "@memory": 2048, "@unit": "MiB"}]}},
                "nics": [], "disks": []}"##,
        )
        .unwrap();
        let ctx = LaunchContext {
            prefix: "/w/.lago/default".into(),
            env_id: "0123abcd".into(),
            accel: Accel::Kvm,
            ssh_port: 2222,
            outbound: false,
            index: 0,
        };
        let argv = qemu_argv(&vm, &ctx);
        let cpu: Vec<&String> = argv.iter().skip_while(|a| *a != "-accel").take_while(|a| *a != "-qmp").collect();
        insta::assert_snapshot!(cpu.iter().map(|a| a.as_str()).collect::<Vec<_>>().join("\n"), @"
        -accel
        kvm
        -cpu
        Westmere,vmx=on
        -m
        4096
        -smp
        2,sockets=2,cores=1,threads=1
        -object
        memory-backend-ram,id=lago-numa0,size=2097152K
        -numa
        node,nodeid=0,cpus=0,memdev=lago-numa0
        -object
        memory-backend-ram,id=lago-numa1,size=2097152K
        -numa
        node,nodeid=1,cpus=1,memdev=lago-numa1
        ");
    }
}
