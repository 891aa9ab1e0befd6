//! lago's `tracing` events as Python `logging` records, and in the prefix's `logs/lago.log`.
//!
//! An event of target `lago::env` goes to the logger `lago.env` at the matching level (TRACE is
//! 5, below DEBUG), so `logging.basicConfig`, a `FileHandler` given to `sdk.init(logfile=...)` or
//! `sdk.add_stream_logger()` see lago's lines beside the caller's own. Loggers are looked up once
//! per target and asked `isEnabledFor` before a record is made.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use pyo3::prelude::*;
use tracing::field::{Field, Visit};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// Installs the subscriber (once per process): Python's logging, and the prefix's log file.
pub(crate) fn install() {
    let file = tracing_subscriber::fmt::layer()
        .with_writer(|| lago::host::logfile::LogSink)
        .with_ansi(false)
        .with_target(true)
        .with_filter(LevelFilter::DEBUG);
    let _ = tracing_subscriber::registry().with(PythonLogging.with_filter(LevelFilter::DEBUG)).with(file).try_init();
}

/// Forwards events to Python's `logging`.
struct PythonLogging;

fn loggers() -> &'static Mutex<HashMap<String, Py<PyAny>>> {
    static LOGGERS: OnceLock<Mutex<HashMap<String, Py<PyAny>>>> = OnceLock::new();
    LOGGERS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The message of an event, then its other fields as `key=value`.
#[derive(Default)]
struct Message(String, String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.1, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.1, " {}={value}", field.name());
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for PythonLogging {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level: i32 = match *meta.level() {
            tracing::Level::ERROR => 40,
            tracing::Level::WARN => 30,
            tracing::Level::INFO => 20,
            tracing::Level::DEBUG => 10,
            tracing::Level::TRACE => 5,
        };
        let name = meta.target().replace("::", ".");
        let mut message = Message::default();
        event.record(&mut message);
        let text = format!("{}{}", message.0, message.1);
        Python::attach(|py| {
            let logger = {
                let mut cache = loggers().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                match cache.get(&name) {
                    Some(l) => l.clone_ref(py),
                    None => {
                        let Ok(l) = py.import("logging").and_then(|m| m.call_method1("getLogger", (&name,))) else {
                            return;
                        };
                        let l = l.unbind();
                        cache.insert(name.clone(), l.clone_ref(py));
                        l
                    }
                }
            };
            let logger = logger.bind(py);
            if logger.call_method1("isEnabledFor", (level,)).and_then(|b| b.extract::<bool>()).unwrap_or(false) {
                let _ = logger.call_method1("log", (level, "%s", text));
            }
        });
    }
}

/// The library's progress as log records: task lines at INFO (`Start Prefix: Success (in
/// 0:00:15)`), notes at INFO, warnings at WARNING, on the logger `lago.progress`.
pub(crate) struct Progress;

impl lago::report::Reporter for Progress {
    fn task_started(&self, name: &str) {
        tracing::info!(target: "lago::progress", "{name}:");
    }

    fn task_finished(&self, name: &str, ok: bool, elapsed: std::time::Duration) {
        let status = if ok { "Success" } else { "ERROR" };
        tracing::info!(target: "lago::progress", "{name}: {status} (in {})", lago::report::hms(elapsed));
    }

    fn note(&self, message: &str) {
        tracing::info!(target: "lago::progress", "{message}");
    }

    fn warn(&self, message: &str) {
        tracing::warn!(target: "lago::progress", "{message}");
    }
}
