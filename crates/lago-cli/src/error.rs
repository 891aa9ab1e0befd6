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
        let code = match lago::host::interrupt::received() {
            Some(signal) => {
                let i = lago::host::interrupt::Interrupted { signal };
                text.push_str(&format!("{i}: what this command changed was rolled back or left complete\n"));
                i.exit_code()
            }
            None => self.code,
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
    E: lago::diagnose::Diagnose + StdError + Send + Sync + 'static,
{
    fn from(e: E) -> Self {
        let d = e.diagnose();
        let err = if d.user { CliError::user(e) } else { CliError::internal(e) };
        match d.hint {
            Some(h) => err.hint(h),
            None => err,
        }
    }
}
