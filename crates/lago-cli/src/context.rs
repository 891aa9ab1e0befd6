//! What every command needs: the library's [`Session`] (configuration, workdir and prefix), the
//! reporter of progress, and the output format.

use lago::session::{Location, Session};

use crate::args::{GlobalArgs, OutFormatChoice};
use crate::error::CliError;
use crate::progress::TaskPrinter;

pub(crate) struct Context {
    pub(crate) session: Session,
    pub(crate) reporter: TaskPrinter,
    pub(crate) format: lago::output::Format,
    /// An output plugin's format (`-f NAME`), which prints instead of `format`.
    pub(crate) plugin_format: Option<String>,
    /// `-f dot`: the picture of an environment, which only `lago status` prints.
    pub(crate) dot: bool,
    /// The command line's grammar (for completions and man pages).
    pub(crate) grammar: clap::Command,
}

impl Context {
    pub(crate) fn new(globals: &GlobalArgs, grammar: clap::Command) -> Result<Self, CliError> {
        let location =
            Location { prefix_path: globals.prefix_path.clone(), workdir_path: globals.workdir_path.clone() };
        let session = Session::open(location, &globals.overrides())?;
        let config = &session.config;
        let loglevel = config.lago("loglevel").unwrap_or("info").to_owned();
        crate::logging::init(&loglevel, globals.ignore_warnings);
        for w in &config.warnings {
            tracing::warn!("{w}");
        }
        for n in &config.notes {
            tracing::debug!("{n}");
        }
        let logdepth = config.lago("logdepth").and_then(|d| d.trim().parse::<i64>().ok()).unwrap_or(3);
        let dot = globals.out_format == Some(OutFormatChoice::Lago(crate::args::OutFormat::Dot));
        let (format, plugin_format) = match &globals.out_format {
            Some(OutFormatChoice::Lago(f)) => (f.to_lib().unwrap_or_default(), None),
            Some(OutFormatChoice::Plugin(name)) => (lago::output::Format::Default, Some(name.clone())),
            None => match config.lago("out_format") {
                Some(name) => match lago::output::Format::from_name(name) {
                    Some(f) => (f, None),
                    None => (lago::output::Format::Default, Some(name.to_owned())),
                },
                None => (lago::output::Format::Default, None),
            },
        };
        Ok(Self { reporter: TaskPrinter::new(logdepth, &loglevel), format, plugin_format, dot, session, grammar })
    }

    /// The environment of the prefix a verb works on.
    pub(crate) fn env(&self) -> Result<lago::env::Env, CliError> {
        Ok(self.session.env(&self.reporter)?)
    }

    /// Whether the output format is the default one (a verb may print plain lines then).
    pub(crate) fn is_default_format(&self) -> bool {
        self.plugin_format.is_none() && !self.dot && self.format == lago::output::Format::Default
    }

    /// Prints information in the chosen output format (an output plugin's through the Python
    /// that has it).
    pub(crate) fn print(&self, value: &impl serde::Serialize) -> Result<(), CliError> {
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        let text = match &self.plugin_format {
            Some(name) => crate::python::format(name, &value).map_err(CliError::user)?,
            None => self.format.render(&value),
        };
        println!("{text}");
        Ok(())
    }
}
