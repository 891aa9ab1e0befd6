//! Template repositories (`repo.metadata`) and the local template store (reference §4,
//! DESIGN §5).

pub mod build;
pub mod import;
pub mod prune;
pub mod repo;
pub mod store;

pub use repo::{RepoError, Repository, ResolvedTemplate, Source};
pub use store::{Store, StoreError, StoredTemplate};
