//! The init file (`LagoInitFile`): reading, checking and environment-variable expansion.
//!
//! Loading is pure apart from reading the file: text → tree ([`tree`]) → typed [`Spec`]
//! ([`model`]). Every problem is reported with the file, the key path and what was expected;
//! [`crate::plan`] then adds the cross-checks that need the expanded networks.

pub mod cpu;
pub mod ipv6;
pub mod keys;
pub mod model;
pub mod tree;
pub mod written;

use std::fmt;
use std::path::{Path, PathBuf};

pub use ipv6::Ipv6Spec;
pub use model::{BuildStep, DiskSpec, DiskType, DomainSpec, NetSpec, NetType, NicSpec, Spec, TemplateType};

/// The largest init file lago reads.
const MAX_INIT_FILE: u64 = 16 * 1024 * 1024;

/// One problem of an init file, at a key path such as `domains.vm01.nics[0].net`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Key path; empty for the file as a whole.
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
    /// How bad it is.
    pub kind: IssueKind,
}

/// How bad an [`Issue`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueKind {
    /// The file cannot be used.
    Error,
    /// A key lago does not know: an error, or a warning when `[init] strict = false`.
    UnknownKey,
    /// Something the original accepted and never read (`cpu:`): said, never an error.
    Note,
}

impl Issue {
    /// A problem at `key`.
    pub fn new(key: &str, message: impl Into<String>) -> Self {
        Self { key: key.to_owned(), message: message.into(), kind: IssueKind::Error }
    }

    /// A key lago does not know, at `key`.
    pub fn unknown_key(key: &str, message: impl Into<String>) -> Self {
        Self { kind: IssueKind::UnknownKey, ..Self::new(key, message) }
    }

    /// A note about `key` (never an error).
    pub fn note(key: &str, message: impl Into<String>) -> Self {
        Self { kind: IssueKind::Note, ..Self::new(key, message) }
    }

    /// Whether it makes the file unusable, `strict` being `[init] strict`.
    pub fn is_error(&self, strict: bool) -> bool {
        match self.kind {
            IssueKind::Error => true,
            IssueKind::UnknownKey => strict,
            IssueKind::Note => false,
        }
    }
}

/// Splits `issues` into the errors and the warnings (`strict`: unknown keys are errors).
pub fn split_issues(issues: Vec<Issue>, strict: bool) -> (Vec<Issue>, Vec<Issue>) {
    issues.into_iter().partition(|i| i.is_error(strict))
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.key, self.message) }
    }
}

/// Why an init file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file does not exist.
    #[error("Unable to find init file: {path}")]
    NotFound {
        /// The path looked at.
        path: PathBuf,
    },
    /// The file exists but cannot be read.
    #[error("Cannot read init file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("Init file {path} is empty (expected `domains` and `nets`)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file is larger than any init file should be.
    #[error("Init file {path} is {size} bytes, more than the {MAX_INIT_FILE} an init file may have")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The text is not valid YAML or JSON.
    #[error("{path}{}: {format} syntax error: {message}", position(*.line, *.column))]
    Syntax {
        /// The file.
        path: PathBuf,
        /// `YAML` or `JSON`.
        format: &'static str,
        /// Line, when known.
        line: Option<usize>,
        /// Column, when known.
        column: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// The file parses but its content is wrong.
    #[error("{path}: {} problem{} found:\n{}", issues.len(), if issues.len() == 1 { "" } else { "s" }, list(issues))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        issues: Vec<Issue>,
    },
}

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

fn list(issues: &[Issue]) -> String {
    issues.iter().map(|i| format!("  {i}")).collect::<Vec<_>>().join("\n")
}

/// Reads and checks an init file.
pub fn load(path: &Path) -> Result<Spec, SpecError> {
    let (spec, issues) = load_partial(path)?;
    let (errors, _) = split_issues(issues, true);
    if errors.is_empty() { Ok(spec) } else { Err(SpecError::Invalid { path: path.to_owned(), issues: errors }) }
}

/// Reads an init file; a file that parses gives what could be read of it and the problems
/// found, so that later checks can add theirs and the user sees them all at once.
pub fn load_partial(path: &Path) -> Result<(Spec, Vec<Issue>), SpecError> {
    let meta = std::fs::metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => SpecError::NotFound { path: path.to_owned() },
        _ => SpecError::Read { path: path.to_owned(), source },
    })?;
    if meta.len() > MAX_INIT_FILE {
        return Err(SpecError::TooLarge { path: path.to_owned(), size: meta.len() });
    }
    let bytes = std::fs::read(path).map_err(|source| SpecError::Read { path: path.to_owned(), source })?;
    let text = String::from_utf8(bytes).map_err(|e| SpecError::Read {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not UTF-8 text: {e}")),
    })?;
    parse_partial(&text, path)
}

/// Checks init-file text; `path` names it in errors and decides JSON vs YAML by extension.
pub fn parse(text: &str, path: &Path) -> Result<Spec, SpecError> {
    let (spec, issues) = parse_partial(text, path)?;
    let (errors, _) = split_issues(issues, true);
    if errors.is_empty() { Ok(spec) } else { Err(SpecError::Invalid { path: path.to_owned(), issues: errors }) }
}

/// Like [`parse`], returning what could be read and the problems found.
pub fn parse_partial(text: &str, path: &Path) -> Result<(Spec, Vec<Issue>), SpecError> {
    if text.trim().is_empty() {
        return Err(SpecError::Empty { path: path.to_owned() });
    }
    let is_json = path.extension().is_some_and(|e| e == "json");
    let tree = tree::parse(text, is_json).map_err(|e| SpecError::Syntax {
        path: path.to_owned(),
        format: e.format,
        line: e.line,
        column: e.column,
        message: e.message,
    })?;
    if tree.is_null() {
        return Err(SpecError::Empty { path: path.to_owned() });
    }
    let mut issues = Vec::new();
    let spec = model::read_spec(&tree, &mut issues);
    Ok((spec, issues))
}

/// Expands `$NAME` and `${NAME}` from `lookup`, leaving unknown variables as written
/// (like Python's `os.path.expandvars`, which the original used).
pub fn expand_vars(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, consumed) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            (&after[..end], end)
        };
        match (name.is_empty(), lookup(name)) {
            (false, Some(value)) => out.push_str(&value),
            _ => out.push_str(&rest[pos..pos + 1 + consumed]),
        }
        rest = &rest[pos + 1 + consumed..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_vars_like_python() {
        let lookup = |n: &str| match n {
            "A" => Some("/x".to_owned()),
            "LAGO_PREFIX_PATH" => Some("/p".to_owned()),
            _ => None,
        };
        assert_eq!(expand_vars("$A/b", &lookup), "/x/b");
        assert_eq!(expand_vars("${A}c", &lookup), "/xc");
        assert_eq!(expand_vars("$LAGO_PREFIX_PATH/../s.sh", &lookup), "/p/../s.sh");
        assert_eq!(expand_vars("$NOPE/x $", &lookup), "$NOPE/x $");
        assert_eq!(expand_vars("${A", &lookup), "${A");
    }
}
