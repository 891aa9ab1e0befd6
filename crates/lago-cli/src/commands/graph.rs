//! `lago graph`: the picture of an environment, rendered by Graphviz.

use std::io::Write;
use std::path::PathBuf;

use crate::context::Context;
use crate::error::CliError;

/// Render the picture of the environment with Graphviz's `dot`
///
/// Draws what `lago status -f dot` prints: the networks, the VMs coloured by state, each NIC
/// with its address, the host's legs and forwarded ports, and the faults in force (a cut link,
/// a degraded one, a partition). SVG on standard output, or into a file whose extension picks
/// the format. Needs Graphviz (`lago doctor` checks it, `lago doctor --fix --all` installs it);
/// without it the exit code is 2.
#[derive(Debug, clap::Args)]
pub(crate) struct GraphArgs {
    /// Write the picture into FILE; its extension picks the format: svg, png, pdf, or dot (the
    /// text itself)
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub(crate) fn cmd_graph(ctx: &mut Context, args: &GraphArgs) -> Result<(), CliError> {
    use lago::ops::graph;
    let format = match &args.output {
        Some(path) => graph::format_of(path)?,
        None => "svg",
    };
    let env = ctx.env()?;
    let text = graph::dot(&lago::ops::status::status(&env, true)?);
    let picture = graph::render(&lago::host::process::SystemRunner, &text, format)?;
    match &args.output {
        Some(path) => {
            let path = ctx.session.cwd.join(path);
            lago::host::pathio::write_atomic(&path, &picture).map_err(CliError::internal)?;
        }
        None => std::io::stdout()
            .write_all(&picture)
            .map_err(|e| CliError::failed(format!("Cannot write the picture: {e}")))?,
    }
    Ok(())
}
