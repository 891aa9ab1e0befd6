//! Faults on demand, made on the host side where a guest cannot undo them: cut a VM's link
//! (the guest sees its carrier go), partition a network into groups that cannot exchange a
//! frame, degrade a VM's link (delay, jitter, loss, rate), and put everything back.
//!
//! Faults are recorded in the prefix's runtime state (`run/state.json`), shown by `status`, and
//! put back in force when a VM or a network starts again: a partition survives `stop`/`start`
//! until it is healed. Links are cut through the VM's provider (qemu's `set_link`, libvirt's link
//! state); partitions and degraded links are made by the network's switch (`switch.rs`), so they
//! exist for `local-qemu` networks.

use std::collections::BTreeSet;

use crate::env::{Env, EnvError};
use crate::prefix::records::VmRecord;
use crate::prefix::state::Impairment;
use crate::prefix::state::State;
use crate::provider::{NetUse, ProviderError};
use crate::report::{Reporter, task};

/// Why a fault could not be made or undone.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// The environment could not be used.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// No such network.
    #[error("Unknown network {net:?} (known: {known})")]
    UnknownNet {
        /// The name given.
        net: String,
        /// The environment's networks.
        known: String,
    },
    /// The VM has no NIC on the network.
    #[error("VM {vm} is not on network {net} (its networks: {nets})")]
    NotOnNet {
        /// The VM.
        vm: String,
        /// The network.
        net: String,
        /// The VM's networks.
        nets: String,
    },
    /// A partition names a VM that is not on its network, or names one twice.
    #[error("Bad partition of network {net}: {reason}")]
    BadPartition {
        /// The network.
        net: String,
        /// What is wrong.
        reason: String,
    },
    /// An impairment is out of range.
    #[error("Bad degradation: {reason}")]
    BadImpairment {
        /// What is wrong.
        reason: String,
    },
    /// The provider could not do it.
    #[error("Cannot change the links of VM {vm}")]
    Provider {
        /// The VM.
        vm: String,
        /// Why.
        #[source]
        source: ProviderError,
    },
    /// The network's provider could not put its faults in force.
    #[error("Cannot change network {net}")]
    Net {
        /// The network.
        net: String,
        /// Why.
        #[source]
        source: ProviderError,
    },
}

impl From<crate::prefix::state::RuntimeError> for FaultError {
    fn from(e: crate::prefix::state::RuntimeError) -> Self {
        FaultError::Env(e.into())
    }
}

impl FaultError {
    /// Whether the input was wrong (exit code 2).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            FaultError::UnknownNet { .. }
                | FaultError::NotOnNet { .. }
                | FaultError::BadPartition { .. }
                | FaultError::BadImpairment { .. }
                | FaultError::Net { source: ProviderError::NetUnsupported { .. }, .. }
        ) || matches!(self, FaultError::Env(e) if matches!(e, EnvError::UnknownVms { .. }))
    }
}

impl Impairment {
    /// Checks the values a user gave.
    pub fn validate(&self) -> Result<(), FaultError> {
        let bad = |reason: String| Err(FaultError::BadImpairment { reason });
        if !(0.0..=100.0).contains(&self.loss_pct) || self.loss_pct.is_nan() {
            return bad(format!("loss {} % (expected 0 to 100)", self.loss_pct));
        }
        if self.delay_ms > 60_000 || self.jitter_ms > 60_000 {
            return bad("delay and jitter are at most 60000 ms".into());
        }
        if self.jitter_ms > 0 && self.delay_ms == 0 {
            return bad("jitter varies a delay: give --delay too".into());
        }
        if self.is_none() {
            return bad("nothing to degrade: give --delay, --jitter, --loss or --rate".into());
        }
        Ok(())
    }

    /// `delay 200 ms, loss 15 %`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.delay_ms > 0 {
            parts.push(format!("delay {} ms", self.delay_ms));
        }
        if self.jitter_ms > 0 {
            parts.push(format!("jitter {} ms", self.jitter_ms));
        }
        if self.loss_pct > 0.0 {
            parts.push(format!("loss {} %", self.loss_pct));
        }
        if self.rate_kbit > 0 {
            parts.push(format!("rate {} kbit/s", self.rate_kbit));
        }
        parts.join(", ")
    }
}

impl Env {
    fn net_names(&self) -> Vec<String> {
        self.nets.iter().map(|(n, _)| n.clone()).collect()
    }

    fn check_net(&self, net: &str) -> Result<(), FaultError> {
        if self.nets.iter().any(|(n, _)| n == net) {
            Ok(())
        } else {
            Err(FaultError::UnknownNet { net: net.to_owned(), known: self.net_names().join(", ") })
        }
    }

    /// The NICs (indices) of `vm` on `nets` (all of its NICs when empty).
    fn nics_on(&self, vm: &VmRecord, nets: &[String]) -> Result<Vec<usize>, FaultError> {
        let vm_nets: Vec<&str> = vm.nics.iter().map(|n| n.net.as_str()).collect();
        for net in nets {
            self.check_net(net)?;
            if !vm_nets.contains(&net.as_str()) {
                return Err(FaultError::NotOnNet { vm: vm.name.clone(), net: net.clone(), nets: vm_nets.join(", ") });
            }
        }
        Ok(vm
            .nics
            .iter()
            .enumerate()
            .filter(|(_, n)| nets.is_empty() || nets.contains(&n.net))
            .map(|(i, _)| i)
            .collect())
    }

    fn record(&self, vm: &str) -> Result<&VmRecord, FaultError> {
        Ok(self.select(&[vm.to_owned()])?[0])
    }

    /// Cuts the links of `vm` on `nets` (all of its links when empty): the guest sees no carrier.
    pub fn cut(&self, vm: &str, nets: &[String], reporter: &dyn Reporter) -> Result<(), FaultError> {
        self.set_links(vm, nets, false, reporter)
    }

    /// Puts back the links of `vm` on `nets` (all when empty): cut links come up, degraded ones
    /// are whole again.
    pub fn restore(&self, vm: &str, nets: &[String], reporter: &dyn Reporter) -> Result<(), FaultError> {
        let record = self.record(vm)?;
        let nics = self.nics_on(record, nets)?;
        let touched: BTreeSet<String> = nics.iter().map(|i| record.nics[*i].net.clone()).collect();
        self.set_links(vm, nets, true, reporter)?;
        let _lock = self.lock("net restore", reporter)?;
        let mut state = State::load(&self.prefix.path)?;
        let mut changed = Vec::new();
        for net in &touched {
            if let Some(per_vm) = state.impairments.get_mut(net)
                && per_vm.remove(vm).is_some()
            {
                changed.push(net.clone());
            }
        }
        state.impairments.retain(|_, per_vm| !per_vm.is_empty());
        state.save(&self.prefix.path)?;
        for net in changed {
            self.apply_net(&net, &state)?;
        }
        Ok(())
    }

    fn set_links(&self, vm: &str, nets: &[String], up: bool, reporter: &dyn Reporter) -> Result<(), FaultError> {
        let record = self.record(vm)?;
        let nics = self.nics_on(record, nets)?;
        let _lock = self.lock(if up { "net restore" } else { "net cut" }, reporter)?;
        let mut state = State::load(&self.prefix.path)?;
        let cut = state.cut.entry(vm.to_owned()).or_default();
        for i in &nics {
            cut.retain(|c| c != i);
            if !up {
                cut.push(*i);
            }
        }
        cut.sort_unstable();
        state.cut.retain(|_, nics| !nics.is_empty());
        state.save(&self.prefix.path)?;
        if self.state(vm).is_running() {
            let verb = if up { "Restoring" } else { "Cutting" };
            let provider = self.provider_of(record)?;
            task(reporter, &format!("{verb} the links of {vm}"), || {
                for i in &nics {
                    provider
                        .set_link(&self.prefix.path, record, *i, up)
                        .map_err(|source| FaultError::Provider { vm: vm.to_owned(), source })?;
                }
                Ok::<_, FaultError>(())
            })?;
        }
        Ok(())
    }

    /// Partitions `net`: VMs in different `groups` cannot exchange a frame on it, VMs in one
    /// group still can; VMs of the network in no group form one more group together.
    pub fn partition(&self, net: &str, groups: &[Vec<String>], reporter: &dyn Reporter) -> Result<(), FaultError> {
        self.check_net(net)?;
        let bad = |reason: String| FaultError::BadPartition { net: net.to_owned(), reason };
        if groups.len() < 2 {
            return Err(bad("give at least two groups of VMs (`lago net partition NET vm01,vm02 vm03`)".into()));
        }
        let mut seen = BTreeSet::new();
        for vm in groups.iter().flatten() {
            let record = self.record(vm)?;
            if !record.nics.iter().any(|n| n.net == net) {
                return Err(bad(format!("VM {vm} has no NIC on it")));
            }
            if !seen.insert(vm.clone()) {
                return Err(bad(format!("VM {vm} is in two groups")));
            }
        }
        if groups.iter().any(Vec::is_empty) {
            return Err(bad("a group is empty".into()));
        }
        let _lock = self.lock("net partition", reporter)?;
        let mut state = State::load(&self.prefix.path)?;
        state.partitions.insert(net.to_owned(), groups.to_vec());
        state.save(&self.prefix.path)?;
        task(reporter, &format!("Partitioning network {net}"), || self.apply_net(net, &state))
    }

    /// Undoes the partition of `net`.
    pub fn heal(&self, net: &str, reporter: &dyn Reporter) -> Result<(), FaultError> {
        self.check_net(net)?;
        let _lock = self.lock("net heal", reporter)?;
        let mut state = State::load(&self.prefix.path)?;
        state.partitions.remove(net);
        state.save(&self.prefix.path)?;
        task(reporter, &format!("Healing network {net}"), || self.apply_net(net, &state))
    }

    /// Degrades the link of `vm` to `net`.
    pub fn degrade(&self, vm: &str, net: &str, how: Impairment, reporter: &dyn Reporter) -> Result<(), FaultError> {
        how.validate()?;
        let record = self.record(vm)?;
        self.nics_on(record, &[net.to_owned()])?;
        let _lock = self.lock("net degrade", reporter)?;
        let mut state = State::load(&self.prefix.path)?;
        state.impairments.entry(net.to_owned()).or_default().insert(vm.to_owned(), how);
        state.save(&self.prefix.path)?;
        task(reporter, &format!("Degrading the link of {vm} to {net}"), || self.apply_net(net, &state))
    }

    /// Puts the faults `state` holds for `net` in force on its provider (when the network runs;
    /// otherwise they are in force from its next start).
    fn apply_net(&self, net: &str, state: &State) -> Result<(), FaultError> {
        let uses: Vec<NetUse> = self.net_uses()?.into_iter().filter(|u| u.name == net).collect();
        for u in uses {
            let vms: Vec<&VmRecord> = u.vms.iter().filter(|v| !v.is_ssh()).collect();
            for (provider, group) in self.providers.group(&vms).map_err(EnvError::from)? {
                let part =
                    NetUse { name: u.name.clone(), spec: u.spec.clone(), vms: group.into_iter().cloned().collect() };
                provider
                    .apply_net_faults(&self.prefix.path, &part, state)
                    .map_err(|source| FaultError::Net { net: net.to_owned(), source })?;
            }
        }
        Ok(())
    }

    /// Cuts again, after `vm` started, the links the state says are cut.
    pub(crate) fn reapply_cuts(&self, vm: &VmRecord) -> Result<(), EnvError> {
        let state = State::load(&self.prefix.path)?;
        if let Some(nics) = state.cut.get(&vm.name) {
            let provider = self.provider_of(vm)?;
            for i in nics {
                provider.set_link(&self.prefix.path, vm, *i, false)?;
            }
        }
        Ok(())
    }
}

/// One network of an environment, for faults (the SDK's `Env::net(name)`).
pub struct Net<'a> {
    env: &'a Env,
    /// Its name.
    pub name: String,
}

impl Env {
    /// The network called `name`.
    pub fn net(&self, name: &str) -> Result<Net<'_>, FaultError> {
        self.check_net(name)?;
        Ok(Net { env: self, name: name.to_owned() })
    }
}

impl Net<'_> {
    /// Its record (`virt/net-<name>`).
    fn record(&self) -> serde_json::Map<String, serde_json::Value> {
        let specs = self.env.net_specs().unwrap_or_default();
        specs.into_iter().find(|(n, _)| *n == self.name).map(|(_, r)| r).unwrap_or_default()
    }

    /// Its gateway (`None`: a `bridge` or IPv6-only network).
    pub fn gw(&self) -> Option<std::net::Ipv4Addr> {
        crate::prefix::records::net_gw(&self.record())
    }

    /// Its IPv6 gateway (lago's own; `None`: the network has no IPv6).
    pub fn gw6(&self) -> Option<std::net::Ipv6Addr> {
        crate::prefix::records::net_ipv6(&self.record()).map(|(_, gw6)| gw6)
    }

    /// Its IPv6 prefix and its length (lago's own; always a /64): `(fd8f:1:2::, 64)`.
    pub fn ipv6_prefix(&self) -> Option<(std::net::Ipv6Addr, u8)> {
        crate::prefix::records::net_ipv6(&self.record()).map(|(prefix, _)| (prefix, 64))
    }

    /// See [`Env::partition`].
    pub fn partition(&self, groups: &[Vec<String>], reporter: &dyn Reporter) -> Result<(), FaultError> {
        self.env.partition(&self.name, groups, reporter)
    }

    /// See [`Env::heal`].
    pub fn heal(&self, reporter: &dyn Reporter) -> Result<(), FaultError> {
        self.env.heal(&self.name, reporter)
    }
}

impl crate::env::Vm<'_> {
    /// Cuts this VM's links on `nets` (all when empty); see [`Env::cut`].
    pub fn cut(&self, nets: &[String], reporter: &dyn Reporter) -> Result<(), FaultError> {
        self.env.cut(&self.record.name, nets, reporter)
    }

    /// Restores this VM's links on `nets` (all when empty); see [`Env::restore`].
    pub fn restore(&self, nets: &[String], reporter: &dyn Reporter) -> Result<(), FaultError> {
        self.env.restore(&self.record.name, nets, reporter)
    }

    /// Degrades this VM's link to `net`; see [`Env::degrade`].
    pub fn degrade(&self, net: &str, how: Impairment, reporter: &dyn Reporter) -> Result<(), FaultError> {
        self.env.degrade(&self.record.name, net, how, reporter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impairments_are_checked_and_described() {
        let ok = Impairment { delay_ms: 200, jitter_ms: 20, loss_pct: 15.0, rate_kbit: 1000 };
        assert!(ok.validate().is_ok());
        assert_eq!(ok.describe(), "delay 200 ms, jitter 20 ms, loss 15 %, rate 1000 kbit/s");
        for bad in [
            Impairment { loss_pct: 150.0, ..Impairment::default() },
            Impairment { jitter_ms: 5, ..Impairment::default() },
            Impairment::default(),
        ] {
            assert!(matches!(bad.validate(), Err(FaultError::BadImpairment { .. })), "{bad:?}");
        }
    }
}
