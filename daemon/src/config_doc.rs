//! Keeps a shipped, commented config file (packaging/*.toml) in step with the parser: which
//! keys a serde struct accepts, which keys a file documents (set, or shown as `# key = value`),
//! and the file with every documented example uncommented.

use serde::de::{self, Deserializer, Visitor};

/// The field names `T` accepts (what serde's derive passes to `deserialize_struct`).
pub fn struct_fields<'de, T: serde::Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldRecorder {
        fields: &mut fields,
    });
    fields
}

/// The keys `text` documents, as `section.key` for keys under a `[section]` table (and the
/// section name itself): set (`key = ...`) or shown commented (`# key = ...`).
pub fn documented_keys(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut section: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            keys.push(name.trim().to_string());
            section = Some(name.trim().to_string());
            continue;
        }
        let body = line.strip_prefix('#').map(str::trim_start).unwrap_or(line);
        let Some((key, _)) = body.split_once(" = ") else {
            continue;
        };
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            continue;
        }
        keys.push(match &section {
            Some(s) => format!("{s}.{key}"),
            None => key.to_string(),
        });
    }
    keys
}

/// `text` with every `# key = value` line uncommented.
pub fn uncomment_examples(text: &str) -> String {
    text.lines()
        .map(|line| match line.trim().strip_prefix("# ") {
            Some(body)
                if body.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                }) =>
            {
                body.to_string()
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

struct FieldRecorder<'a> {
    fields: &'a mut &'static [&'static str],
}

#[derive(Debug)]
struct Recorded;

impl std::fmt::Display for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names recorded")
    }
}

impl std::error::Error for Recorded {}

impl de::Error for Recorded {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Recorded
    }
}

impl<'de> Deserializer<'de> for FieldRecorder<'_> {
    type Error = Recorded;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Recorded> {
        Err(Recorded)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Recorded> {
        *self.fields = fields;
        Err(Recorded)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Example {
        alpha: Option<u32>,
        beta_gamma: Option<String>,
    }

    #[test]
    fn fields_documented_keys_and_uncommenting() {
        assert_eq!(struct_fields::<Example>(), ["alpha", "beta_gamma"]);
        let text = "# About alpha = not a key.\nalpha = 1\n# beta_gamma = \"x\"\n[labels]\n# rack = \"r1\"\n";
        assert_eq!(
            documented_keys(text),
            ["alpha", "beta_gamma", "labels", "labels.rack"]
        );
        let open = uncomment_examples(text);
        assert!(open.contains("\nbeta_gamma = \"x\"\n"), "{open}");
        assert!(open.contains("\nrack = \"r1\""), "{open}");
        assert!(open.starts_with("# About alpha"), "{open}");
    }
}
