//! Checks a configuration given as rpcd's `uci get` answer (the shape
//! LuCI's `uci.sections()` returns: `.type`, `.name`, `.anonymous`,
//! `.index`, options as strings and lists as arrays of strings) with the
//! daemon's own rules, so LuCI refuses what the daemon would refuse.
//!
//! It reads no file, resolves no host name and changes nothing: saving is
//! rpcd's `uci` object, applying is procd's reload trigger.

use serde_json::{Value, json};

use super::Settings;
use super::uci::{Section, UciOption};

/// Why the given values are not a configuration the daemon would take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// Not in the shape rpcd's `uci get` gives.
    Shape(String),
    /// The daemon's own refusal, with the section it concerns.
    Refused { section: String, option: String, reason: String },
}

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckError::Shape(why) => write!(f, "not a UCI section list: {why}"),
            CheckError::Refused { section, option, reason } if option.is_empty() => {
                write!(f, "section '{section}': {reason}")
            }
            CheckError::Refused { section, option, reason } => {
                write!(f, "section '{section}', option '{option}': {reason}")
            }
        }
    }
}

/// Most sections and values looked at (a LuCI form never comes near).
const MAX_SECTIONS: usize = 1024;
const MAX_VALUES: usize = 4096;

/// The sections in the order of their `.index` (or as given).
fn sections(given: &Value) -> Result<Vec<(String, Section)>, CheckError> {
    let list: Vec<&Value> = match given {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => o.values().collect(),
        _ => return Err(CheckError::Shape("expected an array or object of sections".into())),
    };
    if list.len() > MAX_SECTIONS {
        return Err(CheckError::Shape(format!("more than {MAX_SECTIONS} sections")));
    }
    let mut out = Vec::with_capacity(list.len());
    let mut values = 0usize;
    for (i, v) in list.iter().enumerate() {
        let Some(o) = v.as_object() else {
            return Err(CheckError::Shape(format!("section {i} is not an object")));
        };
        let Some(kind) = o.get(".type").and_then(Value::as_str) else {
            return Err(CheckError::Shape(format!("section {i} has no .type")));
        };
        let anonymous = o.get(".anonymous").and_then(Value::as_bool).unwrap_or(false);
        let name = o.get(".name").and_then(Value::as_str).filter(|_| !anonymous).map(str::to_string);
        let index = o.get(".index").and_then(Value::as_u64).unwrap_or(i as u64);
        // The "line" of every option is the section's position, so a
        // refusal can be traced back to its section.
        let line = i + 1;
        let mut options = Vec::new();
        for (k, v) in o.iter().filter(|(k, _)| !k.starts_with('.')) {
            let mut push = |value: &str, is_list: bool| {
                options.push(UciOption { name: k.clone(), value: value.to_string(), is_list, line });
            };
            match v {
                Value::String(s) => push(s, false),
                Value::Array(items) => {
                    for item in items {
                        let Some(s) = item.as_str() else {
                            return Err(CheckError::Shape(format!("list '{k}' holds a non-string")));
                        };
                        push(s, true);
                    }
                }
                _ => return Err(CheckError::Shape(format!("option '{k}' is neither a string nor a list"))),
            }
        }
        values += options.len();
        if values > MAX_VALUES {
            return Err(CheckError::Shape(format!("more than {MAX_VALUES} values")));
        }
        let label = name.clone().unwrap_or_else(|| format!("@{kind}[{i}]"));
        out.push(((index, i), label, Section { kind: kind.to_string(), name, line, options }));
    }
    // Unstable on (index, position): the order of a stable sort, without
    // instantiating std's stable sort (docs/size.md).
    out.sort_unstable_by_key(|(key, _, _)| *key);
    Ok(out.into_iter().map(|(_, label, s)| (label, s)).collect())
}

/// Checks `given` as the daemon would load it; the answer lists the
/// warnings (unknown options or sections) the daemon would log.
pub fn check(given: &Value) -> Result<Vec<String>, CheckError> {
    let mut secs = sections(given)?;
    for (i, (_, s)) in secs.iter_mut().enumerate() {
        s.line = i + 1;
        for o in &mut s.options {
            o.line = i + 1;
        }
    }
    let labels: Vec<String> = secs.iter().map(|(l, _)| l.clone()).collect();
    let plain: Vec<Section> = secs.into_iter().map(|(_, s)| s).collect();
    let mut settings = Settings::defaults();
    settings.apply_sections("meshpost", &plain).map_err(|e| CheckError::Refused {
        section: labels.get(e.line.wrapping_sub(1)).cloned().unwrap_or_default(),
        option: e.option,
        reason: e.reason,
    })?;
    Ok(settings.warnings)
}

/// The JSON answer of `rpc call check_config`.
pub fn answer(given: Option<&Value>) -> Value {
    let Some(given) = given else {
        return json!({"ok": false, "error": "missing argument 'sections'"});
    };
    match check(given) {
        Ok(warnings) => json!({"ok": true, "warnings": warnings}),
        Err(e) => {
            let error = e.to_string();
            match e {
                CheckError::Shape(_) => json!({"ok": false, "error": error}),
                CheckError::Refused { section, option, reason } => {
                    json!({"ok": false, "error": error, "section": section, "option": option, "reason": reason})
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn main(port: &str) -> Value {
        json!([
            {".anonymous": false, ".type": "meshpost", ".name": "main", ".index": 0, "port": port, "interface": ["br-lan"]},
            {".anonymous": true, ".type": "peer", ".name": "cfg02", ".index": 1, "address": "10.0.0.2:4849"}
        ])
    }

    #[test]
    fn what_the_daemon_takes_passes_and_what_it_refuses_names_section_and_option() {
        assert_eq!(check(&main("4849")), Ok(vec![]));
        let e = check(&main("99999")).unwrap_err();
        let CheckError::Refused { section, option, .. } = &e else { panic!("{e:?}") };
        assert_eq!((section.as_str(), option.as_str()), ("main", "port"));
        let mut bad_peer = main("4849");
        bad_peer[1]["key"] = json!("00".repeat(32));
        let e = check(&bad_peer).unwrap_err();
        assert!(e.to_string().starts_with("section '@peer[1]', option 'key'"), "{e}");
    }

    #[test]
    fn a_single_option_given_as_a_list_is_refused_as_in_a_file() {
        let mut v = main("4849");
        v[0]["port"] = json!(["2"]);
        assert!(check(&v).unwrap_err().to_string().contains("takes one value"));
    }

    #[test]
    fn sections_follow_their_index_and_unknown_options_are_warnings() {
        let v = json!({
            "b": {".type": "meshpost", ".name": "main", ".index": 1, "colour": "red"},
            "a": {".type": "peer", ".anonymous": true, ".name": "x", ".index": 0, "address": "10.0.0.2:1"}
        });
        let w = check(&v).unwrap();
        assert!(w.len() == 1 && w[0].contains("colour"), "{w:?}");
    }

    #[test]
    fn shapes_that_are_not_uci_sections_are_refused() {
        for v in [json!(1), json!([1]), json!([{"port": "1"}]), json!([{".type": "meshpost", "port": 1}])] {
            assert!(matches!(check(&v), Err(CheckError::Shape(_))), "{v}");
        }
        assert_eq!(answer(None)["ok"], false);
    }
}
