//! Reading repository files from `file` and `http(s)` sources, behind the [`Fetcher`] seam.

use std::io::Read;
use std::time::Duration;

/// Why a URL could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server answered with an error status.
    #[error("Failed to retrieve URL {url}: HTTP status {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The request failed (connection, TLS, protocol).
    #[error("Failed to retrieve URL {url}")]
    Transport {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl FetchError {
    /// Whether the resource does not exist (as opposed to the server being unreachable).
    pub fn is_not_found(&self) -> bool {
        matches!(self, FetchError::Status { status: 404 | 410, .. })
    }
}

/// A readable body and its length when known.
pub struct Body {
    /// The content.
    pub reader: Box<dyn Read + Send>,
    /// `Content-Length`, when given.
    pub length: Option<u64>,
}

/// Reads URLs.
pub trait Fetcher: Send + Sync {
    /// Opens `url` for reading.
    fn open(&self, url: &str) -> Result<Body, FetchError>;
}

/// The real HTTP(S) client. A stalled server cannot hold lago (and the store lock it holds)
/// forever: a download ends when no byte came for `idle`, or when it took `overall` in all.
#[derive(Debug, Clone, Copy)]
pub struct HttpFetcher {
    /// Longest wait for the next bytes (`[init] download_idle_timeout`).
    pub idle: Duration,
    /// Longest a request may take in all, body included (`[init] download_timeout`; `None`: no
    /// limit).
    pub overall: Option<Duration>,
}

impl Default for HttpFetcher {
    /// The defaults of the configuration: 60 s idle, one hour in all (a 1 GB template at 300 kB/s).
    fn default() -> Self {
        Self { idle: Duration::from_secs(60), overall: Some(Duration::from_secs(3600)) }
    }
}

impl Fetcher for HttpFetcher {
    fn open(&self, url: &str) -> Result<Body, FetchError> {
        tracing::debug!(url, "GET");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_per_read(Some(self.idle))
            .timeout_global(self.overall)
            .build()
            .into();
        match agent.get(url).call() {
            Ok(resp) => {
                let body = resp.into_body();
                let length = body.content_length();
                Ok(Body { reader: Box::new(body.into_with_config().limit(u64::MAX).reader()), length })
            }
            Err(ureq::Error::StatusCode(status)) => Err(FetchError::Status { url: url.to_owned(), status }),
            Err(e) => Err(FetchError::Transport { url: url.to_owned(), source: Box::new(e) }),
        }
    }
}
