//! `lago template build NAME`, `import`, `prune`, `list`.

use std::path::PathBuf;

use clap::Subcommand;
use lago::host::process::SystemRunner;
use lago::report::Reporter;
use lago::template::build::{BuildOptions, build};
use lago::template::import::{Bootstrap, ImportOptions, import};
use lago::template::prune::{PruneOptions, dir_bytes, prune};
use lago::template::{Repository, Source, Store};
use serde_json::{Map, Value, json};

use crate::context::Context;
use crate::error::CliError;

/// Build, import, prune and list VM templates
#[derive(Debug, clap::Args)]
pub(crate) struct TemplateArgs {
    #[command(subcommand)]
    command: TemplateCommand,
}

#[derive(Debug, Subcommand)]
enum TemplateCommand {
    /// Build a template from Debian packages and publish it as a new version of the local repository
    Build {
        /// Template to build: tiny, debian12 or debian12-cloud
        name: String,
        /// Repository directory (default: the directory of `template_repo_path`)
        #[arg(long)]
        repo_dir: Option<PathBuf>,
        /// Publish a new version even when the inputs (recipe, lago's files, package versions) are the latest version's
        #[arg(long)]
        force: bool,
    },
    /// Import a disk image (qcow2, raw, .xz; a file or an http(s) URL) as a new version of the local repository
    Import {
        /// The image file or URL
        image: String,
        /// Template name (what `template_name` of an init file names)
        #[arg(long)]
        name: String,
        /// Version (default: the next vN)
        #[arg(long)]
        version: Option<String>,
        /// `distro` of the template's metadata
        #[arg(long)]
        distro: Option<String>,
        /// The image's root password, if it has one
        #[arg(long)]
        root_password: Option<String>,
        /// How the image takes the seed `lago init` writes
        #[arg(long, value_parser = ["cloud-init", "lago-seed", "none"], default_value = "cloud-init")]
        bootstrap: String,
        /// Repository directory (default: the directory of `template_repo_path`)
        #[arg(long)]
        repo_dir: Option<PathBuf>,
    },
    /// Remove older versions from the local repository and their copies from the store, except those environments use
    Prune {
        /// Versions kept per template
        #[arg(long, default_value_t = 2)]
        keep: usize,
        /// Say what would be removed, remove nothing
        #[arg(long)]
        dry_run: bool,
        /// Repository directory (default: the directory of `template_repo_path`)
        #[arg(long)]
        repo_dir: Option<PathBuf>,
    },
    /// List the templates of the configured repository, their versions, sizes, and whether they are cached
    List,
}

fn repo_location(ctx: &Context) -> Result<String, CliError> {
    ctx.session
        .config
        .get("init", "template_repo_path")
        .map(str::to_owned)
        .ok_or_else(|| CliError::user("No template repository configured (set `template_repo_path`)"))
}

/// The local repository's directory: `--repo-dir`, else the directory of a local
/// `template_repo_path`.
fn local_repo_dir(ctx: &Context, repo_dir: Option<&PathBuf>) -> Result<PathBuf, CliError> {
    if let Some(d) = repo_dir {
        return Ok(ctx.session.cwd.join(d));
    }
    let location = repo_location(ctx)?;
    if location.contains("://") && !location.starts_with("file://") {
        return Err(CliError::user(format!("The configured repository {location} is not local"))
            .hint("pass `--repo-dir DIR` to use a local repository"));
    }
    let path = PathBuf::from(location.strip_prefix("file://").unwrap_or(&location));
    Ok(path.parent().map(PathBuf::from).unwrap_or_default())
}

fn store_dir(ctx: &Context) -> PathBuf {
    ctx.session.config.path("init", "template_store").unwrap_or_default()
}

pub(crate) fn cmd_template(ctx: &mut Context, args: &TemplateArgs) -> Result<(), CliError> {
    match &args.command {
        TemplateCommand::Build { name, repo_dir, force } => {
            let repo_dir = local_repo_dir(ctx, repo_dir.as_ref())?;
            let cache_dir =
                ctx.session.config.path("template", "build_cache").unwrap_or_else(|| repo_dir.join(".cache"));
            let opts = BuildOptions { name: name.clone(), repo_dir, cache_dir, force: *force };
            let built = build(&opts, &SystemRunner, &ctx.reporter)?;
            if !built.published {
                ctx.reporter.warn(&format!(
                    "Template {name}: nothing changed since {} (same recipe, files and packages); nothing was published (`--force` publishes anyway)",
                    built.version
                ));
            }
            ctx.print(&json!({"name": built.name, "version": built.version, "path": built.path.display().to_string(), "sha1": built.hash, "size": built.size, "published": built.published}))?;
            Ok(())
        }
        TemplateCommand::Import { image, name, version, distro, root_password, bootstrap, repo_dir } => {
            let repo_dir = local_repo_dir(ctx, repo_dir.as_ref())?;
            let bootstrap = match bootstrap.as_str() {
                "lago-seed" => Bootstrap::LagoSeed,
                "none" => Bootstrap::None,
                _ => Bootstrap::CloudInit,
            };
            let image =
                if image.contains("://") { image.clone() } else { ctx.session.cwd.join(image).display().to_string() };
            let opts = ImportOptions {
                image,
                name: name.clone(),
                version: version.clone(),
                distro: distro.clone(),
                root_password: root_password.clone(),
                bootstrap,
                repo_dir,
            };
            let built = import(&opts, &ctx.session.config.fetcher(), &SystemRunner)?;
            ctx.print(&json!({"name": built.name, "version": built.version, "path": built.path.display().to_string(), "sha1": built.hash, "size": built.size}))?;
            Ok(())
        }
        TemplateCommand::Prune { keep, dry_run, repo_dir } => {
            let repo_dir = local_repo_dir(ctx, repo_dir.as_ref())?;
            if *keep == 0 {
                return Err(CliError::user("`--keep` must be at least 1"));
            }
            let store = store_dir(ctx);
            let pruned = prune(&PruneOptions { repo_dir, store, keep: *keep, dry_run: *dry_run })?;
            for kept in &pruned.in_use {
                let users: Vec<String> = kept.users.iter().map(|p| p.display().to_string()).collect();
                ctx.reporter.warn(&format!(
                    "Kept {} {}: the environment{} {} use{} it",
                    kept.name,
                    kept.version,
                    if users.len() == 1 { "" } else { "s" },
                    users.join(", "),
                    if users.len() == 1 { "s" } else { "" }
                ));
            }
            let one = |v: &lago::template::prune::PrunedVersion| json!({"name": v.name, "version": v.version, "bytes": v.bytes, "used_by": v.users.iter().map(|p| p.display().to_string()).collect::<Vec<_>>()});
            ctx.print(&json!({
                if *dry_run { "would_remove" } else { "removed" }: pruned.removed.iter().map(one).collect::<Vec<_>>(),
                "kept_in_use": pruned.in_use.iter().map(one).collect::<Vec<_>>(),
                "store_bytes_before": pruned.store_bytes.0,
                "store_bytes_after": pruned.store_bytes.1,
            }))?;
            Ok(())
        }
        TemplateCommand::List => {
            let location = repo_location(ctx)?;
            let repo = Repository::load(&location, &ctx.session.config.fetcher())?;
            let store = Store::new(&store_dir(ctx));
            let mut out = Map::new();
            for name in repo.template_names() {
                let mut versions = Map::new();
                for (version, timestamp) in repo.versions(&name) {
                    let t = repo.resolve(&name, Some(&version)).map_err(CliError::user)?;
                    let size = match &t.source {
                        Source::File { root } => std::fs::metadata(root.join(&t.handle)).ok().map(|m| json!(m.len())),
                        Source::Http { .. } => None,
                    };
                    let timestamp = if timestamp.fract() == 0.0 { json!(timestamp as i64) } else { json!(timestamp) };
                    let users: Vec<String> = lago::template::store::users(&store.path_of(&t))
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect();
                    versions.insert(version, json!({"timestamp": timestamp, "size": size.unwrap_or(Value::Null), "cached": store.contains(&t), "used_by": users}));
                }
                out.insert(name, Value::Object(versions));
            }
            let store_info = json!({"path": store.root.display().to_string(), "bytes": dir_bytes(&store.root)});
            ctx.print(
                &json!({ "repository": repo.name, "location": location, "templates": out, "store": store_info }),
            )?;
            Ok(())
        }
    }
}
