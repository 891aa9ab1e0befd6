//! Configuration precedence, seen through `lago generate-config`.

use crate::common::TestEnv;

fn value(ini: &str, section: &str, key: &str) -> Option<String> {
    let mut in_section = false;
    for line in ini.lines() {
        if line.starts_with('[') {
            in_section = line == format!("[{section}]");
        } else if in_section && let Some(v) = line.strip_prefix(&format!("{key} = ")) {
            return Some(v.to_owned());
        }
    }
    None
}

#[test]
fn defaults_files_env_and_flags_in_order() {
    let mut env = TestEnv::new();
    // Defaults (the test environment sets the store and repo, so drop them here).
    env.env.retain(|(k, _)| !k.starts_with("LAGO"));
    let ini = env.lago(&["generate-config"]).ok().stdout;
    assert_eq!(value(&ini, "lago", "ssh_user").as_deref(), Some("root"));
    assert_eq!(value(&ini, "lago", "default_vm_provider").as_deref(), Some("local-qemu"));
    assert!(value(&ini, "init", "template_store").is_some());

    // XDG_CONFIG_DIRS file < XDG_CONFIG_HOME file < environment < flags.
    let dirs = env.root().join("xdg-dirs/lago");
    std::fs::create_dir_all(&dirs).unwrap();
    std::fs::write(
        dirs.join("lago.conf"),
        "[lago]\nssh_user = from-dirs\nssh_tries = 7\nloglevel = debug\n[init]\ntemplate_store = /from/dirs\n",
    )
    .unwrap();
    let home = env.root().join("xdg-config/lago");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("lago.conf"), "[lago]\nssh_user = from-home\nssh_timeout = 3\n").unwrap();
    env.env.push(("LAGO_SSH_TIMEOUT".into(), "4".into()));
    env.env.push(("LAGO__INIT__TEMPLATE_STORE".into(), "/from/env".into()));
    env.env.push(("LAGO_SSH_PASSWORD".into(), String::new()));
    let run = env.lago(&["--ssh-user", "from-flag", "generate-config"]).ok();
    let ini = run.stdout;
    assert_eq!(value(&ini, "lago", "ssh_user").as_deref(), Some("from-flag"));
    assert_eq!(value(&ini, "lago", "ssh_tries").as_deref(), Some("7"));
    assert_eq!(value(&ini, "lago", "ssh_timeout").as_deref(), Some("4"));
    assert_eq!(value(&ini, "lago", "loglevel").as_deref(), Some("debug"));
    assert_eq!(value(&ini, "init", "template_store").as_deref(), Some("/from/env"));
    assert_eq!(value(&ini, "lago", "ssh_password").as_deref(), Some("123456"));
    assert!(
        run.stderr.contains("empty environment variable definition:LAGO_SSH_PASSWORD, ignoring."),
        "{}",
        run.stderr
    );
}

#[test]
fn generate_config_output() {
    let env = TestEnv::new();
    let ini = env.lago(&["generate-config"]).ok().stdout;
    let (header, body) = ini.split_once('\n').unwrap();
    assert!(header.starts_with("# Lago configuration file, generated: "));
    insta::assert_snapshot!("generate_config", body);
    let verbose = env.lago(&["generate-config", "--verbose"]).ok().stdout;
    assert!(verbose.contains("# path to the workdir to use.\n#workdir_path = None\n"), "{verbose}");
}

#[test]
fn bad_config_file_names_the_file() {
    let env = TestEnv::new();
    let home = env.root().join("xdg-config/lago");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("lago.conf"), "[lago\nssh_user = x\n").unwrap();
    insta::assert_snapshot!("bad_config_file", env.lago(&["generate-config"]).render());
}
