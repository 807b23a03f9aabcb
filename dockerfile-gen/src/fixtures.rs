//! Deterministic sample apps built in code (fixed contents, fixed timestamps), for unit tests,
//! snapshot tests and the benchmark. Not part of the tool's interface.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;

pub const WEB_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="http://xmlns.jcp.org/xml/ns/javaee" version="4.0">
  <display-name>hello</display-name>
  <welcome-file-list><welcome-file>index.html</welcome-file></welcome-file-list>
</web-app>
"#;

/// Writes a zip with fixed timestamps (1980-01-01) and the given entries, in order.
pub fn write_zip(path: &Path, entries: &[(&str, &[u8])]) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut zip = zip::ZipWriter::new(file);
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    for (name, bytes) in entries {
        zip.start_file(*name, opts).map_err(std::io::Error::other)?;
        zip.write_all(bytes)?;
    }
    zip.finish().map_err(std::io::Error::other)?;
    Ok(())
}

/// The first bytes of a class file of the given major version (enough for the detectors).
pub fn class_bytes(major: u16) -> Vec<u8> {
    let mut b = vec![0xca, 0xfe, 0xba, 0xbe, 0, 0];
    b.extend_from_slice(&major.to_be_bytes());
    b.extend_from_slice(&[0; 8]);
    b
}

/// A plain executable jar whose manifest names `main_class`.
pub fn executable_jar(path: &Path, main_class: &str, major: u16) -> std::io::Result<()> {
    let manifest = format!(
        "Manifest-Version: 1.0\r\nMain-Class: {main_class}\r\nImplementation-Title: hello\r\n\r\n"
    );
    let class = format!("{}.class", main_class.replace('.', "/"));
    write_zip(
        path,
        &[
            ("META-INF/MANIFEST.MF", manifest.as_bytes()),
            (&class, &class_bytes(major)),
        ],
    )
}

/// A Spring Boot style fat jar with `application.properties`.
pub fn spring_boot_jar(
    path: &Path,
    start_class: &str,
    properties: &str,
    actuator: bool,
) -> std::io::Result<()> {
    let manifest = format!(
        "Manifest-Version: 1.0\r\nMain-Class: org.springframework.boot.loader.launch.JarLauncher\r\n\
         Start-Class: {start_class}\r\nSpring-Boot-Version: 3.3.0\r\n\
         Spring-Boot-Classes: BOOT-INF/classes/\r\nSpring-Boot-Lib: BOOT-INF/lib/\r\n\r\n"
    );
    let class = format!("BOOT-INF/classes/{}.class", start_class.replace('.', "/"));
    let mut entries: Vec<(&str, &[u8])> = vec![
        ("META-INF/MANIFEST.MF", manifest.as_bytes()),
        (
            "org/springframework/boot/loader/launch/JarLauncher.class",
            &[0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 61],
        ),
        (&class, &[0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 61]),
        (
            "BOOT-INF/classes/application.properties",
            properties.as_bytes(),
        ),
        ("BOOT-INF/lib/spring-core-6.1.0.jar", b"PK"),
    ];
    if actuator {
        entries.push(("BOOT-INF/lib/spring-boot-actuator-3.3.0.jar", b"PK"));
    }
    write_zip(path, &entries)
}

/// A gzip tarball with fixed timestamps; entries are (path, mode, contents). Directories are
/// implied.
pub fn write_tgz(path: &Path, entries: &[(&str, u32, &[u8])]) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, mode, bytes) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(*mode);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        tar.append_data(&mut h, name, *bytes)?;
    }
    tar.into_inner()?.finish()?;
    Ok(())
}

/// A minimal 64-bit little-endian x86_64 ELF executable header with one program header:
/// `PT_INTERP` when `dynamic`, `PT_LOAD` otherwise.
pub fn elf64(dynamic: bool) -> Vec<u8> {
    let mut b = vec![0u8; 64 + 56];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2; // 64-bit
    b[5] = 1; // little endian
    b[6] = 1;
    b[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    b[18..20].copy_from_slice(&0x3eu16.to_le_bytes()); // x86_64
    b[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    b[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    b[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    let p_type: u32 = if dynamic { 3 } else { 1 };
    b[64..68].copy_from_slice(&p_type.to_le_bytes());
    b
}

fn put(dir: &Path, rel: &str, mode: u32, bytes: &[u8]) -> std::io::Result<()> {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&p, bytes)?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
}

/// The sample apps, by name.
pub const SAMPLES: &[&str] = &[
    "jar",
    "spring-boot",
    "war",
    "exploded-war",
    "release-tgz",
    "release-dir",
    "python",
    "python-requirements",
    "static",
    "native",
];

/// Sample project directories (given to dockerfile-gen at their root).
pub const PROJECT_SAMPLES: &[&str] = &[
    "maven-target",
    "gradle-libs",
    "release-layout",
    "unpacked-release",
    "maven-compile",
];

/// A Maven pom for `greeter` with a static finalName `app` and a main class, using only the
/// plugin versions Debian packages (so it compiles offline against /usr/share/maven-repo).
pub const POM: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>demo</groupId>
  <artifactId>greeter</artifactId>
  <version>1.0</version>
  <packaging>jar</packaging>
  <properties>
    <maven.compiler.release>17</maven.compiler.release>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <build>
    <finalName>app</finalName>
    <plugins>
      <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-resources-plugin</artifactId><version>3.3.0</version></plugin>
      <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-compiler-plugin</artifactId><version>3.10.1</version></plugin>
      <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-surefire-plugin</artifactId><version>2.22.3</version></plugin>
      <plugin><groupId>org.apache.maven.plugins</groupId><artifactId>maven-jar-plugin</artifactId><version>3.3.0</version>
        <configuration><archive><manifest><mainClass>demo.Main</mainClass></manifest></archive></configuration>
      </plugin>
    </plugins>
  </build>
</project>
"#;

/// Builds sample app `name` under `dir` and returns the path to give to dockerfile-gen.
pub fn sample(name: &str, dir: &Path) -> std::io::Result<PathBuf> {
    let root = dir.join(name);
    std::fs::create_dir_all(&root)?;
    let app_jar = |path: &Path, class_path: &str| {
        let manifest =
            format!("Manifest-Version: 1.0\r\nMain-Class: demo.Main\r\n{class_path}\r\n");
        write_zip(
            path,
            &[
                ("META-INF/MANIFEST.MF", manifest.as_bytes()),
                ("demo/Main.class", &class_bytes(61)),
            ],
        )
    };
    match name {
        "maven-target" => {
            put(&root, "pom.xml", 0o644, POM.as_bytes())?;
            put(
                &root,
                "src/main/java/demo/Main.java",
                0o644,
                b"package demo;\n",
            )?;
            std::fs::create_dir_all(root.join("target/lib"))?;
            app_jar(&root.join("target/app.jar"), "Class-Path: lib/dep.jar\r\n")?;
            write_zip(&root.join("target/lib/dep.jar"), &[("dep.txt", b"dep")])?;
            write_zip(&root.join("target/app-sources.jar"), &[("Main.java", b"x")])?;
            Ok(root)
        }
        "gradle-libs" => {
            put(
                &root,
                "settings.gradle",
                0o644,
                b"rootProject.name = 'greeter'\n",
            )?;
            put(
                &root,
                "build.gradle",
                0o644,
                b"plugins { id 'java' }\njar {\n  archiveFileName = 'app.jar'\n  manifest { attributes 'Main-Class': 'demo.Main' }\n}\n",
            )?;
            std::fs::create_dir_all(root.join("build/libs"))?;
            app_jar(&root.join("build/libs/app.jar"), "")?;
            Ok(root)
        }
        "release-layout" => {
            put(
                &root,
                "Makefile",
                0o644,
                b"release/opsware.tgz:\n\ttar czf $@ -C build opsware\n",
            )?;
            std::fs::create_dir_all(root.join("release"))?;
            write_tgz(
                &root.join("release/opsware.tgz"),
                &[
                    (
                        "opsware/bin/start.sh",
                        0o755,
                        b"#!/bin/sh\nexec java -cp lib/opsware.jar demo.Main \"${PORT:-8080}\"\n",
                    ),
                    ("opsware/lib/opsware.jar", 0o644, b"PK\x05\x06"),
                ],
            )?;
            Ok(root)
        }
        "unpacked-release" => {
            put(
                &root,
                "opsware/bin/start.sh",
                0o755,
                b"#!/bin/sh\nexec java -cp lib/opsware.jar demo.Main \"${PORT:-8080}\"\n",
            )?;
            put(&root, "opsware/lib/opsware.jar", 0o644, b"PK\x05\x06")?;
            put(
                &root,
                "opsware/conf/app.properties",
                0o644,
                b"greeting=hello\n",
            )?;
            Ok(root)
        }
        "maven-compile" => {
            put(&root, "pom.xml", 0o644, POM.as_bytes())?;
            put(
                &root,
                "src/main/java/demo/Main.java",
                0o644,
                b"package demo;\npublic class Main { public static void main(String[] a) {} }\n",
            )?;
            Ok(root)
        }
        "jar" => {
            let jar = root.join("hello.jar");
            executable_jar(&jar, "com.example.Hello", 61)?;
            Ok(jar)
        }
        "spring-boot" => {
            let jar = root.join("orders.jar");
            spring_boot_jar(
                &jar,
                "com.example.orders.OrdersApp",
                "server.port=8081\n",
                true,
            )?;
            Ok(jar)
        }
        "war" => {
            let war = root.join("shop.war");
            write_zip(
                &war,
                &[
                    ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\r\n\r\n"),
                    ("WEB-INF/web.xml", WEB_XML.as_bytes()),
                    ("WEB-INF/classes/com/example/Hello.class", &class_bytes(55)),
                    ("index.html", b"<h1>shop</h1>\n"),
                ],
            )?;
            Ok(war)
        }
        "exploded-war" => {
            put(&root, "WEB-INF/web.xml", 0o644, WEB_XML.as_bytes())?;
            put(&root, "index.jsp", 0o644, b"<%= \"hello\" %>\n")?;
            Ok(root)
        }
        "release-tgz" => {
            let tgz = root.join("billing-2.1.tgz");
            write_tgz(
                &tgz,
                &[
                    (
                        "billing-2.1/bin/start.sh",
                        0o755,
                        b"#!/bin/sh\ncd \"$(dirname \"$0\")/..\"\nexec java $JAVA_OPTS -cp lib/billing.jar com.example.Billing --port \"${PORT:-9000}\"\n",
                    ),
                    ("billing-2.1/conf/billing.properties", 0o644, b"greeting=hello\n"),
                    ("billing-2.1/lib/billing.jar", 0o644, b"PK\x05\x06"),
                ],
            )?;
            Ok(tgz)
        }
        "release-dir" => {
            put(
                &root,
                "bin/startup.sh",
                0o755,
                b"#!/bin/sh\nexec ./server\n",
            )?;
            put(&root, "config/server.conf", 0o644, b"port=7000\n")?;
            put(&root, "server", 0o755, b"#!/bin/sh\necho server\n")?;
            Ok(root)
        }
        "python" => {
            put(
                &root,
                "pyproject.toml",
                0o644,
                b"[project]\nname = \"greeter\"\nversion = \"1.0\"\nrequires-python = \">=3.9\"\n\n[project.scripts]\ngreeter = \"greeter.server:main\"\n",
            )?;
            put(&root, "greeter/__init__.py", 0o644, b"")?;
            put(
                &root,
                "greeter/server.py",
                0o644,
                b"import os\nPORT = int(os.environ.get(\"PORT\", \"8000\"))\ndef main():\n    pass\n",
            )?;
            Ok(root)
        }
        "python-requirements" => {
            put(&root, "requirements.txt", 0o644, b"requests>=2\n")?;
            put(&root, "main.py", 0o644, b"print('hello')\n")?;
            Ok(root)
        }
        "static" => {
            put(&root, "index.html", 0o644, b"<h1>hello</h1>\n")?;
            put(&root, "css/site.css", 0o644, b"h1 { color: teal }\n")?;
            Ok(root)
        }
        "native" => {
            put(&root, "bin/echo-server", 0o755, &elf64(false))?;
            Ok(root)
        }
        other => Err(std::io::Error::other(format!(
            "no sample app named {other}"
        ))),
    }
}
