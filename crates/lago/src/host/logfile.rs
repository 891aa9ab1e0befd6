//! The per-prefix debug log (`<prefix>/logs/lago.log`).
//!
//! The log sink is process-wide: whoever installs a `tracing` subscriber (the CLI, or an SDK
//! user) writes through [`LogSink`], and the library points it at a prefix's log file once the
//! prefix is known ([`attach`]). Until then, and after [`detach`], events are dropped.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

static SINK: Mutex<Option<(PathBuf, File)>> = Mutex::new(None);

/// Appends to `path` from now on (creating it).
pub fn attach(path: &Path) -> io::Result<()> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    *SINK.lock().unwrap_or_else(|e| e.into_inner()) = Some((path.to_owned(), file));
    Ok(())
}

/// Stops writing to the current log file.
pub fn detach() {
    *SINK.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// The file currently written, if any.
pub fn current() -> Option<PathBuf> {
    SINK.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(p, _)| p.clone())
}

/// A writer over the current log file, usable as a `tracing_subscriber` `MakeWriter`.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogSink;

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some((_, f)) = SINK.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            f.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some((_, f)) = SINK.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            f.flush()?;
        }
        Ok(())
    }
}
