//! The clients of central link no server code: neither the `caas` CLI nor dockerfile-gen may
//! depend (normally, i.e. in what they ship) on `caas-central`, `caas-zk`, warp or
//! zookeeper-client. Checked with `cargo tree` on the workspace's lock file.

#![allow(clippy::expect_used)]

use std::process::Command;

const SERVER_CRATES: [&str; 4] = ["caas-central", "caas-zk", "warp", "zookeeper-client"];

/// The package names in `package`'s normal dependency tree.
fn normal_deps(package: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = Command::new(cargo)
        .args([
            "tree", "--locked", "-p", package, "-e", "normal", "--prefix", "none", "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_cli_and_dockerfile_gen_link_no_server_code() {
    for package in ["caas-client", "caas-cli", "caas-dockerfile-gen"] {
        let deps = normal_deps(package);
        assert!(
            deps.iter().any(|d| d == "caas-api"),
            "{package}: the tree was not read: {deps:?}"
        );
        assert!(
            package == "caas-client" || deps.iter().any(|d| d == "caas-client"),
            "{package} does not use caas-client"
        );
        let server: Vec<&String> = deps
            .iter()
            .filter(|d| SERVER_CRATES.contains(&d.as_str()))
            .collect();
        assert!(server.is_empty(), "{package} links {server:?}");
    }
}
