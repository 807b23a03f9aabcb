//! What `caas-agent` and `caas-central` do alike as daemons: flags and configuration that do not
//! validate end the process with exit code 64 and one line naming the field and the fix
//! (`ConfigError`), logs go to stderr filtered by `CAAS_LOG`, and the service runs on a tokio
//! runtime until SIGTERM or SIGINT cancels it (`serve`).

pub mod config_doc;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

/// Exit code for invalid flags or configuration (EX_USAGE from sysexits.h).
pub const EXIT_CONFIG: u8 = 64;

/// Why the configuration was refused; every variant names the file or the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {field}: {message}")]
    Invalid { field: String, message: String },
}

/// A refused value of `field`; `message` says what is wrong and how to fix it.
pub fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Parses TOML config text read from `path` (named in the error).
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Reads and parses a TOML config file.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_toml(&text, path)
}

/// Reads a bearer token from the file `path` configured as `field`: one word of at least 16
/// characters (surrounding whitespace is ignored).
pub fn read_token(path: &Path, field: &str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim().to_string();
    if token.len() < 16 || token.chars().any(char::is_whitespace) {
        return Err(invalid(
            field,
            format!(
                "{}: the token must be one word of at least 16 characters, e.g. from \
                 `openssl rand -hex 32`",
                path.display()
            ),
        ));
    }
    Ok(token)
}

/// Parses the command line and loads the configuration with `load`. `--help` and `--version`
/// print and end with exit 0; bad flags print clap's explanation, a refused configuration
/// prints `<name>: <error>`, and both end with exit 64.
pub fn load_config<F: clap::Parser, C>(
    name: &str,
    load: impl FnOnce(&F) -> Result<C, ConfigError>,
) -> Result<C, ExitCode> {
    load_config_from(name, std::env::args_os(), load)
}

/// `load_config` on the given arguments (the first is the program name).
pub fn load_config_from<F, C, I, T>(
    name: &str,
    args: I,
    load: impl FnOnce(&F) -> Result<C, ConfigError>,
) -> Result<C, ExitCode>
where
    F: clap::Parser,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let flags = match F::try_parse_from(args) {
        Ok(flags) => flags,
        Err(e) => {
            let _ = e.print();
            return Err(if e.use_stderr() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                // --help and --version.
                ExitCode::SUCCESS
            });
        }
    };
    load(&flags).map_err(|e| {
        eprintln!("{name}: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

/// Logs to stderr, filtered by `CAAS_LOG` (tracing's env-filter syntax; default `info`), in
/// colour only on a terminal.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAAS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // No colour codes in journald or log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs `service` on a multi-threaded tokio runtime (`workers` threads, or one per core) with a
/// listener bound to `listen`, and cancels its token on SIGTERM/SIGINT. Exit 0 when the service
/// returns `Ok`, else 1 after printing `<name>: <error>`.
pub fn serve<S, Fut, E>(
    name: &str,
    workers: Option<usize>,
    listen: SocketAddr,
    service: S,
) -> ExitCode
where
    S: FnOnce(tokio::net::TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Into<anyhow::Error>,
{
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        builder.worker_threads(workers);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        let cancel = CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested");
            on_signal.cancel();
        });
        service(listener, cancel).await.map_err(Into::into)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Flags {
        #[arg(long)]
        token_file: Option<PathBuf>,
    }

    fn load(flags: &Flags) -> Result<String, ConfigError> {
        match &flags.token_file {
            Some(path) => read_token(path, "token_file"),
            None => Err(invalid("token_file", "is required: --token-file")),
        }
    }

    #[test]
    fn bad_flags_and_bad_config_exit_64_help_exits_0() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::write(&good, "0123456789abcdef0123\n").unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "abc").unwrap();
        let run = |args: &[&str]| load_config_from("t", args.iter().copied(), load);
        assert_eq!(
            run(&["t", "--token-file", good.to_str().unwrap()]),
            Ok("0123456789abcdef0123".to_string())
        );
        assert_eq!(run(&["t", "--nope"]), Err(ExitCode::from(EXIT_CONFIG)));
        assert_eq!(run(&["t"]), Err(ExitCode::from(EXIT_CONFIG)));
        assert_eq!(
            run(&["t", "--token-file", short.to_str().unwrap()]),
            Err(ExitCode::from(EXIT_CONFIG))
        );
        assert_eq!(run(&["t", "--help"]), Err(ExitCode::SUCCESS));
    }

    #[test]
    fn errors_name_the_file_or_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "two words here that are long").unwrap();
        match read_token(&short, "agent_token_file") {
            Err(ConfigError::Invalid { field, message }) => {
                assert_eq!(field, "agent_token_file");
                assert!(message.contains("openssl rand"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let missing = dir.path().join("missing.toml");
        let err = read_toml::<toml::Table>(&missing).unwrap_err();
        assert!(err.to_string().contains("missing.toml"), "{err}");
        let err = parse_toml::<toml::Table>("a = ", Path::new("x.toml")).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Parse { path, .. } if path == Path::new("x.toml")),
            "{err}"
        );
    }
}
