//! The rpcd exec-plugin protocol, so `ubus call meshpost METHOD` works.
//!
//! rpcd runs `/usr/libexec/rpcd/meshpost list` to learn the methods and their
//! argument types, and `... call METHOD` with the arguments as a JSON object
//! on stdin. Each method maps onto one control-socket request; the answer is
//! the daemon's JSON object (with `ok` and, on failure, `error`). The plugin
//! file itself is a one-line wrapper around `meshpost rpc`.

use std::io::Read;

use serde_json::{Map, Value, json};

use super::connection::{Cli, request_raw};
use crate::control::protocol::Request;

/// An argument's name and type ("str" or "int").
type Arg = (&'static str, &'static str);

/// Method name, its arguments, the control-socket command it maps to, and
/// the request's fixed action, if any.
const METHODS: &[(&str, &[Arg], &str, Option<&str>)] = &[
    ("status", &[], "status", None),
    ("identity", &[], "identity", None),
    ("peers", &[], "peers", None),
    ("routes", &[], "routes", None),
    ("store", &[], "store", None),
    ("send", &[("to", "str"), ("text", "str"), ("ttl", "int"), ("hops", "int")], "send", None),
    // Reading and deleting are separate methods, so the ACL can grant one
    // without the other (packaging/openwrt/files/meshpost.acl.json).
    ("inbox", &[("action", "str"), ("id", "str"), ("offset", "int"), ("limit", "int")], "inbox", None),
    ("inbox_delete", &[("id", "str")], "inbox", Some("delete")),
    ("outbox", &[("id", "str"), ("offset", "int"), ("limit", "int")], "outbox", None),
    ("contact_list", &[], "contact", Some("list")),
    ("contact_add", &[("card", "str"), ("name", "str")], "contact", Some("add")),
    ("contact_remove", &[("id", "str")], "contact", Some("remove")),
    ("verify", &[("id", "str")], "verify", None),
    ("block", &[("id", "str")], "block", None),
    ("unblock", &[("id", "str")], "unblock", None),
    ("channel_list", &[], "channel", Some("list")),
    ("channel_history", &[("name", "str"), ("offset", "int"), ("limit", "int")], "channel", Some("history")),
    ("publish", &[("channel", "str"), ("text", "str")], "publish", None),
    ("channel_create", &[("name", "str")], "channel", Some("create")),
    ("channel_join", &[("name", "str"), ("key", "str")], "channel", Some("join")),
    ("channel_leave", &[("name", "str")], "channel", Some("leave")),
    ("graph", &[], "graph", None),
    ("federation", &[], "federation", None),
    ("reload", &[], "reload", None),
    // Answered by this process with the daemon's own rules (config/check.rs);
    // needs no daemon, reads and writes nothing.
    ("check_config", &[("sections", "array")], LOCAL, None),
];

/// The "command" of methods this process answers itself.
const LOCAL: &str = "";

/// Output of `rpc list`.
pub fn list() -> String {
    let mut m = Map::new();
    for (name, args, _, _) in METHODS {
        let mut a = Map::new();
        for (arg, ty) in *args {
            // rpcd takes each sample value's JSON type as the argument's.
            let sample = match *ty {
                "int" => json!(0),
                "array" => json!([]),
                _ => json!(""),
            };
            a.insert(arg.to_string(), sample);
        }
        m.insert(name.to_string(), Value::Object(a));
    }
    Value::Object(m).to_string()
}

/// Runs `rpc call METHOD` with the arguments in `input`.
pub fn call(cli: &Cli, method: &str, input: &str) -> Value {
    let Some((_, args, cmd, action)) = METHODS.iter().find(|(n, _, _, _)| *n == method) else {
        return json!({"ok": false, "error": format!("unknown method '{method}'")});
    };
    let given: Map<String, Value> = match input.trim() {
        "" => Map::new(),
        text => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(o)) => o,
            _ => return json!({"ok": false, "error": "arguments must be a JSON object"}),
        },
    };
    if method == "check_config" {
        return crate::config::check::answer(given.get("sections"));
    }
    if method == "inbox" && given.get("action").and_then(Value::as_str) == Some("delete") {
        return json!({"ok": false, "error": "deleting is the method inbox_delete (granted by the write ACL)"});
    }
    let mut req = Map::new();
    req.insert("cmd".into(), json!(cmd));
    if let Some(a) = action {
        req.insert("action".into(), json!(a));
    }
    for (arg, _) in *args {
        if let Some(v) = given.get(*arg) {
            req.insert(arg.to_string(), v.clone());
        }
    }
    // The same typed schema the daemon parses: a bad argument is refused
    // here with the same message.
    let req = match Request::from_value(Value::Object(req)) {
        Ok(r) => r,
        Err(e) => return json!({"ok": false, "error": e.to_string()}),
    };
    match request_raw(cli, &req.to_value()) {
        Ok(v) => v,
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    }
}

/// Reads the call arguments from stdin (at most one control request).
pub fn read_stdin() -> String {
    let mut s = String::new();
    let _ = std::io::stdin().take(crate::control::MAX_REQUEST as u64).read_to_string(&mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_names_every_method_with_typed_arguments() {
        let v: Value = serde_json::from_str(&list()).unwrap();
        assert_eq!(v["send"]["to"], "");
        assert_eq!(v["send"]["ttl"], 0);
        assert!(v["status"].as_object().unwrap().is_empty());
        assert_eq!(v.as_object().unwrap().len(), METHODS.len());
    }

    #[test]
    fn every_declared_argument_type_is_the_type_the_daemon_parses() {
        // rpcd converts arguments to the types `list` declares before it
        // calls us; each must then pass the daemon's own schema.
        for (name, args, cmd, action) in METHODS.iter().filter(|m| m.2 != LOCAL) {
            let mut req = Map::new();
            req.insert("cmd".into(), json!(cmd));
            if let Some(a) = action {
                req.insert("action".into(), json!(a));
            }
            for (arg, ty) in *args {
                let sample = match (*ty, *arg) {
                    ("int", _) => json!(60),
                    (_, "action") => json!("list"),
                    _ => json!("x"),
                };
                req.insert(arg.to_string(), sample);
            }
            let r = Request::from_value(Value::Object(req.clone()));
            assert!(r.is_ok(), "{name}: {req:?} refused: {:?}", r.err());
            for (arg, ty) in *args {
                let mut wrong = req.clone();
                wrong.insert(arg.to_string(), if *ty == "int" { json!("60") } else { json!(60) });
                assert!(Request::from_value(Value::Object(wrong)).is_err(), "{name}: {arg} of the wrong type accepted");
            }
        }
    }

    #[test]
    fn check_config_needs_no_daemon_and_uses_the_daemon_rules() {
        let cli = Cli { socket: Some("/nonexistent.sock".into()), config: None, json: true, words: vec![] };
        let ok = call(&cli, "check_config", r#"{"sections":[{".type":"meshpost",".name":"main","port":"4849"}]}"#);
        assert_eq!(ok["ok"], true, "{ok}");
        let bad = call(&cli, "check_config", r#"{"sections":[{".type":"meshpost",".name":"main","port":"0"}]}"#);
        assert_eq!((bad["ok"].clone(), bad["option"].clone()), (json!(false), json!("port")), "{bad}");
        assert_eq!(list_value()["check_config"]["sections"], json!([]));
    }

    fn list_value() -> Value {
        serde_json::from_str(&list()).unwrap()
    }

    #[test]
    fn bad_calls_are_json_errors() {
        let cli = Cli { socket: Some("/nonexistent.sock".into()), config: None, json: true, words: vec![] };
        assert_eq!(call(&cli, "frob", "{}")["ok"], false);
        assert!(call(&cli, "send", "[1]")["error"].as_str().unwrap().contains("JSON object"));
        assert!(call(&cli, "status", "")["error"].as_str().unwrap().contains("cannot connect"));
    }
}
