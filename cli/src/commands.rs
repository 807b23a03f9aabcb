//! Runs one parsed `caas` command against central and writes its output.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use caas_api::central::{CreatePoolRequest, ExecRequest};
use caas_client::CentralClient;

use super::render;
use super::{
    Cli, CliError, Command, ContainerCommand, ExecArgs, NetworkCommand, NodeCommand, OutputFormat,
    PoolCommand,
};

/// Runs `cli`, writing results to `out`; returns the exit status (0, or the exit code of a
/// command run by `container exec`). Errors are returned for the caller to print
/// (`render::error_text`) and turn into an exit code (`CliError::exit_code`).
pub async fn run(cli: &Cli, out: &mut dyn Write) -> Result<u8, CliError> {
    let ctx = Ctx {
        output: if cli.json() {
            OutputFormat::Json
        } else {
            cli.output
        },
        now: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let client = || CentralClient::new(&cli.url, cli.token.as_deref());
    match &cli.command {
        Command::Pool(cmd) => pool(&client()?, &ctx, cmd, out).await.map(|()| 0),
        Command::Node(cmd) => node(&client()?, &ctx, cmd, out).await.map(|()| 0),
        Command::Container(cmd) => {
            let pool = cli.require_pool()?;
            container(&client()?, &ctx, pool, cmd, out).await
        }
        Command::Network(cmd) => {
            let pool = cli.require_pool()?;
            network(&client()?, &ctx, pool, cmd, out).await.map(|()| 0)
        }
        Command::Dns(cmd) => {
            let pool = cli.require_pool()?;
            super::services::dns(&client()?, ctx.json(), pool, cmd, out)
                .await
                .map(|()| 0)
        }
        Command::Lb(cmd) => {
            let pool = cli.require_pool()?;
            super::services::lb(&client()?, ctx.json(), pool, cmd, out)
                .await
                .map(|()| 0)
        }
        Command::Image(cmd) => {
            let pool = cli.require_pool()?;
            super::registry::image(&client()?, ctx.json(), pool, cmd, out).await
        }
        Command::RegistryProxy(cmd) => {
            let pool = cli.require_pool()?;
            super::registry::registry_proxy(&client()?, ctx.json(), pool, cmd, out)
                .await
                .map(|()| 0)
        }
        Command::Audit(cmd) => {
            let pool = cli.require_pool()?;
            super::access::audit(&client()?, ctx.json(), pool, cmd, out)
                .await
                .map(|()| 0)
        }
    }
}

struct Ctx {
    output: OutputFormat,
    /// Unix seconds, for ages.
    now: u64,
}

impl Ctx {
    fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }
}

async fn pool(
    client: &CentralClient,
    ctx: &Ctx,
    cmd: &PoolCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        PoolCommand::SshKeys { name, ssh_keys } => {
            caas_api::central::validate_ssh_keys("ssh_keys", ssh_keys)
                .map_err(|e| CliError::bad_argument(format!("--ssh-key: {}", e.message)))?;
            let view = client.set_pool_ssh_keys(name, ssh_keys).await?;
            if ctx.json() {
                write!(out, "{}", render::json(&view))?;
            } else {
                writeln!(
                    out,
                    "pool {name} now has {} SSH key(s); {} rich container(s) get them in place",
                    view.ssh_keys.len(),
                    view.containers_updated
                )?;
            }
        }
        PoolCommand::Create { name, ssh_keys } => {
            let request = CreatePoolRequest {
                name: name.clone(),
                ssh_keys: ssh_keys.clone(),
            };
            let view = client.create_pool(&request).await?;
            if ctx.json() {
                write!(out, "{}", render::json(&view))?;
            } else {
                writeln!(out, "pool {} created", view.name)?;
                match &view.token {
                    Some(token) => write_token(out, &view.name, token)?,
                    None => writeln!(
                        out,
                        "central returned no token; issue one with `caas pool token create {}`",
                        view.name
                    )?,
                }
            }
        }
        PoolCommand::Ls => {
            let pools = client.list_pools().await?;
            if ctx.json() {
                write!(out, "{}", render::json(&pools))?;
            } else {
                write!(out, "{}", render::pools_table(&pools))?;
            }
        }
        PoolCommand::Inspect { name } => {
            write!(out, "{}", render::json(&client.get_pool(name).await?))?;
        }
        PoolCommand::Rm { name } => {
            client.delete_pool(name).await?;
            if !ctx.json() {
                writeln!(out, "pool {name} removed")?;
            }
        }
        PoolCommand::Token(args) => {
            super::access::token(client, ctx.json(), &args.command(), out).await?;
        }
    }
    Ok(())
}

fn write_token(out: &mut dyn Write, pool: &str, token: &str) -> std::io::Result<()> {
    writeln!(out, "token: {token}")?;
    super::access::write_token_warning(out, pool)
}

async fn node(
    client: &CentralClient,
    ctx: &Ctx,
    cmd: &NodeCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        NodeCommand::Ls => {
            let nodes = client.list_nodes().await?;
            if ctx.json() {
                write!(out, "{}", render::json(&nodes))?;
            } else {
                write!(out, "{}", render::nodes_table(&nodes))?;
            }
        }
        NodeCommand::Inspect { id } => {
            write!(out, "{}", render::json(&client.get_node(id).await?))?;
        }
        NodeCommand::Top => crate::stats::node_top(client, ctx.json(), out).await?,
    }
    Ok(())
}

async fn container(
    client: &CentralClient,
    ctx: &Ctx,
    pool: &str,
    cmd: &ContainerCommand,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    match cmd {
        ContainerCommand::Create(args) => {
            let request = args.to_request()?;
            let outcome = client.create_containers_outcome(pool, &request).await?;
            if ctx.json() {
                write!(out, "{}", render::json(&outcome.containers))?;
            } else {
                let n = outcome.containers.len();
                let what = if n == 1 { "container" } else { "containers" };
                if outcome.created {
                    writeln!(out, "created {n} {what} in pool {pool}")?;
                } else {
                    writeln!(
                        out,
                        "{n} {what} already existed in pool {pool} with the same spec; nothing \
                         changed"
                    )?;
                }
                write!(
                    out,
                    "{}",
                    render::containers_table(&outcome.containers, ctx.now)
                )?;
            }
        }
        ContainerCommand::Ls => {
            let containers = client.list_containers(pool).await?;
            if ctx.json() {
                write!(out, "{}", render::json(&containers))?;
            } else {
                write!(out, "{}", render::containers_table(&containers, ctx.now))?;
            }
        }
        ContainerCommand::Inspect { name } => {
            write!(
                out,
                "{}",
                render::json(&client.get_container(pool, name).await?)
            )?;
        }
        ContainerCommand::Rm { name, purge_data } => {
            client.delete_container(pool, name, *purge_data).await?;
            if !ctx.json() {
                if *purge_data {
                    writeln!(out, "container {name} removed with its data")?;
                } else {
                    writeln!(out, "container {name} removed (its data container is kept)")?;
                }
            }
        }
        ContainerCommand::Deploy { name, package } => {
            let bytes = std::fs::read(package).map_err(|e| {
                CliError::bad_argument(format!("cannot read package {}: {e}", package.display()))
            })?;
            if !bytes.starts_with(&[0x1f, 0x8b]) {
                return Err(CliError::bad_argument(format!(
                    "{} is not a gzip tarball; make it with `tar czf app.tgz -C DIR .`",
                    package.display()
                )));
            }
            if !ctx.json() {
                writeln!(
                    out,
                    "deploying {} ({} bytes) to {name} in pool {pool}...",
                    package.display(),
                    bytes.len()
                )?;
                out.flush()?;
            }
            let results = client.deploy_container(pool, name, bytes).await?;
            if ctx.json() {
                write!(out, "{}", render::json(&results))?;
            } else {
                for r in &results {
                    let detail = match (r.program.pid, r.program.log_tail.last()) {
                        (Some(pid), _) => format!("pid {pid}"),
                        (None, Some(line)) => line.clone(),
                        (None, None) => r.program.description.clone(),
                    };
                    writeln!(
                        out,
                        "{}: app {} ({detail}), started with {}, package sha256 {}",
                        r.name,
                        r.program.state,
                        r.start_script,
                        &r.package_sha256[..r.package_sha256.len().min(12)]
                    )?;
                }
            }
            if let Some(failed) = results.iter().find(|r| r.program.state != "RUNNING") {
                eprintln!(
                    "caas: the app of {} did not come up after the deploy ({}); the rollout \
                     stopped there: see `caas container inspect {}`",
                    failed.name, failed.program.state, failed.name
                );
                return Ok(1);
            }
        }
        ContainerCommand::Exec(args) if args.interactive || args.tty => {
            return super::terminal::exec(client, pool, args, out).await;
        }
        ContainerCommand::Exec(ExecArgs {
            name,
            user,
            timeout,
            command,
            ..
        }) => {
            let request = ExecRequest {
                command: command.clone(),
                user: user.clone(),
                timeout_seconds: Some(*timeout),
            };
            request
                .validate()
                .map_err(|e| CliError::bad_argument(format!("{}: {}", e.field, e.message)))?;
            let result = client.exec_container(pool, name, &request).await?;
            if ctx.json() {
                write!(out, "{}", render::json(&result))?;
            } else {
                out.write_all(result.stdout.as_bytes())?;
                eprint!("{}", result.stderr);
                if result.truncated {
                    eprintln!("caas: output truncated to 1 MiB per stream");
                }
                if result.timed_out {
                    eprintln!("caas: the command timed out after {timeout}s and was killed");
                }
            }
            return Ok(u8::try_from(result.exit_code.clamp(0, 255)).unwrap_or(u8::MAX));
        }
        ContainerCommand::Logs(args) => {
            super::logs::logs(client, ctx.json(), pool, args, out).await?;
        }
        ContainerCommand::Stats {
            names,
            watch,
            interval,
        } => {
            crate::stats::container_stats(
                client,
                ctx.json(),
                pool,
                names,
                *watch,
                std::time::Duration::from_secs(*interval),
                out,
            )
            .await?;
        }
        ContainerCommand::Upgrade {
            name,
            image,
            no_prewarm,
        } => {
            return super::registry::upgrade(
                client,
                ctx.json(),
                pool,
                name,
                image,
                *no_prewarm,
                out,
            )
            .await;
        }
        ContainerCommand::Reschedule { name, force } => {
            let view = client.reschedule_container(pool, name, *force).await?;
            if ctx.json() {
                write!(out, "{}", render::json(&view))?;
            } else {
                writeln!(out, "container {name} placed on node {}", view.node)?;
                write!(
                    out,
                    "{}",
                    render::containers_table(std::slice::from_ref(&view), ctx.now)
                )?;
            }
        }
    }
    Ok(0)
}

async fn network(
    client: &CentralClient,
    ctx: &Ctx,
    pool: &str,
    cmd: &NetworkCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        NetworkCommand::Create(args) => {
            let request = args.to_request()?;
            let spec = client.create_network(pool, &request).await?;
            if ctx.json() {
                write!(out, "{}", render::json(&spec))?;
            } else {
                writeln!(
                    out,
                    "network {} created in pool {pool}: {} {}, gateway {}, VNI {}",
                    spec.name,
                    render::driver_text(&spec),
                    spec.subnet,
                    spec.gateway,
                    spec.vni
                )?;
            }
        }
        NetworkCommand::Ls => {
            let networks = client.list_networks(pool).await?;
            if ctx.json() {
                write!(out, "{}", render::json(&networks))?;
            } else {
                write!(out, "{}", render::networks_table(&networks))?;
            }
        }
        NetworkCommand::Inspect { name } => {
            write!(
                out,
                "{}",
                render::json(&client.get_network(pool, name).await?)
            )?;
        }
        NetworkCommand::Rm { name } => {
            client.delete_network(pool, name).await?;
            if !ctx.json() {
                writeln!(out, "network {name} removed")?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "commands_tests.rs"]
mod tests;
