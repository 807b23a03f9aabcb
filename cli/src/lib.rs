//! caas-cli: the `caas` command-line tool: its arguments (here), output for people and scripts
//! (`render`, `format`) and the commands themselves (`commands`), over the typed REST client of
//! `caas-client`. `src/main.rs` only parses, runs and maps errors to exit codes.

pub mod access;
pub mod commands;
pub mod error;
pub mod format;
pub mod logs;
pub mod render;
pub mod terminal;

mod create;
mod network;
pub mod registry;
pub mod services;
pub mod stats;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use caas_client::{CentralClient, CreateOutcome, NetworkKind};
pub use commands::run;
pub use error::CliError;

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
  caas network create myvxlan -d vxlan -l Subnet=192.168.0.0/19 -l Gateway=192.168.31.254
  caas container create core --image caas/app:1.0 --public-service=.myvxlan -l Ip=192.168.31.3
  caas --pool=pool2 container rm web-1 --purge-data
  caas node ls -o json | jq -r '.[] | select(.liveness != \"ready\") | .id'

Tokens: the admin token manages pools and sees everything; a pool token sees only its pool:
an ops token does everything there, a developer token reads containers and their logs and opens
terminals (`caas pool token create POOL --role developer`).

Exit status: 0 done; 1 central refused the request or could not be reached; 2 the command line
could not be parsed; 64 an argument value was refused before anything was sent.";

const CREATE_AFTER_HELP: &str = "\
Examples:
  caas --pool=pool2 container create web --image caas/app:1.0
  caas --pool=pool2 container create web --image caas/app:1.0 --instances 3 --strategy spread \\
      --cpu 1.5 --memory 2Gi -e JAVA_OPTS=-Xmx1g -v /home/admin/logs -c 'rack!=r3' -l team=pay
  caas --pool=pool2 container create core-1 --image caas/sofa-jdk17:latest --rich \\
      --health-http 8080/health -- java -jar /home/admin/app.jar
  caas --pool=pool2 container create job --image busybox:1 --restart never -- sh -c 'echo hi'
  caas --pool=pool2 container create core --image caas/app:1.0 --public-service=.myvxlan \\
      -l Ip=192.168.31.3 -l Hostname=core-1
  caas --pool=pool2 container create api --image caas/app:1.0 --public-service=web.front \\
      --public-service=.back -l Ip=front:10.1.0.5 -l Ip=back:10.2.0.5

Labels: -l key=value sets a container label, except these keys (in any case: ip=, IP=):
  Hostname=NAME        the container's hostname (same as --hostname)
  Ip=ADDRESS           the container's address on its one --public-service network
  Ip=NETWORK:ADDRESS   the address on NETWORK, when it joins several; repeat per network

Networks: each --public-service=[SERVICE].NETWORK joins a network of the pool (`caas network
ls`) with one interface: eth0 for the first, eth1 for the next, ... The default route goes
through the first network's gateway. SERVICE (optional: `.myvxlan` joins without one) is the
name the container publishes on that network. Without -l Ip central gives the lowest free
address of the subnet; a requested address must be inside the subnet and free (409
address-taken otherwise). -l Ip names one container, so it cannot go with --instances N > 1.

Replicas: --instances N (N > 1) creates NAME-1 .. NAME-N, kept on different nodes while enough
nodes can take them. Creating again with the same spec changes nothing; with a different spec
central refuses (409): remove the container first.

Volumes: each -v PATH is a directory kept in the container's data container. It survives
restarts and updates of the app and is dropped only by `caas container rm NAME --purge-data`.

Constraints: -c 'key==value' places only on nodes with that label, -c 'key!=value' avoids them.
Quote them: '!' means something to most shells.

Rich containers (--rich, on a caas/sofa-* image): supervisord runs the app (the command after
--, or the package in /home/admin/release/run/*.tgz) and restarts it when it dies; sshd lets
the pool's SSH keys in as admin; logs go to /home/admin/logs, kept in the data container.
The pool must have SSH keys. `caas container inspect` shows the programs and restart counts.

Health checks (--health-tcp, --health-http, --health-cmd) run from inside the container's
network; the result shows as status.health in `caas container inspect`. Changing only the
health check never restarts the app.";

const DEPLOY_AFTER_HELP: &str = "\
Examples:
  caas --pool=pool2 container deploy web app-1.4.tgz

The package must be a gzip tarball with a start script (bin/start.sh, bin/startup.sh, start.sh
or run.sh, executable) at its root or in its single top-level directory; the script must run the
app in the foreground. Every instance of NAME (NAME-1 .. NAME-N) gets it, one after the other;
a failing instance stops the rollout. The package lives in the running container: recreating
the container (a new image or spec) goes back to the image's package.";

const EXEC_AFTER_HELP: &str = "\
Examples:
  caas --pool=pool2 container exec web -- ls -l /home/admin/logs
  caas --pool=pool2 container exec web -u admin -- sh -c 'tail -n 50 /home/admin/logs/app.err.log'
  caas --pool=pool2 container exec -it web-1                  # a login shell (bash -l, else sh)
  caas --pool=pool2 container exec -it -u root web-1 -- bash
  caas --pool=pool2 container exec -i web-1 -- sh -c 'cat > /tmp/conf.yaml' < conf.yaml

With replicas, give the instance name (web-2).

Without -i and -t the command runs to its end and its output is printed then (up to 1 MiB per
stream); the exit status is the command's, 124 when it timed out (--timeout).

-it opens an interactive terminal, like `docker exec -it`: keys go to the container (Ctrl-C
too), the window size follows yours, and caas exits with the command's exit status when it
ends. -t needs a terminal on stdin. -i alone sends stdin without a terminal (a pipe, a file);
the command sees the end of the input only when it ends itself. A developer token may open
terminals only as admin in rich containers. Every session, with the lines typed in it, is kept
in the pool's audit log (`caas audit ls`).";

const LOGS_AFTER_HELP: &str = "\
Examples:
  caas --pool=pool2 container logs web-1
  caas --pool=pool2 container logs web-1 -f --tail 20
  caas --pool=pool2 container logs web-1 --list-files
  caas --pool=pool2 container logs web-1 --file app.err.log --tail 500 | grep -i exception

Without --file: the container's output (its app's stdout and stderr). --file NAME: a file of its
log directory (/home/admin/logs in rich containers), as --list-files names them. -f keeps
printing new lines until Ctrl-C.";

const TOKEN_AFTER_HELP: &str = "\
Examples:
  caas pool token create pool2 --role developer --label alice    # prints the token once
  caas pool token ls pool2
  caas pool token rm pool2 tok-0123456789ab
  caas pool token pool2                                          # same as `create pool2`

Roles: an ops token does everything within its pool (what pool tokens always did); a developer
token lists and inspects the pool's containers, reads their logs and opens terminals as admin in
rich containers, nothing else. A token is shown only when it is issued: central keeps its hash.
Revoking takes effect at once. The admin token issues and revokes tokens of either role; a
pool's ops token lists the pool's tokens and issues and revokes its developer tokens.";

const AUDIT_AFTER_HELP: &str = "\
Examples:
  caas --pool=pool2 audit ls
  caas --pool=pool2 audit ls --container web-1 --limit 20 -v
  caas --pool=pool2 audit ls -o json | jq '.[] | select(.role == \"developer\")'

Each terminal (`container exec -it`, the web console) and exec session of the pool: when it
started (UTC), the container, who (token id/role; admin for the admin token), from where (api:
the CLI and other clients, console: the browser), the user and command, how long it lasted, its
exit code and how it ended (exit, closed, idle-timeout, error). -v also prints the lines typed in
each session, passwords included.";

const NETWORK_CREATE_AFTER_HELP: &str = "\
Examples:
  caas --pool=pool2 network create myvxlan -d vxlan -l Subnet=192.168.0.0/19 \\
      -l Gateway=192.168.31.254
  caas --pool=pool2 network create back -d vxlan -l 10.2.0.0/24 -l gateway=10.2.0.1 -l Vni=4200
  caas --pool=pool2 network create local -d bridge -l Subnet=10.9.0.0/24 -l Gateway=10.9.0.1
  caas --pool=pool2 network create myvlan -d vlan -l 10.209.164.0/22 -l Gateway=10.209.164.1 \\
      -l VlanId=164 -l ArpProxy=true -l MacNat=true

Options (-l KEY=VALUE, keys in any case):
  Subnet=CIDR   the network's IPv4 subnet, without host bits (a bare -l CIDR says the same)
  Gateway=IP    an address inside the subnet; every node's bridge answers for it (vlan: the
                data centre's router, which the nodes do not own)
  Vni=N         the VXLAN id, 1..=16777215, unique in the cluster [default: central picks one]

vlan networks only (nodes need `uplink` in agent.toml and a kernel with 802.1Q):
  VlanId=N      the 802.1Q id, 1..=4094, one network per VLAN in the cluster [default: none,
                the uplink itself is the segment, an access port]
  ArpProxy=B    true: each node answers its containers' ARP for the gateway and the network's
                known endpoints, so those requests never reach the switch [default: false]
  MacNat=B      true: container frames leave with the node's MAC, so the switch learns one
                MAC per node instead of one per container [default: false]

Containers join with `caas container create ... --public-service=[SERVICE].NETWORK [-l Ip=IP]`.
`caas network inspect NAME` lists the addresses in use; `caas network rm NAME` is refused while
containers are attached.";

const STATS_AFTER_HELP: &str = "\
Examples:
  caas --pool=pool2 container stats
  caas --pool=pool2 container stats web-1 web-2 --watch

CPU % is of one CPU (200% = two busy CPUs) over the agent's last sampling interval; MEM USAGE
is the working set (usage minus inactive page cache), as docker stats shows it. NET I/O counts
the container's interfaces but loopback; BLOCK I/O all its containers. `-o json` adds the
sandbox and data containers, throttling, OOM kills and per-interface/device counters.";

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
    version = caas_buildinfo::VERSION_TEXT,
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

    /// Pool for container and network commands.
    #[arg(long, env = "CAAS_POOL", global = true, help_heading = GLOBAL)]
    pub pool: Option<String>,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table, global = true,
          help_heading = GLOBAL)]
    pub output: OutputFormat,

    /// Same as `-o json`.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,

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
    /// Create, list, inspect, remove and reschedule containers of a pool, run commands and
    /// terminals in them, read their logs (needs --pool).
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Create, list, inspect and remove container networks of a pool (needs --pool).
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Create, list and remove a network's internal DNS service (needs --pool).
    #[command(subcommand)]
    Dns(services::DnsCommand),
    /// Create, list, inspect and remove load balancers and their backends (needs --pool).
    #[command(subcommand)]
    Lb(services::LbCommand),
    /// Declare, list and remove the registry proxies the pool's nodes pull images through
    /// (needs --pool).
    #[command(subcommand)]
    RegistryProxy(registry::RegistryProxyCommand),
    /// Prewarm images of the image center on the pool's nodes (needs --pool).
    #[command(subcommand)]
    Image(registry::ImageCommand),
    /// The pool's audit log: every terminal and exec session, who opened it and what was typed
    /// (needs --pool).
    #[command(subcommand)]
    Audit(AuditCommand),
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
    /// Issue (create), list (ls) and revoke (rm) a pool's tokens, with their roles.
    #[command(after_help = TOKEN_AFTER_HELP)]
    Token(TokenArgs),
    /// Replace a pool's SSH keys; running rich containers get them in place, without a restart.
    #[command(
        name = "ssh-keys",
        after_help = "Example:\n  caas pool ssh-keys pool2 --ssh-key \"$(cat ~/.ssh/id_ed25519.pub)\" --ssh-key \"$(cat ops2.pub)\""
    )]
    SshKeys {
        name: String,
        /// A public key line; repeat for more. The keys given replace all of the pool's keys.
        #[arg(long = "ssh-key", value_name = "KEY", required = true)]
        ssh_keys: Vec<String>,
    },
}

/// `caas pool token`: a subcommand, or (as before there were subcommands) a pool name, which
/// issues a token like `create`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: Option<TokenCommand>,
    /// `caas pool token POOL` is `caas pool token create POOL`.
    #[arg(value_name = "POOL", required = true)]
    pub pool: Option<String>,
    #[command(flatten)]
    pub create: TokenCreateArgs,
}

impl TokenArgs {
    /// The command, `create` for the bare `caas pool token POOL`.
    pub fn command(&self) -> TokenCommand {
        match (&self.command, &self.pool) {
            (Some(command), _) => command.clone(),
            (None, pool) => TokenCommand::Create {
                pool: pool.clone().unwrap_or_default(),
                args: self.create.clone(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum TokenCommand {
    /// Issue a token and print it (shown only this once) with its id and role.
    Create {
        /// The pool the token is for.
        pool: String,
        #[command(flatten)]
        args: TokenCreateArgs,
    },
    /// List the pool's tokens: id, role, when issued, label (never the tokens).
    #[command(visible_alias = "list")]
    Ls {
        /// The pool.
        pool: String,
    },
    /// Revoke a token by its id (from `ls`); it stops working at once.
    #[command(visible_alias = "remove")]
    Rm {
        /// The pool.
        pool: String,
        /// The token's id, tok-...
        id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct TokenCreateArgs {
    /// What the token may do in the pool.
    #[arg(long, value_enum, default_value_t = RoleArg::Ops)]
    pub role: RoleArg,
    /// Whose token it is, e.g. a name; shown by `ls` (at most 100 characters).
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Everything within the pool.
    Ops,
    /// Read containers and logs; terminals as admin in rich containers.
    Developer,
}

impl From<RoleArg> for caas_api::roles::Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Ops => Self::Ops,
            RoleArg::Developer => Self::Developer,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List the pool's terminal and exec sessions, oldest first.
    #[command(visible_alias = "list", after_help = AUDIT_AFTER_HELP)]
    Ls {
        /// Only the sessions of this container.
        #[arg(long, value_name = "NAME")]
        container: Option<String>,
        /// Only the newest N sessions [default: central's].
        #[arg(long, value_name = "N",
              value_parser = clap::value_parser!(u32)
                  .range(1..=i64::try_from(caas_api::roles::MAX_AUDIT_LIST).unwrap_or(500)))]
        limit: Option<u32>,
        /// Also print the lines typed in each session.
        #[arg(short, long)]
        verbose: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// List nodes with their capacity and what is allocated on them.
    #[command(visible_alias = "list")]
    Ls,
    /// Show one node as JSON.
    Inspect { id: String },
    /// Nodes by CPU and memory use, as their agents measured them last (every 10 s).
    Top,
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
    /// Copy an app package (.tgz with a start script) into a rich container and restart only
    /// its app program: the container keeps its start time, address and ssh sessions.
    #[command(after_help = DEPLOY_AFTER_HELP)]
    Deploy {
        name: String,
        /// The package: a gzip tarball holding bin/start.sh, bin/startup.sh, start.sh or run.sh.
        package: std::path::PathBuf,
    },
    /// Run a command in a container and print its output, or (-it) open an interactive
    /// terminal in it; exits with the command's exit code.
    #[command(after_help = EXEC_AFTER_HELP)]
    Exec(ExecArgs),
    /// Print a container's output, or a file of its log directory; -f follows it.
    #[command(after_help = LOGS_AFTER_HELP)]
    Logs(LogsArgs),
    /// CPU, memory, network, block I/O and processes of containers, as their agents measured
    /// them last (every 10 s by default); all of the pool's without names.
    #[command(after_help = STATS_AFTER_HELP)]
    Stats {
        /// Containers to show [default: every container of the pool].
        names: Vec<String>,
        /// Keep refreshing the table in place until Ctrl-C.
        #[arg(short, long)]
        watch: bool,
        /// Seconds between refreshes with --watch.
        #[arg(long, value_name = "SECONDS", default_value_t = 2,
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        interval: u64,
    },
    /// Place a container on another node (e.g. after its node was lost).
    Reschedule {
        name: String,
        /// Also move a container that has a data container; its data stays on the old node.
        #[arg(long)]
        force: bool,
    },
    /// Move a container (or every replica of an app) to a new image. The image is prewarmed on
    /// every node concerned first, with progress; only when all have it does any container
    /// change. A node that cannot get it stops the upgrade with nothing changed.
    Upgrade {
        name: String,
        /// The new image, e.g. center.example:5000/team/app:1.5
        #[arg(long)]
        image: String,
        /// Skip the prewarm: each node replaces its container as soon as it has pulled.
        #[arg(long)]
        no_prewarm: bool,
    },
}

/// `caas container exec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct ExecArgs {
    /// The container (the instance name with replicas, e.g. web-2).
    pub name: String,
    /// Keep stdin open and send it to the command.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give the command a pseudo-terminal (stdin must be a terminal); with -i, an interactive
    /// shell.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// User to run as, e.g. admin or root [default: admin in rich containers with -i/-t, the
    /// image's user otherwise].
    #[arg(short, long)]
    pub user: Option<String>,
    /// Seconds before the command is killed (exit code 124); not with -i/-t.
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          conflicts_with_all = ["interactive", "tty"])]
    pub timeout: u32,
    /// The command and its arguments, after `--` [with -i/-t: a login shell].
    #[arg(last = true, value_name = "CMD", required_unless_present_any = ["interactive", "tty"])]
    pub command: Vec<String>,
}

/// `caas container logs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct LogsArgs {
    pub name: String,
    /// Keep printing new lines as they are written, until Ctrl-C.
    #[arg(short, long)]
    pub follow: bool,
    /// Start with the last N lines.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(caas_api::terminal::MAX_LOG_TAIL)))]
    pub tail: u32,
    /// A file of the container's log directory instead of its output (see --list-files).
    #[arg(long, value_name = "NAME")]
    pub file: Option<String>,
    /// List the files of the container's log directory with their sizes.
    #[arg(long, conflicts_with_all = ["follow", "tail", "file"])]
    pub list_files: bool,
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

    /// Join a network of the pool, optionally publishing SERVICE on it; repeat for more
    /// (eth0, eth1, ... in this order).
    #[arg(long = "public-service", value_name = "[SERVICE].NETWORK")]
    pub networks: Vec<String>,

    /// Run on a rich (sofa) image: supervisord keeps the app alive, sshd takes the pool's keys.
    #[arg(long)]
    pub rich: bool,

    /// Make the app's root file system read-only: only its --volume paths and a /tmp tmpfs can
    /// be written (not with --rich).
    #[arg(long, conflicts_with = "rich")]
    pub read_only: bool,

    /// Health check: healthy while this TCP port accepts connections.
    #[arg(
        long,
        value_name = "PORT",
        group = "health",
        help_heading = "Health check"
    )]
    pub health_tcp: Option<u16>,

    /// Health check: healthy while GET on PORT[/PATH] answers 2xx or 3xx.
    #[arg(
        long,
        value_name = "PORT[/PATH]",
        group = "health",
        help_heading = "Health check"
    )]
    pub health_http: Option<String>,

    /// Health check: healthy while this shell command exits 0 in the container.
    #[arg(
        long,
        value_name = "SHELL-COMMAND",
        group = "health",
        help_heading = "Health check"
    )]
    pub health_cmd: Option<String>,

    /// Seconds between health probes [default: 10].
    #[arg(long, value_name = "SECONDS", help_heading = "Health check")]
    pub health_interval: Option<u32>,

    /// Seconds a probe may take [default: 3].
    #[arg(long, value_name = "SECONDS", help_heading = "Health check")]
    pub health_timeout: Option<u32>,

    /// Failed probes in a row before unhealthy [default: 3].
    #[arg(long, value_name = "N", help_heading = "Health check")]
    pub health_retries: Option<u32>,

    /// Command and arguments replacing the image's CMD, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network: a VXLAN overlay across the pool's nodes, or a bridge on one node.
    #[command(after_help = NETWORK_CREATE_AFTER_HELP)]
    Create(NetworkCreateArgs),
    /// List the pool's networks.
    #[command(visible_alias = "list")]
    Ls,
    /// Show one network as JSON: subnet, gateway, VNI and its endpoints (IP, MAC, container,
    /// node).
    Inspect { name: String },
    /// Remove a network; central refuses while containers are attached to it.
    #[command(visible_alias = "remove")]
    Rm { name: String },
}

/// `caas network create`.
#[derive(Debug, Clone, Args)]
pub struct NetworkCreateArgs {
    /// Network name (lowercase letters, digits and '-').
    pub name: String,

    /// vxlan: an overlay across nodes; bridge: the same without the VXLAN device, one node;
    /// vlan: a VLAN of the data centre on each node's uplink (the gateway is the router's).
    #[arg(short = 'd', long, value_enum, ignore_case = true, default_value_t = DriverArg::Vxlan)]
    pub driver: DriverArg,

    /// Subnet=CIDR, Gateway=IP, Vni=N; vlan networks also VlanId=1..4094 (none: the uplink is
    /// an access port), ArpProxy=true (nodes answer ARP for the gateway and known peers),
    /// MacNat=true (frames leave with the node's MAC). Keys in any case; a bare CIDR is the
    /// subnet; repeat -l.
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriverArg {
    /// An overlay across nodes (a bridge and a VXLAN device on each node that needs it).
    Vxlan,
    /// A bridge on one node: its containers are all placed on that node.
    Bridge,
    /// A data-centre VLAN on every node's uplink (`uplink` in agent.toml).
    Vlan,
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
    /// Whether output is JSON (`-o json` or `--json`).
    pub fn json(&self) -> bool {
        self.json || self.output == OutputFormat::Json
    }

    /// The pool container commands work on.
    pub fn require_pool(&self) -> Result<&str, CliError> {
        match self.pool.as_deref().map(str::trim) {
            Some(pool) if !pool.is_empty() => Ok(pool),
            _ => Err(CliError::bad_argument(
                "container and network commands need a pool: pass --pool=POOL or set CAAS_POOL",
            )),
        }
    }
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "sessions_tests.rs"]
mod sessions_tests;
