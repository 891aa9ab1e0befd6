//! `lago export`.

use lago::host::process::SystemRunner;
use lago::ops::export::ExportOptions;

use crate::context::Context;
use crate::error::CliError;

/// Export the disks of stopped VMs and an init file that brings them back
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// VMs to export (default: all)
    #[arg(short = 'n', long, num_args = 1..)]
    vm_names: Vec<String>,
    /// Flatten each disk into one image (default: only what differs from its template)
    #[arg(short, long)]
    standalone: bool,
    /// Compress the exported images (qcow2 compressed clusters)
    #[arg(short, long)]
    compress: bool,
    /// Directory to export into
    #[arg(short, long, default_value = ".")]
    dst_dir: std::path::PathBuf,
    /// Name of the init file to write
    #[arg(long, default_value = "LagoInitFile")]
    init_file_name: String,
    /// Only print which files would be exported
    #[arg(long)]
    collect_only: bool,
    /// Accepted for compatibility: disks are always exported in parallel
    #[arg(long, hide = true)]
    without_threads: bool,
}

pub(crate) fn cmd_export(ctx: &mut Context, args: &ExportArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    let opts = ExportOptions {
        vm_names: args.vm_names.clone(),
        standalone: args.standalone,
        compress: args.compress,
        dst_dir: ctx.session.cwd.join(&args.dst_dir),
        init_file_name: args.init_file_name.clone(),
        collect_only: args.collect_only,
        json: matches!(ctx.format, lago::output::Format::Json),
    };
    let listing = env.export(&opts, &SystemRunner, &ctx.reporter)?;
    if args.collect_only {
        ctx.print(&listing)?;
    }
    Ok(())
}
