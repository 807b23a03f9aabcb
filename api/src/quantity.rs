//! Resource quantities as people write them: memory (`512Mi`, `2G`, `1048576`) and CPU
//! (`500m`, `1.5`, `2`). Parsing is exact integer arithmetic with overflow checks.

use crate::ValidationError;

const MEMORY_UNITS: &[(&str, u64)] = &[
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("k", 1_000),
    ("K", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
];

/// Parses a memory quantity into bytes. Zero is rejected: a workload needs some memory.
pub fn parse_memory(field: &str, text: &str) -> Result<u64, ValidationError> {
    let text = text.trim();
    let (digits, multiplier) = MEMORY_UNITS
        .iter()
        .find_map(|(unit, mult)| text.strip_suffix(unit).map(|d| (d, *mult)))
        .unwrap_or((text, 1));
    let hint = "write bytes or a number with a unit Ki, Mi, Gi, Ti (powers of 2) or k, M, G, T \
                (powers of 10), e.g. \"512Mi\"";
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(ValidationError::new(
            field,
            format!("{text:?} is not a memory quantity; {hint}"),
        ));
    }
    let value: u64 = digits
        .parse()
        .map_err(|_| ValidationError::new(field, format!("{text:?} is too large; {hint}")))?;
    let bytes = value.checked_mul(multiplier).ok_or_else(|| {
        ValidationError::new(field, format!("{text:?} is too large (overflows 64 bits)"))
    })?;
    if bytes == 0 {
        return Err(ValidationError::new(field, "must be greater than zero"));
    }
    Ok(bytes)
}

/// Parses a CPU quantity into millicores: `500m`, `1`, `1.5` (at most 3 decimals).
pub fn parse_cpu(field: &str, text: &str) -> Result<u64, ValidationError> {
    let text = text.trim();
    let hint = "write cores (\"2\", \"0.5\") or millicores (\"500m\")";
    let bad = || ValidationError::new(field, format!("{text:?} is not a CPU quantity; {hint}"));
    let millis = if let Some(m) = text.strip_suffix('m') {
        if m.is_empty() || !m.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        m.parse::<u64>().map_err(|_| bad())?
    } else {
        let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
        let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        if whole.is_empty() && frac.is_empty() || !all_digits(whole) || !all_digits(frac) {
            return Err(bad());
        }
        if frac.len() > 3 {
            return Err(ValidationError::new(
                field,
                format!("{text:?} is finer than a millicore; {hint}"),
            ));
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let frac_millis: u64 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
        whole
            .checked_mul(1000)
            .and_then(|w| w.checked_add(frac_millis))
            .ok_or_else(bad)?
    };
    if millis == 0 {
        return Err(ValidationError::new(field, "must be greater than zero"));
    }
    Ok(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("m", "512Mi").unwrap(), 512 << 20);
        assert_eq!(parse_memory("m", "2G").unwrap(), 2_000_000_000);
        assert_eq!(parse_memory("m", "1024").unwrap(), 1024);
        assert_eq!(parse_memory("m", "1Ki").unwrap(), 1024);
    }

    #[test]
    fn memory_rejects_garbage_overflow_and_zero() {
        for bad in ["", "12Q", "-1Mi", "1.5Gi", "Mi", "0", "99999999999Ti"] {
            let err = parse_memory("resources.memory", bad).unwrap_err();
            assert_eq!(err.field, "resources.memory", "{bad}");
        }
    }

    #[test]
    fn cpu_forms() {
        assert_eq!(parse_cpu("c", "500m").unwrap(), 500);
        assert_eq!(parse_cpu("c", "1.5").unwrap(), 1500);
        assert_eq!(parse_cpu("c", "2").unwrap(), 2000);
        assert_eq!(parse_cpu("c", ".25").unwrap(), 250);
    }

    #[test]
    fn cpu_rejects() {
        for bad in [
            "",
            "m",
            "0",
            "0m",
            "1.0001",
            "-1",
            "abc",
            "1e3",
            "99999999999999999999",
        ] {
            assert!(parse_cpu("c", bad).is_err(), "{bad}");
        }
    }
}
