//! The provider against the fake cloud (`fake.rs`): authentication, the checks before anything
//! is created, the order of creation, rollback and removal by tag.

use std::path::Path;

use serde_json::{Value, json};

use super::fake::{FakeCloud, PASSWORD};
use super::*;
use crate::provider::{LaunchContext, NetUse};

const UUID: &str = "0123456789abcdef0123456789abcdef";

fn options() -> OpenstackOptions {
    OpenstackOptions { network: Some("lago-mgmt".into()), ..OpenstackOptions::default() }
}

/// A prefix with two openstack VMs (vm0 pinned to cn1, vm1 with 512 MiB) on nets `a` and `b`.
fn prefix(dir: &Path, uuid: &str) -> (Vec<VmRecord>, Vec<NetUse>) {
    std::fs::create_dir_all(dir.join("virt")).unwrap();
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::write(dir.join("uuid"), uuid).unwrap();
    std::fs::write(dir.join("tpl.raw"), vec![0u8; 4096]).unwrap();
    std::fs::write(dir.join("virt/env"), r#"{"nets": ["a", "b"], "vms": ["vm0", "vm1"]}"#).unwrap();
    let net = |n: &str, o: u8| json!({"name": n, "type": "nat", "gw": format!("192.168.{o}.1")});
    let disk = json!([{"path": dir.join("tpl.raw").display().to_string(), "dev": "vda", "format": "raw"}]);
    let vms = [
        json!({"name": "vm0", "memory": 256, "vcpu": 1, "mgmt_net": "a", "vm-provider": "openstack", "disks": disk,
            "metadata": {"openstack-host": "cn1"}, "nics": [{"net": "a", "ip": "192.168.200.2"}, {"net": "b", "ip": "192.168.201.2"}]}),
        json!({"name": "vm1", "memory": 512, "vcpu": 1, "mgmt_net": "a", "vm-provider": "openstack", "disks": disk,
            "nics": [{"net": "a", "ip": "192.168.200.3"}]}),
    ];
    for (n, o) in [("a", 200), ("b", 201)] {
        std::fs::write(dir.join(format!("virt/net-{n}")), net(n, o).to_string()).unwrap();
    }
    let mut records = Vec::new();
    for v in vms {
        std::fs::write(dir.join(format!("virt/vm-{}", v["name"].as_str().unwrap())), v.to_string()).unwrap();
        records.push(serde_json::from_value::<VmRecord>(v).unwrap());
    }
    let uses = [("a", 200u8), ("b", 201)]
        .iter()
        .map(|(n, o)| NetUse {
            name: (*n).into(),
            spec: net(n, *o).as_object().unwrap().clone(),
            vms: records.iter().filter(|v| v.nics.iter().any(|x| x.net == *n)).cloned().collect(),
        })
        .collect();
    (records, uses)
}

fn provider(cloud: &FakeCloud, options: &OpenstackOptions) -> OpenstackProvider {
    OpenstackProvider::with_credentials(&cloud.credentials(PASSWORD), options).unwrap()
}

#[test]
fn wrong_credentials_name_the_cloud_the_user_and_keystone() {
    let cloud = FakeCloud::start();
    let e = OpenstackProvider::with_credentials(&cloud.credentials("wrong"), &options()).err().unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "Keystone at {} refused user lago (cloud fake of clouds.yaml): The request you have made requires authentication.",
            cloud.auth_url
        )
    );
    assert!(e.is_user_error());
}

#[test]
fn the_smallest_flavor_that_fits_or_the_one_named() {
    let cloud = FakeCloud::start();
    let dir = tempfile::tempdir().unwrap();
    let (vms, _) = prefix(dir.path(), UUID);
    let p = provider(&cloud, &options());
    let f = resources::choose_flavor(&p.session, &options(), &vms[1], 3).unwrap();
    assert_eq!(f["name"], "lago.512.1");
    let f = resources::choose_flavor(&p.session, &options(), &vms[0], 1).unwrap();
    assert_eq!(f["name"], "lago.256.1");
    let named = OpenstackOptions { flavor: Some("lago.1024.2".into()), ..options() };
    assert_eq!(resources::choose_flavor(&p.session, &named, &vms[0], 1).unwrap()["id"], "f1024");
    let unknown = OpenstackOptions { flavor: Some("m1.huge".into()), ..options() };
    let e = resources::choose_flavor(&p.session, &unknown, &vms[0], 1).unwrap_err();
    assert_eq!(
        e.to_string(),
        "[openstack] flavor = m1.huge: the cloud has no such flavor (it has: lago.1024.2, lago.256.1, lago.512.1)"
    );
    let e = resources::choose_flavor(&p.session, &options(), &vms[0], 20).unwrap_err();
    assert!(e.to_string().starts_with("VM vm0: no flavor of the cloud has 256 MiB, 1 vCPUs and a 20 GB disk"), "{e}");
}

#[test]
fn a_quota_too_small_fails_before_anything_is_created() {
    let cloud = FakeCloud::start();
    cloud.state.lock().unwrap().compute_quota["cores"] = json!({"limit": 4, "in_use": 3, "reserved": 0});
    let dir = tempfile::tempdir().unwrap();
    let (_, nets) = prefix(dir.path(), UUID);
    let p = provider(&cloud, &options());
    let e = p.start_nets(&LaunchContext::for_test(dir.path()), &nets).unwrap_err();
    assert_eq!(
        e.to_string(),
        "The project's quota is too small for this environment: cores: 2 needed, 1 free (limit 4, 3 in use)"
    );
    assert_eq!(cloud.writes(), vec!["POST /identity/v3/auth/tokens"]);
}

#[test]
fn an_unknown_flavor_or_management_network_fails_before_anything_is_created() {
    let cloud = FakeCloud::start();
    let dir = tempfile::tempdir().unwrap();
    let (_, nets) = prefix(dir.path(), UUID);
    let ctx = LaunchContext::for_test(dir.path());
    let p = provider(&cloud, &OpenstackOptions { flavor: Some("nope".into()), ..options() });
    assert!(
        matches!(p.start_nets(&ctx, &nets), Err(ProviderError::Openstack(e)) if matches!(*e, OpenstackError::UnknownFlavor { .. }))
    );
    let p = provider(&cloud, &OpenstackOptions { network: Some("elsewhere".into()), ..options() });
    let e = p.start_nets(&ctx, &nets).unwrap_err();
    assert_eq!(
        e.to_string(),
        "[openstack] network = elsewhere: the cloud has no such network (`openstack network list` shows them)"
    );
    assert!(cloud.writes().iter().all(|w| w == "POST /identity/v3/auth/tokens"), "{:?}", cloud.writes());
}

fn start_all(p: &OpenstackProvider, dir: &Path, vms: &[VmRecord], nets: &[NetUse]) {
    let ctx = LaunchContext::for_test(dir);
    p.start_nets(&ctx, nets).unwrap();
    for vm in vms {
        p.start(vm, &ctx).unwrap();
    }
}

#[test]
fn start_uploads_the_template_once_then_makes_networks_ports_and_servers() {
    let cloud = FakeCloud::start();
    let dir = tempfile::tempdir().unwrap();
    let (vms, nets) = prefix(dir.path(), UUID);
    let p = provider(&cloud, &options());
    start_all(&p, dir.path(), &vms, &nets);
    let writes: Vec<String> = cloud.writes().into_iter().filter(|w| !w.contains("/tags")).collect();
    let short: Vec<&str> = writes.iter().map(|w| w.rsplit_once(' ').map_or("", |(m, _)| m)).collect();
    assert_eq!(short.len(), writes.len());
    let paths: Vec<String> = writes
        .iter()
        .map(|w| w.replace("/network/v2.0", "").replace("/compute/v2.1", "").replace("/image/v2", ""))
        .collect();
    let image = cloud.state.lock().unwrap().all("images")[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        paths,
        vec![
            "POST /identity/v3/auth/tokens".to_owned(),
            "POST /images".into(),
            format!("PUT /images/{image}/file"),
            "POST /networks".into(),
            "POST /subnets".into(),
            "POST /networks".into(),
            "POST /subnets".into(),
            "POST /ports".into(),
            "POST /ports".into(),
            "POST /ports".into(),
            "POST /servers".into(),
            "POST /ports".into(),
            "POST /ports".into(),
            "POST /servers".into(),
        ]
    );
    let s = cloud.state.lock().unwrap();
    let subnet = &s.all("subnets")[1];
    assert_eq!(
        (subnet["cidr"].as_str(), subnet["gateway_ip"].as_str(), &subnet["enable_dhcp"]),
        (Some("192.168.200.0/24"), Some("192.168.200.1"), &json!(false))
    );
    let ports = s.all("ports");
    assert!(ports.iter().all(|p| p["port_security_enabled"] == false && p["tags"] == json!(["lago", env_tag(UUID)])));
    assert_eq!(ports[0]["fixed_ips"][0]["ip_address"], "192.168.200.2");
    assert_eq!(ports[0]["mac_address"], "54:52:c0:a8:c8:02");
    let servers = s.all("servers");
    assert_eq!(servers[0]["availability_zone"], "nova:cn1");
    assert_eq!(servers[1]["availability_zone"], Value::Null);
    assert_eq!((servers[0]["flavorRef"].as_str(), servers[1]["flavorRef"].as_str()), (Some("f256"), Some("f512")));
    assert_eq!(servers[0]["config_drive"], true);
    assert_eq!(servers[0]["imageRef"], image.as_str());
    assert_eq!(servers[0]["networks"].as_array().unwrap().len(), 3);
    let user_data = servers[0]["user_data"].as_str().unwrap();
    assert!(user_data.starts_with(&userdata::base64(b"070701")[..6]));
    drop(s);
    // The target is the management port's address.
    let t = p.target(dir.path(), &vms[0], None);
    assert_eq!((t.host.as_str(), t.port), ("10.20.0.12", 22));
    assert_eq!(p.running(dir.path(), &vms), vec!["vm0", "vm1"]);
    // A second environment from the same file reuses the image and makes its own resources.
    let dir2 = tempfile::tempdir().unwrap();
    let (vms2, nets2) = prefix(dir2.path(), "fedcba9876543210fedcba9876543210");
    start_all(&p, dir2.path(), &vms2, &nets2);
    let s = cloud.state.lock().unwrap();
    assert_eq!(s.all("images").len(), 1);
    assert_eq!(s.all("servers").len(), 4);
    assert_eq!(s.all("networks").len(), 5);
}

#[test]
fn a_server_that_cannot_be_created_takes_its_ports_with_it() {
    let cloud = FakeCloud::start();
    let dir = tempfile::tempdir().unwrap();
    let (vms, nets) = prefix(dir.path(), UUID);
    let p = provider(&cloud, &options());
    let ctx = LaunchContext::for_test(dir.path());
    p.start_nets(&ctx, &nets).unwrap();
    cloud.state.lock().unwrap().fail_server = Some("No valid host was found.".into());
    let e = p.start(&vms[0], &ctx).unwrap_err().to_string();
    assert!(
        e.starts_with("POST http://127.0.0.1:") && e.ends_with("/compute/v2.1/servers: 400 No valid host was found."),
        "{e}"
    );
    assert!(cloud.state.lock().unwrap().all("ports").is_empty());
}

#[test]
fn stop_start_snapshot_revert_and_cut() {
    let cloud = FakeCloud::start();
    let dir = tempfile::tempdir().unwrap();
    let (vms, nets) = prefix(dir.path(), UUID);
    let p = provider(&cloud, &options());
    start_all(&p, dir.path(), &vms, &nets);
    p.kill(dir.path(), &vms[0]);
    assert_eq!(p.state(dir.path(), &vms[0]), VmState::Down);
    p.start(&vms[0], &LaunchContext::for_test(dir.path())).unwrap();
    assert_eq!(p.state(dir.path(), &vms[0]), VmState::Running);
    p.live_snapshot(dir.path(), &vms[0], SnapshotOp::Save, "s1", &[]).unwrap();
    let image = resources::snapshot_image(&p.session, UUID, "vm0", "s1").unwrap().unwrap();
    p.live_snapshot(dir.path(), &vms[0], SnapshotOp::Load, "s1", &[]).unwrap();
    assert_eq!(cloud.state.lock().unwrap().all("servers")[0]["imageRef"], image.as_str());
    p.set_link(dir.path(), &vms[0], 1, false).unwrap();
    let ports = cloud.state.lock().unwrap().all("ports");
    assert_eq!(ports.iter().find(|x| x["name"] == "lago-01234567-vm0-eth1").unwrap()["admin_state_up"], false);
}

#[test]
fn pause_and_resume_act_only_on_a_server_in_the_state_they_leave() {
    let cloud = FakeCloud::start();
    let dir = tempfile::tempdir().unwrap();
    let (vms, nets) = prefix(dir.path(), UUID);
    let p = provider(&cloud, &options());
    start_all(&p, dir.path(), &vms, &nets);
    let status = || cloud.state.lock().unwrap().all("servers")[0]["status"].clone();
    p.resume(dir.path(), &vms[0]).unwrap();
    assert_eq!(status(), "ACTIVE");
    p.pause(dir.path(), &vms[0]).unwrap();
    assert_eq!(status(), "PAUSED");
    p.pause(dir.path(), &vms[0]).unwrap();
    assert_eq!(status(), "PAUSED");
    p.resume(dir.path(), &vms[0]).unwrap();
    assert_eq!(status(), "ACTIVE");
}

#[test]
fn destroy_removes_exactly_what_the_environment_made() {
    let cloud = FakeCloud::start();
    let dir = tempfile::tempdir().unwrap();
    let (vms, nets) = prefix(dir.path(), UUID);
    let dir2 = tempfile::tempdir().unwrap();
    let (vms2, nets2) = prefix(dir2.path(), "fedcba9876543210fedcba9876543210");
    let p = provider(&cloud, &options());
    start_all(&p, dir.path(), &vms, &nets);
    start_all(&p, dir2.path(), &vms2, &nets2);
    p.live_snapshot(dir.path(), &vms[0], SnapshotOp::Save, "s1", &[]).unwrap();
    // A port left untagged by a command killed between its creation and its tag.
    let net = resources::env_networks(&p.session, UUID).unwrap()["a"].0.clone();
    p.session
        .post("network", "/ports", &json!({"port": {"network_id": net, "name": "x", "description": env_tag(UUID)}}))
        .unwrap();
    assert_eq!(resources::leftovers(&p.session, UUID).unwrap().len(), 2 + 6 + 2 + 2 + 1);
    p.remove_all(dir.path()).unwrap();
    assert!(resources::leftovers(&p.session, UUID).unwrap().is_empty());
    let s = cloud.state.lock().unwrap();
    // The other environment's, the management network and the template stay.
    assert_eq!(s.all("servers").len(), 2);
    assert_eq!(s.all("ports").len(), 5);
    assert_eq!(s.all("networks").len(), 3);
    assert_eq!(s.all("images").len(), 1);
}
