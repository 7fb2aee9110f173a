//! meshpost-bench: starts real daemons (the release binary) on loopback,
//! drives them through their control sockets with pipelined requests, and
//! reports delivered messages per second, latency percentiles, CPU per
//! message of each process, RSS and state-directory usage.
//!
//! Scenarios: `two` (A sends to B, linked), `relay` (A to Z through R),
//! `backlog` (A queues messages while B is stopped, then B starts). It does
//! not run Reticulum/LXMF (tools/bench/lxmf_bench.py does, for the same
//! table) and does not write docs: `make bench` puts its lines there.

mod daemon;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use daemon::{BenchError, Daemon, io};
use serde_json::{Value, json};

struct Args {
    bin: PathBuf,
    dir: PathBuf,
    scenario: String,
    messages: usize,
    size: usize,
    conns: usize,
    /// Rate limits out of the way (link_rate, origin_rate 100000).
    unlimited: bool,
    /// backlog: restart the sender once its messages are queued, so it
    /// drains from a store restored from its state log.
    restart_sender: bool,
    /// Further UCI options for every daemon (`--set KEY=VALUE`), e.g. to
    /// compare `store_memory` values in one run.
    set: Vec<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        bin: PathBuf::from("target/release/meshpost"),
        dir: std::env::temp_dir().join("meshpost-bench"),
        scenario: "two".into(),
        messages: 2000,
        size: 200,
        conns: 4,
        unlimited: false,
        set: Vec::new(),
        restart_sender: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or(format!("{k} needs a value"));
        let num = |s: String| s.parse::<usize>().map_err(|e| format!("{k}: {e}"));
        match k.as_str() {
            "--bin" => a.bin = val()?.into(),
            "--dir" => a.dir = val()?.into(),
            "--scenario" => a.scenario = val()?,
            "--messages" => a.messages = num(val()?)?,
            "--size" => a.size = num(val()?)?,
            "--conns" => a.conns = num(val()?)?.max(1),
            "--unlimited" => a.unlimited = true,
            "--restart-sender" => a.restart_sender = true,
            "--set" => {
                let kv = val()?;
                let (k, v) = kv.split_once('=').ok_or(format!("--set {kv}: want KEY=VALUE"))?;
                a.set.push((k.into(), v.into()));
            }
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    Ok(a)
}

const USAGE: &str = "usage: meshpost-bench [--scenario two|relay|backlog] [--messages N] [--size BYTES]
       [--conns K] [--unlimited] [--set KEY=VALUE]... [--restart-sender] [--bin PATH] [--dir DIR]";

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshpost-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Daemons named `names`, linked as `edges` (indices), started and linked.
fn start(args: &Args, names: &[&str], edges: &[(usize, usize)]) -> Result<Vec<Daemon>, BenchError> {
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir).map_err(io("create the bench directory"))?;
    let mut ds = Vec::new();
    for n in names {
        let mut d = Daemon::new(&args.bin, &args.dir, n)?;
        let big = (1u64 << 30).to_string();
        for (k, v) in [
            ("log_level", "info"),
            ("inbox_max", "100000"),
            ("inbox_max_bytes", &big),
            ("store_max_count", "100000"),
            ("store_max_bytes", &big),
            ("store_origin_quota", &big),
            ("store_recipient_quota", &big),
        ] {
            d.options.push((k.into(), v.into()));
        }
        if args.unlimited {
            d.options.push(("link_rate".into(), "100000".into()));
            d.options.push(("origin_rate".into(), "100000".into()));
        }
        d.options.extend(args.set.iter().cloned());
        ds.push(d);
    }
    for &(x, y) in edges {
        let (px, py) = (ds[x].port, ds[y].port);
        ds[x].peers.push(py);
        ds[y].peers.push(px);
    }
    for d in &mut ds {
        d.start()?;
    }
    for &(x, y) in edges {
        let (dx, dy) = (&ds[x], &ds[y]);
        if !wait_until(20, || dx.linked_to(&dy.node_id) && dy.linked_to(&dx.node_id)) {
            return Err(BenchError::Daemon(format!("{} and {} did not link", dx.name, dy.name)));
        }
    }
    Ok(ds)
}

fn text(i: usize, size: usize) -> String {
    let mut t = format!("bench {i} ");
    while t.len() < size {
        t.push('x');
    }
    t
}

/// Sends `n` messages from `from` to `to` over `conns` connections, each
/// writing all its requests before reading the answers (pipelined).
/// Returns when each request was written, and how many were refused.
fn send_all(from: &Daemon, to: &str, n: usize, size: usize, conns: usize) -> Result<(Vec<Instant>, usize), BenchError> {
    let t0 = Instant::now();
    let mut sent = vec![t0; n];
    let mut refused = 0;
    let mut handles = Vec::new();
    for c in 0..conns {
        let s = UnixStream::connect(&from.sock).map_err(io("connect"))?;
        s.set_read_timeout(Some(Duration::from_secs(120))).map_err(io("timeout"))?;
        let mut w = s.try_clone().map_err(io("clone the socket"))?;
        let (to, idx): (String, Vec<usize>) = (to.into(), (c..n).step_by(conns).collect());
        let count = idx.len();
        let writer = std::thread::spawn(move || {
            let mut at = Vec::new();
            for i in idx {
                at.push((i, Instant::now()));
                // One write per request, as a client that sends one
                // request at a time does: `writeln!` on the bare socket
                // wrote the line and its newline in two, and the daemon
                // paid for two socket buffers a request.
                let mut req = json!({"cmd": "send", "to": to, "text": text(i, size)}).to_string();
                req.push('\n');
                if w.write_all(req.as_bytes()).is_err() {
                    break;
                }
            }
            at
        });
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(s);
            let mut bad = 0;
            for _ in 0..count {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    return count;
                }
                let ok = serde_json::from_str::<Value>(&line).is_ok_and(|v| v["ok"] == true);
                if !ok {
                    if bad == 0 {
                        eprintln!("refused: {}", line.trim());
                    }
                    bad += 1;
                }
            }
            bad
        });
        handles.push((writer, reader));
    }
    for (w, r) in handles {
        for (i, at) in w.join().unwrap_or_default() {
            sent[i] = at;
        }
        refused += r.join().unwrap_or(n);
    }
    Ok((sent, refused))
}

/// Follows `to`'s message events on a subscription; sends the arrival time
/// of each bench message by index until `n` arrived or `secs` passed.
/// Arrival times by message index, and how many events the daemon
/// reported dropped for this subscriber (their messages have no time).
type Arrivals = (Vec<Option<Instant>>, usize);

fn subscribe(to: &Daemon, n: usize, secs: u64) -> Result<mpsc::Receiver<Arrivals>, BenchError> {
    let mut s = UnixStream::connect(&to.sock).map_err(io("connect"))?;
    writeln!(s, "{}", json!({"cmd": "subscribe"})).map_err(io("subscribe"))?;
    s.set_read_timeout(Some(Duration::from_secs(secs))).map_err(io("timeout"))?;
    let mut r = BufReader::new(s);
    let mut first = String::new();
    r.read_line(&mut first).map_err(io("subscribe answer"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut got = vec![None; n];
        let (mut count, deadline) = (0, Instant::now() + Duration::from_secs(secs));
        // Events the daemon dropped for a lagging subscriber: their
        // messages have no time; the run still ends and says so.
        let mut dropped = 0;
        let mut line = String::new();
        while count + dropped < n && Instant::now() < deadline {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
            if v["event"] == "dropped" {
                let k = v["count"].as_u64().unwrap_or(0) as usize;
                eprintln!("bench: the subscription dropped {k} events");
                dropped += k;
                continue;
            }
            let i = v["text"].as_str().and_then(|t| t.strip_prefix("bench ")?.split(' ').next()?.parse::<usize>().ok());
            if v["event"] == "message"
                && let Some(i) = i.filter(|i| *i < n)
                && got[i].is_none()
            {
                got[i] = Some(Instant::now());
                count += 1;
            }
        }
        let _ = tx.send((got, dropped));
    });
    Ok(rx)
}

fn metric(d: &Daemon, name: &str) -> u64 {
    let v = d.request(&json!({"cmd": "metrics"})).unwrap_or_default();
    let text = v["text"].as_str().unwrap_or_default().to_string();
    text.lines().find_map(|l| l.strip_prefix(&format!("meshpost_{name} "))?.trim().parse().ok()).unwrap_or(0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn run(args: &Args) -> Result<(), BenchError> {
    let n = args.messages;
    let (names, edges, from, to): (&[&str], &[(usize, usize)], usize, usize) = match args.scenario.as_str() {
        "two" | "backlog" => (&["a", "b"], &[(0, 1)], 0, 1),
        "relay" => (&["a", "r", "z"], &[(0, 1), (1, 2)], 0, 2),
        s => return Err(BenchError::Daemon(format!("unknown scenario {s}"))),
    };
    let mut ds = start(args, names, edges)?;
    let dest = ds[to].node_id.clone();
    // The sender knows the recipient's card (over R: its beacon and card
    // came through) once a probe goes out.
    let probe =
        |d: &Daemon| d.request(&json!({"cmd": "send", "to": dest, "text": "probe"})).is_ok_and(|v| v["ok"] == true);
    if !wait_until(30, || probe(&ds[from])) {
        return Err(BenchError::Daemon("the sender never learned the recipient's card".into()));
    }
    // Two nodes that have talked before: the probe's acknowledgement
    // confirms the end-to-end session, so the run measures the messages
    // that follow, not a first contact (protocol.md 7.2.1).
    let delivered = |d: &Daemon| {
        d.request(&json!({"cmd": "outbox"}))
            .is_ok_and(|v| v["messages"].as_array().is_some_and(|m| m.iter().any(|e| e["state"] == "delivered")))
    };
    if !wait_until(30, || delivered(&ds[from])) {
        return Err(BenchError::Daemon("the probe was never acknowledged".into()));
    }
    let backlog = args.scenario == "backlog";
    if backlog {
        ds[to].stop();
    }
    let mut cpu0: Vec<u64> = ds.iter().map(Daemon::cpu_ms).collect();
    let rx = if backlog { None } else { Some(subscribe(&ds[to], n, 600)?) };
    let (sent, refused) = send_all(&ds[from], &dest, n, args.size, args.conns)?;
    let queued_at = Instant::now();
    let mut stored = None;
    let mut restored = None;
    let rx = match rx {
        Some(rx) => rx,
        None => {
            let (files, bytes) = ds[from].state_usage();
            stored = Some((files, bytes, ds[from].rss_kib()));
            if args.restart_sender {
                ds[from].stop();
                ds[from].start()?;
                let t = Instant::now();
                while !(ds[from]
                    .request(&json!({"cmd": "store"}))
                    .is_ok_and(|v| v["envelopes"].as_u64() >= Some(n as u64))
                    || t.elapsed() > Duration::from_secs(60))
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                restored = Some(ds[from].rss_kib());
                // Its CPU line is then the new life's: the restore and the drain.
                cpu0[from] = 0;
            }
            ds[to].start()?;
            // Deliveries begin before a subscription could be made: the
            // delivered counter is polled instead.
            let (tx, rx) = mpsc::channel();
            let mut got = vec![None; n];
            let mut seen = 0;
            let t0 = Instant::now();
            while seen < n && t0.elapsed() < Duration::from_secs(600) {
                let now = metric(&ds[to], "envelopes_delivered_total") as usize;
                let at = Instant::now();
                for g in got.iter_mut().take(now.min(n)).skip(seen) {
                    *g = Some(at);
                }
                seen = seen.max(now.min(n));
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = tx.send((got, 0));
            rx
        }
    };
    let (got, events_dropped) = rx.recv().unwrap_or_default();
    let cpu1: Vec<u64> = ds.iter().map(Daemon::cpu_ms).collect();
    let arrived: Vec<Instant> = got.iter().flatten().copied().collect();
    let start = if backlog { queued_at } else { sent.iter().min().copied().unwrap_or(queued_at) };
    let end = arrived.iter().max().copied().unwrap_or(start);
    let first = arrived.iter().min().map_or(f64::NAN, |t| t.duration_since(start).as_secs_f64() * 1e3);
    let secs = end.duration_since(start).as_secs_f64();
    let mut lat: Vec<f64> = if backlog {
        arrived.iter().map(|t| t.duration_since(start).as_secs_f64() * 1e3).collect()
    } else {
        got.iter().zip(&sent).filter_map(|(g, s)| g.map(|g| g.duration_since(*s).as_secs_f64() * 1e3)).collect()
    };
    lat.sort_by(f64::total_cmp);
    let dups = metric(&ds[to], "envelopes_duplicate_total");
    println!(
        "scenario={} messages={n} size={} conns={} unlimited={} refused={refused} delivered={} seconds={secs:.3} msg_per_s={:.0} first_ms={first:.1} p50_ms={:.1} p99_ms={:.1} max_ms={:.1} duplicates={dups} events_dropped={events_dropped}",
        args.scenario,
        args.size,
        args.conns,
        args.unlimited,
        arrived.len(),
        arrived.len() as f64 / secs.max(1e-9),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0),
    );
    for (i, d) in ds.iter().enumerate() {
        let cpu = cpu1[i].saturating_sub(cpu0[i]);
        let (files, bytes) = d.state_usage();
        // The state log's own counts: fsyncs and bytes written per message,
        // and how much of it compaction copied (write amplification).
        let per = arrived.len().max(1) as f64;
        let (commits, written, compacted) = (
            metric(d, "state_log_commits_total"),
            metric(d, "state_log_written_bytes_total"),
            metric(d, "state_log_compacted_bytes_total"),
        );
        let (dg_in, dg_out) = (metric(d, "datagrams_in_total"), metric(d, "datagrams_out_total"));
        println!(
            "  {}: cpu_ms={cpu} cpu_us_per_msg={:.0} rss_kib={} state_files={files} state_bytes={bytes} log_commits_per_msg={:.2} log_written_per_msg={:.0} log_compacted_bytes={compacted} datagrams_in_per_msg={:.2} datagrams_out_per_msg={:.2}",
            d.name,
            cpu as f64 * 1e3 / per,
            d.rss_kib(),
            commits as f64 / per,
            written as f64 / per,
            dg_in as f64 / per,
            dg_out as f64 / per,
        );
    }
    if let Some((files, bytes, rss)) = stored {
        println!(
            "  queued at {}: state_files={files} state_bytes={bytes} bytes_per_msg={} rss_kib={rss}",
            ds[from].name,
            bytes / n.max(1) as u64
        );
    }
    if let Some(rss) = restored {
        println!("  restarted {}: rss_kib={rss} (its store restored from the state log)", ds[from].name);
    }
    if arrived.len() < n {
        return Err(BenchError::Daemon(format!("{} of {n} delivered", arrived.len())));
    }
    Ok(())
}
