//! The control protocol's requests as one typed schema, shared by the
//! server (which parses every line into a [`Request`]), the CLI and the
//! rpcd plugin (which build and serialize them). The JSON stays as
//! documented in docs/control.md: an object whose `"cmd"` names the
//! command, with its arguments beside it.
//!
//! Answers are still JSON objects built by the daemon (`ok`, and `error`
//! on failure); this module does not type them.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One request on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactAction {
    #[default]
    List,
    Add,
    Remove,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboxAction {
    #[default]
    List,
    Read,
    Delete,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelAction {
    #[default]
    List,
    Create,
    Join,
    Leave,
    History,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreAction {
    List,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Reads a request from a JSON value.
    pub fn from_value(v: Value) -> Result<Request, RequestError> {
        let cmd = v.get("cmd").and_then(Value::as_str).ok_or(RequestError::MissingCmd)?.to_string();
        if !COMMANDS.contains(&cmd.as_str()) {
            return Err(RequestError::UnknownCmd(cmd));
        }
        serde_json::from_value(v).map_err(|e| RequestError::BadArguments { cmd, detail: e.to_string() })
    }

    /// The request as the JSON object sent on the socket.
    pub fn to_value(&self) -> Value {
        // Serializing these plain enums of strings and numbers cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
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
