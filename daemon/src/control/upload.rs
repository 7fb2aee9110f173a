//! File uploads on the control socket. After a `send_file` request the
//! client gets `{"ok":true,"upload":true,"piece":N}` and sends the file as
//! `file_data` lines (base64, at most N bytes each); once `size` bytes are
//! in, the whole file goes to the main loop as one [`Request::Upload`].
//!
//! Memory is bounded: at most [`MAX_UPLOADS`] uploads at once across all
//! clients, each at most `file_max` bytes, and each line at most one piece.
//! Time too: pieces are full (but the last), and the whole upload has a
//! deadline. A client that breaks a rule gets one error line and is
//! disconnected.
//!
//! It does not split, seal or store anything (runtime/files.rs does).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::time::timeout;

use super::protocol::{Request, UPLOAD_PIECE, Upload};
use super::server::{LineError, read_line};

/// Uploads in progress at once, across all clients.
pub const MAX_UPLOADS: usize = 2;
/// Longest `file_data` line: a piece in base64 and the JSON around it.
pub const MAX_PIECE_LINE: usize = UPLOAD_PIECE.div_ceil(3) * 4 + 256;

/// Uploads in progress (held by [`Slot`]).
pub static UPLOADS: AtomicUsize = AtomicUsize::new(0);

/// One of the [`MAX_UPLOADS`] places, given back when dropped.
pub struct Slot(());

impl Slot {
    pub fn take() -> Option<Slot> {
        let prev = UPLOADS.fetch_add(1, Ordering::AcqRel);
        if prev >= MAX_UPLOADS {
            UPLOADS.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        UPLOADS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Checks a `send_file` request before its bytes are read.
pub fn admit(size: u64, file_max: usize) -> Result<Slot, String> {
    if file_max == 0 {
        return Err("sending files is switched off here (file_max 0)".into());
    }
    if size > file_max as u64 {
        return Err(format!("file of {size} bytes is larger than file_max ({file_max} bytes)"));
    }
    Slot::take().ok_or_else(|| format!("{MAX_UPLOADS} uploads are in progress; try again when one has finished"))
}

/// The whole upload must be in within `per_line` plus one second per
/// 64 KiB (1 MiB: 16 s more), so a client trickling pieces cannot hold one
/// of the [`MAX_UPLOADS`] places for long.
pub fn deadline(size: usize, per_line: Duration) -> Duration {
    per_line + Duration::from_secs((size as u64).div_ceil(64 * 1024))
}

/// Reads `upload.data`'s `size` bytes as `file_data` lines: every piece but
/// the last exactly [`UPLOAD_PIECE`] bytes, each line within `per_line`,
/// all of them within [`deadline`].
pub async fn receive<R: AsyncBufReadExt + Unpin>(
    rd: &mut R,
    mut upload: Upload,
    size: usize,
    per_line: Duration,
) -> Result<Upload, String> {
    let end = tokio::time::Instant::now() + deadline(size, per_line);
    upload.data.reserve_exact(size);
    while upload.data.len() < size {
        let left = end.saturating_duration_since(tokio::time::Instant::now());
        let line = match timeout(per_line.min(left), read_line(rd, MAX_PIECE_LINE)).await {
            Err(_) if left <= per_line => {
                return Err(format!("the upload took longer than {} s", deadline(size, per_line).as_secs()));
            }
            Err(_) => return Err("timed out waiting for the next file_data line".into()),
            Ok(Err(LineError::TooLong)) => {
                return Err(format!(
                    "file_data line longer than {MAX_PIECE_LINE} bytes (pieces of at most {UPLOAD_PIECE})"
                ));
            }
            Ok(Err(LineError::Io)) | Ok(Ok(None)) => return Err("connection closed during the upload".into()),
            Ok(Ok(Some(l))) => l,
        };
        let v: Value = serde_json::from_slice(&line).map_err(|e| format!("file_data line is not JSON: {e}"))?;
        let data = match Request::from_value(v) {
            Ok(Request::FileData { data }) => data,
            Ok(_) | Err(_) => return Err("expected a file_data request with the next piece".into()),
        };
        let piece = B64.decode(data.as_bytes()).map_err(|e| format!("file_data is not base64: {e}"))?;
        if piece.len() > UPLOAD_PIECE || upload.data.len() + piece.len() > size {
            return Err(format!(
                "file_data piece of {} bytes overruns the piece size or the announced size",
                piece.len()
            ));
        }
        let expected = (size - upload.data.len()).min(UPLOAD_PIECE);
        if piece.len() != expected {
            return Err(format!(
                "file_data piece of {} bytes; every piece but the last must be {UPLOAD_PIECE} bytes (this one {expected})",
                piece.len()
            ));
        }
        upload.data.extend_from_slice(&piece);
    }
    Ok(upload)
}

/// The answer that lets the client start sending pieces.
pub fn ready() -> Value {
    json!({"ok": true, "upload": true, "piece": UPLOAD_PIECE})
}
