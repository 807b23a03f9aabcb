//! The audit log of terminal and exec sessions: what a terminal's input looked like as lines
//! (`InputRecorder`), and the entries in ZooKeeper (`audit/<pool>/<id>`, written when a session
//! starts and again when it ends, so a session in progress is visible and one cut short by a
//! central crash still leaves its start).

use caas_api::roles::{AuditEntry, MAX_AUDIT_BYTES, MAX_AUDIT_ENTRIES, MAX_AUDIT_LINES};
use rand::RngCore;

use crate::error::CentralError;
use crate::store::{Op, Store};

/// Turns the bytes typed into a terminal into the lines the user saw: printable text kept,
/// backspace and Ctrl-U applied, escape sequences (arrow keys, function keys) dropped, Ctrl-C and
/// Ctrl-D noted, a line ended by Enter.
///
/// A session that types more than an entry keeps is recorded by its first and its last lines
/// (half the budget each) with a note of how many were dropped between: typing many lines first
/// does not hide what comes after.
#[derive(Debug, Default)]
pub struct InputRecorder {
    head: Vec<String>,
    head_bytes: usize,
    tail: std::collections::VecDeque<String>,
    tail_bytes: usize,
    dropped: usize,
    line: Vec<u8>,
    truncated: bool,
    escape: Escape,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// After ESC.
    Start,
    /// Inside `ESC [` ... until a final byte.
    Csi,
    /// `ESC O x`: one more byte.
    Ss3,
}

impl InputRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, input: &[u8]) {
        for &b in input {
            match self.escape {
                Escape::Start => {
                    self.escape = match b {
                        b'[' => Escape::Csi,
                        b'O' => Escape::Ss3,
                        _ => Escape::None,
                    };
                    continue;
                }
                Escape::Csi => {
                    if (0x40..=0x7e).contains(&b) {
                        self.escape = Escape::None;
                    }
                    continue;
                }
                Escape::Ss3 => {
                    self.escape = Escape::None;
                    continue;
                }
                Escape::None => {}
            }
            match b {
                0x1b => self.escape = Escape::Start,
                b'\r' | b'\n' => self.end_line(None),
                0x7f | 0x08 => {
                    // One whole character: continuation bytes and their lead byte.
                    while let Some(last) = self.line.pop() {
                        if last & 0xc0 != 0x80 {
                            break;
                        }
                    }
                }
                0x15 => self.line.clear(),
                0x03 => self.end_line(Some("^C")),
                0x04 if self.line.is_empty() => self.end_line(Some("^D")),
                b'\t' => self.push(b'\t'),
                b if b < 0x20 => {}
                b => self.push(b),
            }
        }
    }

    fn push(&mut self, b: u8) {
        if self.line.len() < 4096 {
            self.line.push(b);
        } else {
            self.truncated = true;
        }
    }

    fn end_line(&mut self, mark: Option<&str>) {
        let mut text = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        if let Some(mark) = mark {
            text.push_str(mark);
        }
        let (max_lines, max_bytes) = (MAX_AUDIT_LINES / 2, MAX_AUDIT_BYTES / 2);
        if self.tail.is_empty()
            && self.head.len() < max_lines
            && self.head_bytes + text.len() <= max_bytes
        {
            self.head_bytes += text.len();
            self.head.push(text);
            return;
        }
        if text.len() > max_bytes {
            self.truncated = true;
            self.dropped += 1;
            return;
        }
        self.tail_bytes += text.len();
        self.tail.push_back(text);
        while self.tail.len() > max_lines || self.tail_bytes > max_bytes {
            if let Some(old) = self.tail.pop_front() {
                self.tail_bytes -= old.len();
                self.dropped += 1;
                self.truncated = true;
            }
        }
    }

    /// The lines so far; a line being typed when the session ended is kept with `(unfinished)`.
    pub fn finish(mut self) -> (Vec<String>, bool) {
        if !self.line.is_empty() {
            self.end_line(Some(" (unfinished)"));
        }
        let mut lines = self.head;
        if self.dropped > 0 {
            lines.push(format!("[... {} lines not kept ...]", self.dropped));
        }
        lines.extend(self.tail);
        (lines, self.truncated)
    }
}

/// Most input bytes one listing carries (the rest: ask with a smaller limit or per container).
const LIST_BYTES: usize = 16 << 20;

/// A new entry id: sorts by start time, unique across central instances.
pub fn new_id(now_millis: u64) -> String {
    let mut bytes = [0u8; 4];
    rand::rng().fill_bytes(&mut bytes);
    format!("{now_millis:013}-{}", hex::encode(bytes))
}

/// The entry of a session that starts now: who, from where, in which container, as whom, what.
pub fn begin(
    who: &crate::auth::Principal,
    via: &str,
    record: &caas_api::central::ContainerRecord,
    kind: caas_api::roles::SessionKind,
    user: Option<&str>,
    command: &[String],
) -> AuditEntry {
    let started_at = crate::now_millis();
    AuditEntry {
        id: new_id(started_at),
        pool: record.spec.pool.clone(),
        container: record.spec.name.clone(),
        kind,
        token_id: who.token_id().to_string(),
        role: who.role_name().to_string(),
        via: via.to_string(),
        user: user.unwrap_or("(image default)").to_string(),
        command: command.to_vec(),
        started_at,
        ended_at: 0,
        exit_code: None,
        ended_by: "running".into(),
        input: Vec::new(),
        input_truncated: false,
    }
}

/// Writes the entry as a session starts (the znode is new).
pub async fn record_start(
    store: &(dyn Store + 'static),
    entry: &AuditEntry,
) -> Result<(), CentralError> {
    let layout = store.layout();
    store.ensure(&layout.audit(&entry.pool)).await?;
    store
        .commit(
            &[Op::create(
                layout.audit_entry(&entry.pool, &entry.id),
                entry,
            )?],
            None,
        )
        .await?;
    Ok(())
}

/// Rewrites the entry when the session ends, then trims the pool's log now and then.
pub async fn record_end(
    store: &(dyn Store + 'static),
    entry: &AuditEntry,
) -> Result<(), CentralError> {
    let layout = store.layout();
    let path = layout.audit_entry(&entry.pool, &entry.id);
    match store.get_raw(&path).await? {
        Some((_, version)) => {
            store
                .commit(&[Op::set(path, entry, version)?], None)
                .await?
        }
        None => {
            store.ensure(&layout.audit(&entry.pool)).await?;
            store.commit(&[Op::create(path, entry)?], None).await?
        }
    }
    // One write in 64 looks at the log's length, so trimming costs little per session.
    if rand::rng().next_u32().is_multiple_of(64) {
        trim(store, &entry.pool).await?;
    }
    Ok(())
}

/// Removes the oldest entries beyond `MAX_AUDIT_ENTRIES`.
pub async fn trim(store: &(dyn Store + 'static), pool: &str) -> Result<usize, CentralError> {
    let layout = store.layout();
    let mut ids = store.children(&layout.audit(pool)).await?;
    if ids.len() <= MAX_AUDIT_ENTRIES {
        return Ok(0);
    }
    ids.sort();
    let excess = ids.len() - MAX_AUDIT_ENTRIES;
    for chunk in ids[..excess].chunks(100) {
        let ops: Vec<Op> = chunk
            .iter()
            .map(|id| Op::Delete {
                path: layout.audit_entry(pool, id),
                version: None,
            })
            .collect();
        store.commit(&ops, None).await?;
    }
    Ok(excess)
}

/// The pool's entries, oldest first, optionally of one container (or its replicas), the last
/// `limit`.
pub async fn list(
    store: &(dyn Store + 'static),
    pool: &str,
    container: Option<&str>,
    limit: usize,
    since_millis: u64,
) -> Result<Vec<AuditEntry>, CentralError> {
    let layout = store.layout();
    let mut ids = store.children(&layout.audit(pool)).await?;
    ids.sort();
    let mut out = Vec::new();
    let mut bytes = 0usize;
    // Newest first until `limit` match (or the answer holds LIST_BYTES of input), then
    // reversed.
    for id in ids.iter().rev() {
        if out.len() >= limit || bytes > LIST_BYTES {
            break;
        }
        let Some((entry, _)) = store
            .get::<AuditEntry>(&layout.audit_entry(pool, id))
            .await?
        else {
            continue;
        };
        let wanted = container.is_none_or(|c| {
            entry.container == c
                || entry
                    .container
                    .strip_prefix(c)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        });
        // Entries from before the pool was (re)created belong to an earlier tenant of the name.
        if wanted && entry.started_at >= since_millis {
            bytes += entry.input.iter().map(String::len).sum::<usize>()
                + entry.command.iter().map(String::len).sum::<usize>();
            out.push(entry);
        }
    }
    out.reverse();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(input: &[u8]) -> (Vec<String>, bool) {
        let mut r = InputRecorder::new();
        r.feed(input);
        r.finish()
    }

    #[test]
    fn lines_as_the_terminal_shows_them() {
        assert_eq!(record(b"whoami\rhostname\r").0, ["whoami", "hostname"]);
        // Backspace, Ctrl-U, arrows and a function key.
        assert_eq!(
            record(b"lss\x7f -l\r\x1b[A\x1b[1;5Cexit\x15echo ok\x1bOP\r").0,
            ["ls -l", "echo ok"]
        );
        // Ctrl-C ends a line, Ctrl-D on an empty line is noted, text without Enter kept.
        assert_eq!(
            record(b"sleep 100\x03\x04cat /etc/passwd").0,
            ["sleep 100^C", "^D", "cat /etc/passwd (unfinished)"]
        );
        // A backspace removes a whole UTF-8 character.
        assert_eq!(record("caf\u{e9}\x7fe\r".as_bytes()).0, ["cafe"]);
    }

    #[test]
    fn a_flood_is_cut_and_said_so() {
        let mut r = InputRecorder::new();
        for _ in 0..(MAX_AUDIT_LINES + 10) {
            r.feed(b"x\r");
        }
        r.feed(b"cat /etc/shadow\r");
        let (lines, truncated) = r.finish();
        assert!(truncated);
        assert_eq!(lines.len(), MAX_AUDIT_LINES + 1, "head, the note, tail");
        assert_eq!(lines[MAX_AUDIT_LINES / 2], "[... 11 lines not kept ...]");
        // What comes after a flood is kept.
        assert_eq!(lines.last().map(String::as_str), Some("cat /etc/shadow"));
    }

    #[test]
    fn ids_sort_by_time() {
        let a = new_id(5);
        let b = new_id(40);
        let c = new_id(1_700_000_000_000);
        assert!(a < b && b < c, "{a} {b} {c}");
    }
}
