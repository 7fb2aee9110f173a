//! The control socket: one JSON object per line on a Unix stream socket.
//!
//! Each client gets its own task. Requests go to the main loop through a
//! bounded channel and come back through a oneshot, so the protocol state
//! is only ever touched by the main loop. Limits: `max_clients` at once, a
//! request line of at most [`MAX_REQUEST`] bytes that must arrive within
//! `control_timeout` seconds, and writes that must drain within [`WRITE_TIMEOUT`];
//! a client that breaks a limit gets a one-line error and is disconnected,
//! and nobody else waits for it. Access is checked with SO_PEERCRED. One
//! user other than root may hold at most half of `max_clients` (rounded up)
//! and root has [`ROOT_RESERVE`] connections beyond `max_clients`, so no
//! local user can lock root (LuCI's rpcd, the init script) out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::timeout;

use super::protocol::{Request, Upload};
use super::upload;

/// Big enough for the largest `send` text (`MAX_TEXT`) even when every
/// character is a control character that JSON escapes as six bytes.
pub const MAX_REQUEST: usize = 6 * crate::runtime::MAX_TEXT + 4096;
/// Plain sends one client may have waiting for answers at once: a client
/// that writes several before reading (pipelined) gets them handled in
/// one turn of the daemon's loop and committed together.
pub const MAX_PIPELINED: usize = 16;
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Event lines a subscriber gets in one write once it is behind: one
/// write per line kept a subscriber behind a loaded daemon, which then
/// dropped events for it (docs/performance.md, "Offer windows by bytes").
const STREAM_BATCH_BYTES: usize = 64 * 1024;
/// Connections root may open beyond `max_clients`.
pub const ROOT_RESERVE: usize = 2;

/// Most connections one user other than root may hold.
pub fn per_user_limit(max_clients: usize) -> usize {
    max_clients.div_ceil(2).max(1)
}

/// A request on its way to the main loop.
pub struct Incoming {
    pub request: Request,
    pub reply: oneshot::Sender<Reply>,
}

/// The main loop's answer.
pub enum Reply {
    Json(Value),
    /// First line, then every event from the receiver until the client leaves.
    Stream(Value, broadcast::Receiver<Arc<str>>),
}

/// Who may connect, and how many at once; changed on reload.
#[derive(Debug, Clone)]
pub struct Policy {
    pub group_gid: Option<u32>,
    pub max_clients: usize,
    pub request_timeout: Duration,
    /// Largest file `send_file` takes (0: none).
    pub file_max: usize,
}

/// Counters the metrics command reports (usize: 32-bit MIPS has no 64-bit atomics).
#[derive(Debug, Default)]
pub struct Stats {
    pub clients: AtomicUsize,
    pub refused_access: AtomicUsize,
    pub refused_busy: AtomicUsize,
    pub bad_requests: AtomicUsize,
    /// Connections held per user id.
    pub per_uid: Mutex<meshpost_proto::SmallMap<u32, usize>>,
}

impl Stats {
    fn held_by(&self, uid: u32) -> usize {
        self.per_uid.lock().map_or(0, |m| m.get(&uid).copied().unwrap_or(0))
    }

    fn hold(&self, uid: u32, delta: isize) {
        if let Ok(mut m) = self.per_uid.lock() {
            let n = m.entry(uid).or_insert(0);
            *n = n.saturating_add_signed(delta);
            if *n == 0 {
                m.remove(&uid);
            }
        }
    }
}

/// True if a peer with these credentials may use the socket: root, the
/// daemon's own user, or a member (primary or supplementary) of the group.
pub fn allowed(uid: u32, gid: u32, pid: Option<i32>, policy: &Policy) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if uid == 0 || uid == me {
        return true;
    }
    let Some(g) = policy.group_gid else {
        return false;
    };
    if gid == g {
        return true;
    }
    // Supplementary groups are not in SO_PEERCRED; read them from /proc.
    let Some(pid) = pid else { return false };
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .is_some_and(|gs| gs.split_whitespace().any(|x| x.parse::<u32>() == Ok(g)))
}

/// Looks up a group's gid by name.
pub fn group_gid(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: c is a valid NUL-terminated string; getgrnam returns either
    // null or a pointer to a static struct that we read immediately, on the
    // single thread that calls it.
    let gr = unsafe { libc::getgrnam(c.as_ptr()) };
    if gr.is_null() {
        return None;
    }
    // SAFETY: gr was checked non-null above.
    Some(unsafe { (*gr).gr_gid })
}

/// Accepts clients forever.
pub async fn serve(listener: UnixListener, tx: mpsc::Sender<Incoming>, policy: Arc<Mutex<Policy>>, stats: Arc<Stats>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let pol = policy.lock().map(|p| p.clone()).unwrap_or(Policy {
            group_gid: None,
            max_clients: 1,
            request_timeout: Duration::from_secs(10),
            file_max: 0,
        });
        let cred = stream.peer_cred().ok();
        let ok = cred.is_some_and(|c| allowed(c.uid(), c.gid(), c.pid(), &pol));
        let (rd, mut wr) = stream.into_split();
        if !ok {
            stats.refused_access.fetch_add(1, Ordering::Relaxed);
            let who = cred.map_or("unknown".to_string(), |c| format!("uid {} gid {}", c.uid(), c.gid()));
            crate::warn!("control socket: refused {who}: not root, not the daemon's user, not in socket_group");
            tokio::spawn(async move {
                let _ = send_line(&mut wr, &error("permission denied: need root or membership of socket_group")).await;
            });
            continue;
        }
        let uid = cred.map_or(u32::MAX, |c| c.uid());
        let total = stats.clients.load(Ordering::Relaxed);
        let busy = if uid == 0 {
            (total >= pol.max_clients + ROOT_RESERVE).then_some("too many clients connected; try again later")
        } else if stats.held_by(uid) >= per_user_limit(pol.max_clients) {
            Some("this user holds its share of control connections (half of max_clients); close one")
        } else {
            (total >= pol.max_clients).then_some("too many clients connected; try again later")
        };
        if let Some(why) = busy {
            let n = stats.refused_busy.fetch_add(1, Ordering::Relaxed) + 1;
            // One line for the 1st, 10th, 100th ... refusal: a flood of
            // connections must not flood the log.
            let digits = n.to_string();
            if digits.starts_with('1') && digits[1..].bytes().all(|b| b == b'0') {
                crate::warn!("control socket: refused a client of uid {uid} ({n} refused so far): {why}");
            }
            tokio::spawn(async move {
                let _ = send_line(&mut wr, &error(why)).await;
            });
            continue;
        }
        stats.clients.fetch_add(1, Ordering::Relaxed);
        stats.hold(uid, 1);
        let tx = tx.clone();
        let stats2 = stats.clone();
        tokio::spawn(async move {
            client(rd, wr, tx, &stats2, &pol).await;
            stats2.clients.fetch_sub(1, Ordering::Relaxed);
            stats2.hold(uid, -1);
        });
    }
}

pub fn error(msg: impl Into<String>) -> Value {
    json!({"ok": false, "error": msg.into()})
}

async fn send_line(wr: &mut OwnedWriteHalf, v: &Value) -> Result<(), ()> {
    let mut s = String::new();
    push_line(&mut s, v);
    send_raw(wr, s.as_bytes()).await
}

/// Appends `v` and a newline to `out`, without a string of its own.
fn push_line(out: &mut String, v: &Value) {
    use std::fmt::Write;
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{v}");
}

async fn send_raw(wr: &mut OwnedWriteHalf, b: &[u8]) -> Result<(), ()> {
    match timeout(WRITE_TIMEOUT, wr.write_all(b)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

pub(super) enum LineError {
    TooLong,
    Io,
}

/// Reads one line of at most `max` bytes; `Ok(None)` at a clean end.
pub(super) async fn read_line<R: AsyncBufReadExt + Unpin>(
    rd: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, LineError> {
    let mut line = Vec::new();
    loop {
        let buf = rd.fill_buf().await.map_err(|_| LineError::Io)?;
        if buf.is_empty() {
            return if line.is_empty() { Ok(None) } else { Err(LineError::Io) };
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if line.len() + chunk.len() > max {
            return Err(LineError::TooLong);
        }
        line.extend_from_slice(chunk);
        let used = done.unwrap_or(buf.len());
        rd.consume(used);
        if done.is_some() {
            return Ok(Some(line));
        }
    }
}

async fn client(
    rd: tokio::net::unix::OwnedReadHalf,
    mut wr: OwnedWriteHalf,
    tx: mpsc::Sender<Incoming>,
    stats: &Stats,
    policy: &Policy,
) {
    let request_timeout = policy.request_timeout;
    let mut rd = BufReader::with_capacity(16 * 1024, rd);
    loop {
        let line = match timeout(request_timeout, read_line(&mut rd, MAX_REQUEST)).await {
            Err(_) => {
                stats.bad_requests.fetch_add(1, Ordering::Relaxed);
                let _ = send_line(&mut wr, &error("timed out waiting for a complete request line")).await;
                return;
            }
            Ok(Ok(None)) | Ok(Err(LineError::Io)) => return,
            Ok(Err(LineError::TooLong)) => {
                stats.bad_requests.fetch_add(1, Ordering::Relaxed);
                let _ = send_line(&mut wr, &error(format!("request line longer than {MAX_REQUEST} bytes"))).await;
                return;
            }
            Ok(Ok(Some(line))) => line,
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let json = match serde_json::from_slice::<Value>(&line) {
            Ok(v) if v.get("cmd").is_some_and(Value::is_string) => v,
            Ok(_) => {
                stats.bad_requests.fetch_add(1, Ordering::Relaxed);
                if send_line(&mut wr, &error("request must be a JSON object with a string \"cmd\" field"))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            Err(e) => {
                stats.bad_requests.fetch_add(1, Ordering::Relaxed);
                if send_line(&mut wr, &error(format!("request is not valid JSON: {e}"))).await.is_err() {
                    return;
                }
                continue;
            }
        };
        // Well-formed: a command this daemon does not know, or bad
        // arguments, is answered here, and is not a malformed request.
        let request = match Request::from_value(json) {
            Ok(Request::SendFile { to, name, media_type, size, ttl, hops }) => {
                // The file's bytes follow on this connection (upload.rs).
                let _slot = match upload::admit(size, policy.file_max) {
                    Ok(s) => s,
                    Err(e) => {
                        stats.bad_requests.fetch_add(1, Ordering::Relaxed);
                        let _ = send_line(&mut wr, &error(e)).await;
                        return;
                    }
                };
                if send_line(&mut wr, &upload::ready()).await.is_err() {
                    return;
                }
                let up = Upload { to, name, media_type, data: Vec::new(), ttl, hops };
                match upload::receive(&mut rd, up, size as usize, request_timeout).await {
                    Ok(up) => Request::Upload(up),
                    Err(e) => {
                        stats.bad_requests.fetch_add(1, Ordering::Relaxed);
                        let _ = send_line(&mut wr, &error(e)).await;
                        return;
                    }
                }
            }
            Ok(Request::FileData { .. }) => {
                if send_line(&mut wr, &error("file_data outside an upload: send send_file first")).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(r) => r,
            Err(e) => {
                if send_line(&mut wr, &error(e.to_string())).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let is_send = matches!(request, Request::Send { .. });
        let (rtx, rrx) = oneshot::channel();
        if tx.send(Incoming { request, reply: rtx }).await.is_err() {
            return;
        }
        if is_send {
            // Further sends already read from the socket go at once; the
            // answers follow in order.
            let mut waiting = std::collections::VecDeque::from([rrx]);
            while waiting.len() < MAX_PIPELINED
                && let Some(request) = buffered_send(&mut rd)
            {
                let (rtx, rrx) = oneshot::channel();
                if tx.send(Incoming { request, reply: rtx }).await.is_err() {
                    return;
                }
                waiting.push_back(rrx);
            }
            // The answers there already go in one write with the one
            // awaited: a write per answer cost the daemon and the client a
            // socket buffer each.
            let mut out = String::new();
            while let Some(rrx) = waiting.pop_front() {
                let Ok(Reply::Json(v)) = rrx.await else { return };
                push_line(&mut out, &v);
                while let Some(next) = waiting.front_mut() {
                    match next.try_recv() {
                        Ok(Reply::Json(v)) => push_line(&mut out, &v),
                        Err(oneshot::error::TryRecvError::Empty) => break,
                        _ => return,
                    }
                    waiting.pop_front();
                }
                if send_raw(&mut wr, out.as_bytes()).await.is_err() {
                    return;
                }
                out.clear();
            }
            continue;
        }
        match rrx.await {
            Ok(Reply::Json(v)) => {
                if send_line(&mut wr, &v).await.is_err() {
                    return;
                }
            }
            Ok(Reply::Stream(first, events)) => {
                if send_line(&mut wr, &first).await.is_ok() {
                    stream(rd, wr, events).await;
                }
                return;
            }
            Err(_) => return,
        }
    }
}

/// The next request line if it is already in `rd`'s buffer and is a plain
/// send, taken out of the buffer; anything else is left for the main loop
/// of `client` (which reads, checks and answers it in order).
fn buffered_send(rd: &mut BufReader<tokio::net::unix::OwnedReadHalf>) -> Option<Request> {
    let buf = rd.buffer();
    let end = buf.iter().position(|&b| b == b'\n')?;
    let v = serde_json::from_slice::<Value>(&buf[..end]).ok()?;
    let request = Request::from_value(v).ok().filter(|r| matches!(r, Request::Send { .. }))?;
    rd.consume(end + 1);
    Some(request)
}

/// Forwards events until the client closes, is too slow, or the daemon stops.
/// A subscriber that falls behind by more than the channel holds gets a
/// `{"event":"dropped","count":N}` line instead of the lost events. The
/// lines waiting when one is due go in one write.
async fn stream(
    mut rd: BufReader<tokio::net::unix::OwnedReadHalf>,
    mut wr: OwnedWriteHalf,
    mut events: broadcast::Receiver<Arc<str>>,
) {
    let mut scratch = [0u8; 256];
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(line) => {
                    let mut s = String::with_capacity(line.len() + 1);
                    let mut lagged = None;
                    s.push_str(&line);
                    s.push('\n');
                    while s.len() < STREAM_BATCH_BYTES {
                        match events.try_recv() {
                            Ok(line) => {
                                s.push_str(&line);
                                s.push('\n');
                            }
                            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                                lagged = Some(n);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    if send_raw(&mut wr, s.as_bytes()).await.is_err() {
                        return;
                    }
                    if let Some(n) = lagged
                        && send_line(&mut wr, &json!({"event": "dropped", "count": n})).await.is_err()
                    {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    if send_line(&mut wr, &json!({"event": "dropped", "count": n})).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            r = rd.read(&mut scratch) => {
                if matches!(r, Ok(0) | Err(_)) {
                    return;
                }
            }
        }
    }
}
