//! A directory with an init file, and `lago` run in it with a test configuration.

use std::path::Path;
use std::process::{Command, Output};

use lago::service::{ServiceProvider, ServiceState};

use crate::{lago, tiny_repo};

/// A test environment's home: its init file, scripts, leases; destroyed when dropped.
pub struct Lab {
    pub home: tempfile::TempDir,
    pub env: Vec<(&'static str, String)>,
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
            (
                "LAGO_LEASE_DIR",
                leases.map(Path::to_path_buf).unwrap_or_else(|| home.path().join("leases")).display().to_string(),
            ),
        ];
        Self { home, env }
    }

    pub fn lago(&self, args: &[&str]) -> Output {
        lago(self.home.path(), args, &self.env)
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

    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["-f", "json", "status"])).unwrap()
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
