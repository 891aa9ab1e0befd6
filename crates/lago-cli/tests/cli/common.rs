//! `TestEnv`: a temporary directory with a clean environment, a local template repository and
//! helpers to run `lago` and normalise its output for snapshots.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use sha1::{Digest, Sha1};

pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout, stderr and the exit code in one block.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if !self.stdout.is_empty() {
            s.push_str(&format!("----- stdout -----\n{}", self.stdout));
        }
        if !self.stderr.is_empty() {
            s.push_str(&format!("----- stderr -----\n{}", self.stderr));
        }
        s.push_str(&format!("[exit code: {}]", self.code));
        s
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "lago failed:\n{}", self.render());
        self
    }
}

pub fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

impl TestEnv {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["home", "xdg-config", "xdg-dirs", "tmp", "work"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let p = |s: &str| root.join(s).display().to_string();
        let env = vec![
            ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
            ("HOME".into(), p("home")),
            ("TMPDIR".into(), p("tmp")),
            ("XDG_CONFIG_HOME".into(), p("xdg-config")),
            ("XDG_CONFIG_DIRS".into(), p("xdg-dirs")),
            ("XDG_DATA_HOME".into(), p("home/.local/share")),
            ("XDG_STATE_HOME".into(), p("home/.local/state")),
            ("LAGO__INIT__TEMPLATE_STORE".into(), p("store")),
            ("LAGO__INIT__TEMPLATE_REPO_PATH".into(), p("repo/repo.metadata")),
            ("LAGO_LEASE_DIR".into(), p("leases")),
            ("LAGO_HOST_LEG".into(), "off".into()),
            // The fake qemu maps no memory: no file of the tests' lands on the host's tmpfs.
            ("LAGO_MEMORY_DIR".into(), "off".into()),
            ("COLUMNS".into(), "100".into()),
        ];
        Self { dir, env }
    }

    /// A `TestEnv` whose repository holds template `tiny` version `v1` (a 64 MiB qcow2).
    pub fn with_repo() -> Self {
        let env = Self::new();
        env.add_template("tiny", "v1", 1, r#"{"distro": "tiny", "root-partition": "/dev/sda2"}"#);
        env
    }

    /// A `TestEnv` with template `tiny` and an initialized prefix `default` from `init_file`.
    pub fn initialized(init_file: &str) -> Self {
        let env = Self::with_repo();
        env.write("LagoInitFile", init_file);
        env.lago(&["init"]).ok();
        env
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn work(&self) -> PathBuf {
        self.root().join("work")
    }

    /// Adds a template version (a fresh qcow2 image) to the `file` repository.
    pub fn add_template(&self, name: &str, version: &str, timestamp: u64, metadata: &str) {
        let repo = self.root().join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        let handle = format!("{name}-{version}.qcow2");
        let img = repo.join(&handle);
        let st = Command::new("qemu-img").args(["create", "-q", "-f", "qcow2"]).arg(&img).arg("64M").status().unwrap();
        assert!(st.success());
        let data = std::fs::read(&img).unwrap();
        std::fs::write(repo.join(format!("{handle}.hash")), sha1_hex(&data)).unwrap();
        std::fs::write(repo.join(format!("{handle}.metadata")), metadata).unwrap();
        let meta_path = repo.join("repo.metadata");
        let mut meta: serde_json::Value = std::fs::read_to_string(&meta_path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_else(|| {
            serde_json::json!({"name": "local", "sources": {"local": {"type": "file", "args": {"root": repo.display().to_string()}}}, "templates": {}})
        });
        meta["templates"][name]["versions"][version] =
            serde_json::json!({"source": "local", "handle": handle, "timestamp": timestamp});
        std::fs::write(meta_path, serde_json::to_string_pretty(&meta).unwrap()).unwrap();
    }

    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.work().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    pub fn command(&self, cwd: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("lago").unwrap();
        cmd.env_clear().envs(self.env.iter().map(|(k, v)| (k, v))).current_dir(cwd).args(args);
        cmd
    }

    /// Runs lago in the work directory.
    pub fn lago(&self, args: &[&str]) -> Run {
        self.lago_in(&self.work(), args)
    }

    pub fn lago_in(&self, cwd: &Path, args: &[&str]) -> Run {
        let out = self.command(cwd, args).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: self.normalize(&String::from_utf8_lossy(&out.stdout)),
            stderr: self.normalize(&String::from_utf8_lossy(&out.stderr)),
        }
    }

    /// Replaces the temporary directory, UUIDs and durations with stable placeholders.
    pub fn normalize(&self, text: &str) -> String {
        let root = self.root().display().to_string();
        let mut out = text.replace(&root, "$TEST");
        // 32-hex-digit UUIDs
        let mut result = String::new();
        let mut rest = out.as_str();
        while !rest.is_empty() {
            let hex_run = rest.chars().take_while(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()).count();
            if (hex_run == 32 || hex_run == 40) && !rest[..hex_run].chars().all(|c| c.is_ascii_digit()) {
                result.push_str(if hex_run == 32 { "[UUID]" } else { "[SHA1]" });
                rest = &rest[hex_run..];
            } else {
                let step =
                    rest.chars().next().map(char::len_utf8).unwrap_or(1).max(if hex_run > 0 { hex_run } else { 1 });
                result.push_str(&rest[..step]);
                rest = &rest[step..];
            }
        }
        out = result;
        // pids in file names
        let mut result = String::new();
        let mut rest = out.as_str();
        while let Some(i) = rest.find("lago-init-") {
            let (head, tail) = rest.split_at(i);
            result.push_str(head);
            let name_end = tail.find(".log").unwrap_or(tail.len());
            let name = &tail[..name_end];
            match name.rfind('-') {
                Some(d) if name[d + 1..].chars().all(|c| c.is_ascii_digit()) && d + 1 < name.len() => {
                    result.push_str(&name[..d + 1]);
                    result.push_str("[PID]");
                }
                _ => result.push_str(name),
            }
            rest = &tail[name_end..];
        }
        result.push_str(rest);
        out = result;
        // (in 0:00:00) durations
        let mut result = String::new();
        for line in out.split_inclusive('\n') {
            match line.find("(in ") {
                Some(i) if line[i..].contains(')') => {
                    let end = i + line[i..].find(')').unwrap();
                    result.push_str(&line[..i]);
                    result.push_str("(in [TIME])");
                    result.push_str(&line[end + 1..]);
                }
                _ => result.push_str(line),
            }
        }
        result
    }

    /// Every file and link under `rel` (relative to the work directory), one per line.
    pub fn tree(&self, rel: &str) -> String {
        let base = self.work().join(rel);
        let mut lines = Vec::new();
        walk(&base, &base, &mut lines);
        lines.sort();
        lines.join("\n")
    }

    pub fn read(&self, rel: &str) -> String {
        self.normalize(&std::fs::read_to_string(self.work().join(rel)).unwrap())
    }
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(base).unwrap().display().to_string();
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            out.push(format!("{rel} -> {}", std::fs::read_link(&p).unwrap().display()));
        } else if ft.is_dir() {
            out.push(format!("{rel}/"));
            walk(base, &p, out);
        } else {
            let mode = std::os::unix::fs::PermissionsExt::mode(&e.metadata().unwrap().permissions()) & 0o777;
            out.push(format!("{rel} ({mode:o})"));
        }
    }
}

/// Processes standing in for the qemu of VMs and the switches of networks: what `lago status`
/// looks for is a process whose arguments name the pid file it is written in. Killed (their
/// process group) when dropped.
pub struct Stand {
    children: Vec<(PathBuf, std::process::Child)>,
}

impl Stand {
    pub fn new() -> Self {
        Self { children: Vec::new() }
    }

    /// A process that owns `run/<name>.pid` of `prefix` (`name`: a VM, or `switch-<net>`).
    pub fn run(&mut self, prefix: &Path, name: &str) {
        use std::os::unix::process::CommandExt;
        let pid_file = prefix.join(format!("run/{name}.pid"));
        let child = Command::new("sh")
            .args(["-c", "sleep 300; :", "lago-test-stand"])
            .arg(&pid_file)
            .process_group(0)
            .spawn()
            .unwrap();
        std::fs::create_dir_all(pid_file.parent().unwrap()).unwrap();
        std::fs::write(&pid_file, child.id().to_string()).unwrap();
        self.children.push((pid_file, child));
    }

    /// Stops the stand-in of `run/<name>.pid` (its pid file stays, as a crashed qemu's would).
    pub fn stop(&mut self, prefix: &Path, name: &str) {
        let pid_file = prefix.join(format!("run/{name}.pid"));
        if let Some(at) = self.children.iter().position(|(p, _)| *p == pid_file) {
            end(self.children.remove(at).1);
        }
    }
}

/// Kills a stand-in's process group and reaps it.
fn end(mut child: std::process::Child) {
    let group = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
}

impl Drop for Stand {
    fn drop(&mut self) {
        for (_, child) in self.children.drain(..) {
            end(child);
        }
    }
}
