//! The files of a fork: the prefix as it was frozen (`skel/` of the frozen state), and copies
//! made from it, each a whole prefix of the same directory (its own uuid, runtime directory,
//! networks and ports), built in a staging directory and renamed into place as `init` does.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::ForkError;
use crate::host::pathio::at;
use crate::prefix::frozen::{ForkRecord, Frozen};
use crate::prefix::state::State;
use crate::prefix::{Layout, Prefix};

/// Files of a prefix a copy takes as they are (those that exist).
const FILES: &[&str] = &["metadata", "id_rsa", "id_rsa.pub", "known_hosts", crate::prefix::STORE_USES];
/// Directories of a prefix a copy takes as they are.
const DIRS: &[&str] = &["virt", "scripts"];

/// Copies the tree `from` into `to` (made), hard-linking the files `link` says (read-only
/// images), copying the others.
pub(crate) fn copy_tree(from: &Path, to: &Path, link: &dyn Fn(&Path) -> bool) -> Result<(), ForkError> {
    std::fs::create_dir_all(to).map_err(at("create", to))?;
    for entry in std::fs::read_dir(from).map_err(at("read", from))? {
        let entry = entry.map_err(at("read", from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(at("read", &src))?;
        if kind.is_dir() {
            copy_tree(&src, &dst, link)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&src).map_err(at("read", &src))?;
            std::os::unix::fs::symlink(target, &dst).map_err(at("create", &dst))?;
        } else if !(link(&src) && std::fs::hard_link(&src, &dst).is_ok()) {
            std::fs::copy(&src, &dst).map_err(at("copy", &src))?;
        }
    }
    Ok(())
}

/// Writes `skel/` of `frozen`: the prefix `origin` as it is, without its snapshots (its disks
/// become the frozen disks, where they cannot be reverted to), its VMs' seeds, and its faults
/// and forwards (not its ports, which copies choose).
pub(super) fn write_skel(origin: &Prefix, frozen: &Frozen) -> Result<(), ForkError> {
    let skel = frozen.skel();
    for f in FILES {
        let src = origin.path.join(f);
        if src.exists() {
            std::fs::copy(&src, skel.join(f)).map_err(at("copy", &src))?;
        }
    }
    for d in DIRS {
        let src = origin.path.join(d);
        if src.is_dir() {
            copy_tree(&src, &skel.join(d), &|_| false)?;
        }
    }
    let skel_prefix = Prefix { path: skel.clone() };
    for (name, record) in skel_prefix.virt_env()?.vms {
        let copied = for_copies(record.clone());
        if copied != record {
            skel_prefix.save_vm_document(&name, &copied)?;
        }
        let seed = Layout::new(&origin.path).seed(&name);
        if seed.is_file() {
            let dst = Layout::new(&skel).seed(&name);
            std::fs::create_dir_all(Layout::new(&skel).images()).map_err(at("create", &skel))?;
            if std::fs::hard_link(&seed, &dst).is_err() {
                std::fs::copy(&seed, &dst).map_err(at("copy", &seed))?;
            }
        }
    }
    let state = State::load(&origin.path)?;
    // Copies forward the same ports of their guests, on host ports of their own (0: none yet).
    let mut forwards = state.forwards;
    for f in forwards.values_mut().flatten() {
        f.host = 0;
    }
    let kept = State {
        version: state.version,
        partitions: state.partitions,
        impairments: state.impairments,
        cut: state.cut,
        forwards,
        clock: state.clock,
        ..State::default()
    };
    kept.save(&skel)?;
    Ok(())
}

/// The state a copy of `frozen` starts with: the frozen faults and forwards.
pub(super) fn frozen_state(frozen: &Frozen) -> Result<State, ForkError> {
    Ok(State::load(&frozen.skel())?)
}

/// Makes copy `name` of `frozen` in `dir`: the skeleton's files, a new uuid, its `fork` record,
/// logs; renamed into place from a staging directory, under the copy's lock (`lock`). Its disks
/// are made when its VMs start.
pub(super) fn make_copy(frozen: &Frozen, dir: &Path, name: &str) -> Result<Prefix, ForkError> {
    let path = dir.join(name);
    let staging = dir.join(format!(".{name}.init-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let made = (|| {
        // The record first: the frozen state is used from the moment the copy exists at all.
        std::fs::create_dir_all(&staging).map_err(at("create", &staging))?;
        let mut uses = vec![frozen.dir.clone()];
        uses.extend(frozen.manifest.parents.iter().cloned());
        ForkRecord { copy_of: Some(frozen.dir.clone()), last: Some(frozen.dir.clone()), uses, ..ForkRecord::default() }
            .save(&staging)?;
        copy_tree(&frozen.skel(), &staging, &|p| p.extension().is_some_and(|x| x == "img"))?;
        let uuid = uuid::Uuid::new_v4().simple().to_string();
        let layout = Layout::new(&staging);
        std::fs::write(layout.uuid(), &uuid).map_err(at("write", &layout.uuid()))?;
        std::fs::create_dir_all(layout.logs()).map_err(at("create", &layout.logs()))?;
        std::fs::create_dir_all(layout.images()).map_err(at("create", &layout.images()))?;
        std::fs::write(layout.initialized(), b"").map_err(at("write", &layout.initialized()))?;
        std::fs::rename(&staging, &path).map_err(at("rename", &staging))?;
        Ok(Prefix { path: path.clone() })
    })();
    if made.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    made
}

/// A disk of a VM to freeze: its index in the record, its device, and its file.
pub(super) type Disk = (usize, String, PathBuf);

/// The disks of `record` that a fork freezes (every disk but CD-ROMs), with why one cannot be:
/// only qcow2 images of the prefix are.
pub(super) fn freezable_disks(prefix: &Path, record: &crate::prefix::records::VmRecord) -> Result<Vec<Disk>, String> {
    let mut out = Vec::new();
    for (i, d) in record.disks.iter().enumerate() {
        if d.format == "iso" {
            continue;
        }
        let path = PathBuf::from(d.path.replace("$LAGO_PREFIX_PATH", &prefix.display().to_string()));
        if d.format != "qcow2" {
            return Err(format!("its disk {} is {} (only qcow2 disks are frozen, as overlays)", d.dev, d.format));
        }
        if !path.starts_with(prefix) {
            return Err(format!(
                "its disk {} is {}, outside the prefix: the copies would write into it together",
                d.dev,
                path.display()
            ));
        }
        out.push((i, d.dev.clone(), path));
    }
    Ok(out)
}

/// A VM record as copies have it: without snapshots (`{}`: their disks are new overlays), and
/// its init file's `forwards` without fixed host ports (the origin has those: a copy's forwards
/// are on ports of its own).
pub(super) fn for_copies(mut record: serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
    if record.get("snapshots").is_some_and(|s| s.as_object().is_none_or(|m| !m.is_empty())) {
        record.insert("snapshots".into(), json!({}));
    }
    if let Some(Value::Array(forwards)) = record.get_mut("forwards") {
        for f in forwards.iter_mut().filter_map(Value::as_object_mut) {
            f.remove("host");
        }
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_takes_the_frozen_prefix_with_a_uuid_and_record_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let shm = tempfile::tempdir().unwrap();
        let origin = crate::env::fake::prefix_with_vms(dir.path(), &["vm00"]);
        std::fs::write(origin.path.join("id_rsa"), "key").unwrap();
        std::fs::create_dir_all(origin.path.join("images")).unwrap();
        std::fs::write(Layout::new(&origin.path).seed("vm00"), "seed").unwrap();
        let mut record = origin.vm_document("vm00").unwrap();
        record.insert("snapshots".into(), json!({"clean": [{"dev": "vda"}]}));
        record.insert("forwards".into(), json!([{"guest": 80, "host": 8080}, {"guest": 22}]));
        origin.save_vm_document("vm00", &record).unwrap();
        let mut state = State::load(&origin.path).unwrap();
        state.ssh_ports.insert("vm00".into(), 2222);
        state.cut.insert("vm00".into(), vec![0]);
        state.save(&origin.path).unwrap();

        let frozen = Frozen::create(dir.path(), "p", shm.path()).unwrap();
        frozen.save().unwrap();
        write_skel(&origin, &frozen).unwrap();
        let copy = make_copy(&frozen, dir.path(), "p-1").unwrap();
        assert_eq!(std::fs::read_to_string(copy.path.join("id_rsa")).unwrap(), "key");
        assert_ne!(copy.uuid().unwrap(), origin.uuid().unwrap());
        assert!(Prefix::is_prefix(&copy.path));
        assert_eq!(copy.vm_document("vm00").unwrap()["snapshots"], json!({}));
        assert_eq!(copy.vm_document("vm00").unwrap()["forwards"], json!([{"guest": 80}, {"guest": 22}]));
        use std::os::unix::fs::MetadataExt;
        let seed = std::fs::metadata(Layout::new(&copy.path).seed("vm00")).unwrap();
        assert_eq!(seed.ino(), std::fs::metadata(Layout::new(&origin.path).seed("vm00")).unwrap().ino());
        let state = State::load(&copy.path).unwrap();
        assert!(state.ssh_ports.is_empty(), "{state:?}");
        assert_eq!(state.cut["vm00"], [0]);
        let record = ForkRecord::load(&copy.path).unwrap();
        assert_eq!(record.copy_of.as_deref(), Some(frozen.dir.as_path()));
        assert_eq!(record.uses, std::slice::from_ref(&frozen.dir));
        // No staging directory is left.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.contains(".init-")), "{names:?}");
    }

    #[test]
    fn only_qcow2_disks_of_the_prefix_freeze() {
        let vm = |disks: Value| -> crate::prefix::records::VmRecord {
            serde_json::from_value(json!({"name": "vm01", "disks": disks})).unwrap()
        };
        let p = Path::new("/w/p");
        let ok = vm(json!([{"path": "$LAGO_PREFIX_PATH/images/vm01_root.qcow2", "dev": "vda"},
                           {"path": "/isos/x.iso", "dev": "hdc", "format": "iso"}]));
        assert_eq!(
            freezable_disks(p, &ok).unwrap(),
            [(0, "vda".to_owned(), PathBuf::from("/w/p/images/vm01_root.qcow2"))]
        );
        let raw = vm(json!([{"path": "$LAGO_PREFIX_PATH/images/d.raw", "dev": "vdb", "format": "raw"}]));
        assert!(freezable_disks(p, &raw).unwrap_err().contains("is raw"));
        let outside = vm(json!([{"path": "/data/d.qcow2", "dev": "vdb"}]));
        assert!(freezable_disks(p, &outside).unwrap_err().contains("outside the prefix"));
    }
}
