//! The Python side of the command line: the original's CLI plugins (`lago.plugins.cli` entry
//! points) and output plugins (`lago.plugins.output`), run by the Python that has the `lago`
//! package (`python3 -m lago.cmd`, see its documentation). That Python is `LAGO_PYTHON` (the
//! package's own `lago` script sets it), else `python3` on `PATH`.

use std::collections::BTreeMap;

use lago::host::process::Invocation;

/// The Python of the plugins.
pub(crate) fn python() -> String {
    std::env::var("LAGO_PYTHON").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "python3".into())
}

/// `python -m lago.cmd ARGS...`.
pub(crate) fn runner() -> Invocation {
    Invocation::new(&python()).args(["-m", "lago.cmd"])
}

/// The CLI plugins of that Python: `{verb: help}`; empty when it has no `lago` package (or no
/// Python at all).
pub(crate) fn cli_plugins() -> BTreeMap<String, String> {
    if lago::host::process::locate(&python()).is_none() {
        return BTreeMap::new();
    }
    match lago::host::process::output(&runner().arg("--lago-list-plugins")) {
        Ok(out) if out.status.success() => serde_json::from_slice(&out.stdout).unwrap_or_default(),
        _ => BTreeMap::new(),
    }
}

/// `value` through output plugin `name`.
pub(crate) fn format(name: &str, value: &serde_json::Value) -> Result<String, String> {
    let inv = runner().args(["--lago-format", name]).input(value.to_string().into_bytes());
    match lago::host::process::output(&inv) {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned()),
        Ok(out) => Err(format!(
            "output format {name:?} is not one of lago's (default, flat, json, yaml), and `{inv}` said: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!(
            "output format {name:?} is not one of lago's (default, flat, json, yaml), and `{inv}` could not be run: {e}"
        )),
    }
}
