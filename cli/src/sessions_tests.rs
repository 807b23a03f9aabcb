//! Tokens, audit, logs and interactive exec against a fake central (`caas_client::fake`): what
//! is sent, what is printed, exit statuses and errors.

use std::time::Duration;

use caas_api::terminal::{ClientMessage, TerminalStart};
use caas_client::fake::{json as ok, FakeCentral, Reply, Seen, TerminalFrame};
use caas_client::CentralClient;
use clap::Parser;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::render::error_text;
use crate::terminal::{exit_status, session, start_message, Io};
use crate::{Cli, CliError, ExecArgs};

/// Runs a whole command line against the fake central; returns stdout or the error.
async fn caas(fake: &FakeCentral, args: &[&str]) -> Result<(u8, String), CliError> {
    let mut cli = Cli::try_parse_from(
        ["caas", "--url", fake.url(), "--token", "t0k"]
            .into_iter()
            .chain(args.iter().copied()),
    )
    .unwrap();
    if !args.iter().any(|a| a.starts_with("--pool")) {
        cli.pool = None;
    }
    let mut out = Vec::new();
    let code = crate::run(&cli, &mut out).await?;
    Ok((code, String::from_utf8(out).unwrap()))
}

async fn stdout(fake: &FakeCentral, args: &[&str]) -> String {
    let (code, out) = caas(fake, args).await.unwrap();
    assert_eq!(code, 0, "{args:?}");
    out
}

fn token_routes(s: &Seen) -> (u16, String) {
    match (s.method.as_str(), s.path.as_str()) {
        ("POST", "/v1/pools/pool2/tokens") => {
            let role = s.body.as_ref().map_or(json!("ops"), |b| b["role"].clone());
            ok(
                201,
                json!({"token": "caas_secret", "id": "tok-0123456789ab", "role": role}),
            )
        }
        ("GET", "/v1/pools/pool2/tokens") => ok(
            200,
            json!([{"id": "tok-0123456789ab", "role": "developer", "created_at": 1_714_558_830,
                    "label": "alice"},
                   {"id": "tok-ffffffffffff", "role": "ops"}]),
        ),
        ("DELETE", "/v1/pools/pool2/tokens/tok-0123456789ab") => (204, String::new()),
        _ => ok(
            403,
            json!({"code": "forbidden", "message": "ops tokens are issued with the admin token"}),
        ),
    }
}

#[tokio::test]
async fn pool_token_create_ls_rm() {
    let fake = FakeCentral::start(token_routes).await.unwrap();
    let out = stdout(
        &fake,
        &[
            "pool",
            "token",
            "create",
            "pool2",
            "--role",
            "developer",
            "--label",
            "alice",
        ],
    )
    .await;
    assert!(
        out.starts_with(
            "token: caas_secret\nid:    tok-0123456789ab\nrole:  developer\nStore this token now: \
             it is shown only once"
        ),
        "{out}"
    );
    assert!(
        out.contains("caas pool token rm pool2 tok-0123456789ab"),
        "{out}"
    );

    // The old form still prints the token, now with its id and role.
    let out = stdout(&fake, &["pool", "token", "pool2"]).await;
    assert!(
        out.contains("token: caas_secret\n") && out.contains("role:  ops\n"),
        "{out}"
    );
    let answer: Value =
        serde_json::from_str(&stdout(&fake, &["pool", "token", "create", "pool2", "--json"]).await)
            .unwrap();
    assert_eq!(
        answer,
        json!({"token": "caas_secret", "id": "tok-0123456789ab", "role": "ops"})
    );

    let table = stdout(&fake, &["pool", "token", "ls", "pool2"]).await;
    assert_eq!(
        table,
        "ID                 ROLE        CREATED                LABEL\n\
         tok-0123456789ab   developer   2024-05-01T10:20:30Z   alice\n\
         tok-ffffffffffff   ops         -                      -\n"
    );
    let list: Value =
        serde_json::from_str(&stdout(&fake, &["-o", "json", "pool", "token", "ls", "pool2"]).await)
            .unwrap();
    assert_eq!(list[0]["label"], "alice");
    assert_eq!(
        stdout(&fake, &["pool", "token", "rm", "pool2", "tok-0123456789ab"]).await,
        "token tok-0123456789ab of pool pool2 revoked\n"
    );

    let err = caas(&fake, &["pool", "token", "create", "other"])
        .await
        .unwrap_err();
    assert_eq!((err.exit_code(), err.status()), (1, Some(403)));
    assert!(err.hint().unwrap().contains("developer token"), "{err:?}");

    let bodies: Vec<Option<Value>> = fake
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST")
        .map(|s| s.body)
        .collect();
    assert_eq!(
        bodies[..3],
        [
            Some(json!({"role": "developer", "label": "alice"})),
            Some(json!({"role": "ops"})),
            Some(json!({"role": "ops"})),
        ]
    );

    let sent = fake.seen().len();
    let long = "x".repeat(101);
    let err = caas(
        &fake,
        &["pool", "token", "create", "pool2", "--label", &long],
    )
    .await
    .unwrap_err();
    assert_eq!(err.exit_code(), 64);
    assert!(err.to_string().starts_with("--label: "), "{err}");
    assert_eq!(fake.seen().len(), sent, "a refused label is never sent");
}

fn audit_entries() -> Value {
    json!([
        {
            "id": "1714558830000-ab12", "pool": "pool2", "container": "web-1", "kind": "terminal",
            "token_id": "tok-0123456789ab", "role": "developer", "via": "console",
            "user": "admin", "command": [], "started_at": 1_714_558_830_000u64,
            "ended_at": 1_714_558_895_500u64, "ended_by": "idle-timeout",
            "input": ["cd /home/admin/logs", "tail -n 5 app.log"], "input_truncated": true
        },
        {
            "id": "1714558900000-cd34", "pool": "pool2", "container": "web-2", "kind": "exec",
            "token_id": "admin", "role": "admin", "via": "api", "user": "root",
            "command": ["sh", "-c", "echo 'hi there'"], "started_at": 1_714_558_900_000u64,
            "ended_at": 1_714_558_900_250u64, "exit_code": 3, "ended_by": "exit"
        }
    ])
}

#[tokio::test]
async fn audit_ls_shows_who_did_what_and_with_v_what_was_typed() {
    let fake = FakeCentral::start(|s| match s.path.as_str() {
        "/v1/pools/pool2/audit" => ok(200, audit_entries()),
        _ => ok(404, json!({"code": "not-found", "message": "no pool"})),
    })
    .await
    .unwrap();
    let table = stdout(&fake, &["--pool=pool2", "audit", "ls"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for needle in [
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
    ] {
        assert!(lines[0].contains(needle), "{needle}: {table}");
    }
    for needle in [
        "2024-05-01T10:20:30Z",
        "web-1",
        "terminal",
        "tok-0123456789ab/developer",
        "console",
        "(login shell)",
        "1m5s",
        "idle-timeout",
    ] {
        assert!(lines[1].contains(needle), "{needle}: {}", lines[1]);
    }
    for needle in [
        " admin ",
        "exec",
        "root",
        r#"sh -c 'echo '\''hi there'\'''"#,
        "250ms",
        " 3 ",
    ] {
        assert!(lines[2].contains(needle), "{needle}: {}", lines[2]);
    }
    assert!(!table.contains("tail -n 5"), "typed lines only with -v");

    let verbose = stdout(
        &fake,
        &[
            "--pool=pool2",
            "audit",
            "ls",
            "--container",
            "web-1",
            "--limit",
            "2",
            "-v",
        ],
    )
    .await;
    assert!(
        verbose.contains(
            "\n1714558830000-ab12  2024-05-01T10:20:30Z  tok-0123456789ab/developer  \
             admin@web-1: (login shell)\n  cd /home/admin/logs\n  tail -n 5 app.log\n  (more \
             was typed than the audit log keeps)\n"
        ),
        "{verbose}"
    );
    assert!(verbose.contains("  (no input)\n"), "{verbose}");

    let list: Value =
        serde_json::from_str(&stdout(&fake, &["--pool=pool2", "audit", "ls", "--json"]).await)
            .unwrap();
    assert_eq!(list[0]["input"][1], "tail -n 5 app.log");

    let queries: Vec<String> = fake.seen().into_iter().map(|s| s.query).collect();
    assert_eq!(queries, ["", "container=web-1&limit=2", ""]);
    let err = caas(&fake, &["audit", "ls"]).await.unwrap_err();
    assert_eq!(err.exit_code(), 64, "audit needs a pool");
}

#[tokio::test]
async fn container_logs_are_written_as_they_come() {
    let fake = FakeCentral::start_with(|s| match s.path.as_str() {
        "/v1/pools/pool2/containers/web-1/logs" => Reply::Chunks {
            status: 200,
            chunks: vec!["one\n".into(), "two\n".into(), "thr".into(), "ee\n".into()],
            pause: Duration::from_millis(20),
        },
        "/v1/pools/pool2/containers/web-1/log-files" => ok(
            200,
            json!([{"name": "app.log", "size": 2_621_440}, {"name": "gc.log", "size": 12}]),
        )
        .into(),
        _ => ok(
            404,
            json!({"code": "not-found", "message": "container web-9 not found in pool pool2"}),
        )
        .into(),
    })
    .await
    .unwrap();
    let p = "--pool=pool2";
    assert_eq!(
        stdout(&fake, &[p, "container", "logs", "web-1", "-f"]).await,
        "one\ntwo\nthree\n"
    );
    stdout(
        &fake,
        &[
            p,
            "container",
            "logs",
            "web-1",
            "--tail",
            "5",
            "--file",
            "app.log",
        ],
    )
    .await;
    assert_eq!(
        stdout(&fake, &[p, "container", "logs", "web-1", "--list-files"]).await,
        "NAME      SIZE\napp.log   2.5Mi\ngc.log    12\n"
    );
    let files: Value = serde_json::from_str(
        &stdout(
            &fake,
            &[p, "container", "logs", "web-1", "--list-files", "--json"],
        )
        .await,
    )
    .unwrap();
    assert_eq!(files[0], json!({"name": "app.log", "size": 2_621_440}));

    let err = caas(&fake, &[p, "container", "logs", "web-9"])
        .await
        .unwrap_err();
    assert_eq!(
        error_text(&err).lines().next(),
        Some("caas: container web-9 not found in pool pool2")
    );
    assert_eq!(err.exit_code(), 1);

    let sent = fake.seen().len();
    let err = caas(
        &fake,
        &[p, "container", "logs", "web-1", "--file", "../etc/passwd"],
    )
    .await
    .unwrap_err();
    assert_eq!(err.exit_code(), 64);
    assert!(err.to_string().starts_with("--file: "), "{err}");
    assert_eq!(fake.seen().len(), sent);

    let queries: Vec<String> = fake.seen().into_iter().map(|s| s.query).collect();
    assert_eq!(
        queries[..2],
        ["tail=100&follow=true", "tail=5&follow=false&file=app.log"]
    );
}

fn terminal_fake_handler(s: &Seen) -> Reply {
    match s.path.as_str() {
        "/v1/pools/pool2/containers/web-1/terminal" => Reply::Terminal,
        "/v1/pools/pool2/containers/plain/terminal" => ok(
            403,
            json!({"code": "forbidden",
                   "message": "plain is not a rich container, so it has no admin user"}),
        )
        .into(),
        _ => ok(404, json!({"code": "not-found", "message": "no container"})).into(),
    }
}

/// Input chunks as stdin would give them, then its end.
fn typed(chunks: &[&str]) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(chunks.len().max(1));
    for chunk in chunks {
        tx.try_send(chunk.as_bytes().to_vec()).unwrap();
    }
    rx
}

#[tokio::test]
async fn interactive_session_echoes_input_and_exits_with_the_command_s_code() {
    let fake = FakeCentral::start_with(terminal_fake_handler)
        .await
        .unwrap();
    let client = CentralClient::new(fake.url(), Some("t0k")).unwrap();
    let args = ExecArgs {
        name: "web-1".into(),
        interactive: true,
        tty: true,
        ..Default::default()
    };
    let start = start_message(&args, true, (132, 43)).unwrap();
    assert_eq!(
        start,
        TerminalStart {
            command: vec![],
            user: None,
            tty: true,
            cols: 132,
            rows: 43
        }
    );
    let io = Io {
        input: Some(typed(&["ls -l\r", "exit 3\r"])),
        ..Default::default()
    };
    let mut out = Vec::new();
    let code = session(&client, "pool2", "web-1", &start, io, &mut out)
        .await
        .unwrap();
    assert_eq!(code, 3);
    assert_eq!(String::from_utf8(out).unwrap(), "ls -l\rexit 3\r");
    assert_eq!(
        fake.terminal_frames(),
        [
            TerminalFrame::Message(ClientMessage::Start(start)),
            TerminalFrame::Input(b"ls -l\r".to_vec()),
            TerminalFrame::Input(b"exit 3\r".to_vec()),
        ]
    );
    assert_eq!(fake.seen()[0].auth.as_deref(), Some("Bearer t0k"));
}

#[tokio::test]
async fn without_a_tty_stdin_s_end_sends_nothing_more_and_output_is_read_to_the_exit() {
    let fake = FakeCentral::start_with(terminal_fake_handler)
        .await
        .unwrap();
    // -i without -t through the whole command line: stdin is the test's (nothing, or a
    // terminal), and the fake's command `exit 5` ends at once either way.
    let (code, out) = caas(
        &fake,
        &[
            "--pool=pool2",
            "container",
            "exec",
            "-i",
            "-u",
            "admin",
            "web-1",
            "--",
            "exit",
            "5",
        ],
    )
    .await
    .unwrap();
    assert_eq!((code, out.as_str()), (5, "bye\r\n"));
    let TerminalFrame::Message(ClientMessage::Start(start)) = &fake.terminal_frames()[0] else {
        panic!("{:?}", fake.terminal_frames());
    };
    assert_eq!(
        (start.tty, start.user.as_deref(), start.command.as_slice()),
        (
            false,
            Some("admin"),
            &["exit".to_string(), "5".to_string()][..]
        )
    );

    // Input that has already ended: nothing is sent, the output still comes.
    let client = CentralClient::new(fake.url(), Some("t0k")).unwrap();
    let start = TerminalStart {
        command: vec!["exit".into(), "0".into()],
        tty: false,
        ..Default::default()
    };
    let io = Io {
        input: Some(typed(&[])),
        ..Default::default()
    };
    let mut out = Vec::new();
    let code = session(&client, "pool2", "web-1", &start, io, &mut out)
        .await
        .unwrap();
    assert_eq!((code, out.as_slice()), (0, &b"bye\r\n"[..]));
}

#[tokio::test]
async fn terminal_errors_and_refusals_exit_1_with_a_hint() {
    let fake = FakeCentral::start_with(terminal_fake_handler)
        .await
        .unwrap();
    let client = CentralClient::new(fake.url(), Some("t0k")).unwrap();
    let io = Io {
        input: Some(typed(&["error idle-timeout\n"])),
        ..Default::default()
    };
    let err = session(
        &client,
        "pool2",
        "web-1",
        &TerminalStart::default(),
        io,
        &mut Vec::new(),
    )
    .await
    .unwrap_err();
    assert_eq!((err.exit_code(), err.code()), (1, Some("idle-timeout")));
    assert_eq!(
        error_text(&err).lines().next(),
        Some("caas: fake error idle-timeout")
    );
    assert!(err.hint().unwrap().contains("open another"), "{err:?}");

    // A refused upgrade is an ordinary API error.
    let err = caas(
        &fake,
        &[
            "--pool=pool2",
            "container",
            "exec",
            "-i",
            "plain",
            "--",
            "ls",
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(
        (err.exit_code(), err.status(), err.code()),
        (1, Some(403), Some("forbidden"))
    );
    assert_eq!(
        error_text(&err).lines().next(),
        Some("caas: plain is not a rich container, so it has no admin user")
    );
    let err = caas(
        &fake,
        &[
            "--pool=pool2",
            "container",
            "exec",
            "-i",
            "web-9",
            "--",
            "ls",
        ],
    )
    .await
    .unwrap_err();
    assert_eq!((err.exit_code(), err.status()), (1, Some(404)));
}

#[test]
fn tty_needs_a_terminal_and_bad_starts_are_refused_locally() {
    let args = ExecArgs {
        name: "web-1".into(),
        interactive: true,
        tty: true,
        ..Default::default()
    };
    let err = start_message(&args, false, (80, 24)).unwrap_err();
    assert_eq!(err.exit_code(), 64);
    assert!(
        err.to_string().starts_with("the input device is not a TTY"),
        "{err}"
    );
    let tty_only = ExecArgs {
        interactive: false,
        ..args.clone()
    };
    assert_eq!(
        start_message(&tty_only, false, (80, 24))
            .unwrap_err()
            .exit_code(),
        64
    );
    // -i alone works from a pipe and sends no size of its own.
    let piped = ExecArgs {
        tty: false,
        ..args.clone()
    };
    let start = start_message(&piped, false, (200, 50)).unwrap();
    assert_eq!((start.tty, start.cols, start.rows), (false, 80, 24));

    let bad_user = ExecArgs {
        user: Some("a b".into()),
        ..args.clone()
    };
    let err = start_message(&bad_user, true, (80, 24)).unwrap_err();
    assert_eq!(err.exit_code(), 64);
    assert!(err.to_string().starts_with("--user: "), "{err}");
    let empty_program = ExecArgs {
        command: vec![String::new()],
        ..args
    };
    let err = start_message(&empty_program, true, (80, 24)).unwrap_err();
    assert!(
        err.to_string().starts_with("the command after --: "),
        "{err}"
    );
}

#[test]
fn exit_codes_pass_through_like_docker() {
    assert_eq!(exit_status(0), 0);
    assert_eq!(exit_status(130), 130);
    assert_eq!(exit_status(255), 255);
    assert_eq!(exit_status(-1), 1, "killed before it reported a code");
    assert_eq!(exit_status(256), 1);
}
