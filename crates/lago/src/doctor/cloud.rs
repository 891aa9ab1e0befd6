//! `lago doctor`'s check of the OpenStack cloud, when the configuration or the current
//! environment uses it: the credentials, the endpoints of compute, network and image, the
//! management network, the project's quota against what the environment needs, and what of the
//! environment is in the cloud (what a killed command left is found here too).

use std::path::Path;

use super::report::{Check, Fix, Group};
use crate::config::openstack::OpenstackOptions;
use crate::provider::openstack::{OpenstackProvider, env_uuid, resources};

fn check(name: &str, purpose: &'static str, outcome: Result<String, String>, advice: &str) -> Check {
    let ok = outcome.is_ok();
    Check {
        group: Group::Openstack,
        name: name.into(),
        ok,
        required: true,
        detail: outcome.unwrap_or_else(|e| e),
        purpose,
        fix: (!ok).then(|| Fix::Advice(advice.into())),
        evidence: Vec::new(),
    }
}

/// The checks of the cloud `options` name, for the environment at `prefix` when given.
pub fn openstack_checks(options: &OpenstackOptions, prefix: Option<&Path>) -> Vec<Check> {
    let mut out = Vec::new();
    let provider = OpenstackProvider::connect(options);
    let p = match provider {
        Ok(p) => {
            let s = p.session();
            out.push(check(
                "cloud credentials",
                "lago creates openstack VMs' servers, networks and ports as this user",
                Ok(format!("user {} of {}, project {}", s.creds.username, s.creds.source, s.project_id)),
                "",
            ));
            p
        }
        Err(e) => {
            out.push(check(
                "cloud credentials",
                "lago creates openstack VMs' servers, networks and ports as this user",
                Err(e.to_string()),
                e.hint().unwrap_or("check the cloud's entry in clouds.yaml (or the OS_* variables)"),
            ));
            return out;
        }
    };
    let s = p.session();
    for (kind, path, purpose) in [
        ("compute", "/flavors?limit=1", "servers (Nova)"),
        ("network", "/networks?limit=1", "networks and ports (Neutron)"),
        ("image", "/images?limit=1", "templates and snapshots (Glance)"),
    ] {
        let outcome = s.endpoint(kind).and_then(|url| s.get(kind, path).map(|_| url)).map_err(|e| e.to_string());
        out.push(check(
            &format!("{kind} endpoint"),
            purpose,
            outcome,
            "the cloud's catalog must offer it in the region (`openstack catalog list`)",
        ));
    }
    out.push(check(
        "management network",
        "lago reaches openstack VMs over SSH on their port on this network (`[openstack] network`)",
        resources::mgmt_network(s, options)
            .map(|(n, plen)| {
                format!("{} ({}, /{plen})", n["name"].as_str().unwrap_or("?"), n["id"].as_str().unwrap_or("?"))
            })
            .map_err(|e| e.to_string()),
        "set `network` in [openstack] of lago.conf to a network whose addresses this host reaches",
    ));
    let vms = prefix.map(resources::openstack_vms).unwrap_or_default();
    let need = match prefix {
        Some(prefix) if !vms.is_empty() => {
            let mut need = resources::Need { instances: vms.len() as i64, ..Default::default() };
            for vm in &vms {
                let flavor = resources::template_of(prefix, vm)
                    .and_then(|t| resources::choose_flavor(s, options, vm, t.disk_gb()));
                match flavor {
                    Ok(f) => {
                        need.cores += f["vcpus"].as_i64().unwrap_or(0);
                        need.ram += f["ram"].as_i64().unwrap_or(0);
                    }
                    Err(e) => out.push(check(
                        "flavor",
                        "each openstack VM gets a flavor that fits it",
                        Err(e.to_string()),
                        e.hint().unwrap_or(""),
                    )),
                }
                need.ports += vm.nics.len() as i64 + 1;
            }
            let nets: std::collections::BTreeSet<&str> =
                vms.iter().flat_map(|v| v.nics.iter().map(|n| n.net.as_str())).collect();
            need.networks = nets.len() as i64;
            need.subnets = nets.len() as i64;
            Some(need)
        }
        _ => None,
    };
    let uuid = prefix.map(env_uuid).unwrap_or_default();
    let present = if uuid.is_empty() { Vec::new() } else { resources::leftovers(s, &uuid).unwrap_or_default() };
    let room =
        resources::quota_room(s, &need.clone().unwrap_or_default()).map_err(|e| e.to_string()).and_then(|rows| {
            let text = rows
                .iter()
                .map(|(what, needed, limit, used)| {
                    let limit = if *limit < 0 { "unlimited".to_owned() } else { limit.to_string() };
                    if need.is_some() {
                        format!("{what} {needed} needed, {used} of {limit} used")
                    } else {
                        format!("{what} {used} of {limit} used")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            // What the environment already has in the cloud is counted in the use.
            let short = rows.iter().any(|(_, needed, limit, used)| {
                *limit >= 0 && need.is_some() && present.is_empty() && used + needed > *limit
            });
            if short { Err(format!("too small: {text}")) } else { Ok(text) }
        });
    out.push(check(
        "quota",
        "the environment's servers, vCPUs, RAM, networks, subnets and ports must fit the project's quota",
        room,
        "free resources of the project, or ask for a larger quota",
    ));
    if !uuid.is_empty() {
        let mut c = check(
            "environment in the cloud",
            "every resource of the environment carries the tag lago-env-<uuid>: `lago destroy` removes them",
            Ok(match present.len() {
                0 => "nothing (not started, or destroyed)".to_owned(),
                n => format!("{n} resources tagged lago-env-{uuid}"),
            }),
            "",
        );
        c.evidence = present;
        out.push(c);
    }
    out
}
