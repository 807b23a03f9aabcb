//! Benchmark: `generate` + `build` of the executable-jar app against building a hand-written
//! equivalent Dockerfile with the same engine in the same run (both without cache), and the
//! size of the two images. Prints median times, the ratio and the sizes; asserts nothing.
//!
//! Needs the rich base images (`supervisor-images/build`), javac and jar.
//! Run: `cargo bench -p caas-dockerfile-gen --bench generate_build` (ROUNDS=N to change rounds).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bollard::query_parameters::{BuildImageOptions, BuilderVersion, RemoveImageOptions};
use bollard::Docker;
use caas_dockerfile_gen::detect::{self, Source};
use caas_dockerfile_gen::planner::{self, PlanOptions};
use caas_dockerfile_gen::progress::{Progress, ProgressMode};
use caas_dockerfile_gen::{cli, docker};
use futures::StreamExt;

/// What a person would write for the same image: the same instructions (a LABEL of their own,
/// the PORT default, the jar, the working directory, the port, the logs volume, the command),
/// without the generator's comments and labels. Step count equal to the generated one's, so
/// the ratio measures dockerfile-gen's own cost (detect, plan, render, write, stream).
const HAND_WRITTEN: &str = r#"FROM caas/sofa-jdk17:latest
LABEL org.opencontainers.image.title="hello"
ENV PORT=8080
COPY --chown=admin:admin hello.jar /home/admin/app/hello.jar
WORKDIR /home/admin/app
EXPOSE 8080
VOLUME ["/home/admin/logs"]
CMD ["java", "-jar", "/home/admin/app/hello.jar"]
"#;

const HELLO: &str = r#"import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;
public class Hello {
    public static void main(String[] args) throws Exception {
        HttpServer server = HttpServer.create(new InetSocketAddress(8080), 0);
        server.createContext("/", ex -> { ex.sendResponseHeaders(200, 0); ex.close(); });
        server.start();
    }
}
"#;

fn sh(program: &str, args: &[&str], cwd: &Path) {
    let ok = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
        .success();
    assert!(ok, "{program} {args:?} failed");
}

fn jar_app(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::write(dir.join("src/Hello.java"), HELLO).unwrap();
    sh(
        "javac",
        &["--release", "17", "-d", "classes", "src/Hello.java"],
        dir,
    );
    sh(
        "jar",
        &[
            "--create",
            "--file",
            "app/hello.jar",
            "--main-class",
            "Hello",
            "-C",
            "classes",
            ".",
        ],
        dir,
    );
    dir.join("app/hello.jar")
}

/// The hand-written build: a tar of the Dockerfile and the jar, sent through the same API.
async fn build_by_hand(docker: &Docker, jar: &Path, tag: &str) -> Duration {
    let start = Instant::now();
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(HAND_WRITTEN.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "Dockerfile", HAND_WRITTEN.as_bytes())
        .unwrap();
    tar.append_path_with_name(jar, "hello.jar").unwrap();
    let body = tar.into_inner().unwrap();
    let options = BuildImageOptions {
        dockerfile: "Dockerfile".into(),
        t: Some(tag.into()),
        nocache: true,
        rm: true,
        forcerm: true,
        networkmode: Some("none".into()),
        version: BuilderVersion::BuilderV1,
        ..Default::default()
    };
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(body.into())));
    while let Some(item) = stream.next().await {
        let info = item.expect("hand-written build");
        assert!(info.error_detail.is_none(), "{:?}", info.error_detail);
    }
    start.elapsed()
}

/// dockerfile-gen's way: detect, plan, render + write the files, build (no cache).
/// Returns (total, of which generate: detect + plan + render + write).
async fn generate_and_build(
    docker: &Docker,
    jar: &Path,
    out: &Path,
    tag: &str,
) -> (Duration, Duration) {
    let start = Instant::now();
    let src = Source::open(jar).unwrap();
    let det = detect::detect(&src, None).unwrap();
    let plan = planner::plan(&det, &src, &PlanOptions::default()).unwrap();
    cli::generate(&plan, &src, Some(out), true).unwrap();
    let generate = start.elapsed();
    let progress = Progress::new(ProgressMode::Quiet);
    let opts = caas_dockerfile_gen::build::BuildOptions {
        nocache: true,
        ..Default::default()
    };
    cli::build_image(docker, &plan, &src, tag, &opts, &progress)
        .await
        .unwrap();
    (start.elapsed(), generate)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn size(docker: &Docker, tag: &str) -> i64 {
    docker
        .inspect_image(tag)
        .await
        .unwrap()
        .size
        .unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    let engine = docker::connect().await.expect("Docker engine");
    let docker = engine.docker;
    if docker
        .inspect_image("caas/sofa-jdk17:latest")
        .await
        .is_err()
    {
        eprintln!("caas/sofa-jdk17:latest is missing: run supervisor-images/build first");
        std::process::exit(1);
    }
    let dir = tempfile::tempdir().unwrap();
    let jar = jar_app(dir.path());
    let out = dir.path().join("generated");
    let (gen_tag, hand_tag) = ("dfgen-bench/generated:latest", "dfgen-bench/hand:latest");

    // One warm-up each (page cache, engine state), not counted.
    generate_and_build(&docker, &jar, &out, gen_tag).await;
    build_by_hand(&docker, &jar, hand_tag).await;

    let mut generated = Vec::new();
    let mut generate_only = Vec::new();
    let mut hand = Vec::new();
    for round in 0..rounds {
        // Alternate the order so neither side always runs on a warmer engine.
        if round % 2 == 0 {
            let (total, gen) = generate_and_build(&docker, &jar, &out, gen_tag).await;
            generated.push(total);
            generate_only.push(gen);
            hand.push(build_by_hand(&docker, &jar, hand_tag).await);
        } else {
            hand.push(build_by_hand(&docker, &jar, hand_tag).await);
            let (total, gen) = generate_and_build(&docker, &jar, &out, gen_tag).await;
            generated.push(total);
            generate_only.push(gen);
        }
    }
    let (g, h) = (median(&mut generated), median(&mut hand));
    let gen_only = median(&mut generate_only);
    let (gs, hs) = (size(&docker, gen_tag).await, size(&docker, hand_tag).await);
    println!("dockerfile-gen generate+build vs hand-written Dockerfile (jar app, --no-cache, {rounds} rounds)");
    println!(
        "  generate+build median: {:.3} s  (all: {:?})",
        g.as_secs_f64(),
        generated
    );
    println!(
        "  hand-written   median: {:.3} s  (all: {:?})",
        h.as_secs_f64(),
        hand
    );
    println!(
        "  of which generate (detect, plan, render, write files) median: {:.1} ms",
        gen_only.as_secs_f64() * 1000.0
    );
    println!(
        "  time ratio generated/hand: {:.3}",
        g.as_secs_f64() / h.as_secs_f64()
    );
    println!(
        "  image size generated: {gs} bytes, hand-written: {hs} bytes, ratio {:.4}",
        gs as f64 / hs as f64
    );
    println!(
        "  size added over caas/sofa-jdk17: generated {} bytes, hand-written {} bytes",
        gs - size(&docker, "caas/sofa-jdk17:latest").await,
        hs - size(&docker, "caas/sofa-jdk17:latest").await
    );
    for tag in [gen_tag, hand_tag] {
        let _ = docker
            .remove_image(tag, None::<RemoveImageOptions>, None)
            .await;
    }
}
