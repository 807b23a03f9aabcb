//! Reading Java archives the way the JVM does: the zip directory, `META-INF/MANIFEST.MF` with
//! its continuation lines, and the class file version of a class.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use zip::ZipArchive;

/// The newest class file major version caas/sofa-jdk17 can run (Java 17).
pub const MAX_CLASS_MAJOR: u16 = 61;

pub type Archive = ZipArchive<BufReader<File>>;

/// Opens a zip archive; the error text is the zip reader's.
pub fn open(path: &Path) -> Result<Archive, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    ZipArchive::new(BufReader::new(file)).map_err(|e| e.to_string())
}

/// The main section of a manifest: attribute name -> value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub main: BTreeMap<String, String>,
}

impl Manifest {
    /// Parses a manifest: `Name: value` lines, a line starting with one space continues the
    /// previous value, the main section ends at the first empty line.
    pub fn parse(text: &str) -> Self {
        let mut main = BTreeMap::new();
        let mut last: Option<String> = None;
        for line in text.split("\r\n").flat_map(|l| l.split('\n')) {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                if !main.is_empty() {
                    break;
                }
                continue;
            }
            if let Some(cont) = line.strip_prefix(' ') {
                if let Some(key) = &last {
                    if let Some(v) = main.get_mut(key) {
                        let v: &mut String = v;
                        v.push_str(cont);
                    }
                }
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                let key = k.trim().to_string();
                main.insert(key.clone(), v.strip_prefix(' ').unwrap_or(v).to_string());
                last = Some(key);
            }
        }
        Manifest { main }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.main
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// Reads an entry of at most `limit` bytes; `None` when the entry does not exist.
pub fn read_entry(zip: &mut Archive, name: &str, limit: u64) -> Result<Option<Vec<u8>>, String> {
    let mut entry = match zip.by_name(name) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut buf = Vec::new();
    (&mut entry)
        .take(limit)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    Ok(Some(buf))
}

/// The manifest of an archive, if it has one.
pub fn manifest(zip: &mut Archive) -> Result<Option<Manifest>, String> {
    Ok(read_entry(zip, "META-INF/MANIFEST.MF", 1 << 20)?
        .map(|b| Manifest::parse(&String::from_utf8_lossy(&b))))
}

/// The class file major version of an entry (`None` if it is not a class file).
pub fn class_major(zip: &mut Archive, name: &str) -> Result<Option<u16>, String> {
    let Some(head) = read_entry(zip, name, 8)? else {
        return Ok(None);
    };
    Ok(class_major_of(&head))
}

pub fn class_major_of(head: &[u8]) -> Option<u16> {
    match head {
        [0xca, 0xfe, 0xba, 0xbe, _, _, hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo])),
        _ => None,
    }
}

/// Java release of a class file major version (52 -> 8, 61 -> 17).
pub fn java_release(major: u16) -> u16 {
    major.saturating_sub(44)
}

/// The entry name of a class: `com.example.Main` -> `com/example/Main.class`.
pub fn class_entry(class: &str) -> String {
    format!("{}.class", class.replace('.', "/"))
}

/// All entry names of an archive.
pub fn names(zip: &Archive) -> Vec<String> {
    zip.file_names().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn manifest_continuation_lines_and_sections() {
        let m = Manifest::parse(
            "Manifest-Version: 1.0\r\nMain-Class: com.example.very.long.packa\r\n ge.Main\r\n\r\nName: x\r\nMain-Class: other\r\n",
        );
        assert_eq!(
            m.get("main-class"),
            Some("com.example.very.long.package.Main")
        );
        assert_eq!(m.get("Manifest-Version"), Some("1.0"));
    }

    #[test]
    fn class_versions() {
        assert_eq!(
            class_major_of(&[0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 61]),
            Some(61)
        );
        assert_eq!(java_release(61), 17);
        assert_eq!(class_major_of(b"nope1234"), None);
        assert_eq!(class_entry("a.b.C"), "a/b/C.class");
    }
}
