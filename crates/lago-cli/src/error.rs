//! Errors as the user sees them: `Error:`, each cause, `Hint:` lines, and the exit code
//! (2 for problems with the user's input, as the original's Lago exceptions; 1 otherwise).

use std::error::Error as StdError;
use std::process::ExitCode;

/// A failed command.
pub(crate) struct CliError {
    error: Box<dyn StdError + Send + Sync>,
    code: u8,
    hints: Vec<String>,
}

impl CliError {
    /// An error in the user's input or request (exit code 2).
    pub(crate) fn user(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self { error: error.into(), code: 2, hints: Vec::new() }
    }

    /// A failure of the host or of lago itself (exit code 1).
    pub(crate) fn internal(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self { error: error.into(), code: 1, hints: Vec::new() }
    }

    /// Adds a hint line.
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// Prints the error and its causes to stderr and returns the exit code.
    pub(crate) fn report(&self) -> ExitCode {
        let mut text = format!("Error: {}\n", self.error);
        let mut source = self.error.source();
        while let Some(cause) = source {
            text.push_str(&format!("Caused by: {cause}\n"));
            source = cause.source();
        }
        for h in &self.hints {
            text.push_str(&format!("Hint: {h}\n"));
        }
        // A tool that could not be run is a host problem `lago doctor` diagnoses and fixes.
        if text.contains("could not be run") {
            text.push_str(
                "Hint: run `lago doctor`: it checks the host and prints the command that installs what is missing\n",
            );
        }
        // An interrupted command exits as a shell expects of a process killed by that signal.
        let code = match lago::interrupt::received() {
            Some(signal) => {
                let i = lago::interrupt::Interrupted { signal };
                text.push_str(&format!("{i}: what this command changed was rolled back or left complete\n"));
                i.exit_code()
            }
            None => self.code,
        };
        eprint!("{text}");
        // The log file gets the same text; the terminal already has it.
        let _ = std::io::Write::write_all(&mut lago::logfile::LogSink, format!("ERROR lago: {text}").as_bytes());
        ExitCode::from(code)
    }
}

impl From<lago::init::InitError> for CliError {
    fn from(e: lago::init::InitError) -> Self {
        let hint = e.hint();
        let err = if e.is_user_error() { CliError::user(e) } else { CliError::internal(e) };
        match hint {
            Some(h) => err.hint(h),
            None => err,
        }
    }
}

impl From<lago::workdir::WorkdirError> for CliError {
    fn from(e: lago::workdir::WorkdirError) -> Self {
        match e {
            lago::workdir::WorkdirError::Io(_) => CliError::internal(e),
            lago::workdir::WorkdirError::NotFound { .. } => {
                CliError::user(e).hint("run `lago init` first, or point `--workdir-path` at a workdir")
            }
            lago::workdir::WorkdirError::DanglingCurrent { .. } => CliError::user(e).hint(
                "`lago set-current NAME` makes another prefix current; `lago --prefix-name NAME destroy` or `lago destroy --all-prefixes` removes prefixes",
            ),
            _ => CliError::user(e),
        }
    }
}

impl From<lago::prefix::PrefixError> for CliError {
    fn from(e: lago::prefix::PrefixError) -> Self {
        match e {
            lago::prefix::PrefixError::Workdir(w) => w.into(),
            lago::prefix::PrefixError::NotAPrefix { .. } | lago::prefix::PrefixError::Corrupt { .. } => {
                CliError::user(e)
                    .hint("the prefix's state is damaged: `lago destroy` stops what its pid files name and removes it")
            }
            _ => CliError::internal(e),
        }
    }
}

impl From<lago::config::ConfigError> for CliError {
    fn from(e: lago::config::ConfigError) -> Self {
        CliError::user(e)
    }
}

impl From<lago::env::EnvError> for CliError {
    fn from(e: lago::env::EnvError) -> Self {
        use lago::env::EnvError as E;
        match e {
            E::Prefix(p) => p.into(),
            E::UnknownVms { .. } | E::NotRunning { .. } | E::Provider { .. } | E::BadVm { .. } => CliError::user(e),
            E::Qemu(lago::provider::ProviderError::SshTimeout { .. }) => CliError::internal(e)
                .hint("raise `boot_time_sec` of the VM, or with `accel = kvm` try `--accel tcg` (KVM guests hang on some hosts)"),
            _ => CliError::internal(e),
        }
    }
}

impl From<lago::guest::GuestError> for CliError {
    fn from(e: lago::guest::GuestError) -> Self {
        use lago::guest::GuestError as G;
        match e {
            G::Env(env) => env.into(),
            G::NoPath { .. } | G::Deploy { .. } | G::Copy { .. } | G::Shutdown { .. } => CliError::user(e),
            _ => CliError::internal(e),
        }
    }
}

impl From<lago::snapshot::SnapshotError> for CliError {
    fn from(e: lago::snapshot::SnapshotError) -> Self {
        use lago::snapshot::SnapshotError as S;
        match e {
            S::Env(env) => env.into(),
            S::InvalidName { .. } | S::Exists { .. } | S::Unknown { .. } | S::Unsupported { .. } | S::NoDisk { .. } => {
                CliError::user(e)
            }
            _ => CliError::internal(e),
        }
    }
}

impl From<lago::export::ExportError> for CliError {
    fn from(e: lago::export::ExportError) -> Self {
        use lago::export::ExportError as X;
        match e {
            X::Env(env) => env.into(),
            X::Prefix(p) => p.into(),
            X::Running(_) => CliError::user(e).hint("stop them first with `lago stop`"),
            X::NotLayered { .. } | X::Unsupported { .. } | X::Clash(_) => CliError::user(e),
            _ => CliError::internal(e),
        }
    }
}
