//! `caas-central` binary: flags and config, logging, run until SIGTERM/SIGINT (the daemon
//! plumbing is `caas-daemon`'s, shared with `caas-agent`).

use std::process::ExitCode;

use caas_central::config::CentralConfig;

fn main() -> ExitCode {
    let config = match caas_daemon::load_config("caas-central", CentralConfig::load) {
        Ok(config) => config,
        Err(code) => return code,
    };
    caas_daemon::init_logging();
    caas_daemon::serve("caas-central", None, config.listen, |listener, cancel| {
        caas_central::server::run(config, listener, cancel)
    })
}
