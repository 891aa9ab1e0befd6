//! lago's own Ethernet switch: one small process per network of `local-qemu` VMs.
//!
//! Each NIC of a VM is a qemu `dgram` netdev on a Unix socket of the prefix; the switch owns the
//! network's socket and forwards frames between the NICs it was configured with, learning MAC
//! addresses as a switch does. Because frames pass through it, the switch is where faults are
//! made on the host side, out of the guests' reach:
//!
//! - **partitions**: NICs are in groups, and frames only cross between NICs of one group;
//! - **degraded links**: frames to and from a VM are delayed (half of `delay` each way, so a
//!   round trip grows by `delay`), jittered, lost (`loss` each way) or paced (`rate`).
//!
//! The switch reads its configuration from a JSON file of the prefix (`run/switch-<net>.json`,
//! written by lago from the environment's state) at start and again whenever a client connects
//! to its control socket and sends `reload`; it answers `ok` once the new configuration is in
//! force. It ends on SIGTERM, or by itself when its configuration file disappears (its prefix
//! was removed). Only configured NICs are served: other local processes cannot join a network,
//! which they could with the multicast segments lago used before.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::prefix::state::Impairment;

/// Largest frame accepted (jumbo frames included).
const MAX_FRAME: usize = 65_536;

/// Why the switch, or a request to it, failed.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    /// A file or socket of the switch could not be used.
    #[error("Switch of network {net}: cannot {what} {path}")]
    Io {
        /// The network.
        net: String,
        /// What was being done.
        what: &'static str,
        /// The file or socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid.
    #[error("Switch configuration {path} is not valid: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The switch did not answer.
    #[error("The switch of network {net} did not answer on {path}: {reason}")]
    NoAnswer {
        /// The network.
        net: String,
        /// Its control socket.
        path: PathBuf,
        /// What happened.
        reason: String,
    },
    /// The host leg could not be made.
    #[error("Switch of network {net}: cannot make its host leg")]
    HostLeg {
        /// The network.
        net: String,
        /// Why, with the kernel's or `ip`'s words.
        #[source]
        source: crate::host::netdev::NetdevError,
    },
    /// The program that runs switches could not be started.
    #[error("Cannot start the switch of network {net} ({command})")]
    Spawn {
        /// The network.
        net: String,
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// One NIC the switch serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Port {
    /// The VM.
    pub vm: String,
    /// The NIC's index in the VM's `nics`.
    pub nic: usize,
    /// qemu's end of the link (the netdev's `local.path`).
    pub socket: PathBuf,
}

/// What a switch does: `run/switch-<net>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The network.
    pub net: String,
    /// The switch's data socket (the netdevs' `remote.path`).
    pub socket: PathBuf,
    /// The control socket.
    pub control: PathBuf,
    /// The NICs on the network.
    pub ports: Vec<Port>,
    /// Partition: groups of VMs whose NICs reach each other; VMs in no group form one more group
    /// together. Empty: everyone reaches everyone.
    #[serde(default)]
    pub groups: Vec<Vec<String>>,
    /// Degraded links, by VM.
    #[serde(default)]
    pub impairments: BTreeMap<String, Impairment>,
    /// The network's host leg: a TAP interface of the host holding the gateway address, one more
    /// port of the switch (in the partition's group of VMs named in no group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_leg: Option<HostLeg>,
}

/// The host leg of a network: the TAP interface the switch creates and the addresses it gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostLeg {
    /// The interface's name ([`crate::host::netdev::interface_name`]).
    pub interface: String,
    /// Its address with the prefix length: the network's gateway (`192.168.200.1/24`); empty on
    /// an IPv6-only network.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// Its IPv6 address with the prefix length: the network's `gw6` (`fd8f:1:2::1/64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<String>,
}

impl HostLeg {
    /// Its addresses, space-separated (`192.168.200.1/24 fd8f:1:2::1/64`).
    pub fn addresses(&self) -> String {
        let v4 = Some(self.address.as_str()).filter(|a| !a.is_empty());
        v4.into_iter().chain(self.address6.as_deref()).collect::<Vec<_>>().join(" ")
    }
}

/// The switch's port of the host leg: no VM (no VM is named ""), no socket.
fn host_port() -> Port {
    Port { vm: String::new(), nic: 0, socket: PathBuf::new() }
}

/// The ports the switch serves: the configuration's NICs, then the host leg's.
fn with_host_port(mut config: Config) -> Config {
    if config.host_leg.is_some() {
        config.ports.push(host_port());
    }
    config
}

/// The host leg that the switch of `net` runs with now, if it runs with one.
pub fn running_host_leg(prefix: &Path, net: &str) -> Option<HostLeg> {
    let p = paths(prefix, net);
    crate::prefix::running_pid(&p.pid)?;
    let leg = Config::load(&p.config).ok()?.host_leg?;
    crate::host::netdev::exists(&leg.interface).then_some(leg)
}

impl Config {
    /// The group number of `vm` under the partition.
    fn group_of(&self, vm: &str) -> usize {
        self.groups.iter().position(|g| g.iter().any(|v| v == vm)).unwrap_or(self.groups.len())
    }

    /// Reads a configuration file.
    pub fn load(path: &Path) -> Result<Self, SwitchError> {
        let text = crate::host::pathio::read_text(path, 1 << 20)
            .map_err(|e| SwitchError::Config { path: path.to_owned(), reason: e.to_string() })?;
        serde_json::from_str(&text).map_err(|e| SwitchError::Config { path: path.to_owned(), reason: e.to_string() })
    }

    /// Writes it atomically.
    pub fn save(&self, path: &Path) -> Result<(), SwitchError> {
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        crate::host::pathio::write_atomic(path, text.as_bytes()).map_err(|e| SwitchError::Io {
            net: self.net.clone(),
            what: "write",
            path: path.to_owned(),
            source: e.source,
        })
    }
}

/// Where the switch of network `net` of the prefix at `prefix` keeps its things.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Data socket (short path when needed, see [`crate::prefix::socket_path`]).
    pub socket: PathBuf,
    /// Control socket.
    pub control: PathBuf,
    /// `run/switch-<net>.json`.
    pub config: PathBuf,
    /// `run/switch-<net>.pid`.
    pub pid: PathBuf,
    /// `logs/switch-<net>.log`.
    pub log: PathBuf,
}

/// The paths of the switch of `net`.
pub fn paths(prefix: &Path, net: &str) -> Paths {
    Paths {
        socket: crate::prefix::socket_path(prefix, &format!("sw-{net}.sock")),
        control: crate::prefix::socket_path(prefix, &format!("sw-{net}.ctl")),
        config: crate::prefix::Layout::new(prefix).switch_config(net),
        pid: crate::prefix::Layout::new(prefix).pid(&format!("switch-{net}")),
        log: crate::prefix::Layout::new(prefix).switch_log(net),
    }
}

/// qemu's end of the link of NIC `nic` of `vm`.
pub fn nic_socket(prefix: &Path, vm: &str, nic: usize) -> PathBuf {
    crate::prefix::socket_path(prefix, &format!("{vm}-{nic}.nic"))
}

/// The configuration of the switch of `net`: every NIC of `vms` on it, and the faults `state`
/// holds for it.
pub fn config_for(
    prefix: &Path,
    net: &str,
    vms: &[crate::prefix::records::VmRecord],
    state: &crate::prefix::state::State,
    host_leg: Option<HostLeg>,
) -> Config {
    let p = paths(prefix, net);
    let ports = vms
        .iter()
        .flat_map(|vm| {
            vm.nics.iter().enumerate().filter(|(_, n)| n.net == net).map(|(i, _)| Port {
                vm: vm.name.clone(),
                nic: i,
                socket: nic_socket(prefix, &vm.name, i),
            })
        })
        .collect();
    Config {
        net: net.to_owned(),
        socket: p.socket,
        control: p.control,
        ports,
        groups: state.partitions.get(net).cloned().unwrap_or_default(),
        impairments: state.impairments.get(net).cloned().unwrap_or_default(),
        host_leg,
    }
}

/// Brings the switch of `config` in line: reloads it when it runs, starts it otherwise.
pub fn ensure(prefix: &Path, config: &Config) -> Result<(), SwitchError> {
    let p = paths(prefix, &config.net);
    crate::prefix::ensure_runtime_dir(prefix).map_err(|source| SwitchError::Io {
        net: config.net.clone(),
        what: "create the runtime directory",
        path: crate::prefix::runtime_dir(prefix),
        source,
    })?;
    // The host leg is the switch's for its whole life: another one means another switch.
    let same_leg = || Config::load(&p.config).is_ok_and(|c| c.host_leg == config.host_leg);
    if alive(&config.net, &p.control) && same_leg() {
        config.save(&p.config)?;
        reload(&config.net, &p.control)
    } else {
        // One switch per network, ever: one that runs but did not answer is ended first (the
        // new one would take its socket and pid file, and `stop` would never find it).
        if crate::prefix::running_pid(&p.pid).is_some() {
            tracing::warn!(net = %config.net, "the switch does not answer; starting it again");
            stop(prefix, &config.net);
        }
        spawn(config, &p.config, &p.pid, &p.log)
    }
}

/// Ends the switch of `net` (SIGTERM, then SIGKILL after 2 s) and removes its files.
pub fn stop(prefix: &Path, net: &str) {
    let p = paths(prefix, net);
    crate::prefix::terminate(&p.pid, Duration::from_secs(2));
    for f in [&p.config, &p.pid, &p.socket, &p.control] {
        let _ = std::fs::remove_file(f);
    }
}

/// A small, fast pseudo-random generator (xorshift64*): loss and jitter need no more.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15)
            ^ u64::from(std::process::id());
        Self(seed | 1)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A frame waiting for its time.
#[derive(PartialEq, Eq)]
struct Pending {
    at: Instant,
    seq: u64,
    to: usize,
    frame: Vec<u8>,
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // A min-heap on (time, arrival order).
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The forwarding state: configuration, learnt MACs, frames in flight.
pub struct Fabric {
    config: Config,
    macs: HashMap<[u8; 6], usize>,
    queue: BinaryHeap<Pending>,
    /// Per port: when its last frame in (from the VM) and out (to the VM) leaves, for FIFO order
    /// and pacing.
    busy_in: Vec<Instant>,
    busy_out: Vec<Instant>,
    seq: u64,
    rng: Rng,
}

impl Fabric {
    /// A switch with `config`, nothing learnt.
    pub fn new(config: Config) -> Self {
        let now = Instant::now();
        let n = config.ports.len();
        Self {
            config,
            macs: HashMap::new(),
            queue: BinaryHeap::new(),
            busy_in: vec![now; n],
            busy_out: vec![now; n],
            seq: 0,
            rng: Rng::new(),
        }
    }

    /// Takes a new configuration; what was learnt about ports that remain stays.
    pub fn reconfigure(&mut self, config: Config) {
        if config.ports != self.config.ports {
            self.macs.clear();
            self.queue.clear();
            let now = Instant::now();
            self.busy_in = vec![now; config.ports.len()];
            self.busy_out = vec![now; config.ports.len()];
        }
        self.config = config;
    }

    fn port_of(&self, path: &Path) -> Option<usize> {
        self.config.ports.iter().position(|p| p.socket == path)
    }

    fn impairment(&self, port: usize) -> Impairment {
        self.config.impairments.get(&self.config.ports[port].vm).copied().unwrap_or_default()
    }

    /// One way's delay of `imp`, jittered.
    fn one_way(&mut self, imp: &Impairment) -> Duration {
        let base = f64::from(imp.delay_ms) / 2.0;
        let jitter = f64::from(imp.jitter_ms) * (2.0 * self.rng.unit() - 1.0);
        Duration::from_secs_f64((base + jitter).max(0.0) / 1000.0)
    }

    fn lost(&mut self, imp: &Impairment) -> bool {
        imp.loss_pct > 0.0 && self.rng.unit() * 100.0 < imp.loss_pct
    }

    /// Where a frame from port `from` goes: (port, when), after loss, delay and pacing.
    pub fn route(&mut self, from: usize, frame: &[u8], now: Instant) -> Vec<(usize, Instant)> {
        if frame.len() < 14 {
            return Vec::new();
        }
        let dst: [u8; 6] = frame[0..6].try_into().unwrap_or_default();
        let src: [u8; 6] = frame[6..12].try_into().unwrap_or_default();
        if src[0] & 1 == 0 {
            self.macs.insert(src, from);
        }
        let group = self.config.group_of(&self.config.ports[from].vm);
        let reachable = |c: &Config, p: usize| p != from && c.group_of(&c.ports[p].vm) == group;
        let targets: Vec<usize> = match self.macs.get(&dst) {
            Some(&p) if dst[0] & 1 == 0 => {
                if reachable(&self.config, p) {
                    vec![p]
                } else {
                    Vec::new()
                }
            }
            _ => (0..self.config.ports.len()).filter(|p| reachable(&self.config, *p)).collect(),
        };
        let imp_from = self.impairment(from);
        if self.lost(&imp_from) {
            return Vec::new();
        }
        let bits = (frame.len() * 8) as f64;
        let pace = |imp: &Impairment| {
            if imp.rate_kbit == 0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(bits / (f64::from(imp.rate_kbit) * 1000.0))
            }
        };
        // Leaving the VM: its delay and pace, in order.
        let mut out_of_vm = now + self.one_way(&imp_from);
        if !imp_from.is_none() {
            out_of_vm = out_of_vm.max(self.busy_in[from]) + pace(&imp_from);
            self.busy_in[from] = out_of_vm;
        }
        let mut routes = Vec::new();
        for to in targets {
            let imp_to = self.impairment(to);
            if self.lost(&imp_to) {
                continue;
            }
            let mut at = out_of_vm + self.one_way(&imp_to);
            if !imp_to.is_none() {
                at = at.max(self.busy_out[to]) + pace(&imp_to);
                self.busy_out[to] = at;
            }
            routes.push((to, at));
        }
        routes
    }

    /// Queues a frame for `to` at `at`.
    fn hold(&mut self, to: usize, at: Instant, frame: Vec<u8>) {
        self.seq += 1;
        self.queue.push(Pending { at, seq: self.seq, to, frame });
    }

    /// Frames whose time has come.
    fn due(&mut self, now: Instant) -> Vec<(usize, Vec<u8>)> {
        let mut out = Vec::new();
        while self.queue.peek().is_some_and(|p| p.at <= now) {
            if let Some(p) = self.queue.pop() {
                out.push((p.to, p.frame));
            }
        }
        out
    }

    fn next_due(&self) -> Option<Instant> {
        self.queue.peek().map(|p| p.at)
    }
}

/// Runs a switch until SIGTERM or until `config_file` disappears: `lago __switch` (hidden).
pub fn serve(config_file: &Path, pid_file: &Path) -> Result<(), SwitchError> {
    let config = Config::load(config_file)?;
    let net = config.net.clone();
    let ioerr = |what: &'static str, path: &Path| {
        let net = net.clone();
        let path = path.to_owned();
        move |source| SwitchError::Io { net: net.clone(), what, path: path.clone(), source }
    };
    let _ = std::fs::remove_file(&config.socket);
    let _ = std::fs::remove_file(&config.control);
    let data = UnixDatagram::bind(&config.socket).map_err(ioerr("bind", &config.socket))?;
    data.set_nonblocking(true).map_err(ioerr("configure", &config.socket))?;
    let control = UnixListener::bind(&config.control).map_err(ioerr("bind", &config.control))?;
    control.set_nonblocking(true).map_err(ioerr("configure", &config.control))?;
    std::fs::write(pid_file, format!("{}\n", std::process::id())).map_err(ioerr("write", pid_file))?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT, signal_hook::consts::SIGHUP] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    let mut tap = match &config.host_leg {
        Some(leg) => {
            let leg_err = |source| SwitchError::HostLeg { net: net.clone(), source };
            let tap = crate::host::netdev::Tap::create(&leg.interface).map_err(leg_err)?;
            tap.configure(&leg.address, leg.address6.as_deref(), &crate::host::process::SystemRunner)
                .map_err(leg_err)?;
            tracing::info!("switch of network {net}: host leg {} with {}", leg.interface, leg.addresses());
            Some(tap)
        }
        None => None,
    };
    tracing::info!("switch of network {net}: {} ports", config.ports.len());
    let mut fabric = Fabric::new(with_host_port(config));
    let mut buf = vec![0u8; MAX_FRAME];
    let mut last_check = Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let now = Instant::now();
        for (to, frame) in fabric.due(now) {
            deliver(&data, tap.as_mut(), &fabric.config.ports[to], &frame);
        }
        let timeout = fabric
            .next_due()
            .map_or(Duration::from_millis(500), |t| t.saturating_duration_since(now))
            .min(Duration::from_millis(500));
        wait_readable(&data, &control, tap.as_ref(), timeout);
        // Frames: as many as are there.
        loop {
            match data.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let Some(port) = from.as_pathname().and_then(|p| fabric.port_of(p)) else { continue };
                    forward(&mut fabric, &data, tap.as_mut(), port, &buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => break,
                Err(e) => {
                    tracing::warn!("switch of network {net}: {e}");
                    break;
                }
            }
        }
        // Frames from the host leg: as many as are there.
        if let Some(host) = fabric.config.ports.iter().position(|p| p.vm.is_empty()) {
            while let Some(n) = tap.as_mut().and_then(|t| t.recv(&mut buf).ok()) {
                forward(&mut fabric, &data, tap.as_mut(), host, &buf[..n]);
            }
        }
        // Control: `reload`.
        while let Ok((stream, _)) = control.accept() {
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut line = String::new();
            let mut reader = BufReader::new(&stream);
            let _ = reader.read_line(&mut line);
            let reply = match line.trim() {
                "reload" => match Config::load(config_file) {
                    Ok(c) => {
                        fabric.reconfigure(with_host_port(c));
                        "ok".to_owned()
                    }
                    Err(e) => format!("error: {e}"),
                },
                "ping" => "ok".to_owned(),
                other => format!("error: unknown request {other:?}"),
            };
            let mut w = &stream;
            let _ = writeln!(w, "{reply}");
        }
        if last_check.elapsed() > Duration::from_secs(1) {
            last_check = Instant::now();
            if !config_file.exists() {
                tracing::info!("switch of network {net}: its configuration is gone, ending");
                break;
            }
        }
    }
    let _ = std::fs::remove_file(&fabric.config.socket);
    let _ = std::fs::remove_file(&fabric.config.control);
    let _ = std::fs::remove_file(pid_file);
    Ok(())
}

/// Routes a frame that came in on `port`: sent now, or held for its time.
fn forward(
    fabric: &mut Fabric,
    data: &UnixDatagram,
    mut tap: Option<&mut crate::host::netdev::Tap>,
    port: usize,
    frame: &[u8],
) {
    let now = Instant::now();
    for (to, at) in fabric.route(port, frame, now) {
        if at <= now {
            deliver(data, tap.as_deref_mut(), &fabric.config.ports[to], frame);
        } else {
            fabric.hold(to, at, frame.to_vec());
        }
    }
}

/// Sends a frame out of `port`: to a NIC's socket, or into the host leg.
fn deliver(data: &UnixDatagram, tap: Option<&mut crate::host::netdev::Tap>, port: &Port, frame: &[u8]) {
    if port.vm.is_empty() {
        if let Some(tap) = tap {
            let _ = tap.send(frame);
        }
    } else {
        let _ = data.send_to(frame, &port.socket);
    }
}

/// Waits until a socket or the host leg is readable, or `timeout` passes.
fn wait_readable(
    data: &UnixDatagram,
    control: &UnixListener,
    tap: Option<&crate::host::netdev::Tap>,
    timeout: Duration,
) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut fds = vec![PollFd::new(data.as_fd(), PollFlags::POLLIN), PollFd::new(control.as_fd(), PollFlags::POLLIN)];
    if let Some(tap) = tap {
        fds.push(PollFd::new(tap.as_fd(), PollFlags::POLLIN));
    }
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let _ = poll(&mut fds, PollTimeout::from(ms));
}

/// Asks the switch whose control socket is `control` to reload its configuration, and waits for
/// its answer.
pub fn reload(net: &str, control: &Path) -> Result<(), SwitchError> {
    request(net, control, "reload")
}

/// Whether the switch answers.
pub fn alive(net: &str, control: &Path) -> bool {
    request(net, control, "ping").is_ok()
}

fn request(net: &str, control: &Path, what: &str) -> Result<(), SwitchError> {
    let no = |reason: String| SwitchError::NoAnswer { net: net.to_owned(), path: control.to_owned(), reason };
    let stream = std::os::unix::net::UnixStream::connect(control).map_err(|e| no(e.to_string()))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut w = &stream;
    writeln!(w, "{what}").map_err(|e| no(e.to_string()))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).map_err(|e| no(e.to_string()))?;
    match line.trim() {
        "ok" => Ok(()),
        other => Err(no(other.to_owned())),
    }
}

/// The command that runs a switch, before its arguments: set by the program embedding lago (the
/// `lago` CLI runs itself, the Python SDK its interpreter), else the `lago` program on `PATH`.
static LAUNCHER: OnceLock<Vec<String>> = OnceLock::new();

/// Sets how switches are started: `argv` followed by `--config FILE --pidfile FILE` must run
/// [`serve`].
pub fn set_launcher(argv: Vec<String>) {
    let _ = LAUNCHER.set(argv);
}

/// The command that runs lago's helper processes (switches, forwards' relays).
pub(crate) fn launcher() -> Vec<String> {
    if let Some(l) = LAUNCHER.get() {
        return l.clone();
    }
    let lago = crate::host::process::program_path("lago");
    vec![lago.display().to_string(), "__switch".into()]
}

/// Starts the switch of `config` in the background (its own process group, outliving lago), and
/// waits until it answers.
pub fn spawn(config: &Config, config_file: &Path, pid_file: &Path, log: &Path) -> Result<(), SwitchError> {
    config.save(config_file)?;
    let argv = launcher();
    let inv = crate::host::process::Invocation::new(&argv[0])
        .args(&argv[1..])
        .arg("--config")
        .arg(config_file)
        .arg("--pidfile")
        .arg(pid_file);
    let mut child = crate::host::process::spawn_detached(&inv, log).map_err(|e| SwitchError::Spawn {
        net: config.net.clone(),
        command: inv.to_string(),
        source: match e {
            crate::host::process::ProcessError::Spawn { source, .. }
            | crate::host::process::ProcessError::Log { source, .. } => source,
            other => std::io::Error::other(other.to_string()),
        },
    })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if alive(&config.net, &config.control) {
            // Reaped by the kernel's init once lago ends; not waited for here.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(SwitchError::NoAnswer {
                net: config.net.clone(),
                path: config.control.clone(),
                reason: format!(
                    "it exited ({status}): {} (its log: {})",
                    crate::provider::tail_file(log, 3).trim().replace('\n', " / "),
                    log.display()
                ),
            });
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(SwitchError::NoAnswer {
                net: config.net.clone(),
                path: config.control.clone(),
                reason: format!("no answer within 10 s; its log: {}", log.display()),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[0u8; 50]);
        f
    }

    fn config(vms: &[&str]) -> Config {
        Config {
            net: "n".into(),
            socket: "/s".into(),
            control: "/c".into(),
            ports: vms.iter().map(|v| Port { vm: (*v).into(), nic: 0, socket: format!("/{v}").into() }).collect(),
            groups: Vec::new(),
            impairments: BTreeMap::new(),
            host_leg: None,
        }
    }

    const BROADCAST: [u8; 6] = [0xff; 6];
    const MAC: [[u8; 6]; 3] = [[0x54, 0x52, 0, 0, 0, 1], [0x54, 0x52, 0, 0, 0, 2], [0x54, 0x52, 0, 0, 0, 3]];

    fn ports(routes: &[(usize, Instant)]) -> Vec<usize> {
        routes.iter().map(|(p, _)| *p).collect()
    }

    #[test]
    fn floods_learns_and_partitions() {
        let mut f = Fabric::new(config(&["a", "b", "c"]));
        let now = Instant::now();
        assert_eq!(ports(&f.route(0, &frame(BROADCAST, MAC[0]), now)), [1, 2]);
        // b answers a: a's MAC was learnt, the frame goes to a only.
        assert_eq!(ports(&f.route(1, &frame(MAC[0], MAC[1]), now)), [0]);
        // {a, b} | {c}: broadcasts stay in the group, unicast across is dropped.
        let mut c = config(&["a", "b", "c"]);
        c.groups = vec![vec!["a".into(), "b".into()], vec!["c".into()]];
        f.reconfigure(c);
        assert_eq!(ports(&f.route(0, &frame(BROADCAST, MAC[0]), now)), [1]);
        assert_eq!(ports(&f.route(2, &frame(MAC[0], MAC[2]), now)), Vec::<usize>::new());
        assert_eq!(ports(&f.route(2, &frame(BROADCAST, MAC[2]), now)), Vec::<usize>::new());
        // VMs in no group are together: {a} | {b, c}.
        let mut c = config(&["a", "b", "c"]);
        c.groups = vec![vec!["a".into()]];
        f.reconfigure(c);
        assert_eq!(ports(&f.route(1, &frame(BROADCAST, MAC[1]), now)), [2]);
        // Runts are dropped.
        assert!(f.route(0, &[0u8; 10], now).is_empty());
    }

    #[test]
    fn the_host_leg_is_one_more_port_with_the_vms_in_no_group() {
        let mut c = config(&["a", "b"]);
        c.host_leg = Some(HostLeg { interface: "3f2a-n".into(), address: "192.168.200.1/24".into(), address6: None });
        let c = with_host_port(c);
        assert_eq!(c.ports.len(), 3);
        assert!(c.ports[2].vm.is_empty() && c.ports[2].socket.as_os_str().is_empty());
        let mut f = Fabric::new(c.clone());
        let now = Instant::now();
        // The host's broadcast (an ARP request) reaches both VMs; a VM's answer reaches the host.
        assert_eq!(ports(&f.route(2, &frame(BROADCAST, MAC[2]), now)), [0, 1]);
        assert_eq!(ports(&f.route(1, &frame(MAC[2], MAC[1]), now)), [2]);
        // {a} | the rest: the host is with b.
        let mut parted = c;
        parted.groups = vec![vec!["a".into()]];
        f.reconfigure(parted);
        assert_eq!(ports(&f.route(2, &frame(BROADCAST, MAC[2]), now)), [1]);
        // Without a host leg, no port is added.
        assert_eq!(with_host_port(config(&["a"])).ports.len(), 1);
    }

    /// An IPv6 frame (EtherType 0x86dd) from `src` to `dst`.
    fn frame6(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = frame(dst, src);
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f
    }

    #[test]
    fn ipv6_neighbour_discovery_is_switched_as_any_frame_partitions_included() {
        // A neighbour solicitation goes to the solicited-node multicast group (33:33:ff:..):
        // flooded within the group, as ARP's broadcast is; the advertisement comes back unicast.
        const SOLICITED: [u8; 6] = [0x33, 0x33, 0xff, 0x00, 0x00, 0x02];
        const ALL_NODES: [u8; 6] = [0x33, 0x33, 0x00, 0x00, 0x00, 0x01];
        let mut c = config(&["a", "b", "c"]);
        c.host_leg = Some(HostLeg {
            interface: "3f2a-n".into(),
            address: String::new(),
            address6: Some("fd8f:1:2::1/64".into()),
        });
        let c = with_host_port(c);
        let mut f = Fabric::new(c.clone());
        let now = Instant::now();
        assert_eq!(ports(&f.route(0, &frame6(SOLICITED, MAC[0]), now)), [1, 2, 3]);
        assert_eq!(ports(&f.route(1, &frame6(MAC[0], MAC[1]), now)), [0]);
        // The host's solicitation (from its leg) reaches every VM; the answer reaches the host.
        let host_mac = [0x52, 0x54, 0, 0, 0, 9];
        assert_eq!(ports(&f.route(3, &frame6(SOLICITED, host_mac), now)), [0, 1, 2]);
        assert_eq!(ports(&f.route(2, &frame6(host_mac, MAC[2]), now)), [3]);
        // {a, b} | {c, the host}: no solicitation, advertisement or packet crosses.
        let mut parted = c;
        parted.groups = vec![vec!["a".into(), "b".into()]];
        f.reconfigure(parted);
        assert_eq!(ports(&f.route(0, &frame6(SOLICITED, MAC[0]), now)), [1]);
        assert_eq!(ports(&f.route(0, &frame6(ALL_NODES, MAC[0]), now)), [1]);
        assert_eq!(ports(&f.route(2, &frame6(SOLICITED, MAC[2]), now)), [3]);
        assert!(f.route(2, &frame6(MAC[0], MAC[2]), now).is_empty());
        assert!(f.route(0, &frame6(MAC[2], MAC[0]), now).is_empty());
    }

    #[test]
    fn delay_is_split_between_the_ways_and_loss_applies_each_way() {
        let mut c = config(&["a", "b"]);
        c.impairments.insert("b".into(), Impairment { delay_ms: 200, ..Impairment::default() });
        let mut f = Fabric::new(c);
        let now = Instant::now();
        let to_b = f.route(0, &frame(BROADCAST, MAC[0]), now);
        let from_b = f.route(1, &frame(MAC[0], MAC[1]), now);
        let ms = |r: &[(usize, Instant)]| (r[0].1 - now).as_millis();
        assert_eq!((ms(&to_b), ms(&from_b)), (100, 100));
        // 30 % each way: about half of the round trips fail (1 - 0.7²).
        let mut c = config(&["a", "b"]);
        c.impairments.insert("b".into(), Impairment { loss_pct: 30.0, ..Impairment::default() });
        f.reconfigure(c);
        let through = (0..4000).filter(|_| !f.route(0, &frame(MAC[1], MAC[0]), now).is_empty()).count();
        assert!((2600..3000).contains(&through), "{through} of 4000 went through");
    }

    #[test]
    fn rate_paces_frames_in_order() {
        let mut c = config(&["a", "b"]);
        // 64-byte frames at 512 kbit/s: 1 ms each.
        c.impairments.insert("b".into(), Impairment { rate_kbit: 512, ..Impairment::default() });
        let mut f = Fabric::new(c);
        let now = Instant::now();
        let times: Vec<u128> =
            (0..5).map(|_| (f.route(0, &frame(MAC[1], MAC[0]), now)[0].1 - now).as_micros()).collect();
        assert_eq!(times, [1000, 2000, 3000, 4000, 5000]);
    }

    #[test]
    fn a_switch_that_does_not_answer_is_ended_before_another_starts() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path();
        std::fs::create_dir_all(prefix.join("run")).unwrap();
        std::fs::create_dir_all(prefix.join("logs")).unwrap();
        let p = paths(prefix, "n");
        // A process that owns the pid file (names it exactly) but has no control socket. It
        // must not execute another program once started: while a process executes one, its
        // command line reads empty for a moment, and it owns nothing then (`python3` is a
        // shim here that executes three more: `ensure` could come in such a moment and leave
        // it running, this test's old flake).
        let mut stuck = std::process::Command::new("sh")
            .args(["-c", "while :; do sleep 1; done"])
            .arg(&p.pid)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::fs::write(&p.pid, stuck.id().to_string()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while crate::prefix::running_pid(&p.pid).is_none() {
            assert!(Instant::now() < deadline, "the stand-in never owned the pid file");
            std::thread::sleep(Duration::from_millis(10));
        }
        set_launcher(vec!["false".into()]);
        let config = Config { socket: p.socket.clone(), control: p.control.clone(), ..config(&["vm01"]) };
        // The new switch cannot start here (`false`); what matters is that the stuck one is gone.
        let outcome = ensure(prefix, &config);
        let ended = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = stuck.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > ended {
                let _ = stuck.kill();
                panic!("the stuck switch still runs after ensure, which returned {outcome:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(!status.success(), "{status}; ensure returned {outcome:?}");
    }
}
