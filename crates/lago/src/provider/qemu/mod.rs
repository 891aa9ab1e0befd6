//! The `local-qemu` provider: one `qemu-system-x86_64` per VM, outliving the CLI (DESIGN §2–§3).
//!
//! Each VM runs in its own process group with a QMP socket (`run/<vm>.qmp`), a pid file
//! (`run/<vm>.pid`), its serial console logged to `logs/<vm>.console.log` and served on
//! `run/<vm>.console`, a qemu-guest-agent port on `run/<vm>.qga`, and qemu's own messages in
//! `logs/<vm>.qemu.log`. NICs are datagram links to their network's switch (`switch.rs`), in
//! spec order; a last NIC on qemu's user-mode stack, the uplink, carries the SSH forward
//! (127.0.0.1 only) and, for VMs on `nat` networks when `vm_outbound` is on, outbound access.
//! [`qemu_argv`] is pure and snapshot-tested; [`launch`] is the only place that starts qemu.

pub mod accel;
pub mod argv;
pub mod elf;
pub mod freeze;
pub mod switch;

pub use argv::qemu_argv;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Console, LaunchContext, NetUse, Provider, ProviderError, SnapshotOp, VmRecord, tail_file};
use crate::host::qmp::Qmp;
use crate::host::ssh::Target;
use crate::prefix::Layout;

/// Files of one VM in the prefix.
pub fn vm_paths(prefix: &Path, vm: &str) -> (PathBuf, PathBuf, PathBuf) {
    (
        crate::prefix::socket_path(prefix, &format!("{vm}.qmp")),
        Layout::new(prefix).pid(vm),
        Layout::new(prefix).console_log(vm),
    )
}

/// Starts `program` (qemu-system-x86_64) for a VM and waits until its QMP socket answers. The
/// process runs in its own process group and outlives the caller; the returned handle tells how
/// it ended, if it ends while the caller still runs.
pub fn launch(program: &Path, vm: &VmRecord, ctx: &LaunchContext) -> Result<std::process::Child, ProviderError> {
    let files = argv::Files::of(&vm.name, ctx);
    let (qmp, pid_file) = (files.qmp.clone(), files.pid.clone());
    crate::prefix::ensure_runtime_dir(&ctx.prefix)
        .map_err(|source| ProviderError::RuntimeDir { path: crate::prefix::runtime_dir(&ctx.prefix), source })?;
    let _ = std::fs::remove_file(&qmp);
    let _ = std::fs::remove_file(&pid_file);
    let log_path = files.qemu_log.clone();
    let inv = crate::host::process::Invocation::new(&program.display().to_string()).args(qemu_argv(vm, ctx));
    let mut child = crate::host::process::spawn_detached(&inv, &log_path).map_err(|e| match e {
        crate::host::process::ProcessError::Log { path, source, .. } => ProviderError::Log { path, source },
        crate::host::process::ProcessError::Spawn { source, .. } => {
            ProviderError::Spawn { vm: vm.name.clone(), source }
        }
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
        Self::with_program(&crate::host::process::program_path("qemu-system-x86_64"))
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
        let log = std::fs::read(Layout::new(prefix).qemu_log(vm)).unwrap_or_default();
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

    /// One switch per network (`switch.rs`), started or brought up to date, with the host leg
    /// `ctx` gives it.
    fn start_nets(&self, ctx: &LaunchContext, nets: &[NetUse]) -> Result<(), ProviderError> {
        let state = crate::prefix::state::State::load(&ctx.prefix).unwrap_or_default();
        for net in nets {
            let leg = ctx.host_legs.iter().find(|(n, _)| *n == net.name).map(|(_, l)| l.clone());
            crate::provider::qemu::switch::ensure(
                &ctx.prefix,
                &crate::provider::qemu::switch::config_for(&ctx.prefix, &net.name, &net.vms, &state, leg),
            )?;
        }
        Ok(())
    }

    fn stop_nets(&self, prefix: &Path, _env_id: &str, nets: &[NetUse]) -> Result<(), ProviderError> {
        for net in nets {
            crate::provider::qemu::switch::stop(prefix, &net.name);
        }
        Ok(())
    }

    /// The switch of the network takes the new configuration (when it runs; it reads it at its
    /// next start otherwise).
    fn apply_net_faults(
        &self,
        prefix: &Path,
        net: &NetUse,
        state: &crate::prefix::state::State,
    ) -> Result<(), ProviderError> {
        let paths = crate::provider::qemu::switch::paths(prefix, &net.name);
        if crate::provider::qemu::switch::alive(&net.name, &paths.control) {
            // The switch keeps the host leg it runs with.
            let leg = crate::provider::qemu::switch::Config::load(&paths.config).ok().and_then(|c| c.host_leg);
            crate::provider::qemu::switch::ensure(
                prefix,
                &crate::provider::qemu::switch::config_for(prefix, &net.name, &net.vms, state, leg),
            )?;
        }
        Ok(())
    }

    fn nets_up(&self, prefix: &Path, _env_id: &str, nets: &[NetUse]) -> Option<Vec<String>> {
        Some(
            nets.iter()
                .filter(|n| {
                    // Up while its process runs, even when it is too busy to answer a ping: a
                    // stop must not leave it behind.
                    let paths = crate::provider::qemu::switch::paths(prefix, &n.name);
                    crate::prefix::running_pid(&paths.pid).is_some()
                        || crate::provider::qemu::switch::alive(&n.name, &paths.control)
                })
                .map(|n| n.name.clone())
                .collect(),
        )
    }

    fn start(&self, vm: &VmRecord, ctx: &LaunchContext) -> Result<(), ProviderError> {
        // qemu binds its ends of the links: none may be left from a qemu that was killed.
        for i in 0..vm.nics.len() {
            let _ = std::fs::remove_file(crate::provider::qemu::switch::nic_socket(&ctx.prefix, &vm.name, i));
        }
        let log_from = std::fs::metadata(Layout::new(&ctx.prefix).qemu_log(&vm.name)).map_or(0, |m| m.len());
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
        let status = crate::provider::qemu::accel::query_status(&qmp)?;
        if !crate::provider::qemu::accel::STOPPED.contains(&status.as_str()) {
            return None;
        }
        let words = crate::provider::qemu::accel::qemu_words(&self.log_since_launch(prefix, &vm.name), 3);
        let kvm = status == "internal-error" || words.iter().any(|w| w.contains("KVM"));
        Some(super::BootFailure { status, words, kvm })
    }

    fn hypervisor_report(&self, prefix: &Path, vm: &VmRecord) -> Option<String> {
        let (qmp, _, _) = vm_paths(prefix, &vm.name);
        let status =
            crate::provider::qemu::accel::query_status(&qmp).unwrap_or_else(|| "unknown (QMP does not answer)".into());
        let log = crate::host::process::tail(&self.log_since_launch(prefix, &vm.name), 5);
        let said = if log.is_empty() { "nothing".into() } else { log.replace('\n', " / ") };
        Some(format!("qemu's status: {status}; qemu said: {said} (logs/{}.qemu.log)", vm.name))
    }

    fn why_stopped(&self, prefix: &Path, vm: &str) -> String {
        let how = match self.exit_status(vm) {
            Some(Some(s)) => format!("qemu exited ({s})"),
            Some(None) => format!("qemu is gone (its exit status did not come within {EXIT_STATUS_WAIT:?})"),
            None => "qemu is gone (its exit status is unknown: another process started it)".into(),
        };
        let log = crate::host::process::tail(&self.log_since_launch(prefix, vm), 10);
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

    /// lago's own path to the VM: its SSH port forwarded on 127.0.0.1 through the uplink, which
    /// every VM has and which none of the environment's networks carry, so that `lago net cut`,
    /// `partition`, `degrade`, a firewall on the guest's lago networks or a guest with no
    /// address on them never take lago's control away. The VM's addresses (and a host leg) are
    /// the tests' (`vm.ip()`, `ansible_hosts`).
    fn target(&self, prefix: &Path, vm: &VmRecord, ssh_port: Option<u16>) -> Target {
        let mut target = crate::prefix::Layout::new(prefix).ssh_target(
            &vm.name,
            &vm.ssh_user,
            crate::provider::LOOPBACK,
            ssh_port.unwrap_or(0),
        );
        target.password = vm.password();
        target
    }

    /// QMP `quit`, then SIGKILL if qemu is still there after 5 s.
    fn kill(&self, prefix: &Path, vm: &VmRecord) {
        let vm = vm.name.as_str();
        let (qmp, pid_file, _) = vm_paths(prefix, vm);
        let pid: Option<i32> = std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse().ok());
        // Its own memory file goes with it (not a frozen VM's, which it maps privately).
        let memory = pid
            .filter(|p| crate::prefix::owns(*p, &pid_file))
            .and_then(|p| std::fs::read(format!("/proc/{p}/cmdline")).ok())
            .and_then(|c| crate::prefix::memory::own_memory_file(&c));
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
        crate::prefix::Layout::new(prefix).ssh_target(vm, "", "127.0.0.1", 0).close();
        for f in [qmp, pid_file, Layout::new(prefix).console(vm), Layout::new(prefix).guest_agent(vm)] {
            let _ = std::fs::remove_file(f);
        }
        if let Some(file) = memory {
            let _ = std::fs::remove_file(file);
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

    /// `hostfwd_add` / `hostfwd_remove` on the uplink (qemu's monitor; QMP has no command of its
    /// own for it).
    fn set_forward(&self, prefix: &Path, vm: &VmRecord, host: u16, guest: u16, add: bool) -> Result<(), ProviderError> {
        let (qmp, _, _) = vm_paths(prefix, &vm.name);
        let qerr = |source| ProviderError::Qmp { vm: vm.name.clone(), source };
        let line = if add {
            format!("hostfwd_add uplink tcp:127.0.0.1:{host}-:{guest}")
        } else {
            format!("hostfwd_remove uplink tcp:127.0.0.1:{host}")
        };
        let said = Qmp::connect(&qmp, Duration::from_secs(5))
            .map_err(qerr)?
            .execute("human-monitor-command", Some(serde_json::json!({ "command-line": line })))
            .map_err(qerr)?;
        // The monitor says nothing when an add worked, `host forwarding rule for ... removed`
        // when a removal did; its words otherwise.
        let words = said.as_str().unwrap_or_default().trim();
        let worked = words.is_empty() || (words.starts_with("host forwarding rule for") && words.ends_with("removed"));
        if !worked {
            return Err(ProviderError::Forward { vm: vm.name.clone(), host, guest, message: words.to_owned() });
        }
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

    fn freeze(
        &self,
        prefix: &Path,
        vm: &VmRecord,
        state: &Path,
        helper: Option<&LaunchContext>,
    ) -> Result<(), ProviderError> {
        match helper {
            None => freeze::freeze(&vm_paths(prefix, &vm.name).0, vm, state),
            Some(ctx) => freeze::freeze_through_helper(&self.program, prefix, vm, state, ctx),
        }
    }

    fn thaw(&self, prefix: &Path, vm: &VmRecord, state: &Path) -> Result<(), ProviderError> {
        freeze::thaw(prefix, vm, state)
    }

    /// QOM of the first vCPU: its type (`max-x86_64-cpu`) and its `vendor` property.
    fn cpu(&self, prefix: &Path, vm: &VmRecord) -> Option<(String, String)> {
        let (qmp, _, _) = vm_paths(prefix, &vm.name);
        let mut q = Qmp::connect(&qmp, Duration::from_secs(5)).ok()?;
        let cpus = q.execute("query-cpus-fast", None).ok()?;
        let path = cpus.get(0)?.get("qom-path")?.as_str()?.to_owned();
        let mut get = |property: &str| {
            q.execute("qom-get", Some(json!({"path": path, "property": property})))
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
        };
        let kind = get("type")?;
        let vendor = get("vendor").unwrap_or_default();
        Some((kind.trim_end_matches("-x86_64-cpu").to_owned(), vendor))
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
            source: crate::host::qmp::QmpError::Io { path: path.clone(), source: e },
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
    let pid_file = Layout::new(prefix).pid(vm);
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
    use crate::config::Accel;

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
        let provider = QemuProvider::with_program(&crate::provider::qemu::accel::tests::stand_in_qemu(
            dir.path(),
            "internal-error",
        ));
        let vm: VmRecord = serde_json::from_value(json!({"name": "vm01", "nics": [], "disks": []})).unwrap();
        let ctx = LaunchContext { accel: Accel::Kvm, ..LaunchContext::for_test(prefix.clone()) };
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
}
