//! `supervisor-images/build`: lists what it makes, builds every image (a no-op when they are
//! up to date), and a second run changes nothing; no image carries SSH host keys, and each
//! carries the hash of its inputs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::process::Command;

use caas_tests::sofa;

fn image_id(docker: &str) -> String {
    let out = Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Id}}", docker])
        .output()
        .unwrap();
    assert!(out.status.success(), "{docker} missing: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_second_build_changes_nothing_and_images_keep_the_contract() {
    let list = Command::new(sofa::build_script())
        .arg("--list")
        .output()
        .unwrap();
    let names: Vec<String> = String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        names,
        [
            "caas/rootfs",
            "caas/sofa-base",
            "caas/sofa-jdk17",
            "caas/sofa-tomcat",
            "caas/sofa-jdk17-build",
            "caas/pause",
            "caas/data"
        ]
    );

    sofa::ensure_images().unwrap();
    let before: Vec<String> = names
        .iter()
        .map(|n| image_id(&format!("{n}:latest")))
        .collect();
    let agent = caas_tests::binaries::agent().unwrap();
    let again = Command::new(sofa::build_script())
        .env("CAAS_AGENT_BIN", &agent)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&again.stdout).to_string()
        + &String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{text}");
    for name in &names[..5] {
        assert!(
            text.contains(&format!("{name}:")) && text.contains("up to date"),
            "{name} rebuilt:\n{text}"
        );
    }
    let after: Vec<String> = names
        .iter()
        .map(|n| image_id(&format!("{n}:latest")))
        .collect();
    assert_eq!(before, after, "a second run changed images");

    // Tags are the inputs' hash; the label carries it in full; rich images state the contract.
    let tags = Command::new(sofa::build_script())
        .arg("--print-tags")
        .output()
        .unwrap();
    for line in String::from_utf8(tags.stdout).unwrap().lines() {
        let (name, tag) = line.split_once(':').unwrap();
        assert_eq!(
            image_id(line),
            image_id(&format!("{name}:latest")),
            "{line} is not :latest"
        );
        let label = Command::new("docker")
            .args(["image", "inspect", "-f", "{{index .Config.Labels \"caas.image.inputs\"}}|{{index .Config.Labels \"caas.image.contract\"}}", line])
            .output()
            .unwrap();
        let label = String::from_utf8(label.stdout).unwrap();
        let (inputs, contract) = label.trim().split_once('|').unwrap();
        assert!(inputs.starts_with(tag), "{line}: inputs label {inputs}");
        if name.starts_with("caas/sofa-") {
            assert_eq!(contract, "sofa/1", "{line}");
        }
        // Host keys are made per container, never baked into an image.
        let keys = Command::new("docker")
            .args([
                "run",
                "--rm",
                "--network",
                "none",
                "--entrypoint",
                "/bin/sh",
                line,
                "-c",
                "ls /etc/ssh/ | grep -c ssh_host_ || true",
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&keys.stdout).trim(),
            "0",
            "{line} contains host keys"
        );
    }
}
