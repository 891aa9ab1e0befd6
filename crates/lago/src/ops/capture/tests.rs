use std::path::{Path, PathBuf};

use super::*;
use crate::host::process::{FakeRunner, Output};
use crate::ops::init::Host;

#[test]
fn the_init_file_is_read_from_the_prefix_log() {
    let log = "2026-12-07 INFO lago: init of /w/.lago/default from /home/u/LagoInitFile (staging in /w/.lago/.default.init-1)\n";
    assert_eq!(init_file_of(log), Some(PathBuf::from("/home/u/LagoInitFile")));
    assert_eq!(init_file_of("INFO lago: start\n"), None);
}

#[test]
fn sizes_read_as_people_read_them() {
    assert_eq!(human_size(512), "512 B");
    assert_eq!(human_size(1536), "1.5 KiB");
    assert_eq!(human_size(19_713_229), "18.8 MiB");
    assert_eq!(human_size(3 << 30), "3.00 GiB");
}

/// A store image `local:tiny:v1` with its hash, and a chain of `depth` overlays on it; returns
/// the store image and the top of the chain.
fn chain(dir: &Path, depth: usize) -> (PathBuf, PathBuf) {
    let store = dir.join("local:tiny:v1");
    crate::host::images::write_qcow2_header(&store, "");
    std::fs::write(crate::host::pathio::beside(&store, "hash"), "ABCDEF  local:tiny:v1\n").unwrap();
    std::fs::write(crate::host::pathio::beside(&store, "vmlinux"), "kernel").unwrap();
    std::fs::write(crate::host::pathio::beside(&store, "initrd"), "initrd").unwrap();
    let mut below = store.clone();
    for n in 0..depth {
        let layer = dir.join(format!("layer{n}.qcow2"));
        crate::host::images::write_qcow2_header(&layer, &below.display().to_string());
        below = layer;
    }
    (store, below)
}

fn recording() -> FakeRunner {
    FakeRunner::new(|_| Ok(Output::default()))
}

#[test]
fn a_disk_names_the_template_it_is_layered_on_by_store_name_and_hash() {
    let dir = tempfile::tempdir().unwrap();
    let (store, top) = chain(dir.path(), 2);
    let (found, t, depth) = store_template(&top).unwrap();
    assert_eq!((found, depth), (store, 2));
    assert_eq!(t, TemplateRef { store_name: "local:tiny:v1".into(), hash: "abcdef".into() });
    let bare = dir.path().join("bare.qcow2");
    crate::host::images::write_qcow2_header(&bare, "");
    assert_eq!(store_template(&bare), None);
}

#[test]
fn a_layer_right_on_its_template_goes_as_it_is_deeper_ones_become_one_layer_standalone_ones_flat() {
    let dir = tempfile::tempdir().unwrap();
    let (store, top) = chain(dir.path(), 1);
    let runner = recording();
    let images = Images::new(&runner);
    let dst = dir.path().join("staged1.qcow2");
    let (t, boot) = stage_disk(&top, &dst, false, &images).unwrap();
    assert_eq!(t.unwrap().store_name, "local:tiny:v1");
    assert!(boot.is_empty());
    assert_eq!(std::fs::read_link(&dst).unwrap(), top);
    assert_eq!(runner.command_lines(), "", "no qemu-img for a layer right on its template");

    let deeper = tempfile::tempdir().unwrap();
    let (deep_store, deep) = chain(deeper.path(), 3);
    let runner = recording();
    let (t, _) = stage_disk(&deep, &dir.path().join("staged2.qcow2"), false, &Images::new(&runner)).unwrap();
    assert!(t.is_some());
    let lines = runner.command_lines();
    assert!(lines.contains("qemu-img convert -q -O qcow2 -B"), "{lines}");
    assert!(lines.contains(&deep_store.display().to_string()), "{lines}");

    let runner = recording();
    let (t, boot) = stage_disk(&top, &dir.path().join("staged3.qcow2"), true, &Images::new(&runner)).unwrap();
    assert_eq!(t, None);
    assert_eq!(boot, [crate::host::pathio::beside(&store, "vmlinux"), crate::host::pathio::beside(&store, "initrd")]);
    let lines = runner.command_lines();
    assert!(lines.contains("qemu-img convert -q -O qcow2 ") && !lines.contains("-B"), "{lines}");
}

#[test]
fn a_capture_refuses_bad_input_before_it_pauses_anything() {
    let dir = tempfile::tempdir().unwrap();
    let fake = crate::env::fake::Fake::default();
    let env = crate::env::fake::env(dir.path(), fake);
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("taken.lago-capture"), "").unwrap();
    let runner = recording();
    let capture = |name: &str, output: &Path, init: Option<&str>| {
        let opts = CaptureOptions {
            name: name.into(),
            output: output.to_owned(),
            init_file: init.map(|i| dir.path().join(i)),
            ..CaptureOptions::default()
        };
        env.capture(&opts, &runner, &crate::report::NoopReporter).unwrap_err().to_string()
    };
    assert!(capture("", &out, None).starts_with("Invalid capture name \"\""));
    assert!(capture("a/b", &out, None).starts_with("Invalid capture name"));
    assert!(capture("c", &dir.path().join("nowhere"), None).ends_with("nowhere: not a directory"));
    assert!(capture("taken", &out, None).contains("taken.lago-capture exists already"));
    assert!(capture("c", &out, Some("missing.yaml")).contains("missing.yaml: no such file"));
    assert_eq!(runner.command_lines(), "", "nothing ran");
    // VMs that do not run: the freeze refuses them, naming the VM.
    let e = capture("c", &out, None);
    assert!(e.starts_with("VM vm00 cannot be captured") && e.contains("it does not run"), "{e}");
    assert!(!out.join("c.lago-capture").exists());
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

/// Replay options on `dir` (a store there, no repository).
fn replay_opts(dir: &Path, artefact: &Path, workdir: &Path) -> ReplayOptions {
    let config = crate::config::Config::load(&crate::config::Sources {
        files: Vec::new(),
        env: vec![("LAGO__INIT__TEMPLATE_STORE".into(), dir.join("store").display().to_string())],
        data_dir: dir.join("data"),
        state_dir: dir.join("state"),
    })
    .unwrap();
    let session = crate::session::Session::with_config(config, dir, crate::session::Location::default());
    let env = crate::env::fake::env(dir, crate::env::fake::Fake::default());
    ReplayOptions {
        artefact: artefact.to_owned(),
        workdir: workdir.to_owned(),
        templates: session.init_options(&crate::session::InitRequest::default()).unwrap(),
        env: crate::env::EnvOptions { memory_base: Ok(dir.join("shm")), ..env.options.clone() },
    }
}

/// A runner whose `tar` gives `manifest` and whose qemu is 10.0.2 (`pc-i440fx-10.0`).
fn host_with(manifest: &'static str) -> FakeRunner {
    FakeRunner::new(move |inv| {
        let text = match inv.program.as_str() {
            "tar" => manifest.to_owned(),
            _ if inv.args.iter().any(|a| a == "--version") => "QEMU emulator version 10.0.2\n".to_owned(),
            _ => "pc-i440fx-10.0       Standard PC (i440FX + PIIX, 1996) (default)\n".to_owned(),
        };
        Ok(Output { stdout: text.into_bytes(), stderr: Vec::new() })
    })
}

#[test]
fn a_replay_refuses_what_it_cannot_bring_back_before_it_makes_anything() {
    let dir = tempfile::tempdir().unwrap();
    let artefact = dir.path().join("a.lago-capture");
    std::fs::write(&artefact, "x").unwrap();
    let fetcher = crate::host::fetch::HttpFetcher::default();
    let replay_with = |runner: &FakeRunner, artefact: &Path, workdir: &Path| {
        let host = Host { runner, fetcher: &fetcher, reporter: &crate::report::NoopReporter };
        replay(&replay_opts(dir.path(), artefact, workdir), &host).err().unwrap().to_string()
    };
    let wd = dir.path().join("wd");
    let fine = host_with(
        r#"{"format": 1, "lago": "0", "name": "a", "prefix": "default", "created": "now",
            "qemu": {"version": "9.2.0", "machine": "pc-i440fx-9.2"}, "standalone": false, "pause_spread_ms": 0,
            "vms": {"vm01": {"memory_mib": 256, "accel": "tcg", "disks": {"0": {"file": "disks/vm01-vda.qcow2",
              "template": {"store_name": "local:tiny:v1", "hash": "ab"}}}}}}"#,
    );
    assert!(replay_with(&fine, &dir.path().join("absent"), &wd).ends_with("absent: no such artefact"));
    std::fs::create_dir_all(dir.path().join("busy")).unwrap();
    std::fs::write(dir.path().join("busy/f"), "").unwrap();
    assert!(replay_with(&fine, &artefact, &dir.path().join("busy")).contains("busy exists and is not empty"));
    // Another qemu: the one the capture needs is named.
    let e = replay_with(&fine, &artefact, &wd);
    assert_eq!(
        e,
        "The capture needs qemu 9.2.0 (machine type pc-i440fx-9.2, which its VMs' state was saved under); this host's qemu-system-x86_64 is 10.0.2 (machine type pc-i440fx-10.0)"
    );
    // The same qemu, a template in neither the store nor a repository: named.
    let same = host_with(
        r#"{"format": 1, "lago": "0", "name": "a", "prefix": "default", "created": "now",
            "qemu": {"version": "10.0.2", "machine": "pc-i440fx-10.0"}, "standalone": false, "pause_spread_ms": 0,
            "vms": {"vm01": {"memory_mib": 256, "accel": "tcg", "disks": {"0": {"file": "disks/vm01-vda.qcow2",
              "template": {"store_name": "local:tiny:v1", "hash": "ab"}}}}}}"#,
    );
    let e = replay_with(&same, &artefact, &wd);
    assert!(e.starts_with("Templates missing: local:tiny:v1 (in neither the store"), "{e}");
    let corrupt = host_with(r#"{"format": 1, "vms": 3}"#);
    assert!(
        replay_with(&corrupt, &artefact, &wd)
            .contains("a.lago-capture is not a capture lago can replay: its capture.json is not lago's")
    );
    // Nothing was made: no workdir, no memory directory.
    assert!(!wd.exists());
    assert!(!dir.path().join("shm").exists());
}
