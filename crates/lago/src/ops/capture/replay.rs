//! `lago replay`: an artefact of `lago capture` brought back running, in a workdir of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::CaptureError;
use super::archive;
use super::manifest::{Manifest, Qemu, TemplateRef};
use crate::env::{Env, EnvOptions};
use crate::host::images::Images;
use crate::host::pathio::at;
use crate::ops::init::{Host, InitOptions};
use crate::prefix::frozen::{Frozen, FrozenVm};
use crate::prefix::workdir::Workdir;
use crate::report::task;
use crate::template::Store;

/// Where and how a replay runs.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The artefact.
    pub artefact: PathBuf,
    /// The workdir to make (absent, or an empty directory).
    pub workdir: PathBuf,
    /// The template store and repository settings (`init`'s).
    pub templates: InitOptions,
    /// The environment's settings.
    pub env: EnvOptions,
}

/// A replayed environment.
pub struct Replayed {
    /// It, running.
    pub env: Env,
    /// Its workdir.
    pub workdir: PathBuf,
    /// The manifest it was replayed from.
    pub manifest: Manifest,
    /// How long the replay took.
    pub elapsed: Duration,
}

/// The store images of `templates`: found in the store with their hash, else fetched from the
/// configured repository into it; every one missing is named.
fn find_templates(
    templates: &[TemplateRef],
    opts: &InitOptions,
    host: &Host<'_>,
) -> Result<BTreeMap<String, PathBuf>, CaptureError> {
    let store = Store::new(&opts.template_store);
    let mut found = BTreeMap::new();
    let mut missing = Vec::new();
    for t in templates {
        let path = store.root.join(&t.store_name);
        let hash = std::fs::read_to_string(crate::host::pathio::beside(&path, "hash")).unwrap_or_default();
        if path.is_file() && hash.split_whitespace().next() == Some(t.hash.as_str()) {
            found.insert(t.store_name.clone(), path);
        } else {
            missing.push(t);
        }
    }
    if missing.is_empty() {
        return Ok(found);
    }
    let mut why = String::new();
    let repo = crate::ops::init::load_repo(opts, host.fetcher);
    let mut still = Vec::new();
    for t in missing {
        let got = match (&repo, t.parts()) {
            (Err(e), _) => Err(e.to_string()),
            (_, None) => Err(format!("{} is not a store name", t.store_name)),
            (Ok(repo), Some((name, tpl, ver))) if repo.name == name => repo
                .resolve(tpl, Some(ver))
                .map_err(|e| e.to_string())
                .and_then(|r| store.ensure(&r, host.fetcher, host.runner, host.reporter).map_err(|e| e.to_string()))
                .and_then(|s| {
                    if s.hash == t.hash {
                        Ok(s.path)
                    } else {
                        Err(format!("the repository's {} has hash {}, the capture's {}", t.store_name, s.hash, t.hash))
                    }
                }),
            (Ok(repo), Some((name, _, _))) => Err(format!("the configured repository is {}, not {name}", repo.name)),
        };
        match got {
            Ok(p) => {
                found.insert(t.store_name.clone(), p);
            }
            Err(e) => {
                if why.is_empty() {
                    why = e;
                }
                still.push(t.store_name.clone());
            }
        }
    }
    if still.is_empty() { Ok(found) } else { Err(CaptureError::Templates { names: still, store: store.root, why }) }
}

/// Replays the artefact of `opts` (see the module above): checked first (its manifest, the
/// host's qemu, the templates) before anything is made; then unpacked into a frozen state of the
/// new workdir, whose prefix starts from it, current. When it fails, nothing of it is left.
pub fn replay(opts: &ReplayOptions, host: &Host<'_>) -> Result<Replayed, CaptureError> {
    let started = Instant::now();
    let artefact = &opts.artefact;
    if !artefact.is_file() {
        return Err(CaptureError::NoArtefact { path: artefact.clone() });
    }
    let workdir = std::path::absolute(&opts.workdir).map_err(at("resolve", &opts.workdir))?;
    let existed = workdir.exists();
    if existed && std::fs::read_dir(&workdir).map_or(true, |mut d| d.next().is_some()) {
        return Err(CaptureError::WorkdirInUse { path: workdir });
    }
    let text = archive::read_manifest(artefact, host.runner)
        .map_err(|e| CaptureError::Corrupt { artefact: artefact.clone(), reason: e.to_string() })?;
    let manifest = Manifest::parse(&text, artefact)?;
    let qemu =
        Qemu::of_host(host.runner).map_err(|source| CaptureError::Tool { action: "ask qemu its version", source })?;
    if !manifest.qemu.replays_on(&qemu) {
        return Err(CaptureError::Qemu { need: manifest.qemu.clone(), have: qemu });
    }
    let kvm: Vec<String> = manifest.vms.iter().filter(|(_, v)| v.accel == "kvm").map(|(n, _)| n.clone()).collect();
    if !kvm.is_empty() && std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_err() {
        return Err(CaptureError::NoKvm { vms: kvm });
    }
    let base = opts.env.memory_base.clone().map_err(|why| CaptureError::NoMemoryDir { why })?;
    let stores =
        task(host.reporter, "Find the templates", || find_templates(&manifest.templates(), &opts.templates, host))?;
    std::fs::create_dir_all(&workdir).map_err(at("create", &workdir))?;
    let made = unpack_and_start(opts, &workdir, &manifest, &base, &stores, host);
    match made {
        Ok(env) => Ok(Replayed { env, workdir, manifest, elapsed: started.elapsed() }),
        Err(e) => {
            crate::prefix::frozen::remove_all(&workdir);
            if existed {
                if let Ok(entries) = std::fs::read_dir(&workdir) {
                    for entry in entries.flatten() {
                        let _ = std::fs::remove_dir_all(entry.path()).or_else(|_| std::fs::remove_file(entry.path()));
                    }
                }
            } else {
                let _ = std::fs::remove_dir_all(&workdir);
            }
            Err(e)
        }
    }
}

/// Unpacks the artefact into a frozen state of `workdir` and starts its prefix from it.
fn unpack_and_start(
    opts: &ReplayOptions,
    workdir: &Path,
    manifest: &Manifest,
    base: &Path,
    stores: &BTreeMap<String, PathBuf>,
    host: &Host<'_>,
) -> Result<Env, CaptureError> {
    let tool = |action| move |source| CaptureError::Tool { action, source };
    let mut frozen = Frozen::create(workdir, &manifest.prefix, base)?;
    let staging = workdir.join(format!(".replay-{}", std::process::id()));
    std::fs::create_dir_all(&staging).map_err(at("create", &staging))?;
    task(host.reporter, "Unpack artefact", || {
        archive::unpack(&opts.artefact, &staging, false, host.runner).map_err(tool("unpack the artefact"))?;
        archive::unpack(&opts.artefact, &frozen.manifest.memory_dir, true, host.runner)
            .map_err(tool("unpack the memory files"))
    })?;
    let corrupt = |reason: String| CaptureError::Corrupt { artefact: opts.artefact.clone(), reason };
    let rename = |from: &Path, to: &Path| std::fs::rename(from, to).map_err(at("move", from));
    // The prefix as frozen: the skeleton copies are made from.
    let _ = std::fs::remove_dir(frozen.skel());
    let prefix = staging.join("prefix");
    if !prefix.is_dir() {
        return Err(corrupt("it holds no prefix/".into()));
    }
    rename(&prefix, &frozen.skel())?;
    let images = Images::new(host.runner);
    for (name, vm) in &manifest.vms {
        let state = staging.join("state").join(format!("{name}.state"));
        if !state.is_file() {
            return Err(corrupt(format!("it holds no device state of VM {name} (state/{name}.state)")));
        }
        rename(&state, &frozen.state_file(name))?;
        if !frozen.memory_file(name).is_file() {
            return Err(corrupt(format!("it holds no memory of VM {name} (memory/{name}.mem)")));
        }
        let mut disks = BTreeMap::new();
        for (index, d) in &vm.disks {
            let from = staging.join(&d.file);
            let file = Path::new(&d.file).file_name().map(Path::new).unwrap_or(Path::new("disk"));
            let rel = Path::new("disks").join(file);
            if !from.is_file() {
                return Err(corrupt(format!("it holds no disk {} of VM {name}", d.file)));
            }
            rename(&from, &frozen.dir.join(&rel))?;
            for ext in ["vmlinux", "initrd"] {
                let boot = crate::host::pathio::beside(&from, ext);
                if boot.is_file() {
                    rename(&boot, &crate::host::pathio::beside(&frozen.dir.join(&rel), ext))?;
                }
            }
            if let Some(t) = &d.template {
                let store =
                    stores.get(&t.store_name).ok_or_else(|| corrupt(format!("no store image {}", t.store_name)))?;
                images.rebase_unsafe(&frozen.dir.join(&rel), &store.display().to_string(), "qcow2")?;
            }
            disks.insert(*index, rel);
        }
        let entry = FrozenVm {
            memory: frozen.memory_file(name),
            memory_mib: vm.memory_mib,
            state: PathBuf::from(format!("{name}.state")),
            disks,
            accel: vm.accel.clone(),
        };
        frozen.manifest.vms.insert(name.clone(), entry);
    }
    // The templates of this host's store.
    let uses: String = stores.values().map(|p| format!("{}\n", p.display())).collect();
    std::fs::write(frozen.skel().join(crate::prefix::STORE_USES), uses).map_err(at("write", &frozen.skel()))?;
    crate::provider::qemu::freeze::write_stub(&frozen.dir).map_err(at("write", &frozen.dir))?;
    frozen.save()?;
    let env = task(host.reporter, "Start the replayed environment", || {
        crate::ops::fork::start_copy(&frozen, workdir, &manifest.prefix, opts.env.clone(), host.runner, host.reporter)
    })?;
    // What the capture kept beside the environment: its logs, init file and artifacts.
    let kept = env.prefix.path.join("captured");
    for sub in ["logs", "init", "artifacts"] {
        let from = staging.join(sub);
        if from.exists()
            && let Err(e) = std::fs::create_dir_all(&kept).and_then(|()| std::fs::rename(&from, kept.join(sub)))
        {
            tracing::warn!("cannot keep the captured {sub} in {}: {e}", kept.display());
        }
    }
    let _ = std::fs::remove_dir_all(&staging);
    for image in stores.values() {
        if let Err(e) = crate::template::store::set_user(image, &env.prefix.path, true) {
            tracing::warn!("cannot add {} to the users of {}: {e}", env.prefix.path.display(), image.display());
        }
    }
    if let Err(e) = (Workdir { path: workdir.to_owned() }).point_current(&manifest.prefix) {
        let _ = env.destroy(&crate::report::NoopReporter);
        return Err(corrupt(e.to_string()));
    }
    Ok(env)
}
