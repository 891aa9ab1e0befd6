//! The prefix of an init, built in its staging directory: keys, templates in the store, disks,
//! seeds, deploy scripts, `build` steps and the records, one step per method of [`Build`]; and
//! the subnets leased for libvirt networks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::check::InitPaths;
use super::error::InitError;
use super::options::{Host, InitOptions};
use super::seed::{self, BootstrapError};
use super::templates::{TemplateUses, resolve_parent};
use crate::host::images::Images;
use crate::host::process::Invocation;
use crate::output::python_json;
use crate::plan::{Plan, PlanDefaults};
use crate::prefix::Layout;
use crate::prefix::leases::{SubnetError, SubnetLeases};
use crate::prefix::workdir::io_err;
use crate::report::{Reporter, task};
use crate::spec::{self, DiskType, SpecError, TemplateType};
use crate::template::{Store, StoredTemplate};

/// One init's build of its prefix in `staging`.
pub(super) struct Build<'a> {
    /// The options of the init.
    pub opts: &'a InitOptions,
    /// The host's services.
    pub host: &'a Host<'a>,
    /// The template of each template disk.
    pub uses: &'a TemplateUses,
    /// Each VM's deploy scripts.
    pub scripts: &'a [Vec<(PathBuf, String)>],
    /// The staging directory.
    pub staging: &'a Path,
    /// The prefix it becomes.
    pub prefix: &'a Path,
    /// The environment's uuid.
    pub uuid: &'a str,
    /// How the init file's paths are resolved.
    pub paths: &'a InitPaths,
}

impl Build<'_> {
    /// Builds everything of the prefix, in order.
    pub fn run(&self, plan: &mut Plan) -> Result<(), InitError> {
        let r = self.host.reporter;
        for sub in ["images", "virt", "scripts", "logs", "run"] {
            std::fs::create_dir_all(self.staging.join(sub)).map_err(io_err("create", &self.staging.join(sub)))?;
        }
        let _ = crate::host::logfile::attach(&Layout::new(self.staging).log());
        tracing::info!(
            "init of {} from {} (staging in {})",
            self.prefix.display(),
            self.opts.init_file.display(),
            self.staging.display()
        );
        task(r, "Initialize and populate prefix", || {
            task(r, "Initialize prefix", || self.keys())?;
            let stored = self.store_templates()?;
            // A VM whose first template disk takes no seed (an image imported with
            // `--bootstrap none`) gets none.
            let mut seen = std::collections::BTreeSet::new();
            for (&(v, _), t) in self.uses {
                let none = stored.get(&t.store_name()).is_some_and(|(st, _)| {
                    st.metadata.get("bootstrap").and_then(serde_json::Value::as_str) == Some("none")
                });
                if seen.insert(v) && none {
                    plan.vms[v].bootstrap = false;
                }
            }
            self.create_disks(plan, &stored)?;
            if !self.opts.skip_bootstrap {
                self.write_seeds(plan)?;
            }
            task(r, "Copying any deploy scripts", || self.copy_scripts(plan))?;
            if !self.opts.skip_build {
                run_builds(self.opts, self.host, plan, self.staging)?;
            }
            task(r, "Save prefix", || self.save(plan))
        })
    }

    /// The uuid file and the key pair.
    fn keys(&self) -> Result<(), InitError> {
        let (r, staging, uuid) = (self.host.reporter, self.staging, self.uuid);
        task(r, "Generate prefix uuid", || write(&Layout::new(staging).uuid(), uuid))?;
        if let Some(key) = &self.opts.ssh_key {
            return task(r, "Copying ssh key", || {
                seed::copy_ssh_keys(key, staging, self.host.runner).map_err(InitError::from)
            });
        }
        task(r, "Create ssh keys", || {
            seed::create_ssh_keys(staging, &format!("lago-{uuid}"), self.host.runner)
                .map(|_| ())
                .map_err(InitError::from)
        })
    }

    /// Each template version fetched into the store (or checked there) once, with its format.
    fn store_templates(&self) -> Result<BTreeMap<String, (StoredTemplate, String)>, InitError> {
        let (r, host, opts) = (self.host.reporter, self.host, self.opts);
        let store = Store::new(&opts.template_store);
        let mut stored = BTreeMap::new();
        for t in self.uses.values() {
            let name = t.store_name();
            if stored.contains_key(&name) {
                continue;
            }
            let title = if store.contains(t) {
                format!("Check template {name}")
            } else {
                format!("Template {name} not in cache, downloading")
            };
            let st = task(r, &title, || store.ensure(t, host.fetcher, host.runner, r))?;
            let info = Images::new(host.runner).info(&st.path).map_err(|source| InitError::Disk {
                vm: "-".into(),
                disk: name.clone(),
                source,
            })?;
            if let Some(backing) = info.backing {
                return Err(InitError::TemplateHasBacking { name, path: st.path, backing });
            }
            // The store keeps what this prefix uses (`lago template prune` leaves it), and the
            // prefix which images it recorded itself in (`destroy` takes it back).
            crate::template::store::set_user(&st.path, self.prefix, true)?;
            stored.insert(name, (st, info.format));
        }
        if !stored.is_empty() {
            let lines: String = stored.values().map(|(st, _)| format!("{}\n", st.path.display())).collect();
            write(&self.staging.join(crate::prefix::STORE_USES), &lines)?;
        }
        Ok(stored)
    }

    /// The disks of every VM: overlays on templates, empty and file disks, copies.
    fn create_disks(
        &self,
        plan: &mut Plan,
        stored: &BTreeMap<String, (StoredTemplate, String)>,
    ) -> Result<(), InitError> {
        let (r, host, opts, staging, uses) = (self.host.reporter, self.host, self.opts, self.staging, self.uses);
        let store = Store::new(&opts.template_store);
        let resolve = |p: &str| self.paths.resolve(p);
        let images = Images::new(host.runner);
        for (v, vm) in plan.vms.iter_mut().enumerate() {
            let vm_name = vm.name.clone();
            let asked = Asked {
                vm: vm.name.clone(),
                memory: vm.memory,
                numa: vm.spec.cpu_custom.as_ref().is_some_and(|c| c.get("numa").is_some()),
            };
            task(r, &format!("Create disks for VM {vm_name}"), || {
                for (d, disk) in vm.disks.iter_mut().enumerate() {
                    let in_staging =
                        PathBuf::from(disk.path.replace("$LAGO_PREFIX_PATH", &staging.display().to_string()));
                    let derr = |source| InitError::Disk { vm: vm_name.clone(), disk: disk.spec.name.clone(), source };
                    task(r, &format!("Create disk {}", disk.spec.name), || {
                        match (disk.spec.kind, disk.spec.template_type) {
                            (DiskType::Template, TemplateType::Lago) => {
                                let t = &uses[&(v, d)];
                                let (st, format) = &stored[&t.store_name()];
                                images.create_overlay(&st.path, format, &in_staging).map_err(derr)?;
                                for (k, val) in &st.metadata {
                                    disk.metadata.insert(k.clone(), val.clone());
                                }
                                if d == 0 {
                                    note_min_memory(r, &asked, &st.metadata, &t.store_name());
                                }
                                Ok(())
                            }
                            (DiskType::Template, TemplateType::Qcow2) => {
                                let base = resolve(disk.spec.path.as_deref().unwrap_or_default());
                                resolve_parent(&base, opts, host, &store)?;
                                images.create_overlay(&base, "qcow2", &in_staging).map_err(derr)?;
                                // An exported image's `.metadata` (lago's and the original's
                                // exports write one beside it) is its template's: what the init
                                // file's own `metadata` does not say comes from there.
                                if let Some(published) = sidecar_metadata(&base) {
                                    for (k, val) in published {
                                        disk.metadata.entry(k).or_insert(val);
                                    }
                                }
                                if d == 0 {
                                    note_min_memory(r, &asked, &disk.metadata, &base.display().to_string());
                                }
                                Ok(())
                            }
                            (DiskType::Empty, _) => images
                                .create(&in_staging, &disk.format, disk.spec.size.as_deref().unwrap_or_default())
                                .map_err(derr),
                            (DiskType::File, _) if disk.spec.url.is_some() => {
                                let url = self.paths.expand(disk.spec.url.as_deref().unwrap_or_default());
                                let dest = match &disk.spec.path {
                                    Some(p) => {
                                        let to = resolve(p);
                                        disk.path = to.display().to_string();
                                        to
                                    }
                                    None => in_staging.clone(),
                                };
                                download(host.fetcher, &url, &dest).map_err(|reason| InitError::Download {
                                    vm: vm_name.clone(),
                                    url: url.clone(),
                                    reason,
                                })
                            }
                            (DiskType::File, _) => match &disk.spec.path {
                                Some(p) if disk.spec.make_a_copy => {
                                    let from = resolve(p);
                                    let inv = Invocation::new("cp")
                                        .args(["--sparse=always", "--"])
                                        .arg(&from)
                                        .arg(&in_staging);
                                    host.runner.run(&inv).map(|_| ()).map_err(|source| InitError::Copy {
                                        vm: vm_name.clone(),
                                        from,
                                        source,
                                    })
                                }
                                Some(p) => {
                                    disk.path = resolve(p).display().to_string();
                                    Ok(())
                                }
                                None => images
                                    .create(&in_staging, &disk.format, disk.spec.size.as_deref().unwrap_or_default())
                                    .map_err(derr),
                            },
                        }
                    })?;
                }
                Ok::<_, InitError>(())
            })?;
        }

        Ok(())
    }

    /// One NoCloud seed per VM that bootstraps.
    fn write_seeds(&self, plan: &Plan) -> Result<(), InitError> {
        let (r, staging, uuid) = (self.host.reporter, self.staging, self.uuid);
        let public_key_file = Layout::new(staging).ssh_public_key();
        let public_key = std::fs::read_to_string(&public_key_file)
            .map_err(|source| BootstrapError::Write { path: public_key_file.clone(), source })?;
        for (i, vm) in plan.vms.iter().enumerate().filter(|(_, vm)| vm.bootstrap) {
            task(r, &format!("Bootstrapping {}", vm.name), || {
                let files = seed::seed_files(plan, i, uuid, &public_key);
                seed::write_seed(&Layout::new(staging).seed(&vm.name), &vm.name, &files)
            })?;
        }
        Ok(())
    }

    /// Copies of the deploy scripts in `scripts/`, named in the records by their new paths.
    fn copy_scripts(&self, plan: &mut Plan) -> Result<(), InitError> {
        for (vm, vm_scripts) in plan.vms.iter_mut().zip(self.scripts) {
            let mut persisted = Vec::new();
            for (s, name) in vm_scripts {
                let dest = self.staging.join("scripts").join(name);
                std::fs::copy(s, &dest).map_err(io_err("copy", s))?;
                persisted.push(format!("$LAGO_PREFIX_PATH/scripts/{name}"));
            }
            vm.spec.deploy_scripts = persisted;
        }
        Ok(())
    }

    /// The records (`metadata`, `virt/*`) and, last, `initialized`.
    fn save(&self, plan: &Plan) -> Result<(), InitError> {
        let (r, staging) = (self.host.reporter, self.staging);
        let metadata = json!({"lago_version": env!("CARGO_PKG_VERSION"), crate::prefix::RECORDS_AS_WRITTEN: true});
        write(&staging.join("metadata"), &python_json(&metadata, false))?;
        for net in &plan.nets {
            write(&Layout::new(staging).net_record(&net.name), &python_json(&net.to_json(), false))?;
        }
        for vm in &plan.vms {
            write(&Layout::new(staging).vm_record(&vm.name), &python_json(&vm.to_json(), false))?;
        }
        write(&Layout::new(staging).virt_env(), &python_json(&plan.env_json(), false))?;
        task(r, "Tag prefix as initialized", || write(&Layout::new(staging).initialized(), ""))
    }
}

/// Leases host-wide the subnets of the `nat` networks of libvirt VMs (libvirt puts their
/// gateways on the host, where two environments must not share a subnet), and of `local-qemu`
/// VMs when `lease_local` (they may get a host leg, which puts the gateway on the host too);
/// gives `ipv6: auto` networks the environment's unique local prefixes, and leases the IPv6
/// prefixes a host leg may hold; then plans again with what was leased. Other networks touch no
/// host interface and need no lease.
#[allow(clippy::too_many_arguments, reason = "the inputs of one lease: the plan, the store of leases, the holder")]
pub(super) fn lease_subnets(
    init_file: &Path,
    spec: &spec::Spec,
    plan: &mut Plan,
    defaults: &PlanDefaults,
    leases: &SubnetLeases,
    lease_local: bool,
    uuid_path: &Path,
    uuid: &str,
    reporter: &dyn Reporter,
) -> Result<(), InitError> {
    let mut leased = spec.clone();
    let changed_v6 = lease_prefixes6(&mut leased, plan, leases, lease_local, uuid_path, uuid, reporter)?;
    let on_libvirt = |net: &str| {
        plan.vms.iter().any(|v| {
            (v.vm_provider == "local-libvirt" || (lease_local && v.vm_provider == "local-qemu"))
                && v.nics.iter().any(|n| n.net == net)
        })
    };
    let leasable = |gw: std::net::Ipv4Addr| {
        let o = gw.octets();
        (o[0] == 192 && o[1] == 168 && crate::plan::SUBNET_OCTETS.contains(&o[2])).then_some(o[2])
    };
    let mut names = Vec::new();
    let mut wanted = Vec::new();
    let mut avoid = Vec::new();
    // IPv6-only networks have no subnet.
    for net in spec.nets.iter().filter(|n| n.kind == spec::NetType::Nat && n.ipv4) {
        match (on_libvirt(&net.name), net.gw) {
            (true, Some(gw)) => match leasable(gw) {
                Some(o) => {
                    names.push(net.name.clone());
                    wanted.push(Some(o));
                }
                // Outside the original's range: the user's own choice, not coordinated.
                None => tracing::warn!(
                    "network {}: subnet of gw {gw} is not leased (outside 192.168.200.0/24 - 192.168.255.0/24)",
                    net.name
                ),
            },
            (true, None) => {
                names.push(net.name.clone());
                wanted.push(None);
            }
            (false, Some(gw)) => avoid.extend(leasable(gw)),
            (false, None) => {}
        }
    }
    if names.is_empty() && !changed_v6 {
        return Ok(());
    }
    let octets = if names.is_empty() {
        Vec::new()
    } else {
        task(reporter, "Lease subnets", || {
            leases
                .acquire(uuid_path, uuid, &wanted, &avoid)
                .map_err(|source| InitError::Subnet { net: names[0].clone(), source })
        })?
    };
    // A `gw` given is the gateway (its subnet is what was leased); the others get `.1` of theirs.
    for (name, octet) in names.iter().zip(&octets) {
        if let Some(net) = leased.nets.iter_mut().find(|n| &n.name == name) {
            net.gw.get_or_insert(std::net::Ipv4Addr::new(192, 168, *octet, 1));
        }
    }
    // Static addresses keep their last octet on the leased subnet, as in the original.
    *plan = crate::plan::plan(&leased, defaults)
        .map_err(|issues| InitError::Spec(SpecError::Invalid { path: init_file.to_owned(), issues }))?;
    Ok(())
}

/// Gives the `ipv6: auto` networks of `spec` their prefixes (the environment's unique local
/// /64s, [`crate::plan::ula_prefix`], apart from the prefixes written), and leases host-wide the
/// prefixes of `nat` networks of `local-qemu` VMs when `lease_local` (a host leg may hold their
/// gateway), moving an `auto` one that another environment holds. Whether `spec` changed.
fn lease_prefixes6(
    spec: &mut spec::Spec,
    plan: &Plan,
    leases: &SubnetLeases,
    lease_local: bool,
    uuid_path: &Path,
    uuid: &str,
    reporter: &dyn Reporter,
) -> Result<bool, InitError> {
    let written: Vec<std::net::Ipv6Addr> = spec
        .nets
        .iter()
        .filter_map(|n| match n.ipv6 {
            Some(spec::Ipv6Spec::Prefix(p)) => Some(p),
            _ => None,
        })
        .collect();
    let autos: Vec<String> =
        spec.nets.iter().filter(|n| n.ipv6 == Some(spec::Ipv6Spec::Auto)).map(|n| n.name.clone()).collect();
    let mut subnet: u16 = 0;
    for net in spec.nets.iter_mut().filter(|n| n.ipv6 == Some(spec::Ipv6Spec::Auto)) {
        let mut p = crate::plan::ula_prefix(uuid, subnet);
        while written.contains(&p) {
            subnet = subnet.wrapping_add(1);
            p = crate::plan::ula_prefix(uuid, subnet);
        }
        subnet = subnet.wrapping_add(1);
        net.ipv6 = Some(spec::Ipv6Spec::Prefix(p));
    }
    let on_leg = |net: &str| {
        lease_local && plan.vms.iter().any(|v| v.vm_provider == "local-qemu" && v.nics.iter().any(|n| n.net == net))
    };
    let mut names = Vec::new();
    let mut wanted = Vec::new();
    for net in spec.nets.iter().filter(|n| n.kind == spec::NetType::Nat && on_leg(&n.name)) {
        if let Some(spec::Ipv6Spec::Prefix(p)) = net.ipv6 {
            names.push(net.name.clone());
            // An `auto` prefix may move when another environment holds it.
            wanted.push((p, autos.contains(&net.name)));
        }
    }
    let changed = !autos.is_empty();
    if names.is_empty() {
        return Ok(changed);
    }
    let got = task(reporter, "Lease IPv6 prefixes", || {
        leases.acquire6(uuid_path, uuid, &wanted).map_err(|source| {
            let net = match &source {
                SubnetError::Taken6 { prefix, .. } => wanted.iter().position(|(p, _)| p == prefix).unwrap_or(0),
                _ => 0,
            };
            InitError::Subnet { net: names[net].clone(), source }
        })
    })?;
    for (name, p) in names.iter().zip(got) {
        if let Some(net) = spec.nets.iter_mut().find(|n| &n.name == name) {
            net.ipv6 = Some(spec::Ipv6Spec::Prefix(p));
        }
    }
    Ok(changed)
}

/// The metadata published beside image `image` (`<image>.metadata`, a JSON object), if any.
fn sidecar_metadata(image: &Path) -> Option<serde_json::Map<String, serde_json::Value>> {
    let path = PathBuf::from(format!("{}.metadata", image.display()));
    let text = crate::host::pathio::read_text(&path, 1 << 20).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?.as_object().cloned()
}

/// The memory a VM asks for, for [`note_min_memory`].
struct Asked {
    vm: String,
    memory: u64,
    /// Whether it has NUMA cells of its own (its memory then stays as asked).
    numa: bool,
}

/// Says when a VM asks for less memory than its first disk's template needs (`min-memory`):
/// it runs with that much (see [`crate::prefix::records::VmRecord::run_memory`]).
fn note_min_memory(
    r: &dyn Reporter,
    asked: &Asked,
    metadata: &serde_json::Map<String, serde_json::Value>,
    template: &str,
) {
    let min = metadata.get(crate::prefix::records::MIN_MEMORY).and_then(serde_json::Value::as_u64);
    if let Some(min) = min.filter(|m| *m > asked.memory && !asked.numa) {
        r.warn(&format!(
            "VM {} asks for {} MiB; template {template} needs at least {min} MiB to boot: it runs with {min} MiB",
            asked.vm, asked.memory
        ));
    }
}

/// `virt-customize` argv for one build step (reference §5.3).
pub fn build_args(options: &[(String, Vec<String>)], public_key: &Path) -> Vec<String> {
    let mut args = Vec::new();
    for (opt, values) in options {
        let flag = if opt.chars().count() == 1 { format!("-{opt}") } else { format!("--{opt}") };
        match (opt.as_str(), values.as_slice()) {
            ("ssh-inject", []) => {
                args.push(flag);
                args.push(format!("root:file:{}", public_key.display()));
            }
            (_, []) => args.push(flag),
            (_, vals) => {
                for v in vals {
                    args.push(flag.clone());
                    args.push(v.clone());
                }
            }
        }
    }
    args
}

fn run_builds(opts: &InitOptions, host: &Host<'_>, plan: &Plan, staging: &Path) -> Result<(), InitError> {
    if !plan.vms.iter().any(|vm| vm.disks.iter().any(|d| !d.spec.build.is_empty())) {
        return Ok(());
    }
    // libguestfs boots its appliance on the host's kernel.
    let verdicts = crate::provider::qemu::accel::KvmVerdicts::new(&opts.state_dir);
    let force_tcg = verdicts.libguestfs_force_tcg(opts.accel);
    for vm in &plan.vms {
        for disk in vm.disks.iter().filter(|d| !d.spec.build.is_empty()) {
            let path = PathBuf::from(disk.path.replace("$LAGO_PREFIX_PATH", &staging.display().to_string()));
            task(host.reporter, &format!("Build disk {} of VM {}", disk.spec.name, vm.name), || {
                for (i, step) in disk.spec.build.iter().enumerate() {
                    let mut inv = Invocation::new(&step.builder)
                        .arg("-a")
                        .arg(&path)
                        .args(build_args(&step.options, &Layout::new(staging).ssh_public_key()));
                    inv = inv.env(
                        "LIBGUESTFS_BACKEND",
                        std::env::var_os("LIBGUESTFS_BACKEND").unwrap_or_else(|| "direct".into()),
                    );
                    if force_tcg {
                        inv = inv.env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg");
                    }
                    host.runner.run(&inv).map_err(|source| InitError::Build {
                        vm: vm.name.clone(),
                        disk: disk.spec.name.clone(),
                        step: i,
                        builder: step.builder.clone(),
                        source,
                    })?;
                }
                Ok::<_, InitError>(())
            })?;
        }
    }
    Ok(())
}

pub(super) fn write(path: &Path, content: &str) -> Result<(), InitError> {
    std::fs::write(path, content).map_err(io_err("write", path))?;
    Ok(())
}

/// Downloads `url` (`file://` or `http(s)://`) to `dest`, through a temporary file beside it.
fn download(fetcher: &dyn crate::host::fetch::Fetcher, url: &str, dest: &Path) -> Result<(), String> {
    let tmp = dest.with_extension(format!("download-{}", std::process::id()));
    let result = (|| {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let mut reader: Box<dyn std::io::Read + Send> = match url.strip_prefix("file://") {
            Some(local) => Box::new(std::fs::File::open(local).map_err(|e| format!("cannot open {local}: {e}"))?),
            None => fetcher.open(url).map_err(|e| with_causes(&e))?.reader,
        };
        let mut out = std::fs::File::create(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        std::io::copy(&mut reader, &mut out).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, dest).map_err(|e| format!("cannot move it to {}: {e}", dest.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// An error and its causes on one line.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_options_like_the_original() {
        let opts = vec![
            ("a".to_owned(), vec!["arg0".to_owned()]),
            ("b".to_owned(), vec!["x".to_owned(), "y".to_owned()]),
            ("c".to_owned(), vec![]),
            ("ssh-inject".to_owned(), vec![]),
            ("touch".to_owned(), vec!["/root/f".to_owned()]),
        ];
        assert_eq!(
            build_args(&opts, Path::new("/p/id_rsa.pub")),
            ["-a", "arg0", "-b", "x", "-b", "y", "-c", "--ssh-inject", "root:file:/p/id_rsa.pub", "--touch", "/root/f"]
        );
    }
}
