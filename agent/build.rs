//! Compiles the sandbox `pause` program (supervisor-images/pause/pause.c) as a static binary so
//! the agent can carry it and import the sandbox image into Docker without any registry.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = PathBuf::from("../supervisor-images/pause/pause.c");
    println!("cargo:rerun-if-changed={}", source.display());
    let out_dir = match std::env::var("OUT_DIR") {
        Ok(dir) => PathBuf::from(dir),
        Err(e) => panic!("OUT_DIR not set by cargo: {e}"),
    };
    let output = out_dir.join("pause");
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".to_string());
    let status = Command::new(&cc)
        .args(["-static", "-Os", "-s", "-o"])
        .arg(&output)
        .arg(&source)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "building the sandbox pause binary with `{cc} -static` failed ({s}); \
             install gcc and the static C library (Debian: gcc libc6-dev)"
        ),
        Err(e) => panic!("cannot run `{cc}` to build the sandbox pause binary: {e}; install gcc"),
    }
}
