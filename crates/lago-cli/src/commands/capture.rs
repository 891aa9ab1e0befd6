//! `lago capture` and `lago replay`: the running environment as one artefact, and that artefact
//! brought back running (lago's own verbs).

use std::path::PathBuf;

use lago::host::process::SystemRunner;
use lago::ops::capture::{CaptureOptions, ReplayOptions, human_size, manifest::EXTENSION};
use lago::ops::init::Host;
use lago::report::Reporter;
use lago::session::InitRequest;

use crate::context::Context;
use crate::error::CliError;

/// Capture the running environment at one instant into one artefact that `lago replay` brings
/// back running (lago's own verb)
///
/// Every VM is paused at the same instant and frozen as `lago fork` freezes it; the environment
/// goes on at once from that instant, its VMs in new qemu processes. The artefact,
/// `<output>/<NAME>.lago-capture` (a tar compressed with zstd), holds the VMs' device states and
/// memory, their disks (top layers naming the templates of the store they are layered on, or
/// standalone with `--standalone`), the prefix's records, the init file, the logs (lago's, each
/// VM's console and qemu logs) and collected artifacts, and a manifest (`capture.json`: lago's
/// and qemu's versions, the machine type the state needs, the VMs, the templates). Prints the
/// artefact's path on stdout, its size and the time taken on stderr.
#[derive(Debug, clap::Args)]
pub(crate) struct CaptureArgs {
    /// Name of the capture (the artefact is NAME.lago-capture)
    name: String,
    /// Directory to write the artefact to
    #[arg(long, short = 'o', value_name = "DIR", default_value = ".")]
    output: PathBuf,
    /// Flattened disks that need no template on the host that replays them (larger)
    #[arg(long)]
    standalone: bool,
    /// The init file to include (default: the one the prefix was made from, when it still exists)
    #[arg(long, value_name = "FILE")]
    init_file: Option<PathBuf>,
    /// A directory of collected artifacts to include (`lago collect --output DIR`)
    #[arg(long, value_name = "DIR")]
    artifacts: Option<PathBuf>,
}

pub(crate) fn cmd_capture(ctx: &mut Context, args: &CaptureArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    let cwd = &ctx.session.cwd;
    let opts = CaptureOptions {
        name: args.name.clone(),
        // `.` and `a/./b` as the directory they name.
        output: cwd.join(&args.output).components().collect(),
        standalone: args.standalone,
        init_file: args.init_file.as_ref().map(|f| cwd.join(f)),
        artifacts: args.artifacts.as_ref().map(|d| cwd.join(d)),
    };
    let captured = env.capture(&opts, &SystemRunner, &ctx.reporter)?;
    if ctx.is_default_format() {
        println!("{}", captured.path.display());
    } else {
        ctx.print(&serde_json::json!({
            "path": captured.path,
            "size": captured.size,
            "size_human": human_size(captured.size),
            "seconds": captured.elapsed.as_secs_f64(),
            "vms": captured.vms,
        }))?;
    }
    Ok(())
}

/// Bring a capture back running, at the instant it was taken (lago's own verb)
///
/// Makes WORKDIR (default: a directory named after the artefact, in the current directory; an
/// existing one must be empty) a workdir whose prefix is the captured environment, running from
/// the instant of the capture: every verb works on it (`lago --workdir-path WORKDIR status`,
/// `shell`, `destroy`). The host's qemu must have the machine type the capture was saved under
/// (else it says which qemu the capture needs, and nothing is started); the templates its disks
/// are layered on are taken from the store, else from the configured repository. The captured
/// logs, init file and artifacts are in the prefix's `captured/`. Prints the workdir on stdout.
#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    /// The artefact written by `lago capture`
    artefact: PathBuf,
    /// The workdir to make (absent, or an empty directory)
    workdir: Option<PathBuf>,
}

pub(crate) fn cmd_replay(ctx: &mut Context, args: &ReplayArgs) -> Result<(), CliError> {
    let session = &ctx.session;
    let artefact = session.cwd.join(&args.artefact);
    let workdir = match &args.workdir {
        Some(w) => session.cwd.join(w),
        None => {
            let name = artefact.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let stem = name.strip_suffix(&format!(".{EXTENSION}")).unwrap_or(&name);
            session.cwd.join(stem)
        }
    };
    let opts = ReplayOptions {
        artefact,
        workdir,
        templates: session.init_options(&InitRequest::default())?,
        env: session.env_options()?,
    };
    let fetcher = session.config.fetcher();
    let host = Host { runner: &SystemRunner, fetcher: &fetcher, reporter: &ctx.reporter };
    let replayed = lago::ops::capture::replay(&opts, &host)?;
    ctx.reporter.note(&format!(
        "Replayed {} ({} VM{}) in {:.1} s: lago --workdir-path {} status",
        replayed.manifest.name,
        replayed.manifest.vms.len(),
        if replayed.manifest.vms.len() == 1 { "" } else { "s" },
        replayed.elapsed.as_secs_f64(),
        replayed.workdir.display()
    ));
    if ctx.is_default_format() {
        println!("{}", replayed.workdir.display());
    } else {
        ctx.print(&serde_json::json!({
            "workdir": replayed.workdir,
            "prefix": replayed.env.prefix.path,
            "seconds": replayed.elapsed.as_secs_f64(),
        }))?;
    }
    Ok(())
}
