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

/// A library error as a Python exception: `LagoUserError` for the user's input, `LagoError`
/// otherwise; the message is the error, each cause on a `Caused by:` line, and the hint.
pub(crate) fn to_py<E>(e: E) -> PyErr
where
    E: lago::diagnose::Diagnose + std::error::Error,
{
    let rendered = lago::diagnose::render(&e);
    if rendered.user { LagoUserError::new_err(rendered.text()) } else { LagoError::new_err(rendered.text()) }
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

/// Runs a network's switch (`python -m lago._switch --config FILE --pidfile FILE`): the SDK
/// starts switches through the interpreter, where the CLI runs `lago __switch`.
#[pyfunction]
fn run_switch(py: Python<'_>, args: Vec<String>) -> PyResult<i32> {
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map(PathBuf::from);
    let (Some(config), Some(pid_file)) = (value("--config"), value("--pidfile")) else {
        return Err(pyo3::exceptions::PyValueError::new_err("usage: --config FILE --pidfile FILE"));
    };
    // Its log is its stderr (lago points it at `logs/switch-<net>.log`).
    py.detach(move || match lago::provider::qemu::switch::serve(&config, &pid_file) {
        Ok(()) => Ok(0),
        Err(e) => {
            tracing::error!("{e}");
            Ok(1)
        }
    })
}

#[pymodule]
fn _lago(m: &Bound<'_, PyModule>) -> PyResult<()> {
    logging::install();
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
    m.add_class::<objects::Env>()?;
    m.add_class::<objects::Vm>()?;
    m.add_class::<objects::Network>()?;
    m.add_class::<objects::Paths>()?;
    m.add_class::<objects::Service>()?;
    Ok(())
}
