//! The native objects under the SDK: the environment (`Env`, which `lago.sdk.SDK` extends), a
//! VM (`VM`, which `lago.plugins.vm.VMPlugin` wraps), a network, a prefix's paths. Each holds the
//! environment (shared) and a name; each call reads what it needs from the prefix, so objects
//! stay valid across `start`, `stop` and snapshots. The original's Python shapes (argument
//! joining, `CommandStatus`, service plugins) are in the Python modules on top.

use std::path::PathBuf;
use std::sync::Arc;

use lago::host::process::SystemRunner;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use serde_json::{Map, Value};

use crate::convert::to_python;
use crate::logging::Progress;
use crate::{blocking, to_py};

type Shared = Arc<lago::env::Env>;

/// A command's outcome as the original's `lago.utils.CommandStatus(code, out, err)`, true when the
/// command failed: the outputs go as bytes, which the class keeps as `lago.utils.CommandOutput`
/// (text that also decodes as those bytes).
pub(crate) fn command_status(py: Python<'_>, code: i32, out: &[u8], err: &[u8]) -> PyResult<Py<PyAny>> {
    let class = py.import("lago.utils")?.getattr("CommandStatus")?;
    Ok(class.call1((code, PyBytes::new(py, out), PyBytes::new(py, err)))?.unbind())
}

fn status(py: Python<'_>, st: &lago::host::ssh::CommandStatus) -> PyResult<Py<PyAny>> {
    command_status(py, st.code, &st.out, &st.err)
}

fn names(list: Option<Vec<String>>) -> Vec<String> {
    list.unwrap_or_default()
}

/// A wait's timeout in seconds (`None`: lago's default), or `ValueError`.
fn wait_timeout(secs: Option<f64>) -> PyResult<std::time::Duration> {
    match secs {
        None => Ok(lago::ops::wait::DEFAULT_TIMEOUT),
        Some(s) => std::time::Duration::try_from_secs_f64(s).map_err(|_| {
            pyo3::exceptions::PyValueError::new_err(format!("timeout must be a number of seconds, 0 or more (got {s})"))
        }),
    }
}

/// An environment: the prefix `current` of a workdir.
#[pyclass(subclass, frozen, module = "lago._lago")]
pub(crate) struct Env {
    env: Shared,
    workdir: PathBuf,
}

#[pymethods]
impl Env {
    /// Loads prefix `prefix_name` (the current one by default) of `workdir`; with `prefix_path`,
    /// the prefix at that directory (its workdir is its parent).
    #[new]
    #[pyo3(signature = (workdir=None, prefix_name=None, prefix_path=None))]
    fn new(
        py: Python<'_>,
        workdir: Option<PathBuf>,
        prefix_name: Option<String>,
        prefix_path: Option<PathBuf>,
    ) -> PyResult<Self> {
        let (wd, pp) = (workdir.clone(), prefix_path.clone());
        let env = blocking(py, move || match (pp, wd) {
            (Some(p), _) => lago::sdk::load_prefix(&p).map_err(to_py),
            (None, Some(w)) => lago::sdk::load_env_named(&w, prefix_name.as_deref()).map_err(to_py),
            (None, None) => Err(pyo3::exceptions::PyTypeError::new_err("a workdir or a prefix_path is needed")),
        })?;
        let workdir = workdir
            .map(|w| std::path::absolute(&w).unwrap_or(w))
            .or_else(|| env.prefix.path.parent().map(PathBuf::from))
            .unwrap_or_default();
        Ok(Self { env: Arc::new(env), workdir })
    }

    /// The workdir.
    #[getter]
    fn workdir(&self) -> PathBuf {
        self.workdir.clone()
    }

    /// Starts the named VMs (all by default) and waits until each answers SSH; with
    /// `from_snapshot`, the stopped environment comes up in the state of that live snapshot;
    /// `boot` boots even when `[start] resume` names one. Returns the snapshot it came up from.
    #[pyo3(signature = (vm_names=None, from_snapshot=None, boot=false))]
    fn start(
        &self,
        py: Python<'_>,
        vm_names: Option<Vec<String>>,
        from_snapshot: Option<String>,
        boot: bool,
    ) -> PyResult<Option<String>> {
        use lago::ops::resume::StartMode;
        let env = self.env.clone();
        let mode = match (from_snapshot, boot) {
            (Some(name), _) => StartMode::From(name),
            (None, true) => StartMode::Boot,
            (None, false) => StartMode::Configured,
        };
        blocking(py, move || {
            env.start_as(&names(vm_names), &mode, &lago::host::process::SystemRunner, &Progress).map_err(to_py)
        })
    }

    /// Powers the named VMs (all by default) off at once.
    #[pyo3(signature = (vm_names=None))]
    fn stop(&self, py: Python<'_>, vm_names: Option<Vec<String>>) -> PyResult<()> {
        let env = self.env.clone();
        blocking(py, move || env.stop(&names(vm_names), &Progress).map_err(to_py))
    }

    /// Shuts the named VMs (all by default) down through ACPI, or reboots them.
    #[pyo3(signature = (vm_names=None, reboot=false))]
    fn shutdown(&self, py: Python<'_>, vm_names: Option<Vec<String>>, reboot: bool) -> PyResult<()> {
        let env = self.env.clone();
        blocking(py, move || {
            lago::ops::guest::shutdown(&env, &names(vm_names), reboot, std::time::Duration::from_secs(300), &Progress)
                .map_err(to_py)
        })
    }

    /// Stops every VM and removes the environment (and the workdir when nothing else is in it).
    fn destroy(&self, py: Python<'_>) -> PyResult<()> {
        let env = self.env.clone();
        blocking(py, move || env.destroy(&Progress).map_err(to_py))
    }

    /// The VMs' names, in `virt/env` order.
    fn vm_names(&self) -> Vec<String> {
        self.env.vms.iter().map(|v| v.name.clone()).collect()
    }

    /// The networks' names, in `virt/env` order.
    fn net_names(&self) -> Vec<String> {
        self.env.nets.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The VM called `name`.
    fn vm(&self, name: String) -> PyResult<Vm> {
        self.env.select(std::slice::from_ref(&name)).map_err(to_py)?;
        Ok(Vm { env: self.env.clone(), name })
    }

    /// The network called `name`.
    fn net(&self, name: String) -> PyResult<Network> {
        if !self.env.nets.iter().any(|(n, _)| *n == name) {
            return Err(to_py(lago::env::EnvError::UnknownNet {
                net: name,
                known: self.env.nets.iter().map(|(n, _)| n.clone()).collect(),
            }));
        }
        Ok(Network { env: self.env.clone(), name })
    }

    /// The prefix directory.
    #[getter]
    fn prefix_path(&self) -> PathBuf {
        self.env.prefix.path.clone()
    }

    /// The environment's files.
    fn get_paths(&self) -> Paths {
        Paths { prefix: self.env.prefix.path.clone() }
    }

    /// Every VM's `artifacts` into `output_dir/<vm>/`.
    #[pyo3(signature = (output_dir, ignore_nopath=false))]
    fn collect_artifacts(&self, py: Python<'_>, output_dir: PathBuf, ignore_nopath: bool) -> PyResult<()> {
        let env = self.env.clone();
        blocking(py, move || {
            let dir = std::path::absolute(&output_dir).unwrap_or(output_dir);
            lago::ops::guest::collect(&env, &dir, !ignore_nopath, &Progress).map_err(to_py)
        })
    }

    /// Runs every VM's deploy scripts.
    fn deploy(&self, py: Python<'_>) -> PyResult<()> {
        let env = self.env.clone();
        blocking(py, move || lago::ops::guest::deploy(&env, &Progress).map_err(to_py))
    }

    /// Exports the disks of the named VMs (all by default) and an init file that brings them
    /// back; returns `{vm: [exported files]}`. `with_threads` is accepted for compatibility:
    /// disks are always exported in parallel.
    #[pyo3(signature = (vms_names=None, standalone=false, export_dir=PathBuf::from("."), compress=false,
                        init_file_name="LagoInitFile".to_owned(), collect_only=false, with_threads=true))]
    #[allow(clippy::too_many_arguments, reason = "the original's signature")]
    fn export_vms<'py>(
        &self,
        py: Python<'py>,
        vms_names: Option<Vec<String>>,
        standalone: bool,
        export_dir: PathBuf,
        compress: bool,
        init_file_name: String,
        collect_only: bool,
        with_threads: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = with_threads;
        let env = self.env.clone();
        let listing = blocking(py, move || {
            let opts = lago::ops::export::ExportOptions {
                vm_names: names(vms_names),
                standalone,
                compress,
                dst_dir: std::path::absolute(&export_dir).unwrap_or(export_dir),
                init_file_name,
                collect_only,
                json: false,
            };
            env.export(&opts, &SystemRunner, &Progress).map_err(to_py)
        })?;
        to_python(py, &listing)
    }

    /// The Ansible inventory (INI), grouped on `keys` and on each VM's `groups`.
    #[pyo3(signature = (keys=None))]
    fn ansible_inventory(&self, py: Python<'_>, keys: Option<Vec<String>>) -> PyResult<String> {
        let keys = keys.unwrap_or_else(|| lago::ops::ansible::DEFAULT_KEYS.iter().map(|k| (*k).to_owned()).collect());
        let env = self.env.clone();
        blocking(py, move || env.ansible_inventory(&keys).map_err(to_py))
    }

    /// Takes snapshot `name` of every VM (live for running VMs).
    fn snapshot(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let env = self.env.clone();
        blocking(py, move || env.snapshot(&name, &SystemRunner, &Progress).map_err(to_py))
    }

    /// Reverts every VM to snapshot `name`.
    fn revert(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let env = self.env.clone();
        blocking(py, move || env.revert(&name, &SystemRunner, &Progress).map_err(to_py))
    }

    /// Makes copies of the running environment (`lago fork`): `count` of them (default: one per
    /// name, else one), named `names` (default: `<prefix>-<n>`), of the environment frozen now,
    /// or, with `from_frozen`, of the frozen state of its last fork. With `wait=False`, copies
    /// that do not fit the host's memory fail at once. Returns the copies' prefix names.
    #[pyo3(signature = (count=None, names=None, from_frozen=false, wait=true))]
    fn fork_prefixes(
        &self,
        py: Python<'_>,
        count: Option<usize>,
        names: Option<Vec<String>>,
        from_frozen: bool,
        wait: bool,
    ) -> PyResult<Vec<String>> {
        let env = self.env.clone();
        blocking(py, move || {
            let opts =
                lago::ops::fork::ForkOptions { names: names.unwrap_or_default(), count, from_frozen, no_wait: !wait };
            let copies = env.fork_with(&opts, &SystemRunner, &Progress).map_err(to_py)?;
            Ok(copies.iter().map(|c| c.prefix.name()).collect())
        })
    }

    /// Captures the running environment at one instant into one artefact (`lago capture`),
    /// `<output>/<name>.lago-capture` (`output`: the current directory by default), with
    /// standalone disks when `standalone`, the init file `init_file` and the collected artifacts
    /// of the directory `artifacts` when given; the environment goes on. Returns the artefact's
    /// path.
    #[pyo3(signature = (name, output=None, standalone=false, init_file=None, artifacts=None))]
    fn capture(
        &self,
        py: Python<'_>,
        name: String,
        output: Option<PathBuf>,
        standalone: bool,
        init_file: Option<PathBuf>,
        artifacts: Option<PathBuf>,
    ) -> PyResult<String> {
        let env = self.env.clone();
        blocking(py, move || {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
            let opts = lago::ops::capture::CaptureOptions {
                name,
                output: cwd.join(output.unwrap_or_else(|| PathBuf::from("."))).components().collect(),
                standalone,
                init_file: init_file.map(|f| cwd.join(f)),
                artifacts: artifacts.map(|d| cwd.join(d)),
            };
            let captured = env.capture(&opts, &SystemRunner, &Progress).map_err(to_py)?;
            Ok(captured.path.display().to_string())
        })
    }

    /// Puts a copy made by a fork back in place to the frozen state it was made from (its VMs
    /// start again from that state, on the same networks and ports).
    fn renew(&self, py: Python<'_>) -> PyResult<()> {
        let env = self.env.clone();
        blocking(py, move || env.renew(&SystemRunner, &Progress).map_err(to_py))
    }

    /// `{vm: {snapshot: [disk, ...]}}`, in the original's shape.
    fn snapshots<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let env = self.env.clone();
        let value = blocking(py, move || env.snapshots(false).map_err(to_py))?;
        to_python(py, &value)
    }

    fn __repr__(&self) -> String {
        format!("<lago environment {}>", self.env.prefix.path.display())
    }
}

/// One VM of an environment.
#[pyclass(frozen, module = "lago._lago", name = "VM")]
pub(crate) struct Vm {
    env: Shared,
    name: String,
}

impl Vm {
    fn record(&self) -> &lago::prefix::records::VmRecord {
        // Every `Vm` is made from a name of `env.vms`.
        self.env.vms.iter().find(|v| v.name == self.name).unwrap_or(&self.env.vms[0])
    }

    fn spec_map(&self) -> PyResult<Map<String, Value>> {
        self.env.vm(&self.name).and_then(|v| v.spec()).map_err(to_py)
    }

    /// Its addresses (on `net`, or every network): the IPv4 ones, then the IPv6 ones.
    fn nets_ips(&self, net: Option<&str>) -> Vec<String> {
        let nics = || self.record().nics.iter().filter(move |n| net.is_none_or(|want| n.net == want));
        let v4 = nics().filter_map(|n| n.ip.map(|ip| ip.to_string()));
        v4.chain(nics().filter_map(|n| n.ip6.map(|ip| ip.to_string()))).collect()
    }
}

#[pymethods]
impl Vm {
    /// The VM's name.
    fn name(&self) -> String {
        self.name.clone()
    }

    /// Its address on the management network.
    fn ip(&self) -> Option<String> {
        self.record().ip().map(|ip| ip.to_string())
    }

    /// Its IPv6 address on the management network (lago's own).
    fn ip6(&self) -> Option<String> {
        self.record().ip6().map(|ip| ip.to_string())
    }

    /// Its addresses on every network.
    fn all_ips(&self) -> Vec<String> {
        self.nets_ips(None)
    }

    /// Its addresses on network `net`.
    fn ips_in_net(&self, net: &str) -> Vec<String> {
        self.nets_ips(Some(net))
    }

    /// Its NICs, as the record holds them (`{"net": ..., "ip": ...}`).
    fn nics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, self.spec_map()?.get("nics").unwrap_or(&Value::Array(Vec::new())))
    }

    /// The networks it is on, in NIC order.
    fn nets(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for n in &self.record().nics {
            if !out.contains(&n.net) {
                out.push(n.net.clone());
            }
        }
        out
    }

    /// Forwards `127.0.0.1:host_port` (a free port when `None`) to the running VM's TCP port
    /// `guest_port` (lago's own): `("127.0.0.1", port)`; a port already forwarded is returned.
    #[pyo3(signature = (guest_port, host_port=None))]
    fn forward(&self, py: Python<'_>, guest_port: u16, host_port: Option<u16>) -> PyResult<(String, u16)> {
        let (env, name) = (self.env.clone(), self.name.clone());
        blocking(py, move || {
            let f = env.forward(&name, guest_port, host_port, &Progress).map_err(to_py)?;
            Ok((lago::ops::forward::FORWARD_ADDRESS.to_owned(), f.host))
        })
    }

    /// Removes the forward to the VM's TCP port `guest_port`.
    fn unforward(&self, py: Python<'_>, guest_port: u16) -> PyResult<()> {
        let (env, name) = (self.env.clone(), self.name.clone());
        blocking(py, move || env.unforward(&name, guest_port, &Progress).map_err(to_py))
    }

    /// The VM's forwarded ports while it runs: `{guest_port: ("127.0.0.1", host_port)}`.
    fn forwards(&self) -> PyResult<std::collections::BTreeMap<u16, (String, u16)>> {
        let all = self.env.forwards().map_err(to_py)?;
        Ok(all
            .into_iter()
            .filter(|(vm, _)| *vm == self.name)
            .flat_map(|(_, fs)| fs)
            .map(|f| (f.guest, (lago::ops::forward::FORWARD_ADDRESS.to_owned(), f.host)))
            .collect())
    }

    /// The distribution of its first disk's template (`distro` of the template's metadata).
    fn distro(&self) -> PyResult<Option<String>> {
        let spec = self.spec_map()?;
        Ok(spec
            .get("disks")
            .and_then(|d| d.get(0))
            .and_then(|d| d.get("metadata"))
            .and_then(|m| m.get("distro"))
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    /// The root password (`root-password`, else the SSH password).
    fn root_password(&self) -> PyResult<Option<String>> {
        let spec = self.spec_map()?;
        Ok(["root-password", "ssh-password"]
            .iter()
            .find_map(|k| spec.get(*k).and_then(Value::as_str))
            .map(str::to_owned))
    }

    /// `running` or `down`, as `lago status` says.
    fn state(&self, py: Python<'_>) -> PyResult<String> {
        let (env, name) = (self.env.clone(), self.name.clone());
        blocking(py, move || Ok(env.state(&name).to_string()))
    }

    /// Whether it runs.
    fn running(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.state(py)? == "running")
    }

    /// Starts it and waits until it answers SSH.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        let (env, name) = (self.env.clone(), self.name.clone());
        blocking(py, move || env.start(&[name], &Progress).map_err(to_py))
    }

    /// Powers it off at once.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let (env, name) = (self.env.clone(), self.name.clone());
        blocking(py, move || env.stop(&[name], &Progress).map_err(to_py))
    }

    /// Shuts it down through ACPI.
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        let (env, name) = (self.env.clone(), self.name.clone());
        blocking(py, move || {
            lago::ops::guest::shutdown(&env, &[name], false, std::time::Duration::from_secs(300), &Progress)
                .map_err(to_py)
        })
    }

    /// Reboots it and waits until it answers SSH again.
    fn reboot(&self, py: Python<'_>) -> PyResult<()> {
        let (env, name) = (self.env.clone(), self.name.clone());
        blocking(py, move || {
            lago::ops::guest::shutdown(&env, &[name], true, std::time::Duration::from_secs(300), &Progress)
                .map_err(to_py)
        })
    }

    /// Runs command line `line` in the VM (its shell reads it as it is), `data` on its standard
    /// input, the connection tried `tries` times (`None`: `ssh_tries`): `CommandStatus`.
    #[pyo3(signature = (line, data=None, tries=None))]
    fn exec_line(
        &self,
        py: Python<'_>,
        line: String,
        data: Option<Vec<u8>>,
        tries: Option<u32>,
    ) -> PyResult<Py<PyAny>> {
        let (env, name) = (self.env.clone(), self.name.clone());
        let st =
            blocking(py, move || env.vm(&name).and_then(|v| v.run_line(&line, data.as_deref(), tries)).map_err(to_py))?;
        status(py, &st)
    }

    /// Runs `argv` in the VM, each argument quoted for its shell (lago's own call, where the
    /// original's `ssh` joins a list with spaces), `data` on its standard input: `CommandStatus`.
    #[pyo3(signature = (argv, data=None))]
    fn run(&self, py: Python<'_>, argv: Vec<String>, data: Option<Vec<u8>>) -> PyResult<Py<PyAny>> {
        let line = argv.iter().map(|a| lago::host::ssh::quote(a)).collect::<Vec<_>>().join(" ");
        self.exec_line(py, line, data, Some(1))
    }

    /// Runs a local script in the VM (`bash -s` where it has bash): `CommandStatus`.
    fn ssh_script(&self, py: Python<'_>, path: PathBuf) -> PyResult<Py<PyAny>> {
        let (env, name) = (self.env.clone(), self.name.clone());
        let st = blocking(py, move || env.vm(&name).and_then(|v| v.ssh_script(&path)).map_err(to_py))?;
        status(py, &st)
    }

    /// An interactive shell (or command line `line`) on this process's terminal; its exit code.
    #[pyo3(signature = (line=None))]
    fn interactive_ssh(&self, py: Python<'_>, line: Option<String>) -> PyResult<i32> {
        let (env, name) = (self.env.clone(), self.name.clone());
        py.detach(move || env.vm(&name).and_then(|v| v.interactive_ssh(line.as_deref())).map_err(to_py))
    }

    /// Where SSH reaches the running VM: `(host, port, private key)`.
    fn ssh_endpoint(&self, py: Python<'_>) -> PyResult<(String, u16, PathBuf)> {
        let (env, name) = (self.env.clone(), self.name.clone());
        blocking(py, move || {
            let t = env.ssh_target(&name).map_err(to_py)?;
            Ok((t.host, t.port, t.key))
        })
    }

    /// This process's terminal on the VM's serial console until Ctrl-].
    fn interactive_console(&self, py: Python<'_>) -> PyResult<()> {
        let (env, name) = (self.env.clone(), self.name.clone());
        py.detach(move || lago::ops::console::attach(&env, &name).map_err(to_py))
    }

    /// Its serial console's log file (`logs/<vm>.console.log` in the prefix).
    fn console_log(&self) -> String {
        lago::prefix::Layout::new(&self.env.prefix.path).console_log(&self.name).display().to_string()
    }

    /// The last `lines` lines of its console log (empty when it has none).
    #[pyo3(signature = (lines=20))]
    fn console_tail(&self, lines: usize) -> String {
        lago::provider::tail_file(&lago::prefix::Layout::new(&self.env.prefix.path).console_log(&self.name), lines)
    }

    /// Waits until it answers SSH.
    fn wait_for_ssh(&self, py: Python<'_>) -> PyResult<()> {
        let (env, name) = (self.env.clone(), self.name.clone());
        blocking(py, move || env.vm(&name).and_then(|v| v.wait_for_ssh(&Progress)).map_err(to_py))
    }

    /// Whether it runs and answers SSH, trying `tries` times a second apart (once by default).
    #[pyo3(signature = (tries=None))]
    fn ssh_reachable(&self, py: Python<'_>, tries: Option<u32>) -> PyResult<bool> {
        let (env, name) = (self.env.clone(), self.name.clone());
        blocking(py, move || {
            let vm = env.vm(&name).map_err(to_py)?;
            for attempt in 0..tries.unwrap_or(1).max(1) {
                if attempt > 0 {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                    lago::host::interrupt::check().map_err(|e| to_py(lago::env::EnvError::from(e)))?;
                }
                if vm.ssh_reachable() {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    /// Waits until command line `command` exits with 0 in the VM, `timeout` seconds at most:
    /// the successful try's `CommandStatus`.
    #[pyo3(signature = (command, timeout=None))]
    fn wait_for(&self, py: Python<'_>, command: String, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let (env, name, timeout) = (self.env.clone(), self.name.clone(), wait_timeout(timeout)?);
        let st = blocking(py, move || env.vm(&name).map_err(to_py)?.wait_for(&command, timeout).map_err(to_py))?;
        status(py, &st)
    }

    /// Waits until a TCP socket listens on `port` in the VM, `timeout` seconds at most.
    #[pyo3(signature = (port, timeout=None))]
    fn wait_for_port(&self, py: Python<'_>, port: u16, timeout: Option<f64>) -> PyResult<()> {
        let (env, name, timeout) = (self.env.clone(), self.name.clone(), wait_timeout(timeout)?);
        blocking(py, move || env.vm(&name).map_err(to_py)?.wait_for_port(port, timeout).map_err(to_py))
    }

    /// Waits until service `unit` is active in the VM, `timeout` seconds at most.
    #[pyo3(signature = (unit, timeout=None))]
    fn wait_for_unit(&self, py: Python<'_>, unit: String, timeout: Option<f64>) -> PyResult<()> {
        let (env, name, timeout) = (self.env.clone(), self.name.clone(), wait_timeout(timeout)?);
        blocking(py, move || env.vm(&name).map_err(to_py)?.wait_for_unit(&unit, timeout).map_err(to_py))
    }

    /// Waits until `path` exists in the VM, `timeout` seconds at most.
    #[pyo3(signature = (path, timeout=None))]
    fn wait_for_file(&self, py: Python<'_>, path: String, timeout: Option<f64>) -> PyResult<()> {
        let (env, name, timeout) = (self.env.clone(), self.name.clone(), wait_timeout(timeout)?);
        blocking(py, move || env.vm(&name).map_err(to_py)?.wait_for_file(&path, timeout).map_err(to_py))
    }

    /// Waits until a line of the VM's console (since it started) matches `regex`, `timeout`
    /// seconds at most: the line.
    #[pyo3(signature = (regex, timeout=None))]
    fn wait_for_console(&self, py: Python<'_>, regex: String, timeout: Option<f64>) -> PyResult<String> {
        let (env, name, timeout) = (self.env.clone(), self.name.clone(), wait_timeout(timeout)?);
        blocking(py, move || env.vm(&name).map_err(to_py)?.wait_for_console(&regex, timeout).map_err(to_py))
    }

    /// The CPU model and vendor: `(model or None, vendor)`.
    fn cpu(&self, py: Python<'_>) -> PyResult<(Option<String>, String)> {
        let (env, name) = (self.env.clone(), self.name.clone());
        blocking(py, move || Ok(env.vm(&name).map_err(to_py)?.cpu()))
    }

    /// The name of the VM's service manager (`systemd`, `sysvinit`): the spec's
    /// `service_provider`, else what the VM has.
    fn service_provider(&self, py: Python<'_>) -> PyResult<String> {
        let (env, name) = (self.env.clone(), self.name.clone());
        blocking(py, move || {
            let vm = env.vm(&name).map_err(to_py)?;
            let provider = vm.service_provider().map_err(to_py)?;
            Ok(lago::ops::service::ServiceProvider::ALL
                .iter()
                .find(|(p, _, _)| *p == provider)
                .map(|(_, n, _)| (*n).to_owned())
                .unwrap_or_default())
        })
    }

    /// The state of service `service` under manager `provider`: `missing`, `inactive` or `active`.
    fn service_state(&self, py: Python<'_>, service: String, provider: String) -> PyResult<String> {
        let (env, name) = (self.env.clone(), self.name.clone());
        blocking(py, move || {
            let vm = env.vm(&name).map_err(to_py)?;
            let state = vm.service_with(&service, service_provider(&provider)?).state().map_err(to_py)?;
            Ok(format!("{state:?}").to_lowercase())
        })
    }

    /// Runs `action` (`start`, `stop`) on service `service` under manager `provider`:
    /// `CommandStatus`.
    fn service_request(
        &self,
        py: Python<'_>,
        service: String,
        provider: String,
        action: String,
    ) -> PyResult<Py<PyAny>> {
        let (env, name) = (self.env.clone(), self.name.clone());
        let st = blocking(py, move || {
            let vm = env.vm(&name).map_err(to_py)?;
            vm.service_with(&service, service_provider(&provider)?).request_raw(&action).map_err(to_py)
        })?;
        status(py, &st)
    }

    /// Exports this VM's disks into `dst_dir` (no init file): `{vm: [files]}`.
    #[pyo3(signature = (standalone=true, dst_dir=None, compress=false, collect_only=false))]
    fn export_disks<'py>(
        &self,
        py: Python<'py>,
        standalone: bool,
        dst_dir: Option<PathBuf>,
        compress: bool,
        collect_only: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (env, name) = (self.env.clone(), self.name.clone());
        let listing = blocking(py, move || {
            let dst = dst_dir.unwrap_or_else(|| PathBuf::from("."));
            let opts = lago::ops::export::ExportOptions {
                vm_names: vec![name],
                standalone,
                compress,
                dst_dir: std::path::absolute(&dst).unwrap_or(dst),
                init_file_name: String::new(),
                collect_only,
                json: false,
            };
            env.export(&opts, &SystemRunner, &Progress).map_err(to_py)
        })?;
        to_python(py, &listing)
    }

    /// Copies a local file or directory into the VM (always recursively).
    #[pyo3(signature = (local_path, remote_path, recursive=true))]
    fn copy_to(&self, py: Python<'_>, local_path: PathBuf, remote_path: String, recursive: bool) -> PyResult<()> {
        let _ = recursive;
        let (env, name) = (self.env.clone(), self.name.clone());
        blocking(py, move || lago::ops::guest::copy_to(&env, &name, &local_path, &remote_path).map_err(to_py))
    }

    /// Copies a file or directory out of the VM; without `propagate_fail`, a failure is only
    /// logged.
    #[pyo3(signature = (remote_path, local_path, recursive=true, propagate_fail=true))]
    fn copy_from(
        &self,
        py: Python<'_>,
        remote_path: String,
        local_path: PathBuf,
        recursive: bool,
        propagate_fail: bool,
    ) -> PyResult<()> {
        let _ = recursive;
        let (env, name) = (self.env.clone(), self.name.clone());
        blocking(py, move || match lago::ops::guest::copy_from(&env, &name, &remote_path, &local_path) {
            Err(e) if !propagate_fail => {
                tracing::warn!(target: "lago::ops::guest", "{e}");
                Ok(())
            }
            other => other.map_err(to_py),
        })
    }

    /// Copies `(guest path, host path)` pairs out of the VM; missing guest paths raise unless
    /// `ignore_nopath`.
    #[pyo3(signature = (paths, ignore_nopath=false))]
    fn extract_paths(&self, py: Python<'_>, paths: Vec<(String, PathBuf)>, ignore_nopath: bool) -> PyResult<()> {
        let (env, name) = (self.env.clone(), self.name.clone());
        blocking(py, move || lago::ops::guest::extract_paths(&env, &name, &paths, ignore_nopath).map_err(to_py))
    }

    /// Copies `(guest path, host path)` pairs out of the VM's disk, without its OS (guestfish);
    /// missing guest paths raise unless `ignore_nopath`.
    #[pyo3(signature = (paths, ignore_nopath=false))]
    fn extract_paths_dead(&self, py: Python<'_>, paths: Vec<(String, PathBuf)>, ignore_nopath: bool) -> PyResult<()> {
        let (env, name) = (self.env.clone(), self.name.clone());
        blocking(py, move || lago::ops::guest::extract_paths_dead(&env, &name, &paths, ignore_nopath).map_err(to_py))
    }

    /// The VM's `artifacts` into `host_path` (`<path with / replaced by _>` each).
    #[pyo3(signature = (host_path, ignore_nopath=false))]
    fn collect_artifacts(&self, py: Python<'_>, host_path: PathBuf, ignore_nopath: bool) -> PyResult<()> {
        let (env, name) = (self.env.clone(), self.name.clone());
        blocking(py, move || {
            let dir = std::path::absolute(&host_path).unwrap_or(host_path);
            lago::ops::guest::collect_vm_artifacts(&env, &name, &dir, !ignore_nopath, &Progress).map_err(to_py)
        })
    }

    /// Cuts this VM's links on `nets` (all of them by default): the guest sees no carrier.
    #[pyo3(signature = (nets=None))]
    fn cut_link(&self, py: Python<'_>, nets: Option<Vec<String>>) -> PyResult<()> {
        let (env, vm) = (self.env.clone(), self.name.clone());
        blocking(py, move || env.cut(&vm, &names(nets), &Progress).map_err(to_py))
    }

    /// Restores this VM's links on `nets` (all by default): cut links come up, degraded ones are
    /// whole again.
    #[pyo3(signature = (nets=None))]
    fn restore_link(&self, py: Python<'_>, nets: Option<Vec<String>>) -> PyResult<()> {
        let (env, vm) = (self.env.clone(), self.name.clone());
        blocking(py, move || env.restore(&vm, &names(nets), &Progress).map_err(to_py))
    }

    /// Degrades this VM's link to `net`: `delay` (ms a round trip grows by), `jitter` (± ms each
    /// way), `loss` (percent each way), `rate` (kbit/s each way).
    #[pyo3(signature = (net, delay=0, jitter=0, loss=0.0, rate=0))]
    fn degrade(&self, py: Python<'_>, net: String, delay: u32, jitter: u32, loss: f64, rate: u32) -> PyResult<()> {
        let (env, vm) = (self.env.clone(), self.name.clone());
        let how =
            lago::prefix::state::Impairment { delay_ms: delay, jitter_ms: jitter, loss_pct: loss, rate_kbit: rate };
        blocking(py, move || env.degrade(&vm, &net, how, &Progress).map_err(to_py))
    }

    /// Takes snapshot `name` of this VM only.
    fn create_snapshot(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let (env, vm) = (self.env.clone(), self.name.clone());
        blocking(py, move || env.snapshot_vms(&[vm], &name, &SystemRunner, &Progress).map_err(to_py))
    }

    /// Reverts this VM to snapshot `name`.
    fn revert_snapshot(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let (env, vm) = (self.env.clone(), self.name.clone());
        blocking(py, move || env.revert_vms(&[vm], &name, &SystemRunner, &Progress).map_err(to_py))
    }

    /// Its record (a copy), as `virt/vm-<name>` holds it.
    #[getter]
    fn spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &Value::Object(self.spec_map()?))
    }

    /// Its `metadata`.
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, self.spec_map()?.get("metadata").unwrap_or(&Value::Object(Map::new())))
    }

    /// Its disks, as the record holds them.
    #[getter]
    fn disks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, self.spec_map()?.get("disks").unwrap_or(&Value::Array(Vec::new())))
    }

    /// Its `groups` (a list).
    #[getter]
    fn groups(&self) -> PyResult<Vec<String>> {
        Ok(match self.spec_map()?.get("groups") {
            Some(Value::String(g)) => vec![g.clone()],
            Some(Value::Array(a)) => a.iter().filter_map(|g| g.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        })
    }

    /// The name of its management network (the original's `mgmt_name`).
    #[getter]
    fn mgmt_name(&self) -> String {
        self.record().mgmt_net.clone()
    }

    /// Its `vm-type`.
    #[getter]
    fn vm_type(&self) -> PyResult<String> {
        Ok(self.spec_map()?.get("vm-type").and_then(Value::as_str).unwrap_or("default").to_owned())
    }

    fn __repr__(&self) -> String {
        format!("<lago VM {}>", self.name)
    }
}

/// One network of an environment.
#[pyclass(frozen, module = "lago._lago")]
pub(crate) struct Network {
    env: Shared,
    name: String,
}

impl Network {
    fn spec_map(&self) -> PyResult<Map<String, Value>> {
        let nets = self.env.net_specs().map_err(to_py)?;
        Ok(nets.into_iter().find(|(n, _)| *n == self.name).map(|(_, m)| m).unwrap_or_default())
    }
}

#[pymethods]
impl Network {
    /// The network's name.
    fn name(&self) -> String {
        self.name.clone()
    }

    /// Its gateway address.
    fn gw(&self) -> PyResult<Option<String>> {
        Ok(self.spec_map()?.get("gw").and_then(Value::as_str).map(str::to_owned))
    }

    /// Its IPv6 gateway address (lago's own).
    fn gw6(&self) -> PyResult<Option<String>> {
        Ok(lago::prefix::records::net_ipv6(&self.spec_map()?).map(|(_, gw6)| gw6.to_string()))
    }

    /// Its IPv6 prefix, `fd8f:1:2::/64` (lago's own).
    fn ipv6_prefix(&self) -> PyResult<Option<String>> {
        Ok(lago::prefix::records::net_ipv6(&self.spec_map()?).map(|(prefix, _)| format!("{prefix}/64")))
    }

    /// Its MTU (1500 unless set).
    fn mtu(&self) -> PyResult<u64> {
        Ok(self.spec_map()?.get("mtu").and_then(Value::as_u64).unwrap_or(1500))
    }

    /// Whether it is a management network.
    fn is_management(&self) -> PyResult<bool> {
        Ok(self.spec_map()?.get("management").and_then(Value::as_bool).unwrap_or(false))
    }

    /// Partitions the network: VMs in different `groups` (lists of VM names) cannot exchange a
    /// frame on it; VMs of the network in no group form one more group together.
    fn partition(&self, py: Python<'_>, groups: Vec<Vec<String>>) -> PyResult<()> {
        let (env, net) = (self.env.clone(), self.name.clone());
        blocking(py, move || env.partition(&net, &groups, &Progress).map_err(to_py))
    }

    /// Whether the network is up (its switch runs, or libvirt's network is active).
    fn alive(&self, py: Python<'_>) -> PyResult<bool> {
        let (env, net) = (self.env.clone(), self.name.clone());
        blocking(py, move || env.net_alive(&net).map_err(to_py))
    }

    /// Brings the network up.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        let (env, net) = (self.env.clone(), self.name.clone());
        blocking(py, move || env.start_net(&net, &Progress).map_err(to_py))
    }

    /// Takes the network down (VMs on it stay up and lose it until it starts again).
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let (env, net) = (self.env.clone(), self.name.clone());
        blocking(py, move || env.stop_net(&net, &Progress).map_err(to_py))
    }

    /// Undoes the network's partition.
    fn heal(&self, py: Python<'_>) -> PyResult<()> {
        let (env, net) = (self.env.clone(), self.name.clone());
        blocking(py, move || env.heal(&net, &Progress).map_err(to_py))
    }

    /// The address of host name `name` on this network (`vm01`, `vm01-eth0`...).
    fn resolve(&self, name: &str) -> PyResult<Option<String>> {
        Ok(self.spec_map()?.get("mapping").and_then(|m| m.get(name)).and_then(Value::as_str).map(str::to_owned))
    }

    /// `{host name: address}`.
    fn mapping<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, self.spec_map()?.get("mapping").unwrap_or(&Value::Object(Map::new())))
    }

    /// Its record (a copy), as `virt/net-<name>` holds it.
    #[getter]
    fn spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &Value::Object(self.spec_map()?))
    }

    fn __repr__(&self) -> String {
        format!("<lago network {}>", self.name)
    }
}

/// The files of an environment.
#[pyclass(frozen, module = "lago._lago")]
pub(crate) struct Paths {
    prefix: PathBuf,
}

fn joined(base: PathBuf, parts: &Bound<'_, PyTuple>) -> PyResult<String> {
    let mut p = base;
    for part in parts.iter() {
        p.push(part.extract::<String>()?);
    }
    Ok(p.display().to_string())
}

#[pymethods]
impl Paths {
    /// The prefix directory.
    fn prefix_path(&self) -> String {
        self.prefix.display().to_string()
    }

    /// The environment's UUID.
    fn uuid(&self) -> PyResult<String> {
        lago::prefix::Prefix { path: self.prefix.clone() }.uuid().map_err(to_py)
    }

    /// The private SSH key.
    fn ssh_id_rsa(&self) -> String {
        lago::prefix::Layout::new(&self.prefix).ssh_key().display().to_string()
    }

    /// The public SSH key.
    fn ssh_id_rsa_pub(&self) -> String {
        lago::prefix::Layout::new(&self.prefix).ssh_public_key().display().to_string()
    }

    /// `images/` (joined with `parts`).
    #[pyo3(signature = (*parts))]
    fn images(&self, parts: &Bound<'_, PyTuple>) -> PyResult<String> {
        joined(self.prefix.join("images"), parts)
    }

    /// `virt/` (joined with `parts`).
    #[pyo3(signature = (*parts))]
    fn virt(&self, parts: &Bound<'_, PyTuple>) -> PyResult<String> {
        joined(self.prefix.join("virt"), parts)
    }

    /// `scripts/` (joined with `parts`).
    #[pyo3(signature = (*parts))]
    fn scripts(&self, parts: &Bound<'_, PyTuple>) -> PyResult<String> {
        joined(self.prefix.join("scripts"), parts)
    }

    /// `logs/`.
    fn logs(&self) -> String {
        self.prefix.join("logs").display().to_string()
    }

    /// `metadata`.
    fn metadata(&self) -> String {
        self.prefix.join("metadata").display().to_string()
    }

    /// `initialized`, the marker `init` writes last.
    fn prefix_lagofile(&self) -> String {
        lago::prefix::Layout::new(&self.prefix).initialized().display().to_string()
    }

    /// The prefix joined with `parts`.
    #[pyo3(signature = (*parts))]
    fn prefixed(&self, parts: &Bound<'_, PyTuple>) -> PyResult<String> {
        joined(self.prefix.clone(), parts)
    }

    fn __repr__(&self) -> String {
        format!("<lago paths {}>", self.prefix.display())
    }
}

/// A service manager by name.
fn service_provider(name: &str) -> PyResult<lago::ops::service::ServiceProvider> {
    lago::ops::service::ServiceProvider::from_name(name).ok_or_else(|| {
        pyo3::exceptions::PyValueError::new_err(format!("unknown service manager {name:?} (known: systemd, sysvinit)"))
    })
}
