//! The templates of an init: the repository (`template_repo_path`, or a repository by name under
//! `template_repos`), every template disk resolved, and the base of an exported layered disk.

use std::path::{Path, PathBuf};

use super::error::InitError;
use super::options::{Host, InitOptions};
use crate::host::fetch::Fetcher;
use crate::host::images::Images;
use crate::plan::Plan;
use crate::prefix::workdir::io_err;
use crate::report::task;
use crate::spec::{self, DiskType, Issue, SpecError, TemplateType};
use crate::template::{RepoError, Repository, ResolvedTemplate, Store};

/// Template disks of the plan, by (vm index, disk index).
pub(super) type TemplateUses = std::collections::BTreeMap<(usize, usize), ResolvedTemplate>;

/// Finds the repository and resolves every template disk, reporting unknown templates and
/// versions with their key paths.
pub(super) fn resolve_templates(
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

pub(crate) fn load_repo(opts: &InitOptions, fetcher: &dyn Fetcher) -> Result<Repository, InitError> {
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
pub(super) fn resolve_parent(base: &Path, opts: &InitOptions, host: &Host<'_>, store: &Store) -> Result<(), InitError> {
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
