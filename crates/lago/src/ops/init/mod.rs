//! `lago init`: init file → plan → a complete prefix on disk.
//!
//! Everything that can be checked is checked before anything is written: the init file, the
//! plan, the files it names and the templates it uses. The prefix is then built in a hidden
//! staging directory of the workdir and renamed into place at the end, so a failed `init` leaves
//! no prefix (and no workdir it created); its log is kept in the temporary directory and the
//! error says where (the original lost it, its issue #588).

pub mod seed;

use std::collections::BTreeMap;

use crate::prefix::Layout;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::config::Accel;
use crate::host::fetch::Fetcher;
use crate::host::images::{ImageError, Images};
use crate::host::process::{CommandRunner, Invocation, ProcessError};
use crate::output::python_json;
use crate::plan::{Plan, PlanDefaults, plan};
use crate::prefix::leases::{SubnetError, SubnetLeases};
use crate::prefix::workdir::{Workdir, WorkdirError, io_err};
use crate::report::{Reporter, task};
use crate::spec::{self, DiskType, Issue, SpecError, TemplateType};
use crate::template::{RepoError, Repository, ResolvedTemplate, Store, StoreError};
use seed::BootstrapError;

/// What `init` needs to know.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The init file.
    pub init_file: PathBuf,
    /// The workdir (created if missing).
    pub workdir: PathBuf,
    /// The prefix name (`current` means `default`).
    pub prefix_name: String,
    /// Make the new prefix current even when the workdir has one.
    pub set_current: bool,
    /// Write no bootstrap seeds.
    pub skip_bootstrap: bool,
    /// Run no `build` steps.
    pub skip_build: bool,
    /// `template_repo_path`: path or URL of `repo.metadata`.
    pub template_repo_path: Option<String>,
    /// `template_repo_name`: a repository under `template_repos`, by name.
    pub template_repo_name: Option<String>,
    /// `template_store`.
    pub template_store: PathBuf,
    /// `template_repos`.
    pub template_repos: PathBuf,
    /// Defaults from the configuration.
    pub defaults: PlanDefaults,
    /// Acceleration (decides `force_tcg` for `virt-customize`).
    pub accel: Accel,
    /// lago's state directory, where the KVM probe's verdicts are kept.
    pub state_dir: PathBuf,
    /// Directory relative paths in the init file are resolved against.
    pub cwd: PathBuf,
    /// `lease_dir`: the host-wide subnet leases of libvirt networks.
    pub lease_dir: PathBuf,
}

/// The host services `init` uses.
pub struct Host<'a> {
    /// Runs `qemu-img`, `ssh-keygen`, `xz`, `virt-customize`.
    pub runner: &'a dyn CommandRunner,
    /// Reads http template sources.
    pub fetcher: &'a dyn Fetcher,
    /// Receives progress.
    pub reporter: &'a dyn Reporter,
}

/// Why `init` failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The init file is wrong.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Workdir or prefix naming problem.
    #[error(transparent)]
    Workdir(#[from] WorkdirError),
    /// The template repository cannot be used.
    #[error("Cannot use template repository {location}")]
    Repo {
        /// Path or URL.
        location: String,
        /// Why.
        #[source]
        source: Box<RepoError>,
    },
    /// No repository was configured.
    #[error("No template repo was configured or specified (set `template_repo_path`)")]
    NoRepo,
    /// A template could not be stored.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An image could not be created.
    #[error("Cannot create disk {disk} of VM {vm}")]
    Disk {
        /// VM.
        vm: String,
        /// Disk name.
        disk: String,
        /// Why.
        #[source]
        source: ImageError,
    },
    /// A template image is unusable as a base.
    #[error("Template {name} at {path} has a backing file ({backing}); templates must be standalone images")]
    TemplateHasBacking {
        /// Store name.
        name: String,
        /// Its path.
        path: PathBuf,
        /// Its backing file.
        backing: String,
    },
    /// A qcow2 disk's backing file is missing and does not name a template version.
    #[error(
        "Backing file resolution of disk {disk} failed: backing file {backing} is missing and is not a lago image (<template>:<version>)"
    )]
    BadBacking {
        /// The disk image.
        disk: PathBuf,
        /// Its backing file.
        backing: String,
    },
    /// Bootstrap material could not be written.
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    /// A build step failed.
    #[error("Build step {step} ({builder}) failed on disk {disk} of VM {vm}")]
    Build {
        /// VM.
        vm: String,
        /// Disk.
        disk: String,
        /// Step index.
        step: usize,
        /// Builder.
        builder: String,
        /// The failure (command and stderr).
        #[source]
        source: ProcessError,
    },
    /// Copying a file disk failed.
    #[error("Cannot copy {from} for VM {vm}")]
    Copy {
        /// VM.
        vm: String,
        /// Source file.
        from: PathBuf,
        /// The failure.
        #[source]
        source: ProcessError,
    },
    /// The prefix lock could not be taken.
    #[error(transparent)]
    Lock(#[from] crate::host::lock::LockError),
    /// The lease store could not be used.
    #[error(transparent)]
    Runtime(#[from] crate::prefix::state::RuntimeError),
    /// A libvirt network's subnet could not be leased.
    #[error("Cannot lease the subnet of network {net}")]
    Subnet {
        /// The network (the first of those leased together).
        net: String,
        /// Why.
        #[source]
        source: SubnetError,
    },
    /// A step after validation failed; the log was kept.
    #[error("Init of prefix {prefix} failed; nothing was left behind, the log is at {}", log.display())]
    Failed {
        /// The prefix that was being created.
        prefix: PathBuf,
        /// Where the log was kept.
        log: PathBuf,
        /// What failed.
        #[source]
        source: Box<InitError>,
    },
}

impl InitError {
    /// Whether the failure is the user's input (exit code 2) rather than the host's.
    pub fn is_user_error(&self) -> bool {
        match self {
            InitError::Spec(_) | InitError::Repo { .. } | InitError::NoRepo | InitError::BadBacking { .. } => true,
            InitError::Workdir(e) => !matches!(e, WorkdirError::Io(_)),
            InitError::Failed { source, .. } => source.is_user_error(),
            InitError::Store(StoreError::HashMismatch { .. } | StoreError::NoHash { .. }) => true,
            InitError::Subnet { source: SubnetError::Taken { .. }, .. } => true,
            _ => false,
        }
    }

    /// Advice for the user, when there is some.
    pub fn hint(&self) -> Option<String> {
        match self {
            InitError::Repo { source, .. } if matches!(**source, RepoError::Missing { .. }) => {
                Some("build the local template repository with `lago template build tiny`, or point `template_repo_path` at a repository".into())
            }
            InitError::Workdir(WorkdirError::PrefixExists { .. }) => Some("specify a different prefix name (`--prefix-name`) or remove it (`lago destroy`)".into()),
            InitError::Failed { source, .. } => source.hint(),
            InitError::Subnet { source: SubnetError::Taken { .. }, .. } => Some(
                "another environment's libvirt network has that subnet: choose another `gw`, or destroy that environment".into(),
            ),
            InitError::Subnet { source: SubnetError::Full { .. }, .. } => {
                Some("`lago destroy` the environments you no longer use".into())
            }
            _ => None,
        }
    }
}

/// Template disks of the plan, by (vm index, disk index).
type TemplateUses = BTreeMap<(usize, usize), ResolvedTemplate>;

/// Creates the prefix described by `opts.init_file`.
pub fn init(opts: &InitOptions, host: &Host<'_>) -> Result<PathBuf, InitError> {
    let init_file = std::path::absolute(&opts.init_file).map_err(io_err("resolve", &opts.init_file))?;
    // Structural problems and plan problems are reported together.
    let (spec, mut issues) = spec::load_partial(&init_file)?;
    let mut plan = match plan(&spec, &opts.defaults) {
        Ok(plan) if issues.is_empty() => plan,
        Ok(_) => return Err(SpecError::Invalid { path: init_file, issues }.into()),
        Err(more) => {
            issues.extend(more);
            return Err(SpecError::Invalid { path: init_file, issues }.into());
        }
    };

    let workdir = std::path::absolute(&opts.workdir).map_err(io_err("resolve", &opts.workdir))?;
    let name = if opts.prefix_name == crate::prefix::workdir::CURRENT {
        crate::prefix::workdir::DEFAULT_PREFIX.to_owned()
    } else {
        opts.prefix_name.clone()
    };
    crate::prefix::workdir::check_prefix_name(&name)?;
    let prefix = workdir.join(&name);
    if prefix.exists() {
        return Err(WorkdirError::PrefixExists { name, workdir }.into());
    }
    if workdir.exists() && !workdir.is_dir() {
        return Err(WorkdirError::Malformed { path: workdir, reason: "it exists and is not a directory".into() }.into());
    }

    // Paths named by the init file, expanded as the original did.
    let initfile_dir = init_file.parent().unwrap_or(Path::new("/")).to_owned();
    let vars = |n: &str| match n {
        "LAGO_INITFILE_PATH" => Some(initfile_dir.display().to_string()),
        "LAGO_PREFIX_PATH" => Some(prefix.display().to_string()),
        "LAGO_WORKDIR_PATH" => Some(workdir.display().to_string()),
        other => std::env::var(other).ok(),
    };
    let resolve = |p: &str| -> PathBuf {
        let expanded = PathBuf::from(spec::expand_vars(p, &vars));
        if expanded.is_absolute() { expanded } else { opts.cwd.join(expanded) }
    };
    let mut issues = Vec::new();
    let mut scripts: Vec<Vec<PathBuf>> = Vec::new();
    for vm in &plan.vms {
        let mut vm_scripts = Vec::new();
        let key = if vm.spec.metadata.contains_key("deploy-scripts") { "deploy-scripts" } else { "ovirt-scripts" };
        for (i, s) in vm.spec.deploy_scripts.iter().enumerate() {
            let p = resolve(s);
            if !p.is_file() {
                issues.push(Issue::new(
                    &format!("domains.{}.metadata.{key}[{i}]", vm.name),
                    format!("Script {} does not exist", p.display()),
                ));
            }
            vm_scripts.push(p);
        }
        scripts.push(vm_scripts);
        for (i, d) in vm.disks.iter().enumerate() {
            let needs_file = match d.spec.kind {
                DiskType::Template => d.spec.template_type == TemplateType::Qcow2,
                DiskType::File => d.spec.path.is_some(),
                DiskType::Empty => false,
            };
            if let (true, Some(p)) = (needs_file, &d.spec.path) {
                let p = resolve(p);
                if !p.is_file() {
                    issues.push(Issue::new(
                        &format!("domains.{}.disks[{i}].path", vm.name),
                        format!("image {} does not exist", p.display()),
                    ));
                }
            }
            if d.spec.kind == DiskType::Template && d.spec.format.as_deref().is_some_and(|f| f != "qcow2") {
                issues.push(Issue::new(
                    &format!("domains.{}.disks[{i}].format", vm.name),
                    "a template disk is a qcow2 overlay (expected format qcow2)",
                ));
            }
        }
    }
    if !issues.is_empty() {
        return Err(SpecError::Invalid { path: init_file, issues }.into());
    }

    let uses = resolve_templates(opts, &plan, &init_file, host.fetcher)?;

    // Nothing was written so far. From here on, work happens in a staging directory, under the
    // prefix's lock: a second `init` of the same prefix waits, then finds the prefix and stops.
    let created_workdir = !workdir.exists();
    std::fs::create_dir_all(&workdir).map_err(io_err("create", &workdir))?;
    let wd = Workdir { path: workdir.clone() };
    let lock = match crate::host::lock::acquire(&prefix, "init", host.reporter) {
        Ok(lock) => lock,
        Err(e) => {
            if created_workdir {
                let _ = wd.repair();
            }
            return Err(e.into());
        }
    };
    let leave = |lock: crate::host::lock::PrefixLock| {
        // Nothing of this init stays: its lock file, and the workdir if it made it.
        if !prefix.exists() {
            lock.remove_file();
        }
        drop(lock);
        if created_workdir || wd.prefixes().is_ok_and(|p| p.is_empty()) {
            let _ = wd.repair();
        }
    };
    if prefix.exists() {
        leave(lock);
        return Err(WorkdirError::PrefixExists { name, workdir }.into());
    }
    // Staging directories of this prefix left by an interrupted init (we hold its lock now).
    for repaired in crate::prefix::workdir::sweep_prefix(&workdir, &name) {
        host.reporter.warn(&repaired);
    }
    let staging = workdir.join(format!(".{name}.init-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    let leases = SubnetLeases::new(&opts.lease_dir);
    let result = std::fs::create_dir_all(&staging)
        .map_err(|e| io_err("create", &staging)(e).into())
        .and_then(|()| write(&Layout::new(&staging).uuid(), &uuid))
        .and_then(|()| {
            lease_subnets(
                &init_file,
                &spec,
                &mut plan,
                &opts.defaults,
                &leases,
                &Layout::new(&staging).uuid(),
                &uuid,
                host.reporter,
            )
        })
        .and_then(|()| build_prefix(opts, host, &mut plan, &uses, &scripts, &staging, &prefix, &uuid, &resolve))
        .and_then(|()| {
            // Moved into place with the subnet store locked: its leases never look stale.
            leases.rehome(&Layout::new(&staging).uuid(), &Layout::new(&prefix).uuid(), &uuid, || {
                std::fs::rename(&staging, &prefix).map_err(|e| io_err("create", &prefix)(e).into())
            })
        });
    match result {
        Ok(()) => {
            let _ = crate::host::logfile::attach(&Layout::new(&prefix).log());
            if opts.set_current || wd.current().is_none() {
                wd.point_current(&name)?;
            }
            drop(lock);
            tracing::info!("prefix {} initialized", prefix.display());
            Ok(prefix)
        }
        Err(e) => {
            tracing::error!("init failed: {e}");
            let log = std::env::temp_dir().join(format!("lago-init-{name}-{}.log", std::process::id()));
            let kept = std::fs::copy(Layout::new(&staging).log(), &log).is_ok();
            crate::host::logfile::detach();
            let _ = leases.release_all(&Layout::new(&staging).uuid(), &uuid);
            let _ = std::fs::remove_dir_all(&staging);
            leave(lock);
            if kept { Err(InitError::Failed { prefix, log, source: Box::new(e) }) } else { Err(e) }
        }
    }
}

/// Finds the repository and resolves every template disk, reporting unknown templates and
/// versions with their key paths.
fn resolve_templates(
    opts: &InitOptions,
    plan: &Plan,
    init_file: &Path,
    fetcher: &dyn Fetcher,
) -> Result<TemplateUses, InitError> {
    let mut uses = TemplateUses::new();
    let wanted: Vec<(usize, usize)> = plan
        .vms
        .iter()
        .enumerate()
        .flat_map(|(v, vm)| {
            vm.disks
                .iter()
                .enumerate()
                .filter(|(_, d)| d.spec.kind == DiskType::Template && d.spec.template_type == TemplateType::Lago)
                .map(move |(d, _)| (v, d))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(uses);
    }
    let repo = load_repo(opts, fetcher)?;
    let mut issues = Vec::new();
    for (v, d) in wanted {
        let disk = &plan.vms[v].disks[d];
        let tname = disk.spec.template_name.clone().unwrap_or_default();
        match repo.resolve(&tname, disk.template_version.as_deref()) {
            Ok(t) => {
                uses.insert((v, d), t);
            }
            Err(e @ RepoError::NoVersion { .. }) => issues
                .push(Issue::new(&format!("domains.{}.disks[{d}].template_version", plan.vms[v].name), e.to_string())),
            Err(e) => issues
                .push(Issue::new(&format!("domains.{}.disks[{d}].template_name", plan.vms[v].name), e.to_string())),
        }
    }
    if issues.is_empty() { Ok(uses) } else { Err(SpecError::Invalid { path: init_file.to_owned(), issues }.into()) }
}

fn load_repo(opts: &InitOptions, fetcher: &dyn Fetcher) -> Result<Repository, InitError> {
    let env = |n: &str| std::env::var(n).ok();
    if let Some(location) = &opts.template_repo_path {
        let location = spec::expand_vars(location, &env);
        return Repository::load(&location, fetcher)
            .map_err(|source| InitError::Repo { location, source: Box::new(source) });
    }
    if let Some(name) = &opts.template_repo_name {
        let dir = &opts.template_repos;
        let mut found = None;
        for entry in walk(dir) {
            if let Ok(r) = Repository::load(&entry.display().to_string(), fetcher)
                && &r.name == name
            {
                found = Some(r);
                break;
            }
        }
        let location = dir.display().to_string();
        return found.ok_or(InitError::Repo {
            location: location.clone(),
            source: Box::new(RepoError::Missing { location: format!("{location} (no repository named {name})") }),
        });
    }
    Err(InitError::NoRepo)
}

/// Makes the backing file of an exported layered disk available: a missing `<name>:<version>`
/// beside the disk is fetched from the repository into the store and linked there (reference
/// §4.5).
fn resolve_parent(base: &Path, opts: &InitOptions, host: &Host<'_>, store: &Store) -> Result<(), InitError> {
    let info = Images::new(host.runner).info(base).map_err(|source| InitError::Disk {
        vm: "-".into(),
        disk: base.display().to_string(),
        source,
    })?;
    let Some(backing) = info.backing else { return Ok(()) };
    let dir = base.parent().unwrap_or(Path::new("."));
    let path = dir.join(&backing);
    if path.exists() {
        return Ok(());
    }
    let bad = || InitError::BadBacking { disk: base.to_owned(), backing: backing.clone() };
    let file_name = path.file_name().and_then(|n| n.to_str()).ok_or_else(bad)?;
    let (name, version) = file_name.split_once(':').ok_or_else(bad)?;
    let repo = load_repo(opts, host.fetcher)?;
    let t = repo.resolve(name, Some(version)).map_err(|_| bad())?;
    let st = task(host.reporter, &format!("Fetch base {file_name} of {}", base.display()), || {
        store.ensure(&t, host.fetcher, host.runner, host.reporter)
    })?;
    let _ = std::fs::remove_file(&path);
    std::os::unix::fs::symlink(&st.path, &path).map_err(io_err("link", &path))?;
    Ok(())
}

/// `*.json` and `repo.metadata` files under `dir`, without following links to directories.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            // Links to directories are not followed: a link loop cannot make this walk endless.
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") || p.file_name().is_some_and(|n| n == "repo.metadata")
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[allow(clippy::too_many_arguments, reason = "the steps of one init share their inputs")]
fn build_prefix(
    opts: &InitOptions,
    host: &Host<'_>,
    plan: &mut Plan,
    uses: &TemplateUses,
    scripts: &[Vec<PathBuf>],
    staging: &Path,
    prefix: &Path,
    uuid: &str,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<(), InitError> {
    let r = host.reporter;
    for sub in ["images", "virt", "scripts", "logs", "run"] {
        std::fs::create_dir_all(staging.join(sub)).map_err(io_err("create", &staging.join(sub)))?;
    }
    let _ = crate::host::logfile::attach(&Layout::new(staging).log());
    tracing::info!("init of {} from {} (staging in {})", prefix.display(), opts.init_file.display(), staging.display());
    task(r, "Initialize and populate prefix", || {
        task(r, "Initialize prefix", || {
            task(r, "Generate prefix uuid", || write(&Layout::new(staging).uuid(), uuid))?;
            task(r, "Create ssh keys", || {
                seed::create_ssh_keys(staging, &format!("lago-{uuid}"), host.runner)
                    .map(|_| ())
                    .map_err(InitError::from)
            })
        })?;

        // Templates: each version fetched (or checked) once.
        let store = Store::new(&opts.template_store);
        let mut stored = BTreeMap::new();
        for t in uses.values() {
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
            stored.insert(name, (st, info.format));
        }

        let images = Images::new(host.runner);
        for (v, vm) in plan.vms.iter_mut().enumerate() {
            let vm_name = vm.name.clone();
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
                                disk.template_version = Some(t.version.clone());
                                Ok(())
                            }
                            (DiskType::Template, TemplateType::Qcow2) => {
                                let base = resolve(disk.spec.path.as_deref().unwrap_or_default());
                                resolve_parent(&base, opts, host, &store)?;
                                images.create_overlay(&base, "qcow2", &in_staging).map_err(derr)
                            }
                            (DiskType::Empty, _) => images
                                .create(&in_staging, &disk.format, disk.spec.size.as_deref().unwrap_or_default())
                                .map_err(derr),
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

        if !opts.skip_bootstrap {
            let public_key_file = Layout::new(staging).ssh_public_key();
            let public_key = std::fs::read_to_string(&public_key_file)
                .map_err(|source| BootstrapError::Write { path: public_key_file.clone(), source })?;
            for (i, vm) in plan.vms.iter().enumerate().filter(|(_, vm)| vm.bootstrap) {
                task(r, &format!("Bootstrapping {}", vm.name), || {
                    let files = seed::seed_files(plan, i, uuid, &public_key);
                    seed::write_seed(&Layout::new(staging).seed(&vm.name), &vm.name, &files)
                })?;
            }
        }

        task(r, "Copying any deploy scripts", || {
            for (vm, vm_scripts) in plan.vms.iter_mut().zip(scripts) {
                let mut persisted = Vec::new();
                for s in vm_scripts {
                    let name = s.display().to_string().replace('/', "_");
                    let dest = staging.join("scripts").join(&name);
                    std::fs::copy(s, &dest).map_err(io_err("copy", s))?;
                    persisted.push(format!("$LAGO_PREFIX_PATH/scripts/{name}"));
                }
                vm.spec.deploy_scripts = persisted;
            }
            Ok::<_, InitError>(())
        })?;

        if !opts.skip_build {
            run_builds(opts, host, plan, staging)?;
        }

        task(r, "Save prefix", || {
            write(&staging.join("metadata"), &python_json(&json!({"lago_version": env!("CARGO_PKG_VERSION")}), false))?;
            for net in &plan.nets {
                write(&Layout::new(staging).net_record(&net.name), &python_json(&net.to_json(), false))?;
            }
            for vm in &plan.vms {
                write(&Layout::new(staging).vm_record(&vm.name), &python_json(&vm.to_json(), false))?;
            }
            write(&Layout::new(staging).virt_env(), &python_json(&plan.env_json(), false))?;
            task(r, "Tag prefix as initialized", || write(&Layout::new(staging).initialized(), ""))
        })
    })
}

/// Leases host-wide the subnets of the `nat` networks of libvirt VMs (libvirt puts their
/// gateways on the host, where two environments must not share a subnet), and plans again with
/// the leased subnets. lago's own networks (switches) touch no host interface and need no lease.
#[allow(clippy::too_many_arguments)]
fn lease_subnets(
    init_file: &Path,
    spec: &spec::Spec,
    plan: &mut Plan,
    defaults: &PlanDefaults,
    leases: &SubnetLeases,
    uuid_path: &Path,
    uuid: &str,
    reporter: &dyn Reporter,
) -> Result<(), InitError> {
    let on_libvirt =
        |net: &str| plan.vms.iter().any(|v| v.vm_provider == "local-libvirt" && v.nics.iter().any(|n| n.net == net));
    let leasable = |gw: std::net::Ipv4Addr| {
        let o = gw.octets();
        (o[0] == 192 && o[1] == 168 && crate::plan::SUBNET_OCTETS.contains(&o[2])).then_some(o[2])
    };
    let mut names = Vec::new();
    let mut wanted = Vec::new();
    let mut avoid = Vec::new();
    for net in spec.nets.iter().filter(|n| n.kind == spec::NetType::Nat) {
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
    if names.is_empty() {
        return Ok(());
    }
    let octets = task(reporter, "Lease subnets", || {
        leases
            .acquire(uuid_path, uuid, &wanted, &avoid)
            .map_err(|source| InitError::Subnet { net: names[0].clone(), source })
    })?;
    let mut leased = spec.clone();
    for (name, octet) in names.iter().zip(&octets) {
        if let Some(net) = leased.nets.iter_mut().find(|n| &n.name == name) {
            net.gw = Some(std::net::Ipv4Addr::new(192, 168, *octet, 1));
        }
    }
    // Static addresses keep their last octet on the leased subnet, as in the original.
    *plan = crate::plan::plan(&leased, defaults)
        .map_err(|issues| InitError::Spec(SpecError::Invalid { path: init_file.to_owned(), issues }))?;
    Ok(())
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
    let force_tcg = verdicts.resolve(opts.accel, verdicts.kernel_for(None).as_deref()) == Accel::Tcg;
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

fn write(path: &Path, content: &str) -> Result<(), InitError> {
    std::fs::write(path, content).map_err(io_err("write", path))?;
    Ok(())
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
