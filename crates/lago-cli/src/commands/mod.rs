//! The verbs: one module per verb or per group of verbs (each calling the library module of the
//! same name), the table of verbs, and its dispatch.

pub(crate) mod ansible;
pub(crate) mod capture;
pub(crate) mod completion;
pub(crate) mod console;
pub(crate) mod docgen;
pub(crate) mod doctor;
pub(crate) mod envs;
pub(crate) mod export;
pub(crate) mod fork;
pub(crate) mod forward;
pub(crate) mod generate_config;
pub(crate) mod graph;
pub(crate) mod guest;
pub(crate) mod init;
pub(crate) mod net;
pub(crate) mod plugin;
pub(crate) mod prefix;
pub(crate) mod shell;
pub(crate) mod snapshot;
pub(crate) mod start;
pub(crate) mod status;
pub(crate) mod template;
pub(crate) mod wait;
pub(crate) mod workdir;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Subcommand;

use crate::context::Context;
use crate::error::CliError;

/// The verbs, in the original's order, then lago's own.
#[derive(Debug, Subcommand)]
pub(crate) enum Verb {
    Init(init::InitArgs),
    Cleanup(prefix::CleanupArgs),
    Destroy(prefix::DestroyArgs),
    Start(start::StartArgs),
    Stop(start::StopArgs),
    Status(status::StatusArgs),
    Graph(graph::GraphArgs),
    Shell(shell::ShellArgs),
    Shutdown(guest::ShutdownArgs),
    CopyToVm(guest::CopyToArgs),
    CopyFromVm(guest::CopyFromArgs),
    Collect(guest::CollectArgs),
    Deploy(guest::DeployArgs),
    Console(console::ConsoleArgs),
    Net(net::NetArgs),
    Forward(forward::ForwardArgs),
    Wait(wait::WaitArgs),
    Fork(fork::ForkArgs),
    Capture(capture::CaptureArgs),
    Replay(capture::ReplayArgs),
    Snapshot(snapshot::SnapshotArgs),
    Revert(snapshot::RevertArgs),
    Export(export::ExportArgs),
    #[command(name = "ansible_hosts")]
    AnsibleHosts(ansible::AnsibleHostsArgs),
    List(workdir::ListArgs),
    SetCurrent(workdir::SetCurrentArgs),
    Envs(envs::EnvsArgs),
    GenerateConfig(generate_config::GenerateConfigArgs),
    Template(template::TemplateArgs),
    Doctor(doctor::DoctorArgs),
    Completion(completion::CompletionArgs),
    #[command(hide = true)]
    Manpages(completion::ManpagesArgs),
    #[command(hide = true)]
    Docgen(docgen::DocgenArgs),
    /// Run `lago-<verb>` from PATH (a CLI plugin)
    #[command(external_subcommand)]
    External(Vec<OsString>),
}

/// Verbs whose exit codes are their own, beside [`crate::error::EXIT_CODES`] (the reference lists
/// them): the verb's path and what it exits with.
pub(crate) const OWN_EXIT_CODES: &[(&str, &str)] = &[
    (
        "shell",
        "With a command or a script: the command's own exit code in the VM (255 when `ssh` could not run it, as `ssh` does).",
    ),
    ("doctor", "0 when everything `lago init` and `lago start` need is there, 1 otherwise (the report says what)."),
    ("graph", "2 when Graphviz's `dot` is missing (`lago doctor --fix --all` installs it)."),
];

/// Runs `verb`; its exit code (the command's own for `shell`, `doctor` and plugins).
pub(crate) fn run(ctx: &mut Context, verb: &Verb) -> Result<ExitCode, CliError> {
    if ctx.dot && !matches!(verb, Verb::Status(_)) {
        return Err(CliError::user("`-f dot` is the picture of an environment: only `lago status` prints it")
            .hint("`lago status -f dot` prints it as Graphviz DOT, `lago graph` renders it (SVG)"));
    }
    match verb {
        Verb::Init(a) => init::cmd_init(ctx, a),
        Verb::Cleanup(a) => prefix::cmd_cleanup(ctx, a),
        Verb::Destroy(a) => prefix::cmd_destroy(ctx, a),
        Verb::Status(a) => status::cmd_status(ctx, a),
        Verb::Graph(a) => graph::cmd_graph(ctx, a),
        Verb::List(a) => workdir::cmd_list(ctx, a),
        Verb::SetCurrent(a) => workdir::cmd_set_current(ctx, a),
        Verb::Envs(a) => envs::cmd_envs(ctx, a),
        Verb::Start(a) => start::cmd_start(ctx, a),
        Verb::Stop(a) => start::cmd_stop(ctx, a),
        Verb::Shell(a) => return shell::cmd_shell(ctx, a),
        Verb::Shutdown(a) => guest::cmd_shutdown(ctx, a),
        Verb::CopyToVm(a) => guest::cmd_copy_to(ctx, a),
        Verb::CopyFromVm(a) => guest::cmd_copy_from(ctx, a),
        Verb::Collect(a) => guest::cmd_collect(ctx, a),
        Verb::Deploy(a) => guest::cmd_deploy(ctx, a),
        Verb::Console(a) => console::cmd_console(ctx, a),
        Verb::Net(a) => net::cmd_net(ctx, a),
        Verb::Snapshot(a) => snapshot::cmd_snapshot(ctx, a),
        Verb::Revert(a) => snapshot::cmd_revert(ctx, a),
        Verb::Export(a) => export::cmd_export(ctx, a),
        Verb::Forward(a) => forward::cmd_forward(ctx, a),
        Verb::Wait(a) => wait::cmd_wait(ctx, a),
        Verb::Fork(a) => fork::cmd_fork(ctx, a),
        Verb::Capture(a) => capture::cmd_capture(ctx, a),
        Verb::Replay(a) => capture::cmd_replay(ctx, a),
        Verb::AnsibleHosts(a) => ansible::cmd_ansible_hosts(ctx, a),
        Verb::Template(a) => template::cmd_template(ctx, a),
        Verb::GenerateConfig(a) => generate_config::cmd_generate_config(ctx, a),
        Verb::Doctor(a) => return doctor::cmd_doctor(ctx, a),
        Verb::Completion(a) => completion::cmd_completion(ctx, a),
        Verb::Manpages(a) => completion::cmd_manpages(ctx, a),
        Verb::Docgen(a) => docgen::cmd_docgen(ctx, a),
        Verb::External(args) => return plugin::cmd_plugin(ctx, args),
    }
    .map(|()| ExitCode::SUCCESS)
}
