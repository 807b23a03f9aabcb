//! `dockerfile-gen`: parses the command line and hands over to `caas_dockerfile_gen::cli`.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(caas_dockerfile_gen::cli::main())
}
