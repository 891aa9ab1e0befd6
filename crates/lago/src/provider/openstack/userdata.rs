//! A server's `user_data`: the VM's seed files (what its `CIDATA` seed holds, read from the
//! prefix) with the management NIC added to `lago/interfaces` and `network-config`, as an
//! uncompressed `newc` cpio archive, base64-encoded. The template finds it on the config drive
//! (`openstack/latest/user_data`) and unpacks it where the seed would be mounted.

use std::io::Read;
use std::path::Path;

use super::OpenstackError;
use crate::prefix::records::VmRecord;

/// The files of a FAT seed image (`(name, bytes)`, `lago/...` for those in its `lago` folder).
pub fn seed_files(image: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let file = std::fs::File::open(image)?;
    let fs = fatfs::FileSystem::new(file, fatfs::FsOptions::new())?;
    let mut out = Vec::new();
    fn walk<T: fatfs::ReadWriteSeek>(
        dir: fatfs::Dir<'_, T>,
        at: &str,
        out: &mut Vec<(String, Vec<u8>)>,
    ) -> std::io::Result<()> {
        for e in dir.iter() {
            let e = e?;
            let name = e.file_name();
            if name == "." || name == ".." {
                continue;
            }
            let path = if at.is_empty() { name.clone() } else { format!("{at}/{name}") };
            if e.is_dir() {
                walk(e.to_dir(), &path, out)?;
            } else {
                let mut bytes = Vec::new();
                e.to_file().read_to_end(&mut bytes)?;
                out.push((path, bytes));
            }
        }
        Ok(())
    }
    walk(fs.root_dir(), "", &mut out)?;
    Ok(out)
}

/// `files` with the management NIC (`mac`, `address`/`plen`) added as the VM's last NIC.
pub fn with_mgmt_nic(
    mut files: Vec<(String, Vec<u8>)>,
    nics: usize,
    mac: &str,
    address: &str,
    plen: u8,
) -> Vec<(String, Vec<u8>)> {
    let name = format!("eth{nics}");
    let mut add = |file: &str, text: String| match files.iter_mut().find(|(n, _)| n == file) {
        Some((_, bytes)) => bytes.extend_from_slice(text.as_bytes()),
        None => files.push((file.to_owned(), text.into_bytes())),
    };
    add("lago/interfaces", format!("{mac} {name} {address}/{plen} 1500\n"));
    add(
        "network-config",
        format!(
            "  {name}:\n    match:\n      macaddress: \"{mac}\"\n    set-name: {name}\n    dhcp4: false\n    addresses:\n      - {address}/{plen}\n"
        ),
    );
    files
}

/// `files` with each NIC's MTU in `lago/interfaces` (its fourth column) lowered to the MTU
/// of its Neutron network, by MAC (`mtus`): a VXLAN network gives its ports 1450, and a guest
/// that asks more of such a NIC fails to bring it up.
pub fn cap_mtus(mut files: Vec<(String, Vec<u8>)>, mtus: &[(String, u32)]) -> Vec<(String, Vec<u8>)> {
    let Some((_, bytes)) = files.iter_mut().find(|(n, _)| n == "lago/interfaces") else { return files };
    let text = String::from_utf8_lossy(bytes).into_owned();
    let mut out = String::new();
    for line in text.lines() {
        let mut cols: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        if let (Some(mac), Some(mtu)) = (cols.first(), cols.get(3).and_then(|m| m.parse::<u32>().ok()))
            && let Some((_, cap)) = mtus.iter().find(|(m, _)| m.eq_ignore_ascii_case(mac))
            && mtu > *cap
        {
            cols[3] = cap.to_string();
        }
        out.push_str(&cols.join(" "));
        out.push('\n');
    }
    *bytes = out.into_bytes();
    files
}

/// A `newc` cpio archive of `files` (their folders first).
pub fn archive(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut cpio = crate::host::cpio::Cpio::default();
    let mut dirs: Vec<&str> = files.iter().filter_map(|(n, _)| n.rsplit_once('/').map(|(d, _)| d)).collect();
    dirs.sort_unstable();
    dirs.dedup();
    for d in dirs {
        cpio.dir(d);
    }
    for (name, bytes) in files {
        cpio.file(name, 0o644, bytes);
    }
    cpio.finish()
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The `user_data` of `vm`'s server.
pub fn user_data(
    prefix: &Path,
    vm: &VmRecord,
    mac: &str,
    address: &str,
    plen: u8,
    mtus: &[(String, u32)],
) -> Result<String, OpenstackError> {
    let seed = crate::prefix::Layout::new(prefix).seed(&vm.name);
    let files = if seed.is_file() {
        seed_files(&seed).map_err(|e| OpenstackError::Read { path: seed.clone(), message: e.to_string() })?
    } else {
        Vec::new()
    };
    Ok(base64(&archive(&cap_mtus(with_mgmt_nic(files, vm.nics.len(), mac, address, plen), mtus))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn the_management_nic_is_added_to_the_seed_and_archived() {
        let files = vec![
            ("lago/interfaces".to_owned(), b"54:52:c0:a8:c8:02 eth0 192.168.200.2/24 1500\n".to_vec()),
            ("network-config".to_owned(), b"version: 2\nethernets:\n".to_vec()),
        ];
        let files = with_mgmt_nic(files, 1, "fa:16:3e:00:00:01", "10.20.0.5", 24);
        assert_eq!(
            String::from_utf8_lossy(&files[0].1),
            "54:52:c0:a8:c8:02 eth0 192.168.200.2/24 1500\nfa:16:3e:00:00:01 eth1 10.20.0.5/24 1500\n"
        );
        assert!(
            String::from_utf8_lossy(&files[1].1)
                .contains("  eth1:\n    match:\n      macaddress: \"fa:16:3e:00:00:01\"")
        );
        let capped = cap_mtus(files.clone(), &[("54:52:C0:A8:C8:02".into(), 1450), ("fa:16:3e:00:00:01".into(), 1500)]);
        assert_eq!(
            String::from_utf8_lossy(&capped[0].1),
            "54:52:c0:a8:c8:02 eth0 192.168.200.2/24 1450\nfa:16:3e:00:00:01 eth1 10.20.0.5/24 1500\n"
        );
        let a = archive(&files);
        let text = String::from_utf8_lossy(&a);
        assert!(text.starts_with("070701"));
        assert!(text.contains("lago\0") && text.contains("lago/interfaces\0") && text.contains("TRAILER!!!"));
    }
}
