//! Static native binaries: an ELF executable without a program interpreter (`PT_INTERP`), which
//! is what `file` calls "statically linked". A dynamically linked binary is reported, not used:
//! its libraries may not be in the image.

use std::path::Path;

use super::source::{read_limited, FileFormat, Shape, Source};
use super::{AppModel, Candidate, Evidence, Kind, Outcome};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeApp {
    /// The binary, relative to the build context.
    pub file: String,
    pub machine: String,
}

/// What the ELF header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    pub executable: bool,
    pub static_linked: bool,
    pub machine: String,
}

const PT_INTERP: u32 = 3;

/// Parses the ELF header and program headers (`None` if this is not an ELF file).
pub fn elf_info(bytes: &[u8]) -> Option<ElfInfo> {
    if bytes.len() < 52 || &bytes[..4] != b"\x7fELF" {
        return None;
    }
    let is64 = bytes[4] == 2;
    let le = bytes[5] == 1;
    let u16_at = |o: usize| -> Option<u16> {
        let b: [u8; 2] = bytes.get(o..o + 2)?.try_into().ok()?;
        Some(if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |o: usize| -> Option<u32> {
        let b: [u8; 4] = bytes.get(o..o + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let u64_at = |o: usize| -> Option<u64> {
        let b: [u8; 8] = bytes.get(o..o + 8)?.try_into().ok()?;
        Some(if le {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    };
    let e_type = u16_at(16)?;
    let machine = match u16_at(18)? {
        0x3e => "x86_64",
        0xb7 => "aarch64",
        0x03 => "i386",
        0x28 => "arm",
        0xf3 => "riscv",
        _ => "other",
    }
    .to_string();
    let (phoff, phentsize, phnum) = if is64 {
        (u64_at(32)?, u16_at(54)?, u16_at(56)?)
    } else {
        (u64::from(u32_at(28)?), u16_at(42)?, u16_at(44)?)
    };
    let mut static_linked = true;
    for i in 0..usize::from(phnum) {
        let off = usize::try_from(phoff).ok()? + i * usize::from(phentsize);
        if u32_at(off)? == PT_INTERP {
            static_linked = false;
        }
    }
    Some(ElfInfo {
        // ET_EXEC, or ET_DYN (PIE) — a shared library has no entry worth running, but we
        // cannot tell them apart cheaply; the exec bit decides in directories.
        executable: e_type == 2 || e_type == 3,
        static_linked,
        machine,
    })
}

fn info_of(path: &Path) -> Option<ElfInfo> {
    // Program headers sit near the start; 64 KiB covers every sane layout.
    read_limited(path, 64 * 1024)
        .ok()
        .as_deref()
        .and_then(elf_info)
}

pub fn detect(src: &Source) -> Outcome {
    let host = std::env::consts::ARCH;
    match &src.shape {
        Shape::File { name, format } => {
            if *format != FileFormat::Elf {
                return Outcome::Miss(None);
            }
            let Some(info) = info_of(&src.path) else {
                return Outcome::Miss(Some(format!("{name}: unreadable ELF header")));
            };
            judge(name.clone(), info, host)
        }
        Shape::Dir { entries } => {
            let mut found = Vec::new();
            let mut notes = Vec::new();
            for e in entries.iter().filter(|e| {
                !e.is_dir
                    && e.executable()
                    && (!e.rel.contains('/')
                        || e.rel.strip_prefix("bin/").is_some_and(|r| !r.contains('/')))
            }) {
                if let Some(info) = info_of(&src.abs(&e.rel)) {
                    if info.static_linked && info.executable {
                        found.push((e.rel.clone(), info));
                    } else {
                        notes.push(format!("{} is dynamically linked", e.rel));
                    }
                }
            }
            match found.len() {
                0 => Outcome::Miss(notes.into_iter().next()),
                1 => found
                    .pop()
                    .map_or(Outcome::Miss(None), |(rel, info)| judge(rel, info, host)),
                _ => Outcome::Refused(crate::error::DetectError::Ambiguous {
                    files: found.into_iter().map(|(r, _)| r).collect(),
                }),
            }
        }
    }
}

fn judge(file: String, info: ElfInfo, host: &str) -> Outcome {
    if !info.static_linked {
        return Outcome::Miss(Some(format!(
            "{file} is a dynamically linked ELF binary; the image may lack its libraries: \
             link it statically, or ship it in a release directory with bin/start.sh"
        )));
    }
    let mut evidence = vec![Evidence::new(
        file.clone(),
        format!("static ELF executable for {} (no PT_INTERP)", info.machine),
    )];
    if info.machine != host {
        evidence.push(Evidence::new(
            file.clone(),
            format!("built for {}, this host is {host}", info.machine),
        ));
    }
    Outcome::Match(Candidate {
        kind: Kind::Native,
        evidence,
        app: AppModel::Native(NativeApp {
            file,
            machine: info.machine,
        }),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::fixtures;

    #[test]
    fn static_and_dynamic_elf() {
        let s = elf_info(&fixtures::elf64(false)).unwrap();
        assert!(s.static_linked);
        assert_eq!(s.machine, "x86_64");
        let d = elf_info(&fixtures::elf64(true)).unwrap();
        assert!(!d.static_linked);
        assert!(elf_info(b"not elf").is_none());
    }

    #[test]
    fn detects_a_static_binary_in_a_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("server");
        std::fs::write(&bin, fixtures::elf64(false)).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let Outcome::Match(c) = detect(&Source::open(dir.path()).unwrap()) else {
            panic!()
        };
        let AppModel::Native(app) = c.app else {
            panic!()
        };
        assert_eq!(app.file, "server");

        std::fs::write(&bin, fixtures::elf64(true)).unwrap();
        let Outcome::Miss(Some(note)) = detect(&Source::open(dir.path()).unwrap()) else {
            panic!()
        };
        assert!(note.contains("dynamically linked"));
    }
}
