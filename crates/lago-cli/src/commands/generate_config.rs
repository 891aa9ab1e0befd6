use crate::context::Context;
use crate::error::CliError;

/// Print the current configuration as a lago.conf file
#[derive(Debug, clap::Args)]
pub(crate) struct GenerateConfigArgs {
    /// Also list options that are not set, commented out
    #[arg(long)]
    verbose: bool,
}

pub(crate) fn cmd_generate_config(ctx: &mut Context, args: &GenerateConfigArgs) -> Result<(), CliError> {
    let now = chrono::Local::now().format("%a %b %e %H:%M:%S %Y").to_string();
    print!("{}", ctx.session.config.to_ini(args.verbose, &now));
    Ok(())
}
