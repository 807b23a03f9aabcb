//! `caas container exec -i/-t`: an interactive session in a container over central's terminal
//! WebSocket, like `docker exec -it`. Stdin is read on a thread of its own and sent as it comes;
//! output is written and flushed as it arrives; with `-t` the local terminal is in raw mode
//! (restored by a guard, whatever happens: an error, a panic, SIGTERM or SIGHUP) and each window
//! change is sent as a resize. The exit status is the command's.

use std::io::{IsTerminal, Read, Write};

use caas_api::terminal::{TerminalStart, MAX_TERMINAL_COLS, MAX_TERMINAL_ROWS};
use caas_client::{CentralClient, TerminalEvent};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;

use super::{CliError, ExecArgs};

/// The size sent when the local terminal's cannot be read.
const DEFAULT_SIZE: (u16, u16) = (80, 24);
/// Bytes of stdin read at once (a keystroke in raw mode, a paste or a file otherwise).
const READ_SIZE: usize = 16 * 1024;
/// Chunks of stdin waiting for the socket before the reader waits.
const INPUT_QUEUE: usize = 16;

/// Where a session's input and window changes come from.
#[derive(Debug, Default)]
pub struct Io {
    /// Chunks of input; `None` (or a closed channel: the end of stdin) sends nothing.
    pub input: Option<mpsc::Receiver<Vec<u8>>>,
    /// Put the local terminal in raw mode for the session.
    pub raw: bool,
    /// Window changes (SIGWINCH), each sent as a resize with the local terminal's size.
    pub resizes: Option<Signal>,
    /// SIGTERM and SIGHUP: end the session (and restore the terminal) instead of dying in
    /// raw mode.
    pub stops: Option<Stops>,
}

/// The signals that end a session from this side, with the exit status each gives (128 + the
/// signal's number, as a shell reports a process killed by it).
#[derive(Debug)]
pub struct Stops {
    term: Signal,
    hangup: Signal,
}

impl Stops {
    /// `None` when the signals cannot be watched (the default action then applies).
    pub fn watch() -> Option<Self> {
        Some(Stops {
            term: signal(SignalKind::terminate()).ok()?,
            hangup: signal(SignalKind::hangup()).ok()?,
        })
    }

    async fn recv(&mut self) -> u8 {
        tokio::select! {
            _ = self.term.recv() => 128 + 15,
            _ = self.hangup.recv() => 128 + 1,
        }
    }
}

/// `caas container exec` with `-i` and/or `-t`, on this process's stdin and terminal.
pub async fn exec(
    client: &CentralClient,
    pool: &str,
    args: &ExecArgs,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    let start = start_message(args, std::io::stdin().is_terminal(), terminal_size())?;
    let io = Io {
        input: if args.interactive {
            Some(read_stdin()?)
        } else {
            None
        },
        // Without -i the keyboard is not the command's: Ctrl-C stays caas's own.
        raw: args.tty && args.interactive,
        // A terminal that cannot report its changes keeps its first size.
        resizes: if args.tty {
            signal(SignalKind::window_change()).ok()
        } else {
            None
        },
        stops: Stops::watch(),
    };
    session(client, pool, &args.name, &start, io, out).await
}

/// The start message of `args`, checked before anything is sent: `-t` needs a terminal on
/// stdin (`stdin_is_terminal`), whose `size` (columns, rows) the TTY gets.
pub fn start_message(
    args: &ExecArgs,
    stdin_is_terminal: bool,
    size: (u16, u16),
) -> Result<TerminalStart, CliError> {
    if args.tty && !stdin_is_terminal {
        return Err(CliError::bad_argument(
            "the input device is not a TTY: -t needs a terminal on stdin; leave out -t to send \
             a pipe or a file with -i",
        ));
    }
    let (cols, rows) = if args.tty { size } else { DEFAULT_SIZE };
    let start = TerminalStart {
        command: args.command.clone(),
        user: args.user.clone(),
        tty: args.tty,
        cols,
        rows,
    };
    start.validate().map_err(|e| {
        let what = match e.field.as_str() {
            "user" => "--user",
            "command" => "the command after --",
            _ => "the terminal size",
        };
        CliError::bad_argument(format!("{what}: {}", e.message))
    })?;
    Ok(start)
}

/// Runs one session: opens it, then copies input to the socket and output to `out` until the
/// server says how it ended. Returns the command's exit status.
pub async fn session(
    client: &CentralClient,
    pool: &str,
    name: &str,
    start: &TerminalStart,
    io: Io,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    let Io {
        mut input,
        raw,
        mut resizes,
        mut stops,
    } = io;
    let session = tokio::select! {
        session = client.terminal(pool, name, start) => session?,
        status = next_stop(&mut stops), if stops.is_some() => return Ok(status),
    };
    // Dropped on every way out of here, a panic's unwinding included.
    let _raw = if raw { Some(RawMode::enable()?) } else { None };
    let (mut sender, mut receiver) = session.split();
    let result = loop {
        tokio::select! {
            event = receiver.next() => match event {
                Ok(Some(TerminalEvent::Output(bytes))) => {
                    if let Err(e) = out.write_all(&bytes).and_then(|()| out.flush()) {
                        break Err(CliError::Output(e));
                    }
                }
                Ok(Some(TerminalEvent::Started { .. })) => {}
                Ok(Some(TerminalEvent::Exit { code })) => break Ok(exit_status(code)),
                Ok(Some(TerminalEvent::Error { code, message })) => {
                    break Err(CliError::Session { code: Some(code), message })
                }
                Ok(None) => {
                    break Err(CliError::Session {
                        code: None,
                        message: "the terminal session ended without an exit status (the \
                                  connection was closed)"
                            .to_string(),
                    })
                }
                Err(e) => break Err(e.into()),
            },
            chunk = next_input(&mut input), if input.is_some() => match chunk {
                // A failed send means the socket is gone: the receiver says how.
                Some(bytes) => {
                    if sender.input(&bytes).await.is_err() {
                        input = None;
                    }
                }
                // The end of stdin: without a TTY the command's stdin is closed (a piped
                // `cat` ends); with one, nothing more is sent (Ctrl-D is typed in-band). The
                // output is printed until the command ends.
                None => {
                    input = None;
                    if !start.tty {
                        let _ = sender.eof().await;
                    }
                }
            },
            Some(()) = next_resize(&mut resizes), if resizes.is_some() => {
                let (cols, rows) = terminal_size();
                // Best effort, like the input: a broken socket shows in the receiver.
                let _ = sender.resize(cols, rows).await;
            }
            status = next_stop(&mut stops), if stops.is_some() => break Ok(status),
        }
    };
    sender.close().await;
    result
}

/// The exit status caas passes on: the command's own (0..=255), 1 for anything else (`-1`:
/// killed before it reported one).
pub fn exit_status(code: i64) -> u8 {
    u8::try_from(code).unwrap_or(1)
}

async fn next_input(input: &mut Option<mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match input {
        Some(rx) => rx.recv().await,
        None => None,
    }
}

async fn next_resize(resizes: &mut Option<Signal>) -> Option<()> {
    match resizes {
        Some(signal) => signal.recv().await,
        None => None,
    }
}

async fn next_stop(stops: &mut Option<Stops>) -> u8 {
    match stops {
        Some(stops) => stops.recv().await,
        None => std::future::pending().await,
    }
}

/// The local terminal's size, within what the protocol allows.
fn terminal_size() -> (u16, u16) {
    match crossterm::terminal::size() {
        Ok((cols, rows)) if cols > 0 && rows > 0 => {
            (cols.min(MAX_TERMINAL_COLS), rows.min(MAX_TERMINAL_ROWS))
        }
        _ => DEFAULT_SIZE,
    }
}

/// Reads stdin on a thread of its own (a blocking read must not hold up the runtime, nor keep
/// the process from exiting when the session ends first) into a channel closed at its end.
fn read_stdin() -> Result<mpsc::Receiver<Vec<u8>>, CliError> {
    let (tx, rx) = mpsc::channel(INPUT_QUEUE);
    std::thread::Builder::new()
        .name("caas-stdin".to_string())
        .spawn(move || {
            let mut stdin = std::io::stdin();
            let mut buf = vec![0u8; READ_SIZE];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if tx.blocking_send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        })
        .map_err(|e| CliError::Session {
            code: None,
            message: format!("cannot read stdin: {e}"),
        })?;
    Ok(rx)
}

/// The local terminal in raw mode (keys go to the container as typed, Ctrl-C included) until
/// dropped.
struct RawMode;

impl RawMode {
    fn enable() -> Result<Self, CliError> {
        crossterm::terminal::enable_raw_mode().map_err(|e| CliError::Session {
            code: None,
            message: format!("cannot put the terminal in raw mode: {e}"),
        })?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // Nothing more can be done if the terminal refuses; `reset` puts it right.
        let _ = crossterm::terminal::disable_raw_mode();
    }
}
