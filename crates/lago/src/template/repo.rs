//! `repo.metadata`: which templates exist, in which versions, from which source.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::host::fetch::{FetchError, Fetcher};

/// Problems with a repository.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The repository file does not exist.
    #[error("Template repository {location} does not exist")]
    Missing {
        /// Path or URL.
        location: String,
    },
    /// The repository file cannot be read.
    #[error("Unable to load repo from {location}")]
    Read {
        /// Path or URL.
        location: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The repository file is not a valid `repo.metadata`.
    #[error("{location} is not a valid repo.metadata: {reason}")]
    Invalid {
        /// Path or URL.
        location: String,
        /// Why.
        reason: String,
    },
    /// No template of that name.
    #[error("Image {name} doesn't exist in repo {location} (known: {})", known.join(", "))]
    NoTemplate {
        /// Template asked for.
        name: String,
        /// The repository.
        location: String,
        /// Templates it has.
        known: Vec<String>,
    },
    /// No such version of a template.
    #[error("Template {name} has no version {version} in repo {location} (known: {})", known.join(", "))]
    NoVersion {
        /// Template.
        name: String,
        /// Version asked for.
        version: String,
        /// The repository.
        location: String,
        /// Versions it has.
        known: Vec<String>,
    },
    /// A version names a source the repository does not define.
    #[error("Template {name}:{version} of repo {location} uses undefined source {source_name:?}")]
    NoSource {
        /// Template.
        name: String,
        /// Version.
        version: String,
        /// The repository.
        location: String,
        /// The missing source.
        source_name: String,
    },
    /// A handle that would read outside its source.
    #[error("Template handle {handle:?} escapes its source root (expected a path inside it)")]
    HandleEscapes {
        /// The handle.
        handle: String,
    },
    /// Fetching a file of the repository failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

#[derive(Debug, Deserialize)]
struct RawRepo {
    name: String,
    #[serde(default)]
    sources: BTreeMap<String, RawSource>,
    #[serde(default)]
    templates: BTreeMap<String, RawTemplate>,
}

#[derive(Debug, Deserialize)]
struct RawSource {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    args: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct RawTemplate {
    versions: BTreeMap<String, RawVersion>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawVersion {
    source: String,
    handle: String,
    #[serde(default)]
    timestamp: f64,
}

/// Where template files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A directory.
    File {
        /// Its root.
        root: PathBuf,
    },
    /// A web server.
    Http {
        /// URL prefix of every handle.
        baseurl: String,
    },
}

/// A template repository.
#[derive(Debug, Clone)]
pub struct Repository {
    /// Repository name (first part of store names).
    pub name: String,
    /// Where it was loaded from.
    pub location: String,
    sources: BTreeMap<String, Source>,
    templates: BTreeMap<String, RawTemplate>,
}

impl Clone for RawTemplate {
    fn clone(&self) -> Self {
        Self { versions: self.versions.clone() }
    }
}

/// One version of one template, resolved to its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTemplate {
    /// Repository name.
    pub repo: String,
    /// Template name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Source.
    pub source: Source,
    /// File name or path within the source.
    pub handle: String,
}

impl ResolvedTemplate {
    /// `<repo>:<template>:<version>`, the store's file name.
    pub fn store_name(&self) -> String {
        format!("{}:{}:{}", self.repo, self.name, self.version)
    }
}

fn expand_root(root: &str) -> PathBuf {
    let env = |name: &str| std::env::var(name).ok();
    let expanded = crate::spec::expand_vars(root, &env);
    match (expanded.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(expanded),
    }
}

/// Refuses handles that leave their root (`..`, absolute paths).
pub fn check_handle(handle: &str) -> Result<(), RepoError> {
    let ok = !handle.is_empty()
        && Path::new(handle).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if ok { Ok(()) } else { Err(RepoError::HandleEscapes { handle: handle.to_owned() }) }
}

/// The most a `repo.metadata` may hold: far more than any real repository needs, and a bound on
/// what a wrong path (`/dev/zero`) makes lago read.
pub const MAX_METADATA: u64 = 16 << 20;

/// Reads a local `repo.metadata`: a regular file (a FIFO or a device is refused before it is
/// opened, so nothing blocks) of at most [`MAX_METADATA`] bytes, as UTF-8.
pub fn read_bounded(path: &Path) -> Result<String, crate::host::pathio::PathError> {
    crate::host::pathio::read_text(path, MAX_METADATA)
}

impl Repository {
    /// Loads `repo.metadata` from a path or an `http(s)://` / `file://` URL.
    pub fn load(location: &str, fetcher: &dyn Fetcher) -> Result<Self, RepoError> {
        let text = if location.starts_with("http://") || location.starts_with("https://") {
            let body = fetcher.open(location).map_err(|e| match e {
                e if e.is_not_found() => RepoError::Missing { location: location.to_owned() },
                e => RepoError::Read { location: location.to_owned(), source: Box::new(e) },
            })?;
            let mut text = String::new();
            body.reader
                .take(MAX_METADATA + 1)
                .read_to_string(&mut text)
                .map_err(|e| RepoError::Read { location: location.to_owned(), source: Box::new(e) })?;
            if text.len() as u64 > MAX_METADATA {
                return Err(RepoError::Invalid {
                    location: location.to_owned(),
                    reason: format!("larger than {} MiB", MAX_METADATA >> 20),
                });
            }
            text
        } else {
            let path = location.strip_prefix("file://").unwrap_or(location);
            match read_bounded(Path::new(path)) {
                Ok(t) => t,
                Err(e) if e.source.kind() == std::io::ErrorKind::NotFound => {
                    return Err(RepoError::Missing { location: location.to_owned() });
                }
                Err(e) => return Err(RepoError::Read { location: location.to_owned(), source: Box::new(e) }),
            }
        };
        Self::parse(&text, location)
    }

    /// Parses `repo.metadata` text.
    pub fn parse(text: &str, location: &str) -> Result<Self, RepoError> {
        let raw: RawRepo = serde_json::from_str(text)
            .map_err(|e| RepoError::Invalid { location: location.to_owned(), reason: e.to_string() })?;
        let mut sources = BTreeMap::new();
        for (name, s) in raw.sources {
            let source = match s.kind.as_str() {
                "file" => Source::File {
                    root: expand_root(s.args.get("root").ok_or_else(|| RepoError::Invalid {
                        location: location.to_owned(),
                        reason: format!("source {name:?} of type file has no args.root"),
                    })?),
                },
                "http" => Source::Http {
                    baseurl: s.args.get("baseurl").cloned().ok_or_else(|| RepoError::Invalid {
                        location: location.to_owned(),
                        reason: format!("source {name:?} of type http has no args.baseurl"),
                    })?,
                },
                other => {
                    return Err(RepoError::Invalid {
                        location: location.to_owned(),
                        reason: format!("source {name:?} has unknown type {other:?} (known: file, http)"),
                    });
                }
            };
            sources.insert(name, source);
        }
        Ok(Self { name: raw.name, location: location.to_owned(), sources, templates: raw.templates })
    }

    /// Template names.
    pub fn template_names(&self) -> Vec<String> {
        self.templates.keys().cloned().collect()
    }

    /// Versions of a template, newest (by timestamp) first.
    pub fn versions(&self, name: &str) -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = self
            .templates
            .get(name)
            .map(|t| t.versions.iter().map(|(k, v)| (k.clone(), v.timestamp)).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
        v
    }

    /// Resolves `name` at `version`, or its latest version by timestamp.
    pub fn resolve(&self, name: &str, version: Option<&str>) -> Result<ResolvedTemplate, RepoError> {
        let location = self.location.clone();
        let t = self.templates.get(name).ok_or_else(|| RepoError::NoTemplate {
            name: name.to_owned(),
            location: location.clone(),
            known: self.template_names(),
        })?;
        let version = match version {
            Some(v) => v.to_owned(),
            None => self.versions(name).first().map(|(v, _)| v.clone()).ok_or_else(|| RepoError::NoVersion {
                name: name.to_owned(),
                version: "(latest)".into(),
                location: location.clone(),
                known: vec![],
            })?,
        };
        let v = t.versions.get(&version).ok_or_else(|| RepoError::NoVersion {
            name: name.to_owned(),
            version: version.clone(),
            location: location.clone(),
            known: t.versions.keys().cloned().collect(),
        })?;
        check_handle(&v.handle)?;
        let source = self.sources.get(&v.source).cloned().ok_or_else(|| RepoError::NoSource {
            name: name.to_owned(),
            version: version.clone(),
            location,
            source_name: v.source.clone(),
        })?;
        Ok(ResolvedTemplate {
            repo: self.name.clone(),
            name: name.to_owned(),
            version,
            source,
            handle: v.handle.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO: &str = r#"{"name": "r", "sources": {"s": {"type": "file", "args": {"root": "/srv"}}},
      "templates": {"t": {"versions": {"v1": {"source": "s", "handle": "a.qcow2", "timestamp": 1},
                                       "v2": {"source": "s", "handle": "b.qcow2", "timestamp": 5},
                                       "bad": {"source": "s", "handle": "../etc/passwd", "timestamp": 0}}}}}"#;

    #[test]
    fn latest_by_timestamp_and_explicit() {
        let r = Repository::parse(REPO, "x").unwrap();
        let t = r.resolve("t", None).unwrap();
        assert_eq!((t.version.as_str(), t.handle.as_str(), t.store_name()), ("v2", "b.qcow2", "r:t:v2".to_owned()));
        assert_eq!(r.resolve("t", Some("v1")).unwrap().handle, "a.qcow2");
        assert!(matches!(r.resolve("t", Some("v9")), Err(RepoError::NoVersion { .. })));
        let err = r.resolve("nope", None).unwrap_err().to_string();
        assert_eq!(err, "Image nope doesn't exist in repo x (known: t)");
    }

    #[test]
    fn escaping_handle_is_refused() {
        let r = Repository::parse(REPO, "x").unwrap();
        assert!(matches!(r.resolve("t", Some("bad")), Err(RepoError::HandleEscapes { .. })));
        assert!(check_handle("/abs").is_err());
        assert!(check_handle("sub/dir/img").is_ok());
    }
}
