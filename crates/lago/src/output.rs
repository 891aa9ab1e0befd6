//! Output formats for information commands (`status`, `list`, `snapshot --list`, ...):
//! `default`, `flat`, `json`, `yaml`, byte-compatible with the original's output plugins
//! (reference §1.5): Python's `json.dumps(sort_keys=True, indent=4)`, PyYAML's
//! `safe_dump(default_flow_style=False)`, and Lago's own `default` and `flat` renderers.

use std::fmt::Write;

use serde_json::Value;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Nested `[key]:` blocks, empty values skipped.
    #[default]
    Default,
    /// One `a/b/c: value` line per leaf.
    Flat,
    /// JSON, sorted keys, 4-space indent.
    Json,
    /// Block YAML, sorted keys.
    Yaml,
}

impl Format {
    /// All formats, by name.
    pub const ALL: [(&'static str, Format); 4] =
        [("default", Format::Default), ("flat", Format::Flat), ("json", Format::Json), ("yaml", Format::Yaml)];

    /// The format called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    /// Renders `value` (without a trailing newline).
    pub fn render(self, value: &Value) -> String {
        match self {
            Format::Default => default_format(value, ""),
            Format::Flat => {
                let root = match value.get("Prefix") {
                    Some(p) if !is_falsy(p) => p,
                    _ => value,
                };
                let mut lines = Vec::new();
                flat(root, &mut Vec::new(), &mut lines);
                lines.join("\n")
            }
            Format::Json => python_json(value, true),
            Format::Yaml => {
                let mut out = String::new();
                yaml_node(value, 0, &mut out);
                out.trim_end_matches('\n').to_owned()
            }
        }
    }
}

fn is_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
    }
}

/// Python's `str()` of a scalar.
fn py_str(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

fn sorted(map: &serde_json::Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut items: Vec<_> = map.iter().collect();
    items.sort_by(|a, b| a.0.cmp(b.0));
    items
}

fn default_format(v: &Value, indent: &str) -> String {
    const UNIT: &str = "    ";
    let mut lines: Vec<String> = Vec::new();
    match v {
        Value::Array(items) => {
            if !indent.is_empty() {
                lines.push(String::new());
            }
            for item in items {
                lines.push(format!("{indent}{}", default_format(item, "")));
            }
        }
        Value::Object(map) => {
            for (k, value) in sorted(map) {
                match value {
                    Value::Object(inner) => {
                        if inner.is_empty() {
                            continue;
                        }
                        lines.push(format!("{indent}[{k}]:"));
                        let body = default_format(value, &format!("{indent}{UNIT}"));
                        if !body.is_empty() {
                            lines.push(body);
                        }
                    }
                    Value::Null => {}
                    Value::String(s) if s.is_empty() => {}
                    _ => lines.push(format!("{indent}{k}: {}", default_format(value, &format!("{indent}{UNIT}")))),
                }
            }
        }
        scalar => lines.push(py_str(scalar)),
    }
    lines.join("\n")
}

fn flat(v: &Value, path: &mut Vec<String>, out: &mut Vec<String>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flat(i, path, out)),
        Value::Object(map) => {
            for (k, value) in sorted(map) {
                path.push(k.clone());
                flat(value, path, out);
                path.pop();
            }
        }
        scalar => {
            let mut p = path.clone();
            if let Some(last) = p.last_mut() {
                *last = format!("{last}: {}", py_str(scalar));
            } else {
                p.push(py_str(scalar));
            }
            out.push(p.join("/"));
        }
    }
}

/// JSON string with Python's `ensure_ascii` escaping.
fn json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `json.dumps(v, indent=4[, sort_keys=True])`: the format of every JSON file the
/// original wrote and of `-f json` output.
pub fn python_json(v: &Value, sort_keys: bool) -> String {
    let mut out = String::new();
    json(v, 0, sort_keys, &mut out);
    out
}

fn json(v: &Value, depth: usize, sort_keys: bool, out: &mut String) {
    let pad = |d: usize| "    ".repeat(d);
    match v {
        Value::Object(map) if !map.is_empty() => {
            out.push_str("{\n");
            let items: Vec<(&String, &Value)> = if sort_keys { sorted(map) } else { map.iter().collect() };
            for (i, (k, value)) in items.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                json_str(k, out);
                out.push_str(": ");
                json(value, depth + 1, sort_keys, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(depth));
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (i, value) in items.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                json(value, depth + 1, sort_keys, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(depth));
            out.push(']');
        }
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        Value::String(s) => json_str(s, out),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Null => out.push_str("null"),
        Value::Number(n) => out.push_str(&n.to_string()),
    }
}

/// PyYAML's scalar for `v`, or `None` for collections.
fn yaml_scalar(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => yaml_string(s),
        Value::Object(m) if m.is_empty() => "{}".into(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        _ => return None,
    })
}

/// Whether PyYAML's implicit resolvers would read a plain `s` as something other than a string.
fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON",
        "off", "Off", "OFF", "~", "null", "Null", "NULL", "<<", "=",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let is_digits = |t: &str, radix: u32| !t.is_empty() && t.chars().all(|c| c.is_digit(radix) || c == '_');
    // ints: binary, octal, decimal, hex, sexagesimal
    if body.strip_prefix("0b").is_some_and(|t| is_digits(t, 2))
        || body.strip_prefix("0x").is_some_and(|t| is_digits(t, 16))
        || (body.starts_with('0') && is_digits(body, 8))
        || body == "0"
        || (body.starts_with(|c: char| ('1'..='9').contains(&c)) && is_digits(body, 10))
    {
        return true;
    }
    if body.starts_with(|c: char| ('1'..='9').contains(&c)) && body.contains(':') {
        let mut parts = body.split(':');
        let head_ok = parts.next().is_some_and(|h| is_digits(h, 10));
        let rest: Vec<&str> = parts.collect();
        let sexagesimal = |p: &str| {
            !p.is_empty()
                && p.len() <= 2
                && p.chars().all(|c| c.is_ascii_digit())
                && p.parse::<u32>().is_ok_and(|n| n < 60)
        };
        if head_ok && !rest.is_empty() {
            let (last, init) = rest.split_last().unwrap_or((&"", &[]));
            let last_int = sexagesimal(last);
            let last_float = last
                .split_once('.')
                .is_some_and(|(a, b)| sexagesimal(a) && b.chars().all(|c| c.is_ascii_digit() || c == '_'));
            if init.iter().all(|p| sexagesimal(p)) && (last_int || last_float) {
                return true;
            }
        }
    }
    // floats
    if [".inf", ".Inf", ".INF"].contains(&body) || [".nan", ".NaN", ".NAN"].contains(&s) {
        return true;
    }
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let exp_ok =
        exp.is_none_or(|e| e.len() > 1 && e.starts_with(['-', '+']) && e[1..].chars().all(|c| c.is_ascii_digit()));
    if let Some((int, frac)) = mantissa.split_once('.') {
        let int_ok = (int.is_empty() && !frac.is_empty() && frac.starts_with(|c: char| c.is_ascii_digit()))
            || (!int.is_empty() && int.starts_with(|c: char| c.is_ascii_digit()) && is_digits(int, 10));
        if int_ok && frac.chars().all(|c| c.is_ascii_digit() || c == '_') && exp_ok {
            return true;
        }
    }
    // timestamps: yyyy-mm-dd...
    let b = s.as_bytes();
    b.len() >= 8
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && s[5..]
            .split(['-', 'T', 't', ' '])
            .next()
            .is_some_and(|m| !m.is_empty() && m.len() <= 2 && m.chars().all(|c| c.is_ascii_digit()))
        && s.matches('-').count() >= 2
}

/// Whether lago's own YAML reader takes the plain scalar `s` for that string (it follows YAML
/// 1.2, where `1e3` is a number; PyYAML's 1.1 rules above do not see that).
fn reads_back_as_itself(s: &str) -> bool {
    yaml_serde::from_str::<Value>(&format!("k: {s}\n")).is_ok_and(|v| v.get("k").and_then(Value::as_str) == Some(s))
}

fn yaml_string(s: &str) -> String {
    let special = |c: char| (c as u32) < 0x20 && c != '\n' || c == '\u{7f}' || c == '\u{feff}';
    if s.chars().any(special) || s.contains('\n') {
        let mut out = String::new();
        json_str(s, &mut out);
        return out;
    }
    let first = s.chars().next();
    let needs_quotes = s.is_empty()
        || s.starts_with(' ')
        || s.ends_with(' ')
        || first.is_some_and(|c| "#,[]{}&*!|>'\"%@`".contains(c))
        || (first.is_some_and(|c| "-?:".contains(c)) && s.chars().nth(1).is_none_or(|c| c == ' '))
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || s.starts_with("---")
        || s.starts_with("...")
        || resolves_to_non_string(s)
        || !reads_back_as_itself(s);
    if !needs_quotes { s.to_owned() } else { format!("'{}'", s.replace('\'', "''")) }
}

fn yaml_node(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, value) in sorted(map) {
                let key = yaml_string(k);
                match yaml_scalar(value) {
                    Some(s) => {
                        let _ = writeln!(out, "{pad}{key}: {s}");
                    }
                    None => {
                        let _ = writeln!(out, "{pad}{key}:");
                        // PyYAML does not indent a sequence under a mapping key.
                        let child = if value.is_array() { indent } else { indent + 2 };
                        yaml_node(value, child, out);
                    }
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                match yaml_scalar(item) {
                    Some(s) => {
                        let _ = writeln!(out, "{pad}- {s}");
                    }
                    None => {
                        let mut inner = String::new();
                        yaml_node(item, indent + 2, &mut inner);
                        // The first line of the nested block goes after the dash.
                        let trimmed = &inner[(indent + 2).min(inner.len())..];
                        let _ = write!(out, "{pad}- {trimmed}");
                    }
                }
            }
        }
        scalar => {
            let _ = writeln!(out, "{pad}{}", yaml_scalar(scalar).unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({"Prefix": {"UUID": "fe68", "Networks": {"n0": {"gateway": "192.168.201.1", "management": true, "status": "down"}},
            "VMs": {"vm0": {"NICs": {"eth0": {"ip": "192.168.201.2", "network": "n0"}}, "distro": null, "metadata": {}, "root password": "123456", "snapshots": "", "status": "down"}}}})
    }

    #[test]
    fn default_skips_empty() {
        assert_eq!(
            Format::Default.render(&sample()),
            "[Prefix]:\n    [Networks]:\n        [n0]:\n            gateway: 192.168.201.1\n            management: True\n            status: down\n    UUID: fe68\n    [VMs]:\n        [vm0]:\n            [NICs]:\n                [eth0]:\n                    ip: 192.168.201.2\n                    network: n0\n            root password: 123456\n            status: down"
        );
    }

    #[test]
    fn flat_paths() {
        let out = Format::Flat.render(&sample());
        assert!(out.contains("VMs/vm0/snapshots: \n"), "{out}");
        assert!(out.contains("VMs/vm0/distro: None\n"), "{out}");
        assert!(out.starts_with("Networks/n0/gateway: 192.168.201.1\n"), "{out}");
    }

    #[test]
    fn json_like_python() {
        assert_eq!(
            Format::Json.render(&json!({"b": [], "a": {"é": 1, "x": {}}})),
            "{\n    \"a\": {\n        \"x\": {},\n        \"\\u00e9\": 1\n    },\n    \"b\": []\n}"
        );
    }

    #[test]
    fn yaml_like_pyyaml() {
        let out = Format::Yaml.render(&json!({"root password": "123456", "s": "", "m": {}, "p": "cubswin:)", "l": ["a", {"x": 1, "y": "2026-01-02"}], "ip": "192.168.1.2", "t": "yes", "v": "1.5", "c": "a: b"}));
        assert_eq!(
            out,
            "c: 'a: b'\nip: 192.168.1.2\nl:\n- a\n- x: 1\n  y: '2026-01-02'\nm: {}\np: cubswin:)\nroot password: '123456'\ns: ''\nt: 'yes'\nv: '1.5'"
        );
    }

    /// Values as `export` writes them into init files: what YAML output gives must read back, through
    /// the init-file reader, as the same value.
    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let text = prop_oneof![
            "[ -~]{0,12}",
            "\\PC{0,8}",
            Just("yes".to_owned()),
            Just("No".to_owned()),
            Just("null".to_owned()),
            Just("~".to_owned()),
            Just("1e3".to_owned()),
            Just("0x1F".to_owned()),
            Just(".nan".to_owned()),
            Just("- x".to_owned()),
            Just("a: b".to_owned()),
            Just("#x".to_owned()),
            Just("'q'".to_owned()),
            Just("line\nbreak".to_owned()),
            Just(" lead".to_owned()),
            Just("$LAGO_INITFILE_PATH/disk.qcow2".to_owned()),
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            prop_oneof![Just(0.5f64), Just(-2.25), Just(1e10)].prop_map(Value::from),
            text.clone().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::vec(("[a-z_][a-z0-9_-]{0,6}|yes|null|1|a b", inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn yaml_written_reads_back_the_same(v in json_value()) {
            let init = json!({"domains": v.clone(), "nets": {"n": {}}});
            let text = Format::Yaml.render(&init);
            let back = crate::spec::tree::parse(&format!("{text}\n"), false)
                .unwrap_or_else(|e| panic!("{e:?} in:\n{text}"));
            proptest::prop_assert_eq!(back, init, "YAML was:\n{}", text);
        }
    }
}
