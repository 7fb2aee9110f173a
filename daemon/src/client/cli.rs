//! The `meshpost` command line: subcommands, their requests and output.
//!
//! Every subcommand except `daemon` (and `identity --state-dir`) is a client
//! of the control socket. Output is a table or `key: value` lines for
//! people, or the daemon's JSON with `--json`. Errors are one line on stderr
//! with exit code 1.

use std::io::{BufRead, BufReader, Read, Write};

use serde_json::{Value, json};

use super::connection::{Cli, connect, request};
use crate::control::protocol::{ChannelAction, ContactAction, InboxAction, PeerAction, Request, StoreAction};

pub const USAGE: &str = "\
usage: meshpost [--socket PATH | --config FILE] [--json] COMMAND [ARGS]

commands:
  daemon [--foreground] [--config FILE] [--state-dir DIR] [--socket PATH]
         [--port N] [--log-level LEVEL]     run the daemon
  status                                    node, links, store and inbox summary
  identity [--state-dir DIR] [--card [--qr]]  node id and public keys; --card: the
                                            signed contact card to hand to others,
                                            as a line and (on a terminal, or --qr)
                                            as a QR code
  contact add CARD [NAME] | list | remove ID   people added from their cards
  selftest                                  check what usually goes wrong on a router;
                                            exit 1 if anything does
  verify NODE [--confirm]                   the safety number shared with NODE
  block NODE | unblock NODE                 drop (or accept again) NODE's messages
  peers                                     links, configured and discovered peers
  routes                                    destinations, next hops, hop counts
  graph                                     known topology as Graphviz DOT
  federation                                federation peers, state, traffic, quota drops
  send TO [TEXT...]                         send a message (TEXT or stdin)
      [--ttl SECS] [--hops N]               TO is a node id or a unique name
      [--wait[=SECS]]                       wait until delivered (default 60 s);
                                            exit 0 delivered, 2 not yet, 3 expired,
                                            dropped or refused
  send TO --file PATH [--type TYPE] ...     send a file (up to file_max, 1 MiB by
                                            default); same --ttl, --hops, --wait
  outbox [ID]                               what became of the messages and files sent
  inbox [list | read ID | delete ID]        messages and files delivered to this node
  inbox save ID [PATH]                      write a received file (hash checked)
  subscribe [CHANNEL]                       stream new messages (inbox, or a channel)
  publish CHANNEL [TEXT...]                 publish to a channel (TEXT or stdin)
  channel list | create NAME | join NAME KEY | leave NAME | history NAME
  store [list]                              store usage and limits, or what it holds
  peer add HOST:PORT [KEY] | peer remove HOST:PORT
  reload                                    re-read the configuration
  metrics                                   Prometheus text metrics
  rpc list | rpc call METHOD                rpcd exec plugin protocol (ubus)

The socket is --socket, else $MESHPOST_SOCKET, else `option socket` in the
UCI file (--config, default /etc/config/meshpost), else /var/run/meshpost.sock.";

pub(super) fn flag(words: &mut Vec<String>, name: &str) -> Result<Option<String>, String> {
    match words.iter().position(|w| w == name) {
        Some(i) if i + 1 < words.len() => {
            let v = words.remove(i + 1);
            words.remove(i);
            Ok(Some(v))
        }
        Some(_) => Err(format!("{name} needs a value")),
        None => Ok(None),
    }
}

pub(super) fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(x) => x.to_string(),
    }
}

fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(headers.iter().map(|h| h.to_uppercase()).collect());
    for r in rows {
        out.push('\n');
        out.push_str(&line(r.clone()));
    }
    out
}

/// Runs a client subcommand; returns what to print.
pub fn run(cli: &Cli) -> Result<String, String> {
    let mut words = cli.words.clone();
    let cmd = if words.is_empty() { String::new() } else { words.remove(0) };
    let req = match cmd.as_str() {
        "status" => Request::Status,
        "identity" => {
            if let Some(dir) = flag(&mut words, "--state-dir")? {
                return offline_identity(cli, &dir);
            }
            if words.iter().any(|w| w == "--card") {
                let v = request(cli, &Request::Identity.to_value())?;
                let card = v["card"].as_str().ok_or("the daemon has no card yet")?.to_string();
                // SAFETY: isatty only inspects the descriptor.
                let tty = unsafe { libc::isatty(1) } == 1;
                if !(tty || words.iter().any(|w| w == "--qr")) {
                    return Ok(card);
                }
                let qr = super::qr::render(&card).ok_or("the card is too long for a QR code")?;
                return Ok(format!("{card}\n\n{qr}Scan it, or copy the line above: meshpost contact add CARD NAME"));
            }
            Request::Identity
        }
        "contact" => match (words.first().map(String::as_str), words.get(1)) {
            (None | Some("list"), _) => {
                Request::Contact { action: ContactAction::List, card: None, name: None, id: None }
            }
            (Some("add"), Some(card)) => Request::Contact {
                action: ContactAction::Add,
                card: Some(card.clone()),
                name: (words.len() > 2).then(|| words[2..].join(" ")),
                id: None,
            },
            (Some("remove"), Some(id)) => {
                Request::Contact { action: ContactAction::Remove, card: None, name: None, id: Some(id.clone()) }
            }
            _ => return Err("usage: meshpost contact add CARD [NAME] | contact list | contact remove ID".into()),
        },
        "peers" => Request::Peers,
        "routes" => Request::Routes,
        "graph" => Request::Graph,
        "federation" => Request::Federation,
        "store" if words.first().map(String::as_str) == Some("list") => {
            Request::Store { action: Some(StoreAction::List) }
        }
        "store" => Request::Store { action: None },
        "reload" => Request::Reload,
        "metrics" => Request::Metrics,
        "send" => {
            let ttl =
                flag(&mut words, "--ttl")?.map(|t| t.parse::<u64>().map_err(|_| "--ttl takes seconds")).transpose()?;
            let hops = flag(&mut words, "--hops")?
                .map(|t| t.parse::<u64>().map_err(|_| "--hops takes a number"))
                .transpose()?;
            if words.is_empty() {
                return Err("send needs a recipient: meshpost send TO [TEXT...]".into());
            }
            let to = words.remove(0);
            let text = text_arg(&words)?;
            Request::Send { to, text, ttl, hops }
        }
        "outbox" => Request::Outbox { id: words.first().cloned(), offset: None, limit: None },
        "verify" => {
            let confirm = words.iter().any(|w| w == "--confirm");
            let id = words.iter().find(|w| *w != "--confirm").ok_or("verify needs a node id or name")?.clone();
            Request::Verify { id, confirm }
        }
        "block" | "unblock" => {
            let id = words.first().ok_or(format!("{cmd} needs a node id or name"))?.clone();
            if cmd == "block" { Request::Block { id } } else { Request::Unblock { id } }
        }
        "inbox" => match words.first().map(String::as_str) {
            None | Some("list") => Request::Inbox { action: InboxAction::List, id: None, offset: None, limit: None },
            Some(a @ ("read" | "delete")) => {
                let id = words.get(1).ok_or(format!("inbox {a} needs a message id"))?.clone();
                let action = if a == "read" { InboxAction::Read } else { InboxAction::Delete };
                Request::Inbox { action, id: Some(id), offset: None, limit: None }
            }
            Some(other) => {
                return Err(format!("unknown inbox action '{other}' (list, read ID, delete ID)"));
            }
        },
        "peer" => match (words.first().map(String::as_str), words.get(1)) {
            (Some("add"), Some(addr)) => {
                Request::Peer { action: PeerAction::Add, address: addr.clone(), key: words.get(2).cloned() }
            }
            (Some("remove"), Some(addr)) => {
                Request::Peer { action: PeerAction::Remove, address: addr.clone(), key: None }
            }
            _ => {
                return Err("usage: meshpost peer add HOST:PORT [KEY] | peer remove HOST:PORT".into());
            }
        },
        "subscribe" => return subscribe(cli, words.first().map(String::as_str)),
        "publish" => {
            if words.is_empty() {
                return Err("publish needs a channel: meshpost publish CHANNEL [TEXT...]".into());
            }
            let channel = words.remove(0);
            Request::Publish { channel, text: text_arg(&words)? }
        }
        "channel" => match (words.first().map(String::as_str), words.get(1), words.get(2)) {
            (None | Some("list"), _, _) => {
                Request::Channel { action: ChannelAction::List, name: None, key: None, offset: None, limit: None }
            }
            (Some("create"), Some(name), _) => channel(ChannelAction::Create, name, None),
            (Some("join"), Some(name), Some(key)) => channel(ChannelAction::Join, name, Some(key)),
            (Some("leave"), Some(name), _) => channel(ChannelAction::Leave, name, None),
            (Some("history"), Some(name), _) => channel(ChannelAction::History, name, None),
            _ => {
                return Err(
                    "usage: meshpost channel list | create NAME | join NAME KEY | leave NAME | history NAME".into()
                );
            }
        },
        "rpc" => {
            return match (words.first().map(String::as_str), words.get(1)) {
                (Some("list"), _) => Ok(super::rpcd::list()),
                (Some("call"), Some(method)) => {
                    Ok(super::rpcd::call(cli, method, &super::rpcd::read_stdin()).to_string())
                }
                _ => Err("usage: meshpost rpc list | rpc call METHOD (arguments as JSON on stdin)".into()),
            };
        }
        "" | "help" | "--help" | "-h" => return Ok(USAGE.to_string()),
        other => return Err(format!("unknown command '{other}'; see meshpost --help")),
    };
    let v = fetch_all(cli, req)?;
    if cli.json {
        return Ok(v.to_string());
    }
    Ok(human(&cmd, &words, &v))
}

/// Sends `req` and, for a paged answer (inbox, channel history), asks for
/// every following page and joins their messages, so people and scripts
/// see the whole list while no single answer grows past the bound.
fn fetch_all(cli: &Cli, mut req: Request) -> Result<Value, String> {
    let mut v = request(cli, &req.to_value())?;
    while let Some(next) = v["next"].as_u64() {
        match &mut req {
            Request::Inbox { offset, .. } | Request::Channel { offset, .. } | Request::Outbox { offset, .. } => {
                *offset = Some(next as usize)
            }
            _ => break,
        }
        let more = request(cli, &req.to_value())?;
        if more["next"].as_u64().is_some_and(|n| n <= next) {
            break; // the list shrank meanwhile: stop rather than loop
        }
        if let (Some(all), Some(page)) = (v["messages"].as_array_mut(), more["messages"].as_array()) {
            all.extend(page.iter().cloned());
        }
        v["next"] = more["next"].clone();
    }
    Ok(v)
}

fn channel(action: ChannelAction, name: &str, key: Option<&String>) -> Request {
    Request::Channel { action, name: Some(name.to_string()), key: key.cloned(), offset: None, limit: None }
}

/// The message text: the remaining words, or stdin when there are none (or "-").
fn text_arg(words: &[String]) -> Result<String, String> {
    if !words.is_empty() && words != ["-"] {
        return Ok(words.join(" "));
    }
    let mut t = String::new();
    std::io::stdin()
        .take(crate::runtime::MAX_TEXT as u64 + 1)
        .read_to_string(&mut t)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    // `echo text | meshpost ...` adds one newline that is not the message's.
    if t.ends_with('\n') {
        t.pop();
    }
    Ok(t)
}

/// A sent message's state; for a file, with its name and parts delivered.
pub(super) fn sent_state(m: &Value) -> String {
    let f = &m["file"];
    let mut state = s(m, "state");
    if let Some(why) = m["reason"].as_str() {
        state.push_str(&format!(": {why}"));
    }
    if f.is_object() {
        let name: String = s(f, "name").chars().take(24).collect();
        format!("{state} (file {name}, {}/{} parts delivered)", s(f, "delivered"), s(f, "parts"))
    } else {
        state
    }
}

/// A file in the inbox list: its name and size, or a progress bar while
/// its parts are arriving.
fn file_cell(m: &Value) -> String {
    let name: String = s(m, "name").chars().take(24).collect();
    if m["complete"] == json!(true) {
        format!("[file] {name} ({})", super::files::size(m["size"].as_u64().unwrap_or(0)))
    } else {
        let (have, parts) = (m["have"].as_u64().unwrap_or(0), m["parts"].as_u64().unwrap_or(1));
        super::files::bar(&format!("[file] {name}"), have, parts, "parts")
    }
}

fn human(cmd: &str, words: &[String], v: &Value) -> String {
    match cmd {
        "status" => format!(
            "node:        {} ({})\ndomain:      {}\nversion:     {}\nuptime:      {}s\nudp port:    {}\nlinks:       {}\npeers:       {} configured\nknown nodes: {}\nstore:       {} envelopes, {} bytes\ninbox:       {} messages, {} unread",
            s(v, "node_id"),
            s(v, "name"),
            s(v, "domain"),
            s(v, "version"),
            s(v, "uptime"),
            s(v, "port"),
            s(v, "links"),
            s(v, "peers_configured"),
            s(v, "known_nodes"),
            s(&v["store"], "envelopes"),
            s(&v["store"], "bytes"),
            s(&v["inbox"], "messages"),
            s(&v["inbox"], "unread")
        ),
        "identity" => format!(
            "node_id:         {}\npublic_key:      {}\nx25519:          {}\nkem_fingerprint: {}\nname:            {}\ndomain:          {}",
            s(v, "node_id"),
            s(v, "public_key"),
            s(v, "x25519"),
            s(v, "kem_fingerprint"),
            s(v, "name"),
            s(v, "domain")
        ),
        "peers" => {
            let rows: Vec<Vec<String>> = v["links"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|l| {
                            vec![
                                s(l, "node"),
                                s(l, "name"),
                                s(l, "address"),
                                s(l, "state"),
                                format!("{}s", s(l, "up_secs")),
                                format!("{}s", s(l, "last_rx_secs")),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut out = table(&["node", "name", "address", "state", "up", "last rx"], &rows);
            let conf: Vec<Vec<String>> = v["configured"]
                .as_array()
                .map(|a| {
                    a.iter().map(|p| vec![s(p, "address"), s(p, "state"), s(p, "pinned"), s(p, "linked")]).collect()
                })
                .unwrap_or_default();
            if !conf.is_empty() {
                out.push_str("\n\n");
                out.push_str(&table(&["configured peer", "state", "pinned", "linked node"], &conf));
            }
            let disc: Vec<Vec<String>> = v["discovered"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|p| vec![s(p, "node"), s(p, "address"), format!("{}s", s(p, "seen_secs")), s(p, "linked")])
                        .collect()
                })
                .unwrap_or_default();
            if !disc.is_empty() {
                out.push_str("\n\n");
                out.push_str(&table(&["discovered node", "address", "seen", "linked"], &disc));
            }
            out
        }
        "routes" => {
            let rows: Vec<Vec<String>> = v["routes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|r| {
                            vec![
                                s(r, "node"),
                                s(r, "name"),
                                s(r, "via"),
                                s(r, "hops"),
                                format!("{}s", s(r, "age_secs")),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            table(&["destination", "name", "next hop", "hops", "age"], &rows)
        }
        "graph" => v["dot"].as_str().unwrap_or("").trim_end().to_string(),
        "federation" => {
            let rows: Vec<Vec<String>> = v["federation"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|f| {
                            vec![
                                s(f, "domain"),
                                s(f, "address"),
                                s(f, "state"),
                                s(f, "last_handshake_secs"),
                                format!("{}/{}", s(f, "envelopes_in"), s(f, "envelopes_out")),
                                s(f, "quota_drops"),
                                format!(
                                    "{}",
                                    f["refused_class"].as_u64().unwrap_or(0)
                                        + f["refused_spoofed"].as_u64().unwrap_or(0)
                                ),
                                format!("{}/{}", s(f, "backlog"), s(f, "delayed")),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            table(
                &[
                    "domain",
                    "address",
                    "state",
                    "handshake age s",
                    "in/out",
                    "quota drops",
                    "refused",
                    "backlog/delayed",
                ],
                &rows,
            )
        }
        "contact" if v.get("contacts").is_some() => {
            let rows: Vec<Vec<String>> = v["contacts"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|c| {
                            let keys = if c["has_keys"] == json!(true) { "yes" } else { "no (add the card again)" };
                            let flags = match (c["verified"] == json!(true), c["blocked"] == json!(true)) {
                                (true, true) => "verified, blocked",
                                (true, false) => "verified",
                                (false, true) => "blocked",
                                (false, false) => "-",
                            };
                            vec![
                                s(c, "name"),
                                s(c, "id"),
                                s(c, "domain"),
                                s(c, "linked"),
                                keys.to_string(),
                                flags.into(),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            table(&["name", "node", "domain", "linked", "keys", "state"], &rows)
        }
        "verify" => format!(
            "safety number with {}:\n\n    {}\n\nCompare it with theirs (in person or on a call); if it matches: meshpost verify {} --confirm{}",
            s(v, "id"),
            s(v, "safety_number"),
            s(v, "id"),
            if v["verified"] == json!(true) { "\n(verified)" } else { "" }
        ),
        "block" | "unblock" => {
            format!("{} {}", s(v, "id"), if v["blocked"] == json!(true) { "blocked" } else { "unblocked" })
        }
        "contact" => v.get("added").map_or_else(
            || format!("removed {}", s(v, "removed")),
            |a| format!("added {} as {}", a.as_str().unwrap_or("-"), s(v, "name")),
        ),
        "outbox" if v.get("message").is_some() => {
            let m = &v["message"];
            format!(
                "id:    {}\nto:    {} {}\nstate: {} since {}",
                s(m, "id"),
                s(m, "to"),
                s(m, "to_name"),
                sent_state(m),
                s(m, "since")
            )
        }
        "outbox" => {
            let rows: Vec<Vec<String>> = v["messages"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|m| vec![s(m, "id"), s(m, "to_name"), s(m, "to"), sent_state(m), s(m, "since")])
                        .collect()
                })
                .unwrap_or_default();
            table(&["id", "to", "node", "state", "since"], &rows)
        }
        "send" => format!(
            "queued {} to {}{}",
            s(v, "id"),
            s(v, "to"),
            if v["linked"] == json!(true) { " (linked, sending now)" } else { " (stored until a path appears)" }
        ),
        "inbox" => match words.first().map(String::as_str) {
            Some("read") if v["message"]["kind"] == json!("file") => {
                let m = &v["message"];
                format!(
                    "id:      {}\nfrom:    {} {}\nfile:    {} ({}, {})\nparts:   {}\n\nsave it with: meshpost inbox save {}",
                    s(m, "id"),
                    s(m, "from"),
                    s(m, "from_name"),
                    s(m, "name"),
                    s(m, "type"),
                    super::files::size(m["size"].as_u64().unwrap_or(0)),
                    super::files::bar("", m["have"].as_u64().unwrap_or(0), m["parts"].as_u64().unwrap_or(1), "parts")
                        .trim_start(),
                    s(m, "id")
                )
            }
            Some("read") => {
                let m = &v["message"];
                format!(
                    "id:      {}\nfrom:    {} {}\ncreated: {}\n\n{}",
                    s(m, "id"),
                    s(m, "from"),
                    s(m, "from_name"),
                    s(m, "created"),
                    s(m, "text")
                )
            }
            Some("delete") => format!("deleted {}", s(v, "deleted")),
            _ => {
                let rows: Vec<Vec<String>> = v["messages"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|m| {
                                let text = if m["kind"] == json!("file") { file_cell(m) } else { s(m, "text") };
                                let short: String =
                                    text.chars().take(60).map(|c| if c.is_control() { ' ' } else { c }).collect();
                                let new = if m["read"] == json!(true) { "" } else { "new" };
                                vec![s(m, "id"), s(m, "from"), s(m, "from_name"), new.into(), short]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                table(&["id", "from", "name", "new", "text"], &rows)
            }
        },
        "store" if words.first().map(String::as_str) == Some("list") => {
            let rows: Vec<Vec<String>> = v["envelopes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|e| {
                            vec![
                                s(e, "id"),
                                s(e, "kind"),
                                s(e, "dest"),
                                s(e, "hops_left"),
                                s(e, "expires"),
                                s(e, "bytes"),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            table(&["id", "kind", "destination", "hops left", "expires", "bytes"], &rows)
        }
        "store" => format!(
            "envelopes: {} of {} ({} local)\nbytes:     {} of {}\nmemory:    {} of {} bytes (the rest read back from the state log)\nquota:     {} bytes per origin, {} per recipient",
            s(v, "envelopes"),
            s(v, "max_count"),
            s(v, "local"),
            s(v, "bytes"),
            s(v, "max_bytes"),
            s(v, "memory_bytes"),
            s(v, "max_memory"),
            s(v, "max_bytes_per_origin"),
            s(v, "max_bytes_per_recipient")
        ),
        "metrics" => v["text"].as_str().unwrap_or("").trim_end().to_string(),
        "publish" => format!("published {} to {}", s(v, "id"), s(v, "channel")),
        "channel" => match words.first().map(String::as_str) {
            Some("create") => {
                format!("created channel {}; share this key only with its members:\n{}", s(v, "name"), s(v, "key"))
            }
            Some("join") => format!("joined {}", s(v, "joined")),
            Some("leave") => format!("left {}", s(v, "left")),
            Some("history") => v["messages"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|m| format!("{} {}: {}", s(m, "created"), s(m, "from"), s(m, "text")))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default(),
            _ => {
                let rows: Vec<Vec<String>> = v["channels"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|c| {
                                vec![s(c, "name"), s(c, "id"), s(c, "source"), s(c, "history"), s(c, "subscribers")]
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                table(&["channel", "id", "source", "history", "subscribers"], &rows)
            }
        },
        "reload" => "configuration reloaded".into(),
        "peer" => v
            .get("added")
            .or(v.get("removed"))
            .map_or("done".into(), |a| format!("{} {}", words.first().map_or("", |w| w), a.as_str().unwrap_or(""))),
        _ => v.to_string(),
    }
}

fn subscribe(cli: &Cli, channel: Option<&str>) -> Result<String, String> {
    let mut sock = connect(cli)?;
    let req = Request::Subscribe { channel: channel.map(str::to_string) };
    let _ = writeln!(sock, "{}", req.to_value());
    let mut rd = BufReader::new(&sock);
    let mut first = String::new();
    rd.read_line(&mut first).map_err(|e| format!("no response from daemon: {e}"))?;
    let v: Value = serde_json::from_str(&first).map_err(|_| "daemon closed the connection".to_string())?;
    if v.get("ok") != Some(&Value::Bool(true)) {
        return Err(s_err(&v));
    }
    let out = std::io::stdout();
    for line in rd.lines() {
        let Ok(line) = line else { break };
        let mut o = out.lock();
        let ok = if cli.json {
            writeln!(o, "{line}")
        } else {
            let e: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if e["event"] == "dropped" {
                writeln!(o, "[dropped {} messages: this subscriber was too slow]", s(&e, "count"))
            } else {
                let who = if s(&e, "from_name").is_empty() || s(&e, "from_name") == "-" {
                    s(&e, "from")
                } else {
                    s(&e, "from_name")
                };
                writeln!(o, "{} from {}: {}", s(&e, "id"), who, s(&e, "text"))
            }
        };
        if ok.and_then(|_| o.flush()).is_err() {
            break;
        }
    }
    Ok(String::new())
}

fn s_err(v: &Value) -> String {
    v.get("error").and_then(Value::as_str).unwrap_or("request failed").to_string()
}

fn offline_identity(cli: &Cli, dir: &str) -> Result<String, String> {
    let state = crate::persist::State::open(std::path::Path::new(dir))?;
    let (id, created) = state.identity()?;
    let mut v = crate::runtime::identity_json(&id, "", "");
    v["created"] = json!(created);
    Ok(if cli.json { v.to_string() } else { human("identity", &[], &v) })
}
