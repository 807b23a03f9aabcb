//! `caas container logs`: a container's output or one of its log files, written to stdout as the
//! bytes arrive (followed with `-f`), and `--list-files`.

use std::io::Write;

use caas_client::{CentralClient, LogFile, LogsRequest};

use super::{format, render, CliError, LogsArgs};

pub async fn logs(
    client: &CentralClient,
    json: bool,
    pool: &str,
    args: &LogsArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if args.list_files {
        let files = client.list_log_files(pool, &args.name).await?;
        if json {
            write!(out, "{}", render::json(&files))?;
        } else {
            write!(out, "{}", files_table(&files))?;
        }
        return Ok(());
    }
    if let Some(file) = &args.file {
        caas_api::terminal::validate_log_file(file)
            .map_err(|e| CliError::bad_argument(format!("--file: {}", e.message)))?;
    }
    let request = LogsRequest {
        tail: Some(args.tail),
        follow: args.follow,
        file: args.file.clone(),
    };
    let mut stream = client.container_logs(pool, &args.name, &request).await?;
    // The bytes as they come: a log is text, but not necessarily UTF-8 nor whole lines.
    while let Some(chunk) = stream.chunk().await? {
        out.write_all(&chunk)?;
        out.flush()?;
    }
    Ok(())
}

pub fn files_table(files: &[LogFile]) -> String {
    let rows = files
        .iter()
        .map(|f| vec![f.name.clone(), format::memory(f.size)])
        .collect();
    render::table(&["NAME", "SIZE"], rows)
}
