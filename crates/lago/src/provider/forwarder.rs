//! A forwarded port of a VM that has no uplink (`local-libvirt`): a small relay process that
//! listens on `127.0.0.1:<host>` and joins each connection to the VM's address, which the host
//! reaches on the VM's network (libvirt puts the gateway of a `nat` network on the host).
//!
//! One process per forward (`lago __switch --forward ...`, the entry that also runs switches),
//! outliving lago, its pid file `run/forward-<vm>-<host>.pid` and its log
//! `logs/forward-<vm>.log` in the prefix: `destroy` stops it with the environment's other
//! processes, the provider stops it with the VM, and it ends by itself when its pid file
//! disappears.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::ProviderError;
use crate::prefix::Layout;

/// The pid file of the forward of `127.0.0.1:host` to `vm`.
pub fn pid_file(prefix: &Path, vm: &str, host: u16) -> PathBuf {
    Layout::new(prefix).pid(&format!("forward-{vm}-{host}"))
}

/// Runs a relay from `listen` to `to` until its pid file disappears (or a signal ends it).
pub fn serve(listen: SocketAddr, to: SocketAddr, pid_file: &Path) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen)?;
    std::fs::write(pid_file, format!("{}\n", std::process::id()))?;
    listener.set_nonblocking(true)?;
    tracing::info!("forwarding {listen} to {to}");
    loop {
        match listener.accept() {
            Ok((client, _)) => {
                std::thread::spawn(move || relay(client, to));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if !pid_file.exists() {
                    tracing::info!("the pid file is gone, ending");
                    return Ok(());
                }
                wait_readable(&listener, Duration::from_millis(500));
            }
            Err(e) => tracing::warn!("accept: {e}"),
        }
    }
}

fn wait_readable(listener: &TcpListener, timeout: Duration) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    let _ = poll(&mut fds, PollTimeout::from(u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX)));
}

/// Joins one connection to the VM: bytes both ways until either side closes.
fn relay(client: TcpStream, to: SocketAddr) {
    let _ = client.set_nonblocking(false);
    let server = match TcpStream::connect_timeout(&to, Duration::from_secs(10)) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot reach {to}: {e}");
            return;
        }
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (Ok(mut client_r), Ok(mut server_w)) = (client.try_clone(), server.try_clone()) else { return };
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_r, &mut server_w);
        let _ = server_w.shutdown(std::net::Shutdown::Write);
    });
    let (mut server_r, mut client_w) = (server, client);
    let _ = std::io::copy(&mut server_r, &mut client_w);
    let _ = client_w.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

/// Starts the relay of `127.0.0.1:host` to `to` for `vm`, and waits until it listens.
pub fn start(prefix: &Path, vm: &str, host: u16, to: SocketAddr) -> Result<(), ProviderError> {
    let pid = pid_file(prefix, vm, host);
    let log = Layout::new(prefix).forward_log(vm);
    let failed = |message: String| ProviderError::Forward { vm: vm.to_owned(), host, guest: to.port(), message };
    crate::prefix::ensure_runtime_dir(prefix).map_err(|e| failed(e.to_string()))?;
    let _ = std::fs::remove_file(&pid);
    let argv = crate::provider::qemu::switch::launcher();
    let inv = crate::host::process::Invocation::new(&argv[0])
        .args(&argv[1..])
        .arg("--forward")
        .arg(format!("127.0.0.1:{host}"))
        .arg("--to")
        .arg(to.to_string())
        .arg("--pidfile")
        .arg(&pid);
    let mut child = crate::host::process::spawn_detached(&inv, &log).map_err(|e| failed(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if crate::prefix::running_pid(&pid).is_some() {
            std::thread::spawn(move || {
                let _ = child.wait();
            });
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let said = crate::provider::tail_file(&log, 2).trim().replace('\n', " / ");
            return Err(failed(format!("`{inv}` exited ({status}): {said}")));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(failed(format!("`{inv}` did not listen within 10 s (its log: {})", log.display())));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Ends the relay of `127.0.0.1:host` of `vm`.
pub fn stop(prefix: &Path, vm: &str, host: u16) {
    end(&pid_file(prefix, vm, host));
}

/// Ends every relay of `vm`.
pub fn stop_all(prefix: &Path, vm: &str) {
    let start = format!("forward-{vm}-");
    let Ok(entries) = std::fs::read_dir(Layout::new(prefix).run()) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let port = name.strip_prefix(&start).and_then(|r| r.strip_suffix(".pid"));
        if port.is_some_and(|p| p.parse::<u16>().is_ok()) {
            end(&e.path());
        }
    }
}

fn end(pid_file: &Path) {
    crate::prefix::terminate(pid_file, Duration::from_secs(2));
    let _ = std::fs::remove_file(pid_file);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn a_relay_joins_connections_to_the_target_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("forward-vm01-1.pid");
        // The "VM": an echo server that upper-cases.
        let vm = TcpListener::bind("127.0.0.1:0").unwrap();
        let to = vm.local_addr().unwrap();
        std::thread::spawn(move || {
            for c in vm.incoming().flatten() {
                let mut c = c;
                let mut buf = [0u8; 5];
                c.read_exact(&mut buf).unwrap();
                c.write_all(&buf.to_ascii_uppercase()).unwrap();
            }
        });
        let port = crate::provider::free_port().unwrap();
        let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let p = pid.clone();
        let relay = std::thread::spawn(move || serve(listen, to, &p));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !pid.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        for _ in 0..2 {
            let mut c = TcpStream::connect(listen).unwrap();
            c.write_all(b"hello").unwrap();
            let mut got = [0u8; 5];
            c.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"HELLO");
        }
        // Its pid file gone, it ends.
        std::fs::remove_file(&pid).unwrap();
        relay.join().unwrap().unwrap();
    }
}
