//! meshpost: the daemon and its command-line client in one binary.

use meshpost::{cli, config, log, runtime};

use std::path::PathBuf;
use std::process::ExitCode;

use config::{Overrides, Settings};

fn daemon_args(words: &[String]) -> Result<(Option<PathBuf>, Overrides, bool), String> {
    let mut ov = Overrides::default();
    let mut config = None;
    let mut foreground = false;
    let mut it = words.iter().skip(1);
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--foreground" | "-f" => foreground = true,
            "--config" | "-c" => config = Some(PathBuf::from(val("--config")?)),
            "--state-dir" => ov.state_dir = Some(PathBuf::from(val("--state-dir")?)),
            "--socket" => ov.socket = Some(PathBuf::from(val("--socket")?)),
            "--port" => ov.port = Some(val("--port")?.parse().map_err(|_| "--port takes a number from 1 to 65535")?),
            "--log-level" => {
                let v = val("--log-level")?;
                ov.log_level = Some(log::Level::parse(&v).ok_or(format!("unknown log level '{v}'"))?)
            }
            other => {
                return Err(format!("unknown daemon option '{other}'; see meshpost --help"));
            }
        }
    }
    Ok((config, ov, foreground))
}

fn run_daemon(words: &[String]) -> Result<(), String> {
    let (config, ov, foreground) = daemon_args(words)?;
    let settings = Settings::load(config.as_deref(), &ov).map_err(|e| e.to_string())?;
    // Syslog unless in the foreground; procd captures stderr itself.
    if !foreground && !log::use_syslog(&settings.log_socket) {
        let msg = format!("{} unavailable; logging to stderr", settings.log_socket.display());
        log::log(log::Level::Notice, &msg);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    let path = settings.file.clone();
    rt.block_on(runtime::Daemon::run(settings, path, ov))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--version" || a == "-V") {
        println!("meshpost {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let cli = match meshpost::client::connection::parse(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("meshpost: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some((out, code)) = meshpost::client::selftest::selftest(&cli) {
        println!("{out}");
        return ExitCode::from(code);
    }
    if let Some(r) = meshpost::client::files::run(&cli).or_else(|| meshpost::client::wait::send_and_wait(&cli)) {
        return match r {
            Ok((out, code)) => {
                println!("{out}");
                ExitCode::from(code)
            }
            Err(e) => {
                eprintln!("meshpost: error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let result = if cli.words.first().map(String::as_str) == Some("daemon") {
        run_daemon(&cli.words).map(|_| String::new()).inspect_err(|e| {
            // Under syslog the admin reads logread; stderr gets it below.
            if log::is_syslog() {
                log::log(log::Level::Error, e);
            }
        })
    } else {
        cli::run(&cli)
    };
    match result {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("meshpost: error: {e}");
            ExitCode::FAILURE
        }
    }
}
