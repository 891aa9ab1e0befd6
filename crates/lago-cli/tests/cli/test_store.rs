//! The template store through `lago init`: an http repository served by the test, one download
//! for two concurrent inits, a changed template fetched again, a hash mismatch refused.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::{TestEnv, sha1_hex};

type Files = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A minimal HTTP/1.0 file server on 127.0.0.1 counting requests per path.
struct Server {
    port: u16,
    files: Files,
    hits: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicUsize>,
}

impl Server {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let files: Files = Arc::default();
        let hits: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicUsize::new(0));
        let (f, h, s) = (files.clone(), hits.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) != 0 {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let (f, h) = (f.clone(), h.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    loop {
                        let mut l = String::new();
                        if reader.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                            break;
                        }
                    }
                    h.lock().unwrap().push(path.clone());
                    let body = f.lock().unwrap().iter().find(|(p, _)| *p == path).map(|(_, b)| b.clone());
                    // Slow the image down so that two inits overlap.
                    if path.ends_with(".qcow2") {
                        std::thread::sleep(std::time::Duration::from_millis(300));
                    }
                    let _ = match body {
                        Some(b) => stream
                            .write_all(format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", b.len()).as_bytes())
                            .and_then(|_| stream.write_all(&b)),
                        None => stream.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
                    };
                });
            }
        });
        Self { port, files, hits, stop }
    }

    fn put(&self, path: &str, body: Vec<u8>) {
        let mut f = self.files.lock().unwrap();
        f.retain(|(p, _)| p != path);
        f.push((path.to_owned(), body));
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().iter().filter(|p| *p == path).count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(1, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn image(size: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("img");
    assert!(
        std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&p)
            .arg(size)
            .status()
            .unwrap()
            .success()
    );
    std::fs::read(p).unwrap()
}

fn http_env(server: &Server) -> TestEnv {
    let mut env = TestEnv::new();
    let repo = format!(
        r#"{{"name": "web", "sources": {{"site": {{"type": "http", "args": {{"baseurl": "http://127.0.0.1:{}/templates/"}}}}}},
            "templates": {{"tiny": {{"versions": {{"v1": {{"source": "site", "handle": "tiny.qcow2", "timestamp": 1}}}}}}}}}}"#,
        server.port
    );
    server.put("/repo.metadata", repo.into_bytes());
    env.env.retain(|(k, _)| k != "LAGO__INIT__TEMPLATE_REPO_PATH");
    env.env.push(("LAGO__INIT__TEMPLATE_REPO_PATH".into(), format!("http://127.0.0.1:{}/repo.metadata", server.port)));
    env
}

const INIT: &str = "domains:\n  vm01:\n    nics: [{net: n}]\n    disks: [{template_name: tiny, type: template, name: root}]\nnets:\n  n: {}\n";

#[test]
fn http_repository_two_concurrent_inits_download_once() {
    let server = Server::start();
    let env = http_env(&server);
    let img = image("32M");
    server.put("/templates/tiny.qcow2", img.clone());
    server.put("/templates/tiny.qcow2.hash", format!("{}  tiny.qcow2\n", sha1_hex(&img)).into_bytes());
    server.put("/templates/tiny.qcow2.metadata", br#"{"distro": "tiny"}"#.to_vec());
    env.write("a/LagoInitFile", INIT);
    env.write("b/LagoInitFile", INIT);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| env.lago_in(&env.work().join("a"), &["init"]));
        let b = s.spawn(|| env.lago_in(&env.work().join("b"), &["init"]));
        (a.join().unwrap(), b.join().unwrap())
    });
    a.ok();
    b.ok();
    assert_eq!(server.hits("/templates/tiny.qcow2"), 1, "{:?}", server.hits.lock().unwrap());
    // The original tries the `.xz` variant first.
    assert!(server.hits("/templates/tiny.qcow2.xz") >= 1);
    assert_eq!(std::fs::read(env.root().join("store/web:tiny:v1")).unwrap(), img);
    let status = env.lago_in(&env.work().join("a"), &["-f", "flat", "status"]).ok().stdout;
    assert!(status.contains("VMs/vm01/distro: tiny"), "{status}");
}

#[test]
fn changed_template_is_fetched_again_and_bad_hash_is_refused() {
    let server = Server::start();
    let env = http_env(&server);
    let one = image("16M");
    server.put("/templates/tiny.qcow2", one.clone());
    server.put("/templates/tiny.qcow2.hash", sha1_hex(&one).into_bytes());
    env.write("a/LagoInitFile", INIT);
    env.lago_in(&env.work().join("a"), &["init"]).ok();
    // A cached template whose repository hash is unchanged is not downloaded again.
    env.lago_in(&env.work().join("a"), &["-P", "again", "init"]).ok();
    assert_eq!(server.hits("/templates/tiny.qcow2"), 1);
    // The repository publishes a new image under the same version: fetched again.
    let two = image("24M");
    server.put("/templates/tiny.qcow2", two.clone());
    server.put("/templates/tiny.qcow2.hash", sha1_hex(&two).into_bytes());
    let run = env.lago_in(&env.work().join("a"), &["-P", "newer", "init"]).ok();
    assert!(run.stderr.contains("changed in its repository"), "{}", run.stderr);
    assert_eq!(std::fs::read(env.root().join("store/web:tiny:v1")).unwrap(), two);
    // A hash that does not match is refused, and the cached copy is kept as it was.
    server.put("/templates/tiny.qcow2", image("8M"));
    server.put("/templates/tiny.qcow2.hash", "1111111111111111111111111111111111111111".as_bytes().to_vec());
    let run = env.lago_in(&env.work().join("a"), &["-P", "bad", "init"]);
    assert_eq!(run.code, 2, "{}", run.render());
    assert!(
        run.stderr.contains("does not match the expected hash 1111111111111111111111111111111111111111"),
        "{}",
        run.stderr
    );
    assert!(!env.work().join("a/.lago/bad").exists());
    assert_eq!(std::fs::read(env.root().join("store/web:tiny:v1")).unwrap(), two);
    let leftovers: Vec<_> = std::fs::read_dir(env.root().join("store"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp") || n.ends_with(".xz"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn xz_compressed_template_over_http() {
    let server = Server::start();
    let env = http_env(&server);
    let img = image("16M");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("i"), &img).unwrap();
    assert!(std::process::Command::new("xz").arg(dir.path().join("i")).status().unwrap().success());
    server.put("/templates/tiny.qcow2.xz", std::fs::read(dir.path().join("i.xz")).unwrap());
    server.put("/templates/tiny.qcow2.xz.hash", sha1_hex(&img).into_bytes());
    env.write("a/LagoInitFile", INIT);
    env.lago_in(&env.work().join("a"), &["init"]).ok();
    assert_eq!(std::fs::read(env.root().join("store/web:tiny:v1")).unwrap(), img);
    assert_eq!(server.hits("/templates/tiny.qcow2"), 0);
}

#[test]
fn handle_escaping_its_root_is_refused() {
    let env = TestEnv::with_repo();
    let meta_path = env.root().join("repo/repo.metadata");
    let text = std::fs::read_to_string(&meta_path).unwrap().replace("\"tiny-v1.qcow2\"", "\"../../etc/passwd\"");
    std::fs::write(&meta_path, text).unwrap();
    env.write("LagoInitFile", INIT);
    let run = env.lago(&["init"]);
    assert_eq!(run.code, 2, "{}", run.render());
    assert!(run.stderr.contains("escapes its source root"), "{}", run.stderr);
}
