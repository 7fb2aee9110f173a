//! The control protocol's requests as one typed schema, shared by the
//! server (which parses every line into a [`Request`]), the CLI and the
//! rpcd plugin (which build and serialize them). The JSON stays as
//! documented in docs/control.md: an object whose `"cmd"` names the
//! command, with its arguments beside it.
//!
//! Answers are still JSON objects built by the daemon (`ok`, and `error`
//! on failure); this module does not type them.
//!
//! Requests are read field by field (`from_value`), not by a derived
//! `Deserialize`: serde's code for an internally tagged enum of 23
//! commands was 36 KB of the mipsel binary (docs/size.md).

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

/// One request on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Status,
    Identity,
    Peers,
    Routes,
    Graph,
    Federation,
    Metrics,
    Reload,
    /// The router checks of `meshpost selftest`.
    Selftest,
    Send {
        to: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hops: Option<u64>,
    },
    /// Starts a file upload: `size` bytes follow on the same connection as
    /// `file_data` requests, answered once, after the last one.
    SendFile {
        to: String,
        name: String,
        #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
        media_type: String,
        size: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hops: Option<u64>,
    },
    /// A piece of the upload in progress: base64 of at most
    /// [`UPLOAD_PIECE`] bytes.
    FileData {
        data: String,
    },
    /// A whole uploaded file, as its connection hands it to the main loop
    /// (never read from a client).
    #[serde(skip)]
    Upload(Upload),
    /// `list` answers one page: messages from `offset`, at most `limit`
    /// and at most [`MAX_ANSWER`] bytes (but always one), with `next`.
    /// `read` of a file with `offset` answers up to `limit` bytes of it
    /// (at most 48 KiB) in base64, with the `next` offset.
    Inbox {
        #[serde(default)]
        action: InboxAction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
    /// What became of the messages this node sent, newest first, paged as
    /// the inbox is; with `id`, that one message.
    Outbox {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
    /// Contacts: `add` a card (`mpcard1:...`, from `identity --card`) with
    /// an optional name, `list`, or `remove` by `id`.
    Contact {
        #[serde(default)]
        action: ContactAction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        card: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// The safety number shared with `id`; with `confirm`, marks the
    /// contact verified.
    Verify {
        id: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        confirm: bool,
    },
    /// Drops `id`'s messages to this node (`unblock` undoes it).
    Block {
        id: String,
    },
    Unblock {
        id: String,
    },
    Subscribe {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
    },
    Channel {
        #[serde(default)]
        action: ChannelAction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        /// For `history`: a page, as for the inbox.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
    },
    Publish {
        channel: String,
        text: String,
    },
    Store {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        action: Option<StoreAction>,
    },
    Peer {
        action: PeerAction,
        address: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
}

/// File bytes in one `file_data` piece, at most.
pub const UPLOAD_PIECE: usize = 48 * 1024;

/// A file uploaded over the control socket, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub to: String,
    pub name: String,
    pub media_type: String,
    pub data: Vec<u8>,
    pub ttl: Option<u64>,
    pub hops: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactAction {
    #[default]
    List,
    Add,
    Remove,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InboxAction {
    #[default]
    List,
    Read,
    Delete,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelAction {
    #[default]
    List,
    Create,
    Join,
    Leave,
    History,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreAction {
    List,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerAction {
    Add,
    Remove,
}

/// Largest list answer the daemon builds, in bytes of JSON: well under
/// ubus's 1 MiB message limit even with one more maximum-size message
/// (60 KiB of control characters is about 370 KB escaped).
pub const MAX_ANSWER: usize = 512 * 1024;

/// Every command name, for error messages and `rpc list`.
pub const COMMANDS: &[&str] = &[
    "status",
    "identity",
    "peers",
    "routes",
    "graph",
    "federation",
    "metrics",
    "reload",
    "selftest",
    "send",
    "send_file",
    "file_data",
    "inbox",
    "outbox",
    "contact",
    "verify",
    "block",
    "unblock",
    "subscribe",
    "channel",
    "publish",
    "store",
    "peer",
];

/// Why a well-formed JSON object is not a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// No string `"cmd"` field.
    MissingCmd,
    /// A `"cmd"` this daemon does not know.
    UnknownCmd(String),
    /// A known command with missing or mistyped arguments.
    BadArguments { cmd: String, detail: String },
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::MissingCmd => f.write_str("missing \"cmd\""),
            RequestError::UnknownCmd(c) => write!(f, "unknown command '{c}' (one of: {})", COMMANDS.join(", ")),
            RequestError::BadArguments { cmd, detail } => write!(f, "{cmd}: {detail}"),
        }
    }
}

impl Request {
    /// Reads a request from a JSON value. Fields a command does not take
    /// are ignored; a field that is `null` counts as absent.
    pub fn from_value(v: Value) -> Result<Request, RequestError> {
        let Value::Object(map) = v else { return Err(RequestError::MissingCmd) };
        let cmd = map.get("cmd").and_then(Value::as_str).ok_or(RequestError::MissingCmd)?;
        let f = Fields(&map);
        let r = match cmd {
            "status" => Ok(Request::Status),
            "identity" => Ok(Request::Identity),
            "peers" => Ok(Request::Peers),
            "routes" => Ok(Request::Routes),
            "graph" => Ok(Request::Graph),
            "federation" => Ok(Request::Federation),
            "metrics" => Ok(Request::Metrics),
            "reload" => Ok(Request::Reload),
            "selftest" => Ok(Request::Selftest),
            _ => f.command(cmd),
        };
        r.map_err(|detail| match detail {
            None => RequestError::UnknownCmd(cmd.to_string()),
            Some(detail) => RequestError::BadArguments { cmd: cmd.to_string(), detail },
        })
    }

    /// The request as the JSON object sent on the socket.
    pub fn to_value(&self) -> Value {
        // Serializing these plain enums of strings and numbers cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// A request's fields, read one at a time. An error is `Some(what is
/// wrong)`, or `None` for a command this daemon does not know.
struct Fields<'a>(&'a Map<String, Value>);

type Read<T> = Result<T, Option<String>>;

impl Fields<'_> {
    /// The commands with arguments.
    fn command(&self, cmd: &str) -> Read<Request> {
        Ok(match cmd {
            "send" => Request::Send {
                to: self.text("to")?,
                text: self.text("text")?,
                ttl: self.num("ttl")?,
                hops: self.num("hops")?,
            },
            "send_file" => Request::SendFile {
                to: self.text("to")?,
                name: self.text("name")?,
                media_type: self.opt_text("type")?.unwrap_or_default(),
                size: self.num("size")?.ok_or_else(|| missing("size"))?,
                ttl: self.num("ttl")?,
                hops: self.num("hops")?,
            },
            "file_data" => Request::FileData { data: self.text("data")? },
            "inbox" => Request::Inbox {
                action: self
                    .choice(
                        "action",
                        &[("list", InboxAction::List), ("read", InboxAction::Read), ("delete", InboxAction::Delete)],
                    )?
                    .unwrap_or_default(),
                id: self.opt_text("id")?,
                offset: self.index("offset")?,
                limit: self.index("limit")?,
            },
            "outbox" => {
                Request::Outbox { id: self.opt_text("id")?, offset: self.index("offset")?, limit: self.index("limit")? }
            }
            "contact" => Request::Contact {
                action: self
                    .choice(
                        "action",
                        &[
                            ("list", ContactAction::List),
                            ("add", ContactAction::Add),
                            ("remove", ContactAction::Remove),
                        ],
                    )?
                    .unwrap_or_default(),
                card: self.opt_text("card")?,
                name: self.opt_text("name")?,
                id: self.opt_text("id")?,
            },
            "verify" => Request::Verify { id: self.text("id")?, confirm: self.flag("confirm")? },
            "block" => Request::Block { id: self.text("id")? },
            "unblock" => Request::Unblock { id: self.text("id")? },
            "subscribe" => Request::Subscribe { channel: self.opt_text("channel")? },
            "channel" => Request::Channel {
                action: self
                    .choice(
                        "action",
                        &[
                            ("list", ChannelAction::List),
                            ("create", ChannelAction::Create),
                            ("join", ChannelAction::Join),
                            ("leave", ChannelAction::Leave),
                            ("history", ChannelAction::History),
                        ],
                    )?
                    .unwrap_or_default(),
                name: self.opt_text("name")?,
                key: self.opt_text("key")?,
                offset: self.index("offset")?,
                limit: self.index("limit")?,
            },
            "publish" => Request::Publish { channel: self.text("channel")?, text: self.text("text")? },
            "store" => Request::Store { action: self.choice("action", &[("list", StoreAction::List)])? },
            "peer" => Request::Peer {
                action: self
                    .choice("action", &[("add", PeerAction::Add), ("remove", PeerAction::Remove)])?
                    .ok_or_else(|| missing("action"))?,
                address: self.text("address")?,
                key: self.opt_text("key")?,
            },
            _ => return Err(None),
        })
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn opt_text(&self, name: &str) -> Read<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(wrong(name, "a string", v)),
        }
    }

    fn text(&self, name: &str) -> Read<String> {
        self.opt_text(name)?.ok_or_else(|| missing(name))
    }

    fn num(&self, name: &str) -> Read<Option<u64>> {
        self.get(name).map(|v| v.as_u64().ok_or_else(|| wrong(name, "a whole number", v))).transpose()
    }

    fn index(&self, name: &str) -> Read<Option<usize>> {
        let n = self.num(name)?;
        n.map(|n| usize::try_from(n).map_err(|_| Some(format!("field `{name}`: {n} is too large")))).transpose()
    }

    fn flag(&self, name: &str) -> Read<bool> {
        match self.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(wrong(name, "true or false", v)),
        }
    }

    /// One of `choices`, by the name it serializes as (a test checks
    /// that the names agree with the derived `Serialize`).
    fn choice<T: Copy>(&self, name: &str, choices: &[(&str, T)]) -> Read<Option<T>> {
        let Some(v) = self.get(name) else { return Ok(None) };
        let s = v.as_str().ok_or_else(|| wrong(name, "a string", v))?;
        match choices.iter().find(|(n, _)| *n == s) {
            Some((_, c)) => Ok(Some(*c)),
            None => {
                let all: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                Err(Some(format!("unknown {name} `{s}` (one of: {})", all.join(", "))))
            }
        }
    }
}

fn missing(name: &str) -> Option<String> {
    Some(format!("missing field `{name}`"))
}

fn wrong(name: &str, expected: &str, got: &Value) -> Option<String> {
    Some(format!("field `{name}` must be {expected}, not {got}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_documented_json_round_trips() {
        for v in [
            json!({"cmd": "status"}),
            json!({"cmd": "send", "to": "beta", "text": "hi", "ttl": 60}),
            json!({"cmd": "inbox", "action": "delete", "id": "00"}),
            json!({"cmd": "channel", "action": "join", "name": "ops", "key": "mpch1-00"}),
            json!({"cmd": "peer", "action": "add", "address": "127.0.0.1:1"}),
            json!({"cmd": "store", "action": "list"}),
            json!({"cmd": "subscribe", "channel": "ops"}),
        ] {
            let r = Request::from_value(v.clone()).unwrap();
            assert_eq!(r.to_value(), v);
        }
        assert_eq!(
            Request::from_value(json!({"cmd": "inbox"})).unwrap(),
            Request::Inbox { action: InboxAction::List, id: None, offset: None, limit: None }
        );
    }

    #[test]
    fn every_request_reads_back_as_it_was_written() {
        // The hand-written reader and the derived writer agree on every
        // command, field and action name.
        let (s, n) = (|| Some("x".to_string()), Some(7));
        let mut all = vec![
            Request::Status,
            Request::Identity,
            Request::Peers,
            Request::Routes,
            Request::Graph,
            Request::Federation,
            Request::Metrics,
            Request::Reload,
            Request::Selftest,
            Request::Send { to: "a".into(), text: "b".into(), ttl: Some(60), hops: Some(3) },
            Request::SendFile { to: "a".into(), name: "f".into(), media_type: "t/x".into(), size: 9, ttl: n, hops: n },
            Request::SendFile {
                to: "a".into(),
                name: "f".into(),
                media_type: String::new(),
                size: 9,
                ttl: None,
                hops: None,
            },
            Request::FileData { data: "AA==".into() },
            Request::Outbox { id: s(), offset: Some(1), limit: Some(2) },
            Request::Verify { id: "i".into(), confirm: true },
            Request::Verify { id: "i".into(), confirm: false },
            Request::Block { id: "i".into() },
            Request::Unblock { id: "i".into() },
            Request::Subscribe { channel: s() },
            Request::Subscribe { channel: None },
            Request::Publish { channel: "c".into(), text: "t".into() },
            Request::Store { action: Some(StoreAction::List) },
            Request::Store { action: None },
        ];
        for action in [InboxAction::List, InboxAction::Read, InboxAction::Delete] {
            all.push(Request::Inbox { action, id: s(), offset: Some(3), limit: Some(4) });
        }
        for action in [ContactAction::List, ContactAction::Add, ContactAction::Remove] {
            all.push(Request::Contact { action, card: s(), name: s(), id: s() });
        }
        for action in [
            ChannelAction::List,
            ChannelAction::Create,
            ChannelAction::Join,
            ChannelAction::Leave,
            ChannelAction::History,
        ] {
            all.push(Request::Channel { action, name: s(), key: s(), offset: Some(5), limit: None });
        }
        for action in [PeerAction::Add, PeerAction::Remove] {
            all.push(Request::Peer { action, address: "[::1]:1".into(), key: s() });
        }
        let mut named: Vec<String> = Vec::new();
        for r in all {
            let v = r.to_value();
            named.push(v["cmd"].as_str().unwrap().to_string());
            assert_eq!(Request::from_value(v.clone()), Ok(r), "{v}");
        }
        for c in COMMANDS {
            assert!(named.iter().any(|n| n == c), "{c} not tried");
        }
    }

    #[test]
    fn unknown_fields_are_ignored_and_null_is_absent() {
        let r = Request::from_value(json!({"cmd": "send", "to": "a", "text": "b", "ttl": null, "colour": "red"}));
        assert_eq!(r, Ok(Request::Send { to: "a".into(), text: "b".into(), ttl: None, hops: None }));
        let e = Request::from_value(json!({"cmd": "send", "to": null, "text": "b"})).unwrap_err().to_string();
        assert_eq!(e, "send: missing field `to`");
        for bad in [json!(-1), json!(1.5), json!("60"), json!([60])] {
            let e = Request::from_value(json!({"cmd": "send", "to": "a", "text": "b", "ttl": bad})).unwrap_err();
            assert!(e.to_string().starts_with("send: field `ttl` must be a whole number"), "{e}");
        }
        let e = Request::from_value(json!({"cmd": "verify", "id": "a", "confirm": "yes"})).unwrap_err();
        assert_eq!(e.to_string(), "verify: field `confirm` must be true or false, not \"yes\"");
        let e = Request::from_value(json!({"cmd": "peer", "address": "a"})).unwrap_err();
        assert_eq!(e.to_string(), "peer: missing field `action`");
        assert_eq!(Request::from_value(json!(["cmd", "status"])), Err(RequestError::MissingCmd));
        assert_eq!(Request::from_value(json!({"cmd": 5})), Err(RequestError::MissingCmd));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(Request::from_value(json!({"to": "x"})), Err(RequestError::MissingCmd));
        let e = Request::from_value(json!({"cmd": "frobnicate"})).unwrap_err();
        assert!(e.to_string().starts_with("unknown command 'frobnicate'"));
        let e = Request::from_value(json!({"cmd": "send", "to": "x"})).unwrap_err().to_string();
        assert!(e.starts_with("send: ") && e.contains("text"), "{e}");
        let e = Request::from_value(json!({"cmd": "inbox", "action": "burn"})).unwrap_err().to_string();
        assert!(e.contains("burn") && e.contains("delete"), "{e}");
        assert!(Request::from_value(json!({"cmd": "send", "to": 5, "text": "x"})).is_err());
    }
}
