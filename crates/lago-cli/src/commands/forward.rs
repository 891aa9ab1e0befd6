//! `lago forward`: ports of running VMs forwarded to the host's loopback (lago's own verb).

use crate::context::Context;
use crate::error::CliError;

/// Forward a TCP port of a running VM to 127.0.0.1 (lago's own verb), list or remove forwards
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["vm", "list"])))]
pub(crate) struct ForwardArgs {
    /// List the forwarded ports of the running VMs
    #[arg(short, long, conflicts_with_all = ["vm", "remove", "host_port"])]
    list: bool,
    /// Remove the forward to GUEST_PORT instead
    #[arg(short, long, requires = "vm", conflicts_with = "host_port")]
    remove: bool,
    /// The port on 127.0.0.1 (default: a free one)
    #[arg(long, value_name = "N")]
    host_port: Option<u16>,
    /// The VM
    #[arg(requires = "guest_port")]
    vm: Option<String>,
    /// Its TCP port
    guest_port: Option<u16>,
}

/// One line of `lago forward --list`, and what `lago forward` prints.
#[derive(serde::Serialize)]
struct Row<'a> {
    vm: &'a str,
    guest: u16,
    host: String,
    origin: &'static str,
}

pub(crate) fn cmd_forward(ctx: &mut Context, args: &ForwardArgs) -> Result<(), CliError> {
    let env = ctx.env()?;
    let origin = |live: bool| if live { "lago forward" } else { "init file" };
    let address = lago::ops::forward::FORWARD_ADDRESS;
    if args.list {
        let forwards = env.forwards()?;
        let rows: Vec<Row<'_>> = forwards
            .iter()
            .flat_map(|(vm, fs)| {
                fs.iter().map(move |f| Row {
                    vm,
                    guest: f.guest,
                    host: format!("{address}:{}", f.host),
                    origin: origin(f.live),
                })
            })
            .collect();
        if ctx.is_default_format() {
            for r in &rows {
                println!("{} {} -> {} ({})", r.vm, r.host, r.guest, r.origin);
            }
        } else {
            ctx.print(&rows)?;
        }
        return Ok(());
    }
    let (Some(vm), Some(guest)) = (&args.vm, args.guest_port) else {
        return Err(CliError::user("give the VM and its port: lago forward VM GUEST_PORT"));
    };
    if args.remove {
        env.unforward(vm, guest, &ctx.reporter)?;
        return Ok(());
    }
    let f = env.forward(vm, guest, args.host_port, &ctx.reporter)?;
    if ctx.is_default_format() {
        println!("{address}:{}", f.host);
    } else {
        ctx.print(&Row { vm, guest, host: format!("{address}:{}", f.host), origin: origin(f.live) })?;
    }
    Ok(())
}
