//! Benchmark: `build --compile` of the Maven sample (fixtures::POM, one class) against
//! hand-written multi-stage Dockerfiles on the same builder image in the same run, and how much
//! of a build is reused when nothing or only the sources changed. Prints medians and ratios;
//! asserts nothing.
//!
//! - cold: every build without cache (`--no-cache`), alternating order;
//! - reference "same layers": the multi-stage Dockerfile a careful person writes (pom.xml and
//!   its dependency layer first, then the sources, then `mvn -o package`);
//! - reference "one RUN": `COPY . ; RUN mvn -o package` against Debian's repository directly;
//! - second build, sources unchanged (cache on) and sources changed (cache on), as a share of
//!   dockerfile-gen's cold build.
//!
//! Needs caas/sofa-jdk17 and caas/sofa-jdk17-build (`supervisor-images/build`).
//! Run: `cargo bench -p caas-dockerfile-gen --bench compile_build` (ROUNDS=N, default 3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::query_parameters::{BuildImageOptions, BuilderVersion, RemoveImageOptions};
use bollard::Docker;
use caas_dockerfile_gen::build::BuildOptions;
use caas_dockerfile_gen::progress::{Progress, ProgressMode};
use caas_dockerfile_gen::{cli, docker, fixtures};
use futures::StreamExt;

const SAME_LAYERS: &str = r#"FROM caas/sofa-jdk17-build:latest AS build
WORKDIR /build
COPY pom.xml /build/pom.xml
RUN mvn -B -ntp -s /usr/share/caas/maven/maven-settings.xml -DskipTests package && rm -rf target
COPY src/ /build/src/
RUN mvn -B -ntp -o -s /usr/share/caas/maven/maven-settings.xml -DskipTests package

FROM caas/sofa-jdk17:latest
ENV PORT=8080
COPY --from=build --chown=admin:admin /build/target/app.jar /home/admin/app/app.jar
WORKDIR /home/admin/app
EXPOSE 8080
VOLUME ["/home/admin/logs"]
CMD ["java", "-cp", "/home/admin/app/app.jar", "demo.Main"]
"#;

const ONE_RUN: &str = r#"FROM caas/sofa-jdk17-build:latest AS build
WORKDIR /build
COPY . /build/
RUN mvn -B -ntp -o -Dmaven.repo.local=/usr/share/maven-repo -DskipTests package

FROM caas/sofa-jdk17:latest
ENV PORT=8080
COPY --from=build --chown=admin:admin /build/target/app.jar /home/admin/app/app.jar
WORKDIR /home/admin/app
EXPOSE 8080
VOLUME ["/home/admin/logs"]
CMD ["java", "-cp", "/home/admin/app/app.jar", "demo.Main"]
"#;

async fn by_hand(docker: &Docker, project: &Path, dockerfile: &str, tag: &str) -> Duration {
    let start = Instant::now();
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(dockerfile.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "Dockerfile", dockerfile.as_bytes())
        .unwrap();
    tar.append_path_with_name(project.join("pom.xml"), "pom.xml")
        .unwrap();
    tar.append_dir_all("src", project.join("src")).unwrap();
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

/// dockerfile-gen's way: find the project, plan the builder stage, render, build.
async fn dfgen(docker: &Docker, project: &Path, tag: &str, nocache: bool) -> Duration {
    let start = Instant::now();
    let mut args = cli::PlanArgs::for_path(project.to_path_buf());
    args.compile = true;
    let (plan, src) = cli::make_plan(&args).await.unwrap();
    let opts = BuildOptions {
        nocache,
        ..Default::default()
    };
    cli::build_image(
        docker,
        &plan,
        &src,
        tag,
        &opts,
        &Progress::new(ProgressMode::Quiet),
    )
    .await
    .unwrap();
    start.elapsed()
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn project(dir: &Path) -> PathBuf {
    fixtures::sample("maven-compile", dir).unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let docker = docker::connect().await.expect("Docker engine").docker;
    for image in ["caas/sofa-jdk17:latest", "caas/sofa-jdk17-build:latest"] {
        if docker.inspect_image(image).await.is_err() {
            eprintln!("{image} is missing: run supervisor-images/build first");
            std::process::exit(1);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let root = project(dir.path());
    let (ours, same, one) = (
        "dfgen-bench/compile:latest",
        "dfgen-bench/compile-same:latest",
        "dfgen-bench/compile-one:latest",
    );

    // Warm-up (page cache, engine state), not counted.
    dfgen(&docker, &root, ours, true).await;
    by_hand(&docker, &root, SAME_LAYERS, same).await;

    let (mut t_ours, mut t_same, mut t_one) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 0 {
            t_ours.push(dfgen(&docker, &root, ours, true).await);
            t_same.push(by_hand(&docker, &root, SAME_LAYERS, same).await);
            t_one.push(by_hand(&docker, &root, ONE_RUN, one).await);
        } else {
            t_one.push(by_hand(&docker, &root, ONE_RUN, one).await);
            t_same.push(by_hand(&docker, &root, SAME_LAYERS, same).await);
            t_ours.push(dfgen(&docker, &root, ours, true).await);
        }
    }
    // Rebuilds with the cache, as a developer does: first one build with the cache (the
    // classic builder follows the first matching child of each layer, and the cold rounds left
    // several chains with equal prefixes), then again with nothing changed, then after a change
    // to a source file.
    dfgen(&docker, &root, ours, false).await;
    let (mut t_again, mut t_src) = (Vec::new(), Vec::new());
    let main = root.join("src/main/java/demo/Main.java");
    for round in 0..rounds {
        t_again.push(dfgen(&docker, &root, ours, false).await);
        let text = std::fs::read_to_string(&main).unwrap();
        std::fs::write(&main, format!("{text}// round {round}\n")).unwrap();
        t_src.push(dfgen(&docker, &root, ours, false).await);
    }
    let (o, s, n) = (median(&t_ours), median(&t_same), median(&t_one));
    let (a, c) = (median(&t_again), median(&t_src));
    println!("dockerfile-gen build --compile (Maven sample) vs hand-written multi-stage Dockerfiles, {rounds} rounds");
    println!(
        "  cold, no cache: dockerfile-gen {}  (all {t_ours:?})",
        secs(o)
    );
    println!(
        "  cold, no cache: hand-written, same layers {}  (all {t_same:?})",
        secs(s)
    );
    println!(
        "  cold, no cache: hand-written, one RUN {}  (all {t_one:?})",
        secs(n)
    );
    println!(
        "  ratio dockerfile-gen / same layers: {:.3}; / one RUN: {:.3}",
        o.as_secs_f64() / s.as_secs_f64(),
        o.as_secs_f64() / n.as_secs_f64()
    );
    println!(
        "  second build, sources unchanged: {} = {:.1} % of the cold build",
        secs(a),
        100.0 * a.as_secs_f64() / o.as_secs_f64()
    );
    println!(
        "  second build, a source changed (dependency layer reused): {} = {:.1} % of the cold build",
        secs(c),
        100.0 * c.as_secs_f64() / o.as_secs_f64()
    );
    for tag in [ours, same, one] {
        let _ = docker
            .remove_image(tag, None::<RemoveImageOptions>, None)
            .await;
    }
}
