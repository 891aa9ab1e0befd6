//! `lago doctor`: checks the host, prints one line per check (✓/✗) with the fix of each ✗, and
//! with `--fix` installs what is missing.

use std::io::IsTerminal;
use std::process::ExitCode;

use lago::doctor::{Group, Paths, Report, SystemHost};
use lago::host::process::SystemRunner;

use crate::context::Context;
use crate::error::CliError;

/// Check that this host has what lago needs, and print the command that fixes each gap
///
/// One line per check: ✓ or ✗, what was found, and under each ✗ the exact command that fixes it.
/// The exit code is 0 when everything `lago init` and `lago start` need is there, 1 otherwise;
/// the other groups (template building, extras) and KVM only inform. `-f json` prints the same
/// report for scripts.
#[derive(Debug, clap::Args)]
pub(crate) struct DoctorArgs {
    /// Install what is missing (as root): what `init`, `start` and `template build tiny` need
    #[arg(long)]
    fix: bool,
    /// With --fix: the extras and libvirt too (mmdebstrap, guestfs-tools with a host kernel,
    /// ansible-core, libvirt-daemon-system, libvirt-clients, dnsmasq-base, iptables)
    #[arg(long, requires = "fix")]
    all: bool,
}

pub(crate) fn cmd_doctor(ctx: &mut Context, args: &DoctorArgs) -> Result<ExitCode, CliError> {
    let paths = Paths {
        template_store: ctx.session.config.path("init", "template_store").unwrap_or_default(),
        store_warn_bytes: ctx
            .session
            .config
            .get("init", "store_warn_gib")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(20)
            << 30,
        template_repo: ctx.session.config.get("init", "template_repo_path").unwrap_or_default().to_owned(),
        lease_dir: ctx.session.config.path("lago", "lease_dir").unwrap_or_default(),
        libvirt_url: ctx.session.config.libvirt_options().url,
        host_leg: ctx.session.config.host_leg()?,
        memory_dir: ctx.session.config.memory_dir(),
    };
    let host = SystemHost {
        path: None,
        cache_dir: ctx.session.config.state_dir().to_owned(),
        template_store: paths.template_store.clone(),
    };
    let mut report = lago::doctor::examine(&host, &paths);
    if args.fix {
        let groups: &[Group] = if args.all {
            &[Group::Core, Group::Templates, Group::Extras, Group::Libvirt]
        } else {
            &[Group::Core, Group::Templates]
        };
        lago::doctor::fix(&report, groups, &host, &SystemRunner, &ctx.reporter)?;
        report = lago::doctor::examine(&host, &paths);
    }
    report = report.with(openstack(ctx));
    if ctx.format == lago::output::Format::Default {
        print!("{}", render(&report, color()));
    } else {
        ctx.print(&serde_json::to_value(&report).map_err(CliError::internal)?)?;
    }
    Ok(if report.ready { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The checks of the OpenStack cloud, when the configuration (`default_vm_provider`,
/// `[openstack]`) or the current environment uses it.
fn openstack(ctx: &Context) -> Vec<lago::doctor::Check> {
    let config = &ctx.session.config;
    let options = lago::config::openstack::OpenstackOptions::from_config(config);
    let prefix = ctx.session.prefix(&lago::report::NoopReporter).ok().map(|(p, _)| p.path);
    let env_uses =
        prefix.as_deref().is_some_and(|p| !lago::provider::openstack::resources::openstack_vms(p).is_empty());
    let config_uses = config.lago("default_vm_provider") == Some("openstack") || options != Default::default();
    if !env_uses && !config_uses {
        return Vec::new();
    }
    lago::doctor::openstack_checks(&options, prefix.as_deref().filter(|_| env_uses))
}

fn color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// The report as lines: a heading per group, `✓`/`✗` per check, `fix:` under each `✗`.
fn render(report: &Report, color: bool) -> String {
    let paint = |text: &str, code: &str| if color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_owned() };
    let width = report.checks.iter().map(|c| c.name.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    let mut group = None;
    for c in &report.checks {
        if group != Some(c.group) {
            group = Some(c.group);
            out.push_str(&format!("{}{}\n", if out.is_empty() { "" } else { "\n" }, c.group.title()));
        }
        let mark = if c.ok {
            paint("✓", "32")
        } else if c.required {
            paint("✗", "31")
        } else {
            paint("✗", "33")
        };
        let pad = " ".repeat(width - c.name.chars().count());
        out.push_str(&format!("  {mark} {}{pad}  {}\n", c.name, c.detail));
        for seen in &c.evidence {
            out.push_str(&format!("    {pad0}  seen: {seen}\n", pad0 = " ".repeat(width)));
        }
        if !c.ok {
            out.push_str(&format!("    {pad0}  why: {}\n", c.purpose, pad0 = " ".repeat(width)));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("    {pad0}  fix: {}\n", fix.command(), pad0 = " ".repeat(width)));
            }
        }
    }
    let required_failed = report.checks.iter().filter(|c| !c.ok && c.required).count();
    let other_failed = report.checks.iter().filter(|c| !c.ok && !c.required).count();
    out.push('\n');
    if report.ready {
        out.push_str("Ready: this host has what `lago init` and `lago start` need");
        if other_failed > 0 {
            out.push_str(&format!(
                " ({other_failed} other check{} failed, see ✗)",
                if other_failed == 1 { "" } else { "s" }
            ));
        }
        out.push('\n');
    } else {
        out.push_str(&format!(
            "Not ready: {required_failed} check{} that `lago init` and `lago start` need failed; run the fix lines above, or `sudo lago doctor --fix`\n",
            if required_failed == 1 { "" } else { "s" }
        ));
    }
    out
}
