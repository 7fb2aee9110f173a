//! The mDNS (RFC 6762/6763) messages meshpost uses to find neighbours.
//!
//! A node advertises the service `_meshpost._udp.local.` with one instance
//! named after its node id: a PTR record to the instance, an SRV record with
//! the UDP port and target `<node id>.local`, a TXT record `v=1 id=<node
//! id> fp=<key fingerprint> domain=<domain> port=<port>`, and in the
//! additional section A/AAAA records for the SRV target with the sending
//! interface's addresses, so that avahi and umdns can resolve it. A peer
//! meshpost itself links to the source address of the packet. Browsing is
//! a PTR query for the service name; a PTR query for
//! `_services._dns-sd._udp.local` (service-type enumeration) is answered
//! with the service name. Records with TTL 0 are goodbyes.
//!
//! This module builds those messages and parses any mDNS packet into the
//! questions and announcements it carries. It is a pure codec: no sockets,
//! no timers, no decision whom to answer. Malformed packets become errors;
//! names are followed through at most [`MAX_POINTERS`] compression pointers.

use core::net::IpAddr;

use crate::crypto::{from_hex, to_hex};
use crate::identity::NodeId;
use crate::wire::{Put, Reader};

pub const SERVICE: &str = "_meshpost._udp.local";
/// The DNS-SD service-type enumeration name (RFC 6763 section 9).
pub const SERVICES: &str = "_services._dns-sd._udp.local";
pub const MDNS_PORT: u16 = 5353;
pub const PROTOCOL_VERSION: &str = "1";
/// Records we send live this long (seconds).
pub const RECORD_TTL: u32 = 120;
/// Compression pointers followed per name before giving up.
pub const MAX_POINTERS: usize = 16;
/// Other question names kept from one packet (for instance and host
/// queries); the rest are ignored.
pub const MAX_ASKED: usize = 16;

const T_A: u16 = 1;
const T_PTR: u16 = 12;
const T_TXT: u16 = 16;
const T_AAAA: u16 = 28;
const T_SRV: u16 = 33;
const T_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
const CACHE_FLUSH: u16 = 0x8000;

/// What one node announces about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub node: NodeId,
    pub fingerprint: [u8; 8],
    pub port: u16,
    pub domain: String,
}

impl Announcement {
    /// The DNS-SD instance name, `<node id>._meshpost._udp.local`.
    pub fn instance(&self) -> String {
        format!("{}.{SERVICE}", self.node)
    }

    /// The SRV target, `<node id>.local`.
    pub fn host(&self) -> String {
        format!("{}.local", self.node)
    }
}

/// What a parsed packet means to us.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    /// It asks for our service type (PTR or ANY).
    pub queries_service: bool,
    /// It asks which service types exist (DNS-SD enumeration).
    pub queries_services: bool,
    /// Other names it asks about (lowercase, at most [`MAX_ASKED`]): an
    /// instance's SRV/TXT or a host's A/AAAA.
    pub asked: Vec<String>,
    /// meshpost instances it announces.
    pub announcements: Vec<Announcement>,
    /// meshpost instances it says goodbye for (records with TTL 0).
    pub goodbyes: Vec<NodeId>,
}

impl Parsed {
    /// Whether it asks for anything `me` should answer with its records.
    pub fn asks_for(&self, me: &Announcement) -> bool {
        if self.queries_service {
            return true;
        }
        if self.asked.is_empty() {
            return false;
        }
        let (instance, host) = (me.instance(), me.host());
        self.asked.iter().any(|n| *n == instance || *n == host)
    }
}

/// Why a packet was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdnsError(pub &'static str);

fn put_name(b: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let l = &label.as_bytes()[..label.len().min(63)];
        b.put_u8(l.len() as u8);
        b.extend_from_slice(l);
    }
    b.put_u8(0);
}

fn header(b: &mut Vec<u8>, flags: u16, qd: u16, an: u16) {
    b.put_u16(0);
    b.put_u16(flags);
    b.put_u16(qd);
    b.put_u16(an);
    b.put_u16(0);
    b.put_u16(0);
}

/// A query for the meshpost service.
pub fn query() -> Vec<u8> {
    let mut b = Vec::with_capacity(40);
    header(&mut b, 0, 1, 0);
    put_name(&mut b, SERVICE);
    b.put_u16(T_PTR);
    b.put_u16(CLASS_IN);
    b
}

fn record(b: &mut Vec<u8>, name: &str, t: u16, class: u16, ttl: u32, rdata: &[u8]) {
    put_name(b, name);
    b.put_u16(t);
    b.put_u16(class);
    b.put_u32(ttl);
    b.put_u16(rdata.len() as u16);
    b.extend_from_slice(rdata);
}

/// A response for our instance: PTR, SRV and TXT, then A/AAAA records for
/// the SRV target with `addrs` (the sending interface's addresses), and
/// the service-type enumeration PTR when `enumeration` is set (it was
/// asked for). Sent unsolicited, it is an announcement; `ttl` 0 says
/// goodbye.
pub fn announce(a: &Announcement, ttl: u32, addrs: &[IpAddr], enumeration: bool) -> Vec<u8> {
    let instance = a.instance();
    let host = a.host();
    let mut b = Vec::with_capacity(400);
    header(&mut b, 0x8400, 0, 3 + u16::from(enumeration));
    let mut ptr = Vec::new();
    put_name(&mut ptr, &instance);
    record(&mut b, SERVICE, T_PTR, CLASS_IN, ttl, &ptr);
    let mut srv = Vec::new();
    srv.put_u16(0);
    srv.put_u16(0);
    srv.put_u16(a.port);
    put_name(&mut srv, &host);
    record(&mut b, &instance, T_SRV, CLASS_IN | CACHE_FLUSH, ttl, &srv);
    let mut txt = Vec::new();
    for kv in [
        format!("v={PROTOCOL_VERSION}"),
        format!("id={}", a.node),
        format!("fp={}", to_hex(&a.fingerprint)),
        format!("domain={}", a.domain),
        format!("port={}", a.port),
    ] {
        txt.put_u8(kv.len() as u8);
        txt.extend_from_slice(kv.as_bytes());
    }
    record(&mut b, &instance, T_TXT, CLASS_IN | CACHE_FLUSH, ttl, &txt);
    if enumeration {
        let mut svc = Vec::new();
        put_name(&mut svc, SERVICE);
        record(&mut b, SERVICES, T_PTR, CLASS_IN, ttl, &svc);
    }
    let addrs = &addrs[..addrs.len().min(8)];
    b[10..12].copy_from_slice(&(addrs.len() as u16).to_be_bytes());
    for ip in addrs {
        match ip {
            IpAddr::V4(v4) => record(&mut b, &host, T_A, CLASS_IN | CACHE_FLUSH, ttl, &v4.octets()),
            IpAddr::V6(v6) => record(&mut b, &host, T_AAAA, CLASS_IN | CACHE_FLUSH, ttl, &v6.octets()),
        }
    }
    b
}

/// Reads a possibly compressed name starting at `pos` in `msg`; returns the
/// lowercase dotted name and the offset after it.
fn read_name(msg: &[u8], mut pos: usize) -> Result<(String, usize), MdnsError> {
    let mut name = String::new();
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *msg.get(pos).ok_or(MdnsError("name runs past the end"))? as usize;
        match len {
            0 => {
                pos += 1;
                break;
            }
            l if l & 0xc0 == 0xc0 => {
                let lo = *msg.get(pos + 1).ok_or(MdnsError("truncated pointer"))? as usize;
                jumps += 1;
                if jumps > MAX_POINTERS {
                    return Err(MdnsError("too many compression pointers"));
                }
                end.get_or_insert(pos + 2);
                pos = ((l & 0x3f) << 8) | lo;
            }
            l if l <= 63 => {
                let label = msg.get(pos + 1..pos + 1 + l).ok_or(MdnsError("label runs past the end"))?;
                if !name.is_empty() {
                    name.push('.');
                }
                name.push_str(&String::from_utf8_lossy(label).to_ascii_lowercase());
                if name.len() > 255 {
                    return Err(MdnsError("name longer than 255"));
                }
                pos += 1 + l;
            }
            _ => return Err(MdnsError("reserved label type")),
        }
    }
    Ok((name, end.unwrap_or(pos)))
}

fn txt_fields(rdata: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < rdata.len() {
        let l = rdata[i] as usize;
        let Some(s) = rdata.get(i + 1..i + 1 + l) else { break };
        let s = String::from_utf8_lossy(s);
        if let Some((k, v)) = s.split_once('=') {
            out.push((k.to_ascii_lowercase(), v.to_string()));
        }
        i += 1 + l;
    }
    out
}

/// Parses one mDNS packet.
pub fn parse(msg: &[u8]) -> Result<Parsed, MdnsError> {
    let mut r = Reader::new(msg);
    let short = |_| MdnsError("header truncated");
    let _id = r.u16("id").map_err(short)?;
    let flags = r.u16("flags").map_err(short)?;
    let qd = r.u16("qdcount").map_err(short)?;
    let an = r.u16("ancount").map_err(short)?;
    let ns = r.u16("nscount").map_err(short)?;
    let ar = r.u16("arcount").map_err(short)?;
    let mut pos = 12;
    let mut out = Parsed::default();
    let is_response = flags & 0x8000 != 0;
    for _ in 0..qd {
        let (name, p) = read_name(msg, pos)?;
        let qtype = msg.get(p..p + 2).ok_or(MdnsError("question truncated"))?;
        let qtype = u16::from_be_bytes([qtype[0], qtype[1]]);
        msg.get(p + 2..p + 4).ok_or(MdnsError("question truncated"))?;
        pos = p + 4;
        if is_response {
            continue;
        }
        let ptr_or_any = qtype == T_PTR || qtype == T_ANY;
        if name == SERVICE && ptr_or_any {
            out.queries_service = true;
        } else if name == SERVICES && ptr_or_any {
            out.queries_services = true;
        } else if out.asked.len() < MAX_ASKED && !out.asked.contains(&name) {
            out.asked.push(name);
        }
    }
    // Collect the records of each instance, then assemble announcements.
    let mut instances: Vec<String> = Vec::new();
    let mut txts: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut gone: Vec<String> = Vec::new();
    let mut ports: Vec<(String, u16)> = Vec::new();
    let total = an as usize + ns as usize + ar as usize;
    for _ in 0..total {
        let (name, p) = read_name(msg, pos)?;
        let fixed = msg.get(p..p + 10).ok_or(MdnsError("record truncated"))?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        let rstart = p + 10;
        let rdata = msg.get(rstart..rstart + rdlen).ok_or(MdnsError("record data truncated"))?;
        pos = rstart + rdlen;
        if !is_response || instances.len() > 64 {
            continue;
        }
        let service_record = name.ends_with(SERVICE) && name != SERVICE;
        match rtype {
            T_PTR if name == SERVICE && ttl == 0 => gone.push(read_name(msg, rstart)?.0),
            T_PTR if name == SERVICE => instances.push(read_name(msg, rstart)?.0),
            T_TXT | T_SRV if service_record && ttl == 0 => gone.push(name),
            T_TXT if service_record => txts.push((name, txt_fields(rdata))),
            T_SRV if name.ends_with(SERVICE) && rdata.len() >= 6 => {
                ports.push((name, u16::from_be_bytes([rdata[4], rdata[5]])))
            }
            _ => {}
        }
    }
    for name in &gone {
        // The instance label is the node id (our own naming rule).
        let node = name.strip_suffix(SERVICE).and_then(|l| l.strip_suffix('.')).and_then(NodeId::parse);
        if let Some(node) = node.filter(|n| !out.goodbyes.contains(n)) {
            out.goodbyes.push(node);
        }
    }
    for (name, fields) in &txts {
        if gone.contains(name) {
            continue;
        }
        let get = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        if get("v") != Some(PROTOCOL_VERSION) {
            continue;
        }
        let (Some(node), Some(fp)) = (get("id").and_then(NodeId::parse), get("fp").and_then(from_hex::<8>)) else {
            continue;
        };
        // The instance name must be the node id it claims.
        if !name.starts_with(&node.to_string()) {
            continue;
        }
        let port = get("port")
            .and_then(|p| p.parse::<u16>().ok())
            .or_else(|| ports.iter().find(|(n, _)| n == name).map(|(_, p)| *p));
        let Some(port) = port.filter(|p| *p != 0) else { continue };
        let domain = get("domain").unwrap_or("").chars().take(32).collect();
        if !out.goodbyes.contains(&node) {
            out.announcements.push(Announcement { node, fingerprint: fp, port, domain });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann() -> Announcement {
        Announcement { node: NodeId([0xab; 16]), fingerprint: [7; 8], port: 4849, domain: "ffhh".into() }
    }

    #[test]
    fn announce_round_trips() {
        let p = parse(&announce(&ann(), RECORD_TTL, &[], false)).unwrap();
        assert!(!p.queries_service);
        assert_eq!(p.announcements, vec![ann()]);
    }

    #[test]
    fn addresses_enumeration_and_goodbyes() {
        let addrs: [IpAddr; 2] = ["10.0.0.1".parse().unwrap(), "fe80::1".parse().unwrap()];
        let pkt = announce(&ann(), RECORD_TTL, &addrs, true);
        // Three answers and the enumeration PTR, two additional records.
        assert_eq!((&pkt[6..8], &pkt[10..12]), (&[0, 4][..], &[0, 2][..]));
        assert!(pkt.windows(4).any(|w| w == [10, 0, 0, 1]));
        assert_eq!(parse(&pkt).unwrap().announcements, vec![ann()]);
        let bye = parse(&announce(&ann(), 0, &addrs, false)).unwrap();
        assert_eq!((bye.announcements.len(), bye.goodbyes.clone()), (0, vec![ann().node]));
    }

    #[test]
    fn enumeration_instance_and_host_questions_are_seen() {
        let mut q = Vec::new();
        header(&mut q, 0, 3, 0);
        for (name, t) in [(SERVICES, T_PTR), (ann().instance().as_str(), T_SRV), (ann().host().as_str(), T_AAAA)] {
            put_name(&mut q, name);
            q.put_u16(t);
            q.put_u16(CLASS_IN | 0x8000);
        }
        let p = parse(&q).unwrap();
        assert!(p.queries_services && !p.queries_service);
        assert!(p.asks_for(&ann()));
        let mut other = ann();
        other.node = NodeId([1; 16]);
        assert!(!p.asks_for(&other));
    }

    #[test]
    fn query_is_recognised() {
        let p = parse(&query()).unwrap();
        assert!(p.queries_service);
        assert!(p.announcements.is_empty());
    }

    #[test]
    fn compressed_names_are_followed_and_loops_refused() {
        // A response whose PTR target uses a pointer back to the question name.
        let mut b = Vec::new();
        header(&mut b, 0x8400, 0, 0);
        let svc_at = b.len();
        put_name(&mut b, SERVICE);
        assert_eq!(read_name(&b, svc_at).unwrap().0, SERVICE);
        let mut c = b.clone();
        let ptr_at = c.len();
        c.extend_from_slice(&[0xc0, svc_at as u8]);
        assert_eq!(read_name(&c, ptr_at).unwrap(), (SERVICE.to_string(), ptr_at + 2));
        // A pointer to itself loops.
        let mut l = vec![0u8; 12];
        l.extend_from_slice(&[0xc0, 12]);
        assert!(read_name(&l, 12).is_err());
    }

    #[test]
    fn bad_version_mismatched_instance_and_junk_are_ignored_or_refused() {
        let mut a = announce(&ann(), 120, &[], false);
        let pos = a.windows(3).position(|w| w == b"v=1").unwrap();
        a[pos + 2] = b'9';
        assert!(parse(&a).unwrap().announcements.is_empty());
        let mut other = ann();
        other.node = NodeId([1; 16]);
        let mut b = announce(&other, 120, &[], false);
        // Claim a different id in TXT than the instance name.
        let id_pos = b.windows(3).position(|w| w == b"id=").unwrap();
        b[id_pos + 3] = b'f';
        assert!(parse(&b).unwrap().announcements.is_empty());
        for cut in 0..a.len() {
            let _ = parse(&a[..cut]);
        }
        assert!(parse(&[0; 5]).is_err());
    }
}
