//! `lago template build NAME`, `lago template list`.

use std::path::PathBuf;

use clap::Subcommand;
use lago::host::process::SystemRunner;
use lago::template::build::{BuildOptions, build};
use lago::template::{Repository, Source, Store};
use serde_json::{Map, Value, json};

use crate::context::Context;
use crate::error::CliError;

/// Build and list VM templates
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

pub(crate) fn cmd_template(ctx: &mut Context, args: &TemplateArgs) -> Result<(), CliError> {
    match &args.command {
        TemplateCommand::Build { name, repo_dir } => {
            let repo_dir = match repo_dir {
                Some(d) => ctx.session.cwd.join(d),
                None => {
                    let location = repo_location(ctx)?;
                    let path = PathBuf::from(location.strip_prefix("file://").unwrap_or(&location));
                    if location.contains("://") && !location.starts_with("file://") {
                        return Err(CliError::user(format!("The configured repository {location} is not local"))
                            .hint("pass `--repo-dir DIR` to build into a local repository"));
                    }
                    path.parent().map(PathBuf::from).unwrap_or_default()
                }
            };
            let cache_dir =
                ctx.session.config.path("template", "build_cache").unwrap_or_else(|| repo_dir.join(".cache"));
            let opts = BuildOptions { name: name.clone(), repo_dir, cache_dir };
            let built = build(&opts, &SystemRunner, &ctx.reporter)?;
            ctx.print(&json!({"name": built.name, "version": built.version, "path": built.path.display().to_string(), "sha1": built.hash, "size": built.size}))?;
            Ok(())
        }
        TemplateCommand::List => {
            let location = repo_location(ctx)?;
            let repo = Repository::load(&location, &ctx.session.config.fetcher())?;
            let store = Store::new(&ctx.session.config.path("init", "template_store").unwrap_or_default());
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
                    versions.insert(version, json!({"timestamp": timestamp, "size": size.unwrap_or(Value::Null), "cached": store.contains(&t)}));
                }
                out.insert(name, Value::Object(versions));
            }
            ctx.print(&json!({ "repository": repo.name, "location": location, "templates": out }))?;
            Ok(())
        }
    }
}
