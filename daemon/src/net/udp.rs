//! The link socket and peer addresses: binding the dual-stack UDP socket,
//! resolving configured peers (IPv6 zones included), and normalizing
//! v4-mapped addresses. It sends and receives nothing itself.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use meshpost_proto::node::PeerSpec;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::names::{Lookup, Names};
use crate::config::{Settings, split_host_port};
use crate::warn;

/// The configured peers and federation peers whose addresses are known
/// now; host names come from `names` (looked up off the event loop; a
/// pending one is added when its answer arrives). Names that do not
/// resolve are skipped with a warning so that a DNS outage does not stop
/// the daemon. Federated channel names are looked up in `channel_ids`.
/// `quiet` leaves out the warnings (re-applying after a lookup).
pub fn resolve_peers(
    settings: &Settings,
    channel_ids: &[(String, [u8; 16])],
    names: &mut Names,
    quiet: bool,
) -> Vec<PeerSpec> {
    let mut out = Vec::new();
    for p in &settings.peers {
        match names.lookup(&p.address) {
            Lookup::Ready(addr) => out.push(PeerSpec { addr, pin: p.key, federation: None }),
            Lookup::Pending => {}
            Lookup::Failed(e) if !quiet => {
                warn!("peer {} (config line {}): {e}; skipped until reload", p.address, p.line)
            }
            Lookup::Failed(_) => {}
        }
    }
    for f in &settings.federation {
        let mut policy = f.policy.clone();
        for c in &f.channels {
            let id = meshpost_proto::crypto::from_hex::<16>(c)
                .or_else(|| channel_ids.iter().find(|(n, _)| n == c).map(|(_, id)| *id));
            match id {
                Some(id) => policy.channels.push(id),
                None => warn!(
                    "federation {} (config line {}): no channel '{c}' here; it will not cross",
                    f.policy.domain, f.line
                ),
            }
        }
        match names.lookup(&f.address) {
            Lookup::Ready(addr) => out.push(PeerSpec { addr, pin: Some(f.key), federation: Some(policy) }),
            Lookup::Pending => {}
            Lookup::Failed(e) if !quiet => {
                warn!("federation peer {} (config line {}): {e}; skipped until reload", f.address, f.line)
            }
            Lookup::Failed(_) => {}
        }
    }
    out
}

/// An address that needs no DNS: an IP literal, or an IPv6 address with a
/// zone (`fe80::1%mesh0`, as link-local peers need). `None` for a host
/// name (see names.rs).
pub(crate) fn resolve_literal(address: &str) -> Option<Result<SocketAddr, String>> {
    let Some((host, port)) = split_host_port(address) else {
        return Some(Err(format!("'{address}' is not host:port")));
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(Ok(SocketAddr::new(ip, port)));
    }
    let (ip, zone) = host.split_once('%')?;
    let Ok(ip) = ip.parse::<Ipv6Addr>() else {
        return Some(Err(format!("'{ip}' is not an IPv6 address")));
    };
    let scope = zone.parse::<u32>().ok().or_else(|| interface_index(zone));
    Some(
        scope
            .map(|s| SocketAddr::V6(std::net::SocketAddrV6::new(ip, port, 0, s)))
            .ok_or_else(|| format!("no interface '{zone}' for {address}")),
    )
}

pub(crate) fn interface_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: c is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// Maps v4-mapped IPv6 addresses back to IPv4 so peers compare equal.
pub(crate) fn normalize(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

/// What the link socket asks the kernel to buffer each way. A receiver
/// holds an offer window's envelopes while it checks their signatures
/// (proto's flow.rs: up to 256 datagrams and 96 KiB of envelopes), and the
/// kernel counts each datagram at 1.3 KB (loopback, 450 bytes) to about
/// 2.8 KB (drivers with 2 KB receive buffers): up to 700 KB a window.
const SOCKET_BUFFER: usize = 1 << 20;
/// Below this a window of short messages can overrun the receive buffer
/// (and its datagrams are asked for again a second later).
const LOW_RECV_BUFFER: usize = 768 * 1024;

/// Sizes the link socket's buffers. `SO_RCVBUFFORCE` and `SO_SNDBUFFORCE`
/// pass the `rmem_max`/`wmem_max` limits (212,992 bytes unless raised) for
/// a process that may (CAP_NET_ADMIN: the daemon under procd runs as
/// root); otherwise the kernel grants at most twice those limits. A
/// receive buffer that stays small is logged once, with the sysctl to
/// raise.
fn size_buffers(s: &Socket) {
    use std::os::fd::AsRawFd;
    let force = |opt: libc::c_int| {
        let v = SOCKET_BUFFER as libc::c_int;
        // SAFETY: `v` outlives the call, and its size is what is passed.
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&raw const v).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        r == 0
    };
    if !force(libc::SO_RCVBUFFORCE) {
        let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    }
    if !force(libc::SO_SNDBUFFORCE) {
        let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    }
    if let Ok(got) = s.recv_buffer_size()
        && got < LOW_RECV_BUFFER
    {
        warn!(
            "link socket: the kernel grants a receive buffer of {got} bytes, not {}; a backlog from a fast peer may overrun it (raise net.core.rmem_max to {SOCKET_BUFFER})",
            2 * SOCKET_BUFFER
        );
    }
}

/// Binds the link socket: dual-stack IPv6 if possible, else IPv4. Returns
/// the tokio socket for receiving, a plain clone for non-blocking sends
/// (tokio's `try_send_to` refuses until the reactor has seen the socket
/// writable), and whether it is IPv6.
pub(crate) fn bind_udp(port: u16) -> std::io::Result<(UdpSocket, std::net::UdpSocket, bool)> {
    let dual = (|| {
        let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_only_v6(false)?;
        s.bind(&SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port).into())?;
        Ok::<_, std::io::Error>(s)
    })();
    let (s, v6) = match dual {
        Ok(s) => (s, true),
        Err(_) => {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
            s.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())?;
            (s, false)
        }
    };
    size_buffers(&s);
    s.set_nonblocking(true)?;
    let sender: std::net::UdpSocket = s.try_clone()?.into();
    Ok((UdpSocket::from_std(s.into())?, sender, v6))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(a: &str) -> Result<SocketAddr, String> {
        resolve_literal(a).unwrap_or_else(|| Err("a host name".into()))
    }

    #[tokio::test]
    async fn the_link_socket_buffers_a_whole_offer_window() {
        // Root (the daemon under procd) gets its buffer whatever
        // `rmem_max` says; anyone else gets at most twice `rmem_max`. This
        // host's limit is not per network namespace, so a test cannot
        // lower it for itself: the forced path shows only where the limit
        // is below 1 MiB.
        let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max").unwrap().trim().parse().unwrap();
        let root = unsafe { libc::geteuid() } == 0;
        let (_, s, _) = bind_udp(0).unwrap();
        let got = socket2::SockRef::from(&s).recv_buffer_size().unwrap();
        let want = if root { 2 * SOCKET_BUFFER } else { 2 * SOCKET_BUFFER.min(rmem_max) };
        assert_eq!(got, want, "receive buffer (root: {root}, rmem_max {rmem_max})");
    }

    #[test]
    fn peer_addresses_resolve_with_ipv6_zones() {
        assert_eq!(resolve("127.0.0.1:4849").unwrap(), "127.0.0.1:4849".parse().unwrap());
        assert_eq!(resolve("[::1]:5").unwrap(), "[::1]:5".parse().unwrap());
        let lo = interface_index("lo").unwrap();
        match resolve("[fe80::1%lo]:4849").unwrap() {
            SocketAddr::V6(v6) => {
                assert_eq!(v6.scope_id(), lo);
                assert_eq!(v6.port(), 4849);
            }
            other => panic!("{other}"),
        }
        assert_eq!(resolve("[fe80::1%7]:1").map(|a| matches!(a, SocketAddr::V6(v) if v.scope_id() == 7)), Ok(true));
        assert!(resolve("[fe80::1%nosuchif0]:1").unwrap_err().contains("no interface"));
        assert!(resolve("nonsense").is_err());
        assert_eq!(resolve_literal("gw.example:4849"), None, "host names go to names.rs, off the loop");
    }
}
