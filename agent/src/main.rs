//! `caas-agent` binary: parse flags, load and validate config, set up logging, run until SIGTERM.

use std::process::ExitCode;

use caas_agent::config::{AgentConfig, Flags, EXIT_CONFIG};
use clap::Parser;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("import-images") {
        return import_images();
    }
    let flags = match Flags::try_parse() {
        Ok(flags) => flags,
        Err(e) if e.use_stderr() => {
            let _ = e.print();
            return ExitCode::from(EXIT_CONFIG as u8);
        }
        Err(e) => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    let config = match AgentConfig::load(&flags) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("caas-agent: {e}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAAS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("caas-agent: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        let cancel = CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            wait_for_shutdown_signal().await;
            tracing::info!("shutdown requested: deregistering; containers keep running");
            on_signal.cancel();
        });
        caas_agent::agent::run(config, listener, cancel)
            .await
            .map_err(anyhow::Error::from)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("caas-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `caas-agent import-images [--docker-socket PATH]`: imports the sandbox and data images the
/// agent carries (what it does at start anyway) and prints their tags; used by
/// supervisor-images/build.
fn import_images() -> ExitCode {
    let mut args = std::env::args().skip(2);
    let mut socket = std::env::var("CAAS_AGENT_DOCKER_SOCKET")
        .unwrap_or_else(|_| "/var/run/docker.sock".to_string());
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--docker-socket", Some(path)) => socket = path,
            ("--help" | "-h", _) => {
                println!(
                    "Imports caas/pause (sandbox) and caas/data (data container) from the static \
                     pause program in this binary and prints their tags.\n\n\
                     Usage: caas-agent import-images [--docker-socket PATH]"
                );
                return ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("caas-agent import-images: unexpected argument {arg:?}; see --help");
                return ExitCode::from(EXIT_CONFIG as u8);
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("caas-agent: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let docker = caas_agent::runtime::DockerRuntime::connect(&socket).await?;
        caas_agent::sandbox_image::ensure_sandbox_image(&docker).await
    });
    match result {
        Ok((pause, data)) => {
            println!("{pause}\n{data}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("caas-agent import-images: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_shutdown_signal() {
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
