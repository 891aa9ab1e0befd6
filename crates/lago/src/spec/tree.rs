//! Init-file text → a generic JSON tree.
//!
//! JSON is tried first (as the original did), then YAML. YAML anchors and aliases are expanded and
//! `<<` merge keys applied; the YAML parser refuses alias expansions that grow far beyond the input
//! ("billion laughs"), so a hostile file fails fast in bounded memory.

use serde_json::{Map, Value};

/// A syntax error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Which parser reported it (`YAML` or `JSON`).
    pub format: &'static str,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The parser's message.
    pub message: String,
}

/// Parses init-file text into a JSON tree; the top level must be a mapping.
pub fn parse(text: &str, looks_like_json: bool) -> Result<Value, SyntaxError> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => return Ok(v),
        Err(e) if looks_like_json || text.trim_start().starts_with('{') && !e.is_eof() => {
            // A file that is meant to be JSON gets JSON's error, which is more precise.
            if looks_like_json || yaml_to_json(text).is_err() {
                return Err(SyntaxError {
                    format: "JSON",
                    line: Some(e.line()),
                    column: Some(e.column()),
                    message: e.to_string().split(" at line").next().unwrap_or("").to_owned(),
                });
            }
        }
        Err(_) => {}
    }
    yaml_to_json(text)
}

fn yaml_to_json(text: &str) -> Result<Value, SyntaxError> {
    let syntax = |e: yaml_serde::Error| {
        let loc = e.location();
        let message = e.to_string();
        // yaml_serde appends " at line L column C"; the position is reported separately.
        let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
        SyntaxError {
            format: "YAML",
            line: loc.as_ref().map(|l| l.line()),
            column: loc.as_ref().map(|l| l.column()),
            message,
        }
    };
    let mut value: yaml_serde::Value = yaml_serde::from_str(text).map_err(syntax)?;
    value.apply_merge().map_err(syntax)?;
    convert(value).map_err(|message| SyntaxError { format: "YAML", line: None, column: None, message })
}

fn convert(value: yaml_serde::Value) -> Result<Value, String> {
    use yaml_serde::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(|| format!("the number {f} cannot be used in an init file"))?
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(convert).collect::<Result<_, _>>()?),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => {
                        return Err(format!("mapping keys must be strings, found {}", kind_of_yaml(&other)));
                    }
                };
                out.insert(key, convert(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => return Err(format!("YAML tags such as `{}` are not supported", t.tag)),
    })
}

fn kind_of_yaml(v: &yaml_serde::Value) -> &'static str {
    use yaml_serde::Value as Y;
    match v {
        Y::Null => "null",
        Y::Bool(_) => "a boolean",
        Y::Number(_) => "a number",
        Y::String(_) => "a string",
        Y::Sequence(_) => "a list",
        Y::Mapping(_) => "a mapping",
        Y::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_aliases_and_merges() {
        let text = "base: &b\n  memory: 64\n  vcpu: 1\ndomains:\n  a: *b\n  c:\n    <<: *b\n    vcpu: 4\n";
        let v = parse(text, false).unwrap();
        assert_eq!(v["domains"]["a"]["memory"], 64);
        assert_eq!(v["domains"]["c"]["memory"], 64);
        assert_eq!(v["domains"]["c"]["vcpu"], 4);
    }

    #[test]
    fn yaml_error_has_position() {
        let err = parse("domains:\n  a: [1, 2\n", false).unwrap_err();
        assert_eq!(err.format, "YAML");
        assert!(err.line.is_some());
    }

    #[test]
    fn json_error_for_json_files() {
        let err = parse("{\"domains\": {,}}", true).unwrap_err();
        assert_eq!((err.format, err.line, err.column), ("JSON", Some(1), Some(14)));
    }

    #[test]
    fn alias_bomb_fails_fast() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse(&text, false).unwrap_err();
        assert!(err.message.contains("repetition limit"), "{err:?}");
    }
}
