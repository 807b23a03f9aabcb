//! Exceptions in Docker's `DOCKER-USER` chain for the agent's bridges. On a Docker host the
//! iptables FORWARD policy is DROP, and with `br_netfilter` loaded (Docker loads it) frames
//! bridged between two ports of a `cb<vni>` bridge pass through that chain too: without an
//! exception, containers of a network could not reach each other or leave the node. The agent
//! accepts what enters from its bridges and the replies going back to them; isolation between
//! networks stays in the agent's own nftables table, which every packet also passes. Where the
//! chain does not exist (no Docker in this namespace) there is nothing to do.

use std::process::Stdio;

use super::NetError;

/// Docker's chain for rules of the host's own.
pub const CHAIN: &str = "DOCKER-USER";

/// The rules, in the order they are inserted at the top of the chain.
pub fn rules() -> [Vec<&'static str>; 2] {
    [
        vec!["-i", "cb+", "-j", "ACCEPT"],
        vec![
            "-o",
            "cb+",
            "-m",
            "conntrack",
            "--ctstate",
            "RELATED,ESTABLISHED",
            "-j",
            "ACCEPT",
        ],
    ]
}

/// What `apply` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No iptables or no `DOCKER-USER` chain here: Docker does not filter this namespace.
    NoDocker,
    /// The rules were already as wanted.
    Unchanged,
    Changed,
}

/// Makes the exceptions present (`wanted`) or absent.
pub async fn apply(wanted: bool) -> Result<Outcome, NetError> {
    match iptables(&["-w", "-n", "-L", CHAIN]).await {
        Ok(true) => {}
        Ok(false) | Err(IptablesMissing) => return Ok(Outcome::NoDocker),
    }
    let mut outcome = Outcome::Unchanged;
    for rule in rules() {
        let present = run_rule("-C", &rule).await?;
        if present != wanted {
            let action = if wanted { "-I" } else { "-D" };
            if !run_rule(action, &rule).await? {
                return Err(NetError::Failed(format!(
                    "iptables {action} {CHAIN} {} failed",
                    rule.join(" ")
                )));
            }
            outcome = Outcome::Changed;
        }
    }
    Ok(outcome)
}

async fn run_rule(action: &str, rule: &[&str]) -> Result<bool, NetError> {
    let mut args = vec!["-w", action, CHAIN];
    args.extend_from_slice(rule);
    iptables(&args)
        .await
        .map_err(|IptablesMissing| NetError::Failed("iptables vanished".into()))
}

struct IptablesMissing;

/// Runs iptables; whether it succeeded.
async fn iptables(args: &[&str]) -> Result<bool, IptablesMissing> {
    let status = tokio::process::Command::new("iptables")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|_| IptablesMissing)?;
    Ok(status.success())
}
