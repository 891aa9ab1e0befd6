//! The calls on the cloud's resources: servers, networks, subnets and ports of an environment
//! (found by its tag), the management network, flavors, the project's quota, template and
//! snapshot images.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::session::Session;
use super::{OpenstackError, TAG, env_tag};
use crate::config::openstack::OpenstackOptions;
use crate::prefix::records::VmRecord;
use crate::provider::NetUse;

/// The servers of the environment whose uuid is `uuid`.
pub fn servers(s: &Session, uuid: &str) -> Result<Vec<Value>, OpenstackError> {
    let v = s.get("compute", &format!("/servers/detail?tags={}", env_tag(uuid)))?;
    Ok(v["servers"].as_array().cloned().unwrap_or_default())
}

/// The Neutron resources of `kind` (`networks`, `subnets`, `ports`) of the environment: those
/// with its tag, and those with its tag as description (created, not yet tagged when a command
/// was killed).
pub fn tagged(s: &Session, kind: &str, uuid: &str) -> Result<Vec<Value>, OpenstackError> {
    let tag = env_tag(uuid);
    let mut all = s.get("network", &format!("/{kind}?tags={tag}"))?[kind].as_array().cloned().unwrap_or_default();
    for r in s.get("network", &format!("/{kind}?description={tag}"))?[kind].as_array().cloned().unwrap_or_default() {
        if !all.iter().any(|a| a["id"] == r["id"]) {
            all.push(r);
        }
    }
    Ok(all)
}

/// The name of network `net` of the environment in the cloud.
pub fn net_name(uuid: &str, net: &str) -> String {
    format!("lago-{}-{net}", &uuid[..uuid.len().min(8)])
}

/// The name of `vm`'s port on the management network.
pub fn mgmt_port_name(uuid: &str, vm: &str) -> String {
    format!("lago-{}-{vm}-mgmt", &uuid[..uuid.len().min(8)])
}

/// The environment's networks in the cloud: lago's name -> (network id, its IPv4 subnet's id).
pub fn env_networks(s: &Session, uuid: &str) -> Result<BTreeMap<String, (String, String)>, OpenstackError> {
    let prefix = net_name(uuid, "");
    let subnets = tagged(s, "subnets", uuid)?;
    let mut out = BTreeMap::new();
    for n in tagged(s, "networks", uuid)? {
        let Some(name) = n["name"].as_str().and_then(|x| x.strip_prefix(&prefix)) else { continue };
        let subnet = subnets
            .iter()
            .find(|x| x["network_id"] == n["id"])
            .and_then(|x| x["id"].as_str())
            .unwrap_or_default()
            .to_owned();
        out.insert(name.to_owned(), (n["id"].as_str().unwrap_or_default().to_owned(), subnet));
    }
    Ok(out)
}

/// Tags the Neutron resource `kind`/`id` with `lago` and the environment's tag.
fn tag(s: &Session, kind: &str, id: &str, uuid: &str) -> Result<(), OpenstackError> {
    s.put("network", &format!("/{kind}/{id}/tags"), &json!({"tags": [TAG, env_tag(uuid)]})).map(|_| ())
}

/// Creates network `net` and its subnet (DHCP off, the planned gateway); returns the network's id.
pub fn create_network(s: &Session, uuid: &str, net: &NetUse) -> Result<String, OpenstackError> {
    let name = net_name(uuid, &net.name);
    let v = s.post(
        "network",
        "/networks",
        &json!({"network": {"name": name, "description": env_tag(uuid), "admin_state_up": true, "port_security_enabled": false}}),
    )?;
    let id = v["network"]["id"].as_str().unwrap_or_default().to_owned();
    let made = (|| {
        tag(s, "networks", &id, uuid)?;
        let gw: Option<std::net::Ipv4Addr> = crate::prefix::records::net_gw(&net.spec);
        let any =
            gw.or_else(|| net.vms.iter().flat_map(|v| v.nics.iter()).find(|n| n.net == net.name).and_then(|n| n.ip));
        let Some(addr) = any else { return Ok(()) };
        let o = addr.octets();
        let subnet = json!({"network_id": id, "name": name, "description": env_tag(uuid), "ip_version": 4,
            "cidr": format!("{}.{}.{}.0/24", o[0], o[1], o[2]), "enable_dhcp": false, "gateway_ip": gw.map(|g| g.to_string())});
        let sv = s.post("network", "/subnets", &json!({"subnet": subnet}))?;
        tag(s, "subnets", sv["subnet"]["id"].as_str().unwrap_or_default(), uuid)
    })();
    if let Err(e) = made {
        let _ = delete_network(s, &id);
        return Err(e);
    }
    Ok(id)
}

/// Deletes a network (and its subnets with it).
pub fn delete_network(s: &Session, id: &str) -> Result<(), OpenstackError> {
    s.delete("network", &format!("/networks/{id}"))
}

/// Creates a port with port security off: on `net_id`, with `mac` and the fixed address `ip`
/// on its subnet when given (else the one Neutron gives); tagged.
pub fn create_port(
    s: &Session,
    uuid: &str,
    name: &str,
    net_id: &str,
    mac: Option<&str>,
    ip: Option<(&str, String)>,
) -> Result<Value, OpenstackError> {
    // One left by a command that was killed (or whose rollback did not reach the cloud) holds
    // the MAC and address: it goes first.
    if let Some(old) = port_named(s, uuid, name)? {
        s.delete("network", &format!("/ports/{}", old["id"].as_str().unwrap_or_default()))?;
    }
    let mut port =
        json!({"network_id": net_id, "name": name, "description": env_tag(uuid), "port_security_enabled": false});
    if let Some(mac) = mac {
        port["mac_address"] = json!(mac);
    }
    if let Some((subnet, ip)) = ip {
        port["fixed_ips"] = json!([{"subnet_id": subnet, "ip_address": ip}]);
    }
    let v = s.post("network", "/ports", &json!({"port": port}))?;
    let p = v["port"].clone();
    if let Err(e) = tag(s, "ports", p["id"].as_str().unwrap_or_default(), uuid) {
        let _ = s.delete("network", &format!("/ports/{}", p["id"].as_str().unwrap_or_default()));
        return Err(e);
    }
    Ok(p)
}

/// The environment's port named `name`.
pub fn port_named(s: &Session, uuid: &str, name: &str) -> Result<Option<Value>, OpenstackError> {
    // By its description (set at creation), so a port not tagged yet is found too.
    let v = s.get("network", &format!("/ports?name={name}&description={}", env_tag(uuid)))?;
    Ok(v["ports"].as_array().and_then(|p| p.first().cloned()))
}

/// The management network (`[openstack] network`) and the prefix length of its IPv4 subnet.
pub fn mgmt_network(s: &Session, options: &OpenstackOptions) -> Result<(Value, u8), OpenstackError> {
    let name = options.network.as_deref().ok_or(OpenstackError::NoManagementNetwork)?;
    let bad = |reason: String| OpenstackError::BadManagementNetwork { name: name.to_owned(), reason };
    let mut found =
        s.get("network", &format!("/networks?name={name}"))?["networks"].as_array().cloned().unwrap_or_default();
    if found.is_empty() {
        found = s.get("network", &format!("/networks?id={name}"))?["networks"].as_array().cloned().unwrap_or_default();
    }
    let net = match found.len() {
        0 => return Err(bad("the cloud has no such network (`openstack network list` shows them)".into())),
        1 => found.remove(0),
        n => return Err(bad(format!("{n} networks have that name: name it by its id"))),
    };
    let subnets =
        s.get("network", &format!("/subnets?network_id={}&ip_version=4", net["id"].as_str().unwrap_or_default()))?;
    let plen = subnets["subnets"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(|x| x["cidr"].as_str())
        .and_then(|c| c.split_once('/'))
        .and_then(|(_, p)| p.parse().ok())
        .ok_or_else(|| bad("it has no IPv4 subnet".into()))?;
    Ok((net, plen))
}

/// The `openstack` VMs of the prefix at `prefix`.
pub fn openstack_vms(prefix: &Path) -> Vec<VmRecord> {
    let Ok(env) = (crate::prefix::Prefix { path: prefix.to_owned() }).virt_env() else { return Vec::new() };
    env.vms
        .into_iter()
        .filter_map(|(_, m)| serde_json::from_value::<VmRecord>(Value::Object(m)).ok())
        .filter(|v| v.provider() == "openstack")
        .collect()
}

/// A template as Glance gets it: the store's image (the end of the VM's first disk's backing
/// chain), and the kernel and initramfs it boots directly when it has them.
#[derive(Debug, Clone)]
pub struct Template {
    /// The image file.
    pub disk: PathBuf,
    /// `qcow2` or `raw`.
    pub format: &'static str,
    /// Its virtual size, bytes.
    pub size: u64,
    /// Direct boot: kernel, initramfs, command line.
    pub boot: Option<crate::prefix::records::DirectBoot>,
}

impl Template {
    /// The disk a flavor must give, GB (rounded up).
    pub fn disk_gb(&self) -> u64 {
        self.size.div_ceil(1 << 30)
    }
}

/// The template of `vm`'s first disk.
pub fn template_of(prefix: &Path, vm: &VmRecord) -> Result<Template, OpenstackError> {
    let disk = vm.disks.first().ok_or_else(|| OpenstackError::NoImage { vm: vm.name.clone() })?;
    let mut file = PathBuf::from(disk.path.replace("$LAGO_PREFIX_PATH", &prefix.display().to_string()));
    for _ in 0..16 {
        match crate::host::images::qcow2_backing(&file) {
            Ok(Some(next)) => file = next,
            _ => break,
        }
    }
    let read = |e: std::io::Error| OpenstackError::Read { path: file.clone(), message: e.to_string() };
    let mut header = [0u8; 32];
    let len = {
        use std::io::Read;
        let mut f = std::fs::File::open(&file).map_err(read)?;
        let n = f.read(&mut header).map_err(read)?;
        let _ = n;
        f.metadata().map_err(read)?.len()
    };
    let qcow2 = header[..4] == *b"QFI\xfb";
    let size = if qcow2 { u64::from_be_bytes(header[24..32].try_into().unwrap_or_default()) } else { len };
    Ok(Template { disk: file, format: if qcow2 { "qcow2" } else { "raw" }, size, boot: vm.direct_boot(prefix) })
}

/// The flavor of `vm`: `[openstack] flavor`, else the smallest (by RAM, vCPUs, disk) with its
/// memory, vCPUs and the template's disk.
pub fn choose_flavor(
    s: &Session,
    options: &OpenstackOptions,
    vm: &VmRecord,
    disk_gb: u64,
) -> Result<Value, OpenstackError> {
    let flavors = s.get("compute", "/flavors/detail")?["flavors"].as_array().cloned().unwrap_or_default();
    let known = || flavors.iter().filter_map(|f| f["name"].as_str().map(str::to_owned)).collect::<Vec<_>>();
    if let Some(name) = &options.flavor {
        return flavors
            .iter()
            .find(|f| f["name"] == name.as_str() || f["id"] == name.as_str())
            .cloned()
            .ok_or_else(|| OpenstackError::UnknownFlavor { name: name.clone(), known: known() });
    }
    let n = |f: &Value, k: &str| f[k].as_u64().unwrap_or(0);
    let (memory, vcpu) = (vm.run_memory(), vm.vcpu);
    flavors
        .iter()
        .filter(|f| n(f, "ram") >= memory && n(f, "vcpus") >= vcpu && (n(f, "disk") >= disk_gb || n(f, "disk") == 0))
        .min_by_key(|f| (n(f, "ram"), n(f, "vcpus"), n(f, "disk")))
        .cloned()
        .ok_or_else(|| OpenstackError::NoFlavor { vm: vm.name.clone(), memory, vcpu, disk: disk_gb, known: known() })
}

/// What an environment needs of the project's quota.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Need {
    /// Servers.
    pub instances: i64,
    /// vCPUs.
    pub cores: i64,
    /// RAM, MiB.
    pub ram: i64,
    /// Networks.
    pub networks: i64,
    /// Subnets.
    pub subnets: i64,
    /// Ports.
    pub ports: i64,
}

/// The project's free room: `(resource, needed, limit, used)` of each resource (limit -1:
/// unlimited).
pub fn quota_room(s: &Session, need: &Need) -> Result<Vec<(&'static str, i64, i64, i64)>, OpenstackError> {
    let project = &s.project_id;
    let nova = s.get("compute", &format!("/os-quota-sets/{project}/detail"))?;
    let q = &nova["quota_set"];
    let used = |x: &Value| {
        x["in_use"].as_i64().or_else(|| x["used"].as_i64()).unwrap_or(0) + x["reserved"].as_i64().unwrap_or(0)
    };
    let mut rows = vec![
        ("instances", need.instances, q["instances"]["limit"].as_i64().unwrap_or(-1), used(&q["instances"])),
        ("cores", need.cores, q["cores"]["limit"].as_i64().unwrap_or(-1), used(&q["cores"])),
        ("ram (MiB)", need.ram, q["ram"]["limit"].as_i64().unwrap_or(-1), used(&q["ram"])),
    ];
    let (status, neutron) =
        s.request_allowing("GET", "network", &format!("/quotas/{project}/details.json"), None, &[404])?;
    if status != 404 {
        let q = &neutron["quota"];
        rows.push(("networks", need.networks, q["network"]["limit"].as_i64().unwrap_or(-1), used(&q["network"])));
        rows.push(("subnets", need.subnets, q["subnet"]["limit"].as_i64().unwrap_or(-1), used(&q["subnet"])));
        rows.push(("ports", need.ports, q["port"]["limit"].as_i64().unwrap_or(-1), used(&q["port"])));
    }
    Ok(rows)
}

/// An error naming each resource the project lacks for `need`.
pub fn check_quota(s: &Session, need: &Need) -> Result<(), OpenstackError> {
    let short: Vec<String> = quota_room(s, need)?
        .into_iter()
        .filter(|(_, needed, limit, used)| *needed > 0 && *limit >= 0 && used + needed > *limit)
        .map(|(what, needed, limit, used)| {
            format!("{what}: {needed} needed, {} free (limit {limit}, {used} in use)", (limit - used).max(0))
        })
        .collect();
    if short.is_empty() { Ok(()) } else { Err(OpenstackError::Quota { short }) }
}

/// The identity of a file in Glance: its name and the SHA-1 of its bytes.
fn file_key(path: &Path) -> Result<String, OpenstackError> {
    use sha1::Digest;
    let bytes =
        std::fs::read(path).map_err(|e| OpenstackError::Read { path: path.to_owned(), message: e.to_string() })?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(format!("{name}@{}", hex::encode(sha1::Sha1::digest(&bytes))))
}

/// The active image whose `lago_template` is `key`.
fn find_template(s: &Session, key: &str) -> Result<Option<String>, OpenstackError> {
    let v = s.get("image", "/images?tag=lago-template&status=active&limit=1000")?;
    Ok(v["images"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["lago_template"] == key))
        .and_then(|i| i["id"].as_str().map(str::to_owned)))
}

/// Uploads `file` with `props`, unless an active image of the same key is there.
fn upload_once(
    s: &Session,
    file: &Path,
    format: &str,
    container: &str,
    props: Value,
) -> Result<String, OpenstackError> {
    let key = file_key(file)?;
    if let Some(id) = find_template(s, &key)? {
        return Ok(id);
    }
    let mut body = json!({"name": format!("lago-template-{}", key.split('@').next().unwrap_or_default()),
        "disk_format": format, "container_format": container, "visibility": "private",
        "tags": [TAG, "lago-template"], "lago_template": key});
    if let (Some(b), Some(p)) = (body.as_object_mut(), props.as_object()) {
        b.extend(p.clone());
    }
    let id = s.post("image", "/images", &body)?["id"].as_str().unwrap_or_default().to_owned();
    if let Err(e) = s.upload(&id, file) {
        let _ = s.delete("image", &format!("/images/{id}"));
        return Err(e);
    }
    Ok(id)
}

/// The Glance image of a template, uploaded once (kernel and initramfs first when it boots
/// directly); later environments find it by `lago_template`.
pub fn ensure_image(s: &Session, t: &Template) -> Result<String, OpenstackError> {
    let mut props = json!({});
    if let Some(boot) = &t.boot {
        let kernel = upload_once(s, &boot.kernel, "aki", "aki", json!({}))?;
        let ramdisk = upload_once(s, &boot.initrd, "ari", "ari", json!({}))?;
        props = json!({"kernel_id": kernel, "ramdisk_id": ramdisk, "os_command_line": boot.cmdline});
    }
    upload_once(s, &t.disk, t.format, "bare", props)
}

/// Tags a snapshot image of the environment.
pub fn tag_image(s: &Session, id: &str, uuid: &str) -> Result<(), OpenstackError> {
    for t in [TAG.to_owned(), env_tag(uuid)] {
        s.request("PUT", "image", &format!("/images/{id}/tags/{t}"), None)?;
    }
    Ok(())
}

/// Waits until image `id` is active.
pub fn wait_image(s: &Session, id: &str, what: &str) -> Result<(), OpenstackError> {
    let start = Instant::now();
    loop {
        let status = s.get("image", &format!("/images/{id}"))?["status"].as_str().unwrap_or("?").to_owned();
        match status.as_str() {
            "active" => return Ok(()),
            "killed" | "deleted" | "deactivated" => {
                return Err(OpenstackError::Failed {
                    what: what.to_owned(),
                    message: format!("its image is {status}"),
                });
            }
            _ if start.elapsed() > Duration::from_secs(1800) => {
                return Err(OpenstackError::Timeout {
                    what: what.to_owned(),
                    awaited: "active".into(),
                    secs: 1800,
                    status,
                });
            }
            _ => std::thread::sleep(Duration::from_millis(1500)),
        }
    }
}

/// The environment's snapshot images: `(id, vm, snapshot)`.
pub fn snapshot_images(s: &Session, uuid: &str) -> Result<Vec<(String, String, String)>, OpenstackError> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for q in [format!("/images?tag={}&limit=1000", env_tag(uuid)), format!("/images?lago_env={uuid}&limit=1000")] {
        for i in s.get("image", &q)?["images"].as_array().cloned().unwrap_or_default() {
            if i["lago_env"] != uuid {
                continue;
            }
            let id = i["id"].as_str().unwrap_or_default().to_owned();
            if seen.insert(id.clone()) {
                let p = |k: &str| i[k].as_str().unwrap_or_default().to_owned();
                out.push((id, p("lago_vm"), p("lago_snapshot")));
            }
        }
    }
    Ok(out)
}

/// The image of snapshot `name` of `vm`.
pub fn snapshot_image(s: &Session, uuid: &str, vm: &str, name: &str) -> Result<Option<String>, OpenstackError> {
    Ok(snapshot_images(s, uuid)?.into_iter().find(|(_, v, n)| v == vm && n == name).map(|(id, _, _)| id))
}

/// Waits until `path` of service `kind` answers 404.
pub fn wait_gone(s: &Session, kind: &str, path: &str) -> Result<(), OpenstackError> {
    let start = Instant::now();
    loop {
        let (status, v) = s.request_allowing("GET", kind, path, None, &[404])?;
        if status == 404 {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(300) {
            let status = v["server"]["status"].as_str().unwrap_or("?").to_owned();
            return Err(OpenstackError::Timeout {
                what: path.to_owned(),
                awaited: "deleted".into(),
                secs: 300,
                status,
            });
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
}

/// Deletes every resource of the environment: servers (waited for, their ports free then),
/// ports, subnets, networks, snapshot images.
pub fn remove_env(s: &Session, uuid: &str) -> Result<(), OpenstackError> {
    let servers = servers(s, uuid)?;
    for srv in &servers {
        s.delete("compute", &format!("/servers/{}", srv["id"].as_str().unwrap_or_default()))?;
    }
    for srv in &servers {
        wait_gone(s, "compute", &format!("/servers/{}", srv["id"].as_str().unwrap_or_default()))?;
    }
    for kind in ["ports", "subnets", "networks"] {
        for r in tagged(s, kind, uuid)? {
            s.delete("network", &format!("/{kind}/{}", r["id"].as_str().unwrap_or_default()))?;
        }
    }
    for (id, _, _) in snapshot_images(s, uuid)? {
        s.delete("image", &format!("/images/{id}"))?;
    }
    Ok(())
}

/// Every resource of the environment still in the cloud, as `kind name` lines (`lago doctor`).
pub fn leftovers(s: &Session, uuid: &str) -> Result<Vec<String>, OpenstackError> {
    let mut out: Vec<String> =
        servers(s, uuid)?.iter().map(|x| format!("server {}", x["name"].as_str().unwrap_or("?"))).collect();
    for kind in ["ports", "subnets", "networks"] {
        for r in tagged(s, kind, uuid)? {
            out.push(format!("{} {}", kind.trim_end_matches('s'), r["name"].as_str().unwrap_or("?")));
        }
    }
    for (_, vm, snap) in snapshot_images(s, uuid)? {
        out.push(format!("image of snapshot {snap} of {vm}"));
    }
    Ok(out)
}
