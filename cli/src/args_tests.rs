//! Argument parsing: the command tree, and `container create` into a `CreateContainerRequest`.

use std::collections::BTreeMap;

use caas_api::central::CreateContainerRequest;
use caas_api::network::{CreateNetworkRequest, NetworkAttachment};
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
fn read_only_asks_for_a_read_only_root() {
    assert!(request(&["--read-only"]).read_only_root);
    assert!(!request(&[]).read_only_root);
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
            networks: vec![],
            read_only_root: false,
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

fn attach(network: &str, service: Option<&str>, ip: Option<&str>) -> NetworkAttachment {
    NetworkAttachment {
        network: network.into(),
        service: service.map(String::from),
        ip: ip.map(String::from),
    }
}

#[test]
fn public_services_join_networks_in_order() {
    let req = request(&["--public-service=web.myvxlan", "--public-service", ".back"]);
    assert_eq!(
        req.networks,
        [
            attach("myvxlan", Some("web"), None),
            attach("back", None, None)
        ]
    );
    assert_eq!(
        serde_json::to_value(&req).unwrap()["networks"],
        serde_json::json!([{"network": "myvxlan", "service": "web"}, {"network": "back"}])
    );
    assert!(request(&[]).networks.is_empty());
}

#[test]
fn ip_label_in_any_case_sets_the_address_of_the_one_network() {
    for key in ["Ip", "ip", "IP"] {
        let req = request(&[
            "--public-service=.myvxlan",
            "-l",
            &format!("{key}=192.168.31.3"),
            "-l",
            "Hostname=core-1",
        ]);
        assert_eq!(
            req.networks,
            [attach("myvxlan", None, Some("192.168.31.3"))]
        );
        assert_eq!(req.hostname.as_deref(), Some("core-1"));
        assert!(req.labels.is_empty(), "Ip is no container label: {req:?}");
    }
    // The seed writes both spellings; they agree.
    let req = request(&[
        "--public-service=.n",
        "-l",
        "Ip=10.0.0.3",
        "-l",
        "ip=10.0.0.3",
        "--instances",
        "1",
    ]);
    assert_eq!(req.networks, [attach("n", None, Some("10.0.0.3"))]);
    // NETWORK:IP works with one network too.
    let req = request(&["--public-service=.n", "-l", "Ip=n:10.0.0.3"]);
    assert_eq!(req.networks, [attach("n", None, Some("10.0.0.3"))]);
}

#[test]
fn ip_label_names_the_network_when_there_are_several() {
    let req = request(&[
        "--public-service=web.front",
        "--public-service=.back",
        "-l",
        "ip=back:10.2.0.5",
        "-l",
        "Ip=front:10.1.0.5",
    ]);
    assert_eq!(
        req.networks,
        [
            attach("front", Some("web"), Some("10.1.0.5")),
            attach("back", None, Some("10.2.0.5"))
        ]
    );
    // One of several may be left to central.
    let req = request(&[
        "--public-service=.a",
        "--public-service=.b",
        "-l",
        "Ip=b:10.0.0.9",
    ]);
    assert_eq!(
        req.networks,
        [attach("a", None, None), attach("b", None, Some("10.0.0.9"))]
    );
}

#[test]
fn bad_networks_and_addresses_are_refused_with_the_fix() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--public-service=myvxlan"],
            &["[SERVICE].NETWORK", "--public-service=.myvxlan"],
        ),
        (&["--public-service=web."], &["network", "is empty"]),
        (&["--public-service=a.b.c"], &["network", "'.'"]),
        (&["--public-service=Web.n"], &["service", "'W'"]),
        (
            &["--public-service=.n", "--public-service=x.n"],
            &["given twice", "one interface per network"],
        ),
        (
            &["-l", "Ip=10.0.0.3"],
            &["needs a network", "--public-service=.NETWORK"],
        ),
        (
            &[
                "--public-service=.a",
                "--public-service=.b",
                "-l",
                "Ip=10.0.0.3",
            ],
            &["2 networks (a, b)", "-l Ip=NETWORK:10.0.0.3"],
        ),
        (
            &["--public-service=.a", "-l", "Ip=c:10.0.0.3"],
            &["does not join network c", "it joins a"],
        ),
        (
            &["--public-service=.a", "-l", "Ip=10.0.0.300"],
            &["\"10.0.0.300\" is not an IPv4 address"],
        ),
        (
            &[
                "--public-service=.a",
                "-l",
                "Ip=10.0.0.3",
                "-l",
                "ip=10.0.0.4",
            ],
            &["two addresses for network a", "10.0.0.3 and 10.0.0.4"],
        ),
        (
            &[
                "--public-service=.a",
                "-l",
                "Ip=10.0.0.3",
                "--instances",
                "3",
            ],
            &["--instances 3", "leave out -l Ip"],
        ),
        (
            &["-l", "Hostname=a", "-l", "hostname=b"],
            &["-l Hostname is given twice (a and b)"],
        ),
    ];
    for (extra, words) in cases {
        let msg = refused(extra);
        for w in *words {
            assert!(msg.contains(w), "{extra:?}: {w:?} missing from {msg:?}");
        }
    }
    let nine: Vec<String> = (0..9).map(|i| format!("--public-service=.n{i}")).collect();
    let nine: Vec<&str> = nine.iter().map(String::as_str).collect();
    assert!(refused(&nine).contains("at most 8 networks"));
}

fn network_create(extra: &[&str]) -> Result<CreateNetworkRequest, CliError> {
    let mut args = vec!["network", "create", "myvxlan"];
    args.extend_from_slice(extra);
    match parse(&args).command {
        Command::Network(NetworkCommand::Create(args)) => args.to_request(),
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn network_create_takes_options_in_any_case_and_a_bare_subnet() {
    let want = CreateNetworkRequest {
        name: "myvxlan".into(),
        driver: "vxlan".into(),
        subnet: "192.168.0.0/19".into(),
        gateway: "192.168.31.254".into(),
        vni: None,
        vlan_id: None,
        arp_proxy: None,
        mac_nat: None,
    };
    let ops = network_create(&[
        "-d",
        "vxlan",
        "-l",
        "Subnet=192.168.0.0/19",
        "-l",
        "Gateway=192.168.31.254",
    ])
    .unwrap();
    assert_eq!(ops, want);
    let terse = network_create(&[
        "-l",
        "192.168.0.0/19",
        "--label",
        "GATEWAY=192.168.31.254",
        "-l",
        "subnet=192.168.0.0/19",
    ])
    .unwrap();
    assert_eq!(terse, want, "vxlan by default; an agreeing repeat is fine");
    let bridge = network_create(&[
        "-d",
        "Bridge",
        "-l",
        "subnet=10.9.0.0/24",
        "-l",
        "gateway=10.9.0.1",
        "-l",
        "vni=4200",
    ])
    .unwrap();
    assert_eq!(bridge.driver, "bridge");
    assert_eq!(bridge.vni, Some(4200));
    assert_eq!(
        serde_json::to_value(&bridge).unwrap(),
        serde_json::json!({"name": "myvxlan", "driver": "bridge", "subnet": "10.9.0.0/24",
                           "gateway": "10.9.0.1", "vni": 4200})
    );
}

#[test]
fn network_create_refuses_locally_naming_the_flag_and_the_fix() {
    let gw = "Gateway=10.0.0.1";
    let cases: &[(&[&str], &[&str])] = &[
        (&["-l", gw], &["needs a subnet", "-l Subnet=CIDR"]),
        (
            &["-l", "10.0.0.0/24"],
            &["needs a gateway", "-l Gateway=IP"],
        ),
        (
            &["-l", "10.0.0.0/24", "-l", gw, "-l", "Mtu=1400"],
            &["unknown key \"Mtu\"", "Subnet=CIDR", "Vni=N"],
        ),
        (&["-l", "vxlan", "-l", gw], &["-l \"vxlan\"", "KEY=VALUE"]),
        (
            &["-l", "10.0.0.0/24", "-l", "Subnet=10.1.0.0/24", "-l", gw],
            &["-l Subnet is given twice"],
        ),
        (
            &["-l", "10.0.0.1/24", "-l", gw],
            &["-l Subnet=10.0.0.1/24", "host bits"],
        ),
        (
            &["-l", "10.0.0.0/24", "-l", "Gateway=10.0.1.1"],
            &["-l Gateway=10.0.1.1", "outside"],
        ),
        (
            &["-l", "10.0.0.0/24", "-l", gw, "-l", "Vni=0"],
            &["-l Vni=0", "out of range"],
        ),
        (
            &["-l", "10.0.0.0/24", "-l", gw, "-l", "Vni=x"],
            &["-l Vni=x", "not a number", "leave -l Vni out"],
        ),
    ];
    for (extra, words) in cases {
        let err = network_create(extra).unwrap_err();
        assert_eq!(err.exit_code(), 64, "{extra:?}");
        let msg = err.to_string();
        for w in *words {
            assert!(msg.contains(w), "{extra:?}: {w:?} missing from {msg:?}");
        }
    }
    let mut cli = parse(&["network", "create", "My_Net", "-l", "10.0.0.0/24", "-l", gw]);
    let Command::Network(NetworkCommand::Create(args)) = &mut cli.command else {
        panic!("{cli:?}")
    };
    assert!(args
        .to_request()
        .unwrap_err()
        .to_string()
        .starts_with("network name: "));
    let err = Cli::try_parse_from(["caas", "network", "create", "n", "-d", "macvlan"]).unwrap_err();
    assert_eq!(err.exit_code(), 2, "clap refuses an unknown driver");
}

#[test]
fn network_commands_parse_with_their_aliases() {
    for (args, want) in [
        (&["network", "ls"][..], "ls"),
        (&["network", "list"], "ls"),
        (&["network", "inspect", "myvxlan"], "inspect"),
        (&["network", "rm", "myvxlan"], "rm"),
        (&["network", "remove", "myvxlan"], "rm"),
    ] {
        let got = match parse(args).command {
            Command::Network(NetworkCommand::Ls) => "ls",
            Command::Network(NetworkCommand::Inspect { name }) if name == "myvxlan" => "inspect",
            Command::Network(NetworkCommand::Rm { name }) if name == "myvxlan" => "rm",
            other => panic!("{args:?}: {other:?}"),
        };
        assert_eq!(got, want, "{args:?}");
    }
    let err = parse(&["network", "ls"]).require_pool().unwrap_err();
    assert!(
        err.to_string().contains("network commands need a pool"),
        "{err}"
    );
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
    for needle in [
        "Examples:",
        "Hostname=",
        "Ip=NETWORK:ADDRESS",
        "--public-service=.myvxlan",
        "--purge-data",
        "-- sh -c",
    ] {
        assert!(create.contains(needle), "{needle} missing from:\n{create}");
    }
    assert!(
        !create.contains("not supported yet"),
        "networks are supported now:\n{create}"
    );
    // Every continued example line ends in a backslash the shell sees.
    let examples: Vec<&str> = create
        .split_once("Examples:\n")
        .and_then(|(_, rest)| rest.split("\n\n").next())
        .unwrap()
        .lines()
        .collect();
    assert!(examples.len() > 6, "{examples:?}");
    for pair in examples.windows(2) {
        let continued = !pair[1].trim_start().starts_with("caas ");
        assert_eq!(
            pair[0].ends_with(" \\"),
            continued,
            "{:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
    let network = cmd
        .find_subcommand_mut("network")
        .and_then(|c| c.find_subcommand_mut("create"))
        .unwrap()
        .render_long_help()
        .to_string();
    for needle in [
        "Examples:",
        "-d vxlan",
        "Subnet=CIDR",
        "Gateway=IP",
        "Vni=N",
    ] {
        assert!(
            network.contains(needle),
            "{needle} missing from:\n{network}"
        );
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

#[test]
fn vlan_network_create_as_ops_type_it() {
    let req = network_create(&[
        "-d",
        "vlan",
        "-l",
        "10.209.164.0/22",
        "-l",
        "Gateway=10.209.164.1",
        "-l",
        "VlanId=164",
        "-l",
        "arpproxy=TRUE",
        "-l",
        "MacNat=false",
    ])
    .unwrap();
    assert_eq!(
        serde_json::to_value(&req).unwrap(),
        serde_json::json!({"name": "myvxlan", "driver": "vlan", "subnet": "10.209.164.0/22",
                           "gateway": "10.209.164.1", "vlan_id": 164, "arp_proxy": true,
                           "mac_nat": false})
    );
    let access =
        network_create(&["-d", "vlan", "-l", "10.0.0.0/24", "-l", "Gateway=10.0.0.1"]).unwrap();
    assert_eq!(access.vlan_id, None, "no VlanId: an access port");
}

#[test]
fn vlan_options_are_refused_locally_naming_the_flag() {
    let base = ["-l", "10.209.164.0/22", "-l", "Gateway=10.209.164.1"];
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["-d", "vlan", "-l", "VlanId=0"],
            &["-l VlanId=0", "1..=4094"],
        ),
        (
            &["-d", "vlan", "-l", "VlanId=4095"],
            &["-l VlanId=4095", "out of range"],
        ),
        (
            &["-d", "vlan", "-l", "VlanId=abc"],
            &["-l VlanId=abc", "not a number"],
        ),
        (
            &["-d", "vlan", "-l", "ArpProxy=yes"],
            &["-l ArpProxy=yes", "true or false"],
        ),
        (
            &["-d", "vlan", "-l", "MacNat=1"],
            &["-l MacNat=1", "true or false"],
        ),
        (
            &["-d", "vxlan", "-l", "MacNat=true"],
            &["-l MacNat", "vlan networks only"],
        ),
        (
            &["-d", "bridge", "-l", "VlanId=7"],
            &["-l VlanId", "vlan networks only"],
        ),
        (
            &["-d", "vlan", "-l", "Subnet=10.209.168.0/22"],
            &["-l Subnet is given twice"],
        ),
    ];
    for (extra, words) in cases {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(extra);
        let err = network_create(&args).unwrap_err().to_string();
        for w in *words {
            assert!(err.contains(w), "{args:?}: {err:?} lacks {w:?}");
        }
    }
}

fn exec_args(args: &[&str]) -> ExecArgs {
    let mut all = vec!["container", "exec"];
    all.extend_from_slice(args);
    match parse(&all).command {
        Command::Container(ContainerCommand::Exec(args)) => args,
        other => panic!("parsed as {other:?}"),
    }
}

fn parse_error(args: &[&str]) -> clap::Error {
    Cli::try_parse_from(std::iter::once("caas").chain(args.iter().copied()))
        .expect_err(&format!("{args:?} should be refused"))
}

#[test]
fn exec_takes_docker_s_interactive_and_tty_flags() {
    for flags in [
        &["-it"][..],
        &["-ti"],
        &["-i", "-t"],
        &["--interactive", "--tty"],
    ] {
        let mut args = flags.to_vec();
        args.extend(["web-1", "--", "bash"]);
        let exec = exec_args(&args);
        assert!(exec.interactive && exec.tty, "{flags:?}");
        assert_eq!(exec.command, ["bash"]);
    }
    let exec = exec_args(&["-i", "web-1", "--", "sh", "-c", "cat > /tmp/x"]);
    assert!(exec.interactive && !exec.tty);
    let exec = exec_args(&["-t", "web-1", "--", "top"]);
    assert!(!exec.interactive && exec.tty);
    let exec = exec_args(&["-itu", "root", "web-1"]);
    assert!(exec.interactive && exec.tty);
    assert_eq!(exec.user.as_deref(), Some("root"));
    assert!(
        exec.command.is_empty(),
        "no command: the agent's login shell"
    );
    let exec = exec_args(&["web-1", "-it", "--user=admin"]);
    assert_eq!(
        (exec.interactive, exec.tty, exec.user.as_deref()),
        (true, true, Some("admin"))
    );

    // Without -i/-t: today's exec, a command is required and --timeout applies.
    let exec = exec_args(&["web-1", "--timeout", "5", "--", "ls"]);
    assert_eq!(
        (exec.interactive, exec.tty, exec.timeout),
        (false, false, 5)
    );
    assert_eq!(exec_args(&["web-1", "--", "ls"]).timeout, 60);
    for args in [
        &["container", "exec", "web-1"][..],
        &["container", "exec", "-it", "web-1", "--timeout", "5"],
        &["container", "exec", "-x", "web-1", "--", "ls"],
    ] {
        assert_eq!(parse_error(args).exit_code(), 2, "{args:?}");
    }
}

#[test]
fn pool_token_keeps_its_old_form_and_gains_create_ls_rm() {
    let token = |args: &[&str]| {
        let mut all = vec!["pool", "token"];
        all.extend_from_slice(args);
        match parse(&all).command {
            Command::Pool(PoolCommand::Token(args)) => args.command(),
            other => panic!("parsed as {other:?}"),
        }
    };
    let ops = TokenCreateArgs {
        role: RoleArg::Ops,
        label: None,
    };
    assert_eq!(
        token(&["pool2"]),
        TokenCommand::Create {
            pool: "pool2".into(),
            args: ops.clone()
        },
        "`caas pool token POOL` still issues an ops token"
    );
    assert_eq!(
        token(&["create", "pool2"]),
        TokenCommand::Create {
            pool: "pool2".into(),
            args: ops
        }
    );
    let developer = TokenCreateArgs {
        role: RoleArg::Developer,
        label: Some("alice".into()),
    };
    assert_eq!(
        token(&["create", "pool2", "--role", "developer", "--label", "alice"]),
        TokenCommand::Create {
            pool: "pool2".into(),
            args: developer.clone()
        }
    );
    assert_eq!(
        token(&["pool2", "--role=developer", "--label=alice"]),
        TokenCommand::Create {
            pool: "pool2".into(),
            args: developer
        }
    );
    for ls in ["ls", "list"] {
        assert_eq!(
            token(&[ls, "pool2"]),
            TokenCommand::Ls {
                pool: "pool2".into()
            }
        );
    }
    assert_eq!(
        token(&["rm", "pool2", "tok-0123456789ab"]),
        TokenCommand::Rm {
            pool: "pool2".into(),
            id: "tok-0123456789ab".into()
        }
    );
    assert_eq!(
        caas_api::roles::Role::from(RoleArg::Developer),
        caas_api::roles::Role::Developer
    );

    let err = parse_error(&["pool", "token", "create", "pool2", "--role", "root"]);
    assert_eq!(err.exit_code(), 2);
    assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue);
    let text = err.to_string();
    assert!(text.contains("[possible values: ops, developer]"), "{text}");
    for args in [
        &["pool", "token"][..],
        &["pool", "token", "rm", "pool2"],
        &["pool", "token", "ls"],
    ] {
        assert_eq!(parse_error(args).exit_code(), 2, "{args:?}");
    }
}

#[test]
fn audit_and_logs_parse() {
    match parse(&["--pool=p", "audit", "ls"]).command {
        Command::Audit(AuditCommand::Ls {
            container: None,
            limit: None,
            verbose: false,
        }) => {}
        other => panic!("{other:?}"),
    }
    match parse(&[
        "audit",
        "list",
        "--container",
        "web-1",
        "--limit",
        "20",
        "-v",
    ])
    .command
    {
        Command::Audit(AuditCommand::Ls {
            container,
            limit,
            verbose,
        }) => assert_eq!(
            (container.as_deref(), limit, verbose),
            (Some("web-1"), Some(20), true)
        ),
        other => panic!("{other:?}"),
    }
    for limit in ["0", "5001", "x"] {
        assert_eq!(
            parse_error(&["audit", "ls", "--limit", limit]).exit_code(),
            2,
            "{limit}"
        );
    }

    let logs = |args: &[&str]| {
        let mut all = vec!["container", "logs"];
        all.extend_from_slice(args);
        match parse(&all).command {
            Command::Container(ContainerCommand::Logs(args)) => args,
            other => panic!("parsed as {other:?}"),
        }
    };
    assert_eq!(
        logs(&["web-1"]),
        LogsArgs {
            name: "web-1".into(),
            tail: 100,
            ..Default::default()
        }
    );
    assert_eq!(
        logs(&["web-1", "-f", "--tail", "20", "--file", "app.log"]),
        LogsArgs {
            name: "web-1".into(),
            follow: true,
            tail: 20,
            file: Some("app.log".into()),
            list_files: false,
        }
    );
    assert!(logs(&["web-1", "--follow"]).follow);
    assert!(logs(&["web-1", "--list-files"]).list_files);
    for args in [
        &["container", "logs", "web-1", "--list-files", "-f"][..],
        &[
            "container",
            "logs",
            "web-1",
            "--list-files",
            "--file",
            "a.log",
        ],
        &["container", "logs", "web-1", "--tail", "-1"],
        &["container", "logs", "web-1", "--tail", "100001"],
        &["container", "logs"],
    ] {
        assert_eq!(parse_error(args).exit_code(), 2, "{args:?}");
    }
}

#[test]
fn json_flag_is_short_for_output_json() {
    assert!(parse(&["--json", "node", "ls"]).json());
    assert!(parse(&["node", "ls", "-o", "json"]).json());
    assert!(parse(&["audit", "ls", "--json"]).json());
    assert!(!parse(&["node", "ls"]).json());
}

#[test]
fn new_commands_teach_with_examples() {
    let mut cmd = Cli::command();
    let mut help = |path: &[&str]| {
        let mut sub = &mut cmd;
        for name in path {
            sub = sub.find_subcommand_mut(name).unwrap();
        }
        sub.render_long_help().to_string()
    };
    let exec = help(&["container", "exec"]);
    for needle in ["exec -it web-1", "-u root", "-i web-1", "audit ls", "not"] {
        assert!(exec.contains(needle), "{needle} missing from:\n{exec}");
    }
    let logs = help(&["container", "logs"]);
    for needle in ["-f --tail 20", "--list-files", "--file app.err.log"] {
        assert!(logs.contains(needle), "{needle} missing from:\n{logs}");
    }
    let token = help(&["pool", "token"]);
    for needle in [
        "--role developer",
        "token ls pool2",
        "token rm pool2",
        "developer:",
    ] {
        assert!(token.contains(needle), "{needle} missing from:\n{token}");
    }
    let audit = help(&["audit", "ls"]);
    for needle in ["--container web-1", "-v", "passwords"] {
        assert!(audit.contains(needle), "{needle} missing from:\n{audit}");
    }
}
