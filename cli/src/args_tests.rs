//! Argument parsing: the command tree, and `container create` into a `CreateContainerRequest`.

use std::collections::BTreeMap;

use caas_api::central::CreateContainerRequest;
use caas_api::{Resources, RestartPolicy};
use clap::CommandFactory;

use super::*;

fn parse(args: &[&str]) -> Cli {
    let mut cli = Cli::try_parse_from(std::iter::once("caas").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    // Tests must not depend on the environment of whoever runs them.
    if !args.iter().any(|a| a.starts_with("--pool")) {
        cli.pool = None;
    }
    cli
}

fn create_args(extra: &[&str]) -> CreateArgs {
    let mut args = vec!["container", "create", "web", "--image", "busybox:1"];
    args.extend_from_slice(extra);
    match parse(&args).command {
        Command::Container(ContainerCommand::Create(args)) => *args,
        other => panic!("parsed as {other:?}"),
    }
}

fn request(extra: &[&str]) -> CreateContainerRequest {
    create_args(extra).to_request().unwrap()
}

fn refused(extra: &[&str]) -> String {
    let err = create_args(extra).to_request().unwrap_err();
    assert_eq!(err.exit_code(), 64, "{err}");
    err.to_string()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_command_tree_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn minimal_create_leaves_defaults_to_central() {
    let req = request(&[]);
    assert_eq!(
        req,
        CreateContainerRequest {
            name: "web".into(),
            image: "busybox:1".into(),
            ..Default::default()
        }
    );
    assert_eq!(req.restart, RestartPolicy::Always);
    assert_eq!(
        serde_json::to_value(&req).unwrap(),
        serde_json::json!({"name": "web", "image": "busybox:1", "resources": {}, "restart": "always"})
    );
}

#[test]
fn full_create_maps_every_flag() {
    let req = request(&[
        "--cpu",
        "500m",
        "--memory",
        "256Mi",
        "--pids",
        "100",
        "-e",
        "JAVA_OPTS=-Xmx1g -Dx=y",
        "--env",
        "EMPTY=",
        "-v",
        "/home/admin/logs",
        "--volume",
        "/data",
        "--restart",
        "on-failure",
        "--instances",
        "3",
        "-c",
        "rack==r1",
        "--constraint",
        "disk!=hdd",
        "--strategy",
        "binpack",
        "-l",
        "team=pay",
        "-l",
        "Hostname=core-1",
        "--",
        "sh",
        "-c",
        "echo hi; sleep 1",
    ]);
    assert_eq!(
        req,
        CreateContainerRequest {
            name: "web".into(),
            image: "busybox:1".into(),
            command: vec!["sh".into(), "-c".into(), "echo hi; sleep 1".into()],
            env: map(&[("JAVA_OPTS", "-Xmx1g -Dx=y"), ("EMPTY", "")]),
            resources: Resources {
                cpu: Some("500m".into()),
                memory: Some("256Mi".into()),
                pids: Some(100),
            },
            restart: RestartPolicy::OnFailure,
            labels: map(&[("team", "pay")]),
            volumes: vec!["/home/admin/logs".into(), "/data".into()],
            hostname: Some("core-1".into()),
            instances: Some(3),
            constraints: vec!["rack==r1".into(), "disk!=hdd".into()],
            strategy: Some("binpack".into()),
            rich: false,
            health_check: None,
        }
    );
}

#[test]
fn env_values_keep_their_equals_signs_and_later_repeats_win() {
    let req = request(&["-e", "A=b=c", "-e", "X=1", "-e", "X=2"]);
    assert_eq!(req.env, map(&[("A", "b=c"), ("X", "2")]));
}

#[test]
fn env_and_labels_need_key_equals_value() {
    let msg = refused(&["-e", "FOO"]);
    assert!(
        msg.contains("-e \"FOO\"") && msg.contains("KEY=VALUE"),
        "{msg}"
    );
    assert!(refused(&["-e", "=x"]).contains("key before '=' is empty"));
    let msg = refused(&["-l", "team"]);
    assert!(msg.contains("-l \"team\""), "{msg}");
}

#[test]
fn hostname_label_sets_the_hostname_in_any_case() {
    for key in ["Hostname", "hostname", "HOSTNAME"] {
        let req = request(&["-l", &format!("{key}=core-1"), "-l", "a=b"]);
        assert_eq!(req.hostname.as_deref(), Some("core-1"));
        assert_eq!(req.labels, map(&[("a", "b")]), "not a container label");
    }
    let req = request(&["--hostname", "h1", "-l", "Hostname=h1"]);
    assert_eq!(req.hostname.as_deref(), Some("h1"));
    let msg = refused(&["--hostname", "h1", "-l", "Hostname=h2"]);
    assert!(msg.contains("disagree"), "{msg}");
}

#[test]
fn ip_label_is_refused_until_networks_exist() {
    for key in ["Ip", "ip", "IP"] {
        let msg = refused(&["-l", &format!("{key}=192.168.31.3")]);
        assert!(msg.contains("not supported yet"), "{msg}");
    }
}

#[test]
fn bad_volumes_constraints_and_quantities_name_the_flag() {
    let msg = refused(&["-v", "data"]);
    assert!(msg.starts_with("-v:") && msg.contains("\"/data\""), "{msg}");
    let msg = refused(&["-c", "rack=r1"]);
    assert!(msg.starts_with("-c:") && msg.contains("=="), "{msg}");
    let msg = refused(&["--cpu", "lots"]);
    assert!(msg.starts_with("--cpu:"), "{msg}");
    let msg = refused(&["--memory", "1Mi"]);
    assert!(msg.starts_with("--memory:") && msg.contains("6Mi"), "{msg}");
    let msg = refused(&["--pids", "0"]);
    assert!(msg.starts_with("--pids:"), "{msg}");
}

#[test]
fn clap_refuses_what_it_can_with_exit_code_2() {
    let cases: &[&[&str]] = &[
        &["container", "create", "web"],
        &[
            "container",
            "create",
            "web",
            "--image",
            "i",
            "--instances",
            "0",
        ],
        &[
            "container",
            "create",
            "web",
            "--image",
            "i",
            "--instances",
            "101",
        ],
        &[
            "container",
            "create",
            "web",
            "--image",
            "i",
            "--restart",
            "sometimes",
        ],
        &[
            "container",
            "create",
            "web",
            "--image",
            "i",
            "--strategy",
            "random",
        ],
        &["container", "create", "web", "--image", "i", "sh"],
        &["-o", "yaml", "node", "ls"],
        &["node", "frobnicate"],
    ];
    for args in cases {
        let err = Cli::try_parse_from(std::iter::once("caas").chain(args.iter().copied()))
            .expect_err(&format!("{args:?} should be refused"));
        assert_eq!(err.exit_code(), 2, "{args:?}");
    }
}

#[test]
fn global_options_go_before_or_after_the_command() {
    let before = parse(&[
        "--pool=pool2",
        "-o",
        "json",
        "--url",
        "http://c:1",
        "container",
        "ls",
    ]);
    let after = parse(&[
        "container",
        "ls",
        "--pool",
        "pool2",
        "--output=json",
        "--url=http://c:1",
    ]);
    for cli in [before, after] {
        assert_eq!(cli.require_pool().unwrap(), "pool2");
        assert_eq!(cli.output, OutputFormat::Json);
        assert_eq!(cli.url, "http://c:1");
        assert!(matches!(
            cli.command,
            Command::Container(ContainerCommand::Ls)
        ));
    }
}

#[test]
fn container_commands_need_a_pool() {
    let cli = parse(&["container", "ls"]);
    let err = cli.require_pool().unwrap_err();
    assert_eq!(err.exit_code(), 64);
    let msg = err.to_string();
    assert!(msg.contains("--pool") && msg.contains("CAAS_POOL"), "{msg}");
    let cli = parse(&["--pool", " ", "container", "ls"]);
    assert!(cli.require_pool().is_err(), "a blank pool is no pool");
}

#[test]
fn other_commands_parse() {
    let cli = parse(&[
        "pool",
        "create",
        "p1",
        "--ssh-key",
        "ssh-ed25519 AAA a@b",
        "--ssh-key",
        "k2",
    ]);
    match cli.command {
        Command::Pool(PoolCommand::Create { name, ssh_keys }) => {
            assert_eq!(name, "p1");
            assert_eq!(ssh_keys, ["ssh-ed25519 AAA a@b", "k2"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse(&["pool", "list"]).command,
        Command::Pool(PoolCommand::Ls)
    ));
    assert!(matches!(
        parse(&["node", "inspect", "n1"]).command,
        Command::Node(NodeCommand::Inspect { id }) if id == "n1"
    ));
    assert!(matches!(
        parse(&["container", "rm", "web", "--purge-data"]).command,
        Command::Container(ContainerCommand::Rm { name, purge_data: true }) if name == "web"
    ));
    assert!(matches!(
        parse(&["container", "reschedule", "web", "--force"]).command,
        Command::Container(ContainerCommand::Reschedule { name, force: true }) if name == "web"
    ));
    if std::env::var_os("CAAS_URL").is_none() {
        assert_eq!(parse(&["node", "ls"]).url, DEFAULT_URL);
    }
}

#[test]
fn help_teaches_with_examples() {
    let top = Cli::command().render_long_help().to_string();
    assert!(
        top.contains("Examples:") && top.contains("container create"),
        "{top}"
    );
    let mut cmd = Cli::command();
    let create = cmd
        .find_subcommand_mut("container")
        .and_then(|c| c.find_subcommand_mut("create"))
        .unwrap()
        .render_long_help()
        .to_string();
    for needle in ["Examples:", "Hostname=", "Ip=", "--purge-data", "-- sh -c"] {
        assert!(create.contains(needle), "{needle} missing from:\n{create}");
    }
}

#[test]
fn health_flags_become_a_check_and_bad_ones_are_refused() {
    use caas_api::Probe;
    let check = request(&[
        "--rich",
        "--health-http",
        "8080/ready",
        "--health-interval",
        "2",
    ])
    .health_check
    .unwrap();
    assert_eq!(
        check.probe,
        Probe::Http {
            port: 8080,
            path: "/ready".into()
        }
    );
    // A short interval brings the default timeout down with it.
    assert_eq!((check.interval_seconds, check.timeout_seconds), (2, 2));
    let cmd = request(&["--health-cmd", "test -f /tmp/ok"])
        .health_check
        .unwrap();
    assert_eq!(
        cmd.probe,
        Probe::Command(vec![
            "/bin/sh".into(),
            "-c".into(),
            "test -f /tmp/ok".into()
        ])
    );
    assert!(refused(&["--health-http", "web/x"]).contains("PORT or PORT/PATH"));
    assert!(refused(&["--health-interval", "5"]).contains("need a probe"));
    assert!(refused(&[
        "--health-tcp",
        "80",
        "--health-timeout",
        "9",
        "--health-interval",
        "3"
    ])
    .contains("timeout_seconds"));
}
