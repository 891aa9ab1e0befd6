//! The reference pages of the documentation site (`docs/reference/cli.md`, `init-file.md`,
//! `configuration.md`) are generated from the code by `lago docgen`: this fails when a committed
//! page is out of date with it (a verb, an option, an init-file key or a configuration option
//! added or changed without regenerating them).

use crate::common::TestEnv;

fn reference() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/reference")
}

#[test]
fn the_reference_pages_are_up_to_date_with_the_code() {
    let env = TestEnv::new();
    let dir = reference().display().to_string();
    let run = env.lago(&["docgen", "--check", &dir]);
    assert_eq!(run.code, 0, "{}", run.render());
}

#[test]
fn a_stale_page_is_named_with_the_command_that_regenerates_it() {
    let env = TestEnv::new();
    let copy = env.work().join("reference");
    std::fs::create_dir_all(&copy).unwrap();
    for name in ["cli.md", "init-file.md", "configuration.md"] {
        std::fs::copy(reference().join(name), copy.join(name)).unwrap();
    }
    // An init-file key the reader knows, as if it had been added without regenerating the page.
    let page = std::fs::read_to_string(copy.join("init-file.md")).unwrap();
    let line = page.lines().find(|l| l.starts_with("| `boot_time_sec` |")).unwrap().to_owned();
    std::fs::write(copy.join("init-file.md"), page.replace(&format!("{line}\n"), "")).unwrap();
    let run = env.lago(&["docgen", "--check", &copy.display().to_string()]);
    assert_eq!(run.code, 1, "{}", run.render());
    assert!(run.stderr.contains("init-file.md"), "{}", run.render());
    assert!(!run.stderr.contains("cli.md"), "{}", run.render());
    assert!(
        run.stderr.contains("Hint: regenerate them: `cargo run -p lago-cli --bin lago -- docgen docs/reference`"),
        "{}",
        run.render()
    );
    // Regenerated, the copy is up to date.
    env.lago(&["docgen", &copy.display().to_string()]).ok();
    env.lago(&["docgen", "--check", &copy.display().to_string()]).ok();
}
