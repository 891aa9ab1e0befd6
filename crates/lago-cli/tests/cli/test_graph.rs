//! The picture of an environment: `lago status -f dot` (Graphviz DOT, lago's own format) and
//! `lago graph` (rendered by Graphviz's `dot`), on the demo's environment (`demo/LagoInitFile`).

use crate::common::{Stand, TestEnv};

const DEMO: &str = include_str!("../../../../demo/LagoInitFile");

/// The demo's environment, initialized, with a cut link, a partition and a degraded link made by
/// the verbs themselves while it is stopped (they are in force from its next start).
fn faulted_demo() -> (TestEnv, std::path::PathBuf) {
    let env = TestEnv::initialized(DEMO);
    env.lago(&["net", "cut", "db", "back"]).ok();
    env.lago(&["net", "partition", "front", "web", "app,db"]).ok();
    env.lago(&["net", "degrade", "app", "back", "--delay", "200", "--loss", "5"]).ok();
    let prefix = env.work().join(".lago/default");
    (env, prefix)
}

#[test]
fn the_picture_shows_states_addresses_and_the_faults_in_force() {
    let (env, prefix) = faulted_demo();
    let original: Vec<String> =
        ["default", "flat", "json", "yaml"].iter().map(|f| env.lago(&["-f", f, "status"]).ok().stdout).collect();
    let mut stand = Stand::new();
    stand.run(&prefix, "web");
    stand.run(&prefix, "switch-front");
    // A port of web forwarded to the host (as `lago forward web 8080` records it).
    let state_file = prefix.join("run/state.json");
    let mut state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    state["forwards"] = serde_json::json!({"web": [{"guest": 8080, "host": 40123, "live": true}]});
    std::fs::write(&state_file, state.to_string()).unwrap();
    let picture = env.lago(&["status", "-f", "dot"]).ok().stdout;
    insta::assert_snapshot!("demo_dot", picture);
    // Global options go after the verb too, and `--extra` changes nothing of the picture.
    assert_eq!(env.lago(&["status", "--extra", "-f", "dot"]).ok().stdout, picture);
    drop(stand);
    // The original's formats say nothing of it (the running VM aside, as before).
    let stopped: Vec<String> =
        ["default", "flat", "json", "yaml"].iter().map(|f| env.lago(&["-f", f, "status"]).ok().stdout).collect();
    assert_eq!(stopped, original);
    assert!(!original[0].contains("partition") && !original[2].contains("cut"), "{}", original[2]);
}

#[test]
fn only_status_prints_dot() {
    let env = TestEnv::initialized(DEMO);
    for verb in [&["list"][..], &["snapshot", "--list"], &["template", "list"]] {
        let run = env.lago(&[&["-f", "dot"][..], verb].concat());
        assert_eq!(run.code, 2, "{verb:?}: {}", run.render());
        assert!(
            run.stderr.contains("Error: `-f dot` is the picture of an environment: only `lago status` prints it"),
            "{}",
            run.render()
        );
        assert!(run.stdout.is_empty(), "{}", run.render());
    }
}

#[test]
fn graph_renders_through_dot_and_says_how_to_get_it() {
    let (mut env, _prefix) = faulted_demo();
    // With Graphviz (the tests' set-up installs it: `lago doctor --fix --all`).
    let run = env.lago(&["graph"]).ok();
    assert!(
        run.stdout.contains("<svg") && run.stdout.contains("<title>vm:db&#45;&#45;net:back</title>"),
        "{}",
        run.stdout
    );
    std::fs::create_dir_all(env.work().join("pictures")).unwrap();
    env.lago(&["graph", "--output", "pictures/demo.svg"]).ok();
    let svg = std::fs::read_to_string(env.work().join("pictures/demo.svg")).unwrap();
    assert!(svg.contains("partitioned: web | app,db"), "{svg}");
    env.lago(&["graph", "-o", "demo.dot"]).ok();
    assert_eq!(
        env.normalize(&std::fs::read_to_string(env.work().join("demo.dot")).unwrap()),
        env.lago(&["status", "-f", "dot"]).ok().stdout
    );
    let run = env.lago(&["graph", "-o", "demo.gif"]);
    assert_eq!(run.code, 2, "{}", run.render());
    assert!(run.stderr.contains("Cannot render \"gif\" (formats: svg, png, pdf, dot)"), "{}", run.render());
    // Without Graphviz: exit code 2, and the way to get it.
    let empty = env.root().join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    for (k, v) in &mut env.env {
        if k == "PATH" {
            *v = empty.display().to_string();
        }
    }
    let run = env.lago(&["graph"]);
    assert_eq!(run.code, 2, "{}", run.render());
    insta::assert_snapshot!("graph_without_dot", run.render());
}
