//! The `caas` command-line tool: its arguments (here), a typed client of central's REST API
//! (`client`), output for people and scripts (`render`, `format`) and the commands themselves
//! (`commands`). `src/bin/caas.rs` only parses, runs and maps errors to exit codes.

pub mod client;
pub mod commands;
pub mod error;
pub mod format;
pub mod render;

mod create;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use client::{CentralClient, CreateOutcome, TokenResponse};
pub use commands::run;
pub use error::{CliError, NetworkKind};

/// Central's address when neither `--url` nor `CAAS_URL` says otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

const ABOUT: &str = "Run containers on a pool of nodes through caas central";

const LONG_ABOUT: &str = "\
Run containers on a pool of nodes through caas central.

caas talks to central's REST API. Central places containers on the nodes of a pool, records them
in ZooKeeper, and the agent on each node runs them. Nodes join a pool by running caas-agent;
`caas node ls` shows them with their capacity.";

const AFTER_HELP: &str = "\
Examples:
  export CAAS_URL=http://central:8080 CAAS_TOKEN=<admin token>
  caas pool create pool2 --ssh-key \"$(cat ~/.ssh/id_ed25519.pub)\"    # prints pool2's token
  caas node ls
  export CAAS_TOKEN=<pool2's token> CAAS_POOL=pool2
  caas container create web --image caas/app:1.0 --cpu 500m --memory 256Mi --instances 3
  caas container ls
  caas container inspect web-1
  caas --pool=pool2 container rm web-1 --purge-data
  caas node ls -o json | jq -r '.[] | select(.liveness != \"ready\") | .id'

Tokens: the admin token manages pools and sees everything; a pool token sees only its pool.

Exit status: 0 done; 1 central refused the request or could not be reached; 2 the command line
could not be parsed; 64 an argument value was refused before anything was sent.";

const CREATE_AFTER_HELP: &str = "\
Examples:
  caas --pool=pool2 container create web --image caas/app:1.0
  caas --pool=pool2 container create web --image caas/app:1.0 --instances 3 --strategy spread \\
      --cpu 1.5 --memory 2Gi -e JAVA_OPTS=-Xmx1g -v /home/admin/logs -c 'rack!=r3' -l team=pay
  caas --pool=pool2 container create core-1 --image caas/sofa-base:1 -l Hostname=core-1
  caas --pool=pool2 container create job --image busybox:1 --restart never -- sh -c 'echo hi'

Labels: -l key=value sets a container label, except these keys:
  Hostname=NAME   the container's hostname (same as --hostname)
  Ip=ADDRESS      a static address on a container network (networks are not supported yet)

Replicas: --instances N (N > 1) creates NAME-1 .. NAME-N, kept on different nodes while enough
nodes can take them. Creating again with the same spec changes nothing; with a different spec
central refuses (409): remove the container first.

Volumes: each -v PATH is a directory kept in the container's data container. It survives
restarts and updates of the app and is dropped only by `caas container rm NAME --purge-data`.

Constraints: -c 'key==value' places only on nodes with that label, -c 'key!=value' avoids them.
Quote them: '!' means something to most shells.";

/// Help heading of the options every command takes.
const GLOBAL: &str = "Global options";

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    #[default]
    Table,
    /// JSON for scripts: arrays for `ls`, objects otherwise.
    Json,
}

#[derive(Debug, Parser)]
#[command(
    name = "caas",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Central's address.
    #[arg(long, env = "CAAS_URL", default_value = DEFAULT_URL, global = true,
          help_heading = GLOBAL)]
    pub url: String,

    /// Bearer token for central (prefer the environment: flags show up in `ps`).
    #[arg(long, env = "CAAS_TOKEN", hide_env_values = true, global = true,
          help_heading = GLOBAL)]
    pub token: Option<String>,

    /// Pool for container commands.
    #[arg(long, env = "CAAS_POOL", global = true, help_heading = GLOBAL)]
    pub pool: Option<String>,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table, global = true,
          help_heading = GLOBAL)]
    pub output: OutputFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage pools (tenants) and their tokens.
    #[command(subcommand)]
    Pool(PoolCommand),
    /// List and inspect nodes.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Create, list, inspect, remove and reschedule containers of a pool (needs --pool).
    #[command(subcommand)]
    Container(ContainerCommand),
}

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Create a pool and print its first token (shown only once).
    Create {
        /// Pool name (lowercase letters, digits and '-').
        name: String,
        /// An SSH public key allowed into the pool's containers; repeat for more.
        #[arg(long = "ssh-key", value_name = "KEY")]
        ssh_keys: Vec<String>,
    },
    /// List pools.
    #[command(visible_alias = "list")]
    Ls,
    /// Show one pool as JSON.
    Inspect { name: String },
    /// Remove a pool.
    #[command(visible_alias = "remove")]
    Rm { name: String },
    /// Issue one more token for a pool and print it (shown only once).
    Token { name: String },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List nodes with their capacity and what is allocated on them.
    #[command(visible_alias = "list")]
    Ls,
    /// Show one node as JSON.
    Inspect { id: String },
}

#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// Create a container (or N replicas) and let central place it.
    #[command(after_help = CREATE_AFTER_HELP)]
    Create(Box<CreateArgs>),
    /// List the pool's containers.
    #[command(visible_alias = "list")]
    Ls,
    /// Show one container as JSON: spec, placement and the status its agent reported.
    Inspect { name: String },
    /// Remove a container. Its data container stays unless --purge-data is given.
    #[command(visible_alias = "remove")]
    Rm {
        name: String,
        /// Also remove the data container, i.e. every -v volume. This cannot be undone.
        #[arg(long)]
        purge_data: bool,
    },
    /// Place a container on another node (e.g. after its node was lost).
    Reschedule {
        name: String,
        /// Also move a container that has a data container; its data stays on the old node.
        #[arg(long)]
        force: bool,
    },
}

/// `caas container create`.
#[derive(Debug, Clone, Default, Args)]
pub struct CreateArgs {
    /// Container name (lowercase letters, digits and '-'); with --instances N, the prefix.
    pub name: String,

    /// Image to run, e.g. caas/app:1.0 (it must be present on the nodes).
    #[arg(long)]
    pub image: String,

    /// CPU limit in cores or millicores: 2, 1.5, 500m.
    #[arg(long, value_name = "CPU")]
    pub cpu: Option<String>,

    /// Memory limit: 256Mi, 2Gi, 512M (at least 6Mi).
    #[arg(long, value_name = "MEMORY")]
    pub memory: Option<String>,

    /// Most processes the container may run.
    #[arg(long, value_name = "N")]
    pub pids: Option<i64>,

    /// Environment variable; repeat for more.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,

    /// Directory kept in the data container; repeat for more.
    #[arg(short = 'v', long = "volume", value_name = "PATH")]
    pub volumes: Vec<String>,

    /// What the engine does when the app exits [default: always].
    #[arg(long, value_enum, value_name = "POLICY")]
    pub restart: Option<RestartArg>,

    /// Number of replicas.
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(caas_api::central::MAX_INSTANCES)))]
    pub instances: Option<u32>,

    /// Node label constraint, key==value or key!=value; repeat for more.
    #[arg(short = 'c', long = "constraint", value_name = "CONSTRAINT")]
    pub constraints: Vec<String>,

    /// How to choose among fitting nodes [default: spread].
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyArg>,

    /// Hostname inside the container [default: the container name].
    #[arg(long)]
    pub hostname: Option<String>,

    /// Container label, or a special key: Hostname=..., Ip=... (see below); repeat for more.
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,

    /// Command and arguments replacing the image's CMD, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RestartArg {
    Never,
    OnFailure,
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    /// Prefer the least-used node.
    Spread,
    /// Fill nodes one after the other.
    Binpack,
}

impl Cli {
    /// The pool container commands work on.
    pub fn require_pool(&self) -> Result<&str, CliError> {
        match self.pool.as_deref().map(str::trim) {
            Some(pool) if !pool.is_empty() => Ok(pool),
            _ => Err(CliError::bad_argument(
                "container commands need a pool: pass --pool=POOL or set CAAS_POOL",
            )),
        }
    }
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
