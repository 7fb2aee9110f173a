//! Federation between two communities on loopback: A1 -(ffa)- GA =(federation)= GB -(ffb)- B1.
//! (The network-namespace version with a routed, delayed path is still to come.)

#[path = "common/mod.rs"]
mod common;

use common::*;
use serde_json::json;

struct Meshes {
    a1: Node,
    ga: Node,
    gb: Node,
    b1: Node,
}

/// Four daemons: A1 and GA in domain ffa, GB and B1 in ffb; GA and GB are
/// federation peers pinned to each other (or GA pins a wrong key).
fn meshes(t: &TempDir, pin_ok: bool, extra_fed: &str) -> Meshes {
    let mut a1 = Node::new(&t.0, "a1");
    let mut ga = Node::new(&t.0, "ga");
    let mut gb = Node::new(&t.0, "gb");
    let mut b1 = Node::new(&t.0, "b1");
    let wrong = Node::new(&t.0, "wrong");
    a1.peer(&ga, true);
    ga.peer(&a1, true);
    b1.peer(&gb, true);
    gb.peer(&b1, true);
    let gb_key = if pin_ok { gb.key() } else { wrong.key() };
    // Announces every 3 s: keys of the other community arrive with the next
    // announce after the federation link comes up.
    let fast = "\toption announce_interval '3'\n";
    a1.extra = format!("\toption domain 'ffa'\n{fast}");
    b1.extra = format!("\toption domain 'ffb'\n{fast}");
    ga.extra = format!(
        "\toption domain 'ffa'\n{fast}config federation\n\toption domain 'ffb'\n\toption address '127.0.0.1:{}'\n\toption key '{gb_key}'\n{extra_fed}",
        gb.port
    );
    gb.extra = format!(
        "\toption domain 'ffb'\n{fast}config federation\n\toption domain 'ffa'\n\toption address '127.0.0.1:{}'\n\toption key '{}'\n{extra_fed}",
        ga.port,
        ga.key()
    );
    for n in [&mut a1, &mut ga, &mut gb, &mut b1] {
        n.start();
    }
    Meshes { a1, ga, gb, b1 }
}

#[test]
fn a_message_crosses_communities_and_the_reply_comes_back() {
    let t = TempDir::new("fed");
    let m = meshes(&t, true, "");
    let (a1, b1) = (m.a1.node_id(), m.b1.node_id());
    // A1 learns B1's keys through the gateways, then writes to b1@ffb.
    let sent =
        wait_until(40, || m.a1.request(json!({"cmd": "send", "to": "b1@ffb", "text": "hallo ffb"}))["ok"] == true);
    assert!(sent, "A1 never learned B1's keys\nGA:\n{}", m.ga.log());
    assert!(wait_until(20, || m.b1.inbox().len() == 1), "GA:\n{}\nGB:\n{}", m.ga.log(), m.gb.log());
    let msg = &m.b1.inbox()[0];
    assert_eq!(msg["text"], "hallo ffb");
    assert_eq!(msg["from"], a1.as_str());
    // The reply goes back the same way.
    let to = format!("{a1}@ffa");
    let sent = wait_until(20, || m.b1.request(json!({"cmd": "send", "to": to, "text": "hallo ffa"}))["ok"] == true);
    assert!(sent, "B1 never learned A1's keys");
    assert!(wait_until(20, || m.a1.inbox().len() == 1));
    assert_eq!(m.a1.inbox()[0]["from"], b1.as_str());
    // A wrong domain is a clear error.
    let v = m.a1.request(json!({"cmd": "send", "to": "b1@ffc", "text": "x"}));
    assert!(v["error"].as_str().unwrap().contains("announced domain 'ffb'"), "{v}");
    // The operator's view.
    let f = m.ga.request(json!({"cmd": "federation"}));
    assert_eq!(f["federation"][0]["domain"], "ffb");
    assert_eq!(f["federation"][0]["state"], "up");
    assert!(f["federation"][0]["envelopes_out"].as_u64().unwrap() >= 1);
    let table = String::from_utf8_lossy(&m.ga.cli(&["federation"]).stdout).to_string();
    assert!(table.contains("ffb") && table.contains("up"), "{table}");
    assert!(m.ga.metric("federation_envelopes_in_total") >= 1);
    assert_eq!(m.ga.request(json!({"cmd": "status"}))["federation_links"], 1);
}

#[test]
fn a_gateway_with_a_wrong_pinned_key_gets_no_link_and_nothing_crosses() {
    let t = TempDir::new("fedpin");
    let m = meshes(&t, false, "");
    std::thread::sleep(std::time::Duration::from_secs(6));
    let f = m.ga.request(json!({"cmd": "federation"}));
    let state = f["federation"][0]["state"].as_str().unwrap_or_default().to_string();
    assert!(state.starts_with("refused: key does not match the pinned key"), "{state}");
    assert!(m.ga.log().contains("peer refused") && m.ga.log().contains("pinned"), "{}", m.ga.log());
    let v = m.a1.request(json!({"cmd": "send", "to": "b1@ffb", "text": "x"}));
    assert_eq!(v["ok"], false, "no keys from ffb may reach ffa: {v}");
}

#[test]
fn federation_config_errors_name_the_line() {
    let t = TempDir::new("fedconf");
    let conf = t.0.join("bad.conf");
    std::fs::write(&conf, "config meshpost 'main'\n\toption domain 'ffa'\n\nconfig federation\n\toption domain 'ffb'\n\toption address '192.0.2.1:4849'\n").unwrap();
    let out = std::process::Command::new(BIN).args(["daemon", "--foreground", "--config"]).arg(&conf).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:4: option 'key'", conf.display())) && err.contains("pinned"), "{err}");
    std::fs::write(&conf, "config meshpost 'main'\n\toption domain 'ffa'\nconfig federation\n\toption domain 'ffa'\n")
        .unwrap();
    let out = std::process::Command::new(BIN).args(["daemon", "--foreground", "--config"]).arg(&conf).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("own domain"));
}
