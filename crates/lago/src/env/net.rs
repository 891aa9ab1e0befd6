//! One network of an environment on its own: whether it is up, bringing it up and taking it
//! down (the SDK's `Network.alive()`, `start()`, `stop()`), and its host leg (DESIGN §3).

use std::sync::Arc;

use super::{Env, EnvError};
use crate::config::{Accel, HostLeg as Setting};
use crate::prefix::leases::SubnetLeases;
use crate::prefix::records::VmRecord;
use crate::provider::qemu::switch::HostLeg;
use crate::provider::{NetUse, Provider};
use crate::report::{Reporter, task};

/// A network's host leg as lago would make it now, or why it gets none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegPlan {
    /// The leg to make.
    Leg(HostLeg),
    /// It gets none, for this reason.
    Off(String),
    /// Not a network that has one (`bridge`, or not of `local-qemu` VMs).
    NotApplicable,
}

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
            let mut ctx = self.launch_context(&env_id, Accel::Tcg);
            for (provider, u) in &carriers {
                ctx.host_legs = self.host_legs(provider, &env_id, std::slice::from_ref(u), reporter)?;
                provider.start_nets(&ctx, std::slice::from_ref(u))?;
            }
            Ok(())
        })
    }

    /// The host leg network `u` of `local-qemu` VMs gets: on `nat` networks with a gateway
    /// (`gw`, `gw6`, or both) when `host_leg` and lago's privileges allow, on a subnet and an IPv6
    /// prefix leased host-wide (`lease`: taken now when they are not yet; else only checked).
    pub fn host_leg_plan(&self, u: &NetUse, env_id: &str, lease: bool) -> LegPlan {
        let nat = u.spec.get("type").and_then(|t| t.as_str()).unwrap_or("nat") == "nat";
        let qemu = !u.vms.is_empty() && u.vms.iter().all(|v| v.provider() == "local-qemu");
        let gw = crate::prefix::records::net_gw(&u.spec);
        let v6 = crate::prefix::records::net_ipv6(&u.spec);
        let (true, true, true) = (nat, qemu, gw.is_some() || v6.is_some()) else { return LegPlan::NotApplicable };
        let setting = &self.options.host_leg;
        if setting.leg == Setting::Off {
            return LegPlan::Off(format!("`host_leg = off` is set ({})", setting.origin));
        }
        if let Err(why) = crate::host::netdev::may_create_interfaces() {
            return LegPlan::Off(why);
        }
        let interface = crate::host::netdev::interface_name(env_id, &u.name);
        let leases = SubnetLeases::new(&self.options.lease_dir);
        // A copy made by `lago fork` has its origin's subnets: it gets a leg only where no one
        // else holds the subnet, and says why not.
        let copy = crate::prefix::frozen::ForkRecord::load(&self.prefix.path).is_ok_and(|r| r.copy_of.is_some());
        let of_copy = if copy { " (a copy made by `lago fork` shares its origin's subnets)" } else { "" };
        if let Some(gw) = gw {
            let subnet = std::net::Ipv4Addr::from(u32::from(gw) & 0xffff_ff00);
            if let Some(other) = crate::host::netdev::subnet_user(subnet, 24, &interface) {
                return LegPlan::Off(format!("subnet {subnet}/24 is in use on the host's interface {other}{of_copy}"));
            }
            let octets = gw.octets();
            if octets[0] == 192 && octets[1] == 168 && crate::prefix::leases::SUBNET_OCTETS.contains(&octets[2]) {
                let Ok(uuid) = self.prefix.uuid() else { return LegPlan::Off("the prefix has no uuid".into()) };
                let held = if lease {
                    leases.acquire(&self.prefix.layout().uuid(), &uuid, &[Some(octets[2])], &[]).map(|_| ())
                } else {
                    leases.check(octets[2], &uuid)
                };
                if let Err(e) = held {
                    return LegPlan::Off(format!("{e}{of_copy}"));
                }
            }
        }
        if let Some((prefix, _)) = v6 {
            if !crate::host::netdev::has_ipv6() {
                return LegPlan::Off("the host has no IPv6 (its kernel runs with ipv6.disable=1)".into());
            }
            if let Some(other) = crate::host::netdev::prefix_user6(prefix, &interface) {
                return LegPlan::Off(format!(
                    "IPv6 prefix {prefix}/64 is in use on the host's interface {other}{of_copy}"
                ));
            }
            let Ok(uuid) = self.prefix.uuid() else { return LegPlan::Off("the prefix has no uuid".into()) };
            let held = if lease {
                leases.acquire6(&self.prefix.layout().uuid(), &uuid, &[(prefix, false)]).map(|_| ())
            } else {
                leases.check6(prefix, &uuid)
            };
            if let Err(e) = held {
                return LegPlan::Off(format!("{e}{of_copy}"));
            }
        }
        LegPlan::Leg(HostLeg {
            interface,
            address: gw.map(|gw| format!("{gw}/24")).unwrap_or_default(),
            address6: v6.map(|(_, gw6)| format!("{gw6}/64")),
        })
    }

    /// The host legs `provider`'s networks `nets` get as they start: none but for `local-qemu`;
    /// one that cannot be made is an error under `host_leg = on`, a warning when the setting
    /// was not left to `auto`'s privilege check.
    pub(crate) fn host_legs(
        &self,
        provider: &Arc<dyn Provider>,
        env_id: &str,
        nets: &[NetUse],
        reporter: &dyn Reporter,
    ) -> Result<Vec<(String, HostLeg)>, EnvError> {
        if provider.name() != "local-qemu" {
            return Ok(Vec::new());
        }
        let mut legs = Vec::new();
        for u in nets {
            match self.host_leg_plan(u, env_id, true) {
                LegPlan::Leg(leg) => legs.push((u.name.clone(), leg)),
                // A copy's network whose subnet another holds goes without, whatever the setting.
                LegPlan::Off(reason) if self.options.host_leg.leg == Setting::On && !reason.contains("lago fork") => {
                    return Err(EnvError::HostLeg {
                        net: u.name.clone(),
                        reason,
                        origin: self.options.host_leg.origin.clone(),
                    });
                }
                // The privilege is there, yet this network cannot have it: said, not silent.
                LegPlan::Off(reason) if reason.contains("subnet") || reason.contains("IPv6") => {
                    reporter.warn(&format!("Network {} starts without its host leg: {reason}", u.name));
                }
                LegPlan::Off(_) | LegPlan::NotApplicable => {}
            }
        }
        Ok(legs)
    }

    /// The address at which the host reaches `vm` on its management network through that
    /// network's host leg (while the leg runs), for the tests' own connections
    /// (`ansible_hosts`): its IPv4 address, else its IPv6 one; `None` where there is no leg.
    /// lago's own connections never use it (they go through the uplink: see
    /// `Provider::target`).
    pub fn leg_address(&self, vm: &crate::prefix::records::VmRecord) -> Option<std::net::IpAddr> {
        if vm.provider() != "local-qemu" {
            return None;
        }
        let leg = crate::provider::qemu::switch::running_host_leg(&self.prefix.path, &vm.mgmt_net)?;
        match (vm.ip(), vm.ip6()) {
            (Some(ip), _) if !leg.address.is_empty() => Some(ip.into()),
            (_, Some(ip6)) if leg.address6.is_some() => Some(ip6.into()),
            _ => None,
        }
    }

    /// What `status` says of network `name`'s host leg: its interface and address while it is
    /// up, why it has none, that it is gone while VMs on the network run (its switch was
    /// killed), or nothing (a network that has none, or is down, or `host_leg = off`: what was
    /// asked for needs no saying; `lago doctor` says it).
    pub fn host_leg_words(&self, name: &str) -> Option<String> {
        if self.options.host_leg.leg == Setting::Off {
            return None;
        }
        let u = self.net_uses().ok()?.into_iter().find(|u| u.name == name)?;
        if let Some(leg) = crate::provider::qemu::switch::running_host_leg(&self.prefix.path, name) {
            return Some(format!("{} {}", leg.interface, leg.addresses()));
        }
        match self.host_leg_plan(&u, &self.env_id().ok()?, false) {
            LegPlan::Off(reason) => Some(format!("off: {reason}")),
            LegPlan::Leg(leg) if u.vms.iter().any(|v| self.state(&v.name).is_running()) => {
                Some(format!("down: {} is gone with the network's switch (`lago start` brings it back)", leg.interface))
            }
            LegPlan::Leg(_) | LegPlan::NotApplicable => None,
        }
    }

    /// Brings up the networks the providers of `groups` need (their VMs are on them), with their
    /// host legs; the caller holds the prefix lock.
    pub(crate) fn bring_up_nets(
        &self,
        groups: &[crate::provider::Group<'_>],
        env_id: &str,
        reporter: &dyn Reporter,
    ) -> Result<(), EnvError> {
        let mut ctx = self.launch_context(env_id, Accel::Tcg);
        for (provider, _) in groups {
            let nets = self.nets_of(provider)?;
            ctx.host_legs = self.host_legs(provider, env_id, &nets, reporter)?;
            provider.start_nets(&ctx, &nets)?;
        }
        Ok(())
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
