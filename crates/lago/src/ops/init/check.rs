//! What `init` checks before it writes anything: the init file and its plan (all problems at
//! once), the prefix's name and place, and the files the init file names (deploy scripts,
//! images), with paths expanded as the original expanded them.

use std::path::{Path, PathBuf};

use super::error::InitError;
use super::options::InitOptions;
use crate::plan::{Plan, plan};
use crate::prefix::workdir::{WorkdirError, io_err};
use crate::spec::{self, DiskType, Issue, SpecError, TemplateType};

/// How paths of an init file are resolved: `$LAGO_INITFILE_PATH`, `$LAGO_PREFIX_PATH`,
/// `$LAGO_WORKDIR_PATH` and the other variables expanded, relative paths taken from the
/// directory `lago init` runs in.
#[derive(Debug, Clone)]
pub(super) struct InitPaths {
    /// The init file's directory.
    pub init_dir: PathBuf,
    /// The prefix being made.
    pub prefix: PathBuf,
    /// Its workdir.
    pub workdir: PathBuf,
    /// Where relative paths start.
    pub cwd: PathBuf,
}

impl InitPaths {
    /// `p` with the variables expanded.
    pub fn expand(&self, p: &str) -> String {
        let vars = |n: &str| match n {
            "LAGO_INITFILE_PATH" => Some(self.init_dir.display().to_string()),
            "LAGO_PREFIX_PATH" => Some(self.prefix.display().to_string()),
            "LAGO_WORKDIR_PATH" => Some(self.workdir.display().to_string()),
            other => std::env::var(other).ok(),
        };
        spec::expand_vars(p, &vars)
    }

    /// The path `p` of the init file names: variables expanded, relative paths from `cwd`, and
    /// `.` and `..` taken away as text, as the original did (`$LAGO_PREFIX_PATH/../scripts`
    /// names the workdir's `scripts` before the prefix exists).
    pub fn resolve(&self, p: &str) -> PathBuf {
        normalize(&self.written(p))
    }

    /// The path `p` as written: variables expanded, relative paths from `cwd`, `..` kept.
    pub fn written(&self, p: &str) -> PathBuf {
        let expanded = PathBuf::from(self.expand(p));
        if expanded.is_absolute() { expanded } else { self.cwd.join(expanded) }
    }
}

/// `path` without `.` and `..` components, as text (no link is followed).
pub(crate) fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// An init file that passed every check, and what it will become.
pub(super) struct Checked {
    /// The init file as read.
    pub spec: spec::Spec,
    /// Its plan.
    pub plan: Plan,
    /// The init file (absolute).
    pub init_file: PathBuf,
    /// The workdir (absolute).
    pub workdir: PathBuf,
    /// The prefix's name.
    pub name: String,
    /// The prefix (absolute).
    pub prefix: PathBuf,
    /// Each VM's deploy scripts: the file, and the name of its copy in `scripts/` (the
    /// original's: the path as written, variables expanded, with `/` replaced by `_`).
    pub scripts: Vec<Vec<(PathBuf, String)>>,
    /// How the init file's paths are resolved.
    pub paths: InitPaths,
    /// What is worth a warning: unknown keys when `[init] strict = false`, keys nothing reads.
    pub warnings: Vec<String>,
}

/// Reads and checks `opts.init_file`: every problem of the file, its plan and the files it names
/// is reported at once.
pub(super) fn check(opts: &InitOptions) -> Result<Checked, InitError> {
    let init_file = std::path::absolute(&opts.init_file).map_err(io_err("resolve", &opts.init_file))?;
    // Structural problems and plan problems are reported together.
    let (spec, issues) = spec::load_partial(&init_file)?;
    let (mut issues, noted) = spec::split_issues(issues, opts.strict);
    let warnings: Vec<String> = noted.iter().map(|i| format!("{}: {i}", init_file.display())).collect();
    let plan = match plan(&spec, &opts.defaults) {
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

    let paths = InitPaths {
        init_dir: init_file.parent().unwrap_or(Path::new("/")).to_owned(),
        prefix: prefix.clone(),
        workdir: workdir.clone(),
        cwd: opts.cwd.clone(),
    };
    let resolve = |p: &str| paths.resolve(p);
    let mut issues = Vec::new();
    let mut scripts: Vec<Vec<(PathBuf, String)>> = Vec::new();
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
            // Named as the original named the copy: the path as written, variables expanded,
            // `/` made `_` (`scripts/setup.sh` is `scripts_setup.sh`).
            vm_scripts.push((p, paths.expand(s).replace('/', "_")));
        }
        scripts.push(vm_scripts);
        for (i, d) in vm.disks.iter().enumerate() {
            let needs_file = match d.spec.kind {
                DiskType::Template => d.spec.template_type == TemplateType::Qcow2,
                DiskType::File => d.spec.path.is_some() && d.spec.url.is_none(),
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
    Ok(Checked { spec, plan, init_file, workdir, name, prefix, scripts, paths, warnings })
}
