//! `lago._lago`: the native module under the Python package `lago` (`from lago import sdk`).
//!
//! Every call goes to the Rust library; nothing of lago's behaviour is written again here. Calls
//! that wait (init, start, ssh, copy, snapshot, collect...) run with the GIL released, on a
//! worker thread, while the calling thread watches for Ctrl-C: a `KeyboardInterrupt` raises the
//! library's interrupt flag, so the operation unwinds as it does for the CLI (VMs it started are
//! stopped again), and then the `KeyboardInterrupt` reaches the caller. lago's log records go to
//! Python's `logging` (loggers `lago`, `lago.env`, ...) and to the prefix's `logs/lago.log`.

mod convert;
mod logging;
mod objects;

use std::path::PathBuf;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;

create_exception!(lago, LagoError, PyException, "A lago operation failed; the message holds its causes.");
create_exception!(
    lago,
    LagoUserError,
    LagoError,
    "The input or the request is wrong (an init file, a name, an option), not the host."
);

/// The class of the original's that a failure of `kind` raised (module, class): all of them
/// subclasses of `LagoError` (defined in the Python modules of the original's names).
fn original_class(kind: lago::diagnose::Kind) -> (&'static str, &'static str) {
    use lago::diagnose::Kind;
    match kind {
        Kind::PrefixExists => ("lago.workdir", "LagoPrefixAlreadyExistsError"),
        Kind::PrefixNotFound => ("lago.workdir", "PrefixNotFound"),
        Kind::MalformedWorkdir => ("lago.workdir", "MalformedWorkdir"),
        Kind::VmNotRunning => ("lago.plugins.vm", "LagoVMNotRunningError"),
        Kind::NoPath => ("lago.plugins.vm", "ExtractPathNoPathError"),
        Kind::CopyToVm => ("lago.plugins.vm", "LagoCopyFilesToVMError"),
        Kind::CopyFromVm => ("lago.plugins.vm", "LagoCopyFilesFromVMError"),
        Kind::SshTimeout => ("lago.ssh", "LagoSSHTimeoutException"),
        Kind::WaitTimeout => ("lago.plugins.vm", "LagoWaitTimeoutError"),
    }
}

/// A library error as a Python exception: the original's class for the failures it told apart
/// (`PrefixAlreadyExists`, `LagoVMNotRunningError`, `ExtractPathNoPathError`...), else
/// `LagoUserError` for the user's input and `LagoError` otherwise; the message is the error,
/// each cause on a `Caused by:` line, and the hint.
pub(crate) fn to_py<E>(e: E) -> PyErr
where
    E: lago::diagnose::Diagnose + std::error::Error,
{
    let rendered = lago::diagnose::render(&e);
    let text = rendered.text();
    if let Some(kind) = rendered.kind {
        let (module, class) = original_class(kind);
        let made = Python::attach(|py| -> PyResult<PyErr> {
            let class = py.import(module)?.getattr(class)?;
            let instance = class.call1((text.clone(),))?;
            Ok(PyErr::from_value(instance))
        });
        if let Ok(err) = made {
            return err;
        }
    }
    if rendered.user { LagoUserError::new_err(text) } else { LagoError::new_err(text) }
}

/// Runs `work` with the GIL released, on a worker thread; Ctrl-C (a pending `KeyboardInterrupt`)
/// interrupts it through lago's interrupt flag and is raised once the work has unwound.
pub(crate) fn blocking<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> PyResult<T> + Send,
{
    py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::channel();
            s.spawn(move || {
                let _ = tx.send(work());
            });
            loop {
                match rx.recv_timeout(std::time::Duration::from_millis(100)) {
                    Ok(result) => return result,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        if let Err(interrupt) = Python::attach(|py| py.check_signals()) {
                            lago::host::interrupt::raise(lago::host::interrupt::SIGNALS[0]);
                            let _ = rx.recv();
                            lago::host::interrupt::reset();
                            return Err(interrupt);
                        }
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                        return Err(LagoError::new_err("the worker thread of a lago call ended without a result"));
                    }
                }
            }
        })
    })
}

/// Creates the environment of `config` (an init file) in `workdir` (default `./.lago`) and
/// returns the workdir. `options` are the `[init]` options (`template_repo_path`,
/// `template_store`, `skip_bootstrap`...).
#[pyfunction]
#[pyo3(signature = (config, workdir=None, options=None))]
fn init_workdir(
    py: Python<'_>,
    config: PathBuf,
    workdir: Option<PathBuf>,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<PathBuf> {
    let mut opts: Vec<(String, String)> = Vec::new();
    if let Some(d) = options {
        for (k, v) in d.iter() {
            let value = if let Ok(b) = v.extract::<bool>() { b.to_string() } else { v.str()?.to_string() };
            opts.push((k.extract::<String>()?, value));
        }
    }
    blocking(py, move || {
        let env = lago::sdk::init_with(&config, workdir.as_deref(), &opts, &logging::Progress).map_err(to_py)?;
        Ok(env.prefix.path.parent().map(PathBuf::from).unwrap_or_default())
    })
}

/// The names of the VMs of an init file, in file order (for the pytest plugin's `lago_vm`).
#[pyfunction]
fn vm_names_of(py: Python<'_>, config: PathBuf) -> PyResult<Vec<String>> {
    blocking(py, move || {
        let spec = lago::spec::load(&config).map_err(|e| to_py(lago::ops::init::InitError::Spec(e)))?;
        Ok(spec.domains.iter().map(|d| d.name.clone()).collect())
    })
}

/// Runs command line `line` with `sh -c` (the original's `run_command` joined its arguments in
/// double quotes for a shell), `input` on standard input, `env` as the whole environment when
/// given: `(code, out, err)` with bytes.
#[pyfunction]
#[pyo3(signature = (line, input=None, env=None, cwd=None))]
fn run_shell(
    py: Python<'_>,
    line: String,
    input: Option<Vec<u8>>,
    env: Option<Vec<(String, String)>>,
    cwd: Option<PathBuf>,
) -> PyResult<Py<PyAny>> {
    let (code, out, err) = blocking(py, move || {
        let mut inv = shell_invocation(&line, env, cwd);
        if let Some(data) = input {
            inv = inv.input(data);
        }
        let out =
            lago::host::process::output(&inv).map_err(|e| LagoError::new_err(format!("Cannot run `{line}`: {e}")))?;
        Ok((out.status.code().unwrap_or(-1), out.stdout, out.stderr))
    })?;
    objects::command_status(py, code, &out, &err)
}

/// Runs command line `line` with `sh -c` on this process's terminal: its exit code.
#[pyfunction]
#[pyo3(signature = (line, env=None, cwd=None))]
fn run_interactive_shell(
    py: Python<'_>,
    line: String,
    env: Option<Vec<(String, String)>>,
    cwd: Option<PathBuf>,
) -> PyResult<i32> {
    py.detach(move || {
        let inv = shell_invocation(&line, env, cwd);
        let status = lago::host::process::run_interactive(&inv).map_err(|e| LagoError::new_err(e.to_string()))?;
        Ok(status.code().unwrap_or(-1))
    })
}

/// `sh -c LINE`, in `cwd`, with exactly `env` when given.
fn shell_invocation(
    line: &str,
    env: Option<Vec<(String, String)>>,
    cwd: Option<PathBuf>,
) -> lago::host::process::Invocation {
    let mut inv = lago::host::process::Invocation::new("sh").args(["-c", line]);
    if let Some(vars) = env {
        inv = inv.clear_env();
        for (k, v) in vars {
            inv = inv.env(&k, v);
        }
    }
    if let Some(dir) = cwd {
        inv = inv.cwd(&dir);
    }
    inv
}

/// `qemu-img info` of `path` as qemu-img prints it (a dict; a list with `backing_chain`).
#[pyfunction]
#[pyo3(signature = (path, backing_chain=false))]
fn qemu_img_info<'py>(py: Python<'py>, path: PathBuf, backing_chain: bool) -> PyResult<Bound<'py, PyAny>> {
    let value = blocking(py, move || {
        lago::host::images::Images::new(&lago::host::process::SystemRunner)
            .info_document(&path, backing_chain)
            .map_err(to_py)
    })?;
    convert::to_python(py, &value)
}

/// Runs command line `line` on a machine that is not a VM of lago's, over SSH at `host`:`port`
/// as `user`, with `key` and/or `password`, the connection tried `tries` times: `CommandStatus`.
/// No host key is kept (the original's paramiko `AutoAddPolicy`).
#[pyfunction]
#[pyo3(signature = (host, line, port=22, user="root".to_owned(), key=None, password=None, data=None, tries=None, host_name=None))]
#[allow(clippy::too_many_arguments, reason = "the original's `lago.ssh.ssh` arguments")]
fn ssh_host(
    py: Python<'_>,
    host: String,
    line: String,
    port: u16,
    user: String,
    key: Option<PathBuf>,
    password: Option<String>,
    data: Option<Vec<u8>>,
    tries: Option<u32>,
    host_name: Option<String>,
) -> PyResult<Py<PyAny>> {
    let tries = match tries {
        Some(n) => n,
        None => ssh_tries(py)?,
    };
    let name = host_name.unwrap_or_else(|| host.clone());
    let target = lago::host::ssh::Target {
        vm: name.clone(),
        user,
        port,
        host,
        key: key.unwrap_or_default(),
        known_hosts: PathBuf::from("/dev/null"),
        control: None,
        password,
    };
    let st = blocking(py, move || {
        let started = std::time::Instant::now();
        let (st, connected) = target
            .exec_line_tries(&line, data.as_deref(), tries)
            .map_err(|source| to_py(lago::env::EnvError::Ssh { vm: name.clone(), source }))?;
        if connected {
            return Ok(st);
        }
        Err(to_py(lago::env::EnvError::SshUnreachable {
            vm: name,
            tries: tries.max(1),
            secs: started.elapsed().as_secs(),
            stderr: String::from_utf8_lossy(&st.err).trim().to_owned(),
        }))
    })?;
    objects::command_status(py, st.code, &st.out, &st.err)
}

/// `value` (JSON text) in output format `format` (`default`, `flat`, `json`, `yaml`), as
/// `lago status -f FORMAT` prints it.
#[pyfunction]
fn render_output(format: &str, value: &str) -> PyResult<String> {
    let format = lago::output::Format::from_name(format)
        .ok_or_else(|| pyo3::exceptions::PyValueError::new_err(format!("unknown output format {format:?}")))?;
    let value: serde_json::Value =
        serde_json::from_str(value).map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
    Ok(format.render(&value))
}

/// `ssh_tries` of the configuration (100 unless set).
#[pyfunction]
fn ssh_tries(py: Python<'_>) -> PyResult<u32> {
    blocking(py, || {
        let session = lago::session::Session::open(lago::session::Location::default(), &[]).map_err(to_py)?;
        Ok(session.env_options().map_err(to_py)?.ssh_tries)
    })
}

/// The prefix that `--prefix-path`, `--workdir-path` and `--prefix-name` name (each optional,
/// found from the current directory otherwise), as the CLI finds it: `(prefix, workdir)`, the
/// workdir `None` for a prefix given by its path.
#[pyfunction]
#[pyo3(signature = (prefix_path=None, workdir_path=None, prefix_name=None))]
fn resolve_prefix(
    py: Python<'_>,
    prefix_path: Option<String>,
    workdir_path: Option<String>,
    prefix_name: Option<String>,
) -> PyResult<(PathBuf, Option<PathBuf>)> {
    blocking(py, move || {
        let location = lago::session::Location { prefix_path, workdir_path };
        let overrides: Vec<(&str, String)> = prefix_name.map(|n| ("prefix_name", n)).into_iter().collect();
        let session = lago::session::Session::open(location, &overrides).map_err(to_py)?;
        let (prefix, workdir) = session.prefix(&lago::report::NoopReporter).map_err(to_py)?;
        Ok((prefix.path, workdir.map(|w| w.path)))
    })
}

/// Keeps the environment of `prefix` past its use: the host's register of environments says
/// `who` keeps it (`lago envs`). Returns the lines that say how to reach it (its workdir, each
/// VM's `lago shell` and `ssh` command lines and forwards: see `lago::ops::reach`).
#[pyfunction]
#[pyo3(signature = (prefix, who, workdir=None))]
fn keep_env(py: Python<'_>, prefix: PathBuf, who: String, workdir: Option<PathBuf>) -> PyResult<Vec<String>> {
    blocking(py, move || {
        let session = lago::session::Session::open(lago::session::Location::default(), &[]).map_err(to_py)?;
        session.register().keep(&prefix, &who).map_err(to_py)?;
        let env = lago::sdk::load_prefix(&prefix).map_err(to_py)?;
        Ok(lago::ops::reach::reach_lines(&env, workdir.as_deref()))
    })
}

/// Who keeps the environment of `prefix` (`keep_env`'s `who`), `None` when nobody does.
#[pyfunction]
fn env_keeper(py: Python<'_>, prefix: PathBuf) -> PyResult<Option<String>> {
    blocking(py, move || {
        let session = lago::session::Session::open(lago::session::Location::default(), &[]).map_err(to_py)?;
        let entries = session.register().read().map_err(to_py)?;
        let prefix = std::path::absolute(&prefix).unwrap_or(prefix);
        Ok(entries.into_iter().find(|e| e.prefix == prefix).and_then(|e| e.kept_by))
    })
}

/// Runs a helper process (`python -m lago._switch ARGS`: a network's switch, a forward's relay):
/// the SDK starts them through the interpreter, where the CLI runs `lago __switch`.
#[pyfunction]
fn run_switch(py: Python<'_>, args: Vec<String>) -> PyResult<i32> {
    let Some(helper) = lago::provider::Helper::parse(&args) else {
        return Err(pyo3::exceptions::PyValueError::new_err(format!("usage: {}", lago::provider::Helper::USAGE)));
    };
    // Its log is its stderr (lago points it at `logs/switch-<net>.log`, `logs/forward-<vm>.log`).
    py.detach(move || match helper.run() {
        Ok(()) => Ok(0),
        Err(e) => {
            tracing::error!("{}", lago::diagnose::render(&e).text().replace('\n', ": "));
            Ok(1)
        }
    })
}

#[pymodule]
fn _lago(m: &Bound<'_, PyModule>) -> PyResult<()> {
    logging::install();
    // A process of the SDK runs many commands in the same VMs: each VM's session stays open.
    lago::host::ssh_session::keep_sessions(true);
    // Switches run through this interpreter (`lago` itself may not be installed), finding this
    // package where it is now, whatever the environment of the program (pytester changes HOME,
    // and with it the user's site-packages).
    let py = m.py();
    let python: String = py.import("sys")?.getattr("executable")?.extract()?;
    let package: PathBuf = py.import("lago")?.getattr("__file__")?.extract()?;
    let site = package.parent().and_then(|p| p.parent()).map(|p| p.display().to_string()).unwrap_or_default();
    let code = format!(
        "import sys; sys.path.insert(0, {}); import runpy; runpy.run_module('lago._switch', run_name='__main__')",
        serde_json::Value::String(site)
    );
    lago::provider::qemu::switch::set_launcher(vec![python, "-c".into(), code]);
    m.add_function(wrap_pyfunction!(run_switch, m)?)?;
    m.add("LagoError", m.py().get_type::<LagoError>())?;
    m.add("LagoUserError", m.py().get_type::<LagoUserError>())?;
    m.add_function(wrap_pyfunction!(init_workdir, m)?)?;
    m.add_function(wrap_pyfunction!(vm_names_of, m)?)?;
    m.add_function(wrap_pyfunction!(run_shell, m)?)?;
    m.add_function(wrap_pyfunction!(run_interactive_shell, m)?)?;
    m.add_function(wrap_pyfunction!(qemu_img_info, m)?)?;
    m.add_function(wrap_pyfunction!(ssh_host, m)?)?;
    m.add_function(wrap_pyfunction!(resolve_prefix, m)?)?;
    m.add_function(wrap_pyfunction!(keep_env, m)?)?;
    m.add_function(wrap_pyfunction!(env_keeper, m)?)?;
    m.add_function(wrap_pyfunction!(ssh_tries, m)?)?;
    m.add_function(wrap_pyfunction!(render_output, m)?)?;
    m.add_class::<objects::Env>()?;
    m.add_class::<objects::Vm>()?;
    m.add_class::<objects::Network>()?;
    m.add_class::<objects::Paths>()?;
    Ok(())
}
