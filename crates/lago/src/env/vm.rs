//! One VM of an environment: the SDK's `Vm` handle.

use super::{Env, EnvError};
use crate::host::ssh::CommandStatus;
use crate::prefix::records::VmRecord;
use crate::report::Reporter;

/// The guest's command that runs a script from standard input: bash when it has it.
pub const SCRIPT_SHELL: &str = "if command -v bash >/dev/null 2>&1; then exec bash -s; else exec sh -s; fi";

/// One VM of an environment (the SDK's `Vm`).
pub struct Vm<'a> {
    pub(crate) env: &'a Env,
    /// The VM as persisted.
    pub record: &'a VmRecord,
}

impl Env {
    /// The VM called `name`.
    pub fn vm(&self, name: &str) -> Result<Vm<'_>, EnvError> {
        Ok(Vm { env: self, record: self.select(&[name.to_owned()])?[0] })
    }

    /// The networks' records (`virt/net-<name>`), in `virt/env` order.
    pub fn net_specs(&self) -> Result<Vec<crate::prefix::Record>, EnvError> {
        Ok(self.prefix.virt_env()?.nets)
    }

    /// Every VM, in `virt/env` order.
    pub fn all_vms(&self) -> Vec<Vm<'_>> {
        self.vms.iter().map(|record| Vm { env: self, record }).collect()
    }
}

impl Vm<'_> {
    /// Name.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// Address on the management network.
    pub fn ip(&self) -> Option<std::net::Ipv4Addr> {
        self.record.ip()
    }

    /// IPv6 address on the management network (lago's own).
    pub fn ip6(&self) -> Option<std::net::Ipv6Addr> {
        self.record.ip6()
    }

    /// Its state, as its provider says it.
    pub fn state(&self) -> crate::provider::VmState {
        self.env.state(&self.record.name)
    }

    /// Starts this VM (and waits for SSH).
    pub fn start(&self, reporter: &dyn Reporter) -> Result<(), EnvError> {
        self.env.start(std::slice::from_ref(&self.record.name), reporter)
    }

    /// Powers this VM off.
    pub fn stop(&self, reporter: &dyn Reporter) -> Result<(), EnvError> {
        self.env.stop(std::slice::from_ref(&self.record.name), reporter)
    }

    /// Runs `argv` in the VM (arguments are passed as they are, quoted for the guest's shell).
    pub fn ssh(&self, argv: &[&str]) -> Result<CommandStatus, EnvError> {
        self.env.ssh(&self.record.name, argv)
    }

    /// Runs command line `line` in the VM as the original's `vm.ssh` did: the guest's shell
    /// reads the line as it is (the original joined a list with spaces, unquoted, so globs,
    /// pipes and redirections in its elements work), `data` on its standard input. A connection
    /// that fails is tried again a second later, `tries` times in all (`None`: `ssh_tries` of the
    /// configuration, 100 by default); when none connects, [`EnvError::SshUnreachable`].
    pub fn run_line(&self, line: &str, data: Option<&[u8]>, tries: Option<u32>) -> Result<CommandStatus, EnvError> {
        let target = self.env.ssh_target(&self.record.name)?;
        let tries = tries.unwrap_or(self.env.options.ssh_tries).max(1);
        let started = std::time::Instant::now();
        let (st, connected) = target
            .exec_line_tries(line, data, tries)
            .map_err(|source| EnvError::Ssh { vm: self.record.name.clone(), source })?;
        crate::host::interrupt::check()?;
        if connected {
            return Ok(st);
        }
        Err(EnvError::SshUnreachable {
            vm: self.record.name.clone(),
            tries,
            secs: started.elapsed().as_secs(),
            stderr: String::from_utf8_lossy(&st.err).trim().to_owned(),
        })
    }

    /// Runs a local script in the VM: `bash -s` where the guest has bash (as the original),
    /// its `sh -s` otherwise, with the script on standard input.
    pub fn ssh_script(&self, path: &std::path::Path) -> Result<CommandStatus, EnvError> {
        let data = std::fs::read(path).map_err(crate::host::pathio::at("read", path))?;
        let target = self.env.ssh_target(&self.record.name)?;
        target
            .exec_line(SCRIPT_SHELL, Some(&data), 10)
            .map_err(|source| EnvError::Ssh { vm: self.record.name.clone(), source })
    }

    /// An interactive SSH session (a shell, or `command`) on this process's terminal; returns
    /// its exit code. The guest gets a terminal when this process has one (for a command: when
    /// its output goes to the terminal too).
    pub fn interactive_ssh(&self, command: Option<&str>) -> Result<i32, EnvError> {
        use std::io::IsTerminal;
        let target = self.env.ssh_target(&self.record.name)?;
        let tty = std::io::stdin().is_terminal() && (command.is_none() || std::io::stdout().is_terminal());
        let status = crate::host::process::run_interactive_without(
            &target.interactive(command, tty),
            crate::host::ssh::is_mux_noise,
        )
        .map_err(|e| EnvError::Ssh { vm: self.record.name.clone(), source: std::io::Error::other(e.to_string()) })?;
        Ok(status.code().unwrap_or(255))
    }

    /// Waits until the VM answers SSH (within its `boot_time_sec`).
    pub fn wait_for_ssh(&self, reporter: &dyn Reporter) -> Result<(), EnvError> {
        if !self.state().is_running() {
            return Err(EnvError::NotRunning { vm: self.record.name.clone() });
        }
        self.env.wait_ready(std::slice::from_ref(&self.record.name), reporter)
    }

    /// Whether the VM answers SSH now (one try).
    pub fn ssh_reachable(&self) -> bool {
        self.env.state(&self.record.name).is_running() && self.env.probe(self.record)
    }

    /// The VM's CPU model and vendor, as the original's `cpu_model` and `cpu_vendor` gave them:
    /// a running VM's as its hypervisor says (`max`, `host`, `Westmere`; `Intel`, `AMD`), else
    /// the configured `cpu_model` (or `cpu_custom`'s model) with its vendor from libvirt's CPU
    /// map (`generic` when unknown); `None` for the model of a stopped VM with none configured.
    pub fn cpu(&self) -> (Option<String>, String) {
        let running = self
            .env
            .providers
            .of(self.record)
            .ok()
            .filter(|_| self.state().is_running())
            .and_then(|p| p.cpu(&self.env.prefix.path, self.record));
        if let Some((model, vendor)) = running {
            return (Some(model), vendor_name(&vendor));
        }
        let model = self.record.cpu_model.clone().or_else(|| {
            let m = self.record.cpu_custom.as_ref()?.get("model")?;
            m.get("#text").unwrap_or(m).as_str().map(str::to_owned)
        });
        let vendor = model.as_deref().and_then(crate::spec::cpu::model_vendor).unwrap_or_else(|| "generic".into());
        (model, vendor)
    }

    /// The VM's record (`virt/vm-<name>`), as the original wrote it.
    pub fn spec(&self) -> Result<serde_json::Map<String, serde_json::Value>, EnvError> {
        let virt = self.env.prefix.virt_env()?;
        Ok(virt.vms.into_iter().find(|(n, _)| *n == self.record.name).map(|(_, m)| m).unwrap_or_default())
    }
}

/// The vendor as the original named it: `Intel` for `GenuineIntel`, `AMD` for `AuthenticAMD`.
fn vendor_name(cpuid: &str) -> String {
    match cpuid {
        "GenuineIntel" => "Intel".into(),
        "AuthenticAMD" => "AMD".into(),
        "" => "generic".into(),
        other => other.into(),
    }
}
