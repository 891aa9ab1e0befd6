//! One VM of an environment: the SDK's `Vm` handle.

use super::{Env, EnvError};
use crate::host::ssh::CommandStatus;
use crate::prefix::records::VmRecord;
use crate::report::Reporter;

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

    /// Runs a local script in the VM (`sh -s`, the script on its standard input).
    pub fn ssh_script(&self, path: &std::path::Path) -> Result<CommandStatus, EnvError> {
        let data = std::fs::read(path).map_err(crate::host::pathio::at("read", path))?;
        let target = self.env.ssh_target(&self.record.name)?;
        target
            .exec_line("sh -s", Some(&data), 10)
            .map_err(|source| EnvError::Ssh { vm: self.record.name.clone(), source })
    }

    /// An interactive SSH session (a shell, or `command`) on this process's terminal; returns
    /// its exit code. The guest gets a terminal when this process has one (for a command: when
    /// its output goes to the terminal too).
    pub fn interactive_ssh(&self, command: Option<&str>) -> Result<i32, EnvError> {
        use std::io::IsTerminal;
        let target = self.env.ssh_target(&self.record.name)?;
        let tty = std::io::stdin().is_terminal() && (command.is_none() || std::io::stdout().is_terminal());
        let status = crate::host::process::run_interactive(&target.interactive(command, tty)).map_err(|e| {
            EnvError::Ssh { vm: self.record.name.clone(), source: std::io::Error::other(e.to_string()) }
        })?;
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

    /// The VM's record (`virt/vm-<name>`), as the original wrote it.
    pub fn spec(&self) -> Result<serde_json::Map<String, serde_json::Value>, EnvError> {
        let virt = self.env.prefix.virt_env()?;
        Ok(virt.vms.into_iter().find(|(n, _)| *n == self.record.name).map(|(_, m)| m).unwrap_or_default())
    }
}
