//! `caas-package`: writes the caas RPMs and debs from binaries already built and stripped (run
//! by packaging/build, which builds them). See `--help`.

mod deb;
mod error;
mod rpm_pkg;
mod scripts;
mod spec;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Writes caas-agent, caas-central and caas-cli packages (.rpm and .deb) into OUT.
#[derive(Debug, Parser)]
#[command(name = "caas-package", version)]
struct Args {
    /// Directory holding the stripped caas-agent, caas-central and caas binaries
    #[arg(long, value_name = "DIR")]
    bin_dir: PathBuf,
    /// The repository root (packaging/ and README.md are read from it)
    #[arg(long, value_name = "DIR", default_value = ".")]
    root: PathBuf,
    /// Directory holding agent.toml and central.toml [default: ROOT/packaging]
    #[arg(long, value_name = "DIR")]
    config_dir: Option<PathBuf>,
    /// Where the packages are written
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Package release (RPM Release, deb revision): a counter, higher for every build of a
    /// version
    #[arg(long)]
    release: u32,
    /// Git revision the binaries were built from (recorded in the changelog)
    #[arg(long, default_value = "unknown")]
    git_revision: String,
    /// Build time recorded in the packages, seconds since the epoch [default: SOURCE_DATE_EPOCH,
    /// else now]
    #[arg(long, env = "SOURCE_DATE_EPOCH")]
    date: Option<u64>,
    /// Lowest glibc the binaries need (from their symbol versions), e.g. 2.34
    #[arg(long, default_value = "2.34")]
    glibc: String,
    /// Packager / maintainer, "Name <email>"
    #[arg(
        long,
        env = "CAAS_PACKAGER",
        default_value = "caas maintainers <caas@example.org>"
    )]
    packager: String,
    /// Formats to write
    #[arg(long, value_delimiter = ',', default_value = "rpm,deb")]
    format: Vec<Format>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Rpm,
    Deb,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let date = args.date.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    let build = spec::Build {
        version: env!("CARGO_PKG_VERSION").to_string(),
        release: args.release,
        git_revision: args.git_revision.clone(),
        date,
        glibc: args.glibc.clone(),
        packager: args.packager.clone(),
    };
    let packages = match spec::packages(
        &args.root,
        &args.bin_dir,
        &args
            .config_dir
            .clone()
            .unwrap_or_else(|| args.root.join("packaging")),
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("caas-package: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("caas-package: creating {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    for package in &packages {
        for format in &args.format {
            let written = match format {
                Format::Rpm => rpm_pkg::write(package, &build, &args.out),
                Format::Deb => deb::write(package, &build, &args.out),
            };
            match written {
                Ok(path) => println!("{}", path.display()),
                Err(e) => {
                    eprintln!("caas-package: {}: {e}", package.name);
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}
