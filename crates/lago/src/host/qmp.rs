//! A small QMP client over the VM's control socket (`run/<vm>.qmp`): handshake, commands,
//! asynchronous events skipped.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

/// QMP failures.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// The socket could not be used.
    #[error("Cannot talk to QMP socket {path}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// qemu answered with an error.
    #[error("QMP command `{command}` failed: {desc}")]
    Command {
        /// The command.
        command: String,
        /// qemu's description.
        desc: String,
    },
    /// qemu closed the socket or said something that is not QMP.
    #[error("Unexpected QMP reply on {path}: {reply}")]
    Protocol {
        /// The socket.
        path: PathBuf,
        /// What was read.
        reply: String,
    },
}

/// A connected, negotiated QMP session.
pub struct Qmp {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects and negotiates capabilities.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, QmpError> {
        let io = |source| QmpError::Io { path: path.to_owned(), source };
        let stream = UnixStream::connect(path).map_err(io)?;
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        let mut qmp = Self { path: path.to_owned(), reader: BufReader::new(stream), writer };
        let greeting = qmp.read()?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol { path: path.to_owned(), reply: greeting.to_string() });
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    fn read(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).map_err(|source| QmpError::Io { path: self.path.clone(), source })?;
        if n == 0 {
            return Err(QmpError::Protocol { path: self.path.clone(), reply: "(closed)".into() });
        }
        serde_json::from_str(&line)
            .map_err(|_| QmpError::Protocol { path: self.path.clone(), reply: line.trim().to_owned() })
    }

    /// Runs a command and returns its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let mut msg = json!({ "execute": command });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        writeln!(self.writer, "{msg}").map_err(|source| QmpError::Io { path: self.path.clone(), source })?;
        loop {
            let reply = self.read()?;
            if let Some(r) = reply.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = reply.get("error") {
                let desc = e.get("desc").and_then(Value::as_str).unwrap_or("unknown error").to_owned();
                return Err(QmpError::Command { command: command.to_owned(), desc });
            }
            // An asynchronous event: skip it.
        }
    }
}
