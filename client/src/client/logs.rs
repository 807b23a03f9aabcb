//! `CentralClient` methods of a container's logs: its output (or one of its log files) as a
//! stream of bytes, followed for as long as the caller reads, and the list of its log files.

use bytes::Bytes;
use caas_api::terminal::LogFile;
use reqwest::Method;

use super::CentralClient;
use crate::error::ClientError;

/// What `CentralClient::container_logs` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsRequest {
    /// The last N lines, at most `caas_api::terminal::MAX_LOG_TAIL` [default: central's, 100].
    pub tail: Option<u32>,
    /// Keep the answer open and send new lines as they are written.
    pub follow: bool,
    /// A file of the container's log directory (a name from `list_log_files`) instead of the
    /// container's output.
    pub file: Option<String>,
}

/// The text of a log as central sends it, chunk by chunk.
#[derive(Debug)]
pub struct LogStream {
    response: reqwest::Response,
    client: CentralClient,
}

impl LogStream {
    /// The next bytes central sent, as soon as they arrive; `None` once the log ended (without
    /// `follow`: all of it was sent).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        self.response
            .chunk()
            .await
            .map_err(|e| self.client.network_error(&e))
    }
}

impl CentralClient {
    /// Opens a container's log (its output, or `req.file`). The answer's status is checked
    /// here: an error answer is the usual `ClientError::Api`; the text comes from the stream.
    pub async fn container_logs(
        &self,
        pool: &str,
        name: &str,
        req: &LogsRequest,
    ) -> Result<LogStream, ClientError> {
        let mut url = self.url(&["v1", "pools", pool, "containers", name, "logs"])?;
        {
            let mut pairs = url.query_pairs_mut();
            if let Some(tail) = req.tail {
                pairs.append_pair("tail", &tail.to_string());
            }
            pairs.append_pair("follow", if req.follow { "true" } else { "false" });
            if let Some(file) = &req.file {
                pairs.append_pair("file", file);
            }
        }
        // Without `follow` the whole request is bounded like every other; with it, only the
        // connection is.
        let http = if req.follow {
            &self.streaming
        } else {
            &self.http
        };
        let response = self.open(http.request(Method::GET, url)).await?;
        Ok(LogStream {
            response,
            client: self.clone(),
        })
    }

    /// The files of a container's log directory.
    pub async fn list_log_files(
        &self,
        pool: &str,
        name: &str,
    ) -> Result<Vec<LogFile>, ClientError> {
        self.get(&["v1", "pools", pool, "containers", name, "log-files"])
            .await
    }
}
