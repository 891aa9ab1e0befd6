//! `lago doctor` on a fake host.

use std::cell::RefCell;
use std::collections::BTreeMap;

use std::path::{Path, PathBuf};

use super::*;
use crate::host::process::Found;
use crate::host::process::{FakeRunner, Output};
use crate::provider::qemu::accel::KvmProbe;
use crate::report::NoopReporter;

/// A host with the programs of `tools` (name → `--version` line) and nothing else wrong.
struct FakeHost {
    tools: BTreeMap<&'static str, &'static str>,
    root: bool,
    apt: AptFacts,
    kvm: bool,
    sources: RefCell<Vec<String>>,
}

impl FakeHost {
    fn complete() -> Self {
        let tools = [
            ("qemu-system-x86_64", "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)"),
            ("qemu-img", "qemu-img version 10.0.2 (Debian 1:10.0.2+ds-2)"),
            ("ssh", ""),
            ("ssh-keygen", ""),
            ("apt-get", ""),
            ("mcopy", ""),
            ("mke2fs", ""),
            ("xz", ""),
            ("zstd", ""),
            ("mmdebstrap", ""),
            ("virt-customize", ""),
            ("guestfish", ""),
            ("ansible", ""),
            ("dot", ""),
            ("libvirtd", ""),
            ("dnsmasq", ""),
            ("virsh", ""),
            ("ip", ""),
        ];
        let apt = AptFacts {
            present: true,
            codename: Some("bookworm".into()),
            lists_age_days: Some(1),
            backports: false,
            mirror: "http://mirror/debian".into(),
            keyring: "/k.gpg".into(),
        };
        Self { tools: tools.into_iter().collect(), root: true, apt, kvm: false, sources: RefCell::default() }
    }

    fn without(mut self, names: &[&'static str]) -> Self {
        for n in names {
            self.tools.remove(n);
        }
        self
    }
}

impl Host for FakeHost {
    fn find(&self, program: &str) -> Option<Found> {
        self.tools.contains_key(program).then(|| Found {
            path: PathBuf::from(if program == "mke2fs" {
                "/usr/sbin/mke2fs".into()
            } else {
                format!("/usr/bin/{program}")
            }),
            on_path: program != "mke2fs",
        })
    }
    fn first_line(&self, program: &Path, _args: &[&str]) -> Option<String> {
        let name = program.file_name()?.to_str()?;
        self.tools.get(name).map(|l| (*l).to_owned())
    }
    fn host_kernel(&self) -> bool {
        true
    }
    fn writable(&self, dir: &Path) -> Result<(), String> {
        if dir.starts_with("/ro") { Err(format!("{} is not writable", dir.display())) } else { Ok(()) }
    }
    fn loopback(&self) -> Result<(), String> {
        Ok(())
    }
    fn memory_dir(
        &self,
        setting: &crate::config::MemoryDirSetting,
    ) -> Result<(PathBuf, crate::host::memory::Space), String> {
        match &setting.dir {
            crate::config::MemoryDir::Off => Err(format!("`memory_dir = off` is set ({})", setting.origin)),
            crate::config::MemoryDir::Path(p) if p.starts_with("/small") => {
                Ok((p.clone(), crate::host::memory::Space { total: 1 << 30, free: 200 << 20 }))
            }
            _ => Ok(("/dev/shm/lago-0".into(), crate::host::memory::Space { total: 12 << 30, free: 12 << 30 })),
        }
    }
    fn may_create_interfaces(&self) -> Result<(), String> {
        if self.root { Ok(()) } else { Err("lago runs without root or CAP_NET_ADMIN".into()) }
    }
    fn kvm(&self) -> KvmProbe {
        KvmProbe {
            usable: self.kvm,
            reason: if self.kvm {
                "a Linux guest reached user space under KVM in 0.6 s"
            } else {
                "a Linux guest did not come up under KVM: no sign of life within 8 s (the guest hangs)"
            }
            .into(),
            evidence: vec!["host KVM module: kvm_pvm".into()],
        }
    }
    fn apt(&self) -> AptFacts {
        self.apt.clone()
    }
    fn is_root(&self) -> bool {
        self.root
    }
    fn user(&self) -> String {
        "alice".into()
    }
    fn add_apt_source(&self, entry: &str) -> std::io::Result<()> {
        self.sources.borrow_mut().push(entry.to_owned());
        Ok(())
    }
    fn libvirt(&self, url: &str) -> Result<String, String> {
        if self.tools.contains_key("libvirtd") {
            Ok(format!("libvirt 9.0.0 (QEMU 10.0.2) at {url}"))
        } else {
            Err("Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory".into())
        }
    }
}

fn paths() -> Paths {
    Paths {
        template_store: "/var/lib/lago/store".into(),
        store_warn_bytes: 0,
        template_repo: "/var/lib/lago/repos/local/repo.metadata".into(),
        lease_dir: "/var/lib/lago/subnets".into(),
        libvirt_url: "qemu:///system".into(),
        host_leg: crate::config::HostLegSetting { leg: crate::config::HostLeg::Auto, origin: "the default".into() },
        memory_dir: crate::config::MemoryDirSetting {
            dir: crate::config::MemoryDir::Auto,
            origin: "the default".into(),
        },
    }
}

#[test]
fn memory_files_are_on_a_tmpfs_or_vms_cannot_be_forked() {
    let host = FakeHost::complete();
    let check = |dir: crate::config::MemoryDir| {
        let paths = Paths { memory_dir: crate::config::MemoryDirSetting { dir, origin: "the test".into() }, ..paths() };
        examine(&host, &paths).checks.into_iter().find(|c| c.name == "memory files").unwrap()
    };
    let auto = check(crate::config::MemoryDir::Auto);
    assert!(auto.ok && !auto.required, "{auto:?}");
    assert_eq!(
        auto.detail,
        "/dev/shm/lago-0: a tmpfs with 12.0 GiB free of 12.0 GiB; running environments can be forked"
    );
    let off = check(crate::config::MemoryDir::Off);
    assert!(!off.ok && !off.required);
    assert_eq!(
        off.detail,
        "`memory_dir = off` is set (the test): VMs run with ordinary memory, and `lago fork` is refused"
    );
    let small = check(crate::config::MemoryDir::Path("/small/lago".into()));
    assert!(!small.ok && small.detail.contains("has 200 MiB free of 1.0 GiB"), "{small:?}");
}

fn fixes(r: &Report) -> Vec<String> {
    r.checks.iter().filter_map(|c| c.fix.as_ref().map(|f| format!("{}: {}", c.name, f.command()))).collect()
}

#[test]
fn a_complete_host_is_ready_and_kvm_only_informs() {
    let r = examine(&FakeHost::complete(), &paths());
    assert!(r.ready);
    let failed: Vec<&str> = r.checks.iter().filter(|c| !c.ok).map(|c| c.name.as_str()).collect();
    assert_eq!(failed, ["KVM"]);
    let kvm = r.checks.iter().find(|c| c.name == "KVM").unwrap();
    assert_eq!(
        kvm.detail,
        "a Linux guest did not come up under KVM: no sign of life within 8 s (the guest hangs); VMs run under TCG (software emulation, slower)"
    );
    assert_eq!(kvm.evidence, ["host KVM module: kvm_pvm"]);
    let qemu = &r.checks[1];
    assert_eq!(qemu.detail, "10.0.2 (Debian 1:10.0.2+ds-2), the same qemu as qemu-system-x86_64");
    // Installed where Debian puts system tools, not on the user's PATH: lago runs it anyway.
    let mke2fs = r.checks.iter().find(|c| c.name == "mke2fs").unwrap();
    assert!(mke2fs.ok);
    assert_eq!(
        mke2fs.detail,
        "/usr/sbin/mke2fs (installed, not on your PATH: lago looks in /usr/sbin too; add it to PATH to run it yourself)"
    );
    let missing = examine(&FakeHost::complete().without(&["mke2fs"]), &paths());
    let mke2fs = missing.checks.iter().find(|c| c.name == "mke2fs").unwrap();
    assert_eq!(
        (mke2fs.ok, mke2fs.detail.as_str()),
        (false, "not installed: not on PATH, nor in /usr/local/sbin, /usr/sbin or /sbin")
    );
    assert_eq!(mke2fs.fix.as_ref().unwrap().command(), "apt-get install -y --no-install-recommends e2fsprogs");
}

#[test]
fn missing_qemu_on_debian_12_comes_from_backports() {
    let mut host = FakeHost::complete().without(&["qemu-system-x86_64"]);
    host.root = false;
    let r = examine(&host, &paths());
    assert!(!r.ready);
    assert_eq!(
        fixes(&r)[0],
        "qemu-system-x86_64: printf 'Types: deb\\nURIs: http://mirror/debian\\nSuites: bookworm-backports\\nComponents: main\\nSigned-By: /k.gpg\\n' \
         | sudo tee /etc/apt/sources.list.d/lago-backports.sources >/dev/null && sudo apt-get update && \
         sudo apt-get install -y --no-install-recommends qemu-system-x86/bookworm-backports \
         qemu-system-common/bookworm-backports qemu-system-data/bookworm-backports seabios/bookworm-backports"
    );
    host.apt.backports = true;
    host.root = true;
    let r = examine(&host, &paths());
    assert_eq!(
        fixes(&r)[0],
        "qemu-system-x86_64: apt-get install -y --no-install-recommends qemu-system-x86/bookworm-backports \
         qemu-system-common/bookworm-backports qemu-system-data/bookworm-backports seabios/bookworm-backports"
    );
    assert!(r.checks.iter().find(|c| c.name == "KVM").unwrap().detail.starts_with("not probed"));
}

#[test]
fn qemu_img_of_another_qemu_is_named() {
    let mut host = FakeHost::complete();
    host.tools.insert("qemu-system-x86_64", "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7)");
    host.apt.codename = Some("trixie".into());
    let r = examine(&host, &paths());
    let img = r.checks.iter().find(|c| c.name == "qemu-img").unwrap();
    assert!(!img.ok);
    assert_eq!(
        img.detail,
        "version 10.0.2 (Debian 1:10.0.2+ds-2), but qemu-system-x86_64 is 7.2.19 (Debian 1:7.2+dfsg-7): install both from the same qemu"
    );
    assert_eq!(
        img.fix.as_ref().unwrap().command(),
        "apt-get install -y --no-install-recommends qemu-utils qemu-system-x86 qemu-system-common qemu-system-data seabios"
    );
}

#[test]
fn unwritable_directories_get_an_owned_directory() {
    let mut host = FakeHost::complete();
    host.root = false;
    let r = examine(&host, &Paths { lease_dir: "/ro/subnets".into(), ..paths() });
    assert!(!r.ready);
    let lease = r.checks.iter().find(|c| c.name == "lease directory").unwrap();
    assert_eq!(lease.fix.as_ref().unwrap().command(), "sudo install -d -o alice /ro/subnets");
    let http = examine(&host, &Paths { template_repo: "http://templates/repo.metadata".into(), ..paths() });
    let repo = http.checks.iter().find(|c| c.name == "template repository").unwrap();
    assert!(repo.ok, "{}", repo.detail);
}

#[test]
fn a_store_over_its_size_is_warned_about_with_prune_as_the_fix() {
    let store = tempfile::tempdir().unwrap();
    std::fs::write(store.path().join("local:tiny:v1"), vec![1u8; 3 << 20]).unwrap();
    let host = FakeHost::complete();
    let over = examine(&host, &Paths { template_store: store.path().into(), store_warn_bytes: 1 << 20, ..paths() });
    let check = over.checks.iter().find(|c| c.name == "template store size").unwrap();
    assert!(!check.ok && check.detail.contains("more than 0 GiB"), "{}", check.detail);
    assert!(check.fix.as_ref().unwrap().command().contains("lago template prune"));
    assert!(over.ready, "a big store does not make the host unready");
    let under = examine(&host, &Paths { template_store: store.path().into(), store_warn_bytes: 1 << 30, ..paths() });
    assert!(under.checks.iter().find(|c| c.name == "template store size").unwrap().ok);
}

#[test]
fn json_has_the_fix_as_a_command() {
    let r = examine(&FakeHost::complete().without(&["ansible"]), &paths());
    let json = serde_json::to_value(&r).unwrap();
    let ansible = json["checks"].as_array().unwrap().iter().find(|c| c["name"] == "ansible").unwrap();
    assert_eq!(ansible["fix"], "apt-get install -y --no-install-recommends ansible-core");
    assert_eq!(ansible["group"], "extras");
    assert_eq!(json["ready"], true);
}

#[test]
fn fixes_install_qemu_before_what_depends_on_it() {
    let host =
        FakeHost::complete().without(&["qemu-system-x86_64", "virt-customize", "guestfish", "mcopy", "ansible", "dot"]);
    let r = examine(&host, &paths());
    let runner = FakeRunner::new(|_| Ok(Output::default()));
    let done = fix(&r, &[Group::Core, Group::Templates], &host, &runner, &NoopReporter).unwrap();
    assert_eq!(
        runner.command_lines(),
        "apt-get update -qq\n\
         apt-get install -y -qq --no-install-recommends qemu-system-x86/bookworm-backports \
         qemu-system-common/bookworm-backports qemu-system-data/bookworm-backports seabios/bookworm-backports\n\
         apt-get install -y -qq --no-install-recommends mtools"
    );
    assert_eq!(host.sources.borrow().len(), 1);
    assert_eq!(done.len(), 4, "{done:#?}");
    assert!(done[3].starts_with("Installing mtools: mcopy: syslinux installs"), "{done:#?}");
    // Extras only when asked for; guestfs comes after qemu.
    let runner = FakeRunner::new(|_| Ok(Output::default()));
    fix(&r, &[Group::Core, Group::Templates, Group::Extras], &host, &runner, &NoopReporter).unwrap();
    let lines = runner.command_lines();
    assert!(
        lines.ends_with(
            "--no-install-recommends mtools guestfs-tools linux-image-amd64 guestfish ansible-core graphviz"
        ),
        "{lines}"
    );
    // libvirt too with --all; its host only gets advice.
    let host = host.without(&["libvirtd", "dnsmasq"]);
    let r = examine(&host, &paths());
    let runner = FakeRunner::new(|_| Ok(Output::default()));
    fix(&r, &[Group::Core, Group::Templates, Group::Extras, Group::Libvirt], &host, &runner, &NoopReporter).unwrap();
    let lines = runner.command_lines();
    assert!(
        lines.ends_with("ansible-core graphviz libvirt-daemon-system libvirt-clients dnsmasq-base iptables"),
        "{lines}"
    );
    let libvirt = r.checks.iter().find(|c| c.name == "libvirt host").unwrap();
    assert!(
        !libvirt.ok
            && !libvirt.required
            && libvirt.detail.starts_with("qemu:///system does not answer: Failed to connect"),
        "{libvirt:?}"
    );
}

#[test]
fn installing_needs_root() {
    let mut host = FakeHost::complete().without(&["mcopy"]);
    host.root = false;
    let r = examine(&host, &paths());
    let runner = FakeRunner::new(|_| Ok(Output::default()));
    let err = fix(&r, &[Group::Templates], &host, &runner, &NoopReporter).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Installing packages needs root: sudo apt-get install -y --no-install-recommends mtools"
    );
    assert_eq!(runner.command_lines(), "");
}

#[test]
fn the_host_leg_is_on_with_the_privilege_off_without_and_required_under_on() {
    use crate::config::{HostLeg, HostLegSetting};
    let leg = |r: &Report| r.checks.iter().find(|c| c.name == "host leg").cloned().unwrap();
    let on = leg(&examine(&FakeHost::complete(), &paths()));
    assert!(on.ok && !on.required, "{}", on.detail);
    let user = FakeHost { root: false, ..FakeHost::complete() };
    let off = leg(&examine(&user, &paths()));
    assert!(!off.ok && off.detail.contains("CAP_NET_ADMIN"), "{}", off.detail);
    assert!(off.fix.unwrap().command().contains("setcap cap_net_admin+ep"));
    let asked = |leg: HostLeg| Paths { host_leg: HostLegSetting { leg, origin: "the test".into() }, ..paths() };
    let required = examine(&user, &asked(HostLeg::On));
    assert!(leg(&required).required && !required.ready, "`host_leg = on` without the privilege is not ready");
    let chosen = leg(&examine(&user, &asked(HostLeg::Off)));
    assert!(chosen.ok && chosen.detail.starts_with("off: `host_leg = off`"), "{}", chosen.detail);
}
