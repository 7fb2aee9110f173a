//! `meshpost selftest` on the client side: asks the daemon for its checks,
//! and when no daemon answers, runs the few that need none. It does not
//! implement the daemon's checks (runtime/selftest.rs does).

use serde_json::{Value, json};

use super::cli::s;
use super::connection::{Cli, request};
use crate::control::protocol::Request;

/// `meshpost selftest`: the daemon's checks, or, when no daemon answers,
/// the checks that need none (is the UDP port free, is the state
/// directory writable, is the clock set). One line per check with the fix;
/// exit code 1 when anything is wrong. `None` for other commands.
pub fn selftest(cli: &Cli) -> Option<(String, u8)> {
    use crate::runtime::selftest::{check, clock_is_set};
    if cli.words.first().map(String::as_str) != Some("selftest") {
        return None;
    }
    let checks: Vec<Value> = match request(cli, &Request::Selftest.to_value()) {
        Ok(v) => v["checks"].as_array().cloned().unwrap_or_default(),
        Err(e) => {
            let mut out = vec![check(
                "daemon",
                false,
                e.to_string(),
                "start it (service meshpost start) and read why it stopped: logread -e meshpost",
            )];
            let settings = crate::config::Settings::load(cli.config.as_deref(), &crate::config::Overrides::default());
            match settings {
                Err(e) => out.push(check("config", false, e.to_string(), "fix the line named above")),
                Ok(s) => {
                    let free = std::net::UdpSocket::bind(("::", s.port))
                        .or_else(|_| std::net::UdpSocket::bind(("0.0.0.0", s.port)));
                    out.push(check(
                        "udp port",
                        free.is_ok(),
                        format!("UDP port {}", s.port),
                        "another program holds the port: stop it or set `option port`",
                    ));
                    let probe = s.state_dir.join(".selftest.tmp");
                    let writable =
                        std::fs::create_dir_all(&s.state_dir).is_ok() && std::fs::write(&probe, b"x").is_ok();
                    let _ = std::fs::remove_file(&probe);
                    out.push(check(
                        "state dir writable",
                        writable,
                        s.state_dir.display().to_string(),
                        "the state directory must be writable",
                    ));
                }
            }
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            out.push(check(
                "clock",
                clock_is_set(now),
                format!("unix time {now}"),
                "the clock is not set: wait for NTP",
            ));
            out
        }
    };
    let healthy = checks.iter().all(|c| c["ok"] == true);
    let text = if cli.json {
        json!({"ok": true, "healthy": healthy, "checks": checks}).to_string()
    } else {
        checks
            .iter()
            .map(|c| {
                let ok = c["ok"] == true;
                let mut line = format!("{:4}  {}: {}", if ok { "ok" } else { "FAIL" }, s(c, "check"), s(c, "detail"));
                if !ok {
                    line.push_str(&format!("\n      fix: {}", s(c, "fix")));
                }
                line
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    Some((text, u8::from(!healthy)))
}
