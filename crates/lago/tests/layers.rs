//! The library's shape (`docs/design.md`, "The map"): its top-level modules stand in layers, and
//! a module imports only modules of its own layer or below, with no circle between two modules
//! of one layer. This test reads the sources and fails on an import that points upward, so the
//! shape stays as it is drawn. Test code (`#[cfg(test)]` modules) may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of `crates/lago/src` and its layer, from the bottom up.
const LAYERS: &[(&str, u32)] = &[
    // Pure helpers everything may use: progress events, output formats, typo hints.
    ("report", 0),
    ("output", 0),
    ("suggest", 0),
    // The host: processes, programs, files, locks, QMP, the SSH client, qemu-img, downloads.
    ("host", 1),
    // Configuration: lago.conf, LAGO_* variables, flags.
    ("config", 2),
    // The init file: read and checked.
    ("spec", 3),
    // Spec to plan: pure.
    ("plan", 4),
    // On disk: the prefix (layout, records, state, leases, workdir), the template repositories
    // and store.
    ("prefix", 5),
    ("template", 5),
    // What runs VMs and networks.
    ("provider", 6),
    // An environment: its VMs and networks, started, stopped, waited for.
    ("env", 7),
    // Operations on environments, and the host's check.
    ("ops", 8),
    ("doctor", 8),
    // The front ends' side: sessions, the SDK's entry points, how errors reach a person.
    ("session", 9),
    ("sdk", 9),
    ("diagnose", 9),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`host` for `src/host/ssh.rs`, `config` for
/// `src/config.rs`); `None` for `lib.rs`.
fn top_module(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel.components().next()?.as_os_str().to_string_lossy().into_owned();
    let name = first.trim_end_matches(".rs").to_owned();
    (name != "lib").then_some(name)
}

/// The code of a file without its test module, comments and string literals' doc lines.
fn code_of(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") && lines.peek().is_some_and(|n| n.trim_start().starts_with("mod ")) {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// The top-level modules a piece of code names through `crate::`.
fn references(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            found.insert(name);
        }
        // `use crate::{a, b}`: every name of the list.
        if let Some(braced) = rest.strip_prefix('{') {
            let list: String = braced.chars().take_while(|c| *c != '}').collect();
            for item in list.split(',') {
                let head: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !head.is_empty() {
                    found.insert(head);
                }
            }
        }
    }
    found
}

#[test]
fn every_import_points_down_or_sideways_without_a_circle() {
    let layers: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let mut problems = Vec::new();
    let mut sideways: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        // A test module in a file of its own (`#[cfg(test)] mod tests;`).
        if file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let Some(module) = top_module(file) else { continue };
        let Some(&layer) = layers.get(module.as_str()) else {
            problems.push(format!("{}: module `{module}` has no layer in LAYERS (place it)", file.display()));
            continue;
        };
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        for target in references(&code) {
            if target == module {
                continue;
            }
            match layers.get(target.as_str()) {
                None => problems.push(format!("{}: `crate::{target}` is not a module of LAYERS", file.display())),
                Some(&t) if t > layer => problems.push(format!(
                    "{}: `{module}` (layer {layer}) imports `{target}` (layer {t}), which stands above it",
                    file.display()
                )),
                Some(&t) if t == layer => {
                    sideways.entry(module.clone()).or_default().insert(target);
                }
                Some(_) => {}
            }
        }
    }
    for (a, targets) in &sideways {
        for b in targets {
            if sideways.get(b).is_some_and(|back| back.contains(a)) && a < b {
                problems.push(format!("`{a}` and `{b}` (one layer) import each other"));
            }
        }
    }
    assert!(problems.is_empty(), "the map of docs/design.md is broken:\n{}", problems.join("\n"));
}

#[test]
fn the_check_sees_what_it_checks() {
    let code = code_of(
        "//! docs name crate::env\nuse crate::host::process;\nuse crate::{config, spec::Spec};\nfn f() { crate::plan::plan(); x::crate::no(); }\n#[cfg(test)]\nmod tests { use crate::sdk; }\n",
    );
    let found: Vec<String> = references(&code).into_iter().collect();
    assert_eq!(found, ["config", "host", "plan", "spec"]);
    assert_eq!(top_module(&src().join("host/ssh.rs")).as_deref(), Some("host"));
    assert_eq!(top_module(&src().join("lib.rs")), None);
}
