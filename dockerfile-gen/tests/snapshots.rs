//! Snapshot tests: the plan (JSON) and the Dockerfile of every sample app, built in code with
//! fixed contents, so any change to detection, planning or rendering shows up as a reviewed diff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use caas_dockerfile_gen::detect::{self, Source};
use caas_dockerfile_gen::fixtures;
use caas_dockerfile_gen::planner::{self, PlanOptions};
use caas_dockerfile_gen::{cli, render};

fn check(sample: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = fixtures::sample(sample, dir.path()).unwrap();
    let src = Source::open(&path).unwrap();
    let det = detect::detect(&src, None).unwrap();
    let plan = planner::plan(&det, &src, &PlanOptions::default()).unwrap();
    let rendered = render::render(&plan);
    // The renderer is pure: same plan, same bytes.
    assert_eq!(rendered, render::render(&plan));
    insta::assert_json_snapshot!(format!("{sample}-plan"), plan);
    insta::assert_snapshot!(format!("{sample}-dockerfile"), rendered.dockerfile);
    insta::assert_snapshot!(format!("{sample}-dockerignore"), rendered.dockerignore);
}

#[test]
fn jar() {
    check("jar");
}

#[test]
fn spring_boot() {
    check("spring-boot");
}

#[test]
fn war() {
    check("war");
}

#[test]
fn exploded_war() {
    check("exploded-war");
}

#[test]
fn release_tgz() {
    check("release-tgz");
}

#[test]
fn release_dir() {
    check("release-dir");
}

#[test]
fn python() {
    check("python");
}

#[test]
fn python_requirements() {
    check("python-requirements");
}

#[test]
fn static_site() {
    check("static");
}

#[test]
fn native() {
    check("native");
}

/// A project directory planned the way the CLI does (project search, then detection or the
/// builder stage).
fn project_plan(path: &std::path::Path) -> caas_dockerfile_gen::plan::Plan {
    let args = cli::PlanArgs::for_path(path.to_path_buf());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(cli::make_plan(&args)).unwrap().0
}

fn check_project(sample: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = fixtures::sample(sample, dir.path()).unwrap();
    let plan = project_plan(&path);
    let rendered = render::render(&plan);
    insta::assert_json_snapshot!(format!("{sample}-plan"), plan);
    insta::assert_snapshot!(format!("{sample}-dockerfile"), rendered.dockerfile);
    insta::assert_snapshot!(format!("{sample}-dockerignore"), rendered.dockerignore);
}

#[test]
fn maven_target() {
    check_project("maven-target");
}

#[test]
fn gradle_libs() {
    check_project("gradle-libs");
}

#[test]
fn release_layout() {
    check_project("release-layout");
}

#[test]
fn unpacked_release() {
    check_project("unpacked-release");
}

#[test]
fn maven_compile() {
    check_project("maven-compile");
}

#[test]
fn every_sample_has_a_snapshot_test() {
    assert_eq!(fixtures::SAMPLES.len(), 10);
    assert_eq!(fixtures::PROJECT_SAMPLES.len(), 5);
}

#[test]
fn project_plans_are_deterministic() {
    for sample in fixtures::PROJECT_SAMPLES {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let plan = |d: &std::path::Path| project_plan(&fixtures::sample(sample, d).unwrap());
        assert_eq!(plan(a.path()), plan(b.path()), "{sample}");
    }
}

/// The same app planned twice (in different directories) gives the same plan and hash.
#[test]
fn plans_are_deterministic() {
    for sample in fixtures::SAMPLES {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let plan = |d: &std::path::Path| {
            let src = Source::open(&fixtures::sample(sample, d).unwrap()).unwrap();
            let det = detect::detect(&src, None).unwrap();
            planner::plan(&det, &src, &PlanOptions::default()).unwrap()
        };
        assert_eq!(plan(a.path()), plan(b.path()), "{sample}");
    }
}
