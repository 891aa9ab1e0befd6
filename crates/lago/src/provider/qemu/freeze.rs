//! Freezing a `local-qemu` VM and starting copies of it (`lago fork`, `docs/design.md` "Forks"),
//! qemu's side: the migration of a VM's device state to a file, and from it.
//!
//! A VM whose memory is its own file on a tmpfs, mapped shared, is frozen by saving its device
//! state with the capability `x-ignore-shared` (qemu then writes no page of memory that is a
//! shared file: about half a megabyte for a 256 MiB VM). A copy is a qemu with the same devices,
//! its memory that file mapped privately (`share=off`: its pages stay shared with the other
//! copies until it writes them), started with `-incoming defer`, into which the state is
//! loaded. The capability is switched off again afterwards, so that a later live snapshot of
//! either VM (`snapshot-save`) keeps its memory.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::elf::{self, Segment};
use super::vm_paths;
use crate::host::qmp::Qmp;
use crate::prefix::records::VmRecord;
use crate::provider::{LaunchContext, ProviderError};

/// Longest a migration of device state to or from a file may take.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(120);

/// Sets the capability `x-ignore-shared`.
fn ignore_shared(qmp: &mut Qmp, on: bool) -> Result<(), crate::host::qmp::QmpError> {
    qmp.execute(
        "migrate-set-capabilities",
        Some(json!({"capabilities": [{"capability": "x-ignore-shared", "state": on}]})),
    )?;
    Ok(())
}

/// Waits until the migration of `qmp`'s VM is over; its error when it failed.
fn wait_migration(qmp: &mut Qmp, vm: &str, job: &str) -> Result<(), ProviderError> {
    let qerr = |source| ProviderError::Qmp { vm: vm.to_owned(), source };
    let deadline = Instant::now() + MIGRATION_TIMEOUT;
    loop {
        let info = qmp.execute("query-migrate", None).map_err(qerr)?;
        match info.get("status").and_then(Value::as_str).unwrap_or("none") {
            "completed" => return Ok(()),
            "failed" | "cancelled" => {
                let why = info.get("error-desc").and_then(Value::as_str).unwrap_or("no reason given");
                return Err(ProviderError::Job { vm: vm.to_owned(), job: job.to_owned(), message: why.to_owned() });
            }
            _ if Instant::now() > deadline => {
                return Err(ProviderError::Job {
                    vm: vm.to_owned(),
                    job: job.to_owned(),
                    message: format!("not done after {} s", MIGRATION_TIMEOUT.as_secs()),
                });
            }
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Saves the device state of the paused VM whose QMP socket is `qmp_path` to `state` (its memory
/// stays in its shared file).
pub fn freeze(qmp_path: &Path, vm: &VmRecord, state: &Path) -> Result<(), ProviderError> {
    let qerr = |source| ProviderError::Qmp { vm: vm.name.clone(), source };
    let mut qmp = Qmp::connect(qmp_path, Duration::from_secs(10)).map_err(qerr)?;
    ignore_shared(&mut qmp, true).map_err(qerr)?;
    let saved = qmp
        .execute("migrate", Some(json!({"uri": format!("file:{}", state.display())})))
        .map_err(qerr)
        .and_then(|_| wait_migration(&mut qmp, &vm.name, "saving its device state"));
    let reset = ignore_shared(&mut qmp, false).map_err(qerr);
    saved.and(reset)
}

/// Freezes the paused VM whose memory is a frozen VM's file mapped privately (a copy): a helper
/// qemu with the same devices is started with `helper` (its memory a new file of its own,
/// mapped shared, and `-incoming defer`), the VM migrates into it over a Unix socket (its memory
/// and device state: the helper's file then holds its memory), and the helper is frozen to
/// `state` and ends. The VM stays paused, its disks inactive (it ends next).
pub fn freeze_through_helper(
    program: &Path,
    prefix: &Path,
    vm: &VmRecord,
    state: &Path,
    helper: &LaunchContext,
) -> Result<(), ProviderError> {
    let qerr = |source| ProviderError::Qmp { vm: vm.name.clone(), source };
    let scratch = helper.scratch.clone().unwrap_or_else(|| state.with_extension("helper"));
    std::fs::create_dir_all(&scratch).map_err(|source| ProviderError::Log { path: scratch.clone(), source })?;
    let mut child = super::launch(program, vm, helper)?;
    let done = (|| {
        let files = super::argv::Files::of(&vm.name, helper);
        let mut to = Qmp::connect(&files.qmp, Duration::from_secs(10)).map_err(qerr)?;
        let socket = scratch.join("migration");
        let uri = format!("unix:{}", socket.display());
        to.execute("migrate-incoming", Some(json!({ "uri": uri }))).map_err(qerr)?;
        let mut from = Qmp::connect(&vm_paths(prefix, &vm.name).0, Duration::from_secs(10)).map_err(qerr)?;
        from.execute("migrate", Some(json!({ "uri": uri }))).map_err(qerr)?;
        wait_migration(&mut from, &vm.name, "moving its memory into a file of its own")?;
        wait_migration(&mut to, &vm.name, "moving its memory into a file of its own")?;
        drop(to);
        freeze(&files.qmp, vm, state)
    })();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&scratch);
    done
}

/// Loads the device state `state` into the VM, started with `-incoming defer`; it stays paused.
pub fn thaw(prefix: &Path, vm: &VmRecord, state: &Path) -> Result<(), ProviderError> {
    let (qmp_path, _, _) = vm_paths(prefix, &vm.name);
    let qerr = |source| ProviderError::Qmp { vm: vm.name.clone(), source };
    let mut qmp = Qmp::connect(&qmp_path, Duration::from_secs(10)).map_err(qerr)?;
    ignore_shared(&mut qmp, true).map_err(qerr)?;
    qmp.execute("migrate-incoming", Some(json!({"uri": format!("file:{}", state.display())}))).map_err(qerr)?;
    wait_migration(&mut qmp, &vm.name, "loading the frozen device state")?;
    ignore_shared(&mut qmp, false).map_err(qerr)
}

/// The name of the stub kernel in its directory ([`write_stub`]).
pub const STUB_KERNEL: &str = "pvh-stub.elf";
/// The name of the empty initramfs beside it.
pub const STUB_INITRD: &str = "empty.initrd";

/// A stub kernel for the qemu of a VM that goes on from a frozen state, whose kernel is in its
/// memory already: an x86-64 ELF with a PVH entry note (`XEN_ELFNOTE_PHYS32_ENTRY`), so that
/// qemu sets the VM up as it did for the real kernel (the same `pvh.bin` option ROM, which a
/// migration carries), and 16 bytes of code (`hlt` in a loop). qemu keeps the kernel and the
/// initramfs it boots in its own memory, about 60 MiB for `tiny`'s: the stub spares every copy
/// that and the time it takes to read them.
pub fn pvh_stub() -> Vec<u8> {
    const ENTRY: u64 = 0x10_0000;
    let code = [0xf4u8, 0xeb, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]; // hlt; jmp hlt
    let mut note = Vec::new();
    note.extend(4u32.to_le_bytes()); // name size
    note.extend(8u32.to_le_bytes()); // descriptor size
    note.extend(18u32.to_le_bytes()); // XEN_ELFNOTE_PHYS32_ENTRY
    note.extend(b"Xen\0");
    note.extend(ENTRY.to_le_bytes());
    let code_at = elf::HEADER + 2 * elf::PROGRAM_HEADER;
    let note_at = code_at + code.len();
    let segments = [
        Segment { kind: 1, flags: 5, offset: code_at, addr: ENTRY, size: code.len(), align: 16 }, // PT_LOAD, R + X
        Segment { kind: 4, flags: 4, offset: note_at, addr: 0, size: note.len(), align: 4 },      // PT_NOTE
    ];
    elf::executable(ENTRY, &segments, &[&code[..], &note].concat())
}

/// Writes the stub kernel and an empty initramfs into `dir` ([`STUB_KERNEL`], [`STUB_INITRD`]).
pub fn write_stub(dir: &Path) -> std::io::Result<()> {
    std::fs::write(dir.join(STUB_KERNEL), pvh_stub())?;
    std::fs::write(dir.join(STUB_INITRD), b"")
}

/// What a running qemu runs its guest under, from its command line (`-accel kvm`, `-accel
/// tcg,...`): TCG unless it says KVM.
pub fn accel_of(cmdline: &[u8]) -> crate::config::Accel {
    let mut args = cmdline.split(|b| *b == 0);
    while let Some(arg) = args.next() {
        if arg == b"-accel" {
            return match args.next() {
                Some(v) if v.starts_with(b"kvm") => crate::config::Accel::Kvm,
                _ => crate::config::Accel::Tcg,
            };
        }
    }
    crate::config::Accel::Tcg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stub_kernel_is_an_elf_with_a_pvh_entry_note() {
        let elf = pvh_stub();
        assert_eq!(&elf[..4], b"\x7fELF");
        assert_eq!(u16::from_le_bytes([elf[56], elf[57]]), 2, "two program headers");
        let note = &elf[elf.len() - 24..];
        assert_eq!(u32::from_le_bytes(note[8..12].try_into().unwrap()), 18);
        assert_eq!(&note[12..16], b"Xen\0");
        assert_eq!(u64::from_le_bytes(note[16..].try_into().unwrap()), 0x10_0000);
    }

    #[test]
    fn what_a_qemu_runs_under_is_read_from_its_command_line() {
        use crate::config::Accel;
        assert_eq!(accel_of(b"qemu\0-accel\0kvm\0-cpu\0host\0"), Accel::Kvm);
        assert_eq!(accel_of(b"qemu\0-accel\0tcg,thread=single\0"), Accel::Tcg);
        assert_eq!(accel_of(b"qemu\0"), Accel::Tcg);
    }
}
