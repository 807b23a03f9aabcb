//! `caas`: the command-line tool ops use to drive caas central. All logic lives in the
//! `caas_cli` library; this only parses, runs and maps errors to exit codes.

use std::process::ExitCode;

use caas_cli::{self as cli, render, Cli};
use clap::Parser;

fn main() -> ExitCode {
    // Clap prints usage errors itself and exits with 2 (0 for --help and --version).
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("caas: cannot start the async runtime: {e}");
            return ExitCode::from(cli::error::EXIT_FAILURE);
        }
    };
    let mut stdout = std::io::stdout().lock();
    match runtime.block_on(cli::run(&cli, &mut stdout)) {
        Ok(code) => ExitCode::from(code),
        // `caas container ls | head`: the reader has all it wanted.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", render::error_text(&e));
            ExitCode::from(e.exit_code())
        }
    }
}
