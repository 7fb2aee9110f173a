//! meshpost-sim: many real proto `Node`s on virtual time (engine.rs) on a
//! batman-like segment or a layer-3 mesh (topo.rs), reporting what the
//! protocol costs per node: bytes and datagrams per node and minute by
//! what they carry, duplicates, delivery and latency, and the state each
//! node holds. `--sweep` runs a list of sizes and writes a CSV and an SVG
//! plot (plot.rs) for docs/scale.md.
//!
//! Deliberately not here: the protocol (it is the real one, unchanged), and
//! any I/O beyond writing the results. The engine is the library (lib.rs),
//! so tests can run the same simulation.

// A thousand nodes' maps and sets are gigabytes of small allocations:
// mimalloc took about a sixth off a loaded mesh of 300 against the system
// allocator (docs/scale.md, "Simulator speed"). The daemon keeps the
// platform's allocator; this is the simulator binary alone.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fmt::Write as _;
use std::time::Instant;

use meshpost_proto::node::WireClass;
use meshpost_sim::engine::{Params, Report, Sim};
use meshpost_sim::{plot, topo};

const USAGE: &str = "usage: meshpost-sim [--topology segment|mesh|federated] [--nodes N | --sweep N,N,...] [--minutes M]
       [--warmup M] [--seed S] [--load MSGS_PER_MIN] [--channel MSGS_PER_MIN] [--loss P] [--delay MS] [--write-ms MS] [--store-memory BYTES] [--churn SHARE_PER_HOUR]
       [--degree D] [--announce SECONDS] [--announce-max SECONDS] [--cut MINUTE]
       [--partition MINUTE:MINUTES] [--link-target K] [--counters] [--progress] [--out PREFIX]
       meshpost-sim --replot PREFIX
Writes PREFIX.csv and PREFIX.svg with --out. --replot draws PREFIX.svg again
from PREFIX.csv (rows of separate runs put together).";

type Args = (Params, Vec<usize>, Option<String>, bool);

fn parse() -> Result<Args, String> {
    let mut p = Params::default();
    let mut sweep = Vec::new();
    let mut out = None;
    let mut counters = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().ok_or(format!("{a} needs a value"));
        let num = |s: String| s.parse::<f64>().map_err(|e| format!("{a}: {e}"));
        match a.as_str() {
            "--topology" => p.topology = topo::Kind::parse(&v()?).ok_or("topology: segment, mesh or federated")?,
            "--nodes" => p.nodes = num(v()?)? as usize,
            "--sweep" => {
                sweep =
                    v()?.split(',').map(|s| s.parse().map_err(|e| format!("--sweep: {e}"))).collect::<Result<_, _>>()?
            }
            "--minutes" => p.minutes = num(v()?)? as u64,
            "--warmup" => p.warmup_minutes = num(v()?)? as u64,
            "--seed" => p.seed = num(v()?)? as u64,
            "--load" => p.load_per_minute = num(v()?)?,
            "--channel" => p.channel_per_minute = num(v()?)?,
            "--loss" => p.loss = num(v()?)?,
            "--delay" => p.delay_ms = num(v()?)? as u64,
            "--write-ms" => p.write_ms = num(v()?)? as u64,
            "--store-memory" => p.store_memory = Some(num(v()?)? as usize),
            "--churn" => p.churn_per_hour = num(v()?)?,
            "--degree" => p.degree = num(v()?)?,
            "--announce" => p.config.announce_interval_ms = (num(v()?)? * 1000.0) as u64,
            "--link-target" => p.config.link_target = num(v()?)? as usize,
            "--announce-max" => p.config.announce_max_interval_ms = (num(v()?)? * 1000.0) as u64,
            "--cut" => p.cut_minute = Some(num(v()?)? as u64),
            "--partition" => {
                let s = v()?;
                let (a, b) = s.split_once(':').ok_or("--partition MINUTE:MINUTES")?;
                let at = a.parse().map_err(|e| format!("--partition: {e}"))?;
                p.partition = Some((at, b.parse().map_err(|e| format!("--partition: {e}"))?));
            }
            "--out" => out = Some(v()?),
            "--counters" => counters = true,
            "--progress" => p.progress = true,
            _ => return Err(format!("unknown argument {a}\n{USAGE}")),
        }
    }
    // As the daemon's loader does: a node leaves the graph after three of
    // the longest beacon intervals.
    let c = &mut p.config;
    c.announce_max_interval_ms = c.announce_max_interval_ms.max(c.announce_interval_ms);
    c.route_timeout_ms = 3 * c.announce_max_interval_ms;
    if sweep.is_empty() {
        sweep.push(p.nodes);
    }
    if sweep.iter().any(|n| *n < 2) || p.warmup_minutes >= p.minutes {
        return Err(format!("need at least 2 nodes and a warmup shorter than the run\n{USAGE}"));
    }
    let negative = [p.churn_per_hour, p.load_per_minute, p.channel_per_minute].iter().any(|x| *x < 0.0);
    if !(0.0..1.0).contains(&p.loss) || negative || p.degree <= 0.0 {
        return Err(format!(
            "--loss is a share below 1; --churn, --load, --channel and --degree are not negative\n{USAGE}"
        ));
    }
    if p.cut_minute.is_some_and(|m| m >= p.minutes) {
        return Err(format!("--cut must fall within the run\n{USAGE}"));
    }
    Ok((p, sweep, out, counters))
}

fn header() -> String {
    let mut h = String::from("topology,nodes,seed,minutes,warmup,load_per_min,loss,churn_per_hour");
    for c in WireClass::ALL {
        let _ = write!(h, ",bytes_{}", c.name());
    }
    h.push_str(",bytes_total,datagrams,announce_dup_per_accepted,data_dup_per_delivered,sent,delivered,");
    h.push_str("latency_p50_ms,latency_p99_ms,links_avg,routes_avg,routes_max,cards_avg,store_avg,");
    h.push_str("seen_avg,seen_max,settled_before_cut,convergence_s,partition,missed,");
    h.push_str("channel_posts,channel_reach,channel_p50_ms,channel_p99_ms,channel_copies_per_receiver,channel_missed,events,wall_s");
    h
}

fn pct(v: &[u64], q: f64) -> u64 {
    if v.is_empty() { 0 } else { v[((v.len() - 1) as f64 * q) as usize] }
}

fn row(p: &Params, r: &Report, wall: f64) -> String {
    let mut s = format!(
        "{},{},{},{},{},{},{},{}",
        p.topology.name(),
        p.nodes,
        p.seed,
        p.minutes,
        p.warmup_minutes,
        p.load_per_minute,
        p.loss,
        p.churn_per_hour
    );
    for b in r.bytes_per_node_minute {
        let _ = write!(s, ",{b:.0}");
    }
    let _ = write!(
        s,
        ",{:.0},{:.1},{:.2},{:.2},{},{},{},{},{:.1},{:.1},{},{:.1},{:.1},{:.0},{},{},{},{},{},{},{:.4},{},{},{:.2},{},{},{:.1}",
        r.bytes_per_node_minute.iter().sum::<f64>(),
        r.datagrams_per_node_minute,
        r.announce_duplicates_per_accepted,
        r.data_duplicates_per_delivered,
        r.sent,
        r.delivered,
        pct(&r.latencies_ms, 0.5),
        pct(&r.latencies_ms, 0.99),
        r.links_avg,
        r.routes_avg,
        r.routes_max,
        r.cards_avg,
        r.store_avg,
        r.seen_avg,
        r.seen_max,
        r.routes_settled_before_cut,
        r.convergence_ms.map_or(String::new(), |ms| format!("{:.0}", ms as f64 / 1000.0)),
        p.partition.map_or(String::new(), |(at, m)| format!("{at}:{m}")),
        r.missed,
        r.channel_posts,
        r.channel_received as f64 / (r.channel_posts * (p.nodes as u64 - 1)).max(1) as f64,
        pct(&r.channel_latencies_ms, 0.5),
        pct(&r.channel_latencies_ms, 0.99),
        r.channel_copies_per_receiver,
        r.channel_missed,
        r.events,
        wall
    );
    s
}

/// The title of a plot of runs with these settings.
fn title(topology: &str, load: bool, warmup: u64) -> String {
    let state = if load { "under load" } else { "idle" };
    format!("{topology}: bytes sent per node and minute, {state} after {warmup} min")
}

/// PREFIX.svg from the rows of PREFIX.csv (written by --out, perhaps put
/// together from several runs).
fn replot(prefix: &str) -> Result<(), String> {
    let path = format!("{prefix}.csv");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| head.iter().position(|h| *h == name).ok_or(format!("{path}: no column {name}"));
    let classes: Vec<usize> =
        WireClass::ALL.iter().map(|c| col(&format!("bytes_{}", c.name()))).collect::<Result<_, _>>()?;
    let (nodes, topology, load, warmup) = (col("nodes")?, col("topology")?, col("load_per_min")?, col("warmup")?);
    let mut points = Vec::new();
    let mut first: Option<Vec<String>> = None;
    for (k, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let field = |i: usize| f.get(i).copied().ok_or(format!("{path}:{}: short row", k + 2));
        let n = field(nodes)?.parse().map_err(|e| format!("{path}:{}: nodes: {e}", k + 2))?;
        let mut b = [0.0; 7];
        for (slot, i) in b.iter_mut().zip(&classes) {
            *slot = field(*i)?.parse().map_err(|e| format!("{path}:{}: bytes: {e}", k + 2))?;
        }
        points.push((n, b));
        first.get_or_insert(vec![field(topology)?.to_string(), field(load)?.to_string(), field(warmup)?.to_string()]);
    }
    let Some(first) = first else { return Err(format!("{path}: no rows")) };
    points.sort_by_key(|p| p.0);
    let t = title(&first[0], first[1].parse::<f64>().unwrap_or(0.0) > 0.0, first[2].parse().unwrap_or(0));
    std::fs::write(format!("{prefix}.svg"), plot::svg(&t, &points)).map_err(|e| format!("{prefix}.svg: {e}"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, prefix] = &args[..]
        && flag == "--replot"
    {
        if let Err(e) = replot(prefix) {
            eprintln!("{e}");
            std::process::exit(1);
        }
        return;
    }
    let (p, sweep, out, counters) = match parse() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut csv = header();
    csv.push('\n');
    println!("{}", header());
    let mut points = Vec::new();
    for n in sweep {
        let p = Params { nodes: n, ..p.clone() };
        let t = Instant::now();
        let r = Sim::new(p.clone()).run();
        let line = row(&p, &r, t.elapsed().as_secs_f64());
        println!("{line}");
        if counters {
            for (name, v) in r.counters.iter().filter(|c| c.1 > 0) {
                eprintln!("  {n} nodes: {name} {v}");
            }
            for (what, v) in &r.log_events {
                eprintln!("  {n} nodes: event {what}: {v}");
            }
        }
        csv.push_str(&line);
        csv.push('\n');
        points.push((n, r.bytes_per_node_minute));
    }
    if let Some(prefix) = out {
        let title = title(p.topology.name(), p.load_per_minute > 0.0, p.warmup_minutes);
        let write = |path: String, text: &str| {
            if let Err(e) = std::fs::write(&path, text) {
                eprintln!("{path}: {e}");
                std::process::exit(1);
            }
        };
        write(format!("{prefix}.csv"), &csv);
        write(format!("{prefix}.svg"), &plot::svg(&title, &points));
    }
}
