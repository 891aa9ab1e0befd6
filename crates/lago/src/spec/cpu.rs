//! `cpu_model` and `cpu_custom` as qemu options (reference §6.3, DESIGN §2).
//!
//! The original wrote `cpu_custom` into libvirt's `<cpu>` element as it was (`@attr`, `#text`).
//! The qemu provider expresses the same element with `-cpu MODEL,feature=on|off,...`, `-smp` for
//! the topology and `-object memory-backend-ram` + `-numa node` for NUMA cells; whatever qemu cannot
//! express is an error that names the key. [`qemu_cpu`] is pure: `init` runs it to check the init
//! file, the provider to build the command line.

use serde_json::Value;

use crate::config::Accel;

/// qemu options for a VM's CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuOptions {
    /// The `-cpu` value.
    pub cpu: String,
    /// The `-smp` value.
    pub smp: String,
    /// Further options (NUMA memory backends and nodes), as argv words.
    pub extra: Vec<String>,
}

/// A part of `cpu_custom` qemu cannot take: where (relative to `cpu_custom`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuIssue {
    /// Key path below `cpu_custom` (`feature[1].@policy`); empty for the element itself.
    pub path: String,
    /// What is wrong and what was expected.
    pub reason: String,
}

/// The CPU model lago uses when the init file names none: the host's under KVM, every feature
/// TCG emulates otherwise.
pub fn default_model(accel: Accel) -> &'static str {
    if accel == Accel::Kvm { "host" } else { "max" }
}

/// The vendor of CPU model `model` in libvirt's CPU map (`/usr/share/libvirt/cpu_map/x86_<model>.xml`,
/// `<vendor name='Intel'/>`), as the original looked it up; `None` when libvirt is not there or
/// the model has no vendor.
pub fn model_vendor(model: &str) -> Option<String> {
    if !is_word(model) {
        return None;
    }
    vendor_in_map(&std::fs::read_to_string(format!("/usr/share/libvirt/cpu_map/x86_{model}.xml")).ok()?)
}

/// The `<vendor name=...>` of a CPU map file.
fn vendor_in_map(text: &str) -> Option<String> {
    let at = text.find("<vendor name=")? + "<vendor name=".len();
    let quote = text[at..].chars().next()?;
    let rest = &text[at + 1..];
    Some(rest[..rest.find(quote)?].to_owned())
}

/// The options of a VM without `cpu_custom`: `cpu_model` or the default, and the documented
/// topology (one socket per CPU).
pub fn plain(cpu_model: Option<&str>, vcpu: u64, accel: Accel) -> CpuOptions {
    CpuOptions {
        cpu: cpu_model.unwrap_or(default_model(accel)).to_owned(),
        smp: format!("{vcpu},sockets={vcpu},cores=1,threads=1"),
        extra: Vec::new(),
    }
}

/// The `-cpu`/`-smp`/`-numa` options of a VM with `vcpu` CPUs and `memory` MiB.
pub fn qemu_cpu(
    cpu_model: Option<&str>,
    cpu_custom: Option<&Value>,
    vcpu: u64,
    memory: u64,
    accel: Accel,
) -> Result<CpuOptions, Vec<CpuIssue>> {
    let plain_smp = plain(None, vcpu, accel).smp;
    let Some(custom) = cpu_custom else {
        return Ok(plain(cpu_model, vcpu, accel));
    };
    let mut issues = Vec::new();
    let mut bad = |path: &str, reason: String| issues.push(CpuIssue { path: path.to_owned(), reason });
    let Some(map) = custom.as_object() else {
        bad("", "expected a mapping describing libvirt's <cpu> element".into());
        return Err(issues);
    };
    const KNOWN: &[&str] = &["@mode", "@match", "@check", "model", "vendor", "feature", "topology", "numa"];
    for key in map.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
        bad(key, format!("qemu's -cpu cannot express this part of <cpu> (lago maps: {})", KNOWN.join(", ")));
    }
    let mode = text(map.get("@mode")).unwrap_or_else(|| "custom".into());
    let mut model = match mode.as_str() {
        "custom" => None,
        "host-passthrough" | "host-model" => Some(default_model(accel).to_owned()),
        "maximum" => Some("max".to_owned()),
        other => {
            bad("@mode", format!("{other:?} is not a mode (expected custom, host-passthrough, host-model or maximum)"));
            None
        }
    };
    if let Some(m) = map.get("@match").and_then(|v| text(Some(v)))
        && !["exact", "strict", "minimum"].contains(&m.as_str())
    {
        bad("@match", format!("{m:?} is not a match mode (expected exact, strict or minimum)"));
    }
    let mut props: Vec<String> = Vec::new();
    match map.get("@check").and_then(|v| text(Some(v))).as_deref() {
        None | Some("none") | Some("partial") => {}
        Some("full") => props.push("enforce=on".into()),
        Some(other) => bad("@check", format!("{other:?} is not a check mode (expected none, partial or full)")),
    }
    match map.get("model") {
        None => {}
        Some(_) if mode != "custom" => bad("model", format!("a model is only for `@mode: custom` (this is {mode})")),
        Some(Value::Object(m)) => {
            for key in m.keys().filter(|k| !["#text", "@fallback", "@vendor_id"].contains(&k.as_str())) {
                bad(&format!("model.{key}"), "qemu cannot express this (expected #text, @fallback, @vendor_id)".into());
            }
            match text(m.get("#text")) {
                Some(name) if is_word(&name) => model = Some(name),
                Some(name) => bad("model.#text", format!("{name:?} is not a CPU model name")),
                None => bad("model.#text", "missing (expected the CPU model name, e.g. Westmere)".into()),
            }
            if let Some(f) = text(m.get("@fallback"))
                && f != "allow"
                && f != "forbid"
            {
                bad("model.@fallback", format!("{f:?} is not a fallback (expected allow or forbid)"));
            }
            if let Some(id) = text(m.get("@vendor_id")) {
                if id.len() == 12 && id.is_ascii() {
                    props.push(format!("vendor={id}"));
                } else {
                    bad("model.@vendor_id", format!("{id:?} is not a CPUID vendor (expected 12 characters)"));
                }
            }
        }
        Some(v) => match text(Some(v)) {
            Some(name) if is_word(&name) => model = Some(name),
            _ => bad("model", format!("expected a CPU model name, found {v}")),
        },
    }
    if mode == "custom" && model.is_none() && map.get("model").is_none() {
        bad("model", "missing (`@mode: custom` needs a model, e.g. Westmere)".into());
    }
    if let Some(v) = map.get("vendor") {
        match text(Some(v)).as_deref() {
            Some("Intel") => props.push("vendor=GenuineIntel".into()),
            Some("AMD") => props.push("vendor=AuthenticAMD".into()),
            _ => bad("vendor", format!("expected Intel or AMD, found {v}")),
        }
    }
    for (i, f) in list(map.get("feature")).into_iter().enumerate() {
        let path =
            if map.get("feature").is_some_and(Value::is_array) { format!("feature[{i}]") } else { "feature".into() };
        let Some(f) = f.as_object() else {
            bad(&path, "expected a mapping with @name and @policy".into());
            continue;
        };
        for key in f.keys().filter(|k| !["@name", "@policy"].contains(&k.as_str())) {
            bad(&format!("{path}.{key}"), "unknown attribute (expected @name, @policy)".into());
        }
        let Some(name) = text(f.get("@name")).filter(|n| is_word(n)) else {
            bad(&format!("{path}.@name"), "missing or not a feature name (e.g. vmx)".into());
            continue;
        };
        match text(f.get("@policy")).as_deref().unwrap_or("require") {
            "force" | "require" | "optional" => props.push(format!("{name}=on")),
            "disable" | "forbid" => props.push(format!("{name}=off")),
            other => bad(
                &format!("{path}.@policy"),
                format!("{other:?} is not a policy (expected force, require, optional, disable or forbid)"),
            ),
        }
    }
    let smp = match map.get("topology") {
        None => plain_smp,
        Some(t) => topology(t, vcpu, &mut bad).unwrap_or(plain_smp),
    };
    let extra = match map.get("numa") {
        None => Vec::new(),
        Some(n) => numa(n, vcpu, memory, &mut bad),
    };
    if !issues.is_empty() {
        return Err(issues);
    }
    let mut cpu = model.unwrap_or_else(|| default_model(accel).to_owned());
    for p in props {
        cpu.push(',');
        cpu.push_str(&p);
    }
    Ok(CpuOptions { cpu, smp, extra })
}

fn topology(t: &Value, vcpu: u64, bad: &mut impl FnMut(&str, String)) -> Option<String> {
    let Some(t) = t.as_object() else {
        bad("topology", "expected a mapping with @sockets, @cores, @threads".into());
        return None;
    };
    let mut parts = Vec::new();
    let mut product = 1;
    let mut ok = true;
    for key in t.keys().filter(|k| !["@sockets", "@dies", "@clusters", "@cores", "@threads"].contains(&k.as_str())) {
        bad(
            &format!("topology.{key}"),
            "unknown attribute (expected @sockets, @dies, @clusters, @cores, @threads)".into(),
        );
        ok = false;
    }
    for key in ["@sockets", "@dies", "@clusters", "@cores", "@threads"] {
        let Some(v) = t.get(key) else { continue };
        match number(v).filter(|n| *n >= 1) {
            Some(n) => {
                product *= n;
                parts.push(format!("{}={n}", key.trim_start_matches('@')));
            }
            None => {
                bad(&format!("topology.{key}"), format!("expected a whole number >= 1, found {v}"));
                ok = false;
            }
        }
    }
    if ok && product != vcpu {
        bad("topology", format!("gives {product} CPUs ({}), but vcpu is {vcpu}", parts.join(" × ")));
        ok = false;
    }
    ok.then(|| format!("{vcpu},{}", parts.join(",")))
}

fn numa(n: &Value, vcpu: u64, memory: u64, bad: &mut impl FnMut(&str, String)) -> Vec<String> {
    let Some(n) = n.as_object() else {
        bad("numa", "expected a mapping with `cell`".into());
        return Vec::new();
    };
    for key in n.keys().filter(|k| *k != "cell") {
        bad(&format!("numa.{key}"), "qemu cannot express this (expected cell)".into());
    }
    let cells = list(n.get("cell"));
    if cells.is_empty() {
        bad("numa.cell", "missing (expected one or more cells with @cpus and @memory)".into());
    }
    let mut extra = Vec::new();
    let mut total_kib: u64 = 0;
    let mut complete = true;
    for (i, c) in cells.iter().enumerate() {
        let path =
            if n.get("cell").is_some_and(Value::is_array) { format!("numa.cell[{i}]") } else { "numa.cell".into() };
        let Some(c) = c.as_object() else {
            bad(&path, "expected a mapping with @id, @cpus, @memory, @unit".into());
            complete = false;
            continue;
        };
        for key in c.keys().filter(|k| !["@id", "@cpus", "@memory", "@unit"].contains(&k.as_str())) {
            bad(&format!("{path}.{key}"), "qemu cannot express this (expected @id, @cpus, @memory, @unit)".into());
        }
        let id = c.get("@id").map_or(Some(i as u64), number);
        let Some(id) = id else {
            bad(&format!("{path}.@id"), "expected a whole number".into());
            complete = false;
            continue;
        };
        let ranges = match c.get("@cpus").and_then(|v| text(Some(v))).map(|s| cpu_ranges(&s, vcpu)) {
            Some(Ok(r)) => r,
            Some(Err(why)) => {
                bad(&format!("{path}.@cpus"), why);
                complete = false;
                continue;
            }
            None => {
                bad(&format!("{path}.@cpus"), "missing (expected CPU numbers such as 0 or 0-1)".into());
                complete = false;
                continue;
            }
        };
        let unit = text(c.get("@unit")).unwrap_or_else(|| "KiB".into());
        let factor = match unit.as_str() {
            "KiB" | "k" | "K" => 1,
            "MiB" | "M" => 1024,
            "GiB" | "G" => 1024 * 1024,
            other => {
                bad(&format!("{path}.@unit"), format!("{other:?} is not a unit (expected KiB, MiB or GiB)"));
                complete = false;
                continue;
            }
        };
        let Some(kib) = c.get("@memory").and_then(number).map(|m| m * factor) else {
            bad(&format!("{path}.@memory"), "missing or not a whole number".into());
            complete = false;
            continue;
        };
        total_kib += kib;
        extra.extend(["-object".to_owned(), format!("memory-backend-ram,id=lago-numa{id},size={kib}K")]);
        let cpus: String = ranges.iter().map(|r| format!(",cpus={r}")).collect();
        extra.extend(["-numa".to_owned(), format!("node,nodeid={id}{cpus},memdev=lago-numa{id}")]);
    }
    // The total is only worth a word when every cell could be read.
    if complete && !cells.is_empty() && total_kib != memory * 1024 {
        bad(
            "numa",
            format!(
                "the cells hold {total_kib} KiB, but the VM has {memory} MiB ({} KiB): qemu needs them equal",
                memory * 1024
            ),
        );
    }
    extra
}

/// `0,2-3` → [`0`, `2-3`], each CPU below `vcpu`.
fn cpu_ranges(s: &str, vcpu: u64) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (Ok(a), Ok(b)) = (a.trim().parse::<u64>(), b.trim().parse::<u64>()) else {
            return Err(format!("{s:?} is not a CPU list (expected numbers and ranges such as 0,2-3)"));
        };
        if a > b || b >= vcpu {
            return Err(format!("{part:?} is outside the VM's CPUs 0-{}", vcpu.saturating_sub(1)));
        }
        out.push(if a == b { a.to_string() } else { format!("{a}-{b}") });
    }
    Ok(out)
}

fn list(v: Option<&Value>) -> Vec<Value> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(other) => vec![other.clone()],
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Names that go into qemu's comma-separated `-cpu` value as they are.
pub(crate) fn is_word(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

#[cfg(test)]
mod tests {

    #[test]
    fn vendors_of_libvirt_cpu_maps() {
        let map = "<cpus>\n  <model name='Westmere'>\n    <decode host='on' guest='on'/>\n    <signature family='6' model='44'/>\n    <vendor name='Intel'/>\n  </model>\n</cpus>\n";
        assert_eq!(vendor_in_map(map).as_deref(), Some("Intel"));
        assert_eq!(vendor_in_map("<cpus><model name=\"qemu64\"/></cpus>"), None);
        assert_eq!(vendor_in_map("<vendor name=\"AMD\"/>").as_deref(), Some("AMD"));
        assert_eq!(model_vendor("../etc/passwd"), None);
    }

    use serde_json::json;

    use super::*;

    fn custom(v: Value, vcpu: u64, memory: u64) -> Result<CpuOptions, Vec<CpuIssue>> {
        qemu_cpu(None, Some(&v), vcpu, memory, Accel::Tcg)
    }

    /// The example of the documentation (CPU.rst): model, feature, two NUMA cells.
    #[test]
    fn the_documented_example() {
        let v = json!({
            "@mode": "custom", "@match": "exact",
            "model": {"@fallback": "allow", "#text": "Westmere"},
            "feature": {"@policy": "optional", "@name": "vmx"},
            "numa": {"cell": [
                {"@id": 0, "@cpus": 0, "@memory": 2048, "@unit": "MiB"},
                {"@id": 1, "@cpus": 1, "@memory": 2048, "@unit": "MiB"}]}
        });
        let o = custom(v, 2, 4096).unwrap();
        insta::assert_snapshot!(format!("-cpu {}\n-smp {}\n{}", o.cpu, o.smp, o.extra.join(" ")), @r"
        -cpu Westmere,vmx=on
        -smp 2,sockets=2,cores=1,threads=1
        -object memory-backend-ram,id=lago-numa0,size=2097152K -numa node,nodeid=0,cpus=0,memdev=lago-numa0 -object memory-backend-ram,id=lago-numa1,size=2097152K -numa node,nodeid=1,cpus=1,memdev=lago-numa1
        ");
    }

    #[test]
    fn policies_vendor_check_and_topology() {
        let v = json!({
            "@check": "full",
            "model": "Skylake-Client", "vendor": "Intel",
            "feature": [{"@name": "pcid", "@policy": "require"}, {"@name": "hle", "@policy": "disable"},
                        {"@name": "rtm", "@policy": "forbid"}, {"@name": "sse4.2", "@policy": "force"}, {"@name": "x2apic"}],
            "topology": {"@sockets": 1, "@cores": 2, "@threads": 2}
        });
        let o = custom(v, 4, 1024).unwrap();
        assert_eq!(o.cpu, "Skylake-Client,enforce=on,vendor=GenuineIntel,pcid=on,hle=off,rtm=off,sse4.2=on,x2apic=on");
        assert_eq!(o.smp, "4,sockets=1,cores=2,threads=2");
        assert!(o.extra.is_empty());
    }

    #[test]
    fn modes_without_a_model() {
        assert_eq!(custom(json!({"@mode": "host-passthrough"}), 1, 512).unwrap().cpu, "max");
        let kvm = qemu_cpu(None, Some(&json!({"@mode": "host-model"})), 1, 512, Accel::Kvm).unwrap();
        assert_eq!(kvm.cpu, "host");
        assert_eq!(custom(json!({"@mode": "maximum", "feature": {"@name": "vmx"}}), 1, 512).unwrap().cpu, "max,vmx=on");
        // No cpu_custom: cpu_model or the default, with the documented topology (sockets = vcpu).
        let plain = qemu_cpu(Some("Haswell"), None, 2, 512, Accel::Kvm).unwrap();
        assert_eq!((plain.cpu.as_str(), plain.smp.as_str()), ("Haswell", "2,sockets=2,cores=1,threads=1"));
    }

    #[test]
    fn what_qemu_cannot_express_is_named() {
        let v = json!({
            "@mode": "bogus", "cache": {"@mode": "passthrough"},
            "model": {"#text": "Westmere", "@bad": 1},
            "feature": [{"@name": "vmx", "@policy": "maybe"}],
            "topology": {"@sockets": 2, "@cores": 2},
            "numa": {"cell": [{"@cpus": "0-5", "@memory": 1}]}
        });
        let issues = custom(v, 2, 512).unwrap_err();
        let lines: Vec<String> = issues.iter().map(|i| format!("{}: {}", i.path, i.reason)).collect();
        insta::assert_snapshot!(lines.join("\n"), @r#"
        cache: qemu's -cpu cannot express this part of <cpu> (lago maps: @mode, @match, @check, model, vendor, feature, topology, numa)
        @mode: "bogus" is not a mode (expected custom, host-passthrough, host-model or maximum)
        model: a model is only for `@mode: custom` (this is bogus)
        feature[0].@policy: "maybe" is not a policy (expected force, require, optional, disable or forbid)
        topology: gives 4 CPUs (sockets=2 × cores=2), but vcpu is 2
        numa.cell[0].@cpus: "0-5" is outside the VM's CPUs 0-1
        "#);
        let issues =
            custom(json!({"numa": {"cell": {"@cpus": "0", "@memory": 1, "@unit": "GiB"}}, "model": "qemu64"}), 1, 512)
                .unwrap_err();
        assert_eq!(issues[0].path, "numa");
        assert!(issues[0].reason.starts_with("the cells hold 1048576 KiB, but the VM has 512 MiB"), "{issues:?}");
        assert_eq!(
            custom(json!("Westmere"), 1, 512).unwrap_err()[0].reason,
            "expected a mapping describing libvirt's <cpu> element"
        );
        assert_eq!(custom(json!({}), 1, 512).unwrap_err()[0].path, "model");
    }
}
