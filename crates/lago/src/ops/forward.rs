//! Ports of VMs forwarded to the host's loopback (`lago forward`, the init file's `forwards`):
//! through the VM's uplink (`local-qemu`) or a relay to its address (`local-libvirt`), bound to
//! 127.0.0.1 only, so no privilege is needed and nothing of the host's own interfaces is touched.
//!
//! The init file's forwards are set up when a VM starts (`env/start.rs`); the ones added here
//! are added to the running qemu (its monitor's `hostfwd_add`) and recorded in the runtime
//! state, so that a VM restarted by a revert keeps them. `stop` closes them all and forgets
//! these; the init file's keep their host ports for the next start.

use crate::env::{Env, EnvError};
use crate::prefix::state::{Forward, State};
use crate::report::Reporter;

/// Why a port could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The environment could not be used.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The VM's provider could not do it.
    #[error(transparent)]
    Provider(#[from] crate::provider::ProviderError),
    /// The host port is another program's.
    #[error("Host port {host} is in use by another program (choose another with --host-port, or none)")]
    HostPortTaken {
        /// The port.
        host: u16,
    },
    /// The host port already forwards to another port of a VM.
    #[error("Host port {host} already forwards to port {guest} of VM {vm}")]
    HostPortForwarded {
        /// The port.
        host: u16,
        /// The VM it forwards to.
        vm: String,
        /// The VM's port.
        guest: u16,
    },
    /// Nothing forwards to that port of the VM.
    #[error("No port of the host forwards to port {guest} of VM {vm}{}", known_list(known))]
    NotForwarded {
        /// The VM.
        vm: String,
        /// The VM's port.
        guest: u16,
        /// The VM's forwarded ports.
        known: Vec<u16>,
    },
}

fn known_list(known: &[u16]) -> String {
    if known.is_empty() {
        " (it has none)".into()
    } else {
        format!(" (forwarded: {})", known.iter().map(u16::to_string).collect::<Vec<_>>().join(", "))
    }
}

/// The address the host reaches a forwarded port at.
pub const FORWARD_ADDRESS: &str = "127.0.0.1";

impl Env {
    /// Forwards `127.0.0.1:host` (a free port when `None`) to the running VM's TCP port `guest`,
    /// and returns the forward; a port already forwarded is returned as it is (when `host` is
    /// not given or is the same).
    pub fn forward(
        &self,
        vm: &str,
        guest: u16,
        host: Option<u16>,
        reporter: &dyn Reporter,
    ) -> Result<Forward, ForwardError> {
        let record = self.select(&[vm.to_owned()])?[0];
        if !self.state(vm).is_running() {
            return Err(EnvError::NotRunning { vm: vm.to_owned() }.into());
        }
        let provider = self.providers.of(record).map_err(EnvError::from)?;
        let _lock = self.lock("forward", reporter)?;
        let mut state = State::load(&self.prefix.path).map_err(EnvError::from)?;
        let existing = state.forwards.get(vm).and_then(|fs| fs.iter().find(|f| f.guest == guest)).copied();
        if let Some(f) = existing
            && host.is_none_or(|h| h == f.host)
        {
            return Ok(f);
        }
        if let Some(h) = host {
            if let Some((other, f)) =
                state.forwards.iter().find_map(|(v, fs)| fs.iter().find(|f| f.host == h).map(|f| (v, f)))
            {
                return Err(ForwardError::HostPortForwarded { host: h, vm: other.clone(), guest: f.guest });
            }
            if !crate::provider::port_is_free(h) {
                return Err(ForwardError::HostPortTaken { host: h });
            }
        }
        // Another port for the same guest port replaces the old one.
        if let Some(old) = existing {
            provider.set_forward(&self.prefix.path, record, old.host, guest, false)?;
            state.forwards.entry(vm.to_owned()).or_default().retain(|f| f.guest != guest);
        }
        let mut attempts = 0;
        let forward = loop {
            let port = match host {
                Some(h) => h,
                None => crate::provider::free_port().map_err(|source| EnvError::Ssh { vm: vm.to_owned(), source })?,
            };
            match provider.set_forward(&self.prefix.path, record, port, guest, true) {
                Ok(()) => break Forward { guest, host: port, live: true },
                // Taken between the pick and qemu's bind.
                Err(crate::provider::ProviderError::Forward { .. }) if host.is_none() && attempts < 3 => attempts += 1,
                Err(e) => return Err(e.into()),
            }
        };
        state.forwards.entry(vm.to_owned()).or_default().push(forward);
        state.save(&self.prefix.path).map_err(EnvError::from)?;
        Ok(forward)
    }

    /// Removes the forward to the running VM's port `guest`.
    pub fn unforward(&self, vm: &str, guest: u16, reporter: &dyn Reporter) -> Result<(), ForwardError> {
        let record = self.select(&[vm.to_owned()])?[0];
        let _lock = self.lock("forward", reporter)?;
        let mut state = State::load(&self.prefix.path).map_err(EnvError::from)?;
        let known: Vec<u16> = state.forwards.get(vm).map(|fs| fs.iter().map(|f| f.guest).collect()).unwrap_or_default();
        let Some(f) = state.forwards.get(vm).and_then(|fs| fs.iter().find(|f| f.guest == guest)).copied() else {
            return Err(ForwardError::NotForwarded { vm: vm.to_owned(), guest, known });
        };
        if self.state(vm).is_running() {
            let provider = self.providers.of(record).map_err(EnvError::from)?;
            provider.set_forward(&self.prefix.path, record, f.host, guest, false)?;
        }
        if let Some(fs) = state.forwards.get_mut(vm) {
            fs.retain(|f| f.guest != guest);
        }
        state.forwards.retain(|_, fs| !fs.is_empty());
        state.save(&self.prefix.path).map_err(EnvError::from)?;
        Ok(())
    }

    /// The forwarded ports of the running VMs, by VM (in the environment's order).
    pub fn forwards(&self) -> Result<Vec<(String, Vec<Forward>)>, EnvError> {
        let state = State::load(&self.prefix.path)?;
        let running = self.running();
        Ok(self
            .vms
            .iter()
            .filter(|v| running.contains(&v.name))
            .filter_map(|v| state.forwards.get(&v.name).map(|fs| (v.name.clone(), fs.clone())))
            .collect())
    }
}

impl crate::env::Vm<'_> {
    /// Forwards a free port of the host's loopback to the VM's TCP port `guest` (or returns the
    /// forward it has): `("127.0.0.1", port)`.
    pub fn forward(&self, guest: u16, reporter: &dyn Reporter) -> Result<(String, u16), ForwardError> {
        let f = self.env.forward(&self.record.name, guest, None, reporter)?;
        Ok((FORWARD_ADDRESS.to_owned(), f.host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::fake::{Calls, Fake, env};
    use crate::report::NoopReporter;

    #[test]
    fn forwards_are_added_listed_removed_and_go_with_the_vm() {
        let dir = tempfile::tempdir().unwrap();
        let calls = std::sync::Arc::new(Calls::default());
        let env = env(dir.path(), Fake { calls: calls.clone(), ..Fake::default() });
        let r = &NoopReporter;
        assert!(matches!(env.forward("vm00", 8080, None, r), Err(ForwardError::Env(EnvError::NotRunning { .. }))));
        env.start(&[], r).unwrap();

        let f = env.forward("vm00", 8080, None, r).unwrap();
        assert!(f.live && f.guest == 8080);
        assert_eq!(env.forward("vm00", 8080, None, r).unwrap(), f, "asked again: the same forward");
        let (address, port) = env.vm("vm00").unwrap().forward(8080, r).unwrap();
        assert_eq!((address.as_str(), port), ("127.0.0.1", f.host));
        // A host port that forwards already, or that another program holds.
        match env.forward("vm01", 22, Some(f.host), r) {
            Err(ForwardError::HostPortForwarded { vm, guest: 8080, .. }) => assert_eq!(vm, "vm00"),
            other => panic!("{other:?}"),
        }
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = taken.local_addr().unwrap().port();
        assert!(
            matches!(env.forward("vm01", 22, Some(busy), r), Err(ForwardError::HostPortTaken { host }) if host == busy)
        );
        let g = env.forward("vm01", 22, None, r).unwrap();
        assert_eq!(
            env.forwards().unwrap(),
            vec![("vm00".to_owned(), vec![f]), ("vm01".to_owned(), vec![g])],
            "in the environment's order"
        );

        env.unforward("vm01", 22, r).unwrap();
        match env.unforward("vm01", 22, r) {
            Err(ForwardError::NotForwarded { known, .. }) => assert!(known.is_empty()),
            other => panic!("{other:?}"),
        }
        let ops = calls.ops.lock().unwrap().clone();
        let forwards: Vec<&String> = ops.iter().filter(|o| o.starts_with("forward")).collect();
        assert_eq!(
            forwards,
            [
                format!("forward add vm00 {} 8080", f.host),
                format!("forward add vm01 {} 22", g.host),
                format!("forward remove vm01 {} 22", g.host)
            ]
            .iter()
            .collect::<Vec<_>>()
        );
        // `stop` removes them; they do not come back with the next start.
        env.stop(&[], r).unwrap();
        assert!(State::load(&env.prefix.path).unwrap().forwards.is_empty());
        env.start(&[], r).unwrap();
        assert!(env.forwards().unwrap().is_empty());
    }
}
