//! Mappings of the init file as written.
//!
//! The original deep-copied each domain, disk and NIC of the init file into the records of the
//! prefix (`virt/vm-<name>`, the SDK's `vm.spec`) and added what it decided (a disk's `path` and
//! `metadata`, a NIC's `ip`...). So that the records keep every key users wrote (`comment`,
//! keys `[init] strict = false` tolerated, keys of plugins), the typed [`Spec`](super::Spec)
//! carries, beside what lago reads, the mapping it was read from: [`Written`].

use serde_json::{Map, Value};

/// One mapping of the init file (a domain with its `based-on` keys merged, a disk, a NIC, a
/// network), key for key, in the order written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Written(Map<String, Value>);

impl Written {
    /// The mapping `map` as written.
    pub fn new(map: &Map<String, Value>) -> Self {
        Self(map.clone())
    }

    /// Its keys and values.
    pub fn map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// A copy to build a record on: what lago decides is then set on it, replacing what was
    /// written under the same key.
    pub fn to_record(&self) -> Map<String, Value> {
        self.0.clone()
    }

    /// The value written under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use crate::spec::{IssueKind, parse_partial};

    const INIT: &str = "
base: &base
  memory: 512
  comment: from the base
domains:
  vm01:
    comment: the web server
    flavour: tolerated
    nics:
      - {net: lago, comment: management, ip: 192.168.200.9}
    disks:
      - {template_name: tiny, type: template, name: root, dev: vda, format: qcow2, comment: Main disk, owner: web}
  vm02:
    <<: *base
    comment: the database
    nics: [{net: lago}]
nets:
  lago: {comment: the only net, management: true}
";

    #[test]
    fn every_key_is_kept_as_written_in_order() {
        let (spec, issues) = parse_partial(INIT, Path::new("LagoInitFile")).unwrap();
        // The unknown keys are said (errors unless `[init] strict = false`), and kept.
        let unknown: Vec<&str> =
            issues.iter().filter(|i| i.kind == IssueKind::UnknownKey).map(|i| i.key.as_str()).collect();
        assert_eq!(unknown, ["domains.vm01.flavour", "domains.vm01.disks[0].owner"]);
        let dom = &spec.domains[0];
        let keys: Vec<&str> = dom.written.map().keys().map(String::as_str).collect();
        assert_eq!(keys, ["comment", "flavour", "nics", "disks"]);
        assert_eq!(dom.written.get("comment"), Some(&json!("the web server")));
        // YAML merges are applied: the merged keys are written keys too, the domain's own win.
        let merged = &spec.domains[1].written;
        assert_eq!((merged.get("memory"), merged.get("comment")), (Some(&json!(512)), Some(&json!("the database"))));
        assert_eq!(merged.get("<<"), None);
        assert_eq!(
            dom.disks[0].written.map(),
            json!({"template_name": "tiny", "type": "template", "name": "root", "dev": "vda",
                   "format": "qcow2", "comment": "Main disk", "owner": "web"})
            .as_object()
            .unwrap()
        );
        assert_eq!(dom.nics[0].written.get("comment"), Some(&json!("management")));
        assert_eq!(dom.nics[0].written.get("ip"), Some(&json!("192.168.200.9")));
        assert_eq!(spec.nets[0].written.get("comment"), Some(&json!("the only net")));
    }

    #[test]
    fn based_on_is_merged_and_dropped_as_the_original_did() {
        let text = "domains:\n  a:\n    based-on: {memory: 256, comment: base}\n    comment: mine\n    nics: [{net: n}]\nnets:\n  n: {}\n";
        let (spec, _) = parse_partial(text, Path::new("LagoInitFile")).unwrap();
        let written = spec.domains[0].written.map();
        assert_eq!(written.get("based-on"), None);
        assert_eq!(written.get("memory"), Some(&json!(256)));
        assert_eq!(written.get("comment"), Some(&json!("mine")));
    }
}
