//! The `openstack` provider: an environment as servers, networks and ports of an OpenStack
//! cloud (`vm-provider: openstack`), through the cloud's own APIs (Keystone v3, Nova, Neutron,
//! Glance) over HTTP. Configured as OpenStack users are (`clouds.yaml` and `OS_CLOUD`, or the
//! `OS_*` variables: [`cloud`]) plus `[openstack]` of lago.conf (`cloud`, `flavor`,
//! `availability_zone`, `network`).
//!
//! What each part of an environment becomes:
//! - a network: a Neutron network and an IPv4 subnet with DHCP off and the planned gateway;
//! - a NIC: a port with the planned MAC and fixed address, port security off (the VMs talk
//!   freely on their own L2, as on lago's switch);
//! - a VM: a server with a config drive whose `user_data` is a `newc` cpio archive of the VM's
//!   seed files, plus a last NIC on the management network (`[openstack] network`), whose
//!   address Neutron gives and the seed carries statically; lago reaches the VM there, port 22.
//!   Its image is the template, uploaded to Glance once and found again by the property
//!   `lago_template` (its file's name and hash); its flavor the smallest that fits (or
//!   `[openstack] flavor`); `metadata: {openstack-host: NAME}` pins it (`nova:NAME`);
//! - a snapshot: an image of each server (`createImage`, disks only: OpenStack keeps no live
//!   memory), a revert: a rebuild from it.
//!
//! Every resource carries the tags `lago` and `lago-env-<env uuid>` (images: the properties
//! `lago_env`, `lago_vm`, `lago_snapshot`; networks and ports also that tag as description),
//! so what a killed command left is found and removed by the next `destroy`. Before anything
//! is created, the cloud is checked: credentials, endpoints, the management network, flavors,
//! the project's quota.

pub mod cloud;
pub mod resources;
pub mod session;
pub mod userdata;

#[cfg(any(test, feature = "fake-cloud"))]
#[doc(hidden)]
pub mod fake;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Console, LaunchContext, NetUse, Provider, ProviderError, SnapshotOp, VmRecord, VmState};
use crate::config::openstack::OpenstackOptions;
use crate::host::ssh::Target;
pub use resources::Need;
use session::Session;

/// Problems with an OpenStack cloud.
#[derive(Debug, thiserror::Error)]
pub enum OpenstackError {
    /// No cloud named anywhere.
    #[error(
        "No OpenStack cloud is configured for openstack VMs: set `cloud` in [openstack] of lago.conf or OS_CLOUD (an entry of clouds.yaml), or the OS_* variables (OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME...)"
    )]
    NoCloud,
    /// The named cloud is in no clouds.yaml.
    #[error("No cloud named {cloud:?} in clouds.yaml (searched {})", searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    UnknownCloud {
        /// The name.
        cloud: String,
        /// The files searched.
        searched: Vec<PathBuf>,
    },
    /// `OS_AUTH_URL` without the rest.
    #[error("OS_AUTH_URL is set, {name} is not: the OS_* variables are incomplete")]
    MissingVariable {
        /// The variable missing.
        name: String,
    },
    /// A clouds.yaml that is not YAML.
    #[error("Cannot read {path}: {reason}")]
    CloudsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A cloud entry without a needed key.
    #[error("The OpenStack credentials of {origin} have no {missing}")]
    CloudEntry {
        /// Where they are.
        origin: String,
        /// What is missing.
        missing: String,
    },
    /// Keystone refused the credentials.
    #[error("Keystone at {auth_url} refused user {user} ({origin}): {message}")]
    BadCredentials {
        /// Where they came from.
        origin: String,
        /// The user.
        user: String,
        /// Keystone's URL.
        auth_url: String,
        /// Keystone's words.
        message: String,
    },
    /// A call did not reach the API.
    #[error("{method} {url}: {message}")]
    Transport {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A call failed.
    #[error("{method} {url}: {status} {message}")]
    Api {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The API's words.
        message: String,
    },
    /// The catalog has no endpoint of a service.
    #[error("The cloud ({origin}) has no public {service} endpoint in {region}")]
    NoEndpoint {
        /// The service type.
        service: String,
        /// The region.
        region: String,
        /// Where the credentials came from.
        origin: String,
    },
    /// `[openstack] network` is not set.
    #[error(
        "openstack VMs need the network lago reaches them through: set `network` in [openstack] of lago.conf (a network of the cloud whose addresses this host reaches)"
    )]
    NoManagementNetwork,
    /// The network named is not in the cloud.
    #[error("[openstack] network = {name}: {reason}")]
    BadManagementNetwork {
        /// The name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The flavor named is not in the cloud.
    #[error("[openstack] flavor = {name}: the cloud has no such flavor (it has: {})", known.join(", "))]
    UnknownFlavor {
        /// The name.
        name: String,
        /// The cloud's flavors.
        known: Vec<String>,
    },
    /// No flavor fits a VM.
    #[error("VM {vm}: no flavor of the cloud has {memory} MiB, {vcpu} vCPUs and a {disk} GB disk (it has: {})", known.join(", "))]
    NoFlavor {
        /// The VM.
        vm: String,
        /// Its memory, MiB.
        memory: u64,
        /// Its vCPUs.
        vcpu: u64,
        /// Its disk, GB.
        disk: u64,
        /// The cloud's flavors.
        known: Vec<String>,
    },
    /// The project's quota is too small.
    #[error("The project's quota is too small for this environment: {}", short.join("; "))]
    Quota {
        /// Each resource short: `cores: 6 needed, 4 free (limit 10, 6 in use)`.
        short: Vec<String>,
    },
    /// A VM has no disk to boot.
    #[error("VM {vm} has no disk to boot: an openstack VM boots its first disk's template")]
    NoImage {
        /// The VM.
        vm: String,
    },
    /// A file could not be read.
    #[error("Cannot read {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A resource did not reach the status awaited.
    #[error("{what} did not become {awaited} within {secs} s (it is {status})")]
    Timeout {
        /// The resource.
        what: String,
        /// The status awaited.
        awaited: String,
        /// How long.
        secs: u64,
        /// Its status.
        status: String,
    },
    /// A server or image went into error.
    #[error("{what} failed: {message}")]
    Failed {
        /// The resource.
        what: String,
        /// The cloud's words (the server's fault).
        message: String,
    },
}

impl OpenstackError {
    /// Whether it is the user's input that is wrong (exit code 2) rather than the cloud failing.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            Self::NoCloud
                | Self::UnknownCloud { .. }
                | Self::MissingVariable { .. }
                | Self::CloudsFile { .. }
                | Self::CloudEntry { .. }
                | Self::BadCredentials { .. }
                | Self::NoManagementNetwork
                | Self::BadManagementNetwork { .. }
                | Self::UnknownFlavor { .. }
                | Self::NoFlavor { .. }
                | Self::NoImage { .. }
        )
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            Self::NoCloud | Self::UnknownCloud { .. } | Self::MissingVariable { .. } | Self::CloudEntry { .. } => {
                "`openstack --os-cloud NAME token issue` tells whether the openstack CLI finds the same credentials"
            }
            Self::BadCredentials { .. } => {
                "correct the password or user of that cloud entry (or OS_PASSWORD, OS_USERNAME)"
            }
            Self::UnknownFlavor { .. } | Self::NoFlavor { .. } => {
                "`openstack flavor list` shows the flavors; name one with `flavor` in [openstack] of lago.conf"
            }
            Self::Quota { .. } => {
                "free resources of the project (`openstack server list`, `lago doctor`), or ask for a larger quota"
            }
            Self::NoManagementNetwork | Self::BadManagementNetwork { .. } => {
                "`openstack network list` shows the networks; lago's host must reach the addresses of the one named"
            }
            _ => return None,
        })
    }
}

impl From<OpenstackError> for ProviderError {
    fn from(e: OpenstackError) -> Self {
        ProviderError::Openstack(std::sync::Arc::new(e))
    }
}

/// The tag every resource of all lago environments carries.
pub const TAG: &str = "lago";

/// The tag of the resources of the environment whose uuid is `uuid`.
pub fn env_tag(uuid: &str) -> String {
    format!("lago-env-{uuid}")
}

/// The uuid of the prefix at `prefix`.
pub fn env_uuid(prefix: &Path) -> String {
    std::fs::read_to_string(crate::prefix::Layout::new(prefix).uuid()).unwrap_or_default().trim().to_owned()
}

/// What the servers of VMs to create were given by the checks before anything is created.
#[derive(Debug, Clone)]
struct Prepared {
    image: String,
    flavor: String,
}

/// An OpenStack cloud (one project, one region).
pub struct OpenstackProvider {
    session: Session,
    options: OpenstackOptions,
    prepared: Mutex<HashMap<String, Prepared>>,
    addresses: Mutex<HashMap<String, String>>,
    /// The environment's servers as last listed (uuid, when, list): the boot watch asks several
    /// times a second.
    listed: Mutex<Option<(String, Instant, Vec<Value>)>>,
}

/// How often a status is asked while waiting.
const POLL: Duration = Duration::from_millis(1500);
/// How long a server may take to change state.
const SERVER_WAIT: Duration = Duration::from_secs(900);

impl OpenstackProvider {
    /// The cloud `options` name (or the `OS_*` variables), authenticated.
    pub fn connect(options: &OpenstackOptions) -> Result<Self, OpenstackError> {
        let creds = cloud::resolve(options.cloud.as_deref(), &|k| std::env::var(k).ok())?;
        Self::with_credentials(&creds, options)
    }

    /// The cloud of `creds`, authenticated.
    pub fn with_credentials(creds: &cloud::Credentials, options: &OpenstackOptions) -> Result<Self, OpenstackError> {
        let session = Session::login(creds)?;
        Ok(Self {
            session,
            options: options.clone(),
            prepared: Mutex::new(HashMap::new()),
            addresses: Mutex::new(HashMap::new()),
            listed: Mutex::new(None),
        })
    }

    /// The session (for `lago doctor`).
    pub fn session(&self) -> &Session {
        &self.session
    }

    fn server_name(uuid: &str, vm: &str) -> String {
        format!("lago-{}-{vm}", &uuid[..uuid.len().min(8)])
    }

    /// The server of `vm`, if the environment has one.
    fn server(&self, uuid: &str, vm: &str) -> Result<Option<Value>, OpenstackError> {
        Ok(self.servers(uuid)?.into_iter().find(|s| s["metadata"]["lago_vm"] == vm))
    }

    /// The environment's servers, listed at most once a second.
    fn servers(&self, uuid: &str) -> Result<Vec<Value>, OpenstackError> {
        let mut listed = self.listed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((u, at, list)) = listed.as_ref()
            && u == uuid
            && at.elapsed() < Duration::from_secs(1)
        {
            return Ok(list.clone());
        }
        let list = resources::servers(&self.session, uuid)?;
        *listed = Some((uuid.to_owned(), Instant::now(), list.clone()));
        Ok(list)
    }

    /// Forgets the servers' list (after a change).
    fn changed(&self) {
        *self.listed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// The last `lines` lines of the server's console (Nova keeps its serial log).
    fn console_tail(&self, id: &str, lines: u32) -> Option<String> {
        let v = self.action(id, &json!({"os-getConsoleOutput": {"length": lines}})).ok()?;
        v["output"].as_str().map(|o| o.trim_end().to_owned()).filter(|o| !o.is_empty())
    }

    /// Pauses (`pause`) or unpauses (`unpause`) the VM's server when it is in `from`, after
    /// waiting for it to settle (no task of its own running), then waits for `to`.
    fn pause_or_unpause(
        &self,
        prefix: &Path,
        vm: &VmRecord,
        from: &str,
        action: &str,
        to: &str,
    ) -> Result<(), ProviderError> {
        let what = format!("Server of VM {}", vm.name);
        let s = self.server_of(prefix, vm)?;
        let s = self.wait_server(s["id"].as_str().unwrap_or_default(), &what, &["ACTIVE", "PAUSED", "SHUTOFF"])?;
        if s["status"] != from {
            return Ok(());
        }
        let id = s["id"].as_str().unwrap_or_default();
        self.action(id, &json!({ action: null }))?;
        self.wait_server(id, &what, &[to]).map(|_| ())
    }

    fn server_of(&self, prefix: &Path, vm: &VmRecord) -> Result<Value, ProviderError> {
        let uuid = env_uuid(prefix);
        self.server(&uuid, &vm.name)?.ok_or_else(|| {
            OpenstackError::Failed { what: format!("VM {}", vm.name), message: "it has no server in the cloud".into() }
                .into()
        })
    }

    /// Waits until the server's status is one of `want` (ERROR is a failure naming its fault).
    fn wait_server(&self, id: &str, what: &str, want: &[&str]) -> Result<Value, ProviderError> {
        let start = Instant::now();
        loop {
            let s = self.session.get("compute", &format!("/servers/{id}"))?["server"].take();
            let status = s["status"].as_str().unwrap_or("?").to_owned();
            let busy = s["OS-EXT-STS:task_state"].as_str().is_some();
            if want.contains(&status.as_str()) && !busy {
                self.changed();
                return Ok(s);
            }
            if status == "ERROR" {
                let message = s["fault"]["message"].as_str().unwrap_or("the cloud gave no reason").to_owned();
                return Err(OpenstackError::Failed { what: what.to_owned(), message }.into());
            }
            if start.elapsed() > SERVER_WAIT {
                return Err(OpenstackError::Timeout {
                    what: what.to_owned(),
                    awaited: want.join(" or "),
                    secs: SERVER_WAIT.as_secs(),
                    status,
                }
                .into());
            }
            crate::host::interrupt::check()?;
            std::thread::sleep(POLL);
        }
    }

    fn action(&self, id: &str, body: &Value) -> Result<Value, OpenstackError> {
        self.changed();
        self.session.post("compute", &format!("/servers/{id}/action"), body)
    }

    /// The address lago reaches `vm` at: its port on the management network.
    fn address(&self, prefix: &Path, vm: &str) -> Option<String> {
        let mut cache = self.addresses.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(a) = cache.get(vm) {
            return Some(a.clone());
        }
        let uuid = env_uuid(prefix);
        let port = resources::port_named(&self.session, &uuid, &resources::mgmt_port_name(&uuid, vm)).ok()??;
        let a = port["fixed_ips"][0]["ip_address"].as_str()?.to_owned();
        cache.insert(vm.to_owned(), a.clone());
        Some(a)
    }

    /// The checks before anything is created, and the images and flavors of the VMs to create.
    fn prepare(&self, prefix: &Path, uuid: &str, nets: usize) -> Result<(), ProviderError> {
        let all = resources::openstack_vms(prefix);
        let existing = resources::servers(&self.session, uuid)?;
        let to_create: Vec<&VmRecord> =
            all.iter().filter(|v| !existing.iter().any(|s| s["metadata"]["lago_vm"] == v.name.as_str())).collect();
        let present_nets = resources::tagged(&self.session, "networks", uuid)?.len();
        resources::mgmt_network(&self.session, &self.options)?;
        let mut plans = Vec::new();
        for vm in &to_create {
            let template = resources::template_of(prefix, vm)?;
            let flavor = resources::choose_flavor(&self.session, &self.options, vm, template.disk_gb())?;
            plans.push((vm, template, flavor));
        }
        let need = Need {
            instances: plans.len() as i64,
            cores: plans.iter().map(|(_, _, f)| f["vcpus"].as_i64().unwrap_or(0)).sum(),
            ram: plans.iter().map(|(_, _, f)| f["ram"].as_i64().unwrap_or(0)).sum(),
            networks: nets.saturating_sub(present_nets) as i64,
            subnets: nets.saturating_sub(present_nets) as i64,
            ports: plans.iter().map(|(v, _, _)| v.nics.len() as i64 + 1).sum(),
        };
        resources::check_quota(&self.session, &need)?;
        let mut prepared = self.prepared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (vm, template, flavor) in plans {
            let image = resources::ensure_image(&self.session, &template)?;
            prepared.insert(
                vm.name.clone(),
                Prepared { image, flavor: flavor["id"].as_str().unwrap_or_default().to_owned() },
            );
        }
        Ok(())
    }

    /// Creates `vm`'s ports and server; on failure, deletes what it created.
    fn create(&self, vm: &VmRecord, prefix: &Path, uuid: &str) -> Result<(), ProviderError> {
        let prepared = self.prepared.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&vm.name).cloned();
        let prepared = match prepared {
            Some(p) => p,
            None => {
                self.prepare(prefix, uuid, 0)?;
                self.prepared
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&vm.name)
                    .cloned()
                    .ok_or_else(|| OpenstackError::Failed {
                        what: format!("VM {}", vm.name),
                        message: "it was not prepared".into(),
                    })?
            }
        };
        let mut ports: Vec<String> = Vec::new();
        let mut server: Option<String> = None;
        let result = (|| -> Result<(), ProviderError> {
            let nets = resources::env_networks(&self.session, uuid)?;
            for (i, nic) in vm.nics.iter().enumerate() {
                let (net_id, subnet_id) = nets.get(&nic.net).cloned().ok_or_else(|| OpenstackError::Failed {
                    what: format!("NIC {i} of VM {}", vm.name),
                    message: format!("network {} of the environment is not in the cloud", nic.net),
                })?;
                let port = resources::create_port(
                    &self.session,
                    uuid,
                    &format!("{}-eth{i}", Self::server_name(uuid, &vm.name)),
                    &net_id,
                    nic.mac().as_deref(),
                    nic.ip.map(|ip| (subnet_id.as_str(), ip.to_string())),
                )?;
                ports.push(port["id"].as_str().unwrap_or_default().to_owned());
            }
            let (mgmt_net, plen) = resources::mgmt_network(&self.session, &self.options)?;
            let mgmt = resources::create_port(
                &self.session,
                uuid,
                &resources::mgmt_port_name(uuid, &vm.name),
                mgmt_net["id"].as_str().unwrap_or_default(),
                None,
                None,
            )?;
            ports.push(mgmt["id"].as_str().unwrap_or_default().to_owned());
            let address = mgmt["fixed_ips"][0]["ip_address"].as_str().unwrap_or_default().to_owned();
            let mac = mgmt["mac_address"].as_str().unwrap_or_default().to_owned();
            let user_data =
                userdata::user_data(prefix, vm, &mac, &address, plen, &self.mtus(uuid, vm, &mgmt_net, &mac)?)?;
            let zone = vm
                .metadata
                .get("openstack-host")
                .and_then(Value::as_str)
                .map(|h| format!("nova:{h}"))
                .or_else(|| self.options.availability_zone.clone());
            let mut body = json!({"server": {
                "name": Self::server_name(uuid, &vm.name),
                "imageRef": prepared.image,
                "flavorRef": prepared.flavor,
                "networks": ports.iter().map(|p| json!({"port": p})).collect::<Vec<_>>(),
                "config_drive": true,
                "user_data": user_data,
                "metadata": {"lago_env": uuid, "lago_vm": vm.name},
                "tags": [TAG, env_tag(uuid)],
            }});
            if let Some(zone) = zone {
                body["server"]["availability_zone"] = json!(zone);
            }
            self.changed();
            let created = self.session.post("compute", "/servers", &body)?;
            let id = created["server"]["id"].as_str().unwrap_or_default().to_owned();
            server = Some(id.clone());
            self.wait_server(&id, &format!("Server of VM {}", vm.name), &["ACTIVE"])?;
            self.addresses.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(vm.name.clone(), address);
            Ok(())
        })();
        if result.is_err() {
            self.changed();
            if let Some(id) = server {
                let _ = self.session.delete("compute", &format!("/servers/{id}"));
                let _ = resources::wait_gone(&self.session, "compute", &format!("/servers/{id}"));
            }
            for p in ports {
                let _ = self.session.delete("network", &format!("/ports/{p}"));
            }
        }
        result
    }

    /// Deletes every resource of the environment whose uuid is `uuid`: servers, ports,
    /// subnets, networks, snapshot images (found by their tag, whichever command made them).
    pub fn remove_env(&self, uuid: &str) -> Result<(), OpenstackError> {
        resources::remove_env(&self.session, uuid)
    }

    /// The user_data of `vm` again (a rebuild regenerates the config drive).
    fn user_data_again(&self, prefix: &Path, vm: &VmRecord) -> Result<String, ProviderError> {
        let uuid = env_uuid(prefix);
        let port = resources::port_named(&self.session, &uuid, &resources::mgmt_port_name(&uuid, &vm.name))?
            .ok_or_else(|| OpenstackError::Failed {
                what: format!("VM {}", vm.name),
                message: "its port on the management network is gone".into(),
            })?;
        let (mgmt_net, plen) = resources::mgmt_network(&self.session, &self.options)?;
        let address = port["fixed_ips"][0]["ip_address"].as_str().unwrap_or_default();
        let mac = port["mac_address"].as_str().unwrap_or_default();
        Ok(userdata::user_data(prefix, vm, mac, address, plen, &self.mtus(&uuid, vm, &mgmt_net, mac)?)?)
    }

    /// The MTU of the Neutron network of each NIC of `vm` (and of its management NIC), by MAC.
    fn mtus(
        &self,
        uuid: &str,
        vm: &VmRecord,
        mgmt_net: &Value,
        mgmt_mac: &str,
    ) -> Result<Vec<(String, u32)>, OpenstackError> {
        let nets = resources::tagged(&self.session, "networks", uuid)?;
        let mtu = |n: &Value| n["mtu"].as_u64().and_then(|m| u32::try_from(m).ok());
        let mut out: Vec<(String, u32)> = vm
            .nics
            .iter()
            .filter_map(|nic| {
                let net = nets.iter().find(|n| n["name"].as_str() == Some(&resources::net_name(uuid, &nic.net)))?;
                Some((nic.mac()?, mtu(net)?))
            })
            .collect();
        if let Some(m) = mtu(mgmt_net) {
            out.push((mgmt_mac.to_owned(), m));
        }
        Ok(out)
    }
}

fn unsupported(vm: &VmRecord, what: &str) -> ProviderError {
    ProviderError::Unsupported { vm: vm.name.clone(), what: what.into(), provider: "openstack" }
}

impl Provider for OpenstackProvider {
    fn name(&self) -> &'static str {
        "openstack"
    }

    /// The checks (credentials, management network, flavors, quota), the template images, then
    /// a network and subnet per network not yet in the cloud; on failure the networks this call
    /// made are deleted.
    fn start_nets(&self, ctx: &LaunchContext, nets: &[NetUse]) -> Result<(), ProviderError> {
        let uuid = env_uuid(&ctx.prefix);
        self.prepare(&ctx.prefix, &uuid, nets.len())?;
        let present = resources::env_networks(&self.session, &uuid)?;
        let mut made: Vec<String> = Vec::new();
        for net in nets.iter().filter(|n| !present.contains_key(&n.name)) {
            match resources::create_network(&self.session, &uuid, net) {
                Ok(id) => made.push(id),
                Err(e) => {
                    for id in made {
                        let _ = resources::delete_network(&self.session, &id);
                    }
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    fn start(&self, vm: &VmRecord, ctx: &LaunchContext) -> Result<(), ProviderError> {
        let uuid = env_uuid(&ctx.prefix);
        let what = format!("Server of VM {}", vm.name);
        match self.server(&uuid, &vm.name)? {
            None => self.create(vm, &ctx.prefix, &uuid),
            Some(s) => {
                let id = s["id"].as_str().unwrap_or_default().to_owned();
                match s["status"].as_str().unwrap_or_default() {
                    "ACTIVE" => Ok(()),
                    "SHUTOFF" => {
                        self.action(&id, &json!({"os-start": null}))?;
                        self.wait_server(&id, &what, &["ACTIVE"]).map(|_| ())
                    }
                    "PAUSED" => {
                        self.action(&id, &json!({"unpause": null}))?;
                        self.wait_server(&id, &what, &["ACTIVE"]).map(|_| ())
                    }
                    _ => self.wait_server(&id, &what, &["ACTIVE"]).map(|_| ()),
                }
            }
        }
    }

    fn running(&self, prefix: &Path, vms: &[VmRecord]) -> Vec<String> {
        let servers = self.servers(&env_uuid(prefix)).unwrap_or_else(|e| {
            tracing::warn!("{e}");
            Vec::new()
        });
        vms.iter()
            .filter(|v| servers.iter().any(|s| s["metadata"]["lago_vm"] == v.name.as_str() && s["status"] == "ACTIVE"))
            .map(|v| v.name.clone())
            .collect()
    }

    fn state(&self, prefix: &Path, vm: &VmRecord) -> VmState {
        match self.server(&env_uuid(prefix), &vm.name) {
            Ok(None) => VmState::Down,
            Ok(Some(s)) => match s["status"].as_str().unwrap_or("unknown") {
                "ACTIVE" => VmState::Running,
                "SHUTOFF" => VmState::Down,
                "PAUSED" => VmState::Paused,
                other => VmState::Other(other.to_lowercase()),
            },
            Err(e) => {
                tracing::warn!("{e}");
                VmState::Other("unknown state".into())
            }
        }
    }

    /// The VM at its address on the management network, port 22, with the environment's key.
    fn target(&self, prefix: &Path, vm: &VmRecord, _ssh_port: Option<u16>) -> Target {
        let host = self.address(prefix, &vm.name).unwrap_or_else(|| vm.name.clone());
        let mut target = crate::prefix::Layout::new(prefix).ssh_target(&vm.name, &vm.ssh_user, &host, 22);
        target.password = vm.password();
        target
    }

    /// Stops the server (`os-stop`) and waits until it is off; the server, its ports and its
    /// disk stay until `destroy`.
    fn kill(&self, prefix: &Path, vm: &VmRecord) {
        self.target(prefix, vm, None).close();
        let Ok(Some(s)) = self.server(&env_uuid(prefix), &vm.name) else { return };
        let id = s["id"].as_str().unwrap_or_default();
        if s["status"] != "SHUTOFF"
            && let Err(e) = self.action(id, &json!({"os-stop": null}))
        {
            tracing::warn!("{e}");
        }
        if let Err(e) = self.wait_server(id, &format!("Server of VM {}", vm.name), &["SHUTOFF"]) {
            tracing::warn!("{e}");
        }
    }

    fn request_shutdown(&self, prefix: &Path, vm: &VmRecord) -> Result<(), ProviderError> {
        let s = self.server_of(prefix, vm)?;
        self.action(s["id"].as_str().unwrap_or_default(), &json!({"os-stop": null}))?;
        Ok(())
    }

    fn boot_failure(&self, prefix: &Path, vm: &VmRecord) -> Option<super::BootFailure> {
        let s = self.server(&env_uuid(prefix), &vm.name).ok()??;
        (s["status"] == "ERROR").then(|| super::BootFailure {
            status: "ERROR".into(),
            words: vec![s["fault"]["message"].as_str().unwrap_or("the cloud gave no reason").to_owned()],
            kvm: false,
        })
    }

    fn why_stopped(&self, prefix: &Path, vm: &str) -> String {
        match self.server(&env_uuid(prefix), vm) {
            Ok(Some(s)) => format!(
                "its server {} is {}{}",
                s["name"].as_str().unwrap_or(vm),
                s["status"].as_str().unwrap_or("?"),
                s["fault"]["message"].as_str().map(|m| format!(": {m}")).unwrap_or_default()
            ),
            Ok(None) => "its server is gone".into(),
            Err(e) => format!("its server cannot be read: {e}"),
        }
    }

    /// Disks only, through an image of the server (`createImage`); a revert rebuilds the server
    /// from it (its ports and addresses stay).
    fn live_snapshot(
        &self,
        prefix: &Path,
        vm: &VmRecord,
        op: SnapshotOp,
        name: &str,
        _disks: &[(usize, PathBuf, String)],
    ) -> Result<(), ProviderError> {
        let uuid = env_uuid(prefix);
        match op {
            SnapshotOp::Save => {
                let s = self.server_of(prefix, vm)?;
                let id = s["id"].as_str().unwrap_or_default();
                let answer = self.action(
                    id,
                    &json!({"createImage": {
                        "name": format!("{}-{name}", Self::server_name(&uuid, &vm.name)),
                        "metadata": {"lago_env": uuid, "lago_vm": vm.name, "lago_snapshot": name},
                    }}),
                )?;
                let image = answer["image_id"].as_str().unwrap_or_default().to_owned();
                let done = (|| -> Result<(), ProviderError> {
                    resources::tag_image(&self.session, &image, &uuid)?;
                    resources::wait_image(&self.session, &image, &format!("Snapshot {name} of VM {}", vm.name))?;
                    // The server may still be busy uploading it.
                    self.wait_server(id, &format!("Server of VM {}", vm.name), &["ACTIVE", "SHUTOFF", "PAUSED"])?;
                    Ok(())
                })();
                if done.is_err() {
                    let _ = self.session.delete("image", &format!("/images/{image}"));
                }
                done?;
            }
            SnapshotOp::Load => {
                let image = resources::snapshot_image(&self.session, &uuid, &vm.name, name)?.ok_or_else(|| {
                    OpenstackError::Failed {
                        what: format!("Snapshot {name} of VM {}", vm.name),
                        message: "its image is not in the cloud".into(),
                    }
                })?;
                let s = self.server_of(prefix, vm)?;
                let id = s["id"].as_str().unwrap_or_default().to_owned();
                let what = format!("Server of VM {}", vm.name);
                if s["status"] == "PAUSED" {
                    self.action(&id, &json!({"unpause": null}))?;
                    self.wait_server(&id, &what, &["ACTIVE"])?;
                }
                let user_data = self.user_data_again(prefix, vm)?;
                self.target(prefix, vm, None).close();
                self.action(&id, &json!({"rebuild": {"imageRef": image, "user_data": user_data}}))?;
                std::thread::sleep(POLL);
                self.wait_server(&id, &what, &["ACTIVE", "SHUTOFF"])?;
            }
            SnapshotOp::Delete => {
                if let Some(image) = resources::snapshot_image(&self.session, &uuid, &vm.name, name)? {
                    self.session.delete("image", &format!("/images/{image}"))?;
                }
            }
        }
        Ok(())
    }

    fn console(&self, prefix: &Path, vm: &VmRecord) -> Result<Console, ProviderError> {
        let _ = prefix;
        Err(unsupported(vm, "a serial console (`openstack console log show SERVER` shows its log)"))
    }

    /// Neutron isolates ports only through security groups, which need port security, which
    /// lago's ports have off; a degraded link needs the host's qdisc: neither is in the API.
    fn apply_net_faults(
        &self,
        _prefix: &Path,
        net: &NetUse,
        state: &crate::prefix::state::State,
    ) -> Result<(), ProviderError> {
        let (what, hint) = if state.partitions.contains_key(&net.name) {
            (
                "Partitioning",
                "Neutron filters traffic between ports of one network only through security groups, which need port security, which lago turns off on its ports (VMs talk freely on their L2); `lago net cut` and `restore` work (a port's admin state)",
            )
        } else if state.impairments.get(&net.name).is_some_and(|m| !m.is_empty()) {
            (
                "Degrading a link",
                "the OpenStack APIs have no delay, loss or rate limit of a port (a QoS policy limits bandwidth only, and needs the qos extension); `lago net cut` and `restore` work",
            )
        } else {
            return Ok(());
        };
        Err(ProviderError::NetUnsupported {
            net: net.name.clone(),
            what: what.into(),
            provider: "openstack",
            hint: hint.into(),
        })
    }

    /// The port's admin state (`admin_state_up`): Neutron takes the link down on the host.
    fn set_link(&self, prefix: &Path, vm: &VmRecord, nic: usize, up: bool) -> Result<(), ProviderError> {
        let uuid = env_uuid(prefix);
        let name = format!("{}-eth{nic}", Self::server_name(&uuid, &vm.name));
        let port = resources::port_named(&self.session, &uuid, &name)?.ok_or_else(|| OpenstackError::Failed {
            what: format!("NIC #{nic} of VM {}", vm.name),
            message: format!("its port {name} is not in the cloud"),
        })?;
        let id = port["id"].as_str().unwrap_or_default();
        self.session.put("network", &format!("/ports/{id}"), &json!({"port": {"admin_state_up": up}}))?;
        Ok(())
    }

    fn guest_agent(
        &self,
        _prefix: &Path,
        vm: &VmRecord,
        _command: &Value,
        _timeout: Duration,
    ) -> Result<Value, ProviderError> {
        Err(unsupported(vm, "the guest agent"))
    }

    fn pause(&self, prefix: &Path, vm: &VmRecord) -> Result<(), ProviderError> {
        // Not while a task of its own runs (Nova refuses then).
        self.pause_or_unpause(prefix, vm, "ACTIVE", "pause", "PAUSED")
    }

    fn resume(&self, prefix: &Path, vm: &VmRecord) -> Result<(), ProviderError> {
        // An image of it may still be uploading: Nova refuses to unpause it then.
        self.pause_or_unpause(prefix, vm, "PAUSED", "unpause", "ACTIVE")
    }

    /// The end of the server's console log, as Nova keeps it.
    fn hypervisor_report(&self, prefix: &Path, vm: &VmRecord) -> Option<String> {
        let s = self.server(&env_uuid(prefix), &vm.name).ok()??;
        let tail = self.console_tail(s["id"].as_str()?, 15)?;
        Some(format!(
            "its server's console (`openstack console log show {}`) ends:\n{tail}",
            s["name"].as_str().unwrap_or("?")
        ))
    }

    fn remove_all(&self, prefix: &Path) -> Result<(), ProviderError> {
        self.changed();
        let uuid = env_uuid(prefix);
        if uuid.is_empty() {
            return Ok(());
        }
        Ok(self.remove_env(&uuid)?)
    }
}
