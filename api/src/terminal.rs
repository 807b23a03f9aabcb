//! The interactive terminal protocol, spoken over a WebSocket by the CLI and the web console to
//! central (`GET /v1/pools/{pool}/containers/{name}/terminal`) and by central to the agent
//! (`GET /v1/containers/{pool}/{name}/terminal`).
//!
//! - The client's first message is a text frame holding [`ClientMessage::Start`].
//! - After that, binary frames from the client are the terminal's input (keystrokes, pasted
//!   text), and text frames are [`ClientMessage`]s (`resize`).
//! - Binary frames from the server are the terminal's output (with a TTY, stdout and stderr are
//!   one stream). Text frames are [`ServerMessage`]s: `started` once the process runs, then
//!   exactly one `exit` or `error`, after which the server closes the socket.
//! - Either side closing the socket ends the session; the process and everything it started in
//!   its terminal session are killed.

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Longest command line of a terminal session, in arguments.
pub const MAX_TERMINAL_ARGS: usize = 64;
/// Longest command line of a terminal session, in bytes (it is kept in the audit log).
pub const MAX_TERMINAL_COMMAND_BYTES: usize = 16 * 1024;
/// Terminal size limits (xterm and every real terminal stay far below).
pub const MAX_TERMINAL_COLS: u16 = 1000;
pub const MAX_TERMINAL_ROWS: u16 = 500;
/// A session with neither input nor output for this long is ended (default of the agent's
/// `terminal_idle_timeout_secs`).
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 15 * 60;

/// Opens the session: what to run and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminalStart {
    /// The program and its arguments; `["bash"]`-like. Default: a login shell (`bash -l` when
    /// the image has bash, else `sh`), chosen by the agent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// User to run as. Developers may only use `admin` (in rich containers); ops may use any
    /// (`root`, `admin`, `uid:gid`). Default: `admin` in rich containers, the image's user else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Allocate a pseudo-terminal (default true). Without one, output is stdout and stderr
    /// interleaved, and there is no resize.
    #[serde(default = "yes")]
    pub tty: bool,
    #[serde(default = "default_cols")]
    pub cols: u16,
    #[serde(default = "default_rows")]
    pub rows: u16,
}

fn yes() -> bool {
    true
}
fn default_cols() -> u16 {
    80
}
fn default_rows() -> u16 {
    24
}

impl Default for TerminalStart {
    fn default() -> Self {
        TerminalStart {
            command: Vec::new(),
            user: None,
            tty: true,
            cols: default_cols(),
            rows: default_rows(),
        }
    }
}

impl TerminalStart {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.command.len() > MAX_TERMINAL_ARGS {
            return Err(ValidationError::new(
                "command",
                format!("at most {MAX_TERMINAL_ARGS} arguments"),
            ));
        }
        if self.command.first().is_some_and(|p| p.is_empty()) {
            return Err(ValidationError::new(
                "command",
                "the program name is empty; give e.g. [\"bash\"] or leave the command out for a shell",
            ));
        }
        let bytes: usize = self.command.iter().map(String::len).sum();
        if bytes > MAX_TERMINAL_COMMAND_BYTES {
            return Err(ValidationError::new(
                "command",
                format!("at most {MAX_TERMINAL_COMMAND_BYTES} bytes in all; put a long script in a file"),
            ));
        }
        if self.command.iter().any(|a| a.contains('\0')) {
            return Err(ValidationError::new(
                "command",
                "arguments cannot hold NUL bytes",
            ));
        }
        if let Some(user) = &self.user {
            if user.is_empty()
                || user.len() > 64
                || user.chars().any(|c| c.is_whitespace() || c == '\0')
            {
                return Err(ValidationError::new(
                    "user",
                    "must be a user name or uid[:gid] without spaces, e.g. admin",
                ));
            }
        }
        check_size(self.cols, self.rows)
    }
}

/// Checks a terminal size.
pub fn check_size(cols: u16, rows: u16) -> Result<(), ValidationError> {
    if cols == 0 || cols > MAX_TERMINAL_COLS {
        return Err(ValidationError::new(
            "cols",
            format!("must be 1..={MAX_TERMINAL_COLS}"),
        ));
    }
    if rows == 0 || rows > MAX_TERMINAL_ROWS {
        return Err(ValidationError::new(
            "rows",
            format!("must be 1..={MAX_TERMINAL_ROWS}"),
        ));
    }
    Ok(())
}

/// Where a rich container's app writes its log files.
pub const LOG_DIR: &str = "/home/admin/logs";
/// Most lines a log read may ask for.
pub const MAX_LOG_TAIL: u32 = 100_000;

/// A file in the container's log directory (`GET .../log-files`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFile {
    pub name: String,
    pub size: u64,
}

/// Checks a log file name: a plain name directly in [`LOG_DIR`].
pub fn validate_log_file(name: &str) -> Result<(), ValidationError> {
    if name.is_empty()
        || name.len() > 255
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0')
    {
        return Err(ValidationError::new(
            "file",
            format!("must be the name of a file directly in {LOG_DIR}, e.g. app.log (no /, not . or ..)"),
        ));
    }
    Ok(())
}

/// Text frames from the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    Start(TerminalStart),
    Resize {
        cols: u16,
        rows: u16,
    },
    /// The client's input has ended: the process's stdin is closed (without a TTY, how a
    /// piped `cat` learns it is done; with one, Ctrl-D is typed instead).
    Eof,
}

/// Text frames from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerMessage {
    /// The process runs; `session` names it in the audit log.
    Started { session: String },
    /// The process ended with this code (`-1` when it was killed before reporting one).
    Exit { code: i64 },
    /// The session could not start or was ended; `code` is one of the API's error codes
    /// (`idle-timeout`, `not-found`, `forbidden`, `invalid`, `no-admin-user`, `unavailable`...).
    Error { code: String, message: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_defaults_and_wire_form() {
        let start: ClientMessage = serde_json::from_str(r#"{"start":{}}"#).expect("parses");
        assert_eq!(start, ClientMessage::Start(TerminalStart::default()));
        let resize: ClientMessage =
            serde_json::from_str(r#"{"resize":{"cols":120,"rows":40}}"#).expect("parses");
        assert_eq!(
            resize,
            ClientMessage::Resize {
                cols: 120,
                rows: 40
            }
        );
        let eof: ClientMessage = serde_json::from_str(r#""eof""#).expect("parses");
        assert_eq!(eof, ClientMessage::Eof);
        let exit = serde_json::to_string(&ServerMessage::Exit { code: 3 }).expect("serializes");
        assert_eq!(exit, r#"{"exit":{"code":3}}"#);
        assert!(serde_json::from_str::<ClientMessage>(r#"{"start":{"cmd":["x"]}}"#).is_err());
    }

    #[test]
    fn log_file_names() {
        assert!(validate_log_file("app.err.log").is_ok());
        for bad in ["", ".", "..", "../etc/passwd", "a/b", "x\0y"] {
            assert_eq!(validate_log_file(bad).expect_err(bad).field, "file");
        }
    }

    #[test]
    fn validation_names_the_field() {
        let bad = |s: TerminalStart| s.validate().expect_err("refused").field;
        assert_eq!(
            bad(TerminalStart {
                command: vec![String::new()],
                ..Default::default()
            }),
            "command"
        );
        assert_eq!(
            bad(TerminalStart {
                user: Some("a b".into()),
                ..Default::default()
            }),
            "user"
        );
        assert_eq!(
            bad(TerminalStart {
                cols: 0,
                ..Default::default()
            }),
            "cols"
        );
        assert_eq!(
            bad(TerminalStart {
                rows: 9999,
                ..Default::default()
            }),
            "rows"
        );
        assert!(TerminalStart {
            command: vec!["bash".into()],
            ..Default::default()
        }
        .validate()
        .is_ok());
    }
}
