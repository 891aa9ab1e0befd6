//! Template repositories (`repo.metadata`) and the local template store (reference §4,
//! DESIGN §5).

pub mod build;
mod debian;
pub mod fetch;
pub mod repo;
pub mod store;

pub use fetch::{FetchError, Fetcher, HttpFetcher};
pub use repo::{RepoError, Repository, ResolvedTemplate, Source};
pub use store::{Store, StoreError, StoredTemplate};
