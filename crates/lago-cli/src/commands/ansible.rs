//! `lago ansible_hosts`.

use crate::context::Context;
use crate::error::CliError;

/// Print an Ansible inventory of the environment
#[derive(Debug, clap::Args)]
pub(crate) struct AnsibleHostsArgs {
    /// Spec keys to group the VMs on (`/`-separated paths, e.g. /disks/0/template_name)
    #[arg(short, long, num_args = 1.., default_values_t = lago::ops::ansible::DEFAULT_KEYS.iter().map(|k| k.to_string()))]
    keys: Vec<String>,
}

pub(crate) fn cmd_ansible_hosts(ctx: &mut Context, args: &AnsibleHostsArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    println!("{}", env.ansible_inventory(&args.keys)?);
    Ok(())
}
