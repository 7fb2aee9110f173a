//! `meshpost send ... --wait`: follows a sent message in the outbox until
//! it is delivered, expired or dropped, or the time is up, and says which
//! with the exit code. It does not send anything itself (cli.rs does).

use serde_json::Value;

use super::cli::{run, s};
use super::connection::{Cli, request};
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
        let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let v = request(cli, &Request::Outbox { id: Some(id.clone()), offset: None, limit: None }.to_value())?;
            let m = &v["message"];
            let state = m["state"].as_str().unwrap_or("queued");
            let code = match state {
                "delivered" => Some(0),
                "expired" | "dropped" | "refused" => Some(3),
                _ if std::time::Instant::now() >= end => Some(2),
                _ => None,
            };
            if let Some(code) = code {
                let out = if json_out {
                    m.to_string()
                } else if code == 2 {
                    format!("{id} to {}: {state}, not delivered after {secs} s (it stays queued)", s(m, "to"))
                } else {
                    format!("{id} to {}: {}", s(m, "to"), super::cli::sent_state(m))
                };
                return Ok((out, code));
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    })())
}
