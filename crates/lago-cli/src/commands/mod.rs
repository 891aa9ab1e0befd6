//! One module per verb; `run` dispatches.

pub(crate) mod ansible;
pub(crate) mod completion;
pub(crate) mod doctor;
pub(crate) mod export;
pub(crate) mod generate_config;
pub(crate) mod init;
pub(crate) mod net;
pub(crate) mod plugin;
pub(crate) mod prefix;
pub(crate) mod snapshot;
pub(crate) mod status;
pub(crate) mod template;
pub(crate) mod vm;
pub(crate) mod workdir;

use std::process::ExitCode;

use crate::cli::{Cli, Verb};
use crate::context::Context;
use crate::error::CliError;

pub(crate) fn run(ctx: &mut Context, cli: &Cli) -> Result<ExitCode, CliError> {
    match &cli.verb {
        Verb::Init(a) => init::cmd_init(ctx, a),
        Verb::Cleanup(a) => prefix::cmd_cleanup(ctx, a),
        Verb::Destroy(a) => prefix::cmd_destroy(ctx, a),
        Verb::Status(a) => status::cmd_status(ctx, a),
        Verb::List(a) => workdir::cmd_list(ctx, a),
        Verb::SetCurrent(a) => workdir::cmd_set_current(ctx, a),
        Verb::Start(a) => vm::cmd_start(ctx, a),
        Verb::Stop(a) => vm::cmd_stop(ctx, a),
        Verb::Shell(a) => vm::cmd_shell(ctx, a),
        Verb::Shutdown(a) => vm::cmd_shutdown(ctx, a),
        Verb::CopyToVm(a) => vm::cmd_copy_to(ctx, a),
        Verb::CopyFromVm(a) => vm::cmd_copy_from(ctx, a),
        Verb::Collect(a) => vm::cmd_collect(ctx, a),
        Verb::Deploy(a) => vm::cmd_deploy(ctx, a),
        Verb::Console(a) => vm::cmd_console(ctx, a),
        Verb::Net(a) => net::cmd_net(ctx, a),
        Verb::Snapshot(a) => snapshot::cmd_snapshot(ctx, a),
        Verb::Revert(a) => snapshot::cmd_revert(ctx, a),
        Verb::Export(a) => export::cmd_export(ctx, a),
        Verb::AnsibleHosts(a) => ansible::cmd_ansible_hosts(ctx, a),
        Verb::Template(a) => template::cmd_template(ctx, a),
        Verb::GenerateConfig(a) => generate_config::cmd_generate_config(ctx, a),
        Verb::Doctor(a) => return doctor::cmd_doctor(ctx, a),
        Verb::Completion(a) => completion::cmd_completion(ctx, a),
        Verb::Manpages(a) => completion::cmd_manpages(ctx, a),
        Verb::External(args) => plugin::cmd_plugin(ctx, args),
    }
    .map(|()| ExitCode::SUCCESS)
}
