//! `caas-agent` binary: flags and config, logging, run until SIGTERM/SIGINT (the daemon plumbing
//! is `caas-daemon`'s, shared with `caas-central`); plus the `import-images` subcommand.

use std::process::ExitCode;

use caas_agent::config::{AgentConfig, EXIT_CONFIG};

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("import-images") {
        return import_images();
    }
    let config = match caas_daemon::load_config("caas-agent", AgentConfig::load) {
        Ok(config) => config,
        Err(code) => return code,
    };
    caas_daemon::init_logging();
    // Two workers: the agent is a small daemon; CPU-bound work (deploy packages, health probes)
    // runs on blocking threads so these stay free for ZooKeeper, reconcile passes and HTTP.
    caas_daemon::serve("caas-agent", Some(2), config.listen, |listener, cancel| {
        caas_agent::agent::run(config, listener, cancel)
    })
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
                return ExitCode::from(EXIT_CONFIG);
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
