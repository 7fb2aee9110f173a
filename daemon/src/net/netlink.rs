//! Wakes interface discovery when the kernel reports a change.
//!
//! A netlink route socket subscribed to link and address notifications
//! (RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR) becomes readable
//! when an interface appears, goes up or down, or gains or loses an
//! address. The daemon then re-reads the interface list at once, instead
//! of polling it: an idle router does no work here.
//!
//! It does not parse the messages (discovery re-reads everything with
//! getifaddrs), and it is only a hint: where netlink is unavailable, or
//! notifications were lost (ENOBUFS), discovery's slow periodic rescan
//! still catches up.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::unix::AsyncFd;

/// A subscribed netlink route socket.
pub struct Changes {
    fd: AsyncFd<OwnedFd>,
}

impl Changes {
    /// Opens and subscribes the socket. Must run inside the tokio runtime.
    pub fn open() -> io::Result<Changes> {
        // SAFETY: plain socket(2) call; the result is checked below.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a freshly opened descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = (libc::RTMGRP_LINK | libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV6_IFADDR) as u32;
        // SAFETY: `addr` is a valid sockaddr_nl and the length is its size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is an open descriptor owned by the OwnedFd that the
        // AsyncFd takes; it stays open and the same until the AsyncFd drops.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)?;
        Ok(Changes { fd })
    }

    /// Waits for the next notification and drains every queued one. If the
    /// socket fails it never fires again (returning at once would make the
    /// event loop spin); discovery's periodic rescan carries on.
    pub async fn changed(&self) {
        loop {
            let Ok(mut guard) = self.fd.readable().await else {
                return std::future::pending().await;
            };
            let drained = drain(self.fd.get_ref().as_raw_fd());
            guard.clear_ready();
            if drained {
                return;
            }
        }
    }
}

/// Reads every queued message; true if there was at least one (or the
/// socket reported lost notifications, which also means "re-read").
fn drain(fd: RawFd) -> bool {
    let mut buf = [0u8; 8192];
    let mut any = false;
    loop {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n > 0 {
            any = true;
            continue;
        }
        if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOBUFS) {
            any = true;
            continue;
        }
        return any;
    }
}
