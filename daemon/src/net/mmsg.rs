//! Batched receiving on the link socket: one `recvmmsg(2)` takes every
//! datagram waiting (up to [`SLOTS`]), so a burst costs one system call per
//! batch instead of one per datagram. Elsewhere than Linux it falls back to
//! one `recvfrom` per datagram.
//!
//! It does not interpret datagrams, wait for readiness (the run loop asks
//! tokio) or send anything: the daemon sends each datagram as the node
//! emits it, in order with its other effects.

use std::io;
use std::net::SocketAddr;

/// Datagrams taken per call (the run loop's batch).
pub const SLOTS: usize = 64;
/// Room per datagram: the protocol's datagrams are at most 1,232 bytes
/// (`link::packet::MAX_DATAGRAM`); anything longer is cut to this and
/// refused by the node's parser.
pub const SLOT_LEN: usize = 2048;

/// Buffers for one batch: `SLOTS` x `SLOT_LEN` bytes (128 KiB), made once.
pub struct RecvBatch {
    bufs: Vec<u8>,
    got: Vec<(usize, SocketAddr)>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch { bufs: vec![0u8; SLOTS * SLOT_LEN], got: Vec::with_capacity(SLOTS) }
    }
}

impl RecvBatch {
    /// Takes the datagrams waiting on `sock` without blocking and returns
    /// how many; nothing waiting is `WouldBlock`. Read them with
    /// [`get`](Self::get).
    pub fn recv(&mut self, sock: &impl std::os::fd::AsRawFd) -> io::Result<usize> {
        self.got.clear();
        self.recv_into(sock.as_raw_fd())?;
        Ok(self.got.len())
    }

    /// The `i`-th datagram of the last batch and its sender.
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let (len, from) = *self.got.get(i)?;
        let start = i * SLOT_LEN;
        Some((self.bufs.get(start..start + len.min(SLOT_LEN))?, from))
    }

    #[cfg(target_os = "linux")]
    fn recv_into(&mut self, fd: std::os::fd::RawFd) -> io::Result<()> {
        let mut names: [socket2::SockAddrStorage; SLOTS] = std::array::from_fn(|_| socket2::SockAddrStorage::zeroed());
        // SAFETY: plain C structures, all-zero is a valid value for each.
        let mut iovs: [libc::iovec; SLOTS] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; SLOTS] = unsafe { std::mem::zeroed() };
        for (i, chunk) in self.bufs.chunks_exact_mut(SLOT_LEN).enumerate().take(SLOTS) {
            iovs[i] = libc::iovec { iov_base: chunk.as_mut_ptr().cast(), iov_len: SLOT_LEN };
            let h = &mut msgs[i].msg_hdr;
            // SockAddrStorage is a transparent wrapper of sockaddr_storage.
            h.msg_namelen = names[i].size_of();
            h.msg_name = (&mut names[i] as *mut socket2::SockAddrStorage).cast();
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: every header points at a buffer of SLOT_LEN bytes and a
        // sockaddr_storage that live until the call returns; the kernel
        // writes at most SLOTS headers, their lengths and names.
        let n = unsafe { libc::recvmmsg(fd, msgs.as_mut_ptr(), SLOTS as _, libc::MSG_DONTWAIT, std::ptr::null_mut()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        for i in 0..(n as usize).min(SLOTS) {
            let name = std::mem::replace(&mut names[i], socket2::SockAddrStorage::zeroed());
            // SAFETY: the kernel filled the storage with msg_namelen bytes
            // of a socket address of the socket's family.
            let addr = unsafe { socket2::SockAddr::new(name, msgs[i].msg_hdr.msg_namelen) };
            // A datagram from an address that is neither IPv4 nor IPv6
            // cannot reach a UDP socket; skipped if it ever did.
            if let Some(from) = addr.as_socket() {
                self.got.push((msgs[i].msg_len as usize, from));
            }
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    fn recv_into(&mut self, fd: std::os::fd::RawFd) -> io::Result<()> {
        use std::os::fd::FromRawFd;
        // Borrowed for the call only: forgotten, not closed, afterwards.
        let sock = std::mem::ManuallyDrop::new(unsafe { std::net::UdpSocket::from_raw_fd(fd) });
        for (i, chunk) in self.bufs.chunks_exact_mut(SLOT_LEN).enumerate().take(SLOTS) {
            match sock.recv_from(chunk) {
                Ok((n, from)) => self.got.push((n, from)),
                Err(e) if i == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn a_burst_from_two_senders_comes_in_one_call_in_order() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let to = rx.local_addr().unwrap();
        let (a, b) = (UdpSocket::bind("127.0.0.1:0").unwrap(), UdpSocket::bind("127.0.0.1:0").unwrap());
        let mut batch = RecvBatch::default();
        assert_eq!(batch.recv(&rx).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        for i in 0..40u8 {
            let s = if i % 2 == 0 { &a } else { &b };
            s.send_to(&vec![i; 1 + i as usize * 30], to).unwrap();
        }
        // One oversized datagram is cut to the slot, not a failure.
        a.send_to(&vec![7u8; 5000], to).unwrap();
        let mut seen = Vec::new();
        while seen.len() < 41 {
            match batch.recv(&rx) {
                Ok(n) => (0..n).for_each(|i| {
                    let (d, from) = batch.get(i).unwrap();
                    seen.push((d.to_vec(), from));
                }),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        for (i, (d, from)) in seen.iter().take(40).enumerate() {
            assert_eq!(d, &vec![i as u8; 1 + i * 30]);
            let want = if i % 2 == 0 { &a } else { &b };
            assert_eq!(*from, want.local_addr().unwrap());
        }
        assert_eq!(seen[40].0.len(), SLOT_LEN);
        assert!(batch.get(SLOTS).is_none());
    }

    #[test]
    fn ipv4_senders_arrive_on_a_dual_stack_socket_as_mapped_addresses() {
        let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None).unwrap();
        s.set_only_v6(false).unwrap();
        s.bind(&"[::]:0".parse::<SocketAddr>().unwrap().into()).unwrap();
        s.set_nonblocking(true).unwrap();
        let rx: UdpSocket = s.into();
        let port = rx.local_addr().unwrap().port();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"hello", ("127.0.0.1", port)).unwrap();
        let mut batch = RecvBatch::default();
        let n = loop {
            match batch.recv(&rx) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(n, 1);
        let (d, from) = batch.get(0).unwrap();
        assert_eq!(d, b"hello");
        assert_eq!(crate::net::udp::normalize(from), tx.local_addr().unwrap());
    }
}
