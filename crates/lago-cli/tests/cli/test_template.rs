//! `lago template` without building anything: errors and listing of a repository.

use crate::common::TestEnv;

#[test]
fn unknown_template_and_missing_repository() {
    let env = TestEnv::new();
    insta::assert_snapshot!("template_build_unknown", env.lago(&["template", "build", "centos"]).render());
    insta::assert_snapshot!("template_list_missing_repo", env.lago(&["template", "list"]).render());
}

#[test]
fn list_shows_versions_sizes_and_cache_state() {
    let env = TestEnv::with_repo();
    env.add_template("tiny", "v2", 2, "{}");
    env.add_template("other", "1", 5, "{}");
    env.write("LagoInitFile", "domains:\n  vm01:\n    nics: [{net: n}]\n    disks: [{template_name: tiny, template_version: v1, type: template, name: root}]\nnets:\n  n: {}\n");
    env.lago(&["init"]).ok();
    insta::assert_snapshot!("template_list", env.lago(&["template", "list"]).ok().render());
    let json: serde_json::Value =
        serde_json::from_str(&env.lago(&["-f", "json", "template", "list"]).ok().stdout).unwrap();
    assert_eq!(json["templates"]["tiny"]["v1"]["cached"], true);
    assert_eq!(json["templates"]["tiny"]["v2"]["cached"], false);
}
