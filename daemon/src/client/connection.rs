//! The connection to the daemon's control socket, shared by the CLI and
//! the rpcd plugin: global options, finding the socket, one request and
//! its answer. It does not know any command (cli.rs, rpcd.rs do).

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::config::DEFAULT_SOCKET;

/// Why a request got no answer, or a refusal.
#[derive(Debug)]
pub enum ClientError {
    /// No daemon listening at the socket path.
    Connect {
        path: PathBuf,
        error: std::io::Error,
    },
    Send(std::io::Error),
    NoResponse(std::io::Error),
    Closed,
    /// The daemon answered with `ok: false` and this error.
    Refused(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { path, error } => write!(
                f,
                "cannot connect to {} ({error}); is the daemon running? (--socket or MESHPOST_SOCKET)",
                path.display()
            ),
            ClientError::Send(e) => write!(f, "cannot send request: {e}"),
            ClientError::NoResponse(e) => write!(f, "no response from daemon: {e}"),
            ClientError::Closed => f.write_str("daemon closed the connection without a response"),
            ClientError::Refused(e) => f.write_str(e),
        }
    }
}

/// The CLI reports every error as one line of text.
impl From<ClientError> for String {
    fn from(e: ClientError) -> String {
        e.to_string()
    }
}

/// Parsed global options and the remaining words.
#[derive(Debug, Clone)]
pub struct Cli {
    pub socket: Option<PathBuf>,
    /// The UCI file whose `option socket` names the socket (client
    /// commands; the daemon takes its own `--config`).
    pub config: Option<PathBuf>,
    pub json: bool,
    pub words: Vec<String>,
}

pub fn parse(args: Vec<String>) -> Result<Cli, String> {
    let mut cli = Cli { socket: None, config: None, json: false, words: Vec::new() };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => cli.json = true,
            "--socket" if cli.words.is_empty() || cli.words[0] != "daemon" => {
                cli.socket = Some(PathBuf::from(it.next().ok_or("--socket needs a path")?))
            }
            "--config" if cli.words.is_empty() || cli.words[0] != "daemon" => {
                cli.config = Some(PathBuf::from(it.next().ok_or("--config needs a path")?))
            }
            _ => cli.words.push(a),
        }
    }
    Ok(cli)
}

/// The control socket: `--socket`, else `$MESHPOST_SOCKET`, else the
/// `option socket` of the UCI file (`--config`, or /etc/config/meshpost
/// when it exists), else the default. So `meshpost status` and the rpcd
/// plugin follow an admin who moved the socket in UCI.
pub fn socket_path(cli: &Cli) -> PathBuf {
    cli.socket
        .clone()
        .or_else(|| std::env::var_os("MESHPOST_SOCKET").map(PathBuf::from))
        .or_else(|| {
            // A config that does not parse leaves the default: the daemon
            // would refuse to start on it anyway, and says why.
            crate::config::Settings::load(cli.config.as_deref(), &crate::config::Overrides::default())
                .ok()
                .map(|s| s.socket)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

pub fn connect(cli: &Cli) -> Result<UnixStream, ClientError> {
    let path = socket_path(cli);
    let s = UnixStream::connect(&path).map_err(|e| ClientError::Connect { path: path.clone(), error: e })?;
    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
    Ok(s)
}

/// Sends one request and returns the response object, or its error text.
pub fn request(cli: &Cli, req: &Value) -> Result<Value, ClientError> {
    let v = request_raw(cli, req)?;
    if v.get("ok") == Some(&Value::Bool(true)) {
        Ok(v)
    } else {
        Err(ClientError::Refused(v.get("error").and_then(Value::as_str).unwrap_or("request failed").to_string()))
    }
}

/// Sends one request and returns the daemon's answer as it is, `ok` or not.
pub fn request_raw(cli: &Cli, req: &Value) -> Result<Value, ClientError> {
    let mut s = connect(cli)?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    // A refused client is told why and disconnected, possibly before our
    // write: so read the answer even when the write failed.
    let sent = writeln!(s, "{req}");
    let mut line = String::new();
    let read = BufReader::new(&s).read_line(&mut line);
    let v: Value = match serde_json::from_str(&line) {
        Ok(v) => v,
        Err(_) => {
            return Err(match (sent, read) {
                (Err(e), _) => ClientError::Send(e),
                (_, Err(e)) => ClientError::NoResponse(e),
                _ => ClientError::Closed,
            });
        }
    };
    Ok(v)
}
