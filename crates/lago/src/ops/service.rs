//! Services in VMs (reference §7.5): `Vm::service(name)` with `state()`, `start()`, `stop()`,
//! through the VM's service manager, `systemd` or `sysvinit`. The provider is the VM's
//! `service_provider` when the spec gives one, else detected: the first whose tool exists in
//! the VM (`/usr/bin/systemctl`, then `/sbin/service`).

use crate::env::{EnvError, Vm};

/// Service failures.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The VM could not be reached.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// No known service manager in the VM.
    #[error("VM {vm}: no service manager found (neither /usr/bin/systemctl nor /sbin/service)")]
    NoProvider {
        /// The VM.
        vm: String,
    },
    /// `service_provider` names an unknown manager.
    #[error("VM {vm}: unknown service_provider {name:?} (known: systemd, sysvinit)")]
    UnknownProvider {
        /// The VM.
        vm: String,
        /// The name given.
        name: String,
    },
    /// The service does not exist.
    #[error("VM {vm}: service {service} not present")]
    Missing {
        /// The VM.
        vm: String,
        /// The service.
        service: String,
    },
    /// The manager refused.
    #[error("VM {vm}: failed to {action} service {service} (exit {code}): {output}")]
    Failed {
        /// The VM.
        vm: String,
        /// The service.
        service: String,
        /// `start` or `stop`.
        action: &'static str,
        /// Exit code.
        code: i32,
        /// What the manager printed.
        output: String,
    },
}

/// A service's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    /// Not installed.
    Missing,
    /// Installed, not running.
    Inactive,
    /// Running.
    Active,
}

/// A service manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceProvider {
    /// `systemctl`.
    Systemd,
    /// `/sbin/service NAME start|stop|status`.
    Sysvinit,
}

impl ServiceProvider {
    /// Providers in detection order, with the tool whose presence selects them.
    pub const ALL: [(ServiceProvider, &'static str, &'static str); 2] = [
        (ServiceProvider::Systemd, "systemd", "/usr/bin/systemctl"),
        (ServiceProvider::Sysvinit, "sysvinit", "/sbin/service"),
    ];

    /// The provider called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, n, _)| *n == name).map(|(p, _, _)| *p)
    }

    /// The command that runs `action` on `service`.
    pub(crate) fn argv<'a>(self, action: &'a str, service: &'a str) -> Vec<&'a str> {
        match self {
            ServiceProvider::Systemd if action == "status" => vec!["systemctl", "status", "--lines=0", service],
            ServiceProvider::Systemd => vec!["systemctl", action, service],
            ServiceProvider::Sysvinit => vec!["/sbin/service", service, action],
        }
    }

    /// The state from `status`'s exit code and output.
    pub fn parse_state(self, code: i32, out: &str) -> ServiceState {
        match self {
            _ if code == 0 => ServiceState::Active,
            ServiceProvider::Systemd if out.contains("Loaded: loaded") => ServiceState::Inactive,
            ServiceProvider::Sysvinit if out.trim_end().ends_with("is stopped") => ServiceState::Inactive,
            _ => ServiceState::Missing,
        }
    }
}

/// A service of a VM.
pub struct Service<'a> {
    vm: &'a Vm<'a>,
    name: String,
    provider: ServiceProvider,
}

impl Vm<'_> {
    /// The VM's service manager (`service_provider` of the spec, else detected over SSH).
    pub fn service_provider(&self) -> Result<ServiceProvider, ServiceError> {
        if let Some(name) = &self.record.service_provider {
            return ServiceProvider::from_name(name)
                .ok_or_else(|| ServiceError::UnknownProvider { vm: self.name().to_owned(), name: name.clone() });
        }
        for (provider, _, tool) in ServiceProvider::ALL {
            if self.ssh(&["test", "-e", tool])?.code == 0 {
                return Ok(provider);
            }
        }
        Err(ServiceError::NoProvider { vm: self.name().to_owned() })
    }

    /// The service called `name`.
    pub fn service(&self, name: &str) -> Result<Service<'_>, ServiceError> {
        Ok(Service { vm: self, name: name.to_owned(), provider: self.service_provider()? })
    }

    /// The service called `name`, driven by `provider` (no detection).
    pub fn service_with(&self, name: &str, provider: ServiceProvider) -> Service<'_> {
        Service { vm: self, name: name.to_owned(), provider }
    }
}

impl Service<'_> {
    /// The manager driving it.
    pub fn provider(&self) -> ServiceProvider {
        self.provider
    }

    /// Its state now.
    pub fn state(&self) -> Result<ServiceState, ServiceError> {
        let st = self.vm.ssh(&self.provider.argv("status", &self.name))?;
        Ok(self.provider.parse_state(st.code, &st.stdout()))
    }

    /// Whether it runs.
    pub fn alive(&self) -> Result<bool, ServiceError> {
        Ok(self.state()? == ServiceState::Active)
    }

    /// Runs `action` (`start`, `stop`) through the service manager, whatever the service's
    /// state, and returns how it ended (the original's `_request_start`, `_request_stop`).
    pub fn request_raw(&self, action: &str) -> Result<crate::host::ssh::CommandStatus, ServiceError> {
        Ok(self.vm.ssh(&self.provider.argv(action, &self.name))?)
    }

    fn request(&self, action: &'static str) -> Result<(), ServiceError> {
        if self.state()? == ServiceState::Missing {
            return Err(ServiceError::Missing { vm: self.vm.name().to_owned(), service: self.name.clone() });
        }
        let st = self.vm.ssh(&self.provider.argv(action, &self.name))?;
        if st.code != 0 {
            return Err(ServiceError::Failed {
                vm: self.vm.name().to_owned(),
                service: self.name.clone(),
                action,
                code: st.code,
                output: format!("{}{}", st.stdout(), String::from_utf8_lossy(&st.err)).trim().to_owned(),
            });
        }
        Ok(())
    }

    /// Starts it.
    pub fn start(&self) -> Result<(), ServiceError> {
        self.request("start")
    }

    /// Stops it.
    pub fn stop(&self) -> Result<(), ServiceError> {
        self.request("stop")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        let (sd, sv) = (ServiceProvider::Systemd, ServiceProvider::Sysvinit);
        assert_eq!(sd.parse_state(0, ""), ServiceState::Active);
        assert_eq!(sd.parse_state(3, "x.service - X\n     Loaded: loaded (/lib/...)\n"), ServiceState::Inactive);
        assert_eq!(sd.parse_state(4, "Unit nope.service could not be found.\n"), ServiceState::Missing);
        assert_eq!(sv.parse_state(3, "dropbear is stopped\n"), ServiceState::Inactive);
        assert_eq!(sv.parse_state(1, "service: no such service nope\n"), ServiceState::Missing);
        assert_eq!(sv.argv("status", "dropbear"), ["/sbin/service", "dropbear", "status"]);
        assert_eq!(ServiceProvider::from_name("sysvinit"), Some(sv));
    }
}
