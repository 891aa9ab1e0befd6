//! The qemu command line of a VM: a pure function of its record and launch context, snapshot-
//! tested. NICs are datagram links to their network's switch, in spec order; a last NIC on
//! qemu's user-mode stack, the uplink, carries the SSH forward and outbound access.

use std::path::PathBuf;

use super::vm_paths;
use crate::config::Accel;
use crate::prefix::records::VmRecord;
use crate::provider::{LaunchContext, Memory};

/// Where a qemu keeps its control files: the prefix's (its runtime directory, `run/`, `logs/`),
/// or, for a helper qemu beside the VM's own ([`LaunchContext::scratch`]), a directory of its own.
pub struct Files {
    /// The QMP socket.
    pub qmp: PathBuf,
    /// The pid file.
    pub pid: PathBuf,
    /// The console's log.
    pub console_log: PathBuf,
    /// The console's socket.
    pub console: PathBuf,
    /// The guest agent's socket.
    pub qga: PathBuf,
    /// qemu's own log.
    pub qemu_log: PathBuf,
    dir: Option<PathBuf>,
}

impl Files {
    /// The files of `vm` started with `ctx`.
    pub fn of(vm: &str, ctx: &LaunchContext) -> Self {
        match &ctx.scratch {
            None => {
                let (qmp, pid, console_log) = vm_paths(&ctx.prefix, vm);
                Self {
                    qmp,
                    pid,
                    console_log,
                    console: crate::prefix::socket_path(&ctx.prefix, &format!("{vm}.console")),
                    qga: crate::prefix::socket_path(&ctx.prefix, &format!("{vm}.qga")),
                    qemu_log: crate::prefix::Layout::new(&ctx.prefix).qemu_log(vm),
                    dir: None,
                }
            }
            Some(dir) => Self {
                qmp: dir.join("qmp"),
                pid: dir.join("pid"),
                console_log: dir.join("console.log"),
                console: dir.join("console"),
                qga: dir.join("qga"),
                qemu_log: dir.join("qemu.log"),
                dir: Some(dir.clone()),
            },
        }
    }

    /// qemu's end of the link of NIC `nic` to its switch.
    pub fn nic(&self, prefix: &std::path::Path, vm: &str, nic: usize) -> PathBuf {
        match &self.dir {
            None => crate::provider::qemu::switch::nic_socket(prefix, vm, nic),
            Some(dir) => dir.join(format!("{nic}.nic")),
        }
    }
}

/// The qemu command line of a VM.
pub fn qemu_argv(vm: &VmRecord, ctx: &LaunchContext) -> Vec<String> {
    let files = Files::of(&vm.name, ctx);
    let (qmp, pid, console_log) = (&files.qmp, &files.pid, &files.console_log);
    let mut a: Vec<String> =
        vec!["-name".into(), format!("guest=lago-{}-{},process=lago-{}", ctx.env_id, vm.name, vm.name)];
    a.extend(["-nodefaults".into(), "-no-user-config".into(), "-display".into(), "none".into()]);
    if ctx.paused || ctx.incoming {
        // Stopped before the first instruction: a live snapshot is loaded next (QMP), or a
        // frozen VM's device state (`-incoming defer`).
        a.push("-S".into());
    }
    if ctx.incoming {
        a.extend(["-incoming".into(), "defer".into()]);
    }
    // TCG runs all vCPUs of a VM on one thread: qemu 10.0's multi-threaded TCG loses a
    // timer interrupt's end now and then in a 2-vCPU guest (the vCPU halts with the
    // interrupt still in service and the guest hangs at boot) and aborts in
    // `iotlb_to_section`; one thread per VM costs a multi-vCPU guest about a tenth of its boot
    // time under TCG (a single-vCPU guest nothing), and VMs still run in parallel.
    let accel = if ctx.accel == Accel::Kvm { "kvm" } else { "tcg,thread=single" };
    // `init` refused what qemu cannot express; a hand-edited record falls back to the default CPU.
    let cpu =
        crate::spec::cpu::qemu_cpu(vm.cpu_model.as_deref(), vm.cpu_custom.as_ref(), vm.vcpu, vm.memory, ctx.accel)
            .unwrap_or_else(|_| crate::spec::cpu::plain(None, vm.vcpu, ctx.accel));
    a.extend(["-accel".into(), accel.into(), "-cpu".into(), cpu.cpu]);
    a.extend(["-m".into(), vm.run_memory().to_string(), "-smp".into(), cpu.smp]);
    a.extend(cpu.extra);
    a.extend(memory_args(&ctx.memory, vm.run_memory()));
    a.extend([
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", qmp.display()),
        "-pidfile".into(),
        pid.display().to_string(),
    ]);
    a.extend([
        "-chardev".into(),
        format!(
            "socket,id=console,path={},server=on,wait=off,logfile={},logappend=on",
            files.console.display(),
            console_log.display()
        ),
        "-serial".into(),
        "chardev:console".into(),
    ]);
    a.extend(["-device".into(), "virtio-rng-pci".into()]);
    // A VM generation id: each start draws a new one, so a copy of a frozen VM (`lago fork`)
    // tells its guest that it is a copy (Linux reseeds its random number generator). A copy's
    // devices must be those of the VM it was frozen from: every VM has it from its start.
    a.extend(["-device".into(), "vmgenid,guid=auto".into()]);
    // The port qemu-guest-agent listens on, when the guest has one.
    a.extend([
        "-device".into(),
        "virtio-serial-pci,id=vser0".into(),
        "-chardev".into(),
        format!("socket,id=qga,path={},server=on,wait=off", files.qga.display()),
        "-device".into(),
        "virtserialport,bus=vser0.0,chardev=qga,name=org.qemu.guest_agent.0".into(),
    ]);
    // A template that carries its kernel boots it directly (no firmware boot loader, no
    // decompression: seconds under TCG); any other first disk boots through its own loader.
    if let Some(boot) = vm.direct_boot(&ctx.prefix) {
        // A VM that goes on from a frozen state has its kernel in its memory already: qemu gets
        // a stub (the same devices and option ROM, without the megabytes of the kernel and
        // initramfs kept in every qemu), and, having nothing to boot, ends when the guest
        // reboots (`lago start` boots it).
        let (kernel, initrd) = match &ctx.kernel_stub {
            Some(dir) => (dir.join(super::freeze::STUB_KERNEL), dir.join(super::freeze::STUB_INITRD)),
            None => (boot.kernel, boot.initrd),
        };
        a.extend([
            "-kernel".into(),
            kernel.display().to_string(),
            "-initrd".into(),
            initrd.display().to_string(),
            "-append".into(),
            boot.cmdline,
        ]);
        if ctx.kernel_stub.is_some() {
            a.push("-no-reboot".into());
        }
    }
    let mut scsi = false;
    for (i, d) in vm.disks.iter().enumerate() {
        let file = d.path.replace("$LAGO_PREFIX_PATH", &ctx.prefix.display().to_string());
        let iso = d.format == "iso";
        let format = if iso { "raw" } else { d.format.as_str() };
        let mut drive = format!("file={file},if=none,id=disk{i},format={format}");
        if iso {
            drive.push_str(",readonly=on,media=cdrom");
        } else {
            drive.push_str(",cache=writeback,discard=unmap");
        }
        a.extend(["-drive".into(), drive]);
        let boot = if i == 0 { ",bootindex=1" } else { "" };
        let device = if iso {
            format!("ide-cd,drive=disk{i}{boot}")
        } else if d.dev.starts_with("sd") {
            if !scsi {
                a.extend(["-device".into(), "virtio-scsi-pci,id=scsi0".into()]);
                scsi = true;
            }
            format!("scsi-hd,drive=disk{i},bus=scsi0.0,serial={}{boot}", i + 1)
        } else if d.dev.starts_with("hd") {
            format!("ide-hd,drive=disk{i}{boot}")
        } else {
            format!("virtio-blk-pci,drive=disk{i},serial={}{boot}", i + 1)
        };
        a.extend(["-device".into(), device]);
    }
    let seed = crate::prefix::Layout::new(&ctx.prefix).seed(&vm.name);
    if seed.is_file() {
        a.extend(["-drive".into(), format!("file={},if=none,id=seed,format=raw,readonly=on", seed.display())]);
        a.extend(["-device".into(), "virtio-blk-pci,drive=seed".into()]);
    }
    for (i, nic) in vm.nics.iter().enumerate() {
        // A datagram link to the network's switch (lago's own, see `switch.rs`).
        let switch = crate::provider::qemu::switch::paths(&ctx.prefix, &nic.net);
        a.extend([
            "-netdev".into(),
            format!(
                "dgram,id=net{i},local.type=unix,local.path={},remote.type=unix,remote.path={}",
                files.nic(&ctx.prefix, &vm.name, i).display(),
                switch.socket.display()
            ),
        ]);
        let mut dev = format!("virtio-net-pci,netdev=net{i},romfile=");
        if let Some(mac) = nic.mac() {
            dev.push_str(&format!(",mac={mac}"));
        }
        if let Some(mtu) = nic.mtu {
            dev.push_str(&format!(",host_mtu={mtu}"));
        }
        a.extend(["-device".into(), dev]);
    }
    let restrict = if ctx.outbound { "off" } else { "on" };
    let mut uplink = format!("user,id=uplink,restrict={restrict}");
    // A helper qemu beside the VM's own forwards nothing: the VM's has the ports.
    if ctx.scratch.is_none() {
        uplink.push_str(&format!(",hostfwd=tcp:127.0.0.1:{}-:22", ctx.ssh_port));
        for (host, guest) in &ctx.forwards {
            uplink.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
        }
    }
    a.extend(["-netdev".into(), uplink]);
    a.extend([
        "-device".into(),
        format!("virtio-net-pci,netdev=uplink,mac={},romfile=", crate::plan::uplink_mac(vm.ip(), ctx.index)),
    ]);
    a
}

/// The memory backend of a VM of `mib` MiB. Its id is the RAM block name qemu gives the
/// memory of a `pc` machine by default (`pc.ram`), so live snapshots load whichever memory the VM
/// had when they were taken.
fn memory_args(memory: &Memory, mib: u64) -> Vec<String> {
    match memory {
        Memory::Ram => Vec::new(),
        Memory::File { path, shared } => vec![
            "-object".into(),
            format!(
                "memory-backend-file,id=pc.ram,size={mib}M,mem-path={},share={}",
                path.display(),
                if *shared { "on" } else { "off" }
            ),
            "-machine".into(),
            "memory-backend=pc.ram".into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_template_that_carries_its_kernel_is_booted_directly() {
        let dir = tempfile::tempdir().unwrap();
        let store_image = dir.path().join("store/local:tiny:v1");
        std::fs::create_dir_all(dir.path().join("store")).unwrap();
        std::fs::create_dir_all(dir.path().join("images")).unwrap();
        crate::host::images::write_qcow2_header(
            &dir.path().join("images/vm01_root.qcow2"),
            &store_image.display().to_string(),
        );
        let (kernel, initrd) =
            (dir.path().join("store/local:tiny:v1.vmlinux"), dir.path().join("store/local:tiny:v1.initrd"));
        // The template's metadata as published: the files by their names in the repository.
        let record = |kernel: &str, initrd: &str| -> VmRecord {
            serde_json::from_value(json!({"name": "vm01", "nics": [], "disks": [
                {"path": "$LAGO_PREFIX_PATH/images/vm01_root.qcow2", "dev": "vda", "format": "qcow2", "metadata": {"distro": "lago-tiny",
                 "boot": {"kernel": kernel, "initrd": initrd, "cmdline": "root=LABEL=lago-root rw"}}}]}))
            .unwrap()
        };
        let published = record("tiny-v1.qcow2.vmlinux", "tiny-v1.qcow2.initrd");
        let ctx = LaunchContext::for_test(dir.path());
        // Files not in the store: the disk's own boot loader.
        let argv = qemu_argv(&published, &ctx);
        assert!(!argv.contains(&"-kernel".to_owned()), "{argv:?}");
        std::fs::write(&kernel, b"").unwrap();
        std::fs::write(&initrd, b"").unwrap();
        let expected = [
            "-kernel".to_owned(),
            kernel.display().to_string(),
            "-initrd".into(),
            initrd.display().to_string(),
            "-append".into(),
            "root=LABEL=lago-root rw".into(),
        ];
        let argv = qemu_argv(&published, &ctx);
        let at = argv.iter().position(|a| a == "-kernel").expect("direct boot");
        assert_eq!(argv[at..at + 6], expected);
        // The disk stays first in the boot order, for a guest that reboots through firmware.
        assert!(argv.iter().any(|a| a.ends_with("bootindex=1")), "{argv:?}");
        // A record of an earlier lago version names the files by their place in the store.
        let argv = qemu_argv(&record(&kernel.display().to_string(), &initrd.display().to_string()), &ctx);
        let at = argv.iter().position(|a| a == "-kernel").expect("direct boot");
        assert_eq!(argv[at..at + 6], expected);
    }

    #[test]
    fn argv_of_a_vm_with_two_nics_and_three_disks() {
        let vm: VmRecord = serde_json::from_str(
            r#"{"name": "vm01", "memory": 256, "vcpu": "2", "mgmt_net": "lago", "ssh-user": "root",
                "nics": [{"net": "lago", "ip": "192.168.200.2"}, {"net": "storage", "ip": "192.168.201.2", "mtu": 9000}],
                "disks": [{"path": "$LAGO_PREFIX_PATH/images/vm01_root.qcow2", "dev": "vda", "format": "qcow2"},
                          {"path": "/data/extra.raw", "dev": "sdb", "format": "raw"},
                          {"path": "/isos/x.iso", "dev": "hdc", "format": "iso"}]}"#,
        )
        .unwrap();
        let ctx = LaunchContext { forwards: vec![(40080, 8080)], ..LaunchContext::for_test("/w/.lago/default") };
        // Sockets are in the runtime directory, which depends on the user.
        let run = crate::prefix::runtime_dir(&ctx.prefix).display().to_string();
        insta::assert_snapshot!(qemu_argv(&vm, &ctx).join("\n").replace(&run, "[RUN]"));
    }

    /// A VM's own memory file, mapped shared; a copy's, the frozen VM's mapped privately and
    /// waiting for its device state.
    #[test]
    fn memory_in_a_file_on_a_tmpfs() {
        let vm: VmRecord = serde_json::from_str(r#"{"name": "vm01", "memory": 512}"#).unwrap();
        let mut ctx = LaunchContext {
            memory: Memory::File { path: "/dev/shm/lago-0/ab/vm01.mem".into(), shared: true },
            ..LaunchContext::for_test("/w/.lago/default")
        };
        let around = |argv: Vec<String>, what: &str| -> Vec<String> {
            let at = argv.iter().position(|a| a == what).unwrap();
            argv[at..at + 4].to_vec()
        };
        assert_eq!(
            around(qemu_argv(&vm, &ctx), "-object"),
            [
                "-object",
                "memory-backend-file,id=pc.ram,size=512M,mem-path=/dev/shm/lago-0/ab/vm01.mem,share=on",
                "-machine",
                "memory-backend=pc.ram"
            ]
        );
        assert!(!qemu_argv(&vm, &ctx).contains(&"-incoming".to_owned()));
        ctx.memory = Memory::File { path: "/dev/shm/lago-0/frozen-x/vm01.mem".into(), shared: false };
        ctx.incoming = true;
        let argv = qemu_argv(&vm, &ctx);
        assert!(around(argv.clone(), "-object")[1].ends_with("mem-path=/dev/shm/lago-0/frozen-x/vm01.mem,share=off"));
        let at = argv.iter().position(|a| a == "-S").unwrap();
        assert_eq!(argv[at..at + 3], ["-S", "-incoming", "defer"]);
        assert!(argv.windows(2).any(|w| w == ["-device", "vmgenid,guid=auto"]));
        // Ordinary memory: `-m` alone, as before.
        ctx.memory = Memory::Ram;
        assert!(!qemu_argv(&vm, &ctx).contains(&"-object".to_owned()));
        // A VM that asks for less than its template's `min-memory` runs with the minimum: its
        // memory file is as large as `-m` says (qemu refuses a backend of another size).
        let small: VmRecord = serde_json::from_str(
            r#"{"name": "vm01", "memory": 64, "disks": [{"path": "/x.qcow2", "metadata": {"min-memory": 128}}]}"#,
        )
        .unwrap();
        ctx.memory = Memory::File { path: "/dev/shm/lago-0/ab/vm01.mem".into(), shared: true };
        let argv = qemu_argv(&small, &ctx);
        assert_eq!(argv[argv.iter().position(|a| a == "-m").unwrap() + 1], "128");
        assert!(around(argv, "-object")[1].contains(",size=128M,"));
    }

    /// `cpu_custom` as the documentation writes it (reference §6.3) on a KVM host.
    #[test]
    fn argv_of_a_vm_with_cpu_custom() {
        let vm: VmRecord = serde_json::from_str(
            r##"{"name": "vm-el73", "memory": 4096, "vcpu": 2, "mgmt_net": "lago",
                "cpu_custom": {"@mode": "custom", "@match": "exact",
                    "model": {"@fallback": "allow", "#text": "Westmere"},
                    "feature": {"@policy": "optional", "@name": "vmx"},
                    "numa": {"cell": [{"@id": 0, "@cpus": 0, "@memory": 2048, "@unit": "MiB"},
                                      {"@id": 1, "@cpus": 1, "@memory": 2048, "@unit": "MiB"}]}},
                "nics": [], "disks": []}"##,
        )
        .unwrap();
        let ctx = LaunchContext { accel: Accel::Kvm, ..LaunchContext::for_test("/w/.lago/default") };
        let argv = qemu_argv(&vm, &ctx);
        let cpu: Vec<&String> = argv.iter().skip_while(|a| *a != "-accel").take_while(|a| *a != "-qmp").collect();
        insta::assert_snapshot!(cpu.iter().map(|a| a.as_str()).collect::<Vec<_>>().join("\n"), @"
        -accel
        kvm
        -cpu
        Westmere,vmx=on
        -m
        4096
        -smp
        2,sockets=2,cores=1,threads=1
        -object
        memory-backend-ram,id=lago-numa0,size=2097152K
        -numa
        node,nodeid=0,cpus=0,memdev=lago-numa0
        -object
        memory-backend-ram,id=lago-numa1,size=2097152K
        -numa
        node,nodeid=1,cpus=1,memdev=lago-numa1
        ");
    }
}
