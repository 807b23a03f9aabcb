//! End-to-end tests of `dockerfile-gen` started where developers stand: a project root. Real
//! Docker, the real rich base images and caas/sofa-jdk17-build (built by
//! `supervisor-images/build`), apps compiled here from source:
//!
//! - a Maven project after `mvn package` (pom.xml, target/app.jar whose Class-Path names
//!   target/lib/greeting.jar): plan, build, run, the app answers with its library loaded;
//!   `run -e GREETING=hi` and `--env-file` change the answer without a rebuild; `--publish`
//!   forwards 127.0.0.1:PORT to it;
//! - Gradle's build/libs/app.jar, the legacy `release/opsware.tgz` layout, and a folder holding
//!   one unpacked release directory (`opsware/bin/start.sh`);
//! - a Maven project never built: `build --compile` compiles it offline in the builder stage
//!   against Debian's packaged Maven repository, and the final image holds no JDK, no Maven,
//!   no sources;
//! - bad input: a broken pom.xml (file and line), two equal artifacts, a Class-Path entry that
//!   points nowhere, a failing compile (the step and javac's error), a Maven dependency missing
//!   from the repository of `--maven-settings` (named): no image, no files.
//!
//! Builds run with network `none`; environments sit on `--internal` networks; the only requests
//! go from this host to those containers (and to 127.0.0.1 for `--publish`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

fn dfgen() -> PathBuf {
    caas_tests::binaries::dockerfile_gen().expect("building dockerfile-gen")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn base_images() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let script = repo_root().join("supervisor-images/build");
        let out = Command::new(&script)
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed:\n{}\n{}",
                script.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    })
    .clone()
    .expect("building the rich base images")
}

fn run(args: &[&str]) -> Output {
    Command::new(dfgen())
        .arg("--progress=plain")
        .args(args)
        .env_remove("CAAS_URL")
        .output()
        .expect("running dockerfile-gen")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "dockerfile-gen {args:?} failed:\n{}",
        text(&out)
    );
    out
}

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_slice(&ok(args).stdout).unwrap()
}

/// A command that must fail with `code`, its stderr naming every word.
fn fails(args: &[&str], code: i32, words: &[&str]) -> String {
    let out = run(args);
    assert_eq!(out.status.code(), Some(code), "{args:?}:\n{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    for w in words {
        assert!(
            stderr.contains(w),
            "{args:?}: stderr lacks {w:?}:\n{}",
            text(&out)
        );
    }
    stderr
}

fn sh(program: &str, args: &[&str], cwd: &Path) {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}:\n{}", text(&out));
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn chmod_x(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Removes the environment of an app path and the images a test built, even when it fails.
struct Guard {
    path: PathBuf,
    images: Vec<String>,
}

impl Guard {
    fn new(path: &Path) -> Self {
        let _ = run(&["down", "--stale"]);
        Self {
            path: path.to_path_buf(),
            images: Vec::new(),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = run(&["down", self.path.to_str().unwrap()]);
        for image in &self.images {
            let _ = Command::new("docker").args(["rmi", image]).output();
        }
    }
}

async fn get(url: &str) -> String {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .text()
        .await
        .unwrap()
}

/// A Java HTTP server answering `$GREETING from <what>` (GREETING defaults to hello) on $PORT.
fn server_java(class: &str, what: &str) -> String {
    format!(
        r#"package demo;
import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
public class {class} {{
    public static void main(String[] args) throws Exception {{
        int port = Integer.parseInt(System.getenv().getOrDefault("PORT", "8080"));
        String greeting = System.getenv().getOrDefault("GREETING", "hello");
        HttpServer server = HttpServer.create(new InetSocketAddress(port), 0);
        server.createContext("/", ex -> {{
            byte[] body = (greeting + " from " + {what} + "\n").getBytes(StandardCharsets.UTF_8);
            ex.sendResponseHeaders(200, body.length);
            ex.getResponseBody().write(body);
            ex.close();
        }});
        server.start();
    }}
}}
"#
    )
}

/// plan -> build -> run -> GET -> down from the project root `path`; returns the plan and the
/// guard that removes the image.
async fn journey(
    path: &Path,
    detector: &str,
    chosen: &str,
    expect: &str,
) -> (serde_json::Value, Guard) {
    base_images();
    let mut guard = Guard::new(path);
    let p = path.to_str().unwrap();
    let plan = json(&["plan", p, "-o", "json"]);
    assert_eq!(plan["detector"], detector, "{plan:#}");
    assert_eq!(plan["project"]["chosen"], chosen, "{plan:#}");
    let human = String::from_utf8_lossy(&ok(&["plan", p]).stdout).into_owned();
    assert!(
        human.contains("chosen:") && human.contains(chosen),
        "{human}"
    );
    let built = json(&["build", p, "-o", "json"]);
    guard
        .images
        .push(built["image"].as_str().unwrap().to_string());
    let info = json(&["run", p, "-o", "json", "--timeout", "240"]);
    let body = get(info["url"].as_str().unwrap()).await;
    assert!(body.contains(expect), "{body}");
    ok(&["down", p]);
    (plan, guard)
}

/// javac + jar: `classes` from `src` files, a jar with an optional main class and Class-Path.
fn jar(dir: &Path, sources: &[&str], out: &str, main: Option<&str>, class_path: Option<&str>) {
    let classes = dir.join(format!("classes-{}", out.replace('/', "_")));
    let mut args = vec!["--release", "17", "-d", classes.to_str().unwrap()];
    args.extend(sources);
    sh("javac", &args, dir);
    std::fs::create_dir_all(dir.join(out).parent().unwrap()).unwrap();
    let manifest = dir.join(format!("{}.mf", out.replace('/', "_")));
    let mut mf = String::new();
    if let Some(m) = main {
        mf.push_str(&format!("Main-Class: {m}\n"));
    }
    if let Some(cp) = class_path {
        mf.push_str(&format!("Class-Path: {cp}\n"));
    }
    std::fs::write(&manifest, mf).unwrap();
    sh(
        "jar",
        &[
            "--create",
            "--file",
            out,
            "--manifest",
            manifest.to_str().unwrap(),
            "-C",
            classes.to_str().unwrap(),
            ".",
        ],
        dir,
    );
    std::fs::remove_dir_all(&classes).unwrap();
    std::fs::remove_file(&manifest).unwrap();
}

const POM: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>demo</groupId>
  <artifactId>greeter</artifactId>
  <version>1.0</version>
  <properties>
    <maven.compiler.release>17</maven.compiler.release>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  DEPENDENCIES
  <build>
    <finalName>app</finalName>
    <plugins>
      <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-resources-plugin</artifactId><version>3.3.0</version></plugin>
      <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-compiler-plugin</artifactId><version>3.10.1</version></plugin>
      <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-surefire-plugin</artifactId><version>2.22.3</version></plugin>
      <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-jar-plugin</artifactId><version>3.3.0</version>
        <configuration><archive><manifest><mainClass>demo.Greeter</mainClass></manifest></archive></configuration>
      </plugin>
    </plugins>
  </build>
</project>
"#;

fn pom(dependencies: &str) -> String {
    POM.replace("DEPENDENCIES", dependencies)
}

/// A Maven project as `mvn package` + `dependency:copy-dependencies` leave it: the app's jar
/// names its library on the Class-Path, the library is in target/lib/.
fn maven_after_package(dir: &Path) -> PathBuf {
    let root = dir.join("greeter");
    write(&root.join("pom.xml"), &pom(""));
    write(
        &root.join("src/main/java/demo/Greeter.java"),
        &server_java("Greeter", "lib.Names.maven()"),
    );
    write(
        &dir.join("libsrc/lib/Names.java"),
        "package lib;\npublic class Names { public static String maven() { return \"maven\"; } }\n",
    );
    jar(
        dir,
        &["libsrc/lib/Names.java"],
        "greeter/target/lib/greeting.jar",
        None,
        None,
    );
    jar(
        dir,
        &[
            "-cp",
            "greeter/target/lib/greeting.jar",
            "greeter/src/main/java/demo/Greeter.java",
        ],
        "greeter/target/app.jar",
        Some("demo.Greeter"),
        Some("lib/greeting.jar"),
    );
    root
}

fn image_id(image: &str) -> String {
    let out = Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Id}}", image])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn maven_project_after_package_runs_and_takes_its_environment_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = maven_after_package(dir.path());
    let (plan, guard) = journey(&root, "jar", "target/app.jar", "hello from maven").await;
    assert!(
        plan["copies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["src"] == "lib/"),
        "target/lib/ is copied with the jar: {plan:#}"
    );

    // Build once, run anywhere: the environment changes the answer, not the image.
    let p = root.to_str().unwrap();
    let tag = guard.images[0].clone();
    let before = image_id(&tag);
    assert!(!before.is_empty(), "the journey's image {tag} is there");
    let out = ok(&["run", p, "-o", "json", "-e", "GREETING=hi"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("up to date with the plan"),
        "rebuilt:\n{stderr}"
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(get(info["url"].as_str().unwrap()).await, "hi from maven\n");

    let env_file = dir.path().join("test.env");
    write(&env_file, "# the test environment\nGREETING=howdy\n\n");
    let info = json(&[
        "run",
        p,
        "-o",
        "json",
        "--env-file",
        env_file.to_str().unwrap(),
    ]);
    assert_eq!(
        get(info["url"].as_str().unwrap()).await,
        "howdy from maven\n"
    );
    assert_eq!(image_id(&tag), before, "no new image");

    // --publish: 127.0.0.1:PORT reaches the app while dockerfile-gen runs in the foreground.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(dfgen())
        .args(["--progress=plain", "run", p, "--publish", &port.to_string()])
        .env_remove("CAAS_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let _child = Kill(child);
    let mut lines = BufReader::new(stdout).lines();
    let forwarding = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("forwarding"))
        .expect("dockerfile-gen says it forwards");
    assert!(
        forwarding.contains(&format!("http://127.0.0.1:{port}/")),
        "{forwarding}"
    );
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/")).await,
        "hello from maven\n"
    );
    drop(_child);
    drop(guard);
}

#[tokio::test(flavor = "multi_thread")]
async fn gradle_build_libs_is_detected_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shop");
    write(&root.join("settings.gradle"), "rootProject.name = 'shop'\n");
    write(
        &root.join("build.gradle"),
        "plugins { id 'application' }\nversion = '1.0'\napplication { mainClass = 'demo.Shop' }\n",
    );
    write(
        &root.join("src/main/java/demo/Shop.java"),
        &server_java("Shop", "\"gradle\""),
    );
    jar(
        dir.path(),
        &["shop/src/main/java/demo/Shop.java"],
        "shop/build/libs/shop-1.0.jar",
        Some("demo.Shop"),
        None,
    );
    // Gradle's plain jar beside it (Spring Boot builds) is never the app.
    jar(
        dir.path(),
        &["shop/src/main/java/demo/Shop.java"],
        "shop/build/libs/shop-1.0-plain.jar",
        None,
        None,
    );
    let (plan, _guard) =
        journey(&root, "jar", "build/libs/shop-1.0.jar", "hello from gradle").await;
    assert!(
        plan["project"]["why"]
            .as_str()
            .unwrap()
            .contains("named by build.gradle"),
        "{plan:#}"
    );
}

/// An unpacked release: bin/start.sh runs lib/opsware.jar from the release root.
fn opsware_release(dir: &Path, at: &Path) {
    write(
        &dir.join("opsrc/demo/Ops.java"),
        &server_java("Ops", "\"opsware\""),
    );
    jar(
        dir,
        &["opsrc/demo/Ops.java"],
        at.join("lib/opsware.jar")
            .strip_prefix(dir)
            .unwrap()
            .to_str()
            .unwrap(),
        None,
        None,
    );
    write(
        &at.join("bin/start.sh"),
        "#!/bin/sh\nexec java $JAVA_OPTS -cp lib/opsware.jar demo.Ops\n",
    );
    chmod_x(&at.join("bin/start.sh"));
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_release_opsware_tgz_layout_runs_from_the_repository_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("opsrepo");
    write(
        &root.join("Makefile"),
        "release/opsware.tgz:\n\ttar czf $@ -C build opsware\n",
    );
    opsware_release(dir.path(), &root.join("build/opsware"));
    std::fs::create_dir_all(root.join("release")).unwrap();
    sh(
        "tar",
        &["czf", "release/opsware.tgz", "-C", "build", "opsware"],
        &root,
    );
    let (plan, _guard) = journey(
        &root,
        "release",
        "release/opsware.tgz",
        "hello from opsware",
    )
    .await;
    // Exactly what the legacy Dockerfiles do: the package in /home/admin/release/run/.
    assert_eq!(
        plan["copies"][0]["dest"], "/home/admin/release/run/opsware.tgz",
        "{plan:#}"
    );
    assert_eq!(plan["start_mode"], "package");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_folder_holding_one_unpacked_release_is_looked_into() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("download");
    opsware_release(dir.path(), &folder.join("opsware"));
    let (plan, _guard) = journey(&folder, "release", ".", "hello from opsware").await;
    assert_eq!(plan["project"]["dir"], "opsware", "{plan:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn never_built_maven_project_compiles_offline_in_a_builder_stage() {
    base_images();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("fresh");
    write(&root.join("pom.xml"), &pom(""));
    write(
        &root.join("src/main/java/demo/Greeter.java"),
        &server_java("Greeter", "\"compiled\""),
    );
    let mut guard = Guard::new(&root);
    let p = root.to_str().unwrap();
    let plan = json(&["plan", p, "-o", "json", "--compile"]);
    assert_eq!(plan["builder"]["network"], false, "{plan:#}");
    assert!(
        plan["builder"]["image"]
            .as_str()
            .unwrap()
            .starts_with("caas/sofa-jdk17-build:"),
        "{plan:#}"
    );
    // Without --compile the same project (no target/) is compiled too, and says why.
    let auto = String::from_utf8_lossy(&ok(&["plan", p]).stdout).into_owned();
    assert!(auto.contains("target/app.jar does not exist"), "{auto}");
    assert!(auto.contains("compile:"), "{auto}");

    let built = json(&["build", p, "--compile", "-o", "json"]);
    let image = built["image"].as_str().unwrap().to_string();
    guard.images.push(image.clone());
    assert!(
        !root.join("target").exists(),
        "nothing compiled on the host"
    );

    // The final image: a JRE and the jar; no JDK, no Maven, no sources, no builder files.
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "/bin/sh",
            &image,
            "-c",
            "for f in /usr/bin/javac /usr/bin/mvn /usr/share/maven /usr/share/maven-repo /build \
             /root/.m2 /home/admin/app/src; do test -e $f && echo FOUND $f; done; \
             find / -xdev \\( -name '*.java' -o -name pom.xml \\) -type f -print | sed 's/^/FOUND /'; \
             test -f /home/admin/app/app.jar && echo JAR; java -version 2>&1 | head -1",
        ])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("JAR"), "{}", text(&out));
    assert!(!listing.contains("FOUND"), "{}", text(&out));

    let info = json(&["run", p, "--compile", "-o", "json", "--timeout", "240"]);
    assert_eq!(
        get(info["url"].as_str().unwrap()).await,
        "hello from compiled\n"
    );
    ok(&["down", p]);
}

#[test]
fn bad_project_input_is_named_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("out");
    let gen = |path: &Path, extra: &[&str], words: &[&str]| {
        let mut args = vec![
            "generate",
            path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        fails(&args, 64, words);
        assert!(!out.exists(), "{} left output behind", path.display());
    };

    // A pom.xml that does not parse: file and line.
    write(
        &d.join("broken/pom.xml"),
        "<project>\n  <artifactId>x</artifactId>\n  <build>\n</project>\n",
    );
    gen(
        &d.join("broken"),
        &[],
        &["pom.xml:4:", "not well-formed XML"],
    );

    // Two outputs with an equal claim and no build file naming one.
    let two = d.join("two");
    std::fs::create_dir_all(&two).unwrap();
    write(
        &d.join("src2/demo/A.java"),
        "package demo;\npublic class A { public static void main(String[] a) {} }\n",
    );
    jar(
        d,
        &["src2/demo/A.java"],
        "two/dist/a.jar",
        Some("demo.A"),
        None,
    );
    jar(
        d,
        &["src2/demo/A.java"],
        "two/dist/b.jar",
        Some("demo.A"),
        None,
    );
    gen(&two, &[], &["dist/a.jar", "dist/b.jar", "--artifact"]);
    // --artifact picks one.
    let plan: serde_json::Value = serde_json::from_slice(
        &ok(&[
            "plan",
            two.to_str().unwrap(),
            "--artifact",
            "dist/b.jar",
            "-o",
            "json",
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(plan["project"]["chosen"], "dist/b.jar");
    assert_eq!(plan["project"]["why"], "chosen with --artifact");

    // A Class-Path entry that points nowhere.
    let cp = d.join("cp");
    write(&cp.join("pom.xml"), &pom(""));
    jar(
        d,
        &["src2/demo/A.java"],
        "cp/target/app.jar",
        Some("demo.A"),
        Some("lib/gone.jar"),
    );
    gen(
        &cp,
        &[],
        &[
            "target/app.jar",
            "Class-Path entry lib/gone.jar points nowhere",
        ],
    );

    // Maven flags without compiling; bad settings; bad environment.
    let built = d.join("built");
    write(&built.join("pom.xml"), &pom(""));
    jar(
        d,
        &["src2/demo/A.java"],
        "built/target/app.jar",
        Some("demo.A"),
        None,
    );
    gen(
        &built,
        &["--maven-mirror", "http://mirror.invalid/"],
        &["add --compile"],
    );
    write(
        &d.join("settings.xml"),
        "<settings>\n  <mirrors>\n</settings>\n",
    );
    gen(
        &built,
        &[
            "--compile",
            "--maven-settings",
            d.join("settings.xml").to_str().unwrap(),
        ],
        &["settings.xml:3:"],
    );
    let env_file = d.join("bad.env");
    write(&env_file, "GOOD=1\nthis is not an assignment\n");
    fails(
        &[
            "run",
            built.to_str().unwrap(),
            "--env-file",
            env_file.to_str().unwrap(),
        ],
        64,
        &["bad.env:2:", "KEY=VALUE"],
    );
    fails(
        &["run", built.to_str().unwrap(), "-e", "1X=y"],
        64,
        &["KEY=VALUE"],
    );

    // Gradle without outputs: why it is not compiled.
    write(&d.join("g/build.gradle"), "plugins { id 'java' }\n");
    gen(&d.join("g"), &[], &["gradle build", "Maven projects only"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_compile_and_missing_dependency_are_named_and_leave_no_image() {
    base_images();
    let dir = tempfile::tempdir().unwrap();

    // javac's own error, at the builder stage's compile step.
    let bad = dir.path().join("badsrc");
    write(&bad.join("pom.xml"), &pom(""));
    write(
        &bad.join("src/main/java/demo/Greeter.java"),
        "package demo;\npublic class Greeter { int x = ; }\n",
    );
    let tag = format!("dfgen-test/badsrc:{}", std::process::id());
    let _g1 = Guard {
        path: bad.clone(),
        images: vec![tag.clone()],
    };
    let err = fails(
        &["build", bad.to_str().unwrap(), "--compile", "-t", &tag],
        1,
        &[
            "the build failed at Step",
            "cp target/app.jar",
            "COMPILATION ERROR",
            "Greeter.java",
        ],
    );
    let message = err
        .split("dockerfile-gen: error:")
        .nth(1)
        .unwrap_or_default();
    assert!(
        message.contains("illegal start of expression") && !message.contains("[INFO]"),
        "the error shows Maven's errors only:\n{err}"
    );
    assert!(image_id(&tag).is_empty(), "no image for a failed build");

    // A dependency the repository of --maven-settings does not have: named, with the repository.
    let dep = dir.path().join("dep");
    write(
        &dep.join("pom.xml"),
        &pom("<dependencies><dependency><groupId>com.acme</groupId><artifactId>missing</artifactId><version>1.0</version></dependency></dependencies>"),
    );
    write(
        &dep.join("src/main/java/demo/Greeter.java"),
        &server_java("Greeter", "\"dep\""),
    );
    let settings = dir.path().join("settings.xml");
    write(
        &settings,
        r#"<settings><localRepository>/root/.m2/repository</localRepository>
  <profiles><profile><id>debian</id>
    <repositories><repository><id>central</id><url>file:///usr/share/maven-repo</url>
      <releases><checksumPolicy>ignore</checksumPolicy></releases></repository></repositories>
    <pluginRepositories><pluginRepository><id>central</id><url>file:///usr/share/maven-repo</url>
      <releases><checksumPolicy>ignore</checksumPolicy></releases></pluginRepository></pluginRepositories>
  </profile></profiles>
  <activeProfiles><activeProfile>debian</activeProfile></activeProfiles>
</settings>
"#,
    );
    let tag2 = format!("dfgen-test/dep:{}", std::process::id());
    let _g2 = Guard {
        path: dep.clone(),
        images: vec![tag2.clone()],
    };
    fails(
        &[
            "build",
            dep.to_str().unwrap(),
            "--compile",
            "--maven-settings",
            settings.to_str().unwrap(),
            "-t",
            &tag2,
        ],
        1,
        &[
            "Maven dependency com.acme:missing:jar:1.0 is not in",
            "file:///usr/share/maven-repo",
        ],
    );
    assert!(image_id(&tag2).is_empty(), "no image for a failed build");
    assert!(!dep.join(".dfgen-maven-settings.xml").exists());
    assert!(!dep.join("Dockerfile").exists());
}
