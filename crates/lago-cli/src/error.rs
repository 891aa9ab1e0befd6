//! Errors as the user sees them: `Error:`, each cause, `Hint:` lines (rendered by the library's
//! [`lago::diagnose::render`], as for the Python SDK), and the exit code: 2 for problems with the
//! user's input, as the original's Lago exceptions; 1 otherwise; 128 + the signal when lago was
//! interrupted.

use std::process::ExitCode;

use lago::diagnose::Rendered;

/// The exit codes of every verb, as the reference lists them (`lago docgen`); verbs with codes
/// of their own are in [`crate::commands::OWN_EXIT_CODES`].
pub(crate) const EXIT_CODES: &[(&str, &str)] = &[
    ("0", "Success; also `--help` and `--version`."),
    (
        "1",
        "A failure of the host or of lago (a tool that failed, a VM that did not boot); also no verb at all (the help is printed), as the original's `argparse`.",
    ),
    (
        "2",
        "A problem with the input: a wrong option or value on the command line, an init file, a name, a request that cannot be met; the error says which, with a hint.",
    ),
    (
        "128 + N",
        "Interrupted by signal N (130 for Ctrl-C, 143 for SIGTERM): what the command had changed was rolled back, or left complete.",
    ),
];

/// A failed command.
pub(crate) struct CliError {
    rendered: Rendered,
}

impl CliError {
    /// An error in the user's input or request (exit code 2).
    pub(crate) fn user(message: impl std::fmt::Display) -> Self {
        Self { rendered: Rendered::message(message.to_string(), true) }
    }

    /// A failure of the host or of lago itself (exit code 1), in words of the CLI's own.
    pub(crate) fn failed(message: impl std::fmt::Display) -> Self {
        Self { rendered: Rendered::message(message.to_string(), false) }
    }

    /// A failure of the host or of lago itself (exit code 1), with its causes.
    pub(crate) fn internal(error: impl std::error::Error) -> Self {
        let mut rendered = Rendered::message(error.to_string(), false);
        let mut source = error.source();
        while let Some(cause) = source {
            rendered.causes.push(cause.to_string());
            source = cause.source();
        }
        Self { rendered }
    }

    /// Adds a hint line.
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.rendered.hints.push(hint.into());
        self
    }

    /// Prints the error and its causes to stderr (and to the prefix's log) and returns the exit
    /// code.
    pub(crate) fn report(&self) -> ExitCode {
        let mut text = format!("Error: {}\n", self.rendered.text());
        // An interrupted command exits as a shell expects of a process killed by that signal.
        let code = match lago::host::interrupt::received() {
            Some(signal) => {
                let i = lago::host::interrupt::Interrupted { signal };
                text.push_str(&format!("{i}: what this command changed was rolled back or left complete\n"));
                i.exit_code()
            }
            None if self.rendered.user => 2,
            None => 1,
        };
        eprint!("{text}");
        // The log file gets the same text; the terminal already has it.
        let _ = std::io::Write::write_all(&mut lago::host::logfile::LogSink, format!("ERROR lago: {text}").as_bytes());
        ExitCode::from(code)
    }
}

/// Every error of the library: its diagnosis decides the exit code and the hint.
impl<E> From<E> for CliError
where
    E: lago::diagnose::Diagnose + std::error::Error,
{
    fn from(e: E) -> Self {
        Self { rendered: lago::diagnose::render(&e) }
    }
}
