//! A directory with an init file, and `lago` run in it with a test configuration.

use std::path::Path;
use std::process::{Command, Output};

use lago::ops::service::{ServiceProvider, ServiceState};

use crate::libvirt::LibvirtHost;
use crate::{lago_command, tiny_repo};

/// A test environment's home: its init file, scripts, leases; destroyed when dropped.
pub struct Lab {
    pub home: tempfile::TempDir,
    pub env: Vec<(&'static str, String)>,
    /// The network namespace lago runs in (that of a [`LibvirtHost`]).
    pub netns: Option<String>,
}

impl Lab {
    /// A lab with `init` as its LagoInitFile, on the `tiny` repository.
    pub fn new(init: &str) -> Self {
        Self::sharing_leases(init, &tiny_repo(), None)
    }

    /// A lab whose leases live in `leases` (another lab's, to act as one host).
    pub fn sharing_leases(init: &str, repo: &Path, leases: Option<&Path>) -> Self {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("LagoInitFile"), init).unwrap();
        std::fs::create_dir_all(home.path().join("scripts")).unwrap();
        std::fs::write(home.path().join("scripts/ok.sh"), "echo deployed > /root/deployed\n").unwrap();
        std::fs::write(home.path().join("scripts/fail.sh"), "echo \"I'm going to fail\"\nexit 3\n").unwrap();
        let env = vec![
            ("LAGO__INIT__TEMPLATE_REPO_PATH", repo.join("repo.metadata").display().to_string()),
            ("LAGO_ACCEL", "tcg".into()),
            ("LAGO_VM_OUTBOUND", "false".into()),
            // No interface of the host's own namespace: host legs are tested in one of their own.
            ("LAGO_HOST_LEG", "off".into()),
            (
                "LAGO_LEASE_DIR",
                leases.map(Path::to_path_buf).unwrap_or_else(|| home.path().join("leases")).display().to_string(),
            ),
        ];
        Self { home, env, netns: None }
    }

    /// A lab whose VMs are `local-libvirt` ones of `host` by default, with lago run in the
    /// host's network namespace.
    pub fn on_libvirt(init: &str, host: &LibvirtHost) -> Self {
        let mut lab = Self::new(init);
        lab.env.push(("LAGO_DEFAULT_VM_PROVIDER", "local-libvirt".into()));
        lab.env.push(("LAGO_LIBVIRT_URL", host.url()));
        lab.netns = Some(host.ns.clone());
        lab
    }

    /// The `lago` command of this lab.
    pub fn command(&self, args: &[&str]) -> Command {
        lago_command(self.home.path(), args, &self.env, self.netns.as_deref())
    }

    pub fn lago(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.lago(args);
        assert!(
            out.status.success(),
            "lago {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn shell(&self, vm: &str, cmd: &str) -> (i32, String) {
        let out = self.lago(&["shell", vm, cmd]);
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Whether `lago console vm`, run on a terminal (`script` gives it one), shows `text`
    /// after a newline is typed, and leaves on Ctrl-].
    pub fn console_shows(&self, vm: &str, text: &str) -> bool {
        use std::io::{Read, Write};
        let cmd = self.command(&["console", vm]);
        let mut line: Vec<String> = vec!["env".into()];
        line.extend(
            cmd.get_envs().filter_map(|(k, v)| Some(format!("{}={}", k.to_str()?, crate::shell_quote(v?.to_str()?)))),
        );
        line.push(crate::shell_quote(cmd.get_program().to_str().unwrap()));
        line.extend(cmd.get_args().map(|a| crate::shell_quote(a.to_str().unwrap())));
        let mut child = Command::new("script")
            .args(["-qec", &line.join(" "), "/dev/null"])
            .current_dir(self.home.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let wanted = text.to_owned();
        let (found, seen_it) = std::sync::mpsc::channel();
        // Reads to the end (script must never write into a closed pipe), saying when `text` showed.
        let reader = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = [0u8; 256];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&seen).contains(&wanted) {
                    let _ = found.send(());
                }
            }
            String::from_utf8_lossy(&seen).into_owned()
        });
        let mut stdin = child.stdin.take().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(1));
        stdin.write_all(b"\n").unwrap();
        let shown = seen_it.recv_timeout(std::time::Duration::from_secs(60)).is_ok();
        stdin.write_all(&[0x1d]).unwrap();
        drop(stdin);
        let status = child.wait().unwrap();
        let left = status.success();
        let seen = reader.join().unwrap();
        eprintln!("console of {vm} ({status}): {seen:?}");
        shown && left
    }

    /// Whether the running qemu of `vm` boots a kernel directly (`-kernel`) rather than from
    /// its disk.
    pub fn booted_directly(&self, vm: &str) -> bool {
        let pid = std::fs::read_to_string(self.home.path().join(format!(".lago/default/run/{vm}.pid"))).unwrap();
        let argv = std::fs::read(format!("/proc/{}/cmdline", pid.trim())).unwrap();
        argv.split(|b| *b == 0).any(|a| a == b"-kernel")
    }

    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["-f", "json", "status", "--extra"])).unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Whatever happened, leave no VM behind.
        let _ = self.lago(&["destroy", "--yes"]);
    }
}

impl Lab {
    /// Runs an Ansible tool (`ansible`, `ansible-inventory`) on `lago ansible_hosts`' inventory.
    pub fn ansible(&self, tool: &str, args: &[&str]) -> Output {
        let inventory = self.home.path().join("hosts");
        std::fs::write(&inventory, self.ok(&["ansible_hosts"])).unwrap();
        Command::new(tool).arg("-i").arg(&inventory).args(args).output().unwrap()
    }

    /// Through the SDK: `vm`'s detected service manager is `provider`; `service` runs, stops and
    /// starts again; an unknown service is missing and cannot be started.
    #[track_caller]
    pub fn cycle_service(&self, vm: &str, service: &str, provider: ServiceProvider) {
        let env = lago::sdk::load_env(&self.home.path().join(".lago")).unwrap();
        let vm = env.vm(vm).unwrap();
        assert_eq!(vm.service_provider().unwrap(), provider);
        let svc = vm.service(service).unwrap();
        assert_eq!(svc.state().unwrap(), ServiceState::Active);
        svc.stop().unwrap();
        assert_eq!(svc.state().unwrap(), ServiceState::Inactive);
        svc.start().unwrap();
        assert_eq!(svc.state().unwrap(), ServiceState::Active);
        let missing = vm.service("nope").unwrap();
        assert_eq!(missing.state().unwrap(), ServiceState::Missing);
        assert!(missing.start().unwrap_err().to_string().contains("not present"));
    }
}
