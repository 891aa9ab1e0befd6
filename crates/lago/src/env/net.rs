//! One network of an environment on its own: whether it is up, bringing it up and taking it
//! down (the SDK's `Network.alive()`, `start()`, `stop()`).

use std::sync::Arc;

use super::{Env, EnvError};
use crate::config::Accel;
use crate::prefix::records::VmRecord;
use crate::provider::{NetUse, Provider};
use crate::report::{Reporter, task};

/// A provider that carries a network, with the network as it sees it (its VMs there).
type Carrier = (Arc<dyn Provider>, NetUse);

impl Env {
    /// The providers that carry network `net`, each with the network as it sees it (its VMs).
    fn carriers(&self, net: &str) -> Result<Vec<Carrier>, EnvError> {
        if !self.nets.iter().any(|(n, _)| n == net) {
            return Err(EnvError::UnknownNet {
                net: net.to_owned(),
                known: self.nets.iter().map(|(n, _)| n.clone()).collect(),
            });
        }
        let all: Vec<&VmRecord> = self.vms.iter().filter(|v| !v.is_ssh()).collect();
        let mut out = Vec::new();
        for (provider, _) in self.providers.group(&all)? {
            if let Some(u) = self.nets_of(&provider)?.into_iter().find(|u| u.name == net) {
                out.push((provider, u));
            }
        }
        Ok(out)
    }

    /// Whether network `net` is up: its switch runs (`local-qemu`), or libvirt's network is
    /// active. A network no VM of lago's is on is never up.
    pub fn net_alive(&self, net: &str) -> Result<bool, EnvError> {
        let env_id = self.env_id()?;
        for (provider, u) in self.carriers(net)? {
            let up = provider.nets_up(&self.prefix.path, &env_id, std::slice::from_ref(&u)).unwrap_or_default();
            if up.contains(&u.name) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Brings network `net` up (VMs on it that run are joined to it again).
    pub fn start_net(&self, net: &str, reporter: &dyn Reporter) -> Result<(), EnvError> {
        let carriers = self.carriers(net)?;
        let _lock = self.lock("start", reporter)?;
        let env_id = self.env_id()?;
        task(reporter, &format!("Start net {net}"), || {
            let ctx = self.launch_context(&env_id, Accel::Tcg);
            for (provider, u) in &carriers {
                provider.start_nets(&ctx, std::slice::from_ref(u))?;
            }
            Ok(())
        })
    }

    /// Takes network `net` down: the VMs on it stay up, and lose it until it is started again.
    pub fn stop_net(&self, net: &str, reporter: &dyn Reporter) -> Result<(), EnvError> {
        let carriers = self.carriers(net)?;
        let _lock = self.lock("stop", reporter)?;
        let env_id = self.env_id()?;
        task(reporter, &format!("Stop net {net}"), || {
            for (provider, u) in &carriers {
                provider.stop_nets(&self.prefix.path, &env_id, std::slice::from_ref(u))?;
            }
            Ok(())
        })
    }
}
