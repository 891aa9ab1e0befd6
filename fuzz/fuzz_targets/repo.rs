//! The repository reader: `repo.metadata` as `init` and `template list` read it, and as
//! `template build` reads it for an update. No input may panic; every listed version resolves
//! or fails with an error.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(repo) = lago::template::Repository::parse(text, "fuzz") {
        for name in repo.template_names() {
            for (version, _) in repo.versions(&name) {
                let _ = repo.resolve(&name, Some(&version));
            }
            let _ = repo.resolve(&name, None);
        }
    }
    let path = dir().join("repo.metadata");
    std::fs::write(&path, text).unwrap();
    let _ = lago::template::build::read_repo_for_update(&path, dir());
});
