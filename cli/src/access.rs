//! `caas pool token create|ls|rm` (a pool's tokens with their roles) and `caas audit ls` (the
//! pool's terminal and exec sessions): the calls and their output.

use std::io::Write;

use caas_api::central::TokenResponse;
use caas_api::roles::{AuditEntry, CreateTokenRequest, Role, SessionKind, TokenView};
use caas_client::{AuditQuery, CentralClient};

use super::{format, render, AuditCommand, CliError, TokenCommand};

/// Placeholder for "nothing to show" in a cell.
const NONE: &str = "-";
/// Longest command shown in the audit table (`-v` and JSON show all of it).
const COMMAND_WIDTH: usize = 48;

pub async fn token(
    client: &CentralClient,
    json: bool,
    cmd: &TokenCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        TokenCommand::Create { pool, args } => {
            let request = CreateTokenRequest {
                role: args.role.into(),
                label: args.label.clone(),
            };
            request
                .validate()
                .map_err(|e| CliError::bad_argument(format!("--{}: {}", e.field, e.message)))?;
            let answer = client.create_token(pool, &request).await?;
            if json {
                write!(out, "{}", render::json(&answer))?;
            } else {
                write_issued_token(out, pool, &answer)?;
            }
        }
        TokenCommand::Ls { pool } => {
            let tokens = client.list_tokens(pool).await?;
            if json {
                write!(out, "{}", render::json(&tokens))?;
            } else {
                write!(out, "{}", tokens_table(&tokens))?;
            }
        }
        TokenCommand::Rm { pool, id } => {
            client.delete_token(pool, id).await?;
            if !json {
                writeln!(out, "token {id} of pool {pool} revoked")?;
            }
        }
    }
    Ok(())
}

/// A new token, its id and role, and that it will not be shown again.
pub fn write_issued_token(
    out: &mut dyn Write,
    pool: &str,
    answer: &TokenResponse,
) -> std::io::Result<()> {
    writeln!(out, "token: {}", answer.token)?;
    if !answer.id.is_empty() {
        writeln!(out, "id:    {}", answer.id)?;
    }
    writeln!(out, "role:  {}", answer.role)?;
    write_token_warning(out, pool)?;
    if answer.role == Role::Developer {
        writeln!(
            out,
            "It lists the pool's containers, reads their logs and opens terminals as admin in \
             rich containers; nothing else."
        )?;
    }
    if !answer.id.is_empty() {
        writeln!(
            out,
            "Revoke it with `caas pool token rm {pool} {}`.",
            answer.id
        )?;
    }
    Ok(())
}

/// That a token is shown only once, and how to use it.
pub fn write_token_warning(out: &mut dyn Write, pool: &str) -> std::io::Result<()> {
    writeln!(
        out,
        "Store this token now: it is shown only once and central keeps only its hash.\n\
         Use it as CAAS_TOKEN (or --token) for the commands of pool {pool}."
    )
}

pub fn tokens_table(tokens: &[TokenView]) -> String {
    let rows = tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.role.to_string(),
                t.created_at.map_or_else(|| NONE.to_string(), format::utc),
                t.label.clone().unwrap_or_else(|| NONE.to_string()),
            ]
        })
        .collect();
    render::table(&["ID", "ROLE", "CREATED", "LABEL"], rows)
}

pub async fn audit(
    client: &CentralClient,
    json: bool,
    pool: &str,
    cmd: &AuditCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let AuditCommand::Ls {
        container,
        limit,
        verbose,
    } = cmd;
    let query = AuditQuery {
        container: container.clone(),
        limit: *limit,
    };
    let entries = client.audit(pool, &query).await?;
    if json {
        write!(out, "{}", render::json(&entries))?;
        return Ok(());
    }
    write!(out, "{}", audit_table(&entries))?;
    if *verbose {
        write!(out, "{}", audit_input(&entries))?;
    }
    Ok(())
}

/// One row per session, oldest first as central sends them.
pub fn audit_table(entries: &[AuditEntry]) -> String {
    let rows = entries
        .iter()
        .map(|e| {
            vec![
                format::utc(e.started_at / 1000),
                e.container.clone(),
                kind(e.kind).to_string(),
                who(e),
                e.via.clone(),
                e.user.clone(),
                cut(&command(e), COMMAND_WIDTH),
                format::duration(e.ended_at.saturating_sub(e.started_at)),
                e.exit_code
                    .map_or_else(|| NONE.to_string(), |c| c.to_string()),
                e.ended_by.clone(),
            ]
        })
        .collect();
    render::table(
        &[
            "WHEN",
            "CONTAINER",
            "KIND",
            "WHO",
            "VIA",
            "USER",
            "COMMAND",
            "DURATION",
            "EXIT",
            "ENDED-BY",
        ],
        rows,
    )
}

/// `-v`: each session's typed lines under a line naming it.
pub fn audit_input(entries: &[AuditEntry]) -> String {
    let mut text = String::new();
    for e in entries {
        text.push_str(&format!(
            "\n{}  {}  {}  {}@{}: {}\n",
            e.id,
            format::utc(e.started_at / 1000),
            who(e),
            e.user,
            e.container,
            command(e)
        ));
        if e.input.is_empty() {
            text.push_str("  (no input)\n");
        }
        for line in &e.input {
            text.push_str(&format!("  {line}\n"));
        }
        if e.input_truncated {
            text.push_str("  (more was typed than the audit log keeps)\n");
        }
    }
    text
}

fn kind(kind: SessionKind) -> &'static str {
    match kind {
        SessionKind::Terminal => "terminal",
        SessionKind::Exec => "exec",
    }
}

/// `tok-0123456789ab/developer`, or `admin` for the admin token.
fn who(e: &AuditEntry) -> String {
    if e.token_id == e.role {
        e.token_id.clone()
    } else {
        format!("{}/{}", e.token_id, e.role)
    }
}

/// The command as a shell would take it back; `(login shell)` for a terminal without one.
fn command(e: &AuditEntry) -> String {
    if e.command.is_empty() {
        return match e.kind {
            SessionKind::Terminal => "(login shell)".to_string(),
            SessionKind::Exec => NONE.to_string(),
        };
    }
    e.command
        .iter()
        .map(|arg| shell_quote(arg))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `arg` quoted for a POSIX shell when it needs it.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// `text` cut to `width` characters, with `...` when it was longer.
fn cut(text: &str, width: usize) -> String {
    match text.char_indices().nth(width) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}
