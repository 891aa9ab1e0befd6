//! The host: everything lago asks of the machine it runs on, and nothing else.
//!
//! Processes and programs ([`process`], the only place that builds a `Command`), interrupts,
//! files ([`pathio`]), locks ([`lock`]), the QMP and qemu-guest-agent wire ([`qmp`]), the OpenSSH
//! client ([`ssh`], and the sessions the SDKs keep open: [`ssh_session`]), `qemu-img` ([`images`], the only place that builds its arguments),
//! downloads ([`fetch`]), host network interfaces ([`netdev`]: the TAP of a network's host leg),
//! the host's memory and tmpfs ([`memory`]: where VMs' memory files live),
//! the per-prefix log file, the cpio format of initramfs images, the filesystems mounted under a
//! directory ([`mounts`]: detached before it is removed). Nothing
//! here knows what an environment, a prefix or a VM record is: callers pass paths.

pub mod cpio;
pub mod fetch;
pub mod images;
pub mod interrupt;
pub mod lock;
pub mod logfile;
pub mod memory;
pub mod mounts;
pub mod netdev;
pub mod pathio;
pub mod process;
pub mod qmp;
pub mod ssh;
pub mod ssh_session;

/// A free TCP port on 127.0.0.1 (for an SSH forward).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
