//! Logging: warnings (or more, with `--loglevel debug`) on stderr; everything at debug level in
//! the prefix's `logs/lago.log` once a prefix is known (see `lago::host::logfile`).

use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::prelude::*;

pub(crate) fn init(loglevel: &str, ignore_warnings: bool) {
    let term_level = match loglevel {
        "debug" => LevelFilter::DEBUG,
        "error" => LevelFilter::ERROR,
        _ if ignore_warnings => LevelFilter::ERROR,
        _ => LevelFilter::WARN,
    };
    let term =
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).without_time().with_target(false).with_filter(
            EnvFilter::builder().with_default_directive(term_level.into()).with_env_var("LAGO_LOG").from_env_lossy(),
        );
    let file = tracing_subscriber::fmt::layer()
        .with_writer(|| lago::host::logfile::LogSink)
        .with_ansi(false)
        .with_target(true)
        .with_filter(LevelFilter::DEBUG);
    let _ = tracing_subscriber::registry().with(term).with(file).try_init();
}

/// Info and up on stderr, with times: what a background process (a switch) writes to its log.
pub(crate) fn init_plain() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .try_init();
}
