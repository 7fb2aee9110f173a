//! `meshpost send ... --wait` (and `send --file ... --wait`): follows a
//! sent message or file in the outbox until it is delivered, expired,
//! dropped or refused, or the time is up, and says which with the exit
//! code. It does not send anything itself (cli.rs and files.rs do).

use std::time::{Duration, Instant};

use serde_json::Value;

use super::cli::{run, s};
use super::connection::{Cli, request};
use super::files::Progress;
use crate::control::protocol::Request;

/// `meshpost send ... --wait[=SECS]`: sends, then follows the message in
/// the outbox until it is delivered (exit 0), expired or dropped (exit 3),
/// or the time is up (exit 2). `None` when there is no `--wait`.
pub fn send_and_wait(cli: &Cli) -> Option<Result<(String, u8), String>> {
    let pos = cli.words.iter().position(|w| w == "--wait" || w.starts_with("--wait="))?;
    if cli.words.first().map(String::as_str) != Some("send") {
        return None;
    }
    let secs = match cli.words[pos].strip_prefix("--wait=") {
        Some(n) => match n.parse::<u64>() {
            Ok(n) => n,
            Err(_) => return Some(Err("--wait=SECS takes seconds".into())),
        },
        None => 60,
    };
    let mut plain = cli.clone();
    plain.words.remove(pos);
    let json_out = plain.json;
    plain.json = true;
    Some((|| {
        let sent: Value = serde_json::from_str(&run(&plain)?).map_err(|e| e.to_string())?;
        let id = sent["id"].as_str().ok_or("the daemon did not return a message id")?.to_string();
        follow(cli, &id, secs, json_out)
    })())
}

/// Follows a sent message or file (`id` as `send` or `send --file`
/// answered) in the outbox until it is delivered (exit 0), expired, dropped
/// or refused (exit 3), or `secs` are up (exit 2). A file's delivered parts
/// are drawn as a progress bar on a terminal.
pub fn follow(cli: &Cli, id: &str, secs: u64, json_out: bool) -> Result<(String, u8), String> {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut bar: Option<Progress> = None;
    loop {
        let v = request(cli, &Request::Outbox { id: Some(id.to_string()), offset: None, limit: None }.to_value())?;
        let m = &v["message"];
        let state = m["state"].as_str().unwrap_or("queued");
        let file = &m["file"];
        if file.is_object() {
            let parts = file["parts"].as_u64().unwrap_or(1);
            let bar = bar.get_or_insert_with(|| Progress::new("delivered", parts));
            bar.set(file["delivered"].as_u64().unwrap_or(0), "parts");
        }
        let code = match state {
            "delivered" => Some(0),
            "expired" | "dropped" | "refused" => Some(3),
            _ if Instant::now() >= end => Some(2),
            _ => None,
        };
        if let Some(code) = code {
            if let Some(b) = bar.as_mut() {
                b.finish();
            }
            let what = if file.is_object() {
                format!("file {id} '{}'", file["name"].as_str().unwrap_or(""))
            } else {
                format!("{id} to {}", s(m, "to"))
            };
            let out = if json_out {
                m.to_string()
            } else if code == 2 {
                format!("{what}: {state}, not delivered after {secs} s (it stays queued)")
            } else {
                format!("{what}: {}", super::cli::sent_state(m))
            };
            return Ok((out, code));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
