//! `vm-provider: openstack` against the fake cloud (an HTTP server of the library's, on
//! 127.0.0.1): each bad input (no cloud, a cloud not in clouds.yaml, wrong credentials, a flavor
//! the cloud lacks, a quota too small) is a clear error before anything is created in the
//! cloud, exit code 2 (the input) or 1 (the cloud's state).

use lago::provider::openstack::fake::{FakeCloud, PASSWORD};

use crate::common::TestEnv;

const INIT: &str = "domains:
  vm0:
    vm-provider: openstack
    memory: 256
    nics: [{net: lago}]
    disks: [{template_name: tiny, type: template, name: root}]
    metadata: {openstack-host: cn1}
  vm1:
    vm-provider: openstack
    memory: 512
    nics: [{net: lago}, {net: back}]
    disks: [{template_name: tiny, type: template, name: root}]
nets:
  lago: {management: true}
  back: {}
";

fn clouds_yaml(env: &TestEnv, cloud: &FakeCloud, password: &str) {
    let dir = env.root().join("home/.config/openstack");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("clouds.yaml"),
        format!(
            "clouds:\n  fake:\n    region_name: RegionOne\n    auth:\n      auth_url: {}\n      username: lago\n      password: {password}\n      project_name: lago\n",
            cloud.auth_url
        ),
    )
    .unwrap();
}

/// A case: its name, the variables set, the password of clouds.yaml, the exit code.
type Case = (&'static str, &'static [(&'static str, &'static str)], &'static str, i32);

#[test]
fn bad_cloud_input_is_refused_before_anything_is_created() {
    let env = TestEnv::with_repo();
    env.write("LagoInitFile", INIT);
    env.lago(&["init"]).ok();
    let mut report = String::new();
    let cases: &[Case] = &[
        ("no cloud configured", &[], PASSWORD, 2),
        ("a cloud not in clouds.yaml", &[("LAGO__OPENSTACK__CLOUD", "nope")], PASSWORD, 2),
        ("wrong credentials", &[("OS_CLOUD", "fake")], "wrong", 2),
        ("no management network set", &[("OS_CLOUD", "fake")], PASSWORD, 2),
        ("a flavor the cloud lacks", &[("OS_CLOUD", "fake"), ("LAGO__OPENSTACK__FLAVOR", "m1.huge")], PASSWORD, 2),
        ("a quota too small", &[("OS_CLOUD", "fake")], PASSWORD, 1),
    ];
    for (name, vars, password, code) in cases {
        let cloud = FakeCloud::start();
        clouds_yaml(&env, &cloud, password);
        if *name == "a quota too small" {
            cloud.state.lock().unwrap().compute_quota["ram"] =
                serde_json::json!({"limit": 1024, "in_use": 512, "reserved": 0});
        }
        let mut cmd = env.command(&env.work(), &["start"]);
        cmd.envs(vars.iter().copied());
        if *name != "no management network set" {
            cmd.env("LAGO__OPENSTACK__NETWORK", "lago-mgmt");
        }
        let out = cmd.output().unwrap();
        let stderr = env.normalize(&String::from_utf8_lossy(&out.stderr)).replace(&cloud.auth_url, "[KEYSTONE]");
        assert_eq!(out.status.code(), Some(*code), "{name}: {stderr}");
        let writes = cloud.writes();
        assert!(writes.iter().all(|w| w == "POST /identity/v3/auth/tokens"), "{name}: {writes:?}");
        report.push_str(&format!("### {name} (exit code {code})\n{stderr}\n"));
    }
    insta::assert_snapshot!("openstack_bad_input", report);
}
