//! `meshpost send TO --file PATH` and `meshpost inbox save ID [PATH]`:
//! files over the control socket in base64 pieces, with a progress bar on
//! a terminal (stderr) for the upload, the delivery (`--wait`) and the
//! download. The downloaded file is checked against the hash its parts
//! carried before it is renamed into place.
//!
//! It does not split files into parts or reassemble them (the daemon
//! does); it never overwrites an existing file.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use meshpost_proto::crypto::to_hex;
use meshpost_proto::filepart;
use serde_json::{Value, json};

use super::cli::flag;
use super::connection::{Cli, connect, request};
use crate::control::protocol::{InboxAction, Request, UPLOAD_PIECE};

/// A progress bar on stderr, drawn only when stderr is a terminal.
pub struct Progress {
    label: String,
    total: u64,
    on: bool,
    last: Option<Instant>,
}

impl Progress {
    pub fn new(label: &str, total: u64) -> Progress {
        // SAFETY: isatty only inspects the descriptor.
        let on = unsafe { libc::isatty(2) } == 1;
        Progress { label: label.to_string(), total, on, last: None }
    }

    /// Redraws (at most ten times a second, and always at the end).
    pub fn set(&mut self, done: u64, unit: &str) {
        if !self.on || (done < self.total && self.last.is_some_and(|t| t.elapsed() < Duration::from_millis(100))) {
            return;
        }
        self.last = Some(Instant::now());
        eprint!("\r{}", bar(&self.label, done, self.total, unit));
        if done >= self.total {
            eprintln!();
            self.on = false;
        }
    }

    pub fn finish(&mut self) {
        if self.on && self.last.is_some() {
            eprintln!();
            self.on = false;
        }
    }
}

/// `label [#####-----]  50% 512 KiB/1.0 MiB`, or parts when `unit` is "parts".
pub fn bar(label: &str, done: u64, total: u64, unit: &str) -> String {
    const W: u64 = 24;
    let total = total.max(1);
    let done = done.min(total);
    let fill = (done * W / total) as usize;
    let amount =
        if unit == "parts" { format!("{done}/{total} parts") } else { format!("{}/{}", size(done), size(total)) };
    format!("{label} [{}{}] {:3}% {amount}", "#".repeat(fill), "-".repeat(W as usize - fill), done * 100 / total)
}

/// Bytes for people: `512 B`, `33.5 KiB`, `1.0 MiB` (integer arithmetic:
/// no float formatting in the binary for this).
pub fn size(n: u64) -> String {
    let (unit, shift) = match n {
        0..1024 => return format!("{n} B"),
        1024..1_048_576 => ("KiB", 10),
        _ => ("MiB", 20),
    };
    let tenths = (n * 10 + (1 << shift) / 2) >> shift;
    format!("{}.{} {unit}", tenths / 10, tenths % 10)
}

/// A media type from the file name's extension, for the common cases.
pub fn media_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" | "md" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "mp3" => "audio/mpeg",
        "ogg" | "opus" => "audio/ogg",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// Handles `send TO --file PATH [--type T] [--ttl S] [--hops N] [--wait[=S]]`
/// and `inbox save ID [PATH]`; `None` for any other command line.
pub fn run(cli: &Cli) -> Option<Result<(String, u8), String>> {
    let w = &cli.words;
    match w.first().map(String::as_str) {
        Some("send") if w.iter().any(|x| x == "--file") => Some(send(cli)),
        Some("inbox") if w.get(1).map(String::as_str) == Some("save") => Some(save(cli).map(|s| (s, 0))),
        _ => None,
    }
}

fn send(cli: &Cli) -> Result<(String, u8), String> {
    let mut words = cli.words[1..].to_vec();
    let path = PathBuf::from(flag(&mut words, "--file")?.ok_or("--file needs a path")?);
    let media = flag(&mut words, "--type")?;
    let ttl = flag(&mut words, "--ttl")?.map(|t| t.parse::<u64>().map_err(|_| "--ttl takes seconds")).transpose()?;
    let hops =
        flag(&mut words, "--hops")?.map(|t| t.parse::<u64>().map_err(|_| "--hops takes a number")).transpose()?;
    let wait = match words.iter().position(|w| w == "--wait" || w.starts_with("--wait=")) {
        Some(i) => {
            let w = words.remove(i);
            Some(match w.strip_prefix("--wait=") {
                Some(n) => n.parse::<u64>().map_err(|_| "--wait=SECS takes seconds")?,
                None => 60,
            })
        }
        None => None,
    };
    let [to] = words.as_slice() else {
        return Err("usage: meshpost send TO --file PATH [--type TYPE] [--ttl SECS] [--hops N] [--wait[=SECS]]".into());
    };
    let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if meta.len() > filepart::MAX_FILE_LEN as u64 {
        return Err(format!(
            "{} is {} bytes; files of at most {} can be sent",
            path.display(),
            meta.len(),
            filepart::MAX_FILE_LEN
        ));
    }
    let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).ok_or("the file name is not UTF-8")?.to_string();
    let media_type = media.unwrap_or_else(|| media_type(&path).to_string());
    let sent = upload(cli, to, &name, &media_type, &data, ttl, hops)?;
    let id = sent["id"].as_str().unwrap_or("-").to_string();
    let Some(secs) = wait else {
        let out = if cli.json {
            sent.to_string()
        } else {
            format!(
                "queued file {id} '{name}' ({}, {} parts) to {}{}",
                size(data.len() as u64),
                sent["parts"],
                sent["to"].as_str().unwrap_or("-"),
                if sent["linked"] == json!(true) { " (linked, sending now)" } else { " (stored until a path appears)" }
            )
        };
        return Ok((out, 0));
    };
    super::wait::follow(cli, &id, secs, cli.json)
}

/// Uploads the file and returns the daemon's answer (the file id).
fn upload(
    cli: &Cli,
    to: &str,
    name: &str,
    media_type: &str,
    data: &[u8],
    ttl: Option<u64>,
    hops: Option<u64>,
) -> Result<Value, String> {
    let mut s = connect(cli)?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    let mut rd = BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    let begin = Request::SendFile {
        to: to.to_string(),
        name: name.to_string(),
        media_type: media_type.to_string(),
        size: data.len() as u64,
        ttl,
        hops,
    };
    let answer = |rd: &mut BufReader<std::os::unix::net::UnixStream>| -> Result<Value, String> {
        let mut line = String::new();
        rd.read_line(&mut line).map_err(|e| format!("no answer from the daemon: {e}"))?;
        let v: Value = serde_json::from_str(&line).map_err(|_| "the daemon closed the connection".to_string())?;
        if v["ok"] == json!(true) { Ok(v) } else { Err(v["error"].as_str().unwrap_or("upload refused").to_string()) }
    };
    // A refusal can come before our write is read: read it either way.
    let wrote = writeln!(s, "{}", begin.to_value());
    let ready = answer(&mut rd);
    wrote.map_err(|e| format!("cannot send to the daemon: {e}"))?;
    let piece = ready?["piece"].as_u64().unwrap_or(UPLOAD_PIECE as u64).clamp(1, UPLOAD_PIECE as u64) as usize;
    let mut bar = Progress::new(&format!("sending {name}"), data.len() as u64);
    let mut done = 0;
    for chunk in data.chunks(piece) {
        let line = json!({"cmd": "file_data", "data": B64.encode(chunk)});
        if let Err(e) = writeln!(s, "{line}") {
            bar.finish();
            // The daemon says why it stopped reading, if it did.
            return Err(answer(&mut rd).err().unwrap_or_else(|| format!("cannot send to the daemon: {e}")));
        }
        done += chunk.len();
        bar.set(done as u64, "bytes");
    }
    bar.finish();
    answer(&mut rd)
}

/// `inbox save ID [PATH]`: downloads a complete file, checks its hash and
/// writes it to PATH (default: its name in the current directory).
fn save(cli: &Cli) -> Result<String, String> {
    let id = cli.words.get(2).ok_or("usage: meshpost inbox save ID [PATH]")?.clone();
    let read = |offset: Option<usize>| {
        request(
            cli,
            &Request::Inbox { action: InboxAction::Read, id: Some(id.clone()), offset, limit: None }.to_value(),
        )
    };
    let first = read(None)?;
    let m = &first["message"];
    if m["kind"] != json!("file") {
        return Err(format!("{id} is a text message, not a file: meshpost inbox read {id}"));
    }
    if m["complete"] != json!(true) {
        return Err(format!("file {id} is not complete yet ({} of {} parts)", m["have"], m["parts"]));
    }
    let name = m["name"].as_str().unwrap_or("file");
    // The name came from the sender: use it only as a plain file name.
    filepart::check_name(name).map_err(|e| format!("the sender's {e}; give a PATH"))?;
    let dest = cli.words.get(3).map_or_else(|| PathBuf::from(name), PathBuf::from);
    let dest = if dest.is_dir() { dest.join(name) } else { dest };
    if dest.exists() {
        return Err(format!("{} exists; not overwritten", dest.display()));
    }
    let total = m["size"].as_u64().unwrap_or(0);
    let tmp = dest.with_file_name(format!(".{}.part", dest.file_name().and_then(|n| n.to_str()).unwrap_or("file")));
    let mut f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let mut hasher = filepart::Hasher::new();
    let mut bar = Progress::new(&format!("receiving {name}"), total);
    let mut offset = 0usize;
    let result = (|| {
        while (offset as u64) < total {
            let v = read(Some(offset))?;
            let data =
                B64.decode(v["data"].as_str().unwrap_or("")).map_err(|e| format!("bad data from the daemon: {e}"))?;
            if data.is_empty() {
                return Err("the daemon sent no data".to_string());
            }
            hasher.update(&data);
            f.write_all(&data).map_err(|e| format!("{}: {e}", tmp.display()))?;
            offset += data.len();
            bar.set(offset as u64, "bytes");
        }
        bar.finish();
        f.sync_all().map_err(|e| format!("{}: {e}", tmp.display()))?;
        let hash = to_hex(&hasher.finish());
        if m["hash"].as_str() != Some(hash.as_str()) {
            return Err(format!("file {id} does not match its hash; not saved"));
        }
        std::fs::rename(&tmp, &dest).map_err(|e| format!("{}: {e}", dest.display()))
    })();
    if let Err(e) = result {
        bar.finish();
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(if cli.json {
        json!({"ok": true, "id": id, "path": dest.display().to_string(), "size": total}).to_string()
    } else {
        format!("saved {} ({}) from {}", dest.display(), size(total), m["from"].as_str().unwrap_or("-"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bars_read_well() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(34_304), "33.5 KiB");
        assert_eq!(size(1 << 20), "1.0 MiB");
        assert_eq!(size(1_572_864), "1.5 MiB");
        assert_eq!(bar("x", 1, 2, "parts"), "x [############------------]  50% 1/2 parts");
        assert_eq!(bar("x", 9, 0, "bytes"), "x [########################] 100% 1 B/1 B");
        assert_eq!(media_type(Path::new("a/B.JPG")), "image/jpeg");
        assert_eq!(media_type(Path::new("noext")), "application/octet-stream");
    }
}
